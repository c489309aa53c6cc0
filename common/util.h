/* Small pure helpers shared by every module: limits, UTF-8 and topic-safety checks,
 * durations, RFC 3339 / epoch-ms times, a growable problem list. No I/O. */
#ifndef SB_UTIL_H
#define SB_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SB_VERSION "0.1.0"
#define SB_MSG_MAX (64 * 1024) /* bytes in one message on any transport (SPEC §7) */
#define SB_STR_MAX 256         /* bytes in one string field */
#define SB_COMMENT_MAX 2000    /* bytes in a response comment */
#define SB_DLQ_PAYLOAD_MAX 4096

/* Milliseconds since the Unix epoch: wall clock, and a monotonic clock for timeouts. */
int64_t sb_now_ms(void);
int64_t sb_mono_ms(void);
/* Monotonic clock in microseconds. */
int64_t sb_mono_us(void);

/* Writes v in decimal ("-42", "0") with a terminating NUL, as snprintf's "%lld" would, into
 * out (at least SB_INT_TEXT_MAX bytes); returns the length. For hot paths, where snprintf's
 * format parsing costs more than the digits. */
#define SB_INT_TEXT_MAX 21 /* "-9223372036854775808" and NUL */
size_t sb_int_format(int64_t v, char *out);

/* True when buf[0..len) is well-formed UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
bool sb_utf8_valid(const char *buf, size_t len);

/* A copy of s (caller frees) that is valid UTF-8: each byte that does not start a
 * well-formed sequence becomes '?'. For any bytes (file names, decoded query strings) that
 * must go into JSON, which jansson takes in UTF-8 only. Aborts when out of memory. */
char *sb_utf8_repaired(const char *s);

/* True when s is usable inside an MQTT topic level and a Redis key: non-empty, <= SB_STR_MAX
 * bytes, valid UTF-8, and free of NUL, control characters, '+', '#', '/' and '|'. */
bool sb_str_topic_safe(const char *s, size_t len);

/* True when the UTF-8 text s[0..len) holds no control character other than those in
 * `allowed` (e.g. "\n\t"): no other C0 control, no DEL, no C1 control (U+0080..U+009F). For
 * texts that people read: survey questions and comments. */
bool sb_text_no_controls(const char *s, size_t len, const char *allowed);

/* Parses "500ms", "30s", "5m", "1h", "7d" (an integer and a unit; "0" alone is allowed).
 * Returns 0 and the value in *ms, or -1 on a malformed or overflowing text. */
int sb_duration_parse(const char *s, int64_t *ms);

/* Formats ms as the shortest exact duration text ("90s", "2h", "7d", "250ms"). */
void sb_duration_format(int64_t ms, char *out, size_t outlen);

/* Parses an RFC 3339 date-time ("2026-11-22T10:00:00Z", "...T10:00:00.123+08:00").
 * Returns 0 and epoch milliseconds in *ms, or -1. Fractions beyond ms are truncated. */
int sb_time_parse_rfc3339(const char *s, int64_t *ms);

/* Formats epoch ms as "YYYY-MM-DDTHH:MM:SS.mmmZ" (24 bytes + NUL). */
void sb_time_format(int64_t ms, char out[32]);

/* Days since 1970-01-01 for a proleptic Gregorian civil date, and the inverse. */
int64_t sb_days_from_civil(int64_t y, unsigned m, unsigned d);
void sb_civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d);

/* A list of human-readable problems, each an owned string. */
typedef struct sb_problems {
    char **msg;
    size_t n, cap;
} sb_problems_t;

/* Appends a printf-formatted problem. */
void sb_problems_add(sb_problems_t *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Frees the messages (not p itself); p is empty afterwards. */
void sb_problems_clear(sb_problems_t *p);

/* A counter increment by field name ("consumed", "dlq|too_large", ...). */
typedef struct sb_count {
    const char *field;
    int64_t n;
} sb_count_t;

/* A batch's counter increments merged by field name, so that each field is written once
 * per batch. c[0..n) point into names, copies of at most SB_COUNT_NAME_MAX - 1 bytes (a
 * longer field is cut). Start zeroed; set n = 0 to reuse; sb_counts_free releases. */
#define SB_COUNT_NAME_MAX 96
typedef struct sb_counts {
    sb_count_t *c;
    char (*names)[SB_COUNT_NAME_MAX];
    size_t n, cap;
} sb_counts_t;

/* Adds n to field (aborts on OOM). */
void sb_counts_add(sb_counts_t *cs, const char *field, int64_t n);
void sb_counts_free(sb_counts_t *cs);

/* snprintf into err when err is not NULL; always returns -1 so callers can `return sb_fail(...)`. */
int sb_fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
