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

/* Counter fields of a batch, aggregated by name. */
typedef struct counts {
    sb_sched_count_t *c;
    char (*names)[96];
    size_t n, cap;
} counts_t;

static void count(counts_t *cs, const char *field, int64_t n)
{
    for (size_t i = 0; i < cs->n; i++)
        if (!strcmp(cs->names[i], field)) {
            cs->c[i].n += n;
            return;
        }
    if (cs->n == cs->cap) {
        cs->cap = cs->cap ? cs->cap * 2 : 16;
        cs->c = realloc(cs->c, cs->cap * sizeof *cs->c);
        cs->names = realloc(cs->names, cs->cap * sizeof *cs->names);
        if (!cs->c || !cs->names) abort();
        for (size_t i = 0; i < cs->n; i++) cs->c[i].field = cs->names[i];
    }
    snprintf(cs->names[cs->n], sizeof cs->names[0], "%s", field);
    cs->c[cs->n].field = cs->names[cs->n];
    cs->c[cs->n].n = n;
    cs->n++;
}

typedef struct dead {
    size_t msg; /* index into the batch */
    char reason[200];
} dead_t;

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
            e->failed = true;
            sb_warn("survey request not delivered member=%s err=\"%s\"", e->member,
                    errstr ? errstr : "");
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
            sb_warn("dead letter (kafka off) source=%s reason=\"%s\"", msgs[dead[i].msg].source,
                    dead[i].reason);
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
    ic->recs = NULL, ic->ops = NULL, ic->cap = 0;
}

int ingest_batch(ingest_ctx_t *ic, const in_msg_t *msgs, size_t n)
{
    const sb_config_t *cfg = ic->cfg;
    size_t need = n * cfg->n_journeys + n + 1;
    if (need > ic->cap) {
        free(ic->recs);
        free(ic->ops);
        ic->recs = malloc(need * sizeof *ic->recs);
        ic->ops = malloc(need * sizeof *ic->ops);
        if (!ic->recs || !ic->ops) abort();
        ic->cap = need;
    }
    sb_record_t *recs = ic->recs;
    sb_sched_op_t *ops = ic->ops;
    sb_event_t *ev = malloc(sizeof *ev);
    sb_candidate_t *cand = malloc((cfg->n_journeys + 1) * sizeof *cand);
    dead_t *dead = malloc((n + 1) * sizeof *dead);
    if (!ev || !recs || !ops || !cand || !dead) abort();
    counts_t cs = {0};
    size_t nops = 0, nd = 0;
    char field[96], code[64];

    count(&cs, "consumed", (int64_t)n);
    for (size_t i = 0; i < n; i++) {
        char err[200];
        if (sb_event_parse(msgs[i].payload, msgs[i].len, cfg->mapping, msgs[i].device_id, ev,
                           err, sizeof err) != 0) {
            dead[nd].msg = i;
            snprintf(dead[nd].reason, sizeof dead[nd].reason, "%s", err);
            sb_reason_code(err, code, sizeof code);
            snprintf(field, sizeof field, "dlq|%s", code);
            count(&cs, field, 1);
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
            nops++;
            count(&cs, "reopened", 1);
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
            count(&cs, "dlq|missing_field", 1);
            nd++;
        }
        if (nc == 0) count(&cs, "unmatched", 1);
    }

    int rc = sb_sched_apply(ic->sched, ops, nops, cs.c, cs.n, NULL, sb_now_ms());
    if (rc != 0)
        sb_warn("schedule batch failed, will retry err=\"%s\"", ic->store->errstr);
    else
        rc = publish_dead(ic, msgs, dead, nd);

    free(cs.c);
    free(cs.names);
    free(ev);
    free(cand);
    free(dead);
    return rc;
}
