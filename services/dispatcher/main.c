/* surveybus-dispatcher: consumes interaction events (Kafka and/or MQTT), schedules surveys
 * durably in Redis, and publishes survey requests when they fall due. One main thread runs
 * Kafka ingest and firing; libmosquitto's callback thread ingests MQTT events with its own
 * Redis connection and producer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dispatcher.h"
#include "http.h"
#include "log.h"
#include "tz.h"

typedef struct disp {
    sb_service_t svc;
    const sb_config_t *cfg;
    sb_store_t *store;            /* main thread */
    sb_sched_t *sched;
    sb_store_t *ack_store;         /* acknowledgements of fired surveys run on their own */
    sb_sched_t *ack_sched;         /* connection, in parallel with claims and ingest */
    sb_kafka_producer_t *producer; /* requests + dead letters of Kafka ingest */
    sb_kafka_consumer_t *consumer;
    sb_mqtt_t *mqtt_sub, *mqtt_pub;
    ingest_ctx_t kin;              /* Kafka ingest (main thread) */
    ingest_ctx_t min;              /* MQTT ingest (callback thread) */
    firer_t fire;
    sb_http_t *http;
    sb_http_latency_t batch; /* ingest batch times, for /metrics */
} disp_t;

/* MQTT callback: one event, processed synchronously so that the broker's acknowledgement
 * follows the durable effect. */
static int on_mqtt(void *opaque, const char *topic, const void *payload, size_t len)
{
    disp_t *d = opaque;
    char source[1100];
    char *buf = malloc(strlen(topic) + 1); /* the device id: any level fits, for the parser */
    if (!buf) return -1;
    const char *dev;
    sb_mqtt_match_any((const char *const *)d->cfg->mqtt_topics.interactions,
                      d->cfg->mqtt_topics.n_interactions, topic, buf, &dev);
    sb_service_source_mqtt(source, sizeof source, topic);
    in_msg_t m = {payload, len, source, dev, true};
    int64_t t0 = sb_mono_us();
    int rc = ingest_batch(&d->min, &m, 1);
    if (rc == 0) sb_http_latency_observe(&d->batch, sb_mono_us() - t0);
    free(buf);
    return rc;
}

static int open_ingest_ctx(disp_t *d, ingest_ctx_t *ic, bool own_producer, char *err, size_t el)
{
    ic->cfg = d->cfg;
    ic->store = sb_store_new(d->cfg, err, el);
    if (!ic->store) return -1;
    ic->sched = sb_sched_new(ic->store, d->cfg);
    if (own_producer && d->cfg->kafka.brokers && *d->cfg->kafka.brokers) {
        char cid[400];
        snprintf(cid, sizeof cid, "%s-mqtt-ingest", d->svc.client_id);
        ic->producer = sb_kafka_producer_new(d->cfg, cid, dispatcher_delivery, d, err, el);
        if (!ic->producer) return -1;
    }
    return 0;
}

static void close_ingest_ctx(ingest_ctx_t *ic, bool own_producer)
{
    if (own_producer)
        sb_kafka_producer_close(ic->producer, sb_service_stop_wait_ms(3000, SB_SERVICE_CLOSE_MS));
    ingest_ctx_free_buffers(ic);
    sb_sched_free(ic->sched);
    sb_store_free(ic->store);
    memset(ic, 0, sizeof *ic);
}

static int start(disp_t *d)
{
    const sb_config_t *cfg = d->cfg;
    char err[512];
    bool kafka = cfg->kafka.brokers && *cfg->kafka.brokers;
    bool mqtt = cfg->mqtt.url && *cfg->mqtt.url;
    if (!cfg->n_journeys) sb_warn("no journeys configured: events will schedule nothing");
    /* before any client: a second instance started by mistake on a taken address would
     * otherwise join the consumer group and, under the same MQTT client id, push the running
     * instance off the broker before failing */
    if (cfg->http.dispatcher && *cfg->http.dispatcher &&
        sb_http_can_listen(cfg->http.dispatcher, err, sizeof err) != 0)
        goto fail;

    if (open_ingest_ctx(d, &d->kin, false, err, sizeof err)) goto fail;
    d->store = d->kin.store;
    d->sched = d->kin.sched;
    if (kafka) {
        d->producer = sb_kafka_producer_new(cfg, d->svc.client_id, dispatcher_delivery, d, err,
                                            sizeof err);
        if (!d->producer) goto fail;
        d->kin.producer = d->producer;
        char group[600];
        snprintf(group, sizeof group, "%s.dispatcher", cfg->kafka.group);
        const char *topics[] = {cfg->topics.interactions};
        /* the default 8 MiB of prefetch: with the consumer waking librdkafka's fetcher once
         * the queue is half drained (kafka.c refill()), a backlog drains as fast as with the
         * 32 MiB it needed before, and the peak while draining one fell from about 80 MiB to
         * 44-50 MiB (docs/benchmarks.md) */
        d->consumer = sb_kafka_consumer_new(cfg, group, topics, 1, 0, err, sizeof err);
        if (!d->consumer) goto fail;
    }
    if (mqtt) {
        char cid[400];
        snprintf(cid, sizeof cid, "%s-pub", d->svc.client_id);
        d->mqtt_pub = sb_mqtt_new(cfg, cid, NULL, 0, NULL, NULL, err, sizeof err);
        if (!d->mqtt_pub) goto fail;
        if (cfg->mqtt_topics.n_interactions) {
            if (open_ingest_ctx(d, &d->min, true, err, sizeof err)) goto fail;
            d->mqtt_sub = sb_mqtt_new(cfg, d->svc.client_id,
                                      (const char *const *)cfg->mqtt_topics.interactions,
                                      cfg->mqtt_topics.n_interactions, on_mqtt, d, err, sizeof err);
            if (!d->mqtt_sub) goto fail;
        }
    }
    if (!(d->ack_store = sb_store_new(cfg, err, sizeof err))) goto fail;
    d->ack_sched = sb_sched_new(d->ack_store, cfg);
    firer_init(&d->fire, cfg, d->sched, d->ack_sched, d->store, d->producer, d->mqtt_pub);
    if (cfg->http.dispatcher && *cfg->http.dispatcher) {
        static const char *const queues[] = {"sched", "inflight", NULL};
        sb_http_probe_t probe = {.cfg = cfg,
                                 .service = "dispatcher",
                                 .writes = true,
                                 .producer = d->producer,
                                 .consumer = d->consumer,
                                 .mqtt = d->mqtt_sub ? d->mqtt_sub : d->mqtt_pub,
                                 .queues = queues,
                                 .batch = &d->batch};
        if (!(d->http = sb_http_start(cfg->http.dispatcher, &probe, err, sizeof err))) goto fail;
    }
    sb_info("started kafka=%s mqtt=%s journeys=%zu lease_ms=%lld", kafka ? "on" : "off",
            mqtt ? "on" : "off", cfg->n_journeys, (long long)cfg->tuning.lease_ms);
    return 0;
fail:
    sb_fatal("cannot start: %s", err);
    return -1;
}

/* Waits for Redis with the Kafka consumer paused (back-pressure, no loss). */
static void wait_redis(disp_t *d)
{
    sb_service_wait_redis(d->store, d->consumer);
}

/* Batches while events keep coming, two in hand (Redis schedules one while the next is
 * parsed), for at most tuning.batch_ms: the timers are checked in between. */
static void consume_for(disp_t *d, int timeout_ms)
{
    if (sb_service_consume_pipelined(d->consumer, d->store, (size_t)d->cfg->tuning.batch,
                                     timeout_ms, d->cfg->tuning.batch_ms, &ingest_stages,
                                     &d->kin, &d->batch) > 0)
        d->fire.next_due_ms = 0; /* new surveys may be due now */
}

static void run(disp_t *d)
{
    /* each survey in flight holds at most one MQTT publish: with batch over 1,000 the MQTT
     * client's backlog limit would fail requests whose Kafka copy went out (sent again) */
    size_t max_inflight = (size_t)d->cfg->tuning.batch * 10;
    if (d->mqtt_pub && max_inflight > SB_MQTT_MAX_PENDING) max_inflight = SB_MQTT_MAX_PENDING;
    int64_t next_report = sb_mono_ms() + 10000;
    while (!sb_service_stop) {
        int64_t now = sb_now_ms();
        int fired = firer_fire(&d->fire, now, max_inflight);
        if (fired < 0) {
            wait_redis(d);
            continue;
        }
        if (firer_settle(&d->fire, now) < 0 || firer_recover(&d->fire, now) < 0) {
            wait_redis(d);
            continue;
        }
        /* sleep in the consumer (or plainly) unless there is firing work in hand */
        int64_t idle = d->fire.next_due_ms - sb_now_ms(), cap = d->cfg->tuning.batch_ms;
        int timeout = fired > 0 || d->fire.inflight ? 0 : idle < 0 ? 0 : idle > cap ? (int)cap : (int)idle;
        if (d->consumer) {
            if (d->fire.inflight < max_inflight) consume_for(d, timeout);
        } else if (timeout > 0) {
            sb_service_sleep(timeout);
        }
        if (d->fire.inflight && d->producer) sb_kafka_producer_poll(d->producer, fired ? 0 : 5);
        if (sb_mono_ms() >= next_report) {
            firer_report(&d->fire);
            next_report = sb_mono_ms() + 10000;
        }
    }
}

/* SIGTERM: stop taking work, confirm what is in flight (bounded), commit, close. */
static void shutdown_all(disp_t *d)
{
    sb_http_stop(d->http);
    /* in-flight requests get what is left of the drain budget since SIGTERM: the main loop
     * may have spent up to a Redis timeout before it saw the signal */
    int64_t deadline = sb_mono_ms() + sb_service_stop_left_ms(SB_SERVICE_DRAIN_MS);
    /* the claims in flight stay ours until we are surely gone: their leases are no longer
     * renewed, and another instance would otherwise take them for a dead dispatcher's and
     * send them again while we still wait for their confirmations (a hung Redis costs at
     * most a second here) */
    if (d->fire.head) {
        sb_store_set_timeout(d->store, 1000);
        firer_keep_claims(&d->fire, sb_now_ms() + sb_service_stop_left_ms(SB_SERVICE_CLOSE_MS) + 1000);
        sb_store_set_timeout(d->store, SB_STORE_TIMEOUT_MS);
    }
    if (d->producer) sb_kafka_producer_flush(d->producer, sb_service_stop_wait_ms(5000, SB_SERVICE_DRAIN_MS));
    while (d->fire.inflight && sb_mono_ms() < deadline) {
        if (d->mqtt_pub) sb_mqtt_wait_published(d->mqtt_pub, 100);
        if (firer_settle(&d->fire, sb_now_ms()) < 0) break;
        if (d->fire.inflight && d->producer) sb_kafka_producer_poll(d->producer, 50);
    }
    /* the answer to an acknowledgement still in Redis, unless waiting out the command
     * timeout could take the stop past its close budget: unanswered, its surveys stay claimed and are
     * recovered (found on Kafka, never sent twice) after the lease */
    if (!d->fire.ack_pending || sb_service_stop_left_ms(SB_SERVICE_CLOSE_MS) >= SB_STORE_TIMEOUT_MS)
        firer_settle_wait(&d->fire);
    if (d->fire.inflight)
        sb_warn("stopping with %zu unconfirmed requests; their claims recover after the lease",
                d->fire.inflight);
    firer_report(&d->fire);
    if (d->consumer) {
        /* commits and leaves the group; a broker that hangs must not take the stop past
         * its budget (the commit alone could wait 5 s, the group leave 4 s more) */
        sb_kafka_consumer_close_by(d->consumer,
                                   sb_mono_ms() + sb_service_stop_left_ms(SB_SERVICE_CLOSE_MS));
    }
    sb_mqtt_free(d->mqtt_sub); /* unacknowledged MQTT events are redelivered */
    close_ingest_ctx(&d->min, true);
    if (d->mqtt_pub) sb_mqtt_wait_published(d->mqtt_pub, sb_service_stop_wait_ms(1000, SB_SERVICE_CLOSE_MS));
    sb_mqtt_free(d->mqtt_pub);
    /* before the entries go: the producer reports every request it still holds (purged
     * when undelivered) to its fire entry */
    sb_kafka_producer_close(d->producer, sb_service_stop_wait_ms(1000, SB_SERVICE_CLOSE_MS));
    d->producer = d->kin.producer = d->fire.producer = NULL;
    firer_free(&d->fire);
    sb_sched_free(d->ack_sched);
    sb_store_free(d->ack_store);
    close_ingest_ctx(&d->kin, false);
}

int main(int argc, char **argv)
{
    disp_t d;
    memset(&d, 0, sizeof d);
    int rc = sb_service_init(&d.svc, "dispatcher", argc, argv);
    if (rc != 0) return sb_service_init_status(rc);
    d.cfg = d.svc.cfg;
    if (start(&d) == 0) {
        run(&d);
        sb_info("stopping");
        rc = 0;
    } else {
        rc = 1;
    }
    shutdown_all(&d);
    sb_tz_cache_free();
    return sb_service_end(&d.svc, rc);
}
