/* Integration-test harness: real redis-server, mosquitto and surveybus-devkafka on free
 * loopback ports in a temp dir, always torn down. See harness.h. */
#include "harness.h"
#include "config.h"
#include "record.h"
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static sb_h_t *active;     /* the harness torn down at exit or on a signal */
static pid_t children[64]; /* service processes started with sb_h_spawn, 0 when reaped */
static pid_t owner;        /* the process that started it (not Check's forked children) */
static int partitions_arg = 4;
static char topics_arg[1024];

static void msleep(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

int sb_h_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0) return -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) || getsockname(fd, (struct sockaddr *)&a, &len)) {
        close(fd);
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

static int tcp_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0) return -1;
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Forks and execs argv with stdout+stderr appended to logpath. The child dies with us. */
static pid_t spawn(const char *const argv[], const char *logpath)
{
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        setpgid(0, 0);
        int fd = open(logpath, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        int nul = open("/dev/null", O_RDONLY);
        if (nul >= 0) dup2(nul, 0);
        execvp(argv[0], (char *const *)argv);
        fprintf(stderr, "harness: exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    return pid;
}

/* SIGTERM, wait up to 10 s, then SIGKILL. */
static void reap(pid_t *pid)
{
    if (*pid <= 0) return;
    kill(*pid, SIGTERM);
    long deadline = now_ms() + 10000;
    while (now_ms() < deadline) {
        pid_t r = waitpid(*pid, NULL, WNOHANG);
        if (r == *pid || (r < 0 && errno == ECHILD)) {
            *pid = 0;
            return;
        }
        msleep(20);
    }
    kill(*pid, SIGKILL);
    waitpid(*pid, NULL, 0);
    *pid = 0;
}

static bool alive(pid_t pid)
{
    return pid > 0 && waitpid(pid, NULL, WNOHANG) == 0;
}

static void cleanup_at_exit(void)
{
    if (active && getpid() == owner) sb_h_stop(active);
}

static void on_signal(int sig)
{
    cleanup_at_exit();
    signal(sig, SIG_DFL);
    raise(sig);
}

const char *sb_h_bin(const char *name)
{
    static char path[PATH_MAX + 64];
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        /* <root>/build/tests/integration/test_x -> <root> */
        for (int up = 0; up < 4; up++) {
            char *slash = strrchr(exe, '/');
            if (!slash) break;
            *slash = '\0';
        }
        snprintf(path, sizeof path, "%s/bin/%s", exe, name);
        if (access(path, X_OK) == 0) return path;
    }
    snprintf(path, sizeof path, "bin/%s", name);
    return path;
}

/* ---------------------------------------------------------------- redis */

static bool redis_pong(int port)
{
    int fd = tcp_connect(port);
    if (fd < 0) return false;
    char buf[64] = {0};
    bool ok = write(fd, "PING\r\n", 6) == 6 && read(fd, buf, sizeof buf - 1) > 0 &&
              strncmp(buf, "+PONG", 5) == 0;
    close(fd);
    return ok;
}

int sb_h_redis_start(sb_h_t *h)
{
    char conf[512], data[300], log[300];
    snprintf(data, sizeof data, "%s/redis", h->dir);
    mkdir(data, 0755);
    snprintf(conf, sizeof conf, "%s/redis.conf", h->dir);
    snprintf(log, sizeof log, "%s/redis.log", h->dir);
    FILE *f = fopen(conf, "w");
    if (!f) return -1;
    fprintf(f,
            "port %d\nbind 127.0.0.1\nprotected-mode no\ndir %s\nappendonly yes\n"
            "appendfsync always\nsave \"\"\ndaemonize no\nlogfile \"\"\n",
            h->redis_port, data);
    fclose(f);
    const char *argv[] = {"redis-server", conf, NULL};
    h->redis_pid = spawn(argv, log);
    for (long deadline = now_ms() + 10000; now_ms() < deadline; msleep(20)) {
        /* "LOADING" replies are not PONG, so this also waits for the AOF to load */
        if (redis_pong(h->redis_port)) return 0;
        if (!alive(h->redis_pid)) break;
    }
    fprintf(stderr, "harness: redis-server did not start on port %d (log %s)\n", h->redis_port,
            log);
    return -1;
}

int sb_h_redis_stop(sb_h_t *h)
{
    reap(&h->redis_pid);
    return 0;
}

/* ---------------------------------------------------------------- mosquitto */

int sb_h_mqtt_start(sb_h_t *h)
{
    char conf[512], data[300], log[300];
    snprintf(data, sizeof data, "%s/mosquitto/", h->dir);
    mkdir(data, 0755);
    snprintf(conf, sizeof conf, "%s/mosquitto.conf", h->dir);
    snprintf(log, sizeof log, "%s/mosquitto.log", h->dir);
    FILE *f = fopen(conf, "w");
    if (!f) return -1;
    fprintf(f,
            "listener %d 127.0.0.1\nuser root\nallow_anonymous true\npersistence true\n"
            "persistence_location %s\nautosave_interval 1\nmax_queued_messages 0\n"
            "max_inflight_messages 0\nlog_dest stderr\nlog_type error\nlog_type warning\n",
            h->mqtt_port, data);
    fclose(f);
    const char *argv[] = {"mosquitto", "-c", conf, NULL};
    h->mqtt_pid = spawn(argv, log);
    for (long deadline = now_ms() + 10000; now_ms() < deadline; msleep(20)) {
        int fd = tcp_connect(h->mqtt_port);
        if (fd >= 0) {
            close(fd);
            return 0;
        }
        if (!alive(h->mqtt_pid)) break;
    }
    fprintf(stderr, "harness: mosquitto did not start on port %d (log %s)\n", h->mqtt_port, log);
    return -1;
}

int sb_h_mqtt_stop(sb_h_t *h)
{
    reap(&h->mqtt_pid);
    return 0;
}

/* ---------------------------------------------------------------- devkafka */

static int kafka_start(sb_h_t *h)
{
    char boot[300], log[300], parts[16];
    snprintf(boot, sizeof boot, "%s/kafka.bootstrap", h->dir);
    snprintf(log, sizeof log, "%s/devkafka.log", h->dir);
    snprintf(parts, sizeof parts, "%d", partitions_arg);
    unlink(boot);
    const char *argv[] = {sb_h_bin("surveybus-devkafka"), "--brokers", "1", "--partitions",
                    parts, "--topics", topics_arg, "--bootstrap-file", boot, NULL};
    h->kafka_pid = spawn(argv, log);
    /* topics are created one by one before the bootstrap file appears: allow for many */
    for (long deadline = now_ms() + 60000; now_ms() < deadline; msleep(20)) {
        FILE *f = fopen(boot, "r");
        if (f) {
            bool ok = fgets(h->kafka_bootstrap, sizeof h->kafka_bootstrap, f) != NULL;
            fclose(f);
            h->kafka_bootstrap[strcspn(h->kafka_bootstrap, "\r\n")] = '\0';
            if (ok && h->kafka_bootstrap[0]) return 0;
        }
        if (!alive(h->kafka_pid)) break;
    }
    fprintf(stderr, "harness: surveybus-devkafka did not start (log %s)\n", log);
    return -1;
}

int sb_h_kafka_down(sb_h_t *h)
{
    return h->kafka_pid > 0 ? kill(h->kafka_pid, SIGUSR1) : -1;
}

int sb_h_kafka_up(sb_h_t *h)
{
    return h->kafka_pid > 0 ? kill(h->kafka_pid, SIGUSR2) : -1;
}

/* ---------------------------------------------------------------- lifecycle */

int sb_h_start(sb_h_t *h, unsigned what, int partitions, const char *extra_topics)
{
    memset(h, 0, sizeof *h);
    snprintf(h->dir, sizeof h->dir, "%s/sbh.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(h->dir)) {
        fprintf(stderr, "harness: mkdtemp: %s\n", strerror(errno));
        return -1;
    }
    active = h;
    owner = getpid();
    static bool hooked;
    if (!hooked) {
        atexit(cleanup_at_exit);
        signal(SIGINT, on_signal);
        signal(SIGTERM, on_signal);
        signal(SIGHUP, on_signal);
        signal(SIGPIPE, SIG_IGN);
        hooked = true;
    }
    if (what & SB_H_REDIS) {
        h->redis_port = sb_h_free_port();
        snprintf(h->redis_url, sizeof h->redis_url, "redis://127.0.0.1:%d/0", h->redis_port);
        if (sb_h_redis_start(h)) goto fail;
    }
    if (what & SB_H_MQTT) {
        h->mqtt_port = sb_h_free_port();
        snprintf(h->mqtt_url, sizeof h->mqtt_url, "mqtt://127.0.0.1:%d", h->mqtt_port);
        if (sb_h_mqtt_start(h)) goto fail;
    }
    if (what & SB_H_KAFKA) {
        partitions_arg = partitions > 0 ? partitions : 4;
        snprintf(topics_arg, sizeof topics_arg,
                 "interactions,survey.requests,survey.responses,survey.metrics,survey.alerts,"
                 "surveybus.dlq%s%s",
                 extra_topics && *extra_topics ? "," : "", extra_topics ? extra_topics : "");
        if (kafka_start(h)) goto fail;
    }
    return 0;
fail:
    sb_h_stop(h);
    return -1;
}

static void rm_rf(const char *dir)
{
    char cmd[600];
    if (!dir[0] || strncmp(dir, "/", 1) != 0 || strstr(dir, "sbh.") == NULL) return;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    int rc = system(cmd);
    (void)rc;
}

void sb_h_stop(sb_h_t *h)
{
    for (size_t i = 0; i < sizeof children / sizeof children[0]; i++)
        if (children[i] > 0) {
            kill(children[i], SIGKILL);
            waitpid(children[i], NULL, 0);
            children[i] = 0;
        }
    reap(&h->kafka_pid);
    reap(&h->mqtt_pid);
    reap(&h->redis_pid);
    if (h->dir[0] && !getenv("SB_KEEP_TMP")) rm_rf(h->dir);
    h->dir[0] = '\0';
    if (active == h) active = NULL;
}

/* ---------------------------------------------------------------- helpers */

const char *sb_h_write_config(sb_h_t *h, const char *name, const char *extra)
{
    static char path[512];
    json_t *root = json_pack("{s:b, s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}}", "dev", 1,
                             "kafka", "brokers", h->kafka_bootstrap, "mqtt", "url",
                             h->mqtt_port ? h->mqtt_url : "", "redis", "url", h->redis_url,
                             "token", "secret", "integration-test-secret", "log", "level",
                             getenv("SB_TEST_LOG") ? getenv("SB_TEST_LOG") : "warn");
    if (extra) {
        json_error_t e;
        json_t *x = json_loads(extra, 0, &e);
        if (!x) {
            fprintf(stderr, "harness: bad extra config: %s\n", e.text);
            json_decref(root);
            return NULL;
        }
        json_object_update_recursive(root, x);
        json_decref(x);
    }
    snprintf(path, sizeof path, "%s/%s.json", h->dir, name);
    int rc = json_dump_file(root, path, JSON_INDENT(2));
    json_decref(root);
    return rc == 0 ? path : NULL;
}

int sb_h_run(const char *cmd, char **out)
{
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t len = 0, cap = 4096;
    char *buf = malloc(cap);
    size_t n;
    while (buf && (n = fread(buf + len, 1, cap - len - 1, p)) > 0) {
        len += n;
        if (cap - len < 1024) {
            char *nb = realloc(buf, cap *= 2);
            if (!nb) {
                free(buf);
                buf = NULL;
            }
            buf = nb;
        }
    }
    if (buf) buf[len] = '\0';
    int st = pclose(p);
    if (out)
        *out = buf;
    else
        free(buf);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* ---------------------------------------------------------------- service processes */

pid_t sb_h_spawn(sb_h_t *h, const char *const argv[], const char *logname)
{
    char log[600];
    if (logname[0] == '/')
        snprintf(log, sizeof log, "%s", logname);
    else
        snprintf(log, sizeof log, "%s/%s", h->dir, logname);
    pid_t pid = spawn(argv, log);
    if (pid <= 0) return -1;
    for (size_t i = 0; i < sizeof children / sizeof children[0]; i++)
        if (children[i] == 0) {
            children[i] = pid;
            break;
        }
    return pid;
}

int sb_h_kill(pid_t pid, int sig)
{
    return pid > 0 ? kill(pid, sig) : -1;
}

int sb_h_wait_exit(pid_t pid, int timeout_ms, int *status)
{
    long deadline = now_ms() + timeout_ms;
    for (;;) {
        int st = 0;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) {
            for (size_t i = 0; i < sizeof children / sizeof children[0]; i++)
                if (children[i] == pid) children[i] = 0;
            if (status) *status = st;
            return 0;
        }
        if (r < 0 || now_ms() >= deadline) return -1;
        msleep(10);
    }
}

int sb_h_run_suite(Suite *s, bool nofork)
{
    SRunner *sr = srunner_create(s);
    if (nofork) srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}

sb_config_t *sb_h_config(sb_h_t *h, const char *name, void *base_json, const char *extra,
                         char *path, size_t pathlen)
{
    json_t *base = base_json;
    ck_assert_ptr_nonnull(base);
    if (extra) {
        json_error_t je;
        json_t *x = json_loads(extra, 0, &je);
        ck_assert_msg(x != NULL, "bad extra config: %s", je.text);
        json_object_update_recursive(base, x);
        json_decref(x);
    }
    char *text = json_dumps(base, JSON_COMPACT);
    json_decref(base);
    const char *p = sb_h_write_config(h, name, text);
    free(text);
    ck_assert_ptr_nonnull(p);
    snprintf(path, pathlen, "%s", p);
    sb_problems_t probs = {0};
    sb_config_t *cfg = sb_config_load(path, NULL, 0, &probs);
    ck_assert_msg(cfg != NULL, "config: %s", probs.n ? probs.msg[0] : "?");
    sb_problems_clear(&probs);
    return cfg;
}

/* Writes a record under its survey id as the dispatcher would; returns the stored text with
 * its first byte set to the answered state, as a response claims it (caller frees). */
void sb_h_store_record(sb_store_t *st, const sb_record_t *r, const char *id)
{
    size_t len;
    char *v = sb_record_encode(r, &len);
    ck_assert_ptr_nonnull(v);
    char key[128];
    sb_store_key(st, key, sizeof key, "s:%s", id);
    redisReply *x = sb_store_cmd(st, "SET %s %b", key, v, len);
    ck_assert(x && x->type == REDIS_REPLY_STATUS);
    freeReplyObject(x);
    free(v);
}

/* Writes a fired survey record (channel ch, agent, region east) as the dispatcher would. */
void sb_h_fired(sb_store_t *st, const char *inter, sb_kind_t kind, const char *ch,
                const char *agent, sb_record_t *r, char id[SB_SURVEY_ID_LEN + 1])
{
    memset(r, 0, sizeof *r);
    r->state = SB_REC_FIRED;
    r->kind = kind;
    strcpy(r->journey, kind == SB_KIND_NPS ? "onboarding-nps" : "support-csat");
    snprintf(r->customer_id, sizeof r->customer_id, "c-%s", inter);
    snprintf(r->interaction_id, sizeof r->interaction_id, "%s", inter);
    snprintf(r->channel, sizeof r->channel, "%s", ch);
    strcpy(r->dim[SB_DIM_ALL], "all");
    snprintf(r->dim[SB_DIM_CHANNEL], sizeof r->dim[0], "%s", ch);
    snprintf(r->dim[SB_DIM_AGENT], sizeof r->dim[0], "%s", agent);
    strcpy(r->dim[SB_DIM_REGION], "east");
    strcpy(r->dim[SB_DIM_JOURNEY], r->journey);
    r->due_ms = sb_now_ms() - 3600000;
    r->expires_ms = sb_now_ms() + 72 * 3600000LL;
    sb_record_survey_id(inter, r->journey, id);
    sb_h_store_record(st, r, id);
}

long sb_h_log_sum(sb_h_t *h, const char *log, const char *pattern, int *lines)
{
    char path[600], line[4096];
    snprintf(path, sizeof path, "%s/%s", h->dir, log);
    FILE *f = fopen(path, "r");
    long sum = 0;
    if (lines) *lines = 0;
    if (!f) return 0;
    while (fgets(line, sizeof line, f)) {
        char *p = strstr(line, pattern);
        if (!p) continue;
        sum += strtol(p + strlen(pattern), NULL, 10);
        if (lines) (*lines)++;
    }
    fclose(f);
    return sum;
}

int sb_h_redis_config(sb_h_t *h, const char *what)
{
    char cmd[300], *out = NULL;
    snprintf(cmd, sizeof cmd, "redis-cli -p %d CONFIG SET %s", h->redis_port, what);
    int rc = sb_h_run(cmd, &out);
    bool ok = rc == 0 && out && strstr(out, "OK");
    free(out);
    return ok ? 0 : -1;
}
