/* Dispatcher firing: claim due surveys, publish their requests (Kafka requests topic and the
 * channel's MQTT topic), acknowledge them in Redis only once every delivery is confirmed, and
 * recover the claims of a dispatcher that died mid-firing without publishing twice. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dispatcher.h"
#include "log.h"
#include "rules.h"
#include "survey.h"
#include "token.h"

#define CLAIM_POLL_MS 100 /* claim at least this often even if no timer is known to be due */
#define LATE_MS 1000      /* fired later than this after its due time: quiet hours again */

void firer_init(firer_t *f, const sb_config_t *cfg, sb_sched_t *sched, sb_sched_t *ack_sched,
                sb_store_t *store, sb_kafka_producer_t *producer, sb_mqtt_t *mqtt_pub)
{
    memset(f, 0, sizeof *f);
    f->cfg = cfg;
    f->sched = sched;
    f->ack_sched = ack_sched;
    f->store = store;
    f->producer = producer;
    f->mqtt_pub = mqtt_pub;
    for (int i = 0; i < 2; i++) {
        f->claimed[i] = calloc((size_t)cfg->tuning.batch, sizeof *f->claimed[i]);
        if (!f->claimed[i]) abort();
    }
    f->req = malloc(sizeof *f->req);
    f->rel = malloc((size_t)cfg->tuning.batch * sizeof *f->rel);
    if (!f->req || !f->rel) abort();
    f->next_due_ms = 0;
}

/* Frees an entry and the copy of its request it may keep. */
static void entry_free(fire_entry_t *e)
{
    free(e->json);
    free(e->key);
    free(e->topic);
    free(e);
}

void firer_free(firer_t *f)
{
    fire_entry_t *e = f->head;
    while (e) {
        fire_entry_t *n = e->next;
        entry_free(e);
        e = n;
    }
    free(f->claimed[0]);
    free(f->claimed[1]);
    free(f->req);
    free(f->rel);
    free(f->ack_members);
    free(f->ack_remind);
    free(f->ack_hints);
    free(f->lat);
    memset(f, 0, sizeof *f);
}

/* The MQTT topic of a request: 0, or one of SB_MQTT_TOPIC_E*. Every placeholder a template
 * may hold (docs/configuration.md §4.6) is given; a device request also has its device id. */
static int mqtt_topic(const sb_config_t *cfg, const sb_record_t *r, char *out, size_t len)
{
    const char *k[] = {"channel", "customer_id", "device_id"};
    const char *v[] = {r->channel, r->customer_id, r->device_id};
    if (!strcmp(r->channel, "device"))
        return sb_mqtt_topic_render(cfg->mqtt_topics.device_requests, k, v, 3, out, len);
    return sb_mqtt_topic_render(cfg->mqtt_topics.requests, k, v, 2, out, len);
}

/* Copies a NUL-terminated src into dst of cap bytes (truncating, as snprintf would). */
static void copy_str(char *dst, size_t cap, const char *src)
{
    size_t n = strnlen(src, cap - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* Builds the request JSON of a claimed survey in q (a work buffer; caller frees the result),
 * NULL on failure. */
static char *build_request(const sb_config_t *cfg, const sb_claimed_t *c, int64_t now_ms,
                           sb_survey_request_t *q)
{
    const sb_record_t *r = &c->rec;
    copy_str(q->survey_id, sizeof q->survey_id, c->survey_id);
    copy_str(q->journey, sizeof q->journey, r->journey);
    copy_str(q->customer_id, sizeof q->customer_id, r->customer_id);
    copy_str(q->interaction_id, sizeof q->interaction_id, r->interaction_id);
    copy_str(q->channel, sizeof q->channel, r->channel);
    copy_str(q->locale, sizeof q->locale, r->locale);
    copy_str(q->device_id, sizeof q->device_id, !strcmp(r->channel, "device") ? r->device_id : "");
    copy_str(q->question, sizeof q->question,
             sb_config_question(cfg, r->kind, r->locale[0] ? r->locale : "en"));
    q->kind = r->kind;
    q->scale_min = cfg->scales[r->kind].min;
    q->scale_max = cfg->scales[r->kind].max;
    q->issued_ms = now_ms;
    q->expires_ms = r->expires_ms;
    q->reminder = c->reminder;
    if (sb_token_sign(cfg->token.secret, c->survey_id, r->expires_ms, q->token, sizeof q->token) != 0)
        return NULL;
    return sb_survey_request_encode(q);
}

/* Hands e's request to Kafka (key: the customer) or to MQTT on topic; on success the entry
 * awaits one more confirmation. Returns 0, or -1 (logged; nothing sent). */
static int send_kafka(firer_t *f, fire_entry_t *e, const char *key, const char *json, size_t len)
{
    if (sb_kafka_produce(f->producer, f->cfg->topics.requests, key, strlen(key), json, len, e) != 0) {
        sb_warn("kafka produce failed member=%s err=\"%s\"", e->member,
                sb_kafka_producer_error(f->producer));
        return -1;
    }
    e->waiting++;
    return 0;
}

static int send_mqtt(firer_t *f, fire_entry_t *e, const char *topic, const char *json, size_t len)
{
    int mid = 0;
    if (sb_mqtt_publish(f->mqtt_pub, topic, json, len, false, &mid) != 0) {
        sb_warn("mqtt publish failed member=%s topic=%s err=\"%s\"", e->member, topic,
                sb_mqtt_errstr(f->mqtt_pub));
        return -1;
    }
    e->mid = mid;
    e->waiting++;
    return 0;
}

/* Publishes one claimed survey. Returns 0 (an entry now awaits confirmation) or -1 (nothing
 * was sent; the caller releases the claim). With both transports on, the entry keeps the
 * request, so that a copy that fails while the other one is delivered is sent again alone
 * (resend). */
static int publish(firer_t *f, const sb_claimed_t *c, int64_t now_ms)
{
    char *json = build_request(f->cfg, c, now_ms, f->req);
    if (!json) {
        sb_error("cannot build survey request member=%s", c->member);
        return -1;
    }
    size_t len = strlen(json);
    fire_entry_t *e = calloc(1, sizeof *e);
    if (!e) abort();
    e->tag = TAG_FIRE;
    snprintf(e->member, sizeof e->member, "%s", c->member);
    e->due_ms = c->reminder ? now_ms : c->rec.due_ms;
    e->remind_at = c->reminder ? 0 : sb_rules_remind_at(f->cfg, &c->rec, now_ms);
    sb_sched_hint(f->cfg, c, &e->hint);
    const char *key = c->rec.customer_id;
    if (f->producer && send_kafka(f, e, key, json, len) != 0) {
        free(json);
        free(e);
        return -1;
    }
    char topic[2048];
    int trc = -1;
    if (f->mqtt_pub) {
        trc = mqtt_topic(f->cfg, &c->rec, topic, sizeof topic);
        if (trc != 0) {
            /* cannot happen for a record written by the ingest (its values are topic-safe
             * and templates are checked at start-up); never a silent success */
            e->mqtt_failed = true;
            sb_error("cannot render mqtt request topic member=%s err=%d", c->member, trc);
        } else if (send_mqtt(f, e, topic, json, len) != 0) {
            /* the Kafka copy (if any) is on its way: once it is delivered, this one is sent
             * again alone */
            e->mqtt_failed = true;
        }
    }
    if (f->producer && trc == 0) {
        e->json = json;
        e->key = strdup(key);
        e->topic = strdup(topic);
        if (!e->key || !e->topic) abort();
    } else {
        free(json);
    }
    e->next = f->head;
    f->head = e;
    f->inflight++;
    f->published++;
    return 0;
}

/* Sends again the one copy of a request that failed while the other was delivered: putting
 * its claim back would send both again, and the delivered one twice. At most once a second;
 * the claim stays ours (its lease renewed) meanwhile. */
static void resend(firer_t *f, fire_entry_t *e, int64_t now_ms)
{
    if (now_ms < e->retry_ms) return;
    e->retry_ms = now_ms + 1000;
    size_t len = strlen(e->json);
    const char *via = e->kafka_failed ? "kafka" : "mqtt";
    if (e->kafka_failed) {
        if (send_kafka(f, e, e->key, e->json, len) != 0) return;
        e->kafka_failed = false;
    } else {
        if (send_mqtt(f, e, e->topic, e->json, len) != 0) return;
        e->mqtt_failed = false;
    }
    sb_info("survey request sent again on %s member=%s", via, e->member);
}

/* Claims going back to the schedule unsent (held back by quiet hours, or not published).
 * publish_batch runs while the next claim is in flight on the same connection, where a
 * release would be refused: they wait in f->rel until release_unsent, after that claim's
 * answer. Released up to 64 at a time for one due time; what a release that fails leaves
 * claimed comes back when its lease ends. */
static void unsent_add(firer_t *f, const char *member, int64_t at, bool held)
{
    f->rel[f->n_rel].member = member;
    f->rel[f->n_rel].at = at;
    f->rel[f->n_rel].held = held;
    f->n_rel++;
}

static void release_unsent(firer_t *f)
{
    const char *m[64];
    for (size_t i = 0, j; i < f->n_rel; i = j) {
        size_t n = 0;
        for (j = i; j < f->n_rel && n < 64 && f->rel[j].at == f->rel[i].at &&
                    f->rel[j].held == f->rel[i].held;
             j++)
            m[n++] = f->rel[j].member;
        if (sb_sched_release(f->sched, m, n, f->rel[i].at) == 0 && f->rel[i].held) f->held += n;
    }
    f->n_rel = 0;
}

/* When a claimed survey may go out: 0 now, else the end of the quiet hours it would land
 * in. One that fires more than LATE_MS after its due time (a backlog, an outage), and any
 * reminder, is checked against its journey's quiet hours again; a survey fired on time was
 * moved out of them when it was scheduled. */
static int64_t held_until(firer_t *f, const sb_claimed_t *c, int64_t now_ms)
{
    if (!c->reminder && now_ms - c->rec.due_ms <= LATE_MS) return 0;
    int64_t until = sb_rules_quiet_until(f->cfg, &c->rec, now_ms);
    return until > now_ms ? until : 0;
}

/* Publishes a claimed batch; the claims of what could not be sent are to go back to the
 * schedule, and those held back by quiet hours to go back until they end (release_unsent:
 * batch must stay in place until then). */
static void publish_batch(firer_t *f, const sb_claimed_t *batch, size_t n, int64_t now_ms)
{
    for (size_t i = 0; i < n; i++) {
        int64_t until = held_until(f, &batch[i], now_ms);
        if (until)
            unsent_add(f, batch[i].member, until, true);
        else if (publish(f, &batch[i], now_ms) != 0)
            unsent_add(f, batch[i].member, now_ms + 1000, false);
    }
}

int firer_fire(firer_t *f, int64_t now_ms, size_t max_inflight)
{
    if (now_ms < f->next_due_ms && now_ms - f->last_claim_ms < CLAIM_POLL_MS) return 0;
    f->last_claim_ms = now_ms;
    const size_t batch = (size_t)f->cfg->tuning.batch;
    int total = 0, cur = 0;
    size_t have = 0; /* claimed into f->claimed[cur], not yet published */
    bool more = true;
    for (;;) {
        size_t busy = f->inflight + have;
        size_t want = busy < max_inflight ? max_inflight - busy : 0;
        if (want > batch) want = batch;
        bool sent = false;
        if (more && want > 0 && !sb_service_stop) {
            if (sb_sched_claim_send(f->sched, now_ms, want) != 0) {
                publish_batch(f, f->claimed[cur], have, now_ms);
                release_unsent(f);
                return -1;
            }
            sent = true;
        }
        /* while Redis claims the next batch */
        publish_batch(f, f->claimed[cur], have, now_ms);
        total += (int)have;
        have = 0;
        if (!sent) {
            release_unsent(f);
            break;
        }
        int n = sb_sched_claim_recv(f->sched, want, f->claimed[1 - cur], &f->next_due_ms, NULL);
        release_unsent(f); /* the connection is free again; f->claimed[cur] still holds them */
        if (n < 0) return total ? total : -1;
        cur = 1 - cur;
        have = (size_t)n;
        if ((size_t)n < want) more = false;
        if (f->producer) sb_kafka_producer_poll(f->producer, 0);
    }
    return total;
}

static void latency_sample(firer_t *f, int64_t ms)
{
    if (f->n_lat == f->cap_lat) {
        if (f->cap_lat >= 1 << 20) return; /* bounded; report resets it */
        f->cap_lat = f->cap_lat ? f->cap_lat * 2 : 1024;
        f->lat = realloc(f->lat, f->cap_lat * sizeof *f->lat);
        if (!f->lat) abort();
    }
    f->lat[f->n_lat++] = ms < 0 ? 0 : ms > UINT32_MAX ? UINT32_MAX : (uint32_t)ms;
}

/* Reads the result of the acknowledgement in flight: on success its entries are done and
 * leave the list; on failure they stay, confirmed, and go into the next one. Returns the
 * number acknowledged, or -1. */
static int ack_finish(firer_t *f, int64_t now_ms)
{
    if (!f->ack_pending) return 0;
    f->ack_pending = false;
    int rc = sb_sched_ack_recv(f->ack_via, f->ack_n, NULL);
    size_t n = 0;
    fire_entry_t **pp = &f->head;
    while (*pp) {
        fire_entry_t *e = *pp;
        if (!e->acking || rc != 0) {
            e->acking = false;
            pp = &e->next;
            continue;
        }
        latency_sample(f, now_ms - e->due_ms);
        *pp = e->next;
        entry_free(e);
        f->inflight--;
        n++;
    }
    f->ack_n = 0;
    if (rc != 0) return -1;
    f->confirmed += n;
    return (int)n;
}

int firer_settle_wait(firer_t *f)
{
    return ack_finish(f, sb_now_ms());
}

/* A request that failed on Kafka but may have been stored there (sent, and no answer before
 * message.timeout.ms) is neither acknowledged nor released: sent again it could be there
 * twice. Its claim leaves our hands unrenewed; once its lease ends, recovery reads the
 * requests topic back from the claim time, as for a dead dispatcher's claims, and fires it
 * when it is there or puts it back in the schedule when it is not. */
static void leave_unsure(firer_t *f)
{
    size_t n = 0;
    fire_entry_t **pp = &f->head;
    while (*pp) {
        fire_entry_t *e = *pp;
        if (e->unsure && e->waiting <= 0) {
            *pp = e->next;
            entry_free(e);
            f->inflight--;
            n++;
        } else {
            pp = &e->next;
        }
    }
    if (n) sb_warn("survey requests left to recovery count=%zu (delivery unsure)", n);
}

int firer_settle(firer_t *f, int64_t now_ms)
{
    if (f->producer) sb_kafka_producer_poll(f->producer, 0);
    int acked = ack_finish(f, now_ms);
    if (acked < 0) return -1;
    if (!f->head) return acked;
    if (f->ack_cap < f->inflight) {
        f->ack_cap = f->inflight;
        f->ack_members = realloc(f->ack_members, f->ack_cap * sizeof *f->ack_members);
        f->ack_remind = realloc(f->ack_remind, f->ack_cap * sizeof *f->ack_remind);
        f->ack_hints = realloc(f->ack_hints, f->ack_cap * sizeof *f->ack_hints);
        if (!f->ack_members || !f->ack_remind || !f->ack_hints) abort();
    }
    const char *rel[64];
    size_t nack = 0, nrel = 0, released = 0, unsure = 0;
    int rc = acked;
    for (fire_entry_t *e = f->head; e; e = e->next) {
        if (e->mid && !sb_mqtt_is_pending(f->mqtt_pub, e->mid)) {
            e->mid = 0;
            e->waiting--;
        }
        if (e->waiting > 0) continue;
        if (!e->kafka_failed && !e->mqtt_failed) {
            f->ack_remind[nack] = e->remind_at;
            f->ack_hints[nack] = e->hint;
            f->ack_members[nack++] = e->member;
            e->acking = true;
        } else if (e->unsure) {
            unsure++;
        } else if (e->json && e->kafka_failed != e->mqtt_failed) {
            resend(f, e, now_ms);
        } else if (nrel < 64) {
            rel[nrel++] = e->member;
        }
    }
    if (unsure) leave_unsure(f); /* rare: a second pass only then */
    /* failed deliveries (rare) go back to the schedule at once, 64 at a time */
    if (nrel) {
        if (sb_sched_release(f->sched, rel, nrel, now_ms + 1000) != 0) {
            rc = -1;
        } else {
            fire_entry_t **pp = &f->head;
            while (*pp) {
                fire_entry_t *e = *pp;
                bool gone = false;
                for (size_t i = 0; i < nrel && !gone; i++) gone = rel[i] == e->member;
                if (gone) {
                    *pp = e->next;
                    entry_free(e);
                    f->inflight--;
                    released++;
                } else {
                    pp = &e->next;
                }
            }
            f->released += released;
        }
    }
    if (nack) {
        /* on the acknowledgement connection, left in flight; when there is none or it is
         * down, on the main connection (shared with claims and ingest), waited for at once */
        bool async = f->ack_sched && sb_sched_ack_send(f->ack_sched, f->ack_members, f->ack_remind,
                                                       f->ack_hints, nack, now_ms) == 0;
        if (!async && sb_sched_ack_send(f->sched, f->ack_members, f->ack_remind, f->ack_hints,
                                        nack, now_ms) != 0) {
            for (fire_entry_t *e = f->head; e; e = e->next) e->acking = false;
            return -1; /* keep the entries; settle again once Redis is back */
        }
        f->ack_pending = true;
        f->ack_n = nack;
        f->ack_via = async ? f->ack_sched : f->sched;
        if (!async) {
            int n = ack_finish(f, now_ms);
            if (n < 0) return -1;
            acked += n;
        }
    }
    if (rc < 0) return -1;
    return acked + (int)released;
}

/* ---------------------------------------------------------------- crash recovery */

typedef struct scan_ctx {
    char (*members)[SB_SCHED_MEMBER_MAX];
    bool *found;
    int64_t *sent; /* when a found one was issued */
    size_t n;
} scan_ctx_t;

static int scan_cb(void *opaque, const sb_kafka_msg_t *m)
{
    scan_ctx_t *sc = opaque;
    sb_survey_request_t *q = malloc(sizeof *q);
    char err[64];
    if (!q) abort();
    if (sb_survey_request_decode(m->payload, m->len, q, err, sizeof err) == 0) {
        char member[SB_SCHED_MEMBER_MAX];
        snprintf(member, sizeof member, "%.*s%s", SB_SURVEY_ID_LEN, q->survey_id,
                 q->reminder ? ":r" : "");
        for (size_t i = 0; i < sc->n; i++)
            if (!sc->found[i] && !strcmp(sc->members[i], member))
                sc->found[i] = true, sc->sent[i] = q->issued_ms;
    }
    free(q);
    return 0;
}

static bool ours(const firer_t *f, const char *member)
{
    for (const fire_entry_t *e = f->head; e; e = e->next)
        if (!strcmp(e->member, member)) return true;
    return false;
}

/* Moves the lease deadline of our claims whose requests still await confirmation to
 * deadline_ms. Returns 0 or -1. */
static int renew_to(firer_t *f, int64_t now_ms, int64_t deadline_ms)
{
    const char **m = malloc(f->inflight * sizeof *m);
    if (!m) abort();
    size_t n = 0;
    for (const fire_entry_t *e = f->head; e && n < f->inflight; e = e->next) m[n++] = e->member;
    int rc = sb_sched_renew(f->sched, m, n, now_ms, deadline_ms) < 0 ? -1 : 0;
    free(m);
    return rc;
}

/* Renews those leases (a Kafka or MQTT outage can hold the requests for longer than a
 * lease), every third of a lease: only a dead dispatcher's claims expire, and another
 * instance recovers only those. */
static void renew_leases(firer_t *f, int64_t now_ms)
{
    if (!f->head || now_ms < f->next_renew_ms) return;
    f->next_renew_ms = now_ms + f->cfg->tuning.lease_ms / 3;
    if (renew_to(f, now_ms, now_ms + f->cfg->tuning.lease_ms) != 0)
        f->next_renew_ms = now_ms; /* Redis is away: again on the next round */
}

int firer_keep_claims(firer_t *f, int64_t until_ms)
{
    return f->head ? renew_to(f, sb_now_ms(), until_ms) : 0;
}

int firer_recover(firer_t *f, int64_t now_ms)
{
    renew_leases(f, now_ms);
    if (now_ms < f->next_recovery_ms) return 0;
    int64_t every = f->cfg->tuning.lease_ms / 4;
    f->next_recovery_ms = now_ms + (every < 1000 ? 1000 : every);
    enum { MAX = 1000 };
    char(*members)[SB_SCHED_MEMBER_MAX] = malloc(MAX * sizeof *members);
    bool *found = calloc(MAX, sizeof *found);
    int64_t *sent = calloc(MAX, sizeof *sent);
    if (!members || !found || !sent) abort();
    int64_t since = 0;
    int n = sb_sched_expired_leases(f->sched, now_ms, members, MAX, &since);
    int rc = n < 0 ? -1 : 0;
    size_t keep = 0;
    for (int i = 0; i < n; i++) /* our own slow deliveries are not someone else's crash */
        if (!ours(f, members[i])) memmove(members[keep++], members[i], SB_SCHED_MEMBER_MAX);
    if (keep > 0 && f->producer) {
        scan_ctx_t sc = {members, found, sent, keep};
        char err[256];
        int scanned = sb_kafka_scan(f->cfg, f->cfg->topics.requests, since - 10000, scan_cb, &sc,
                                    10000, err, sizeof err);
        if (scanned < 0) {
            sb_warn("recovery scan failed, will retry err=\"%s\"", err);
            rc = -1;
            goto out;
        }
        sb_info("recovering expired claims count=%zu scanned=%d", keep, scanned);
    }
    if (keep > 0) {
        const char **ack = malloc(keep * sizeof *ack), **rel = malloc(keep * sizeof *rel);
        int64_t *remind = calloc(keep, sizeof *remind);
        sb_record_t *rec = malloc(sizeof *rec);
        if (!ack || !rel || !remind || !rec) abort();
        size_t na = 0, nr = 0;
        for (size_t i = 0; i < keep; i++) {
            if (!found[i]) {
                rel[nr++] = members[i];
                continue;
            }
            /* a survey (not a reminder) sent before the crash: its reminder is timed from
             * when it was issued, out of quiet hours, as firer_settle does */
            if (strlen(members[i]) == SB_SURVEY_ID_LEN &&
                sb_sched_get(f->sched, members[i], rec) == 1)
                remind[na] = sb_rules_remind_at(f->cfg, rec, sent[i]);
            ack[na++] = members[i];
        }
        if ((na && sb_sched_ack(f->sched, ack, remind, NULL, na, now_ms, NULL)) ||
            (nr && sb_sched_release(f->sched, rel, nr, now_ms)))
            rc = -1;
        else
            sb_info("recovered expired claims already_published=%zu requeued=%zu", na, nr);
        f->next_due_ms = 0;
        free(ack);
        free(rel);
        free(remind);
        free(rec);
    }
out:
    free(members);
    free(found);
    free(sent);
    return rc;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

void firer_report(firer_t *f)
{
    if (f->held) {
        sb_info("surveys held back by quiet hours count=%llu", (unsigned long long)f->held);
        f->held = 0;
    }
    if (f->n_lat == 0) return;
    qsort(f->lat, f->n_lat, sizeof *f->lat, cmp_u32);
    size_t p50 = (f->n_lat * 50 + 99) / 100, p99 = (f->n_lat * 99 + 99) / 100;
    sb_info("fired count=%zu due_to_confirmed_p50_ms=%u p99_ms=%u inflight=%zu", f->n_lat,
            f->lat[p50 ? p50 - 1 : 0], f->lat[p99 ? p99 - 1 : 0], f->inflight);
    f->n_lat = 0;
}
