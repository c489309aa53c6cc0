/* The dashboard in a real browser: scripts/demo.sh starts the whole stack with simulated
 * traffic and surveybus-web serving the built page (make web), then runs
 * tests/browser/dashboard.test.mjs, which drives Debian's headless Chromium through
 * playwright-core: the 24h/all NPS on the page must equal `surveybusctl metrics` once the
 * stream has settled, a new update must change the page without a reload, and a screenshot
 * is kept in tests/artifacts/dashboard.png. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "harness.h"

START_TEST(dashboard_in_chromium)
{
    char root[1024], path[1200], cmd[3000];
    snprintf(root, sizeof root, "%s/..", sb_h_bin(""));
    snprintf(path, sizeof path, "%s/web/dist/index.html", root);
    struct stat st;
    ck_assert_msg(stat(path, &st) == 0, "%s missing: make test builds it with make web", path);
    snprintf(cmd, sizeof cmd,
             "cd %s && mkdir -p tests/artifacts && SCREENSHOT=%s/tests/artifacts/dashboard.png "
             "DEMO_RATE=40 DEMO_TEST='node tests/browser/dashboard.test.mjs' scripts/demo.sh 2>&1",
             root, root);
    char *out = NULL;
    int rc = sb_h_run(cmd, &out);
    ck_assert_ptr_nonnull(out);
    ck_assert_msg(rc == 0, "browser test exited %d:\n%s", rc, out);
    free(out);
    snprintf(path, sizeof path, "%s/tests/artifacts/dashboard.png", root);
    ck_assert_msg(stat(path, &st) == 0 && st.st_size > 1000, "no screenshot at %s", path);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("browser");
    TCase *tc = tcase_create("browser");
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, dashboard_in_chromium);
    suite_add_tcase(s, tc);
    return sb_h_run_suite(s, true);
}
