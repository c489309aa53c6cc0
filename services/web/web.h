/* surveybus-web: the dashboard's server. Static files from http.web_root, a snapshot of the
 * current metric values (/api/metrics, the numbers of `surveybusctl metrics --json`) and a
 * Server-Sent Events stream (/api/stream) of every metric update and alert as published,
 * beginning with the snapshot so that a reconnecting page needs no Last-Event-ID. */
#ifndef SB_WEB_H
#define SB_WEB_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "config.h"
#include "http.h"
#include "kafka.h"
#include "mqtt.h"
#include "service.h"
#include "store.h"
#include "tally.h"

/* ---- hub.c: fan-out of events to every open stream ---- */

typedef struct hub hub_t;
typedef struct hub_client hub_client_t;

/* A hub whose clients may hold up to max_queue events not yet sent (one falling further
 * behind is dropped with a log line) and get a ": keep-alive" comment after keepalive_ms
 * without an event. Aborts when out of memory. */
hub_t *hub_new(size_t max_queue, int keepalive_ms);
/* Queues "event: <event>\ndata: <data>\n\n" for every client. data must be one line. */
void hub_publish(hub_t *h, const char *event, const char *data);
/* Ends every stream (their reads return end of stream from now on). */
void hub_stop(hub_t *h);
/* Frees the hub; every client must be gone (after the HTTP server stopped). */
void hub_free(hub_t *h);
/* Registers a client: it receives every event published from now on. */
hub_client_t *hub_join(hub_t *h);
/* Sets the text a client sends before its queued events (owned; once, before the first
 * hub_read). */
void hub_client_first(hub_client_t *c, char *text);
/* libmicrohttpd's content reader and its free callback for a client (cls): blocks until an
 * event, the keep-alive time or the hub's stop. */
ssize_t hub_read(void *cls, uint64_t pos, char *buf, size_t max);
void hub_leave(void *cls);
/* Number of clients (for the log). */
size_t hub_clients(hub_t *h);

/* ---- source.c: where the events come from ---- */

typedef struct source source_t;

/* Subscribes to the metric and alert MQTT topics (cfg->mqtt_topics.metrics / .alerts with
 * every {placeholder} level as '+') when MQTT is configured, else consumes the Kafka topics
 * cfg->topics.metrics and .alerts in a consumer group of its own, from the latest offsets;
 * each message valid as JSON and at most SB_MSG_MAX bytes long goes to the hub as one line,
 * event "metric" or "alert" (the others are counted, see source_counters, and logged).
 * svc->cfg may get an auto.offset.reset property. Returns NULL with err filled. */
source_t *source_start(sb_service_t *svc, hub_t *hub, char *err, size_t errlen);
/* The messages not forwarded, by reason ("too_large": over SB_MSG_MAX bytes; "invalid_json"),
 * for /metrics: *n counters, valid until source_stop. */
const sb_http_counter_t *source_counters(source_t *s, size_t *n);
sb_mqtt_t *source_mqtt(source_t *s);               /* NULL when on Kafka */
sb_kafka_consumer_t *source_consumer(source_t *s); /* NULL when on MQTT */
void source_stop(source_t *s);


/* ---- routes.c: GET / and static files, /api/metrics, /api/stream ---- */

struct MHD_Connection;

typedef struct web {
    const sb_config_t *cfg;
    hub_t *hub;
    pthread_mutex_t lock; /* store and tally: connections run on threads of their own */
    sb_store_t *store;
    sb_tally_t *tally;
} web_t;

/* The sb_http_route_fn of surveybus-web (arg: web_t). */
int web_route(void *arg, struct MHD_Connection *c, const char *url);

/* The Content-Type of a file name by its extension. */
const char *web_content_type(const char *path);

#endif
