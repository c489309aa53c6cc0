/* surveybusctl's shared declarations: global options, config loading, and one function per
 * subcommand (each in its own file). */
#ifndef SB_CTL_H
#define SB_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"
#include "metric.h"
#include "service.h"
#include "store.h"
#include "tally.h"

#define DEFAULT_CONFIG SB_DEFAULT_CONFIG

/* What every subcommand gets: the global options. */
typedef struct ctl {
    const char *config_path;
    const char **sets; /* "path=value" overrides, in order */
    size_t n_sets;
    bool json; /* machine-readable output */
} ctl_t;

/* A subcommand: argv[0] is its name, the rest its own arguments. Returns the exit status
 * (0 ok, 1 failure, 2 usage). */
typedef int (*ctl_cmd_fn)(ctl_t *ctl, int argc, char **argv);

typedef struct ctl_cmd {
    const char *name;
    const char *args; /* synopsis of its own arguments, "" for none */
    const char *help; /* one line */
    ctl_cmd_fn run;
} ctl_cmd_t;

/* Loads the configuration named by the global options. On failure prints every problem as
 * "FILE: problem" on stderr and returns NULL. Caller frees. */
sb_config_t *ctl_load_config(const ctl_t *ctl);

/* Loads the configuration and connects to Redis, waiting at most a few seconds. Returns 0 or
 * prints the reason and returns -1. */
int ctl_open_store(const ctl_t *ctl, sb_config_t **cfg, sb_store_t **store);

int ctl_cmd_surveys(ctl_t *ctl, int argc, char **argv);
int ctl_cmd_stats(ctl_t *ctl, int argc, char **argv);
int ctl_cmd_metrics(ctl_t *ctl, int argc, char **argv);
int ctl_cmd_watch(ctl_t *ctl, int argc, char **argv);
int ctl_cmd_simulate(ctl_t *ctl, int argc, char **argv);
int ctl_cmd_dlq(ctl_t *ctl, int argc, char **argv);

/* ---- metric values, shared by metrics and watch (metrics.c) ---- */

/* Which values to show. */
typedef struct ctl_metric_filter {
    int metric;            /* sb_metric_t, or -1: every metric */
    int window;            /* index into cfg->windows_ms, or -1: every window */
    const char *dimension; /* a static sb_dim_names entry, or NULL: every dimension */
    const char *value;     /* borrowed, or NULL: every value */
} ctl_metric_filter_t;

/* Fills f from the names a user gave (each NULL when not given): metric one of
 * sb_metric_names, window the sb_window_name of a configured window, dimension "all" or a
 * configured dimension; value is kept as given (borrowed). Returns 0, or -1 after printing
 * "unknown <what> <name> (valid: ...)" on stderr. */
int ctl_metric_filter_init(ctl_metric_filter_t *f, const sb_config_t *cfg, const char *metric,
                           const char *window, const char *dimension, const char *value);

/* ctl_metric_filter_init over names {metric, window, dimension, value}, then ctl_open_store.
 * Returns the exit status to stop with (2 a bad name, 1 no config or no Redis, reasons
 * printed), or 0 with *cfg and *store open (caller frees both). */
int ctl_metric_open(const ctl_t *ctl, const char *const names[4], ctl_metric_filter_t *f,
                    sb_config_t **cfg, sb_store_t **store);

/* A slice "dim|value" of the aggregator's registry. */
typedef struct ctl_slice {
    int64_t id;
    const char *name; /* "dim|value", borrowed from the tally (valid until sb_tally_free) */
    size_t dim_len;   /* bytes before the '|' */
} ctl_slice_t;

/* Reads the aggregator's window totals as of now without taking the publisher lease
 * (sb_tally_read with an empty token), and the slices that hold anything in some window and
 * match f's dimension and value, sorted by dimension, then value (byte order). On success
 * the caller frees *slices (NULL when *n is 0) and sb_tally_snapshot_free's snap. Returns 0,
 * or -1 with the reason in err (store's error text for Redis failures). */
int ctl_metric_read(sb_tally_t *t, const sb_store_t *store, const ctl_metric_filter_t *f,
                    sb_tally_snapshot_t *snap, ctl_slice_t **slices, size_t *n, char *err,
                    size_t errlen);

/* Fills u with metric m of slice s in window k of snap, as the aggregator publishes it
 * (as_of = the read time). Returns whether the value is non-empty: its published count
 * (ctl_metric_count) is above 0. */
bool ctl_metric_value(const sb_config_t *cfg, const sb_tally_snapshot_t *snap, size_t k,
                      const ctl_slice_t *s, sb_metric_t m, sb_metric_update_t *u);

/* The "count" an update publishes: responses for response_rate, the denominator for fcr and
 * transfer_rate, else v.count. */
uint64_t ctl_metric_count(const sb_metric_update_t *u);

/* A published number as text: rounded to 2 decimals as published, printed with 2 decimals
 * ("66.67", "25.00"), or "-" when !present. */
void ctl_metric_number(bool present, double x, char *buf, size_t len);

/* A text table: cells are added row by row, left to right; printing pads every column to
 * its widest cell (in code points) plus two spaces. Aborts when out of memory. */
typedef struct ctl_table {
    size_t cols, n, cap;
    char **cell; /* owned */
} ctl_table_t;

void ctl_table_init(ctl_table_t *t, size_t cols);
void ctl_table_add(ctl_table_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ctl_table_print(const ctl_table_t *t, FILE *out);
void ctl_table_free(ctl_table_t *t);

#endif
