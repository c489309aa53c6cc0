/* surveybus-devkafka: a development Kafka broker built on librdkafka's in-process mock cluster,
 * so a laptop or CI runs the whole pipeline without a JVM. It creates the topics, prints the
 * bootstrap servers, and serves until SIGTERM; SIGUSR1 / SIGUSR2 take every broker down / up
 * (used by the integration tests to simulate a broker outage). */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "log.h"
#include "util.h"

#define MAX_BROKERS 16
#define MAX_PARTITIONS 1024
#define MAX_TOPICS 256
#define TOPIC_NAME_MAX 249 /* Kafka's limit */

static const char *const default_topics =
    "interactions,survey.requests,survey.responses,survey.metrics,survey.alerts,surveybus.dlq";

static volatile sig_atomic_t run = 1;
static volatile sig_atomic_t want_down = 0;
static volatile sig_atomic_t want_up = 0;

static void on_signal(int sig)
{
    if (sig == SIGUSR1)
        want_down = 1;
    else if (sig == SIGUSR2)
        want_up = 1;
    else
        run = 0;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: surveybus-devkafka [--brokers N] [--partitions N] [--topics a,b,...]\n"
            "                          [--bootstrap-file F] [-c FILE] [-h] [--version]\n"
            "A development Kafka broker (librdkafka mock cluster) on loopback ports.\n"
            "  --brokers N         number of brokers (1..%d, default 1)\n"
            "  --partitions N      partitions per created topic (1..%d, default 4)\n"
            "  --topics LIST       comma-separated topics to create (default: %s)\n"
            "  --bootstrap-file F  also write the bootstrap servers to F (atomically)\n"
            "  -c FILE             accepted for uniformity with the other binaries; unused\n"
            "Prints the bootstrap servers as the first stdout line and serves until SIGTERM.\n"
            "SIGUSR1 takes every broker down (connections refused), SIGUSR2 brings them up.\n",
            MAX_BROKERS, MAX_PARTITIONS, default_topics);
}

/* Parses a decimal integer in [lo, hi]; returns 0 or -1. */
static int parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return -1;
    *out = (int)v;
    return 0;
}

/* Kafka topic names: 1..249 bytes of [A-Za-z0-9._-], not "." or "..". */
static int topic_name_ok(const char *t)
{
    size_t n = strlen(t);
    if (n == 0 || n > TOPIC_NAME_MAX || !strcmp(t, ".") || !strcmp(t, "..")) return 0;
    for (const char *p = t; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '_' || *p == '-'))
            return 0;
    return 1;
}

/* Writes text + '\n' to path via a temporary file and rename(2), so a reader never sees a
 * partial file. Returns 0 or -1 with err filled. */
static int write_atomic(const char *path, const char *text, char *err, size_t errlen)
{
    char tmp[PATH_MAX];
    FILE *f = NULL;
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return sb_fail(err, errlen, "bootstrap file path too long");
    f = fopen(tmp, "w");
    if (!f) return sb_fail(err, errlen, "%s: %s", tmp, strerror(errno));
    if (fprintf(f, "%s\n", text) < 0 || fflush(f) != 0 || fsync(fileno(f)) != 0) {
        sb_fail(err, errlen, "%s: %s", tmp, strerror(errno));
        goto fail;
    }
    if (fclose(f) != 0) {
        f = NULL;
        sb_fail(err, errlen, "%s: %s", tmp, strerror(errno));
        goto fail;
    }
    f = NULL;
    if (rename(tmp, path) != 0) {
        sb_fail(err, errlen, "rename %s: %s", path, strerror(errno));
        goto fail;
    }
    return 0;
fail:
    if (f) fclose(f);
    unlink(tmp);
    return -1;
}

/* Routes librdkafka's own log lines (from the host handle and the mock brokers) to our log. */
static void on_rdkafka_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    int l = level <= 3   ? SB_LOG_ERROR
            : level <= 4 ? SB_LOG_WARN
            : level <= 6 ? SB_LOG_INFO
                         : SB_LOG_DEBUG;
    if (!strcmp(fac, "CONFWARN")) l = SB_LOG_DEBUG; /* the host handle has no bootstrap.servers */
    sb_log(l, "rdkafka fac=%s msg=\"%s\"", fac, buf);
}

/* Splits the comma-separated list in place into names[]; returns the count or -1. */
static int split_topics(char *list, char **names, int max)
{
    int n = 0;
    char *save = NULL;
    for (char *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (!topic_name_ok(t)) {
            fprintf(stderr, "surveybus-devkafka: invalid topic name \"%s\"\n", t);
            return -1;
        }
        if (n == max) {
            fprintf(stderr, "surveybus-devkafka: more than %d topics\n", max);
            return -1;
        }
        names[n++] = t;
    }
    if (n == 0) {
        fprintf(stderr, "surveybus-devkafka: --topics is empty\n");
        return -1;
    }
    return n;
}

static void set_brokers(rd_kafka_mock_cluster_t *mc, int brokers, int up)
{
    for (int id = 1; id <= brokers; id++) {
        rd_kafka_resp_err_t e =
            up ? rd_kafka_mock_broker_set_up(mc, id) : rd_kafka_mock_broker_set_down(mc, id);
        if (e)
            sb_error("broker %s failed id=%d err=\"%s\"", up ? "up" : "down", id,
                     rd_kafka_err2str(e));
    }
    sb_info("brokers %s count=%d", up ? "up" : "down", brokers);
}

int main(int argc, char **argv)
{
    int brokers = 1, partitions = 4;
    const char *bootstrap_file = NULL;
    char *topic_list = NULL;
    char *topics[MAX_TOPICS];
    int n_topics;
    char errstr[512];
    rd_kafka_conf_t *conf = NULL;
    rd_kafka_t *rk = NULL;
    rd_kafka_mock_cluster_t *mc = NULL;
    int rc = 1;

    const char *lvl = getenv("SURVEYBUS_LOG_LEVEL");
    int level = lvl ? sb_log_level_parse(lvl) : SB_LOG_INFO;
    sb_log_init("devkafka", level < 0 ? SB_LOG_INFO : level);

    /* clang-format off */
    static const struct option opts[] = {
        {"brokers", required_argument, NULL, 'b'},
        {"partitions", required_argument, NULL, 'p'},
        {"topics", required_argument, NULL, 't'},
        {"bootstrap-file", required_argument, NULL, 'f'},
        {"config", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    /* clang-format on */
    int o;
    while ((o = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (o) {
        case 'b':
            if (parse_int(optarg, 1, MAX_BROKERS, &brokers)) {
                fprintf(stderr, "surveybus-devkafka: --brokers must be 1..%d\n", MAX_BROKERS);
                return 2;
            }
            break;
        case 'p':
            if (parse_int(optarg, 1, MAX_PARTITIONS, &partitions)) {
                fprintf(stderr, "surveybus-devkafka: --partitions must be 1..%d\n", MAX_PARTITIONS);
                return 2;
            }
            break;
        case 't':
            topic_list = optarg;
            break;
        case 'f':
            bootstrap_file = optarg;
            break;
        case 'c':
            break; /* devkafka reads no configuration */
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("surveybus-devkafka %s (librdkafka %s)\n", SB_VERSION, rd_kafka_version_str());
            return 0;
        default:
            fprintf(stderr, "Try 'surveybus-devkafka -h'.\n");
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "surveybus-devkafka: unexpected argument \"%s\"\n", argv[optind]);
        return 2;
    }
    topic_list = strdup(topic_list ? topic_list : default_topics);
    if (!topic_list) {
        fprintf(stderr, "surveybus-devkafka: out of memory\n");
        return 1;
    }
    n_topics = split_topics(topic_list, topics, MAX_TOPICS);
    if (n_topics < 0) {
        free(topic_list);
        return 2;
    }

    /* Block the signals before librdkafka starts its threads (they inherit the mask), so they
     * are only ever taken by the main thread inside ppoll(). */
    sigset_t block, orig;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGUSR1);
    sigaddset(&block, SIGUSR2);
    sigprocmask(SIG_BLOCK, &block, &orig);
    sigset_t waitmask = orig; /* the mask while waiting: ours unblocked, whatever was inherited */
    sigdelset(&waitmask, SIGTERM);
    sigdelset(&waitmask, SIGINT);
    sigdelset(&waitmask, SIGUSR1);
    sigdelset(&waitmask, SIGUSR2);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGUSR2, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "client.id", "surveybus-devkafka", errstr, sizeof errstr) !=
        RD_KAFKA_CONF_OK) {
        sb_error("config failed err=\"%s\"", errstr);
        goto fail;
    }
    rd_kafka_conf_set_log_cb(conf, on_rdkafka_log);
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!rk) {
        sb_error("rd_kafka_new failed err=\"%s\"", errstr);
        goto fail;
    }
    conf = NULL; /* owned by rk */

    mc = rd_kafka_mock_cluster_new(rk, brokers);
    if (!mc) {
        sb_error("mock cluster creation failed brokers=%d", brokers);
        goto fail;
    }
    for (int i = 0; i < n_topics; i++) {
        rd_kafka_resp_err_t e = rd_kafka_mock_topic_create(mc, topics[i], partitions, 1);
        if (e) {
            sb_error("topic creation failed topic=%s err=\"%s\"", topics[i], rd_kafka_err2str(e));
            goto fail;
        }
    }

    const char *boot = rd_kafka_mock_cluster_bootstraps(mc);
    if (bootstrap_file && write_atomic(bootstrap_file, boot, errstr, sizeof errstr)) {
        sb_error("bootstrap file failed err=\"%s\"", errstr);
        goto fail;
    }
    if (printf("%s\n", boot) < 0 || fflush(stdout) != 0) {
        sb_error("stdout write failed err=\"%s\"", strerror(errno));
        goto fail;
    }
    sb_info("serving bootstrap=%s brokers=%d partitions=%d topics=%d", boot, brokers, partitions,
            n_topics);

    while (run) {
        if (want_down) {
            want_down = 0;
            set_brokers(mc, brokers, 0);
        }
        if (want_up) {
            want_up = 0;
            set_brokers(mc, brokers, 1);
        }
        rd_kafka_poll(rk, 0);
        /* Signals are unblocked only while waiting here, so none is missed between the flag
         * checks above and the wait. */
        struct timespec ts = {1, 0};
        if (ppoll(NULL, 0, &ts, &waitmask) < 0 && errno != EINTR) {
            sb_error("ppoll failed err=\"%s\"", strerror(errno));
            goto fail;
        }
    }
    sb_info("shutting down");
    if (bootstrap_file) unlink(bootstrap_file);
    rc = 0;

fail:
    if (mc) rd_kafka_mock_cluster_destroy(mc);
    if (rk) rd_kafka_destroy(rk);
    if (conf) rd_kafka_conf_destroy(conf);
    free(topic_list);
    return rc;
}
