/* Current metric values from the window totals: see snapshot.h. */
#include "snapshot.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "window.h"

/* ---------------------------------------------------------------- names */

/* "unknown WHAT NAME (valid: a, b, c)", or for an empty name "empty WHAT (valid: a, b, c)",
 * into err; returns -1. */
static int unknown(char *err, size_t errlen, const char *what, const char *name,
                   const char *const *valid, size_t n)
{
    size_t used = 0;
    int w = *name ? snprintf(err, errlen, "unknown %s %s (valid:", what, name)
                  : snprintf(err, errlen, "empty %s (valid:", what);
    if (w > 0) used = (size_t)w < errlen ? (size_t)w : errlen;
    for (size_t i = 0; i < n && used < errlen; i++) {
        w = snprintf(err + used, errlen - used, "%s %s", i ? "," : "", valid[i]);
        if (w > 0) used += (size_t)w < errlen - used ? (size_t)w : errlen - used;
    }
    if (used < errlen) snprintf(err + used, errlen - used, ")");
    return -1;
}

int sb_snapshot_filter_init(sb_snapshot_filter_t *f, const sb_config_t *cfg, const char *metric,
                            const char *window, const char *dimension, const char *value, char *err,
                            size_t errlen)
{
    memset(f, 0, sizeof *f);
    f->metric = -1;
    f->window = -1;
    f->value = value;
    /* "" is no name (no metric, window or dimension is called that) and no value (a slice's
     * value is never empty): a mistake, not a request for everything */
    if (metric && (!*metric || (f->metric = sb_metric_parse(metric)) < 0))
        return unknown(err, errlen, "metric", metric, sb_metric_names, SB_METRIC__N);
    if (window) {
        char names[SB_WINDOW_MAX][SB_WINDOW_NAME_MAX];
        const char *valid[SB_WINDOW_MAX];
        for (size_t k = 0; k < cfg->n_windows; k++) {
            sb_window_name(cfg->windows_ms[k], names[k], sizeof names[k]);
            valid[k] = names[k];
            if (strcmp(window, names[k]) == 0) f->window = (int)k;
        }
        if (f->window < 0) return unknown(err, errlen, "window", window, valid, cfg->n_windows);
    }
    if (dimension) {
        const char *valid[SB_DIM__N] = {sb_dim_names[SB_DIM_ALL]};
        size_t n = 1;
        for (size_t i = 0; i < cfg->n_dimensions; i++)
            valid[n++] = sb_dim_names[cfg->dimensions[i]];
        for (size_t i = 0; i < n && !f->dimension; i++)
            if (strcmp(dimension, valid[i]) == 0) f->dimension = valid[i];
        if (!f->dimension) return unknown(err, errlen, "dimension", dimension, valid, n);
    }
    if (value && !*value) {
        snprintf(err, errlen, "empty value (leave it out for every value)");
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- slices and values */

static int slice_cmp(const void *a, const void *b)
{
    const sb_snapshot_slice_t *x = a, *y = b;
    size_t n = x->dim_len < y->dim_len ? x->dim_len : y->dim_len;
    int c = memcmp(x->name, y->name, n);
    if (c == 0 && x->dim_len != y->dim_len) c = x->dim_len < y->dim_len ? -1 : 1;
    if (c == 0) c = strcmp(x->name + x->dim_len + 1, y->name + y->dim_len + 1);
    return c;
}

/* The slices that hold anything in some window of snap and match f, sorted by slice_cmp.
 * Returns 0 or -1 (a name unreadable, or out of memory). */
static int list_slices(sb_tally_t *t, const sb_tally_snapshot_t *snap,
                       const sb_snapshot_filter_t *f, sb_snapshot_slice_t **out, size_t *n)
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
    sb_snapshot_slice_t *list = NULL;
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
            sb_snapshot_slice_t *grown = realloc(list, cap * sizeof *list);
            if (!grown) {
                free(list);
                return -1;
            }
            list = grown;
        }
        list[len++] = (sb_snapshot_slice_t){id, name, dim_len};
    }
    if (len) qsort(list, len, sizeof *list, slice_cmp);
    *out = list;
    *n = len;
    return 0;
}

int sb_snapshot_read(sb_tally_t *t, const sb_store_t *store, const sb_snapshot_filter_t *f,
                     sb_tally_snapshot_t *snap, sb_snapshot_slice_t **slices, size_t *n, char *err,
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

uint64_t sb_snapshot_count(const sb_metric_update_t *u)
{
    if (u->metric == SB_METRIC_RESPONSE_RATE) return u->v.num;
    if (sb_metric_form(u->metric) == SB_STATS_RATE) return u->v.den;
    return u->v.count;
}

bool sb_snapshot_value(const sb_config_t *cfg, const sb_tally_snapshot_t *snap, size_t k,
                       const sb_snapshot_slice_t *s, sb_metric_t m, sb_metric_update_t *u)
{
    memset(u, 0, sizeof *u);
    u->metric = m;
    u->as_of_ms = snap->as_of_ms;
    sb_tally_metric(&snap->w[k], s->id, m, cfg, &u->v);
    sb_window_name(snap->w[k].window_ms, u->window, sizeof u->window);
    snprintf(u->dimension, sizeof u->dimension, "%.*s", (int)s->dim_len, s->name);
    snprintf(u->value, sizeof u->value, "%s", s->name + s->dim_len + 1);
    return sb_snapshot_count(u) > 0;
}

int sb_snapshot_each(const sb_config_t *cfg, const sb_tally_snapshot_t *snap,
                     const sb_snapshot_filter_t *f, const sb_snapshot_slice_t *slices, size_t n,
                     sb_snapshot_fn fn, void *opaque, size_t *failed)
{
    *failed = 0;
    for (int m = 0; m < SB_METRIC__N; m++) {
        if (f->metric >= 0 && m != f->metric) continue;
        for (size_t k = 0; k < snap->n; k++) {
            if (f->window >= 0 && k != (size_t)f->window) continue;
            for (size_t i = 0; i < n; i++) {
                sb_metric_update_t u;
                if (!sb_snapshot_value(cfg, snap, k, &slices[i], (sb_metric_t)m, &u)) continue;
                char *json = sb_metric_update_encode(&u);
                if (!json) {
                    (*failed)++;
                    continue;
                }
                int rc = fn(opaque, &u, json);
                free(json);
                if (rc) return rc;
            }
        }
    }
    return 0;
}

typedef struct text {
    char *buf;
    size_t len, cap;
} text_t;

static void put(text_t *t, const char *s, size_t n)
{
    if (t->len + n + 1 > t->cap) {
        size_t cap = (t->cap ? 2 * t->cap : 4096) + n;
        char *b = realloc(t->buf, cap);
        if (!b) abort();
        t->buf = b, t->cap = cap;
    }
    memcpy(t->buf + t->len, s, n);
    t->len += n;
    t->buf[t->len] = '\0';
}

static int add_json(void *opaque, const sb_metric_update_t *u, const char *json)
{
    (void)u;
    text_t *t = opaque;
    put(t, t->len > 1 ? "," : "", t->len > 1);
    put(t, json, strlen(json));
    return 0;
}

char *sb_snapshot_json(const sb_config_t *cfg, const sb_tally_snapshot_t *snap,
                       const sb_snapshot_filter_t *f, const sb_snapshot_slice_t *slices, size_t n,
                       size_t *failed)
{
    text_t t = {0};
    put(&t, "[", 1);
    sb_snapshot_each(cfg, snap, f, slices, n, add_json, &t, failed);
    put(&t, "]", 1);
    return t.buf;
}
