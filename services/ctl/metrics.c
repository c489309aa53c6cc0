/* surveybusctl metrics: the aggregator's current metric values, read from its window totals in
 * Redis (without taking the publisher lease) and computed as the publisher computes them
 * (common/snapshot.h, shared with surveybus-web). Also the helpers watch.c shares: name
 * checks, number text and an aligned text table. */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "tally.h"
#include "util.h"

/* ---------------------------------------------------------------- names */

int ctl_metric_filter_init(sb_snapshot_filter_t *f, const sb_config_t *cfg, const char *metric,
                           const char *window, const char *dimension, const char *value)
{
    char err[600];
    if (sb_snapshot_filter_init(f, cfg, metric, window, dimension, value, err, sizeof err) == 0)
        return 0;
    fprintf(stderr, "surveybusctl: %s\n", err);
    return -1;
}

int ctl_metric_open(const ctl_t *ctl, const char *const names[4], sb_snapshot_filter_t *f,
                    sb_config_t **cfg, sb_store_t **store)
{
    /* names are checked before Redis is reached, so that a typo is a usage error also while
     * Redis is down; ctl_open_store loads the configuration again (f borrows nothing of it) */
    sb_config_t *c = ctl_load_config(ctl);
    if (!c) return 1;
    int bad = ctl_metric_filter_init(f, c, names[0], names[1], names[2], names[3]);
    sb_config_free(c);
    if (bad) return 2;
    return ctl_open_store(ctl, cfg, store) ? 1 : 0;
}

/* ---------------------------------------------------------------- numbers */

void ctl_metric_number(bool present, double x, char *buf, size_t len)
{
    if (present)
        snprintf(buf, len, "%.2f", sb_stats_round2(x));
    else
        snprintf(buf, len, "-");
}

/* ---------------------------------------------------------------- text table */

void ctl_table_init(ctl_table_t *t, size_t cols)
{
    memset(t, 0, sizeof *t);
    t->cols = cols;
}

void ctl_table_add(ctl_table_t *t, const char *fmt, ...)
{
    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 16 * t->cols;
        t->cell = realloc(t->cell, t->cap * sizeof *t->cell);
        if (!t->cell) abort();
    }
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&t->cell[t->n], fmt, ap) < 0) abort();
    va_end(ap);
    t->n++;
}

/* Terminal columns of a UTF-8 text, counted as code points (one column each). */
static size_t columns(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

void ctl_table_print(const ctl_table_t *t, FILE *out)
{
    size_t *width = calloc(t->cols, sizeof *width);
    if (!width) abort();
    for (size_t i = 0; i < t->n; i++) {
        size_t c = columns(t->cell[i]);
        if (c > width[i % t->cols]) width[i % t->cols] = c;
    }
    /* padding is written only when a non-empty cell follows: no trailing blanks */
    size_t pad = 0;
    for (size_t i = 0; i < t->n; i++) {
        size_t col = i % t->cols;
        if (t->cell[i][0]) {
            fprintf(out, "%*s%s", (int)pad, "", t->cell[i]);
            pad = 0;
        }
        pad += width[col] + 2 - columns(t->cell[i]);
        if (col + 1 == t->cols || i + 1 == t->n) {
            fputc('\n', out);
            pad = 0;
        }
    }
    free(width);
}

void ctl_table_free(ctl_table_t *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->cell[i]);
    free(t->cell);
    memset(t, 0, sizeof *t);
}

/* ---------------------------------------------------------------- metrics */

/* The encoded update's fields after "score" as "key=value ..." (the encoder's order). */
static int detail(const char *json, char *buf, size_t len)
{
    json_t *o = json_loads(json, 0, NULL);
    if (!o) return -1;
    bool after_score = false;
    size_t used = 0;
    const char *key;
    json_t *v;
    buf[0] = '\0';
    json_object_foreach(o, key, v)
    {
        if (!after_score) {
            after_score = strcmp(key, "score") == 0;
            continue;
        }
        char num[48];
        if (json_is_integer(v))
            snprintf(num, sizeof num, "%lld", (long long)json_integer_value(v));
        else
            ctl_metric_number(json_is_real(v), json_real_value(v), num, sizeof num);
        int w = snprintf(buf + used, len - used, "%s%s=%s", used ? " " : "", key, num);
        if (w > 0 && (size_t)w < len - used) used += (size_t)w;
    }
    json_decref(o);
    return 0;
}

/* One row of the text table per value (sb_snapshot_each's callback). */
static int add_row(void *opaque, const sb_metric_update_t *u, const char *json)
{
    ctl_table_t *table = opaque;
    char more[200], score[48];
    if (detail(json, more, sizeof more)) return -1;
    ctl_metric_number(u->v.has_value, u->v.score, score, sizeof score);
    ctl_table_add(table, "%s", sb_metric_names[u->metric]);
    ctl_table_add(table, "%s", u->window);
    ctl_table_add(table, "%s", u->dimension);
    ctl_table_add(table, "%s", u->value);
    ctl_table_add(table, "%llu", (unsigned long long)sb_snapshot_count(u));
    ctl_table_add(table, "%s", score);
    ctl_table_add(table, "%s", more);
    return 0;
}

/* Prints the values as a table, or with json as one array of published updates. */
static int print_values(const ctl_t *ctl, const sb_config_t *cfg, const sb_tally_snapshot_t *snap,
                        const sb_snapshot_filter_t *f, const sb_snapshot_slice_t *slices,
                        size_t n_slices)
{
    size_t failed = 0;
    if (ctl->json) {
        char *json = sb_snapshot_json(cfg, snap, f, slices, n_slices, &failed);
        printf("%s\n", json);
        free(json);
    } else {
        ctl_table_t table;
        ctl_table_init(&table, 7);
        ctl_table_add(&table, "METRIC"), ctl_table_add(&table, "WINDOW");
        ctl_table_add(&table, "DIMENSION"), ctl_table_add(&table, "VALUE");
        ctl_table_add(&table, "COUNT"), ctl_table_add(&table, "SCORE");
        ctl_table_add(&table, "DETAIL");
        /* an encoded update always parses back: add_row never fails but on a broken encoder */
        if (sb_snapshot_each(cfg, snap, f, slices, n_slices, add_row, &table, &failed)) failed++;
        if (table.n > table.cols)
            ctl_table_print(&table, stdout);
        else
            printf("no metric values match\n");
        ctl_table_free(&table);
    }
    if (failed) fprintf(stderr, "surveybusctl: %zu values could not be encoded\n", failed);
    return failed ? -1 : 0;
}

int ctl_cmd_metrics(ctl_t *ctl, int argc, char **argv)
{
    const char *opt[4] = {NULL}; /* --metric --window --dimension --value */
    static const char *const names[4] = {"--metric", "--window", "--dimension", "--value"};
    for (int i = 1; i < argc; i++) {
        int o = 0;
        while (o < 4 && strcmp(argv[i], names[o]) != 0)
            o++;
        if (o == 4 || i + 1 == argc) {
            fprintf(stderr, "usage: surveybusctl metrics [--metric M] [--window W] "
                            "[--dimension D] [--value V]\n");
            return 2;
        }
        opt[o] = argv[++i];
    }
    sb_snapshot_filter_t f;
    sb_config_t *cfg;
    sb_store_t *store;
    int status = ctl_metric_open(ctl, opt, &f, &cfg, &store);
    if (status) return status;
    sb_tally_t *tally = sb_tally_new(store, cfg);
    sb_tally_snapshot_t snap;
    sb_snapshot_slice_t *slices;
    size_t n_slices;
    char err[300];
    int rc = 1;
    if (sb_snapshot_read(tally, store, &f, &snap, &slices, &n_slices, err, sizeof err) == 0) {
        rc = print_values(ctl, cfg, &snap, &f, slices, n_slices) ? 1 : 0;
        free(slices);
        sb_tally_snapshot_free(&snap);
    } else {
        fprintf(stderr, "surveybusctl: %s\n", err);
    }
    sb_tally_free(tally);
    sb_store_free(store);
    sb_config_free(cfg);
    return rc;
}
