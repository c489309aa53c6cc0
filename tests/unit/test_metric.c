/* Metric updates on the bus: the exact text published for each metric (rounding, integral
 * reals, null scores of empty slices), decode as its inverse, and every rejection reason. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metric.h"
#include "stats.h"

#include "unit.h"

static char err[256];

/* 2026-11-22T11:00:00Z (20779 days after the epoch * 86400 + 11 h, see test_survey.c) + 123 ms. */
#define T_ASOF 1795345200123LL
#define HEAD(m)                                                                                   \
    "{\"metric\":\"" m "\",\"window\":\"24h\",\"dimension\":\"region\",\"value\":\"east\","      \
    "\"as_of\":\"2026-11-22T11:00:00.123Z\","

static sb_metric_update_t blank(sb_metric_t m)
{
    sb_metric_update_t u;
    memset(&u, 0, sizeof u);
    u.metric = m;
    u.v.form = (sb_stats_form_t)sb_metric_form(m);
    strcpy(u.window, "24h");
    strcpy(u.dimension, "region");
    strcpy(u.value, "east");
    u.as_of_ms = T_ASOF;
    return u;
}

/* A filled-in value per metric, as sb_stats_* would leave it (numbers not yet rounded). */
static sb_metric_update_t sample(sb_metric_t m)
{
    sb_metric_update_t u = blank(m);
    sb_metric_value_t *v = &u.v;
    v->has_value = true;
    switch (m) {
    case SB_METRIC_NPS:
        /* 60 promoters, 30 passives, 30 detractors of 120: 100 (60 - 30) / 120 = 25 -> "25.0";
         * moe95 = 196 sqrt((0.75 - 0.25^2) / 120) = 196 * 0.0756913 = 14.8355 -> 14.84. */
        v->count = 120, v->promoters = 60, v->passives = 30, v->detractors = 30;
        v->score = 25.0, v->moe95 = 14.835486;
        break;
    case SB_METRIC_CSAT:
        /* 7 of 8 satisfied: 87.5; Wilson bounds 52.9105 % and 97.7583 % -> 52.91, 97.76. */
        v->count = 8, v->satisfied = 7;
        v->score = 87.5, v->ci95_low = 52.910493, v->ci95_high = 97.758343;
        break;
    case SB_METRIC_CES:
        /* 200 responses summing to 403: mean 403 / 200 = 2.015, stored as 2.01499999999999990,
         * published 2.02 (a decimal tie, rounded away from zero); 131 easy: 65.5 %. */
        v->count = 200, v->easy = 131;
        v->score = v->mean = 403.0 / 200.0, v->easy_pct = 100.0 * 131 / 200;
        break;
    case SB_METRIC_RESPONSE_RATE:
        /* 40 responses to 120 requests: 33.333... -> 33.33; count = den, as sb_stats_rate. */
        v->num = 40, v->den = 120, v->count = 120;
        v->score = 100.0 * 40 / 120;
        break;
    case SB_METRIC_FRT:
        /* 10 first responses averaging 95.5 s; p90 a bucket key, 180 s -> "180.0". */
        v->count = 10, v->score = v->mean = 95.5;
        v->has_p90 = true, v->p90 = 180;
        break;
    case SB_METRIC_ART:
        /* 3 resolutions summing to 16202 s: mean 5400.666... -> 5400.67; p90 5400 -> "5400.0". */
        v->count = 3, v->score = v->mean = 16202.0 / 3;
        v->has_p90 = true, v->p90 = 5400;
        break;
    case SB_METRIC_FCR:
        /* 7 of 9 resolved on first contact: 77.777... -> 77.78. */
        v->num = 7, v->den = 9, v->count = 9;
        v->score = 100.0 * 7 / 9;
        break;
    case SB_METRIC_TRANSFER_RATE:
        /* 1 of 8 transferred: 12.5. */
        v->num = 1, v->den = 8, v->count = 8;
        v->score = 12.5;
        break;
    default:
        break;
    }
    return u;
}

static const char *const sample_json[SB_METRIC__N] = {
    HEAD("nps") "\"count\":120,\"score\":25.0,\"promoters\":60,\"passives\":30,\"detractors\":30,"
                "\"moe95\":14.84}",
    HEAD("csat") "\"count\":8,\"score\":87.5,\"satisfied\":7,\"ci95_low\":52.91,\"ci95_high\":97.76}",
    HEAD("ces") "\"count\":200,\"score\":2.02,\"mean\":2.02,\"easy\":131,\"easy_pct\":65.5}",
    /* count is the responses (num), not sb_stats_rate's count (den) */
    HEAD("response_rate") "\"count\":40,\"score\":33.33,\"requests\":120}",
    HEAD("frt") "\"count\":10,\"score\":95.5,\"mean\":95.5,\"p90\":180.0}",
    HEAD("art") "\"count\":3,\"score\":5400.67,\"mean\":5400.67,\"p90\":5400.0}",
    HEAD("fcr") "\"count\":9,\"score\":77.78,\"resolved\":7}",
    HEAD("transfer_rate") "\"count\":8,\"score\":12.5,\"transferred\":1}",
};

/* Empty slices: every count 0, every real null. */
static const char *const empty_json[SB_METRIC__N] = {
    HEAD("nps") "\"count\":0,\"score\":null,\"promoters\":0,\"passives\":0,\"detractors\":0,"
                "\"moe95\":null}",
    HEAD("csat") "\"count\":0,\"score\":null,\"satisfied\":0,\"ci95_low\":null,\"ci95_high\":null}",
    HEAD("ces") "\"count\":0,\"score\":null,\"mean\":null,\"easy\":0,\"easy_pct\":null}",
    HEAD("response_rate") "\"count\":0,\"score\":null,\"requests\":0}",
    HEAD("frt") "\"count\":0,\"score\":null,\"mean\":null,\"p90\":null}",
    HEAD("art") "\"count\":0,\"score\":null,\"mean\":null,\"p90\":null}",
    HEAD("fcr") "\"count\":0,\"score\":null,\"resolved\":0}",
    HEAD("transfer_rate") "\"count\":0,\"score\":null,\"transferred\":0}",
};

static void expect_encode(const sb_metric_update_t *u, const char *want)
{
    char *text = sb_metric_update_encode(u);
    ck_assert_ptr_nonnull(text);
    ck_assert_str_eq(text, want);
    free(text);
}

/* decode(encode(u)) holds u's published numbers: counts as they were, reals rounded (0 when
 * null), the rate count mapped back to den. */
static void expect_round_trip(const sb_metric_update_t *u)
{
    char *text = sb_metric_update_encode(u);
    ck_assert_ptr_nonnull(text);
    sb_metric_update_t d;
    ck_assert_msg(sb_metric_update_decode(text, strlen(text), &d, err, sizeof err) == 0, "%s: %s",
                  text, err);
    const sb_metric_value_t *a = &u->v, *b = &d.v;
    ck_assert_int_eq(d.metric, u->metric);
    ck_assert_str_eq(d.window, u->window);
    ck_assert_str_eq(d.dimension, u->dimension);
    ck_assert_str_eq(d.value, u->value);
    ck_assert_int_eq(d.as_of_ms, u->as_of_ms);
    ck_assert_int_eq(b->form, sb_metric_form(u->metric));
    ck_assert_int_eq(b->has_value, a->has_value);
    ck_assert_int_eq(b->has_p90, a->has_p90);
    ck_assert_uint_eq(b->count, a->count);
    ck_assert_uint_eq(b->promoters, a->promoters);
    ck_assert_uint_eq(b->passives, a->passives);
    ck_assert_uint_eq(b->detractors, a->detractors);
    ck_assert_uint_eq(b->satisfied, a->satisfied);
    ck_assert_uint_eq(b->easy, a->easy);
    ck_assert_uint_eq(b->num, a->num);
    ck_assert_uint_eq(b->den, a->den);
#define PUB(x, present) ((present) ? sb_stats_round2(x) : 0.0)
    ck_assert(b->score == PUB(a->score, a->has_value));
    ck_assert(b->moe95 == PUB(a->moe95, a->has_value));
    ck_assert(b->ci95_low == PUB(a->ci95_low, a->has_value));
    ck_assert(b->ci95_high == PUB(a->ci95_high, a->has_value));
    ck_assert(b->mean == PUB(a->mean, a->has_value));
    ck_assert(b->easy_pct == PUB(a->easy_pct, a->has_value));
    ck_assert(b->p90 == PUB(a->p90, a->has_p90));
#undef PUB
    /* and it publishes the same text again */
    char *again = sb_metric_update_encode(&d);
    ck_assert_ptr_nonnull(again);
    ck_assert_str_eq(again, text);
    free(again);
    free(text);
}

/* ---- names ---- */

START_TEST(names)
{
    const char *want[] = {"nps", "csat", "ces", "response_rate", "frt", "art", "fcr",
                          "transfer_rate"};
    for (int m = 0; m < SB_METRIC__N; m++) {
        ck_assert_str_eq(sb_metric_names[m], want[m]);
        ck_assert_int_eq(sb_metric_parse(want[m]), m);
    }
    ck_assert_int_eq(sb_metric_parse("NPS"), -1); /* names are exact */
    ck_assert_int_eq(sb_metric_parse("rate"), -1);
    ck_assert_int_eq(sb_metric_parse(""), -1);
    ck_assert_int_eq(sb_metric_parse(NULL), -1);
    ck_assert_int_eq(sb_metric_form(SB_METRIC_NPS), SB_STATS_NPS);
    ck_assert_int_eq(sb_metric_form(SB_METRIC_CSAT), SB_STATS_CSAT);
    ck_assert_int_eq(sb_metric_form(SB_METRIC_CES), SB_STATS_CES);
    ck_assert_int_eq(sb_metric_form(SB_METRIC_RESPONSE_RATE), SB_STATS_RATE);
    ck_assert_int_eq(sb_metric_form(SB_METRIC_FRT), SB_STATS_KPI);
    ck_assert_int_eq(sb_metric_form(SB_METRIC_ART), SB_STATS_KPI);
    ck_assert_int_eq(sb_metric_form(SB_METRIC_FCR), SB_STATS_RATE);
    ck_assert_int_eq(sb_metric_form(SB_METRIC_TRANSFER_RATE), SB_STATS_RATE);
    ck_assert_int_eq(sb_metric_form(SB_METRIC__N), -1);
}
END_TEST

/* ---- encoding ---- */

START_TEST(encode_exact)
{
    sb_metric_update_t u = sample((sb_metric_t)_i);
    expect_encode(&u, sample_json[_i]);
}
END_TEST

START_TEST(encode_empty)
{
    sb_metric_update_t u = blank((sb_metric_t)_i);
    expect_encode(&u, empty_json[_i]);
}
END_TEST

/* The values sb_stats computes encode to the same text as the hand-filled samples. */
START_TEST(encode_from_stats)
{
    sb_hist_t h;
    memset(&h, 0, sizeof h);
    sb_stats_hist_add(&h, 10, 60); /* promoters */
    sb_stats_hist_add(&h, 8, 30);  /* passives */
    sb_stats_hist_add(&h, 0, 30);  /* detractors */
    sb_metric_update_t u = blank(SB_METRIC_NPS);
    sb_stats_nps(&h, &u.v);
    expect_encode(&u, sample_json[SB_METRIC_NPS]);

    u = blank(SB_METRIC_RESPONSE_RATE);
    sb_stats_rate(40, 120, &u.v); /* count = 120 = den; published count 40 */
    expect_encode(&u, sample_json[SB_METRIC_RESPONSE_RATE]);

    u = blank(SB_METRIC_FCR);
    sb_stats_rate(7, 9, &u.v);
    expect_encode(&u, sample_json[SB_METRIC_FCR]);

    /* responses in the window to requests sent before it: no requests, so no rate, but the
     * 3 responses are still the count */
    u = blank(SB_METRIC_RESPONSE_RATE);
    sb_stats_rate(3, 0, &u.v);
    expect_encode(&u, HEAD("response_rate") "\"count\":3,\"score\":null,\"requests\":0}");
    /* the encoder writes the value it is given: 100 * 0 / 5 = 0 -> "0.0" (the aggregator's
     * response_rate of a window with requests but no responses has none: sb_tally_metric,
     * "score": null as for every count of 0) */
    sb_stats_rate(0, 5, &u.v);
    expect_encode(&u, HEAD("response_rate") "\"count\":0,\"score\":0.0,\"requests\":5}");
}
END_TEST

START_TEST(encode_numbers)
{
    sb_metric_update_t u = blank(SB_METRIC_NPS);
    /* negative scores: -12.5 stays; -33.333... -> -33.33; -0.004 rounds to 0, printed "0.0"
     * and not "-0.0" */
    u.v.has_value = true, u.v.count = 3, u.v.detractors = 1, u.v.passives = 2;
    u.v.score = -12.5;
    u.v.moe95 = 100.0 / 3; /* 33.333... -> 33.33 */
    char *text = sb_metric_update_encode(&u);
    ck_assert_ptr_nonnull(strstr(text, "\"score\":-12.5,"));
    ck_assert_ptr_nonnull(strstr(text, "\"moe95\":33.33}"));
    free(text);
    u.v.score = -100.0 / 3;
    u.v.moe95 = -0.004;
    text = sb_metric_update_encode(&u);
    ck_assert_ptr_nonnull(strstr(text, "\"score\":-33.33,"));
    ck_assert_ptr_nonnull(strstr(text, "\"moe95\":0.0}"));
    free(text);
    /* 1.005 is stored as 1.00499999999999989 and still published 1.01; 100 -> "100.0" */
    u.v.score = 100.0, u.v.moe95 = 1.005;
    text = sb_metric_update_encode(&u);
    ck_assert_ptr_nonnull(strstr(text, "\"score\":100.0,"));
    ck_assert_ptr_nonnull(strstr(text, "\"moe95\":1.01}"));
    free(text);

    /* a KPI with a mean but no distribution: p90 alone is null */
    u = sample(SB_METRIC_FRT);
    u.v.has_p90 = false, u.v.p90 = 0;
    expect_encode(&u, HEAD("frt") "\"count\":10,\"score\":95.5,\"mean\":95.5,\"p90\":null}");
    expect_round_trip(&u);

    /* large counts and seconds: 123456789 s p90 keeps every digit, "123456789.0" */
    u = sample(SB_METRIC_ART);
    u.v.count = 4000000000ULL, u.v.p90 = 123456789;
    expect_encode(&u, HEAD("art") "\"count\":4000000000,\"score\":5400.67,\"mean\":5400.67,"
                                  "\"p90\":123456789.0}");
}
END_TEST

START_TEST(encode_texts)
{
    sb_metric_update_t u = sample(SB_METRIC_TRANSFER_RATE);
    strcpy(u.window, "7d");
    strcpy(u.dimension, "all");
    strcpy(u.value, "all");
    u.as_of_ms = 0; /* the epoch, as the aggregator encodes for comparison */
    expect_encode(&u, "{\"metric\":\"transfer_rate\",\"window\":\"7d\",\"dimension\":\"all\","
                      "\"value\":\"all\",\"as_of\":\"1970-01-01T00:00:00.000Z\",\"count\":8,"
                      "\"score\":12.5,\"transferred\":1}");
    /* non-ASCII and characters JSON must escape */
    strcpy(u.dimension, "team");
    strcpy(u.value, "华东 \"A\"\\1");
    char *text = sb_metric_update_encode(&u);
    ck_assert_ptr_nonnull(strstr(text, "\"value\":\"华东 \\\"A\\\"\\\\1\","));
    free(text);
    expect_round_trip(&u);
    /* a window filling its whole array (no NUL) is read up to the array's end */
    memset(u.window, 'w', sizeof u.window);
    text = sb_metric_update_encode(&u);
    ck_assert_ptr_nonnull(strstr(text, "\"window\":\"wwwwwwwwwwwwwwwwwwwwwwwwwwwwwwww\","));
    free(text);
}
END_TEST

START_TEST(encode_failures)
{
    sb_metric_update_t u = sample(SB_METRIC_NPS);
    u.metric = SB_METRIC__N;
    ck_assert_ptr_null(sb_metric_update_encode(&u));
    u = sample(SB_METRIC_NPS);
    strcpy(u.value, "east\xFF");
    ck_assert_ptr_null(sb_metric_update_encode(&u)); /* not UTF-8 */
    u = sample(SB_METRIC_NPS);
    u.v.moe95 = NAN;
    ck_assert_ptr_null(sb_metric_update_encode(&u)); /* JSON has no NaN */
    u = sample(SB_METRIC_CES);
    u.v.easy_pct = INFINITY;
    ck_assert_ptr_null(sb_metric_update_encode(&u));
    u = sample(SB_METRIC_NPS);
    u.v.promoters = (uint64_t)INT64_MAX + 1; /* beyond a JSON integer here */
    ck_assert_ptr_null(sb_metric_update_encode(&u));
    /* but a NaN where null is published is never looked at */
    u = blank(SB_METRIC_FRT);
    u.v.p90 = NAN;
    expect_encode(&u, empty_json[SB_METRIC_FRT]);
}
END_TEST

/* ---- decoding ---- */

START_TEST(round_trip)
{
    sb_metric_update_t u = sample((sb_metric_t)_i);
    expect_round_trip(&u);
    u = blank((sb_metric_t)_i);
    expect_round_trip(&u);
}
END_TEST

START_TEST(decode_values)
{
    sb_metric_update_t d;
    const char *t = sample_json[SB_METRIC_CES];
    ck_assert_int_eq(sb_metric_update_decode(t, strlen(t), &d, err, sizeof err), 0);
    ck_assert_int_eq(d.v.form, SB_STATS_CES);
    ck_assert(d.v.has_value);
    ck_assert(d.v.score == 2.02 && d.v.mean == 2.02 && d.v.easy_pct == 65.5);
    ck_assert_uint_eq(d.v.count, 200);
    ck_assert_uint_eq(d.v.easy, 131);
    ck_assert_int_eq(d.as_of_ms, T_ASOF);

    /* response_rate: count 40 is num, requests 120 is den (and v.count) */
    t = sample_json[SB_METRIC_RESPONSE_RATE];
    ck_assert_int_eq(sb_metric_update_decode(t, strlen(t), &d, err, sizeof err), 0);
    ck_assert_int_eq(d.v.form, SB_STATS_RATE);
    ck_assert_uint_eq(d.v.num, 40);
    ck_assert_uint_eq(d.v.den, 120);
    ck_assert_uint_eq(d.v.count, 120);
    ck_assert(d.v.score == 33.33);

    /* transfer_rate: count 8 is den, transferred 1 is num */
    t = sample_json[SB_METRIC_TRANSFER_RATE];
    ck_assert_int_eq(sb_metric_update_decode(t, strlen(t), &d, err, sizeof err), 0);
    ck_assert_uint_eq(d.v.num, 1);
    ck_assert_uint_eq(d.v.den, 8);
    ck_assert_uint_eq(d.v.count, 8);

    /* unknown keys are ignored, key order does not matter, an integer serves as a real, and
     * as_of may carry an offset: 19:00:00.5+08:00 = 11:00:00.500Z */
    t = "{\"extra\":{\"x\":[1,2]},\"p90\":180,\"mean\":95.5,\"score\":95.5,\"count\":10,"
        "\"as_of\":\"2026-11-22T19:00:00.5+08:00\",\"value\":\"east\",\"dimension\":\"region\","
        "\"window\":\"24h\",\"metric\":\"frt\",\"version\":2}";
    ck_assert_msg(sb_metric_update_decode(t, strlen(t), &d, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(d.metric, SB_METRIC_FRT);
    ck_assert_int_eq(d.v.form, SB_STATS_KPI);
    ck_assert(d.v.has_p90 && d.v.p90 == 180.0);
    ck_assert_int_eq(d.as_of_ms, 1795345200500LL);

    /* the first and the last millisecond of 4-digit years are accepted and publish again:
     * 0000-01-01 is 719528 days before the epoch (719162 from 0001-01-01, plus the 366 of
     * the leap year 0), -719528 * 86400000 = -62167219200000 ms; 10000-01-01 is 2932897
     * days after it, 2932897 * 86400000 = 253402300800000, so the last ms is ...799999.
     * 00:01+00:01 on 0000-01-01 is that first instant exactly. */
    const char *edge[] = {"0000-01-01T00:00:00Z", "0000-01-01T00:01:00+00:01",
                          "9999-12-31T23:59:59.999Z"};
    const int64_t edge_ms[] = {-62167219200000LL, -62167219200000LL, 253402300799999LL};
    for (int i = 0; i < 3; i++) {
        char text[256];
        snprintf(text, sizeof text,
                 "{\"metric\":\"fcr\",\"window\":\"24h\",\"dimension\":\"all\",\"value\":\"all\","
                 "\"as_of\":\"%s\",\"count\":0,\"score\":null,\"resolved\":0}",
                 edge[i]);
        ck_assert_msg(sb_metric_update_decode(text, strlen(text), &d, err, sizeof err) == 0, "%s",
                      err);
        ck_assert_int_eq(d.as_of_ms, edge_ms[i]);
        expect_round_trip(&d);
    }

    /* null reals decode as absent: has_value false, numbers 0 */
    t = empty_json[SB_METRIC_NPS];
    ck_assert_int_eq(sb_metric_update_decode(t, strlen(t), &d, err, sizeof err), 0);
    ck_assert(!d.v.has_value);
    ck_assert(d.v.score == 0 && d.v.moe95 == 0);
}
END_TEST

/* Decodes text, expecting failure with exactly the reason want. */
static void expect_reject(const char *text, const char *want)
{
    sb_metric_update_t d;
    err[0] = '\0';
    ck_assert_msg(sb_metric_update_decode(text, strlen(text), &d, err, sizeof err) == -1,
                  "accepted: %s", text);
    ck_assert_str_eq(err, want);
}

START_TEST(decode_rejections)
{
    sb_metric_update_t d;
    /* garbage and non-objects: the detail is jansson's, so only the code is fixed */
    const char *bad[] = {"not json", "", "[1,2]", "\"nps\"", "{\"metric\":\"nps\""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_int_eq(sb_metric_update_decode(bad[i], strlen(bad[i]), &d, err, sizeof err), -1);
        ck_assert_msg(strncmp(err, "invalid_json", 12) == 0, "%s -> %s", bad[i], err);
    }
    ck_assert_int_eq(sb_metric_update_decode("{}\0x", 4, &d, err, sizeof err), -1);
    ck_assert_str_eq(err, "nul_byte");

#define REST "\"window\":\"24h\",\"dimension\":\"all\",\"value\":\"all\","                        \
             "\"as_of\":\"2026-11-22T11:00:00Z\",\"count\":1,\"score\":12.5,\"transferred\":0}"
    /* the shape that is accepted, and each way to break it */
    ck_assert_int_eq(sb_metric_update_decode("{\"metric\":\"transfer_rate\"," REST,
                                             strlen("{\"metric\":\"transfer_rate\"," REST), &d,
                                             err, sizeof err),
                     0);
    expect_reject("{" REST, "missing_field: metric");
    expect_reject("{\"metric\":null," REST, "missing_field: metric");
    expect_reject("{\"metric\":\"\"," REST, "missing_field: metric");
    expect_reject("{\"metric\":7," REST, "wrong_type: metric");
    expect_reject("{\"metric\":\"latency\"," REST, "bad_metric: latency");
    expect_reject("{\"metric\":\"NPS\"," REST, "bad_metric: NPS");
    expect_reject("{\"metric\":\"a\\nb\"," REST, "bad_metric: a?b"); /* quoted safely */
#undef REST

#define H(m) "{\"metric\":\"" m "\",\"window\":\"24h\",\"dimension\":\"all\",\"value\":\"all\","
#define T "\"as_of\":\"2026-11-22T11:00:00Z\","
    /* the score */
    expect_reject(H("fcr") T "\"count\":1,\"score\":\"25\",\"resolved\":1}", "wrong_type: score");
    expect_reject(H("fcr") T "\"count\":1,\"score\":true,\"resolved\":1}", "wrong_type: score");
    expect_reject(H("fcr") T "\"count\":1,\"resolved\":1}", "missing_field: score");
    /* the count */
    expect_reject(H("fcr") T "\"score\":null,\"resolved\":0}", "missing_field: count");
    expect_reject(H("fcr") T "\"count\":1.0,\"score\":100.0,\"resolved\":1}", "wrong_type: count");
    expect_reject(H("fcr") T "\"count\":-1,\"score\":null,\"resolved\":0}",
                  "wrong_type: count: negative");
    /* the fields of each form */
    expect_reject(H("fcr") T "\"count\":1,\"score\":100.0}", "missing_field: resolved");
    expect_reject(H("response_rate") T "\"count\":1,\"score\":100.0}", "missing_field: requests");
    expect_reject(H("transfer_rate") T "\"count\":1,\"score\":0.0,\"transferred\":\"0\"}",
                  "wrong_type: transferred");
    expect_reject(H("nps") T "\"count\":1,\"score\":100.0,\"promoters\":1,\"passives\":0,"
                             "\"detractors\":0}",
                  "missing_field: moe95");
    expect_reject(H("nps") T "\"count\":1,\"score\":100.0,\"promoters\":1,\"passives\":null,"
                             "\"detractors\":0,\"moe95\":0.0}",
                  "missing_field: passives");
    expect_reject(H("csat") T "\"count\":1,\"score\":100.0,\"satisfied\":1,\"ci95_low\":[],"
                              "\"ci95_high\":100.0}",
                  "wrong_type: ci95_low");
    expect_reject(H("ces") T "\"count\":1,\"score\":2.0,\"mean\":2.0,\"easy_pct\":100.0}",
                  "missing_field: easy");
    expect_reject(H("frt") T "\"count\":1,\"score\":2.0,\"mean\":2.0}", "missing_field: p90");
    /* times */
    expect_reject(H("fcr") "\"count\":0,\"score\":null,\"resolved\":0}", "missing_field: as_of");
    expect_reject(H("fcr") "\"as_of\":\"yesterday\",\"count\":0,\"score\":null,\"resolved\":0}",
                  "bad_time: as_of: yesterday");
    expect_reject(H("fcr") "\"as_of\":1795345200000,\"count\":0,\"score\":null,\"resolved\":0}",
                  "wrong_type: as_of");
    /* an offset that moves the instant out of years 0000..9999 in UTC: 00:00+00:01 on
     * 0000-01-01 is 23:59 on 31 Dec of year -1, 23:59-00:01 on 9999-12-31 is 10000-01-01
     * 00:00; neither has a 4-digit year to be published with */
    expect_reject(H("fcr") "\"as_of\":\"0000-01-01T00:00:00+00:01\",\"count\":0,\"score\":null,"
                           "\"resolved\":0}",
                  "bad_time: as_of: 0000-01-01T00:00:00+00:01");
    expect_reject(H("fcr") "\"as_of\":\"9999-12-31T23:59:00-00:01\",\"count\":0,\"score\":null,"
                           "\"resolved\":0}",
                  "bad_time: as_of: 9999-12-31T23:59:00-00:01");
#undef H
#undef T

    /* texts: 31 bytes of window fit, 32 do not; dimension and value up to SB_STR_MAX */
    char text[1024], w32[33], s257[258];
    memset(w32, 'w', 32), w32[32] = '\0';
    memset(s257, 'v', 257), s257[257] = '\0';
    const char *fmt = "{\"metric\":\"fcr\",\"window\":\"%s\",\"dimension\":\"%s\",\"value\":\"%s\","
                      "\"as_of\":\"2026-11-22T11:00:00Z\",\"count\":0,\"score\":null,"
                      "\"resolved\":0}";
    snprintf(text, sizeof text, fmt, w32 + 1, "all", s257 + 1);
    ck_assert_msg(sb_metric_update_decode(text, strlen(text), &d, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(strlen(d.window), 31);
    ck_assert_int_eq(strlen(d.value), 256);
    snprintf(text, sizeof text, fmt, w32, "all", "all");
    expect_reject(text, "too_long: window");
    snprintf(text, sizeof text, fmt, "24h", s257, "all");
    expect_reject(text, "too_long: dimension");
    snprintf(text, sizeof text, fmt, "24h", "all", s257);
    expect_reject(text, "too_long: value");
    snprintf(text, sizeof text, fmt, "24h", "", "all");
    expect_reject(text, "missing_field: dimension");
    expect_reject("{\"metric\":\"fcr\",\"window\":24,\"dimension\":\"all\",\"value\":\"all\"}",
                  "wrong_type: window");
    expect_reject("{\"metric\":\"fcr\",\"window\":\"24h\",\"dimension\":\"all\"}",
                  "missing_field: value");
}

/* ---- one-line JSON for the event stream ---- */

START_TEST(json_line)
{
    char *l = sb_metric_json_line("{\"a\":1}", 7); /* already one line: the same bytes */
    ck_assert_str_eq(l, "{\"a\":1}");
    free(l);
    const char pretty[] = "{\n  \"a\": 1,\r\n  \"b\": \"x y\"\n}";
    l = sb_metric_json_line(pretty, strlen(pretty)); /* spans lines: compact */
    ck_assert_str_eq(l, "{\"a\":1,\"b\":\"x y\"}");
    free(l);
    l = sb_metric_json_line("42", 2); /* any JSON value */
    ck_assert_str_eq(l, "42");
    free(l);
    ck_assert_ptr_null(sb_metric_json_line("not json", 8));
    ck_assert_ptr_null(sb_metric_json_line("{\"a\":1}\0", 8)); /* a NUL after it */
    ck_assert_ptr_null(sb_metric_json_line("", 0));
}
END_TEST

END_TEST

int main(void)
{
    Suite *s = suite_create("metric");
    TCase *tn = tcase_create("names");
    tcase_add_test(tn, names);
    suite_add_tcase(s, tn);
    TCase *te = tcase_create("encode");
    tcase_add_loop_test(te, encode_exact, 0, SB_METRIC__N);
    tcase_add_loop_test(te, encode_empty, 0, SB_METRIC__N);
    tcase_add_test(te, encode_from_stats);
    tcase_add_test(te, encode_numbers);
    tcase_add_test(te, encode_texts);
    tcase_add_test(te, encode_failures);
    suite_add_tcase(s, te);
    TCase *td = tcase_create("decode");
    tcase_add_loop_test(td, round_trip, 0, SB_METRIC__N);
    tcase_add_test(td, decode_values);
    tcase_add_test(td, decode_rejections);
    tcase_add_test(td, json_line);
    suite_add_tcase(s, td);
    return sb_unit_run(s);
}
