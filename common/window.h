/* Rolling-window arithmetic in event time: which tiered bucket a timestamp falls in, which
 * buckets make up a window as of a given time, whether a (possibly late) response is still
 * accepted, how long a bucket must live, and a window's display name. Pure: no I/O.
 *
 * Semantics, for a window of W ms:
 *  - Bucket width B(W): 1 minute when W <= 1 h, 1 hour when W <= 7 d, else 1 day. When W is
 *    not a multiple of that width, the largest of {1 d, 1 h, 1 min} not above it that divides
 *    W is used, else 1 minute (config requires whole minutes; a W that is not is in effect
 *    rounded up to whole minutes).
 *  - A bucket starts at floor(ts / B) * B (floor, also for times before 1970) and holds the
 *    events with start <= ts < start + B.
 *  - As of time t, let end = floor(t / B) * B (the start of t's bucket). The window is the
 *    W / B buckets whose start s has end - W < s <= end: it spans exactly W ms, ends with the
 *    bucket containing t (partly in progress) and steps forward one bucket at a time.
 *  - Ingest at processing time now with allowed lateness L: a timestamp ts with ts > now + L
 *    is rejected as future. Otherwise it is added to its bucket of window W iff
 *    bucket_start(ts) > end(now) - W - Lb, Lb = L rounded up to a multiple of B: a bucket keeps
 *    accepting data for Lb after it left the window (harmless, it no longer counts as of now).
 *    A timestamp no window accepts is late. */
#ifndef SB_WINDOW_H
#define SB_WINDOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SB_WINDOW_MINUTE_MS INT64_C(60000)
#define SB_WINDOW_HOUR_MS INT64_C(3600000)
#define SB_WINDOW_DAY_MS INT64_C(86400000)
#define SB_WINDOW_MAX 8       /* windows in one plan (as sb_config_t.windows_ms) */
#define SB_WINDOW_NAME_MAX 32 /* buffer size that fits any sb_window_name */

/* sb_window_plan results besides 0. */
#define SB_WINDOW_LATE 1   /* older than every window plus lateness: count as late */
#define SB_WINDOW_FUTURE 2 /* more than the allowed lateness ahead of now */

/* Bucket width B(W) in ms, as described above. window_ms must be > 0; a non-positive value
 * yields one minute so that callers never divide by zero. */
int64_t sb_window_bucket_width(int64_t window_ms);

/* floor(ts_ms / width_ms) * width_ms; width_ms > 0. */
int64_t sb_window_bucket_start(int64_t ts_ms, int64_t width_ms);

/* The first (oldest) and last bucket start of window_ms as of as_of_ms; the window's buckets
 * are first, first + B, ..., last. */
void sb_window_range(int64_t window_ms, int64_t as_of_ms, int64_t *first_start,
                     int64_t *last_start);

/* True when an event at ts_ms counts in window_ms as of as_of_ms (its bucket is in range). */
bool sb_window_contains(int64_t window_ms, int64_t as_of_ms, int64_t ts_ms);

/* Where one timestamp goes: for window i of the list, use[i] says whether it is added to that
 * window's bucket, which starts at bucket_start[i] (set for every i < n, used or not). */
typedef struct sb_window_plan {
    int64_t bucket_start[SB_WINDOW_MAX];
    bool use[SB_WINDOW_MAX];
} sb_window_plan_t;

/* Plans the ingest of an event at ts_ms, processed at now_ms, for the n windows (ms each),
 * with allowed lateness lateness_ms >= 0. Returns 0 when at least one window uses it,
 * SB_WINDOW_LATE when none does, SB_WINDOW_FUTURE when ts_ms > now_ms + lateness_ms (every
 * use[] false then), or -1 when n > SB_WINDOW_MAX. */
int sb_window_plan(const int64_t *windows, size_t n, int64_t lateness_ms, int64_t now_ms,
                   int64_t ts_ms, sb_window_plan_t *out);

/* How long a bucket of window_ms must live: W + B + L + 1 h. A bucket starting at s is
 * written no earlier than s - L (future-dated data within the lateness) and read no later
 * than s + W, so W + L, set or refreshed (PEXPIRE) on each write, is the minimum; the extra
 * bucket and hour are margin for readers whose clock lags the writer's and for skew
 * between instances. When buckets of one width serve several windows (24h and 7d both use
 * hours), give them the TTL of the longest. */
int64_t sb_window_bucket_ttl_ms(int64_t window_ms, int64_t lateness_ms);

/* A window's name, as users write it: whole days when ms is a multiple of 24 h and at least
 * 7 d ("7d", "30d"), else whole hours ("1h", "24h", "48h"), else whole minutes ("30m"), else
 * the shortest exact duration text ("90s"). Writes at most len bytes including the NUL;
 * SB_WINDOW_NAME_MAX always suffices. */
void sb_window_name(int64_t ms, char *buf, size_t len);

#endif
