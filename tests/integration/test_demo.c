/* `make demo` end to end: scripts/demo.sh starts its own servers, both services and
 * `surveybusctl simulate`, and after DEMO_SECONDS prints one watch screen and the counters.
 * Surveys must have been fired (by Kafka and to MQTT devices), answered and counted, with
 * every server and service stopped afterwards. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

/* The number after "  <name>" on its own line in the stats output, or -1. */
static long counter(const char *out, const char *section, const char *name)
{
    const char *s = strstr(out, section);
    if (!s) return -1;
    char pat[64];
    snprintf(pat, sizeof pat, "\n  %s ", name);
    const char *p = strstr(s, pat);
    return p ? strtol(p + strlen(pat), NULL, 10) : -1;
}

START_TEST(demo_runs_the_pipeline)
{
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "cd %s/.. && DEMO_SECONDS=25 DEMO_RATE=30 scripts/demo.sh 2>&1",
             sb_h_bin(""));
    char *out = NULL;
    int rc = sb_h_run(cmd, &out);
    ck_assert_ptr_nonnull(out);
    ck_assert_msg(rc == 0, "demo exited %d:\n%s", rc, out);
    ck_assert_msg(strstr(out, "region") && strstr(out, "csat"), "no watch screen:\n%s", out);
    ck_assert_msg(counter(out, "\ndispatcher", "fired") > 50, "few surveys fired:\n%s", out);
    ck_assert_msg(counter(out, "\naggregator", "counted") > 20, "few responses counted:\n%s", out);
    ck_assert_msg(counter(out, "\naggregator", "kpi_events") > 100, "few KPI events:\n%s", out);
    /* nothing left running from the demo's own temp dir ("logs in /tmp/sbbench.XXXXXX") */
    const char *dir = strstr(out, "logs in ");
    ck_assert_ptr_nonnull(dir);
    char tmp[256], check[400];
    ck_assert_int_eq(sscanf(dir + 8, "%255s", tmp), 1);
    /* "[/]" so that the shell running pgrep, whose command line holds the pattern, does
     * not match it */
    snprintf(check, sizeof check, "pgrep -f '[/]%s/' >/dev/null", tmp + 1);
    ck_assert_msg(sb_h_run(check, NULL) == 1, "processes of %s still running", tmp);
    free(out);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("demo");
    TCase *tc = tcase_create("demo");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, demo_runs_the_pipeline);
    suite_add_tcase(s, tc);
    return sb_h_run_suite(s, true);
}
