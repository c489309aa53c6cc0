/* Survey and service-KPI statistics (SPEC §4): score histograms and the metric values derived
 * from them (NPS with its margin of error, CSAT with a Wilson interval, CES, rates, KPI mean and
 * p90), alert decisions, and rounding for publication. Pure: no I/O, no global state. */
#ifndef SB_STATS_H
#define SB_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

/* Count of responses per integer score 0..SB_SCORE_MAX. Histograms add, so every metric over
 * a window is a function of the sum of its buckets' histograms. */
typedef struct sb_hist {
    uint64_t n[SB_SCORE_MAX + 1];
} sb_hist_t;

/* Adds count responses with the given score. Returns 0, or -1 when score is out of 0..10. */
int sb_stats_hist_add(sb_hist_t *h, int score, uint64_t count);
/* dst += src, per score. */
void sb_stats_hist_merge(sb_hist_t *dst, const sb_hist_t *src);
/* Total number of responses in h. */
uint64_t sb_stats_hist_total(const sb_hist_t *h);

/* Which fields of sb_metric_value_t a computation filled (what an encoder should emit). */
typedef enum {
    SB_STATS_NPS = 0, /* promoters, passives, detractors, moe95 */
    SB_STATS_CSAT,    /* satisfied, ci95_low, ci95_high */
    SB_STATS_CES,     /* mean, easy, easy_pct */
    SB_STATS_RATE,    /* num, den */
    SB_STATS_KPI      /* mean, p90 (has_p90) */
} sb_stats_form_t;

/* One computed metric. Fields that do not belong to `form` are 0. When has_value is false
 * (nothing counted) every number is 0 and the published score is null. */
typedef struct sb_metric_value {
    sb_stats_form_t form;
    bool has_value; /* false when count == 0 */
    uint64_t count; /* responses (NPS/CSAT/CES), den (rates), interactions (KPI) */
    double score;   /* the headline: NPS -100..100, CSAT %, CES mean, rate %, KPI mean s */
    /* NPS */
    uint64_t promoters, passives, detractors;
    double moe95; /* 95 % margin of error of the score, in NPS points */
    /* CSAT */
    uint64_t satisfied;
    double ci95_low, ci95_high; /* Wilson 95 % interval of the score, in % */
    /* CES and KPI */
    double mean;
    /* CES */
    uint64_t easy;
    double easy_pct;
    /* rates */
    uint64_t num, den;
    /* KPI */
    bool has_p90; /* false when the distribution is empty */
    double p90;   /* seconds, a bucket key (see sb_stats_kpi_bucket) */
} sb_metric_value_t;

/* Net Promoter Score of h (scale fixed at 0..10): promoters 9-10, passives 7-8, detractors
 * 0-6; score = 100 (P - D) / n. moe95 = 1.96 * 100 * sqrt(((P + D)/n - ((P - D)/n)^2) / n),
 * the normal-approximation margin of the difference of two proportions from one multinomial
 * sample (it is 0 when the sample has no spread, e.g. all passives). */
void sb_stats_nps(const sb_hist_t *h, sb_metric_value_t *out);

/* CSAT of h on scale: satisfied = responses scoring >= scale->satisfied_min; score =
 * 100 satisfied / n; [ci95_low, ci95_high] the Wilson score interval (z = 1.96), in %.
 * Scores outside scale->min..max are ignored. */
void sb_stats_csat(const sb_hist_t *h, const sb_scale_t *scale, sb_metric_value_t *out);

/* CES of h on scale: score = mean = the mean score; easy = responses scoring <= easy_max when
 * scale->easy_low, else >= easy_min; easy_pct = 100 easy / n. Scores outside the scale are
 * ignored. */
void sb_stats_ces(const sb_hist_t *h, const sb_scale_t *scale, sb_metric_value_t *out);

/* A percentage rate (response_rate, fcr, transfer_rate): score = 100 num / den, count = den.
 * has_value is false when den == 0. num > den is not clamped (e.g. responses in a window to
 * requests sent before it). */
void sb_stats_rate(uint64_t num, uint64_t den, sb_metric_value_t *out);

/* ---- KPI distributions (frt, art: seconds) ----
 * A KPI distribution is a map bucket key -> count plus an exact running sum and count.
 * Keys keep SB_STATS_KPI_DIGITS (4) significant digits of the whole seconds, rounded down:
 * 0..9999 are kept exactly, 12345 -> 12340, 1234567 -> 1234000. Error bound: for any value
 * v >= 0, key <= v and v - key < max(1 s, v / 1000); in particular (v - key) / v < 0.1 % for
 * every v >= 1000 s, and key == v for whole seconds below 10000. Negative and NaN values map
 * to 0; values above 1e18 s are clamped there. */
#define SB_STATS_KPI_DIGITS 4
int64_t sb_stats_kpi_bucket(double seconds);

/* KPI value from a distribution: keys[i] holds counts[i] observations (keys need not be
 * sorted or distinct; borrowed). count = the number of observations (has_value is false when
 * 0); score = mean = sum / count, exact. p90 is the nearest-rank 90th percentile of the
 * distribution: the smallest key k such that the observations with keys <= k number at least
 * ceil(0.9 N), N = sum of counts (has_p90 false when N == 0).
 * Returns 0, or -1 when memory for sorting could not be allocated (out is then zeroed). */
int sb_stats_kpi(const int64_t *keys, const uint64_t *counts, size_t n, double sum,
                 uint64_t count, sb_metric_value_t *out);

/* ---- alerts ---- */

/* True when a response of this kind and score raises an alert: NPS score <= nps_max; CSAT
 * score <= csat_max; CES score >= ces_hard_min when scale->easy_low (low is easy, so the high
 * end is hard), else score <= ces_hard_max. scale is the kind's scale (borrowed). */
bool sb_stats_is_alert(sb_kind_t kind, int score, const sb_scale_t *scale, int nps_max,
                       int csat_max, int ces_hard_min, int ces_hard_max);

/* The alert type of a kind: "detractor" for every kind (SPEC §4; the alert's "kind" tells
 * NPS, CSAT and CES apart); NULL for an unknown kind. Static string. */
const char *sb_stats_alert_type(sb_kind_t kind);

/* ---- publication ---- */

/* x rounded to 2 decimals, half away from zero: 2.125 -> 2.13, -2.125 -> -2.13. A value within
 * 8 ulps below a tie counts as the tie, because it is nearly always a decimal tie that binary
 * cannot hold (403/200 = 2.015 is stored as 2.01499999999999990): 2.015 -> 2.02, 1.005 -> 1.01,
 * as when rounding by hand. Returns the double nearest to the rounded decimal; -0 becomes 0;
 * NaN, infinities and |x| >= 2^52 are returned unchanged. Print the result with at most 15
 * significant digits (e.g. "%.15g"; with jansson JSON_REAL_PRECISION(15)) for the short text. */
double sb_stats_round2(double x);

#endif
