/* surveybusctl simulate: realistic traffic for demos and load. It produces interaction events
 * (call-centre tickets, chats, self-service sessions, onboardings on Kafka; field-service
 * visits on MQTT) with agents, teams, regions, products and service KPIs, and plays the
 * customers: it reads the survey requests the dispatcher publishes and answers a share of them
 * after a short delay, with scores that depend on how good the agent is and how long the
 * customer waited, so that the dashboards show differences worth looking at. Progress goes
 * to stderr; with --json, a summary of the run is one JSON object on stdout at the end. */
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl.h"
#include "kafka.h"
#include "log.h"
#include "mqtt.h"
#include "survey.h"
#include "util.h"

static volatile sig_atomic_t sim_stop;
static void on_sim_signal(int sig)
{
    (void)sig;
    sim_stop = 1;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static pthread_mutex_t rng_mu = PTHREAD_MUTEX_INITIALIZER;

static double uniform(void)
{
    pthread_mutex_lock(&rng_mu);
    rng_state ^= rng_state << 13, rng_state ^= rng_state >> 7, rng_state ^= rng_state << 17;
    uint64_t x = rng_state;
    pthread_mutex_unlock(&rng_mu);
    return (double)(x >> 11) / 9007199254740992.0;
}

static int pick(int n)
{
    return (int)(uniform() * n) % n;
}

/* A log-normal sample with the given median. */
static double lognormal(double median, double sigma)
{
    double u1 = uniform() + 1e-12, u2 = uniform();
    return median * exp(sigma * sqrt(-2 * log(u1)) * cos(2 * M_PI * u2));
}

enum { AGENTS = 24, DEVICES = 6, PENDING_MAX = 100000 };
static const char *const REGIONS[] = {"north", "south", "east", "west"};
static const char *const PRODUCTS[] = {"router-x", "router-s", "fiber-1g", "tv-box", "mobile"};
static const char *const CHANNELS[] = {"phone", "chat", "email"};
static const char *const LOCALES[] = {"en", "en", "en", "de-DE", "zh-CN", "fr-FR"};
static const char *const ZONES[] = {"Europe/London", "Europe/Berlin", "Asia/Shanghai",
                                    "America/New_York", "UTC"};

/* Agent quality 0..1: a few excellent agents, a few struggling ones. */
static double agent_quality(int a)
{
    return 0.35 + 0.6 * (double)((a * 7) % AGENTS) / (AGENTS - 1);
}

/* An answer waiting to be sent. */
typedef struct answer {
    int64_t at_ms;
    char survey_id[SB_STR_MAX + 1];
    char token[SB_TOKEN_TEXT_MAX + 1];
    char device[SB_STR_MAX + 1]; /* "" for Kafka */
    int score;
    const char *comment;
} answer_t;

typedef struct sim {
    const sb_config_t *cfg;
    sb_kafka_producer_t *prod;
    sb_mqtt_t *mqtt;
    double respond;
    pthread_mutex_t mu;
    answer_t *pending;
    size_t n_pending;
    uint64_t events, visits, requests, answers, skipped, duplicates, garbage;
    uint64_t undelivered; /* Kafka messages whose delivery failed (or never happened) */
    /* the experience of the last interaction of each customer, to score its survey */
    double mood[5000];
} sim_t;

/* The score a customer gives on a scale, from a mood in 0..1 (with some noise). */
static int score_for(double mood, sb_kind_t kind, const sb_scale_t *sc)
{
    double m = mood + (uniform() - 0.5) * 0.35;
    if (m < 0) m = 0;
    if (m > 1) m = 1;
    if (kind == SB_KIND_CES && sc->easy_low) m = 1 - m; /* low is easy */
    return sc->min + (int)lround(m * (sc->max - sc->min));
}

static void queue_answer(sim_t *s, const sb_survey_request_t *q, const char *device)
{
    s->requests++;
    if (uniform() >= s->respond) {
        s->skipped++;
        return;
    }
    unsigned cust = 0;
    sscanf(q->customer_id, "cust-%u", &cust);
    double mood = s->mood[cust % 5000];
    pthread_mutex_lock(&s->mu);
    if (s->n_pending < PENDING_MAX) {
        answer_t *a = &s->pending[s->n_pending++];
        a->at_ms = sb_now_ms() + 500 + (int64_t)(uniform() * 4000);
        snprintf(a->survey_id, sizeof a->survey_id, "%s", q->survey_id);
        snprintf(a->token, sizeof a->token, "%s", q->token);
        snprintf(a->device, sizeof a->device, "%s", device ? device : "");
        a->score = score_for(mood, q->kind, &s->cfg->scales[q->kind]);
        /* comments in the customer's language: Chinese for zh-CN customers */
        static const char *const good[] = {"Quick and friendly, thanks!", "Solved at once."};
        static const char *const bad[] = {"I waited far too long.", "Still not fixed.",
                                          "Transferred three times..."};
        static const char *const good_zh[] = {"服务很快，谢谢！", "一次就解决了。"};
        static const char *const bad_zh[] = {"等了太久。", "问题还没有解决。", "被转接了三次……"};
        bool zh = !strcmp(q->locale, "zh-CN");
        a->comment = uniform() >= 0.3 ? NULL
                     : mood > 0.6     ? (zh ? good_zh : good)[pick(2)]
                                      : (zh ? bad_zh : bad)[pick(3)];
    }
    pthread_mutex_unlock(&s->mu);
}

/* MQTT: survey requests sent to devices (the field engineer's tablet answers them). */
/* A topic from a filter or template with one device level ("+" or "{device_id}"): with
 * device NULL the subscription filter, else the device's topic. */
static void device_topic(const char *tmpl, const char *device, char *out, size_t len)
{
    const char *p = strstr(tmpl, "{device_id}");
    size_t skip = 11;
    if (!p) p = strchr(tmpl, '+'), skip = 1;
    if (!p) {
        snprintf(out, len, "%s", tmpl);
        return;
    }
    snprintf(out, len, "%.*s%s%s", (int)(p - tmpl), tmpl, device ? device : "+", p + skip);
}

static char request_filter[600];

static int on_mqtt_request(void *opaque, const char *topic, const void *payload, size_t len)
{
    sim_t *s = opaque;
    char device[SB_STR_MAX + 1] = "", err[200];
    sb_mqtt_topic_match(request_filter, topic, device, sizeof device);
    sb_survey_request_t *q = malloc(sizeof *q);
    if (!q) return 0;
    if (sb_survey_request_decode(payload, len, q, err, sizeof err) == 0 && !q->reminder)
        queue_answer(s, q, device[0] ? device : NULL);
    free(q);
    return 0;
}

static void send_answers(sim_t *s)
{
    int64_t now = sb_now_ms();
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->n_pending;) {
        answer_t *a = &s->pending[i];
        if (a->at_ms > now) {
            i++;
            continue;
        }
        sb_survey_response_t r;
        memset(&r, 0, sizeof r);
        snprintf(r.survey_id, sizeof r.survey_id, "%s", a->survey_id);
        snprintf(r.token, sizeof r.token, "%s", a->token);
        r.score = a->score;
        r.has_answered = true;
        r.answered_ms = now;
        if (a->comment) {
            r.has_comment = true;
            snprintf(r.comment, sizeof r.comment, "%s", a->comment);
        }
        char *json = sb_survey_response_encode(&r);
        if (json) {
            if (a->device[0] && s->mqtt) {
                char topic[600];
                if (s->cfg->mqtt_topics.n_responses) {
                    device_topic(s->cfg->mqtt_topics.responses[0], a->device, topic, sizeof topic);
                    sb_mqtt_publish(s->mqtt, topic, json, strlen(json), false, NULL);
                }
            } else if (s->prod) {
                sb_kafka_produce(s->prod, s->cfg->topics.responses, a->survey_id,
                                 strlen(a->survey_id), json, strlen(json), NULL);
            }
            s->answers++;
            free(json);
        }
        /* 2 % of customers press "send" twice: the repeat is a duplicate, counted once */
        if (uniform() < 0.02 && !a->device[0]) {
            a->at_ms = now + 1000 + (int64_t)(uniform() * 3000);
            s->duplicates++;
            i++; /* kept: sent again when due */
            continue;
        }
        *a = s->pending[--s->n_pending];
    }
    pthread_mutex_unlock(&s->mu);
}

static void send_event(sim_t *s, uint64_t seq)
{
    int cust = pick(5000), agent = pick(AGENTS), team = agent / 6, kind_pick = pick(100);
    double q = agent_quality(agent);
    const char *kind = kind_pick < 60 ? "support_ticket" : kind_pick < 85 ? "self_service"
                       : kind_pick < 95 ? "purchase" : "onboarding";
    double frt = lognormal(60 + 400 * (1 - q), 0.6), art = lognormal(1800 + 7200 * (1 - q), 0.7);
    bool fcr = uniform() < 0.45 + 0.5 * q;
    int transfers = uniform() < 0.35 * (1.2 - q) ? 1 + pick(3) : 0;
    /* the customer's mood: the agent, the wait and the outcome */
    double mood = 0.55 * q + 0.25 * (fcr ? 1 : 0) + 0.2 * (frt < 120 ? 1 : frt < 600 ? 0.5 : 0) -
                  0.1 * transfers;
    s->mood[cust] = mood < 0 ? 0 : mood > 1 ? 1 : mood;
    char ev[1200], when[32];
    sb_time_format(sb_now_ms(), when);
    bool visit = s->mqtt && s->cfg->mqtt_topics.n_interactions && pick(10) == 0;
    int n = snprintf(ev, sizeof ev,
                     "{\"event_id\":\"sim-%llu-%llu\",%s\"occurred_at\":\"%s\","
                     "\"customer_id\":\"cust-%04d\",\"customer_tz\":\"%s\",\"locale\":\"%s\","
                     "\"interaction_id\":\"sim-%llu-%llu\",\"kind\":\"%s\",%s%s%s"
                     "\"stage\":\"%s\",\"agent\":\"agent-%02d\",\"team\":\"team-%d\","
                     "\"region\":\"%s\",\"product\":\"%s\",\"kpi\":{\"first_response_s\":%.0f,"
                     "\"resolution_s\":%.0f,\"resolved_first_contact\":%s,\"transfers\":%d}}",
                     (unsigned long long)sb_now_ms(), (unsigned long long)seq,
                     visit ? "" : "\"type\":\"interaction.completed\",", when, cust,
                     ZONES[cust % 5], LOCALES[cust % 6], (unsigned long long)sb_now_ms(),
                     (unsigned long long)seq, visit ? "field_visit" : kind,
                     visit ? "" : "\"channel\":\"", visit ? "" : CHANNELS[pick(3)],
                     visit ? "" : "\",", kind_pick < 85 ? "support" : "sales", agent, team,
                     REGIONS[cust % 4], PRODUCTS[pick(5)], frt, art, fcr ? "true" : "false",
                     transfers);
    if (n <= 0 || (size_t)n >= sizeof ev) return;
    if (s->prod && pick(200) == 0) {
        /* now and then a broken producer upstream: these end as dead letters */
        static const char *const junk[] = {"{\"event_id\":\"sim-broken\",\"occurred_at\":",
                                           "not json", "{\"event_id\":\"x\",\"customer_id\":\"c/+\"}"};
        const char *j = junk[pick(3)];
        sb_kafka_produce(s->prod, s->cfg->topics.interactions, NULL, 0, j, strlen(j), NULL);
        sb_kafka_produce(s->prod, s->cfg->topics.responses, NULL, 0, j, strlen(j), NULL);
        s->garbage += 2;
    }
    if (visit) {
        char topic[600], device[16];
        snprintf(device, sizeof device, "dev-%02d", pick(DEVICES));
        device_topic(s->cfg->mqtt_topics.interactions[0], device, topic, sizeof topic);
        if (sb_mqtt_publish(s->mqtt, topic, ev, (size_t)n, false, NULL) == 0) s->visits++;
    } else if (s->prod) {
        char key[64];
        snprintf(key, sizeof key, "cust-%04d", cust);
        if (sb_kafka_produce(s->prod, s->cfg->topics.interactions, key, strlen(key), ev, (size_t)n,
                             NULL) == 0)
            s->events++;
    }
}

/* The --json summary, one line: what was sent and seen, as the progress lines report it, and
 * what was left when the run ended. */
static void print_json(const sim_t *s, double rate, double respond, int64_t elapsed_ms)
{
    json_t *o =
        json_pack("{s:f,s:f,s:f,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "rate", rate, "respond",
                  respond, "duration_s", (double)elapsed_ms / 1000.0, "events",
                  (json_int_t)s->events, "undelivered", (json_int_t)s->undelivered,
                  "visits", (json_int_t)s->visits, "garbage", (json_int_t)s->garbage,
                  "requests_seen", (json_int_t)s->requests, "answers_sent", (json_int_t)s->answers,
                  "repeats", (json_int_t)s->duplicates, "not_answered", (json_int_t)s->skipped,
                  "answers_pending", (json_int_t)s->n_pending);
    ctl_print_json(o, 0); /* reals with 15 digits: 0.6, not 0.59999999999999998 */
}

/* Delivery reports (served on this thread by poll, flush and free): a message Kafka did not
 * take is not counted as sent. */
static void on_delivery(void *opaque, void *msg_opaque, int ok, const char *errstr)
{
    (void)msg_opaque, (void)errstr;
    sim_t *s = opaque;
    if (!ok) s->undelivered++;
}

/* Most events per second --rate accepts. */
#define RATE_MAX 1000000

/* A whole argument as a finite number ("5x", "inf" and "nan" are not). */
static bool number(const char *s, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || !isfinite(v)) return false;
    *out = v;
    return true;
}

int ctl_cmd_simulate(ctl_t *ctl, int argc, char **argv)
{
    static const struct option lopts[] = {{"rate", required_argument, NULL, 'r'},
                                          {"duration", required_argument, NULL, 'd'},
                                          {"respond", required_argument, NULL, 'p'},
                                          {NULL, 0, NULL, 0}};
    double rate = 10, respond = 0.6;
    int64_t duration_ms = 0;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
        if (c == 'r' && number(optarg, &rate) && rate > 0 && rate <= RATE_MAX) continue;
        if (c == 'd' && sb_duration_parse(optarg, &duration_ms) == 0) continue;
        if (c == 'p' && number(optarg, &respond) && respond >= 0 && respond <= 1) continue;
        fprintf(stderr, "surveybusctl: simulate [--rate EVENTS_PER_S (up to %d)] [--duration D] "
                        "[--respond SHARE 0..1]\n", RATE_MAX);
        return 2;
    }
    if (optind < argc) {
        fprintf(stderr, "surveybusctl: simulate: unexpected argument %s\n", argv[optind]);
        return 2;
    }
    sb_config_t *cfg = ctl_load_config(ctl);
    if (!cfg) return 1;
    sim_t *s = calloc(1, sizeof *s);
    answer_t *pending = calloc(PENDING_MAX, sizeof *pending);
    if (!s || !pending) abort();
    s->cfg = cfg;
    s->respond = respond;
    s->pending = pending;
    pthread_mutex_init(&s->mu, NULL);
    char err[512];
    int rc = 1;
    int64_t elapsed_ms = 0;
    sb_kafka_consumer_t *cons = NULL;
    bool kafka = cfg->kafka.brokers && *cfg->kafka.brokers;
    if (kafka) {
        if (!(s->prod = sb_kafka_producer_new(cfg, "surveybus-simulate", on_delivery, s, err,
                                              sizeof err))) {
            fprintf(stderr, "surveybusctl: kafka: %s\n", err);
            goto out;
        }
        char group[400];
        snprintf(group, sizeof group, "%s.simulate", cfg->kafka.group);
        const char *topics[] = {cfg->topics.requests};
        if (!(cons = sb_kafka_consumer_new(cfg, group, topics, 1, 0, err, sizeof err))) {
            fprintf(stderr, "surveybusctl: kafka: %s\n", err);
            goto out;
        }
    }
    if (cfg->mqtt.url && *cfg->mqtt.url) {
        device_topic(cfg->mqtt_topics.device_requests, NULL, request_filter, sizeof request_filter);
        const char *subs[] = {request_filter};
        s->mqtt = sb_mqtt_new(cfg, "surveybus-simulate", subs, 1, on_mqtt_request, s, err, sizeof err);
        if (!s->mqtt) {
            fprintf(stderr, "surveybusctl: mqtt: %s\n", err);
            goto out;
        }
    }
    if (!s->prod && !s->mqtt) {
        fprintf(stderr, "surveybusctl: simulate needs Kafka or MQTT\n");
        goto out;
    }
    signal(SIGINT, on_sim_signal);
    signal(SIGTERM, on_sim_signal);
    fprintf(stderr, "simulating %.1f events/s%s, answering %.0f %% of the surveys; Ctrl-C stops\n",
            rate, s->mqtt ? " (a tenth as MQTT field visits)" : "", respond * 100);
    int64_t t0 = sb_mono_ms(), next_report = t0 + 5000;
    uint64_t seq = 0;
    while (!sim_stop && (duration_ms == 0 || sb_mono_ms() - t0 < duration_ms)) {
        while (seq < (uint64_t)((double)(sb_mono_ms() - t0) * rate / 1000.0)) send_event(s, seq++);
        if (cons) {
            sb_kafka_msg_t *m = NULL;
            int n = sb_kafka_consume_batch(cons, &m, 500, 20);
            for (int i = 0; i < n; i++) {
                sb_survey_request_t *q = malloc(sizeof *q);
                if (q && sb_survey_request_decode(m[i].payload, m[i].len, q, err, sizeof err) == 0 &&
                    !q->reminder && strcmp(q->channel, "device"))
                    queue_answer(s, q, NULL);
                free(q);
            }
            if (n > 0) sb_kafka_store_offsets(cons, m, (size_t)n);
            sb_kafka_msgs_free(m, n > 0 ? (size_t)n : 0);
        } else {
            struct timespec ts = {0, 20000000L};
            nanosleep(&ts, NULL);
        }
        send_answers(s);
        if (s->prod) sb_kafka_producer_poll(s->prod, 0);
        if (sb_mono_ms() >= next_report) {
            fprintf(stderr, "simulate: events %llu, visits %llu, requests seen %llu, answers sent %llu"
                            " (repeats %llu), garbage %llu\n",
                    (unsigned long long)s->events, (unsigned long long)s->visits,
                    (unsigned long long)s->requests, (unsigned long long)s->answers,
                    (unsigned long long)s->duplicates, (unsigned long long)s->garbage);
            next_report += 5000;
        }
    }
    elapsed_ms = sb_mono_ms() - t0;
    rc = 0;
out:
    if (cons) {
        sb_kafka_commit(cons);
        sb_kafka_consumer_close(cons);
    }
    if (s->prod) {
        sb_kafka_producer_close(s->prod, 5000); /* what is still queued is reported undelivered */
        if (s->undelivered) {
            fprintf(stderr, "surveybusctl: simulate: %llu Kafka messages were not delivered\n",
                    (unsigned long long)s->undelivered);
            rc = rc ? rc : 1;
        }
    }
    if (s->mqtt) sb_mqtt_wait_published(s->mqtt, 2000);
    sb_mqtt_free(s->mqtt);
    /* after the MQTT thread is gone: the counters are final */
    if (elapsed_ms && ctl->json) print_json(s, rate, respond, elapsed_ms);
    pthread_mutex_destroy(&s->mu);
    free(pending);
    free(s);
    sb_config_free(cfg);
    return rc;
}
