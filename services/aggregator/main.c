/* surveybus-aggregator: consumes survey responses, the survey requests sent and the
 * interaction events' KPIs (Kafka and/or MQTT; requests from MQTT only with Kafka off),
 * counts them exactly once into Redis rolling windows, and publishes metric updates and
 * alerts. The main thread runs Kafka ingest and publication; libmosquitto's callback thread
 * ingests MQTT messages with its own Redis connection. */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aggregator.h"
#include "http.h"
#include "log.h"

/* A topic template is at most 1024 bytes (config.c), and its filter is no longer. */
#define REQ_FILTER_MAX 1025

typedef struct agg {
    sb_service_t svc;
    const sb_config_t *cfg;
    sb_kafka_producer_t *producer;
    sb_kafka_consumer_t *consumer;
    sb_mqtt_t *mqtt_sub, *mqtt_pub;
    ingest_t kin; /* Kafka ingest and publication (main thread) */
    ingest_t min; /* MQTT ingest (callback thread) */
    publisher_t pub;
    alert_sink_t sink;
    sb_http_t *http;
    sb_http_latency_t batch; /* ingest batch times, for /metrics */
    /* With Kafka off, the subscription filters of the MQTT request topics, each once (see
     * request_filters); none with Kafka on, which carries the same requests */
    char req_filters[2][REQ_FILTER_MAX];
    size_t n_req;
} agg_t;

static int on_mqtt(void *opaque, const char *topic, const void *payload, size_t len)
{
    agg_t *a = opaque;
    const sb_config_t *cfg = a->cfg;
    char source[1100];
    char *buf = malloc(strlen(topic) + 1); /* the device id: any level fits, for the parser */
    if (!buf) return -1;
    const char *dev = NULL;
    char stream = 0;
    if (sb_mqtt_match_any((const char *const *)cfg->mqtt_topics.responses,
                          cfg->mqtt_topics.n_responses, topic, buf, &dev) >= 0)
        stream = STREAM_RESPONSE;
    else if (sb_mqtt_match_any((const char *const *)cfg->mqtt_topics.interactions,
                               cfg->mqtt_topics.n_interactions, topic, buf, &dev) >= 0)
        stream = STREAM_INTERACTION;
    /* last: a topic that also matches a response or interaction filter is read as that */
    for (size_t i = 0; !stream && i < a->n_req; i++)
        if (sb_mqtt_topic_match(a->req_filters[i], topic, NULL, 0) == 1) stream = STREAM_REQUEST;
    int rc = 0;
    if (stream) {
        sb_service_source_mqtt(source, sizeof source, topic);
        in_msg_t m = {payload, len, source, dev, true, stream};
        int64_t t0 = sb_mono_us();
        rc = ingest_batch(&a->min, &m, 1);
        if (rc == 0) sb_http_latency_observe(&a->batch, sb_mono_us() - t0);
    }
    free(buf);
    return rc;
}

/* An ingest context; the pipelined one (Kafka) gets a second Redis connection for the
 * reads of the batch it plans while a script runs on the first. */
static int open_ingest(agg_t *a, ingest_t *ig, bool pipelined, char *err, size_t el)
{
    ig->cfg = a->cfg;
    ig->store = sb_store_new(a->cfg, err, el);
    if (!ig->store) return -1;
    ig->tally = sb_tally_new(ig->store, a->cfg);
    if (pipelined && !(ig->rstore = sb_store_new(a->cfg, err, el))) return -1;
    ig->producer = a->producer;
    ig->mqtt_pub = a->mqtt_pub;
    ig->sink = &a->sink;
    return 0;
}

static void close_ingest(ingest_t *ig)
{
    ingest_free_buffers(ig);
    sb_tally_free(ig->tally);
    sb_store_free(ig->rstore);
    sb_store_free(ig->store);
    memset(ig, 0, sizeof *ig);
}

/* Without Kafka, the requests sent (the response rate's denominator) are read from the
 * topics the dispatcher publishes them on: the filters of mqtt_topics.requests and
 * .device_requests ('+' for every level with a placeholder) go into a->req_filters, each
 * once and not when a response or interaction filter is the same. on_mqtt reads a message
 * as one stream only, responses and interactions first, so requests on a topic that also
 * matches one of those are not counted: such an overlap is logged. Returns 0 or -1. */
static int request_filters(agg_t *a, char *err, size_t el)
{
    const sb_config_t *cfg = a->cfg;
    const char *tmpl[] = {cfg->mqtt_topics.requests, cfg->mqtt_topics.device_requests};
    char f[2][REQ_FILTER_MAX];
    size_t n_resp = cfg->mqtt_topics.n_responses;
    for (size_t i = 0; i < 2; i++)
        if (sb_mqtt_template_filter(tmpl[i], f[i], sizeof f[i]) != 0)
            return sb_fail(err, el, "mqtt request topic template too long: %s", tmpl[i]);
    for (size_t i = 0; i < 2; i++) {
        if (i == 1 && !strcmp(f[1], f[0])) break; /* both templates give the same topics */
        bool known = false;
        for (size_t j = 0; j < n_resp + cfg->mqtt_topics.n_interactions; j++) {
            bool resp = j < n_resp;
            const char *o =
                resp ? cfg->mqtt_topics.responses[j] : cfg->mqtt_topics.interactions[j - n_resp];
            if (!sb_mqtt_filters_overlap(f[i], o)) continue;
            known |= !strcmp(f[i], o);
            sb_warn("mqtt request filter overlaps a%s filter: messages on topics both match are "
                    "read as %s, not as requests filter=%s %s_filter=%s",
                    resp ? " response" : "n interaction", resp ? "responses" : "interaction events",
                    f[i], resp ? "response" : "interaction", o);
        }
        if (known) continue;
        sb_info("reading survey requests from mqtt filter=%s", f[i]);
        memcpy(a->req_filters[a->n_req++], f[i], sizeof f[i]);
    }
    return 0;
}

static int start(agg_t *a)
{
    const sb_config_t *cfg = a->cfg;
    char err[512];
    bool kafka = cfg->kafka.brokers && *cfg->kafka.brokers;
    bool mqtt = cfg->mqtt.url && *cfg->mqtt.url;
    /* before any client: a second instance started by mistake on a taken address would
     * otherwise join the consumer group and, under the same MQTT client id, push the running
     * instance off the broker before failing */
    if (cfg->http.aggregator && *cfg->http.aggregator &&
        sb_http_can_listen(cfg->http.aggregator, err, sizeof err) != 0)
        goto fail;
    if (kafka) {
        a->producer = sb_kafka_producer_new(cfg, a->svc.client_id, aggregator_delivery, a, err,
                                            sizeof err);
        if (!a->producer) goto fail;
    }
    if (mqtt) {
        char cid[400];
        snprintf(cid, sizeof cid, "%s-pub", a->svc.client_id);
        a->mqtt_pub = sb_mqtt_new(cfg, cid, NULL, 0, NULL, NULL, err, sizeof err);
        if (!a->mqtt_pub) goto fail;
    }
    if (open_ingest(a, &a->kin, kafka, err, sizeof err)) goto fail;
    publisher_init(&a->pub, cfg, a->kin.tally, a->producer, a->mqtt_pub, a->svc.instance);
    if (kafka) {
        char group[600];
        snprintf(group, sizeof group, "%s.aggregator", cfg->kafka.group);
        const char *topics[] = {cfg->topics.responses, cfg->topics.requests,
                                cfg->topics.interactions};
        /* 1 MiB of prefetch (and fetches of 1 MiB): with the consumer waking librdkafka's
         * fetcher once the queue is half drained (kafka.c refill()), it drains a backlog as
         * fast as 6 MiB did, with a peak about 15 MiB lower (docs/benchmarks.md) */
        a->consumer = sb_kafka_consumer_new(cfg, group, topics, 3, 1024, err, sizeof err);
        if (!a->consumer) goto fail;
    }
    if (mqtt && !kafka && request_filters(a, err, sizeof err)) goto fail;
    size_t n_in = cfg->mqtt_topics.n_responses + cfg->mqtt_topics.n_interactions;
    if (mqtt && n_in + a->n_req) {
        if (open_ingest(a, &a->min, false, err, sizeof err)) goto fail;
        size_t n = n_in + a->n_req;
        const char **subs = malloc(n * sizeof *subs);
        if (!subs) abort();
        for (size_t i = 0; i < cfg->mqtt_topics.n_responses; i++) subs[i] = cfg->mqtt_topics.responses[i];
        for (size_t i = 0; i < cfg->mqtt_topics.n_interactions; i++)
            subs[cfg->mqtt_topics.n_responses + i] = cfg->mqtt_topics.interactions[i];
        for (size_t i = 0; i < a->n_req; i++) subs[n_in + i] = a->req_filters[i];
        a->mqtt_sub = sb_mqtt_new(cfg, a->svc.client_id, subs, n, on_mqtt, a, err, sizeof err);
        free(subs);
        if (!a->mqtt_sub) goto fail;
    }
    if (cfg->http.aggregator && *cfg->http.aggregator) {
        static const char *const queues[] = {"alertq", NULL};
        sb_http_probe_t probe = {.cfg = cfg,
                                 .service = "aggregator",
                                 .writes = true,
                                 .producer = a->producer,
                                 .consumer = a->consumer,
                                 .mqtt = a->mqtt_sub ? a->mqtt_sub : a->mqtt_pub,
                                 .queues = queues,
                                 .batch = &a->batch};
        if (!(a->http = sb_http_start(cfg->http.aggregator, &probe, err, sizeof err))) goto fail;
    }
    sb_info("started kafka=%s mqtt=%s windows=%zu dimensions=%zu interval_ms=%d",
            kafka ? "on" : "off", mqtt ? "on" : "off", cfg->n_windows, cfg->n_dimensions,
            cfg->publish.interval_ms);
    return 0;
fail:
    sb_fatal("cannot start: %s", err);
    return -1;
}

static void wait_redis(agg_t *a)
{
    sb_service_wait_redis(a->kin.store, a->consumer);
}

/* Batches for up to budget_ms while messages keep coming (two in hand: Redis counts one
 * while the next is parsed), then back to the loop's other duties. */
static void consume_for(agg_t *a, int timeout_ms, int budget_ms)
{
    sb_service_consume_pipelined(a->consumer, a->kin.store, (size_t)a->cfg->tuning.batch,
                                 timeout_ms, budget_ms, &ingest_stages, &a->kin, &a->batch);
}

#define SINK_FLUSH_MS 500

static void run(agg_t *a)
{
    int64_t next_pub = sb_mono_ms(), next_report = sb_mono_ms() + 10000;
    while (!sb_service_stop) {
        int64_t wait = next_pub - sb_mono_ms();
        if (wait < 0) wait = 0;
        if (wait > a->cfg->tuning.batch_ms) wait = a->cfg->tuning.batch_ms;
        /* back at least every SINK_FLUSH_MS, so that the alerts confirmed meanwhile leave
         * the outbox in small steps (a backlog confirms thousands in that time) */
        int64_t budget = next_pub - sb_mono_ms();
        if (budget > SINK_FLUSH_MS) budget = SINK_FLUSH_MS;
        if (a->consumer)
            consume_for(a, (int)wait, (int)budget);
        else
            sb_service_sleep((int)wait);
        if (sb_mono_ms() >= next_pub) {
            if (publisher_tick(&a->pub, sb_now_ms()) < 0) wait_redis(a);
            next_pub = sb_mono_ms() + a->cfg->publish.interval_ms;
        }
        if (a->producer) sb_kafka_producer_poll(a->producer, 0);
        alert_sink_flush(&a->sink, a->kin.tally);
        if (sb_mono_ms() >= next_report) {
            sb_info("published updates=%llu failed=%llu leader=%s",
                    (unsigned long long)a->pub.published, (unsigned long long)a->pub.failed,
                    a->pub.leader ? "yes" : "no");
            next_report = sb_mono_ms() + 10000;
        }
    }
}

/* The last call on the main Redis connection was answered. */
static bool redis_answered(const agg_t *a)
{
    return a->kin.store && a->kin.store->err == SB_STORE_OK;
}

static void shutdown_all(agg_t *a)
{
    sb_http_stop(a->http);
    if (a->consumer) {
        /* commits and leaves the group; a broker that hangs must not take the stop past
         * its budget (the commit alone could wait 5 s, the group leave 4 s more) */
        sb_kafka_consumer_close_by(a->consumer,
                                   sb_mono_ms() + sb_service_stop_left_ms(SB_SERVICE_CLOSE_MS));
    }
    sb_mqtt_free(a->mqtt_sub); /* unacknowledged MQTT messages are redelivered */
    close_ingest(&a->min);
    /* Alerts and metric updates in flight, on both transports, before the lease is handed
     * over: a successor must not publish a slice that one of ours, delivered later, would
     * then overwrite (a retained MQTT value, or the last Kafka message of its key). */
    bool delivered = true;
    if (a->producer &&
        sb_kafka_producer_flush(a->producer, sb_service_stop_wait_ms(3000, SB_SERVICE_DRAIN_MS)))
        delivered = false;
    if (a->mqtt_pub && /* up to the close budget: a long Kafka flush must not leave it none */
        sb_mqtt_wait_published(a->mqtt_pub, sb_service_stop_wait_ms(2000, SB_SERVICE_CLOSE_MS)))
        delivered = false;
    /* When Redis did not answer the last call, each further call would wait out another
     * command timeout (5 s) and take the stop past the 10 s of SPEC §1: the confirmed alerts
     * are then left in the outbox (sent again, at least once, by the next publisher) and
     * the lease to run out by itself (five intervals) instead of being handed over. So it
     * runs out too when some updates are still unconfirmed. */
    if (redis_answered(a) && a->kin.tally) alert_sink_flush(&a->sink, a->kin.tally);
    if (redis_answered(a) && delivered) publisher_release(&a->pub);
    else if (a->pub.leader) sb_warn("publisher lease left to run out (updates unconfirmed or Redis away)");
    close_ingest(&a->kin);
    sb_mqtt_free(a->mqtt_pub);
    sb_kafka_producer_close(a->producer, sb_service_stop_wait_ms(3000, SB_SERVICE_CLOSE_MS));
    publisher_free(&a->pub);
}

int main(int argc, char **argv)
{
    agg_t a;
    memset(&a, 0, sizeof a);
    pthread_mutex_init(&a.sink.mu, NULL);
    /* Blocks of 256 KiB and more (librdkafka's fetch buffers, up to fetch.max.bytes) come
     * from mmap and go back to the system when freed. glibc would otherwise raise this
     * threshold to the size of the largest block freed and keep such buffers in the heap,
     * where they fragment it: the peak while draining a backlog was 52-65 MiB, with this
     * 51-58 MiB. The dispatcher does without: there the page faults cost about 10 % of its
     * ingest rate (docs/benchmarks.md). MALLOC_MMAP_THRESHOLD_ wins. */
    if (!getenv("MALLOC_MMAP_THRESHOLD_")) mallopt(M_MMAP_THRESHOLD, 256 * 1024);
    int rc = sb_service_init(&a.svc, "aggregator", argc, argv);
    if (rc != 0) return sb_service_init_status(rc);
    a.cfg = a.svc.cfg;
    if (start(&a) == 0) {
        run(&a);
        sb_info("stopping");
        rc = 0;
    } else {
        rc = 1;
    }
    shutdown_all(&a);
    for (size_t i = 0; i < a.sink.n; i++) free(a.sink.done[i]);
    free(a.sink.done);
    pthread_mutex_destroy(&a.sink.mu);
    return sb_service_end(&a.svc, rc);
}
