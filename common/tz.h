/* IANA time zones without touching the process's TZ: reads TZif files (v1, v2, v3) from the
 * zoneinfo directory, applies the POSIX TZ footer rule after the last transition, converts
 * between UTC and local wall-clock time, and keeps a small thread-safe cache of loaded zones. */
#ifndef SB_TZ_H
#define SB_TZ_H

#include <stddef.h>
#include <stdint.h>

typedef struct sb_tz sb_tz_t;

#define SB_TZ_NAME_MAX 255   /* bytes in a zone name */
#define SB_TZ_CACHE_MAX 4096 /* zones the cache keeps: more than any tzdata tree holds */

/* Loads the zone `name` ("Europe/Berlin") from $TZDIR, or /usr/share/zoneinfo when TZDIR is
 * unset or empty. "UTC" and "" give UTC without reading a file. Names containing "..", starting
 * with '/', longer than SB_TZ_NAME_MAX or holding a character outside [A-Za-z0-9/_+-] are
 * rejected, as are files that are not valid TZif (or carry leap-second records, as the
 * "right/" zones do). Returns a zone the caller frees with sb_tz_free(), or NULL with a reason
 * "code: detail" in err. */
sb_tz_t *sb_tz_load(const char *name, char *err, size_t errlen);
void sb_tz_free(sb_tz_t *tz);

/* The zone's name as given to sb_tz_load() ("UTC" for the built-in zone). Borrowed. */
const char *sb_tz_name(const sb_tz_t *tz);

/* The built-in UTC zone (static; never freed). */
const sb_tz_t *sb_tz_utc(void);

/* Offset of local time from UTC, in seconds east (Berlin in summer: 7200), at the instant
 * utc_ms. Before the first transition the zone's first time type applies; at or after the last
 * one the footer rule does (or the last type when the file has no footer). tz NULL means UTC. */
int32_t sb_tz_offset(const sb_tz_t *tz, int64_t utc_ms);

/* How sb_tz_local_to_utc() picks between the two instants of an ambiguous local time. */
enum { SB_TZ_EARLIER = 0, SB_TZ_LATER = 1 };

/* The UTC instant whose local wall-clock time is local_ms (a local time written as if it were
 * UTC epoch milliseconds: 2026-03-28 22:30 local is sb_days_from_civil(2026,3,28)*86400000 +
 * 22.5h). Deterministic for every input:
 *  - a local time that occurs twice (clocks turned back) gives the earlier instant, or the
 *    later one when prefer is SB_TZ_LATER;
 *  - a local time that never occurs (in the gap when clocks jump forward) is shifted forward
 *    by the length of the gap, i.e. read with the offset in force before the jump: in Berlin
 *    2026-03-29 02:30 (gap 02:00-03:00) gives 03:30 CEST = 01:30Z. The result is never before
 *    the first valid instant after the gap.
 * The result saturates at INT64_MIN / INT64_MAX instead of overflowing. tz NULL means UTC. */
int64_t sb_tz_local_to_utc(const sb_tz_t *tz, int64_t local_ms, int prefer);

/* The cached zone `name`, loading it on first use; NULL when the name is invalid or the zone
 * cannot be loaded (missing and malformed zones are remembered in a small bounded list, so a
 * stream of bogus names does not hit the filesystem each time; I/O errors are retried). Returned
 * zones are borrowed and stay valid until sb_tz_cache_free(). At most SB_TZ_CACHE_MAX zones are
 * kept; once full, names not yet cached give NULL. A full tzdata tree with its posix/ and
 * right/ copies holds under 2,000 names, so events naming every zone there is cannot fill it
 * (each zone takes 1-3 KiB). Thread-safe. */
const sb_tz_t *sb_tz_get(const char *name);

/* Frees every cached zone; pointers from sb_tz_get() become invalid. Not to be called while
 * other threads use the cache. */
void sb_tz_cache_free(void);

#endif
