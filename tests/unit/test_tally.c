/* Unit tests for the pure helpers of common/tally.c (no Redis): cell indices, parsing of the
 * KPI totals hash, metric values of a window, slice activity and slice names. Every expected
 * value is worked out by hand in the comment beside it. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "metric.h"
#include "stats.h"
#include "tally.h"

#include "unit.h"

/* ---- cells ---- */

START_TEST(cell_index)
{
    /* slice * 34 + kind * 11 + score, kinds csat 0, ces 1, nps 2; the sent counter is 33 */
    ck_assert_int_eq(sb_tally_cell(0, SB_KIND_CSAT, 0), 0);
    ck_assert_int_eq(sb_tally_cell(0, SB_KIND_CSAT, 10), 10);
    ck_assert_int_eq(sb_tally_cell(0, SB_KIND_CES, 0), 11);  /* 1 * 11 */
    ck_assert_int_eq(sb_tally_cell(0, SB_KIND_CES, 10), 21); /* 11 + 10 */
    ck_assert_int_eq(sb_tally_cell(0, SB_KIND_NPS, 0), 22);  /* 2 * 11 */
    ck_assert_int_eq(sb_tally_cell(0, SB_KIND_NPS, 10), 32); /* 22 + 10, last score cell */
    ck_assert_int_eq(sb_tally_cell(0, -1, 0), 33);           /* sent */
    ck_assert_int_eq(sb_tally_cell(1, SB_KIND_CSAT, 0), 34); /* next slice starts at 34 */
    ck_assert_int_eq(sb_tally_cell(3, SB_KIND_CES, 4), 117); /* 102 + 11 + 4 */
    ck_assert_int_eq(sb_tally_cell(3, -1, 7), 135);          /* 102 + 33: score ignored */
    ck_assert_int_eq(sb_tally_cell(7, SB_KIND_NPS, 9), 269); /* 238 + 22 + 9 */
    ck_assert_int_eq(sb_tally_cell(1000000, SB_KIND_NPS, 10), 34000032); /* 34e6 + 32 */
    /* 64-bit arithmetic: 10^12 * 34 + 33 = 34000000000033 */
    ck_assert_int_eq(sb_tally_cell(INT64_C(1000000000000), -1, 0), INT64_C(34000000000033));
    ck_assert_int_eq(SB_TALLY_CELLS, 34);
    ck_assert_int_eq(SB_TALLY_SENT, 33);
}
END_TEST

/* ---- the KPI totals hash ---- */

typedef struct field {
    const char *name;
    int64_t value;
} field_t;

/* The fields of slices 3, 1 and 12, interleaved as HGETALL may return them (a hash has no
 * order). A zero never appears: the script deletes a field that falls to 0.
 *  slice 3: frt 3 interactions summing 60000 ms, keys 10, 20, 30 s once each;
 *           art 10 interactions summing 2400000 ms: key 100 x5, 200 x3, 400 x1, 900 x1
 *           (5 * 100 + 3 * 200 + 400 + 900 = 2400 s, so the keys are the exact values);
 *           fcr known 3, yes 2; transfers known 3, more than zero 1
 *  slice 1: frt 1 interaction of 1500 ms, key 1 s; fcr known 2, yes 2
 *  slice 12: art 2 interactions summing 7000 ms without a distribution; transfers known 4,
 *            none transferred (t1 absent) */
static const field_t fields[] = {
    {"3:fn", 3},    {"1:fn", 1},    {"3:f:20", 1},     {"12:tn", 4},   {"3:fs", 60000},
    {"1:fs", 1500}, {"3:f:10", 1},  {"3:a:900", 1},    {"1:f:1", 1},   {"3:an", 10},
    {"3:a:100", 5}, {"12:an", 2},   {"3:as", 2400000}, {"3:a:400", 1}, {"1:cn", 2},
    {"3:f:30", 1},  {"3:a:200", 3}, {"12:as", 7000},   {"1:c1", 2},    {"3:cn", 3},
    {"3:c1", 2},    {"3:tn", 3},    {"3:t1", 1},
};

/* Malformed names: no slice number, no ':' after it, a negative slice, unknown suffixes,
 * a distribution key that is missing or not a whole number. All of them name no new slice
 * or slice 3 only, so the parse result must equal the one without them. */
static const field_t malformed[] = {
    {"x:fn", 5},  {"3", 5},      {"3:zz", 5},  {"-1:fn", 5}, {"", 5},       {":fn", 5},
    {"3:f:", 5},  {"3:f:7x", 5}, {"3:fq", 5},  {"3:f", 5},   {"3:a", 5},    {"3:c", 5},
    {"3:cn1", 5}, {"3:t2", 5},   {"3:an:", 5}, {"3fn", 5},   {"3.5:fn", 5}, {"3:A:100", 5},
};

static void feed(sb_tally_kpi_t **kpi, size_t *n, size_t *cap, const field_t *f, size_t nf)
{
    for (size_t i = 0; i < nf; i++)
        ck_assert_msg(sb_tally_kpi_field(kpi, n, cap, f[i].name, f[i].value) == 0, "%s", f[i].name);
}

/* Frees what sb_tally_kpi_field allocated, the way sb_tally_read's result is freed. */
static void free_kpi(sb_tally_kpi_t *kpi, size_t n)
{
    sb_tally_snapshot_t s;
    memset(&s, 0, sizeof s);
    s.n = 1;
    s.w[0].kpi = kpi;
    s.w[0].n_kpi = n;
    sb_tally_snapshot_free(&s);
}

/* The count of a distribution's key (0 when absent); keys are not merged, so each key of
 * the hash appears once. */
static uint64_t dist_count(const sb_tally_dist_t *d, int64_t key)
{
    uint64_t c = 0;
    for (size_t i = 0; i < d->n_keys; i++)
        if (d->keys[i] == key) c += d->counts[i];
    return c;
}

static void check_parsed(const sb_tally_kpi_t *kpi, size_t n)
{
    ck_assert_uint_eq(n, 3);
    /* sorted numerically: 1, 3, 12 (not "1" < "12" < "3" as text) */
    ck_assert_int_eq(kpi[0].slice, 1);
    ck_assert_int_eq(kpi[1].slice, 3);
    ck_assert_int_eq(kpi[2].slice, 12);

    const sb_tally_kpi_t *k = &kpi[0];
    ck_assert_uint_eq(k->frt.n, 1);
    ck_assert_int_eq(k->frt.sum_ms, 1500);
    ck_assert_uint_eq(k->frt.n_keys, 1);
    ck_assert_int_eq(k->frt.keys[0], 1);
    ck_assert_uint_eq(k->frt.counts[0], 1);
    ck_assert_uint_eq(k->art.n, 0);
    ck_assert_int_eq(k->art.sum_ms, 0);
    ck_assert_uint_eq(k->art.n_keys, 0);
    ck_assert_uint_eq(k->fcr_n, 2);
    ck_assert_uint_eq(k->fcr_yes, 2);
    ck_assert_uint_eq(k->tr_n, 0);
    ck_assert_uint_eq(k->tr_yes, 0);

    k = &kpi[1];
    ck_assert_uint_eq(k->frt.n, 3);
    ck_assert_int_eq(k->frt.sum_ms, 60000);
    ck_assert_uint_eq(k->frt.n_keys, 3);
    /* keys stay in arrival order: 20, 10, 30 */
    ck_assert_int_eq(k->frt.keys[0], 20);
    ck_assert_int_eq(k->frt.keys[1], 10);
    ck_assert_int_eq(k->frt.keys[2], 30);
    ck_assert_uint_eq(dist_count(&k->frt, 10), 1);
    ck_assert_uint_eq(dist_count(&k->frt, 20), 1);
    ck_assert_uint_eq(dist_count(&k->frt, 30), 1);
    ck_assert_uint_eq(k->art.n, 10);
    ck_assert_int_eq(k->art.sum_ms, 2400000);
    ck_assert_uint_eq(k->art.n_keys, 4);
    ck_assert_uint_eq(dist_count(&k->art, 100), 5);
    ck_assert_uint_eq(dist_count(&k->art, 200), 3);
    ck_assert_uint_eq(dist_count(&k->art, 400), 1);
    ck_assert_uint_eq(dist_count(&k->art, 900), 1);
    ck_assert_uint_eq(k->fcr_n, 3);
    ck_assert_uint_eq(k->fcr_yes, 2);
    ck_assert_uint_eq(k->tr_n, 3);
    ck_assert_uint_eq(k->tr_yes, 1);

    k = &kpi[2];
    ck_assert_uint_eq(k->frt.n, 0);
    ck_assert_uint_eq(k->frt.n_keys, 0);
    ck_assert_uint_eq(k->art.n, 2);
    ck_assert_int_eq(k->art.sum_ms, 7000);
    ck_assert_uint_eq(k->art.n_keys, 0);
    ck_assert_uint_eq(k->fcr_n, 0);
    ck_assert_uint_eq(k->fcr_yes, 0);
    ck_assert_uint_eq(k->tr_n, 4);
    ck_assert_uint_eq(k->tr_yes, 0);
}

START_TEST(kpi_parse)
{
    sb_tally_kpi_t *kpi = NULL;
    size_t n = 0, cap = 0;
    feed(&kpi, &n, &cap, fields, sizeof fields / sizeof fields[0]);
    /* before sorting, slices are in order of first appearance: 3, 1, 12 */
    ck_assert_uint_eq(n, 3);
    ck_assert_int_eq(kpi[0].slice, 3);
    ck_assert_int_eq(kpi[1].slice, 1);
    ck_assert_int_eq(kpi[2].slice, 12);
    sb_tally_kpi_sort(kpi, n);
    check_parsed(kpi, n);
    free_kpi(kpi, n);
}
END_TEST

START_TEST(kpi_malformed_ignored)
{
    /* the same fields with the malformed ones spread among them: the same result */
    sb_tally_kpi_t *kpi = NULL;
    size_t n = 0, cap = 0;
    const size_t nf = sizeof fields / sizeof fields[0];
    const size_t nm = sizeof malformed / sizeof malformed[0];
    for (size_t i = 0; i < nf || i < nm; i++) {
        if (i < nm) feed(&kpi, &n, &cap, &malformed[i], 1);
        if (i < nf) feed(&kpi, &n, &cap, &fields[i], 1);
    }
    sb_tally_kpi_sort(kpi, n);
    check_parsed(kpi, n);
    free_kpi(kpi, n);

    /* malformed fields alone that name no valid slice add nothing */
    kpi = NULL, n = 0, cap = 0;
    const field_t none[] = {{"x:fn", 1}, {"3", 1}, {"-1:fn", 1}, {"", 1}, {":cn", 1}, {"7fn", 1}};
    feed(&kpi, &n, &cap, none, sizeof none / sizeof none[0]);
    ck_assert_uint_eq(n, 0);
    free_kpi(kpi, n);

    /* an unknown field of a valid slice nobody else names may leave a slot, but an empty one:
     * the slice is not active and has no KPI value */
    kpi = NULL, n = 0, cap = 0;
    feed(&kpi, &n, &cap, (const field_t[]){{"9:zz", 4}}, 1);
    for (size_t i = 0; i < n; i++) {
        ck_assert_uint_eq(kpi[i].frt.n + kpi[i].art.n + kpi[i].fcr_n + kpi[i].tr_n, 0);
        ck_assert_uint_eq(kpi[i].frt.n_keys + kpi[i].art.n_keys, 0);
        ck_assert_uint_eq(kpi[i].fcr_yes + kpi[i].tr_yes, 0);
    }
    sb_tally_window_t w = {.kpi = kpi, .n_kpi = n};
    ck_assert(!sb_tally_slice_active(&w, 9));
    free_kpi(kpi, n);
}
END_TEST

START_TEST(kpi_growth_and_negatives)
{
    /* 40 slices (past the first 16-slot allocation) with cn = slice + 1, and one frt
     * distribution of 100 keys (past 16 keys): "5:f:<k>" = k + 1 for k = 0..99 */
    sb_tally_kpi_t *kpi = NULL;
    size_t n = 0, cap = 0;
    char name[32];
    for (int s = 39; s >= 0; s--) { /* descending, so the sort has work to do */
        snprintf(name, sizeof name, "%d:cn", s);
        ck_assert_int_eq(sb_tally_kpi_field(&kpi, &n, &cap, name, s + 1), 0);
    }
    for (int key = 0; key < 100; key++) {
        snprintf(name, sizeof name, "5:f:%d", key);
        ck_assert_int_eq(sb_tally_kpi_field(&kpi, &n, &cap, name, key + 1), 0);
    }
    /* counts below zero read as 0 (a totals hash never holds them; a torn read might) */
    ck_assert_int_eq(sb_tally_kpi_field(&kpi, &n, &cap, "7:fn", -3), 0);
    ck_assert_int_eq(sb_tally_kpi_field(&kpi, &n, &cap, "7:f:5", -2), 0);
    ck_assert_int_eq(sb_tally_kpi_field(&kpi, &n, &cap, "7:tn", -1), 0);
    ck_assert_uint_eq(n, 40);
    ck_assert_uint_ge(cap, 40);
    sb_tally_kpi_sort(kpi, n);
    for (int s = 0; s < 40; s++) {
        ck_assert_int_eq(kpi[s].slice, s);
        ck_assert_uint_eq(kpi[s].fcr_n, (uint64_t)s + 1);
    }
    /* slice 5: keys 0..99 with counts 1..100, sum of counts 100 * 101 / 2 = 5050 */
    const sb_tally_dist_t *d = &kpi[5].frt;
    ck_assert_uint_eq(d->n_keys, 100);
    uint64_t total = 0;
    for (size_t i = 0; i < d->n_keys; i++) {
        ck_assert_int_eq(d->keys[i], (int64_t)i);
        total += d->counts[i];
    }
    ck_assert_uint_eq(total, 5050);
    ck_assert_uint_eq(kpi[7].frt.n, 0);
    ck_assert_uint_eq(kpi[7].frt.n_keys, 1);
    ck_assert_int_eq(kpi[7].frt.keys[0], 5);
    ck_assert_uint_eq(kpi[7].frt.counts[0], 0);
    ck_assert_uint_eq(kpi[7].tr_n, 0);
    free_kpi(kpi, n);
}
END_TEST

START_TEST(kpi_sort)
{
    /* slices 40, 7, 10^12, 0, 12 (fcr_n tags each one) -> 0, 7, 12, 40, 10^12 */
    sb_tally_kpi_t k[5];
    memset(k, 0, sizeof k);
    const int64_t in[5] = {40, 7, INT64_C(1000000000000), 0, 12};
    for (int i = 0; i < 5; i++)
        k[i].slice = in[i], k[i].fcr_n = (uint64_t)i + 100;
    sb_tally_kpi_sort(k, 5);
    const int64_t want[5] = {0, 7, 12, 40, INT64_C(1000000000000)};
    const uint64_t tag[5] = {103, 101, 104, 100, 102}; /* each entry moved whole */
    for (int i = 0; i < 5; i++) {
        ck_assert_int_eq(k[i].slice, want[i]);
        ck_assert_uint_eq(k[i].fcr_n, tag[i]);
    }
    /* nothing and one entry are already sorted */
    sb_tally_kpi_sort(NULL, 0);
    sb_tally_kpi_sort(k, 1);
    ck_assert_int_eq(k[0].slice, 0);
}
END_TEST

/* ---- metrics of a window ---- */

/* A window of 142 cells: slices 0..3 whole (4 * 34 = 136) and the first 6 cells of slice 4,
 * as a BITFIELD string is only as long as its highest cell written. The KPI is the parsed
 * `fields` above (slices 1, 3, 12).
 *  slice 0: nothing
 *  slice 1: nps 10 x3, 9 x1, 8 x2, 7 x1, 6 x1, 3 x1, 0 x1 (10 responses)
 *           csat 5 x3, 4 x2, 3 x1, 2 x1, 1 x1, and 0 x2, 9 x1 outside 1..5 (11 responses)
 *           ces 1 x2, 2 x1, 4 x1, 7 x1, and 0 x1, 8 x1 outside 1..7 (7 responses)
 *           sent 40
 *  slice 2: sent 7, no responses
 *  slice 3: nps 9 x2, csat 5 x3, sent 0
 *  slice 4: csat 5 x1 (cell 141, the last one); its sent cell 169 is past the end */
static sb_tally_snapshot_t snap;
static const sb_config_t *cfg;
static sb_config_t *cfg_owned;

static void window_setup(void)
{
    memset(&snap, 0, sizeof snap);
    snap.n = 1;
    sb_tally_window_t *w = &snap.w[0];
    w->window_ms = 86400000;
    w->n_cells = 142;
    w->cells = calloc(w->n_cells, sizeof *w->cells);
    ck_assert_ptr_nonnull(w->cells);
    uint32_t *c = w->cells;
    /* slice 1 nps: 34 + 22 + score = 56 + score */
    c[66] = 3, c[65] = 1, c[64] = 2, c[63] = 1, c[62] = 1, c[59] = 1, c[56] = 1;
    /* slice 1 csat: 34 + score */
    c[39] = 3, c[38] = 2, c[37] = 1, c[36] = 1, c[35] = 1, c[34] = 2, c[43] = 1;
    /* slice 1 ces: 34 + 11 + score = 45 + score */
    c[46] = 2, c[47] = 1, c[49] = 1, c[52] = 1, c[45] = 1, c[53] = 1;
    c[67] = 40; /* slice 1 sent: 34 + 33 */
    c[101] = 7; /* slice 2 sent: 68 + 33 */
    c[133] = 2; /* slice 3 nps 9: 102 + 22 + 9 */
    c[107] = 3; /* slice 3 csat 5: 102 + 5 */
    c[141] = 1; /* slice 4 csat 5: 136 + 5 */
    size_t cap = 0;
    feed(&w->kpi, &w->n_kpi, &cap, fields, sizeof fields / sizeof fields[0]);
    sb_tally_kpi_sort(w->kpi, w->n_kpi);
    cfg_owned = sb_config_new();
    cfg = cfg_owned;
}

static void window_teardown(void)
{
    sb_tally_snapshot_free(&snap);
    ck_assert_uint_eq(snap.n, 0); /* zeroed */
    sb_config_free(cfg_owned);
    cfg_owned = NULL;
}

/* sb_tally_metric of the fixture's window, on an output full of garbage first. */
static sb_metric_value_t metric(int64_t slice, sb_metric_t m)
{
    sb_metric_value_t v;
    memset(&v, 0x5a, sizeof v);
    sb_tally_metric(&snap.w[0], slice, m, cfg, &v);
    return v;
}

static void expect_empty(const sb_metric_value_t *v, sb_stats_form_t form)
{
    ck_assert_int_eq(v->form, form);
    ck_assert(!v->has_value);
    ck_assert_uint_eq(v->count, 0);
    ck_assert_double_eq(v->score, 0.0);
    ck_assert(!v->has_p90);
}

START_TEST(metric_nps)
{
    /* slice 1: P = 3 + 1 = 4, passives 2 + 1 = 3, D = 1 + 1 + 1 = 3, n = 10;
     * score = 100 (4 - 3) / 10 = 10; p = .4, d = .3, var = .7 - .1^2 = .69,
     * moe = 196 sqrt(.69 / 10) = 196 * .2626785 = 51.4850 */
    sb_metric_value_t v = metric(1, SB_METRIC_NPS);
    ck_assert_int_eq(v.form, SB_STATS_NPS);
    ck_assert(v.has_value);
    ck_assert_uint_eq(v.count, 10);
    ck_assert_uint_eq(v.promoters, 4);
    ck_assert_uint_eq(v.passives, 3);
    ck_assert_uint_eq(v.detractors, 3);
    ck_assert_double_eq_tol(v.score, 10.0, 1e-9);
    ck_assert_double_eq_tol(v.moe95, 51.4850, 1e-4);
    ck_assert_double_eq(sb_stats_round2(v.moe95), 51.48);
    /* slice 3: 2 nines -> 100, no spread, moe 0 */
    v = metric(3, SB_METRIC_NPS);
    ck_assert_uint_eq(v.count, 2);
    ck_assert_double_eq(v.score, 100.0);
    ck_assert_double_eq(v.moe95, 0.0);
    /* slices 0 and 2 have no NPS cells set; slice 4's NPS cells (158..168) and slice 12's
     * are past the end of the cells */
    v = metric(0, SB_METRIC_NPS);
    expect_empty(&v, SB_STATS_NPS);
    v = metric(2, SB_METRIC_NPS);
    expect_empty(&v, SB_STATS_NPS);
    v = metric(4, SB_METRIC_NPS);
    expect_empty(&v, SB_STATS_NPS);
    v = metric(12, SB_METRIC_NPS);
    expect_empty(&v, SB_STATS_NPS);
}
END_TEST

START_TEST(metric_csat)
{
    /* slice 1 on 1..5, satisfied_min 4: n = 3 + 2 + 1 + 1 + 1 = 8 (the zeros and the 9 are
     * outside the scale), satisfied 3 + 2 = 5 -> 62.5 %.
     * Wilson, p = .625, n = 8, z^2 = 3.8416: denom = 1 + .4802 = 1.4802,
     * centre = (.625 + 3.8416 / 16) / 1.4802 = .8651 / 1.4802 = .5844480,
     * half = 1.96 sqrt(.625 * .375 / 8 + 3.8416 / 256) / 1.4802
     *      = 1.96 sqrt(.0292969 + .0150063) / 1.4802 = 1.96 * .2104831 / 1.4802 = .2787102
     * -> [.3057379, .8631582] = [30.57 %, 86.32 %] */
    sb_metric_value_t v = metric(1, SB_METRIC_CSAT);
    ck_assert_int_eq(v.form, SB_STATS_CSAT);
    ck_assert(v.has_value);
    ck_assert_uint_eq(v.count, 8);
    ck_assert_uint_eq(v.satisfied, 5);
    ck_assert_double_eq_tol(v.score, 62.5, 1e-9);
    ck_assert_double_eq_tol(v.ci95_low, 30.5738, 1e-4);
    ck_assert_double_eq_tol(v.ci95_high, 86.3158, 1e-4);
    ck_assert_double_eq(sb_stats_round2(v.ci95_low), 30.57);
    ck_assert_double_eq(sb_stats_round2(v.ci95_high), 86.32);
    /* slice 4: its one cell inside the array, a 5 -> 1 of 1 = 100 % */
    v = metric(4, SB_METRIC_CSAT);
    ck_assert(v.has_value);
    ck_assert_uint_eq(v.count, 1);
    ck_assert_uint_eq(v.satisfied, 1);
    ck_assert_double_eq(v.score, 100.0);
    v = metric(2, SB_METRIC_CSAT);
    expect_empty(&v, SB_STATS_CSAT);
}
END_TEST

START_TEST(metric_ces)
{
    /* slice 1 on 1..7, easy = score <= 2: n = 2 + 1 + 1 + 1 = 5 (0 and 8 are outside),
     * sum = 1 * 2 + 2 + 4 + 7 = 15, mean = 3.0; easy = 2 + 1 = 3 -> 60 % */
    sb_metric_value_t v = metric(1, SB_METRIC_CES);
    ck_assert_int_eq(v.form, SB_STATS_CES);
    ck_assert(v.has_value);
    ck_assert_uint_eq(v.count, 5);
    ck_assert_double_eq_tol(v.score, 3.0, 1e-12);
    ck_assert_double_eq_tol(v.mean, 3.0, 1e-12);
    ck_assert_uint_eq(v.easy, 3);
    ck_assert_double_eq_tol(v.easy_pct, 60.0, 1e-12);
    v = metric(3, SB_METRIC_CES);
    expect_empty(&v, SB_STATS_CES);
}
END_TEST

START_TEST(metric_response_rate)
{
    /* slice 1: every response cell counts, whatever the current scale: nps 10 + csat 11
     * + ces 7 = 28 responses to 40 sent -> 100 * 28 / 40 = 70 % */
    sb_metric_value_t v = metric(1, SB_METRIC_RESPONSE_RATE);
    ck_assert_int_eq(v.form, SB_STATS_RATE);
    ck_assert(v.has_value);
    ck_assert_uint_eq(v.num, 28);
    ck_assert_uint_eq(v.den, 40);
    ck_assert_uint_eq(v.count, 40);
    ck_assert_double_eq_tol(v.score, 70.0, 1e-12);
    /* slice 2: 0 of 7 -> no responses, so no value (the published count is 0: SPEC §4,
     * score null), the 7 requests kept */
    v = metric(2, SB_METRIC_RESPONSE_RATE);
    ck_assert(!v.has_value);
    ck_assert_uint_eq(v.num, 0);
    ck_assert_uint_eq(v.den, 7);
    ck_assert_uint_eq(v.count, 7);
    ck_assert_double_eq(v.score, 0.0);
    /* slice 3: 2 + 3 = 5 responses, nothing sent in the window -> no rate, but the 5
     * responses are kept in num (published as the count) */
    v = metric(3, SB_METRIC_RESPONSE_RATE);
    ck_assert(!v.has_value);
    ck_assert_uint_eq(v.num, 5);
    ck_assert_uint_eq(v.den, 0);
    ck_assert_uint_eq(v.count, 0);
    ck_assert_double_eq(v.score, 0.0);
    /* slice 4: 1 response, its sent cell past the end reads as 0 */
    v = metric(4, SB_METRIC_RESPONSE_RATE);
    ck_assert(!v.has_value);
    ck_assert_uint_eq(v.num, 1);
    ck_assert_uint_eq(v.den, 0);
    /* slice 0: nothing either way */
    v = metric(0, SB_METRIC_RESPONSE_RATE);
    expect_empty(&v, SB_STATS_RATE);
    ck_assert_uint_eq(v.num, 0);
}
END_TEST

START_TEST(metric_kpi)
{
    /* slice 3 frt: mean = 60000 ms / 1000 / 3 = 20 s; p90: N = 3, rank ceil(2.7) = 3,
     * sorted keys 10, 20, 30 -> the 3rd observation, 30 */
    sb_metric_value_t v = metric(3, SB_METRIC_FRT);
    ck_assert_int_eq(v.form, SB_STATS_KPI);
    ck_assert(v.has_value);
    ck_assert_uint_eq(v.count, 3);
    ck_assert_double_eq_tol(v.score, 20.0, 1e-12);
    ck_assert_double_eq_tol(v.mean, 20.0, 1e-12);
    ck_assert(v.has_p90);
    ck_assert_double_eq(v.p90, 30.0);
    /* slice 3 art: mean = 2400000 / 1000 / 10 = 240 s; p90: N = 10, rank ceil(9) = 9;
     * cumulative over sorted keys 100: 5, 200: 8, 400: 9 -> 400 */
    v = metric(3, SB_METRIC_ART);
    ck_assert(v.has_value);
    ck_assert_uint_eq(v.count, 10);
    ck_assert_double_eq_tol(v.mean, 240.0, 1e-12);
    ck_assert(v.has_p90);
    ck_assert_double_eq(v.p90, 400.0);
    /* slice 3 fcr 2 of 3 = 66.67 %, transfers 1 of 3 = 33.33 % */
    v = metric(3, SB_METRIC_FCR);
    ck_assert_int_eq(v.form, SB_STATS_RATE);
    ck_assert(v.has_value);
    ck_assert_uint_eq(v.num, 2);
    ck_assert_uint_eq(v.den, 3);
    ck_assert_uint_eq(v.count, 3);
    ck_assert_double_eq_tol(v.score, 200.0 / 3, 1e-9);
    ck_assert_double_eq(sb_stats_round2(v.score), 66.67);
    v = metric(3, SB_METRIC_TRANSFER_RATE);
    ck_assert_int_eq(v.form, SB_STATS_RATE);
    ck_assert_uint_eq(v.num, 1);
    ck_assert_uint_eq(v.den, 3);
    ck_assert_double_eq(sb_stats_round2(v.score), 33.33);

    /* slice 1 frt: 1500 ms -> 1.5 s; N = 1, rank 1 -> key 1; no art; fcr 2 of 2 = 100 %;
     * no transfers known -> no rate */
    v = metric(1, SB_METRIC_FRT);
    ck_assert_uint_eq(v.count, 1);
    ck_assert_double_eq_tol(v.mean, 1.5, 1e-12);
    ck_assert(v.has_p90);
    ck_assert_double_eq(v.p90, 1.0);
    v = metric(1, SB_METRIC_ART);
    expect_empty(&v, SB_STATS_KPI);
    ck_assert_double_eq(v.mean, 0.0);
    v = metric(1, SB_METRIC_FCR);
    ck_assert(v.has_value);
    ck_assert_double_eq(v.score, 100.0);
    v = metric(1, SB_METRIC_TRANSFER_RATE);
    expect_empty(&v, SB_STATS_RATE);

    /* slice 12 art: 7000 ms over 2 -> 3.5 s, but no distribution -> no p90; 0 of 4
     * transferred -> 0 %, a value */
    v = metric(12, SB_METRIC_ART);
    ck_assert(v.has_value);
    ck_assert_uint_eq(v.count, 2);
    ck_assert_double_eq_tol(v.mean, 3.5, 1e-12);
    ck_assert(!v.has_p90);
    ck_assert_double_eq(v.p90, 0.0);
    v = metric(12, SB_METRIC_TRANSFER_RATE);
    ck_assert(v.has_value);
    ck_assert_uint_eq(v.den, 4);
    ck_assert_double_eq(v.score, 0.0);
    v = metric(12, SB_METRIC_FCR);
    expect_empty(&v, SB_STATS_RATE);

    /* slices without a KPI entry: below (0), between (2) and past (50) the ones present */
    const int64_t none[] = {0, 2, 50};
    for (size_t i = 0; i < 3; i++) {
        v = metric(none[i], SB_METRIC_FRT);
        expect_empty(&v, SB_STATS_KPI);
        v = metric(none[i], SB_METRIC_ART);
        expect_empty(&v, SB_STATS_KPI);
        v = metric(none[i], SB_METRIC_FCR);
        expect_empty(&v, SB_STATS_RATE);
        v = metric(none[i], SB_METRIC_TRANSFER_RATE);
        expect_empty(&v, SB_STATS_RATE);
    }
}
END_TEST

START_TEST(metric_unknown)
{
    /* no such metric: everything zero, whatever was in the output before */
    sb_metric_value_t v = metric(1, SB_METRIC__N);
    sb_metric_value_t zero;
    memset(&zero, 0, sizeof zero);
    ck_assert_int_eq(memcmp(&v, &zero, sizeof v), 0);
}
END_TEST

/* A window's metrics encode to the published text: slice 1's csat as an update. */
START_TEST(metric_encodes)
{
    sb_metric_update_t u;
    memset(&u, 0, sizeof u);
    u.metric = SB_METRIC_CSAT;
    strcpy(u.window, "24h"), strcpy(u.dimension, "region"), strcpy(u.value, "east");
    u.as_of_ms = 0;
    sb_tally_metric(&snap.w[0], 1, SB_METRIC_CSAT, cfg, &u.v);
    char *text = sb_metric_update_encode(&u);
    ck_assert_ptr_nonnull(text);
    ck_assert_str_eq(text, "{\"metric\":\"csat\",\"window\":\"24h\",\"dimension\":\"region\","
                           "\"value\":\"east\",\"as_of\":\"1970-01-01T00:00:00.000Z\","
                           "\"count\":8,\"score\":62.5,\"satisfied\":5,\"ci95_low\":30.57,"
                           "\"ci95_high\":86.32}");
    free(text);
}
END_TEST

/* ---- activity ---- */

START_TEST(active_cells)
{
    const sb_tally_window_t *w = &snap.w[0];
    ck_assert(!sb_tally_slice_active(w, 0)); /* every cell 0, no KPI */
    ck_assert(sb_tally_slice_active(w, 1));  /* responses, sent, KPI */
    ck_assert(sb_tally_slice_active(w, 2));  /* sent only */
    ck_assert(sb_tally_slice_active(w, 3));  /* responses only (and KPI) */
    ck_assert(sb_tally_slice_active(w, 4));  /* a cell in the partial tail */
    ck_assert(!sb_tally_slice_active(w, 5)); /* past the cells, no KPI */
    ck_assert(sb_tally_slice_active(w, 12)); /* KPI only */
    ck_assert(!sb_tally_slice_active(w, 13));
    ck_assert(!sb_tally_slice_active(w, 50));
    ck_assert(!sb_tally_slice_active(w, -1)); /* never a slice id, and no wrap-around */
}
END_TEST

START_TEST(active_kpi)
{
    /* no cells at all; one KPI entry per way to be active, and one with nothing known */
    sb_tally_kpi_t k[5];
    memset(k, 0, sizeof k);
    k[0].slice = 2, k[0].frt.n = 1;
    k[1].slice = 5, k[1].art.n = 1;
    k[2].slice = 6, k[2].fcr_n = 1;
    k[3].slice = 7, k[3].tr_n = 1;
    k[4].slice = 8; /* an empty slot */
    sb_tally_window_t w = {.cells = NULL, .n_cells = 0, .kpi = k, .n_kpi = 5};
    ck_assert(sb_tally_slice_active(&w, 2));
    ck_assert(sb_tally_slice_active(&w, 5));
    ck_assert(sb_tally_slice_active(&w, 6));
    ck_assert(sb_tally_slice_active(&w, 7));
    ck_assert(!sb_tally_slice_active(&w, 8));
    ck_assert(!sb_tally_slice_active(&w, 0));
    ck_assert(!sb_tally_slice_active(&w, 3));
    ck_assert(!sb_tally_slice_active(&w, 9));
    /* an empty window */
    sb_tally_window_t e = {.cells = NULL, .n_cells = 0, .kpi = NULL, .n_kpi = 0};
    ck_assert(!sb_tally_slice_active(&e, 0));
    ck_assert(!sb_tally_slice_active(&e, 1));
}
END_TEST

/* ---- slice names ---- */

typedef char val_t[SB_STR_MAX + 1];
typedef char name_t[SB_TALLY_NAME_MAX];

static val_t vals[SB_DIM__N];

static void names_setup(void)
{
    memset(vals, 0, sizeof vals);
    strcpy(vals[SB_DIM_ALL], "ignored"); /* "all" is never read from vals */
    strcpy(vals[SB_DIM_CHANNEL], "email");
    /* agent empty */
    strcpy(vals[SB_DIM_TEAM], "t1");
    strcpy(vals[SB_DIM_REGION], "华东");
    /* product empty */
    strcpy(vals[SB_DIM_STAGE], "post");
    strcpy(vals[SB_DIM_JOURNEY], "onboarding");
    strcpy(vals[SB_DIM_KIND], "call"); /* not a default dimension */
    strcpy(vals[SB_DIM_LOCALE], "en");
    strcpy(vals[SB_DIM_DEVICE], "d1");
}

/* Names into an array of exactly SB_DIM__N on the heap, so writing past it is caught. */
static size_t names_of(const sb_config_t *c, name_t **out)
{
    *out = malloc(SB_DIM__N * sizeof **out);
    ck_assert_ptr_nonnull(*out);
    return sb_tally_slice_names(c, (const val_t *)vals, *out);
}

static void expect_names(const sb_config_t *c, const char *const *want, size_t n)
{
    name_t *names;
    size_t got = names_of(c, &names);
    ck_assert_uint_eq(got, n);
    for (size_t i = 0; i < n; i++)
        ck_assert_str_eq(names[i], want[i]);
    free(names);
}

/* A config of defaults plus json; "dev": true stands in for the token secret that a
 * config without one would otherwise be refused for. */
static sb_config_t *load(const char *json)
{
    sb_problems_t probs;
    memset(&probs, 0, sizeof probs);
    sb_config_t *c = sb_config_load_string(json, strlen(json), &probs);
    ck_assert_msg(c != NULL, "%s: %s", json, probs.n ? probs.msg[0] : "?");
    sb_problems_clear(&probs);
    return c;
}

START_TEST(names_default)
{
    /* defaults: channel, agent, team, region, product, stage, journey; agent and product
     * are empty, kind/locale/device are not configured */
    sb_config_t *c = sb_config_new();
    const char *want[] = {"all|all",     "channel|email", "team|t1",
                          "region|华东", "stage|post",    "journey|onboarding"};
    expect_names(c, want, 6);

    /* every value empty: "all|all" alone */
    memset(vals, 0, sizeof vals);
    const char *only[] = {"all|all"};
    expect_names(c, only, 1);

    /* a value of SB_STR_MAX bytes is kept whole: "journey|" + 256 = 264 bytes */
    memset(vals[SB_DIM_JOURNEY], 'j', SB_STR_MAX);
    name_t *names;
    ck_assert_uint_eq(names_of(c, &names), 2);
    ck_assert_uint_eq(strlen(names[1]), 8 + SB_STR_MAX);
    ck_assert_int_eq(strncmp(names[1], "journey|jjj", 11), 0);
    ck_assert_int_eq(names[1][8 + SB_STR_MAX - 1], 'j');
    free(names);
    sb_config_free(c);
}
END_TEST

START_TEST(names_configured)
{
    /* one dimension */
    sb_config_t *c = load("{\"dev\":true,\"dimensions\":[\"region\"]}");
    const char *region[] = {"all|all", "region|华东"};
    expect_names(c, region, 2);
    sb_config_free(c);

    /* the config's order, not sb_dim_t's: stage before channel; agent empty is skipped */
    c = load("{\"dev\":true,\"dimensions\":[\"stage\",\"agent\",\"channel\"]}");
    const char *order[] = {"all|all", "stage|post", "channel|email"};
    expect_names(c, order, 3);
    sb_config_free(c);

    /* no dimensions */
    c = load("{\"dev\":true,\"dimensions\":[]}");
    const char *only[] = {"all|all"};
    expect_names(c, only, 1);
    sb_config_free(c);

    /* all ten, every value set: SB_DIM__N = 11 names, the most the array holds */
    strcpy(vals[SB_DIM_AGENT], "a7");
    strcpy(vals[SB_DIM_PRODUCT], "p");
    c = load("{\"dev\":true,\"dimensions\":[\"device\",\"locale\",\"kind\",\"journey\",\"stage\","
             "\"product\",\"region\",\"team\",\"agent\",\"channel\"]}");
    const char *all[] = {
        "all|all",   "device|d1",   "locale|en", "kind|call", "journey|onboarding", "stage|post",
        "product|p", "region|华东", "team|t1",   "agent|a7",  "channel|email"};
    ck_assert_uint_eq(sizeof all / sizeof all[0], SB_DIM__N);
    expect_names(c, all, SB_DIM__N);
    sb_config_free(c);
}
END_TEST

/* ---------------------------------------------------------------- batch plan */

#define PM INT64_C(60000)
#define PH INT64_C(3600000)

static sb_tally_item_t plan_resp(int64_t ts, const int64_t *sl, size_t ns, sb_kind_t kind,
                                 int score)
{
    sb_tally_item_t it;
    memset(&it, 0, sizeof it);
    it.type = SB_TALLY_RESPONSE;
    it.id = "x";
    it.ts_ms = ts;
    memcpy(it.slices, sl, ns * sizeof *sl);
    it.n_slices = ns;
    it.kind = kind;
    it.score = score;
    return it;
}

static void expect_op(const sb_tally_op_t *op, char target, int64_t width, int64_t start,
                      int code, int64_t a, int64_t b, int64_t delta)
{
    ck_assert_int_eq(op->target, target);
    ck_assert_int_eq(op->width, width);
    ck_assert_int_eq(op->start, start);
    ck_assert_int_eq(op->code, code);
    ck_assert_int_eq(op->a, a);
    ck_assert_int_eq(op->b, b);
    ck_assert_int_eq(op->delta, delta);
}

/* Windows 1h (minute buckets) and 24h (hour buckets), base an hour boundary, watermarks
 * base + 10 min (1h) and base - 23 h (24h). Worked by hand:
 *  A csat 4 at base+20m05s, slices 1 and 4: cells 1*34+4 = 38 and 4*34+4 = 140
 *  B csat 4 at base+20m40s, slice 1: cell 38 (same minute as A)
 *  C nps 9 at base+5m, slice 1: cell 34+22+9 = 65; its minute is behind the 1h watermark,
 *    so it counts in 24h and the hour bucket only (and its minute bucket is not written)
 *  D request at base+30m, slice 4: cell 4*34+33 = 169
 *  E KPI at base+20m01s, slice 1: frt 30.5 s (key 30), fcr no (c1 0: dropped), one transfer
 *  F excluded by use[]. */
START_TEST(plan_merges_by_target)
{
    sb_config_t *c = load("{\"dev\":true,\"windows\":[\"1h\",\"24h\"]}");
    const int64_t base = 100 * PH, s1[] = {1}, s14[] = {1, 4}, s4[] = {4};
    sb_tally_item_t it[6];
    it[0] = plan_resp(base + 20 * PM + 5000, s14, 2, SB_KIND_CSAT, 4);
    it[1] = plan_resp(base + 20 * PM + 40000, s1, 1, SB_KIND_CSAT, 4);
    it[2] = plan_resp(base + 5 * PM, s1, 1, SB_KIND_NPS, 9);
    it[3] = plan_resp(base + 30 * PM, s4, 1, SB_KIND_CSAT, 0);
    it[3].type = SB_TALLY_REQUEST;
    it[4] = plan_resp(base + 20 * PM + 1000, s1, 1, SB_KIND_CSAT, 0);
    it[4].type = SB_TALLY_KPI;
    it[4].has_frt = true, it[4].frt_key = 30, it[4].frt_ms = 30500;
    it[4].fcr = 0, it[4].transferred = 1;
    it[5] = plan_resp(base + 20 * PM, s1, 1, SB_KIND_CSAT, 10);
    bool use[6] = {true, true, true, true, true, false};
    const int64_t wm[2] = {base + 10 * PM, base - 23 * PH};
    sb_tally_op_t *ops;
    size_t n = sb_tally_plan(c, wm, it, use, 6, &ops);
    ck_assert_uint_eq(n, 8 + 1 + 10 + 9 + 10);
    const sb_tally_op_t *o = ops;
    /* bucket: minute base+20m (A, B, E) */
    expect_op(o++, 'b', PM, base + 20 * PM, SB_TALLY_OP_CELL, 38, 0, 2);
    expect_op(o++, 'b', PM, base + 20 * PM, SB_TALLY_OP_CELL, 140, 0, 1);
    expect_op(o++, 'b', PM, base + 20 * PM, SB_TALLY_OP_FRT_N, 1, 0, 1);
    expect_op(o++, 'b', PM, base + 20 * PM, SB_TALLY_OP_FRT_SUM, 1, 0, 30500);
    expect_op(o++, 'b', PM, base + 20 * PM, SB_TALLY_OP_FRT_KEY, 1, 30, 1);
    expect_op(o++, 'b', PM, base + 20 * PM, SB_TALLY_OP_FCR_N, 1, 0, 1);
    expect_op(o++, 'b', PM, base + 20 * PM, SB_TALLY_OP_TR_N, 1, 0, 1);
    expect_op(o++, 'b', PM, base + 20 * PM, SB_TALLY_OP_TR_YES, 1, 0, 1);
    /* bucket: minute base+30m (D) */
    expect_op(o++, 'b', PM, base + 30 * PM, SB_TALLY_OP_CELL, 169, 0, 1);
    /* bucket: hour base (all five) */
    expect_op(o++, 'b', PH, base, SB_TALLY_OP_CELL, 38, 0, 2);
    expect_op(o++, 'b', PH, base, SB_TALLY_OP_CELL, 65, 0, 1);
    expect_op(o++, 'b', PH, base, SB_TALLY_OP_CELL, 140, 0, 1);
    expect_op(o++, 'b', PH, base, SB_TALLY_OP_CELL, 169, 0, 1);
    for (int k = 0; k < 6; k++) ck_assert(o[k].code != SB_TALLY_OP_CELL && o[k].start == base);
    o += 6;
    /* window 1h: A, B, D, E */
    expect_op(o++, 'w', PH, 0, SB_TALLY_OP_CELL, 38, 0, 2);
    expect_op(o++, 'w', PH, 0, SB_TALLY_OP_CELL, 140, 0, 1);
    expect_op(o++, 'w', PH, 0, SB_TALLY_OP_CELL, 169, 0, 1);
    expect_op(o++, 'w', PH, 0, SB_TALLY_OP_FRT_N, 1, 0, 1);
    o += 5;
    /* window 24h: everything */
    expect_op(o++, 'w', 24 * PH, 0, SB_TALLY_OP_CELL, 38, 0, 2);
    expect_op(o++, 'w', 24 * PH, 0, SB_TALLY_OP_CELL, 65, 0, 1);
    expect_op(o++, 'w', 24 * PH, 0, SB_TALLY_OP_CELL, 140, 0, 1);
    expect_op(o++, 'w', 24 * PH, 0, SB_TALLY_OP_CELL, 169, 0, 1);
    expect_op(o + 5, 'w', 24 * PH, 0, SB_TALLY_OP_TR_YES, 1, 0, 1);

    char f[64];
    ck_assert_int_eq(sb_tally_op_field(&ops[0], f, sizeof f), 3);
    ck_assert_str_eq(f, "#38");
    ck_assert_int_gt(sb_tally_op_field(&ops[2], f, sizeof f), 0);
    ck_assert_str_eq(f, "1:fn");
    ck_assert_int_gt(sb_tally_op_field(&ops[4], f, sizeof f), 0);
    ck_assert_str_eq(f, "1:f:30");
    ck_assert_int_gt(sb_tally_op_field(&ops[7], f, sizeof f), 0);
    ck_assert_str_eq(f, "1:t1");
    sb_tally_op_t bad = ops[0];
    bad.code = 99;
    ck_assert_int_eq(sb_tally_op_field(&bad, f, sizeof f), -1);
    free(ops);
    sb_config_free(c);
}
END_TEST

/* 24h and 7d share hour buckets: an item in both windows adds to its bucket once; an item
 * behind the 24h watermark but not the 7d one still adds to the bucket (7d reads it). */
START_TEST(plan_shared_bucket_once)
{
    sb_config_t *c = load("{\"dev\":true,\"windows\":[\"24h\",\"7d\"]}");
    const int64_t base = 1000 * PH, s2[] = {2};
    sb_tally_item_t it[2];
    it[0] = plan_resp(base + 5 * PM, s2, 1, SB_KIND_CES, 3);     /* cell 68+11+3 = 82 */
    it[1] = plan_resp(base - 30 * PH, s2, 1, SB_KIND_CES, 3);    /* behind 24h */
    const int64_t wm[2] = {base - 23 * PH, base - 6 * 24 * PH - 23 * PH};
    sb_tally_op_t *ops;
    size_t n = sb_tally_plan(c, wm, it, NULL, 2, &ops);
    ck_assert_uint_eq(n, 4);
    expect_op(&ops[0], 'b', PH, base - 30 * PH, SB_TALLY_OP_CELL, 82, 0, 1);
    expect_op(&ops[1], 'b', PH, base, SB_TALLY_OP_CELL, 82, 0, 1);
    expect_op(&ops[2], 'w', 24 * PH, 0, SB_TALLY_OP_CELL, 82, 0, 1);
    expect_op(&ops[3], 'w', 7 * 24 * PH, 0, SB_TALLY_OP_CELL, 82, 0, 2);
    free(ops);
    /* nothing to add: no ops */
    ck_assert_uint_eq(sb_tally_plan(c, wm, it, NULL, 0, &ops), 0);
    free(ops);
    sb_config_free(c);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("tally");
    TCase *tc = tcase_create("cells");
    tcase_add_test(tc, cell_index);
    suite_add_tcase(s, tc);

    TCase *tk = tcase_create("kpi");
    tcase_add_test(tk, kpi_parse);
    tcase_add_test(tk, kpi_malformed_ignored);
    tcase_add_test(tk, kpi_growth_and_negatives);
    tcase_add_test(tk, kpi_sort);
    suite_add_tcase(s, tk);

    TCase *tm = tcase_create("metric");
    tcase_add_checked_fixture(tm, window_setup, window_teardown);
    tcase_add_test(tm, metric_nps);
    tcase_add_test(tm, metric_csat);
    tcase_add_test(tm, metric_ces);
    tcase_add_test(tm, metric_response_rate);
    tcase_add_test(tm, metric_kpi);
    tcase_add_test(tm, metric_unknown);
    tcase_add_test(tm, metric_encodes);
    tcase_add_test(tm, active_cells);
    suite_add_tcase(s, tm);

    TCase *ta = tcase_create("active");
    tcase_add_test(ta, active_kpi);
    suite_add_tcase(s, ta);

    TCase *tn = tcase_create("names");
    tcase_add_checked_fixture(tn, names_setup, NULL);
    tcase_add_test(tn, names_default);
    tcase_add_test(tn, names_configured);
    suite_add_tcase(s, tn);

    TCase *tp = tcase_create("plan");
    tcase_add_test(tp, plan_merges_by_target);
    tcase_add_test(tp, plan_shared_bucket_once);
    suite_add_tcase(s, tp);

    return sb_unit_run(s);
}
