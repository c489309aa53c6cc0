/* surveybusctl against a real redis-server: surveys pending / show / cancel and stats read
 * what the schedule holds, in human and --json form; check-config exit codes; metrics and
 * watch read the aggregator's window totals, filled here through sb_tally_apply. */
#include <check.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "harness.h"
#include "record.h"
#include "schedule.h"
#include "store.h"
#include "tally.h"
#include "util.h"

static sb_h_t h;
static const char *cfg_path;
static char ctl[1200];

static const char JOURNEYS[] =
    "{\"journeys\":[{\"name\":\"support-csat\",\"on\":{\"kind\":\"support_ticket\"},"
    "\"survey\":\"csat\",\"delay\":\"1h\",\"channel\":\"email\"},"
    "{\"name\":\"onboarding-nps\",\"on\":{\"kind\":\"onboarding\"},\"survey\":\"nps\","
    "\"delay\":\"30d\"}]}";

static void setup(void)
{
    if (sb_h_start(&h, SB_H_REDIS, 0, NULL) != 0) exit(1);
    cfg_path = sb_h_write_config(&h, "ctl", JOURNEYS);
    if (!cfg_path) exit(1);
    snprintf(ctl, sizeof ctl, "%s -c %s", sb_h_bin("surveybusctl"), cfg_path);
}

static void teardown(void)
{
    sb_h_stop(&h);
}

/* Runs "surveybusctl -c CFG <args>", returns its exit status and stdout (caller frees). */
static int run_ctl(const char *args, char **out)
{
    char cmd[2000];
    snprintf(cmd, sizeof cmd, "%s %s 2>/dev/null", ctl, args);
    return sb_h_run(cmd, out);
}

/* Loads the test configuration and connects to its Redis; the caller frees both. */
static void open_store(sb_config_t **cfg, sb_store_t **st)
{
    sb_problems_t p = {0};
    *cfg = sb_config_load(cfg_path, NULL, 0, &p);
    ck_assert_msg(*cfg != NULL, "%s", p.n ? p.msg[0] : "");
    char err[256];
    *st = sb_store_new(*cfg, err, sizeof err);
    ck_assert_msg(*st != NULL, "%s", err);
}

/* Schedules three surveys directly through the schedule module: two for customer c-1. */
static void schedule_three(char ids[3][SB_SURVEY_ID_LEN + 1])
{
    sb_config_t *cfg;
    sb_store_t *st;
    open_store(&cfg, &st);
    sb_sched_t *s = sb_sched_new(st, cfg);
    static const char *cust[] = {"c-1", "c-2", "c-1"};
    static const char *inter[] = {"t-1", "t-2", "t-3"};
    sb_record_t r[3];
    sb_sched_op_t ops[3];
    int64_t now = sb_now_ms();
    for (int i = 0; i < 3; i++) {
        memset(&r[i], 0, sizeof r[i]);
        r[i].state = SB_REC_PENDING;
        r[i].kind = SB_KIND_CSAT;
        strcpy(r[i].journey, "support-csat");
        strcpy(r[i].customer_id, cust[i]);
        strcpy(r[i].interaction_id, inter[i]);
        strcpy(r[i].channel, "email");
        strcpy(r[i].dim[SB_DIM_REGION], "east");
        strcpy(r[i].dim[SB_DIM_AGENT], "\xe5\xbc\xa0\xe4\xbc\x9f"); /* 张伟 */
        r[i].due_ms = now + 3600000 + i * 1000;
        r[i].expires_ms = r[i].due_ms + 72 * 3600000LL;
        ops[i] = (sb_sched_op_t){SB_SCHED_ADD, &r[i], 0};
        sb_record_survey_id(inter[i], "support-csat", ids[i]);
    }
    sb_sched_count_t counts[] = {{"consumed", 3}};
    ck_assert_int_eq(sb_sched_apply(s, ops, 3, counts, 1, NULL, now), 0);
    sb_sched_free(s);
    sb_store_free(st);
    sb_config_free(cfg);
}

START_TEST(surveys_and_stats)
{
    char ids[3][SB_SURVEY_ID_LEN + 1];
    schedule_three(ids);
    char *out = NULL;

    /* pending, human form: a header, three rows, a count */
    ck_assert_int_eq(run_ctl("surveys pending", &out), 0);
    for (int i = 0; i < 3; i++) ck_assert_msg(strstr(out, ids[i]) != NULL, "%s", out);
    ck_assert_ptr_nonnull(strstr(out, "3 pending"));
    free(out);

    /* pending for one customer, --json: exactly c-1's two surveys, earliest first */
    ck_assert_int_eq(run_ctl("--json surveys pending --customer c-1", &out), 0);
    json_error_t e;
    json_t *list = json_loads(out, 0, &e);
    ck_assert_msg(json_is_array(list), "%s", out);
    ck_assert_uint_eq(json_array_size(list), 2);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(list, 0), "survey_id")),
                     ids[0]);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(list, 1), "survey_id")),
                     ids[2]);
    json_t *dims = json_object_get(json_array_get(list, 0), "dims");
    ck_assert_str_eq(json_string_value(json_object_get(dims, "agent")), "\xe5\xbc\xa0\xe4\xbc\x9f");
    json_decref(list);
    free(out);

    /* show one */
    char args[200];
    snprintf(args, sizeof args, "--json surveys show %s", ids[1]);
    ck_assert_int_eq(run_ctl(args, &out), 0);
    json_t *o = json_loads(out, 0, &e);
    ck_assert_str_eq(json_string_value(json_object_get(o, "state")), "pending");
    ck_assert_str_eq(json_string_value(json_object_get(o, "customer_id")), "c-2");
    ck_assert_str_eq(json_string_value(json_object_get(o, "kind")), "csat");
    json_decref(o);
    free(out);
    ck_assert_int_eq(run_ctl("surveys show 000000000000000000000000", &out), 1);
    free(out);

    /* cancel one: gone from pending, state cancelled, counted; a second cancel fails */
    snprintf(args, sizeof args, "surveys cancel %s", ids[1]);
    ck_assert_int_eq(run_ctl(args, &out), 0);
    ck_assert_ptr_nonnull(strstr(out, "cancelled"));
    free(out);
    ck_assert_int_eq(run_ctl(args, &out), 1);
    free(out);
    snprintf(args, sizeof args, "--json surveys show %s", ids[1]);
    ck_assert_int_eq(run_ctl(args, &out), 0);
    o = json_loads(out, 0, &e);
    ck_assert_str_eq(json_string_value(json_object_get(o, "state")), "cancelled");
    json_decref(o);
    free(out);
    ck_assert_int_eq(run_ctl("surveys pending", &out), 0);
    ck_assert_ptr_nonnull(strstr(out, "2 pending"));
    free(out);

    /* a record this version cannot read: left out, said so, exit 1 (the listing has a hole) */
    sb_config_t *cfg;
    sb_store_t *st;
    open_store(&cfg, &st);
    char key[300];
    sb_store_key(st, key, sizeof key, "s:%s", ids[2]);
    freeReplyObject(sb_store_cmd(st, "SET %s %s", key, "p\x1f" "9\x1f" "from-the-future"));
    char cmd[2000];
    snprintf(cmd, sizeof cmd, "%s surveys pending 2>&1", ctl);
    ck_assert_int_eq(sb_h_run(cmd, &out), 1);
    ck_assert_msg(strstr(out, "1 pending") && strstr(out, "1 scheduled record could not be read"),
                  "%s", out);
    free(out);
    snprintf(args, sizeof args, "surveys show %s 2>&1", ids[2]);
    ck_assert_int_eq(run_ctl(args, &out), 1);
    free(out);
    freeReplyObject(sb_store_cmd(st, "DEL %s", key));
    sb_store_free(st);
    sb_config_free(cfg);

    /* stats: the counters the schedule wrote */
    ck_assert_int_eq(run_ctl("--json stats", &out), 0);
    o = json_loads(out, 0, &e);
    json_t *d = json_object_get(o, "dispatcher");
    ck_assert_msg(json_is_object(d), "%s", out);
    ck_assert_int_eq(json_integer_value(json_object_get(d, "consumed")), 3);
    ck_assert_int_eq(
        json_integer_value(json_object_get(json_object_get(d, "scheduled"), "support-csat")), 3);
    ck_assert_int_eq(
        json_integer_value(json_object_get(json_object_get(d, "cancelled"), "support-csat")), 1);
    ck_assert_int_eq(json_integer_value(json_object_get(d, "schedule_timers")), 2);
    json_decref(o);
    free(out);
    ck_assert_int_eq(run_ctl("stats", &out), 0);
    ck_assert_ptr_nonnull(strstr(out, "cancelled"));
    free(out);

    /* usage errors; a --limit too large to hold in memory is one too (it used to exit 1
     * saying nothing), and so is one that is not a whole number */
    ck_assert_int_eq(run_ctl("surveys frobnicate", &out), 2);
    free(out);
    static const char *const bad_limits[] = {"0", "-1", "abc", "5x", "99999999999", "10001"};
    for (size_t i = 0; i < sizeof bad_limits / sizeof bad_limits[0]; i++) {
        char args[64], cmd[1300];
        snprintf(args, sizeof args, "surveys pending --limit %s", bad_limits[i]);
        ck_assert_msg(run_ctl(args, &out) == 2, "%s", args);
        free(out);
        snprintf(cmd, sizeof cmd, "%s %s 2>&1", ctl, args);
        sb_h_run(cmd, &out);
        ck_assert_msg(strstr(out, "--limit N (1..10000)"), "%s: %s", args, out);
        free(out);
    }
    ck_assert_int_eq(run_ctl("surveys pending --limit 10000", &out), 0);
    free(out);
}
END_TEST

/* A wrong "surveys pending" option is a usage error (exit 2) also while Redis is down, as
 * metrics' names are: it is found before Redis is reached, not hidden behind "cannot reach
 * redis" (exit 1) after the connection attempts */
START_TEST(surveys_usage_without_redis)
{
    static const char *const bad[] = {"surveys pending --limit 0", "surveys pending --bogus",
                                      "surveys pending --customer"};
    char cmd[1600], *out = NULL;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(cmd, sizeof cmd, "%s --set redis.url=redis://127.0.0.1:1/0 %s 2>&1", ctl,
                 bad[i]);
        int rc = sb_h_run(cmd, &out);
        ck_assert_msg(rc == 2 && strstr(out, "surveys pending [--customer C]") &&
                          !strstr(out, "cannot reach redis"),
                      "%s: exit %d: %s", bad[i], rc, out);
        free(out);
    }
}
END_TEST

/* A cancel that Redis refuses (writes stopped, here for want of replicas: PING still
 * answers) is reported as a failure with Redis' reason, not as "is not pending (nothing
 * cancelled)", and the survey is still pending and cancellable once Redis takes writes */
START_TEST(surveys_cancel_refused)
{
    char ids[3][SB_SURVEY_ID_LEN + 1];
    schedule_three(ids);
    char cmd[1600], *out = NULL;
    snprintf(cmd, sizeof cmd, "%s surveys cancel %s 2>&1", ctl, ids[0]);
    ck_assert_int_eq(sb_h_redis_config(&h, "min-replicas-to-write 1"), 0);
    int rc = sb_h_run(cmd, &out);
    ck_assert_int_eq(sb_h_redis_config(&h, "min-replicas-to-write 0"), 0);
    ck_assert_msg(rc == 1 && !strstr(out, "not pending") && strstr(out, "NOREPLICAS"), "exit %d: %s",
                  rc, out);
    free(out);
    snprintf(cmd, sizeof cmd, "%s --json surveys cancel %s 2>/dev/null", ctl, ids[2]);
    ck_assert_int_eq(sb_h_redis_config(&h, "min-replicas-to-write 1"), 0);
    rc = sb_h_run(cmd, &out);
    ck_assert_int_eq(sb_h_redis_config(&h, "min-replicas-to-write 0"), 0);
    json_t *o = json_loads(out, 0, NULL);
    ck_assert_msg(rc == 1 && json_is_false(json_object_get(o, "cancelled")) &&
                      json_is_string(json_object_get(o, "error")),
                  "exit %d: %s", rc, out);
    json_decref(o);
    free(out);
    snprintf(cmd, sizeof cmd, "%s surveys cancel %s 2>&1", ctl, ids[0]);
    ck_assert_int_eq(sb_h_run(cmd, &out), 0);
    ck_assert_msg(strstr(out, "cancelled "), "%s", out);
    free(out);
}
END_TEST

/* stats lists every counter of the contract even before its first increment (a counter
 * exists in Redis only from then on): an empty prefix shows them all, at 0 */
START_TEST(stats_lists_zero_counters)
{
    char *out = NULL;
    ck_assert_int_eq(run_ctl("--set redis.prefix=fresh: --json stats", &out), 0);
    json_error_t e;
    json_t *o = json_loads(out, 0, &e);
    json_t *d = json_object_get(o, "dispatcher"), *a = json_object_get(o, "aggregator");
    ck_assert_msg(json_is_object(d) && json_is_object(a), "%s", out);
    static const char *const d_num[] = {"consumed", "duplicate"};
    static const char *const d_obj[] = {"scheduled", "fired", "suppressed", "dlq"};
    static const char *const a_num[] = {"duplicate", "late"};
    static const char *const a_obj[] = {"consumed", "counted", "dlq"};
    for (size_t i = 0; i < 2; i++) {
        ck_assert_msg(json_is_integer(json_object_get(d, d_num[i])), "%s: %s", d_num[i], out);
        ck_assert_int_eq(json_integer_value(json_object_get(d, d_num[i])), 0);
        ck_assert_msg(json_is_integer(json_object_get(a, a_num[i])), "%s: %s", a_num[i], out);
        ck_assert_int_eq(json_integer_value(json_object_get(a, a_num[i])), 0);
    }
    for (size_t i = 0; i < 4; i++)
        ck_assert_msg(json_is_object(json_object_get(d, d_obj[i])), "%s: %s", d_obj[i], out);
    for (size_t i = 0; i < 3; i++)
        ck_assert_msg(json_is_object(json_object_get(a, a_obj[i])), "%s: %s", a_obj[i], out);
    json_decref(o);
    free(out);
    ck_assert_int_eq(run_ctl("--set redis.prefix=fresh: stats", &out), 0);
    ck_assert_msg(strstr(out, "suppressed") && strstr(out, "late"), "%s", out);
    free(out);
}
END_TEST

/* the text view totals a group over every level below it: suppressed counters are kept by
 * journey and reason (two levels) */
START_TEST(stats_text_totals_nested_groups)
{
    sb_config_t *cfg;
    sb_store_t *st;
    open_store(&cfg, &st);
    redisReply *r = sb_store_cmd(st, "HSET nest:stats:dispatcher suppressed|jn|min_gap 2 "
                                     "suppressed|jn|max_per_30d 1 suppressed|jc|min_gap 4");
    ck_assert_ptr_nonnull(r);
    freeReplyObject(r);
    sb_store_free(st);
    sb_config_free(cfg);
    char *out = NULL;
    ck_assert_int_eq(run_ctl("--set redis.prefix=nest: stats", &out), 0);
    /* "  suppressed   7", then "    jn   3" and "    jc   4" */
    char line[64];
    snprintf(line, sizeof line, "  %-28s %d\n", "suppressed", 7);
    ck_assert_msg(strstr(out, line), "%s", out);
    snprintf(line, sizeof line, "    %-28s %d\n", "jn", 3);
    ck_assert_msg(strstr(out, line), "%s", out);
    free(out);
}
END_TEST

START_TEST(check_config_exit_codes)
{
    char *out = NULL;
    ck_assert_int_eq(run_ctl("check-config", &out), 0);
    ck_assert_ptr_nonnull(strstr(out, "config OK: 2 journeys"));
    free(out);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "%s -c %s --set journeys[0].delay=5x --set publish.interval_ms=oops "
                              "check-config", sb_h_bin("surveybusctl"), cfg_path);
    ck_assert_int_eq(sb_h_run(cmd, &out), 1);
    ck_assert_msg(strstr(out, "journeys[0].delay") && strstr(out, "publish.interval_ms"), "%s", out);
    free(out);
    /* a service, or another command, says why in one line (SPEC §1): the first problem and
     * how many more check-config lists */
    static const char *const bin[] = {"surveybus-dispatcher", "surveybusctl"};
    for (int i = 0; i < 2; i++) {
        snprintf(cmd, sizeof cmd,
                 "%s -c %s --set journeys[0].delay=5x --set "
                 "publish.interval_ms=oops%s 2>&1",
                 sb_h_bin(bin[i]), cfg_path, i ? " stats" : "");
        ck_assert_int_eq(sb_h_run(cmd, &out), 1);
        const char *nl = strchr(out, '\n');
        ck_assert_msg(nl && nl[1] == '\0', "%s: not one line:\n%s", bin[i], out);
        ck_assert_msg(strstr(out, "journeys[0].delay") && !strstr(out, "publish.interval_ms") &&
                          strstr(out, " (and 1 more; run surveybusctl check-config)\n"),
                      "%s: %s", bin[i], out);
        free(out);
    }
    snprintf(cmd, sizeof cmd, "%s -c %s --set publish.interval_ms=oops 2>&1",
             sb_h_bin("surveybus-aggregator"), cfg_path);
    ck_assert_int_eq(sb_h_run(cmd, &out), 1);
    ck_assert_msg(strstr(out, "publish.interval_ms") && !strstr(out, "more;") &&
                      strchr(out, '\n') == out + strlen(out) - 1,
                  "%s", out);
    free(out);
    /* a start-up failure says why even with logging off: a kafka.properties entry that
     * librdkafka refuses (found only when the service starts) */
    static const char *const svc[] = {"surveybus-dispatcher", "surveybus-aggregator"};
    for (int i = 0; i < 2; i++) {
        snprintf(cmd, sizeof cmd,
                 "%s -c %s --set log.level=off --set mqtt.url= --set kafka.brokers=127.0.0.1:1 "
                 "--set 'kafka.properties={\"bogus.prop\":\"1\"}' 2>&1",
                 sb_h_bin(svc[i]), cfg_path);
        ck_assert_int_eq(sb_h_run(cmd, &out), 1);
        ck_assert_msg(strstr(out, " error ") && strstr(out, "cannot start: kafka.properties.bogus.prop"),
                      "%s: %s", svc[i], out);
        free(out);
    }
    /* unreachable Redis: a clear failure, not a hang */
    snprintf(cmd, sizeof cmd, "%s -c %s --set redis.url=redis://127.0.0.1:1/0 stats 2>&1",
             sb_h_bin("surveybusctl"), cfg_path);
    ck_assert_int_eq(sb_h_run(cmd, &out), 1);
    ck_assert_msg(strstr(out, "cannot reach redis") && strstr(out, "Connection refused") &&
                      !strstr(out, "next attempt"),
                  "%s", out);
    free(out);
}
END_TEST

/* check-config --json prints its one object whatever bytes the file's name holds (a name
 * that is not UTF-8 made jansson refuse the whole object, and nothing was printed, with exit
 * status 0): the name's other bytes are kept, each invalid one shown as '?' */
START_TEST(check_config_json_file_name_not_utf8)
{
    char path[600], cmd[1600], *out = NULL;
    snprintf(path, sizeof path, "%s/ctl-\xff.json", h.dir);
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", cfg_path, path);
    ck_assert_int_eq(sb_h_run(cmd, &out), 0);
    free(out);
    for (int missing = 0; missing < 2; missing++) {
        snprintf(cmd, sizeof cmd, "%s --json check-config -c '%s%s' 2>/dev/null",
                 sb_h_bin("surveybusctl"), path, missing ? ".gone" : "");
        int rc = sb_h_run(cmd, &out);
        json_t *o = json_loads(out, 0, NULL);
        const char *file = json_string_value(json_object_get(o, "file"));
        ck_assert_msg(rc == missing && json_is_boolean(json_object_get(o, "ok")) && file &&
                          strstr(file, "/ctl-?.json"),
                      "exit %d: %s", rc, out);
        json_decref(o);
        free(out);
    }
}
END_TEST

/* The services take the option forms surveybusctl takes (configuration.md §1.3):
 * "--config=FILE" and "--set=path=value" as well as "-c FILE" and "--set path=value"; a
 * wrong command line exits 2, as surveybusctl's does, a bad configuration 1. */
START_TEST(service_option_forms)
{
    static const char *const svc[] = {"surveybus-dispatcher", "surveybus-aggregator",
                                      "surveybus-web"};
    char cmd[1200], *out = NULL;
    for (int i = 0; i < 3; i++) {
        snprintf(cmd, sizeof cmd, "%s --config=%s --set=publish.interval_ms=oops 2>&1",
                 sb_h_bin(svc[i]), cfg_path);
        ck_assert_int_eq(sb_h_run(cmd, &out), 1);
        ck_assert_msg(strstr(out, "publish.interval_ms: expected integer") &&
                          strstr(out, cfg_path),
                      "%s: %s", svc[i], out);
        free(out);
        snprintf(cmd, sizeof cmd, "%s -c %s --bogus 2>&1", sb_h_bin(svc[i]), cfg_path);
        ck_assert_int_eq(sb_h_run(cmd, &out), 2);
        ck_assert_msg(strstr(out, "'--bogus'"), "%s: %s", svc[i], out);
        free(out);
        snprintf(cmd, sizeof cmd, "%s -c 2>&1", sb_h_bin(svc[i]));
        ck_assert_int_eq(sb_h_run(cmd, &out), 2);
        free(out);
    }
    /* simulate's numbers are whole arguments and finite: "--rate inf" used to run and print
     * no --json summary (jansson refuses inf), "5x" was read as 5 */
    static const char *const sim[] = {"--rate inf",    "--rate 5x",      "--rate 1e300",
                                      "--respond nan", "--respond 0.5x", "--rate 5 extra"};
    for (size_t i = 0; i < sizeof sim / sizeof sim[0]; i++) {
        char args[100];
        snprintf(args, sizeof args, "simulate %s --duration 1s", sim[i]);
        ck_assert_msg(run_ctl(args, &out) == 2, "%s", args);
        free(out);
    }
    /* so are dlq replay's: "--limit 5x" was read as 5, a stray argument ignored */
    ck_assert_int_eq(run_ctl("dlq replay --dry-run --limit 5x", &out), 2);
    free(out);
    ck_assert_int_eq(run_ctl("dlq replay --dry-run everything", &out), 2);
    free(out);
}
END_TEST

/* ---------------------------------------------------------------- metrics and watch */

/* Runs "surveybusctl -c CFG <args>" and expects its exit status and, when text is not NULL,
 * text in its output (stdout or stderr, where the reasons of failures go). */
static void expect_status(const char *args, int status, const char *text)
{
    char cmd[2000], *out = NULL;
    snprintf(cmd, sizeof cmd, "%s %s 2>&1", ctl, args);
    int rc = sb_h_run(cmd, &out);
    const char *o = out ? out : "";
    ck_assert_msg(rc == status, "%s: exit status %d, want %d:\n%s", args, rc, status, o);
    ck_assert_msg(!text || strstr(o, text), "%s: no \"%s\" in:\n%s", args, text, o);
    free(out);
}


/* Fills the window totals a minute ago, as the aggregator would count them:
 *  - CSAT 5, 4, 2 on channel email (scale 1..5, satisfied >= 4): count 3, 2 satisfied,
 *    score 100 * 2 / 3 = 66.67; requests were sent for these three: response_rate 3 / 3;
 *  - NPS 10 on channel sms: one promoter, score 100, moe95 0 (no spread); no request, so
 *    its response_rate has 1 response over 0 requests: count 1, score null;
 *  - a KPI event on channel email: first response after 30 s (frt mean and p90 30), resolved
 *    at first contact (fcr 1 of 1: 100), not transferred (transfer_rate 0 of 1: 0);
 *  - the email 5 again (a duplicate) and 2 dead letters passed as counters.
 * Every item is also in "all|all", "region|east" and its journey's slice, and in an agent's:
 * the CSAT 5 is ana's, the 4 and the 2 are bartholomew-gonzalez's (20 characters), the NPS 10
 * is christopher-alexander-hamilton's (30 characters, more than watch shows). */
static void tally_fixture(void)
{
    sb_config_t *cfg;
    sb_store_t *st;
    open_store(&cfg, &st);
    sb_tally_t *t = sb_tally_new(st, cfg);
    static const char *const inter[] = {"m-1", "m-2", "m-3", "m-4"};
    static const int score[] = {5, 4, 2, 10};
    static const char *const agent[] = {"ana", "bartholomew-gonzalez", "bartholomew-gonzalez",
                                        "christopher-alexander-hamilton"};
    sb_record_t r[4];
    char id[4][SB_SURVEY_ID_LEN + 1];
    sb_tally_item_t items[9];
    int64_t now = sb_now_ms(), ts = now - 60000;
    memset(items, 0, sizeof items);
    for (int i = 0; i < 4; i++) {
        sb_kind_t kind = i < 3 ? SB_KIND_CSAT : SB_KIND_NPS;
        sb_h_fired(st, inter[i], kind, i < 3 ? "email" : "sms", agent[i], &r[i], id[i]);
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
        it->ts_ms = ts;
        it->kind = kind;
        it->score = score[i];
        if (i < 3) { /* its request */
            items[4 + i] = *it;
            items[4 + i].type = SB_TALLY_REQUEST;
        }
    }
    items[7] = items[0];
    items[7].type = SB_TALLY_KPI;
    items[7].id = "kpi-1";
    items[7].has_frt = true;
    items[7].frt_key = 30;
    items[7].frt_ms = 30000;
    items[7].fcr = 1;
    items[7].transferred = 0;
    items[8] = items[0]; /* the duplicate: the claim finds the survey answered */
    sb_sched_count_t dead[] = {{"dlq|invalid_json", 2}};
    ck_assert_int_eq(sb_tally_apply(t, items, 9, dead, 1, now), 0);
    for (int i = 0; i < 8; i++)
        ck_assert_int_eq(items[i].result, 'c');
    ck_assert_int_eq(items[8].result, 'd');
    sb_tally_free(t);
    sb_store_free(st);
    sb_config_free(cfg);
}

/* How many lines of out read want, their words joined by single spaces: the whole line, or
 * its start when !whole. */
static int lines_reading(const char *out, const char *want, bool whole)
{
    int n = 0;
    char buf[600];
    for (const char *l = out; *l;) {
        const char *end = strchrnul(l, '\n');
        size_t used = 0;
        for (const char *c = l; c < end && used + 1 < sizeof buf; c++)
            if (*c != ' ' || (used && buf[used - 1] != ' ')) buf[used++] = *c;
        while (used && buf[used - 1] == ' ')
            used--;
        buf[used] = '\0';
        n += whole ? strcmp(buf, want) == 0 : strncmp(buf, want, strlen(want)) == 0;
        l = *end ? end + 1 : end;
    }
    return n;
}

/* Runs "surveybusctl -c CFG <args>", expects exit 0 and each of the NULL-terminated want to
 * be one line of the output (see lines_reading). Returns the output (caller frees). */
static char *expect_lines(const char *args, const char *const *want)
{
    char *out = NULL;
    ck_assert_int_eq(run_ctl(args, &out), 0);
    for (; *want; want++)
        ck_assert_msg(lines_reading(out, *want, true) == 1, "%s: no line \"%s\" in:\n%s", args,
                      *want, out);
    return out;
}

/* Parses a --json metrics output; checks each update's as_of is the read time (within a
 * minute of now) and removes it, so that the rest compares exactly. */
static json_t *updates(const char *out)
{
    json_error_t e;
    json_t *list = json_loads(out, 0, &e);
    ck_assert_msg(json_is_array(list), "%s: %s", e.text, out);
    size_t i;
    json_t *u;
    json_array_foreach(list, i, u)
    {
        int64_t as_of;
        ck_assert_int_eq(
            sb_time_parse_rfc3339(json_string_value(json_object_get(u, "as_of")), &as_of), 0);
        ck_assert(llabs(as_of - sb_now_ms()) < 60000);
        json_object_del(u, "as_of");
    }
    return list;
}

/* out with each line's blanks squeezed as lines_reading does (caller frees). */
static char *squeezed(const char *out)
{
    char *s = malloc(strlen(out) + 1), *w = s;
    ck_assert_ptr_nonnull(s);
    for (const char *l = out; *l;) {
        const char *end = strchrnul(l, '\n');
        char *start = w;
        for (const char *c = l; c < end; c++)
            if (*c != ' ' || (w > start && w[-1] != ' ')) *w++ = *c;
        while (w > start && w[-1] == ' ')
            w--;
        if (*end) *w++ = '\n';
        l = *end ? end + 1 : end;
    }
    *w = '\0';
    return s;
}

/* Expects the lines of block, blanks squeezed, one after the other in out. */
static void expect_block(const char *out, const char *block)
{
    char *s = squeezed(out);
    ck_assert_msg(strstr(s, block), "no lines\n%sin:\n%s", block, out);
    free(s);
}

/* Columns of out's widest line, one per code point. */
static size_t widest_line(const char *out)
{
    size_t widest = 0, cols = 0;
    for (const char *c = out; *c; c++) {
        if (*c == '\n') {
            cols = 0;
            continue;
        }
        cols += ((unsigned char)*c & 0xC0) != 0x80;
        if (cols > widest) widest = cols;
    }
    return widest;
}

START_TEST(metrics_and_watch)
{
    tally_fixture();
    char *out = NULL;

    /* text: a header and one row; the numbers as published (2 decimals). Wilson interval of
     * 2 of 3 at z = 1.96: (p + z^2/2n +- z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n)
     * = (1.30693 +- 0.83337) / 2.28053 -> 20.77 .. 93.85 % */
    out = expect_lines(
        "metrics --metric csat --window 1h --dimension channel",
        (const char *const[]){
            "METRIC WINDOW DIMENSION VALUE COUNT SCORE DETAIL",
            "csat 1h channel email 3 66.67 satisfied=2 ci95_low=20.77 ci95_high=93.85", NULL});
    ck_assert_int_eq(lines_reading(out, "", false), 2); /* one row only */
    free(out);

    /* --json: the aggregator's update objects */
    ck_assert_int_eq(run_ctl("--json metrics --metric csat --window 1h --dimension channel", &out),
                     0);
    json_t *got = updates(out);
    json_t *want = json_pack("[{s:s,s:s,s:s,s:s,s:i,s:f,s:i,s:f,s:f}]", "metric", "csat", "window",
                             "1h", "dimension", "channel", "value", "email", "count", 3, "score",
                             66.67, "satisfied", 2, "ci95_low", 20.77, "ci95_high", 93.85);
    ck_assert_msg(json_equal(got, want), "%s", out);
    json_decref(got);
    json_decref(want);
    free(out);

    /* every window of channel, sorted by metric, window (config order 1h 24h 7d 30d), value:
     * nps sms x4, csat email x4, response_rate email and sms in each window, then the
     * email KPIs (no art: the event had none) */
    ck_assert_int_eq(run_ctl("--json metrics --dimension channel", &out), 0);
    got = updates(out);
    static const char *const order[][3] = {
        {"nps", "1h", "sms"},
        {"nps", "24h", "sms"},
        {"nps", "7d", "sms"},
        {"nps", "30d", "sms"},
        {"csat", "1h", "email"},
        {"csat", "24h", "email"},
        {"csat", "7d", "email"},
        {"csat", "30d", "email"},
        {"response_rate", "1h", "email"},
        {"response_rate", "1h", "sms"},
        {"response_rate", "24h", "email"},
        {"response_rate", "24h", "sms"},
        {"response_rate", "7d", "email"},
        {"response_rate", "7d", "sms"},
        {"response_rate", "30d", "email"},
        {"response_rate", "30d", "sms"},
        {"frt", "1h", "email"},
        {"frt", "24h", "email"},
        {"frt", "7d", "email"},
        {"frt", "30d", "email"},
        {"fcr", "1h", "email"},
        {"fcr", "24h", "email"},
        {"fcr", "7d", "email"},
        {"fcr", "30d", "email"},
        {"transfer_rate", "1h", "email"},
        {"transfer_rate", "24h", "email"},
        {"transfer_rate", "7d", "email"},
        {"transfer_rate", "30d", "email"},
    };
    ck_assert_uint_eq(json_array_size(got), sizeof order / sizeof order[0]);
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        json_t *u = json_array_get(got, i);
        ck_assert_str_eq(json_string_value(json_object_get(u, "metric")), order[i][0]);
        ck_assert_str_eq(json_string_value(json_object_get(u, "window")), order[i][1]);
        ck_assert_str_eq(json_string_value(json_object_get(u, "value")), order[i][2]);
    }
    json_decref(got);
    free(out);

    /* --value: sms in 24h is the promoter (NPS 100, moe95 0) and 1 response to 0 requests */
    ck_assert_int_eq(run_ctl("--json metrics --dimension channel --value sms --window 24h", &out),
                     0);
    got = updates(out);
    want = json_pack("[{s:s,s:s,s:s,s:s,s:i,s:f,s:i,s:i,s:i,s:f},"
                     "{s:s,s:s,s:s,s:s,s:i,s:n,s:i}]",
                     "metric", "nps", "window", "24h", "dimension", "channel", "value", "sms",
                     "count", 1, "score", 100.0, "promoters", 1, "passives", 0, "detractors", 0,
                     "moe95", 0.0, "metric", "response_rate", "window", "24h", "dimension",
                     "channel", "value", "sms", "count", 1, "score", "requests", 0);
    ck_assert_msg(json_equal(got, want), "%s", out);
    json_decref(got);
    json_decref(want);
    free(out);

    /* text, a null score is "-"; email: 3 responses to 3 requests */
    free(expect_lines("metrics --metric response_rate --window 30d --dimension channel",
                      (const char *const[]){"response_rate 30d channel email 3 100.00 requests=3",
                                            "response_rate 30d channel sms 1 - requests=0", NULL}));

    /* the all slice holds everything: 4 responses over 3 requests */
    free(expect_lines("metrics --metric response_rate --window 7d --dimension all",
                      (const char *const[]){"response_rate 7d all all 4 133.33 requests=3", NULL}));

    /* the NPS survey's journey is the last slice registered, and only its NPS cells (not its
     * requests counter, the last cell of its row) were ever written */
    free(expect_lines("metrics --metric nps --window 1h --dimension journey",
                      (const char *const[]){"nps 1h journey onboarding-nps 1 100.00 promoters=1 "
                                            "passives=0 detractors=0 moe95=0.00",
                                            NULL}));

    /* KPIs: frt in seconds; fcr and transfer_rate count the interactions they know of */
    out = expect_lines("metrics --window 1h --dimension channel --value email",
                       (const char *const[]){"frt 1h channel email 1 30.00 mean=30.00 p90=30.00",
                                             "fcr 1h channel email 1 100.00 resolved=1",
                                             "transfer_rate 1h channel email 1 0.00 transferred=0",
                                             NULL});
    ck_assert_int_eq(lines_reading(out, "art ", false), 0);
    free(out);

    /* nothing matches: not an error */
    expect_status("metrics --dimension channel --value fax", 0, "no metric values match");
    ck_assert_int_eq(run_ctl("--json metrics --metric ces", &out), 0);
    ck_assert_str_eq(out, "[]\n");
    free(out);

    /* bad names: exit 2, the reason lists the valid ones */
    expect_status("metrics --metric happiness", 2,
                  "unknown metric happiness (valid: nps, csat, ces, response_rate, frt, art, fcr, "
                  "transfer_rate)\n");
    expect_status("metrics --window 2h", 2, "unknown window 2h (valid: 1h, 24h, 7d, 30d)\n");
    expect_status("metrics --dimension colour", 2,
                  "unknown dimension colour (valid: all, channel, agent, team, region, product, "
                  "stage, journey)\n");
    expect_status("metrics --metric", 2, "usage: surveybusctl metrics");
    expect_status("metrics extra", 2, "usage: surveybusctl metrics");
    /* an empty name or value is a usage error, as on the web API (an empty --value used to
     * match nothing, exit 0) */
    expect_status("metrics --metric ''", 2,
                  "surveybusctl: empty metric (valid: nps, csat, ces, response_rate, frt, art, "
                  "fcr, transfer_rate)\n");
    expect_status("metrics --window ''", 2, "empty window (valid: 1h, 24h, 7d, 30d)\n");
    expect_status("metrics --dimension ''", 2,
                  "empty dimension (valid: all, channel, agent, team, region, product, stage, "
                  "journey)\n");
    expect_status("metrics --dimension channel --value ''", 2,
                  "surveybusctl: empty value (leave it out for every value)\n");

    /* Redis unreachable: exit 1 with the reason (a bad name is still a usage error) */
    expect_status("--set redis.url=redis://127.0.0.1:1/0 metrics", 1, "cannot reach redis");
    expect_status("--set redis.url=redis://127.0.0.1:1/0 metrics --window 2h", 2, NULL);
    expect_status("--set redis.url=redis://127.0.0.1:1/0 watch --count 1", 1, "cannot reach redis");

    /* watch, once, into a pipe: no ANSI codes, no line wider than 80 columns. The header has
     * the counters (4 counted, 1 duplicate, 2 dead letters); the all block a column of 16 per
     * window after 15 for the metric, "score (count)" over its interval: NPS one promoter,
     * 100 +- 0; CSAT 2 of 3 in [20.77, 93.85] (as metrics above); no CES; response rate 4
     * responses to 3 requests, 133.33. The agent block ranks CSAT over 30d (the longest
     * window): ana 1 of 1 satisfied, 100, Wilson at z = 1.96 for 1 of 1:
     * (1 + 1.9208 +- 1.96 * 0.98) / 4.8416 -> 20.65 .. 100.00; bartholomew-gonzalez 1 of 2
     * (the 4 and the 2), 50, (0.5 + 0.9604 +- 1.96 sqrt(0.125 + 0.2401)) / 2.9208
     * = (1.4604 +- 1.18430) / 2.9208 -> 9.45 .. 90.55. christopher-alexander-hamilton gave
     * no CSAT: not ranked. */
    out = expect_lines("watch --count 1", (const char *const[]){"all 1h 24h 7d 30d", NULL});
    ck_assert_msg(strncmp(out, "surveybus ", 10) == 0, "%s", out);
    ck_assert_msg(strstr(out, "  responses counted 4  duplicates 1  dead letters 2\n"), "%s", out);
    ck_assert_msg(strstr(out,
                         "\n\nall            1h              24h             7d              30d\n"
                         "nps            100.00 (1)      100.00 (1)      100.00 (1)      "
                         "100.00 (1)\n"
                         "               \u00b10.00           \u00b10.00           "
                         "\u00b10.00           \u00b10.00\n"
                         "csat           66.67 (3)       66.67 (3)       66.67 (3)       "
                         "66.67 (3)\n"
                         "               [20.77\u201393.85]   [20.77\u201393.85]   "
                         "[20.77\u201393.85]   [20.77\u201393.85]\n"
                         "ces            -               -               -               -\n"
                         "\n"
                         "response_rate  133.33 (4)      133.33 (4)      133.33 (4)      "
                         "133.33 (4)\n"
                         "               4/3             4/3             4/3             4/3\n"
                         "\n"),
                  "%s", out);
    expect_block(out, "agent by csat over 30d (2 values with count >= 1)\n"
                      "top 5 ana 100.00 (1) [20.65\u2013100.00]\n"
                      "bartholomew-gonzalez 50.00 (2) [9.45\u201390.55]\n"
                      "bottom 5 bartholomew-gonzalez 50.00 (2) [9.45\u201390.55]\n"
                      "ana 100.00 (1) [20.65\u2013100.00]\n");
    /* header, blank, 9 lines of all, blank, title, 2 top and 2 bottom rows */
    ck_assert_int_eq(lines_reading(out, "", false), 17);
    ck_assert_int_le(widest_line(out), 80);
    ck_assert_ptr_null(strchr(out, '\033'));
    free(out);

    /* ties: response rate over 1h, ana 1 of 1 and bartholomew-gonzalez 2 of 2 are both 100:
     * the larger count first, at the top and at the bottom; christopher-alexander-hamilton's
     * 1 response to 0 requests has no score: not ranked */
    out = expect_lines("watch --count 1 --metric response_rate --window 1h",
                       (const char *const[]){NULL});
    expect_block(out, "agent by response_rate over 1h (2 values with count >= 1)\n"
                      "top 5 bartholomew-gonzalez 100.00 (2) 2/2\n"
                      "ana 100.00 (1) 1/1\n"
                      "bottom 5 bartholomew-gonzalez 100.00 (2) 2/2\n"
                      "ana 100.00 (1) 1/1\n");
    ck_assert_int_le(widest_line(out), 80);
    free(out);

    /* --min-count 2 leaves ana (1 response) out */
    out = expect_lines("watch --count 1 --min-count 2", (const char *const[]){NULL});
    expect_block(out, "agent by csat over 30d (1 value with count >= 2)\n"
                      "top 5 bartholomew-gonzalez 50.00 (2) [9.45\u201390.55]\n"
                      "bottom 5 bartholomew-gonzalez 50.00 (2) [9.45\u201390.55]\n");
    free(out);

    /* a value longer than 20 columns is cut to 19 and "…": christopher-alexander-hamilton's
     * NPS 10, one promoter, 100 +- 0 */
    out = expect_lines("watch --count 1 --metric nps --window 24h", (const char *const[]){NULL});
    expect_block(out, "agent by nps over 24h (1 value with count >= 1)\n"
                      "top 5 christopher-alexand\u2026 100.00 (1) \u00b10.00\n"
                      "bottom 5 christopher-alexand\u2026 100.00 (1) \u00b10.00\n");
    ck_assert_int_le(widest_line(out), 80);
    free(out);

    /* another dimension: channel's CSAT over 7d is email's 2 of 3 */
    out = expect_lines("watch --count 1 --dimension channel --window 7d",
                       (const char *const[]){NULL});
    expect_block(out, "channel by csat over 7d (1 value with count >= 1)\n"
                      "top 5 email 66.67 (3) [20.77\u201393.85]\n"
                      "bottom 5 email 66.67 (3) [20.77\u201393.85]\n");
    free(out);

    /* --count 2 refreshes twice, the second after a blank line */
    ck_assert_int_eq(run_ctl("watch --count 2 --interval 0.1", &out), 0);
    ck_assert_int_eq(lines_reading(out, "surveybus ", false), 2);
    ck_assert_int_eq(lines_reading(out, "csat 66.67 (3) 66.67 (3) 66.67 (3) 66.67 (3)", true), 2);
    ck_assert_msg(strncmp(out, "surveybus ", 10) == 0, "%s", out);
    expect_block(out, "ana 100.00 (1) [20.65\u2013100.00]\n\nsurveybus ");
    ck_assert_int_le(widest_line(out), 80);
    free(out);

    /* usage errors */
    expect_status("watch --dimension colour", 2, "unknown dimension colour");
    expect_status("watch --metric happiness", 2, "unknown metric happiness");
    expect_status("watch --window 2h", 2, "unknown window 2h");
    expect_status("watch --dimension ''", 2, "empty dimension (valid: all, channel,");
    expect_status("watch --min-count 0", 2, "usage: surveybusctl watch");
    expect_status("watch --min-count two", 2, "usage: surveybusctl watch");
    expect_status("watch --interval 0", 2, "usage: surveybusctl watch");
    expect_status("watch --interval soon", 2, "usage: surveybusctl watch");
    expect_status("watch --count -1", 2, "usage: surveybusctl watch");
    expect_status("watch --count", 2, "usage: surveybusctl watch");
    expect_status("watch --colour red", 2, "usage: surveybusctl watch");
    expect_status("--json watch", 2, "use metrics --json");

    /* until a signal: SIGTERM ends it with status 0. The signal is sent once two refreshes
     * are in its log, so that its handler is surely installed. */
    const char *argv[] = {
        sb_h_bin("surveybusctl"), "-c", cfg_path, "watch", "--interval", "0.1", NULL};
    pid_t pid = sb_h_spawn(&h, argv, "watch.log");
    ck_assert_int_gt(pid, 0);
    char log[600];
    snprintf(log, sizeof log, "cat %s/watch.log", h.dir);
    for (int i = 0; i < 100; i++) {
        struct timespec pause = {0, 50 * 1000000L};
        nanosleep(&pause, NULL);
        ck_assert_int_eq(sb_h_run(log, &out), 0);
        int refreshes = lines_reading(out, "surveybus ", false);
        free(out);
        if (refreshes >= 2) break;
    }
    ck_assert_int_eq(sb_h_kill(pid, SIGTERM), 0);
    int status = -1;
    ck_assert_int_eq(sb_h_wait_exit(pid, 5000, &status), 0);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d", status);
}
END_TEST

/* ---------------------------------------------------------------- watch on a terminal */

/* A watch running on a pseudo-terminal of its own (stdin, stdout, stderr and controlling
 * terminal), with the test holding the master side and a second handle on the terminal. */
typedef struct pty_watch {
    pid_t pid;
    int master, slave;
    char *out; /* everything it wrote, NUL-terminated */
    size_t len;
} pty_watch_t;

static void pty_start(pty_watch_t *p)
{
    memset(p, 0, sizeof *p);
    p->master = posix_openpt(O_RDWR | O_NOCTTY);
    ck_assert_int_ge(p->master, 0);
    ck_assert_int_eq(grantpt(p->master), 0);
    ck_assert_int_eq(unlockpt(p->master), 0);
    char name[200];
    ck_assert_int_eq(ptsname_r(p->master, name, sizeof name), 0);
    p->slave = open(name, O_RDWR | O_NOCTTY);
    ck_assert_int_ge(p->slave, 0);
    const char *argv[] = {
        sb_h_bin("surveybusctl"), "-c", cfg_path, "watch", "--interval", "0.1", NULL};
    p->pid = fork();
    ck_assert_int_ge(p->pid, 0);
    if (p->pid == 0) { /* only async-signal-safe calls until exec */
        setsid();
        int fd = open(name, O_RDWR); /* the session's controlling terminal */
        if (fd < 0) _exit(127);
        dup2(fd, 0), dup2(fd, 1), dup2(fd, 2);
        if (fd > 2) close(fd);
        close(p->master), close(p->slave);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    p->out = calloc(1, 1);
}

/* Reads what the watch wrote until text has appeared n times in all of it, or timeout_ms
 * passed. Returns whether it did. */
static bool pty_until(pty_watch_t *p, const char *text, int n, int timeout_ms)
{
    int64_t deadline = sb_mono_ms() + timeout_ms;
    for (;;) {
        int seen = 0;
        for (const char *c = p->out; (c = strstr(c, text)); c += strlen(text))
            seen++;
        int64_t left = deadline - sb_mono_ms();
        if (seen >= n) return true;
        if (left <= 0) return false;
        struct pollfd pf = {.fd = p->master, .events = POLLIN};
        if (poll(&pf, 1, (int)left) <= 0) continue;
        char buf[4096];
        ssize_t got = read(p->master, buf, sizeof buf);
        if (got <= 0) return false;
        p->out = realloc(p->out, p->len + (size_t)got + 1);
        ck_assert_ptr_nonnull(p->out);
        memcpy(p->out + p->len, buf, (size_t)got);
        p->len += (size_t)got;
        p->out[p->len] = '\0';
    }
}

/* The terminal's local modes have ICANON and ECHO both on (on) or both off (!on). */
static void expect_canonical(const pty_watch_t *p, bool on)
{
    struct termios t;
    ck_assert_int_eq(tcgetattr(p->slave, &t), 0);
    tcflag_t both = ICANON | ECHO;
    ck_assert_msg((t.c_lflag & both) == (on ? both : 0), "c_lflag %#x", (unsigned)t.c_lflag);
}

/* Ends the watch with key (when not 0) or signal sig, expects exit status 0, its terminal
 * given its modes back, and frees p. */
static void pty_stop(pty_watch_t *p, char key, int sig)
{
    /* running: the screen drawn twice (cleared once, then in place), the terminal's
     * modes changed */
    ck_assert_msg(pty_until(p, "q quits", 2, 5000), "%s", p->out);
    ck_assert_msg(strncmp(p->out, "\033[H\033[2Jsurveybus ", 17) == 0, "%s", p->out);
    ck_assert_msg(strstr(p->out, "\033[Hsurveybus "), "%s", p->out);
    ck_assert_msg(strstr(p->out, "responses counted "), "%s", p->out);
    expect_canonical(p, false);
    if (key)
        ck_assert_int_eq(write(p->master, &key, 1), 1);
    else
        ck_assert_int_eq(kill(p->pid, sig), 0);
    int status = -1;
    for (int i = 0; i < 500 && sb_h_wait_exit(p->pid, 10, &status) != 0; i++)
        pty_until(p, "\001", 1, 10); /* drain the output meanwhile: never there */
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d", status);
    expect_canonical(p, true);
    close(p->master);
    close(p->slave);
    free(p->out);
}

START_TEST(watch_on_terminal)
{
    pty_watch_t p;
    /* other keys do nothing; q and Q quit */
    pty_start(&p);
    ck_assert(pty_until(&p, "q quits", 1, 5000));
    ck_assert_int_eq(write(p.master, "x", 1), 1);
    pty_stop(&p, 'q', 0);
    pty_start(&p);
    pty_stop(&p, 'Q', 0);
    /* SIGTERM and SIGINT: the terminal is restored too */
    pty_start(&p);
    pty_stop(&p, 0, SIGTERM);
    pty_start(&p);
    pty_stop(&p, 0, SIGINT);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("ctl");
    TCase *tc = tcase_create("redis");
    tcase_add_unchecked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, surveys_and_stats);
    tcase_add_test(tc, surveys_usage_without_redis);
    tcase_add_test(tc, surveys_cancel_refused);
    tcase_add_test(tc, stats_lists_zero_counters);
    tcase_add_test(tc, stats_text_totals_nested_groups);
    tcase_add_test(tc, check_config_exit_codes);
    tcase_add_test(tc, check_config_json_file_name_not_utf8);
    tcase_add_test(tc, service_option_forms);
    tcase_add_test(tc, metrics_and_watch);
    tcase_add_test(tc, watch_on_terminal);
    suite_add_tcase(s, tc);
    return sb_h_run_suite(s, true);
}
