/* Tiered rolling-window buckets in event time. The semantics are stated in window.h; this
 * file only implements them with integer arithmetic (floor division throughout). */
#include "window.h"

#include <stdio.h>

#include "util.h"

/* floor(a / b) for b > 0, also for negative a. */
static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    if (a % b != 0 && a < 0) q--;
    return q;
}

/* Smallest multiple of b that is >= a, for a >= 0, b > 0. */
static int64_t round_up(int64_t a, int64_t b)
{
    return (a + b - 1) / b * b;
}

int64_t sb_window_bucket_width(int64_t window_ms)
{
    static const int64_t widths[] = {SB_WINDOW_DAY_MS, SB_WINDOW_HOUR_MS, SB_WINDOW_MINUTE_MS};
    if (window_ms <= 0) return SB_WINDOW_MINUTE_MS;
    int64_t tier;
    if (window_ms <= SB_WINDOW_HOUR_MS)
        tier = SB_WINDOW_MINUTE_MS;
    else if (window_ms <= 7 * SB_WINDOW_DAY_MS)
        tier = SB_WINDOW_HOUR_MS;
    else
        tier = SB_WINDOW_DAY_MS;
    for (size_t i = 0; i < sizeof widths / sizeof widths[0]; i++)
        if (widths[i] <= tier && window_ms % widths[i] == 0) return widths[i];
    return SB_WINDOW_MINUTE_MS;
}

int64_t sb_window_bucket_start(int64_t ts_ms, int64_t width_ms)
{
    return floor_div(ts_ms, width_ms) * width_ms;
}

void sb_window_range(int64_t window_ms, int64_t as_of_ms, int64_t *first_start,
                     int64_t *last_start)
{
    const int64_t b = sb_window_bucket_width(window_ms);
    const int64_t end = sb_window_bucket_start(as_of_ms, b);
    /* starts end - k B with k B < W, i.e. k <= (W - 1) / B */
    const int64_t w = window_ms > 0 ? window_ms : 1;
    *last_start = end;
    *first_start = end - (w - 1) / b * b;
}

bool sb_window_contains(int64_t window_ms, int64_t as_of_ms, int64_t ts_ms)
{
    int64_t first, last;
    sb_window_range(window_ms, as_of_ms, &first, &last);
    const int64_t s = sb_window_bucket_start(ts_ms, sb_window_bucket_width(window_ms));
    return s >= first && s <= last;
}

int sb_window_plan(const int64_t *windows, size_t n, int64_t lateness_ms, int64_t now_ms,
                   int64_t ts_ms, sb_window_plan_t *out)
{
    if (n > SB_WINDOW_MAX) return -1;
    if (lateness_ms < 0) lateness_ms = 0;
    bool any = false;
    for (size_t i = 0; i < SB_WINDOW_MAX; i++) {
        out->bucket_start[i] = 0;
        out->use[i] = false;
    }
    const bool future = ts_ms > now_ms + lateness_ms;
    for (size_t i = 0; i < n; i++) {
        const int64_t b = sb_window_bucket_width(windows[i]);
        const int64_t s = sb_window_bucket_start(ts_ms, b);
        const int64_t end = sb_window_bucket_start(now_ms, b);
        out->bucket_start[i] = s;
        if (future) continue;
        if (s > end - windows[i] - round_up(lateness_ms, b)) {
            out->use[i] = true;
            any = true;
        }
    }
    if (future) return SB_WINDOW_FUTURE;
    return any ? 0 : SB_WINDOW_LATE;
}

int64_t sb_window_bucket_ttl_ms(int64_t window_ms, int64_t lateness_ms)
{
    if (lateness_ms < 0) lateness_ms = 0;
    return window_ms + sb_window_bucket_width(window_ms) + lateness_ms + SB_WINDOW_HOUR_MS;
}

void sb_window_name(int64_t ms, char *buf, size_t len)
{
    if (len == 0) return;
    if (ms > 0 && ms % SB_WINDOW_DAY_MS == 0 && ms >= 7 * SB_WINDOW_DAY_MS)
        snprintf(buf, len, "%lldd", (long long)(ms / SB_WINDOW_DAY_MS));
    else if (ms > 0 && ms % SB_WINDOW_HOUR_MS == 0)
        snprintf(buf, len, "%lldh", (long long)(ms / SB_WINDOW_HOUR_MS));
    else if (ms > 0 && ms % SB_WINDOW_MINUTE_MS == 0)
        snprintf(buf, len, "%lldm", (long long)(ms / SB_WINDOW_MINUTE_MS));
    else
        sb_duration_format(ms, buf, len);
}
