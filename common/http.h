/* Operational HTTP endpoints of a service (http.dispatcher / http.aggregator / http.web):
 * GET /healthz (200 when every configured dependency answers, else 503, with a JSON body
 * saying which) and GET /metrics (Prometheus text: dependency state, the service's counters
 * from Redis and its own, queue depths), plus any routes the service adds
 * (sb_http_probe_t.route). Served by libmicrohttpd on its own thread (or a thread per
 * connection), with its own Redis connection, so a slow scrape never holds up the service. */
#ifndef SB_HTTP_H
#define SB_HTTP_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "kafka.h"
#include "mqtt.h"

typedef struct sb_http sb_http_t;

struct MHD_Connection;

/* A service's own routes (surveybus-web): called on libmicrohttpd's thread for every GET or
 * HEAD request other than /healthz and /metrics, with the URL path (already unescaped by
 * libmicrohttpd). Returns -1 when it does not serve url (the built-in 404 answers), else the
 * enum MHD_Result of its MHD_queue_response. */
typedef int (*sb_http_route_fn)(void *arg, struct MHD_Connection *c, const char *url);

/* A histogram of batch processing times (Prometheus buckets from 1 ms to 10 s), updated
 * lock-free by the service's threads and read by the HTTP thread. Zero-initialise it. */
#define SB_HTTP_LAT_BUCKETS 10
extern const double sb_http_lat_bounds_s[SB_HTTP_LAT_BUCKETS]; /* 0.001 ... 10 */
typedef struct sb_http_latency {
    _Atomic uint64_t le[SB_HTTP_LAT_BUCKETS]; /* not cumulative: bucket i only */
    _Atomic uint64_t count, sum_us;
} sb_http_latency_t;
void sb_http_latency_observe(sb_http_latency_t *l, int64_t us);

/* A counter of this process (not kept in Redis), updated lock-free by the service's threads:
 * on /metrics as surveybus_<name>_total{service="<service>",reason="<reason>"}. */
typedef struct sb_http_counter {
    const char *name; /* e.g. "stream_dropped"; counters of one name are listed together */
    const char *reason;
    _Atomic uint64_t *n;
} sb_http_counter_t;

/* What the endpoints look at (borrowed; NULL members are off). */
typedef struct sb_http_probe {
    const sb_config_t *cfg;
    const char *service;            /* "dispatcher", "aggregator": names the stats hash */
    bool writes;                    /* the service writes to Redis: its health needs writes to
                                       go through (sb_store_writable), not only PING */
    sb_kafka_producer_t *producer;
    sb_kafka_consumer_t *consumer;
    sb_mqtt_t *mqtt;
    const char *const *queues;      /* sorted sets (key names after the prefix) whose sizes
                                       /metrics reports, NULL-terminated; may be NULL */
    sb_http_latency_t *batch;       /* batch processing times; may be NULL */
    const sb_http_counter_t *counters; /* this process' own counters, n_counters of them */
    size_t n_counters;
    sb_http_route_fn route;         /* further routes; may be NULL */
    void *route_arg;
    int thread_per_connection;      /* non-zero: one thread per connection, so that a route's
                                       content reader may block (a long stream lifts the 10 s
                                       idle timeout of its connection itself) */
} sb_http_probe_t;

/* Starts serving on "host:port" (IPv4 or a name that resolves to one). Returns NULL with the
 * reason in err when the address is bad or cannot be bound. */
/* Whether hostport could be listened on now (a bind and listen, then closed). A service
 * checks it before connecting its clients, so that a second instance started on the same
 * address fails before its MQTT client (same client id) disconnects the running one's.
 * Returns 0, or -1 with err. */
int sb_http_can_listen(const char *hostport, char *err, size_t errlen);

sb_http_t *sb_http_start(const char *hostport, const sb_http_probe_t *probe, char *err,
                         size_t errlen);
void sb_http_stop(sb_http_t *h);
/* "host:port" being served, with the port actually bound (the system's choice for port 0). */
const char *sb_http_addr(const sb_http_t *h);

/* The Prometheus text of a counters hash reply (field -> integer): a field "name|a|b" becomes
 * surveybus_<service>_<name>_total{key="a|b"} (name with characters outside [a-z0-9_] as
 * '_'; key absent when the field has no '|'). Appends to *buf (malloc'd, grown). Pure. */
void sb_http_counters_text(char **buf, size_t *len, size_t *cap, const char *service,
                           const char *const *fields, const long long *values, size_t n);

#endif
