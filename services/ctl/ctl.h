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
#include "snapshot.h"
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

/* Loads the configuration named by the global options. On failure prints one line on stderr,
 * "FILE: problem" for the first problem and how many more there are, and returns NULL.
 * Caller frees. */
sb_config_t *ctl_load_config(const ctl_t *ctl);

/* Prints o as one line of compact JSON (plus flags, e.g. JSON_SORT_KEYS) on stdout and
 * releases it (takes ownership; NULL prints nothing). */
struct json_t;
void ctl_print_json(struct json_t *o, size_t flags);

/* Loads the configuration and connects to Redis, waiting at most a few seconds. Returns 0 or
 * prints the reason and returns -1. */
int ctl_open_store(const ctl_t *ctl, sb_config_t **cfg, sb_store_t **store);

int ctl_cmd_surveys(ctl_t *ctl, int argc, char **argv);
int ctl_cmd_stats(ctl_t *ctl, int argc, char **argv);
int ctl_cmd_metrics(ctl_t *ctl, int argc, char **argv);
int ctl_cmd_watch(ctl_t *ctl, int argc, char **argv);
int ctl_cmd_simulate(ctl_t *ctl, int argc, char **argv);
int ctl_cmd_dlq(ctl_t *ctl, int argc, char **argv);

/* ---- metric values, shared by metrics and watch (metrics.c; the values themselves come
 * from common/snapshot.h, which surveybus-web shares) ---- */

/* Fills f from the names a user gave (each NULL when not given), as sb_snapshot_filter_init.
 * Returns 0, or -1 after printing "surveybusctl: unknown <what> <name> (valid: ...)" on
 * stderr. */
int ctl_metric_filter_init(sb_snapshot_filter_t *f, const sb_config_t *cfg, const char *metric,
                           const char *window, const char *dimension, const char *value);

/* ctl_metric_filter_init over names {metric, window, dimension, value}, then ctl_open_store.
 * Returns the exit status to stop with (2 a bad name, 1 no config or no Redis, reasons
 * printed), or 0 with *cfg and *store open (caller frees both). */
int ctl_metric_open(const ctl_t *ctl, const char *const names[4], sb_snapshot_filter_t *f,
                    sb_config_t **cfg, sb_store_t **store);

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
