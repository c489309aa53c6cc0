/* Kafka producer and group consumer over librdkafka; see kafka.h. Shaped like librdkafka's
 * examples/producer.c and examples/consumer.c, with at-least-once offsets: auto-commit is on
 * but only offsets stored by the caller (after its effect is durable) are ever committed. */
#include "kafka.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

#include "log.h"
#include "util.h"

#define PRODUCE_RETRY_MS 2000 /* how long sb_kafka_produce waits out a full queue */
#define COMMIT_TIMEOUT_MS 5000
#define CLOSE_TIMEOUT_MS 4000 /* then destroy may block up to session.timeout.ms */
#define PROBE_INTERVAL_MS 1000
#define PROBE_TIMEOUT_MS 200
#define CLOSE_PROBE_MS 1000 /* out of CLOSE_TIMEOUT_MS */
#define ASSIGNMENT_STRATEGY "cooperative-sticky"
#define SCAN_POLL_MS 100
#define REFILL_TIMEOUT_MS 5 /* refill(): the longest it waits for the answers (not needed) */

/* A librdkafka property and its value. */
typedef struct prop {
    const char *key, *value;
} prop_t;

/* Broker reachability shared by both handle kinds. */
typedef struct health {
    atomic_bool down;
    atomic_bool fatal;
    atomic_bool closing; /* the handle is being closed: its brokers going away is expected */
    atomic_llong next_probe_ms;
} health_t;

struct sb_kafka_producer {
    rd_kafka_t *rk;
    sb_kafka_delivery_cb cb;
    void *opaque;
    health_t health;
    char errstr[512];
};

struct sb_kafka_consumer {
    rd_kafka_t *rk;
    char *group;
    health_t health;
    bool paused;               /* sb_kafka_pause in effect: pause new assignments too */
    atomic_bool assigned_once; /* a first assignment has been received */
    int64_t close_deadline;    /* sb_mono_ms() by which close gives up; 0 while not closing */
    rd_kafka_queue_t *cq;      /* the consumer queue, to watch how full the prefetch is */
    int64_t prefetch_bytes;    /* queued.max.messages.kbytes in bytes */
    double avg_bytes;          /* moving average of a message's payload */
    bool was_full;             /* the queue neared its limit since the last refill() */
    char errstr[512];
};

/* ==== Shared helpers ====================================================================== */

static void set_errstr(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_errstr(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
}

/* librdkafka's own log lines, in our one-line format. kafka.properties is shared by producers
 * and consumers, so "consumer property ignored by this producer" (and vice versa) is expected
 * and only shown at debug level. */
static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    int l = level <= 3   ? SB_LOG_ERROR
            : level == 4 ? SB_LOG_WARN
            : level <= 6 ? SB_LOG_INFO
                         : SB_LOG_DEBUG;
    if (!strcmp(fac, "CONFWARN") && strstr(buf, "will be ignored by this")) l = SB_LOG_DEBUG;
    sb_log(l, "rdkafka client=%s fac=%s msg=\"%s\"", rd_kafka_name(rk), fac, buf);
}

/* Error events: tracks reachability and fatal errors; the rest is logged. */
static void on_error(rd_kafka_t *rk, int err, const char *reason, health_t *h)
{
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char buf[256];
        rd_kafka_resp_err_t orig = rd_kafka_fatal_error(rk, buf, sizeof buf);
        atomic_store(&h->fatal, true);
        sb_error("kafka fatal error client=%s err=%s reason=\"%s\"", rd_kafka_name(rk),
                 rd_kafka_err2name(orig), buf);
        return;
    }
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) {
        if (atomic_load(&h->closing)) {
            sb_debug("kafka connections closed client=%s", rd_kafka_name(rk));
            return;
        }
        if (!atomic_exchange(&h->down, true))
            sb_warn("kafka brokers down client=%s reason=\"%s\"", rd_kafka_name(rk), reason);
        return;
    }
    if (err == RD_KAFKA_RESP_ERR__TRANSPORT || err == RD_KAFKA_RESP_ERR__RESOLVE) {
        sb_debug("kafka transport error client=%s reason=\"%s\"", rd_kafka_name(rk), reason);
        return;
    }
    sb_warn("kafka error client=%s err=%s reason=\"%s\"", rd_kafka_name(rk),
            rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
}

static void mark_up(rd_kafka_t *rk, health_t *h)
{
    if (atomic_load(&h->down) && atomic_exchange(&h->down, false))
        sb_info("kafka brokers reachable client=%s", rd_kafka_name(rk));
}

/* Asks the brokers for metadata, waiting up to timeout_ms; marks them up if they answer. */
static bool probe(rd_kafka_t *rk, health_t *h, int timeout_ms)
{
    const struct rd_kafka_metadata *md = NULL;
    if (rd_kafka_metadata(rk, 0, NULL, &md, timeout_ms) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return false;
    rd_kafka_metadata_destroy(md);
    mark_up(rk, h);
    return true;
}

/* See sb_kafka_up: while marked down, asks for metadata at most once a second. The mark is
 * cleared only by a probe or a message, so it outlives an outage on an idle handle. */
static bool health_up(rd_kafka_t *rk, health_t *h)
{
    if (atomic_load(&h->fatal)) return false;
    if (!atomic_load(&h->down)) return true;
    long long now = (long long)sb_mono_ms(), next = atomic_load(&h->next_probe_ms);
    if (now < next ||
        !atomic_compare_exchange_strong(&h->next_probe_ms, &next, now + PROBE_INTERVAL_MS))
        return false;
    return probe(rk, h, PROBE_TIMEOUT_MS);
}

/* Builds the common part of a client configuration: brokers, client id, logging, then the
 * given defaults, then cfg->kafka.properties verbatim. Returns NULL with err filled. */
static rd_kafka_conf_t *conf_build(const sb_config_t *cfg, const char *client_id,
                                   const prop_t *defaults, char *err, size_t errlen)
{
    char buf[512];
    rd_kafka_conf_t *conf = NULL;

    if (!cfg->kafka.brokers || !cfg->kafka.brokers[0]) {
        sb_fail(err, errlen, "kafka.brokers is empty (Kafka is off)");
        return NULL;
    }
    conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", cfg->kafka.brokers, buf, sizeof buf) ||
        rd_kafka_conf_set(conf, "client.id", client_id, buf, sizeof buf)) {
        sb_fail(err, errlen, "kafka: %s", buf);
        goto fail;
    }
    for (const prop_t *d = defaults; d->key; d++)
        if (rd_kafka_conf_set(conf, d->key, d->value, buf, sizeof buf)) {
            sb_fail(err, errlen, "kafka: %s: %s", d->key, buf);
            goto fail;
        }
    for (size_t i = 0; i < cfg->kafka.n_properties; i++) {
        const sb_kv_t *kv = &cfg->kafka.properties[i];
        if (rd_kafka_conf_set(conf, kv->key, kv->value, buf, sizeof buf)) {
            sb_fail(err, errlen, "kafka.properties.%s: %s", kv->key, buf);
            goto fail;
        }
    }
    rd_kafka_conf_set_log_cb(conf, on_log);
    return conf;
fail:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

/* ==== Producer ============================================================================ */

/* the report being delivered on this thread (sb_kafka_delivery_unsure) */
static _Thread_local const rd_kafka_message_t *dr_msg;

bool sb_kafka_delivery_unsure(void)
{
    return dr_msg && dr_msg->err &&
           rd_kafka_message_status(dr_msg) == RD_KAFKA_MSG_STATUS_POSSIBLY_PERSISTED;
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    sb_kafka_producer_t *p = opaque;
    (void)rk;
    if (!m->err) mark_up(p->rk, &p->health);
    if (p->cb) {
        dr_msg = m;
        p->cb(p->opaque, m->_private, m->err ? 0 : 1, m->err ? rd_kafka_err2str(m->err) : NULL);
        dr_msg = NULL;
    }
}

static void on_producer_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    sb_kafka_producer_t *p = opaque;
    on_error(rk, err, reason, &p->health);
}

sb_kafka_producer_t *sb_kafka_producer_new(const sb_config_t *cfg, const char *client_id,
                                           sb_kafka_delivery_cb cb, void *opaque, char *err,
                                           size_t errlen)
{
    static const prop_t defaults[] = {
        {"enable.idempotence", "true"},
        {"acks", "all"},
        {"linger.ms", "5"},
        {NULL, NULL},
    };
    char buf[512];
    rd_kafka_conf_t *conf = NULL;
    sb_kafka_producer_t *p = calloc(1, sizeof *p);
    if (!p) {
        sb_fail(err, errlen, "out of memory");
        return NULL;
    }
    p->cb = cb;
    p->opaque = opaque;
    conf = conf_build(cfg, client_id ? client_id : "surveybus", defaults, err, errlen);
    if (!conf) goto fail;
    rd_kafka_conf_set_opaque(conf, p);
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_error_cb(conf, on_producer_error);
    p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, buf, sizeof buf);
    if (!p->rk) {
        sb_fail(err, errlen, "kafka producer: %s", buf);
        goto fail;
    }
    return p; /* conf is owned by rk now */
fail:
    if (conf) rd_kafka_conf_destroy(conf);
    free(p);
    return NULL;
}

int sb_kafka_produce(sb_kafka_producer_t *p, const char *topic, const void *key, size_t keylen,
                     const void *val, size_t len, void *msg_opaque)
{
    int64_t deadline = 0;
    for (;;) {
        rd_kafka_resp_err_t e = rd_kafka_producev(
            p->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, key ? keylen : 0),
            RD_KAFKA_V_VALUE((void *)val, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_OPAQUE(msg_opaque), RD_KAFKA_V_END);
        if (!e) return 0;
        if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            int64_t now = sb_mono_ms();
            if (!deadline) deadline = now + PRODUCE_RETRY_MS;
            if (now < deadline) {
                rd_kafka_poll(p->rk, 100); /* let delivery reports drain the queue */
                continue;
            }
            set_errstr(p->errstr, sizeof p->errstr, "queue_full: %zu messages queued",
                       (size_t)rd_kafka_outq_len(p->rk));
        } else if (e == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE) {
            set_errstr(p->errstr, sizeof p->errstr, "too_large: %zu bytes", len);
        } else if (e == RD_KAFKA_RESP_ERR__FATAL) {
            char buf[256];
            rd_kafka_fatal_error(p->rk, buf, sizeof buf);
            atomic_store(&p->health.fatal, true);
            set_errstr(p->errstr, sizeof p->errstr, "fatal: %s", buf);
        } else {
            set_errstr(p->errstr, sizeof p->errstr, "produce_failed: %s", rd_kafka_err2str(e));
        }
        sb_warn("kafka produce failed topic=%s reason=\"%s\"", topic, p->errstr);
        return -1;
    }
}

int sb_kafka_producer_poll(sb_kafka_producer_t *p, int timeout_ms)
{
    return rd_kafka_poll(p->rk, timeout_ms);
}

int sb_kafka_producer_flush(sb_kafka_producer_t *p, int timeout_ms)
{
    if (rd_kafka_flush(p->rk, timeout_ms) == RD_KAFKA_RESP_ERR_NO_ERROR) return 0;
    set_errstr(p->errstr, sizeof p->errstr, "flush_timeout: %d messages outstanding",
               rd_kafka_outq_len(p->rk));
    return -1;
}

size_t sb_kafka_producer_outq(const sb_kafka_producer_t *p)
{
    int n = rd_kafka_outq_len(p->rk);
    return n > 0 ? (size_t)n : 0;
}

const char *sb_kafka_producer_error(const sb_kafka_producer_t *p)
{
    return p->errstr;
}

bool sb_kafka_producer_up(sb_kafka_producer_t *p)
{
    return health_up(p->rk, &p->health);
}

int sb_kafka_producer_close(sb_kafka_producer_t *p, int flush_ms)
{
    if (!p) return 0;
    /* Events queued before the close are old news from a handle nobody polled while it was
     * idle (an outage it lived through, reported only now): served quietly first. */
    atomic_store(&p->health.closing, true);
    rd_kafka_poll(p->rk, 0);
    atomic_store(&p->health.closing, false);
    int rc = sb_kafka_producer_flush(p, flush_ms);
    sb_kafka_producer_free(p);
    return rc;
}

void sb_kafka_producer_free(sb_kafka_producer_t *p)
{
    if (!p) return;
    atomic_store(&p->health.closing, true);
    if (rd_kafka_outq_len(p->rk) > 0) {
        rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_flush(p->rk, 1000); /* serves the purged messages' reports */
    }
    rd_kafka_destroy(p->rk);
    free(p);
}

/* ==== Consumer ============================================================================ */

/* How long a commit may wait: COMMIT_TIMEOUT_MS, or what is left of the close deadline. */
static int commit_budget(const sb_kafka_consumer_t *c)
{
    if (!c->close_deadline) return COMMIT_TIMEOUT_MS;
    int64_t left = c->close_deadline - sb_mono_ms();
    return left <= 0 ? 0 : left < COMMIT_TIMEOUT_MS ? (int)left : COMMIT_TIMEOUT_MS;
}

/* Commits the stored offsets of the current assignment and waits up to timeout_ms. Nothing to
 * commit is success. Returns 0 or -1 with c->errstr filled. */
static int commit_wait(sb_kafka_consumer_t *c, int timeout_ms)
{
    rd_kafka_queue_t *q = rd_kafka_queue_new(c->rk);
    rd_kafka_event_t *ev = NULL;
    rd_kafka_resp_err_t e = rd_kafka_commit_queue(c->rk, NULL, q, NULL, NULL);
    if (!e) {
        int64_t deadline = sb_mono_ms() + timeout_ms;
        for (;;) {
            int64_t left = deadline - sb_mono_ms();
            if (left <= 0) {
                e = RD_KAFKA_RESP_ERR__TIMED_OUT;
                break;
            }
            ev = rd_kafka_queue_poll(q, (int)left);
            if (ev && rd_kafka_event_type(ev) == RD_KAFKA_EVENT_OFFSET_COMMIT) {
                e = rd_kafka_event_error(ev);
                break;
            }
            if (ev) rd_kafka_event_destroy(ev);
            ev = NULL;
        }
    }
    if (ev) rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    if (!e || e == RD_KAFKA_RESP_ERR__NO_OFFSET) return 0;
    set_errstr(c->errstr, sizeof c->errstr, "commit_failed: %s", rd_kafka_err2str(e));
    sb_warn("kafka commit failed group=%s err=\"%s\"", c->group, rd_kafka_err2str(e));
    return -1;
}

static void log_partitions(const char *what, const sb_kafka_consumer_t *c,
                           const rd_kafka_topic_partition_list_t *parts)
{
    char buf[1024];
    size_t off = 0;
    buf[0] = '\0';
    for (int i = 0; i < parts->cnt && off < sizeof buf; i++) {
        int w = snprintf(buf + off, sizeof buf - off, "%s%s[%d]", i ? "," : "",
                         parts->elems[i].topic, (int)parts->elems[i].partition);
        if (w < 0) break;
        off += (size_t)w;
    }
    sb_info("kafka %s group=%s partitions=%s", what, c->group, parts->cnt ? buf : "-");
}

/* Applies one rebalance: on revoke the stored offsets are committed before the partitions are
 * given up, so the next owner starts right after the work this consumer finished. */
static void rebalance(sb_kafka_consumer_t *c, rd_kafka_resp_err_t err,
                      rd_kafka_topic_partition_list_t *parts)
{
    rd_kafka_t *rk = c->rk;
    bool coop = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
    rd_kafka_error_t *error = NULL;
    rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;

    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        log_partitions("assigned", c, parts);
        if (coop)
            error = rd_kafka_incremental_assign(rk, parts);
        else
            e = rd_kafka_assign(rk, parts);
        atomic_store(&c->assigned_once, true);
        if (c->paused && parts->cnt) rd_kafka_pause_partitions(rk, parts);
    } else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
        log_partitions("revoked", c, parts);
        if (rd_kafka_assignment_lost(rk))
            sb_warn("kafka assignment lost group=%s: uncommitted work will be redelivered",
                    c->group);
        else if (!health_up(rk, &c->health))
            sb_warn("kafka brokers down on revoke group=%s: uncommitted work will be "
                    "redelivered",
                    c->group);
        else
            commit_wait(c, commit_budget(c));
        if (coop)
            error = rd_kafka_incremental_unassign(rk, parts);
        else
            e = rd_kafka_assign(rk, NULL);
    } else {
        sb_warn("kafka rebalance error group=%s err=\"%s\"", c->group, rd_kafka_err2str(err));
        e = rd_kafka_assign(rk, NULL);
    }
    if (error) {
        sb_error("kafka assign failed group=%s err=\"%s\"", c->group, rd_kafka_error_string(error));
        rd_kafka_error_destroy(error);
    } else if (e) {
        sb_error("kafka assign failed group=%s err=\"%s\"", c->group, rd_kafka_err2str(e));
    }
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    (void)rk;
    rebalance(opaque, err, parts);
}

static void on_consumer_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    sb_kafka_consumer_t *c = opaque;
    on_error(rk, err, reason, &c->health);
}

sb_kafka_consumer_t *sb_kafka_consumer_new(const sb_config_t *cfg, const char *group,
                                           const char *const *topics, size_t n, int prefetch_kib,
                                           char *err, size_t errlen)
{
    char prefetch[24], fetch[24];
    int ask = prefetch_kib > 0 ? prefetch_kib : SB_KAFKA_PREFETCH_KIB;
    int fetch_kib = ask < 1024 ? 1024 : ask > 4096 ? 4096 : ask; /* the queue, within 1-4 MiB */
    snprintf(prefetch, sizeof prefetch, "%d", ask);
    snprintf(fetch, sizeof fetch, "%d", fetch_kib * 1024);
    const prop_t defaults[] = {
        {"enable.auto.commit", "true"},
        {"enable.auto.offset.store", "false"},
        {"auto.offset.reset", "earliest"},
        {"partition.assignment.strategy", ASSIGNMENT_STRATEGY},
        /* A short session (the broker's minimum) bounds how long a close with unreachable
         * brokers blocks, lets a restarted member rejoin the mock cluster quickly, and hands a
         * killed member's partitions over sooner. */
        {"session.timeout.ms", "6000"},
        {"heartbeat.interval.ms", "2000"},
        /* prefetch less than librdkafka's default of 64 MiB: a service works one batch at a
         * time, and a backlog must not balloon its memory. But librdkafka 2.0 stops fetching
         * for a fixed second whenever this queue is full (librdkafka#2879), so a consumer
         * that drains it faster than that waits: size it for about a second of input. */
        {"queued.max.messages.kbytes", prefetch},
        /* and fetch at most 4 MiB at a time (default 50 MiB, 1 MiB per partition), and no
         * more than the queue holds (at least 1 MiB, librdkafka's message.max.bytes): a
         * fetch's messages enter the queue even when it is nearly full, and each small one
         * costs some 350 bytes of librdkafka's bookkeeping besides (docs/benchmarks.md). */
        {"fetch.max.bytes", fetch},
        {"max.partition.fetch.bytes", "262144"},
        {NULL, NULL},
    };
    char buf[512];
    rd_kafka_conf_t *conf = NULL;
    rd_kafka_topic_partition_list_t *subs = NULL;
    sb_kafka_consumer_t *c = calloc(1, sizeof *c);
    if (!c || !(c->group = strdup(group))) {
        sb_fail(err, errlen, "out of memory");
        goto fail;
    }
    if (n == 0) {
        sb_fail(err, errlen, "kafka consumer: no topics");
        goto fail;
    }
    conf = conf_build(cfg, group, defaults, err, errlen);
    if (!conf) goto fail;
    if (rd_kafka_conf_set(conf, "group.id", group, buf, sizeof buf)) {
        sb_fail(err, errlen, "kafka: group.id: %s", buf);
        goto fail;
    }
    /* the queue limit in effect: kafka.properties may have replaced the one asked for */
    size_t qlen = sizeof buf;
    long kib = 0;
    if (rd_kafka_conf_get(conf, "queued.max.messages.kbytes", buf, &qlen) == RD_KAFKA_CONF_OK)
        kib = strtol(buf, NULL, 10);
    c->prefetch_bytes = (int64_t)(kib > 0 ? kib : SB_KAFKA_PREFETCH_KIB) * 1024;
    rd_kafka_conf_set_opaque(conf, c);
    rd_kafka_conf_set_error_cb(conf, on_consumer_error);
    rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
    c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, buf, sizeof buf);
    if (!c->rk) {
        sb_fail(err, errlen, "kafka consumer: %s", buf);
        goto fail;
    }
    conf = NULL; /* owned by rk */
    rd_kafka_poll_set_consumer(c->rk);
    c->cq = rd_kafka_queue_get_consumer(c->rk); /* an extra reference to the queue */
    c->avg_bytes = 256;

    subs = rd_kafka_topic_partition_list_new((int)n);
    for (size_t i = 0; i < n; i++)
        rd_kafka_topic_partition_list_add(subs, topics[i], RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(c->rk, subs);
    rd_kafka_topic_partition_list_destroy(subs);
    if (e) {
        sb_fail(err, errlen, "kafka subscribe: %s", rd_kafka_err2str(e));
        goto fail;
    }
    return c;
fail:
    if (conf) rd_kafka_conf_destroy(conf);
    if (c) {
        if (c->cq) rd_kafka_queue_destroy(c->cq);
        if (c->rk) rd_kafka_destroy(c->rk);
        free(c->group);
        free(c);
    }
    return NULL;
}

/* Fills m from a consumed message (borrowed). */
static void msg_view(rd_kafka_message_t *rkm, sb_kafka_msg_t *m)
{
    rd_kafka_timestamp_type_t tst;
    int64_t ts = rd_kafka_message_timestamp(rkm, &tst);
    m->topic = rd_kafka_topic_name(rkm->rkt);
    m->partition = rkm->partition;
    m->offset = rkm->offset;
    m->key = rkm->key;
    m->keylen = rkm->key ? rkm->key_len : 0;
    m->payload = rkm->payload;
    m->len = rkm->payload ? rkm->len : 0;
    m->timestamp_ms = tst == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE ? -1 : ts;
    m->priv = rkm;
}

/* Takes one polled message: keeps it in out (returns 1), or skips it (0), or reports a fatal
 * error (-1). Destroys what it does not keep. */
static int take(sb_kafka_consumer_t *c, rd_kafka_message_t *m, sb_kafka_msg_t *out)
{
    if (!m->err) {
        msg_view(m, out);
        return 1;
    }
    int rc = 0;
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        /* end of a partition: nothing to report */
    } else if (m->err == RD_KAFKA_RESP_ERR__FATAL || atomic_load(&c->health.fatal)) {
        char buf[256];
        rd_kafka_fatal_error(c->rk, buf, sizeof buf);
        atomic_store(&c->health.fatal, true);
        set_errstr(c->errstr, sizeof c->errstr, "fatal: %s", buf);
        rc = -1;
    } else {
        sb_warn("kafka consume error group=%s topic=%s partition=%d err=\"%s\"", c->group,
                m->rkt ? rd_kafka_topic_name(m->rkt) : "-", (int)m->partition,
                rd_kafka_message_errstr(m));
    }
    rd_kafka_message_destroy(m);
    return rc;
}

/* librdkafka 2.0 stops fetching a partition whose consumer queue is over
 * queued.max.messages.kbytes, and its broker thread looks again only when something wakes it:
 * a reply, a request to send, or its one-second idle tick (librdkafka#2879; 2.1 added
 * fetch.queue.backoff.ms for this). A service that drains the queue faster than that waits for
 * the rest of the second with an empty queue. So once the queue has been full and is half
 * drained, ask every partition leader for its latest offset (one small ListOffsets request per
 * broker, answered in about a millisecond): the request wakes each broker thread, which then
 * sees room in the queue and fetches again. The answers are not needed, so the wait for them
 * is short: the requests are on their way either way. With a 1 MiB queue, plain consumption
 * of a backlog went from 50,000 to 750,000 messages/s (docs/benchmarks.md). How full the
 * queue is is estimated from its message count and the average message size (key and
 * payload: a little more than librdkafka counts, so a full queue is not missed). */
static void refill(sb_kafka_consumer_t *c, const sb_kafka_msg_t *msgs, size_t n)
{
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++) bytes += msgs[i].len + msgs[i].keylen;
    c->avg_bytes += ((double)bytes / (double)n - c->avg_bytes) / 8;
    size_t left = rd_kafka_queue_length(c->cq);
    /* what the queue held before this batch was taken, and what it holds now */
    double before = (double)(left + n) * c->avg_bytes, now = (double)left * c->avg_bytes;
    if (before >= 0.7 * (double)c->prefetch_bytes) c->was_full = true;
    if (!c->was_full || now >= 0.5 * (double)c->prefetch_bytes) return;
    c->was_full = false;
    rd_kafka_topic_partition_list_t *a = NULL;
    if (rd_kafka_assignment(c->rk, &a) != RD_KAFKA_RESP_ERR_NO_ERROR || !a) return;
    if (a->cnt > 0) {
        for (int i = 0; i < a->cnt; i++) a->elems[i].offset = RD_KAFKA_OFFSET_END; /* latest */
        rd_kafka_resp_err_t e = rd_kafka_offsets_for_times(c->rk, a, REFILL_TIMEOUT_MS);
        sb_debug("kafka refill group=%s partitions=%d err=\"%s\"", c->group, a->cnt,
                 rd_kafka_err2str(e));
    }
    rd_kafka_topic_partition_list_destroy(a);
}

int sb_kafka_consume_batch(sb_kafka_consumer_t *c, sb_kafka_msg_t **out, size_t max, int timeout_ms)
{
    sb_kafka_msg_t *msgs = NULL;
    size_t n = 0;
    *out = NULL;
    if (max == 0) return 0;
    int64_t deadline = sb_mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    while (n < max) {
        int wait = 0;
        if (n == 0) {
            int64_t left = deadline - sb_mono_ms();
            wait = left > 0 ? (int)left : 0;
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c->rk, wait);
        if (atomic_load(&c->health.fatal)) {
            if (m) rd_kafka_message_destroy(m);
            char buf[256];
            rd_kafka_fatal_error(c->rk, buf, sizeof buf);
            set_errstr(c->errstr, sizeof c->errstr, "fatal: %s", buf);
            goto fail;
        }
        if (!m) {
            if (n > 0 || wait == 0) break;
            continue; /* woken without a message (e.g. a served event): keep waiting */
        }
        if (!msgs) {
            msgs = malloc(max * sizeof *msgs);
            if (!msgs) {
                rd_kafka_message_destroy(m);
                set_errstr(c->errstr, sizeof c->errstr, "out of memory");
                goto fail;
            }
        }
        int r = take(c, m, &msgs[n]);
        if (r < 0) goto fail;
        if (r > 0) {
            n++;
            mark_up(c->rk, &c->health);
        }
    }
    if (n == 0) {
        free(msgs);
        return 0;
    }
    refill(c, msgs, n);
    *out = msgs;
    return (int)n;
fail:
    sb_error("kafka consumer failed group=%s reason=\"%s\"", c->group, c->errstr);
    sb_kafka_msgs_free(msgs, n);
    return -1;
}

void sb_kafka_msgs_free(sb_kafka_msg_t *msgs, size_t n)
{
    if (!msgs) return;
    for (size_t i = 0; i < n; i++)
        rd_kafka_message_destroy(msgs[i].priv);
    free(msgs);
}

int sb_kafka_store_offsets(sb_kafka_consumer_t *c, const sb_kafka_msg_t *msgs, size_t n)
{
    if (n == 0) return 0;
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(8);
    for (size_t i = 0; i < n; i++) {
        rd_kafka_topic_partition_t *tp =
            rd_kafka_topic_partition_list_find(parts, msgs[i].topic, msgs[i].partition);
        if (!tp) {
            tp = rd_kafka_topic_partition_list_add(parts, msgs[i].topic, msgs[i].partition);
            tp->offset = msgs[i].offset + 1;
        } else if (msgs[i].offset + 1 > tp->offset) {
            tp->offset = msgs[i].offset + 1;
        }
    }
    rd_kafka_resp_err_t e = rd_kafka_offsets_store(c->rk, parts);
    int rc = 0;
    if (e && e != RD_KAFKA_RESP_ERR__STATE && e != RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION) {
        set_errstr(c->errstr, sizeof c->errstr, "store_failed: %s", rd_kafka_err2str(e));
        rc = -1;
    }
    for (int i = 0; rc == 0 && i < parts->cnt; i++) {
        rd_kafka_resp_err_t pe = parts->elems[i].err;
        if (!pe) continue;
        if (pe == RD_KAFKA_RESP_ERR__STATE || pe == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION) {
            sb_debug("kafka offset not stored (partition not assigned) group=%s topic=%s "
                     "partition=%d",
                     c->group, parts->elems[i].topic, (int)parts->elems[i].partition);
            continue;
        }
        set_errstr(c->errstr, sizeof c->errstr, "store_failed: %s[%d]: %s", parts->elems[i].topic,
                   (int)parts->elems[i].partition, rd_kafka_err2str(pe));
        rc = -1;
    }
    rd_kafka_topic_partition_list_destroy(parts);
    return rc;
}

int sb_kafka_commit(sb_kafka_consumer_t *c)
{
    return commit_wait(c, commit_budget(c));
}

static int pause_resume(sb_kafka_consumer_t *c, bool pause)
{
    rd_kafka_topic_partition_list_t *parts = NULL;
    rd_kafka_resp_err_t e = rd_kafka_assignment(c->rk, &parts);
    if (!e) {
        c->paused = pause;
        e = pause ? rd_kafka_pause_partitions(c->rk, parts)
                  : rd_kafka_resume_partitions(c->rk, parts);
        for (int i = 0; !e && i < parts->cnt; i++)
            e = parts->elems[i].err;
    }
    if (parts) rd_kafka_topic_partition_list_destroy(parts);
    if (!e) return 0;
    set_errstr(c->errstr, sizeof c->errstr, "%s_failed: %s", pause ? "pause" : "resume",
               rd_kafka_err2str(e));
    return -1;
}

int sb_kafka_pause(sb_kafka_consumer_t *c)
{
    return pause_resume(c, true);
}

int sb_kafka_resume(sb_kafka_consumer_t *c)
{
    return pause_resume(c, false);
}

int64_t sb_kafka_lag(sb_kafka_consumer_t *c)
{
    return sb_kafka_lag_except(c, NULL, NULL);
}

int64_t sb_kafka_lag_asked(sb_kafka_consumer_t *c, sb_kafka_part_fn skip, void *arg,
                           int timeout_ms)
{
    rd_kafka_topic_partition_list_t *parts = NULL;
    if (!atomic_load(&c->assigned_once) || rd_kafka_assignment(c->rk, &parts)) return -1;
    int64_t lag = 0;
    rd_kafka_topic_partition_list_t *pos = rd_kafka_topic_partition_list_copy(parts);
    rd_kafka_topic_partition_list_t *com = rd_kafka_topic_partition_list_copy(parts);
    if (parts->cnt > 0 && (rd_kafka_position(c->rk, pos) != RD_KAFKA_RESP_ERR_NO_ERROR ||
                           rd_kafka_committed(c->rk, com, timeout_ms) != RD_KAFKA_RESP_ERR_NO_ERROR))
        lag = -1;
    for (int i = 0; lag >= 0 && i < parts->cnt; i++) {
        const rd_kafka_topic_partition_t *tp = &parts->elems[i];
        if (skip && skip(arg, tp->topic, tp->partition)) continue;
        int64_t lo = -1, hi = -1, at = pos->elems[i].offset;
        if (at < 0) at = com->elems[i].offset; /* nothing consumed here yet in this session */
        if (rd_kafka_query_watermark_offsets(c->rk, tp->topic, tp->partition, &lo, &hi,
                                             timeout_ms) != RD_KAFKA_RESP_ERR_NO_ERROR) {
            lag = -1;
            break;
        }
        if (at < 0 || at < lo) at = lo; /* nothing committed (or aged out): from the first */
        if (hi > at) lag += hi - at;
    }
    rd_kafka_topic_partition_list_destroy(pos);
    rd_kafka_topic_partition_list_destroy(com);
    rd_kafka_topic_partition_list_destroy(parts);
    return lag;
}

int64_t sb_kafka_lag_except(sb_kafka_consumer_t *c, sb_kafka_part_fn skip, void *arg)
{
    rd_kafka_topic_partition_list_t *parts = NULL;
    if (!atomic_load(&c->assigned_once) || rd_kafka_assignment(c->rk, &parts)) return -1;
    int64_t lag = 0;
    int known = 0;
    bool unread = false;
    if (parts->cnt > 0 && rd_kafka_position(c->rk, parts) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        for (int i = 0; i < parts->cnt; i++) {
            const rd_kafka_topic_partition_t *tp = &parts->elems[i];
            if (skip && skip(arg, tp->topic, tp->partition)) {
                known++; /* left out: counts as known, with no lag */
                continue;
            }
            int64_t lo = RD_KAFKA_OFFSET_INVALID, hi = RD_KAFKA_OFFSET_INVALID;
            if (rd_kafka_get_watermark_offsets(c->rk, tp->topic, tp->partition, &lo, &hi) ||
                hi < 0) {
                unread = true; /* not fetched yet: its lag is not known */
                continue;
            }
            if (tp->offset >= 0) {
                if (hi > tp->offset) lag += hi - tp->offset;
                known++;
            } else if (lo >= 0 && hi == lo) {
                known++; /* empty partition, nothing consumed yet */
            } else {
                unread = true; /* messages there, no position yet: the lag is not known */
            }
        }
    }
    int cnt = parts->cnt;
    rd_kafka_topic_partition_list_destroy(parts);
    if (cnt == 0) return 0;
    return known && !unread ? lag : -1;
}

const char *sb_kafka_consumer_error(const sb_kafka_consumer_t *c)
{
    return c->errstr;
}

bool sb_kafka_consumer_up(sb_kafka_consumer_t *c)
{
    return health_up(c->rk, &c->health);
}

/* A handle destroyed on a thread of its own, waited for up to DESTROY_WAIT_MS. */
#define DESTROY_WAIT_MS 1000
static atomic_bool abandoned; /* a destroy did not finish: its threads still run */

bool sb_kafka_abandoned(void)
{
    return atomic_load(&abandoned);
}
typedef struct destroyer {
    rd_kafka_t *rk;
    int flags;
    atomic_bool done;
} destroyer_t;

static void *destroy_main(void *arg)
{
    destroyer_t *d = arg;
    rd_kafka_destroy_flags(d->rk, d->flags);
    atomic_store(&d->done, true);
    return NULL;
}

/* rd_kafka_destroy_flags, given DESTROY_WAIT_MS. A consumer whose brokers went away can
 * block in it for good, joining its threads (confluentinc/librdkafka#4519): seen here when
 * its group session timed out during a SIGTERM in a Kafka outage, which took the stop past
 * 10 s. Returns whether it finished; if not, its thread and the handle are left to the
 * process exit, which follows a close. */
static bool destroy_bounded(rd_kafka_t *rk, int flags)
{
    destroyer_t *d = calloc(1, sizeof *d);
    if (!d) abort();
    d->rk = rk;
    d->flags = flags;
    pthread_t t;
    if (pthread_create(&t, NULL, destroy_main, d) != 0) {
        destroy_main(d);
        free(d);
        return true;
    }
    int64_t deadline = sb_mono_ms() + DESTROY_WAIT_MS;
    struct timespec tick = {0, 5 * 1000000L};
    while (!atomic_load(&d->done) && sb_mono_ms() < deadline) nanosleep(&tick, NULL);
    if (!atomic_load(&d->done)) {
        pthread_detach(t);
        atomic_store(&abandoned, true);
        return false;
    }
    pthread_join(t, NULL);
    free(d);
    return true;
}

void sb_kafka_consumer_close(sb_kafka_consumer_t *c)
{
    sb_kafka_consumer_close_by(c, 0);
}

void sb_kafka_consumer_close_by(sb_kafka_consumer_t *c, int64_t by_ms)
{
    if (!c) return;
    /* librdkafka before 2.3.0 aborts (assertion in rd_kafka_sticky_assignor_state_destroy,
     * confluentinc/librdkafka#4312) when a cooperative-sticky consumer is destroyed after its
     * first JoinGroup but before its first assignment, e.g. on a SIGTERM during the join. Such
     * a consumer owns no partitions and no stored offsets: it leaves the group below, but its
     * handle is not destroyed (it goes with the process). */
    bool keep = !atomic_load(&c->assigned_once) && rd_kafka_version() < 0x020300ff;
    int flags = 0;
    c->close_deadline = sb_mono_ms() + CLOSE_TIMEOUT_MS;
    if (by_ms && by_ms < c->close_deadline) c->close_deadline = by_ms;
    int64_t probe_ms = c->close_deadline - sb_mono_ms();
    if (probe_ms > CLOSE_PROBE_MS) probe_ms = CLOSE_PROBE_MS;
    if (probe_ms < 0) probe_ms = 0;
    /* Still marked down (an idle consumer keeps the mark after an outage until something
     * probes): ask now, giving the brokers up to a second to answer, so that a stop after an
     * outage still commits and leaves the group instead of leaving its partitions idle until
     * the session times out. */
    bool up = !atomic_load(&c->health.fatal) &&
              (!atomic_load(&c->health.down) || probe(c->rk, &c->health, (int)probe_ms));
    if (up) {
        commit_wait(c, commit_budget(c));
        /* Close in the background and serve its rebalance events here, with a deadline. */
        rd_kafka_queue_t *q = rd_kafka_queue_new(c->rk);
        rd_kafka_error_t *error = rd_kafka_consumer_close_queue(c->rk, q);
        if (error) {
            sb_warn("kafka close failed group=%s err=\"%s\"", c->group,
                    rd_kafka_error_string(error));
            rd_kafka_error_destroy(error);
        } else {
            while (!rd_kafka_consumer_closed(c->rk)) {
                int64_t left = c->close_deadline - sb_mono_ms();
                if (left <= 0) {
                    sb_warn("kafka close timed out group=%s", c->group);
                    break;
                }
                rd_kafka_event_t *ev = rd_kafka_queue_poll(q, left > 100 ? 100 : (int)left);
                if (!ev) continue;
                if (rd_kafka_event_type(ev) == RD_KAFKA_EVENT_REBALANCE)
                    rebalance(c, rd_kafka_event_error(ev), rd_kafka_event_topic_partition_list(ev));
                rd_kafka_event_destroy(ev);
            }
        }
        rd_kafka_queue_destroy(q);
        if (!rd_kafka_consumer_closed(c->rk)) flags = RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE;
    } else {
        sb_warn("kafka brokers unreachable on close group=%s: uncommitted work will be "
                "redelivered",
                c->group);
        flags = RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE;
    }
    if (keep) {
        sb_info("kafka consumer closed before its first assignment group=%s: handle left to "
                "process exit (librdkafka %s)",
                c->group, rd_kafka_version_str());
        return; /* c stays too: it is the handle's opaque */
    }
    if (c->cq) rd_kafka_queue_destroy(c->cq);
    atomic_store(&c->health.closing, true);
    if (!destroy_bounded(c->rk, flags)) {
        /* c is the opaque of a handle still being destroyed: it stays too */
        sb_warn("kafka consumer not destroyed within %d ms group=%s: left to process exit",
                DESTROY_WAIT_MS, c->group);
        return;
    }
    free(c->group);
    free(c);
}

/* ==== Scan ================================================================================ */

/* One partition of a scan: offsets [start, end) are read; done once end is reached. found is
 * the broker's offset for since_ms (-1: none given); recent is set by a probe run. */
typedef struct scan_part {
    int32_t partition;
    int64_t lo, start, end, found;
    bool done, recent;
} scan_part_t;

/* Reads every partition of sp[0..n) from start to end, calling cb (when not NULL) for messages
 * at or after since_ms; a probe run (cb NULL) only marks partitions that hold such a message as
 * recent. Returns the number of cb calls, or -1 with err filled. */
static int scan_run(rd_kafka_t *rk, const char *topic, scan_part_t *sp, size_t n, int64_t since_ms,
                    sb_kafka_scan_cb cb, void *opaque, int64_t deadline, char *err, size_t errlen)
{
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new((int)n);
    size_t remaining = 0;
    int count = 0;
    bool stop = false;
    for (size_t i = 0; i < n; i++) {
        sp[i].done = sp[i].start >= sp[i].end;
        if (sp[i].done) continue;
        rd_kafka_topic_partition_list_add(parts, topic, sp[i].partition)->offset = sp[i].start;
        remaining++;
    }
    rd_kafka_resp_err_t e = remaining ? rd_kafka_assign(rk, parts) : RD_KAFKA_RESP_ERR_NO_ERROR;
    rd_kafka_topic_partition_list_destroy(parts);
    if (e) return sb_fail(err, errlen, "scan_failed: assign: %s", rd_kafka_err2str(e));

    while (remaining && !stop) {
        int64_t left = deadline - sb_mono_ms();
        if (left <= 0) {
            rd_kafka_assign(rk, NULL);
            return sb_fail(err, errlen, "scan_timeout: %s: %zu partitions not read to the end",
                           topic, remaining);
        }
        rd_kafka_message_t *rkm =
            rd_kafka_consumer_poll(rk, left < SCAN_POLL_MS ? (int)left : SCAN_POLL_MS);
        if (!rkm) continue;
        scan_part_t *p = NULL;
        for (size_t i = 0; i < n && !p; i++)
            if (sp[i].partition == rkm->partition) p = &sp[i];
        if (rkm->err && rkm->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            sb_warn("kafka scan error topic=%s partition=%d err=\"%s\"", topic, (int)rkm->partition,
                    rd_kafka_message_errstr(rkm));
        } else if (p && !p->done) {
            if (!rkm->err && rkm->offset < p->end) {
                sb_kafka_msg_t m;
                msg_view(rkm, &m);
                if (m.timestamp_ms < 0 || m.timestamp_ms >= since_ms) {
                    if (!cb) {
                        p->recent = true;
                    } else {
                        count++;
                        stop = cb(opaque, &m) != 0;
                    }
                }
            }
            /* the end is reached at its last offset, or at EOF when that offset is a gap */
            if (rkm->offset >= p->end - 1 || rkm->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                p->done = true;
                remaining--;
            }
        }
        rd_kafka_message_destroy(rkm);
    }
    rd_kafka_assign(rk, NULL);
    return count;
}

/* A consumer handle outside any group's life (scans, checks): its metadata requests never
 * create topics (allow.auto.create.topics is false for consumers). NULL with err. */
static rd_kafka_t *loose_consumer(const sb_config_t *cfg, const char *name, const prop_t *defaults,
                                  char *err, size_t errlen)
{
    char buf[512];
    rd_kafka_conf_t *conf = conf_build(cfg, name, defaults, err, errlen);
    if (!conf) return NULL;
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, buf, sizeof buf);
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        sb_fail(err, errlen, "kafka %s: %s", name, buf);
    }
    return rk;
}

/* The metadata of one topic (*md, to be destroyed when set); an unknown topic is an error. */
static rd_kafka_resp_err_t topic_metadata(rd_kafka_t *rk, rd_kafka_topic_t *rkt, int timeout_ms,
                                          const struct rd_kafka_metadata **md)
{
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, rkt, md, timeout_ms);
    if (!e && (*md)->topic_cnt != 1) e = RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
    if (!e) e = (*md)->topics[0].err;
    return e;
}

int sb_kafka_topic_check(const sb_config_t *cfg, const char *topic, int timeout_ms, char *err,
                         size_t errlen)
{
    static const prop_t defaults[] = {{"group.id", "surveybus-check"}, {NULL, NULL}};
    rd_kafka_t *rk = loose_consumer(cfg, "surveybus-check", defaults, err, errlen);
    if (!rk) return -1;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = topic_metadata(rk, rkt, timeout_ms, &md);
    int rc = e ? -1 : md->topics[0].partition_cnt;
    if (e == RD_KAFKA_RESP_ERR__TIMED_OUT || e == RD_KAFKA_RESP_ERR__TRANSPORT)
        sb_fail(err, errlen, "no answer from the brokers (%s) within %d ms", cfg->kafka.brokers,
                timeout_ms);
    else if (e)
        sb_fail(err, errlen, "topic %s: %s", topic, rd_kafka_err2str(e));
    if (md) rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
    return rc;
}

int sb_kafka_scan(const sb_config_t *cfg, const char *topic, int64_t since_ms, sb_kafka_scan_cb cb,
                  void *opaque, int timeout_ms, char *err, size_t errlen)
{
    /* group.id is required by assign(); the group is never joined and nothing is committed */
    static const prop_t defaults[] = {
        {"group.id", "surveybus-scan"},
        {"enable.auto.commit", "false"},
        {"enable.partition.eof", "true"},
        {"auto.offset.reset", "earliest"},
        {NULL, NULL},
    };
    int64_t deadline = sb_mono_ms() + timeout_ms;
    rd_kafka_t *rk = NULL;
    rd_kafka_topic_t *rkt = NULL;
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_partition_list_t *times = NULL;
    scan_part_t *sp = NULL;
    size_t n = 0;
    int rc = -1;

    if (!(rk = loose_consumer(cfg, "surveybus-scan", defaults, err, errlen))) return -1;
    rd_kafka_poll_set_consumer(rk);

    /* Partitions and their current ends. */
    rkt = rd_kafka_topic_new(rk, topic, NULL);
    rd_kafka_resp_err_t e = topic_metadata(rk, rkt, (int)(deadline - sb_mono_ms()), &md);
    if (e) {
        sb_fail(err, errlen, "scan_failed: %s: metadata: %s", topic, rd_kafka_err2str(e));
        goto fail;
    }
    n = (size_t)md->topics[0].partition_cnt;
    sp = calloc(n ? n : 1, sizeof *sp);
    if (!sp) {
        sb_fail(err, errlen, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        sp[i].partition = md->topics[0].partitions[i].id;
        e = rd_kafka_query_watermark_offsets(rk, topic, sp[i].partition, &sp[i].lo, &sp[i].end,
                                             (int)(deadline - sb_mono_ms()));
        if (e) {
            sb_fail(err, errlen, "scan_failed: %s[%d]: watermarks: %s", topic, (int)sp[i].partition,
                    rd_kafka_err2str(e));
            goto fail;
        }
        sp[i].start = sp[i].lo;
    }

    /* Where since_ms starts in each partition. A broker without timestamp lookup answers
     * "none": probe the newest message, and read such a partition in full when it is recent. */
    if (since_ms > 0 && n > 0) {
        times = rd_kafka_topic_partition_list_new((int)n);
        for (size_t i = 0; i < n; i++)
            rd_kafka_topic_partition_list_add(times, topic, sp[i].partition)->offset = since_ms;
        e = rd_kafka_offsets_for_times(rk, times, (int)(deadline - sb_mono_ms()));
        for (size_t i = 0; i < n; i++) {
            const rd_kafka_topic_partition_t *t = &times->elems[i];
            sp[i].found = !e && !t->err && t->offset >= 0 ? t->offset : -1;
            sp[i].start = sp[i].found >= 0 || sp[i].end <= sp[i].lo ? sp[i].end : sp[i].end - 1;
        }
        if (scan_run(rk, topic, sp, n, since_ms, NULL, NULL, deadline, err, errlen) < 0) goto fail;
        for (size_t i = 0; i < n; i++) {
            if (sp[i].found >= 0)
                sp[i].start = sp[i].found > sp[i].lo ? sp[i].found : sp[i].lo;
            else
                sp[i].start = sp[i].recent ? sp[i].lo : sp[i].end;
        }
    }
    rc = scan_run(rk, topic, sp, n, since_ms, cb, opaque, deadline, err, errlen);
fail:
    if (times) rd_kafka_topic_partition_list_destroy(times);
    free(sp);
    if (md) rd_kafka_metadata_destroy(md);
    if (rkt) rd_kafka_topic_destroy(rkt);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return rc;
}
