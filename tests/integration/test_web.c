/* surveybus-web against real Redis, mosquitto and devkafka: /healthz; /api/metrics gives the
 * numbers of `surveybusctl --json metrics` for the same filters and refuses bad parameters
 * with a reason; /api/stream sends the snapshot, then metric updates and alerts published on
 * MQTT (or, with MQTT off, on Kafka) as Server-Sent Events; static files from web_root
 * without path traversal; SIGTERM ends open streams and exits 0. */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "harness.h"
#include "kafka.h"
#include "log.h"
#include "mqtt.h"
#include "record.h"
#include "store.h"
#include "tally.h"
#include "util.h"

static sb_h_t h;
static const char *cfg_path;
static char www[300];
static int port;

static const char JOURNEYS[] =
    "\"journeys\":[{\"name\":\"support-csat\",\"on\":{\"kind\":\"support_ticket\"},"
    "\"survey\":\"csat\",\"delay\":\"1h\",\"channel\":\"email\"},"
    "{\"name\":\"onboarding-nps\",\"on\":{\"kind\":\"onboarding\"},\"survey\":\"nps\","
    "\"delay\":\"30d\"}]";

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

static void setup(void)
{
    sb_log_init("test_web", SB_LOG_WARN);
    if (sb_h_start(&h, SB_H_ALL, 1, NULL) != 0) exit(1);
    port = sb_h_free_port();
    snprintf(www, sizeof www, "%s/www", h.dir);
    mkdir(www, 0755);
    char path[400];
    snprintf(path, sizeof path, "%s/index.html", www);
    write_file(path, "<!doctype html><title>surveybus</title>\n");
    snprintf(path, sizeof path, "%s/app.js", www);
    write_file(path, "console.log('\xe4\xbd\xa0\xe5\xa5\xbd');\n");
    char extra[1200];
    snprintf(extra, sizeof extra,
             "{%s,\"mqtt\":{\"client_id\":\"w-web\"},"
             "\"http\":{\"web\":\"127.0.0.1:%d\",\"web_root\":\"%s\"}}",
             JOURNEYS, port, www);
    cfg_path = sb_h_write_config(&h, "web", extra);
    if (!cfg_path) exit(1);
}

static void teardown(void)
{
    sb_h_stop(&h);
}

/* ---------------------------------------------------------------- HTTP over a raw socket */

static int connect_to(int p)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)p)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* GET path (HTTP/1.0: no chunks, the server closes). Returns the status (-1: no
 * connection); *head the status line and headers, *body the body (both malloc'd). */
static int get_full(int p, const char *path, char **head, char **body)
{
    *head = *body = NULL;
    int fd = connect_to(p);
    if (fd < 0) return -1;
    char req[600];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: x\r\n\r\n", path);
    ck_assert_int_eq(write(fd, req, (size_t)n), n);
    size_t len = 0, cap = 65536;
    char *buf = malloc(cap);
    ssize_t r;
    while ((r = read(fd, buf + len, cap - len - 1)) > 0)
        len += (size_t)r;
    close(fd);
    buf[len] = '\0';
    int status = -1;
    sscanf(buf, "HTTP/1.%*d %d", &status);
    char *b = strstr(buf, "\r\n\r\n");
    *body = strdup(b ? b + 4 : "");
    if (b) *b = '\0';
    *head = buf;
    return status;
}

static int get(int p, const char *path, char **body)
{
    char *head;
    int s = get_full(p, path, &head, body);
    free(head);
    return s;
}

static int wait_status(int p, const char *path, int want, int timeout_ms)
{
    int64_t end = sb_mono_ms() + timeout_ms;
    for (;;) {
        char *b;
        int s = get(p, path, &b);
        free(b);
        if (s == want || sb_mono_ms() > end) return s;
        struct timespec ts = {0, 100000000L};
        nanosleep(&ts, NULL);
    }
}

/* An open /api/stream: what arrived so far. */
typedef struct stream {
    int fd;
    char *buf;
    size_t len, cap;
    bool closed;
} stream_t;

static void stream_open(stream_t *s, int p)
{
    memset(s, 0, sizeof *s);
    s->fd = connect_to(p);
    ck_assert_int_ge(s->fd, 0);
    const char *req = "GET /api/stream HTTP/1.0\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n";
    ck_assert_int_eq(write(s->fd, req, strlen(req)), (ssize_t)strlen(req));
    s->cap = 1 << 20;
    s->buf = malloc(s->cap);
    s->buf[0] = '\0';
}

/* Reads until the stream holds text (or, text NULL, until it closes), for up to timeout_ms.
 * Returns whether it does / did. */
static bool stream_wait(stream_t *s, const char *text, int timeout_ms)
{
    int64_t end = sb_mono_ms() + timeout_ms;
    for (;;) {
        if (text ? strstr(s->buf, text) != NULL : s->closed) return true;
        int left = (int)(end - sb_mono_ms());
        if (left <= 0 || s->closed) return false;
        struct pollfd pfd = {s->fd, POLLIN, 0};
        if (poll(&pfd, 1, left) <= 0) continue;
        ssize_t r = read(s->fd, s->buf + s->len, s->cap - s->len - 1);
        if (r <= 0) {
            s->closed = true;
            continue;
        }
        s->len += (size_t)r;
        s->buf[s->len] = '\0';
    }
}

static size_t count_of(const char *text, const char *what)
{
    size_t n = 0;
    for (const char *p = text; (p = strstr(p, what)); p += strlen(what))
        n++;
    return n;
}

static void stream_close(stream_t *s)
{
    close(s->fd);
    free(s->buf);
}

/* ---------------------------------------------------------------- the values in Redis */


/* Counts, a minute ago, CSAT 5 and 2 on email and 4 on sms, and an NPS 9 on sms, as the
 * aggregator would (the numbers themselves are checked by test_ctl; here only that the web
 * service shows the same ones). */
static void tally_fixture(void)
{
    sb_problems_t p = {0};
    sb_config_t *cfg = sb_config_load(cfg_path, NULL, 0, &p);
    ck_assert_msg(cfg != NULL, "%s", p.n ? p.msg[0] : "");
    char err[256];
    sb_store_t *st = sb_store_new(cfg, err, sizeof err);
    ck_assert_msg(st != NULL, "%s", err);
    sb_tally_t *t = sb_tally_new(st, cfg);
    static const char *const inter[] = {"w-1", "w-2", "w-3", "w-4"};
    static const char *const channel[] = {"email", "email", "sms", "sms"};
    static const int score[] = {5, 2, 4, 9};
    sb_record_t r[4];
    char id[4][SB_SURVEY_ID_LEN + 1];
    sb_tally_item_t items[4];
    int64_t now = sb_now_ms();
    memset(items, 0, sizeof items);
    for (int i = 0; i < 4; i++) {
        sb_kind_t kind = i < 3 ? SB_KIND_CSAT : SB_KIND_NPS;
        sb_h_fired(st, inter[i], kind, channel[i], "\xe5\xbc\xa0\xe4\xbc\x9f", &r[i], id[i]);
        char names[SB_DIM__N][SB_TALLY_NAME_MAX];
        const char *ptr[SB_DIM__N];
        size_t n = sb_tally_slice_names(cfg, (const char(*)[SB_STR_MAX + 1]) r[i].dim, names);
        for (size_t k = 0; k < n; k++)
            ptr[k] = names[k];
        sb_tally_item_t *it = &items[i];
        ck_assert_int_eq(sb_tally_slices(t, ptr, n, it->slices, NULL), 0);
        it->n_slices = n;
        it->type = SB_TALLY_RESPONSE;
        it->id = id[i];
        it->ts_ms = now - 60000;
        it->kind = kind;
        it->score = score[i];
    }
    ck_assert_int_eq(sb_tally_apply(t, items, 4, NULL, 0, now), 0);
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(items[i].result, 'c');
    }
    sb_tally_free(t);
    sb_store_free(st);
    sb_config_free(cfg);
}

/* Parses a JSON array of updates and drops each "as_of" (the read time, which differs
 * between two reads). */
static json_t *without_as_of(const char *text)
{
    json_error_t e;
    json_t *list = json_loads(text, 0, &e);
    ck_assert_msg(json_is_array(list), "%s: %s", e.text, text);
    size_t i;
    json_t *u;
    json_array_foreach(list, i, u)
    {
        ck_assert_ptr_nonnull(json_object_get(u, "as_of"));
        json_object_del(u, "as_of");
    }
    return list;
}

/* `surveybusctl -c CFG --json metrics <args>` without as_of. */
static json_t *ctl_metrics(const char *args)
{
    char cmd[1500], *out = NULL;
    snprintf(cmd, sizeof cmd, "%s -c %s --json metrics %s 2>/dev/null", sb_h_bin("surveybusctl"),
             cfg_path, args);
    ck_assert_int_eq(sb_h_run(cmd, &out), 0);
    json_t *list = without_as_of(out);
    free(out);
    return list;
}

static pid_t start_web(const char *log, const char *const *more)
{
    const char *argv[12] = {sb_h_bin("surveybus-web"), "-c", cfg_path};
    size_t n = 3;
    for (; more && *more && n + 1 < 12; more++)
        argv[n++] = *more;
    argv[n] = NULL;
    pid_t pid = sb_h_spawn(&h, argv, log);
    ck_assert_int_gt(pid, 0);
    return pid;
}

static void stop_web(pid_t pid)
{
    ck_assert_int_eq(sb_h_kill(pid, SIGTERM), 0);
    int st = 0;
    ck_assert_msg(sb_h_wait_exit(pid, 10000, &st) == 0, "not stopped within 10 s");
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d", st);
}

/* ---------------------------------------------------------------- tests */

START_TEST(api_static_and_stream_over_mqtt)
{
    tally_fixture();
    pid_t pid = start_web("web.log", NULL);
    ck_assert_int_eq(wait_status(port, "/healthz", 200, 15000), 200);
    char *head, *body;
    ck_assert_int_eq(get(port, "/healthz", &body), 200);
    ck_assert_msg(strstr(body, "\"service\":\"web\"") && strstr(body, "\"mqtt\":true"), "%s", body);
    free(body);

    /* the snapshot: the numbers of surveybusctl for the same filters */
    ck_assert_int_eq(get_full(port, "/api/metrics?window=1h&dimension=channel", &head, &body), 200);
    ck_assert_msg(strstr(head, "Content-Type: application/json"), "%s", head);
    json_t *web = without_as_of(body), *ctl = ctl_metrics("--window 1h --dimension channel");
    /* csat and nps of email and sms, response_rate of the four: not empty */
    ck_assert_uint_ge(json_array_size(ctl), 4);
    ck_assert_msg(json_equal(web, ctl), "web %s\nctl differs", body);
    json_decref(web), json_decref(ctl);
    free(head), free(body);
    ck_assert_int_eq(get(port, "/api/metrics?metric=csat&value=email", &body), 200);
    web = without_as_of(body), ctl = ctl_metrics("--metric csat --value email");
    ck_assert_msg(json_equal(web, ctl), "%s", body);
    json_decref(web), json_decref(ctl);
    free(body);

    /* bad parameters: 400 with the reason */
    ck_assert_int_eq(get(port, "/api/metrics?window=2h", &body), 400);
    ck_assert_msg(strstr(body, "{\"error\":\"unknown window 2h (valid: 1h, 24h, 7d, 30d)\"}"), "%s",
                  body);
    free(body);
    ck_assert_int_eq(get(port, "/api/metrics?dimension=colour", &body), 400);
    ck_assert_msg(strstr(body, "unknown dimension colour"), "%s", body);
    free(body);
    ck_assert_int_eq(get(port, "/api/metrics?window=1h&colour=red", &body), 400);
    ck_assert_msg(strstr(body, "\"error\":\"unknown parameter colour"), "%s", body);
    free(body);
    ck_assert_int_eq(get(port, "/api/metrics?window=1h&window=24h", &body), 400);
    free(body);
    /* an empty value is a mistake, as for surveybusctl metrics (it used to mean "every") */
    ck_assert_int_eq(get(port, "/api/metrics?metric=&window=1h", &body), 400);
    ck_assert_msg(strstr(body, "{\"error\":\"empty metric (valid: nps, csat, ces, response_rate, "
                               "frt, art, fcr, transfer_rate)\"}"),
                  "%s", body);
    free(body);
    ck_assert_int_eq(get(port, "/api/metrics?window", &body), 400); /* no '=' at all */
    ck_assert_msg(strstr(body, "{\"error\":\"empty window (valid: 1h, 24h, 7d, 30d)\"}"), "%s",
                  body);
    free(body);
    ck_assert_int_eq(get(port, "/api/metrics?dimension=channel&value=", &body), 400);
    ck_assert_msg(strstr(body, "{\"error\":\"empty value (leave it out for every value)\"}"),
                  "%s", body);
    free(body);
    ck_assert_int_eq(get(port, "/api/metrics?dimension=&dimension=channel", &body), 400);
    ck_assert_msg(strstr(body, "{\"error\":\"parameter dimension given twice\"}"), "%s", body);
    free(body);
    /* an unknown key equal to the value of the last allowed one: the key list used to be
     * read one past its end, into the values (the service aborted, or leaked heap bytes) */
    ck_assert_int_eq(get(port, "/api/metrics?metric=nps&nps=1", &body), 400);
    ck_assert_msg(strstr(body, "\"error\":\"unknown parameter nps"), "%s", body);
    free(body);
    ck_assert_int_eq(get(port, "/api/metrics?metric=zzz&colour=red", &body), 400);
    ck_assert_msg(strstr(body, "{\"error\":\"unknown parameter colour (valid: metric, window, "
                               "dimension, value)\"}"),
                  "%s", body);
    free(body);
    /* keys and values are any bytes once percent-decoded: a reason quoting bytes that are
     * not UTF-8 used to make reply_error abort (jansson takes UTF-8 only) */
    ck_assert_int_eq(get(port, "/api/metrics?window=%ff", &body), 400);
    ck_assert_msg(strstr(body, "{\"error\":\"unknown window ? (valid: 1h, 24h, 7d, 30d)\"}"), "%s",
                  body);
    free(body);
    ck_assert_int_eq(get(port, "/api/metrics?metric=nps&colour%c0%af=1", &body), 400);
    ck_assert_msg(strstr(body, "\"error\":\"unknown parameter colour?? (valid:"), "%s", body);
    free(body);
    ck_assert_int_eq(get(port, "/api/stream?%fe=1", &body), 400);
    free(body);
    ck_assert_int_eq(get(port, "/api/metrics?metric=%ff", &body), 400);
    free(body);
    /* a NUL byte ends the text libmicrohttpd hands on: "nps%00x" used to be read as "nps",
     * and "east%00x" matched the value east; they are names no one has */
    static const char *const nul[] = {"/api/metrics?metric=nps%00x",
                                      "/api/metrics?dimension=all&value=all%00x",
                                      "/api/metrics?metric%00x=nps"};
    for (size_t i = 0; i < sizeof nul / sizeof nul[0]; i++) {
        ck_assert_msg(get(port, nul[i], &body) == 400, "%s: %s", nul[i], body);
        ck_assert_msg(strstr(body, "NUL byte"), "%s: %s", nul[i], body);
        free(body);
    }
    ck_assert_int_eq(get(port, "/healthz", &body), 200); /* still up */
    free(body);
    ck_assert_int_eq(get(port, "/api/nothing", &body), 404);
    free(body);

    /* static files, with their types; no way out of web_root */
    ck_assert_int_eq(get_full(port, "/", &head, &body), 200);
    ck_assert_msg(strstr(head, "Content-Type: text/html; charset=utf-8"), "%s", head);
    ck_assert_str_eq(body, "<!doctype html><title>surveybus</title>\n");
    free(head), free(body);
    ck_assert_int_eq(get_full(port, "/app.js", &head, &body), 200);
    ck_assert_msg(strstr(head, "Content-Type: text/javascript"), "%s", head);
    ck_assert_str_eq(body, "console.log('\xe4\xbd\xa0\xe5\xa5\xbd');\n");
    free(head), free(body);
    int s = get(port, "/../etc/passwd", &body);
    ck_assert_msg(s == 400 || s == 404, "status %d", s);
    ck_assert_msg(!strstr(body, "root:"), "%s", body);
    free(body);
    s = get(port, "/%2e%2e/%2e%2e/etc/passwd", &body);
    ck_assert_msg(s == 400 || s == 404, "status %d", s);
    ck_assert_msg(!strstr(body, "root:"), "%s", body);
    free(body);
    ck_assert_int_eq(get(port, "/missing.css", &body), 404);
    free(body);

    /* the stream: first one metric event per current value */
    json_t *all = ctl_metrics("");
    size_t values = json_array_size(all);
    json_decref(all);
    stream_t st;
    stream_open(&st, port);
    ck_assert(stream_wait(&st, "\r\n\r\n", 5000));
    ck_assert_msg(strstr(st.buf, "HTTP/1.0 200") || strstr(st.buf, "HTTP/1.1 200"), "%s", st.buf);
    ck_assert_msg(strstr(st.buf, "Content-Type: text/event-stream"), "%s", st.buf);
    int64_t end = sb_mono_ms() + 5000;
    while (count_of(st.buf, "event: metric\ndata: {") < values && sb_mono_ms() < end)
        stream_wait(&st, "\x01", 100);
    ck_assert_msg(count_of(st.buf, "event: metric\ndata: {") == values, "want %zu:\n%s", values,
                  st.buf);
    ck_assert_msg(strstr(st.buf, "\"dimension\":\"agent\",\"value\":\"\xe5\xbc\xa0\xe4\xbc\x9f\""),
                  "%s", st.buf);
    /* each event one data line: every "data: " line ends the event it is in */
    for (const char *p = st.buf; (p = strstr(p, "\ndata: ")); p++) {
        const char *nl = strchr(p + 1, '\n');
        ck_assert_msg(nl && nl[1] == '\n', "%s", p);
    }

    /* then what is published, as the aggregator publishes it */
    char err[256];
    sb_problems_t pr = {0};
    sb_config_t *cfg = sb_config_load(cfg_path, NULL, 0, &pr);
    ck_assert_ptr_nonnull(cfg);
    sb_mqtt_t *m = sb_mqtt_new(cfg, "w-test-pub", NULL, 0, NULL, NULL, err, sizeof err);
    ck_assert_msg(m != NULL, "%s", err);
    ck_assert_int_eq(sb_mqtt_wait_up(m, 10000), 0);
    const char *update =
        "{\"metric\":\"nps\",\"window\":\"1h\",\"dimension\":\"channel\",\"value\":\"web\","
        "\"as_of\":\"2026-01-01T00:00:00.000Z\",\"count\":2,\"score\":50.0,\"promoters\":1,"
        "\"passives\":1,\"detractors\":0,\"moe95\":49.0}";
    const char *alert = "{\"type\":\"detractor\",\"survey_id\":\"abc\",\"score\":2,"
                        "\"comment\":\"\xe5\xa4\xaa\xe6\x85\xa2\xe4\xba\x86\"}"; /* 太慢了 */
    ck_assert_int_eq(
        sb_mqtt_publish(m, "metrics/nps/1h/channel/web", update, strlen(update), true, NULL), 0);
    ck_assert_int_eq(sb_mqtt_publish(m, "alerts/detractor", alert, strlen(alert), false, NULL), 0);
    ck_assert_int_eq(sb_mqtt_wait_published(m, 10000), 0);
    char want[1000];
    snprintf(want, sizeof want, "event: metric\ndata: %s\n\n", update);
    ck_assert_msg(stream_wait(&st, want, 10000), "no update in:\n%s", st.buf);
    snprintf(want, sizeof want, "event: alert\ndata: %s\n\n", alert);
    ck_assert_msg(stream_wait(&st, want, 10000), "no alert in:\n%s", st.buf);
    /* a second client gets the same events */
    stream_t st2;
    stream_open(&st2, port);
    ck_assert(stream_wait(&st2, "event: metric\ndata: {", 5000));
    ck_assert_int_eq(sb_mqtt_publish(m, "alerts/csat_low", alert, strlen(alert), false, NULL), 0);
    ck_assert(stream_wait(&st2, "event: alert\ndata: {\"type\":\"detractor\"", 10000));
    /* and the first one too, once it reads on */
    end = sb_mono_ms() + 10000;
    while (count_of(st.buf, "event: alert\n") < 2 && sb_mono_ms() < end)
        stream_wait(&st, "\x01", 100);
    ck_assert_msg(count_of(st.buf, "event: alert\n") == 2, "%s", st.buf);

    /* a message over 64 KiB is not forwarded (each client would hold a copy): it is counted
     * and logged, and the stream goes on with the next one */
    size_t big_len = SB_MSG_MAX + 100;
    char *big = malloc(big_len + 1);
    ck_assert_ptr_nonnull(big);
    int pre = snprintf(big, big_len + 1, "{\"type\":\"detractor\",\"comment\":\"");
    memset(big + pre, 'z', big_len - (size_t)pre - 2);
    memcpy(big + big_len - 2, "\"}", 3);
    const char *after = "{\"type\":\"detractor\",\"survey_id\":\"after-big\"}";
    ck_assert_int_eq(sb_mqtt_publish(m, "alerts/detractor", big, big_len, false, NULL), 0);
    ck_assert_int_eq(sb_mqtt_publish(m, "alerts/detractor", "[1,", 3, false, NULL), 0);
    ck_assert_int_eq(sb_mqtt_publish(m, "alerts/detractor", after, strlen(after), false, NULL), 0);
    ck_assert_int_eq(sb_mqtt_wait_published(m, 10000), 0);
    free(big);
    ck_assert_msg(stream_wait(&st2, "\"survey_id\":\"after-big\"", 10000), "%s", st2.buf);
    ck_assert_msg(!strstr(st2.buf, "zzzzzzzz"), "the oversize message was forwarded");
    ck_assert_uint_eq(count_of(st2.buf, "event: alert\n"), 2);
    ck_assert_int_eq(get(port, "/metrics", &body), 200);
    ck_assert_msg(
        strstr(body, "# TYPE surveybus_stream_dropped_total counter\n"
                     "surveybus_stream_dropped_total{service=\"web\",reason=\"too_large\"} 1\n"
                     "surveybus_stream_dropped_total{service=\"web\",reason=\"invalid_json\"} 1\n"),
        "%s", body);
    /* the web keeps no counters in Redis: no heading over nothing */
    ck_assert_msg(!strstr(body, "# counters of"), "%s", body);
    free(body);
    int lines = 0;
    sb_h_log_sum(&h, "web.log", "dropping a message over 65536 bytes from the stream bytes=65636 "
                                "source=\"alerts/detractor\"", &lines);
    ck_assert_int_eq(lines, 1);
    sb_h_log_sum(&h, "web.log", "ignoring a message that is not JSON source=\"alerts/detractor\"",
                 &lines);
    ck_assert_int_eq(lines, 1);
    sb_mqtt_free(m);
    sb_config_free(cfg);

    /* SIGTERM while the streams are open: they end, the process exits 0 */
    stop_web(pid);
    ck_assert(stream_wait(&st, NULL, 5000));
    ck_assert(stream_wait(&st2, NULL, 5000));
    stream_close(&st);
    stream_close(&st2);
}
END_TEST

START_TEST(no_web_root_and_stream_over_kafka)
{
    /* MQTT off: the stream follows the Kafka topics; web_root missing: a reason, not a crash */
    const char *more[] = {"--set", "mqtt.url=", "--set", "http.web_root=/nonexistent/surveybus",
                          NULL};
    pid_t pid = start_web("web-kafka.log", more);
    ck_assert_int_eq(wait_status(port, "/healthz", 200, 20000), 200);
    char *body;
    ck_assert_int_eq(get(port, "/healthz", &body), 200);
    ck_assert_msg(strstr(body, "\"kafka\":true") && strstr(body, "\"mqtt\":\"off\""), "%s", body);
    free(body);
    ck_assert_int_eq(get(port, "/", &body), 404);
    ck_assert_msg(strstr(body, "/nonexistent/surveybus") && strstr(body, "not built"), "%s", body);
    free(body);

    stream_t st;
    stream_open(&st, port);
    ck_assert(stream_wait(&st, "\r\n\r\n", 5000));
    sb_problems_t pr = {0};
    sb_config_t *cfg = sb_config_load(cfg_path, NULL, 0, &pr);
    ck_assert_ptr_nonnull(cfg);
    char err[256];
    sb_kafka_producer_t *p = sb_kafka_producer_new(cfg, "w-test", NULL, NULL, err, sizeof err);
    ck_assert_msg(p != NULL, "%s", err);
    const char *update =
        "{\"metric\":\"csat\",\"window\":\"24h\",\"dimension\":\"all\",\"value\":\"all\","
        "\"as_of\":\"2026-01-01T00:00:00.000Z\",\"count\":1,\"score\":100.0,\"satisfied\":1,"
        "\"ci95_low\":20.65,\"ci95_high\":100.0}";
    /* pretty-printed on purpose: the stream sends it as one line */
    const char *alert = "{\n  \"type\": \"detractor\",\n  \"survey_id\": \"k-1\"\n}";
    char want[1000];
    snprintf(want, sizeof want, "event: metric\ndata: %s\n\n", update);
    /* the service's group starts at the newest offsets once it has its partitions: produce
     * until one arrives */
    int64_t end = sb_mono_ms() + 20000;
    bool seen = false;
    while (!seen && sb_mono_ms() < end) {
        ck_assert_int_eq(
            sb_kafka_produce(p, cfg->topics.metrics, "k", 1, update, strlen(update), NULL), 0);
        ck_assert_int_eq(sb_kafka_producer_flush(p, 5000), 0);
        seen = stream_wait(&st, want, 1000);
    }
    ck_assert_msg(seen, "no update in:\n%s", st.buf);
    ck_assert_int_eq(sb_kafka_produce(p, cfg->topics.alerts, NULL, 0, alert, strlen(alert), NULL),
                     0);
    ck_assert_int_eq(sb_kafka_producer_flush(p, 5000), 0);
    ck_assert_msg(
        stream_wait(&st, "event: alert\ndata: {\"type\":\"detractor\",\"survey_id\":\"k-1\"}\n\n",
                    10000),
        "no alert in:\n%s", st.buf);
    sb_kafka_producer_free(p);
    sb_config_free(cfg);
    stop_web(pid);
    ck_assert(stream_wait(&st, NULL, 5000));
    stream_close(&st);

    /* both transports off: nothing to stream, said so (not "kafka.brokers is empty") */
    char cmd[1200], *out = NULL;
    snprintf(cmd, sizeof cmd, "%s -c %s --set mqtt.url= --set kafka.brokers= 2>&1",
             sb_h_bin("surveybus-web"), cfg_path);
    ck_assert_int_eq(sb_h_run(cmd, &out), 1);
    ck_assert_msg(strstr(out, "Kafka and MQTT are both off"), "%s", out);
    free(out);
}
END_TEST

/* SIGTERM while Redis hangs (SIGSTOP) and three API requests wait on it: exit 0 within
 * 10 s (each waiting request used to add about 10 s). Last: it stops and resumes Redis. */
START_TEST(sigterm_with_redis_hung_and_requests_open)
{
    const char *more[] = {"--set", "mqtt.url=", NULL};
    pid_t pid = start_web("web-hung.log", more);
    ck_assert_int_eq(wait_status(port, "/healthz", 200, 20000), 200);
    ck_assert_int_eq(sb_h_kill(h.redis_pid, SIGSTOP), 0);
    int fds[3];
    for (int i = 0; i < 3; i++) {
        fds[i] = connect_to(port);
        ck_assert_int_ge(fds[i], 0);
        const char *req = "GET /api/metrics HTTP/1.0\r\n\r\n";
        ck_assert_int_eq(write(fds[i], req, strlen(req)), (ssize_t)strlen(req));
    }
    struct timespec pause = {0, 300 * 1000000L};
    nanosleep(&pause, NULL);
    int64_t t0 = sb_mono_ms();
    ck_assert_int_eq(sb_h_kill(pid, SIGTERM), 0);
    int st = 0, rc = sb_h_wait_exit(pid, 40000, &st);
    int64_t took = sb_mono_ms() - t0;
    sb_h_kill(h.redis_pid, SIGCONT);
    for (int i = 0; i < 3; i++) close(fds[i]);
    ck_assert_msg(rc == 0, "not stopped within 40 s");
    ck_assert_msg(took < 10000, "stopping took %lld ms", (long long)took);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d", st);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("web");
    TCase *tc = tcase_create("web");
    tcase_add_unchecked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, api_static_and_stream_over_mqtt);
    tcase_add_test(tc, no_web_root_and_stream_over_kafka);
    tcase_add_test(tc, sigterm_with_redis_hung_and_requests_open);
    suite_add_tcase(s, tc);
    return sb_h_run_suite(s, true);
}
