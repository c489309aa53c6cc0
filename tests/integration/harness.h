/* Integration-test harness: starts the real redis-server, mosquitto and surveybus-devkafka on
 * free loopback ports in a private temp dir, waits until each answers, and always tears them
 * down (at exit, on SIGINT/SIGTERM, and on test failure). Not thread-safe; one per process. */
#ifndef SB_HARNESS_H
#define SB_HARNESS_H

#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <stdbool.h>
#include <sys/types.h>

#include "config.h"
#include "record.h"
#include "store.h"

enum { SB_H_REDIS = 1, SB_H_MQTT = 2, SB_H_KAFKA = 4, SB_H_ALL = 7 };

typedef struct sb_h {
    char dir[256];             /* temp dir holding data, logs and configs */
    int redis_port, mqtt_port; /* 0 when not started */
    char kafka_bootstrap[256]; /* "127.0.0.1:p1,..." or "" */
    char redis_url[64];        /* "redis://127.0.0.1:port/0" */
    char mqtt_url[64];         /* "mqtt://127.0.0.1:port" */
    pid_t redis_pid, mqtt_pid, kafka_pid;
} sb_h_t;

/* Starts the servers in `what` (SB_H_* bits). devkafka gets `partitions` partitions per topic
 * for the default topics (interactions, survey.requests, survey.responses, survey.metrics,
 * survey.alerts, surveybus.dlq) plus any in extra_topics ("a,b" or NULL). Returns 0 or -1
 * (the reason printed on stderr). Redis runs with appendonly yes, appendfsync always. */
int sb_h_start(sb_h_t *h, unsigned what, int partitions, const char *extra_topics);
/* Stops everything and removes the temp dir (keeps it when SB_KEEP_TMP is set). */
void sb_h_stop(sb_h_t *h);

/* Stops / starts one server again on the same port and data dir (Redis reloads its AOF). */
int sb_h_redis_stop(sb_h_t *h);
int sb_h_redis_start(sb_h_t *h);
int sb_h_mqtt_stop(sb_h_t *h);
int sb_h_mqtt_start(sb_h_t *h);
/* Takes every devkafka broker down (connections refused) or up again; data is kept. */
int sb_h_kafka_down(sb_h_t *h);
int sb_h_kafka_up(sb_h_t *h);

/* Writes a config file into h->dir pointing at the started servers, with `extra` (a JSON
 * object text of further top-level keys, or NULL) merged over it; returns its path
 * (static buffer inside h's dir naming). */
const char *sb_h_write_config(sb_h_t *h, const char *name, const char *extra);

/* A test's configuration: base (a JSON object, consumed) with extra (a JSON object text, or
 * NULL) merged over it, written with sb_h_write_config under name and loaded; its path is
 * copied into path. Fails the running test on any problem. */
sb_config_t *sb_h_config(sb_h_t *h, const char *name, void *base, const char *extra,
                         char *path, size_t pathlen);

/* Survey records for aggregator-side tests. sb_h_store_record writes r under s:<id> as the
 * dispatcher would. sb_h_fired fills r as a fired survey of interaction inter (channel ch,
 * the agent, region east, journey support-csat or onboarding-nps) and stores it. */
void sb_h_store_record(sb_store_t *st, const sb_record_t *r, const char *id);
void sb_h_fired(sb_store_t *st, const char *inter, sb_kind_t kind, const char *ch,
                const char *agent, sb_record_t *r, char id[SB_SURVEY_ID_LEN + 1]);

/* CONFIG SET on the harness' Redis, e.g. "maxmemory 1". Returns 0 or -1. */
int sb_h_redis_config(sb_h_t *h, const char *what);

/* Sum of N over the lines "... <pattern>N ..." of the log file `log` in h->dir; *lines (may
 * be NULL) gets the number of lines containing pattern. A missing file sums to 0. */
long sb_h_log_sum(sb_h_t *h, const char *log, const char *pattern, int *lines);

/* Runs a command line through /bin/sh with the output captured into a malloc'd string
 * (caller frees); returns the exit status or -1. */
int sb_h_run(const char *cmd, char **out);

/* Path of a built binary ("bin/surveybus-dispatcher"), resolved from the repo root. */
const char *sb_h_bin(const char *name);

/* Starts argv (argv[0] a path or a name on $PATH) as a child process in its own process
 * group, stdout and stderr appended to the file logname inside h->dir (or to logname itself
 * when it starts with '/'), stdin from /dev/null. The child gets SIGKILL when the spawning
 * thread ends, and sb_h_stop kills any spawned child still running. Returns the pid or -1. */
pid_t sb_h_spawn(sb_h_t *h, const char *const argv[], const char *logname);
/* A loopback TCP port that was free a moment ago, or -1. */
int sb_h_free_port(void);
/* Sends sig to a spawned child. Returns 0 or -1. */
int sb_h_kill(pid_t pid, int sig);
/* Waits up to timeout_ms for a spawned child to exit and reaps it; *status (may be NULL)
 * gets its waitpid status. Returns 0 when it exited, -1 on timeout (it is still running). */
int sb_h_wait_exit(pid_t pid, int timeout_ms, int *status);

/* Runs every test of s (in this process when nofork: the tests restart servers or keep
 * harness state that a forked test process would take with it), frees the runner and
 * returns the process exit status: 0 when all passed. */
int sb_h_run_suite(Suite *s, bool nofork);

/* Adds test t to tc, unless SB_TEST_ONLY=<substring> is set and t's name does not contain
 * it (to run a few tests of a long suite). */
#define SB_H_ADD(tc, t)                                                                            \
    do {                                                                                           \
        const char *only_ = getenv("SB_TEST_ONLY");                                                \
        if (!only_ || strstr(#t, only_)) tcase_add_test(tc, t);                                    \
    } while (0)

#endif
