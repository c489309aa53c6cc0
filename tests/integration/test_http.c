/* The operational endpoints of the real services: /healthz follows Redis going away and
 * coming back, /metrics carries the dependency gauges, the counters kept in Redis and the
 * queue depths, anything else is 404. Also the pure counter-to-Prometheus formatting. */
#include <arpa/inet.h>
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "http.h"
#include "log.h"
#include "util.h"

static sb_h_t h;

static void setup(void)
{
    sb_log_init("test_http", SB_LOG_WARN);
    if (sb_h_start(&h, SB_H_ALL, 2, "h1.in,h1.req") != 0) {
        fprintf(stderr, "cannot start the servers\n");
        exit(1);
    }
}

static void teardown(void)
{
    sb_h_stop(&h);
}

/* Sends METHOD path to 127.0.0.1:port. Returns the status (-1: no connection); *body the
 * body, and *head (when not NULL) the status line and headers. */
static int request(int port, const char *method, const char *path, char **head, char **body)
{
    *body = NULL;
    if (head) *head = NULL;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    char req[256];
    int n = snprintf(req, sizeof req, "%s %s HTTP/1.0\r\nHost: x\r\n\r\n", method, path);
    ck_assert_int_eq(write(fd, req, (size_t)n), n);
    size_t len = 0, cap = 65536;
    char *buf = malloc(cap);
    ssize_t r;
    while ((r = read(fd, buf + len, cap - len - 1)) > 0) len += (size_t)r;
    close(fd);
    buf[len] = '\0';
    int status = -1;
    sscanf(buf, "HTTP/1.%*d %d", &status);
    char *b = strstr(buf, "\r\n\r\n");
    *body = strdup(b ? b + 4 : "");
    if (b) *b = '\0';
    if (head)
        *head = buf;
    else
        free(buf);
    return status;
}

static int get(int port, const char *path, char **body)
{
    return request(port, "GET", path, NULL, body);
}

static int wait_status(int port, const char *path, int want, int timeout_ms)
{
    int64_t end = sb_mono_ms() + timeout_ms;
    for (;;) {
        char *b;
        int s = get(port, path, &b);
        free(b);
        if (s == want || sb_mono_ms() > end) return s;
        struct timespec ts = {0, 100000000L};
        nanosleep(&ts, NULL);
    }
}

START_TEST(counters_text)
{
    const char *f[] = {"consumed", "fired|support-csat", "suppressed|j-1|min_gap", "dlq|bad\"x"};
    const long long v[] = {12, 3, 1, 2};
    char *buf = NULL;
    size_t len = 0, cap = 0;
    sb_http_counters_text(&buf, &len, &cap, "dispatcher", f, v, 4);
    ck_assert_str_eq(buf, "surveybus_dispatcher_consumed_total 12\n"
                          "surveybus_dispatcher_fired_total{key=\"support-csat\"} 3\n"
                          "surveybus_dispatcher_suppressed_total{key=\"j-1|min_gap\"} 1\n"
                          "surveybus_dispatcher_dlq_total{key=\"bad\\\"x\"} 2\n");
    ck_assert_uint_eq(len, strlen(buf));
    free(buf);

    /* batch times: 0.5 ms and 1 ms in the first bucket (<= 1 ms), 30 ms in <= 50 ms, 20 s
     * in none but +Inf */
    sb_http_latency_t l;
    memset(&l, 0, sizeof l);
    sb_http_latency_observe(&l, 500);
    sb_http_latency_observe(&l, 1000);
    sb_http_latency_observe(&l, 30000);
    sb_http_latency_observe(&l, 20000000);
    ck_assert_uint_eq(atomic_load(&l.le[0]), 2);
    ck_assert_uint_eq(atomic_load(&l.le[5]), 1); /* 0.05 s */
    ck_assert_uint_eq(atomic_load(&l.count), 4);
    ck_assert_uint_eq(atomic_load(&l.sum_us), 20031500);
}
END_TEST

START_TEST(dispatcher_endpoints)
{
    int port = sb_h_free_port();
    char extra[400];
    snprintf(extra, sizeof extra,
             "{\"kafka\":{\"group\":\"h1\"},\"redis\":{\"prefix\":\"h1:\"},"
             "\"topics\":{\"interactions\":\"h1.in\",\"requests\":\"h1.req\"},"
             "\"mqtt\":{\"client_id\":\"h1-disp\"},\"http\":{\"dispatcher\":\"127.0.0.1:%d\"}}",
             port);
    const char *cfg = sb_h_write_config(&h, "h1", extra);
    const char *argv[] = {sb_h_bin("surveybus-dispatcher"), "-c", cfg, NULL};
    pid_t pid = sb_h_spawn(&h, argv, "h1-disp.log");
    ck_assert_int_gt(pid, 0);
    ck_assert_int_eq(wait_status(port, "/healthz", 200, 15000), 200);
    char *body;
    ck_assert_int_eq(get(port, "/healthz", &body), 200);
    ck_assert_msg(strstr(body, "\"status\":\"ok\"") && strstr(body, "\"redis\":true"), "%s", body);
    free(body);
    ck_assert_int_eq(get(port, "/metrics", &body), 200);
    ck_assert_msg(strstr(body, "surveybus_up{service=\"dispatcher\",dependency=\"redis\"} 1"), "%s", body);
    ck_assert_msg(strstr(body, "surveybus_queue{service=\"dispatcher\",queue=\"sched\"} 0"), "%s", body);
    ck_assert_msg(strstr(body, "surveybus_batch_seconds_bucket{service=\"dispatcher\",le=\"+Inf\"}"), "%s", body);
    ck_assert_msg(strstr(body, "surveybus_redis_rtt_seconds{service=\"dispatcher\"}"), "%s", body);
    /* the gauges are typed as such (untyped series would be taken for "unknown") */
    ck_assert_msg(strstr(body, "\n# TYPE surveybus_redis_rtt_seconds gauge\nsurveybus_redis_rtt_seconds{"), "%s", body);
    ck_assert_msg(strstr(body, "\n# TYPE surveybus_queue gauge\nsurveybus_queue{"), "%s", body);
    free(body);
    ck_assert_int_eq(get(port, "/nope", &body), 404);
    free(body);
    /* another method: 405 naming the ones allowed (RFC 9110 §15.5.6) */
    char *head;
    ck_assert_int_eq(request(port, "POST", "/healthz", &head, &body), 405);
    ck_assert_msg(strstr(head, "\r\nAllow: GET, HEAD"), "%s", head);
    free(head), free(body);
    /* Redis away: unavailable; back: ok again, no restart */
    ck_assert_int_eq(sb_h_redis_stop(&h), 0);
    ck_assert_int_eq(wait_status(port, "/healthz", 503, 10000), 503);
    ck_assert_int_eq(get(port, "/healthz", &body), 503);
    ck_assert_msg(strstr(body, "\"redis\":false"), "%s", body);
    free(body);
    ck_assert_int_eq(get(port, "/metrics", &body), 200);
    ck_assert_msg(strstr(body, "dependency=\"redis\"} 0"), "%s", body);
    free(body);
    ck_assert_int_eq(sb_h_redis_start(&h), 0);
    ck_assert_int_eq(wait_status(port, "/healthz", 200, 15000), 200);
    /* Redis answers PING but refuses writes (full under noeviction): unavailable too */
    ck_assert_int_eq(sb_h_redis_config(&h, "maxmemory 1"), 0);
    ck_assert_int_eq(wait_status(port, "/healthz", 503, 10000), 503);
    ck_assert_int_eq(get(port, "/healthz", &body), 503);
    ck_assert_msg(strstr(body, "\"redis\":false"), "%s", body);
    free(body);
    ck_assert_int_eq(sb_h_redis_config(&h, "maxmemory 0"), 0);
    ck_assert_int_eq(wait_status(port, "/healthz", 200, 15000), 200);
    ck_assert_int_eq(sb_h_kill(pid, SIGTERM), 0);
    int st = 0;
    ck_assert_int_eq(sb_h_wait_exit(pid, 10000, &st), 0);
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}
END_TEST

START_TEST(aggregator_endpoints_and_bad_address)
{
    int port = sb_h_free_port();
    char extra[400];
    snprintf(extra, sizeof extra,
             "{\"kafka\":{\"group\":\"h2\"},\"redis\":{\"prefix\":\"h2:\"},"
             "\"mqtt\":{\"client_id\":\"h2-agg\"},\"http\":{\"aggregator\":\"127.0.0.1:%d\"}}",
             port);
    const char *cfg = sb_h_write_config(&h, "h2", extra);
    const char *argv[] = {sb_h_bin("surveybus-aggregator"), "-c", cfg, NULL};
    pid_t pid = sb_h_spawn(&h, argv, "h2-agg.log");
    ck_assert_int_eq(wait_status(port, "/healthz", 200, 15000), 200);
    char *body;
    ck_assert_int_eq(get(port, "/metrics", &body), 200);
    ck_assert_msg(strstr(body, "surveybus_up{service=\"aggregator\",dependency=\"kafka\"} 1"), "%s", body);
    ck_assert_msg(strstr(body, "surveybus_queue{service=\"aggregator\",queue=\"alertq\"} 0"), "%s", body);
    free(body);
    /* a second instance started by mistake with the same configuration (so the same MQTT
     * client id) cannot bind the same port: it says why and exits 1, before connecting to
     * MQTT, where its client id would have pushed the running instance off the broker */
    const char *argv2[] = {sb_h_bin("surveybus-aggregator"), "-c", cfg, NULL};
    pid_t pid2 = sb_h_spawn(&h, argv2, "h2-agg-b.log");
    int st = 0;
    ck_assert_int_eq(sb_h_wait_exit(pid2, 10000, &st), 0);
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 1);
    char path[600], log2[8192] = "";
    snprintf(path, sizeof path, "%s/h2-agg-b.log", h.dir);
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    log2[fread(log2, 1, sizeof log2 - 1, f)] = '\0';
    fclose(f);
    ck_assert_msg(strstr(log2, "cannot listen on 127.0.0.1:") && !strstr(log2, "mqtt connected"),
                  "%s", log2);
    snprintf(path, sizeof path, "%s/h2-agg.log", h.dir);
    f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    char log1[65536] = "";
    log1[fread(log1, 1, sizeof log1 - 1, f)] = '\0';
    fclose(f);
    ck_assert_msg(!strstr(log1, "mqtt connection lost"), "%s", log1);
    /* a hang-up stops it cleanly too (it used to kill it: status 129, nothing committed) */
    ck_assert_int_eq(sb_h_kill(pid, SIGHUP), 0);
    ck_assert_int_eq(sb_h_wait_exit(pid, 10000, &st), 0);
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("http");
    TCase *tc = tcase_create("http");
    tcase_add_unchecked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, counters_text);
    tcase_add_test(tc, dispatcher_endpoints);
    tcase_add_test(tc, aggregator_endpoints_and_bad_address);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return sb_h_run_suite(suite(), true);
}
