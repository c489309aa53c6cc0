/* Aggregator ingest: raw responses, requests and interaction events -> verified items ->
 * one atomic tally call per batch -> dead letters and alerts, confirmed before the caller
 * commits. */
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aggregator.h"
#include "dlq.h"
#include "event.h"
#include "log.h"
#include "record.h"
#include "stats.h"
#include "survey.h"
#include "token.h"

static void count(sb_counts_t *cs, const char *field)
{
    sb_counts_add(cs, field, 1);
}

static void countf(sb_counts_t *cs, const char *prefix, const char *what)
{
    char f[SB_COUNT_NAME_MAX];
    snprintf(f, sizeof f, "%s%.80s", prefix, what);
    count(cs, f);
}

/* Per message working state, kept small (a batch of them stays in memory, two batches at a
 * time): the decoded response and record live in per-batch scratch space, and only what
 * later steps need is copied here. */
typedef struct work {
    char state;   /* 0 pending; 'd' dead; 's' skipped (counted in counters); 'i' an item */
    char reason[240];
    char survey_id[SB_STR_MAX + 1];
    int64_t ts;
    int score;
    sb_kind_t kind;
    char *comment; /* owned; NULL: none */
    char *names;   /* owned: the slice names "dim|value", each NUL-terminated */
    size_t n_names;
    char *alert;   /* owned */
    int item;      /* index into items when state 'i' */
} work_t;

/* Decoding space of a batch, reused message after message. */
typedef struct scratch {
    sb_survey_response_t resp;
    sb_record_t rec;
    sb_event_t ev;
} scratch_t;

/* The slice names of dimension values, packed into w->names. */
static void keep_names(const sb_config_t *cfg, work_t *w, const char (*vals)[SB_STR_MAX + 1])
{
    char names[SB_DIM__N][SB_TALLY_NAME_MAX];
    size_t n = sb_tally_slice_names(cfg, vals, names), len = 0;
    for (size_t i = 0; i < n; i++) len += strlen(names[i]) + 1;
    char *p = w->names = malloc(len ? len : 1);
    if (!p) abort();
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(names[i]) + 1;
        memcpy(p, names[i], l);
        p += l;
    }
    w->n_names = n;
}

static void dead(work_t *w, sb_counts_t *cs, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void dead(work_t *w, sb_counts_t *cs, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->reason, sizeof w->reason, fmt, ap);
    va_end(ap);
    char code[64];
    sb_reason_code(w->reason, code, sizeof code);
    countf(cs, "dlq|", code);
    w->state = 'd';
}

/* Appends an alert confirmed by Kafka to a list of n of cap (grown as needed). */
static void done_push(char ***done, size_t *n, size_t *cap, char *json)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 256;
        *done = realloc(*done, *cap * sizeof **done);
        if (!*done) abort();
    }
    (*done)[(*n)++] = json;
}

void aggregator_delivery(void *opaque, void *msg_opaque, int ok, const char *errstr)
{
    (void)opaque;
    int tag = msg_opaque ? *(int *)msg_opaque : 0;
    if (tag == SB_WAIT_TAG) {
        sb_wait_delivered(msg_opaque, ok, errstr);
    } else if (tag == TAG_ALERT) {
        alert_msg_t *a = msg_opaque;
        if (ok) {
            alert_sink_t *s = a->sink;
            pthread_mutex_lock(&s->mu);
            done_push(&s->done, &s->n, &s->cap, a->json);
            pthread_mutex_unlock(&s->mu);
        } else {
            /* left in the outbox: the publisher sends it again after a minute */
            sb_warn("alert not delivered err=\"%s\"", errstr ? errstr : "");
            free(a->json);
        }
        free(a);
    } else if (tag == TAG_METRIC) {
        publisher_delivered(msg_opaque, ok, errstr);
    }
}

int alert_sink_flush(alert_sink_t *s, sb_tally_t *t)
{
    pthread_mutex_lock(&s->mu);
    char **done = s->done;
    size_t n = s->n, cap = s->cap;
    s->done = NULL, s->n = 0, s->cap = 0;
    pthread_mutex_unlock(&s->mu);
    if (n == 0) return 0;
    int rc = sb_tally_alerts_done(t, (const char *const *)done, n);
    if (rc == 0) {
        for (size_t i = 0; i < n; i++) free(done[i]);
        free(done);
        return 0;
    }
    /* Redis down: keep them for the next flush */
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->n; i++) done_push(&done, &n, &cap, s->done[i]);
    free(s->done);
    s->done = done, s->n = n, s->cap = cap;
    pthread_mutex_unlock(&s->mu);
    return -1;
}

/* The alert of a counted response (SPEC §4), or NULL. */
static char *alert_json(const sb_config_t *cfg, const work_t *w, const sb_record_t *r)
{
    const char *type = sb_stats_alert_type(r->kind);
    json_t *o = json_object(), *dims = json_object();
    char when[32];
    sb_time_format(w->ts, when);
    json_object_set_new(o, "type", json_string(type));
    json_object_set_new(o, "survey_id", json_string(w->survey_id));
    json_object_set_new(o, "customer_id", json_string(r->customer_id));
    json_object_set_new(o, "interaction_id", json_string(r->interaction_id));
    json_object_set_new(o, "journey", json_string(r->journey));
    json_object_set_new(o, "kind", json_string(sb_kind_names[r->kind]));
    json_object_set_new(o, "score", json_integer(w->score));
    json_object_set_new(o, "comment", w->comment ? json_string(w->comment) : json_null());
    json_object_set_new(o, "answered_at", json_string(when));
    for (size_t i = 0; i < cfg->n_dimensions; i++) {
        sb_dim_t d = cfg->dimensions[i];
        if (r->dim[d][0]) json_object_set_new(dims, sb_dim_names[d], json_string(r->dim[d]));
    }
    json_object_set_new(o, "dims", dims);
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    return s;
}

/* Resolves the slices of one item from its slice names. Returns 0 or -1 (Redis). */
static int slices_of(ingest_t *ig, sb_store_t *via, const work_t *w, sb_tally_item_t *it,
                     sb_counts_t *cs)
{
    const char *ptr[SB_DIM__N] = {0};
    bool capped[SB_DIM__N];
    size_t n = w->n_names < SB_DIM__N ? w->n_names : SB_DIM__N;
    const char *p = w->names;
    for (size_t i = 0; i < n; i++, p += strlen(p) + 1) ptr[i] = p;
    if (sb_tally_slices_via(ig->tally, via, ptr, n, it->slices, capped) != 0) return -1;
    it->n_slices = n;
    for (size_t i = 0; i < n; i++)
        if (capped[i]) {
            char dim[SB_TALLY_NAME_MAX];
            snprintf(dim, sizeof dim, "%.*s", (int)strcspn(ptr[i], "|"), ptr[i]);
            countf(cs, "capped|", dim);
        }
    return 0;
}

/* The time an item counts at: ts itself, or now for a time at most the allowed lateness
 * ahead of this clock (clock skew). Returns 0, SB_WINDOW_LATE or SB_WINDOW_FUTURE. */
static int place_time(const sb_config_t *cfg, int64_t now, int64_t *ts)
{
    sb_window_plan_t plan;
    int rc = sb_window_plan(cfg->windows_ms, cfg->n_windows, cfg->allowed_lateness_ms, now, *ts,
                            &plan);
    if (rc == 0 && *ts > now) *ts = now;
    return rc;
}

/* Fills the dimension values of an interaction event (attribution of its KPIs). */
static void event_dims(const sb_event_t *ev, char (*vals)[SB_STR_MAX + 1])
{
    memset(vals, 0, SB_DIM__N * (SB_STR_MAX + 1));
    snprintf(vals[SB_DIM_ALL], SB_STR_MAX + 1, "all");
    const char *ch = ev->val[SB_F_CHANNEL][0] ? ev->val[SB_F_CHANNEL]
                     : ev->val[SB_F_DEVICE_ID][0] ? "device" : "";
    snprintf(vals[SB_DIM_CHANNEL], SB_STR_MAX + 1, "%s", ch);
    static const struct { sb_dim_t d; sb_field_t f; } map[] = {
        {SB_DIM_AGENT, SB_F_AGENT},   {SB_DIM_TEAM, SB_F_TEAM},     {SB_DIM_REGION, SB_F_REGION},
        {SB_DIM_PRODUCT, SB_F_PRODUCT}, {SB_DIM_STAGE, SB_F_STAGE}, {SB_DIM_KIND, SB_F_KIND},
        {SB_DIM_LOCALE, SB_F_LOCALE}, {SB_DIM_DEVICE, SB_F_DEVICE_ID},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        snprintf(vals[map[i].d], SB_STR_MAX + 1, "%s", ev->val[map[i].f]);
}

/* Step 1: parse and check what needs no Redis. */
static void parse_one(ingest_t *ig, const in_msg_t *m, work_t *w, scratch_t *x,
                      sb_tally_item_t *it, sb_counts_t *cs, int64_t now)
{
    const sb_config_t *cfg = ig->cfg;
    char err[200];
    if (m->stream == STREAM_RESPONSE) {
        count(cs, "consumed|responses");
        sb_survey_response_t *resp = &x->resp;
        if (sb_survey_response_decode(m->payload, m->len, m->device_id, resp, err,
                                      sizeof err) != 0) {
            dead(w, cs, "%s", err);
            return;
        }
        snprintf(w->survey_id, sizeof w->survey_id, "%s", resp->survey_id);
        w->ts = resp->has_answered ? resp->answered_ms : now;
        w->score = resp->score;
        int64_t exp = 0;
        /* a time ahead of this clock is a client clock running fast (place_time counts it at
         * now, or refuses it as future): the survey cannot have expired later than now */
        int tv = sb_token_verify(cfg->token.secret, w->survey_id, resp->token,
                                 w->ts > now ? now : w->ts, &exp);
        if (tv == SB_TOKEN_BAD) {
            dead(w, cs, "bad_token: the token does not belong to survey %s", w->survey_id);
            return;
        }
        if (tv == SB_TOKEN_EXPIRED) {
            char a[32], e[32];
            sb_time_format(w->ts > now ? now : w->ts, a);
            sb_time_format(exp, e);
            dead(w, cs, "expired: answered %s, the survey expired %s", a, e);
            return;
        }
        if (w->score < 0 || w->score > SB_SCORE_MAX) {
            dead(w, cs, "score_out_of_range: %d is not in 0..%d", w->score, SB_SCORE_MAX);
            return;
        }
        int pt = place_time(cfg, now, &w->ts);
        if (pt == SB_WINDOW_FUTURE) {
            dead(w, cs, "bad_time: answered_at is more than the allowed lateness ahead");
            return;
        }
        if (pt == SB_WINDOW_LATE) {
            count(cs, "late");
            dead(w, cs, "late: answered_at is older than the longest window and the allowed "
                        "lateness");
            return;
        }
        if (resp->has_comment) {
            w->comment = strdup(resp->comment);
            if (!w->comment) abort();
        }
        w->state = 0; /* needs its record */
    } else if (m->stream == STREAM_REQUEST) {
        count(cs, "consumed|requests");
        sb_survey_request_t *rq = malloc(sizeof *rq);
        if (!rq) abort();
        int rc = sb_survey_request_decode(m->payload, m->len, rq, err, sizeof err);
        if (rc == 0 && rq->reminder) {
            count(cs, "requests_reminder"); /* a reminder is not another request */
            w->state = 's';
        } else if (rc == 0) {
            snprintf(w->survey_id, sizeof w->survey_id, "%s", rq->survey_id);
            w->ts = rq->issued_ms;
            int pt = place_time(cfg, now, &w->ts);
            if (pt == SB_WINDOW_LATE || pt == SB_WINDOW_FUTURE) {
                count(cs, pt == SB_WINDOW_LATE ? "requests_late" : "requests_future");
                w->state = 's';
            } else {
                w->state = 0;
            }
        } else {
            dead(w, cs, "%s", err);
        }
        free(rq);
    } else {
        count(cs, "consumed|interactions");
        /* bad events are the dispatcher's dead letters; here they are only counted */
        sb_event_t *ev = &x->ev;
        if (sb_event_parse(m->payload, m->len, cfg->mapping, m->device_id, m->mqtt, ev, err,
                           sizeof err) != 0) {
            char code[64];
            sb_reason_code(err, code, sizeof code);
            countf(cs, "kpi_invalid|", code);
            w->state = 's';
            return;
        }
        if (ev->type == SB_EV_REOPENED || !(ev->has_frt || ev->has_art || ev->has_fcr ||
                                            ev->has_transfers)) {
            count(cs, "kpi_none");
            w->state = 's';
            return;
        }
        w->ts = ev->occurred_ms;
        int64_t day = sb_window_bucket_start(ev->occurred_ms, SB_WINDOW_DAY_MS);
        int pt = place_time(cfg, now, &w->ts);
        if (pt != 0) {
            count(cs, pt == SB_WINDOW_LATE ? "kpi_late" : "kpi_future");
            w->state = 's';
            return;
        }
        snprintf(w->survey_id, sizeof w->survey_id, "%s", ev->val[SB_F_EVENT_ID]);
        memset(it, 0, sizeof *it);
        it->type = SB_TALLY_KPI;
        it->ts_ms = w->ts;
        it->day_ms = day; /* the event's own day, whatever the clamping: redeliveries match */
        it->has_frt = ev->has_frt;
        it->has_art = ev->has_art;
        if (ev->has_frt) {
            it->frt_key = sb_stats_kpi_bucket(ev->frt_s);
            it->frt_ms = llround(ev->frt_s * 1000.0);
        }
        if (ev->has_art) {
            it->art_key = sb_stats_kpi_bucket(ev->art_s);
            it->art_ms = llround(ev->art_s * 1000.0);
        }
        it->fcr = ev->has_fcr ? ev->fcr : -1;
        it->transferred = ev->has_transfers ? ev->transfers > 0 : -1;
        event_dims(ev, x->rec.dim);
        keep_names(cfg, w, (const char(*)[SB_STR_MAX + 1])x->rec.dim);
        w->state = 'k'; /* an item, slices still to resolve */
    }
}

/* Whether a response to w's survey was accepted earlier in its batch (w0 is the batch's
 * first). Only asked of a response that fails a check against the record: rare. */
static bool answered_earlier(const work_t *w0, const work_t *w)
{
    for (const work_t *p = w0; p < w; p++)
        if (p->state == 'r' && !strcmp(p->survey_id, w->survey_id)) return true;
    return false;
}

/* Step 2: with its survey record (NULL: none), decide a response or request. w0: the first
 * of w's batch. */
static void check_record(ingest_t *ig, const in_msg_t *m, const work_t *w0, work_t *w,
                         const redisReply *v, sb_record_t *rec, sb_counts_t *cs)
{
    char err[200];
    if (!v || v->type != REDIS_REPLY_STRING) {
        if (m->stream == STREAM_RESPONSE)
            dead(w, cs, "unknown_survey: no survey %s (never scheduled, or long expired)",
                 w->survey_id);
        else {
            count(cs, "requests_unknown");
            w->state = 's';
        }
        return;
    }
    if (sb_record_decode(v->str, v->len, rec, err, sizeof err) != 0) {
        sb_error("unreadable survey record id=%s err=\"%s\"", w->survey_id, err);
        if (m->stream == STREAM_RESPONSE) {
            dead(w, cs, "unknown_survey: the record of survey %s is unreadable", w->survey_id);
        } else {
            count(cs, "requests_unreadable");
            w->state = 's';
        }
        return;
    }
    w->kind = rec->kind;
    if (m->stream == STREAM_REQUEST) {
        keep_names(ig->cfg, w, (const char(*)[SB_STR_MAX + 1])rec->dim);
        w->state = 'q';
        return;
    }
    char st = rec->state;
    if (st == SB_REC_ANSWERED) {
        count(cs, "duplicate");
        w->state = 's';
        return;
    }
    if (st == SB_REC_CANCELLED || st == SB_REC_SUPPRESSED) {
        dead(w, cs, "not_sent: survey %s was %s, no request went out", w->survey_id,
             sb_record_state_name(st));
        return;
    }
    const sb_scale_t *sc = &ig->cfg->scales[rec->kind];
    bool in_scale = w->score >= sc->min && w->score <= sc->max;
    if ((!in_scale || w->ts > rec->expires_ms) && answered_earlier(w0, w)) {
        /* another answer to it came first in this batch: as in a later batch (the record
         * then answered), this one is a duplicate, whatever its score and time */
        count(cs, "duplicate");
        w->state = 's';
        return;
    }
    if (!in_scale) {
        dead(w, cs, "wrong_scale: %d is outside the %s scale %d..%d", w->score,
             sb_kind_names[rec->kind], sc->min, sc->max);
        return;
    }
    if (w->ts > rec->expires_ms) {
        char a[32], e[32];
        sb_time_format(w->ts, a);
        sb_time_format(rec->expires_ms, e);
        dead(w, cs, "expired: answered %s, the survey expired %s", a, e);
        return;
    }
    const sb_config_t *cfg = ig->cfg;
    if (sb_stats_is_alert(rec->kind, w->score, sc, cfg->alerts.nps_max, cfg->alerts.csat_max,
                          cfg->alerts.ces_hard_min, cfg->alerts.ces_hard_max))
        w->alert = alert_json(cfg, w, rec);
    keep_names(cfg, w, (const char(*)[SB_STR_MAX + 1])rec->dim);
    w->state = 'r';
}

/* Step 4a: alerts of the counted responses, published without waiting (see alert_sink_t).
 * Without Kafka, an alert leaves the outbox once libmosquitto has queued it. */
static void publish_alerts(ingest_t *ig, work_t *w, size_t n, const sb_tally_item_t *items)
{
    const sb_config_t *cfg = ig->cfg;
    for (size_t i = 0; i < n; i++) {
        if (w[i].state != 'r' || items[w[i].item].result != 'c' || !w[i].alert) continue;
        bool queued = false;
        if (ig->mqtt_pub) {
            char topic[600];
            const char *keys[] = {"type"}, *vals[] = {sb_stats_alert_type(w[i].kind)};
            if (sb_mqtt_topic_render(cfg->mqtt_topics.alerts, keys, vals, 1, topic, sizeof topic) == 0)
                queued = sb_mqtt_publish(ig->mqtt_pub, topic, w[i].alert, strlen(w[i].alert), false,
                                         NULL) == 0;
            if (!queued) sb_warn("alert not published on mqtt err=\"%s\"", sb_mqtt_errstr(ig->mqtt_pub));
        }
        alert_msg_t *a = malloc(sizeof *a);
        if (!a) abort();
        *a = (alert_msg_t){TAG_ALERT, w[i].alert, ig->sink};
        w[i].alert = NULL; /* now the message's */
        if (ig->producer) {
            while (sb_kafka_produce(ig->producer, cfg->topics.alerts, w[i].survey_id,
                                    strlen(w[i].survey_id), a->json, strlen(a->json), a) != 0) {
                if (sb_service_stop) break; /* stays in the outbox */
                sb_kafka_producer_poll(ig->producer, 10);
            }
        } else if (queued) {
            aggregator_delivery(NULL, a, 1, NULL);
        } else {
            free(a->json);
            free(a);
        }
    }
}

/* Step 4b: dead letters of the batch, confirmed before the caller commits. Returns 0 or -1
 * (stopping). */
static int publish_dead(ingest_t *ig, const in_msg_t *msgs, work_t *w, size_t n)
{
    const sb_config_t *cfg = ig->cfg;
    size_t nd = 0;
    for (size_t i = 0; i < n; i++) nd += w[i].state == 'd';
    if (nd == 0) return 0;
    if (!ig->producer) {
        for (size_t i = 0; i < n; i++)
            if (w[i].state == 'd')
                sb_dlq_log(msgs[i].source, w[i].reason);
        return 0;
    }
    sb_outmsg_t *out = calloc(nd, sizeof *out);
    if (!out) abort();
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (w[i].state != 'd') continue;
        char *env = sb_dlq_encode(w[i].reason, msgs[i].source, msgs[i].payload, msgs[i].len);
        if (!env) abort();
        out[k++] = (sb_outmsg_t){cfg->topics.dlq, NULL, 0, env, strlen(env)};
    }
    int rc = sb_service_produce_all(ig->producer, &ig->wait, out, k);
    for (size_t i = 0; i < k; i++) free((char *)out[i].payload);
    free(out);
    return rc;
}

void ingest_free_buffers(ingest_t *ig)
{
    for (int k = 0; k < 3; k++) {
        ibatch_t *b = &ig->b[k];
        if (b->recs) freeReplyObject(b->recs);
        sb_tally_batch_free(b->tb);
        free(b->w);
        free(b->items);
        free(b->kpi);
        sb_counts_free(&b->cs);
        free(b->x);
        free(b->argv);
        free(b->keys);
        free(b->in);
        memset(b, 0, sizeof *b);
    }
}

/* Step 1 for every message of the batch, into its own slot. */
static void parse_all(ingest_t *ig, ibatch_t *b)
{
    b->ni = 0;
    b->sent = false;
    b->now = sb_now_ms();
    b->cs.n = 0;
    work_t *w = b->w;
    for (size_t i = 0; i < b->n; i++) {
        w[i].state = 0;
        w[i].alert = w[i].comment = w[i].names = NULL;
        w[i].n_names = 0;
        parse_one(ig, &b->in[i], &w[i], b->x, &b->kpi[i], &b->cs, b->now);
    }
}

/* A free one of the two batch slots, sized for n messages and marked in hand. */
static ibatch_t *slot(ingest_t *ig, size_t n)
{
    ibatch_t *b = NULL;
    for (int k = 0; k < 3 && !b; k++)
        if (!ig->b[k].busy) b = &ig->b[k];
    if (!b) abort(); /* a caller with more than three batches in hand */
    if (!b->tb) b->tb = sb_tally_batch_new();
    if (n > b->cap || !b->x) {
        size_t cap = n > b->cap ? n : b->cap;
        free(b->w), free(b->items), free(b->kpi), free(b->argv), free(b->keys), free(b->in);
        b->in = malloc((cap ? cap : 1) * sizeof *b->in);
        b->w = malloc((cap ? cap : 1) * sizeof *b->w);
        b->items = malloc((cap ? cap : 1) * sizeof *b->items);
        b->kpi = malloc((cap ? cap : 1) * sizeof *b->kpi);
        b->argv = malloc((cap + 1) * sizeof *b->argv);
        b->keys = malloc((cap ? cap : 1) * sizeof *b->keys);
        if (!b->x) b->x = malloc(sizeof *b->x);
        if (!b->in || !b->w || !b->items || !b->kpi || !b->argv || !b->keys || !b->x)
            abort();
        b->cap = cap;
    }
    b->busy = true;
    b->n = n;
    return b;
}

static char stream_of(const sb_config_t *cfg, const char *topic)
{
    if (!strcmp(topic, cfg->topics.responses)) return STREAM_RESPONSE;
    if (!strcmp(topic, cfg->topics.requests)) return STREAM_REQUEST;
    return STREAM_INTERACTION;
}

/* The stages of a Kafka batch (ingest_stages): opaque is the ingest_t, batch an ibatch_t. */
static void *stage_parse(void *opaque, const sb_kafka_msg_t *msgs, const char (*src)[512],
                         size_t n)
{
    ingest_t *ig = opaque;
    ibatch_t *b = slot(ig, n);
    for (size_t i = 0; i < n; i++)
        b->in[i] = (in_msg_t){msgs[i].payload, msgs[i].len, src[i], NULL, false,
                              stream_of(ig->cfg, msgs[i].topic)};
    parse_all(ig, b);
    return b;
}

/* Step 2: the survey records of the batch, in one MGET on via, kept in b->recs for
 * check_all. Returns 0 or -1 (Redis). */
static int read_records(ingest_t *ig, sb_store_t *via, ibatch_t *b)
{
    work_t *w = b->w;
    size_t n = b->n, nk = 0;
    if (b->recs) freeReplyObject(b->recs), b->recs = NULL;
    b->argv[0] = "MGET";
    for (size_t i = 0; i < n; i++)
        if (w[i].state == 0) {
            sb_store_key(ig->store, b->keys[nk], sizeof b->keys[nk], "s:%s", w[i].survey_id);
            b->argv[1 + nk] = b->keys[nk];
            nk++;
        }
    if (!nk) return 0;
    redisReply *recs = sb_store_cmdargv(via, (int)(1 + nk), b->argv, NULL);
    if (!recs) return -1;
    if (recs->type != REDIS_REPLY_ARRAY || recs->elements != nk) {
        freeReplyObject(recs);
        return -1;
    }
    b->recs = recs;
    return 0;
}

/* Step 3: the checks that need the records, and the items with their slices (new ones
 * registered through via). Returns 0 or -1 (Redis). */
static int check_all(ingest_t *ig, sb_store_t *via, ibatch_t *b)
{
    work_t *w = b->w;
    size_t n = b->n;
    for (size_t i = 0, k = 0; i < n; i++)
        if (w[i].state == 0)
            check_record(ig, &b->in[i], w, &w[i], b->recs->element[k++], &b->x->rec, &b->cs);
    if (b->recs) freeReplyObject(b->recs), b->recs = NULL;

    b->ni = 0;
    for (size_t i = 0; i < n; i++) {
        sb_tally_item_t *it = &b->items[b->ni];
        if (w[i].state == 'r' || w[i].state == 'q') {
            memset(it, 0, sizeof *it);
            it->type = w[i].state == 'r' ? SB_TALLY_RESPONSE : SB_TALLY_REQUEST;
            it->id = w[i].survey_id;
            it->ts_ms = w[i].ts;
            it->kind = w[i].kind;
            it->score = w[i].score;
            it->alert = w[i].alert;
        } else if (w[i].state == 'k') {
            *it = b->kpi[i];
            it->id = w[i].survey_id;
        } else {
            continue;
        }
        if (slices_of(ig, via, &w[i], it, &b->cs)) return -1;
        w[i].item = (int)b->ni++;
    }
    return 0;
}

/* Frees what the batch's messages own (alerts not handed over, comments, slice names). */
static void batch_release(ibatch_t *b)
{
    if (b->recs) freeReplyObject(b->recs), b->recs = NULL;
    for (size_t i = 0; i < b->n; i++) {
        work_t *w = &b->w[i];
        free(w->alert), free(w->comment), free(w->names);
        w->alert = w->comment = w->names = NULL;
    }
}

static void stage_end(void *opaque, void *batch)
{
    (void)opaque;
    batch_release(batch); /* a batch given up on stop still holds what it parsed */
    ((ibatch_t *)batch)->busy = false;
}

/* The stages of a Kafka batch after stage_parse: reads and registrations go through rstore,
 * as the store's connection may be waiting on the script of the batch ahead. A failure
 * leaves the batch to again(), which parses it afresh and does it all on store. */
static int stage_read(void *opaque, void *batch)
{
    ingest_t *ig = opaque;
    ibatch_t *b = batch;
    if (read_records(ig, ig->rstore, b) == 0) return 0;
    sb_warn("reading survey records failed, the batch is done again err=\"%s\"",
            ig->rstore->errstr);
    batch_release(b);
    return -1;
}

static int stage_plan(void *opaque, void *batch)
{
    ingest_t *ig = opaque;
    ibatch_t *b = batch;
    if (check_all(ig, ig->rstore, b) != 0) {
        batch_release(b);
        return -1;
    }
    sb_tally_apply_plan(ig->tally, b->tb, b->items, b->ni, b->cs.c, b->cs.n, b->now);
    return 0;
}

static int stage_send(void *opaque, void *batch)
{
    ingest_t *ig = opaque;
    ibatch_t *b = batch;
    if (sb_tally_apply_send(ig->tally, b->tb) != 0) {
        batch_release(b);
        return -1;
    }
    b->sent = true;
    return 0;
}

/* Step 4 and 5: the tally (the sent script's answer, or the whole call), then alerts and
 * dead letters. */
static int stage_finish(void *opaque, void *batch)
{
    ingest_t *ig = opaque;
    ibatch_t *b = batch;
    work_t *w = b->w;
    size_t n = b->n;
    int rc = -1;
    if (b->sent) {
        b->sent = false;
        rc = sb_tally_apply_recv(ig->tally, b->tb, b->items, b->ni, b->cs.c, b->cs.n, b->now);
    } else {
        rc = read_records(ig, ig->store, b) == 0 && check_all(ig, ig->store, b) == 0
                 ? sb_tally_apply(ig->tally, b->items, b->ni, b->cs.c, b->cs.n, b->now)
                 : -1;
    }
    if (rc != 0) {
        sb_warn("tally batch failed, will retry err=\"%s\"", ig->store->errstr);
        batch_release(b);
        return -1;
    }
    /* claims lost to a race since the MGET */
    for (size_t i = 0; i < n; i++) {
        if (w[i].state != 'r') continue;
        char r = b->items[w[i].item].result;
        if (r == 'u')
            snprintf(w[i].reason, sizeof w[i].reason,
                     "unknown_survey: no survey %s (its record expired)", w[i].survey_id),
                w[i].state = 'd';
        else if (r == 'n')
            snprintf(w[i].reason, sizeof w[i].reason,
                     "not_sent: survey %s was cancelled or suppressed", w[i].survey_id),
                w[i].state = 'd';
    }
    publish_alerts(ig, w, n, b->items);
    rc = publish_dead(ig, b->in, w, n);
    batch_release(b);
    return rc;
}

static int stage_again(void *opaque, void *batch)
{
    parse_all(opaque, batch);
    return stage_finish(opaque, batch);
}

const sb_service_stages_t ingest_stages = {.parse = stage_parse,
                                           .read = stage_read,
                                           .plan = stage_plan,
                                           .send = stage_send,
                                           .finish = stage_finish,
                                           .again = stage_again,
                                           .end = stage_end};

int ingest_batch(ingest_t *ig, const in_msg_t *msgs, size_t n)
{
    ibatch_t *b = slot(ig, n);
    memcpy(b->in, msgs, n * sizeof *msgs);
    parse_all(ig, b);
    int rc = stage_finish(ig, b);
    stage_end(ig, b);
    return rc;
}
