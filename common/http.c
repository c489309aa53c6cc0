/* /healthz and /metrics over libmicrohttpd: see http.h. */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "store.h"
#include "util.h"

const double sb_http_lat_bounds_s[SB_HTTP_LAT_BUCKETS] = {0.001, 0.0025, 0.005, 0.01, 0.025,
                                                            0.05,  0.1,    0.25,  1,    10};

void sb_http_latency_observe(sb_http_latency_t *l, int64_t us)
{
    if (!l) return;
    if (us < 0) us = 0;
    for (int i = 0; i < SB_HTTP_LAT_BUCKETS; i++)
        if ((double)us <= sb_http_lat_bounds_s[i] * 1e6) {
            atomic_fetch_add(&l->le[i], 1);
            break;
        }
    atomic_fetch_add(&l->count, 1);
    atomic_fetch_add(&l->sum_us, (uint64_t)us);
}

/* Redis calls of a probe: /healthz must answer, and a stop must not wait, much longer than
 * a scrape timeout while Redis hangs (up to two attempts, with a reconnection) */
#define HTTP_REDIS_TIMEOUT_MS 1000

struct sb_http {
    struct MHD_Daemon *d;
    atomic_bool stopping; /* set by sb_http_stop: requests still waiting answer at once */
    sb_http_probe_t probe;
    sb_store_t *store; /* under lock: connections may have threads of their own */
    pthread_mutex_t lock;
    char addr[300]; /* "host:port" with the port bound (the one chosen by the system for 0) */
};

static void append(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void append(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(*buf ? *buf + *len : NULL, *buf ? *cap - *len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) return;
        if (*buf && *len + (size_t)n < *cap) {
            *len += (size_t)n;
            return;
        }
        size_t c = (*cap ? *cap * 2 : 4096) + (size_t)n;
        char *b = realloc(*buf, c);
        if (!b) abort();
        *buf = b, *cap = c;
    }
}

/* Label values: backslash, quote and newline escaped as the text format asks. */
static void label(char *out, size_t len, const char *s, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 3 < len; i++) {
        char c = s[i];
        if (c == '\\' || c == '"') out[o++] = '\\', out[o++] = c;
        else if (c == '\n') out[o++] = '\\', out[o++] = 'n';
        else out[o++] = c;
    }
    out[o] = '\0';
}

void sb_http_counters_text(char **buf, size_t *len, size_t *cap, const char *service,
                           const char *const *fields, const long long *values, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *f = fields[i], *bar = strchr(f, '|');
        size_t nl = bar ? (size_t)(bar - f) : strlen(f);
        char name[128];
        size_t o = 0;
        for (size_t k = 0; k < nl && o + 1 < sizeof name; k++) {
            char c = f[k];
            name[o++] = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ? c
                        : (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : '_';
        }
        name[o] = '\0';
        if (bar) {
            char key[600];
            label(key, sizeof key, bar + 1, strlen(bar + 1));
            append(buf, len, cap, "surveybus_%s_%s_total{key=\"%s\"} %lld\n", service, name, key,
                   values[i]);
        } else {
            append(buf, len, cap, "surveybus_%s_%s_total %lld\n", service, name, values[i]);
        }
    }
}

typedef struct deps {
    bool redis, kafka, mqtt, kafka_on, mqtt_on;
} deps_t;

static deps_t check_deps(sb_http_t *h)
{
    const sb_http_probe_t *p = &h->probe;
    deps_t d = {0};
    d.redis = sb_store_up(h->store) && (!p->writes || sb_store_writable(h->store, p->service));
    d.kafka_on = p->producer || p->consumer;
    d.kafka = (!p->producer || sb_kafka_producer_up(p->producer)) &&
              (!p->consumer || sb_kafka_consumer_up(p->consumer));
    d.mqtt_on = p->mqtt != NULL;
    d.mqtt = !p->mqtt || sb_mqtt_up(p->mqtt);
    return d;
}

static char *healthz(sb_http_t *h, unsigned *status)
{
    deps_t d = check_deps(h);
    bool ok = d.redis && d.kafka && d.mqtt;
    *status = ok ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    append(&buf, &len, &cap, "{\"status\":\"%s\",\"service\":\"%s\",\"redis\":%s,\"kafka\":%s,"
                             "\"mqtt\":%s}\n",
           ok ? "ok" : "unavailable", h->probe.service, d.redis ? "true" : "false",
           !d.kafka_on ? "\"off\"" : d.kafka ? "true" : "false",
           !d.mqtt_on ? "\"off\"" : d.mqtt ? "true" : "false");
    return buf;
}

static char *metrics(sb_http_t *h, unsigned *status)
{
    const sb_http_probe_t *p = &h->probe;
    deps_t d = check_deps(h);
    char *buf = NULL;
    size_t len = 0, cap = 0;
    const char *s = p->service;
    append(&buf, &len, &cap, "# TYPE surveybus_up gauge\n");
    append(&buf, &len, &cap, "surveybus_up{service=\"%s\",dependency=\"redis\"} %d\n", s, d.redis);
    if (d.kafka_on)
        append(&buf, &len, &cap, "surveybus_up{service=\"%s\",dependency=\"kafka\"} %d\n", s, d.kafka);
    if (d.mqtt_on)
        append(&buf, &len, &cap, "surveybus_up{service=\"%s\",dependency=\"mqtt\"} %d\n", s, d.mqtt);
    *status = MHD_HTTP_OK;
    if (d.redis && sb_store_rtt_us(h->store) >= 0)
        append(&buf, &len, &cap,
               "# TYPE surveybus_redis_rtt_seconds gauge\n"
               "surveybus_redis_rtt_seconds{service=\"%s\"} %.6f\n",
               s, (double)sb_store_rtt_us(h->store) / 1e6);
    if (p->consumer && sb_kafka_lag(p->consumer) >= 0)
        append(&buf, &len, &cap,
               "# TYPE surveybus_consumer_lag gauge\nsurveybus_consumer_lag{service=\"%s\"} %lld\n",
               s, (long long)sb_kafka_lag(p->consumer));
    if (p->batch) {
        sb_http_latency_t *l = p->batch;
        append(&buf, &len, &cap, "# TYPE surveybus_batch_seconds histogram\n");
        uint64_t cum = 0;
        for (int i = 0; i < SB_HTTP_LAT_BUCKETS; i++) {
            cum += atomic_load(&l->le[i]);
            append(&buf, &len, &cap, "surveybus_batch_seconds_bucket{service=\"%s\",le=\"%g\"} %llu\n",
                   s, sb_http_lat_bounds_s[i], (unsigned long long)cum);
        }
        uint64_t count = atomic_load(&l->count);
        append(&buf, &len, &cap, "surveybus_batch_seconds_bucket{service=\"%s\",le=\"+Inf\"} %llu\n", s,
               (unsigned long long)count);
        append(&buf, &len, &cap, "surveybus_batch_seconds_sum{service=\"%s\"} %.6f\n", s,
               (double)atomic_load(&l->sum_us) / 1e6);
        append(&buf, &len, &cap, "surveybus_batch_seconds_count{service=\"%s\"} %llu\n", s,
               (unsigned long long)count);
    }
    for (size_t i = 0; i < p->n_counters; i++) {
        const sb_http_counter_t *c = &p->counters[i];
        if (i == 0 || strcmp(c->name, p->counters[i - 1].name) != 0)
            append(&buf, &len, &cap, "# TYPE surveybus_%s_total counter\n", c->name);
        append(&buf, &len, &cap, "surveybus_%s_total{service=\"%s\",reason=\"%s\"} %llu\n",
               c->name, s, c->reason, (unsigned long long)atomic_load(c->n));
    }
    if (!d.redis) return buf; /* the counters live in Redis */
    char key[300];
    sb_store_key(h->store, key, sizeof key, "stats:%s", s);
    redisReply *r = sb_store_cmd(h->store, "HGETALL %s", key);
    if (r && r->type == REDIS_REPLY_ARRAY) {
        size_t n = r->elements / 2;
        const char **f = calloc(n + 1, sizeof *f);
        long long *v = calloc(n + 1, sizeof *v);
        if (!f || !v) abort();
        for (size_t i = 0; i < n; i++) {
            f[i] = r->element[2 * i]->str;
            v[i] = strtoll(r->element[2 * i + 1]->str, NULL, 10);
        }
        if (n) append(&buf, &len, &cap, "# counters of %s (Redis %s)\n", s, key);
        sb_http_counters_text(&buf, &len, &cap, s, f, v, n);
        free(f);
        free(v);
    }
    if (r) freeReplyObject(r);
    if (p->queues && p->queues[0]) append(&buf, &len, &cap, "# TYPE surveybus_queue gauge\n");
    for (size_t i = 0; p->queues && p->queues[i]; i++) {
        sb_store_key(h->store, key, sizeof key, "%s", p->queues[i]);
        r = sb_store_cmd(h->store, "ZCARD %s", key);
        if (r && r->type == REDIS_REPLY_INTEGER)
            append(&buf, &len, &cap, "surveybus_queue{service=\"%s\",queue=\"%s\"} %lld\n", s,
                   p->queues[i], r->integer);
        if (r) freeReplyObject(r);
    }
    return buf;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **ctx)
{
    (void)version, (void)upload, (void)upload_size, (void)ctx;
    sb_http_t *h = cls;
    unsigned status = MHD_HTTP_NOT_FOUND;
    int routed;
    const char *ctype = "text/plain; charset=utf-8";
    char *body = NULL;
    if (strcmp(method, "GET") && strcmp(method, "HEAD")) {
        status = MHD_HTTP_METHOD_NOT_ALLOWED;
        body = strdup("only GET\n");
    } else if (!strcmp(url, "/healthz") || !strcmp(url, "/metrics")) {
        bool health = !strcmp(url, "/healthz");
        pthread_mutex_lock(&h->lock);
        if (atomic_load(&h->stopping)) { /* it may have waited for the lock: answer at once */
            status = MHD_HTTP_SERVICE_UNAVAILABLE;
            body = strdup("stopping\n");
        } else {
            body = health ? healthz(h, &status) : metrics(h, &status);
            ctype = health ? "application/json" : "text/plain; version=0.0.4";
        }
        pthread_mutex_unlock(&h->lock);
    } else if (h->probe.route && (routed = h->probe.route(h->probe.route_arg, c, url)) >= 0) {
        return (enum MHD_Result)routed;
    } else {
        body = strdup("not found: try /healthz or /metrics\n");
    }
    if (!body) return MHD_NO;
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", ctype);
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED) MHD_add_response_header(r, "Allow", "GET, HEAD");
    enum MHD_Result rc = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return rc;
}

/* "host:port" to an IPv4 socket address. Returns 0, or -1 with err. */
static int resolve(const char *hostport, struct sockaddr_in *sa, char *err, size_t errlen)
{
    char host[256];
    const char *colon = strrchr(hostport, ':');
    if (!colon || (size_t)(colon - hostport) >= sizeof host)
        return sb_fail(err, errlen, "bad http address \"%s\": expected host:port", hostport);
    snprintf(host, sizeof host, "%.*s", (int)(colon - hostport), hostport);
    /* ":port" (no host) listens on every interface, as 0.0.0.0:port does */
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM,
                             .ai_flags = host[0] ? 0 : AI_PASSIVE},
                    *ai = NULL;
    int gr = getaddrinfo(host[0] ? host : NULL, colon + 1, &hints, &ai);
    if (gr != 0 || !ai)
        return sb_fail(err, errlen, "http address %s: %s", hostport, gai_strerror(gr));
    memcpy(sa, ai->ai_addr, sizeof *sa);
    freeaddrinfo(ai);
    return 0;
}

int sb_http_can_listen(const char *hostport, char *err, size_t errlen)
{
    struct sockaddr_in sa;
    if (resolve(hostport, &sa, err, errlen)) return -1;
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    if (fd < 0) return sb_fail(err, errlen, "http: socket: %s", strerror(errno));
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one); /* as libmicrohttpd does */
    int rc = bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 && listen(fd, 1) == 0
                 ? 0
                 : sb_fail(err, errlen, "http: cannot listen on %s: %s", hostport, strerror(errno));
    close(fd);
    return rc;
}

sb_http_t *sb_http_start(const char *hostport, const sb_http_probe_t *probe, char *err,
                         size_t errlen)
{
    struct sockaddr_in sa;
    if (resolve(hostport, &sa, err, errlen)) return NULL;
    sb_http_t *h = calloc(1, sizeof *h);
    if (!h) abort();
    h->probe = *probe;
    char serr[256];
    h->store = sb_store_new(probe->cfg, serr, sizeof serr);
    if (!h->store) {
        free(h);
        sb_fail(err, errlen, "http: redis: %s", serr);
        return NULL;
    }
    sb_store_set_timeout(h->store, HTTP_REDIS_TIMEOUT_MS);
    pthread_mutex_init(&h->lock, NULL);
    /* a stream idles between its events for longer than the 10 s that cut stalled scrapes:
     * with a thread per connection the route sets its own timeout per connection */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD;
    if (probe->thread_per_connection) flags |= MHD_USE_THREAD_PER_CONNECTION;
    h->d = MHD_start_daemon(flags, ntohs(sa.sin_port), NULL, NULL, on_request, h,
                            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10, MHD_OPTION_END);
    if (!h->d) {
        pthread_mutex_destroy(&h->lock);
        sb_store_free(h->store);
        free(h);
        sb_fail(err, errlen, "http: cannot listen on %s", hostport);
        return NULL;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    char ip[INET_ADDRSTRLEN] = "0.0.0.0"; /* the address resolve() gave, as bound */
    inet_ntop(AF_INET, &sa.sin_addr, ip, sizeof ip);
    snprintf(h->addr, sizeof h->addr, "%s:%u", ip,
             di && di->port ? (unsigned)di->port : (unsigned)ntohs(sa.sin_port));
    sb_info("serving %s/healthz and /metrics on http://%s", probe->route ? "its routes, " : "",
            h->addr);
    return h;
}

const char *sb_http_addr(const sb_http_t *h)
{
    return h->addr;
}

void sb_http_stop(sb_http_t *h)
{
    if (!h) return;
    atomic_store(&h->stopping, true);
    MHD_stop_daemon(h->d);
    pthread_mutex_destroy(&h->lock);
    sb_store_free(h->store);
    free(h);
}
