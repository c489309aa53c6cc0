/* MQTT client on libmosquitto with its own network thread (connect, back-off, resubscribe,
 * at-least-once inbound handling, acknowledgement tracking) and pure topic helpers.
 * libmosquitto is used nowhere else; see mqtt.h for the guarantees and their limits. */
#include "mqtt.h"

#include <errno.h>
#include <mosquitto.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "log.h"
#include "util.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define KEEPALIVE_S 60
#define MAX_PENDING SB_MQTT_MAX_PENDING
#define MAX_INFLIGHT 100
#define MID_BYTES (65536 / 8)

struct sb_mqtt {
    struct mosquitto *mosq;
    char *client_id, *host;
    int port, qos;
    char **subs;
    size_t n_subs;
    sb_mqtt_msg_cb cb;
    void *opaque;

    pthread_t thread;
    bool thread_started;
    pthread_mutex_t mu; /* guards everything below */
    pthread_cond_t cv;  /* state changes: connection, subscription, acknowledgements, stop */
    bool stopping;
    bool connected, subscribed, abandoned;
    bool reported; /* the broker's absence since the last connection (or start) was logged */
    int sub_mid;
    int64_t backoff_ms;
    size_t n_pending;
    uint8_t pending[MID_BYTES]; /* mids published and not acknowledged */
    uint8_t early[MID_BYTES];   /* mids acknowledged before sb_mqtt_publish recorded them */
    char errstr[192];
};

/* ---------------------------------------------------------------- library refcount */

static pthread_mutex_t lib_mu = PTHREAD_MUTEX_INITIALIZER;
static int lib_users;

static int lib_acquire(void)
{
    int rc = MOSQ_ERR_SUCCESS;
    pthread_mutex_lock(&lib_mu);
    if (lib_users == 0) rc = mosquitto_lib_init();
    if (rc == MOSQ_ERR_SUCCESS) lib_users++;
    pthread_mutex_unlock(&lib_mu);
    return rc == MOSQ_ERR_SUCCESS ? 0 : -1;
}

static void lib_release(void)
{
    pthread_mutex_lock(&lib_mu);
    if (lib_users > 0 && --lib_users == 0) mosquitto_lib_cleanup();
    pthread_mutex_unlock(&lib_mu);
}

/* ---------------------------------------------------------------- small helpers */

static bool bit_get(const uint8_t *set, int mid)
{
    return (set[(unsigned)mid >> 3] >> (mid & 7)) & 1;
}

static void bit_put(uint8_t *set, int mid, bool on)
{
    if (on)
        set[(unsigned)mid >> 3] |= (uint8_t)(1u << (mid & 7));
    else
        set[(unsigned)mid >> 3] &= (uint8_t) ~(1u << (mid & 7));
}

static void set_errstr(sb_mqtt_t *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Caller holds m->mu. */
static void set_errstr(sb_mqtt_t *m, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->errstr, sizeof m->errstr, fmt, ap);
    va_end(ap);
}

static struct timespec deadline_in(int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

/* ---------------------------------------------------------------- callbacks (network thread) */

static void on_connect(struct mosquitto *mosq, void *obj, int rc)
{
    sb_mqtt_t *m = obj;
    if (rc != 0) {
        pthread_mutex_lock(&m->mu);
        set_errstr(m, "mqtt_refused: %s", mosquitto_connack_string(rc));
        m->reported = true;
        pthread_mutex_unlock(&m->mu);
        sb_warn("mqtt connection refused host=%s port=%d client_id=%s err=\"%s\"", m->host, m->port,
                m->client_id, mosquitto_connack_string(rc));
        return;
    }
    sb_info("mqtt connected host=%s port=%d client_id=%s", m->host, m->port, m->client_id);
    /* Subscribing on every connection restores the subscriptions when the broker lost the
     * session; with a kept session it is a harmless refresh. Never above QoS 1: a QoS 2
     * message is acknowledged (PUBREC) on arrival, before libmosquitto calls the message
     * callback (on PUBREL), so a process dying in the callback would lose it for good. */
    int mid = 0, src = MOSQ_ERR_SUCCESS, sub_qos = m->qos > 1 ? 1 : m->qos;
    if (m->n_subs)
        src = mosquitto_subscribe_multiple(mosq, &mid, (int)m->n_subs, m->subs, sub_qos, 0, NULL);
    pthread_mutex_lock(&m->mu);
    m->connected = true;
    m->reported = false;
    m->backoff_ms = BACKOFF_MIN_MS;
    m->sub_mid = mid;
    m->subscribed = m->n_subs == 0;
    if (src != MOSQ_ERR_SUCCESS) set_errstr(m, "mqtt_subscribe: %s", mosquitto_strerror(src));
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
    if (src != MOSQ_ERR_SUCCESS)
        sb_error("mqtt subscribe failed err=\"%s\"", mosquitto_strerror(src));
}

static void on_disconnect(struct mosquitto *mosq, void *obj, int rc)
{
    (void)mosq;
    sb_mqtt_t *m = obj;
    pthread_mutex_lock(&m->mu);
    bool was = m->connected, stopping = m->stopping;
    m->connected = false;
    m->subscribed = false;
    if (rc != 0) set_errstr(m, "mqtt_down: connection lost");
    bool say = was && rc != 0 && !stopping;
    if (say) m->reported = true;
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
    if (say)
        sb_warn("mqtt connection lost host=%s port=%d client_id=%s", m->host, m->port,
                m->client_id);
}

static void on_subscribe(struct mosquitto *mosq, void *obj, int mid, int qos_count,
                         const int *granted)
{
    (void)mosq;
    sb_mqtt_t *m = obj;
    bool refused = false;
    for (int i = 0; i < qos_count; i++)
        if (granted[i] < 0 || granted[i] > 2) refused = true; /* 0x80: failure */
    pthread_mutex_lock(&m->mu);
    if (mid == m->sub_mid) {
        if (refused)
            set_errstr(m, "mqtt_subscribe: the broker refused a subscription");
        else
            m->subscribed = true;
        pthread_cond_broadcast(&m->cv);
    }
    pthread_mutex_unlock(&m->mu);
    if (refused) sb_error("mqtt subscription refused client_id=%s", m->client_id);
}

static void on_publish(struct mosquitto *mosq, void *obj, int mid)
{
    (void)mosq;
    sb_mqtt_t *m = obj;
    if (mid <= 0 || mid > 65535) return;
    pthread_mutex_lock(&m->mu);
    if (bit_get(m->pending, mid)) {
        bit_put(m->pending, mid, false);
        m->n_pending--;
        if (m->n_pending == 0) pthread_cond_broadcast(&m->cv);
    } else {
        bit_put(m->early, mid, true); /* sb_mqtt_publish has not recorded it yet */
    }
    pthread_mutex_unlock(&m->mu);
}

/* Makes sure no acknowledgement queued on this connection reaches the broker: the PUBACK
 * of the message being abandoned is already in libmosquitto's output queue. */
static void cut_connection(sb_mqtt_t *m)
{
    int fd = mosquitto_socket(m->mosq);
    if (fd >= 0) shutdown(fd, SHUT_RDWR);
}

static void on_message(struct mosquitto *mosq, void *obj, const struct mosquitto_message *msg)
{
    (void)mosq;
    sb_mqtt_t *m = obj;
    int64_t delay = BACKOFF_MIN_MS;
    size_t len = msg->payloadlen > 0 ? (size_t)msg->payloadlen : 0;
    const void *payload = msg->payload ? msg->payload : "";

    pthread_mutex_lock(&m->mu);
    for (;;) {
        if (m->stopping || m->abandoned) {
            if (!m->abandoned)
                sb_info("mqtt stopping: leaving unprocessed messages for redelivery client_id=%s",
                        m->client_id);
            m->abandoned = true;
            pthread_mutex_unlock(&m->mu);
            cut_connection(m);
            return;
        }
        pthread_mutex_unlock(&m->mu);
        int rc = m->cb ? m->cb(m->opaque, msg->topic, payload, len) : 0;
        pthread_mutex_lock(&m->mu);
        if (rc == 0) break;
        struct timespec until = deadline_in(delay);
        while (!m->stopping && pthread_cond_timedwait(&m->cv, &m->mu, &until) != ETIMEDOUT) {
        }
        delay = delay * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : delay * 2;
    }
    pthread_mutex_unlock(&m->mu);
}

/* ---------------------------------------------------------------- network thread */

static bool stopping(sb_mqtt_t *m)
{
    pthread_mutex_lock(&m->mu);
    bool s = m->stopping;
    pthread_mutex_unlock(&m->mu);
    return s;
}

/* Sleeps up to ms, waking early when the handle is being freed. */
static void nap(sb_mqtt_t *m, int64_t ms)
{
    struct timespec until = deadline_in(ms);
    pthread_mutex_lock(&m->mu);
    while (!m->stopping && pthread_cond_timedwait(&m->cv, &m->mu, &until) != ETIMEDOUT) {
    }
    pthread_mutex_unlock(&m->mu);
}

/* Returns the delay before the next connection attempt and doubles the back-off. */
static int64_t next_backoff(sb_mqtt_t *m)
{
    pthread_mutex_lock(&m->mu);
    int64_t d = m->backoff_ms;
    m->backoff_ms = d * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : d * 2;
    pthread_mutex_unlock(&m->mu);
    return d;
}

static void *net_main(void *arg)
{
    sb_mqtt_t *m = arg;
    bool first = true, need_connect = true;

    /* A write to a socket the broker closed must fail with EPIPE, not kill the process. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    while (!stopping(m)) {
        if (need_connect) {
            int rc = first ? mosquitto_connect_async(m->mosq, m->host, m->port, KEEPALIVE_S)
                           : mosquitto_reconnect_async(m->mosq);
            first = false;
            if (rc != MOSQ_ERR_SUCCESS) {
                const char *why = rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc);
                pthread_mutex_lock(&m->mu);
                set_errstr(m, "mqtt_down: %s:%d: %s", m->host, m->port, why);
                bool say = !m->reported;
                m->reported = true;
                pthread_mutex_unlock(&m->mu);
                if (say)
                    sb_warn("mqtt unavailable host=%s port=%d client_id=%s err=\"%s\"", m->host,
                            m->port, m->client_id, why);
                nap(m, next_backoff(m));
                continue;
            }
            need_connect = false;
        }
        int rc = mosquitto_loop(m->mosq, 100, 1);
        if (rc != MOSQ_ERR_SUCCESS) {
            const char *why = rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc);
            pthread_mutex_lock(&m->mu);
            bool was = m->connected;
            m->connected = m->subscribed = false;
            if (rc != MOSQ_ERR_CONN_REFUSED) /* on_connect already said why */
                set_errstr(m, "mqtt_down: %s", why);
            /* once per absence: a broker that never answered (nothing listening, a host that
             * does not reply) is logged here, one that went away by on_disconnect */
            bool say = !m->reported && !m->stopping;
            m->reported = true;
            pthread_cond_broadcast(&m->cv);
            pthread_mutex_unlock(&m->mu);
            if (say && was)
                sb_warn("mqtt connection lost host=%s port=%d client_id=%s", m->host, m->port,
                        m->client_id);
            else if (say)
                sb_warn("mqtt unavailable host=%s port=%d client_id=%s err=\"%s\"", m->host,
                        m->port, m->client_id, why);
            need_connect = true;
            nap(m, next_backoff(m));
        }
    }

    /* Orderly goodbye unless a message was abandoned (then the socket is already cut). */
    pthread_mutex_lock(&m->mu);
    bool bye = m->connected && !m->abandoned;
    pthread_mutex_unlock(&m->mu);
    if (bye && mosquitto_disconnect(m->mosq) == MOSQ_ERR_SUCCESS) {
        for (int i = 0; i < 10 && mosquitto_loop(m->mosq, 100, 1) == MOSQ_ERR_SUCCESS; i++) {
        }
    }
    return NULL;
}

/* ---------------------------------------------------------------- lifecycle */

/* Frees the copied settings and the handle itself. */
static void free_fields(sb_mqtt_t *m)
{
    for (size_t i = 0; i < m->n_subs; i++)
        free(m->subs[i]);
    free(m->subs);
    free(m->client_id);
    free(m->host);
    free(m);
}

sb_mqtt_t *sb_mqtt_new(const sb_config_t *cfg, const char *client_id, const char *const *subs,
                       size_t n_subs, sb_mqtt_msg_cb cb, void *opaque, char *err, size_t errlen)
{
    bool lib = false, mu = false, cv = false;
    pthread_condattr_t ca;
    int rc;
    sb_mqtt_t *m = NULL;

    if (err && errlen) err[0] = '\0';
    if (!cfg->mqtt.url || !cfg->mqtt.url[0]) {
        sb_fail(err, errlen, "mqtt_off: no mqtt.url configured");
        return NULL;
    }
    if (!client_id) client_id = cfg->mqtt.client_id;
    if (!client_id || !client_id[0]) {
        sb_fail(err, errlen, "mqtt: a persistent session needs a client id");
        return NULL;
    }
    if (n_subs && !cb) {
        sb_fail(err, errlen, "mqtt: subscriptions without a message callback");
        return NULL;
    }
    if (cfg->mqtt.qos < 0 || cfg->mqtt.qos > 2) {
        sb_fail(err, errlen, "mqtt: qos %d is not 0, 1 or 2", cfg->mqtt.qos);
        return NULL;
    }
    m = calloc(1, sizeof *m);
    if (!m) goto fail;
    m->client_id = strdup(client_id);
    m->host = strdup(cfg->mqtt.host && cfg->mqtt.host[0] ? cfg->mqtt.host : "127.0.0.1");
    m->subs = calloc(n_subs ? n_subs : 1, sizeof *m->subs);
    if (!m->client_id || !m->host || !m->subs) goto fail;
    for (size_t i = 0; i < n_subs; i++) {
        if (mosquitto_sub_topic_check(subs[i]) != MOSQ_ERR_SUCCESS) {
            sb_fail(err, errlen, "mqtt: invalid subscription filter \"%s\"", subs[i]);
            goto fail;
        }
        if (!(m->subs[i] = strdup(subs[i]))) goto fail;
        m->n_subs++;
    }
    m->port = cfg->mqtt.port > 0 ? cfg->mqtt.port : 1883;
    m->qos = cfg->mqtt.qos;
    m->cb = cb;
    m->opaque = opaque;
    m->backoff_ms = BACKOFF_MIN_MS;

    if (pthread_mutex_init(&m->mu, NULL) != 0) goto fail;
    mu = true;
    if (pthread_condattr_init(&ca) != 0) goto fail;
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    rc = pthread_cond_init(&m->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (rc != 0) goto fail;
    cv = true;

    if (lib_acquire() != 0) {
        sb_fail(err, errlen, "mqtt: mosquitto_lib_init failed");
        goto fail;
    }
    lib = true;
    m->mosq = mosquitto_new(m->client_id, false, m);
    if (!m->mosq) {
        sb_fail(err, errlen, "mqtt: mosquitto_new: %s", strerror(errno));
        goto fail;
    }
    /* Threaded mode without loop_start: only our network thread writes to the socket, so a
     * PUBACK queued before the message callback leaves after the callback returned. */
    if ((rc = mosquitto_threaded_set(m->mosq, true)) ||
        (rc = mosquitto_int_option(m->mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311)) ||
        (rc = mosquitto_max_inflight_messages_set(m->mosq, MAX_INFLIGHT))) {
        sb_fail(err, errlen, "mqtt: options: %s", mosquitto_strerror(rc));
        goto fail;
    }
    if (cfg->mqtt.user && cfg->mqtt.user[0] &&
        (rc = mosquitto_username_pw_set(m->mosq, cfg->mqtt.user,
                                        cfg->mqtt.pass && cfg->mqtt.pass[0] ? cfg->mqtt.pass
                                                                            : NULL))) {
        sb_fail(err, errlen, "mqtt: credentials: %s", mosquitto_strerror(rc));
        goto fail;
    }
    mosquitto_connect_callback_set(m->mosq, on_connect);
    mosquitto_disconnect_callback_set(m->mosq, on_disconnect);
    mosquitto_subscribe_callback_set(m->mosq, on_subscribe);
    mosquitto_publish_callback_set(m->mosq, on_publish);
    mosquitto_message_callback_set(m->mosq, on_message);

    if ((rc = pthread_create(&m->thread, NULL, net_main, m)) != 0) {
        sb_fail(err, errlen, "mqtt: thread: %s", strerror(rc));
        goto fail;
    }
    m->thread_started = true;
    return m;
fail:
    if (err && errlen && !err[0]) sb_fail(err, errlen, "out of memory");
    if (m) {
        if (m->mosq) mosquitto_destroy(m->mosq);
        if (lib) lib_release();
        if (cv) pthread_cond_destroy(&m->cv);
        if (mu) pthread_mutex_destroy(&m->mu);
        free_fields(m);
    }
    return NULL;
}

void sb_mqtt_free(sb_mqtt_t *m)
{
    if (!m) return;
    pthread_mutex_lock(&m->mu);
    m->stopping = true;
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
    if (m->thread_started) pthread_join(m->thread, NULL);
    mosquitto_destroy(m->mosq);
    lib_release();
    pthread_cond_destroy(&m->cv);
    pthread_mutex_destroy(&m->mu);
    free_fields(m);
}

/* ---------------------------------------------------------------- publishing */

int sb_mqtt_publish(sb_mqtt_t *m, const char *topic, const void *payload, size_t len, bool retain,
                    int *mid)
{
    int id = 0;
    if (len > (size_t)INT32_MAX) {
        pthread_mutex_lock(&m->mu);
        set_errstr(m, "too_large: %zu bytes", len);
        pthread_mutex_unlock(&m->mu);
        return -1;
    }
    pthread_mutex_lock(&m->mu);
    if (m->n_pending >= MAX_PENDING) {
        set_errstr(m, "mqtt_backlog: %zu messages await acknowledgement", m->n_pending);
        pthread_mutex_unlock(&m->mu);
        return -1;
    }
    pthread_mutex_unlock(&m->mu);

    int rc = mosquitto_publish(m->mosq, &id, topic, (int)len, payload, m->qos, retain);
    /* NO_CONN: a QoS 1/2 message is queued and sent after the next connect (mid assigned). */
    bool queued = rc == MOSQ_ERR_SUCCESS || (rc == MOSQ_ERR_NO_CONN && m->qos > 0 && id > 0);
    pthread_mutex_lock(&m->mu);
    if (!queued) {
        set_errstr(m, "mqtt_publish: %s: %s", topic ? topic : "(null)", mosquitto_strerror(rc));
        pthread_mutex_unlock(&m->mu);
        return -1;
    }
    if (bit_get(m->early, id)) {
        bit_put(m->early, id, false); /* already acknowledged */
    } else if (!bit_get(m->pending, id)) {
        bit_put(m->pending, id, true);
        m->n_pending++;
    }
    pthread_mutex_unlock(&m->mu);
    if (mid) *mid = id;
    return 0;
}

size_t sb_mqtt_pending(sb_mqtt_t *m)
{
    pthread_mutex_lock(&m->mu);
    size_t n = m->n_pending;
    pthread_mutex_unlock(&m->mu);
    return n;
}

bool sb_mqtt_is_pending(sb_mqtt_t *m, int mid)
{
    if (mid <= 0 || mid > 65535) return false;
    pthread_mutex_lock(&m->mu);
    bool p = bit_get(m->pending, mid);
    pthread_mutex_unlock(&m->mu);
    return p;
}

int sb_mqtt_wait_published(sb_mqtt_t *m, int timeout_ms)
{
    struct timespec until = deadline_in(timeout_ms < 0 ? 0 : timeout_ms);
    pthread_mutex_lock(&m->mu);
    while (m->n_pending > 0 && pthread_cond_timedwait(&m->cv, &m->mu, &until) != ETIMEDOUT) {
    }
    int rc = m->n_pending == 0 ? 0 : -1;
    if (rc) set_errstr(m, "mqtt_timeout: %zu messages not acknowledged", m->n_pending);
    pthread_mutex_unlock(&m->mu);
    return rc;
}

/* ---------------------------------------------------------------- state */

bool sb_mqtt_up(sb_mqtt_t *m)
{
    pthread_mutex_lock(&m->mu);
    bool up = m->connected && m->subscribed;
    pthread_mutex_unlock(&m->mu);
    return up;
}

int sb_mqtt_wait_up(sb_mqtt_t *m, int timeout_ms)
{
    struct timespec until = deadline_in(timeout_ms < 0 ? 0 : timeout_ms);
    pthread_mutex_lock(&m->mu);
    while (!(m->connected && m->subscribed) &&
           pthread_cond_timedwait(&m->cv, &m->mu, &until) != ETIMEDOUT) {
    }
    int rc = m->connected && m->subscribed ? 0 : -1;
    if (rc && !m->errstr[0]) set_errstr(m, "mqtt_down: not connected after %d ms", timeout_ms);
    pthread_mutex_unlock(&m->mu);
    return rc;
}

const char *sb_mqtt_errstr(sb_mqtt_t *m)
{
    static _Thread_local char buf[192];
    pthread_mutex_lock(&m->mu);
    memcpy(buf, m->errstr, sizeof buf);
    pthread_mutex_unlock(&m->mu);
    return buf;
}

/* ---------------------------------------------------------------- topic helpers */

int sb_mqtt_match_any(const char *const *filters, size_t n, const char *topic, char *buf,
                      const char **plus)
{
    *plus = NULL;
    for (size_t i = 0; i < n; i++)
        if (sb_mqtt_topic_match(filters[i], topic, buf, strlen(topic) + 1) == 1) {
            if (strchr(filters[i], '+')) *plus = buf;
            return (int)i;
        }
    return -1;
}

int sb_mqtt_topic_match(const char *filter, const char *topic, char *plus_out, size_t len)
{
    bool have_plus = false;
    if (plus_out && len) plus_out[0] = '\0';
    if (!filter || !topic || !filter[0]) return -1;
    if (plus_out && len == 0) return -1;
    /* Validate the filter first: '#' only as the whole last level, '+' only as a whole level. */
    for (const char *p = filter; *p; p++) {
        bool level_start = p == filter || p[-1] == '/';
        bool level_end = p[1] == '\0' || p[1] == '/';
        if (*p == '#' && !(level_start && p[1] == '\0')) return -1;
        if (*p == '+' && !(level_start && level_end)) return -1;
    }
    if (!topic[0]) return 0; /* not a valid topic name */
    if (topic[0] == '$' && (filter[0] == '+' || filter[0] == '#')) return 0;

    const char *f = filter, *t = topic;
    for (;;) {
        if (f[0] == '#') return 1; /* matches the rest, including nothing after the parent */
        const char *fe = strchr(f, '/'), *te = strchr(t, '/');
        size_t fl = fe ? (size_t)(fe - f) : strlen(f);
        size_t tl = te ? (size_t)(te - t) : strlen(t);
        if (fl == 1 && f[0] == '+') {
            if (!have_plus && plus_out) {
                if (tl >= len) return -1;
                memcpy(plus_out, t, tl);
                plus_out[tl] = '\0';
            }
            have_plus = true;
        } else if (fl != tl || memcmp(f, t, fl) != 0) {
            goto nomatch;
        }
        if (!fe && !te) return 1;
        if (!te) {
            /* topic ended: "a/#" still matches "a" */
            if (strcmp(fe + 1, "#") == 0) return 1;
            goto nomatch;
        }
        if (!fe) goto nomatch;
        f = fe + 1;
        t = te + 1;
    }
nomatch:
    if (plus_out) plus_out[0] = '\0';
    return 0;
}

int sb_mqtt_topic_render(const char *tmpl, const char *const *keys, const char *const *vals,
                         size_t n, char *out, size_t len)
{
    size_t o = 0;
    int rc = SB_MQTT_TOPIC_EBAD;
    if (!out || len == 0) return SB_MQTT_TOPIC_ELONG;
    out[0] = '\0';
    if (!tmpl) return SB_MQTT_TOPIC_EBAD;
    for (const char *p = tmpl; *p;) {
        const char *piece = p;
        size_t plen = 1;
        if (*p == '{') {
            const char *close = strchr(p + 1, '}');
            if (!close || close == p + 1) goto fail;
            size_t klen = (size_t)(close - p - 1);
            size_t i = 0;
            while (i < n && !(strlen(keys[i]) == klen && memcmp(keys[i], p + 1, klen) == 0))
                i++;
            if (i == n || !vals[i]) goto fail;
            plen = strlen(vals[i]);
            if (!sb_str_topic_safe(vals[i], plen)) {
                rc = SB_MQTT_TOPIC_EUNSAFE;
                goto fail;
            }
            piece = vals[i];
            p = close + 1;
        } else if (*p == '}') {
            goto fail;
        } else {
            p++;
        }
        if (o + plen >= len) {
            rc = SB_MQTT_TOPIC_ELONG;
            goto fail;
        }
        memcpy(out + o, piece, plen);
        o += plen;
    }
    out[o] = '\0';
    return 0;
fail:
    out[0] = '\0';
    return rc;
}

int sb_mqtt_template_filter(const char *tmpl, char *out, size_t len)
{
    size_t o = 0;
    for (const char *level = tmpl;;) {
        const char *end = strchrnul(level, '/');
        bool wild = memchr(level, '{', (size_t)(end - level)) != NULL;
        size_t n = wild ? 1 : (size_t)(end - level);
        if (o + n + 1 > len) return -1; /* the level and a NUL */
        memcpy(out + o, wild ? "+" : level, n);
        o += n;
        if (!*end) break;
        if (o + 2 > len) return -1; /* a '/' and a NUL */
        out[o++] = '/';
        level = end + 1;
    }
    out[o] = '\0';
    return 0;
}

bool sb_mqtt_filters_overlap(const char *a, const char *b)
{
    /* MQTT 3.1.1 §4.7.2: a topic that starts with '$' matches no filter whose first level
     * is a wildcard. When one first level is a wildcard and the other names a '$' level,
     * every topic the second matches starts with '$': none is matched by the first. Two
     * wildcards, or two names, are compared below as any other level. */
    bool aw = *a == '+' || *a == '#', bw = *b == '+' || *b == '#';
    if ((aw && *b == '$') || (bw && *a == '$')) return false;
    /* the one topic both "+" and "/#" match is "" (a single empty level, the parent of
     * "/#"), and a topic name is at least one character long (§4.7.3) */
    if ((!strcmp(a, "+") && !strcmp(b, "/#")) || (!strcmp(a, "/#") && !strcmp(b, "+")))
        return false;
    for (;;) {
        if (!strcmp(a, "#") || !strcmp(b, "#")) return true;
        const char *ae = strchrnul(a, '/'), *be = strchrnul(b, '/');
        size_t al = (size_t)(ae - a), bl = (size_t)(be - b);
        bool wild = (al == 1 && *a == '+') || (bl == 1 && *b == '+');
        if (!wild && (al != bl || memcmp(a, b, al) != 0)) return false;
        if (!*ae && !*be) return true;
        /* one has no level left: the other may only go on with a '#' ("a/#" matches "a") */
        if (!*ae || !*be) return !strcmp(*ae ? ae : be, "/#");
        a = ae + 1;
        b = be + 1;
    }
}
