/* Unit tests for common/window.c: bucket widths, bucket and window edges (also before 1970),
 * ingest plans with lateness and future rejection, TTLs and window names. */
#include <check.h>
#include <stdlib.h>

#include "window.h"

#include "unit.h"

#define MIN SB_WINDOW_MINUTE_MS
#define HOUR SB_WINDOW_HOUR_MS
#define DAY SB_WINDOW_DAY_MS

/* 2026-11-22T10:00:00Z: 20779 days after the epoch (1795305600000 ms, the day's start D)
 * plus 10 h. T is aligned to minutes, hours, but not days. */
static const int64_t D = INT64_C(1795305600000);
static const int64_t T = INT64_C(1795341600000);

static const int64_t WINDOWS[] = {1 * HOUR, 24 * HOUR, 7 * DAY, 30 * DAY};

START_TEST(bucket_widths)
{
    ck_assert_int_eq(sb_window_bucket_width(30 * MIN), MIN);
    ck_assert_int_eq(sb_window_bucket_width(1 * HOUR), MIN);
    ck_assert_int_eq(sb_window_bucket_width(2 * HOUR), HOUR);
    ck_assert_int_eq(sb_window_bucket_width(24 * HOUR), HOUR);
    ck_assert_int_eq(sb_window_bucket_width(2 * DAY), HOUR); /* 1 d divides, but the tier is 1 h */
    ck_assert_int_eq(sb_window_bucket_width(7 * DAY), HOUR);
    ck_assert_int_eq(sb_window_bucket_width(8 * DAY), DAY);
    ck_assert_int_eq(sb_window_bucket_width(30 * DAY), DAY);
    /* not a multiple of the tier's width: the largest width that divides */
    ck_assert_int_eq(sb_window_bucket_width(61 * MIN), MIN);
    ck_assert_int_eq(sb_window_bucket_width(90 * MIN), MIN);
    ck_assert_int_eq(sb_window_bucket_width(8 * DAY + HOUR), HOUR);
    ck_assert_int_eq(sb_window_bucket_width(10 * DAY + 30 * MIN), MIN);
    /* not even whole minutes, and invalid: one minute */
    ck_assert_int_eq(sb_window_bucket_width(90000), MIN);
    ck_assert_int_eq(sb_window_bucket_width(0), MIN);
    ck_assert_int_eq(sb_window_bucket_width(-HOUR), MIN);
}
END_TEST

START_TEST(bucket_starts)
{
    ck_assert_int_eq(sb_window_bucket_start(0, MIN), 0);
    ck_assert_int_eq(sb_window_bucket_start(59999, MIN), 0);
    ck_assert_int_eq(sb_window_bucket_start(60000, MIN), 60000);
    ck_assert_int_eq(sb_window_bucket_start(T, HOUR), T);
    ck_assert_int_eq(sb_window_bucket_start(T - 1, HOUR), T - HOUR);
    ck_assert_int_eq(sb_window_bucket_start(T + 59 * MIN + 59999, HOUR), T);
    ck_assert_int_eq(sb_window_bucket_start(T, DAY), D);
    /* before 1970: floor, not truncation toward zero */
    ck_assert_int_eq(sb_window_bucket_start(-1, MIN), -60000);
    ck_assert_int_eq(sb_window_bucket_start(-60000, MIN), -60000);
    ck_assert_int_eq(sb_window_bucket_start(-60001, MIN), -120000);
    ck_assert_int_eq(sb_window_bucket_start(-1, DAY), -DAY);
}
END_TEST

START_TEST(ranges)
{
    int64_t first, last;
    /* 1 h as of T exactly: minute buckets T-59m .. T (60 of them) */
    sb_window_range(HOUR, T, &first, &last);
    ck_assert_int_eq(last, T);
    ck_assert_int_eq(first, T - 59 * MIN);
    ck_assert_int_eq((last - first) / MIN + 1, 60);
    /* one ms earlier the window is one bucket older */
    sb_window_range(HOUR, T - 1, &first, &last);
    ck_assert_int_eq(last, T - MIN);
    ck_assert_int_eq(first, T - 60 * MIN);
    /* 24 h as of T + 30m: hour buckets T-23h .. T (24) */
    sb_window_range(24 * HOUR, T + 30 * MIN, &first, &last);
    ck_assert_int_eq(last, T);
    ck_assert_int_eq(first, T - 23 * HOUR);
    /* 7 d as of T: 168 hour buckets */
    sb_window_range(7 * DAY, T, &first, &last);
    ck_assert_int_eq(last, T);
    ck_assert_int_eq((last - first) / HOUR + 1, 168);
    /* 30 d as of T: day buckets D-29d .. D */
    sb_window_range(30 * DAY, T, &first, &last);
    ck_assert_int_eq(last, D);
    ck_assert_int_eq(first, D - 29 * DAY);
    /* 90 s (not whole minutes) covers 2 minute buckets: k * 60000 < 90000 for k = 0, 1 */
    sb_window_range(90000, T, &first, &last);
    ck_assert_int_eq(first, T - MIN);
    ck_assert_int_eq(last, T);
    /* before 1970: as of -1 ms, the current minute starts at -60000 */
    sb_window_range(HOUR, -1, &first, &last);
    ck_assert_int_eq(last, -60000);
    ck_assert_int_eq(first, -3600000);
}
END_TEST

START_TEST(contains_edges)
{
    const int64_t now = T + 30000; /* 10:00:30 */
    /* the oldest bucket in range is 09:01; 09:00:59.999 is in the bucket just out */
    ck_assert(sb_window_contains(HOUR, now, T - 59 * MIN));
    ck_assert(!sb_window_contains(HOUR, now, T - 59 * MIN - 1));
    /* the current bucket holds all of 10:00, even the part after now */
    ck_assert(sb_window_contains(HOUR, now, T));
    ck_assert(sb_window_contains(HOUR, now, T + 59999));
    ck_assert(!sb_window_contains(HOUR, now, T + 60000));
    /* a timestamp exactly at a bucket boundary belongs to the bucket it starts */
    ck_assert(sb_window_contains(HOUR, T, T));
    ck_assert(!sb_window_contains(HOUR, T - 1, T));
    /* 24 h as of 10:00:30: hours 11:00 yesterday .. 10:00 today */
    ck_assert(sb_window_contains(24 * HOUR, now, T - 23 * HOUR));
    ck_assert(!sb_window_contains(24 * HOUR, now, T - 23 * HOUR - 1));
    /* 30 d: whole days */
    ck_assert(sb_window_contains(30 * DAY, now, D - 29 * DAY));
    ck_assert(!sb_window_contains(30 * DAY, now, D - 29 * DAY - 1));
    ck_assert(sb_window_contains(30 * DAY, now, D + DAY - 1));
    /* negative times: as of -1, 1 h covers [-3600000, 0) */
    ck_assert(sb_window_contains(HOUR, -1, -3600000));
    ck_assert(!sb_window_contains(HOUR, -1, -3600001));
    ck_assert(sb_window_contains(HOUR, -1, -1));
    ck_assert(!sb_window_contains(HOUR, -1, 0));
}
END_TEST

START_TEST(plan_now)
{
    sb_window_plan_t p;
    const int64_t now = T + 30000;
    ck_assert_int_eq(sb_window_plan(WINDOWS, 4, 10 * MIN, now, now, &p), 0);
    for (int i = 0; i < 4; i++) ck_assert(p.use[i]);
    ck_assert_int_eq(p.bucket_start[0], T); /* minute of 10:00:30 */
    ck_assert_int_eq(p.bucket_start[1], T); /* hour */
    ck_assert_int_eq(p.bucket_start[2], T); /* hour */
    ck_assert_int_eq(p.bucket_start[3], D); /* day */
    for (int i = 4; i < SB_WINDOW_MAX; i++) ck_assert(!p.use[i]);
}
END_TEST

START_TEST(plan_lateness)
{
    sb_window_plan_t p;
    const int64_t now = T + 30000, L = 10 * MIN;
    /* 1 h, B = 1 min, Lb = 10 min: accepted iff start > T - 60m - 10m, i.e. start >= T - 69m */
    ck_assert_int_eq(sb_window_plan(WINDOWS, 4, L, now, T - 69 * MIN, &p), 0);
    ck_assert(p.use[0]);
    ck_assert_int_eq(p.bucket_start[0], T - 69 * MIN);
    ck_assert_int_eq(sb_window_plan(WINDOWS, 4, L, now, T - 69 * MIN - 1, &p), 0);
    ck_assert(!p.use[0]); /* just outside for 1 h ... */
    ck_assert(p.use[1] && p.use[2] && p.use[3]); /* ... but the longer windows take it */
    ck_assert_int_eq(p.bucket_start[1], T - 2 * HOUR);

    /* 24 h, B = 1 h, Lb = 10 min rounded up to 1 h: start > T - 25h, i.e. start >= T - 24h */
    ck_assert_int_eq(sb_window_plan(WINDOWS, 4, L, now, T - 24 * HOUR, &p), 0);
    ck_assert(p.use[1]);
    ck_assert_int_eq(sb_window_plan(WINDOWS, 4, L, now, T - 24 * HOUR - 1, &p), 0);
    ck_assert(!p.use[1]);
    ck_assert(p.use[2]);

    /* 7 d, B = 1 h: start >= T - 7d */
    ck_assert_int_eq(sb_window_plan(WINDOWS, 4, L, now, T - 7 * DAY, &p), 0);
    ck_assert(p.use[2]);
    ck_assert_int_eq(sb_window_plan(WINDOWS, 4, L, now, T - 7 * DAY - 1, &p), 0);
    ck_assert(!p.use[2]);
    ck_assert(p.use[3]);

    /* 30 d, B = 1 d, Lb = 1 d: start > D - 31d, i.e. start >= D - 30d. Older is late. */
    ck_assert_int_eq(sb_window_plan(WINDOWS, 4, L, now, D - 30 * DAY, &p), 0);
    ck_assert(!p.use[0] && !p.use[1] && !p.use[2]);
    ck_assert(p.use[3]);
    ck_assert_int_eq(p.bucket_start[3], D - 30 * DAY);
    ck_assert_int_eq(sb_window_plan(WINDOWS, 4, L, now, D - 30 * DAY - 1, &p), SB_WINDOW_LATE);
    for (int i = 0; i < 4; i++) ck_assert(!p.use[i]);

    /* only a 1 h window: late as soon as it leaves 1 h + 10 min */
    ck_assert_int_eq(sb_window_plan(WINDOWS, 1, L, now, T - 69 * MIN, &p), 0);
    ck_assert_int_eq(sb_window_plan(WINDOWS, 1, L, now, T - 69 * MIN - 1, &p), SB_WINDOW_LATE);

    /* no lateness: exactly the window as of now (oldest bucket T - 59m) */
    ck_assert_int_eq(sb_window_plan(WINDOWS, 1, 0, now, T - 59 * MIN, &p), 0);
    ck_assert_int_eq(sb_window_plan(WINDOWS, 1, 0, now, T - 59 * MIN - 1, &p), SB_WINDOW_LATE);

    /* lateness of 90 s is rounded up to 2 whole minutes for minute buckets: start >= T - 61m */
    ck_assert_int_eq(sb_window_plan(WINDOWS, 1, 90000, now, T - 61 * MIN, &p), 0);
    ck_assert_int_eq(sb_window_plan(WINDOWS, 1, 90000, now, T - 61 * MIN - 1, &p),
                     SB_WINDOW_LATE);
}
END_TEST

START_TEST(plan_future)
{
    sb_window_plan_t p;
    const int64_t now = T + 30000, L = 10 * MIN;
    /* up to now + L is accepted, into its (future) bucket */
    ck_assert_int_eq(sb_window_plan(WINDOWS, 4, L, now, now + L, &p), 0);
    ck_assert(p.use[0]);
    ck_assert_int_eq(p.bucket_start[0], T + 10 * MIN);
    ck_assert_int_eq(sb_window_plan(WINDOWS, 4, L, now, now + L + 1, &p), SB_WINDOW_FUTURE);
    for (int i = 0; i < 4; i++) ck_assert(!p.use[i]);
    /* with no lateness, 1 ms ahead of now is already future */
    ck_assert_int_eq(sb_window_plan(WINDOWS, 4, 0, now, now, &p), 0);
    ck_assert_int_eq(sb_window_plan(WINDOWS, 4, 0, now, now + 1, &p), SB_WINDOW_FUTURE);
}
END_TEST

START_TEST(plan_edges)
{
    sb_window_plan_t p;
    const int64_t many[SB_WINDOW_MAX + 1] = {HOUR, HOUR, HOUR, HOUR, HOUR,
                                             HOUR, HOUR, HOUR, HOUR};
    ck_assert_int_eq(sb_window_plan(many, SB_WINDOW_MAX + 1, 0, T, T, &p), -1);
    ck_assert_int_eq(sb_window_plan(many, SB_WINDOW_MAX, 0, T, T, &p), 0);
    for (int i = 0; i < SB_WINDOW_MAX; i++) ck_assert(p.use[i]);
    /* no windows: nothing can take it */
    ck_assert_int_eq(sb_window_plan(many, 0, 0, T, T, &p), SB_WINDOW_LATE);

    /* before 1970: now = -30000 (minute starting -60000), 1 h, no lateness:
     * accepted iff start > -60000 - 3600000, i.e. start >= -3600000 */
    ck_assert_int_eq(sb_window_plan(WINDOWS, 1, 0, -30000, -3600000, &p), 0);
    ck_assert_int_eq(p.bucket_start[0], -3600000);
    ck_assert_int_eq(sb_window_plan(WINDOWS, 1, 0, -30000, -3600001, &p), SB_WINDOW_LATE);
    ck_assert_int_eq(p.bucket_start[0], -3660000);
}
END_TEST

START_TEST(plan_agrees_with_contains)
{
    /* Whatever a window contains as of now (and is not future) the plan must accept, into
     * the bucket that contains it; and nothing older than window + lateness is accepted.
     * Checked over a grid of now and ts around T, with one assertion at the end. */
    sb_window_plan_t p;
    const int64_t L = 10 * MIN;
    int bad = 0, checked = 0;
    for (int64_t dn = 0; dn < 2 * HOUR; dn += 7 * MIN + 1234) {
        const int64_t now = T + dn;
        for (int64_t back = -L; back < 32 * DAY; back += 37 * MIN + 4567) {
            const int64_t ts = now - back;
            const int rc = sb_window_plan(WINDOWS, 4, L, now, ts, &p);
            for (int i = 0; i < 4; i++) {
                const int64_t w = WINDOWS[i], b = sb_window_bucket_width(w);
                const bool in = sb_window_contains(w, now, ts);
                if (in && (rc != 0 || !p.use[i])) bad++;
                if (p.bucket_start[i] != sb_window_bucket_start(ts, b)) bad++;
                /* accepted only within the window plus lateness rounded to a bucket */
                if (p.use[i] && ts < sb_window_bucket_start(now, b) - w - ((L + b - 1) / b) * b)
                    bad++;
                checked++;
            }
        }
    }
    ck_assert_int_eq(bad, 0);
    ck_assert_int_gt(checked, 1000);
}
END_TEST

START_TEST(ttl)
{
    /* W + B + L + 1 h */
    ck_assert_int_eq(sb_window_bucket_ttl_ms(HOUR, 10 * MIN),
                     INT64_C(7860000)); /* 3600000 + 60000 + 600000 + 3600000 */
    ck_assert_int_eq(sb_window_bucket_ttl_ms(24 * HOUR, 10 * MIN),
                     INT64_C(94200000)); /* 86400000 + 3600000 + 600000 + 3600000 */
    ck_assert_int_eq(sb_window_bucket_ttl_ms(7 * DAY, 0),
                     INT64_C(612000000)); /* 604800000 + 3600000 + 0 + 3600000 */
    ck_assert_int_eq(sb_window_bucket_ttl_ms(30 * DAY, 10 * MIN),
                     INT64_C(2682600000)); /* 2592000000 + 86400000 + 600000 + 3600000 */
    /* the TTL outlives every read: a bucket written at its earliest (start - L) is read until
     * start + W; the TTL from that write reaches start - L + TTL = start + W + B + 1 h */
    for (size_t i = 0; i < 4; i++)
        ck_assert_int_gt(sb_window_bucket_ttl_ms(WINDOWS[i], 10 * MIN) - 10 * MIN, WINDOWS[i]);
}
END_TEST

START_TEST(names)
{
    char buf[SB_WINDOW_NAME_MAX];
    sb_window_name(3600000, buf, sizeof buf);
    ck_assert_str_eq(buf, "1h");
    sb_window_name(86400000, buf, sizeof buf);
    ck_assert_str_eq(buf, "24h");
    sb_window_name(604800000, buf, sizeof buf);
    ck_assert_str_eq(buf, "7d");
    sb_window_name(INT64_C(2592000000), buf, sizeof buf);
    ck_assert_str_eq(buf, "30d");
    sb_window_name(1800000, buf, sizeof buf);
    ck_assert_str_eq(buf, "30m");
    sb_window_name(2 * DAY, buf, sizeof buf);
    ck_assert_str_eq(buf, "48h");
    sb_window_name(36 * HOUR, buf, sizeof buf);
    ck_assert_str_eq(buf, "36h");
    sb_window_name(180 * HOUR, buf, sizeof buf); /* 7.5 d: not whole days */
    ck_assert_str_eq(buf, "180h");
    sb_window_name(8 * DAY, buf, sizeof buf);
    ck_assert_str_eq(buf, "8d");
    sb_window_name(90 * MIN, buf, sizeof buf);
    ck_assert_str_eq(buf, "90m");
    sb_window_name(90000, buf, sizeof buf);
    ck_assert_str_eq(buf, "90s");
    sb_window_name(1500, buf, sizeof buf);
    ck_assert_str_eq(buf, "1500ms");
    /* a short buffer is truncated, never overrun */
    char small[3] = {'x', 'x', 'x'};
    sb_window_name(24 * HOUR, small, 2);
    ck_assert_str_eq(small, "2");
    ck_assert_int_eq(small[2], 'x');
}
END_TEST

static Suite *window_suite(void)
{
    Suite *s = suite_create("window");
    TCase *tc = tcase_create("buckets");
    tcase_add_test(tc, bucket_widths);
    tcase_add_test(tc, bucket_starts);
    tcase_add_test(tc, ranges);
    tcase_add_test(tc, contains_edges);
    suite_add_tcase(s, tc);

    tc = tcase_create("plan");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, plan_now);
    tcase_add_test(tc, plan_lateness);
    tcase_add_test(tc, plan_future);
    tcase_add_test(tc, plan_edges);
    tcase_add_test(tc, plan_agrees_with_contains);
    suite_add_tcase(s, tc);

    tc = tcase_create("ttl_names");
    tcase_add_test(tc, ttl);
    tcase_add_test(tc, names);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return sb_unit_run(window_suite());
}
