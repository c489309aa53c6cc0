/* Load generator of the dispatcher benchmark (bench/bench_dispatcher.sh): produces interaction
 * events through common/kafka.h (as fast as possible, at a fixed rate, or throttled to stay
 * near the dispatcher), consumes survey requests and reports their arrival rate and due-to-
 * arrival latency, and waits on the dispatcher's counters in Redis. Output: key=value lines. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "kafka.h"
#include "log.h"
#include "store.h"
#include "record.h"
#include "token.h"
#include "util.h"

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static void msleep(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: loadgen produce -c CFG -t TOPIC -k KIND -n N [--from SEQ] [--occurred MS]\n"
            "                       [--rate R] [--ahead K]\n"
            "       loadgen consume -c CFG -t TOPIC -k KIND -n N [--from SEQ] [--delay MS]\n"
            "                       [--at MS] [--ready FILE] [--series FILE] [--timeout S]\n"
            "       loadgen wait -c CFG --field F[+F...] -n N [--hash H] [--timeout S]\n"
            "       loadgen responses -c CFG -k KIND -n N [--from SEQ] [--prepare] [--rate R]\n"
            "                         [--watch KEY] [--timeout S]\n"
            "       kcat ... -f '%%o\\n' | loadgen stamp\n"
            "produce: N events of kind KIND, interaction ids KIND.<occurred ms>.<seq>; occurred\n"
            "  is MS, or the produce time when not given; R events/s (0: unpaced); with K, at\n"
            "  most K events ahead of the dispatcher's 'consumed' counter.\n"
            "consume: survey requests of those interactions (new group; ready, and --ready FILE\n"
            "  created, once caught up with the topic) until N distinct arrived; latency =\n"
            "  arrival - (occurred + MS); rates from --at MS (default: the earliest due time);\n"
            "  --series writes a line per request: arrival ms, latency ms, Kafka transit ms\n"
            "  (arrival - CreateTime, i.e. since the dispatcher's produce call); produce_p*\n"
            "  are due-to-produce-call percentiles.\n"
            "wait: polls the counter F (a sum with +) of P<H> (default stats:dispatcher) until\n"
            "  it reaches N; the rate counts from its first change.\n"
            "responses: with --prepare, writes N fired survey records of kind KIND (csat, ces,\n"
            "  nps) into Redis as the dispatcher would, dimension values from 40 profiles;\n"
            "  else produces a valid response to each (answered now, R/s, 0: unpaced). With\n"
            "  --watch KEY (a metric update key such as nps|1h|all|all, whose count must start\n"
            "  at 0) it reads the metrics topic too: latency of response k = arrival of the\n"
            "  first update of KEY with count >= k - produce time of response k.\n"
            "stamp: lines of stdin and the rate from the first read to the last.\n");
}

typedef struct opts {
    const char *cfg_path, *topic, *kind, *field, *ready, *series, *hash, *watch;
    bool prepare;
    uint64_t n, from;
    int64_t occurred, delay, at;
    double rate;
    uint64_t ahead;
    int timeout_s;
} opts_t;

static sb_config_t *load_config(const char *path, const char *const *ov, size_t nov)
{
    sb_problems_t probs = {0};
    sb_config_t *cfg = sb_config_load(path, ov, nov, &probs);
    for (size_t i = 0; i < probs.n; i++)
        fprintf(stderr, "loadgen: %s: %s\n", path, probs.msg[i]);
    sb_problems_clear(&probs);
    return cfg;
}

/* Reads a counter of the hash P<hash> (0 when absent); field may be "a+b+..." for a sum.
 * Returns 0 or -1. */
static int read_counter_of(sb_store_t *st, const char *hash, const char *field, uint64_t *out)
{
    char key[256], f[256];
    if (sb_store_key(st, key, sizeof key, "%s", hash) < 0) return -1;
    *out = 0;
    for (const char *p = field; *p;) {
        size_t n = strcspn(p, "+");
        snprintf(f, sizeof f, "%.*s", (int)n, p);
        p += n + (p[n] == '+');
        redisReply *r = sb_store_cmd(st, "HGET %s %s", key, f);
        if (!r) return -1;
        int bad = r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_NIL;
        if (r->type == REDIS_REPLY_STRING) *out += strtoull(r->str, NULL, 10);
        freeReplyObject(r);
        if (bad) return -1;
    }
    return 0;
}

static int read_counter(sb_store_t *st, const char *field, uint64_t *out)
{
    return read_counter_of(st, "stats:dispatcher", field, out);
}

/* ---------------------------------------------------------------- produce */

typedef struct prod_state {
    uint64_t delivered, failed;
} prod_state_t;

static void on_delivery(void *opaque, void *msg_opaque, int ok, const char *errstr)
{
    prod_state_t *ps = opaque;
    (void)msg_opaque;
    if (ok) {
        ps->delivered++;
    } else {
        if (ps->failed++ == 0) fprintf(stderr, "loadgen: delivery failed: %s\n", errstr);
    }
}

/* A realistic completion event (about 420 bytes) with every dimension and KPI set. */
static int build_event(char *buf, size_t len, const char *kind, uint64_t seq, int64_t occurred)
{
    return snprintf(buf, len,
                    "{\"event_id\":\"evt-%s-%" PRIu64 "\",\"type\":\"interaction.completed\","
                    "\"occurred_at\":%" PRId64 ",\"customer_id\":\"cust-%08" PRIu64 "\","
                    "\"customer_tz\":\"Europe/Berlin\",\"locale\":\"de-DE\","
                    "\"interaction_id\":\"%s.%" PRId64 ".%" PRIu64 "\",\"kind\":\"%s\","
                    "\"channel\":\"email\",\"stage\":\"renewal\",\"agent\":\"agent-%03u\","
                    "\"team\":\"team-%02u\",\"region\":\"region-%u\",\"product\":\"product-%02u\","
                    "\"kpi\":{\"first_response_s\":%u,\"resolution_s\":%u.5,"
                    "\"resolved_first_contact\":%s,\"transfers\":%u}}",
                    kind, seq, occurred, seq, kind, occurred, seq, kind, (unsigned)(seq % 500),
                    (unsigned)(seq % 40), (unsigned)(seq % 8), (unsigned)(seq % 60),
                    (unsigned)(30 + seq % 600), (unsigned)(600 + seq % 86400),
                    seq % 3 ? "true" : "false", (unsigned)(seq % 4));
}

static int cmd_produce(const opts_t *o)
{
    int rc = 1;
    char err[512];
    prod_state_t ps = {0};
    sb_config_t *cfg = NULL;
    sb_kafka_producer_t *p = NULL;
    sb_store_t *st = NULL;
    uint64_t base = 0, consumed = 0;

    if (!(cfg = load_config(o->cfg_path, NULL, 0))) goto fail;
    p = sb_kafka_producer_new(cfg, "bench-loadgen", on_delivery, &ps, err, sizeof err);
    if (!p) {
        fprintf(stderr, "loadgen: %s\n", err);
        goto fail;
    }
    if (o->ahead) {
        st = sb_store_new(cfg, err, sizeof err);
        if (!st || read_counter(st, "consumed", &base)) {
            fprintf(stderr, "loadgen: redis: %s\n", st ? st->errstr : err);
            goto fail;
        }
        consumed = base;
    }
    char ev[1024], key[32];
    size_t bytes = 0;
    int64_t t0 = sb_mono_ms(), throttled_ms = 0;
    uint64_t i;
    for (i = 0; i < o->n && !stop; i++) {
        uint64_t seq = o->from + i;
        if (o->rate > 0) {
            int64_t due = t0 + (int64_t)((double)i * 1000.0 / o->rate);
            while (sb_mono_ms() < due && !stop)
                sb_kafka_producer_poll(p, 1);
        }
        while (o->ahead && i >= consumed - base + o->ahead && !stop) {
            int64_t w = sb_mono_ms();
            sb_kafka_producer_poll(p, 0);
            if (read_counter(st, "consumed", &consumed)) {
                fprintf(stderr, "loadgen: redis: %s\n", st->errstr);
                goto fail;
            }
            if (i >= consumed - base + o->ahead) msleep(2);
            throttled_ms += sb_mono_ms() - w;
        }
        int64_t occurred = o->occurred > 0 ? o->occurred : sb_now_ms();
        int len = build_event(ev, sizeof ev, o->kind, seq, occurred);
        int klen = snprintf(key, sizeof key, "cust-%08" PRIu64, seq);
        if (len <= 0 || (size_t)len >= sizeof ev) goto fail;
        if (sb_kafka_produce(p, o->topic, key, (size_t)klen, ev, (size_t)len, NULL) != 0) {
            fprintf(stderr, "loadgen: produce: %s\n", sb_kafka_producer_error(p));
            goto fail;
        }
        bytes += (size_t)len;
        if (i % 1024 == 0) sb_kafka_producer_poll(p, 0);
    }
    if (sb_kafka_producer_flush(p, 60000) != 0) {
        fprintf(stderr, "loadgen: flush: %s\n", sb_kafka_producer_error(p));
        goto fail;
    }
    double secs = (double)(sb_mono_ms() - t0) / 1000.0;
    printf("produced=%" PRIu64 " delivered=%" PRIu64 " failed=%" PRIu64 " seconds=%.3f "
           "rate=%.0f avg_bytes=%zu throttled_s=%.3f\n",
           i, ps.delivered, ps.failed, secs, secs > 0 ? (double)i / secs : 0.0, i ? bytes / i : 0,
           (double)throttled_ms / 1000.0);
    rc = ps.failed || i < o->n ? 1 : 0;
fail:
    sb_store_free(st);
    sb_kafka_producer_free(p);
    sb_config_free(cfg);
    return rc;
}

/* ---------------------------------------------------------------- consume */

/* Finds "key":"value" in a compact JSON text; returns the value's start and sets *vlen. */
static const char *json_str(const char *buf, size_t len, const char *key, size_t *vlen)
{
    char pat[64];
    int pl = snprintf(pat, sizeof pat, "\"%s\":\"", key);
    const char *s = memmem(buf, len, pat, (size_t)pl);
    if (!s) return NULL;
    s += pl;
    const char *e = memchr(s, '"', len - (size_t)(s - buf));
    if (!e) return NULL;
    *vlen = (size_t)(e - s);
    return s;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static int64_t pct(const int64_t *v, size_t n, int p)
{
    size_t k = (n * (size_t)p + 99) / 100;
    return n ? v[k ? k - 1 : 0] : -1;
}

static int cmd_consume(const opts_t *o)
{
    int rc = 1;
    char err[512], group[64], prefix[300];
    sb_config_t *cfg = NULL;
    sb_kafka_consumer_t *c = NULL;
    unsigned char *seen = NULL;
    FILE *series = NULL;
    int64_t *lat = NULL, *transit = NULL, *to_produce = NULL;
    size_t got = 0, dups = 0, other = 0;
    int64_t first_ms = 0, last_ms = 0, min_due = INT64_MAX, min_ts = INT64_MAX, max_ts = 0;

    /* devkafka answers an empty fetch only after fetch.wait.max.ms (500) even when data arrives
     * meanwhile; a short wait keeps that artefact out of the measured latency */
    const char *ov[] = {"kafka.properties={\"fetch.wait.max.ms\":\"5\"}"};
    if (!(cfg = load_config(o->cfg_path, ov, 1))) goto fail;
    snprintf(group, sizeof group, "bench-consume-%ld", (long)getpid());
    c = sb_kafka_consumer_new(cfg, group, (const char *const[]){o->topic}, 1, 0, err, sizeof err);
    seen = calloc((size_t)o->n / 8 + 1, 1);
    lat = malloc((size_t)o->n * sizeof *lat);
    transit = malloc((size_t)o->n * sizeof *transit);
    to_produce = malloc((size_t)o->n * sizeof *to_produce);
    if (!c || !seen || !lat || !transit || !to_produce) {
        fprintf(stderr, "loadgen: consumer: %s\n", c ? "out of memory" : err);
        goto fail;
    }
    if (o->series && !(series = fopen(o->series, "w"))) {
        fprintf(stderr, "loadgen: %s: %s\n", o->series, strerror(errno));
        goto fail;
    }
    int plen = snprintf(prefix, sizeof prefix, "%s.", o->kind);
    int64_t deadline = sb_mono_ms() + (int64_t)o->timeout_s * 1000;
    /* a new group reads from the beginning: ready once caught up with every partition (older
     * requests are skipped; the caller produces only after that) */
    while (sb_kafka_lag(c) != 0 && !stop && sb_mono_ms() < deadline) {
        sb_kafka_msg_t *m = NULL;
        int n = sb_kafka_consume_batch(c, &m, 1000, 100);
        if (n < 0) goto fail;
        sb_kafka_msgs_free(m, (size_t)n);
    }
    if (o->ready) {
        FILE *f = fopen(o->ready, "w");
        if (!f || fclose(f)) {
            fprintf(stderr, "loadgen: %s: %s\n", o->ready, strerror(errno));
            goto fail;
        }
    }
    while (got < o->n && !stop && sb_mono_ms() < deadline) {
        sb_kafka_msg_t *m = NULL;
        int n = sb_kafka_consume_batch(c, &m, 10000, 100);
        if (n < 0) goto fail;
        int64_t now = sb_now_ms();
        for (int i = 0; i < n; i++) {
            size_t vl;
            const char *v = json_str(m[i].payload, m[i].len, "interaction_id", &vl);
            if (!v || vl <= (size_t)plen || memcmp(v, prefix, (size_t)plen)) {
                other++;
                continue;
            }
            char id[300];
            snprintf(id, sizeof id, "%.*s", (int)(vl - (size_t)plen), v + plen);
            char *dot;
            int64_t occurred = strtoll(id, &dot, 10);
            uint64_t seq = *dot == '.' ? strtoull(dot + 1, NULL, 10) : UINT64_MAX;
            if (seq < o->from || seq - o->from >= o->n) {
                other++;
                continue;
            }
            uint64_t k = seq - o->from;
            if (seen[k / 8] & (1u << (k % 8))) {
                dups++;
                continue;
            }
            seen[k / 8] |= (unsigned char)(1u << (k % 8));
            int64_t due = occurred + o->delay;
            if (due < min_due) min_due = due;
            /* the request's CreateTime is the dispatcher's produce call */
            int64_t ts = m[i].timestamp_ms >= 0 ? m[i].timestamp_ms : now;
            if (ts < min_ts) min_ts = ts;
            if (ts > max_ts) max_ts = ts;
            transit[got] = now - ts;
            lat[got] = now - due;
            to_produce[got] = ts - due;
            if (series)
                fprintf(series, "%" PRId64 " %" PRId64 " %" PRId64 "\n", now, lat[got],
                        transit[got]);
            got++;
            if (!first_ms) first_ms = now;
            last_ms = now;
        }
        sb_kafka_msgs_free(m, (size_t)n);
    }
    int64_t at = o->at > 0 ? o->at : min_due;
    qsort(lat, got, sizeof *lat, cmp_i64);
    qsort(transit, got, sizeof *transit, cmp_i64);
    qsort(to_produce, got, sizeof *to_produce, cmp_i64);
    double span = (double)(last_ms - at) / 1000.0;
    double span1 = (double)(last_ms - first_ms) / 1000.0;
    printf("received=%zu expected=%" PRIu64 " duplicates=%zu other=%zu first_after_ms=%" PRId64
           " last_after_ms=%" PRId64 " rate_from_due=%.0f rate_first_to_last=%.0f p50_ms=%" PRId64
           " p99_ms=%" PRId64 " max_ms=%" PRId64 " produced_first_after_ms=%" PRId64
           " produced_last_after_ms=%" PRId64 " transit_p50_ms=%" PRId64 " transit_p99_ms=%" PRId64
           " produce_p50_ms=%" PRId64 " produce_p99_ms=%" PRId64 "\n",
           got, o->n, dups, other, got ? first_ms - at : -1, got ? last_ms - at : -1,
           span > 0 ? (double)got / span : 0.0, span1 > 0 ? (double)(got - 1) / span1 : 0.0,
           pct(lat, got, 50), pct(lat, got, 99), got ? lat[got - 1] : -1, got ? min_ts - at : -1,
           got ? max_ts - at : -1, pct(transit, got, 50), pct(transit, got, 99),
           pct(to_produce, got, 50), pct(to_produce, got, 99));
    rc = got == o->n ? 0 : 1;
fail:
    sb_kafka_consumer_close(c);
    if (series) fclose(series);
    free(seen);
    free(lat);
    free(transit);
    free(to_produce);
    sb_config_free(cfg);
    return rc;
}

/* ---------------------------------------------------------------- stamp */

/* Counts the lines of stdin (one per message of a `kcat -f '%o\n'` pipe) and the time from the
 * first read to the last; the rate leaves out the lines of the first read. */
static int cmd_stamp(void)
{
    static char buf[1 << 16];
    uint64_t lines = 0, first_lines = 0;
    int64_t first_ms = 0, last_ms = 0;
    for (;;) {
        ssize_t n = read(0, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        last_ms = sb_now_ms();
        for (ssize_t i = 0; i < n; i++)
            lines += buf[i] == '\n';
        if (!first_ms) {
            first_ms = last_ms;
            first_lines = lines;
        }
    }
    double secs = (double)(last_ms - first_ms) / 1000.0;
    printf("lines=%" PRIu64 " first_ms=%" PRId64 " first_value=%" PRIu64 " done_ms=%" PRId64
           " rate=%.0f\n",
           lines, first_ms, first_lines, last_ms,
           secs > 0 ? (double)(lines - first_lines) / secs : 0.0);
    return lines ? 0 : 1;
}

/* ---------------------------------------------------------------- wait */

static int cmd_wait(const opts_t *o)
{
    int rc = 1;
    char err[512];
    sb_config_t *cfg = NULL;
    sb_store_t *st = NULL;
    uint64_t v = 0, first_v = 0, polls = 0;
    int64_t first_ms = 0;

    if (!(cfg = load_config(o->cfg_path, NULL, 0))) goto fail;
    if (!(st = sb_store_new(cfg, err, sizeof err))) {
        fprintf(stderr, "loadgen: redis: %s\n", err);
        goto fail;
    }
    int64_t deadline = sb_mono_ms() + (int64_t)o->timeout_s * 1000;
    uint64_t v0 = 0;
    const char *hash = o->hash ? o->hash : "stats:dispatcher";
    if (read_counter_of(st, hash, o->field, &v0)) {
        fprintf(stderr, "loadgen: redis: %s\n", st->errstr);
        goto fail;
    }
    while (!stop && sb_mono_ms() < deadline) {
        polls++;
        if (read_counter_of(st, hash, o->field, &v)) {
            fprintf(stderr, "loadgen: redis: %s\n", st->errstr);
            goto fail;
        }
        if (v != v0 && !first_ms) {
            first_ms = sb_now_ms();
            first_v = v;
        }
        if (v >= o->n) break;
        msleep(2);
    }
    int64_t done_ms = sb_now_ms();
    double secs = (double)(done_ms - first_ms) / 1000.0;
    size_t fields = 1;
    for (const char *p = o->field; *p; p++) fields += *p == '+';
    printf("value=%" PRIu64 " first_ms=%" PRId64 " first_value=%" PRIu64 " done_ms=%" PRId64
           " rate=%.0f hgets=%" PRIu64 "\n",
           v, first_ms, first_v, done_ms, secs > 0 ? (double)(v - first_v) / secs : 0.0,
           (polls + 1) * fields);
    rc = v >= o->n ? 0 : 1;
fail:
    sb_store_free(st);
    sb_config_free(cfg);
    return rc;
}

/* ---------------------------------------------------------------- responses (aggregator) */

/* The survey of sequence number seq: its record (fired, dimension values from one of 40
 * profiles), id and token. */
static void bench_survey(const sb_config_t *cfg, sb_kind_t kind, uint64_t seq, sb_record_t *r,
                         char *id, char *token)
{
    static const char *const channels[] = {"email", "sms", "phone"};
    unsigned p = (unsigned)(seq % 40);
    memset(r, 0, sizeof *r);
    r->state = SB_REC_FIRED;
    r->kind = kind;
    snprintf(r->journey, sizeof r->journey, "bench-%s", sb_kind_names[kind]);
    snprintf(r->customer_id, sizeof r->customer_id, "cust-%08" PRIu64, seq);
    snprintf(r->interaction_id, sizeof r->interaction_id, "bench-%" PRIu64, seq);
    snprintf(r->channel, sizeof r->channel, "%s", channels[p % 3]);
    snprintf(r->dim[SB_DIM_ALL], sizeof r->dim[0], "all");
    snprintf(r->dim[SB_DIM_CHANNEL], sizeof r->dim[0], "%s", r->channel);
    snprintf(r->dim[SB_DIM_AGENT], sizeof r->dim[0], "agent-%02u", p % 20);
    snprintf(r->dim[SB_DIM_TEAM], sizeof r->dim[0], "team-%u", p % 5);
    snprintf(r->dim[SB_DIM_REGION], sizeof r->dim[0], "region-%u", p % 4);
    snprintf(r->dim[SB_DIM_PRODUCT], sizeof r->dim[0], "product-%u", p % 8);
    snprintf(r->dim[SB_DIM_STAGE], sizeof r->dim[0], "support");
    snprintf(r->dim[SB_DIM_JOURNEY], sizeof r->dim[0], "%s", r->journey);
    r->due_ms = 0;
    r->expires_ms = INT64_C(4102444800000); /* 2100 */
    sb_record_survey_id(r->interaction_id, r->journey, id);
    if (token) sb_token_sign(cfg->token.secret, id, r->expires_ms, token, SB_TOKEN_MAX);
}

static int prepare_records(const sb_config_t *cfg, sb_kind_t kind, const opts_t *o)
{
    char err[512];
    sb_store_t *st = sb_store_new(cfg, err, sizeof err);
    if (!st) {
        fprintf(stderr, "loadgen: redis: %s\n", err);
        return 1;
    }
    int64_t t0 = sb_mono_ms();
    sb_record_t r;
    char id[SB_SURVEY_ID_LEN + 1], key[300];
    uint64_t i = 0;
    while (i < o->n) {
        size_t k = 0;
        for (; k < 1000 && i < o->n; k++, i++) {
            bench_survey(cfg, kind, o->from + i, &r, id, NULL);
            size_t len;
            char *v = sb_record_encode(&r, &len);
            sb_store_key(st, key, sizeof key, "s:%s", id);
            const char *argv[] = {"SET", key, v};
            size_t lens[] = {3, strlen(key), len};
            if (!v || sb_store_append_argv(st, 3, argv, lens)) {
                free(v);
                goto fail;
            }
            free(v);
        }
        redisReply *rep[1000];
        if (sb_store_pipeline_get(st, rep, k)) goto fail;
        for (size_t j = 0; j < k; j++) freeReplyObject(rep[j]);
    }
    printf("prepared=%" PRIu64 " seconds=%.3f\n", i, (double)(sb_mono_ms() - t0) / 1000.0);
    sb_store_free(st);
    return 0;
fail:
    fprintf(stderr, "loadgen: redis: %s\n", st->errstr);
    sb_store_free(st);
    return 1;
}

/* Reads "count":N from a metric update. */
static long long update_count(const char *buf, size_t len)
{
    const char *s = memmem(buf, len, "\"count\":", 8);
    return s ? strtoll(s + 8, NULL, 10) : -1;
}

static int cmd_responses(const opts_t *o)
{
    int rc = 1;
    char err[512];
    prod_state_t ps = {0};
    sb_config_t *cfg = NULL;
    sb_kafka_producer_t *p = NULL;
    sb_kafka_consumer_t *c = NULL;
    int64_t *sent = NULL, *lat = NULL;
    int kind = sb_kind_parse(o->kind ? o->kind : "");
    if (kind < 0) {
        fprintf(stderr, "loadgen: --kind csat|ces|nps\n");
        return 2;
    }
    if (!(cfg = load_config(o->cfg_path, NULL, 0))) goto fail;
    if (o->prepare) {
        rc = prepare_records(cfg, (sb_kind_t)kind, o);
        goto fail;
    }
    p = sb_kafka_producer_new(cfg, "bench-loadgen", on_delivery, &ps, err, sizeof err);
    if (!p) {
        fprintf(stderr, "loadgen: %s\n", err);
        goto fail;
    }
    if (o->watch) {
        char group[64];
        snprintf(group, sizeof group, "bench-watch-%d", (int)getpid());
        const char *topics[] = {cfg->topics.metrics};
        if (!(c = sb_kafka_consumer_new(cfg, group, topics, 1, 0, err, sizeof err))) {
            fprintf(stderr, "loadgen: %s\n", err);
            goto fail;
        }
        /* joined once the earlier updates on the topic arrive: only then is the clock fair */
        int64_t join_end = sb_mono_ms() + 30000;
        bool joined = false;
        while (!joined && !stop && sb_mono_ms() < join_end) {
            sb_kafka_msg_t *m = NULL;
            int got = sb_kafka_consume_batch(c, &m, 1000, 100);
            joined = got > 0;
            sb_kafka_msgs_free(m, got > 0 ? (size_t)got : 0);
        }
        /* and caught up with what is already there */
        for (int got = 1; got > 0 && !stop;) {
            sb_kafka_msg_t *m = NULL;
            got = sb_kafka_consume_batch(c, &m, 1000, 300);
            sb_kafka_msgs_free(m, got > 0 ? (size_t)got : 0);
        }
        if (!joined) fprintf(stderr, "loadgen: no metric update seen before producing\n");
        sent = calloc(o->n + 1, sizeof *sent);
        lat = calloc(o->n + 1, sizeof *lat);
        if (!sent || !lat) goto fail;
    }
    const sb_scale_t *sc = &cfg->scales[kind];
    char body[512], id[SB_SURVEY_ID_LEN + 1], token[SB_TOKEN_MAX], when[32];
    sb_record_t r;
    size_t bytes = 0, nlat = 0;
    int64_t t0 = sb_mono_ms();
    uint64_t i = 0, matched = 0;
    int64_t deadline = 0;
    while (!stop) {
        if (i < o->n) {
            uint64_t seq = o->from + i;
            if (o->rate > 0) {
                int64_t due = t0 + (int64_t)((double)i * 1000.0 / o->rate);
                if (sb_mono_ms() < due) goto poll;
            }
            bench_survey(cfg, (sb_kind_t)kind, seq, &r, id, token);
            sb_time_format(sb_now_ms(), when);
            /* a plausible spread: most answers at the top of the scale, 15 % at the bottom
             * (NPS 0..10: 15 % detractors; CSAT 1..5: 15 % at 3 or below) */
            static const double top[20] = {1, 1, 1, 1, 1, 1, 1, 1, .9, .9, .9, .9, .8, .8, .8, .8,
                                           .75, .5, .25, 0};
            int score = sc->min + (int)(top[seq % 20] * (sc->max - sc->min) + 0.5);
            int len = snprintf(body, sizeof body,
                               "{\"survey_id\":\"%s\",\"token\":\"%s\",\"score\":%d,"
                               "\"answered_at\":\"%s\"%s}",
                               id, token, score, when,
                               seq % 5 ? "" : ",\"comment\":\"could have been faster\"");
            while (sb_kafka_produce(p, cfg->topics.responses, id, SB_SURVEY_ID_LEN, body,
                                    (size_t)len, NULL) != 0)
                sb_kafka_producer_poll(p, 1);
            if (sent) sent[i + 1] = sb_now_ms();
            bytes += (size_t)len;
            i++;
            if (i % 1024 == 0 || o->rate > 0) sb_kafka_producer_poll(p, 0);
            if (i == o->n) {
                if (sb_kafka_producer_flush(p, 60000) != 0) goto fail;
                printf("produced=%" PRIu64 " seconds=%.3f rate=%.0f avg_bytes=%zu ", i,
                       (double)(sb_mono_ms() - t0) / 1000.0,
                       (double)i * 1000.0 / (double)(sb_mono_ms() - t0 + 1), bytes / i);
                fflush(stdout);
                if (!c) break;
                deadline = sb_mono_ms() + (int64_t)o->timeout_s * 1000;
            }
            if (o->rate <= 0) continue;
        }
    poll:
        if (c) {
            sb_kafka_msg_t *m = NULL;
            int n = sb_kafka_consume_batch(c, &m, 1000, i < o->n ? 0 : 50);
            int64_t now = sb_now_ms();
            for (int k = 0; k < n; k++) {
                if (!m[k].key || m[k].keylen != strlen(o->watch) ||
                    memcmp(m[k].key, o->watch, m[k].keylen))
                    continue;
                long long cnt = update_count(m[k].payload, m[k].len);
                while (cnt > 0 && matched < (uint64_t)cnt && matched < i) {
                    matched++;
                    lat[nlat++] = now - sent[matched];
                }
            }
            sb_kafka_msgs_free(m, n > 0 ? (size_t)n : 0);
            if (i == o->n && (matched >= o->n || sb_mono_ms() > deadline)) break;
        } else if (o->rate > 0) {
            sb_kafka_producer_poll(p, 1);
        }
    }
    if (c) {
        qsort(lat, nlat, sizeof *lat, cmp_i64);
        printf("matched=%" PRIu64 " p50_ms=%" PRId64 " p99_ms=%" PRId64 " max_ms=%" PRId64, matched,
               pct(lat, nlat, 50), pct(lat, nlat, 99), nlat ? lat[nlat - 1] : -1);
        rc = matched >= o->n ? 0 : 1;
    } else {
        rc = ps.failed || i < o->n ? 1 : 0;
    }
    printf("\n");
fail:
    free(sent);
    free(lat);
    if (c) sb_kafka_consumer_close(c);
    sb_kafka_producer_free(p);
    sb_config_free(cfg);
    return rc;
}

int main(int argc, char **argv)
{
    /* clang-format off */
    static const struct option lopts[] = {
        {"config", required_argument, NULL, 'c'},  {"topic", required_argument, NULL, 't'},
        {"kind", required_argument, NULL, 'k'},    {"count", required_argument, NULL, 'n'},
        {"from", required_argument, NULL, 'f'},    {"occurred", required_argument, NULL, 'o'},
        {"rate", required_argument, NULL, 'r'},    {"ahead", required_argument, NULL, 'a'},
        {"delay", required_argument, NULL, 'd'},   {"at", required_argument, NULL, 'T'},
        {"ready", required_argument, NULL, 'R'},   {"timeout", required_argument, NULL, 'w'},
        {"field", required_argument, NULL, 'F'},   {"series", required_argument, NULL, 'S'},
        {"hash", required_argument, NULL, 'H'},    {"watch", required_argument, NULL, 'W'},
        {"prepare", no_argument, NULL, 'P'},       {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    /* clang-format on */
    opts_t o = {.timeout_s = 120};
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "stamp")) return cmd_stamp();
    int c;
    optind = 2;
    while ((c = getopt_long(argc, argv, "c:t:k:n:h", lopts, NULL)) != -1) {
        switch (c) {
        case 'c':
            o.cfg_path = optarg;
            break;
        case 't':
            o.topic = optarg;
            break;
        case 'k':
            o.kind = optarg;
            break;
        case 'n':
            o.n = strtoull(optarg, NULL, 10);
            break;
        case 'f':
            o.from = strtoull(optarg, NULL, 10);
            break;
        case 'o':
            o.occurred = strtoll(optarg, NULL, 10);
            break;
        case 'r':
            o.rate = strtod(optarg, NULL);
            break;
        case 'a':
            o.ahead = strtoull(optarg, NULL, 10);
            break;
        case 'd':
            o.delay = strtoll(optarg, NULL, 10);
            break;
        case 'T':
            o.at = strtoll(optarg, NULL, 10);
            break;
        case 'R':
            o.ready = optarg;
            break;
        case 'w':
            o.timeout_s = atoi(optarg);
            break;
        case 'F':
            o.field = optarg;
            break;
        case 'S':
            o.series = optarg;
            break;
        case 'H':
            o.hash = optarg;
            break;
        case 'W':
            o.watch = optarg;
            break;
        case 'P':
            o.prepare = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    bool produce = !strcmp(cmd, "produce"), consume = !strcmp(cmd, "consume"),
         wait = !strcmp(cmd, "wait"), responses = !strcmp(cmd, "responses");
    if (!o.cfg_path || !o.n || (!produce && !consume && !wait && !responses) ||
        ((produce || consume) && (!o.topic || !o.kind)) || (wait && !o.field)) {
        usage(stderr);
        return 2;
    }
    const char *lvl = getenv("SURVEYBUS_LOG_LEVEL");
    int level = lvl ? sb_log_level_parse(lvl) : SB_LOG_WARN;
    sb_log_init("loadgen", level < 0 ? SB_LOG_WARN : level);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    setvbuf(stdout, NULL, _IOLBF, 0);
    return produce     ? cmd_produce(&o)
           : consume   ? cmd_consume(&o)
           : responses ? cmd_responses(&o)
                       : cmd_wait(&o);
}
