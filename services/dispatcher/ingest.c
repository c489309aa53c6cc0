/* Dispatcher ingest: raw events -> validated events -> journey candidates -> one atomic
 * schedule call per batch, with dead letters for what cannot be used. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dispatcher.h"
#include "dlq.h"
#include "event.h"
#include "log.h"
#include "record.h"
#include "rules.h"



void dispatcher_delivery(void *opaque, void *msg_opaque, int ok, const char *errstr)
{
    (void)opaque;
    if (!msg_opaque) return;
    int tag = *(int *)msg_opaque;
    if (tag == SB_WAIT_TAG) {
        sb_wait_delivered(msg_opaque, ok, errstr);
    } else if (tag == TAG_FIRE) {
        fire_entry_t *e = msg_opaque;
        e->waiting--;
        if (!ok) {
            e->kafka_failed = true;
            e->unsure = sb_kafka_delivery_unsure();
            sb_warn("survey request not delivered member=%s err=\"%s\"%s", e->member,
                    errstr ? errstr : "",
                    e->unsure ? " (it may have been stored: left to recovery)" : "");
        }
    }
}

/* Publishes the dead letters and waits until Kafka has them all. Without Kafka they are only
 * logged (and counted by the caller). Returns 0, or -1 on stop. */
static int publish_dead(ingest_ctx_t *ic, const in_msg_t *msgs, const dead_t *dead, size_t nd)
{
    if (nd == 0) return 0;
    if (!ic->producer) {
        for (size_t i = 0; i < nd; i++)
            sb_dlq_log(msgs[dead[i].msg].source, dead[i].reason);
        return 0;
    }
    sb_outmsg_t *out = calloc(nd, sizeof *out);
    if (!out) abort();
    for (size_t i = 0; i < nd; i++) {
        const in_msg_t *m = &msgs[dead[i].msg];
        char *env = sb_dlq_encode(dead[i].reason, m->source, m->payload, m->len);
        if (!env) abort();
        out[i] = (sb_outmsg_t){ic->cfg->topics.dlq, NULL, 0, env, strlen(env)};
    }
    int rc = sb_service_produce_all(ic->producer, &ic->wait, out, nd);
    for (size_t i = 0; i < nd; i++) free((char *)out[i].payload);
    free(out);
    return rc;
}

void ingest_ctx_free_buffers(ingest_ctx_t *ic)
{
    free(ic->recs);
    free(ic->ops);
    free(ic->ev);
    free(ic->cand);
    ic->recs = NULL, ic->ops = NULL, ic->ev = NULL, ic->cand = NULL, ic->cap = 0;
    for (int k = 0; k < 2; k++) {
        dbatch_t *b = &ic->b[k];
        free(b->in);
        free(b->dead);
        sb_counts_free(&b->cs);
        memset(b, 0, sizeof *b);
    }
    ic->owner = NULL;
}

/* Parses the batch's events into the shared record and op buffers (the batch becomes their
 * owner) and its own dead letters and counters. */
static void parse_into(ingest_ctx_t *ic, dbatch_t *b)
{
    const sb_config_t *cfg = ic->cfg;
    const in_msg_t *msgs = b->in;
    size_t n = b->n;
    size_t need = n * cfg->n_journeys + n + 1;
    if (need > ic->cap) {
        free(ic->recs);
        free(ic->ops);
        ic->recs = malloc(need * sizeof *ic->recs);
        ic->ops = malloc(need * sizeof *ic->ops);
        if (!ic->recs || !ic->ops) abort();
        ic->cap = need;
    }
    if (!ic->ev) ic->ev = malloc(sizeof *ic->ev);
    if (!ic->cand) ic->cand = malloc((cfg->n_journeys + 1) * sizeof *ic->cand);
    if (!ic->ev || !ic->cand) abort();
    sb_record_t *recs = ic->recs;
    sb_sched_op_t *ops = ic->ops;
    sb_event_t *ev = ic->ev;
    sb_candidate_t *cand = ic->cand;
    sb_counts_t *cs = &b->cs;
    dead_t *dead = b->dead;
    size_t nops = 0, nd = 0;
    char field[96], code[64];
    ic->owner = b;
    cs->n = 0;

    sb_counts_add(cs, "consumed", (int64_t)n);
    for (size_t i = 0; i < n; i++) {
        char err[200];
        if (sb_event_parse(msgs[i].payload, msgs[i].len, cfg->mapping, msgs[i].device_id, msgs[i].mqtt, ev,
                           err, sizeof err) != 0) {
            dead[nd].msg = i;
            snprintf(dead[nd].reason, sizeof dead[nd].reason, "%s", err);
            sb_reason_code(err, code, sizeof code);
            snprintf(field, sizeof field, "dlq|%s", code);
            sb_counts_add(cs, field, 1);
            nd++;
            continue;
        }
        if (ev->type == SB_EV_REOPENED) {
            sb_record_t *r = &recs[nops];
            memset(r, 0, sizeof *r);
            snprintf(r->interaction_id, sizeof r->interaction_id, "%s",
                     ev->val[SB_F_INTERACTION_ID]);
            ops[nops].op = SB_SCHED_CANCEL;
            ops[nops].rec = r;
            ops[nops].at_ms = ev->occurred_ms;
            nops++;
            sb_counts_add(cs, "reopened", 1);
            continue;
        }
        size_t nc = sb_rules_match(cfg, ev, cand, cfg->n_journeys);
        const char *no_device = NULL, *no_channel = NULL;
        for (size_t k = 0; k < nc; k++) {
            const sb_journey_t *j = &cfg->journeys[cand[k].journey];
            sb_record_t *r = &recs[nops];
            sb_record_from_event(r, ev, j, cand[k].due_ms, cand[k].expires_ms);
            if (!strcmp(r->channel, "device") && !r->device_id[0]) {
                no_device = j->name; /* a device survey needs a device to go to */
                continue;
            }
            if (!r->channel[0]) {
                no_channel = j->name; /* a request without a channel is not a valid request */
                continue;
            }
            ops[nops].op = SB_SCHED_ADD;
            ops[nops].rec = r;
            ops[nops].at_ms = ev->occurred_ms;
            nops++;
        }
        if (no_device || no_channel) {
            dead[nd].msg = i;
            if (no_device)
                snprintf(dead[nd].reason, sizeof dead[nd].reason,
                         "missing_field: device_id (journey %s sends to the device)", no_device);
            else
                snprintf(dead[nd].reason, sizeof dead[nd].reason,
                         "missing_field: channel (journey %s uses the event's channel)",
                         no_channel);
            sb_counts_add(cs, "dlq|missing_field", 1);
            nd++;
        }
        if (nc == 0) sb_counts_add(cs, "unmatched", 1);
    }
    b->nops = nops;
    b->nd = nd;
}

/* A free one of the two batch slots, sized for n messages and marked in hand. */
static dbatch_t *slot(ingest_ctx_t *ic, size_t n)
{
    dbatch_t *b = !ic->b[0].busy ? &ic->b[0] : !ic->b[1].busy ? &ic->b[1] : NULL;
    if (!b) abort(); /* a caller with more than two batches in hand */
    if (n > b->cap || !b->in) {
        size_t cap = n > b->cap ? n : b->cap;
        free(b->in), free(b->dead);
        b->in = malloc((cap ? cap : 1) * sizeof *b->in);
        b->dead = malloc((cap ? cap : 1) * sizeof *b->dead);
        if (!b->in || !b->dead) abort();
        b->cap = cap;
    }
    b->n = n;
    b->busy = true;
    b->sent = false;
    return b;
}

/* The stages of a Kafka batch (ingest_stages): opaque is the ingest_ctx_t, batch a dbatch_t. */
static void *stage_parse(void *opaque, const sb_kafka_msg_t *msgs, const char (*src)[512],
                         size_t n)
{
    ingest_ctx_t *ic = opaque;
    dbatch_t *b = slot(ic, n);
    for (size_t i = 0; i < n; i++)
        b->in[i] = (in_msg_t){msgs[i].payload, msgs[i].len, src[i], NULL, false};
    parse_into(ic, b);
    return b;
}

static int stage_send(void *opaque, void *batch)
{
    ingest_ctx_t *ic = opaque;
    dbatch_t *b = batch;
    if (ic->owner != b) parse_into(ic, b); /* the buffers went to another batch meanwhile */
    b->sent = sb_sched_apply_send(ic->sched, ic->ops, b->nops, b->cs.c, b->cs.n, sb_now_ms()) == 0;
    return b->sent ? 0 : -1;
}

/* The schedule call (the sent script's answer, or the whole call), then the dead letters. */
static int stage_finish(void *opaque, void *batch)
{
    ingest_ctx_t *ic = opaque;
    dbatch_t *b = batch;
    int rc;
    if (b->sent) {
        b->sent = false;
        rc = sb_sched_apply_recv(ic->sched, NULL);
    } else {
        if (ic->owner != b) parse_into(ic, b);
        rc = sb_sched_apply(ic->sched, ic->ops, b->nops, b->cs.c, b->cs.n, NULL, sb_now_ms());
    }
    if (rc != 0) {
        sb_warn("schedule batch failed, will retry err=\"%s\"", ic->store->errstr);
        return -1;
    }
    return publish_dead(ic, b->in, b->dead, b->nd);
}

static int stage_again(void *opaque, void *batch)
{
    ((dbatch_t *)batch)->sent = false;
    return stage_finish(opaque, batch);
}

static void stage_end(void *opaque, void *batch)
{
    (void)opaque;
    ((dbatch_t *)batch)->busy = false;
}

const sb_service_stages_t ingest_stages = {.parse = stage_parse,
                                           .send = stage_send,
                                           .finish = stage_finish,
                                           .again = stage_again,
                                           .end = stage_end};

int ingest_batch(ingest_ctx_t *ic, const in_msg_t *msgs, size_t n)
{
    dbatch_t *b = slot(ic, n);
    memcpy(b->in, msgs, n * sizeof *msgs);
    parse_into(ic, b);
    int rc = stage_finish(ic, b);
    stage_end(ic, b);
    return rc;
}
