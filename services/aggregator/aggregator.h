/* surveybus-aggregator: survey responses, requests sent and interaction KPIs in; rolling
 * window metrics and alerts out. ingest.c counts a batch exactly once (tally.h does the
 * Redis side), publish.c publishes the metric updates of the changed slices, main.c runs
 * the loops. */
#ifndef SB_AGGREGATOR_H
#define SB_AGGREGATOR_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "kafka.h"
#include "mqtt.h"
#include "service.h"
#include "store.h"
#include "tally.h"

/* Which stream a message came from. */
enum { STREAM_RESPONSE = 'r', STREAM_REQUEST = 'q', STREAM_INTERACTION = 'k' };

typedef struct in_msg {
    const void *payload;
    size_t len;
    const char *source;    /* dead-letter source text */
    const char *device_id; /* from the MQTT topic's '+', NULL otherwise */
    bool mqtt;             /* came over MQTT (an event without a type is then a visit) */
    char stream;
} in_msg_t;

/* Alerts are durable in the Redis outbox once counted, so they are published without
 * holding up the batch: each produce call carries an alert_msg_t, and the delivery callback
 * (which may run on either ingesting thread) moves confirmed ones to the sink, from which
 * the main loop removes them from the outbox in one command. */
#define TAG_ALERT 2
typedef struct alert_sink {
    pthread_mutex_t mu;
    char **done; /* confirmed alert texts, owned */
    size_t n, cap;
} alert_sink_t;

typedef struct alert_msg {
    int tag; /* TAG_ALERT */
    char *json;
    alert_sink_t *sink;
} alert_msg_t;

/* Removes the confirmed alerts from the outbox (main thread). Returns 0 or -1 (kept). */
int alert_sink_flush(alert_sink_t *s, sb_tally_t *t);

/* One batch from parsing to its end. Two can be in flight: one whose script Redis runs
 * while the next one is parsed. */
typedef struct ibatch {
    in_msg_t *in;
    size_t n, ni, cap;
    int64_t now;
    bool busy; /* in hand, from parse to end */
    bool sent; /* its tally script went out without waiting for the answer */
    redisReply *recs;     /* its survey records (read, not yet checked) */
    sb_tally_batch_t *tb; /* its tally plan */
    struct work *w;
    sb_tally_item_t *items, *kpi;
    sb_counts_t cs;
    struct scratch *x; /* decoding space */
    const char **argv;
    char (*keys)[300];
} ibatch_t;

/* What one ingesting thread owns. */
typedef struct ingest {
    const sb_config_t *cfg;
    sb_store_t *store;
    sb_store_t *rstore; /* Kafka ingest: a second connection for the reads of the batch being
                         * planned while the tally script of the one before runs */
    sb_tally_t *tally;
    sb_kafka_producer_t *producer; /* dead letters and alerts; NULL when Kafka is off */
    sb_mqtt_t *mqtt_pub;           /* alerts; NULL when MQTT is off (shared, thread-safe) */
    sb_wait_t wait;
    alert_sink_t *sink; /* shared */
    ibatch_t b[3];      /* work buffers, reused from batch to batch */
} ingest_t;

/* Releases an ingest context's work buffers. */
void ingest_free_buffers(ingest_t *ig);

/* Counts a batch: every response is verified (token, survey, state, scale, expiry, time)
 * and, with the requests and KPI events, counted in one atomic Redis call; dead letters
 * and alerts are then published and confirmed. Returns 0 once every effect is durable (the
 * caller may commit), -1 to retry the same batch (Redis or Kafka failed, or stopping). */
int ingest_batch(ingest_t *ig, const in_msg_t *msgs, size_t n);

/* The same for Kafka batches with three in hand (sb_service_consume_pipelined; opaque is the
 * ingest_t): parse (the checks that need no I/O: JSON, token, times), read (the survey
 * records in one MGET, on rstore), plan (the checks that need them, the slices, the tally
 * plan), send (the tally script, without waiting), finish (the script's answer, alerts,
 * dead letters), again (the whole batch once more, synchronously), end. */
extern const sb_service_stages_t ingest_stages;

/* Kafka delivery callback of the aggregator's producers. */
void aggregator_delivery(void *opaque, void *msg_opaque, int ok, const char *errstr);

/* ---- publication (publish.c) ---- */

/* A metric update's Kafka delivery that fails (the message timed out, say) is sent again by
 * the publisher's next round, even when the update is empty (an emptied slice, which the
 * periodic republish does not cover): each produce call carries a metric_msg_t, and the
 * delivery callback (on whichever thread polled) queues the failed row for the publisher. */
#define TAG_METRIC 3
struct publisher;
typedef struct metric_msg {
    int tag;              /* TAG_METRIC */
    struct publisher *p;
    size_t at;            /* index into p->last */
    uint64_t epoch;       /* p->epoch when sent: a leadership later, the index means nothing */
} metric_msg_t;

typedef struct publisher {
    const sb_config_t *cfg;
    sb_tally_t *tally;
    sb_kafka_producer_t *producer;
    sb_mqtt_t *mqtt_pub;
    char token[200];   /* this instance's leader token */
    bool leader;
    /* last published state per (slice, window, metric): a hash of the update without its
     * time (odd), 0 for "nothing shown", or publish.c's SHOWN_BEFORE (a value may be shown:
     * send again) or SHOWN_EMPTY (the count-0 update was sent) */
    uint64_t *last;
    bool *dirty;       /* per (slice, window): what it shows changed, not yet saved in Redis */
    size_t n_slices;   /* rows in last and dirty */
    int64_t all_slice; /* slice id of all|all, registered by the first round; 0 before */
    int64_t next_republish_ms, next_alert_sweep_ms;
    uint64_t published, failed;
    uint64_t epoch;          /* leaderships taken by this instance */
    pthread_mutex_t redo_mu; /* guards redo: failed deliveries, indexes into last */
    size_t *redo, n_redo, cap_redo;
} publisher_t;

/* Called by the delivery callback for an opaque tagged TAG_METRIC (frees it). */
void publisher_delivered(metric_msg_t *m, int ok, const char *errstr);

void publisher_init(publisher_t *p, const sb_config_t *cfg, sb_tally_t *tally,
                    sb_kafka_producer_t *producer, sb_mqtt_t *mqtt_pub, const char *instance);
/* Hands the lease over (a stopping instance; the tally is still open). */
void publisher_release(publisher_t *p);
/* Frees what the publisher holds: after the producer is gone, since its delivery reports
 * come to publisher_delivered. */
void publisher_free(publisher_t *p);
/* One publication round: takes or renews the lease, reads every window, publishes what
 * changed (and everything that has a value when the republish period is up; an update
 * with no data, count 0, once: for every metric of each slice with anything in the window,
 * and of all|all always), and
 * republishes alerts whose instance died. Returns the number of updates published, or -1
 * (Redis). */
int publisher_tick(publisher_t *p, int64_t now_ms);

#endif
