/* The shared configuration (SPEC §6). Built-in defaults are one JSON document; the file, the
 * environment and the overrides are merged into it, and a single schema-checking walk turns
 * the result into sb_config_t, naming every problem by its JSON path. */
#include "config.h"
#include "jsonptr.h"
#include "log.h"
#include "mqtt.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DEV_SECRET "surveybus-dev-secret"
#define FILE_MAX (4 * 1024 * 1024)  /* bytes in a config file or text */
#define QUESTION_MAX SB_COMMENT_MAX /* bytes in a question text */
#define JOURNEYS_MAX 1000
#define DAY_MS INT64_C(86400000)

const char *const sb_kind_names[SB_KIND__N] = {"csat", "ces", "nps"};

const char *const sb_field_names[SB_F__N] = {
    "event_id",
    "type",
    "occurred_at",
    "customer_id",
    "customer_tz",
    "locale",
    "interaction_id",
    "kind",
    "channel",
    "stage",
    "agent",
    "team",
    "region",
    "product",
    "device_id",
    "kpi.first_response_s",
    "kpi.resolution_s",
    "kpi.resolved_first_contact",
    "kpi.transfers",
};

const char *const sb_dim_names[SB_DIM__N] = {"all",    "channel", "agent", "team",
                                             "region", "product", "stage", "journey",
                                             "kind",   "locale",  "device"};

static const char *const log_names[] = {"debug", "info", "warn", "error", "off"};

static int find_name(const char *const *names, int n, const char *name)
{
    for (int i = 0; name && i < n; i++)
        if (strcmp(names[i], name) == 0) return i;
    return -1;
}

int sb_kind_parse(const char *name)
{
    return find_name(sb_kind_names, SB_KIND__N, name);
}

int sb_field_parse(const char *name)
{
    return find_name(sb_field_names, SB_F__N, name);
}

int sb_dim_parse(const char *name)
{
    return find_name(sb_dim_names, SB_DIM__N, name);
}

static char *xstrdup(const char *s)
{
    char *d = strdup(s);
    if (!d) abort();
    return d;
}

static char *xstrndup(const char *s, size_t n)
{
    char *d = strndup(s, n);
    if (!d) abort();
    return d;
}

/* ---------------------------------------------------------------- defaults document */

static const char default_text[] =
    "{\"kafka\":{\"brokers\":\"localhost:9092\",\"group\":\"surveybus\",\"properties\":{}},"
    "\"mqtt\":{\"url\":\"mqtt://localhost:1883\",\"client_id\":null,\"qos\":1},"
    "\"redis\":{\"url\":\"redis://localhost:6379/0\",\"prefix\":\"sb:\"},"
    "\"token\":{\"secret\":null},"
    "\"topics\":{\"interactions\":\"interactions\",\"requests\":\"survey.requests\","
    "\"responses\":\"survey.responses\",\"metrics\":\"survey.metrics\","
    "\"alerts\":\"survey.alerts\",\"dlq\":\"surveybus.dlq\"},"
    "\"mqtt_topics\":{\"interactions\":[\"fieldservice/+/visit/completed\"],"
    "\"responses\":[\"fieldservice/+/survey/response\"],"
    "\"device_requests\":\"fieldservice/{device_id}/survey/request\","
    "\"requests\":\"surveys/{channel}/{customer_id}\","
    "\"metrics\":\"metrics/{metric}/{window}/{dimension}/{value}\","
    "\"alerts\":\"alerts/{type}\"},"
    "\"mapping\":{},"
    "\"scales\":{\"csat\":{\"min\":1,\"max\":5,\"satisfied_min\":4},"
    "\"ces\":{\"min\":1,\"max\":7,\"easy\":\"low\",\"easy_max\":2},"
    "\"nps\":{\"min\":0,\"max\":10}},"
    "\"questions\":{"
    "\"csat\":{\"en\":\"How satisfied were you with this service?\","
    "\"zh-CN\":\"您对本次服务满意吗?\"},"
    "\"ces\":{\"en\":\"How easy was it to get what you needed today?\","
    "\"zh-CN\":\"今天办理您的事情有多容易?\"},"
    "\"nps\":{\"en\":\"How likely are you to recommend us to a friend or colleague?\","
    "\"zh-CN\":\"您有多大可能向朋友或同事推荐我们?\"}},"
    "\"journeys\":[],"
    "\"fatigue\":{\"min_gap\":\"0s\",\"min_gap_by_kind\":{},\"max_per_30d\":0},"
    "\"windows\":[\"1h\",\"24h\",\"7d\",\"30d\"],"
    "\"allowed_lateness\":\"10m\","
    "\"dimensions\":[\"channel\",\"agent\",\"team\",\"region\",\"product\",\"stage\","
    "\"journey\"],"
    "\"max_dimension_values\":10000,"
    "\"alerts\":{\"nps_max\":6,\"csat_max\":3,\"ces_hard_min\":6,\"ces_hard_max\":2},"
    "\"publish\":{\"interval_ms\":1000,\"republish_s\":60},"
    "\"http\":{\"dispatcher\":\"\",\"aggregator\":\"\",\"web\":\"127.0.0.1:8080\","
    "\"web_root\":\"web/dist\"},"
    "\"tuning\":{\"batch\":1000,\"batch_ms\":50,\"lease\":\"30s\"},"
    "\"log\":{\"level\":\"info\"},"
    "\"dev\":false}";

/* A fresh defaults document (the mapping is derived from the field names). */
static json_t *defaults_doc(void)
{
    json_error_t e;
    json_t *d = json_loads(default_text, 0, &e);
    if (!d) abort();
    json_t *m = json_object_get(d, "mapping");
    for (int f = 0; f < SB_F__N; f++) {
        char ptr[64];
        snprintf(ptr, sizeof ptr, "/%s", sb_field_names[f]);
        for (char *p = ptr; *p; p++)
            if (*p == '.') *p = '/';
        json_object_set_new(m, sb_field_names[f], json_string(ptr));
    }
    return d;
}

/* Deep merge: objects merge key by key, anything else in src replaces dst's value. */
static void merge(json_t *dst, json_t *src)
{
    const char *k;
    json_t *v;
    json_object_foreach(src, k, v)
    {
        json_t *d = json_object_get(dst, k);
        if (d && json_is_object(d) && json_is_object(v))
            merge(d, v);
        else
            json_object_set(dst, k, v);
    }
}

/* ---------------------------------------------------------------- walker: paths, problems */

/* Where a value came from when it was not the file: env variable or override. */
typedef struct origin {
    char *path;
    const char *source;
} origin_t;

typedef struct walker {
    sb_problems_t *probs;
    size_t n_problems;
    char *path;
    size_t len, cap;
    origin_t *orig;
    size_t n_orig;
    bool scale_ok[SB_KIND__N];
} walker_t;

static void w_append(walker_t *w, const char *s, size_t n)
{
    if (w->len + n + 1 > w->cap) {
        size_t cap = w->cap ? w->cap : 64;
        while (cap < w->len + n + 1)
            cap *= 2;
        char *p = realloc(w->path, cap);
        if (!p) abort();
        w->path = p, w->cap = cap;
    }
    memcpy(w->path + w->len, s, n);
    w->len += n;
    w->path[w->len] = '\0';
}

/* Appends ".key" (or "key" at the root); returns the mark to pop back to. */
static size_t w_push(walker_t *w, const char *key)
{
    size_t mark = w->len;
    if (w->len) w_append(w, ".", 1);
    w_append(w, key, strlen(key));
    return mark;
}

static size_t w_index(walker_t *w, size_t i)
{
    size_t mark = w->len;
    char b[32];
    int n = snprintf(b, sizeof b, "[%zu]", i);
    w_append(w, b, (size_t)n);
    return mark;
}

static void w_pop(walker_t *w, size_t mark)
{
    w->len = mark;
    if (w->path) w->path[mark] = '\0';
}

/* True when path a is b or lies inside it ("x.y[2]" in "x.y", not in "x.yz"). */
static bool path_within(const char *a, const char *b)
{
    size_t n = strlen(b);
    return strncmp(a, b, n) == 0 && (a[n] == '\0' || a[n] == '.' || a[n] == '[');
}

/* The source of the value at path p: the latest origin that is p, an ancestor of p (the
 * value came with it) or a descendant of p (part of the value did: a problem with an
 * object or list, such as scales.csat's min against its max or a duplicate in windows, may
 * be the overridden part's). */
static const char *origin_of(const walker_t *w, const char *p)
{
    for (size_t i = w->n_orig; i-- > 0;)
        if (path_within(p, w->orig[i].path) || path_within(w->orig[i].path, p))
            return w->orig[i].source;
    return NULL;
}

/* Adds "path: message" (plus " (from SOURCE)" for values not from the file). */
static void w_problem(walker_t *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void w_problem(walker_t *w, const char *fmt, ...)
{
    char *msg;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&msg, fmt, ap) < 0) abort();
    va_end(ap);
    const char *p = w->len ? w->path : "";
    const char *src = w->len ? origin_of(w, p) : NULL;
    sb_problems_add(w->probs, "%s%s%s%s%s%s", p, *p ? ": " : "", msg, src ? " (from " : "",
                    src ? src : "", src ? ")" : "");
    free(msg);
    w->n_problems++;
}

static const char *jtype(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "object";
    case JSON_ARRAY:
        return "array";
    case JSON_STRING:
        return "string";
    case JSON_INTEGER:
        return "integer";
    case JSON_REAL:
        return "number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "boolean";
    default:
        return "null";
    }
}

static int expected(walker_t *w, const char *what, const json_t *v)
{
    w_problem(w, "expected %s, got %s", what, jtype(v));
    return -1;
}

/* s as a short quoted literal for messages: escaped, cut after 60 bytes. */
static const char *quote(const char *s, char *buf, size_t len)
{
    size_t o = 0, i = 0;
    buf[o++] = '"';
    for (; s[i] && o + 8 < len && i < 60; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            buf[o++] = '\\', buf[o++] = (char)c;
        } else if (c < 0x20 || c == 0x7F) {
            o += (size_t)snprintf(buf + o, len - o, "\\x%02x", c);
        } else {
            buf[o++] = (char)c;
        }
    }
    if (s[i]) {
        while (o > 1 && ((unsigned char)buf[o - 1] & 0xC0) == 0x80)
            o--; /* whole chars */
        if (o > 1 && (unsigned char)buf[o - 1] >= 0xC0) o--;
        buf[o++] = '.', buf[o++] = '.', buf[o++] = '.';
    }
    buf[o++] = '"';
    buf[o] = '\0';
    return buf;
}

/* Edit distance of two short strings (for "did you mean"). */
static size_t distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), row[65];
    if (la > 64 || lb > 64) return SIZE_MAX;
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j], best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            diag = up;
            row[j] = best;
        }
    }
    return row[lb];
}

/* The closest name within two edits, else one that key is a prefix of, else NULL. */
static const char *suggest(const char *key, const char *const *names, size_t n)
{
    const char *best = NULL;
    size_t bd = 3;
    for (size_t i = 0; i < n; i++) {
        size_t d = distance(key, names[i]);
        if (d < bd && d < strlen(names[i])) bd = d, best = names[i];
    }
    for (size_t i = 0; !best && i < n; i++) /* "customer" -> "customer_id" */
        if (strlen(key) >= 4 && strncmp(names[i], key, strlen(key)) == 0) best = names[i];
    return best;
}

static void unknown(walker_t *w, const char *key, const char *what, const char *const *names,
                    size_t n)
{
    size_t mark = w_push(w, key);
    const char *s = suggest(key, names, n);
    if (s)
        w_problem(w, "unknown %s (did you mean \"%s\"?)", what, s);
    else
        w_problem(w, "unknown %s", what);
    w_pop(w, mark);
}

/* Checks that v is an object whose keys are all in names (NULL-terminated). */
static bool want_object(walker_t *w, const json_t *v, const char *const *names)
{
    if (!json_is_object(v)) return expected(w, "object", v), false;
    size_t n = 0;
    while (names[n])
        n++;
    const char *k;
    json_t *x;
    json_object_foreach((json_t *)v, k, x)
    {
        if (find_name(names, (int)n, k) < 0) unknown(w, k, "key", names, n);
    }
    return true;
}

/* ---------------------------------------------------------------- walker: scalar readers */

enum { OPT = 1, NULLABLE = 2, NONEMPTY = 4, TOPICSAFE = 8 };

/* Each reader returns 1 when it stored a value, 0 when the value is absent or null (allowed
 * by flags), -1 after reporting a problem. Readers named rd_* look key up in obj. */
static int str_value(walker_t *w, const json_t *v, char **out, int flags, size_t max)
{
    if (!v) {
        if (flags & OPT) return 0;
        w_problem(w, "required");
        return -1;
    }
    if (json_is_null(v) && (flags & NULLABLE)) {
        free(*out);
        *out = NULL;
        return 0;
    }
    if (!json_is_string(v)) return expected(w, "string", v);
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    char q[96];
    if (n == 0 && (flags & NONEMPTY)) {
        w_problem(w, "must not be empty");
        return -1;
    }
    if (n > max) {
        w_problem(w, "too long (%zu bytes, at most %zu)", n, max);
        return -1;
    }
    if ((flags & TOPICSAFE) && n && !sb_str_topic_safe(s, n)) {
        w_problem(w, "%s may not contain control characters, '+', '#', '/' or '|'",
                  quote(s, q, sizeof q));
        return -1;
    }
    free(*out);
    *out = xstrdup(s);
    return 1;
}

static int rd_str(walker_t *w, const json_t *obj, const char *key, char **out, int flags,
                  size_t max)
{
    size_t mark = w_push(w, key);
    int rc = str_value(w, json_object_get(obj, key), out, flags, max);
    w_pop(w, mark);
    return rc;
}

static int int_value(walker_t *w, const json_t *v, int *out, long long min, long long max)
{
    if (!v) {
        w_problem(w, "required");
        return -1;
    }
    if (!json_is_integer(v)) return expected(w, "integer", v);
    long long x = json_integer_value(v);
    if (x < min || x > max) {
        w_problem(w, "must be between %lld and %lld, got %lld", min, max, x);
        return -1;
    }
    *out = (int)x;
    return 1;
}

static int rd_int(walker_t *w, const json_t *obj, const char *key, int *out, long long min,
                  long long max)
{
    size_t mark = w_push(w, key);
    int rc = int_value(w, json_object_get(obj, key), out, min, max);
    w_pop(w, mark);
    return rc;
}

static int dur_value(walker_t *w, const json_t *v, int64_t *out, int64_t min, int64_t max,
                     bool optional)
{
    if (!v || (optional && json_is_null(v))) {
        if (optional) return 0;
        w_problem(w, "required");
        return -1;
    }
    if (!json_is_string(v)) return expected(w, "duration (e.g. \"30s\")", v);
    int64_t ms;
    char q[96];
    if (sb_duration_parse(json_string_value(v), &ms) < 0) {
        w_problem(w, "not a duration: %s", quote(json_string_value(v), q, sizeof q));
        return -1;
    }
    if (ms < min || ms > max) {
        char a[32], b[32], c[32];
        sb_duration_format(min, a, sizeof a);
        sb_duration_format(max, b, sizeof b);
        sb_duration_format(ms, c, sizeof c);
        w_problem(w, "must be between %s and %s, got %s", a, b, c);
        return -1;
    }
    *out = ms;
    return 1;
}

static int rd_dur(walker_t *w, const json_t *obj, const char *key, int64_t *out, int64_t min,
                  int64_t max, bool optional)
{
    size_t mark = w_push(w, key);
    int rc = dur_value(w, json_object_get(obj, key), out, min, max, optional);
    w_pop(w, mark);
    return rc;
}

/* ---------------------------------------------------------------- URLs and addresses */

typedef struct url {
    char *user, *pass, *host;
    const char *path; /* borrowed from the input: text after the authority's '/', or NULL */
    int port;
} url_t;

static void url_clear(url_t *u)
{
    free(u->user), free(u->pass), free(u->host);
    memset(u, 0, sizeof *u);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Percent-decodes s[0..n); NULL on a malformed escape or an encoded NUL. */
static char *pct_decode(const char *s, size_t n)
{
    char *d = malloc(n + 1), *o = d;
    if (!d) abort();
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%') {
            *o++ = s[i];
            continue;
        }
        int hi = i + 2 < n ? hexval(s[i + 1]) : -1, lo = i + 2 < n ? hexval(s[i + 2]) : -1;
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
            free(d);
            return NULL;
        }
        *o++ = (char)(hi * 16 + lo);
        i += 2;
    }
    *o = '\0';
    return d;
}

static int port_parse(const char *s, size_t n, int min, int *port)
{
    if (n == 0 || n > 5) return -1;
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v < min || v > 65535) return -1;
    *port = v;
    return 0;
}

/* Splits "host:port" / "[v6]:port" (port required) or "host" / "[v6]" (port optional) into
 * an owned host and a port; the reason in *why on failure. */
static int hostport_parse(const char *s, size_t n, bool need_port, int min_port, char **host,
                          int *port, const char **why)
{
    const char *hs = s, *he, *colon = NULL;
    if (n && s[0] == '[') {
        const char *rb = memchr(s, ']', n);
        if (!rb) return *why = "unterminated '[' in host", -1;
        hs = s + 1, he = rb;
        if (rb + 1 < s + n) {
            if (rb[1] != ':') return *why = "unexpected text after ']'", -1;
            colon = rb + 1;
        }
    } else {
        colon = memchr(s, ':', n);
        if (colon && memchr(colon + 1, ':', (size_t)(s + n - colon - 1)))
            return *why = "IPv6 addresses must be written in brackets", -1;
        he = colon ? colon : s + n;
    }
    if (colon) {
        if (port_parse(colon + 1, (size_t)(s + n - colon - 1), min_port, port) < 0)
            return *why = min_port ? "port must be a number 1..65535"
                                   : "port must be a number 0..65535",
                   -1;
    } else if (need_port) {
        return *why = "missing port", -1;
    }
    for (const char *p = hs; p < he; p++)
        if ((unsigned char)*p <= ' ' || *p == '@' || *p == '/' || *p == '?' || *p == '#')
            return *why = "invalid character in host", -1;
    *host = xstrndup(hs, (size_t)(he - hs));
    return 0;
}

/* Parses "scheme://[user[:pass]@]host[:port][/path]". */
static int url_parse(const char *s, const char *scheme, int default_port, url_t *u,
                     const char **why)
{
    memset(u, 0, sizeof *u);
    size_t sl = strlen(scheme);
    if (strncmp(s, scheme, sl) != 0 || strncmp(s + sl, "://", 3) != 0)
        return *why = "unsupported scheme", -1;
    const char *p = s + sl + 3, *end = p + strcspn(p, "/?#");
    if (*end == '?' || *end == '#') return *why = "query and fragment are not supported", -1;
    const char *at = memrchr(p, '@', (size_t)(end - p)), *hp = p;
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        u->user = pct_decode(p, (size_t)((colon ? colon : at) - p));
        if (colon) u->pass = pct_decode(colon + 1, (size_t)(at - colon - 1));
        if (!u->user || (colon && !u->pass)) {
            url_clear(u);
            return *why = "bad %-escape in user or password", -1;
        }
        hp = at + 1;
    }
    u->port = default_port;
    if (hostport_parse(hp, (size_t)(end - hp), false, 1, &u->host, &u->port, why) < 0) {
        url_clear(u);
        return -1;
    }
    if (!*u->host) {
        url_clear(u);
        return *why = "missing host", -1;
    }
    u->path = *end == '/' ? end + 1 : NULL;
    return 0;
}

/* A copy of url with the password part of its user info replaced by "***". */
static char *url_masked(const char *url)
{
    const char *sep = strstr(url, "://");
    if (!sep) return xstrdup(url);
    const char *p = sep + 3, *end = p + strcspn(p, "/?#");
    const char *at = memrchr(p, '@', (size_t)(end - p));
    const char *colon = at ? memchr(p, ':', (size_t)(at - p)) : NULL;
    if (!colon) return xstrdup(url);
    char *out;
    if (asprintf(&out, "%.*s:***%s", (int)(colon - url), url, at) < 0) abort();
    return out;
}

/* ---------------------------------------------------------------- sections */

static void walk_kafka(walker_t *w, json_t *v, sb_config_t *c)
{
    static const char *const keys[] = {"brokers", "group", "properties", NULL};
    if (!want_object(w, v, keys)) return;
    rd_str(w, v, "brokers", &c->kafka.brokers, 0, 4096);
    rd_str(w, v, "group", &c->kafka.group, NONEMPTY, SB_STR_MAX);
    json_t *props = json_object_get(v, "properties");
    size_t mark = w_push(w, "properties");
    if (props && !json_is_object(props)) {
        expected(w, "object", props);
    } else if (props) {
        size_t n = json_object_size(props), i = 0;
        c->kafka.properties = calloc(n ? n : 1, sizeof *c->kafka.properties);
        if (!c->kafka.properties) abort();
        const char *k;
        json_t *x;
        json_object_foreach(props, k, x)
        {
            size_t m2 = w_push(w, k);
            char text[64];
            const char *val = NULL;
            if (!*k) {
                w_problem(w, "empty property name");
            } else if (json_is_string(x)) {
                val = json_string_value(x);
            } else if (json_is_integer(x)) {
                snprintf(text, sizeof text, "%" JSON_INTEGER_FORMAT, json_integer_value(x));
                val = text;
            } else if (json_is_real(x)) {
                snprintf(text, sizeof text, "%.15g", json_real_value(x));
                val = text;
            } else if (json_is_boolean(x)) {
                val = json_is_true(x) ? "true" : "false";
            } else {
                expected(w, "string", x);
            }
            if (val) {
                c->kafka.properties[i].key = xstrdup(k);
                c->kafka.properties[i].value = xstrdup(val);
                c->kafka.n_properties = ++i;
            }
            w_pop(w, m2);
        }
    }
    w_pop(w, mark);
}

static void walk_mqtt(walker_t *w, json_t *v, sb_config_t *c)
{
    static const char *const keys[] = {"url", "client_id", "qos", NULL};
    if (!want_object(w, v, keys)) return;
    rd_str(w, v, "client_id", &c->mqtt.client_id, NULLABLE | OPT | NONEMPTY, SB_STR_MAX);
    rd_int(w, v, "qos", &c->mqtt.qos, 0, 2);
    if (rd_str(w, v, "url", &c->mqtt.url, 0, 1024) <= 0 || !*c->mqtt.url) return;
    url_t u;
    const char *why;
    size_t mark = w_push(w, "url");
    if (url_parse(c->mqtt.url, "mqtt", 1883, &u, &why) < 0) {
        w_problem(w, "expected mqtt://[user[:pass]@]host[:port]: %s", why);
    } else if (u.path && *u.path) {
        w_problem(w, "expected mqtt://[user[:pass]@]host[:port]: unexpected path");
        url_clear(&u);
    } else if (u.pass && (!u.user || !*u.user)) {
        /* MQTT 3.1.1 §3.1.2.9: a password only with a user name */
        w_problem(w, "expected mqtt://[user[:pass]@]host[:port]: a password needs a user name");
        url_clear(&u);
    } else {
        c->mqtt.host = u.host, c->mqtt.port = u.port;
        c->mqtt.user = u.user, c->mqtt.pass = u.pass;
    }
    w_pop(w, mark);
}

static void walk_redis(walker_t *w, json_t *v, sb_config_t *c)
{
    static const char *const keys[] = {"url", "prefix", NULL};
    if (!want_object(w, v, keys)) return;
    rd_str(w, v, "prefix", &c->redis.prefix, 0, 64);
    if (rd_str(w, v, "url", &c->redis.url, NONEMPTY, 1024) <= 0) return;
    url_t u;
    const char *why = NULL;
    size_t mark = w_push(w, "url");
    if (url_parse(c->redis.url, "redis", 6379, &u, &why) == 0) {
        long db = 0;
        if (u.user && *u.user) {
            why = "user names are not supported (use redis://:password@host)";
        } else if (u.path && *u.path) {
            char *e;
            errno = 0;
            db = strtol(u.path, &e, 10);
            if (*e || errno || db < 0 || db > INT_MAX || *u.path < '0' || *u.path > '9')
                why = "database must be a non-negative number";
        }
        if (!why) {
            c->redis.host = u.host, c->redis.port = u.port, c->redis.db = (int)db;
            c->redis.pass = u.pass;
            u.host = u.pass = NULL;
        }
        url_clear(&u);
    }
    if (why) w_problem(w, "expected redis://[:pass@]host[:port][/db]: %s", why);
    w_pop(w, mark);
}

static void walk_token(walker_t *w, json_t *v, sb_config_t *c)
{
    static const char *const keys[] = {"secret", NULL};
    if (!want_object(w, v, keys)) return;
    rd_str(w, v, "secret", &c->token.secret, NULLABLE | OPT, 1024);
}

/* Kafka's own rule: 1..249 of [A-Za-z0-9._-], not "." or "..". */
static bool kafka_topic_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 249 || strcmp(s, ".") == 0 || strcmp(s, "..") == 0) return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == '-'))
            return false;
    }
    return true;
}

static void walk_topics(walker_t *w, json_t *v, sb_config_t *c)
{
    static const char *const keys[] = {"interactions", "requests", "responses", "metrics",
                                       "alerts",       "dlq",      NULL};
    char **dst[] = {&c->topics.interactions, &c->topics.requests, &c->topics.responses,
                    &c->topics.metrics,      &c->topics.alerts,   &c->topics.dlq};
    if (!want_object(w, v, keys)) return;
    for (size_t i = 0; i < sizeof dst / sizeof dst[0]; i++) {
        if (rd_str(w, v, keys[i], dst[i], NONEMPTY, 249) <= 0) continue;
        if (!kafka_topic_valid(*dst[i])) {
            size_t mark = w_push(w, keys[i]);
            char q[96];
            w_problem(w, "%s is not a valid Kafka topic name (letters, digits, '.', '_', '-')",
                      quote(*dst[i], q, sizeof q));
            w_pop(w, mark);
            continue;
        }
        /* one topic per stream: a service reads back what it writes to a shared one (dead
         * letters in the interactions topic are read, refused and dead-lettered again) */
        for (size_t k = 0; k < i; k++) {
            if (*dst[k] && strcmp(*dst[k], *dst[i]) == 0 && kafka_topic_valid(*dst[k])) {
                size_t mark = w_push(w, keys[i]);
                char q[96];
                w_problem(w, "%s is already topics.%s; every stream needs its own topic",
                          quote(*dst[i], q, sizeof q), keys[k]);
                w_pop(w, mark);
                break;
            }
        }
    }
}

/* NULL when s is a valid MQTT subscription filter, else the reason. */
static const char *mqtt_filter_error(const char *s)
{
    if (!*s) return "must not be empty";
    for (const char *lvl = s;;) {
        const char *e = strchr(lvl, '/');
        size_t n = e ? (size_t)(e - lvl) : strlen(lvl);
        for (size_t i = 0; i < n; i++) {
            if (lvl[i] != '+' && lvl[i] != '#') continue;
            if (n != 1) return "'+' and '#' must fill a whole topic level";
            if (lvl[i] == '#' && e) return "'#' must be the last level";
        }
        if (!e) break;
        lvl = e + 1;
    }
    return NULL;
}

/* NULL when s is a publish topic template using only the allowed {placeholders}. */
static const char *template_error(const char *s, const char *const *allowed, char *why,
                                  size_t whylen)
{
    if (!*s) return "must not be empty";
    if (strpbrk(s, "+#")) return "a publish topic may not contain '+' or '#'";
    for (const char *p = s; (p = strpbrk(p, "{}"));) {
        if (*p == '}') return "unbalanced '}'";
        const char *e = strchr(p, '}');
        if (!e) return "unbalanced '{'";
        size_t n = (size_t)(e - p - 1);
        bool ok = false;
        for (size_t i = 0; allowed[i]; i++)
            ok |= n == strlen(allowed[i]) && strncmp(p + 1, allowed[i], n) == 0;
        if (!ok) {
            int m = snprintf(why, whylen,
                             "unknown placeholder {%.*s} (allowed:", (int)(n > 40 ? 40 : n), p + 1);
            for (size_t i = 0; allowed[i] && m > 0 && (size_t)m < whylen; i++)
                m += snprintf(why + m, whylen - (size_t)m, " {%s}", allowed[i]);
            if (m > 0 && (size_t)m < whylen) snprintf(why + m, whylen - (size_t)m, ")");
            return why;
        }
        p = e + 1;
    }
    return NULL;
}

static void filters(walker_t *w, json_t *v, const char *key, char ***out, size_t *n)
{
    json_t *a = json_object_get(v, key);
    size_t mark = w_push(w, key);
    if (!a) {
        w_problem(w, "required");
    } else if (!json_is_array(a)) {
        expected(w, "array of topic filters", a);
    } else {
        *out = calloc(json_array_size(a) + 1, sizeof **out);
        if (!*out) abort();
        size_t i;
        json_t *x;
        json_array_foreach(a, i, x)
        {
            size_t m2 = w_index(w, i);
            char *s = NULL;
            const char *why;
            if (str_value(w, x, &s, 0, 1024) > 0) {
                if ((why = mqtt_filter_error(s))) {
                    w_problem(w, "%s", why);
                    free(s);
                } else {
                    (*out)[(*n)++] = s;
                }
            }
            w_pop(w, m2);
        }
    }
    w_pop(w, mark);
}

/* One stream per topic, as for Kafka (walk_topics): the dispatcher subscribes to the
 * interaction filters and the aggregator to both lists, so a message on a topic that an
 * interaction and a response filter both match would reach the dispatcher as an event (and
 * be dead-lettered there when it is a response) and the aggregator as a response only (an
 * event's KPIs would be lost). Each such pair is a problem at the response filter. */
static void filters_apart(walker_t *w, const sb_config_t *c)
{
    const char *const *resp = (const char *const *)c->mqtt_topics.responses,
                      *const *inter = (const char *const *)c->mqtt_topics.interactions;
    for (size_t j = 0; j < c->mqtt_topics.n_responses; j++)
        for (size_t i = 0; i < c->mqtt_topics.n_interactions; i++) {
            if (!sb_mqtt_filters_overlap(resp[j], inter[i])) continue;
            size_t mark = w_push(w, "responses");
            w_index(w, j);
            char q1[96], q2[96];
            w_problem(w,
                      "%s overlaps mqtt_topics.interactions[%zu] %s: a message on a topic both "
                      "match would be read as an interaction event by the dispatcher and as a "
                      "response by the aggregator; every stream needs its own topics",
                      quote(resp[j], q1, sizeof q1), i, quote(inter[i], q2, sizeof q2));
            w_pop(w, mark);
        }
}

static void walk_mqtt_topics(walker_t *w, json_t *v, sb_config_t *c)
{
    static const char *const keys[] = {
        "interactions", "responses", "device_requests", "requests", "metrics", "alerts", NULL};
    static const char *const dev_ph[] = {"device_id", "customer_id", "channel", NULL};
    static const char *const req_ph[] = {"channel", "customer_id", NULL};
    static const char *const met_ph[] = {"metric", "window", "dimension", "value", NULL};
    static const char *const alr_ph[] = {"type", NULL};
    struct {
        const char *key;
        char **dst;
        const char *const *ph;
    } tpl[] = {{"device_requests", &c->mqtt_topics.device_requests, dev_ph},
               {"requests", &c->mqtt_topics.requests, req_ph},
               {"metrics", &c->mqtt_topics.metrics, met_ph},
               {"alerts", &c->mqtt_topics.alerts, alr_ph}};
    if (!want_object(w, v, keys)) return;
    size_t before = w->n_problems;
    filters(w, v, "interactions", &c->mqtt_topics.interactions, &c->mqtt_topics.n_interactions);
    filters(w, v, "responses", &c->mqtt_topics.responses, &c->mqtt_topics.n_responses);
    /* only once every filter is valid: the lists' indexes are then the file's */
    if (w->n_problems == before) filters_apart(w, c);
    for (size_t i = 0; i < sizeof tpl / sizeof tpl[0]; i++) {
        if (rd_str(w, v, tpl[i].key, tpl[i].dst, 0, 1024) <= 0) continue;
        char buf[256];
        const char *why = template_error(*tpl[i].dst, tpl[i].ph, buf, sizeof buf);
        if (why) {
            size_t mark = w_push(w, tpl[i].key);
            w_problem(w, "%s", why);
            w_pop(w, mark);
        }
    }
}

/* RFC 6901: "" or "/..." where every '~' is followed by '0' or '1'. */
static void walk_mapping(walker_t *w, json_t *v, sb_config_t *c)
{
    if (!json_is_object(v)) {
        expected(w, "object", v);
        return;
    }
    const char *k;
    json_t *x;
    json_object_foreach(v, k, x)
    {
        int f = sb_field_parse(k);
        if (f < 0) {
            unknown(w, k, "field", sb_field_names, SB_F__N);
            continue;
        }
        size_t mark = w_push(w, k);
        char q[96];
        if (str_value(w, x, &c->mapping[f], 0, 1024) > 0 && !sb_jsonptr_valid(c->mapping[f]))
            w_problem(w, "not a JSON Pointer (\"\" or starting with \"/\"): %s",
                      quote(c->mapping[f], q, sizeof q));
        w_pop(w, mark);
    }
    for (int f = 0; f < SB_F__N; f++)
        if (!c->mapping[f]) c->mapping[f] = xstrdup("");
}

static bool in_scale(const sb_scale_t *s, int v)
{
    return v >= s->min && v <= s->max;
}

static void walk_scale(walker_t *w, json_t *v, sb_kind_t k, sb_scale_t *s)
{
    static const char *const nps_keys[] = {"min", "max", NULL};
    static const char *const csat_keys[] = {"min", "max", "satisfied_min", NULL};
    static const char *const ces_keys[] = {"min", "max", "easy", "easy_max", "easy_min", NULL};
    const char *const *keys = k == SB_KIND_NPS    ? nps_keys
                              : k == SB_KIND_CSAT ? csat_keys
                                                  : ces_keys;
    size_t before = w->n_problems;
    if (!want_object(w, v, keys)) return;
    if (rd_int(w, v, "min", &s->min, 0, SB_SCORE_MAX) <= 0 ||
        rd_int(w, v, "max", &s->max, 0, SB_SCORE_MAX) <= 0)
        return;
    if (s->min >= s->max) {
        w_problem(w, "min (%d) must be below max (%d)", s->min, s->max);
        return;
    }
    if (k == SB_KIND_NPS && (s->min != 0 || s->max != 10)) {
        w_problem(w, "NPS is defined on 0..10, got %d..%d", s->min, s->max);
        return;
    }
    const char *names[2] = {NULL, NULL};
    int *vals[2] = {NULL, NULL};
    if (k == SB_KIND_CSAT) {
        names[0] = "satisfied_min", vals[0] = &s->satisfied_min;
    } else if (k == SB_KIND_CES) {
        json_t *e = json_object_get(v, "easy");
        size_t mark = w_push(w, "easy");
        char q[96];
        s->easy_low = true;
        if (e && !json_is_string(e))
            expected(w, "\"low\" or \"high\"", e);
        else if (e && strcmp(json_string_value(e), "high") == 0)
            s->easy_low = false;
        else if (e && strcmp(json_string_value(e), "low") != 0)
            w_problem(w, "must be \"low\" or \"high\", got %s",
                      quote(json_string_value(e), q, sizeof q));
        w_pop(w, mark);
        s->easy_max = s->min + 1, s->easy_min = s->max - 1;
        names[0] = "easy_max", vals[0] = &s->easy_max;
        names[1] = "easy_min", vals[1] = &s->easy_min;
    }
    for (int i = 0; i < 2 && names[i]; i++) {
        json_t *x = json_object_get(v, names[i]);
        if (!x && k == SB_KIND_CES) continue; /* derived default above */
        size_t mark = w_push(w, names[i]);
        if (!x) {
            w_problem(w, "required");
        } else if (!json_is_integer(x)) {
            expected(w, "integer", x);
        } else if (json_integer_value(x) < s->min || json_integer_value(x) > s->max) {
            w_problem(w, "must be within the scale %d..%d, got %" JSON_INTEGER_FORMAT, s->min,
                      s->max, json_integer_value(x));
        } else {
            *vals[i] = (int)json_integer_value(x);
        }
        w_pop(w, mark);
    }
    if (w->n_problems == before) w->scale_ok[k] = true;
}

static void walk_scales(walker_t *w, json_t *v, sb_config_t *c)
{
    static const char *const keys[] = {"csat", "ces", "nps", NULL};
    if (!want_object(w, v, keys)) return;
    for (int k = 0; k < SB_KIND__N; k++) {
        json_t *x = json_object_get(v, sb_kind_names[k]);
        if (!x) continue;
        size_t mark = w_push(w, sb_kind_names[k]);
        walk_scale(w, x, (sb_kind_t)k, &c->scales[k]);
        w_pop(w, mark);
    }
}

/* A plausible locale tag: 1..35 of [A-Za-z0-9_-], starting with a letter. */
static bool locale_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 35 || !((*s | 0x20) >= 'a' && (*s | 0x20) <= 'z')) return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '_'))
            return false;
    }
    return true;
}

static void walk_questions(walker_t *w, json_t *v, sb_config_t *c)
{
    static const char *const keys[] = {"csat", "ces", "nps", NULL};
    if (!want_object(w, v, keys)) return;
    for (int k = 0; k < SB_KIND__N; k++) {
        json_t *x = json_object_get(v, sb_kind_names[k]);
        if (!x) continue;
        size_t mark = w_push(w, sb_kind_names[k]);
        if (!json_is_object(x)) {
            expected(w, "object of locale: text", x);
        } else {
            sb_questions_t *q = &c->questions[k];
            q->text = calloc(json_object_size(x) + 1, sizeof *q->text);
            if (!q->text) abort();
            const char *loc;
            json_t *t;
            json_object_foreach(x, loc, t)
            {
                size_t m2 = w_push(w, loc);
                char *s = NULL;
                char qb[96];
                if (!locale_valid(loc)) {
                    w_problem(w, "not a locale tag such as \"en\" or \"zh-CN\": %s",
                              quote(loc, qb, sizeof qb));
                } else if (str_value(w, t, &s, NONEMPTY, QUESTION_MAX) > 0) {
                    /* the rule of sb_survey_request_decode, which reads the requests back
                     * (aggregator, dispatcher recovery): a text it refuses would make every
                     * request that carries it a dead letter */
                    if (!sb_text_no_controls(s, strlen(s), "\n\t")) {
                        w_problem(w, "may not contain control characters other than newline and "
                                     "tab: %s",
                                  quote(s, qb, sizeof qb));
                        free(s);
                    } else {
                        /* tags ignore case (sb_config_question): "EN" in the file is the
                         * built-in "en", replaced in its place, not a second text never
                         * chosen because the first one matches */
                        size_t at = 0;
                        while (at < q->n && strcasecmp(q->text[at].key, loc) != 0)
                            at++;
                        if (at < q->n) {
                            free(q->text[at].key), free(q->text[at].value);
                        } else {
                            q->n++;
                        }
                        q->text[at].key = xstrdup(loc);
                        q->text[at].value = s;
                    }
                }
                w_pop(w, m2);
            }
        }
        w_pop(w, mark);
    }
}

/* "HH:MM-HH:MM" -> minutes after midnight. */
static int quiet_parse(const char *s, int *start, int *end)
{
    int v[4];
    const char *p = s;
    for (int i = 0; i < 4; i++) {
        if (p[0] < '0' || p[0] > '9' || p[1] < '0' || p[1] > '9') return -1;
        v[i] = (p[0] - '0') * 10 + (p[1] - '0');
        p += 2;
        char sep = i == 3 ? '\0' : (i % 2 == 0 ? ':' : '-');
        if (*p != sep) return -1;
        if (sep) p++;
    }
    if (v[0] > 23 || v[2] > 23 || v[1] > 59 || v[3] > 59) return -1;
    *start = v[0] * 60 + v[1];
    *end = v[2] * 60 + v[3];
    return 0;
}

static void walk_journey(walker_t *w, json_t *v, sb_config_t *c, sb_journey_t *j)
{
    static const char *const keys[] = {"name",         "on",      "survey",      "delay", "expires",
                                       "remind_after", "channel", "quiet_hours", NULL};
    j->expires_ms = 7 * DAY_MS;
    if (!want_object(w, v, keys)) return;
    char q[96];
    if (rd_str(w, v, "name", &j->name, NONEMPTY | TOPICSAFE, SB_STR_MAX) > 0) {
        for (size_t i = 0; &c->journeys[i] != j; i++) {
            if (c->journeys[i].name && strcmp(c->journeys[i].name, j->name) == 0) {
                size_t mark = w_push(w, "name");
                w_problem(w, "duplicate journey name %s (also journeys[%zu])",
                          quote(j->name, q, sizeof q), i);
                w_pop(w, mark);
                break;
            }
        }
    }
    json_t *on = json_object_get(v, "on");
    size_t mark = w_push(w, "on");
    if (on && !json_is_object(on)) {
        expected(w, "object of field: value", on);
    } else if (on) {
        j->on = calloc(json_object_size(on) + 1, sizeof *j->on);
        if (!j->on) abort();
        const char *k;
        json_t *x;
        json_object_foreach(on, k, x)
        {
            int f = sb_field_parse(k);
            if (f < 0) {
                unknown(w, k, "field", sb_field_names, SB_F__N);
                continue;
            }
            size_t m2 = w_push(w, k);
            char *s = NULL;
            if (str_value(w, x, &s, NONEMPTY, SB_STR_MAX) > 0) {
                if (f == SB_F_TYPE && strcmp(s, "interaction.completed") != 0 &&
                    strcmp(s, "visit.completed") != 0) {
                    w_problem(w,
                              "only completion events start journeys "
                              "(\"interaction.completed\" or \"visit.completed\"), got %s",
                              quote(s, q, sizeof q));
                    free(s);
                } else {
                    j->on[j->n_on].field = (sb_field_t)f;
                    j->on[j->n_on++].value = s;
                }
            }
            w_pop(w, m2);
        }
    }
    w_pop(w, mark);

    char *kind = NULL;
    if (rd_str(w, v, "survey", &kind, 0, SB_STR_MAX) > 0) {
        int k = sb_kind_parse(kind);
        if (k < 0) {
            mark = w_push(w, "survey");
            w_problem(w, "must be \"csat\", \"ces\" or \"nps\", got %s", quote(kind, q, sizeof q));
            w_pop(w, mark);
        }
        j->survey = k < 0 ? SB_KIND_CSAT : (sb_kind_t)k;
    }
    free(kind);
    rd_dur(w, v, "delay", &j->delay_ms, 0, 365 * DAY_MS, true);
    bool have_exp = rd_dur(w, v, "expires", &j->expires_ms, 60000, 365 * DAY_MS, true) >= 0;
    if (rd_dur(w, v, "remind_after", &j->remind_after_ms, 0, 365 * DAY_MS, true) > 0 && have_exp &&
        j->remind_after_ms >= j->expires_ms) {
        char e[32];
        sb_duration_format(j->expires_ms, e, sizeof e);
        mark = w_push(w, "remind_after");
        w_problem(w, "must be shorter than expires (%s)", e);
        w_pop(w, mark);
    }
    rd_str(w, v, "channel", &j->channel, OPT | NULLABLE | TOPICSAFE | NONEMPTY, SB_STR_MAX);
    char *qh = NULL;
    if (rd_str(w, v, "quiet_hours", &qh, OPT | NULLABLE, 64) > 0) {
        mark = w_push(w, "quiet_hours");
        if (quiet_parse(qh, &j->quiet_start_min, &j->quiet_end_min) < 0)
            w_problem(w, "expected \"HH:MM-HH:MM\", got %s", quote(qh, q, sizeof q));
        else if (j->quiet_start_min == j->quiet_end_min)
            w_problem(w, "start and end are equal: %s", quote(qh, q, sizeof q));
        else
            j->has_quiet = true;
        w_pop(w, mark);
    }
    free(qh);
}

static void walk_journeys(walker_t *w, json_t *v, sb_config_t *c)
{
    if (!json_is_array(v)) {
        expected(w, "array", v);
        return;
    }
    size_t n = json_array_size(v);
    if (n > JOURNEYS_MAX) {
        w_problem(w, "at most %d journeys, got %zu", JOURNEYS_MAX, n);
        return;
    }
    c->journeys = calloc(n ? n : 1, sizeof *c->journeys);
    if (!c->journeys) abort();
    c->n_journeys = n;
    for (size_t i = 0; i < n; i++) {
        size_t mark = w_index(w, i);
        walk_journey(w, json_array_get(v, i), c, &c->journeys[i]);
        w_pop(w, mark);
    }
}

static void walk_fatigue(walker_t *w, json_t *v, sb_config_t *c)
{
    static const char *const keys[] = {"min_gap", "min_gap_by_kind", "max_per_30d", NULL};
    for (int k = 0; k < SB_KIND__N; k++)
        c->fatigue.min_gap_by_kind_ms[k] = -1;
    if (!want_object(w, v, keys)) return;
    rd_dur(w, v, "min_gap", &c->fatigue.min_gap_ms, 0, 365 * DAY_MS, false);
    rd_int(w, v, "max_per_30d", &c->fatigue.max_per_30d, 0, 1000);
    json_t *bk = json_object_get(v, "min_gap_by_kind");
    size_t mark = w_push(w, "min_gap_by_kind");
    if (bk && !json_is_object(bk)) {
        expected(w, "object of kind: duration", bk);
    } else if (bk) {
        const char *k;
        json_t *x;
        json_object_foreach(bk, k, x)
        {
            int kind = sb_kind_parse(k);
            if (kind < 0) {
                unknown(w, k, "survey kind", sb_kind_names, SB_KIND__N);
                continue;
            }
            size_t m2 = w_push(w, k);
            dur_value(w, x, &c->fatigue.min_gap_by_kind_ms[kind], 0, 365 * DAY_MS, false);
            w_pop(w, m2);
        }
    }
    w_pop(w, mark);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static void walk_windows(walker_t *w, json_t *v, sb_config_t *c)
{
    size_t cap = sizeof c->windows_ms / sizeof c->windows_ms[0];
    if (!json_is_array(v)) {
        expected(w, "array of durations", v);
        return;
    }
    size_t n = json_array_size(v);
    if (n < 1 || n > cap) {
        w_problem(w, "expected 1 to %zu windows, got %zu", cap, n);
        return;
    }
    bool ok = true;
    for (size_t i = 0; i < n; i++) {
        size_t mark = w_index(w, i);
        int64_t ms;
        int rc = dur_value(w, json_array_get(v, i), &ms, 60000, 366 * DAY_MS, false);
        if (rc > 0 && ms % 60000 != 0) {
            char d[32];
            sb_duration_format(ms, d, sizeof d);
            w_problem(w, "must be a whole number of minutes, got %s", d);
            rc = -1;
        }
        if (rc > 0)
            c->windows_ms[i] = ms;
        else
            ok = false;
        w_pop(w, mark);
    }
    if (!ok) return;
    qsort(c->windows_ms, n, sizeof c->windows_ms[0], cmp_i64);
    c->n_windows = n;
    for (size_t i = 1; i < n; i++) {
        if (c->windows_ms[i] == c->windows_ms[i - 1]) {
            char d[32];
            sb_duration_format(c->windows_ms[i], d, sizeof d);
            w_problem(w, "duplicate window %s", d);
        }
    }
}

static void walk_lateness(walker_t *w, json_t *v, sb_config_t *c)
{
    dur_value(w, v, &c->allowed_lateness_ms, 0, 7 * DAY_MS, false);
}

static void walk_dimensions(walker_t *w, json_t *v, sb_config_t *c)
{
    if (!json_is_array(v)) {
        expected(w, "array of dimension names", v);
        return;
    }
    size_t i;
    json_t *x;
    json_array_foreach(v, i, x)
    {
        size_t mark = w_index(w, i);
        char q[96];
        if (!json_is_string(x)) {
            expected(w, "string", x);
        } else {
            const char *s = json_string_value(x);
            int d = sb_dim_parse(s);
            bool dup = false;
            for (size_t k = 0; k < c->n_dimensions; k++)
                dup |= (int)c->dimensions[k] == d;
            if (d == SB_DIM_ALL) {
                w_problem(w, "\"all\" is always present and must not be listed");
            } else if (d < 0) {
                const char *sg = suggest(s, sb_dim_names + 1, SB_DIM__N - 1);
                w_problem(w, "unknown dimension %s%s%s%s", quote(s, q, sizeof q),
                          sg ? " (did you mean \"" : "", sg ? sg : "", sg ? "\"?)" : "");
            } else if (dup) {
                w_problem(w, "duplicate dimension %s", quote(s, q, sizeof q));
            } else {
                c->dimensions[c->n_dimensions++] = (sb_dim_t)d;
            }
        }
        w_pop(w, mark);
    }
}

static void walk_max_dim(walker_t *w, json_t *v, sb_config_t *c)
{
    int_value(w, v, &c->max_dimension_values, 1, 10000000);
}

static void walk_alerts(walker_t *w, json_t *v, sb_config_t *c)
{
    static const char *const keys[] = {"nps_max", "csat_max", "ces_hard_min", "ces_hard_max", NULL};
    static const sb_kind_t kinds[] = {SB_KIND_NPS, SB_KIND_CSAT, SB_KIND_CES, SB_KIND_CES};
    int *dst[] = {&c->alerts.nps_max, &c->alerts.csat_max, &c->alerts.ces_hard_min,
                  &c->alerts.ces_hard_max};
    if (!want_object(w, v, keys)) return;
    for (size_t i = 0; i < 4; i++) {
        if (rd_int(w, v, keys[i], dst[i], 0, SB_SCORE_MAX) <= 0) continue;
        const sb_scale_t *s = &c->scales[kinds[i]];
        if (w->scale_ok[kinds[i]] && !in_scale(s, *dst[i])) {
            size_t mark = w_push(w, keys[i]);
            w_problem(w, "must be within scales.%s (%d..%d), got %d", sb_kind_names[kinds[i]],
                      s->min, s->max, *dst[i]);
            w_pop(w, mark);
        }
    }
}

static void walk_publish(walker_t *w, json_t *v, sb_config_t *c)
{
    static const char *const keys[] = {"interval_ms", "republish_s", NULL};
    if (!want_object(w, v, keys)) return;
    rd_int(w, v, "interval_ms", &c->publish.interval_ms, 10, 3600000);
    rd_int(w, v, "republish_s", &c->publish.republish_s, 0, 86400);
}

static void walk_http(walker_t *w, json_t *v, sb_config_t *c)
{
    static const char *const keys[] = {"dispatcher", "aggregator", "web", "web_root", NULL};
    char **dst[] = {&c->http.dispatcher, &c->http.aggregator, &c->http.web};
    if (!want_object(w, v, keys)) return;
    for (size_t i = 0; i < 3; i++) {
        if (rd_str(w, v, keys[i], dst[i], 0, SB_STR_MAX) <= 0 || !**dst[i]) continue;
        char *host = NULL;
        int port = 0;
        const char *why;
        /* the listeners are IPv4 only (sb_http_start) */
        if (hostport_parse(*dst[i], strlen(*dst[i]), true, 0, &host, &port, &why) < 0 ||
            (*dst[i][0] == '[' && (why = "IPv6 addresses are not supported; use an IPv4 "
                                         "address or a host name"))) {
            size_t mark = w_push(w, keys[i]);
            w_problem(w, "expected \"host:port\" or \"\" (off): %s", why);
            w_pop(w, mark);
        }
        free(host);
    }
    rd_str(w, v, "web_root", &c->http.web_root, NONEMPTY, 4096);
}

static void walk_tuning(walker_t *w, json_t *v, sb_config_t *c)
{
    static const char *const keys[] = {"batch", "batch_ms", "lease", NULL};
    if (!want_object(w, v, keys)) return;
    rd_int(w, v, "batch", &c->tuning.batch, 1, 100000);
    rd_int(w, v, "batch_ms", &c->tuning.batch_ms, 1, 60000);
    rd_dur(w, v, "lease", &c->tuning.lease_ms, 1000, 3600000, false);
}

static void walk_log(walker_t *w, json_t *v, sb_config_t *c)
{
    static const char *const keys[] = {"level", NULL};
    if (!want_object(w, v, keys)) return;
    json_t *x = json_object_get(v, "level");
    size_t mark = w_push(w, "level");
    char q[96];
    if (!x) {
        w_problem(w, "required");
    } else if (!json_is_string(x)) {
        expected(w, "string", x);
    } else if ((c->log_level = sb_log_level_parse(json_string_value(x))) < 0) {
        w_problem(w, "must be debug, info, warn, error or off, got %s",
                  quote(json_string_value(x), q, sizeof q));
        c->log_level = SB_LOG_INFO;
    }
    w_pop(w, mark);
}

static void walk_dev(walker_t *w, json_t *v, sb_config_t *c)
{
    if (!json_is_boolean(v))
        expected(w, "boolean", v);
    else
        c->dev = json_is_true(v);
}

/* Top-level sections, in walking order (scales before alerts, which checks against them). */
static const struct section {
    const char *key;
    void (*walk)(walker_t *, json_t *, sb_config_t *);
} sections[] = {
    {"kafka", walk_kafka},
    {"mqtt", walk_mqtt},
    {"redis", walk_redis},
    {"token", walk_token},
    {"topics", walk_topics},
    {"mqtt_topics", walk_mqtt_topics},
    {"mapping", walk_mapping},
    {"scales", walk_scales},
    {"questions", walk_questions},
    {"journeys", walk_journeys},
    {"fatigue", walk_fatigue},
    {"windows", walk_windows},
    {"allowed_lateness", walk_lateness},
    {"dimensions", walk_dimensions},
    {"max_dimension_values", walk_max_dim},
    {"alerts", walk_alerts},
    {"publish", walk_publish},
    {"http", walk_http},
    {"tuning", walk_tuning},
    {"log", walk_log},
    {"dev", walk_dev},
};
#define N_SECTIONS (sizeof sections / sizeof sections[0])

/* Walks the merged document into a new config; NULL when any problem was reported. With
 * check_secret, also applies the token rules (required outside dev). */
static sb_config_t *walk(json_t *doc, origin_t *orig, size_t n_orig, sb_problems_t *probs,
                         bool check_secret)
{
    walker_t w = {.probs = probs, .orig = orig, .n_orig = n_orig};
    sb_config_t *c = calloc(1, sizeof *c);
    if (!c) abort();
    c->log_level = SB_LOG_INFO;
    if (!json_is_object(doc)) {
        w_problem(&w, "expected a JSON object at the top level, got %s", jtype(doc));
        goto done;
    }
    const char *names[N_SECTIONS + 1];
    for (size_t i = 0; i < N_SECTIONS; i++)
        names[i] = sections[i].key;
    names[N_SECTIONS] = NULL;
    want_object(&w, doc, names);
    for (size_t i = 0; i < N_SECTIONS; i++) {
        json_t *v = json_object_get(doc, sections[i].key);
        size_t mark = w_push(&w, sections[i].key);
        if (v)
            sections[i].walk(&w, v, c);
        else
            w_problem(&w, "required");
        w_pop(&w, mark);
    }
    if (check_secret) {
        size_t mark = w_push(&w, "token");
        w_push(&w, "secret");
        if (c->token.secret && *c->token.secret) {
            if (!c->dev && strcmp(c->token.secret, DEV_SECRET) == 0)
                w_problem(&w, "the development secret may only be used with \"dev\": true");
        } else if (c->dev) {
            free(c->token.secret);
            c->token.secret = xstrdup(DEV_SECRET);
        } else {
            w_problem(&w, "required unless \"dev\" is true (set SURVEYBUS_TOKEN_SECRET)");
        }
        w_pop(&w, mark);
    }
done:
    free(w.path);
    if (w.n_problems) {
        sb_config_free(c);
        return NULL;
    }
    return c;
}

/* ---------------------------------------------------------------- public: new, free */

sb_config_t *sb_config_new(void)
{
    sb_problems_t probs = {0};
    json_t *doc = defaults_doc();
    sb_config_t *c = walk(doc, NULL, 0, &probs, false);
    json_decref(doc);
    if (!c) abort(); /* the built-in defaults are valid */
    sb_problems_clear(&probs);
    return c;
}

void sb_config_free(sb_config_t *c)
{
    if (!c) return;
    free(c->kafka.brokers);
    free(c->kafka.group);
    for (size_t i = 0; i < c->kafka.n_properties; i++)
        free(c->kafka.properties[i].key), free(c->kafka.properties[i].value);
    free(c->kafka.properties);
    free(c->mqtt.url), free(c->mqtt.client_id), free(c->mqtt.host);
    free(c->mqtt.user), free(c->mqtt.pass);
    free(c->redis.url), free(c->redis.prefix), free(c->redis.host), free(c->redis.pass);
    free(c->token.secret);
    free(c->topics.interactions), free(c->topics.requests), free(c->topics.responses);
    free(c->topics.metrics), free(c->topics.alerts), free(c->topics.dlq);
    for (size_t i = 0; i < c->mqtt_topics.n_interactions; i++)
        free(c->mqtt_topics.interactions[i]);
    free(c->mqtt_topics.interactions);
    for (size_t i = 0; i < c->mqtt_topics.n_responses; i++)
        free(c->mqtt_topics.responses[i]);
    free(c->mqtt_topics.responses);
    free(c->mqtt_topics.device_requests), free(c->mqtt_topics.requests);
    free(c->mqtt_topics.metrics), free(c->mqtt_topics.alerts);
    for (int f = 0; f < SB_F__N; f++)
        free(c->mapping[f]);
    for (int k = 0; k < SB_KIND__N; k++) {
        for (size_t i = 0; i < c->questions[k].n; i++)
            free(c->questions[k].text[i].key), free(c->questions[k].text[i].value);
        free(c->questions[k].text);
    }
    for (size_t i = 0; i < c->n_journeys; i++) {
        sb_journey_t *j = &c->journeys[i];
        free(j->name), free(j->channel);
        for (size_t m = 0; m < j->n_on; m++)
            free(j->on[m].value);
        free(j->on);
    }
    free(c->journeys);
    free(c->http.dispatcher), free(c->http.aggregator), free(c->http.web);
    free(c->http.web_root);
    free(c);
}

/* ---------------------------------------------------------------- loading */

/* Parses JSON text; on failure adds the one problem with line and column. */
static json_t *parse_text(const char *buf, size_t len, sb_problems_t *probs)
{
    json_error_t e;
    if (len > FILE_MAX) {
        sb_problems_add(probs, "config too large (%zu bytes, at most %d)", len, FILE_MAX);
        return NULL;
    }
    json_t *doc = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &e);
    if (!doc)
        sb_problems_add(probs, "invalid JSON at line %d, column %d: %s", e.line, e.column, e.text);
    return doc;
}

static json_t *read_file(const char *path, sb_problems_t *probs)
{
    char *buf = NULL;
    size_t len = 0, cap = 0;
    json_t *doc = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        sb_problems_add(probs, "cannot open config file: %s", strerror(errno));
        return NULL;
    }
    for (;;) {
        if (len == cap) {
            cap = cap ? cap * 2 : 8192;
            char *b = realloc(buf, cap);
            if (!b) abort();
            buf = b;
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0) break;
        if (len > FILE_MAX) break;
    }
    if (ferror(f)) {
        sb_problems_add(probs, "cannot read config file: %s", strerror(errno));
        goto fail;
    }
    doc = parse_text(buf, len, probs);
fail:
    fclose(f);
    free(buf);
    return doc;
}

typedef struct origins {
    origin_t *v;
    size_t n, cap;
} origins_t;

static void origins_add(origins_t *o, char *path, const char *source)
{
    if (o->n == o->cap) {
        o->cap = o->cap ? o->cap * 2 : 8;
        origin_t *v = realloc(o->v, o->cap * sizeof *v);
        if (!v) abort();
        o->v = v;
    }
    o->v[o->n].path = path;
    o->v[o->n++].source = source;
}

static void origins_free(origins_t *o)
{
    for (size_t i = 0; i < o->n; i++)
        free(o->v[i].path);
    free(o->v);
}

/* Stores value (reference stolen) at the dotted path ("a.b.c", "journeys[0].delay" or
 * "journeys.0.delay") inside doc, creating missing objects; objects merge into objects. A
 * run of segments that names an existing key ("mapping.kpi.transfers") is taken whole.
 * Returns 0 and the canonical path in *canon (caller frees), or -1 and the reason. */
static int set_path(json_t *doc, const char *path, json_t *value, char **canon, char *why,
                    size_t whylen)
{
    enum { MAXSEG = 64 };
    struct {
        const char *s;
        size_t n;
        long idx; /* >= 0: "[idx]" */
    } seg[MAXSEG];
    size_t nseg = 0;
    walker_t cp = {0}; /* only its path buffer is used */
    int rc = -1;
    if (!sb_utf8_valid(path, strlen(path))) goto bad_path;
    for (const char *p = path; *p;) {
        if (nseg == MAXSEG) goto bad_path;
        if (*p == '[') {
            char *e;
            errno = 0;
            long i = strtol(p + 1, &e, 10);
            if (e == p + 1 || *e != ']' || i < 0 || errno) goto bad_path;
            seg[nseg].s = NULL, seg[nseg].n = 0, seg[nseg++].idx = i;
            p = e + 1;
        } else {
            size_t n = strcspn(p, ".[");
            if (n == 0) goto bad_path;
            seg[nseg].s = p, seg[nseg].n = n, seg[nseg++].idx = -1;
            p += n;
        }
        if (*p == '.') {
            p++;
            if (!*p || *p == '.' || *p == '[') goto bad_path;
        } else if (*p && *p != '[') {
            goto bad_path;
        }
    }
    if (nseg == 0) goto bad_path;

    json_t *cur = doc;
    for (size_t i = 0; i < nseg;) {
        if (json_is_object(cur)) {
            if (seg[i].idx >= 0) {
                snprintf(why, whylen, "%s is an object, not an array",
                         cp.len ? cp.path : "the document");
                goto out;
            }
            size_t take = 1;
            for (size_t k = nseg - i; k > 1; k--) { /* longest existing dotted key */
                bool keys = true;
                for (size_t m = i; m < i + k; m++)
                    keys &= seg[m].idx < 0;
                if (!keys) continue;
                char *joined =
                    xstrndup(seg[i].s, (size_t)(seg[i + k - 1].s + seg[i + k - 1].n - seg[i].s));
                bool found = json_object_get(cur, joined) != NULL;
                free(joined);
                if (found) {
                    take = k;
                    break;
                }
            }
            char *key =
                xstrndup(seg[i].s, (size_t)(seg[i + take - 1].s + seg[i + take - 1].n - seg[i].s));
            w_push(&cp, key);
            i += take;
            json_t *next = json_object_get(cur, key);
            if (i == nseg) {
                if (next && json_is_object(next) && json_is_object(value)) {
                    merge(next, value);
                    json_decref(value);
                } else {
                    json_object_set_new(cur, key, value);
                }
                value = NULL;
            } else if (!next) {
                next = json_object();
                json_object_set_new(cur, key, next);
            }
            free(key);
            cur = next;
        } else if (json_is_array(cur)) {
            long idx = seg[i].idx;
            if (idx < 0) {
                char *e;
                char *t = xstrndup(seg[i].s, seg[i].n);
                idx = strtol(t, &e, 10);
                if (*e || *t < '0' || *t > '9') idx = -1;
                free(t);
            }
            size_t size = json_array_size(cur);
            if (idx < 0 || (size_t)idx > size) {
                snprintf(why, whylen, "%s has %zu elements; expected an index 0..%zu", cp.path,
                         size, size);
                goto out;
            }
            w_index(&cp, (size_t)idx);
            i++;
            json_t *next = json_array_get(cur, (size_t)idx);
            if (i == nseg) {
                if (next && json_is_object(next) && json_is_object(value)) {
                    merge(next, value);
                    json_decref(value);
                } else if (next) {
                    json_array_set_new(cur, (size_t)idx, value);
                } else {
                    json_array_append_new(cur, value);
                }
                value = NULL;
            } else if (!next) {
                next = json_object();
                json_array_append_new(cur, next);
            }
            cur = next;
        } else {
            snprintf(why, whylen, "%s is %s %s, not an object", cp.path,
                     json_is_integer(cur) || json_is_array(cur) || json_is_object(cur) ? "an" : "a",
                     jtype(cur));
            goto out;
        }
    }
    *canon = cp.path;
    cp.path = NULL;
    rc = 0;
    goto out;
bad_path:
    snprintf(why, whylen, "malformed path (expected a.b.c or a[0].b)");
out:
    json_decref(value);
    free(cp.path);
    return rc;
}

static const struct {
    const char *var, *path;
} env_map[] = {
    {"SURVEYBUS_KAFKA_BROKERS", "kafka.brokers"}, {"SURVEYBUS_MQTT_URL", "mqtt.url"},
    {"SURVEYBUS_REDIS_URL", "redis.url"},         {"SURVEYBUS_TOKEN_SECRET", "token.secret"},
    {"SURVEYBUS_LOG_LEVEL", "log.level"},
};

sb_config_t *sb_config_load(const char *path, const char *const *overrides, size_t n_overrides,
                            sb_problems_t *probs)
{
    sb_problems_t local = {0};
    sb_problems_t *pr = probs ? probs : &local;
    size_t before = pr->n;
    origins_t orig = {0};
    sb_config_t *c = NULL;
    json_t *doc = defaults_doc();
    char why[256];

    if (path) {
        json_t *f = read_file(path, pr);
        if (!f) goto fail;
        if (!json_is_object(f)) {
            sb_problems_add(pr, "expected a JSON object at the top level, got %s", jtype(f));
            json_decref(f);
            goto fail;
        }
        merge(doc, f);
        json_decref(f);
    }
    for (size_t i = 0; i < sizeof env_map / sizeof env_map[0]; i++) {
        const char *s = getenv(env_map[i].var);
        if (!s) continue;
        json_t *v = json_string(s);
        char *canon;
        if (!v)
            sb_problems_add(pr, "%s: not valid UTF-8", env_map[i].var);
        else if (set_path(doc, env_map[i].path, v, &canon, why, sizeof why) < 0)
            sb_problems_add(pr, "%s: %s", env_map[i].var, why);
        else
            origins_add(&orig, canon, env_map[i].var);
    }
    for (size_t i = 0; i < n_overrides; i++) {
        const char *o = overrides[i], *eq = strchr(o, '=');
        if (!eq) {
            sb_problems_add(pr, "override %.*s: expected path=value", 64, o);
            continue;
        }
        json_error_t e;
        json_t *v = json_loads(eq + 1, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &e);
        if (!v) v = json_string(eq + 1);
        char *p = xstrndup(o, (size_t)(eq - o)), *canon;
        if (!v)
            sb_problems_add(pr, "override %.*s: value is not valid UTF-8", 64, p);
        else if (set_path(doc, p, v, &canon, why, sizeof why) < 0)
            sb_problems_add(pr, "override %.*s: %s", 64, p, why);
        else
            origins_add(&orig, canon, "override");
        free(p);
    }
    c = walk(doc, orig.v, orig.n, pr, true);
    if (c && pr->n > before) {
        sb_config_free(c);
        c = NULL;
    }
fail:
    json_decref(doc);
    origins_free(&orig);
    sb_problems_clear(&local);
    return c;
}

sb_config_t *sb_config_load_string(const char *json, size_t len, sb_problems_t *probs)
{
    sb_problems_t local = {0};
    sb_problems_t *pr = probs ? probs : &local;
    sb_config_t *c = NULL;
    json_t *doc = defaults_doc();
    json_t *t = parse_text(json, len, pr);
    if (!t) goto fail;
    if (!json_is_object(t)) {
        sb_problems_add(pr, "expected a JSON object at the top level, got %s", jtype(t));
        json_decref(t);
        goto fail;
    }
    merge(doc, t);
    json_decref(t);
    c = walk(doc, NULL, 0, pr, true);
fail:
    json_decref(doc);
    sb_problems_clear(&local);
    return c;
}

/* ---------------------------------------------------------------- dump and lookups */

static json_t *jstr(const char *s)
{
    return s ? json_string(s) : json_null();
}

static json_t *jdur(int64_t ms)
{
    char b[32];
    sb_duration_format(ms, b, sizeof b);
    return json_string(b);
}

static json_t *jstrs(char *const *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, jstr(v[i]));
    return a;
}

static bool secret_key(const char *k)
{
    return strcasestr(k, "password") || strcasestr(k, "secret");
}

char *sb_config_dump(const sb_config_t *c)
{
    json_t *d = json_object(), *o, *p;
    char *s;

    p = json_object();
    for (size_t i = 0; i < c->kafka.n_properties; i++)
        json_object_set_new(p, c->kafka.properties[i].key,
                            json_string(secret_key(c->kafka.properties[i].key)
                                            ? "***"
                                            : c->kafka.properties[i].value));
    json_object_set_new(d, "kafka",
                        json_pack("{s:s,s:o?,s:o}", "brokers",
                                  c->kafka.brokers ? c->kafka.brokers : "", "group",
                                  jstr(c->kafka.group), "properties", p));
    s = url_masked(c->mqtt.url ? c->mqtt.url : "");
    json_object_set_new(d, "mqtt",
                        json_pack("{s:s,s:o,s:i}", "url", s, "client_id", jstr(c->mqtt.client_id),
                                  "qos", c->mqtt.qos));
    free(s);
    s = url_masked(c->redis.url ? c->redis.url : "");
    json_object_set_new(d, "redis",
                        json_pack("{s:s,s:o}", "url", s, "prefix", jstr(c->redis.prefix)));
    free(s);
    json_object_set_new(
        d, "token",
        json_pack("{s:o}", "secret", c->token.secret ? json_string("***") : json_null()));
    json_object_set_new(d, "topics",
                        json_pack("{s:o,s:o,s:o,s:o,s:o,s:o}", "interactions",
                                  jstr(c->topics.interactions), "requests",
                                  jstr(c->topics.requests), "responses", jstr(c->topics.responses),
                                  "metrics", jstr(c->topics.metrics), "alerts",
                                  jstr(c->topics.alerts), "dlq", jstr(c->topics.dlq)));
    json_object_set_new(
        d, "mqtt_topics",
        json_pack("{s:o,s:o,s:o,s:o,s:o,s:o}", "interactions",
                  jstrs(c->mqtt_topics.interactions, c->mqtt_topics.n_interactions), "responses",
                  jstrs(c->mqtt_topics.responses, c->mqtt_topics.n_responses), "device_requests",
                  jstr(c->mqtt_topics.device_requests), "requests", jstr(c->mqtt_topics.requests),
                  "metrics", jstr(c->mqtt_topics.metrics), "alerts", jstr(c->mqtt_topics.alerts)));
    o = json_object();
    for (int f = 0; f < SB_F__N; f++)
        json_object_set_new(o, sb_field_names[f], json_string(c->mapping[f] ? c->mapping[f] : ""));
    json_object_set_new(d, "mapping", o);

    o = json_object();
    for (int k = 0; k < SB_KIND__N; k++) {
        const sb_scale_t *sc = &c->scales[k];
        json_t *x = json_pack("{s:i,s:i}", "min", sc->min, "max", sc->max);
        if (k == SB_KIND_CSAT)
            json_object_set_new(x, "satisfied_min", json_integer(sc->satisfied_min));
        if (k == SB_KIND_CES) {
            json_object_set_new(x, "easy", json_string(sc->easy_low ? "low" : "high"));
            json_object_set_new(x, "easy_max", json_integer(sc->easy_max));
            json_object_set_new(x, "easy_min", json_integer(sc->easy_min));
        }
        json_object_set_new(o, sb_kind_names[k], x);
    }
    json_object_set_new(d, "scales", o);

    o = json_object();
    for (int k = 0; k < SB_KIND__N; k++) {
        json_t *x = json_object();
        for (size_t i = 0; i < c->questions[k].n; i++)
            json_object_set_new(x, c->questions[k].text[i].key,
                                json_string(c->questions[k].text[i].value));
        json_object_set_new(o, sb_kind_names[k], x);
    }
    json_object_set_new(d, "questions", o);

    json_t *a = json_array();
    for (size_t i = 0; i < c->n_journeys; i++) {
        const sb_journey_t *j = &c->journeys[i];
        json_t *on = json_object(), *qh = json_null();
        for (size_t m = 0; m < j->n_on; m++)
            json_object_set_new(on, sb_field_names[j->on[m].field], jstr(j->on[m].value));
        if (j->has_quiet) {
            char b[16];
            snprintf(b, sizeof b, "%02d:%02d-%02d:%02d", j->quiet_start_min / 60 % 100,
                     j->quiet_start_min % 60, j->quiet_end_min / 60 % 100, j->quiet_end_min % 60);
            json_decref(qh);
            qh = json_string(b);
        }
        json_array_append_new(
            a, json_pack("{s:o,s:o,s:s,s:o,s:o,s:o,s:o,s:o}", "name", jstr(j->name), "on", on,
                         "survey", sb_kind_names[j->survey % SB_KIND__N], "delay",
                         jdur(j->delay_ms), "expires", jdur(j->expires_ms), "remind_after",
                         jdur(j->remind_after_ms), "channel", jstr(j->channel), "quiet_hours", qh));
    }
    json_object_set_new(d, "journeys", a);

    o = json_object();
    for (int k = 0; k < SB_KIND__N; k++)
        if (c->fatigue.min_gap_by_kind_ms[k] >= 0)
            json_object_set_new(o, sb_kind_names[k], jdur(c->fatigue.min_gap_by_kind_ms[k]));
    json_object_set_new(d, "fatigue",
                        json_pack("{s:o,s:o,s:i}", "min_gap", jdur(c->fatigue.min_gap_ms),
                                  "min_gap_by_kind", o, "max_per_30d", c->fatigue.max_per_30d));
    a = json_array();
    for (size_t i = 0; i < c->n_windows; i++)
        json_array_append_new(a, jdur(c->windows_ms[i]));
    json_object_set_new(d, "windows", a);
    json_object_set_new(d, "allowed_lateness", jdur(c->allowed_lateness_ms));
    a = json_array();
    for (size_t i = 0; i < c->n_dimensions; i++)
        json_array_append_new(a, json_string(sb_dim_names[c->dimensions[i] % SB_DIM__N]));
    json_object_set_new(d, "dimensions", a);
    json_object_set_new(d, "max_dimension_values", json_integer(c->max_dimension_values));
    json_object_set_new(d, "alerts",
                        json_pack("{s:i,s:i,s:i,s:i}", "nps_max", c->alerts.nps_max, "csat_max",
                                  c->alerts.csat_max, "ces_hard_min", c->alerts.ces_hard_min,
                                  "ces_hard_max", c->alerts.ces_hard_max));
    json_object_set_new(d, "publish",
                        json_pack("{s:i,s:i}", "interval_ms", c->publish.interval_ms, "republish_s",
                                  c->publish.republish_s));
    json_object_set_new(d, "http",
                        json_pack("{s:o,s:o,s:o,s:o}", "dispatcher", jstr(c->http.dispatcher),
                                  "aggregator", jstr(c->http.aggregator), "web", jstr(c->http.web),
                                  "web_root", jstr(c->http.web_root)));
    json_object_set_new(d, "tuning",
                        json_pack("{s:i,s:i,s:o}", "batch", c->tuning.batch, "batch_ms",
                                  c->tuning.batch_ms, "lease", jdur(c->tuning.lease_ms)));
    int lv = c->log_level >= 0 && c->log_level <= SB_LOG_OFF ? c->log_level : SB_LOG_INFO;
    json_object_set_new(d, "log", json_pack("{s:s}", "level", log_names[lv]));
    json_object_set_new(d, "dev", json_boolean(c->dev));

    s = json_dumps(d, JSON_INDENT(2));
    json_decref(d);
    if (!s) abort();
    return s;
}

const sb_journey_t *sb_config_journey(const sb_config_t *cfg, const char *name)
{
    for (size_t i = 0; name && i < cfg->n_journeys; i++)
        if (cfg->journeys[i].name && strcmp(cfg->journeys[i].name, name) == 0)
            return &cfg->journeys[i];
    return NULL;
}

/* Length of the language subtag of a locale ("zh" of "zh-CN"). */
static size_t lang_len(const char *loc)
{
    return strcspn(loc, "-_");
}

const char *sb_config_question(const sb_config_t *cfg, sb_kind_t kind, const char *locale)
{
    if ((unsigned)kind >= SB_KIND__N) return "";
    const sb_questions_t *q = &cfg->questions[kind];
    if (q->n == 0) return "";
    if (locale && *locale) {
        size_t ll = lang_len(locale);
        for (size_t i = 0; i < q->n; i++) /* exact (tags are case-insensitive) */
            if (strcasecmp(q->text[i].key, locale) == 0) return q->text[i].value;
        for (size_t i = 0; i < q->n; i++) /* the bare language: "zh" for "zh-TW" */
            if (strlen(q->text[i].key) == ll && strncasecmp(q->text[i].key, locale, ll) == 0)
                return q->text[i].value;
        for (size_t i = 0; i < q->n; i++) /* same language, other region: "zh-CN" */
            if (lang_len(q->text[i].key) == ll && strncasecmp(q->text[i].key, locale, ll) == 0)
                return q->text[i].value;
    }
    for (size_t i = 0; i < q->n; i++)
        if (strcasecmp(q->text[i].key, "en") == 0) return q->text[i].value;
    return q->text[0].value;
}
