/* Metric publication: one instance at a time (a lease in Redis) reads every window's totals,
 * computes each slice's metrics and publishes those whose update differs from the last one
 * it published (and, every republish_s, every update with a value), to Kafka (key
 * metric|window|dimension|value) and to retained MQTT topics. Every metric of a slice with
 * anything in the window, and of all|all always, is published: one with no data once, with
 * count 0 and score null. It also republishes alerts whose ingesting instance died before
 * confirming them. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aggregator.h"
#include "log.h"
#include "metric.h"
#include "window.h"

#define ALERT_SWEEP_MS 30000
#define ALERT_SWEEP_MAX 200 /* alerts per sweep: one sweep each round while a backlog lasts */
/* In last[], besides 0 (nothing shown) and a value's hash (fnv() is odd, so never these):
 * a value may be shown (by a previous publisher, or by an update whose delivery failed) and
 * must be sent again; the empty update (count 0, score null) was sent */
#define SHOWN_BEFORE 2
#define SHOWN_EMPTY 4
#define ALERT_STALE_MS 60000

/* Whether a last[] state stands for a value on the bus (the '1' of P"shown"). */
static bool shows_value(uint64_t last)
{
    return last != 0 && last != SHOWN_EMPTY;
}

void publisher_init(publisher_t *p, const sb_config_t *cfg, sb_tally_t *tally,
                    sb_kafka_producer_t *producer, sb_mqtt_t *mqtt_pub, const char *instance)
{
    memset(p, 0, sizeof *p);
    p->cfg = cfg;
    p->tally = tally;
    p->producer = producer;
    p->mqtt_pub = mqtt_pub;
    snprintf(p->token, sizeof p->token, "%s-%lld", instance, (long long)sb_now_ms());
    pthread_mutex_init(&p->redo_mu, NULL);
}

void publisher_delivered(metric_msg_t *m, int ok, const char *errstr)
{
    publisher_t *p = m->p;
    if (!ok) {
        sb_warn("metric update not delivered, will send it again err=\"%s\"", errstr ? errstr : "");
        pthread_mutex_lock(&p->redo_mu);
        if (m->epoch == p->epoch) {
            if (p->n_redo == p->cap_redo) {
                p->cap_redo = p->cap_redo ? p->cap_redo * 2 : 64;
                p->redo = realloc(p->redo, p->cap_redo * sizeof *p->redo);
                if (!p->redo) abort();
            }
            p->redo[p->n_redo++] = m->at;
        }
        pthread_mutex_unlock(&p->redo_mu);
    }
    free(m);
}

/* Marks the rows whose delivery failed as "may be shown": the round sends them again. */
static void take_redo(publisher_t *p)
{
    size_t cells = p->n_slices * p->cfg->n_windows * SB_METRIC__N;
    pthread_mutex_lock(&p->redo_mu);
    for (size_t i = 0; i < p->n_redo; i++)
        if (p->redo[i] < cells) {
            if (!shows_value(p->last[p->redo[i]])) p->dirty[p->redo[i] / SB_METRIC__N] = true;
            p->last[p->redo[i]] = SHOWN_BEFORE;
        }
    p->n_redo = 0;
    pthread_mutex_unlock(&p->redo_mu);
}

void publisher_release(publisher_t *p)
{
    /* hand the lease over at once instead of letting it run out */
    if (p->leader) sb_tally_release_lease(p->tally, p->token);
    p->leader = false;
}

void publisher_free(publisher_t *p)
{
    free(p->last);
    free(p->dirty);
    p->last = NULL;
    p->dirty = NULL;
    free(p->redo);
    p->redo = NULL;
    p->n_redo = p->cap_redo = 0;
    pthread_mutex_destroy(&p->redo_mu);
    p->n_slices = 0;
}

static uint64_t fnv(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h | 1; /* odd: never 0 nor SHOWN_BEFORE / SHOWN_EMPTY */
}


static void ensure_rows(publisher_t *p, size_t slices)
{
    if (slices <= p->n_slices) return;
    size_t rows = p->cfg->n_windows, row = rows * SB_METRIC__N;
    size_t n = slices + 256;
    uint64_t *l = realloc(p->last, n * row * sizeof *l);
    bool *d = realloc(p->dirty, n * rows * sizeof *d);
    if (!l || !d) abort();
    memset(l + p->n_slices * row, 0, (n - p->n_slices) * row * sizeof *l);
    memset(d + p->n_slices * rows, 0, (n - p->n_slices) * rows * sizeof *d);
    p->last = l;
    p->dirty = d;
    p->n_slices = n;
}

static void on_shown(void *opaque, int64_t slice, const char *window, const char *flags)
{
    publisher_t *p = opaque;
    /* a row naming a slice that is not registered is not ours: no room is made for it. A
     * registered one counts even beyond the current max_dimension_values (registered under
     * a higher cap): it must still be cleared when it empties. */
    if (slice <= 0 || !sb_tally_slice_name(p->tally, slice)) return;
    char name[SB_WINDOW_NAME_MAX];
    for (size_t k = 0; k < p->cfg->n_windows; k++) {
        sb_window_name(p->cfg->windows_ms[k], name, sizeof name);
        if (strcmp(name, window) != 0) continue;
        ensure_rows(p, (size_t)slice + 1);
        uint64_t *last = &p->last[((size_t)slice * p->cfg->n_windows + k) * SB_METRIC__N];
        for (int m = 0; m < SB_METRIC__N && flags[m]; m++)
            if (flags[m] == '1') last[m] = SHOWN_BEFORE;
        return;
    }
    /* a window no longer configured: its topics are left as they are */
}

/* Saves the rows whose shown state changed (sb_tally_shown_save); they stay dirty, to be
 * saved with the next round, when Redis fails. */
static int save_shown(publisher_t *p, size_t max_slice)
{
    const size_t nw = p->cfg->n_windows;
    size_t n = 0, cap = 0, *at = NULL;
    sb_tally_shown_row_t *rows = NULL;
    for (size_t i = nw; i < max_slice * nw; i++) {
        if (!p->dirty[i]) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            rows = realloc(rows, cap * sizeof *rows);
            at = realloc(at, cap * sizeof *at);
            if (!rows || !at) abort();
        }
        char wname[SB_WINDOW_NAME_MAX];
        sb_window_name(p->cfg->windows_ms[i % nw], wname, sizeof wname);
        snprintf(rows[n].key, sizeof rows[n].key, "%zu|%s", i / nw, wname);
        for (int m = 0; m < SB_METRIC__N; m++)
            rows[n].flags[m] = shows_value(p->last[i * SB_METRIC__N + m]) ? '1' : '0';
        rows[n].flags[SB_METRIC__N] = '\0';
        at[n++] = i;
    }
    int rc = n ? sb_tally_shown_save(p->tally, rows, n) : 0;
    for (size_t j = 0; rc == 0 && j < n; j++) p->dirty[at[j]] = false;
    free(rows);
    free(at);
    return rc;
}

/* Publishes one update on both transports. Returns 0 when every enabled transport took it. */
static int send_update(publisher_t *p, const sb_metric_update_t *u, const char *json, size_t at)
{
    const sb_config_t *cfg = p->cfg;
    int rc = 0;
    if (p->producer) {
        char key[700];
        int kl = snprintf(key, sizeof key, "%s|%s|%s|%s", sb_metric_names[u->metric], u->window,
                          u->dimension, u->value);
        metric_msg_t *m = malloc(sizeof *m);
        if (!m) abort();
        *m = (metric_msg_t){TAG_METRIC, p, at, p->epoch};
        if (sb_kafka_produce(p->producer, cfg->topics.metrics, key, (size_t)kl, json,
                             strlen(json), m) != 0) {
            free(m);
            rc = -1;
        }
    }
    if (p->mqtt_pub) {
        char topic[700];
        const char *keys[] = {"metric", "window", "dimension", "value"};
        const char *vals[] = {sb_metric_names[u->metric], u->window, u->dimension, u->value};
        int tr = sb_mqtt_topic_render(cfg->mqtt_topics.metrics, keys, vals, 4, topic, sizeof topic);
        if (tr != 0) {
            sb_warn("metric topic cannot be rendered dimension=%s value=%s", u->dimension, u->value);
        } else if (sb_mqtt_publish(p->mqtt_pub, topic, json, strlen(json), true, NULL) != 0) {
            rc = -1;
        }
    }
    return rc;
}

/* Sends the oldest stale alerts again. Returns true when it took a full sweep's worth and
 * every one left the outbox: there may be more, for the next round. */
static bool sweep_alerts(publisher_t *p, int64_t now)
{
    /* with Kafka away the sweep would wait for it and hold up the metric updates; the
     * alerts stay in the outbox until it is back */
    if (p->producer && !sb_kafka_producer_up(p->producer)) return false;
    char *stale[ALERT_SWEEP_MAX];
    int n = sb_tally_alerts_stale(p->tally, now - ALERT_STALE_MS, stale, ALERT_SWEEP_MAX);
    if (n <= 0) return false;
    bool all = false;
    sb_warn("republishing alerts unconfirmed for a minute (an instance stopped, or Kafka was "
            "slow) count=%d", n);
    const sb_config_t *cfg = p->cfg;
    sb_outmsg_t out[ALERT_SWEEP_MAX];
    size_t k = 0, nq = 0;
    char keys_buf[ALERT_SWEEP_MAX][SB_STR_MAX + 1];
    const char *queued[ALERT_SWEEP_MAX]; /* without Kafka: those libmosquitto took, as in ingest */
    for (int i = 0; i < n; i++) {
        /* keyed by survey id, as when it was first sent */
        json_t *o = json_loads(stale[i], 0, NULL);
        const char *sid = o ? json_string_value(json_object_get(o, "survey_id")) : NULL;
        snprintf(keys_buf[i], sizeof keys_buf[i], "%s", sid ? sid : "");
        if (p->producer)
            out[k++] = (sb_outmsg_t){cfg->topics.alerts, keys_buf[i][0] ? keys_buf[i] : NULL,
                                     strlen(keys_buf[i]), stale[i], strlen(stale[i])};
        if (p->mqtt_pub) {
            const char *type = o ? json_string_value(json_object_get(o, "type")) : NULL;
            char topic[600];
            const char *keys[] = {"type"}, *vals[] = {type ? type : "detractor"};
            if (sb_mqtt_topic_render(cfg->mqtt_topics.alerts, keys, vals, 1, topic, sizeof topic) == 0 &&
                sb_mqtt_publish(p->mqtt_pub, topic, stale[i], strlen(stale[i]), false, NULL) == 0)
                queued[nq++] = stale[i];
        } else {
            queued[nq++] = stale[i]; /* no transport at all: nowhere to send it */
        }
        json_decref(o);
    }
    sb_wait_t wait = {SB_WAIT_TAG, 0, 0};
    if (p->producer) {
        if (sb_service_produce_all(p->producer, &wait, out, k) == 0)
            all = sb_tally_alerts_done(p->tally, (const char *const *)stale, (size_t)n) == 0;
    } else {
        /* an alert MQTT did not take stays in the outbox for the next sweep */
        if ((int)nq < n)
            sb_warn("alerts not published on mqtt, kept for the next sweep count=%d err=\"%s\"",
                    n - (int)nq, sb_mqtt_errstr(p->mqtt_pub));
        if (nq) all = sb_tally_alerts_done(p->tally, queued, nq) == 0 && (int)nq == n;
    }
    for (int i = 0; i < n; i++) free(stale[i]);
    return all && n == ALERT_SWEEP_MAX;
}

int publisher_tick(publisher_t *p, int64_t now_ms)
{
    const sb_config_t *cfg = p->cfg;
    sb_tally_snapshot_t snap;
    int64_t lease = cfg->publish.interval_ms * 5 > 5000 ? cfg->publish.interval_ms * 5 : 5000;
    int rc = sb_tally_read(p->tally, now_ms, p->token, lease, &snap);
    if (rc < 0) return -1;
    if (rc == 0) {
        if (p->leader) sb_info("another instance publishes now");
        p->leader = false;
        return 0;
    }
    if (snap.lease_taken && p->leader) {
        /* the lease ran out while this instance was away (stopped, or cut off from Redis) and
         * was free again: another instance may have published meanwhile, and what this one
         * remembers having shown is no longer what the topics hold */
        sb_warn("publisher lease was lost meanwhile, taking it over again token=%s", p->token);
        p->leader = false;
    }
    if (!p->all_slice) {
        /* all|all is published from the first round, before any data registered it */
        const char *all = "all|all";
        int64_t id = 0;
        if (sb_tally_slices(p->tally, &all, 1, &id, NULL) != 0 || id <= 0) {
            sb_tally_snapshot_free(&snap);
            return -1;
        }
        p->all_slice = id;
    }
    if (!p->leader) {
        /* start from what the previous publishers showed */
        if (p->last) {
            memset(p->last, 0, p->n_slices * cfg->n_windows * SB_METRIC__N * sizeof *p->last);
            memset(p->dirty, 0, p->n_slices * cfg->n_windows * sizeof *p->dirty);
        }
        if (sb_tally_shown_load(p->tally, on_shown, p) != 0) {
            sb_tally_snapshot_free(&snap);
            return -1;
        }
        sb_info("publishing metrics token=%s", p->token);
        p->leader = true;
        pthread_mutex_lock(&p->redo_mu);
        p->epoch++; /* deliveries of an earlier leadership no longer matter */
        p->n_redo = 0;
        pthread_mutex_unlock(&p->redo_mu);
        p->next_republish_ms = now_ms + (int64_t)cfg->publish.republish_s * 1000;
    }
    bool republish = now_ms >= p->next_republish_ms;
    if (republish) p->next_republish_ms = now_ms + (int64_t)cfg->publish.republish_s * 1000;

    size_t max_slice = 0;
    for (size_t k = 0; k < snap.n; k++) {
        /* slice ids below this; the last slice's row may be partly written */
        size_t s = (snap.w[k].n_cells + SB_TALLY_CELLS - 1) / SB_TALLY_CELLS;
        if (s > max_slice) max_slice = s;
        if (snap.w[k].n_kpi && (size_t)snap.w[k].kpi[snap.w[k].n_kpi - 1].slice + 1 > max_slice)
            max_slice = (size_t)snap.w[k].kpi[snap.w[k].n_kpi - 1].slice + 1;
    }
    if ((size_t)p->all_slice + 1 > max_slice) max_slice = (size_t)p->all_slice + 1;
    if (p->n_slices > max_slice) max_slice = p->n_slices;
    ensure_rows(p, max_slice);
    take_redo(p);

    int published = 0;
    char wname[SB_WINDOW_MAX][SB_WINDOW_NAME_MAX];
    for (size_t k = 0; k < snap.n; k++) sb_window_name(snap.w[k].window_ms, wname[k], sizeof wname[k]);
    for (size_t slice = 1; slice < max_slice; slice++) {
        const char *name = NULL;
        for (size_t k = 0; k < snap.n; k++) {
            const sb_tally_window_t *w = &snap.w[k];
            uint64_t *last = &p->last[(slice * cfg->n_windows + k) * SB_METRIC__N];
            bool active = sb_tally_slice_active(w, (int64_t)slice);
            bool always = (int64_t)slice == p->all_slice;
            uint64_t before[SB_METRIC__N];
            memcpy(before, last, sizeof before);
            for (int m = 0; m < SB_METRIC__N; m++) {
                /* an idle slice: only what it shows with a value (or, all|all, never sent) */
                if (!active && (last[m] == SHOWN_EMPTY || (last[m] == 0 && !always))) continue;
                sb_metric_update_t u;
                memset(&u, 0, sizeof u);
                u.metric = (sb_metric_t)m;
                sb_tally_metric(w, (int64_t)slice, u.metric, cfg, &u.v);
                bool empty = !u.v.has_value && u.v.count == 0 && u.v.num == 0;
                if (empty && last[m] == SHOWN_EMPTY) continue; /* sent once, retained */
                if (!name && !(name = sb_tally_slice_name(p->tally, (int64_t)slice))) break;
                const char *bar = strchr(name, '|');
                if (!bar) break;
                snprintf(u.window, sizeof u.window, "%s", wname[k]);
                snprintf(u.dimension, sizeof u.dimension, "%.*s", (int)(bar - name), name);
                snprintf(u.value, sizeof u.value, "%s", bar + 1);
                uint64_t h = SHOWN_EMPTY;
                if (!empty) {
                    char *text = sb_metric_update_encode(&u); /* as_of 0: the state, to compare */
                    if (!text) continue;
                    h = fnv(text);
                    free(text);
                }
                if (h == last[m] && !republish) continue; /* h != SHOWN_EMPTY here */
                u.as_of_ms = snap.as_of_ms;
                char *json = sb_metric_update_encode(&u);
                if (!json) continue;
                if (send_update(p, &u, json, (size_t)(last + m - p->last)) == 0) {
                    last[m] = h;
                    published++;
                } else {
                    p->failed++;
                }
                free(json);
            }
            for (int m = 0; m < SB_METRIC__N; m++)
                if (shows_value(before[m]) != shows_value(last[m]))
                    p->dirty[slice * cfg->n_windows + k] = true;
        }
    }
    sb_tally_snapshot_free(&snap);
    if (save_shown(p, max_slice) != 0) rc = -1;
    if (p->producer) sb_kafka_producer_poll(p->producer, 0);
    p->published += (uint64_t)published;
    if (now_ms >= p->next_alert_sweep_ms) {
        /* a backlog (Kafka was away, an instance died with many in flight) is drained a
         * sweep per round, at the pace Kafka confirms, instead of one every ALERT_SWEEP_MS */
        bool more = sweep_alerts(p, now_ms);
        p->next_alert_sweep_ms = more ? now_ms : now_ms + ALERT_SWEEP_MS;
    }
    return rc < 0 ? -1 : published;
}
