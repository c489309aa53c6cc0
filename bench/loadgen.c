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
            "       loadgen wait -c CFG --field F -n N [--timeout S]\n"
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
            "wait: polls the dispatcher counter F until it reaches N; the rate counts from its\n"
            "  first change.\n"
            "stamp: lines of stdin and the rate from the first read to the last.\n");
}

typedef struct opts {
    const char *cfg_path, *topic, *kind, *field, *ready, *series;
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

/* Reads one counter of P"stats:dispatcher" (0 when absent). Returns 0 or -1. */
static int read_counter(sb_store_t *st, const char *field, uint64_t *out)
{
    char key[256];
    if (sb_store_key(st, key, sizeof key, "stats:dispatcher") < 0) return -1;
    redisReply *r = sb_store_cmd(st, "HGET %s %s", key, field);
    if (!r) return -1;
    int rc = 0;
    if (r->type == REDIS_REPLY_STRING)
        *out = strtoull(r->str, NULL, 10);
    else if (r->type == REDIS_REPLY_NIL)
        *out = 0;
    else
        rc = -1;
    freeReplyObject(r);
    return rc;
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
    c = sb_kafka_consumer_new(cfg, group, (const char *const[]){o->topic}, 1, err, sizeof err);
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
    uint64_t v = 0, first_v = 0;
    int64_t first_ms = 0;

    if (!(cfg = load_config(o->cfg_path, NULL, 0))) goto fail;
    if (!(st = sb_store_new(cfg, err, sizeof err))) {
        fprintf(stderr, "loadgen: redis: %s\n", err);
        goto fail;
    }
    int64_t deadline = sb_mono_ms() + (int64_t)o->timeout_s * 1000;
    uint64_t v0 = 0;
    if (read_counter(st, o->field, &v0)) {
        fprintf(stderr, "loadgen: redis: %s\n", st->errstr);
        goto fail;
    }
    while (!stop && sb_mono_ms() < deadline) {
        if (read_counter(st, o->field, &v)) {
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
    printf("value=%" PRIu64 " first_ms=%" PRId64 " first_value=%" PRIu64 " done_ms=%" PRId64
           " rate=%.0f\n",
           v, first_ms, first_v, done_ms, secs > 0 ? (double)(v - first_v) / secs : 0.0);
    rc = v >= o->n ? 0 : 1;
fail:
    sb_store_free(st);
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
        {"help", no_argument, NULL, 'h'},
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
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    bool produce = !strcmp(cmd, "produce"), consume = !strcmp(cmd, "consume"),
         wait = !strcmp(cmd, "wait");
    if (!o.cfg_path || !o.n || (!produce && !consume && !wait) ||
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
    return produce ? cmd_produce(&o) : consume ? cmd_consume(&o) : cmd_wait(&o);
}
