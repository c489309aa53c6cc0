/* Shared start-up of the surveybus services; see service.h. */
#include "service.h"

#include <malloc.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kafka.h"
#include "log.h"
#include "util.h"

volatile sig_atomic_t sb_service_stop;
static _Atomic int64_t stop_ms; /* sb_mono_ms() of the first stop signal; 0 before */

static void on_stop(int sig)
{
    (void)sig;
    if (!sb_service_stop) {
        struct timespec ts; /* clock_gettime is async-signal-safe; sb_mono_ms is this */
        clock_gettime(CLOCK_MONOTONIC, &ts);
        atomic_store(&stop_ms, (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
    }
    sb_service_stop = 1;
}

int sb_service_stop_wait_ms(int cap, int64_t by_ms)
{
    int64_t left = sb_service_stop_left_ms(by_ms);
    return (int)(left < cap ? left : cap);
}

int64_t sb_service_stop_left_ms(int64_t budget_ms)
{
    int64_t at = atomic_load(&stop_ms);
    if (!at) return budget_ms;
    int64_t left = at + budget_ms - sb_mono_ms();
    return left > 0 ? left : 0;
}

static void usage(FILE *out, const char *name)
{
    fprintf(out,
            "usage: surveybus-%s [-c FILE] [--set path=value]...\n"
            "       surveybus-%s -h | --version\n"
            "  -c, --config FILE   configuration file (default %s)\n"
            "  --set path=value    override one configuration value, e.g. --set log.level=debug\n"
            "Runs until SIGTERM, SIGINT or SIGHUP, then finishes in-flight work and exits 0.\n"
            "Exits 1 on a bad configuration, 2 on a wrong command line.\n",
            name, name, SB_DEFAULT_CONFIG);
}

void sb_service_problems(const sb_problems_t *p, const char *prog, const char *file)
{
    if (p->n == 0) return;
    fprintf(stderr, "%s: %s: %s", prog, file, p->msg[0]);
    if (p->n > 1) fprintf(stderr, " (and %zu more; run surveybusctl check-config)", p->n - 1);
    fputc('\n', stderr);
}

int sb_service_init(sb_service_t *svc, const char *name, int argc, char **argv)
{
    memset(svc, 0, sizeof *svc);
    svc->name = name;
    /* glibc gives threads that allocate at the same time heaps of their own (up to 8 per
     * core), and memory freed in one of them is seldom returned to the system. With
     * librdkafka's threads next to ours that kept the aggregator's peak while draining a
     * backlog at 75 MiB; with two heaps it was 62 MiB, at the same throughput
     * (docs/benchmarks.md). Set before any thread starts; MALLOC_ARENA_MAX still wins. */
    if (!getenv("MALLOC_ARENA_MAX")) mallopt(M_ARENA_MAX, 2);
    const char *path = SB_DEFAULT_CONFIG;
    const char **sets = calloc((size_t)argc + 1, sizeof *sets);
    size_t n_sets = 0;
    if (!sets) abort();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout, name);
            free(sets);
            return 1;
        } else if (!strcmp(a, "--version")) {
            printf("surveybus-%s %s\n", name, SB_VERSION);
            free(sets);
            return 1;
        } else if ((!strcmp(a, "-c") || !strcmp(a, "--config")) && i + 1 < argc) {
            path = argv[++i];
        } else if (!strncmp(a, "--config=", 9)) {
            path = a + 9;
        } else if (!strcmp(a, "--set") && i + 1 < argc) {
            sets[n_sets++] = argv[++i];
        } else if (!strncmp(a, "--set=", 6)) {
            sets[n_sets++] = a + 6;
        } else {
            fprintf(stderr, "surveybus-%s: unknown or incomplete option '%s' (see -h)\n", name, a);
            free(sets);
            return -2;
        }
    }
    sb_problems_t probs = {0};
    svc->cfg = sb_config_load(path, sets, n_sets, &probs);
    free(sets);
    char prog[80];
    snprintf(prog, sizeof prog, "surveybus-%s", name);
    sb_service_problems(&probs, prog, path);
    sb_problems_clear(&probs);
    if (!svc->cfg) return -1;
    sb_log_init(name, svc->cfg->log_level);

    char host[64] = "localhost";
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = '\0';
    if (svc->cfg->mqtt.client_id && *svc->cfg->mqtt.client_id)
        snprintf(svc->client_id, sizeof svc->client_id, "%s", svc->cfg->mqtt.client_id);
    else
        snprintf(svc->client_id, sizeof svc->client_id, "surveybus-%s-%s", name, host);
    snprintf(svc->instance, sizeof svc->instance, "%s-%ld", host, (long)getpid());

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    /* no reload: a hang-up (a closed terminal, a reload by habit) stops cleanly too, rather
     * than killing the process with work in flight */
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

void sb_service_fini(sb_service_t *svc)
{
    sb_config_free(svc->cfg);
    svc->cfg = NULL;
}

int sb_service_end(sb_service_t *svc, int rc)
{
    sb_service_fini(svc);
    if (rc == 0) sb_info("stopped");
    if (sb_kafka_abandoned()) { /* its threads must not meet the exit handlers */
        fflush(NULL);
        _exit(rc);
    }
    return rc;
}

void sb_service_sleep(int ms)
{
    while (ms > 0 && !sb_service_stop) {
        int step = ms < 50 ? ms : 50;
        struct timespec ts = {0, (long)step * 1000000L};
        nanosleep(&ts, NULL);
        ms -= step;
    }
}

void sb_service_source_kafka(char *out, size_t len, const sb_kafka_msg_t *m)
{
    snprintf(out, len, "kafka:%s/%d@%lld", m->topic, (int)m->partition, (long long)m->offset);
}

void sb_service_source_mqtt(char *out, size_t len, const char *topic)
{
    snprintf(out, len, "mqtt:%s", topic);
}

void sb_wait_delivered(sb_wait_t *w, int ok, const char *errstr)
{
    w->outstanding--;
    if (!ok) {
        w->failed++;
        sb_warn("message not delivered err=\"%s\"", errstr ? errstr : "");
    }
}

int sb_service_produce_all(sb_kafka_producer_t *p, sb_wait_t *w, const sb_outmsg_t *msgs,
                           size_t n)
{
    if (n == 0) return 0;
    for (int attempt = 0;; attempt++) {
        w->tag = SB_WAIT_TAG;
        w->outstanding = 0;
        w->failed = 0;
        for (size_t i = 0; i < n; i++) {
            const sb_outmsg_t *m = &msgs[i];
            while (sb_kafka_produce(p, m->topic, m->key, m->keylen, m->payload, m->len, w) != 0) {
                if (sb_service_stop) goto drain;
                sb_kafka_producer_poll(p, 100); /* queue full: let deliveries drain it */
            }
            w->outstanding++;
        }
    drain:
        while (w->outstanding > 0) {
            sb_kafka_producer_poll(p, 50);
            if (sb_service_stop && w->outstanding > 0) {
                /* give what is in flight a moment, then leave it to redelivery */
                sb_kafka_producer_flush(p, 2000);
                if (w->outstanding > 0) return -1;
            }
        }
        if (sb_service_stop) return -1;
        if (w->failed == 0) return 0;
        sb_warn("retrying undelivered messages attempt=%d failed=%d", attempt + 1, w->failed);
        sb_service_sleep(attempt < 5 ? 200 << attempt : 5000);
    }
}

void sb_service_wait_redis(sb_store_t *store, sb_kafka_consumer_t *c)
{
    if (store->err == SB_STORE_ERR_REFUSED) {
        /* Redis answers but refused the call (full, writes stopped...): PING would say it is
         * up at once, so wait on a back-off instead, paused, then try the call again */
        int ms = sb_store_refusal_wait_ms(store);
        sb_warn("redis refused the batch, pausing consumption for %d ms err=\"%s\"", ms,
                store->errstr);
        if (c) sb_kafka_pause(c);
        sb_service_sleep(ms);
        if (c) sb_kafka_resume(c);
        return;
    }
    sb_warn("redis unavailable, pausing consumption err=\"%s\"", store->errstr);
    if (c) sb_kafka_pause(c);
    if (sb_store_wait_up(store, &sb_service_stop) == 0) sb_info("redis back, resuming");
    if (c) sb_kafka_resume(c);
}

/* A consumed batch: the messages, their dead-letter sources, and the caller's handle. */
typedef struct held {
    sb_kafka_msg_t *msgs;
    char (*src)[512];
    int n;
    void *batch;
} held_t;

/* Up to max messages (waiting up to timeout_ms for the first). Returns the count, 0 none,
 * -1 the consumer failed (after a 1 s pause). */
static int take(sb_kafka_consumer_t *c, size_t max, int timeout_ms, held_t *h)
{
    memset(h, 0, sizeof *h);
    int n = sb_kafka_consume_batch(c, &h->msgs, max, timeout_ms);
    if (n < 0) {
        sb_error("kafka consumer failed err=\"%s\"", sb_kafka_consumer_error(c));
        sb_service_sleep(1000);
        return -1;
    }
    if (n == 0) return 0;
    h->src = malloc((size_t)n * sizeof *h->src);
    if (!h->src) abort();
    for (int i = 0; i < n; i++) sb_service_source_kafka(h->src[i], sizeof h->src[i], &h->msgs[i]);
    h->n = n;
    return n;
}

/* Stores the offsets of a batch whose effect is durable (rc 0), then frees it. */
static void release(sb_kafka_consumer_t *c, held_t *h, int rc)
{
    if (rc == 0 && sb_kafka_store_offsets(c, h->msgs, (size_t)h->n) != 0)
        sb_warn("storing offsets failed err=\"%s\"", sb_kafka_consumer_error(c));
    sb_kafka_msgs_free(h->msgs, (size_t)h->n);
    free(h->src);
    memset(h, 0, sizeof *h);
}

/* A pipelined batch to its end: finish (or, after a failure, again until durable). Returns
 * the messages done, or -1 when a stop came first: its offsets were not stored, and the
 * caller must then drop the batches behind it (drop), whose offsets would pass it. */
static int settle(sb_kafka_consumer_t *c, sb_store_t *store, const sb_service_stages_t *st,
                  void *opaque, held_t *h, int rc)
{
    int n = h->n;
    while (rc != 0 && !sb_service_stop) {
        sb_service_wait_redis(store, c);
        rc = st->again(opaque, h->batch);
    }
    st->end(opaque, h->batch);
    release(c, h, rc);
    return rc == 0 ? n : -1;
}

/* Gives up a batch in hand without storing its offsets (Kafka delivers it again). */
static void drop(sb_kafka_consumer_t *c, const sb_service_stages_t *st, void *opaque, held_t *h)
{
    if (!h->n) return;
    st->end(opaque, h->batch);
    release(c, h, -1);
}

/* The loop with read and plan stages: three batches in hand. Per round, in this order:
 * read the parsed batch (its records come from Redis before the planned batch's script
 * runs), send the planned batch, plan the read one and consume and parse a new one while
 * Redis runs that script, then finish the sent batch. */
static int consume_staged(sb_kafka_consumer_t *c, sb_store_t *store, size_t max, int timeout_ms,
                          int64_t end, const sb_service_stages_t *st, void *opaque,
                          sb_http_latency_t *lat)
{
    held_t ready = {0}, next = {0}, cur;
    int ready_rc = 0, total = 0;
    int64_t t_ready = 0, t_next = 0;
    for (;;) {
        int next_rc = next.n ? st->read(opaque, next.batch) : 0;
        int sent = ready.n && ready_rc == 0 ? st->send(opaque, ready.batch) : -1;
        if (next.n && next_rc == 0) next_rc = st->plan(opaque, next.batch);
        bool busy = ready.n || next.n;
        memset(&cur, 0, sizeof cur);
        if (!sb_service_stop && (!busy || sb_mono_ms() < end) &&
            take(c, max, busy ? 0 : timeout_ms, &cur) > 0)
            cur.batch = st->parse(opaque, cur.msgs, (const char(*)[512])cur.src, (size_t)cur.n);
        int64_t t_cur = sb_mono_us();
        if (ready.n) {
            /* a batch that failed before its script was sent is done again, whole */
            int done = settle(c, store, st, opaque, &ready,
                              sent == 0 ? st->finish(opaque, ready.batch) : -1);
            if (lat) sb_http_latency_observe(lat, sb_mono_us() - t_ready);
            if (done < 0) {
                drop(c, st, opaque, &next);
                drop(c, st, opaque, &cur);
                break;
            }
            total += done;
        }
        ready = next, ready_rc = next_rc, t_ready = t_next;
        next = cur, t_next = t_cur;
        if (!ready.n && !next.n) break;
    }
    return total;
}

int sb_service_consume_pipelined(sb_kafka_consumer_t *c, sb_store_t *store, size_t max,
                                 int timeout_ms, int budget_ms, const sb_service_stages_t *st,
                                 void *opaque, sb_http_latency_t *lat)
{
    if (st->read)
        return consume_staged(c, store, max, timeout_ms, sb_mono_ms() + budget_ms, st, opaque,
                              lat);
    held_t prev = {0}, cur;
    int total = 0;
    int64_t end = sb_mono_ms() + budget_ms, t_prev = 0;
    for (;;) {
        memset(&cur, 0, sizeof cur);
        /* the next batch is parsed while Redis works on the previous one */
        if (!sb_service_stop && (!prev.n || sb_mono_ms() < end) &&
            take(c, max, prev.n ? 0 : timeout_ms, &cur) > 0)
            cur.batch = st->parse(opaque, cur.msgs, (const char(*)[512])cur.src, (size_t)cur.n);
        int64_t t_cur = sb_mono_us();
        if (prev.n) {
            int done = settle(c, store, st, opaque, &prev, st->finish(opaque, prev.batch));
            if (lat) sb_http_latency_observe(lat, sb_mono_us() - t_prev);
            if (done < 0) {
                drop(c, st, opaque, &cur);
                break;
            }
            total += done;
        }
        if (!cur.n) break;
        t_prev = t_cur;
        if (st->send(opaque, cur.batch) != 0) {
            int done = settle(c, store, st, opaque, &cur, -1);
            if (lat) sb_http_latency_observe(lat, sb_mono_us() - t_prev);
            if (done < 0) break;
            total += done;
        } else {
            prev = cur;
        }
    }
    return total;
}
