/* Unit tests for common/stats.c: every expected value is worked out by hand in the comment
 * beside it. */
#include <check.h>
#include <math.h>
#include <stdlib.h>

#include "stats.h"

#include "unit.h"

/* 1..5 CSAT with top-2-box, and the two CES conventions on 1..7. */
static const sb_scale_t CSAT5 = {.min = 1, .max = 5, .satisfied_min = 4};
static const sb_scale_t CES_LOW = {.min = 1, .max = 7, .easy_low = true, .easy_max = 2};
static const sb_scale_t CES_HIGH = {.min = 1, .max = 7, .easy_low = false, .easy_min = 6};

/* ---- histograms ---- */

START_TEST(hist_add_merge_total)
{
    sb_hist_t a = {{0}}, b = {{0}};
    ck_assert_int_eq(sb_stats_hist_add(&a, 0, 2), 0);
    ck_assert_int_eq(sb_stats_hist_add(&a, 10, 3), 0);
    ck_assert_int_eq(sb_stats_hist_add(&a, 10, 1), 0);
    ck_assert_int_eq(sb_stats_hist_add(&a, -1, 1), -1);
    ck_assert_int_eq(sb_stats_hist_add(&a, 11, 1), -1);
    ck_assert_uint_eq(a.n[0], 2);
    ck_assert_uint_eq(a.n[10], 4);
    ck_assert_uint_eq(sb_stats_hist_total(&a), 6);

    sb_stats_hist_add(&b, 10, 5);
    sb_stats_hist_add(&b, 5, 7);
    sb_stats_hist_merge(&a, &b);
    ck_assert_uint_eq(a.n[0], 2);
    ck_assert_uint_eq(a.n[5], 7);
    ck_assert_uint_eq(a.n[10], 9);
    ck_assert_uint_eq(sb_stats_hist_total(&a), 18); /* 2 + 7 + 9 */
    ck_assert_uint_eq(sb_stats_hist_total(&b), 12); /* src untouched */
}
END_TEST

/* ---- NPS ---- */

START_TEST(nps_spec_example)
{
    /* 60 promoters (40 tens, 20 nines), 30 passives (20 eights, 10 sevens), 30 detractors
     * (25 sixes, 5 zeros); n = 120.
     * score = 100 (60 - 30) / 120 = 25.0
     * p = .5, d = .25; var = p + d - (p - d)^2 = .75 - .0625 = .6875
     * se = sqrt(.6875 / 120) = sqrt(.00572917) = .0756913; moe = 1.96 * 100 * se = 14.8355 */
    sb_hist_t h = {{0}};
    h.n[10] = 40, h.n[9] = 20, h.n[8] = 20, h.n[7] = 10, h.n[6] = 25, h.n[0] = 5;
    sb_metric_value_t v;
    sb_stats_nps(&h, &v);
    ck_assert_int_eq(v.form, SB_STATS_NPS);
    ck_assert(v.has_value);
    ck_assert_uint_eq(v.count, 120);
    ck_assert_uint_eq(v.promoters, 60);
    ck_assert_uint_eq(v.passives, 30);
    ck_assert_uint_eq(v.detractors, 30);
    ck_assert_double_eq_tol(v.score, 25.0, 1e-9);
    ck_assert_double_eq_tol(v.moe95, 14.8355, 1e-4);
    ck_assert_double_eq(sb_stats_round2(v.score), 25.0);
    ck_assert_double_eq(sb_stats_round2(v.moe95), 14.84);
}
END_TEST

START_TEST(nps_small_sample)
{
    /* scores 10, 7, 8, 3: P = 1, D = 1, n = 4 -> score 0.
     * var = (.25 + .25) - 0^2 = .5; se = sqrt(.5 / 4) = .353553; moe = 196 * .353553 = 69.2965 */
    sb_hist_t h = {{0}};
    h.n[10] = 1, h.n[7] = 1, h.n[8] = 1, h.n[3] = 1;
    sb_metric_value_t v;
    sb_stats_nps(&h, &v);
    ck_assert_uint_eq(v.count, 4);
    ck_assert_double_eq_tol(v.score, 0.0, 1e-12);
    ck_assert_double_eq_tol(v.moe95, 69.2965, 1e-4);
    ck_assert_double_eq(sb_stats_round2(v.moe95), 69.30);
}
END_TEST

START_TEST(nps_score_ties_round_half_away)
{
    /* 23 promoters, 22 detractors, 115 passives: n = 160, score = 100 (23 - 22) / 160 =
     * 0.625 exactly, a decimal tie that is published 0.63 (half away from zero); mirrored,
     * -0.63. Computing it as 100 (P/n - D/n) subtracts two nearly equal rounded shares and
     * lands a few ulps below the tie (0.62). The same with 45 and 44 of 160: 0.625 again. */
    sb_metric_value_t v;
    sb_hist_t h = {{0}};
    h.n[10] = 23, h.n[8] = 115, h.n[0] = 22;
    sb_stats_nps(&h, &v);
    ck_assert_uint_eq(v.count, 160);
    ck_assert_double_eq(v.score, 0.625);
    ck_assert_double_eq(sb_stats_round2(v.score), 0.63);

    sb_hist_t m = {{0}};
    m.n[9] = 22, m.n[7] = 115, m.n[3] = 23;
    sb_stats_nps(&m, &v);
    ck_assert_double_eq(v.score, -0.625);
    ck_assert_double_eq(sb_stats_round2(v.score), -0.63);

    sb_hist_t k = {{0}};
    k.n[9] = 45, k.n[7] = 71, k.n[5] = 44;
    sb_stats_nps(&k, &v);
    ck_assert_double_eq(sb_stats_round2(v.score), 0.63);
}
END_TEST

START_TEST(nps_degenerate_samples)
{
    sb_metric_value_t v;
    /* all passives: p = d = 0 -> score 0, var 0 - 0 = 0 -> moe 0 */
    sb_hist_t h = {{0}};
    h.n[7] = 30, h.n[8] = 20;
    sb_stats_nps(&h, &v);
    ck_assert(v.has_value);
    ck_assert_uint_eq(v.count, 50);
    ck_assert_uint_eq(v.passives, 50);
    ck_assert_double_eq(v.score, 0.0);
    ck_assert_double_eq(v.moe95, 0.0);

    /* all promoters: p = 1 -> score 100, var 1 - 1 = 0 -> moe 0 */
    sb_hist_t hp = {{0}};
    hp.n[9] = 3;
    sb_stats_nps(&hp, &v);
    ck_assert_double_eq(v.score, 100.0);
    ck_assert_double_eq(v.moe95, 0.0);

    /* all detractors: d = 1 -> score -100, var 1 - 1 = 0 */
    sb_hist_t hd = {{0}};
    hd.n[0] = 1, hd.n[6] = 1;
    sb_stats_nps(&hd, &v);
    ck_assert_double_eq(v.score, -100.0);
    ck_assert_double_eq(v.moe95, 0.0);
    ck_assert_uint_eq(v.detractors, 2);
}
END_TEST

START_TEST(nps_empty)
{
    sb_hist_t h = {{0}};
    sb_metric_value_t v;
    v.score = 99; /* garbage that must be cleared */
    sb_stats_nps(&h, &v);
    ck_assert(!v.has_value);
    ck_assert_uint_eq(v.count, 0);
    ck_assert_double_eq(v.score, 0.0);
    ck_assert_double_eq(v.moe95, 0.0);
}
END_TEST

/* ---- CSAT ---- */

START_TEST(csat_wilson)
{
    /* n = 100: 40 fives, 40 fours (satisfied), 10 threes, 5 twos, 5 ones -> 80.0 %.
     * Wilson, z = 1.96, z^2 = 3.8416, p = .8:
     *   denom = 1 + 3.8416 / 100 = 1.038416
     *   centre = (.8 + 3.8416 / 200) / denom = .819208 / 1.038416 = .7889016
     *   half = 1.96 sqrt(.8 * .2 / 100 + 3.8416 / 40000) / denom
     *        = 1.96 sqrt(.0016 + .00009604) / denom = 1.96 * .0411830 / 1.038416 = .0777325
     *   -> [.7111690, .8666341] = [71.12 %, 86.66 %] */
    sb_hist_t h = {{0}};
    h.n[5] = 40, h.n[4] = 40, h.n[3] = 10, h.n[2] = 5, h.n[1] = 5;
    sb_metric_value_t v;
    sb_stats_csat(&h, &CSAT5, &v);
    ck_assert_int_eq(v.form, SB_STATS_CSAT);
    ck_assert(v.has_value);
    ck_assert_uint_eq(v.count, 100);
    ck_assert_uint_eq(v.satisfied, 80);
    ck_assert_double_eq_tol(v.score, 80.0, 1e-9);
    ck_assert_double_eq(sb_stats_round2(v.ci95_low), 71.12);
    ck_assert_double_eq(sb_stats_round2(v.ci95_high), 86.66);
    ck_assert_double_eq_tol(v.ci95_low, 71.1169, 1e-4);
    ck_assert_double_eq_tol(v.ci95_high, 86.6634, 1e-4);
}
END_TEST

START_TEST(csat_wilson_edges)
{
    sb_metric_value_t v;
    /* 10 of 10 satisfied, p = 1: denom = 1.38416, centre = (1 + .19208) / 1.38416 = .861230,
     * half = 1.96 sqrt(3.8416 / 400) / 1.38416 = 1.96 * .098 / 1.38416 = .138770
     * -> [.722460, 1.0] = [72.25 %, 100 %] */
    sb_hist_t all = {{0}};
    all.n[5] = 6, all.n[4] = 4;
    sb_stats_csat(&all, &CSAT5, &v);
    ck_assert_double_eq(v.score, 100.0);
    ck_assert_double_eq(sb_stats_round2(v.ci95_low), 72.25);
    ck_assert_double_eq_tol(v.ci95_high, 100.0, 1e-9);

    /* 0 of 10: the mirror image, [0 %, 27.75 %]; the low end is exactly 0, never -0.00 */
    sb_hist_t none = {{0}};
    none.n[1] = 10;
    sb_stats_csat(&none, &CSAT5, &v);
    ck_assert(v.has_value);
    ck_assert_double_eq(v.score, 0.0);
    ck_assert_double_eq(v.ci95_low, 0.0);
    ck_assert(!signbit(v.ci95_low));
    ck_assert_double_eq(sb_stats_round2(v.ci95_high), 27.75);

    /* scores outside 1..5 are not counted: 3 zeros (invalid on 1..5), 1 five, 1 one -> n = 2,
     * 50 %. Wilson p = .5, n = 2: denom = 2.9208, centre = .5,
     * half = 1.96 sqrt(.125 + 3.8416 / 16) / 2.9208 = 1.96 * .604235 / 2.9208 = .405471
     * -> [9.45 %, 90.55 %] */
    sb_hist_t odd = {{0}};
    odd.n[0] = 3, odd.n[5] = 1, odd.n[1] = 1;
    sb_stats_csat(&odd, &CSAT5, &v);
    ck_assert_uint_eq(v.count, 2);
    ck_assert_uint_eq(v.satisfied, 1);
    ck_assert_double_eq(v.score, 50.0);
    ck_assert_double_eq(sb_stats_round2(v.ci95_low), 9.45);
    ck_assert_double_eq(sb_stats_round2(v.ci95_high), 90.55);

    /* empty */
    sb_hist_t empty = {{0}};
    sb_stats_csat(&empty, &CSAT5, &v);
    ck_assert(!v.has_value);
    ck_assert_uint_eq(v.count, 0);
    ck_assert_double_eq(v.ci95_low, 0.0);
    ck_assert_double_eq(v.ci95_high, 0.0);
}
END_TEST

START_TEST(csat_other_scale)
{
    /* 0..10 scale with satisfied_min 8: scores 8, 9, 10 satisfied. 2 tens, 1 eight, 1 seven,
     * 1 two -> 3 of 5 = 60 % */
    const sb_scale_t s = {.min = 0, .max = 10, .satisfied_min = 8};
    sb_hist_t h = {{0}};
    h.n[10] = 2, h.n[8] = 1, h.n[7] = 1, h.n[2] = 1;
    sb_metric_value_t v;
    sb_stats_csat(&h, &s, &v);
    ck_assert_uint_eq(v.count, 5);
    ck_assert_uint_eq(v.satisfied, 3);
    ck_assert_double_eq_tol(v.score, 60.0, 1e-9);
}
END_TEST

/* ---- CES ---- */

START_TEST(ces_low_is_easy)
{
    /* 1 x10, 2 x20, 3 x10, 5 x5, 7 x5: n = 50, sum = 10 + 40 + 30 + 25 + 35 = 140,
     * mean = 2.8; easy (<= 2) = 30 -> 60 % */
    sb_hist_t h = {{0}};
    h.n[1] = 10, h.n[2] = 20, h.n[3] = 10, h.n[5] = 5, h.n[7] = 5;
    sb_metric_value_t v;
    sb_stats_ces(&h, &CES_LOW, &v);
    ck_assert_int_eq(v.form, SB_STATS_CES);
    ck_assert(v.has_value);
    ck_assert_uint_eq(v.count, 50);
    ck_assert_double_eq_tol(v.mean, 2.8, 1e-12);
    ck_assert_double_eq_tol(v.score, 2.8, 1e-12);
    ck_assert_uint_eq(v.easy, 30);
    ck_assert_double_eq_tol(v.easy_pct, 60.0, 1e-9);
}
END_TEST

START_TEST(ces_high_is_easy)
{
    /* same responses, 7 = very easy, easy_min 6: only the 5 sevens are easy -> 10 %;
     * plus 2 sixes: n = 52, sum = 152, mean = 2.923077 -> 2.92; easy = 7 -> 13.4615 % */
    sb_hist_t h = {{0}};
    h.n[1] = 10, h.n[2] = 20, h.n[3] = 10, h.n[5] = 5, h.n[7] = 5;
    sb_metric_value_t v;
    sb_stats_ces(&h, &CES_HIGH, &v);
    ck_assert_uint_eq(v.easy, 5);
    ck_assert_double_eq_tol(v.easy_pct, 10.0, 1e-9);
    h.n[6] = 2;
    sb_stats_ces(&h, &CES_HIGH, &v);
    ck_assert_uint_eq(v.count, 52);
    ck_assert_uint_eq(v.easy, 7);
    ck_assert_double_eq(sb_stats_round2(v.mean), 2.92);
    ck_assert_double_eq(sb_stats_round2(v.easy_pct), 13.46);
}
END_TEST

START_TEST(ces_rounding_and_empty)
{
    /* 1,1,1,2,3,3,3,3: sum 17, n 8, mean 2.125 exactly -> published 2.13 (half away from zero);
     * easy (<= 2) = 4 -> 50 % */
    sb_hist_t h = {{0}};
    h.n[1] = 3, h.n[2] = 1, h.n[3] = 4;
    sb_metric_value_t v;
    sb_stats_ces(&h, &CES_LOW, &v);
    ck_assert_double_eq(v.mean, 2.125);
    ck_assert_double_eq(sb_stats_round2(v.mean), 2.13);
    ck_assert_double_eq(v.easy_pct, 50.0);

    /* 197 twos and 3 threes: sum 394 + 9 = 403, 403 / 200 = 2.015 exactly in decimal (stored
     * just below) -> published 2.02, as by hand */
    sb_hist_t d = {{0}};
    d.n[2] = 197, d.n[3] = 3;
    sb_stats_ces(&d, &CES_LOW, &v);
    ck_assert_uint_eq(v.count, 200);
    ck_assert_double_eq(sb_stats_round2(v.mean), 2.02);

    sb_hist_t empty = {{0}};
    empty.n[9] = 4; /* outside 1..7: ignored */
    sb_stats_ces(&empty, &CES_LOW, &v);
    ck_assert(!v.has_value);
    ck_assert_uint_eq(v.count, 0);
    ck_assert_double_eq(v.mean, 0.0);
}
END_TEST

/* ---- rates ---- */

START_TEST(rates)
{
    sb_metric_value_t v;
    sb_stats_rate(45, 60, &v); /* 45 / 60 = .75 -> 75 % */
    ck_assert_int_eq(v.form, SB_STATS_RATE);
    ck_assert(v.has_value);
    ck_assert_uint_eq(v.count, 60);
    ck_assert_uint_eq(v.num, 45);
    ck_assert_uint_eq(v.den, 60);
    ck_assert_double_eq(v.score, 75.0);

    sb_stats_rate(1, 3, &v); /* 33.333... */
    ck_assert_double_eq(sb_stats_round2(v.score), 33.33);
    sb_stats_rate(2, 3, &v); /* 66.666... */
    ck_assert_double_eq(sb_stats_round2(v.score), 66.67);
    sb_stats_rate(3, 2, &v); /* not clamped */
    ck_assert_double_eq(v.score, 150.0);
    sb_stats_rate(0, 7, &v);
    ck_assert(v.has_value);
    ck_assert_double_eq(v.score, 0.0);

    sb_stats_rate(5, 0, &v);
    ck_assert(!v.has_value);
    ck_assert_uint_eq(v.count, 0);
    ck_assert_uint_eq(v.num, 5);
    ck_assert_double_eq(v.score, 0.0);
}
END_TEST

/* ---- KPI ---- */

START_TEST(kpi_bucket_values)
{
    ck_assert_int_eq(sb_stats_kpi_bucket(0), 0);
    ck_assert_int_eq(sb_stats_kpi_bucket(0.9), 0);
    ck_assert_int_eq(sb_stats_kpi_bucket(1.5), 1);
    ck_assert_int_eq(sb_stats_kpi_bucket(120), 120);
    ck_assert_int_eq(sb_stats_kpi_bucket(999.99), 999);
    ck_assert_int_eq(sb_stats_kpi_bucket(1009), 1009);
    ck_assert_int_eq(sb_stats_kpi_bucket(5400), 5400);
    ck_assert_int_eq(sb_stats_kpi_bucket(9999), 9999);
    ck_assert_int_eq(sb_stats_kpi_bucket(9999.9), 9999);
    ck_assert_int_eq(sb_stats_kpi_bucket(10000), 10000);
    ck_assert_int_eq(sb_stats_kpi_bucket(10009), 10000); /* 9 / 10009 = .09 % */
    ck_assert_int_eq(sb_stats_kpi_bucket(10010), 10010);
    ck_assert_int_eq(sb_stats_kpi_bucket(12345), 12340);
    ck_assert_int_eq(sb_stats_kpi_bucket(99999), 99990);
    ck_assert_int_eq(sb_stats_kpi_bucket(100000), 100000);
    ck_assert_int_eq(sb_stats_kpi_bucket(1234567), 1234000);
    ck_assert_int_eq(sb_stats_kpi_bucket(-5), 0);
    ck_assert_int_eq(sb_stats_kpi_bucket(NAN), 0);
    ck_assert_int_eq(sb_stats_kpi_bucket(1e30), INT64_C(1000000000000000000));
}
END_TEST

START_TEST(kpi_bucket_error_bound)
{
    /* Checked in loops with one assertion each at the end (a Check assertion per value would
     * be slow); the first offending value is reported. */
    double bad = -1;
    /* every whole second below 10000 is its own key */
    for (int v = 0; v < 10000 && bad < 0; v++)
        if (sb_stats_kpi_bucket(v) != v) bad = v;
    ck_assert_msg(bad < 0, "whole second %.0f is not its own key", bad);
    /* whole seconds 1000..2,000,000: key <= v and (v - key) / v < 0.1 % */
    for (int64_t v = 1000; v <= 2000000 && bad < 0; v++) {
        const int64_t k = sb_stats_kpi_bucket((double)v);
        if (k > v || (double)(v - k) / (double)v >= 0.001) bad = (double)v;
    }
    ck_assert_msg(bad < 0, "error bound broken at %.0f s", bad);
    /* fractional values over many decades, up to 1e15 s: below 1000 s the error is < 1 s */
    int n = 0;
    for (double v = 0.37; v < 1e15 && bad < 0; v *= 1.0007, n++) {
        const double k = (double)sb_stats_kpi_bucket(v);
        if (k > v || (v >= 1000 ? (v - k) / v >= 0.001 : v - k >= 1.0)) bad = v;
    }
    ck_assert_msg(bad < 0, "error bound broken at %.17g s", bad);
    ck_assert_int_gt(n, 50000); /* the sweep did cover the decades */
}
END_TEST

START_TEST(kpi_mean_p90)
{
    /* 10, 20, ..., 100 once each, given out of order: N = 10, rank = ceil(.9 * 10) = 9;
     * cumulative at 90 is 9 -> p90 = 90. mean = 550 / 10 = 55. */
    const int64_t keys[] = {50, 100, 10, 90, 30, 20, 80, 40, 70, 60};
    const uint64_t counts[] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    sb_metric_value_t v;
    ck_assert_int_eq(sb_stats_kpi(keys, counts, 10, 550.0, 10, &v), 0);
    ck_assert_int_eq(v.form, SB_STATS_KPI);
    ck_assert(v.has_value);
    ck_assert(v.has_p90);
    ck_assert_uint_eq(v.count, 10);
    ck_assert_double_eq(v.mean, 55.0);
    ck_assert_double_eq(v.score, 55.0);
    ck_assert_double_eq(v.p90, 90.0);

    /* 5 s once, 60 s 8 times, 3600 s once: rank 9, cumulative 1, 9 -> p90 = 60;
     * mean uses the exact sum: (5 + 480 + 3600) / 10 = 408.5 */
    const int64_t k2[] = {3600, 60, 5};
    const uint64_t c2[] = {1, 8, 1};
    sb_stats_kpi(k2, c2, 3, 4085.0, 10, &v);
    ck_assert_double_eq(v.p90, 60.0);
    ck_assert_double_eq(v.mean, 408.5);

    /* N = 11: rank = ceil(9.9) = 10; 1 s x9, 2 s x1, 3 s x1 -> cumulative 9, 10 -> p90 = 2 */
    const int64_t k3[] = {1, 2, 3};
    const uint64_t c3[] = {9, 1, 1};
    sb_stats_kpi(k3, c3, 3, 14.0, 11, &v);
    ck_assert_double_eq(v.p90, 2.0);

    /* N = 20: rank = 18 exactly (no float edge); 1 s x18, 2 s x2 -> p90 = 1 */
    const uint64_t c4[] = {18, 2};
    sb_stats_kpi(k3, c4, 2, 22.0, 20, &v);
    ck_assert_double_eq(v.p90, 1.0);

    /* repeated keys add up: 10 x1, 20 x1, 10 x8 -> 10 has 9 of 10 -> p90 = 10 */
    const int64_t k5[] = {10, 20, 10};
    const uint64_t c5[] = {1, 1, 8};
    sb_stats_kpi(k5, c5, 3, 110.0, 10, &v);
    ck_assert_double_eq(v.p90, 10.0);

    /* a single observation is its own p90 */
    const int64_t k6[] = {12340};
    const uint64_t c6[] = {1};
    sb_stats_kpi(k6, c6, 1, 12345.0, 1, &v);
    ck_assert_double_eq(v.p90, 12340.0);
    ck_assert_double_eq(v.mean, 12345.0); /* the mean is exact, not bucketed */
}
END_TEST

START_TEST(kpi_empty)
{
    sb_metric_value_t v;
    ck_assert_int_eq(sb_stats_kpi(NULL, NULL, 0, 0.0, 0, &v), 0);
    ck_assert(!v.has_value);
    ck_assert(!v.has_p90);
    ck_assert_uint_eq(v.count, 0);
    ck_assert_double_eq(v.mean, 0.0);
    /* keys present but all with zero counts */
    const int64_t k[] = {5, 6};
    const uint64_t c[] = {0, 0};
    ck_assert_int_eq(sb_stats_kpi(k, c, 2, 0.0, 0, &v), 0);
    ck_assert(!v.has_p90);
    ck_assert(!v.has_value);
}
END_TEST

/* ---- alerts ---- */

START_TEST(alerts)
{
    const sb_scale_t nps = {.min = 0, .max = 10};
    /* NPS, nps_max 6: 0..6 alert, 7 does not */
    ck_assert(sb_stats_is_alert(SB_KIND_NPS, 0, &nps, 6, 3, 6, 2));
    ck_assert(sb_stats_is_alert(SB_KIND_NPS, 6, &nps, 6, 3, 6, 2));
    ck_assert(!sb_stats_is_alert(SB_KIND_NPS, 7, &nps, 6, 3, 6, 2));
    ck_assert(!sb_stats_is_alert(SB_KIND_NPS, 10, &nps, 6, 3, 6, 2));
    /* CSAT, csat_max 3 on 1..5 */
    ck_assert(sb_stats_is_alert(SB_KIND_CSAT, 1, &CSAT5, 6, 3, 6, 2));
    ck_assert(sb_stats_is_alert(SB_KIND_CSAT, 3, &CSAT5, 6, 3, 6, 2));
    ck_assert(!sb_stats_is_alert(SB_KIND_CSAT, 4, &CSAT5, 6, 3, 6, 2));
    /* CES, 1 = easy: 6 and 7 are hard (ces_hard_min 6) */
    ck_assert(!sb_stats_is_alert(SB_KIND_CES, 1, &CES_LOW, 6, 3, 6, 2));
    ck_assert(!sb_stats_is_alert(SB_KIND_CES, 5, &CES_LOW, 6, 3, 6, 2));
    ck_assert(sb_stats_is_alert(SB_KIND_CES, 6, &CES_LOW, 6, 3, 6, 2));
    ck_assert(sb_stats_is_alert(SB_KIND_CES, 7, &CES_LOW, 6, 3, 6, 2));
    /* CES, 7 = easy: 1 and 2 are hard (ces_hard_max 2) */
    ck_assert(sb_stats_is_alert(SB_KIND_CES, 1, &CES_HIGH, 6, 3, 6, 2));
    ck_assert(sb_stats_is_alert(SB_KIND_CES, 2, &CES_HIGH, 6, 3, 6, 2));
    ck_assert(!sb_stats_is_alert(SB_KIND_CES, 3, &CES_HIGH, 6, 3, 6, 2));
    ck_assert(!sb_stats_is_alert(SB_KIND_CES, 7, &CES_HIGH, 6, 3, 6, 2));
    ck_assert(!sb_stats_is_alert(SB_KIND__N, 0, &nps, 6, 3, 6, 2));

    ck_assert_str_eq(sb_stats_alert_type(SB_KIND_NPS), "detractor");
    ck_assert_str_eq(sb_stats_alert_type(SB_KIND_CSAT), "detractor");
    ck_assert_str_eq(sb_stats_alert_type(SB_KIND_CES), "detractor");
    ck_assert_ptr_null(sb_stats_alert_type(SB_KIND__N));
}
END_TEST

/* ---- rounding ---- */

START_TEST(round2)
{
    /* large values stay whole and rounding is idempotent (3e12 once went to 3e12 + .01) */
    ck_assert_double_eq(sb_stats_round2(3e12), 3e12);
    ck_assert_double_eq(sb_stats_round2(sb_stats_round2(3e12)), 3e12);
    ck_assert_double_eq(sb_stats_round2(4.5e15), 4.5e15);
    ck_assert_double_eq(sb_stats_round2(sb_stats_round2(123456789012.345)),
                        sb_stats_round2(123456789012.345));

    ck_assert_double_eq(sb_stats_round2(25.0), 25.0);
    ck_assert_double_eq(sb_stats_round2(14.835486735), 14.84);
    ck_assert_double_eq(sb_stats_round2(71.116903807), 71.12);
    ck_assert_double_eq(sb_stats_round2(86.663407744), 86.66);
    ck_assert_double_eq(sb_stats_round2(0.004), 0.0);
    /* exact binary ties go away from zero */
    ck_assert_double_eq(sb_stats_round2(2.125), 2.13);
    ck_assert_double_eq(sb_stats_round2(-2.125), -2.13);
    ck_assert_double_eq(sb_stats_round2(0.125), 0.13);
    /* decimal ties stored a hair below .5 still round up, as by hand */
    ck_assert_double_eq(sb_stats_round2(1.005), 1.01);
    ck_assert_double_eq(sb_stats_round2(0.015), 0.02);
    ck_assert_double_eq(sb_stats_round2(2.675), 2.68);
    ck_assert_double_eq(sb_stats_round2(-1.005), -1.01);
    /* but a value clearly below the tie rounds down */
    ck_assert_double_eq(sb_stats_round2(2.014999), 2.01);
    ck_assert_double_eq(sb_stats_round2(-2.014999), -2.01);
    /* no negative zero in published numbers */
    const double z = sb_stats_round2(-0.001);
    ck_assert_double_eq(z, 0.0);
    ck_assert(!signbit(z));
    ck_assert(!signbit(sb_stats_round2(-0.0)));
    ck_assert(isnan(sb_stats_round2(NAN)));
    ck_assert(isinf(sb_stats_round2(INFINITY)));
    ck_assert_double_eq(sb_stats_round2(1e300), 1e300);
    ck_assert_double_eq(sb_stats_round2(123456789.126), 123456789.13);
}
END_TEST

static Suite *stats_suite(void)
{
    Suite *s = suite_create("stats");
    TCase *tc = tcase_create("hist");
    tcase_add_test(tc, hist_add_merge_total);
    suite_add_tcase(s, tc);

    tc = tcase_create("nps");
    tcase_add_test(tc, nps_spec_example);
    tcase_add_test(tc, nps_small_sample);
    tcase_add_test(tc, nps_degenerate_samples);
    tcase_add_test(tc, nps_score_ties_round_half_away);
    tcase_add_test(tc, nps_empty);
    suite_add_tcase(s, tc);

    tc = tcase_create("csat");
    tcase_add_test(tc, csat_wilson);
    tcase_add_test(tc, csat_wilson_edges);
    tcase_add_test(tc, csat_other_scale);
    suite_add_tcase(s, tc);

    tc = tcase_create("ces");
    tcase_add_test(tc, ces_low_is_easy);
    tcase_add_test(tc, ces_high_is_easy);
    tcase_add_test(tc, ces_rounding_and_empty);
    suite_add_tcase(s, tc);

    tc = tcase_create("rate");
    tcase_add_test(tc, rates);
    suite_add_tcase(s, tc);

    tc = tcase_create("kpi");
    tcase_set_timeout(tc, 120); /* the error-bound sweep is slow under valgrind */
    tcase_add_test(tc, kpi_bucket_values);
    tcase_add_test(tc, kpi_bucket_error_bound);
    tcase_add_test(tc, kpi_mean_p90);
    tcase_add_test(tc, kpi_empty);
    suite_add_tcase(s, tc);

    tc = tcase_create("alert");
    tcase_add_test(tc, alerts);
    suite_add_tcase(s, tc);

    tc = tcase_create("round");
    tcase_add_test(tc, round2);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return sb_unit_run(stats_suite());
}
