/* surveybusctl dlq replay: sends dead letters back to where they came from, once the cause is
 * fixed (a survey record restored, a mapping corrected). It reads the dead-letter topic in
 * its own consumer group, so each dead letter is replayed once; a message that fails again
 * becomes a new dead letter. Kafka sources go back to their topic, MQTT sources to their
 * topic (QoS 1). Payloads cut to 4 KiB in the envelope cannot be replayed and are skipped.
 * With --json the outcome is one JSON object on stdout (see print_json). */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "dlq.h"
#include "kafka.h"
#include "log.h"
#include "mqtt.h"
#include "service.h"
#include "util.h"

typedef struct replay_opts {
    const char *reason; /* only this code (NULL: all) */
    bool dry_run;
    long limit; /* 0: no limit */
    int idle_ms;
} replay_opts_t;

typedef struct tally_line {
    char code[64];
    long n;
} tally_line_t;

static void bump(tally_line_t *t, size_t *n, size_t cap, const char *code)
{
    for (size_t i = 0; i < *n; i++)
        if (!strcmp(t[i].code, code)) {
            t[i].n++;
            return;
        }
    if (*n < cap) {
        snprintf(t[*n].code, sizeof t[*n].code, "%s", code);
        t[(*n)++].n = 1;
    }
}

/* The --json outcome, one line: {"dry_run":B,"reason":CODE|null,"total":N,
 * "replayed"|"would_replay":{CODE:N,...},"skipped":{WHY:N,...}}, plus for a dry run
 * "messages":[{"source","to","reason"},...] (the text form's "would replay" lines). Takes
 * ownership of msgs (may be NULL). */
static void print_json(const replay_opts_t *o, long total, const tally_line_t *done, size_t n_done,
                       const tally_line_t *skipped, size_t n_skipped, json_t *msgs)
{
    json_t *res = json_object(), *d = json_object(), *sk = json_object();
    for (size_t i = 0; i < n_done; i++)
        json_object_set_new(d, done[i].code, json_integer(done[i].n));
    for (size_t i = 0; i < n_skipped; i++)
        json_object_set_new(sk, skipped[i].code, json_integer(skipped[i].n));
    json_object_set_new(res, "dry_run", json_boolean(o->dry_run));
    json_object_set_new(res, "reason", o->reason ? json_string(o->reason) : json_null());
    json_object_set_new(res, "total", json_integer(total));
    json_object_set_new(res, o->dry_run ? "would_replay" : "replayed", d);
    json_object_set_new(res, "skipped", sk);
    if (msgs) json_object_set_new(res, "messages", msgs);
    ctl_print_json(res, 0);
}

/* A dry run's "would replay" of one message: a line, or with --json an entry of msgs. */
static void would_replay(json_t *msgs, const char *source, const char *transport, const char *topic,
                         const char *code)
{
    if (!msgs) {
        printf("would replay %s -> %s %s (%s)\n", source, transport, topic, code);
        return;
    }
    char *to;
    if (asprintf(&to, "%s:%s", transport, topic) < 0) abort();
    json_array_append_new(msgs,
                          json_pack("{s:s,s:s,s:s}", "source", source, "to", to, "reason", code));
    free(to);
}

/* The partitions a replay has seen, and which of them it has finished. */
typedef struct parts {
    struct { int32_t id; bool done; } *p;
    size_t n, cap;
    int64_t asked_ms; /* when the brokers were last asked for the lag (caught_up) */
} parts_t;

/* Index of partition p in ps, or ps->n when not seen yet. */
static size_t parts_find(const parts_t *ps, int32_t p)
{
    size_t i = 0;
    while (i < ps->n && ps->p[i].id != p) i++;
    return i;
}

/* Whether a message of partition p is to be left alone: its partition is finished, or
 * finishes with it (newer is set: written after the replay began). */
static bool parts_done(parts_t *ps, int32_t p, bool newer)
{
    size_t i = parts_find(ps, p);
    if (i == ps->n) {
        if (ps->n == ps->cap) {
            ps->cap = ps->cap ? 2 * ps->cap : 16;
            if (!(ps->p = realloc(ps->p, ps->cap * sizeof *ps->p))) abort();
        }
        ps->p[ps->n].id = p, ps->p[ps->n++].done = false;
    }
    if (newer) ps->p[i].done = true;
    return ps->p[i].done;
}

/* sb_kafka_part_fn: a finished partition (its lag is left for the next run). */
static bool part_finished(void *arg, const char *topic, int32_t p)
{
    (void)topic;
    const parts_t *ps = arg;
    size_t i = parts_find(ps, p);
    return i < ps->n && ps->p[i].done;
}

/* Done: joined, every partition either finished or read to its end, and nothing to replay
 * for idle_ms since `since` (a newer letter in a finished partition keeps coming while the
 * services write new ones; those are for the next run). */
static bool caught_up(sb_kafka_consumer_t *c, parts_t *ps, int64_t since, int idle_ms)
{
    if (sb_mono_ms() - since <= idle_ms) return false;
    int64_t lag = sb_kafka_lag_except(c, part_finished, ps);
    if (lag >= 0) return lag == 0;
    /* unknown from the cache (a partition with nothing left to read since the last replay
     * yields no message to learn its position from): ask the brokers, now and then */
    if (sb_mono_ms() - ps->asked_ms < 2000) return false;
    ps->asked_ms = sb_mono_ms();
    return sb_kafka_lag_asked(c, part_finished, ps, 2000) == 0;
}

static void delivered(void *opaque, void *msg_opaque, int ok, const char *errstr)
{
    (void)opaque;
    if (msg_opaque) sb_wait_delivered(msg_opaque, ok, errstr);
}

static int replay(ctl_t *ctl, const replay_opts_t *o)
{
    sb_config_t *cfg = ctl_load_config(ctl);
    if (!cfg) return 1;
    int rc = 1;
    char err[512], group[400];
    sb_kafka_consumer_t *c = NULL;
    sb_kafka_producer_t *p = NULL;
    sb_mqtt_t *m = NULL;
    tally_line_t done[64], skipped[64];
    size_t n_done = 0, n_skipped = 0;
    long total = 0;
    parts_t parts = {0};
    json_t *planned = ctl->json && o->dry_run ? json_array() : NULL; /* --json --dry-run */
    if (!cfg->kafka.brokers || !*cfg->kafka.brokers) {
        fprintf(stderr, "surveybusctl: dlq replay needs Kafka (the dead letters are there)\n");
        goto out;
    }
    /* one group per filter: a replay of one reason leaves the others for a later replay
     * (a dead letter replayed twice, by a filtered and an unfiltered run, is harmless:
     * responses, events and requests are deduplicated downstream) */
    snprintf(group, sizeof group, "%s.dlq-replay%s%s", cfg->kafka.group, o->reason ? "." : "",
             o->reason ? o->reason : "");
    const char *topics[] = {cfg->topics.dlq};
    /* a topic that is not there, or brokers that do not answer, are a failure, not an empty
     * replay */
    if (sb_kafka_topic_check(cfg, cfg->topics.dlq, 10000, err, sizeof err) < 0) {
        fprintf(stderr, "surveybusctl: kafka: %s\n", err);
        goto out;
    }
    if (!(c = sb_kafka_consumer_new(cfg, group, topics, 1, 0, err, sizeof err)) ||
        (!o->dry_run && !(p = sb_kafka_producer_new(cfg, "surveybus-dlq-replay", delivered, NULL,
                                                     err, sizeof err)))) {
        fprintf(stderr, "surveybusctl: kafka: %s\n", err);
        goto out;
    }
    int64_t start = sb_mono_ms(), first = 0, last_msg = 0, started_ms = sb_now_ms();
    /* Dead letters written after the replay began (a replayed message that failed again, or a
     * service's new one) are left for the next run, or a replay of an unfixed cause would never
     * end. That is decided per partition: a partition is finished at its first such letter,
     * and the others are read on to their own (parts). */
    for (;;) {
        sb_kafka_msg_t *msgs = NULL;
        int n = sb_kafka_consume_batch(c, &msgs, 500, 500);
        if (n < 0) {
            fprintf(stderr, "surveybusctl: kafka: %s\n", sb_kafka_consumer_error(c));
            goto out;
        }
        int64_t now = sb_mono_ms();
        if (n == 0) {
            /* done, or no progress for 30 s (never joined, or the lag stays unknown) */
            int64_t since = last_msg ? last_msg : first ? first : start;
            if (caught_up(c, &parts, since, o->idle_ms)) break;
            if (now - since > 30000 + o->idle_ms) {
                if (!first) { /* nothing read at all, and the end never known */
                    fprintf(stderr, "surveybusctl: kafka: no dead letters could be read from %s "
                                    "within 30 s (brokers unreachable?)\n",
                            cfg->topics.dlq);
                    goto out;
                }
                break;
            }
            continue;
        }
        if (!first) first = now; /* idle counts from the first batch: joining takes a while */
        sb_outmsg_t *out = calloc((size_t)n, sizeof *out);
        json_t **docs = calloc((size_t)n, sizeof *docs);
        if (!out || !docs) abort();
        size_t k = 0;
        /* the messages of this batch dealt with, moved to its front: only their offsets are
         * stored (a finished partition's are not, nor those after --limit) */
        size_t used = 0;
        for (int i = 0; i < n && (!o->limit || total < o->limit); i++) {
            if (parts_done(&parts, msgs[i].partition, msgs[i].timestamp_ms > started_ms))
                continue;
            last_msg = now;
            if (used != (size_t)i) {
                sb_kafka_msg_t t = msgs[used];
                msgs[used] = msgs[i], msgs[i] = t;
            }
            used++;
            const sb_kafka_msg_t *mi = &msgs[used - 1];
            sb_dlq_letter_t l;
            sb_dlq_letter_read(mi->payload, mi->len, &l);
            if (o->reason && strcmp(l.code, o->reason)) {
                sb_dlq_letter_free(&l);
                continue;
            }
            total++;
            if (l.skip) {
                bump(skipped, &n_skipped, 64, l.skip);
                sb_dlq_letter_free(&l);
                continue;
            }
            if (o->dry_run) {
                would_replay(planned, l.source, l.to == SB_DLQ_TO_KAFKA ? "kafka" : "mqtt",
                             l.topic, l.code);
            } else if (l.to == SB_DLQ_TO_KAFKA) {
                out[k++] = (sb_outmsg_t){l.topic, NULL, 0, l.payload, l.len};
                l.topic = NULL;
            } else {
                if (!m && cfg->mqtt.url && *cfg->mqtt.url) {
                    m = sb_mqtt_new(cfg, "surveybus-dlq-replay", NULL, 0, NULL, NULL, err, sizeof err);
                    if (m && sb_mqtt_wait_up(m, 10000) != 0) {
                        sb_mqtt_free(m);
                        m = NULL;
                    }
                }
                if (!m || sb_mqtt_publish(m, l.topic, l.payload, l.len, false, NULL) != 0) {
                    fprintf(stderr, "surveybusctl: mqtt: cannot replay %s\n", l.source);
                    sb_dlq_letter_free(&l);
                    for (size_t j = 0; j < k; j++) free((char *)out[j].topic);
                    free(out), free(docs);
                    sb_kafka_msgs_free(msgs, (size_t)n);
                    goto out;
                }
            }
            bump(done, &n_done, 64, l.code);
            docs[i] = l.doc; /* keeps the payload alive until it is produced */
            l.doc = NULL;
            sb_dlq_letter_free(&l);
        }
        int prc = 0;
        if (k) {
            sb_wait_t w = {SB_WAIT_TAG, 0, 0};
            prc = sb_service_produce_all(p, &w, out, k);
        }
        if (prc == 0 && m) prc = sb_mqtt_wait_published(m, 10000);
        for (size_t j = 0; j < k; j++) free((char *)out[j].topic);
        for (int i = 0; i < n; i++) json_decref(docs[i]);
        free(out);
        free(docs);
        if (prc != 0) {
            fprintf(stderr, "surveybusctl: replayed messages not confirmed; nothing committed\n");
            sb_kafka_msgs_free(msgs, (size_t)n);
            goto out;
        }
        /* dry runs leave the offsets alone: the real replay still sees everything */
        if (!o->dry_run && used > 0) sb_kafka_store_offsets(c, msgs, used);
        sb_kafka_msgs_free(msgs, (size_t)n);
        if (o->limit && total >= o->limit) break;
        int64_t since = last_msg ? last_msg : first; /* the same after a batch */
        if (caught_up(c, &parts, since, o->idle_ms) || sb_mono_ms() - since > 30000 + o->idle_ms)
            break;
    }
    if (!o->dry_run) sb_kafka_commit(c);
    if (ctl->json) {
        print_json(o, total, done, n_done, skipped, n_skipped, planned);
        planned = NULL;
    } else {
        for (size_t i = 0; i < n_done; i++)
            printf("%s %ld %s\n", o->dry_run ? "would replay" : "replayed", done[i].n,
                   done[i].code);
        for (size_t i = 0; i < n_skipped; i++)
            printf("skipped %ld %s\n", skipped[i].n, skipped[i].code);
        if (!n_done && !n_skipped) printf("no dead letters to replay\n");
    }
    rc = 0;
out:
    free(parts.p);
    json_decref(planned);
    if (c) sb_kafka_consumer_close(c);
    sb_kafka_producer_close(p, 5000);
    sb_mqtt_free(m);
    sb_config_free(cfg);
    return rc;
}

int ctl_cmd_dlq(ctl_t *ctl, int argc, char **argv)
{
    static const struct option lopts[] = {{"reason", required_argument, NULL, 'r'},
                                          {"dry-run", no_argument, NULL, 'n'},
                                          {"limit", required_argument, NULL, 'l'},
                                          {NULL, 0, NULL, 0}};
    replay_opts_t o = {.idle_ms = 2000};
    if (argc < 2 || strcmp(argv[1], "replay")) {
        fprintf(stderr, "surveybusctl: dlq replay [--reason CODE] [--dry-run] [--limit N]\n");
        return 2;
    }
    int c;
    char *end = NULL;
    optind = 2;
    while ((c = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
        if (c == 'r') o.reason = optarg;
        else if (c == 'n') o.dry_run = true;
        else if (c == 'l' && (o.limit = strtol(optarg, &end, 10)) > 0 && !*end) continue;
        else {
            fprintf(stderr, "surveybusctl: dlq replay [--reason CODE] [--dry-run] [--limit N]\n");
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "surveybusctl: dlq replay: unexpected argument %s\n", argv[optind]);
        return 2;
    }
    return replay(ctl, &o);
}
