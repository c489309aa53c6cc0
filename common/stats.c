/* Metric values from score histograms and KPI distributions, alert decisions and publication
 * rounding. See stats.h for the definitions; every formula is stated there. */
#include "stats.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define Z95 1.96
#define TIE_ULPS 8 /* tolerance of sb_stats_round2, in units of the last place */

/* ---- histograms ---- */

int sb_stats_hist_add(sb_hist_t *h, int score, uint64_t count)
{
    if (score < 0 || score > SB_SCORE_MAX) return -1;
    h->n[score] += count;
    return 0;
}

void sb_stats_hist_merge(sb_hist_t *dst, const sb_hist_t *src)
{
    for (int s = 0; s <= SB_SCORE_MAX; s++) dst->n[s] += src->n[s];
}

uint64_t sb_stats_hist_total(const sb_hist_t *h)
{
    uint64_t t = 0;
    for (int s = 0; s <= SB_SCORE_MAX; s++) t += h->n[s];
    return t;
}

static void reset(sb_metric_value_t *out, sb_stats_form_t form)
{
    memset(out, 0, sizeof *out);
    out->form = form;
}

/* Clamps a scale's bounds to the histogram's index range. */
static void scale_range(const sb_scale_t *scale, int *lo, int *hi)
{
    *lo = scale->min < 0 ? 0 : scale->min;
    *hi = scale->max > SB_SCORE_MAX ? SB_SCORE_MAX : scale->max;
}

/* ---- survey metrics ---- */

/* The SPEC's example update (60/30/30, n = 120) shows moe95 13.4. The standard margin used here
 * gives 14.84 for that sample: var = (P+D)/n - ((P-D)/n)^2 = .75 - .0625 = .6875,
 * 1.96 * 100 * sqrt(.6875 / 120) = 14.84. 13.4 is what 1.96 * 100 * (P+D)/n / sqrt(n) gives
 * (equivalently p(1-p) + d(1-d) + pd as the variance, counting the covariance once instead
 * of twice); no textbook estimator of the NPS variance reduces to it, so it is treated as an
 * illustrative number, not a formula to match. */
void sb_stats_nps(const sb_hist_t *h, sb_metric_value_t *out)
{
    reset(out, SB_STATS_NPS);
    for (int s = 0; s <= SB_SCORE_MAX; s++) {
        if (s >= 9)
            out->promoters += h->n[s];
        else if (s >= 7)
            out->passives += h->n[s];
        else
            out->detractors += h->n[s];
    }
    out->count = out->promoters + out->passives + out->detractors;
    if (out->count == 0) return;
    out->has_value = true;
    const double n = (double)out->count;
    const double p = (double)out->promoters / n, d = (double)out->detractors / n;
    /* from the integer difference: p - d of two nearly equal rounded shares can land a few
     * ulps off an exact decimal tie (23 - 22 of 160 gave 0.62499999999999778, published
     * 0.62 instead of 0.63) */
    out->score = 100.0 * ((double)out->promoters - (double)out->detractors) / n;
    double var = (p + d) - (p - d) * (p - d);
    if (var < 0) var = 0; /* rounding when p + d is 0 or 1 */
    out->moe95 = Z95 * 100.0 * sqrt(var / n);
}

void sb_stats_csat(const sb_hist_t *h, const sb_scale_t *scale, sb_metric_value_t *out)
{
    reset(out, SB_STATS_CSAT);
    int lo, hi;
    scale_range(scale, &lo, &hi);
    for (int s = lo; s <= hi; s++) {
        out->count += h->n[s];
        if (s >= scale->satisfied_min) out->satisfied += h->n[s];
    }
    if (out->count == 0) return;
    out->has_value = true;
    const double n = (double)out->count, p = (double)out->satisfied / n, z2 = Z95 * Z95;
    out->score = 100.0 * p;
    /* Wilson: (p + z²/2n ± z sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n) */
    const double denom = 1.0 + z2 / n;
    const double centre = (p + z2 / (2.0 * n)) / denom;
    const double half = Z95 * sqrt(p * (1.0 - p) / n + z2 / (4.0 * n * n)) / denom;
    double low = centre - half, high = centre + half;
    if (low < 0) low = 0;
    if (high > 1) high = 1;
    out->ci95_low = 100.0 * low;
    out->ci95_high = 100.0 * high;
}

void sb_stats_ces(const sb_hist_t *h, const sb_scale_t *scale, sb_metric_value_t *out)
{
    reset(out, SB_STATS_CES);
    int lo, hi;
    scale_range(scale, &lo, &hi);
    double total = 0;
    for (int s = lo; s <= hi; s++) {
        out->count += h->n[s];
        total += (double)s * (double)h->n[s];
        if (scale->easy_low ? s <= scale->easy_max : s >= scale->easy_min) out->easy += h->n[s];
    }
    if (out->count == 0) return;
    out->has_value = true;
    out->mean = out->score = total / (double)out->count;
    out->easy_pct = 100.0 * (double)out->easy / (double)out->count;
}

void sb_stats_rate(uint64_t num, uint64_t den, sb_metric_value_t *out)
{
    reset(out, SB_STATS_RATE);
    out->num = num;
    out->den = den;
    out->count = den;
    if (den == 0) return;
    out->has_value = true;
    out->score = 100.0 * (double)num / (double)den;
}

/* ---- KPI distributions ---- */

int64_t sb_stats_kpi_bucket(double seconds)
{
    if (!(seconds > 0)) return 0; /* negative, zero, NaN */
    if (seconds > 1e18) seconds = 1e18;
    const int64_t v = (int64_t)seconds; /* floor for positive values */
    int64_t limit = 1, step = 1;
    for (int i = 0; i < SB_STATS_KPI_DIGITS; i++) limit *= 10;
    while (v / step >= limit) step *= 10;
    return v / step * step;
}

typedef struct kpi_pair {
    int64_t key;
    uint64_t count;
} kpi_pair_t;

static int pair_cmp(const void *a, const void *b)
{
    const int64_t x = ((const kpi_pair_t *)a)->key, y = ((const kpi_pair_t *)b)->key;
    return (x > y) - (x < y);
}

int sb_stats_kpi(const int64_t *keys, const uint64_t *counts, size_t n, double sum,
                 uint64_t count, sb_metric_value_t *out)
{
    reset(out, SB_STATS_KPI);
    kpi_pair_t *pairs = NULL;
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) total += counts[i];
    if (total > 0) {
        pairs = malloc(n * sizeof *pairs);
        if (!pairs) goto fail;
        for (size_t i = 0; i < n; i++) pairs[i] = (kpi_pair_t){keys[i], counts[i]};
        qsort(pairs, n, sizeof *pairs, pair_cmp);
        /* nearest rank: ceil(0.9 N) in integers, so no floating-point edge at exact tenths */
        const uint64_t rank = (9 * total + 9) / 10;
        uint64_t cum = 0;
        for (size_t i = 0; i < n; i++) {
            cum += pairs[i].count;
            if (cum >= rank) {
                out->p90 = (double)pairs[i].key;
                out->has_p90 = true;
                break;
            }
        }
        free(pairs);
    }
    out->count = count;
    if (count > 0) {
        out->has_value = true;
        out->mean = out->score = sum / (double)count;
    }
    return 0;
fail:
    reset(out, SB_STATS_KPI);
    return -1;
}

/* ---- alerts ---- */

bool sb_stats_is_alert(sb_kind_t kind, int score, const sb_scale_t *scale, int nps_max,
                       int csat_max, int ces_hard_min, int ces_hard_max)
{
    switch (kind) {
    case SB_KIND_NPS: return score <= nps_max;
    case SB_KIND_CSAT: return score <= csat_max;
    case SB_KIND_CES: return scale->easy_low ? score >= ces_hard_min : score <= ces_hard_max;
    default: return false;
    }
}

const char *sb_stats_alert_type(sb_kind_t kind)
{
    switch (kind) {
    case SB_KIND_NPS:
    case SB_KIND_CSAT:
    case SB_KIND_CES:
        return "detractor";
    default: return NULL;
    }
}

/* ---- publication ---- */

double sb_stats_round2(double x)
{
    if (!isfinite(x) || fabs(x) >= 0x1p52) return x; /* already an integer */
    const double a = fabs(x) * 100.0;
    double r = floor(a);
    /* a - r is exact. A fraction a few ulps short of .5 is taken as the tie it almost surely
     * is (a decimal tie such as 403/200 = 2.015 is stored as 2.01499999999999990). */
    /* the tolerance is capped: past about 3e12 it would reach .5 and round whole values up
     * (found by fuzzing); capped, rounding a rounded value never changes it */
    double tol = TIE_ULPS * DBL_EPSILON * a;
    if (tol > 0.25) tol = 0.25;
    if (a - r >= 0.5 - tol) r += 1.0;
    r /= 100.0;
    if (r == 0) return 0.0;
    return x < 0 ? -r : r;
}
