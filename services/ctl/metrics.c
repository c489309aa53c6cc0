/* surveybusctl metrics: the aggregator's current metric values, read from its window totals in
 * Redis (without taking the publisher lease) and computed as the publisher computes them. Also
 * the helpers watch.c shares: name checks, the sorted slice list, one metric's value, number
 * text and an aligned text table. */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "tally.h"
#include "util.h"

/* ---------------------------------------------------------------- names */

/* Prints "unknown WHAT NAME (valid: a, b, c)" on stderr. */
static void unknown(const char *what, const char *name, const char *const *valid, size_t n)
{
    fprintf(stderr, "surveybusctl: unknown %s %s (valid:", what, name);
    for (size_t i = 0; i < n; i++)
        fprintf(stderr, "%s %s", i ? "," : "", valid[i]);
    fprintf(stderr, ")\n");
}

int ctl_metric_filter_init(ctl_metric_filter_t *f, const sb_config_t *cfg, const char *metric,
                           const char *window, const char *dimension, const char *value)
{
    memset(f, 0, sizeof *f);
    f->metric = -1;
    f->window = -1;
    f->value = value;
    if (metric && (f->metric = sb_metric_parse(metric)) < 0) {
        unknown("metric", metric, sb_metric_names, SB_METRIC__N);
        return -1;
    }
    if (window) {
        char names[SB_WINDOW_MAX][SB_WINDOW_NAME_MAX];
        const char *valid[SB_WINDOW_MAX];
        for (size_t k = 0; k < cfg->n_windows; k++) {
            sb_window_name(cfg->windows_ms[k], names[k], sizeof names[k]);
            valid[k] = names[k];
            if (strcmp(window, names[k]) == 0) f->window = (int)k;
        }
        if (f->window < 0) {
            unknown("window", window, valid, cfg->n_windows);
            return -1;
        }
    }
    if (dimension) {
        const char *valid[SB_DIM__N] = {sb_dim_names[SB_DIM_ALL]};
        size_t n = 1;
        for (size_t i = 0; i < cfg->n_dimensions; i++)
            valid[n++] = sb_dim_names[cfg->dimensions[i]];
        for (size_t i = 0; i < n && !f->dimension; i++)
            if (strcmp(dimension, valid[i]) == 0) f->dimension = valid[i];
        if (!f->dimension) {
            unknown("dimension", dimension, valid, n);
            return -1;
        }
    }
    return 0;
}

int ctl_metric_open(const ctl_t *ctl, const char *const names[4], ctl_metric_filter_t *f,
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

/* ---------------------------------------------------------------- slices and values */

static int slice_cmp(const void *a, const void *b)
{
    const ctl_slice_t *x = a, *y = b;
    size_t n = x->dim_len < y->dim_len ? x->dim_len : y->dim_len;
    int c = memcmp(x->name, y->name, n);
    if (c == 0 && x->dim_len != y->dim_len) c = x->dim_len < y->dim_len ? -1 : 1;
    if (c == 0) c = strcmp(x->name + x->dim_len + 1, y->name + y->dim_len + 1);
    return c;
}

/* The slices that hold anything in some window of snap and match f, sorted by slice_cmp.
 * Returns 0 or -1 (a name unreadable, or out of memory). */
static int list_slices(sb_tally_t *t, const sb_tally_snapshot_t *snap, const ctl_metric_filter_t *f,
                       ctl_slice_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    /* slice ids are dense from 1: the highest one any window holds bounds the scan. The
     * cells end at the last one ever written, which may be inside the last slice's row. */
    int64_t end = 0;
    for (size_t k = 0; k < snap->n; k++) {
        const sb_tally_window_t *w = &snap->w[k];
        int64_t e = (int64_t)((w->n_cells + SB_TALLY_CELLS - 1) / SB_TALLY_CELLS);
        if (w->n_kpi && w->kpi[w->n_kpi - 1].slice + 1 > e) e = w->kpi[w->n_kpi - 1].slice + 1;
        if (e > end) end = e;
    }
    ctl_slice_t *list = NULL;
    size_t len = 0, cap = 0;
    for (int64_t id = 1; id < end; id++) {
        bool active = false;
        for (size_t k = 0; k < snap->n && !active; k++)
            active = sb_tally_slice_active(&snap->w[k], id);
        if (!active) continue;
        const char *name = sb_tally_slice_name(t, id);
        const char *bar = name ? strchr(name, '|') : NULL;
        if (!bar) {
            free(list);
            return -1;
        }
        size_t dim_len = (size_t)(bar - name);
        if (f->dimension &&
            (strlen(f->dimension) != dim_len || memcmp(name, f->dimension, dim_len)))
            continue;
        if (f->value && strcmp(bar + 1, f->value) != 0) continue;
        if (len == cap) {
            cap = cap ? 2 * cap : 64;
            ctl_slice_t *grown = realloc(list, cap * sizeof *list);
            if (!grown) {
                free(list);
                return -1;
            }
            list = grown;
        }
        list[len++] = (ctl_slice_t){id, name, dim_len};
    }
    if (len) qsort(list, len, sizeof *list, slice_cmp);
    *out = list;
    *n = len;
    return 0;
}

int ctl_metric_read(sb_tally_t *t, const sb_store_t *store, const ctl_metric_filter_t *f,
                    sb_tally_snapshot_t *snap, ctl_slice_t **slices, size_t *n, char *err,
                    size_t errlen)
{
    *slices = NULL;
    *n = 0;
    if (sb_tally_read(t, sb_now_ms(), "", 0, snap) != 1)
        return sb_fail(err, errlen, "reading the window totals failed: %s", store->errstr);
    if (list_slices(t, snap, f, slices, n) == 0) return 0;
    sb_tally_snapshot_free(snap);
    return sb_fail(err, errlen, "reading the slice names failed: %s", store->errstr);
}

uint64_t ctl_metric_count(const sb_metric_update_t *u)
{
    if (u->metric == SB_METRIC_RESPONSE_RATE) return u->v.num;
    if (sb_metric_form(u->metric) == SB_STATS_RATE) return u->v.den;
    return u->v.count;
}

bool ctl_metric_value(const sb_config_t *cfg, const sb_tally_snapshot_t *snap, size_t k,
                      const ctl_slice_t *s, sb_metric_t m, sb_metric_update_t *u)
{
    memset(u, 0, sizeof *u);
    u->metric = m;
    u->as_of_ms = snap->as_of_ms;
    sb_tally_metric(&snap->w[k], s->id, m, cfg, &u->v);
    sb_window_name(snap->w[k].window_ms, u->window, sizeof u->window);
    snprintf(u->dimension, sizeof u->dimension, "%.*s", (int)s->dim_len, s->name);
    snprintf(u->value, sizeof u->value, "%s", s->name + s->dim_len + 1);
    return ctl_metric_count(u) > 0;
}

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

/* Prints the values as a table, or with json as one array of published updates. */
static int print_values(const ctl_t *ctl, const sb_config_t *cfg, const sb_tally_snapshot_t *snap,
                        const ctl_metric_filter_t *f, const ctl_slice_t *slices, size_t n_slices)
{
    ctl_table_t table;
    ctl_table_init(&table, 7);
    ctl_table_add(&table, "METRIC"), ctl_table_add(&table, "WINDOW");
    ctl_table_add(&table, "DIMENSION"), ctl_table_add(&table, "VALUE");
    ctl_table_add(&table, "COUNT"), ctl_table_add(&table, "SCORE"), ctl_table_add(&table, "DETAIL");
    size_t shown = 0, failed = 0;
    if (ctl->json) fputc('[', stdout);
    for (int m = 0; m < SB_METRIC__N; m++) {
        if (f->metric >= 0 && m != f->metric) continue;
        for (size_t k = 0; k < snap->n; k++) {
            if (f->window >= 0 && k != (size_t)f->window) continue;
            for (size_t i = 0; i < n_slices; i++) {
                sb_metric_update_t u;
                if (!ctl_metric_value(cfg, snap, k, &slices[i], (sb_metric_t)m, &u)) continue;
                char *json = sb_metric_update_encode(&u), more[200], score[48];
                if (!json || (!ctl->json && detail(json, more, sizeof more))) {
                    failed++;
                    free(json);
                    continue;
                }
                if (ctl->json) {
                    printf("%s%s", shown ? "," : "", json);
                } else {
                    ctl_metric_number(u.v.has_value, u.v.score, score, sizeof score);
                    ctl_table_add(&table, "%s", sb_metric_names[m]);
                    ctl_table_add(&table, "%s", u.window);
                    ctl_table_add(&table, "%s", u.dimension);
                    ctl_table_add(&table, "%s", u.value);
                    ctl_table_add(&table, "%llu", (unsigned long long)ctl_metric_count(&u));
                    ctl_table_add(&table, "%s", score);
                    ctl_table_add(&table, "%s", more);
                }
                shown++;
                free(json);
            }
        }
    }
    if (ctl->json)
        printf("]\n");
    else if (shown)
        ctl_table_print(&table, stdout);
    else
        printf("no metric values match\n");
    ctl_table_free(&table);
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
    ctl_metric_filter_t f;
    sb_config_t *cfg;
    sb_store_t *store;
    int status = ctl_metric_open(ctl, opt, &f, &cfg, &store);
    if (status) return status;
    sb_tally_t *tally = sb_tally_new(store, cfg);
    sb_tally_snapshot_t snap;
    ctl_slice_t *slices;
    size_t n_slices;
    char err[300];
    int rc = 1;
    if (ctl_metric_read(tally, store, &f, &snap, &slices, &n_slices, err, sizeof err) == 0) {
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
