/* surveybusctl against a real redis-server: surveys pending / show / cancel and stats read
 * what the schedule holds, in human and --json form; check-config exit codes. */
#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "harness.h"
#include "record.h"
#include "schedule.h"
#include "store.h"
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

/* Schedules three surveys directly through the schedule module: two for customer c-1. */
static void schedule_three(char ids[3][SB_SURVEY_ID_LEN + 1])
{
    sb_problems_t p = {0};
    sb_config_t *cfg = sb_config_load(cfg_path, NULL, 0, &p);
    ck_assert_msg(cfg != NULL, "%s", p.n ? p.msg[0] : "");
    char err[256];
    sb_store_t *st = sb_store_new(cfg, err, sizeof err);
    ck_assert_ptr_nonnull(st);
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
        ops[i] = (sb_sched_op_t){SB_SCHED_ADD, &r[i]};
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

    /* usage errors */
    ck_assert_int_eq(run_ctl("surveys frobnicate", &out), 2);
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
    /* unreachable Redis: a clear failure, not a hang */
    snprintf(cmd, sizeof cmd, "%s -c %s --set redis.url=redis://127.0.0.1:1/0 stats 2>&1",
             sb_h_bin("surveybusctl"), cfg_path);
    ck_assert_int_eq(sb_h_run(cmd, &out), 1);
    ck_assert_msg(strstr(out, "cannot reach redis") != NULL, "%s", out);
    free(out);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("ctl");
    TCase *tc = tcase_create("redis");
    tcase_add_unchecked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, surveys_and_stats);
    tcase_add_test(tc, check_config_exit_codes);
    suite_add_tcase(s, tc);
    return sb_h_run_suite(s, true);
}
