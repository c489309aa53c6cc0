/* surveybus-dispatcher: interaction events in, durable timed surveys, survey requests out.
 * Shared state of its three parts: ingest.c (events -> schedule), fire.c (due surveys ->
 * requests, with delivery-confirmed acknowledgement and crash recovery), main.c (loops). */
#ifndef SB_DISPATCHER_H
#define SB_DISPATCHER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "kafka.h"
#include "mqtt.h"
#include "schedule.h"
#include "service.h"
#include "store.h"
#include "survey.h"

/* Tags on the opaque pointer of every produced Kafka message. */
enum { TAG_FIRE = 2 }; /* and SB_WAIT_TAG (service.h) for dead letters */

/* One raw inbound message and where it came from. */
typedef struct in_msg {
    const void *payload;
    size_t len;
    const char *source;    /* dead-letter source text */
    const char *device_id; /* from the MQTT topic's '+', NULL otherwise */
    bool mqtt;             /* came over MQTT (an event without a type is then a visit) */
} in_msg_t;

typedef struct dead {
    size_t msg; /* index into the batch */
    char reason[200];
} dead_t;

/* One batch from parsing to its end; two can be in hand (one in Redis while the next one is
 * parsed). Its records live in the context's shared buffers until its script is sent. */
typedef struct dbatch {
    in_msg_t *in;
    size_t n, cap, nops, nd;
    dead_t *dead;
    sb_counts_t cs;
    bool busy, sent;
} dbatch_t;

/* What one ingesting thread owns: its Redis connection, schedule handle and DLQ producer. */
typedef struct ingest_ctx {
    const sb_config_t *cfg;
    sb_store_t *store;
    sb_sched_t *sched;
    sb_kafka_producer_t *producer; /* NULL when Kafka is off */
    sb_wait_t wait; /* dead letters of the current batch */
    /* work buffers reused from batch to batch (records are a few KiB each), filled for the
     * batch `owner` */
    struct sb_record *recs;
    sb_sched_op_t *ops;
    size_t cap; /* entries in recs and ops */
    struct sb_event *ev;
    struct sb_candidate *cand;
    const dbatch_t *owner;
    dbatch_t b[2];
} ingest_ctx_t;

/* Releases an ingest context's work buffers. */
void ingest_ctx_free_buffers(ingest_ctx_t *ic);

/* Processes a batch: parse + validate each event (dead letters for bad ones), match journeys,
 * schedule / cancel in one atomic Redis call with the batch's counters, then publish the dead
 * letters and wait for their delivery. Returns 0 once every effect is durable (the caller may
 * then commit the batch), -1 when Redis or Kafka failed or a stop was requested (the caller
 * retries the same batch; every step is idempotent). */
int ingest_batch(ingest_ctx_t *ic, const in_msg_t *msgs, size_t n);

/* The same for Kafka batches with two in hand (sb_service_consume_pipelined; opaque is the
 * ingest_ctx_t): parse, send (the schedule script sent without waiting), finish (its answer,
 * then the dead letters), again (the whole call once more, synchronously), end. */
extern const sb_service_stages_t ingest_stages;

/* Kafka delivery callback shared by every producer of the dispatcher (dispatches on tag). */
void dispatcher_delivery(void *opaque, void *msg_opaque, int ok, const char *errstr);

/* ---- firing (fire.c) ---- */

typedef struct fire_entry {
    int tag; /* TAG_FIRE */
    char member[SB_SCHED_MEMBER_MAX];
    int waiting;  /* deliveries not yet confirmed */
    int mid;      /* MQTT message id, 0 when none pending */
    bool kafka_failed, mqtt_failed; /* that copy was not delivered */
    bool unsure;  /* failed on Kafka, but may have been stored there (left to recovery) */
    bool acking;  /* confirmed; in the acknowledgement that is in flight */
    int64_t due_ms;
    int64_t remind_at; /* when its reminder falls due (sb_rules_remind_at), 0: none */
    sb_sched_hint_t hint; /* for its acknowledgement */
    /* with both transports on: the request, its Kafka key and MQTT topic, to send one copy
     * again (NULL otherwise) */
    char *json, *key, *topic;
    int64_t retry_ms; /* when that copy may be sent again */
    struct fire_entry *next;
} fire_entry_t;

typedef struct firer {
    const sb_config_t *cfg;
    sb_sched_t *sched;             /* claims, releases, recovery (the main connection) */
    sb_sched_t *ack_sched;         /* acknowledgements, on a connection of their own */
    sb_store_t *store;
    sb_kafka_producer_t *producer; /* NULL when Kafka is off */
    sb_mqtt_t *mqtt_pub;           /* NULL when MQTT is off */
    fire_entry_t *head;            /* published, awaiting confirmation */
    size_t inflight;
    /* Two claim buffers of cfg->tuning.batch entries: one batch is published while the claim
     * of the next one runs in Redis. */
    sb_claimed_t *claimed[2];
    /* the acknowledgement in flight on ack_sched (sent, reply not yet read) */
    const char **ack_members;
    int64_t *ack_remind;           /* their remind_at, in step */
    sb_sched_hint_t *ack_hints;    /* their hints, in step */
    size_t ack_n, ack_cap;
    bool ack_pending;
    sb_sched_t *ack_via;           /* the handle it was sent on */
    sb_survey_request_t *req;      /* work buffer of build_request */
    /* claims of the batch just published that go back to the schedule unsent (held by quiet
     * hours, or not published), released once the claim in flight on sched is answered */
    struct {
        const char *member; /* in claimed[] */
        int64_t at;
        bool held;
    } *rel;
    size_t n_rel;
    int64_t next_due_ms;           /* earliest known timer, INT64_MAX when none */
    int64_t next_recovery_ms;
    int64_t next_renew_ms;         /* when the leases of head are renewed next */
    int64_t last_claim_ms;
    /* due-to-confirmed latency samples of the current reporting period (ms) */
    uint32_t *lat;
    size_t n_lat, cap_lat;
    uint64_t published, confirmed, released;
    uint64_t held; /* held back by quiet hours since the last report */
} firer_t;

/* sched and ack_sched must be handles on two different store connections (ack_sched may be
 * NULL: acknowledgements then block on sched). */
void firer_init(firer_t *f, const sb_config_t *cfg, sb_sched_t *sched, sb_sched_t *ack_sched,
                sb_store_t *store, sb_kafka_producer_t *producer, sb_mqtt_t *mqtt_pub);
void firer_free(firer_t *f);
/* Claims and publishes due surveys (at most max_inflight awaiting confirmation). The claim
 * of the next batch runs in Redis while the current one is published; no claim is left in
 * flight on return (the connection is shared with ingest). Returns the number published, or
 * -1 when Redis is unreachable. */
int firer_fire(firer_t *f, int64_t now_ms, size_t max_inflight);
/* Settles confirmed deliveries: first reads the result of the acknowledgement sent by the
 * previous call (those entries are then done), then sends one for the deliveries confirmed
 * since, without waiting for it, and puts failed ones back in the schedule. Returns the
 * number settled, or -1 when Redis is unreachable (retried later). */
int firer_settle(firer_t *f, int64_t now_ms);
/* Waits for the acknowledgement in flight, if any. Returns the number settled or -1. */
int firer_settle_wait(firer_t *f);
/* Finds claims whose lease expired (a dispatcher died mid-firing): when Kafka is on, reads
 * the requests topic back from the claim time and acknowledges the ones found there, so that
 * nothing is published twice; the rest return to the schedule. Returns 0 or -1. */
int firer_recover(firer_t *f, int64_t now_ms);
/* Stopping: the leases of the claims still awaiting confirmation last until until_ms (when
 * the process is surely gone), as the loop that renewed them no longer runs while they are
 * confirmed. Returns 0 or -1. */
int firer_keep_claims(firer_t *f, int64_t until_ms);
/* Logs and resets the latency samples (p50/p99 of due-to-confirmed). */
void firer_report(firer_t *f);

#endif
