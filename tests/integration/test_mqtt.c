/* Integration tests of common/mqtt.c against a real mosquitto started by the harness:
 * QoS 1 round trip, retained messages, persistent sessions, redelivery after a crash or a
 * failing callback, broker restart, and device-id extraction from the topic. */
#include <check.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "mqtt.h"
#include "util.h"

static sb_h_t h;
static char host[] = "127.0.0.1", cid[] = "surveybus-test";
static int qos = 1; /* mqtt.qos of the clients cfg() describes */

static void setup(void)
{
    if (sb_h_start(&h, SB_H_MQTT, 0, NULL) != 0) {
        fprintf(stderr, "cannot start mosquitto\n");
        exit(1);
    }
}

static void teardown(void)
{
    sb_h_stop(&h);
}

static void qos_default(void)
{
    qos = 1;
}

static sb_config_t cfg(void)
{
    sb_config_t c;
    memset(&c, 0, sizeof c);
    c.mqtt.url = h.mqtt_url;
    c.mqtt.host = host;
    c.mqtt.port = h.mqtt_port;
    c.mqtt.qos = qos;
    c.mqtt.client_id = cid;
    return c;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---------------------------------------------------------------- a recording callback */

enum { MAXMSG = 1000 };
enum { RX_OK, RX_FAIL_FIRST, RX_FAIL_ALWAYS, RX_EXIT };

typedef struct rx {
    pthread_mutex_t mu;
    int mode, fail_left;
    int calls, total, dups;
    int count[MAXMSG];
    char topic[256], payload[256], plus[64];
    const char *filter; /* for device-id extraction */
} rx_t;

static void rx_init(rx_t *r, int mode)
{
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
    r->mode = mode;
}

static int rx_cb(void *opaque, const char *topic, const void *payload, size_t len)
{
    rx_t *r = opaque;
    if (r->mode == RX_EXIT) _exit(7); /* a crash before the effect is durable */
    pthread_mutex_lock(&r->mu);
    r->calls++;
    if (r->mode == RX_FAIL_ALWAYS || (r->mode == RX_FAIL_FIRST && r->fail_left > 0)) {
        r->fail_left--;
        pthread_mutex_unlock(&r->mu);
        return -1;
    }
    snprintf(r->topic, sizeof r->topic, "%s", topic);
    snprintf(r->payload, sizeof r->payload, "%.*s", (int)len, (const char *)payload);
    if (r->filter) sb_mqtt_topic_match(r->filter, topic, r->plus, sizeof r->plus);
    int i = atoi(r->payload);
    if (i >= 0 && i < MAXMSG) {
        if (r->count[i]++ == 0)
            r->total++;
        else
            r->dups++;
    }
    pthread_mutex_unlock(&r->mu);
    return 0;
}

/* Waits until r has seen `want` distinct messages; returns how many it saw. */
static int rx_wait(rx_t *r, int want, int timeout_ms)
{
    int64_t end = sb_mono_ms() + timeout_ms;
    for (;;) {
        pthread_mutex_lock(&r->mu);
        int t = r->total;
        pthread_mutex_unlock(&r->mu);
        if (t >= want || sb_mono_ms() > end) return t;
        sleep_ms(5);
    }
}

static int rx_calls(rx_t *r)
{
    pthread_mutex_lock(&r->mu);
    int c = r->calls;
    pthread_mutex_unlock(&r->mu);
    return c;
}

static sb_mqtt_t *client(const char *id, const char *sub, rx_t *r)
{
    char err[256] = "";
    sb_config_t c = cfg();
    const char *subs[] = {sub};
    sb_mqtt_t *m = sb_mqtt_new(&c, id, subs, sub ? 1 : 0, sub ? rx_cb : NULL, r, err, sizeof err);
    ck_assert_msg(m != NULL, "sb_mqtt_new: %s", err);
    ck_assert_msg(sb_mqtt_wait_up(m, 5000) == 0, "not up: %s", sb_mqtt_errstr(m));
    return m;
}

static void publish_n(sb_mqtt_t *p, const char *topic, int from, int n)
{
    char buf[32];
    for (int i = from; i < from + n; i++) {
        int len = snprintf(buf, sizeof buf, "%d", i);
        ck_assert_msg(sb_mqtt_publish(p, topic, buf, (size_t)len, false, NULL) == 0, "publish: %s",
                      sb_mqtt_errstr(p));
    }
}

/* ---------------------------------------------------------------- tests */

START_TEST(new_refuses_bad_settings)
{
    char err[256];
    sb_config_t c = cfg();
    const char *bad[] = {"a/#/b"};
    ck_assert_ptr_null(sb_mqtt_new(&c, "x", bad, 1, rx_cb, NULL, err, sizeof err));
    ck_assert_msg(strstr(err, "invalid subscription filter") != NULL, "err: %s", err);
    ck_assert_ptr_null(sb_mqtt_new(&c, "", NULL, 0, NULL, NULL, err, sizeof err));
    ck_assert_msg(strstr(err, "client id") != NULL, "err: %s", err);
    c.mqtt.url = NULL;
    ck_assert_ptr_null(sb_mqtt_new(&c, "x", NULL, 0, NULL, NULL, err, sizeof err));
    ck_assert_msg(strncmp(err, "mqtt_off", 8) == 0, "err: %s", err);
    sb_mqtt_free(NULL);
}
END_TEST

START_TEST(round_trip_1000_qos1)
{
    static rx_t r;
    rx_init(&r, RX_OK);
    sb_mqtt_t *sub = client("t-rt-sub", "rt/#", &r);
    sb_mqtt_t *pub = client("t-rt-pub", NULL, NULL);
    int mid = 0;
    ck_assert_int_eq(sb_mqtt_publish(pub, "rt/a", "0", 1, false, &mid), 0);
    ck_assert_int_gt(mid, 0);
    publish_n(pub, "rt/a", 1, MAXMSG - 1);
    ck_assert_msg(sb_mqtt_wait_published(pub, 10000) == 0, "%s", sb_mqtt_errstr(pub));
    ck_assert_uint_eq(sb_mqtt_pending(pub), 0);
    ck_assert(!sb_mqtt_is_pending(pub, mid));
    ck_assert_int_eq(rx_wait(&r, MAXMSG, 10000), MAXMSG);
    for (int i = 0; i < MAXMSG; i++)
        ck_assert_int_ge(r.count[i], 1);
    /* without failures the broker delivers each QoS 1 message once */
    fprintf(stderr, "round trip: %d distinct, %d duplicates, %d callbacks\n", r.total, r.dups,
            r.calls);
    ck_assert_int_eq(r.dups, 0);
    sb_mqtt_free(pub);
    sb_mqtt_free(sub);
}
END_TEST

START_TEST(retained_for_late_subscriber)
{
    sb_mqtt_t *pub = client("t-ret-pub", NULL, NULL);
    const char *js = "{\"metric\":\"nps\",\"window\":\"24h\",\"count\":120,\"score\":25.0}";
    ck_assert_int_eq(sb_mqtt_publish(pub, "metrics/nps/24h/all/all", js, strlen(js), true, NULL),
                     0);
    ck_assert_int_eq(sb_mqtt_wait_published(pub, 5000), 0);
    sb_mqtt_free(pub);

    static rx_t r;
    rx_init(&r, RX_OK);
    sb_mqtt_t *sub = client("t-ret-sub", "metrics/+/24h/#", &r);
    int64_t end = sb_mono_ms() + 5000;
    while (rx_calls(&r) < 1 && sb_mono_ms() < end)
        sleep_ms(5);
    pthread_mutex_lock(&r.mu);
    ck_assert_str_eq(r.topic, "metrics/nps/24h/all/all");
    ck_assert_str_eq(r.payload, js);
    pthread_mutex_unlock(&r.mu);
    sb_mqtt_free(sub);
}
END_TEST

START_TEST(persistent_session_keeps_messages)
{
    static rx_t r;
    rx_init(&r, RX_OK);
    sb_mqtt_t *sub = client("t-persist", "persist/t", &r);
    sb_mqtt_free(sub); /* goes away; the broker keeps the session */

    sb_mqtt_t *pub = client("t-persist-pub", NULL, NULL);
    publish_n(pub, "persist/t", 0, 200);
    ck_assert_int_eq(sb_mqtt_wait_published(pub, 5000), 0);
    sb_mqtt_free(pub);
    ck_assert_int_eq(r.calls, 0);

    sub = client("t-persist", "persist/t", &r);
    ck_assert_int_eq(rx_wait(&r, 200, 5000), 200);
    ck_assert_int_eq(r.dups, 0);
    sb_mqtt_free(sub);
}
END_TEST

/* A process that dies inside the callback of a message (subscribed as sub, on topic t):
 * the message must come again to the next session under that client id. */
static void crash_then_redelivered(const char *sub_id, const char *pub_id, const char *t)
{
    static rx_t r;
    rx_init(&r, RX_OK);
    sb_mqtt_t *sub = client(sub_id, t, &r);
    sb_mqtt_free(sub);
    sb_mqtt_t *pub = client(pub_id, NULL, NULL);
    ck_assert_int_eq(sb_mqtt_publish(pub, t, "42", 2, false, NULL), 0);
    ck_assert_int_eq(sb_mqtt_wait_published(pub, 5000), 0);
    sb_mqtt_free(pub); /* no threads left in this process: fork is safe */

    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        static rx_t dying;
        rx_init(&dying, RX_EXIT);
        char err[256];
        sb_config_t c = cfg();
        const char *subs[] = {t};
        sb_mqtt_new(&c, sub_id, subs, 1, rx_cb, &dying, err, sizeof err);
        sleep(10);
        _exit(3); /* the message never came */
    }
    int st = 0;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 7, "child status %d", st);

    /* the child died inside the callback: its acknowledgement never left, the broker resends */
    sub = client(sub_id, t, &r);
    ck_assert_int_eq(rx_wait(&r, 1, 5000), 1);
    ck_assert_int_eq(r.count[42], 1);
    sb_mqtt_free(sub);
}

START_TEST(crash_in_callback_is_redelivered)
{
    crash_then_redelivered("t-crash", "t-crash-pub", "crash/t");
}
END_TEST

/* mqtt.qos 2 is allowed, but a QoS 2 message is acknowledged (PUBREC) as soon as it
 * arrives, before the callback, which libmosquitto calls only once the broker's PUBREL
 * comes. A process that died in the callback lost the message: the broker had handed it
 * over and resent only the PUBREL, for which the next process had no message. Inbound
 * subscriptions are made at QoS 1 at most, so the message comes again. */
START_TEST(crash_in_callback_at_qos2_is_redelivered)
{
    qos = 2;
    crash_then_redelivered("t-crash2", "t-crash2-pub", "crash2/t");
}
END_TEST

START_TEST(failing_callback_is_retried_then_redelivered)
{
    /* transient failures: the same message is offered again until it is processed */
    static rx_t r;
    rx_init(&r, RX_FAIL_FIRST);
    r.fail_left = 3;
    sb_mqtt_t *sub = client("t-retry", "retry/t", &r);
    sb_mqtt_t *pub = client("t-retry-pub", NULL, NULL);
    ck_assert_int_eq(sb_mqtt_publish(pub, "retry/t", "5", 1, false, NULL), 0);
    ck_assert_int_eq(rx_wait(&r, 1, 5000), 1);
    ck_assert_int_eq(r.calls, 4); /* 3 failures (100 + 200 + 400 ms back-off) and a success */
    ck_assert_int_eq(r.count[5], 1);
    sb_mqtt_free(sub);

    /* never processed before the handle is freed: not acknowledged, so redelivered */
    static rx_t failing;
    rx_init(&failing, RX_FAIL_ALWAYS);
    sub = client("t-retry", "retry/t", &failing);
    ck_assert_int_eq(sb_mqtt_publish(pub, "retry/t", "6", 1, false, NULL), 0);
    int64_t end = sb_mono_ms() + 5000;
    while (rx_calls(&failing) < 2 && sb_mono_ms() < end)
        sleep_ms(5);
    ck_assert_int_ge(rx_calls(&failing), 2);
    int64_t t0 = sb_mono_ms();
    sb_mqtt_free(sub);
    ck_assert_msg(sb_mono_ms() - t0 < 1000, "free took %lld ms", (long long)(sb_mono_ms() - t0));

    static rx_t ok;
    rx_init(&ok, RX_OK);
    sub = client("t-retry", "retry/t", &ok);
    ck_assert_int_eq(rx_wait(&ok, 1, 5000), 1);
    ck_assert_int_eq(ok.count[6], 1);
    ck_assert_int_eq(ok.count[5], 0); /* acknowledged earlier, not redelivered */
    sb_mqtt_free(sub);
    sb_mqtt_free(pub);
}
END_TEST

START_TEST(device_id_from_topic)
{
    static rx_t r;
    rx_init(&r, RX_OK);
    r.filter = "fieldservice/+/visit/completed";
    sb_mqtt_t *sub = client("t-dev", r.filter, &r);
    sb_mqtt_t *pub = client("t-dev-pub", NULL, NULL);
    char topic[128];
    const char *k[] = {"device_id"}, *v[] = {"van-42"};
    ck_assert_int_eq(sb_mqtt_topic_render("fieldservice/{device_id}/visit/completed", k, v, 1,
                                          topic, sizeof topic),
                     0);
    /* wildcards are not topic names */
    ck_assert_int_eq(sb_mqtt_publish(pub, "fieldservice/+/visit/completed", "0", 1, false, NULL),
                     -1);
    ck_assert_msg(strncmp(sb_mqtt_errstr(pub), "mqtt_publish: ", 14) == 0, "%s",
                  sb_mqtt_errstr(pub));
    ck_assert_uint_eq(sb_mqtt_pending(pub), 0);
    /* a sibling topic that must not match the subscription */
    ck_assert_int_eq(sb_mqtt_publish(pub, "fieldservice/van-41/visit/started", "1", 1, false, NULL),
                     0);
    ck_assert_int_eq(sb_mqtt_publish(pub, topic, "2", 1, false, NULL), 0);
    ck_assert_int_eq(rx_wait(&r, 1, 5000), 1);
    sleep_ms(100);
    pthread_mutex_lock(&r.mu);
    ck_assert_int_eq(r.calls, 1);
    ck_assert_str_eq(r.topic, "fieldservice/van-42/visit/completed");
    ck_assert_str_eq(r.plus, "van-42");
    pthread_mutex_unlock(&r.mu);
    sb_mqtt_free(pub);
    sb_mqtt_free(sub);
}
END_TEST

START_TEST(broker_restart)
{
    static rx_t r;
    rx_init(&r, RX_OK);
    sb_mqtt_t *sub = client("t-restart", "restart/t", &r);
    sb_mqtt_t *pub = client("t-restart-pub", NULL, NULL);
    publish_n(pub, "restart/t", 0, 10);
    ck_assert_int_eq(rx_wait(&r, 10, 5000), 10);

    ck_assert_int_eq(sb_h_mqtt_stop(&h), 0);
    /* The harness runs mosquitto with persistence, so the sessions survive the restart. */
    char db[300];
    snprintf(db, sizeof db, "%s/mosquitto/mosquitto.db", h.dir);
    ck_assert_msg(access(db, F_OK) == 0, "mosquitto did not save its state (%s)", db);
    int64_t end = sb_mono_ms() + 3000;
    while ((sb_mqtt_up(sub) || sb_mqtt_up(pub)) && sb_mono_ms() < end)
        sleep_ms(10);
    ck_assert(!sb_mqtt_up(sub));
    ck_assert(!sb_mqtt_up(pub));
    ck_assert_int_eq(sb_mqtt_wait_up(sub, 200), -1);
    ck_assert_msg(strncmp(sb_mqtt_errstr(sub), "mqtt_", 5) == 0, "errstr %s", sb_mqtt_errstr(sub));

    /* accepted while the broker is away: pending, sent after the reconnect */
    publish_n(pub, "restart/t", 10, 5);
    ck_assert_uint_eq(sb_mqtt_pending(pub), 5);
    ck_assert_int_eq(sb_mqtt_wait_published(pub, 300), -1);

    /* a client created while the broker is down connects once it is back */
    static rx_t late;
    rx_init(&late, RX_OK);
    char err[256];
    sb_config_t c = cfg();
    const char *subs[] = {"restart/t"};
    sb_mqtt_t *lsub = sb_mqtt_new(&c, "t-restart-late", subs, 1, rx_cb, &late, err, sizeof err);
    ck_assert_msg(lsub != NULL, "%s", err);
    ck_assert(!sb_mqtt_up(lsub));

    ck_assert_int_eq(sb_h_mqtt_start(&h), 0);
    ck_assert_msg(sb_mqtt_wait_up(sub, 10000) == 0, "sub: %s", sb_mqtt_errstr(sub));
    ck_assert_msg(sb_mqtt_wait_up(pub, 10000) == 0, "pub: %s", sb_mqtt_errstr(pub));
    ck_assert_msg(sb_mqtt_wait_up(lsub, 10000) == 0, "late: %s", sb_mqtt_errstr(lsub));
    ck_assert_msg(sb_mqtt_wait_published(pub, 10000) == 0, "%s", sb_mqtt_errstr(pub));
    ck_assert_int_eq(rx_wait(&r, 15, 5000), 15); /* queued for the kept session */

    /* new messages after the restart reach both subscribers */
    publish_n(pub, "restart/t", 15, 5);
    ck_assert_int_eq(sb_mqtt_wait_published(pub, 5000), 0);
    ck_assert_int_ge(rx_wait(&r, 20, 5000), 20);
    ck_assert_int_ge(rx_wait(&late, 5, 5000), 5); /* may also get the 5 resent ones */
    for (int i = 15; i < 20; i++) {
        ck_assert_int_ge(r.count[i], 1);
        ck_assert_int_ge(late.count[i], 1);
    }
    /* PUBACKs still on their way when the broker stopped make it resend: at least once */
    fprintf(stderr, "broker restart: %d distinct, %d duplicates\n", r.total, r.dups);
    sb_mqtt_free(lsub);
    sb_mqtt_free(pub);
    sb_mqtt_free(sub);
}
END_TEST

/* A broker that cannot be reached when the client starts (nothing listens on its port) is
 * reported once in the log: nothing at all was logged before, so an operator looking at a
 * service that never connected had only /healthz to go by. The repeated attempts say nothing
 * more, and a broker that comes up later is logged as connected. */
START_TEST(unreachable_broker_is_logged_once)
{
    int port = sb_h_free_port();
    ck_assert_int_gt(port, 0);
    char path[300];
    snprintf(path, sizeof path, "%s/unreachable.log", h.dir);
    int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600), saved = dup(STDERR_FILENO);
    ck_assert(fd >= 0 && saved >= 0);
    ck_assert_int_eq(dup2(fd, STDERR_FILENO), STDERR_FILENO);
    close(fd);
    sb_config_t c = cfg();
    char url[64], err[256];
    snprintf(url, sizeof url, "mqtt://127.0.0.1:%d", port);
    c.mqtt.url = url;
    c.mqtt.port = port;
    sb_mqtt_t *m = sb_mqtt_new(&c, "t-unreachable", NULL, 0, NULL, NULL, err, sizeof err);
    sleep_ms(1500); /* several attempts: 0.1 s, 0.2 s, 0.4 s, 0.8 s apart */
    bool up = m && sb_mqtt_up(m);
    sb_mqtt_free(m);
    dup2(saved, STDERR_FILENO);
    close(saved);
    ck_assert_msg(m != NULL, "%s", err);
    ck_assert(!up);
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    char log[8192] = "";
    log[fread(log, 1, sizeof log - 1, f)] = '\0';
    fclose(f);
    char want[100];
    snprintf(want, sizeof want, "warn surveybus mqtt unavailable host=127.0.0.1 port=%d ", port);
    const char *first = strstr(log, want);
    ck_assert_msg(first != NULL, "no \"%s\" in:\n%s", want, log);
    ck_assert_msg(strstr(first + strlen(want), "mqtt unavailable") == NULL, "logged more than once:\n%s", log);
}
END_TEST

int main(void)
{
    Suite *su = suite_create("mqtt");
    TCase *tc = tcase_create("mosquitto");
    tcase_add_unchecked_fixture(tc, setup, teardown);
    tcase_add_checked_fixture(tc, qos_default, NULL);
    tcase_set_timeout(tc, 40);
    tcase_add_test(tc, new_refuses_bad_settings);
    tcase_add_test(tc, round_trip_1000_qos1);
    tcase_add_test(tc, retained_for_late_subscriber);
    tcase_add_test(tc, persistent_session_keeps_messages);
    tcase_add_test(tc, crash_in_callback_is_redelivered);
    tcase_add_test(tc, crash_in_callback_at_qos2_is_redelivered);
    tcase_add_test(tc, failing_callback_is_retried_then_redelivered);
    tcase_add_test(tc, device_id_from_topic);
    tcase_add_test(tc, broker_restart);
    tcase_add_test(tc, unreachable_broker_is_logged_once);
    suite_add_tcase(su, tc);
    /* The tests restart the broker and fork: harness state must live in this process. */
    return sb_h_run_suite(su, true);
}
