/* The real bin/surveybus-aggregator as a child process against the harness's redis-server,
 * mosquitto and devkafka. Survey records are written into Redis as the dispatcher writes
 * them; responses, requests and interaction events go in on Kafka (some on MQTT, and in the
 * MQTT-only test a real dispatcher sends the requests); what comes out (metric updates on
 * Kafka and retained MQTT topics, alerts, dead letters, Redis counters) is compared with a
 * brute-force recomputation from the accepted input.
 * Each test has its own topics, Redis prefix, consumer group and MQTT client ids. */
#include <arpa/inet.h>
#include <check.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "harness.h"
#include "kafka.h"
#include "log.h"
#include "metric.h"
#include "mqtt.h"
#include "record.h"
#include "stats.h"
#include "store.h"
#include "survey.h"
#include "token.h"
#include "util.h"
#include "window.h"

#define SEC 1000LL
#define MIN (60 * SEC)
#define HOUR (60 * MIN)
#define DAY (24 * HOUR)

static sb_h_t h;

/* Private topics per test where the test reads or must not share them; the rest go to the
 * shared x.* topics (devkafka creates topics slowly: only what is needed). */
static const char TOPICS[] = "x.resp,x.req,x.in,x.met,x.alert,x.dlq,o1.resp,o1.met,o2.resp,o2.met,"
                             "o3.resp,o3.met,o4.resp,o4.met,r5.resp,r5.met,b6.resp,b6.met,"
                             "b6.alert,b6.dlq,k7.resp,k7.req,k7.in,k7.met,m8.resp,m8.met,"
                             "d9.resp,d9.met,d9.alert,d9.dlq,n10.resp,n10.in,n10.met,"
                             "s10.resp,s10.req,s10.in,dp.dlq,sk.resp,l11.resp,l11.met,a12.alert";

static void setup(void)
{
    sb_log_init("test_aggregator", SB_LOG_WARN);
    if (sb_h_start(&h, SB_H_ALL, 4, TOPICS) != 0) {
        fprintf(stderr, "cannot start the servers\n");
        exit(1);
    }
}

static void teardown(void)
{
    sb_h_stop(&h);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---------------------------------------------------------------- a test's world */

typedef struct env {
    char name[16];
    char path[512];
    sb_config_t *cfg;
    sb_store_t *st;
    sb_kafka_producer_t *prod;
    int failed;
    pid_t procs[4];
} env_t;

static void on_dr(void *opaque, void *msg_opaque, int ok, const char *errstr)
{
    (void)msg_opaque, (void)errstr;
    if (!ok) ((env_t *)opaque)->failed++;
}

/* own: which of resp, req, in, met, alert, dlq are the test's own (a string of 6 0/1). */
static void env_open(env_t *e, const char *name, const char *own, const char *extra)
{
    memset(e, 0, sizeof *e);
    snprintf(e->name, sizeof e->name, "%s", name);
    char t[6][40], prefix[32], cid[32];
    const char *sfx[] = {"resp", "req", "in", "met", "alert", "dlq"};
    for (int i = 0; i < 6; i++) snprintf(t[i], sizeof t[i], "%s.%s", own[i] == '1' ? name : "x", sfx[i]);
    snprintf(prefix, sizeof prefix, "%s:", name);
    snprintf(cid, sizeof cid, "%s-agg", name);
    char mt[6][64];
    snprintf(mt[0], sizeof mt[0], "%s/metrics/{metric}/{window}/{dimension}/{value}", name);
    snprintf(mt[1], sizeof mt[1], "%s/alerts/{type}", name);
    snprintf(mt[2], sizeof mt[2], "%s/fieldservice/+/survey/response", name);
    snprintf(mt[3], sizeof mt[3], "%s/fieldservice/+/visit/completed", name);
    json_t *base = json_pack(
        "{s:{s:s, s:{s:s}}, s:{s:s}, s:{s:s, s:s, s:s, s:s, s:s, s:s}, s:{s:s},"
        " s:{s:s, s:s, s:[s], s:[s]}, s:{s:i, s:i}}",
        "kafka", "group", name, "properties", "reconnect.backoff.max.ms", "1000", "redis",
        "prefix", prefix, "topics", "responses", t[0], "requests", t[1], "interactions", t[2],
        "metrics", t[3], "alerts", t[4], "dlq", t[5], "mqtt", "client_id", cid, "mqtt_topics",
        "metrics", mt[0], "alerts", mt[1], "responses", mt[2], "interactions", mt[3], "publish",
        "interval_ms", 300, "republish_s", 600);
    e->cfg = sb_h_config(&h, name, base, extra, e->path, sizeof e->path);
    char err[256];
    e->st = sb_store_new(e->cfg, err, sizeof err);
    ck_assert_msg(e->st != NULL, "store: %s", err);
    if (!e->cfg->kafka.brokers || !e->cfg->kafka.brokers[0]) return; /* an MQTT-only test */
    e->prod = sb_kafka_producer_new(e->cfg, "test-producer", on_dr, e, err, sizeof err);
    ck_assert_msg(e->prod != NULL, "producer: %s", err);
}

static void env_close(env_t *e)
{
    for (int i = 0; i < 4; i++)
        if (e->procs[i] > 0) {
            sb_h_kill(e->procs[i], SIGKILL);
            sb_h_wait_exit(e->procs[i], 5000, NULL);
        }
    if (h.redis_pid == 0) sb_h_redis_start(&h);
    if (e->prod) {
        sb_kafka_producer_flush(e->prod, 5000);
        sb_kafka_producer_free(e->prod);
    }
    sb_store_free(e->st);
    sb_config_free(e->cfg);
}

/* Starts an aggregator (slot 0..3) with its own MQTT client id. */
/* Starts an aggregator in slot with e's config and, when more is not NULL, one more
 * "--set path=value". */
static void agg_start_set(env_t *e, int slot, const char *more)
{
    char set[80], log[64];
    snprintf(set, sizeof set, "mqtt.client_id=%s-agg-%d", e->name, slot);
    snprintf(log, sizeof log, "%s-agg.log", e->name);
    const char *argv[] = {getenv("SB_AGGREGATOR") ? getenv("SB_AGGREGATOR")
                                                  : sb_h_bin("surveybus-aggregator"),
                          "-c", e->path, "--set", set, more ? "--set" : NULL, more, NULL};
    e->procs[slot] = sb_h_spawn(&h, argv, log);
    ck_assert_int_gt(e->procs[slot], 0);
}

static void agg_start(env_t *e, int slot)
{
    agg_start_set(e, slot, NULL);
}

static void agg_kill9(env_t *e, int slot)
{
    ck_assert_int_eq(sb_h_kill(e->procs[slot], SIGKILL), 0);
    ck_assert_int_eq(sb_h_wait_exit(e->procs[slot], 5000, NULL), 0);
    e->procs[slot] = 0;
}

/* SIGTERM: exit 0 within 10 s. */
static void agg_stop(env_t *e, int slot)
{
    ck_assert_int_eq(sb_h_kill(e->procs[slot], SIGTERM), 0);
    int st = 0;
    ck_assert_msg(sb_h_wait_exit(e->procs[slot], 10000, &st) == 0, "aggregator did not stop");
    e->procs[slot] = 0;
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit status 0x%x", st);
}

static long long stat_get(env_t *e, const char *field)
{
    char key[128];
    sb_store_key(e->st, key, sizeof key, "stats:aggregator");
    redisReply *r = sb_store_cmd(e->st, "HGET %s %s", key, field);
    long long v = r && r->type == REDIS_REPLY_STRING ? strtoll(r->str, NULL, 10) : 0;
    if (r) freeReplyObject(r);
    return v;
}

static long long counted(env_t *e)
{
    return stat_get(e, "counted|csat") + stat_get(e, "counted|ces") + stat_get(e, "counted|nps");
}

static void produce(env_t *e, const char *topic, const char *key, const char *val)
{
    while (sb_kafka_produce(e->prod, topic, key, key ? strlen(key) : 0, val, strlen(val), NULL) != 0)
        sb_kafka_producer_poll(e->prod, 10);
}

static void flush_all(env_t *e)
{
    ck_assert_int_eq(sb_kafka_producer_flush(e->prod, 30000), 0);
    ck_assert_int_eq(e->failed, 0);
}

/* ---------------------------------------------------------------- surveys */

typedef struct survey {
    char id[SB_SURVEY_ID_LEN + 1];
    char token[SB_TOKEN_MAX];
    sb_record_t rec;
} survey_t;

/* Writes a fired survey's record as the dispatcher would, with dimension values. */
static void survey_make(env_t *e, survey_t *s, const char *interaction, sb_kind_t kind,
                        const char *const dims[SB_DIM__N], char state)
{
    sb_record_t *r = &s->rec;
    memset(r, 0, sizeof *r);
    r->state = state;
    r->kind = kind;
    snprintf(r->journey, sizeof r->journey, "%s-journey", sb_kind_names[kind]);
    snprintf(r->customer_id, sizeof r->customer_id, "c-%s", interaction);
    snprintf(r->interaction_id, sizeof r->interaction_id, "%s", interaction);
    snprintf(r->channel, sizeof r->channel, "%s", dims[SB_DIM_CHANNEL] ? dims[SB_DIM_CHANNEL] : "email");
    for (int d = 0; d < SB_DIM__N; d++)
        if (dims[d]) snprintf(r->dim[d], sizeof r->dim[d], "%s", dims[d]);
    /* the record keeps these as its own fields, not as dimension values */
    if (dims[SB_DIM_DEVICE]) snprintf(r->device_id, sizeof r->device_id, "%s", dims[SB_DIM_DEVICE]);
    if (dims[SB_DIM_LOCALE]) snprintf(r->locale, sizeof r->locale, "%s", dims[SB_DIM_LOCALE]);
    snprintf(r->dim[SB_DIM_ALL], sizeof r->dim[0], "all");
    snprintf(r->dim[SB_DIM_JOURNEY], sizeof r->dim[0], "%s", r->journey);
    r->due_ms = sb_now_ms() - 41 * DAY;
    r->expires_ms = sb_now_ms() + 30 * DAY;
    sb_record_survey_id(interaction, r->journey, s->id);
    ck_assert_int_eq(sb_token_sign(e->cfg->token.secret, s->id, r->expires_ms, s->token,
                                   sizeof s->token), 0);
    sb_h_store_record(e->st, r, s->id);
}

static void response_json(char *buf, size_t len, const survey_t *s, const char *token, int score,
                          int64_t answered_ms, const char *comment)
{
    char when[32];
    sb_time_format(answered_ms, when);
    snprintf(buf, len, "{\"survey_id\":\"%.24s\",\"token\":\"%.127s\",\"score\":%d,\"answered_at\":\"%s\"%s%s%s}",
             s->id, token ? token : s->token, score, when, comment ? ",\"comment\":\"" : "",
             comment ? comment : "", comment ? "\"" : "");
}

/* ---------------------------------------------------------------- metric updates out */

typedef struct upd {
    char key[600];
    sb_metric_update_t u;
    char *json;
} upd_t;

typedef struct upds {
    upd_t *v;
    size_t n, cap;
    int bad;
} upds_t;

/* Keeps the last update per key. */
static void upds_put(upds_t *o, const char *key, const char *json, size_t len)
{
    upd_t *x = NULL;
    for (size_t i = 0; i < o->n && !x; i++)
        if (!strcmp(o->v[i].key, key)) x = &o->v[i];
    if (!x) {
        if (o->n == o->cap) {
            o->cap = o->cap ? o->cap * 2 : 256;
            o->v = realloc(o->v, o->cap * sizeof *o->v);
            ck_assert_ptr_nonnull(o->v);
        }
        x = &o->v[o->n++];
        memset(x, 0, sizeof *x);
        snprintf(x->key, sizeof x->key, "%s", key);
    }
    free(x->json);
    x->json = strndup(json, len);
    char err[128];
    if (sb_metric_update_decode(json, len, &x->u, err, sizeof err) != 0) o->bad++;
}

static int on_metric(void *opaque, const sb_kafka_msg_t *m)
{
    char key[600];
    snprintf(key, sizeof key, "%.*s", (int)m->keylen, m->key ? (const char *)m->key : "");
    upds_put(opaque, key, m->payload, m->len);
    return 0;
}

static void upds_free(upds_t *o)
{
    for (size_t i = 0; i < o->n; i++) free(o->v[i].json);
    free(o->v);
    memset(o, 0, sizeof *o);
}

static void read_metrics(env_t *e, upds_t *o)
{
    char err[256];
    memset(o, 0, sizeof *o);
    ck_assert_msg(sb_kafka_scan(e->cfg, e->cfg->topics.metrics, 0, on_metric, o, 30000, err,
                                sizeof err) >= 0, "scan: %s", err);
    ck_assert_int_eq(o->bad, 0);
}

/* Every message of a topic, as NUL-terminated strings. */
typedef struct texts {
    char **v;
    size_t n, cap;
} texts_t;

static int on_text(void *opaque, const sb_kafka_msg_t *m)
{
    texts_t *t = opaque;
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 64;
        t->v = realloc(t->v, t->cap * sizeof *t->v);
    }
    t->v[t->n++] = strndup(m->payload, m->len);
    return 0;
}

static void read_texts(env_t *e, const char *topic, texts_t *t)
{
    char err[256];
    memset(t, 0, sizeof *t);
    ck_assert_msg(sb_kafka_scan(e->cfg, topic, 0, on_text, t, 30000, err, sizeof err) >= 0,
                  "scan: %s", err);
}

static void texts_free(texts_t *t)
{
    for (size_t i = 0; i < t->n; i++) free(t->v[i]);
    free(t->v);
}

/* ---------------------------------------------------------------- the oracle */

typedef struct answer {
    int kind, score;
    int64_t ts;
    int profile;
} answer_t;

enum { PROFILES = 40 };
static const char *const CHANNELS[] = {"email", "sms", "phone"};
static char prof_dims[PROFILES][SB_DIM__N][24];

static void profiles_init(void)
{
    for (int p = 0; p < PROFILES; p++) {
        snprintf(prof_dims[p][SB_DIM_CHANNEL], 24, "%s", CHANNELS[p % 3]);
        snprintf(prof_dims[p][SB_DIM_AGENT], 24, "a-%d", p % 10);
        snprintf(prof_dims[p][SB_DIM_TEAM], 24, "t-%d", p % 4);
        snprintf(prof_dims[p][SB_DIM_REGION], 24, "r-%d", p % 5);
        snprintf(prof_dims[p][SB_DIM_PRODUCT], 24, "p-%d", p % 7);
        if (p % 8) snprintf(prof_dims[p][SB_DIM_STAGE], 24, "s-%d", p % 2); /* some have none */
    }
}

/* The value of (dim, value) for an answer, "" when it has none. */
static const char *answer_dim(const answer_t *a, sb_dim_t d)
{
    static char journey[32];
    if (d == SB_DIM_ALL) return "all";
    if (d == SB_DIM_JOURNEY) {
        snprintf(journey, sizeof journey, "%s-journey", sb_kind_names[a->kind]);
        return journey;
    }
    return prof_dims[a->profile][d];
}

/* Brute force: the metric over the accepted answers in (window as of as_of, dim=value). */
static void oracle(const sb_config_t *cfg, const answer_t *ans, size_t n, const sb_metric_update_t *u,
                   sb_metric_value_t *out)
{
    int64_t W = 0;
    for (size_t k = 0; k < cfg->n_windows; k++) {
        char nm[SB_WINDOW_NAME_MAX];
        sb_window_name(cfg->windows_ms[k], nm, sizeof nm);
        if (!strcmp(nm, u->window)) W = cfg->windows_ms[k];
    }
    ck_assert_int_gt(W, 0);
    int64_t B = sb_window_bucket_width(W);
    int64_t end = sb_window_bucket_start(u->as_of_ms, B);
    int dim = sb_dim_parse(u->dimension);
    ck_assert_int_ge(dim, 0);
    sb_hist_t hist[SB_KIND__N];
    memset(hist, 0, sizeof hist);
    for (size_t i = 0; i < n; i++) {
        int64_t s = sb_window_bucket_start(ans[i].ts, B);
        if (s <= end - W || s > end) continue;
        if (strcmp(answer_dim(&ans[i], (sb_dim_t)dim), u->value)) continue;
        sb_stats_hist_add(&hist[ans[i].kind], ans[i].score, 1);
    }
    switch (u->metric) {
    case SB_METRIC_NPS: sb_stats_nps(&hist[SB_KIND_NPS], out); break;
    case SB_METRIC_CSAT: sb_stats_csat(&hist[SB_KIND_CSAT], &cfg->scales[SB_KIND_CSAT], out); break;
    case SB_METRIC_CES: sb_stats_ces(&hist[SB_KIND_CES], &cfg->scales[SB_KIND_CES], out); break;
    case SB_METRIC_RESPONSE_RATE: {
        uint64_t t = 0;
        for (int k = 0; k < SB_KIND__N; k++) t += sb_stats_hist_total(&hist[k]);
        sb_stats_rate(t, 0, out);
        break;
    }
    case SB_METRIC_FRT:
    case SB_METRIC_ART:
    case SB_METRIC_FCR:
    case SB_METRIC_TRANSFER_RATE:
        /* no KPI events in the streams: an active slice's KPI metrics are its empty update */
        memset(out, 0, sizeof *out);
        break;
    default: ck_abort_msg("metric %d unexpected", u->metric);
    }
}

static void expect_same(const sb_metric_update_t *u, const sb_metric_value_t *want, const char *json)
{
    const sb_metric_value_t *got = &u->v;
    uint64_t wc = u->metric == SB_METRIC_RESPONSE_RATE ? want->num : want->count;
    uint64_t gc = u->metric == SB_METRIC_RESPONSE_RATE ? got->num : got->count;
    ck_assert_msg(gc == wc, "%s: count %llu, oracle %llu", json, (unsigned long long)gc,
                  (unsigned long long)wc);
    ck_assert_msg(got->has_value == want->has_value, "%s: has_value differs", json);
    if (want->has_value)
        ck_assert_msg(fabs(got->score - want->score) <= 0.01, "%s: score, oracle %.4f", json,
                      want->score);
    switch (u->metric) {
    case SB_METRIC_NPS:
        ck_assert_msg(got->promoters == want->promoters && got->passives == want->passives &&
                          got->detractors == want->detractors, "%s: nps counts", json);
        if (want->has_value) ck_assert_msg(fabs(got->moe95 - want->moe95) <= 0.01, "%s: moe", json);
        break;
    case SB_METRIC_CSAT:
        ck_assert_msg(got->satisfied == want->satisfied, "%s: satisfied", json);
        if (want->has_value)
            ck_assert_msg(fabs(got->ci95_low - want->ci95_low) <= 0.01 &&
                              fabs(got->ci95_high - want->ci95_high) <= 0.01, "%s: ci", json);
        break;
    case SB_METRIC_CES:
        ck_assert_msg(got->easy == want->easy, "%s: easy", json);
        break;
    default: break;
    }
}

/* A stream of responses with duplicates and bad ones; returns the accepted answers. */
typedef struct stream {
    survey_t *s;
    int *profile; /* per survey */
    answer_t *acc;
    size_t n_acc;
    size_t produced;
    char (*payload)[512];
    char (*key)[SB_SURVEY_ID_LEN + 1];
    size_t n;
} stream_t;

static uint64_t rng = 88172645463325252ULL;
static uint64_t rnd(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return rng;
}

static void stream_make(env_t *e, stream_t *st, size_t n_surveys)
{
    profiles_init();
    memset(st, 0, sizeof *st);
    st->s = calloc(n_surveys, sizeof *st->s);
    st->acc = calloc(n_surveys, sizeof *st->acc);
    st->profile = calloc(n_surveys, sizeof *st->profile);
    size_t cap = n_surveys * 2;
    st->payload = calloc(cap, sizeof *st->payload);
    st->key = calloc(cap, sizeof *st->key);
    ck_assert(st->s && st->acc && st->profile && st->payload && st->key);
    int64_t now = sb_now_ms();
    bool *done = calloc(n_surveys, sizeof *done);
    for (size_t i = 0; i < n_surveys; i++) {
        int profile = (int)(rnd() % PROFILES);
        sb_kind_t kind = (sb_kind_t)(rnd() % SB_KIND__N);
        const char *dims[SB_DIM__N] = {0};
        for (int d = 0; d < SB_DIM__N; d++)
            if (prof_dims[profile][d][0]) dims[d] = prof_dims[profile][d];
        char inter[32];
        snprintf(inter, sizeof inter, "%s-i%zu", e->name, i);
        survey_make(e, &st->s[i], inter, kind, dims, SB_REC_FIRED);
        st->profile[i] = profile;
    }
    /* sends: each survey once or more, in a random order; 10 % duplicates with another
     * score, some forged tokens, some out of the survey's scale, some garbage */
    size_t sends = n_surveys + n_surveys / 10;
    for (size_t k = 0; k < sends; k++) {
        size_t i = k < n_surveys ? k : (size_t)(rnd() % n_surveys);
        survey_t *s = &st->s[i];
        const sb_scale_t *sc = &e->cfg->scales[s->rec.kind];
        int score = sc->min + (int)(rnd() % (uint64_t)(sc->max - sc->min + 1));
        int64_t ts = now - (int64_t)(rnd() % (uint64_t)(40 * DAY));
        uint64_t r = rnd() % 100;
        char *p = st->payload[st->n];
        snprintf(st->key[st->n], sizeof st->key[0], "%s", s->id);
        if (r < 2) {
            snprintf(p, 512, "{\"survey_id\":\"%s\",\"token\":", s->id); /* garbage */
        } else if (r < 4) {
            char forged[SB_TOKEN_MAX];
            sb_token_sign("not-the-secret", s->id, s->rec.expires_ms, forged, sizeof forged);
            response_json(p, 512, s, forged, score, ts, NULL);
        } else if (r < 6 && s->rec.kind != SB_KIND_NPS) {
            response_json(p, 512, s, NULL, sc->max + 1, ts, NULL); /* wrong scale */
        } else {
            response_json(p, 512, s, NULL, score, ts, rnd() % 3 ? NULL : "ok");
            /* the first valid response per survey counts; a late one is dead-lettered and
             * leaves the survey open for a later one */
            sb_window_plan_t plan;
            if (!done[i] && sb_window_plan(e->cfg->windows_ms, e->cfg->n_windows,
                                           e->cfg->allowed_lateness_ms, now, ts, &plan) == 0) {
                st->acc[st->n_acc] = (answer_t){s->rec.kind, score, ts, st->profile[i]};
                st->n_acc++;
                done[i] = true;
            }
        }
        st->n++;
    }
    free(done);
}

static void stream_free(stream_t *st)
{
    free(st->s);
    free(st->profile);
    free(st->acc);
    free(st->payload);
    free(st->key);
}

/* Produces the stream in chunks, calling between(chunk) after each. */
static void stream_send(env_t *e, stream_t *st, size_t chunks, void (*between)(env_t *, size_t))
{
    size_t per = (st->n + chunks - 1) / chunks;
    for (size_t c = 0; c < chunks; c++) {
        for (size_t i = c * per; i < st->n && i < (c + 1) * per; i++)
            produce(e, e->cfg->topics.responses, st->key[i], st->payload[i]);
        flush_all(e);
        if (between) between(e, c);
    }
}

/* Waits until every accepted answer is counted and two publications followed. */
static void wait_counted(env_t *e, size_t want, int timeout_ms)
{
    int64_t end = sb_mono_ms() + timeout_ms;
    while ((size_t)counted(e) < want && sb_mono_ms() < end) sleep_ms(100);
    ck_assert_msg((size_t)counted(e) == want, "counted %lld, want %zu", counted(e), want);
    sleep_ms(3 * e->cfg->publish.interval_ms + 500);
    /* and a periodic republish, when it is short, so that every last update is from after
     * the last count (see run_oracle) */
    if (e->cfg->publish.republish_s > 0 && e->cfg->publish.republish_s <= 5)
        sleep_ms(e->cfg->publish.republish_s * 1000 + e->cfg->publish.interval_ms);
}

/* Every last update equals the brute force as of its time, and every slice with answers in
 * a window has one. */
static void check_oracle(env_t *e, const stream_t *st)
{
    upds_t o;
    read_metrics(e, &o);
    ck_assert_int_gt(o.n, 0);
    int64_t newest = 0;
    for (size_t i = 0; i < o.n; i++) {
        sb_metric_value_t want;
        oracle(e->cfg, st->acc, st->n_acc, &o.v[i].u, &want);
        expect_same(&o.v[i].u, &want, o.v[i].json);
        if (o.v[i].u.as_of_ms > newest) newest = o.v[i].u.as_of_ms;
    }
    /* coverage: each (metric, window, slice) with answers as of the newest publication */
    size_t expected = 0;
    for (int m = 0; m < 4; m++)
        for (size_t k = 0; k < e->cfg->n_windows; k++)
            for (int d = 0; d < SB_DIM__N; d++) {
                bool configured = d == SB_DIM_ALL;
                for (size_t j = 0; j < e->cfg->n_dimensions; j++)
                    configured |= (int)e->cfg->dimensions[j] == d;
                if (!configured) continue;
                /* distinct values of d among the answers */
                char seen[64][32];
                size_t ns = 0;
                for (size_t i = 0; i < st->n_acc; i++) {
                    const char *v = answer_dim(&st->acc[i], (sb_dim_t)d);
                    if (!v[0]) continue;
                    bool dup = false;
                    for (size_t x = 0; x < ns && !dup; x++) dup = !strcmp(seen[x], v);
                    if (!dup && ns < 64) snprintf(seen[ns++], 32, "%s", v);
                }
                for (size_t x = 0; x < ns; x++) {
                    sb_metric_update_t u = {.metric = (sb_metric_t)m, .as_of_ms = newest};
                    sb_window_name(e->cfg->windows_ms[k], u.window, sizeof u.window);
                    snprintf(u.dimension, sizeof u.dimension, "%s", sb_dim_names[d]);
                    snprintf(u.value, sizeof u.value, "%s", seen[x]);
                    sb_metric_value_t want;
                    oracle(e->cfg, st->acc, st->n_acc, &u, &want);
                    uint64_t c = m == SB_METRIC_RESPONSE_RATE ? want.num : want.count;
                    if (!c) continue;
                    char key[600];
                    snprintf(key, sizeof key, "%s|%s|%s|%s", sb_metric_names[m], u.window,
                             u.dimension, u.value);
                    bool found = false;
                    for (size_t i = 0; i < o.n && !found; i++) found = !strcmp(o.v[i].key, key);
                    ck_assert_msg(found, "no update for %s (count %llu)", key, (unsigned long long)c);
                    expected++;
                }
            }
    ck_assert_int_gt(expected, 100);
    upds_free(&o);
}

/* ================================================================ 1-4. the oracle */

/* The oracle stream through `instances` aggregators in one group, with between() run after
 * each tenth of the stream (kill -9, a Redis restart) or NULL.
 * With between(), updates are also republished every 2 s. An update is published when its
 * value changed; a response held up by between() for seconds can be counted after an update
 * as of a later time went out without it (the oracle, which takes every response answered by
 * then, disagrees with that update), and if by the next round the window has slid to the same
 * value again, nothing newer replaces it. The republish does. */
static void run_oracle(const char *name, int instances, void (*between)(env_t *, size_t),
                       int timeout_ms)
{
    env_t e;
    env_open(&e, name, "100100", between ? "{\"publish\":{\"republish_s\":2}}" : NULL);
    stream_t st;
    stream_make(&e, &st, 20000);
    for (int i = 0; i < instances; i++) agg_start(&e, i);
    int64_t t0 = sb_mono_ms();
    stream_send(&e, &st, 10, between);
    wait_counted(&e, st.n_acc, timeout_ms);
    fprintf(stderr, "oracle %s: %zu sends, %zu accepted, counted in %lld ms\n", name, st.n,
            st.n_acc, (long long)(sb_mono_ms() - t0));
    check_oracle(&e, &st);
    if (!between && instances == 1) {
        ck_assert_int_ge(stat_get(&e, "duplicate"), 1);
        ck_assert_int_ge(stat_get(&e, "late"), 1);
        ck_assert_int_ge(stat_get(&e, "dlq|bad_token"), 1);
        ck_assert_int_ge(stat_get(&e, "dlq|wrong_scale"), 1);
        ck_assert_int_ge(stat_get(&e, "dlq|invalid_json"), 1);
    }
    for (int i = 0; i < instances; i++) agg_stop(&e, i);
    stream_free(&st);
    env_close(&e);
}

START_TEST(oracle_single)
{
    run_oracle("o1", 1, NULL, 60000);
}
END_TEST

/* 2. kill -9 three times during the stream, restarting each time */
static void kill_restart(env_t *e, size_t chunk)
{
    if (chunk == 2 || chunk == 5 || chunk == 8) {
        sleep_ms(300);
        agg_kill9(e, 0);
        agg_start(e, 0);
    }
}

START_TEST(oracle_kill9)
{
    run_oracle("o2", 1, kill_restart, 90000);
}
END_TEST

/* 3. Redis restarted mid-stream (AOF on), and later full for 2 s (maxmemory reached under
 * noeviction: it answers PING but refuses the tally script) */
static void redis_restart(env_t *e, size_t chunk)
{
    (void)e;
    if (chunk == 4) {
        sleep_ms(200);
        ck_assert_int_eq(sb_h_redis_stop(&h), 0);
        sleep_ms(1500);
        ck_assert_int_eq(sb_h_redis_start(&h), 0);
    }
    if (chunk == 7) {
        ck_assert_int_eq(sb_h_redis_config(&h, "maxmemory 1"), 0);
        sleep_ms(2000);
        ck_assert_int_eq(sb_h_redis_config(&h, "maxmemory 0"), 0);
    }
}

START_TEST(oracle_redis_restart)
{
    run_oracle("o3", 1, redis_restart, 90000);
    /* refused batches were retried on a back-off, not at once (it retried thousands of
     * times a second) */
    int refused = 0;
    sb_h_log_sum(&h, "o3-agg.log", "script failed op=tally", &refused);
    ck_assert_int_lt(refused, 30);
}
END_TEST

/* 4. two instances in one group */
START_TEST(oracle_two_instances)
{
    run_oracle("o4", 2, NULL, 90000);
}
END_TEST

/* ================================================================ 5. retained MQTT */

typedef struct retained {
    pthread_mutex_t mu;
    upds_t u;
} retained_t;

static int on_retained(void *opaque, const char *topic, const void *payload, size_t len)
{
    retained_t *r = opaque;
    pthread_mutex_lock(&r->mu);
    upds_put(&r->u, topic, payload, len);
    pthread_mutex_unlock(&r->mu);
    return 0;
}

START_TEST(late_subscriber_gets_retained)
{
    env_t e;
    env_open(&e, "r5", "100100", NULL);
    stream_t st;
    stream_make(&e, &st, 600);
    agg_start(&e, 0);
    stream_send(&e, &st, 1, NULL);
    wait_counted(&e, st.n_acc, 60000);
    agg_stop(&e, 0); /* nothing is publishing any more */
    upds_t k;
    read_metrics(&e, &k);
    retained_t r;
    memset(&r, 0, sizeof r);
    pthread_mutex_init(&r.mu, NULL);
    char filter[64], err[256];
    snprintf(filter, sizeof filter, "%s/metrics/#", e.name);
    const char *subs[] = {filter};
    sb_mqtt_t *m = sb_mqtt_new(e.cfg, "r5-late-dashboard", subs, 1, on_retained, &r, err, sizeof err);
    ck_assert_msg(m != NULL, "%s", err);
    ck_assert_int_eq(sb_mqtt_wait_up(m, 10000), 0);
    int64_t end = sb_mono_ms() + 10000;
    for (;;) {
        pthread_mutex_lock(&r.mu);
        size_t n = r.u.n;
        pthread_mutex_unlock(&r.mu);
        if (n >= k.n || sb_mono_ms() > end) break;
        sleep_ms(50);
    }
    sb_mqtt_free(m);
    ck_assert_int_eq(r.u.bad, 0);
    ck_assert_int_eq(r.u.n, k.n);
    /* each Kafka key's last update is the retained message of its topic */
    for (size_t i = 0; i < k.n; i++) {
        char topic[600];
        const sb_metric_update_t *u = &k.v[i].u;
        snprintf(topic, sizeof topic, "%s/metrics/%s/%s/%s/%s", e.name, sb_metric_names[u->metric],
                 u->window, u->dimension, u->value);
        bool found = false;
        for (size_t j = 0; j < r.u.n && !found; j++)
            if (!strcmp(r.u.v[j].key, topic)) {
                found = true;
                ck_assert_str_eq(r.u.v[j].json, k.v[i].json);
            }
        ck_assert_msg(found, "no retained message on %s", topic);
    }
    upds_free(&k);
    upds_free(&r.u);
    pthread_mutex_destroy(&r.mu);
    stream_free(&st);
    env_close(&e);
}
END_TEST

static const sb_metric_update_t *find(const upds_t *o, const char *key)
{
    for (size_t i = 0; i < o->n; i++)
        if (!strcmp(o->v[i].key, key)) return &o->v[i].u;
    ck_abort_msg("no update %s", key);
    return NULL;
}

/* Reads the metrics topic until the last update of key has count want (or timeout_ms has
 * passed, which fails); o then holds what was read. */
static void wait_update_count(env_t *e, upds_t *o, const char *key, uint64_t want, int timeout_ms)
{
    int64_t end = sb_mono_ms() + timeout_ms;
    for (;;) {
        read_metrics(e, o);
        const sb_metric_update_t *u = NULL;
        for (size_t i = 0; i < o->n; i++)
            if (!strcmp(o->v[i].key, key)) u = &o->v[i].u;
        if ((u && u->v.count == want) || sb_mono_ms() > end) break;
        upds_free(o);
        sleep_ms(300);
    }
    ck_assert_int_eq(find(o, key)->v.count, want);
}

/* A slice that empties while no instance publishes still gets its empty update: the next
 * publisher reads from Redis what was shown before and clears it. A 1m window holds only
 * the current minute, so the responses leave it when the minute turns. The next publisher
 * runs with a lower max_dimension_values: slices registered beyond the new cap are still
 * cleared (they used to keep their last value). */
#define R8_N 6
START_TEST(emptied_slice_cleared_by_next_publisher)
{
    env_t e;
    env_open(&e, "r8", "100100", "{\"windows\":[\"1m\",\"1h\"],\"dimensions\":[\"channel\"]}");
    /* leave at least 20 s of the minute for counting and publishing */
    while (sb_now_ms() % MIN > 40 * SEC) sleep_ms(200);
    static const char *const chans[R8_N] = {"sms", "ch1", "ch2", "ch3", "ch4", "ch5"};
    int64_t answered = sb_now_ms();
    for (int i = 0; i < R8_N; i++) {
        const char *dims[SB_DIM__N] = {0};
        dims[SB_DIM_CHANNEL] = chans[i];
        survey_t s;
        char sid[16];
        snprintf(sid, sizeof sid, "r8-%d", i);
        survey_make(&e, &s, sid, SB_KIND_CSAT, dims, SB_REC_FIRED);
        char buf[1024];
        response_json(buf, sizeof buf, &s, NULL, 5, answered, NULL);
        produce(&e, e.cfg->topics.responses, s.id, buf);
    }
    flush_all(&e);
    agg_start(&e, 0);
    wait_counted(&e, R8_N, 60000);
    sleep_ms(3 * e.cfg->publish.interval_ms + 500);
    agg_stop(&e, 0);
    ck_assert_msg(sb_now_ms() / MIN == answered / MIN, "the minute turned too early");
    upds_t o;
    read_metrics(&e, &o);
    ck_assert_int_eq(find(&o, "csat|1m|channel|sms")->v.count, 1);
    ck_assert_int_eq(find(&o, "csat|1m|channel|ch5")->v.count, 1);
    ck_assert_int_eq(find(&o, "csat|1m|all|all")->v.count, R8_N);
    upds_free(&o);

    /* the minute turns while nothing publishes; then another instance takes over, with room
     * for one value per dimension (all|all and channel's first value and _other) */
    while (sb_now_ms() / MIN == answered / MIN) sleep_ms(200);
    agg_start_set(&e, 1, "max_dimension_values=1");
    wait_update_count(&e, &o, "csat|1m|channel|sms", 0, 30000);
    for (int i = 0; i < R8_N; i++) {
        char key[64];
        snprintf(key, sizeof key, "csat|1m|channel|%s", chans[i]);
        upds_free(&o);
        wait_update_count(&e, &o, key, 0, 10000);
        ck_assert_msg(!find(&o, key)->v.has_value, "%s", key);
    }
    ck_assert_int_eq(find(&o, "csat|1m|all|all")->v.count, 0);
    ck_assert_int_eq(find(&o, "csat|1h|channel|sms")->v.count, 1); /* still in the hour */
    upds_free(&o);
    /* what is shown now is recorded: the 1m rows are gone, the 1h ones are there */
    redisReply *r = sb_store_cmd(e.st, "HGETALL r8:shown");
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
    ck_assert_int_ge(r->elements, 4); /* all|all, channel|sms, ... in the 1h window */
    for (size_t i = 0; i < r->elements; i += 2) {
        ck_assert_msg(strstr(r->element[i]->str, "|1h") != NULL, "%s", r->element[i]->str);
        ck_assert_int_eq(strlen(r->element[i + 1]->str), SB_METRIC__N);
    }
    freeReplyObject(r);
    agg_stop(&e, 1);
    env_close(&e);
}
END_TEST

/* Reads the lease holder's token into buf ("" when nobody holds it). */
static void leader_get(env_t *e, char *buf, size_t len)
{
    char key[128];
    sb_store_key(e->st, key, sizeof key, "leader");
    redisReply *r = sb_store_cmd(e->st, "GET %s", key);
    ck_assert_ptr_nonnull(r);
    snprintf(buf, len, "%s", r->type == REDIS_REPLY_STRING ? r->str : "");
    freeReplyObject(r);
}

/* A publisher that lost its lease without noticing (stopped longer than the lease while
 * another instance took over, published and handed the lease back) must start over from
 * what was shown when it takes the lease again, as any new publisher does. It used to go
 * on with its own memory of what it had published: a slice the other instance showed with
 * a value, and which emptied before the first one came back, kept that value on its
 * retained topic (and as the last update on Kafka) for good. */
START_TEST(retaken_lease_reloads_shown)
{
    env_t e;
    env_open(&e, "l11", "100100", "{\"windows\":[\"1m\",\"1h\"],\"dimensions\":[\"channel\"]}");
    /* the 1m window must not turn before the response is published: 25 s of the minute */
    while (sb_now_ms() % MIN < 2 * SEC || sb_now_ms() % MIN > 20 * SEC) sleep_ms(200);
    int64_t minute = sb_now_ms() / MIN;
    agg_start(&e, 0);
    upds_t o;
    wait_update_count(&e, &o, "csat|1m|all|all", 0, 20000); /* instance 0 publishes */
    upds_free(&o);
    char first[200], now[200];
    leader_get(&e, first, sizeof first);
    ck_assert_str_ne(first, "");

    /* instance 0 stops dead; instance 1 takes over once the lease runs out */
    ck_assert_int_eq(sb_h_kill(e.procs[0], SIGSTOP), 0);
    agg_start(&e, 1);
    int64_t end = sb_mono_ms() + 20000;
    do {
        sleep_ms(100);
        leader_get(&e, now, sizeof now);
    } while ((!now[0] || !strcmp(now, first)) && sb_mono_ms() < end);
    ck_assert_msg(now[0] && strcmp(now, first) != 0, "instance 1 did not take the lease");

    /* a response on MQTT (instance 0's session keeps it for later: a duplicate then) */
    const char *dims[SB_DIM__N] = {0};
    dims[SB_DIM_CHANNEL] = "zz";
    survey_t s;
    survey_make(&e, &s, "l11-1", SB_KIND_CSAT, dims, SB_REC_FIRED);
    char buf[1024], err[256], topic[128];
    response_json(buf, sizeof buf, &s, NULL, 5, sb_now_ms(), NULL);
    sb_mqtt_t *dev = sb_mqtt_new(e.cfg, "l11-device", NULL, 0, NULL, NULL, err, sizeof err);
    ck_assert_msg(dev != NULL, "%s", err);
    ck_assert_int_eq(sb_mqtt_wait_up(dev, 10000), 0);
    snprintf(topic, sizeof topic, "%s/fieldservice/dev-1/survey/response", e.name);
    ck_assert_int_eq(sb_mqtt_publish(dev, topic, buf, strlen(buf), false, NULL), 0);
    ck_assert_int_eq(sb_mqtt_wait_published(dev, 5000), 0);
    sb_mqtt_free(dev);
    wait_update_count(&e, &o, "csat|1m|channel|zz", 1, 20000);
    ck_assert_int_eq(find(&o, "csat|1m|all|all")->v.count, 1);
    upds_free(&o);
    agg_stop(&e, 1); /* hands the lease back */
    ck_assert_msg(sb_now_ms() / MIN == minute, "the minute turned too early");

    /* the minute turns, then instance 0 wakes up and takes the free lease again */
    while (sb_now_ms() / MIN == minute) sleep_ms(200);
    ck_assert_int_eq(sb_h_kill(e.procs[0], SIGCONT), 0);
    wait_update_count(&e, &o, "csat|1m|channel|zz", 0, 15000);
    ck_assert(!find(&o, "csat|1m|channel|zz")->v.has_value);
    ck_assert_int_eq(find(&o, "csat|1m|all|all")->v.count, 0);
    ck_assert_int_eq(find(&o, "csat|1h|channel|zz")->v.count, 1);
    upds_free(&o);
    agg_stop(&e, 0);
    env_close(&e);
}
END_TEST

/* ================================================================ 6. bad responses */

START_TEST(bad_responses_dead_lettered)
{
    env_t e;
    env_open(&e, "b6", "100111", NULL);
    const char *dims[SB_DIM__N] = {0};
    dims[SB_DIM_CHANNEL] = "email";
    survey_t csat, nps, cancelled, expired;
    survey_make(&e, &csat, "b6-1", SB_KIND_CSAT, dims, SB_REC_FIRED);
    survey_make(&e, &nps, "b6-2", SB_KIND_NPS, dims, SB_REC_FIRED);
    survey_make(&e, &cancelled, "b6-3", SB_KIND_CSAT, dims, SB_REC_CANCELLED);
    survey_make(&e, &expired, "b6-4", SB_KIND_CSAT, dims, SB_REC_FIRED);
    int64_t now = sb_now_ms();
    char buf[1024], forged[SB_TOKEN_MAX], old[SB_TOKEN_MAX];
    sb_token_sign("wrong-secret", csat.id, csat.rec.expires_ms, forged, sizeof forged);
    sb_token_sign(e.cfg->token.secret, expired.id, now - HOUR, old, sizeof old);
    struct { const char *code; char json[1024]; } cases[10];
    size_t nc = 0;
    response_json(cases[nc].json, 1024, &csat, forged, 5, now, NULL), cases[nc++].code = "bad_token";
    response_json(cases[nc].json, 1024, &expired, old, 5, now, NULL), cases[nc++].code = "expired";
    response_json(cases[nc].json, 1024, &nps, NULL, 11, now, NULL), cases[nc++].code = "score_out_of_range";
    response_json(cases[nc].json, 1024, &csat, NULL, 0, now, NULL), cases[nc++].code = "wrong_scale";
    response_json(cases[nc].json, 1024, &cancelled, NULL, 4, now, NULL), cases[nc++].code = "not_sent";
    snprintf(cases[nc].json, 1024, "not json at all"), cases[nc++].code = "invalid_json";
    snprintf(cases[nc].json, 1024, "{\"survey_id\":\"%s\",\"token\":\"%s\",\"score\":4.5}", csat.id,
             csat.token), cases[nc++].code = "score_not_integer";
    survey_t ghost = csat;
    snprintf(ghost.id, sizeof ghost.id, "ffffffffffffffffffffffff");
    sb_token_sign(e.cfg->token.secret, ghost.id, ghost.rec.expires_ms, ghost.token, sizeof ghost.token);
    response_json(cases[nc].json, 1024, &ghost, NULL, 4, now, NULL), cases[nc++].code = "unknown_survey";
    response_json(cases[nc].json, 1024, &csat, NULL, 4, now - 45 * DAY, NULL), cases[nc++].code = "late";
    agg_start(&e, 0);
    for (size_t i = 0; i < nc; i++) produce(&e, e.cfg->topics.responses, NULL, cases[i].json);
    /* and one good one last, to know when the rest was consumed */
    response_json(buf, sizeof buf, &nps, NULL, 3, now, "too slow");
    produce(&e, e.cfg->topics.responses, nps.id, buf);
    flush_all(&e);
    wait_counted(&e, 1, 60000);
    texts_t dl;
    read_texts(&e, e.cfg->topics.dlq, &dl);
    ck_assert_int_eq(dl.n, nc);
    for (size_t i = 0; i < nc; i++) {
        bool found = false;
        for (size_t j = 0; j < dl.n && !found; j++) {
            json_t *o = json_loads(dl.v[j], 0, NULL);
            ck_assert_ptr_nonnull(o);
            const char *err = json_string_value(json_object_get(o, "error"));
            const char *payload = json_string_value(json_object_get(o, "payload"));
            found = err && payload && !strncmp(err, cases[i].code, strlen(cases[i].code)) &&
                    (err[strlen(cases[i].code)] == ':' || !err[strlen(cases[i].code)]) &&
                    !strcmp(payload, cases[i].json);
            json_decref(o);
        }
        ck_assert_msg(found, "no dead letter %s for %s", cases[i].code, cases[i].json);
        char f[64];
        snprintf(f, sizeof f, "dlq|%s", cases[i].code);
        ck_assert_int_eq(stat_get(&e, f), 1);
    }
    texts_free(&dl);
    ck_assert_int_eq(counted(&e), 1);
    /* the NPS 3 is a detractor: one alert, on Kafka */
    texts_t al;
    read_texts(&e, e.cfg->topics.alerts, &al);
    ck_assert_int_eq(al.n, 1);
    json_t *a = json_loads(al.v[0], 0, NULL);
    ck_assert_str_eq(json_string_value(json_object_get(a, "type")), "detractor");
    ck_assert_str_eq(json_string_value(json_object_get(a, "survey_id")), nps.id);
    ck_assert_str_eq(json_string_value(json_object_get(a, "comment")), "too slow");
    ck_assert_int_eq(json_integer_value(json_object_get(a, "score")), 3);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(a, "dims"), "channel")), "email");
    json_decref(a);
    texts_free(&al);
    /* only the good response is in the metrics: nps all = one detractor */
    upds_t o;
    read_metrics(&e, &o);
    for (size_t i = 0; i < o.n; i++) {
        const sb_metric_update_t *u = &o.v[i].u;
        uint64_t c = u->metric == SB_METRIC_RESPONSE_RATE ? u->v.num : u->v.count;
        ck_assert_msg(c == (u->metric == SB_METRIC_NPS || u->metric == SB_METRIC_RESPONSE_RATE),
                      "%s", o.v[i].json);
        if (u->metric == SB_METRIC_NPS) {
            ck_assert_int_eq(u->v.detractors, 1);
            ck_assert_double_eq(u->v.score, -100.0);
        }
    }
    upds_free(&o);
    agg_stop(&e, 0);
    env_close(&e);
}
END_TEST

/* Three answers to one survey in one batch (one partition, produced before the aggregator
 * starts): the first counts, the next two are duplicates, as they would be in later batches.
 * The off-scale one used to be dead-lettered as wrong_scale, because the record read for
 * the batch did not show it answered yet. */
/* An environment named name with one CSAT survey "<name>-1" sent by email. */
static void one_sent_csat(env_t *e, const char *name, survey_t *s)
{
    char id[32];
    env_open(e, name, "100111", NULL);
    const char *dims[SB_DIM__N] = {0};
    dims[SB_DIM_CHANNEL] = "email";
    snprintf(id, sizeof id, "%s-1", name);
    survey_make(e, s, id, SB_KIND_CSAT, dims, SB_REC_FIRED);
}

START_TEST(copies_in_one_batch)
{
    env_t e;
    survey_t s;
    one_sent_csat(&e, "c6", &s);
    char buf[1024];
    int64_t now = sb_now_ms();
    static const int scores[] = {5, 0, 4};
    for (int i = 0; i < 3; i++) {
        response_json(buf, sizeof buf, &s, NULL, scores[i], now, NULL);
        produce(&e, e.cfg->topics.responses, s.id, buf);
    }
    flush_all(&e);
    agg_start(&e, 0);
    wait_counted(&e, 1, 60000);
    int64_t end = sb_mono_ms() + 10000;
    while (stat_get(&e, "duplicate") + stat_get(&e, "dlq|wrong_scale") < 2 && sb_mono_ms() < end)
        sleep_ms(100);
    ck_assert_int_eq(stat_get(&e, "duplicate"), 2);
    ck_assert_int_eq(stat_get(&e, "dlq|wrong_scale"), 0);
    ck_assert_int_eq(counted(&e), 1);
    agg_stop(&e, 0);
    env_close(&e);
}
END_TEST

/* A response whose answered_at is ahead of the aggregator's clock by less than the allowed
 * lateness (a client clock running fast) is counted at the aggregator's time, so its expiry is
 * judged at that time too: one that reaches the aggregator a minute before its survey
 * expires counts, even though its own clock already says four minutes after. One whose
 * survey had expired by the time it arrived is still dead-lettered as expired. */
START_TEST(skewed_answer_judged_at_arrival)
{
    env_t e;
    env_open(&e, "sk", "100000", NULL);
    const char *dims[SB_DIM__N] = {0};
    dims[SB_DIM_CHANNEL] = "email";
    int64_t now = sb_now_ms();
    survey_t open, gone;
    survey_make(&e, &open, "sk-1", SB_KIND_CSAT, dims, SB_REC_FIRED);
    survey_make(&e, &gone, "sk-2", SB_KIND_CSAT, dims, SB_REC_FIRED);
    survey_t *sv[2] = {&open, &gone};
    const int64_t expires[2] = {now + MIN, now - MIN};
    for (int i = 0; i < 2; i++) {
        sv[i]->rec.expires_ms = expires[i];
        ck_assert_int_eq(sb_token_sign(e.cfg->token.secret, sv[i]->id, expires[i], sv[i]->token,
                                       sizeof sv[i]->token), 0);
        sb_h_store_record(e.st, &sv[i]->rec, sv[i]->id);
    }
    ck_assert_int_eq(e.cfg->allowed_lateness_ms, 10 * MIN);
    char buf[1024];
    agg_start(&e, 0);
    response_json(buf, sizeof buf, &gone, NULL, 2, now + 4 * MIN, NULL);
    produce(&e, e.cfg->topics.responses, gone.id, buf);
    response_json(buf, sizeof buf, &open, NULL, 5, now + 4 * MIN, NULL);
    produce(&e, e.cfg->topics.responses, open.id, buf);
    flush_all(&e);
    int64_t end = sb_mono_ms() + 60000;
    while (counted(&e) + stat_get(&e, "dlq|expired") < 2 && sb_mono_ms() < end) sleep_ms(100);
    ck_assert_int_eq(stat_get(&e, "dlq|expired"), 1);
    ck_assert_int_eq(stat_get(&e, "counted|csat"), 1);
    ck_assert_int_lt(sb_now_ms(), now + MIN); /* it did arrive before the expiry */
    agg_stop(&e, 0);
    env_close(&e);
}
END_TEST

/* ================================================================ 7. requests and KPIs */


START_TEST(rates_and_kpis)
{
    env_t e;
    /* at most 2 agents get their own slice: the third goes to agent|_other */
    env_open(&e, "k7", "111100", "{\"max_dimension_values\":2}");
    const char *dims[SB_DIM__N] = {0};
    dims[SB_DIM_CHANNEL] = "sms";
    dims[SB_DIM_AGENT] = "a-1";
    survey_t s[4];
    int64_t now = sb_now_ms();
    for (int i = 0; i < 4; i++) {
        char inter[16];
        snprintf(inter, sizeof inter, "k7-%d", i);
        survey_make(&e, &s[i], inter, SB_KIND_CSAT, dims, SB_REC_FIRED);
        sb_survey_request_t q;
        memset(&q, 0, sizeof q);
        memcpy(q.survey_id, s[i].id, sizeof s[i].id);
        snprintf(q.journey, sizeof q.journey, "%s", s[i].rec.journey);
        snprintf(q.customer_id, sizeof q.customer_id, "%s", s[i].rec.customer_id);
        snprintf(q.interaction_id, sizeof q.interaction_id, "%s", inter);
        snprintf(q.channel, sizeof q.channel, "sms");
        snprintf(q.question, sizeof q.question, "How was it?");
        snprintf(q.token, sizeof q.token, "%s", s[i].token);
        q.kind = SB_KIND_CSAT, q.scale_min = 1, q.scale_max = 5;
        q.issued_ms = now - MIN, q.expires_ms = s[i].rec.expires_ms;
        char *json = sb_survey_request_encode(&q);
        produce(&e, e.cfg->topics.requests, NULL, json);
        produce(&e, e.cfg->topics.requests, NULL, json); /* a redelivered request counts once */
        free(json);
    }
    char buf[1024];
    response_json(buf, sizeof buf, &s[0], NULL, 5, now, NULL);
    produce(&e, e.cfg->topics.responses, s[0].id, buf);
    response_json(buf, sizeof buf, &s[1], NULL, 2, now, NULL);
    produce(&e, e.cfg->topics.responses, s[1].id, buf);
    /* KPI events: frt 10/20/30 s, art 100/200/300 s, resolved first time 2 of 3, transferred
     * 1 of 3; agents a-1, a-2, a-3 (the third is past the cap); a duplicate event id */
    const char *ev[] = {
        "{\"event_id\":\"e1\",\"occurred_at\":%lld,\"customer_id\":\"c\",\"interaction_id\":\"i1\","
        "\"kind\":\"support_ticket\",\"channel\":\"sms\",\"agent\":\"a-1\",\"kpi\":{\"first_response_s\":10,"
        "\"resolution_s\":100,\"resolved_first_contact\":true,\"transfers\":0}}",
        "{\"event_id\":\"e2\",\"occurred_at\":%lld,\"customer_id\":\"c\",\"interaction_id\":\"i2\","
        "\"kind\":\"support_ticket\",\"channel\":\"sms\",\"agent\":\"a-2\",\"kpi\":{\"first_response_s\":20,"
        "\"resolution_s\":200,\"resolved_first_contact\":false,\"transfers\":2}}",
        "{\"event_id\":\"e3\",\"occurred_at\":%lld,\"customer_id\":\"c\",\"interaction_id\":\"i3\","
        "\"kind\":\"support_ticket\",\"channel\":\"sms\",\"agent\":\"a-3\",\"kpi\":{\"first_response_s\":30,"
        "\"resolution_s\":300,\"resolved_first_contact\":true,\"transfers\":0}}",
    };
    for (int i = 0; i < 3; i++) {
        snprintf(buf, sizeof buf, ev[i], (long long)(now - 2 * MIN));
        /* one key, one partition: the agents register in this order */
        produce(&e, e.cfg->topics.interactions, "k7", buf);
        if (i == 2) produce(&e, e.cfg->topics.interactions, "k7", buf);
    }
    flush_all(&e);
    agg_start(&e, 0);
    wait_counted(&e, 2, 60000);
    int64_t end = sb_mono_ms() + 20000;
    while ((stat_get(&e, "kpi_events") < 3 || stat_get(&e, "requests") < 4) && sb_mono_ms() < end)
        sleep_ms(100);
    ck_assert_int_eq(stat_get(&e, "kpi_events"), 3);
    ck_assert_int_eq(stat_get(&e, "kpi_duplicate"), 1);
    ck_assert_int_eq(stat_get(&e, "requests"), 4);
    ck_assert_int_eq(stat_get(&e, "requests_duplicate"), 4);
    sleep_ms(3 * e.cfg->publish.interval_ms + 500);
    upds_t o;
    read_metrics(&e, &o);
    const sb_metric_update_t *u = find(&o, "response_rate|1h|all|all");
    ck_assert_int_eq(u->v.num, 2); /* 2 responses to 4 requests: 50 % */
    ck_assert_int_eq(u->v.den, 4);
    ck_assert_double_eq(u->v.score, 50.0);
    u = find(&o, "response_rate|24h|agent|a-1");
    ck_assert_double_eq(u->v.score, 50.0);
    u = find(&o, "csat|1h|channel|sms"); /* 5 and 2 on 1..5: one satisfied of two */
    ck_assert_int_eq(u->v.count, 2);
    ck_assert_double_eq(u->v.score, 50.0);
    u = find(&o, "frt|1h|all|all"); /* (10 + 20 + 30) / 3; p90: rank ceil(2.7) = 3 -> 30 */
    ck_assert_int_eq(u->v.count, 3);
    ck_assert_double_eq(u->v.score, 20.0);
    ck_assert_double_eq(u->v.p90, 30.0);
    u = find(&o, "art|7d|channel|sms");
    ck_assert_double_eq(u->v.score, 200.0);
    ck_assert_double_eq(u->v.p90, 300.0);
    u = find(&o, "fcr|30d|all|all"); /* 2 of 3 = 66.67 % */
    ck_assert_int_eq(u->v.count, 3);
    ck_assert_double_eq(u->v.score, 66.67);
    u = find(&o, "transfer_rate|1h|all|all"); /* 1 of 3 = 33.33 % */
    ck_assert_double_eq(u->v.score, 33.33);
    u = find(&o, "frt|1h|agent|a-2");
    ck_assert_double_eq(u->v.score, 20.0);
    u = find(&o, "frt|1h|agent|_other"); /* a-3, past the cap of 2 agents */
    ck_assert_double_eq(u->v.score, 30.0);
    for (size_t i = 0; i < o.n; i++) ck_assert_msg(!strstr(o.v[i].key, "|a-3"), "%s", o.v[i].key);
    ck_assert_int_eq(stat_get(&e, "capped|agent"), 2); /* per message: e3 and its duplicate */
    upds_free(&o);
    agg_stop(&e, 0);
    env_close(&e);
}
END_TEST

/* ================================================================ 8. MQTT inputs */

static int on_nothing(void *opaque, const char *topic, const void *payload, size_t len)
{
    (void)opaque, (void)topic, (void)payload, (void)len;
    return 0;
}

/* Responses from devices and visit KPIs over MQTT count like Kafka ones: once each, a
 * repeated response is a duplicate, a response naming another device's survey still counts
 * (dimensions come from the survey, never from the message). */
START_TEST(mqtt_inputs)
{
    env_t e;
    env_open(&e, "m8", "100100", "{\"dimensions\":[\"channel\",\"device\",\"region\"]}");
    char err[256], cid[64], filt[2][96];
    /* the aggregator's persistent session, created before it runs, so that nothing
     * published before it subscribed is lost */
    snprintf(cid, sizeof cid, "%s-agg-0", e.name);
    snprintf(filt[0], sizeof filt[0], "%s/fieldservice/+/survey/response", e.name);
    snprintf(filt[1], sizeof filt[1], "%s/fieldservice/+/visit/completed", e.name);
    const char *subs[] = {filt[0], filt[1]};
    sb_mqtt_t *pre = sb_mqtt_new(e.cfg, cid, subs, 2, on_nothing, NULL, err, sizeof err);
    ck_assert_msg(pre != NULL, "%s", err);
    ck_assert_int_eq(sb_mqtt_wait_up(pre, 10000), 0);
    sb_mqtt_free(pre);
    sb_mqtt_t *dev = sb_mqtt_new(e.cfg, "m8-devices", NULL, 0, NULL, NULL, err, sizeof err);
    ck_assert_msg(dev != NULL, "%s", err);
    ck_assert_int_eq(sb_mqtt_wait_up(dev, 10000), 0);
    const char *dims[SB_DIM__N] = {0};
    dims[SB_DIM_CHANNEL] = "device";
    dims[SB_DIM_DEVICE] = "dev-1";
    survey_t s[3];
    int64_t now = sb_now_ms();
    char topic[128], buf[1024];
    for (int i = 0; i < 3; i++) {
        char inter[16];
        snprintf(inter, sizeof inter, "m8-%d", i);
        survey_make(&e, &s[i], inter, SB_KIND_CSAT, dims, SB_REC_FIRED);
        response_json(buf, sizeof buf, &s[i], NULL, 5 - i, now, NULL);
        snprintf(topic, sizeof topic, "%s/fieldservice/dev-%d/survey/response", e.name, i ? 1 : 2);
        ck_assert_int_eq(sb_mqtt_publish(dev, topic, buf, strlen(buf), false, NULL), 0);
        if (i == 0) ck_assert_int_eq(sb_mqtt_publish(dev, topic, buf, strlen(buf), false, NULL), 0);
        if (i == 0) { /* and a third answer, off the scale: a duplicate all the same */
            response_json(buf, sizeof buf, &s[i], NULL, 0, now, NULL);
            ck_assert_int_eq(sb_mqtt_publish(dev, topic, buf, strlen(buf), false, NULL), 0);
        }
    }
    snprintf(topic, sizeof topic, "%s/fieldservice/dev-1/visit/completed", e.name);
    snprintf(buf, sizeof buf,
             "{\"event_id\":\"v1\",\"occurred_at\":%lld,\"customer_id\":\"c\","
             "\"interaction_id\":\"v1\",\"kind\":\"field_visit\",\"region\":\"east\","
             "\"kpi\":{\"first_response_s\":3600,\"resolved_first_contact\":true}}",
             (long long)(now - MIN));
    ck_assert_int_eq(sb_mqtt_publish(dev, topic, buf, strlen(buf), false, NULL), 0);
    /* a device level that is empty or over 256 bytes is the device id's fault: dead letters
     * (they used to fail the match and vanish) */
    char longtopic[512];
    response_json(buf, sizeof buf, &s[1], NULL, 4, now, NULL);
    snprintf(longtopic, sizeof longtopic, "%s/fieldservice//survey/response", e.name);
    ck_assert_int_eq(sb_mqtt_publish(dev, longtopic, buf, strlen(buf), false, NULL), 0);
    snprintf(longtopic, sizeof longtopic, "%s/fieldservice/%0300d/survey/response", e.name, 7);
    ck_assert_int_eq(sb_mqtt_publish(dev, longtopic, buf, strlen(buf), false, NULL), 0);
    ck_assert_int_eq(sb_mqtt_wait_published(dev, 5000), 0);
    sb_mqtt_free(dev);
    agg_start(&e, 0);
    wait_counted(&e, 3, 60000);
    /* the first answer to s[0] stands, the others are duplicates, whatever their score */
    ck_assert_int_eq(stat_get(&e, "duplicate"), 2);
    ck_assert_int_eq(stat_get(&e, "dlq|wrong_scale"), 0);
    int64_t dl_end = sb_mono_ms() + 10000;
    while ((stat_get(&e, "dlq|unsafe_chars") < 1 || stat_get(&e, "dlq|too_long") < 1) &&
           sb_mono_ms() < dl_end)
        sleep_ms(100);
    ck_assert_int_eq(stat_get(&e, "dlq|unsafe_chars"), 1);
    ck_assert_int_eq(stat_get(&e, "dlq|too_long"), 1);
    int64_t end = sb_mono_ms() + 10000;
    while (stat_get(&e, "kpi_events") < 1 && sb_mono_ms() < end) sleep_ms(100);
    ck_assert_int_eq(stat_get(&e, "kpi_events"), 1);
    sleep_ms(3 * e.cfg->publish.interval_ms + 500);
    upds_t o;
    read_metrics(&e, &o);
    const sb_metric_update_t *u = find(&o, "csat|1h|device|dev-1"); /* 5, 4, 3: two of three */
    ck_assert_int_eq(u->v.count, 3);
    ck_assert_double_eq(u->v.score, 66.67);
    u = find(&o, "frt|1h|device|dev-1"); /* the visit: the device from the topic */
    ck_assert_double_eq(u->v.score, 3600.0);
    u = find(&o, "fcr|24h|region|east");
    ck_assert_double_eq(u->v.score, 100.0);
    upds_free(&o);
    agg_stop(&e, 0);
    env_close(&e);
}
END_TEST

/* A metric update whose Kafka delivery fails is sent again once Kafka is back, without
 * waiting for the periodic republish (600 s here) or for another change: with Kafka down,
 * a response over MQTT still counts, its update times out (message.timeout.ms 3 s), and
 * the count reaches the metrics topic after Kafka returns. */
START_TEST(failed_metric_delivery_resent)
{
    env_t e;
    env_open(&e, "r9", "100100", "{\"kafka\":{\"properties\":{\"message.timeout.ms\":\"3000\"}}}");
    const char *dims[SB_DIM__N] = {0};
    dims[SB_DIM_CHANNEL] = "device";
    survey_t s[2];
    int64_t now = sb_now_ms();
    char buf[1024];
    for (int i = 0; i < 2; i++) {
        char inter[16];
        snprintf(inter, sizeof inter, "r9-%d", i);
        survey_make(&e, &s[i], inter, SB_KIND_CSAT, dims, SB_REC_FIRED);
    }
    response_json(buf, sizeof buf, &s[0], NULL, 5, now, NULL);
    produce(&e, e.cfg->topics.responses, s[0].id, buf);
    flush_all(&e);
    agg_start(&e, 0);
    wait_counted(&e, 1, 60000);
    upds_t o;
    wait_update_count(&e, &o, "csat|1h|all|all", 1, 20000);
    upds_free(&o);

    ck_assert_int_eq(sb_h_kafka_down(&h), 0);
    char err[256], topic[128];
    sb_mqtt_t *dev = sb_mqtt_new(e.cfg, "r9-device", NULL, 0, NULL, NULL, err, sizeof err);
    ck_assert_msg(dev != NULL, "%s", err);
    ck_assert_int_eq(sb_mqtt_wait_up(dev, 10000), 0);
    response_json(buf, sizeof buf, &s[1], NULL, 4, now, NULL);
    snprintf(topic, sizeof topic, "%s/fieldservice/dev-1/survey/response", e.name);
    ck_assert_int_eq(sb_mqtt_publish(dev, topic, buf, strlen(buf), false, NULL), 0);
    ck_assert_int_eq(sb_mqtt_wait_published(dev, 5000), 0);
    sb_mqtt_free(dev);
    wait_counted(&e, 2, 30000);
    /* the update with count 2 is produced now and fails after 3 s: the log says so */
    char logpath[600], *text = NULL;
    snprintf(logpath, sizeof logpath, "%s/%s-agg.log", h.dir, e.name);
    int64_t end = sb_mono_ms() + 20000;
    for (;;) {
        FILE *f = fopen(logpath, "r");
        ck_assert_ptr_nonnull(f);
        static char all[1 << 20];
        size_t n = fread(all, 1, sizeof all - 1, f);
        fclose(f);
        all[n] = '\0';
        text = strstr(all, "metric update not delivered");
        if (text || sb_mono_ms() > end) break;
        sleep_ms(200);
    }
    ck_assert_msg(text != NULL, "no failed metric delivery in %s", logpath);
    ck_assert_int_eq(sb_h_kafka_up(&h), 0);
    wait_update_count(&e, &o, "csat|1h|all|all", 2, 30000);
    upds_free(&o);
    agg_stop(&e, 0);
    env_close(&e);
}
END_TEST

/* Runs `surveybusctl -c <e's config> --json <args>`, which must exit 0 and print one JSON
 * object: returned (the caller frees it). */
static json_t *ctl_json(env_t *e, const char *args)
{
    char cmd[1200], *out = NULL;
    snprintf(cmd, sizeof cmd, "%s -c %s --json %s", sb_h_bin("surveybusctl"), e->path, args);
    ck_assert_int_eq(sb_h_run(cmd, &out), 0);
    json_error_t je;
    json_t *j = json_loads(out, 0, &je);
    ck_assert_msg(json_is_object(j), "%s: %s", je.text, out);
    free(out);
    return j;
}

/* ================================================================ 9. dead-letter replay */

/* A response that arrived before its survey record (e.g. Redis restored from an older
 * backup) is dead-lettered as unknown_survey; once the record is back, `surveybusctl dlq
 * replay --reason unknown_survey` sends it to the responses topic again and it counts. A
 * dry run changes nothing; a second replay finds nothing new. With --json each run prints
 * one object with the same counts. */
START_TEST(dlq_replay)
{
    env_t e;
    env_open(&e, "d9", "100111", NULL);
    const char *dims[SB_DIM__N] = {0};
    dims[SB_DIM_CHANNEL] = "email";
    survey_t s, probe;
    survey_make(&e, &s, "d9-1", SB_KIND_NPS, dims, SB_REC_FIRED);
    survey_make(&e, &probe, "d9-2", SB_KIND_NPS, dims, SB_REC_FIRED);
    char key[128], buf[1024];
    sb_store_key(e.st, key, sizeof key, "s:%s", s.id);
    redisReply *r = sb_store_cmd(e.st, "GET %s", key);
    ck_assert(r && r->type == REDIS_REPLY_STRING);
    char *saved = strndup(r->str, r->len);
    size_t saved_len = r->len;
    freeReplyObject(r);
    freeReplyObject(sb_store_cmd(e.st, "DEL %s", key)); /* the record is missing */
    response_json(buf, sizeof buf, &s, NULL, 9, sb_now_ms(), NULL);
    produce(&e, e.cfg->topics.responses, s.id, buf);
    response_json(buf, sizeof buf, &probe, NULL, 10, sb_now_ms(), NULL);
    produce(&e, e.cfg->topics.responses, probe.id, buf);
    flush_all(&e);
    agg_start(&e, 0);
    wait_counted(&e, 1, 60000);
    ck_assert_int_eq(stat_get(&e, "dlq|unknown_survey"), 1);
    /* the record comes back */
    r = sb_store_cmd(e.st, "SET %s %b", key, saved, saved_len);
    ck_assert(r && r->type == REDIS_REPLY_STATUS);
    freeReplyObject(r);
    free(saved);
    char cmd[1200], *out = NULL;
    snprintf(cmd, sizeof cmd, "%s -c %s dlq replay --reason unknown_survey --dry-run 2>&1",
             sb_h_bin("surveybusctl"), e.path);
    ck_assert_int_eq(sb_h_run(cmd, &out), 0);
    ck_assert_msg(strstr(out, "would replay 1 unknown_survey"), "%s", out);
    free(out);
    /* the same dry run, --json: one object on stdout, the message it would send */
    char src[200];
    snprintf(src, sizeof src, "kafka:%s/", e.cfg->topics.responses);
    json_t *j = ctl_json(&e, "dlq replay --reason unknown_survey --dry-run");
    ck_assert(json_is_true(json_object_get(j, "dry_run")));
    ck_assert_str_eq(json_string_value(json_object_get(j, "reason")), "unknown_survey");
    ck_assert_int_eq(json_integer_value(json_object_get(j, "total")), 1);
    ck_assert_int_eq(
        json_integer_value(json_object_get(json_object_get(j, "would_replay"), "unknown_survey")),
        1);
    ck_assert_uint_eq(json_object_size(json_object_get(j, "would_replay")), 1);
    ck_assert_uint_eq(json_object_size(json_object_get(j, "skipped")), 0);
    ck_assert_ptr_null(json_object_get(j, "replayed"));
    json_t *m0 = json_array_get(json_object_get(j, "messages"), 0);
    ck_assert_uint_eq(json_array_size(json_object_get(j, "messages")), 1);
    ck_assert_msg(!strncmp(json_string_value(json_object_get(m0, "source")), src, strlen(src)),
                  "%s", json_string_value(json_object_get(m0, "source")));
    char to[200];
    snprintf(to, sizeof to, "kafka:%s", e.cfg->topics.responses);
    ck_assert_str_eq(json_string_value(json_object_get(m0, "to")), to);
    ck_assert_str_eq(json_string_value(json_object_get(m0, "reason")), "unknown_survey");
    json_decref(j);
    /* the replay itself, --json */
    j = ctl_json(&e, "dlq replay --reason unknown_survey");
    ck_assert(json_is_false(json_object_get(j, "dry_run")));
    ck_assert_int_eq(json_integer_value(json_object_get(j, "total")), 1);
    ck_assert_int_eq(
        json_integer_value(json_object_get(json_object_get(j, "replayed"), "unknown_survey")), 1);
    ck_assert_uint_eq(json_object_size(json_object_get(j, "replayed")), 1);
    ck_assert_uint_eq(json_object_size(json_object_get(j, "skipped")), 0);
    ck_assert_ptr_null(json_object_get(j, "messages"));
    json_decref(j);
    wait_counted(&e, 2, 60000);
    /* nothing new: the text says so, --json gives empty counts */
    snprintf(cmd, sizeof cmd, "%s -c %s dlq replay --reason unknown_survey 2>&1",
             sb_h_bin("surveybusctl"), e.path);
    ck_assert_int_eq(sb_h_run(cmd, &out), 0);
    ck_assert_msg(strstr(out, "no dead letters to replay"), "%s", out);
    free(out);
    snprintf(cmd, sizeof cmd, "%s -c %s --json dlq replay --reason unknown_survey",
             sb_h_bin("surveybusctl"), e.path);
    ck_assert_int_eq(sb_h_run(cmd, &out), 0);
    ck_assert_str_eq(out, "{\"dry_run\":false,\"reason\":\"unknown_survey\",\"total\":0,"
                          "\"replayed\":{},\"skipped\":{}}\n");
    free(out);
    /* brokers that do not answer are a failure, not "nothing to replay" */
    ck_assert_int_eq(sb_h_kafka_down(&h), 0);
    snprintf(cmd, sizeof cmd, "%s -c %s dlq replay 2>&1", sb_h_bin("surveybusctl"), e.path);
    int down_rc = sb_h_run(cmd, &out);
    ck_assert_int_eq(sb_h_kafka_up(&h), 0);
    ck_assert_msg(down_rc == 1 && strstr(out, "no answer from the brokers"), "exit %d: %s",
                  down_rc, out);
    free(out);
    upds_t o;
    read_metrics(&e, &o);
    const sb_metric_update_t *u = find(&o, "nps|1h|channel|email"); /* 9 and 10: +100 */
    ck_assert_int_eq(u->v.count, 2);
    ck_assert_double_eq(u->v.score, 100.0);
    upds_free(&o);
    agg_stop(&e, 0);
    env_close(&e);
}
END_TEST

/* Writes one dead letter of reason unknown_survey into partition p of topic, with the
 * message timestamp ts_ms. */
static void dead_letter_at(rd_kafka_t *rk, const char *topic, int32_t p, int64_t ts_ms, int i)
{
    char buf[300];
    snprintf(buf, sizeof buf,
             "{\"error\":\"unknown_survey\",\"source\":\"kafka:x.resp/0@%d\","
             "\"payload\":\"{\\\"survey_id\\\":\\\"s-%d\\\"}\"}", i, i);
    rd_kafka_resp_err_t err = rd_kafka_producev(
        rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(p), RD_KAFKA_V_TIMESTAMP(ts_ms),
        RD_KAFKA_V_VALUE(buf, strlen(buf)), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    ck_assert_msg(err == 0, "produce: %s", rd_kafka_err2str(err));
}

/* A replay leaves the dead letters written after it began for the next run, and decides that
 * per partition: one partition holding such letters (here stamped an hour ahead) does not
 * end the replay of the older letters of the others. It used to stop at the first newer
 * letter of any partition: here, before any of the 20 older ones. */
START_TEST(dlq_replay_partitions)
{
    env_t e;
    env_open(&e, "dp", "000001", NULL);
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    ck_assert(rd_kafka_conf_set(conf, "bootstrap.servers", h.kafka_bootstrap, errstr,
                                sizeof errstr) == RD_KAFKA_CONF_OK);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, rd_kafka_conf_dup(conf), errstr, sizeof errstr);
    ck_assert_msg(rk != NULL, "%s", errstr);
    int64_t now = sb_now_ms();
    for (int i = 0; i < 20; i++) dead_letter_at(rk, e.cfg->topics.dlq, 0, now + HOUR, i);
    for (int i = 0; i < 20; i++) dead_letter_at(rk, e.cfg->topics.dlq, 1, now - MIN, 100 + i);
    /* and one from an MQTT topic of 700 bytes, ending in a 2-byte character: a dry run with
     * --json used to cut its destination at 599 bytes */
    char lt[720], letter[1000];
    memset(lt, 'd', 697);
    strcpy(lt + 697, "/\u00e9");
    snprintf(letter, sizeof letter,
             "{\"error\":\"unknown_survey\",\"source\":\"mqtt:%s\",\"payload\":\"{}\"}", lt);
    ck_assert(rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(e.cfg->topics.dlq), RD_KAFKA_V_PARTITION(1),
                                RD_KAFKA_V_TIMESTAMP(now - MIN),
                                RD_KAFKA_V_VALUE(letter, strlen(letter)),
                                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END) == 0);
    ck_assert_int_eq(rd_kafka_flush(rk, 30000), 0);
    rd_kafka_destroy(rk);
    json_t *j = ctl_json(&e, "dlq replay --reason unknown_survey --dry-run");
    ck_assert_int_eq(json_integer_value(json_object_get(j, "total")), 21);
    json_t *msgs = json_object_get(j, "messages");
    ck_assert_uint_eq(json_array_size(msgs), 21);
    for (size_t i = 0; i < 20; i++) {
        const char *src = json_string_value(json_object_get(json_array_get(msgs, i), "source"));
        int at = -1;
        ck_assert_msg(src && sscanf(src, "kafka:x.resp/0@%d", &at) == 1 && at >= 100, "%s", src);
    }
    const char *to = json_string_value(json_object_get(json_array_get(msgs, 20), "to"));
    ck_assert_msg(to && strlen(to) == 5 + 700 && !strncmp(to, "mqtt:ddd", 8) &&
                      !strcmp(to + 5 + 697, "/\xc3\xa9"),
                  "%s", to ? to : "(none)");
    json_decref(j);
    /* every partition ends with newer letters: each one is finished, and so is the run, as
     * soon as nothing was replayed for its idle time (it used to wait out 30 s more, the lag
     * of finished partitions being left out as unknown) */
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, rd_kafka_conf_dup(conf), errstr, sizeof errstr);
    ck_assert_msg(rk != NULL, "%s", errstr);
    for (int32_t p = 0; p < 4; p++) dead_letter_at(rk, e.cfg->topics.dlq, p, now + HOUR, 200 + p);
    ck_assert_int_eq(rd_kafka_flush(rk, 30000), 0);
    rd_kafka_destroy(rk);
    int64_t t0 = sb_mono_ms();
    j = ctl_json(&e, "dlq replay --reason unknown_survey --dry-run");
    int64_t took = sb_mono_ms() - t0;
    ck_assert_int_eq(json_integer_value(json_object_get(j, "total")), 21);
    ck_assert_msg(took < 20000, "the replay took %lld ms", (long long)took);
    json_decref(j);
    rd_kafka_conf_destroy(conf);
    env_close(&e);
}
END_TEST

/* ================================================================ 10. empty metrics */

/* How many times key was sent on the metrics topic (every message, not only the last). */
static int times_sent(const texts_t *t, const char *key)
{
    int n = 0;
    for (size_t i = 0; i < t->n; i++) {
        sb_metric_update_t u;
        char err[128], k[600];
        ck_assert_msg(sb_metric_update_decode(t->v[i], strlen(t->v[i]), &u, err, sizeof err) == 0,
                      "%s: %s", t->v[i], err);
        snprintf(k, sizeof k, "%s|%s|%s|%s", sb_metric_names[u.metric], u.window, u.dimension,
                 u.value);
        n += !strcmp(k, key);
    }
    return n;
}

/* An update with no data: count 0 and score null in its text. */
static void expect_empty(const upds_t *o, const char *key)
{
    find(o, key);
    for (size_t i = 0; i < o->n; i++)
        if (!strcmp(o->v[i].key, key))
            ck_assert_msg(strstr(o->v[i].json, "\"count\":0,\"score\":null") != NULL, "%s: %s",
                          key, o->v[i].json);
}

/* SPEC §4: every metric of a slice is published, score null while it has no data, and all|all
 * always, from the first round on. With CSAT responses only (channel email) and one FRT event
 * (channel phone): NPS and CES of all|all, CSAT of channel|phone and FRT of channel|email are
 * count-0 updates, each sent once: not again on later rounds nor on the periodic republish
 * (1 s here), which keeps resending the values. */
START_TEST(empty_metrics_published)
{
    env_t e;
    env_open(&e, "n10", "101100", "{\"windows\":[\"1h\",\"24h\"],\"publish\":{\"republish_s\":1}}");
    agg_start(&e, 0);
    /* before any data: all|all, every metric of every window, empty */
    upds_t o;
    wait_update_count(&e, &o, "transfer_rate|24h|all|all", 0, 30000);
    int64_t end = sb_mono_ms() + 10000;
    while (o.n < 2 * SB_METRIC__N && sb_mono_ms() < end) {
        upds_free(&o);
        sleep_ms(300);
        read_metrics(&e, &o);
    }
    ck_assert_int_eq(o.n, 2 * SB_METRIC__N);
    for (size_t i = 0; i < o.n; i++) {
        ck_assert_msg(strstr(o.v[i].key, "|all|all") != NULL, "%s", o.v[i].key);
        expect_empty(&o, o.v[i].key);
    }
    upds_free(&o);

    const char *dims[SB_DIM__N] = {0};
    dims[SB_DIM_CHANNEL] = "email";
    survey_t s[2];
    int64_t now = sb_now_ms();
    char buf[1024];
    for (int i = 0; i < 2; i++) {
        char inter[16];
        snprintf(inter, sizeof inter, "n10-%d", i);
        survey_make(&e, &s[i], inter, SB_KIND_CSAT, dims, SB_REC_FIRED);
        response_json(buf, sizeof buf, &s[i], NULL, i ? 3 : 5, now, NULL);
        produce(&e, e.cfg->topics.responses, s[i].id, buf);
    }
    snprintf(buf, sizeof buf,
             "{\"event_id\":\"n10-e1\",\"occurred_at\":%lld,\"customer_id\":\"c\","
             "\"interaction_id\":\"n10-i1\",\"kind\":\"support_ticket\",\"channel\":\"phone\","
             "\"kpi\":{\"first_response_s\":60}}",
             (long long)(now - MIN));
    produce(&e, e.cfg->topics.interactions, NULL, buf);
    flush_all(&e);
    wait_counted(&e, 2, 60000);
    end = sb_mono_ms() + 20000;
    while (stat_get(&e, "kpi_events") < 1 && sb_mono_ms() < end) sleep_ms(100);
    ck_assert_int_eq(stat_get(&e, "kpi_events"), 1);
    wait_update_count(&e, &o, "frt|24h|channel|phone", 1, 20000);
    upds_free(&o);
    sleep_ms(2500); /* later rounds, and two periodic republishes */
    read_metrics(&e, &o);
    const sb_metric_update_t *u = find(&o, "csat|24h|all|all"); /* 5 and 3 on 1..5 */
    ck_assert_int_eq(u->v.count, 2);
    ck_assert_double_eq(u->v.score, 50.0);
    u = find(&o, "frt|1h|channel|phone");
    ck_assert_int_eq(u->v.count, 1);
    ck_assert_double_eq(u->v.score, 60.0);
    /* no NPS or CES anywhere, no CSAT for phone, no FRT for email: count 0, score null */
    static const char *const empty[] = {
        "nps|24h|all|all", "nps|1h|all|all", "ces|24h|all|all", "ces|1h|all|all",
        "csat|24h|channel|phone", "csat|1h|channel|phone", "nps|24h|channel|phone",
        "nps|24h|channel|email", "frt|24h|channel|email", "fcr|1h|channel|email",
        "response_rate|24h|channel|phone"};
    size_t n_empty = sizeof empty / sizeof *empty;
    for (size_t i = 0; i < n_empty; i++) expect_empty(&o, empty[i]);
    upds_free(&o);
    /* each sent once; the values again and again */
    texts_t all;
    read_texts(&e, e.cfg->topics.metrics, &all);
    for (size_t i = 0; i < n_empty; i++)
        ck_assert_msg(times_sent(&all, empty[i]) == 1, "%s sent %d times", empty[i],
                      times_sent(&all, empty[i]));
    ck_assert_int_ge(times_sent(&all, "csat|24h|all|all"), 3); /* empty, 2, republished */
    ck_assert_int_ge(times_sent(&all, "frt|24h|channel|phone"), 2);
    texts_free(&all);

    /* a dashboard subscribing now gets them from the retained topics */
    retained_t r;
    memset(&r, 0, sizeof r);
    pthread_mutex_init(&r.mu, NULL);
    char f[2][96], err[256];
    snprintf(f[0], sizeof f[0], "%s/metrics/nps/24h/all/all", e.name);
    snprintf(f[1], sizeof f[1], "%s/metrics/csat/24h/channel/phone", e.name);
    const char *subs[] = {f[0], f[1]};
    sb_mqtt_t *m = sb_mqtt_new(e.cfg, "n10-dashboard", subs, 2, on_retained, &r, err, sizeof err);
    ck_assert_msg(m != NULL, "%s", err);
    ck_assert_int_eq(sb_mqtt_wait_up(m, 10000), 0);
    end = sb_mono_ms() + 10000;
    for (;;) {
        pthread_mutex_lock(&r.mu);
        size_t n = r.u.n;
        pthread_mutex_unlock(&r.mu);
        if (n >= 2 || sb_mono_ms() > end) break;
        sleep_ms(50);
    }
    sb_mqtt_free(m);
    ck_assert_int_eq(r.u.bad, 0);
    expect_empty(&r.u, f[0]);
    expect_empty(&r.u, f[1]);
    upds_free(&r.u);
    pthread_mutex_destroy(&r.mu);

    /* P"shown" keeps '1' only for what was sent with a value: never NPS or CES here */
    redisReply *x = sb_store_cmd(e.st, "HGETALL n10:shown");
    ck_assert_ptr_nonnull(x);
    ck_assert_int_eq(x->type, REDIS_REPLY_ARRAY);
    ck_assert_int_ge(x->elements, 2);
    bool csat_shown = false;
    for (size_t i = 0; i + 1 < x->elements; i += 2) {
        const char *fl = x->element[i + 1]->str;
        ck_assert_int_eq(strlen(fl), SB_METRIC__N);
        ck_assert_msg(fl[SB_METRIC_NPS] == '0' && fl[SB_METRIC_CES] == '0', "%s: %s",
                      x->element[i]->str, fl);
        csat_shown |= fl[SB_METRIC_CSAT] == '1';
    }
    freeReplyObject(x);
    ck_assert(csat_shown);
    agg_stop(&e, 0);
    env_close(&e);
}
END_TEST

/* ================================================================ 11. simulate --json */

/* `surveybusctl --json simulate` prints one object on stdout when it stops: what it sent, as
 * its progress lines on stderr report it. Its events are on the interactions topic. Its own
 * topics: nothing else reads what it writes. */
START_TEST(simulate_json)
{
    env_t e;
    env_open(&e, "s10", "111000", NULL);
    char cmd[1200], *out = NULL;
    snprintf(cmd, sizeof cmd,
             "%s -c %s --set mqtt.url='' --json simulate --rate 20 --duration 2s --respond 0.6 "
             "2>/dev/null",
             sb_h_bin("surveybusctl"), e.path);
    ck_assert_int_eq(sb_h_run(cmd, &out), 0);
    json_error_t je;
    json_t *j = json_loads(out, 0, &je); /* one object, nothing after it */
    ck_assert_msg(json_is_object(j), "%s: %s", je.text, out);
    long long events = json_integer_value(json_object_get(j, "events"));
    long long garbage = json_integer_value(json_object_get(j, "garbage"));
    /* 20 events/s for 2 s, a few fewer when the last one was not yet due */
    ck_assert_msg(events >= 30 && events <= 40, "%s", out);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "visits")), 0); /* no MQTT */
    ck_assert_int_eq(json_integer_value(json_object_get(j, "requests_seen")),
                     0); /* no dispatcher */
    ck_assert_int_eq(json_integer_value(json_object_get(j, "answers_sent")), 0);
    ck_assert(json_is_integer(json_object_get(j, "repeats")));
    ck_assert(json_is_integer(json_object_get(j, "not_answered")));
    ck_assert(json_is_integer(json_object_get(j, "answers_pending")));
    ck_assert_double_eq(json_real_value(json_object_get(j, "rate")), 20.0);
    ck_assert_double_eq(json_real_value(json_object_get(j, "respond")), 0.6);
    /* as given, not 0.59999999999999998 */
    ck_assert_msg(strstr(out, "\"respond\":0.6,"), "%s", out);
    ck_assert(json_real_value(json_object_get(j, "duration_s")) >= 2.0);
    /* what it counted is on the topic: its events and half its garbage (the other half went
     * to the responses topic) */
    texts_t in;
    read_texts(&e, e.cfg->topics.interactions, &in);
    ck_assert_uint_eq(in.n, (size_t)(events + garbage / 2));
    texts_free(&in);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "undelivered")), 0);
    json_decref(j);
    free(out);
    /* brokers down: what Kafka never took is not sent; the run fails and says how much */
    ck_assert_int_eq(sb_h_kafka_down(&h), 0);
    int down_rc = sb_h_run(cmd, &out);
    ck_assert_int_eq(sb_h_kafka_up(&h), 0);
    ck_assert_int_eq(down_rc, 1);
    j = json_loads(out, 0, &je);
    ck_assert_msg(json_is_object(j), "%s: %s", je.text, out);
    ck_assert_int_gt(json_integer_value(json_object_get(j, "undelivered")), 0);
    json_decref(j);
    free(out);
    env_close(&e);
}
END_TEST

/* ================================================================ 12. MQTT only */

/* The messages a test client received, in order (the first 16). */
typedef struct inbox {
    pthread_mutex_t mu;
    size_t n;
    char topic[16][256];
    char payload[16][2048];
} inbox_t;

static int on_inbox(void *opaque, const char *topic, const void *payload, size_t len)
{
    inbox_t *b = opaque;
    pthread_mutex_lock(&b->mu);
    if (b->n < 16) {
        snprintf(b->topic[b->n], sizeof b->topic[0], "%s", topic);
        snprintf(b->payload[b->n], sizeof b->payload[0], "%.*s", (int)len, (const char *)payload);
        b->n++;
    }
    pthread_mutex_unlock(&b->mu);
    return 0;
}

static size_t inbox_wait(inbox_t *b, size_t want, int timeout_ms)
{
    int64_t end = sb_mono_ms() + timeout_ms;
    for (;;) {
        pthread_mutex_lock(&b->mu);
        size_t n = b->n;
        pthread_mutex_unlock(&b->mu);
        if (n >= want || sb_mono_ms() > end) return n;
        sleep_ms(50);
    }
}

static void stat_wait(env_t *e, const char *field, long long want, int timeout_ms)
{
    int64_t end = sb_mono_ms() + timeout_ms;
    while (stat_get(e, field) < want && sb_mono_ms() < end) sleep_ms(100);
    ck_assert_msg(stat_get(e, field) == want, "%s %lld, want %lld", field, stat_get(e, field),
                  want);
}

/* Whether the last response_rate update received on topic has these published numbers
 * ("count" is the responses); fails when it does not and must. */
static bool rate_is(retained_t *r, const char *topic, long long count, long long requests,
                    double score, bool must)
{
    pthread_mutex_lock(&r->mu);
    char *json = NULL;
    for (size_t i = 0; i < r->u.n && !json; i++)
        if (!strcmp(r->u.v[i].key, topic)) json = strdup(r->u.v[i].json);
    pthread_mutex_unlock(&r->mu);
    ck_assert_msg(json || !must, "nothing on %s", topic);
    if (!json) return false;
    json_t *o = json_loads(json, 0, NULL);
    ck_assert_ptr_nonnull(o);
    bool same = json_integer_value(json_object_get(o, "count")) == count &&
                json_integer_value(json_object_get(o, "requests")) == requests &&
                json_number_value(json_object_get(o, "score")) == score;
    ck_assert_msg(same || !must, "%s: %s", topic, json);
    json_decref(o);
    free(json);
    return same;
}

/* Kafka off: the aggregator reads the requests sent from the MQTT request topics, so the
 * response rate has its denominator. A real dispatcher (Kafka off too) turns four MQTT
 * visits into four requests: two to devices (mqtt_topics.device_requests) and two by SMS
 * (mqtt_topics.requests). One request is delivered a second time and counts once; two
 * surveys are answered over MQTT. The retained response_rate is then count 2 (responses)
 * of 4 requests: 50 %, and 1 of 2 for each journey. */
START_TEST(mqtt_only_response_rate)
{
    env_t e;
    env_open(&e, "q12", "000000",
             "{\"kafka\":{\"brokers\":\"\"},"
             "\"mqtt_topics\":{\"requests\":\"q12/surveys/{channel}/{customer_id}\","
             "\"device_requests\":\"q12/fieldservice/{device_id}/survey/request\"},"
             "\"journeys\":["
             "{\"name\":\"q12-visit\",\"on\":{\"kind\":\"field_visit\"},\"survey\":\"csat\"},"
             "{\"name\":\"q12-callback\",\"on\":{\"kind\":\"callback\"},\"survey\":\"nps\","
             "\"channel\":\"sms\"}]}");
    ck_assert_ptr_null(e.prod);
    char err[256], topic[128], buf[2048];
    /* the dispatcher's session, so that it gets the visits published before it subscribed;
     * the aggregator has none yet: what it reads it subscribed to itself */
    snprintf(topic, sizeof topic, "%s/fieldservice/+/visit/completed", e.name);
    const char *visits[] = {topic};
    sb_mqtt_t *m = sb_mqtt_new(e.cfg, "q12-disp", visits, 1, on_nothing, NULL, err, sizeof err);
    ck_assert_msg(m != NULL, "%s", err);
    ck_assert_int_eq(sb_mqtt_wait_up(m, 10000), 0);
    sb_mqtt_free(m);
    agg_start(&e, 0);
    sb_mqtt_t *dev = sb_mqtt_new(e.cfg, "q12-devices", NULL, 0, NULL, NULL, err, sizeof err);
    ck_assert_msg(dev != NULL, "%s", err);
    ck_assert_int_eq(sb_mqtt_wait_up(dev, 10000), 0);

    /* ready once a request on a request topic reaches it: one for a survey that does not
     * exist, which only counts as requests_unknown */
    sb_survey_request_t *q = calloc(1, sizeof *q);
    ck_assert_ptr_nonnull(q);
    sb_record_survey_id("q12-probe", "q12-callback", q->survey_id);
    snprintf(q->journey, sizeof q->journey, "q12-callback");
    snprintf(q->customer_id, sizeof q->customer_id, "c-probe");
    snprintf(q->interaction_id, sizeof q->interaction_id, "q12-probe");
    snprintf(q->channel, sizeof q->channel, "sms");
    snprintf(q->question, sizeof q->question, "Would you recommend us?");
    q->kind = SB_KIND_NPS, q->scale_min = 0, q->scale_max = 10;
    q->issued_ms = sb_now_ms(), q->expires_ms = q->issued_ms + DAY;
    ck_assert_int_eq(
        sb_token_sign(e.cfg->token.secret, q->survey_id, q->expires_ms, q->token, sizeof q->token),
        0);
    char *probe = sb_survey_request_encode(q);
    ck_assert_ptr_nonnull(probe);
    snprintf(topic, sizeof topic, "%s/surveys/sms/c-probe", e.name);
    int64_t end = sb_mono_ms() + 30000;
    while (stat_get(&e, "requests_unknown") < 1 && sb_mono_ms() < end) {
        ck_assert_int_eq(sb_mqtt_publish(dev, topic, probe, strlen(probe), false, NULL), 0);
        sleep_ms(200);
    }
    free(probe);
    ck_assert_int_ge(stat_get(&e, "requests_unknown"), 1);
    ck_assert_int_eq(stat_get(&e, "requests"), 0);

    /* the customers' and devices' side: every request, from before the dispatcher starts */
    inbox_t *in = calloc(1, sizeof *in);
    ck_assert_ptr_nonnull(in);
    pthread_mutex_init(&in->mu, NULL);
    char rf[2][96];
    snprintf(rf[0], sizeof rf[0], "%s/fieldservice/+/survey/request", e.name);
    snprintf(rf[1], sizeof rf[1], "%s/surveys/+/+", e.name);
    const char *req_subs[] = {rf[0], rf[1]};
    sb_mqtt_t *cust =
        sb_mqtt_new(e.cfg, "q12-customers", req_subs, 2, on_inbox, in, err, sizeof err);
    ck_assert_msg(cust != NULL, "%s", err);
    ck_assert_int_eq(sb_mqtt_wait_up(cust, 10000), 0);

    const char *argv[] = {getenv("SB_DISPATCHER") ? getenv("SB_DISPATCHER")
                                                  : sb_h_bin("surveybus-dispatcher"),
                          "-c", e.path, "--set", "mqtt.client_id=q12-disp", NULL};
    e.procs[1] = sb_h_spawn(&h, argv, "q12-disp.log");
    ck_assert_int_gt(e.procs[1], 0);
    int64_t now = sb_now_ms();
    for (int i = 1; i <= 4; i++) {
        snprintf(topic, sizeof topic, "%s/fieldservice/dev-%d/visit/completed", e.name, i);
        snprintf(buf, sizeof buf,
                 "{\"event_id\":\"q12-e%d\",\"occurred_at\":%lld,\"customer_id\":\"c-%d\","
                 "\"interaction_id\":\"q12-i%d\",\"kind\":\"%s\"}",
                 i, (long long)now, i, i, i <= 2 ? "field_visit" : "callback");
        ck_assert_int_eq(sb_mqtt_publish(dev, topic, buf, strlen(buf), false, NULL), 0);
    }
    ck_assert_int_eq(inbox_wait(in, 4, 30000), 4);
    stat_wait(&e, "requests", 4, 20000);

    /* one request delivered again (a redelivery after a crash): the same survey, no new
     * request */
    pthread_mutex_lock(&in->mu);
    const char *dup_topic = in->topic[0], *dup = in->payload[0];
    pthread_mutex_unlock(&in->mu);
    ck_assert_int_eq(sb_mqtt_publish(dev, dup_topic, dup, strlen(dup), false, NULL), 0);
    stat_wait(&e, "requests_duplicate", 1, 20000);
    ck_assert_int_eq(stat_get(&e, "requests"), 4);

    /* one device survey and one SMS survey answered */
    bool answered_device = false, answered_sms = false;
    snprintf(topic, sizeof topic, "%s/fieldservice/dev-1/survey/response", e.name);
    for (size_t i = 0; i < 4; i++) {
        bool device = strstr(in->topic[i], "/fieldservice/") != NULL;
        if (device ? answered_device : answered_sms) continue;
        ck_assert_int_eq(
            sb_survey_request_decode(in->payload[i], strlen(in->payload[i]), q, err, sizeof err),
            0);
        ck_assert_int_eq(q->kind, device ? SB_KIND_CSAT : SB_KIND_NPS);
        ck_assert_str_eq(q->channel, device ? "device" : "sms");
        snprintf(buf, sizeof buf, "{\"survey_id\":\"%s\",\"token\":\"%s\",\"score\":%d}",
                 q->survey_id, q->token, device ? 5 : 9);
        ck_assert_int_eq(sb_mqtt_publish(dev, topic, buf, strlen(buf), false, NULL), 0);
        if (device)
            answered_device = true;
        else
            answered_sms = true;
    }
    ck_assert(answered_device && answered_sms);
    free(q);
    ck_assert_int_eq(sb_mqtt_wait_published(dev, 5000), 0);
    wait_counted(&e, 2, 60000);

    /* what a dashboard reads from the retained metric topics */
    retained_t r;
    memset(&r, 0, sizeof r);
    pthread_mutex_init(&r.mu, NULL);
    char mf[96], all[96], jv[96], jc[96];
    snprintf(mf, sizeof mf, "%s/metrics/response_rate/1h/#", e.name);
    snprintf(all, sizeof all, "%s/metrics/response_rate/1h/all/all", e.name);
    snprintf(jv, sizeof jv, "%s/metrics/response_rate/1h/journey/q12-visit", e.name);
    snprintf(jc, sizeof jc, "%s/metrics/response_rate/1h/journey/q12-callback", e.name);
    const char *met_subs[] = {mf};
    sb_mqtt_t *dash =
        sb_mqtt_new(e.cfg, "q12-dashboard", met_subs, 1, on_retained, &r, err, sizeof err);
    ck_assert_msg(dash != NULL, "%s", err);
    ck_assert_int_eq(sb_mqtt_wait_up(dash, 10000), 0);
    end = sb_mono_ms() + 10000;
    while (!(rate_is(&r, all, 2, 4, 50.0, false) && rate_is(&r, jv, 1, 2, 50.0, false) &&
             rate_is(&r, jc, 1, 2, 50.0, false)) &&
           sb_mono_ms() < end)
        sleep_ms(50);
    sb_mqtt_free(dash);
    ck_assert_int_eq(r.u.bad, 0);
    rate_is(&r, all, 2, 4, 50.0, true);
    rate_is(&r, jv, 1, 2, 50.0, true);
    rate_is(&r, jc, 1, 2, 50.0, true);
    upds_free(&r.u);
    pthread_mutex_destroy(&r.mu);
    ck_assert_int_eq(stat_get(&e, "requests"), 4);
    ck_assert_int_eq(stat_get(&e, "requests_duplicate"), 1);

    sb_mqtt_free(cust);
    pthread_mutex_destroy(&in->mu);
    free(in);
    sb_mqtt_free(dev);
    int st = 0;
    ck_assert_int_eq(sb_h_kill(e.procs[1], SIGTERM), 0);
    ck_assert_msg(sb_h_wait_exit(e.procs[1], 10000, &st) == 0, "dispatcher did not stop");
    e.procs[1] = 0;
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "dispatcher exit status 0x%x", st);
    agg_stop(&e, 0);
    env_close(&e);
}
END_TEST

typedef struct alert_box {
    pthread_mutex_t mu;
    int n;
} alert_box_t;

static int on_alert(void *opaque, const char *topic, const void *payload, size_t len)
{
    (void)topic, (void)payload, (void)len;
    alert_box_t *b = opaque;
    pthread_mutex_lock(&b->mu);
    b->n++;
    pthread_mutex_unlock(&b->mu);
    return 0;
}

static long long alertq_len(env_t *e)
{
    char key[128];
    sb_store_key(e->st, key, sizeof key, "alertq");
    redisReply *r = sb_store_cmd(e->st, "ZCARD %s", key);
    long long n = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    if (r) freeReplyObject(r);
    return n;
}

/* Kafka off: an alert left in the outbox (its instance died before publishing it) is swept
 * to MQTT by the publisher, and leaves the outbox only once libmosquitto took it. While the
 * broker is down (QoS 0: nothing is queued) the sweep must keep it, and send it when the
 * broker is back; the previous build removed it from the outbox on the failed attempt, so
 * it was never sent. */
START_TEST(mqtt_only_alert_sweep_keeps_unsent)
{
    env_t e;
    env_open(&e, "sw", "000000", "{\"kafka\":{\"brokers\":\"\"},\"mqtt\":{\"qos\":0}}");
    ck_assert_ptr_null(e.prod);
    char key[128], lkey[128];
    sb_store_key(e.st, key, sizeof key, "alertq");
    sb_store_key(e.st, lkey, sizeof lkey, "leader");
    const char *alert = "{\"type\":\"detractor\",\"survey_id\":\"sw-1\",\"kind\":\"nps\",\"score\":2}";
    redisReply *r = sb_store_cmd(e.st, "ZADD %s %lld %s", key, (long long)(sb_now_ms() - 5 * MIN), alert);
    ck_assert_ptr_nonnull(r);
    freeReplyObject(r);
    ck_assert_int_eq(sb_h_mqtt_stop(&h), 0);
    agg_start(&e, 0);
    /* its first publication round sweeps the outbox, with the broker away */
    int64_t end = sb_mono_ms() + 30000;
    bool leader = false;
    while (!leader && sb_mono_ms() < end) {
        r = sb_store_cmd(e.st, "EXISTS %s", lkey);
        leader = r && r->type == REDIS_REPLY_INTEGER && r->integer == 1;
        if (r) freeReplyObject(r);
        if (!leader) sleep_ms(100);
    }
    ck_assert_msg(leader, "the aggregator did not start publishing");
    sleep_ms(2000);
    ck_assert_int_eq(alertq_len(&e), 1);

    /* the broker back: the next sweep (every 30 s) sends it, then it leaves the outbox */
    ck_assert_int_eq(sb_h_mqtt_start(&h), 0);
    alert_box_t box = {.n = 0};
    pthread_mutex_init(&box.mu, NULL);
    char err[256], topic[64];
    snprintf(topic, sizeof topic, "%s/alerts/#", e.name);
    const char *subs[] = {topic};
    sb_mqtt_t *m = sb_mqtt_new(e.cfg, "sw-watch", subs, 1, on_alert, &box, err, sizeof err);
    ck_assert_msg(m != NULL, "%s", err);
    ck_assert_int_eq(sb_mqtt_wait_up(m, 10000), 0);
    end = sb_mono_ms() + 60000;
    while (alertq_len(&e) != 0 && sb_mono_ms() < end) sleep_ms(200);
    ck_assert_int_eq(alertq_len(&e), 0);
    sleep_ms(500);
    pthread_mutex_lock(&box.mu);
    int got = box.n;
    pthread_mutex_unlock(&box.mu);
    ck_assert_int_eq(got, 1);
    sb_mqtt_free(m);
    pthread_mutex_destroy(&box.mu);
    agg_stop(&e, 0);
    env_close(&e);
}
END_TEST

/* A backlog of alerts left in the outbox (Kafka away for a while, or an instance killed
 * with many in flight) is drained at the pace Kafka confirms them. The sweep used to take
 * 200 alerts every 30 s whatever the backlog: 500 took a minute, and an outbox that gained
 * more than 400 stale alerts a minute grew without end. */
#define A12_N 500
START_TEST(alert_backlog_drained)
{
    env_t e;
    env_open(&e, "a12", "000010", NULL);
    char key[128];
    sb_store_key(e.st, key, sizeof key, "alertq");
    int64_t old = sb_now_ms() - 5 * MIN;
    for (int i = 0; i < A12_N; i++) {
        char alert[160];
        snprintf(alert, sizeof alert,
                 "{\"type\":\"detractor\",\"survey_id\":\"a12-%d\",\"kind\":\"nps\",\"score\":2}", i);
        redisReply *r = sb_store_cmd(e.st, "ZADD %s %lld %s", key, (long long)(old + i), alert);
        ck_assert_ptr_nonnull(r);
        freeReplyObject(r);
    }
    agg_start(&e, 0);
    int64_t end = sb_mono_ms() + 12000;
    while (alertq_len(&e) != 0 && sb_mono_ms() < end) sleep_ms(200);
    ck_assert_int_eq(alertq_len(&e), 0);
    agg_stop(&e, 0);
    /* each one on the alerts topic */
    texts_t t;
    read_texts(&e, e.cfg->topics.alerts, &t);
    static bool seen[A12_N];
    memset(seen, 0, sizeof seen);
    for (size_t i = 0; i < t.n; i++) {
        const char *id = strstr(t.v[i], "\"a12-");
        if (id) {
            int k = atoi(id + 5);
            if (k >= 0 && k < A12_N) seen[k] = true;
        }
    }
    for (int i = 0; i < A12_N; i++) ck_assert_msg(seen[i], "alert a12-%d not published", i);
    texts_free(&t);
    env_close(&e);
}
END_TEST

/* SPEC §1: SIGTERM ends the aggregator with exit 0 within 10 s, also when Redis stops
 * answering (a hung server, not a refused connection: each call waits out the 5 s command
 * timeout). Stopping used to make two more such calls (confirming alerts, handing over the
 * publishing lease) after the one in flight: 10.3 s. */
/* Opens a connection to 127.0.0.1:port and sends one GET of path; the caller closes the
 * socket (the answer is not read). */
static int http_get_open(int port, const char *path)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    char req[128];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\n\r\n", path);
    ck_assert_int_eq(write(fd, req, (size_t)n), n);
    return fd;
}

/* SIGTERM while Redis hangs (SIGSTOP, not refused): exit 0 within 10 s, also with a probe
 * of /healthz and one of /metrics waiting on Redis (each used to add about 10 s). */
/* SIGTERM to aggregator 0 while server (a broker or Redis, SIGSTOPped by the caller) hangs:
 * it must exit 0 within 10 s. The server is resumed (SIGCONT) whatever happens. */
static void stop_while_stopped(env_t *e, pid_t server)
{
    int64_t t0 = sb_mono_ms();
    ck_assert_int_eq(sb_h_kill(e->procs[0], SIGTERM), 0);
    int st = 0, rc = sb_h_wait_exit(e->procs[0], 30000, &st);
    int64_t took = sb_mono_ms() - t0;
    sb_h_kill(server, SIGCONT);
    ck_assert_msg(rc == 0, "aggregator did not stop in 30 s");
    e->procs[0] = 0;
    ck_assert_msg(took < 10000, "stopping took %lld ms", (long long)took);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit status 0x%x", st);
}

/* SIGTERM while the Kafka broker hangs (SIGSTOP: nothing refused, nothing answered), after
 * a response was counted (its offset stored, not yet committed): exit 0 within 10 s (about
 * 5 s: the commit waits, then the close gives up; the dispatcher's version of this took
 * 10.3 s before the consumer was bounded by the stop budget). */
START_TEST(sigterm_with_kafka_hung)
{
    env_t e;
    survey_t s;
    one_sent_csat(&e, "h14", &s);
    char buf[1024];
    response_json(buf, sizeof buf, &s, NULL, 4, sb_now_ms(), NULL);
    produce(&e, e.cfg->topics.responses, s.id, buf);
    flush_all(&e);
    agg_start(&e, 0);
    wait_counted(&e, 1, 60000);
    ck_assert_int_eq(sb_h_kill(h.kafka_pid, SIGSTOP), 0);
    sleep_ms(500);
    stop_while_stopped(&e, h.kafka_pid);
    env_close(&e);
}
END_TEST

START_TEST(sigterm_with_redis_hung)
{
    env_t e;
    int port = sb_h_free_port();
    char extra[200];
    snprintf(extra, sizeof extra,
             "{\"kafka\": {\"brokers\": \"\"}, \"http\": {\"aggregator\": \"127.0.0.1:%d\"}}", port);
    env_open(&e, "h13", "000000", extra);
    agg_start(&e, 0);
    /* running: it holds the publishing lease */
    int64_t end = sb_mono_ms() + 15000;
    bool leader = false;
    while (!leader && sb_mono_ms() < end) {
        redisReply *r = sb_store_cmd(e.st, "EXISTS h13:leader");
        leader = r && r->type == REDIS_REPLY_INTEGER && r->integer == 1;
        if (r) freeReplyObject(r);
        if (!leader) sleep_ms(100);
    }
    ck_assert_msg(leader, "the aggregator did not start publishing");
    ck_assert_int_eq(sb_h_kill(h.redis_pid, SIGSTOP), 0);
    sleep_ms(2000); /* its calls to Redis now time out */
    int probes[2] = {http_get_open(port, "/healthz"), http_get_open(port, "/metrics")};
    sleep_ms(200);
    stop_while_stopped(&e, h.redis_pid);
    close(probes[0]);
    close(probes[1]);
    env_close(&e);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("aggregator");
    TCase *tc = tcase_create("aggregator");
    tcase_add_unchecked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 240);
    SB_H_ADD(tc, bad_responses_dead_lettered);
    SB_H_ADD(tc, skewed_answer_judged_at_arrival);
    SB_H_ADD(tc, copies_in_one_batch);
    SB_H_ADD(tc, rates_and_kpis);
    SB_H_ADD(tc, late_subscriber_gets_retained);
    SB_H_ADD(tc, emptied_slice_cleared_by_next_publisher);
    SB_H_ADD(tc, retaken_lease_reloads_shown);
    SB_H_ADD(tc, mqtt_inputs);
    SB_H_ADD(tc, mqtt_only_response_rate);
    SB_H_ADD(tc, mqtt_only_alert_sweep_keeps_unsent);
    SB_H_ADD(tc, alert_backlog_drained);
    SB_H_ADD(tc, failed_metric_delivery_resent);
    SB_H_ADD(tc, dlq_replay);
    SB_H_ADD(tc, empty_metrics_published);
    SB_H_ADD(tc, oracle_single);
    SB_H_ADD(tc, oracle_kill9);
    SB_H_ADD(tc, oracle_redis_restart);
    SB_H_ADD(tc, oracle_two_instances);
    SB_H_ADD(tc, simulate_json);
    SB_H_ADD(tc, dlq_replay_partitions);
    SB_H_ADD(tc, sigterm_with_kafka_hung);
    SB_H_ADD(tc, sigterm_with_redis_hung); /* last: it stops Redis for a while */
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return sb_h_run_suite(suite(), true);
}
