/* The aggregator's current metric values, read from its window totals in Redis without taking
 * the publisher lease and computed exactly as the publisher computes them. Shared by
 * `surveybusctl metrics` / `watch` and surveybus-web's /api/metrics and stream snapshot, so
 * that every reader shows the same numbers. */
#ifndef SB_SNAPSHOT_H
#define SB_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "metric.h"
#include "store.h"
#include "tally.h"

/* Which values to take. */
typedef struct sb_snapshot_filter {
    int metric;            /* sb_metric_t, or -1: every metric */
    int window;            /* index into cfg->windows_ms, or -1: every window */
    const char *dimension; /* a static sb_dim_names entry, or NULL: every dimension */
    const char *value;     /* borrowed, or NULL: every value */
} sb_snapshot_filter_t;

/* Fills f from names (each NULL when not given): metric one of sb_metric_names, window the
 * sb_window_name of a configured window, dimension "all" or a configured dimension; value is
 * kept as given (borrowed, not checked but for being empty). An empty name or value ("") is
 * an error, never "every": the CLI's --metric "" and the web API's ?metric= both fail.
 * Returns 0, or -1 with "unknown <what> <name> (valid: a, b, c)" or "empty <what> (valid:
 * a, b, c)" in err (the first bad one, in the order metric, window, dimension, value; an
 * empty value is "empty value (leave it out for every value)"). f borrows nothing from
 * cfg. */
int sb_snapshot_filter_init(sb_snapshot_filter_t *f, const sb_config_t *cfg, const char *metric,
                            const char *window, const char *dimension, const char *value, char *err,
                            size_t errlen);

/* A slice "dim|value" of the aggregator's registry. */
typedef struct sb_snapshot_slice {
    int64_t id;
    const char *name; /* "dim|value", borrowed from the tally (valid until sb_tally_free) */
    size_t dim_len;   /* bytes before the '|' */
} sb_snapshot_slice_t;

/* Reads the window totals as of now (sb_tally_read with an empty token: no lease), and the
 * slices that hold anything in some window and match f's dimension and value, sorted by
 * dimension, then value (byte order). On success the caller frees *slices (NULL when *n is 0)
 * and sb_tally_snapshot_free's snap. Returns 0, or -1 with the reason in err (the store's
 * error text for Redis failures). */
int sb_snapshot_read(sb_tally_t *t, const sb_store_t *store, const sb_snapshot_filter_t *f,
                     sb_tally_snapshot_t *snap, sb_snapshot_slice_t **slices, size_t *n, char *err,
                     size_t errlen);

/* Fills u with metric m of slice s in window k of snap, as the aggregator publishes it
 * (as_of = the read time). Returns whether the value is non-empty: its published count
 * (sb_snapshot_count) is above 0. */
bool sb_snapshot_value(const sb_config_t *cfg, const sb_tally_snapshot_t *snap, size_t k,
                       const sb_snapshot_slice_t *s, sb_metric_t m, sb_metric_update_t *u);

/* The "count" an update publishes: responses for response_rate, the denominator for fcr and
 * transfer_rate, else v.count. */
uint64_t sb_snapshot_count(const sb_metric_update_t *u);

/* Called for each non-empty value with the update and its encoding (borrowed for the call).
 * A non-zero return stops the walk. */
typedef int (*sb_snapshot_fn)(void *opaque, const sb_metric_update_t *u, const char *json);

/* Walks the non-empty values of snap that match f's metric and window, in the order
 * metric (sb_metric_t order), window (configured order), slice (as given), calling fn for
 * each. Values that cannot be encoded are skipped and counted in *failed. Returns 0, or the
 * first non-zero return of fn. */
int sb_snapshot_each(const sb_config_t *cfg, const sb_tally_snapshot_t *snap,
                     const sb_snapshot_filter_t *f, const sb_snapshot_slice_t *slices, size_t n,
                     sb_snapshot_fn fn, void *opaque, size_t *failed);

/* The values sb_snapshot_each walks as one JSON array text: "[" then the encoded updates
 * separated by "," then "]" (no newline; "[]" when none). Returns a string the caller frees;
 * *failed counts the values left out because they could not be encoded. Aborts when out of
 * memory. */
char *sb_snapshot_json(const sb_config_t *cfg, const sb_tally_snapshot_t *snap,
                       const sb_snapshot_filter_t *f, const sb_snapshot_slice_t *slices, size_t n,
                       size_t *failed);

#endif
