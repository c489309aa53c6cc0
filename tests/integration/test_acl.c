/* The shipped mosquitto access rules (config/mosquitto/acl) on the real broker: anonymous
 * clients are refused, a device may publish only under its own fieldservice/<id>/ topics and
 * read only its own survey requests, and the surveybus service user reads everything. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

static sb_h_t h;
static int port;
static pid_t broker;

static void setup(void)
{
    if (sb_h_start(&h, 0, 0, NULL) != 0) exit(1);
    char cmd[1024], conf[512], acl[600];
    char cwd[400];
    if (!getcwd(cwd, sizeof cwd)) exit(1);
    /* the acl file as shipped, from the repo root (tests run there) */
    snprintf(acl, sizeof acl, "%s/config/mosquitto/acl", cwd);
    snprintf(cmd, sizeof cmd,
             "cd %s && mosquitto_passwd -c -b passwd surveybus s3cret && "
             "mosquitto_passwd -b passwd van-42 k42 && mosquitto_passwd -b passwd van-7 k7",
             h.dir);
    if (sb_h_run(cmd, NULL) != 0) exit(1);
    port = sb_h_free_port();
    snprintf(conf, sizeof conf, "%s/acl-mosquitto.conf", h.dir);
    FILE *f = fopen(conf, "w");
    if (!f) exit(1);
    fprintf(f,
            "listener %d 127.0.0.1\nuser root\nallow_anonymous false\n"
            "password_file %s/passwd\nacl_file %s\npersistence false\n",
            port, h.dir, acl);
    fclose(f);
    const char *argv[] = {"mosquitto", "-c", conf, NULL};
    broker = sb_h_spawn(&h, argv, "acl-mosquitto.log");
    /* wait until it answers an authenticated client */
    snprintf(cmd, sizeof cmd,
             "mosquitto_pub -p %d -u surveybus -P s3cret -t probe -m x -q 1 2>/dev/null", port);
    for (int i = 0; i < 100 && sb_h_run(cmd, NULL) != 0; i++) usleep(50000);
}

static void teardown(void)
{
    sb_h_stop(&h);
}

/* Starts a subscriber for topic as user/pass that collects what arrives within secs. */
static pid_t subscribe(const char *user, const char *pass, const char *topic, const char *out,
                       int secs)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "exec timeout %d mosquitto_sub -p %d -u %s -P %s -q 1 -v -t '%s' > %s/%s 2>&1", secs,
             port, user, pass, topic, h.dir, out);
    const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    pid_t pid = sb_h_spawn(&h, argv, "acl-sub.log");
    usleep(400000); /* let it subscribe */
    return pid;
}

static int publish(const char *user, const char *pass, const char *topic, const char *msg)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "mosquitto_pub -p %d %s%s%s%s -q 1 -t '%s' -m '%s' 2>/dev/null",
             port, user ? "-u " : "", user ? user : "", pass ? " -P " : "", pass ? pass : "",
             topic, msg);
    return sb_h_run(cmd, NULL);
}

static char *slurp(const char *name)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "cat %s/%s", h.dir, name);
    char *out = NULL;
    sb_h_run(cmd, &out);
    return out;
}

START_TEST(anonymous_and_wrong_password_refused)
{
    ck_assert_int_ne(publish(NULL, NULL, "fieldservice/van-42/visit/completed", "x"), 0);
    ck_assert_int_ne(publish("van-42", "wrong", "fieldservice/van-42/visit/completed", "x"), 0);
    ck_assert_int_eq(publish("van-42", "k42", "fieldservice/van-42/visit/completed", "x"), 0);
}
END_TEST

START_TEST(device_publishes_only_its_own_topics)
{
    pid_t sub = subscribe("surveybus", "s3cret", "fieldservice/#", "service.out", 3);
    publish("van-42", "k42", "fieldservice/van-42/visit/completed", "own-visit");
    publish("van-42", "k42", "fieldservice/van-42/survey/response", "own-response");
    publish("van-42", "k42", "fieldservice/van-7/visit/completed", "forged-visit");
    publish("van-42", "k42", "fieldservice/van-7/survey/request", "forged-request");
    publish("van-42", "k42", "metrics/nps/24h/all/all", "forged-metric");
    sb_h_wait_exit(sub, 6000, NULL);
    char *got = slurp("service.out");
    ck_assert_msg(strstr(got, "fieldservice/van-42/visit/completed own-visit"), "%s", got);
    ck_assert_msg(strstr(got, "fieldservice/van-42/survey/response own-response"), "%s", got);
    ck_assert_msg(!strstr(got, "forged"), "a device published outside its topics:\n%s", got);
    free(got);
}
END_TEST

START_TEST(device_reads_only_its_own_requests)
{
    pid_t own = subscribe("van-42", "k42", "fieldservice/van-42/survey/request", "own.out", 3);
    pid_t other = subscribe("van-42", "k42", "fieldservice/van-7/survey/request", "other.out", 3);
    pid_t wild = subscribe("van-42", "k42", "fieldservice/+/survey/request", "wild.out", 3);
    publish("surveybus", "s3cret", "fieldservice/van-42/survey/request", "for-42");
    publish("surveybus", "s3cret", "fieldservice/van-7/survey/request", "for-7");
    sb_h_wait_exit(own, 6000, NULL);
    sb_h_wait_exit(other, 6000, NULL);
    sb_h_wait_exit(wild, 6000, NULL);
    char *a = slurp("own.out"), *b = slurp("other.out"), *c = slurp("wild.out");
    ck_assert_msg(strstr(a, "for-42") != NULL, "own request not received: %s", a);
    ck_assert_msg(strstr(b, "for-7") == NULL, "read another device's request: %s", b);
    ck_assert_msg(strstr(c, "for-7") == NULL, "wildcard leaked another device's request: %s", c);
    free(a), free(b), free(c);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("acl");
    TCase *tc = tcase_create("mosquitto");
    tcase_add_unchecked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, anonymous_and_wrong_password_refused);
    tcase_add_test(tc, device_publishes_only_its_own_topics);
    tcase_add_test(tc, device_reads_only_its_own_requests);
    suite_add_tcase(s, tc);
    return sb_h_run_suite(s, true);
}
