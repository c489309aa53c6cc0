/* MQTT transport: the only code in surveybus that talks to libmosquitto. One client (MQTT
 * 3.1.1, persistent session, stable client id) with its own network thread that connects,
 * reconnects with capped exponential back-off (100 ms .. 5 s) and resubscribes by itself.
 * Also pure helpers to match topic filters and render topic templates.
 *
 * Delivery guarantees (libmosquitto 2.0.11):
 *  - Inbound, at least once. libmosquitto 2.0 queues the PUBACK of a QoS 1 message *before*
 *    calling the message callback, but in threaded mode only the network thread writes, and
 *    that thread is inside the callback. So the PUBACK reaches the broker only after the
 *    callback returned 0: a crash inside the callback leaves the message unacknowledged and
 *    the broker redelivers it to the next session with the same client id. When the handle is
 *    freed while a message is not processed, the connection is cut so that its PUBACK is never
 *    written. Duplicates are possible (crash after the effect, before the PUBACK): effects
 *    must be idempotent. Subscriptions are made at QoS 1 even when cfg->mqtt.qos is 2: a
 *    QoS 2 message is acknowledged (PUBREC) before its callback, and would be lost in a crash.
 *  - Back-pressure: while the callback blocks, the network thread reads nothing more (the
 *    broker queues for this session, up to its max_queued_messages — configure 0 or a large
 *    value, or the broker drops QoS 1 messages) and writes nothing (PINGREQs and publishes of
 *    this handle wait). The keepalive is 60 s: after 90 s without a packet the broker closes
 *    the connection; the handle reconnects and the broker redelivers what was not
 *    acknowledged. Use separate handles (client ids) for consuming and publishing when
 *    publishes must not wait behind a slow callback.
 *  - Outbound: a publish is pending until the broker acknowledges it (QoS 1) or it was written
 *    (QoS 0); see sb_mqtt_pending / sb_mqtt_wait_published. Pending messages survive a
 *    reconnect (libmosquitto resends them) but not the end of the process. */
#ifndef SB_MQTT_H
#define SB_MQTT_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

typedef struct sb_mqtt sb_mqtt_t;

/* Called on the network thread for every inbound message; topic and payload are borrowed
 * for the call (payload is also NUL-terminated after len bytes). Return 0 once the message's
 * effect is durable (or it was dead-lettered): only then is it acknowledged. Return -1 on a
 * transient failure (e.g. Redis down): the handle calls again with back-off (100 ms .. 5 s)
 * until it succeeds or the handle is freed, in which case the message stays unacknowledged.
 * The callback may call sb_mqtt_publish on the same handle (sent after it returns) but must
 * not wait for that handle's acknowledgements. */
typedef int (*sb_mqtt_msg_cb)(void *opaque, const char *topic, const void *payload, size_t len);

/* Creates a client for cfg->mqtt (host, port, user, pass, qos) with client id client_id (NULL:
 * cfg->mqtt.client_id), clean_session false, and starts its network thread, which connects
 * in the background, subscribes to subs[0..n_subs) at cfg->mqtt.qos (1 at most) on every
 * connection and calls cb(opaque, ...) for each message (cb may be NULL when n_subs is 0). subs and
 * client_id are copied. Returns NULL with err filled when MQTT is off (empty url), the
 * client id is empty, or libmosquitto refuses the settings; an unreachable broker is not an
 * error (see sb_mqtt_up / sb_mqtt_wait_up). */
sb_mqtt_t *sb_mqtt_new(const sb_config_t *cfg, const char *client_id, const char *const *subs,
                       size_t n_subs, sb_mqtt_msg_cb cb, void *opaque, char *err, size_t errlen);
/* Stops the network thread (after the running callback returns), disconnects and frees.
 * Messages still pending are not waited for: call sb_mqtt_wait_published first. Must not
 * run concurrently with other calls on m, nor from its callback. NULL is a no-op. */
void sb_mqtt_free(sb_mqtt_t *m);

/* Publishes payload[0..len) on topic at cfg->mqtt.qos. Thread-safe. Returns 0 when
 * libmosquitto accepted the message (also while disconnected: it is sent after the next
 * connect) and stores its message id in *mid (may be NULL); it is then pending until
 * acknowledged. Returns -1 (reason in sb_mqtt_errstr) on an invalid topic or payload, or when
 * 10000 messages are already pending ("mqtt_backlog"). */
int sb_mqtt_publish(sb_mqtt_t *m, const char *topic, const void *payload, size_t len, bool retain,
                    int *mid);
/* Number of published messages not yet acknowledged. */
size_t sb_mqtt_pending(sb_mqtt_t *m);
/* How many publishes may be pending at once; the next one fails with "mqtt_backlog". */
#define SB_MQTT_MAX_PENDING 10000
/* True while the message with that id is not acknowledged. */
bool sb_mqtt_is_pending(sb_mqtt_t *m, int mid);
/* Waits until nothing is pending. Returns 0, or -1 after timeout_ms. */
int sb_mqtt_wait_published(sb_mqtt_t *m, int timeout_ms);

/* True when connected and the broker has acknowledged the subscriptions. */
bool sb_mqtt_up(sb_mqtt_t *m);
/* Waits until sb_mqtt_up. Returns 0, or -1 after timeout_ms (reason in sb_mqtt_errstr). */
int sb_mqtt_wait_up(sb_mqtt_t *m, int timeout_ms);
/* The reason of the last failure seen on m (publish refusal, connection error), copied into
 * a buffer private to the calling thread; "" when none. */
const char *sb_mqtt_errstr(sb_mqtt_t *m);

/* ---------------------------------------------------------------- pure topic helpers */

/* Matches topic against an MQTT filter ('+' one level, '#' the rest, '$' topics never match
 * a leading wildcard). On a match, copies the first '+' level of topic into plus_out (""
 * when the filter has no '+'; plus_out may be NULL). Returns 1 on a match, 0 on none, -1
 * when the filter is malformed or the level does not fit in len bytes. */
int sb_mqtt_topic_match(const char *filter, const char *topic, char *plus_out, size_t len);

/* Matches topic against filters[0..n) in order. Returns the index of the first that matches,
 * or -1. *plus becomes that filter's first '+' level of topic (possibly "", which the
 * caller should refuse), copied into buf, or NULL when the filter has no '+'. buf must hold
 * strlen(topic) + 1 bytes, so that any level fits (an over-long one is the caller's to
 * refuse, not a failed match). */
int sb_mqtt_match_any(const char *const *filters, size_t n, const char *topic, char *buf,
                      const char **plus);

enum {
    SB_MQTT_TOPIC_EBAD = -1,    /* malformed template or unknown {key} */
    SB_MQTT_TOPIC_EUNSAFE = -2, /* a value fails sb_str_topic_safe */
    SB_MQTT_TOPIC_ELONG = -3    /* the result does not fit in len bytes */
};
/* Renders tmpl, replacing each "{key}" by vals[i] where keys[i] equals key. Every value
 * used must pass sb_str_topic_safe (non-empty, no '/', '+', '#', '|', control characters).
 * Returns 0 with the topic in out, or one of SB_MQTT_TOPIC_E* (out is then ""). */
int sb_mqtt_topic_render(const char *tmpl, const char *const *keys, const char *const *vals,
                         size_t n, char *out, size_t len);

/* The subscription filter of a topic template: every level holding a '{' becomes '+'
 * ("metrics/{metric}/{window}" -> "metrics/+/+"). Returns 0, or -1 when it does not fit in
 * len bytes (out is then unspecified). */
int sb_mqtt_template_filter(const char *tmpl, char *out, size_t len);

/* True when some topic matches both filters (each a valid filter), by the rules of MQTT
 * 3.1.1 §4.7: '+' is one level (also an empty one), '#' the rest of the levels including
 * none ("a/#" matches "a"), and a topic starting with '$' matches no filter that starts with
 * a wildcard. "a/+/c" and "a/b/#" overlap; "a/+" and "a/b/c" do not, nor "#" and "$SYS/#".
 * Pure. */
bool sb_mqtt_filters_overlap(const char *a, const char *b);

#endif
