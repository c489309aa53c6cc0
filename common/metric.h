/* Metric updates on the bus (SPEC §4): one metric of one slice (dimension = value) over one
 * window, as a struct <-> compact JSON. The numbers are the ones published, rounded to 2
 * decimals, so an update decoded from the bus encodes back to the same text. Pure. */
#ifndef SB_METRIC_H
#define SB_METRIC_H

#include <stddef.h>
#include <stdint.h>

#include "stats.h"
#include "util.h"

typedef enum {
    SB_METRIC_NPS = 0,
    SB_METRIC_CSAT,
    SB_METRIC_CES,
    SB_METRIC_RESPONSE_RATE,
    SB_METRIC_FRT,
    SB_METRIC_ART,
    SB_METRIC_FCR,
    SB_METRIC_TRANSFER_RATE,
    SB_METRIC__N
} sb_metric_t;

/* "nps", "csat", "ces", "response_rate", "frt", "art", "fcr", "transfer_rate". */
extern const char *const sb_metric_names[SB_METRIC__N];

/* The sb_metric_t named name, or -1 when name is NULL or no metric's name. */
int sb_metric_parse(const char *name);

/* The sb_metric_value_t form a metric's value has: nps NPS, csat CSAT, ces CES,
 * response_rate / fcr / transfer_rate RATE, frt / art KPI. -1 when m is out of range. */
int sb_metric_form(sb_metric_t m);

typedef struct sb_metric_update {
    sb_metric_t metric;
    char window[32];                 /* window name, e.g. "24h" */
    char dimension[SB_STR_MAX + 1];  /* e.g. "region", or "all" */
    char value[SB_STR_MAX + 1];      /* e.g. "east", or "all" */
    int64_t as_of_ms;                /* epoch ms the numbers hold at */
    sb_metric_value_t v;             /* as sb_stats_* fill it; v.form is not read by encode */
} sb_metric_update_t;

/* The update as compact JSON. Keys, in this order: "metric", "window", "dimension", "value",
 * "as_of" (sb_time_format of as_of_ms), "count", "score", then by metric:
 *   nps: "promoters", "passives", "detractors", "moe95"
 *   csat: "satisfied", "ci95_low", "ci95_high"
 *   ces: "mean", "easy", "easy_pct"
 *   response_rate: "requests" (v.den); "count" is the responses, v.num
 *   fcr: "resolved" (v.num); transfer_rate: "transferred" (v.num); "count" is v.den for both
 *   frt, art: "mean", "p90"
 * Counts are JSON integers. Every other number is sb_stats_round2'ed and printed as a JSON
 * real with at most 15 significant digits (25 -> 25.0, 2.015 -> 2.02); it is null when
 * !v.has_value (score, moe95, ci95_*, mean, easy_pct) or !v.has_p90 (p90). Text fields are
 * read up to their first NUL or the end of their array.
 * Returns a string the caller frees, or NULL when out of memory, a text is not valid UTF-8,
 * the metric is out of range, a count exceeds INT64_MAX or a published number is not finite. */
char *sb_metric_update_encode(const sb_metric_update_t *u);

/* Parses one update as encoded above into out (zeroed first; v.form set from the metric).
 * v.has_value is "score is not null" and v.has_p90 "p90 is not null"; a null real reads as 0.
 * A JSON integer is accepted where a real is expected; counts must be integers >= 0. For
 * response_rate v.num = count, v.den = requests; for fcr / transfer_rate v.den = count,
 * v.num = resolved / transferred; otherwise v.count = count. Unknown keys are ignored.
 * Reasons ("code: detail"): too_large, nul_byte, invalid_utf8, invalid_json (see
 * sb_dlq_load), missing_field (absent or null; an empty window, dimension or value counts as
 * absent), wrong_type (including a negative count), too_long (window > 31 bytes, dimension
 * or value > SB_STR_MAX), bad_metric (unknown name), bad_time (as_of not RFC 3339, or
 * outside the years 0000..9999 in UTC once its offset is applied).
 * Returns 0, or -1 with the reason in err. */
int sb_metric_update_decode(const char *buf, size_t len, sb_metric_update_t *out, char *err,
                            size_t errlen);

/* A message from the bus as one line of JSON, for a Server-Sent Events "data:" field: the
 * bytes as they are when they hold no line break (CR or LF) and parse as JSON, re-encoded
 * compactly when they parse but span lines, NULL when they are not JSON (or hold a NUL).
 * Caller frees. */
char *sb_metric_json_line(const char *payload, size_t len);

#endif
