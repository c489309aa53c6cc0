/* The stream's events: the published metric updates and alerts, from MQTT when configured
 * (the retained metric topics), else from Kafka. See web.h. */
#include <jansson.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metric.h"
#include "mqtt.h"
#include "util.h"
#include "web.h"

/* Reasons a message is not forwarded, as counted on /metrics (surveybus_stream_dropped_total) */
enum { DROP_TOO_LARGE, DROP_INVALID_JSON, DROP__N };
static const char *const drop_reasons[DROP__N] = {"too_large", "invalid_json"};

struct source {
    hub_t *hub;
    const sb_config_t *cfg;
    char metric_filter[512], alert_filter[512];
    sb_mqtt_t *mqtt;
    sb_kafka_consumer_t *consumer;
    pthread_t thread;
    bool running;
    atomic_bool stop; /* set by source_stop, read by the consumer thread */
    _Atomic uint64_t dropped[DROP__N];
    sb_http_counter_t counters[DROP__N];
};

/* Passes one message to the hub as event. One over SB_MSG_MAX bytes, the limit of every
 * message surveybus reads (an update or an alert is far smaller), or not JSON is dropped:
 * counted and logged. Each is held by every client that has not read it yet, up to the
 * hub's queue limit, so the size bounds what a slow browser costs. */
static void forward(source_t *s, const char *event, const char *from, const void *payload,
                    size_t len)
{
    char q[300];
    if (len > SB_MSG_MAX) {
        atomic_fetch_add(&s->dropped[DROP_TOO_LARGE], 1);
        sb_warn("dropping a message over %d bytes from the stream bytes=%zu source=%s",
                SB_MSG_MAX, len, sb_log_quote(q, sizeof q, from));
        return;
    }
    char *line = sb_metric_json_line(payload, len);
    if (!line) {
        atomic_fetch_add(&s->dropped[DROP_INVALID_JSON], 1);
        sb_warn("ignoring a message that is not JSON source=%s", sb_log_quote(q, sizeof q, from));
        return;
    }
    hub_publish(s->hub, event, line);
    free(line);
}

static int on_mqtt(void *opaque, const char *topic, const void *payload, size_t len)
{
    source_t *s = opaque;
    if (sb_mqtt_topic_match(s->metric_filter, topic, NULL, 0) == 1)
        forward(s, "metric", topic, payload, len);
    else if (sb_mqtt_topic_match(s->alert_filter, topic, NULL, 0) == 1)
        forward(s, "alert", topic, payload, len);
    return 0; /* nothing here is durable: a lost event is replaced by the next snapshot */
}

static void *consume(void *arg)
{
    source_t *s = arg;
    while (!s->stop && !sb_service_stop) {
        sb_kafka_msg_t *msgs;
        int n = sb_kafka_consume_batch(s->consumer, &msgs, 200, 500);
        if (n < 0) {
            sb_error("kafka consumer failed: %s", sb_kafka_consumer_error(s->consumer));
            sb_service_sleep(1000);
            continue;
        }
        for (int i = 0; i < n; i++) {
            bool metric = strcmp(msgs[i].topic, s->cfg->topics.metrics) == 0;
            forward(s, metric ? "metric" : "alert", msgs[i].topic, msgs[i].payload, msgs[i].len);
        }
        sb_kafka_msgs_free(msgs, (size_t)n);
    }
    return NULL;
}

/* Starts a group of its own at the newest messages unless the configuration says otherwise:
 * the stream begins with the snapshot, so history would only repeat older values. */
static void latest_offsets(sb_config_t *cfg)
{
    for (size_t i = 0; i < cfg->kafka.n_properties; i++)
        if (strcmp(cfg->kafka.properties[i].key, "auto.offset.reset") == 0) return;
    sb_kv_t *p = realloc(cfg->kafka.properties, (cfg->kafka.n_properties + 1) * sizeof *p);
    if (!p) abort();
    cfg->kafka.properties = p;
    p[cfg->kafka.n_properties].key = strdup("auto.offset.reset");
    p[cfg->kafka.n_properties].value = strdup("latest");
    if (!p[cfg->kafka.n_properties].key || !p[cfg->kafka.n_properties].value) abort();
    cfg->kafka.n_properties++;
}

source_t *source_start(sb_service_t *svc, hub_t *hub, char *err, size_t errlen)
{
    sb_config_t *cfg = svc->cfg;
    source_t *s = calloc(1, sizeof *s);
    if (!s) abort();
    s->hub = hub;
    s->cfg = cfg;
    for (int i = 0; i < DROP__N; i++)
        s->counters[i] = (sb_http_counter_t){"stream_dropped", drop_reasons[i], &s->dropped[i]};
    if (cfg->mqtt.url && cfg->mqtt.url[0]) {
        if (sb_mqtt_template_filter(cfg->mqtt_topics.metrics, s->metric_filter,
                                sizeof s->metric_filter) ||
            sb_mqtt_template_filter(cfg->mqtt_topics.alerts, s->alert_filter, sizeof s->alert_filter)) {
            free(s);
            sb_fail(err, errlen, "mqtt topic templates too long");
            return NULL;
        }
        const char *subs[] = {s->metric_filter, s->alert_filter};
        s->mqtt = sb_mqtt_new(cfg, svc->client_id, subs, 2, on_mqtt, s, err, errlen);
        if (!s->mqtt) {
            free(s);
            return NULL;
        }
        sb_info("streaming mqtt %s and %s", s->metric_filter, s->alert_filter);
        return s;
    }
    if (!cfg->kafka.brokers || !cfg->kafka.brokers[0]) {
        free(s);
        sb_fail(err, errlen, "nothing to stream from: Kafka and MQTT are both off (set kafka.brokers "
                             "or mqtt.url)");
        return NULL;
    }
    latest_offsets(cfg);
    char group[400];
    snprintf(group, sizeof group, "surveybus-web-%s-%lld", svc->instance, (long long)sb_now_ms());
    const char *topics[] = {cfg->topics.metrics, cfg->topics.alerts};
    s->consumer = sb_kafka_consumer_new(cfg, group, topics, 2, 0, err, errlen);
    if (!s->consumer) {
        free(s);
        return NULL;
    }
    if (pthread_create(&s->thread, NULL, consume, s) != 0) {
        sb_kafka_consumer_close(s->consumer);
        free(s);
        sb_fail(err, errlen, "cannot start the consumer thread");
        return NULL;
    }
    s->running = true;
    sb_info("streaming kafka %s and %s group=%s", cfg->topics.metrics, cfg->topics.alerts, group);
    return s;
}

const sb_http_counter_t *source_counters(source_t *s, size_t *n)
{
    *n = DROP__N;
    return s->counters;
}

sb_mqtt_t *source_mqtt(source_t *s)
{
    return s->mqtt;
}

sb_kafka_consumer_t *source_consumer(source_t *s)
{
    return s->consumer;
}

void source_stop(source_t *s)
{
    if (!s) return;
    s->stop = true;
    if (s->running) pthread_join(s->thread, NULL);
    sb_kafka_consumer_close(s->consumer);
    sb_mqtt_free(s->mqtt);
    free(s);
}
