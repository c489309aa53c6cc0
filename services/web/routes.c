/* surveybus-web's routes: see web.h. */
#include <fcntl.h>
#include <jansson.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "service.h"
#include "snapshot.h"
#include "web.h"

/* A stream's reads block; this is how much it hands libmicrohttpd at most per read. */
#define STREAM_BLOCK 16384

/* Queues body (owned, malloc'd) with a status and a content type. */
static int reply(struct MHD_Connection *c, unsigned status, const char *ctype, char *body)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", ctype);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    enum MHD_Result rc = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return rc;
}

static int reply_text(struct MHD_Connection *c, unsigned status, const char *text)
{
    char *body = strdup(text);
    if (!body) abort();
    return reply(c, status, "text/plain; charset=utf-8", body);
}

/* {"error": reason} with a status. */
static int reply_error(struct MHD_Connection *c, unsigned status, const char *reason)
{
    /* reasons quote the request's keys and values: any bytes once percent-decoded
     * ("?window=%ff") */
    char *text = sb_utf8_repaired(reason);
    json_t *o = json_pack("{s:s}", "error", text);
    free(text);
    char *body = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!body) abort();
    size_t n = strlen(body);
    char *line = realloc(body, n + 2);
    if (!line) abort();
    memcpy(line + n, "\n", 2);
    return reply(c, status, "application/json", line);
}

/* ---------------------------------------------------------------- query parameters */

#define QUERY_KEYS_MAX 4
typedef struct query {
    /* the keys accepted, NULL-terminated: one slot more than keys, so that a route that
     * accepts QUERY_KEYS_MAX keys still has its terminator */
    const char *allowed[QUERY_KEYS_MAX + 1];
    const char *value[QUERY_KEYS_MAX]; /* by allowed index; NULL when absent, "" when empty
                                          ("?metric=" or "?metric") */
    char err[300];
} query_t;

static enum MHD_Result query_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                 size_t key_size, const char *value, size_t value_size)
{
    (void)kind;
    query_t *q = cls;
    /* a decoded "%00" ends the text here: "nps%00x" would be taken for "nps" */
    if (strlen(key) != key_size || (value && strlen(value) != value_size)) {
        char *k = sb_utf8_repaired(key);
        snprintf(q->err, sizeof q->err, "parameter %.64s holds a NUL byte", k);
        free(k);
        return MHD_NO;
    }
    for (size_t i = 0; q->allowed[i]; i++)
        if (strcmp(key, q->allowed[i]) == 0) {
            if (q->value[i]) {
                snprintf(q->err, sizeof q->err, "parameter %s given twice", key);
                return MHD_NO;
            }
            q->value[i] = value ? value : "";
            return MHD_YES;
        }
    size_t used = (size_t)snprintf(q->err, sizeof q->err, "unknown parameter %s (valid:", key);
    for (size_t i = 0; q->allowed[i] && used < sizeof q->err; i++)
        used += (size_t)snprintf(q->err + used, sizeof q->err - used, "%s %s", i ? "," : "",
                                 q->allowed[i]);
    if (used < sizeof q->err)
        snprintf(q->err + used, sizeof q->err - used, "%s", q->allowed[0] ? ")" : " none)");
    return MHD_NO;
}

/* Reads the query into q. Returns 0, or -1 with the reason in q->err. */
static int query_read(struct MHD_Connection *c, query_t *q)
{
    MHD_get_connection_values_n(c, MHD_GET_ARGUMENT_KIND, query_arg, q);
    return q->err[0] ? -1 : 0;
}

/* ---------------------------------------------------------------- /api/metrics */

/* sb_snapshot_read on the shared connection (w->lock held), refused at once (-1, "stopping")
 * once the service stops: a stop must not queue behind Redis calls that time out. */
static int read_snapshot(web_t *w, const sb_snapshot_filter_t *f, sb_tally_snapshot_t *snap,
                         sb_snapshot_slice_t **slices, size_t *n, char *err, size_t len)
{
    if (sb_service_stop) {
        snprintf(err, len, "stopping");
        return -1;
    }
    return sb_snapshot_read(w->tally, w->store, f, snap, slices, n, err, len);
}

static int api_metrics(web_t *w, struct MHD_Connection *c)
{
    /* a value would be borrowed by the filter: the query strings live as long as the request */
    query_t q = {.allowed = {"metric", "window", "dimension", "value"}};
    if (query_read(c, &q)) return reply_error(c, MHD_HTTP_BAD_REQUEST, q.err);
    sb_snapshot_filter_t f;
    char err[600];
    if (sb_snapshot_filter_init(&f, w->cfg, q.value[0], q.value[1], q.value[2], q.value[3], err,
                                sizeof err))
        return reply_error(c, MHD_HTTP_BAD_REQUEST, err);
    sb_tally_snapshot_t snap;
    sb_snapshot_slice_t *slices;
    size_t n, failed = 0;
    char *json = NULL;
    pthread_mutex_lock(&w->lock);
    if (read_snapshot(w, &f, &snap, &slices, &n, err, sizeof err) == 0) {
        json = sb_snapshot_json(w->cfg, &snap, &f, slices, n, &failed);
        free(slices);
        sb_tally_snapshot_free(&snap);
    }
    pthread_mutex_unlock(&w->lock);
    if (!json) {
        sb_warn("snapshot failed: %s", err);
        return reply_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, err);
    }
    if (failed) sb_warn("snapshot left out values that could not be encoded count=%zu", failed);
    size_t len = strlen(json);
    char *body = realloc(json, len + 2);
    if (!body) abort();
    memcpy(body + len, "\n", 2); /* as surveybusctl prints it */
    return reply(c, MHD_HTTP_OK, "application/json", body);
}

/* ---------------------------------------------------------------- /api/stream */

typedef struct events {
    char *buf;
    size_t len, cap;
} events_t;

static int add_event(void *opaque, const sb_metric_update_t *u, const char *json)
{
    (void)u;
    events_t *e = opaque;
    size_t need = strlen(json) + 32;
    if (e->len + need > e->cap) {
        size_t cap = 2 * e->cap + need;
        char *b = realloc(e->buf, cap);
        if (!b) abort();
        e->buf = b, e->cap = cap;
    }
    e->len +=
        (size_t)snprintf(e->buf + e->len, e->cap - e->len, "event: metric\ndata: %s\n\n", json);
    return 0;
}

static int api_stream(web_t *w, struct MHD_Connection *c)
{
    query_t q = {.allowed = {NULL}};
    if (query_read(c, &q)) return reply_error(c, MHD_HTTP_BAD_REQUEST, q.err);
    /* joined before the snapshot is read: an update published meanwhile is sent after it
     * (perhaps repeating a value), never lost */
    hub_client_t *client = hub_join(w->hub);
    sb_snapshot_filter_t every = {.metric = -1, .window = -1};
    sb_tally_snapshot_t snap;
    sb_snapshot_slice_t *slices;
    size_t n, failed = 0;
    char err[600];
    events_t e = {0};
    int rc = -1;
    pthread_mutex_lock(&w->lock);
    if (read_snapshot(w, &every, &snap, &slices, &n, err, sizeof err) == 0) {
        rc = sb_snapshot_each(w->cfg, &snap, &every, slices, n, add_event, &e, &failed);
        free(slices);
        sb_tally_snapshot_free(&snap);
    }
    pthread_mutex_unlock(&w->lock);
    if (rc != 0) {
        hub_leave(client);
        free(e.buf);
        sb_warn("stream snapshot failed: %s", err);
        return reply_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, err);
    }
    hub_client_first(client, e.buf ? e.buf : strdup(""));
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, STREAM_BLOCK,
                                                               hub_read, client, hub_leave);
    if (!r) {
        hub_leave(client);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "text/event-stream; charset=utf-8");
    MHD_add_response_header(r, "Cache-Control", "no-store");
    MHD_add_response_header(r, "X-Accel-Buffering", "no");
    /* events may be minutes apart: the keep-alive comments, not an idle timeout, notice a
     * client that went away */
    MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, (unsigned)0);
    enum MHD_Result res = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    sb_debug("stream opened clients=%zu", hub_clients(w->hub));
    return res;
}

/* ---------------------------------------------------------------- static files */

const char *web_content_type(const char *path)
{
    static const struct {
        const char *ext, *type;
    } types[] = {{".html", "text/html; charset=utf-8"},
                 {".htm", "text/html; charset=utf-8"},
                 {".js", "text/javascript; charset=utf-8"},
                 {".mjs", "text/javascript; charset=utf-8"},
                 {".css", "text/css; charset=utf-8"},
                 {".svg", "image/svg+xml"},
                 {".png", "image/png"},
                 {".ico", "image/x-icon"},
                 {".json", "application/json"},
                 {".map", "application/json"},
                 {".txt", "text/plain; charset=utf-8"},
                 {".woff2", "font/woff2"}};
    const char *slash = strrchr(path, '/'), *dot = strrchr(path, '.');
    if (dot && (!slash || dot > slash))
        for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
            if (strcasecmp(dot, types[i].ext) == 0) return types[i].type;
    return "application/octet-stream";
}

/* True when a level of the path is "..". */
static bool climbs(const char *url)
{
    for (const char *p = url; (p = strstr(p, "..")); p += 2)
        if ((p == url || p[-1] == '/') && (p[2] == '\0' || p[2] == '/')) return true;
    return false;
}

static int static_file(web_t *w, struct MHD_Connection *c, const char *url)
{
    if (url[0] != '/' || climbs(url) || strchr(url, '\\'))
        return reply_text(c, MHD_HTTP_BAD_REQUEST, "bad path: \"..\" is not allowed\n");
    const char *root = w->cfg->http.web_root;
    struct stat st;
    if (stat(root, &st) != 0 || !S_ISDIR(st.st_mode)) {
        char text[4400];
        snprintf(text, sizeof text,
                 "the dashboard is not built: web root %s is not a directory "
                 "(build it with make web, or set http.web_root)\n",
                 root);
        return reply_text(c, MHD_HTTP_NOT_FOUND, text);
    }
    char path[8400];
    size_t ul = strlen(url);
    int pl =
        snprintf(path, sizeof path, "%s%s%s", root, url, url[ul - 1] == '/' ? "index.html" : "");
    if (pl < 0 || (size_t)pl >= sizeof path)
        return reply_text(c, MHD_HTTP_NOT_FOUND, "not found\n");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        if (fd >= 0) close(fd);
        return reply_text(c, MHD_HTTP_NOT_FOUND, "not found\n");
    }
    struct MHD_Response *r = MHD_create_response_from_fd((size_t)st.st_size, fd);
    if (!r) {
        close(fd);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", web_content_type(path));
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    enum MHD_Result rc = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return rc;
}

/* ---------------------------------------------------------------- dispatch */

int web_route(void *arg, struct MHD_Connection *c, const char *url)
{
    web_t *w = arg;
    if (strcmp(url, "/api/metrics") == 0) return api_metrics(w, c);
    if (strcmp(url, "/api/stream") == 0) return api_stream(w, c);
    if (strncmp(url, "/api/", 5) == 0 || strcmp(url, "/api") == 0)
        return reply_error(c, MHD_HTTP_NOT_FOUND, "no such api: try /api/metrics or /api/stream");
    return static_file(w, c, url);
}
