/* Kafka transport for every service: the only module (besides surveybus-devkafka) that speaks
 * librdkafka. An idempotent producer with delivery reports, and a group consumer that commits
 * only offsets the caller has stored after its effect became durable. Payloads are opaque
 * bytes here; topics and keys come from the caller. */
#ifndef SB_KAFKA_H
#define SB_KAFKA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

typedef struct sb_kafka_producer sb_kafka_producer_t;
typedef struct sb_kafka_consumer sb_kafka_consumer_t;

/* ---- Producer ------------------------------------------------------------------------- */

/* Delivery report for one produced message: ok is 1 when the broker stored it (acks=all),
 * 0 when it failed for good (errstr says why; borrowed for the call only). msg_opaque is the
 * value passed to sb_kafka_produce. Called only from sb_kafka_producer_poll / _flush /
 * sb_kafka_produce / _free, on the caller's thread. */
typedef void (*sb_kafka_delivery_cb)(void *opaque, void *msg_opaque, int ok, const char *errstr);

/* Inside a delivery callback reporting a failure (ok 0): true when the message may have been
 * stored all the same (librdkafka's "possibly persisted": it was sent, and no answer came
 * before message.timeout.ms, or the connection broke). Sending it again may make a second
 * copy. False outside a callback. */
bool sb_kafka_delivery_unsure(void);

/* Creates an idempotent producer (enable.idempotence=true, acks=all, linger.ms=5) for
 * cfg->kafka.brokers, then applies every cfg->kafka.properties entry verbatim. cb (may be
 * NULL) receives every delivery report with opaque. Returns NULL with err filled (a bad
 * property is reported with its key). */
sb_kafka_producer_t *sb_kafka_producer_new(const sb_config_t *cfg, const char *client_id,
                                           sb_kafka_delivery_cb cb, void *opaque, char *err,
                                           size_t errlen);

/* Queues one message (key may be NULL; both key and value are copied). When the local queue
 * is full it serves delivery reports and retries for up to about 2 s. Returns 0, or -1 with
 * the reason in sb_kafka_producer_error() ("queue_full", "too_large", "fatal: ...",
 * "produce_failed: ..."); a message that returned -1 gets no delivery report. */
int sb_kafka_produce(sb_kafka_producer_t *p, const char *topic, const void *key, size_t keylen,
                     const void *val, size_t len, void *msg_opaque);

/* Serves delivery reports and errors, waiting up to timeout_ms for the first. Returns the
 * number of events served. */
int sb_kafka_producer_poll(sb_kafka_producer_t *p, int timeout_ms);

/* Waits up to timeout_ms until every queued message is delivered (or failed), serving
 * delivery reports. Returns 0, or -1 when messages are still outstanding. */
int sb_kafka_producer_flush(sb_kafka_producer_t *p, int timeout_ms);

/* Messages (and requests) not yet acknowledged: queued, in flight, or awaiting their report. */
size_t sb_kafka_producer_outq(const sb_kafka_producer_t *p);

/* The reason of the last failure of this handle ("" when none). Borrowed. */
const char *sb_kafka_producer_error(const sb_kafka_producer_t *p);

/* Flushes for up to flush_ms, then frees (below). Returns the flush's result. NULL: 0. */
int sb_kafka_producer_close(sb_kafka_producer_t *p, int flush_ms);

/* Purges what is still queued (each such message gets a failed delivery report), then
 * destroys. Call sb_kafka_producer_flush first to deliver instead. NULL is a no-op. */
void sb_kafka_producer_free(sb_kafka_producer_t *p);

/* Whether a consumer's destroy was given up (sb_kafka_consumer_close): librdkafka threads
 * still run, so the process should end with _exit, not run exit handlers (OpenSSL's, for
 * one) under them. */
bool sb_kafka_abandoned(void);

/* ---- Consumer ------------------------------------------------------------------------- */

/* One consumed message. Every pointer is borrowed from the message batch and valid until
 * sb_kafka_msgs_free. key is NULL when the message has none. timestamp_ms is -1 when the
 * broker gave none. priv belongs to this module. */
typedef struct sb_kafka_msg {
    const char *topic;
    int32_t partition;
    int64_t offset;
    const void *key;
    size_t keylen;
    const void *payload;
    size_t len;
    int64_t timestamp_ms;
    void *priv;
} sb_kafka_msg_t;

/* Joins consumer group `group` (also the client.id) subscribed to topics[0..n). Offsets are
 * committed automatically, but only those stored with sb_kafka_store_offsets; a partition
 * without a committed offset starts at the earliest message. Partitions are spread with the
 * cooperative-sticky assignor: a rebalance revokes only the partitions that move, after
 * committing their stored offsets. session.timeout.ms defaults to 6000 (heartbeat 2000).
 * librdkafka prefetches up to prefetch_kib KiB (queued.max.messages.kbytes; 0 means
 * SB_KAFKA_PREFETCH_KIB), fetching at most that much (1-4 MiB) at a time.
 * cfg->kafka.properties are applied verbatim after these defaults.
 * Returns NULL with err. */
#define SB_KAFKA_PREFETCH_KIB 8192
sb_kafka_consumer_t *sb_kafka_consumer_new(const sb_config_t *cfg, const char *group,
                                           const char *const *topics, size_t n, int prefetch_kib,
                                           char *err, size_t errlen);

/* Waits up to timeout_ms for a first message, then takes what is immediately available, up to
 * max. On success *out is a new array of the returned count (NULL when 0), to be released with
 * sb_kafka_msgs_free. Partition EOFs and transient consumer errors are skipped (and logged).
 * Also serves rebalances and error events. Returns the count, or -1 on a fatal consumer error
 * (reason in sb_kafka_consumer_error; the consumer must be closed). */
int sb_kafka_consume_batch(sb_kafka_consumer_t *c, sb_kafka_msg_t **out, size_t max,
                           int timeout_ms);

/* Releases a batch returned by sb_kafka_consume_batch. NULL / 0 is a no-op. */
void sb_kafka_msgs_free(sb_kafka_msg_t *msgs, size_t n);

/* Marks msgs[0..n) as done: for each partition, stores the highest offset + 1 for the next
 * commit. Call only once their effect is durable. Partitions no longer assigned to this
 * consumer (after a rebalance) are skipped: their new owner will see them again. Returns 0 or
 * -1 (reason in sb_kafka_consumer_error). */
int sb_kafka_store_offsets(sb_kafka_consumer_t *c, const sb_kafka_msg_t *msgs, size_t n);

/* Commits the stored offsets now and waits (up to 5 s) for the result. Nothing to commit is
 * success. Returns 0 or -1. */
int sb_kafka_commit(sb_kafka_consumer_t *c);

/* Stops / restarts fetching from every assigned partition (also those assigned later while
 * paused). Messages already fetched but not yet returned are dropped and fetched again after
 * resume, so nothing is lost. Returns 0 or -1. */
int sb_kafka_pause(sb_kafka_consumer_t *c);
int sb_kafka_resume(sb_kafka_consumer_t *c);

/* Messages behind the log end over the assigned partitions (cached high watermark minus the
 * consume position). 0 with no assignment; -1 when unknown (never assigned yet, a partition
 * not fetched yet, so with no cached watermarks, or one that holds messages but has no
 * consume position yet: 0 then would claim a catch-up that has not happened). Cheap: no
 * broker round trip; safe from any thread (everything else of a handle belongs to the thread
 * that polls it). */
int64_t sb_kafka_lag(sb_kafka_consumer_t *c);
/* The same over the assigned partitions for which skip(arg, topic, partition) is false (the
 * others count as read to their end). */
typedef bool (*sb_kafka_part_fn)(void *arg, const char *topic, int32_t partition);
int64_t sb_kafka_lag_except(sb_kafka_consumer_t *c, sb_kafka_part_fn skip, void *arg);
/* Like sb_kafka_lag_except, but a partition whose lag is not known from the cache (nothing
 * consumed there yet in this session) is asked of the brokers: its committed offset (or its
 * first one, when none is committed) against its end. Blocks up to about timeout_ms per
 * partition asked; -1 when the brokers do not answer. For tools that must tell "nothing
 * left" from "not started" (dlq replay), not for hot paths. */
int64_t sb_kafka_lag_asked(sb_kafka_consumer_t *c, sb_kafka_part_fn skip, void *arg,
                           int timeout_ms);

/* The reason of the last failure of this handle ("" when none). Borrowed. */
const char *sb_kafka_consumer_error(const sb_kafka_consumer_t *c);

/* Commits the stored offsets, leaves the group (stored offsets committed on revoke) and
 * destroys the handle. Gives up on the broker after 4 s; with the brokers unreachable it skips
 * the commit and librdkafka may still block up to session.timeout.ms. A consumer that never
 * received an assignment is closed but, with librdkafka < 2.3.0, not destroyed (that would
 * abort the process: librdkafka#4312); its memory goes with the process. NULL is a no-op. */
void sb_kafka_consumer_close(sb_kafka_consumer_t *c);

/* sb_kafka_consumer_close for a service's stop: its commit, the brokers' probe and the group
 * leave end by by_ms (sb_mono_ms(); 0: no limit but their own timeouts), and the destroy
 * that follows may take one second more. */
void sb_kafka_consumer_close_by(sb_kafka_consumer_t *c, int64_t by_ms);

/* ---- Scan ----------------------------------------------------------------------------- */

/* Called by sb_kafka_scan for each message; m is borrowed for the call. Returns 0 to go on,
 * anything else to stop the scan. */
typedef int (*sb_kafka_scan_cb)(void *opaque, const sb_kafka_msg_t *m);

/* Reads `topic` without a consumer group, from the first message with a timestamp >= since_ms
 * (since_ms <= 0: from the beginning) up to its end as of the call, and calls cb for every
 * message at or after since_ms (and those without a timestamp). Used for crash recovery (was a
 * message already published?). Works on brokers without timestamp lookup (the mock cluster)
 * by reading the partitions whose newest message is recent in full. Returns the number of
 * messages passed to cb, or -1 with err filled (e.g. "scan_timeout" after timeout_ms). */
int sb_kafka_scan(const sb_config_t *cfg, const char *topic, int64_t since_ms, sb_kafka_scan_cb cb,
                  void *opaque, int timeout_ms, char *err, size_t errlen);

/* Asks the brokers for topic's metadata (never creating it). Returns its partition count, or
 * -1 with the reason in err: brokers unreachable within timeout_ms, or the topic unknown. */
int sb_kafka_topic_check(const sb_config_t *cfg, const char *topic, int timeout_ms, char *err,
                         size_t errlen);

/* ---- Health --------------------------------------------------------------------------- */

/* False after librdkafka reported every broker down (or a fatal error), until a broker answers
 * again (a delivered / consumed message, or a metadata probe of at most 200 ms made at most once
 * a second while down). Safe to call from any thread. */
bool sb_kafka_producer_up(sb_kafka_producer_t *p);
bool sb_kafka_consumer_up(sb_kafka_consumer_t *c);
/* clang-format off */
#define sb_kafka_up(h) _Generic((h),                                                               \
    sb_kafka_producer_t *: sb_kafka_producer_up,                                                   \
    sb_kafka_consumer_t *: sb_kafka_consumer_up)(h)
/* clang-format on */

#endif
