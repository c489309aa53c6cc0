/* What every long-running surveybus binary does the same way: command-line options
 * (-c FILE, --set path=value, -h, --version), configuration loading with every problem
 * printed, logging, stop signals, stable client ids, and dead-letter publishing. */
#ifndef SB_SERVICE_H
#define SB_SERVICE_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "http.h"
#include "kafka.h"
#include "store.h"

#define SB_DEFAULT_CONFIG "config/surveybus.json"

/* Set by SIGTERM / SIGINT; loops poll it. */
extern volatile sig_atomic_t sb_service_stop;

/* What is left of budget_ms counted from the stop signal (0 when spent; budget_ms when no
 * signal came, e.g. a stop after a fatal error). Shutdown steps size their waits by it, so
 * that the whole stop fits in the 10 s of SPEC §1 whatever the main loop was blocked on. */
int64_t sb_service_stop_left_ms(int64_t budget_ms);
/* A wait of at most cap ms that ends no later than by_ms after the stop signal. */
int sb_service_stop_wait_ms(int cap, int64_t by_ms);

/* From the stop signal: until when a service's shutdown may wait for in-flight work, and
 * until when for closing its clients after that (the 10 s of SPEC §1 less a margin). The
 * steps after the drain that are not bounded by the close budget (a consumer leaving an
 * unreachable group: about 1 s; freeing the clients) took the dispatcher's stop in a Kafka
 * outage to 9.0 s with a drain of 7.5 s, and past 10 s on a loaded machine: 2.5 s are left
 * for them now. */
#define SB_SERVICE_DRAIN_MS 6000
#define SB_SERVICE_CLOSE_MS 7500

typedef struct sb_service {
    const char *name;     /* "dispatcher", "aggregator", ... (borrowed) */
    sb_config_t *cfg;     /* owned */
    char client_id[300];  /* cfg->mqtt.client_id or "surveybus-<name>-<host>" */
    char instance[128];   /* "<host>-<pid>": unique per running process */
} sb_service_t;

/* Parses the command line ("-c FILE", "--config[=]FILE", "--set[=]path=value", "-h",
 * "--version"), loads the configuration and installs signal handlers. Returns 0 to run, 1
 * when the process should exit 0 (help or version printed), -1 when it should exit 1 (a
 * one-line reason printed on stderr: for a bad config, the first problem and how many more
 * there are), -2 when it should exit 2 (a wrong command line, said on stderr). Use
 * sb_service_init_status for the exit status of a non-zero return. */
int sb_service_init(sb_service_t *svc, const char *name, int argc, char **argv);
static inline int sb_service_init_status(int rc) { return rc > 0 ? 0 : rc == -2 ? 2 : 1; }

/* Reports config problems on stderr in one line (SPEC §1): "prog: file: first problem",
 * and how many more there are. Nothing when p is empty. */
void sb_service_problems(const sb_problems_t *p, const char *prog, const char *file);
void sb_service_fini(sb_service_t *svc);
/* The end of a service's main: sb_service_fini, "stopped" when rc is 0, and rc returned, or
 * the process ended with _exit(rc) when a Kafka consumer's destroy was given up
 * (sb_kafka_abandoned). */
int sb_service_end(sb_service_t *svc, int rc);

/* Sleeps up to ms, returning early when a stop signal arrives. */
void sb_service_sleep(int ms);

/* The source text of a dead letter: "kafka:<topic>/<partition>@<offset>" or "mqtt:<topic>". */
void sb_service_source_kafka(char *out, size_t len, const sb_kafka_msg_t *m);
void sb_service_source_mqtt(char *out, size_t len, const char *topic);

/* Back-pressure while Redis is away: pauses c (may be NULL), waits with the store's back-off
 * until Redis answers or a stop is requested, resumes c. */
void sb_service_wait_redis(sb_store_t *store, sb_kafka_consumer_t *c);

/* Consumes batches of up to max messages (waiting up to timeout_ms for the first) with two
 * batches in hand: while Redis works on one, the next is consumed and parsed. A batch goes
 * parse -> send (its I/O started) -> finish (waited for), or, after a failure, again (the
 * whole batch, synchronously, with sb_service_wait_redis in between) until it succeeds or a
 * stop is requested; end then releases it, and its offsets are stored once its effect is
 * durable, in order. Runs batches while messages keep coming, for up to budget_ms, and
 * returns with nothing in hand: the number of messages done (a consumer failure pauses 1 s
 * and counts as none). Each batch's time from parsed to done goes to lat (may be NULL). */
typedef struct sb_service_stages {
    void *(*parse)(void *opaque, const sb_kafka_msg_t *msgs, const char (*src)[512], size_t n);
    /* optional (both or neither): the batch's reads (0, or -1: the batch is done again,
     * whole), then its planning (CPU only; 0 or -1 likewise). With them three batches are in
     * hand: a batch is read before the script of the one ahead of it is sent, and planned
     * while that script runs. */
    int (*read)(void *opaque, void *batch);
    int (*plan)(void *opaque, void *batch);
    int (*send)(void *opaque, void *batch);   /* 0, or -1: not sent */
    int (*finish)(void *opaque, void *batch); /* 0 durable, -1 not */
    int (*again)(void *opaque, void *batch);  /* 0 durable, -1 not */
    void (*end)(void *opaque, void *batch);
} sb_service_stages_t;
int sb_service_consume_pipelined(sb_kafka_consumer_t *c, sb_store_t *store, size_t max,
                                 int timeout_ms, int budget_ms, const sb_service_stages_t *st,
                                 void *opaque, sb_http_latency_t *lat);

/* ---- producing a set of Kafka messages and waiting until every one is stored ----
 * The wait is the opaque of each produce call; its tag comes first so that a delivery
 * callback that also sees other opaques can recognise it. */
#define SB_WAIT_TAG 1
typedef struct sb_wait {
    int tag; /* SB_WAIT_TAG */
    int outstanding, failed;
} sb_wait_t;

/* To be called by the producer's delivery callback for an opaque tagged SB_WAIT_TAG. */
void sb_wait_delivered(sb_wait_t *w, int ok, const char *errstr);

typedef struct sb_outmsg {
    const char *topic;
    const char *key; /* NULL: none */
    size_t keylen;
    const char *payload;
    size_t len;
} sb_outmsg_t;

/* Produces msgs[0..n) and waits for every delivery report, producing the whole set again
 * (with a growing pause) while any failed. Returns 0 once all are stored, -1 when a stop was
 * requested first (the caller then leaves its input uncommitted, to be redelivered). */
int sb_service_produce_all(sb_kafka_producer_t *p, sb_wait_t *w, const sb_outmsg_t *msgs,
                           size_t n);

#endif
