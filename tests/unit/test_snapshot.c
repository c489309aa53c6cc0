/* Unit tests for common/snapshot.c's filter: the names `surveybusctl metrics` / `watch` and
 * surveybus-web's /api/metrics take (metric, window, dimension, value), against the default
 * configuration (windows 1h, 24h, 7d, 30d; dimensions channel, agent, team, region, product,
 * stage, journey). Reading Redis is tested by test_ctl and test_web. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "snapshot.h"

#include "unit.h"

static const char METRICS[] = "(valid: nps, csat, ces, response_rate, frt, art, fcr, "
                              "transfer_rate)";
static const char WINDOWS[] = "(valid: 1h, 24h, 7d, 30d)";
static const char DIMS[] = "(valid: all, channel, agent, team, region, product, stage, journey)";

/* sb_snapshot_filter_init on the defaults; returns its result, err filled. */
static int init(sb_snapshot_filter_t *f, const char *m, const char *w, const char *d,
                const char *v, char *err, size_t errlen)
{
    sb_config_t *cfg = sb_config_new();
    err[0] = '\0';
    int rc = sb_snapshot_filter_init(f, cfg, m, w, d, v, err, errlen);
    sb_config_free(cfg);
    return rc;
}

START_TEST(nothing_given_takes_everything)
{
    sb_snapshot_filter_t f;
    char err[300];
    ck_assert_int_eq(init(&f, NULL, NULL, NULL, NULL, err, sizeof err), 0);
    ck_assert_int_eq(f.metric, -1);
    ck_assert_int_eq(f.window, -1);
    ck_assert_ptr_null(f.dimension);
    ck_assert_ptr_null(f.value);
}
END_TEST

START_TEST(names_given)
{
    sb_snapshot_filter_t f;
    char err[300];
    ck_assert_int_eq(init(&f, "ces", "7d", "region", "east", err, sizeof err), 0);
    ck_assert_int_eq(f.metric, SB_METRIC_CES);
    ck_assert_int_eq(f.window, 2); /* the third configured window */
    ck_assert_str_eq(f.dimension, "region");
    ck_assert_str_eq(f.value, "east");
    ck_assert_int_eq(init(&f, "transfer_rate", "1h", "all", NULL, err, sizeof err), 0);
    ck_assert_int_eq(f.metric, SB_METRIC_TRANSFER_RATE);
    ck_assert_int_eq(f.window, 0);
    ck_assert_str_eq(f.dimension, "all");
    /* a value is any text: whether a slice has it is the reading's business */
    ck_assert_int_eq(init(&f, NULL, NULL, NULL, "fax", err, sizeof err), 0);
    ck_assert_str_eq(f.value, "fax");
}
END_TEST

START_TEST(unknown_names)
{
    sb_snapshot_filter_t f;
    char err[300], want[300];
    ck_assert_int_eq(init(&f, "happiness", NULL, NULL, NULL, err, sizeof err), -1);
    snprintf(want, sizeof want, "unknown metric happiness %s", METRICS);
    ck_assert_str_eq(err, want);
    ck_assert_int_eq(init(&f, NULL, "2h", NULL, NULL, err, sizeof err), -1);
    snprintf(want, sizeof want, "unknown window 2h %s", WINDOWS);
    ck_assert_str_eq(err, want);
    /* a dimension that exists but is not configured */
    ck_assert_int_eq(init(&f, NULL, NULL, "device", NULL, err, sizeof err), -1);
    snprintf(want, sizeof want, "unknown dimension device %s", DIMS);
    ck_assert_str_eq(err, want);
    /* names are exact: no case folding, no surrounding blanks */
    ck_assert_int_eq(init(&f, "NPS", NULL, NULL, NULL, err, sizeof err), -1);
    ck_assert_int_eq(init(&f, NULL, "1h ", NULL, NULL, err, sizeof err), -1);
    /* the first bad one is reported: metric, window, dimension */
    ck_assert_int_eq(init(&f, "x", "y", "z", NULL, err, sizeof err), -1);
    ck_assert(strncmp(err, "unknown metric x ", 17) == 0);
    ck_assert_int_eq(init(&f, "nps", "y", "z", NULL, err, sizeof err), -1);
    ck_assert(strncmp(err, "unknown window y ", 17) == 0);
}
END_TEST

/* An empty name or value is a mistake (an unset shell variable, an empty form field), never
 * "every": it used to mean "every" on the web API (?metric=) and, on the command line, to
 * be an unknown name (--metric "") or to match nothing (--value ""). */
START_TEST(empty_names_and_values)
{
    sb_snapshot_filter_t f;
    char err[300], want[300];
    ck_assert_int_eq(init(&f, "", NULL, NULL, NULL, err, sizeof err), -1);
    snprintf(want, sizeof want, "empty metric %s", METRICS);
    ck_assert_str_eq(err, want);
    ck_assert_int_eq(init(&f, NULL, "", NULL, NULL, err, sizeof err), -1);
    snprintf(want, sizeof want, "empty window %s", WINDOWS);
    ck_assert_str_eq(err, want);
    ck_assert_int_eq(init(&f, NULL, NULL, "", NULL, err, sizeof err), -1);
    snprintf(want, sizeof want, "empty dimension %s", DIMS);
    ck_assert_str_eq(err, want);
    ck_assert_int_eq(init(&f, NULL, NULL, NULL, "", err, sizeof err), -1);
    ck_assert_str_eq(err, "empty value (leave it out for every value)");
    ck_assert_int_eq(init(&f, "nps", "24h", "channel", "", err, sizeof err), -1);
    ck_assert_str_eq(err, "empty value (leave it out for every value)");
    /* in order: a bad metric before an empty value */
    ck_assert_int_eq(init(&f, "zzz", NULL, NULL, "", err, sizeof err), -1);
    ck_assert(strncmp(err, "unknown metric zzz ", 19) == 0);
}
END_TEST

/* A reason longer than err is cut, still terminated. */
START_TEST(reason_cut_to_err)
{
    sb_snapshot_filter_t f;
    char err[20];
    ck_assert_int_eq(init(&f, "", NULL, NULL, NULL, err, sizeof err), -1);
    ck_assert_str_eq(err, "empty metric (valid");
    ck_assert_int_eq(init(&f, NULL, NULL, NULL, "", err, sizeof err), -1);
    ck_assert_str_eq(err, "empty value (leave ");
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("snapshot");
    TCase *tc = tcase_create("filter");
    tcase_add_test(tc, nothing_given_takes_everything);
    tcase_add_test(tc, names_given);
    tcase_add_test(tc, unknown_names);
    tcase_add_test(tc, empty_names_and_values);
    tcase_add_test(tc, reason_cut_to_err);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return sb_unit_run(suite());
}
