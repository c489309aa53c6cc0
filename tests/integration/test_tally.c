/* Integration tests of common/tally.c against a real redis-server, driven directly (no
 * aggregator process) with synthetic processing and event times. Every window total read
 * back is compared with a brute-force recomputation over the items the tally accepted
 * (result 'c'): for a window of W ms with bucket width B, as of T, an item at ts counts iff
 * floor(ts / B) * B lies in (floor(T / B) * B - W, floor(T / B) * B]. Covered: windows
 * moving forward by incremental subtraction and by rebuild (told apart with a marker planted
 * in the running totals, which only a rebuild removes), exactly-once counting, late items
 * within the lateness, the alert outbox, the publisher lease and the slice registry.
 * Each test has its own key prefix. */
#include <check.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "metric.h"
#include "record.h"
#include "stats.h"
#include "store.h"
#include "tally.h"
#include "util.h"
#include "window.h"

#define SEC 1000LL
#define MIN (60 * SEC)
#define HOUR (60 * MIN)
#define DAY (24 * HOUR)

static sb_h_t h;
/* Base of the synthetic clock: the UTC day boundary of the wall clock at start. Close to
 * the real time on purpose: the KPI dedup hashes expire at an absolute (event day based)
 * time, so event days far in the past would be gone at once. */
static int64_t T0;

/* One test's world: config, store and tally over a flushed database, plus strings that
 * must live until the end of the test (ids, claim values). */
static struct {
    sb_config_t *cfg;
    sb_store_t *st;
    sb_tally_t *t;
    char prefix[32];
    char **pool;
    size_t n_pool, cap_pool;
} E;

/* What the tally accepted: the brute-force model. */
typedef struct mitem {
    char type;
    int64_t ts;
    int64_t slices[SB_DIM__N];
    size_t n_slices;
    int kind, score;
    bool has_frt, has_art;
    int64_t frt_key, frt_ms, art_key, art_ms;
    int fcr, tr;
} mitem_t;

static struct {
    mitem_t *v;
    size_t n, cap;
} M;

static void setup(void)
{
    T0 = sb_now_ms() / DAY * DAY;
    if (sb_h_start(&h, SB_H_REDIS, 0, NULL) != 0) {
        fprintf(stderr, "cannot start redis-server\n");
        exit(1);
    }
}

static void teardown(void)
{
    sb_h_stop(&h);
}

/* ---------------------------------------------------------------- helpers */

static char *keep(char *s)
{
    if (!s) abort();
    if (E.n_pool == E.cap_pool) {
        E.cap_pool = E.cap_pool ? 2 * E.cap_pool : 256;
        E.pool = realloc(E.pool, E.cap_pool * sizeof *E.pool);
        if (!E.pool) abort();
    }
    return E.pool[E.n_pool++] = s;
}

/* A printf-formatted string that lives until env_close. */
static const char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static const char *fmt(const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    char *s = NULL;
    if (vasprintf(&s, f, ap) < 0) abort();
    va_end(ap);
    return keep(s);
}

static redisReply *cmdv(const char *a0, va_list ap)
{
    const char *argv[16];
    int argc = 0;
    for (const char *a = a0; a && argc < 16; a = va_arg(ap, const char *)) argv[argc++] = a;
    redisReply *r = sb_store_cmdargv(E.st, argc, argv, NULL);
    ck_assert_msg(r != NULL, "%s failed: %s", a0, E.st->errstr);
    ck_assert_msg(r->type != REDIS_REPLY_ERROR, "%s: %s", a0, r->str);
    return r;
}

/* Runs a command (NULL-terminated C-string arguments); the reply belongs to the caller. */
static redisReply *cmd(const char *a0, ...)
{
    va_list ap;
    va_start(ap, a0);
    redisReply *r = cmdv(a0, ap);
    va_end(ap);
    return r;
}

/* A command answering an integer or a number as a string; nil gives -1. */
static long long num(const char *a0, ...)
{
    va_list ap;
    va_start(ap, a0);
    redisReply *r = cmdv(a0, ap);
    va_end(ap);
    long long v = -1;
    if (r->type == REDIS_REPLY_INTEGER)
        v = r->integer;
    else if (r->type == REDIS_REPLY_STRING)
        v = atoll(r->str);
    else if (r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
             r->element[0]->type == REDIS_REPLY_INTEGER)
        v = r->element[0]->integer; /* BITFIELD */
    else
        ck_assert_int_eq(r->type, REDIS_REPLY_NIL);
    freeReplyObject(r);
    return v;
}

/* The prefixed key of a printf-formatted name. */
static const char *key(const char *f, ...) __attribute__((format(printf, 1, 2)));
static const char *key(const char *f, ...)
{
    char name[256];
    va_list ap;
    va_start(ap, f);
    vsnprintf(name, sizeof name, f, ap);
    va_end(ap);
    return fmt("%s%s", E.prefix, name);
}

/* A counter of P"stats:aggregator" (0 when absent). */
static long long stat(const char *field)
{
    long long v = num("HGET", key("stats:aggregator"), field, NULL);
    return v < 0 ? 0 : v;
}

static void env_close(void);

/* Opens the world under prefix with `extra` (",\"key\":value..." or "") in the config. */
static void env_open(const char *prefix, const char *extra)
{
    env_close();
    snprintf(E.prefix, sizeof E.prefix, "%s", prefix);
    char json[1024];
    snprintf(json, sizeof json, "{\"dev\":true,\"redis\":{\"url\":\"%s\",\"prefix\":\"%s\"}%s}",
             h.redis_url, prefix, extra ? extra : "");
    sb_problems_t probs = {0};
    E.cfg = sb_config_load_string(json, strlen(json), &probs);
    ck_assert_msg(E.cfg != NULL, "config: %s", probs.n ? probs.msg[0] : "?");
    sb_problems_clear(&probs);
    /* the defaults these tests rely on */
    ck_assert_int_eq(E.cfg->n_windows, 4);
    ck_assert_int_eq(E.cfg->windows_ms[0], HOUR);
    ck_assert_int_eq(E.cfg->windows_ms[1], DAY);
    ck_assert_int_eq(E.cfg->windows_ms[2], 7 * DAY);
    ck_assert_int_eq(E.cfg->windows_ms[3], 30 * DAY);
    ck_assert_int_eq(E.cfg->allowed_lateness_ms, 10 * MIN);
    char err[256] = "";
    E.st = sb_store_new(E.cfg, err, sizeof err);
    ck_assert_msg(E.st != NULL, "store: %s", err);
    ck_assert_int_eq(sb_store_wait_up(E.st, NULL), 0);
    freeReplyObject(cmd("FLUSHDB", NULL));
    E.t = sb_tally_new(E.st, E.cfg);
    M.n = 0;
}

static void env_close(void)
{
    sb_tally_free(E.t);
    if (E.st) sb_store_free(E.st);
    if (E.cfg) sb_config_free(E.cfg);
    for (size_t i = 0; i < E.n_pool; i++) free(E.pool[i]);
    free(E.pool);
    memset(&E, 0, sizeof E);
    free(M.v);
    memset(&M, 0, sizeof M);
}

/* Deterministic pseudo-random numbers (xorshift64*). */
static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static uint64_t rnd(void)
{
    rng ^= rng >> 12, rng ^= rng << 25, rng ^= rng >> 27;
    return rng * 2685821657736338717ULL;
}
static int64_t rnd_in(int64_t lo, int64_t hi) /* lo..hi inclusive */
{
    return lo + (int64_t)(rnd() % (uint64_t)(hi - lo + 1));
}

/* ---------------------------------------------------------------- items */

/* Writes survey record id in state `state` and returns the stored value (kept); *claim is
 * the same value with state 'a', what a claim leaves in Redis. */
static const char *put_record(const char *id, char state, sb_kind_t kind, const char **claim,
                              size_t *len)
{
    sb_record_t r;
    memset(&r, 0, sizeof r);
    r.state = state;
    r.kind = kind;
    strcpy(r.journey, "support-csat");
    strcpy(r.customer_id, "cust-1");
    snprintf(r.interaction_id, sizeof r.interaction_id, "%s", id);
    strcpy(r.channel, "email");
    strcpy(r.locale, "en");
    strcpy(r.dim[SB_DIM_ALL], "all");
    strcpy(r.dim[SB_DIM_AGENT], "a");
    r.due_ms = T0;
    r.expires_ms = T0 + 7 * DAY;
    size_t n = 0;
    char *v = keep(sb_record_encode(&r, &n));
    redisReply *rep = sb_store_cmd(E.st, "SET %s %b", key("s:%s", id), v, n);
    ck_assert_ptr_nonnull(rep);
    ck_assert_int_eq(rep->type, REDIS_REPLY_STATUS);
    freeReplyObject(rep);
    if (claim) {
        char *c = keep(malloc(n + 1));
        memcpy(c, v, n + 1);
        c[0] = SB_REC_ANSWERED;
        *claim = c;
        *len = n;
    }
    return v;
}

static void set_slices(sb_tally_item_t *it, const int64_t *sl, size_t ns)
{
    it->n_slices = ns;
    for (size_t i = 0; i < ns; i++) it->slices[i] = sl[i];
}

/* A response to survey id (its record written in state `state` unless state is 0). */
static sb_tally_item_t resp(const char *id, char state, int64_t ts, const int64_t *sl, size_t ns,
                            sb_kind_t kind, int score, const char *alert)
{
    sb_tally_item_t it;
    memset(&it, 0, sizeof it);
    it.type = SB_TALLY_RESPONSE;
    it.id = fmt("%s", id);
    it.ts_ms = ts;
    set_slices(&it, sl, ns);
    it.kind = kind;
    it.score = score;
    it.alert = alert;
    if (state) put_record(id, state, kind, NULL, NULL);
    return it;
}

static sb_tally_item_t req(const char *id, int64_t ts, const int64_t *sl, size_t ns)
{
    sb_tally_item_t it;
    memset(&it, 0, sizeof it);
    it.type = SB_TALLY_REQUEST;
    it.id = fmt("%s", id);
    it.ts_ms = ts;
    set_slices(&it, sl, ns);
    return it;
}

/* A KPI event; frt_ms / art_ms < 0: absent; fcr, tr: 1, 0, -1 unknown. */
static sb_tally_item_t kpi(const char *id, int64_t ts, const int64_t *sl, size_t ns, int64_t frt_ms,
                           int64_t art_ms, int fcr, int tr)
{
    sb_tally_item_t it;
    memset(&it, 0, sizeof it);
    it.type = SB_TALLY_KPI;
    it.id = fmt("%s", id);
    it.ts_ms = ts;
    set_slices(&it, sl, ns);
    if (frt_ms >= 0) {
        it.has_frt = true;
        it.frt_ms = frt_ms;
        it.frt_key = sb_stats_kpi_bucket((double)frt_ms / 1000.0);
    }
    if (art_ms >= 0) {
        it.has_art = true;
        it.art_ms = art_ms;
        it.art_key = sb_stats_kpi_bucket((double)art_ms / 1000.0);
    }
    it.fcr = fcr;
    it.transferred = tr;
    return it;
}

static void model_add(const sb_tally_item_t *it)
{
    if (M.n == M.cap) {
        M.cap = M.cap ? 2 * M.cap : 256;
        M.v = realloc(M.v, M.cap * sizeof *M.v);
        if (!M.v) abort();
    }
    mitem_t *m = &M.v[M.n++];
    memset(m, 0, sizeof *m);
    m->type = it->type;
    m->ts = it->ts_ms;
    m->n_slices = it->n_slices;
    memcpy(m->slices, it->slices, sizeof m->slices);
    m->kind = (int)it->kind;
    m->score = it->score;
    m->has_frt = it->has_frt, m->has_art = it->has_art;
    m->frt_key = it->frt_key, m->frt_ms = it->frt_ms;
    m->art_key = it->art_key, m->art_ms = it->art_ms;
    m->fcr = it->fcr, m->tr = it->transferred;
}

/* Applies a batch at now; want (NULL: anything) gives the expected result per item. What
 * was counted enters the model. */
static void apply(sb_tally_item_t *it, size_t n, int64_t now, const char *want)
{
    for (size_t i = 0; i < n; i++) it[i].result = 0;
    ck_assert_int_eq(sb_tally_apply(E.t, it, n, NULL, 0, now), 0);
    for (size_t i = 0; i < n; i++) {
        ck_assert_msg(strchr("cdun", it[i].result) && it[i].result,
                      "item %zu: result %d", i, it[i].result);
        if (want)
            ck_assert_msg(it[i].result == want[i], "item %zu (%c %s): result '%c', want '%c'", i,
                          it[i].type, it[i].id, it[i].result, want[i]);
        if (it[i].result == 'c') model_add(&it[i]);
    }
}

/* ---------------------------------------------------------------- brute force */

static sb_tally_kpi_t *kslot(sb_tally_kpi_t **k, size_t *n, size_t *cap, int64_t slice)
{
    for (size_t i = 0; i < *n; i++)
        if ((*k)[i].slice == slice) return &(*k)[i];
    if (*n == *cap) {
        *cap = *cap ? 2 * *cap : 16;
        *k = realloc(*k, *cap * sizeof **k);
        if (!*k) abort();
    }
    sb_tally_kpi_t *s = &(*k)[(*n)++];
    memset(s, 0, sizeof *s);
    s->slice = slice;
    return s;
}

static void dadd(sb_tally_dist_t *d, int64_t key, int64_t ms)
{
    d->n++;
    d->sum_ms += ms;
    for (size_t i = 0; i < d->n_keys; i++)
        if (d->keys[i] == key) {
            d->counts[i]++;
            return;
        }
    if (d->n_keys == d->cap) {
        d->cap = d->cap ? 2 * d->cap : 8;
        d->keys = realloc(d->keys, d->cap * sizeof *d->keys);
        d->counts = realloc(d->counts, d->cap * sizeof *d->counts);
        if (!d->keys || !d->counts) abort();
    }
    d->keys[d->n_keys] = key;
    d->counts[d->n_keys++] = 1;
}

static int cmp_slice(const void *a, const void *b)
{
    int64_t x = ((const sb_tally_kpi_t *)a)->slice, y = ((const sb_tally_kpi_t *)b)->slice;
    return x < y ? -1 : x > y;
}

static bool in_window(int64_t W, int64_t T, int64_t ts)
{
    int64_t B = sb_window_bucket_width(W);
    int64_t end = sb_window_bucket_start(T, B), s = sb_window_bucket_start(ts, B);
    return s > end - W && s <= end;
}

/* The totals of window W as of T recomputed from the model, in the snapshot's form. */
static void expected_window(int64_t W, int64_t T, sb_tally_window_t *w)
{
    memset(w, 0, sizeof *w);
    int64_t B = sb_window_bucket_width(W);
    w->window_ms = W;
    w->first_ms = sb_window_bucket_start(T, B) - W + B;
    int64_t max_slice = 0;
    for (size_t i = 0; i < M.n; i++)
        for (size_t j = 0; j < M.v[i].n_slices; j++)
            if (M.v[i].slices[j] > max_slice) max_slice = M.v[i].slices[j];
    w->n_cells = (size_t)(max_slice + 1) * SB_TALLY_CELLS;
    w->cells = calloc(w->n_cells, sizeof *w->cells);
    if (!w->cells) abort();
    size_t cap = 0;
    for (size_t i = 0; i < M.n; i++) {
        const mitem_t *m = &M.v[i];
        if (!in_window(W, T, m->ts)) continue;
        for (size_t j = 0; j < m->n_slices; j++) {
            int64_t s = m->slices[j];
            if (m->type == SB_TALLY_RESPONSE) {
                w->cells[sb_tally_cell(s, m->kind, m->score)]++;
            } else if (m->type == SB_TALLY_REQUEST) {
                w->cells[sb_tally_cell(s, -1, 0)]++;
            } else {
                sb_tally_kpi_t *k = kslot(&w->kpi, &w->n_kpi, &cap, s);
                if (m->has_frt) dadd(&k->frt, m->frt_key, m->frt_ms);
                if (m->has_art) dadd(&k->art, m->art_key, m->art_ms);
                if (m->fcr >= 0) k->fcr_n++, k->fcr_yes += (uint64_t)m->fcr;
                if (m->tr >= 0) k->tr_n++, k->tr_yes += (uint64_t)m->tr;
            }
        }
    }
    if (w->n_kpi > 1) qsort(w->kpi, w->n_kpi, sizeof *w->kpi, cmp_slice);
}

static void free_window(sb_tally_window_t *w)
{
    free(w->cells);
    for (size_t i = 0; i < w->n_kpi; i++) {
        free(w->kpi[i].frt.keys), free(w->kpi[i].frt.counts);
        free(w->kpi[i].art.keys), free(w->kpi[i].art.counts);
    }
    free(w->kpi);
}

static const sb_tally_kpi_t *kfind(const sb_tally_window_t *w, int64_t slice)
{
    for (size_t i = 0; i < w->n_kpi; i++)
        if (w->kpi[i].slice == slice) return &w->kpi[i];
    return NULL;
}

static uint64_t dcount(const sb_tally_dist_t *d, int64_t key)
{
    uint64_t n = 0;
    for (size_t i = 0; i < d->n_keys; i++)
        if (d->keys[i] == key) n += d->counts[i];
    return n;
}

static void check_dist(const sb_tally_dist_t *g, const sb_tally_dist_t *e, const char *ctx,
                       int64_t slice, char which)
{
    static const sb_tally_dist_t none;
    if (!g) g = &none;
    if (!e) e = &none;
    ck_assert_msg(g->n == e->n && g->sum_ms == e->sum_ms,
                  "%s slice %lld %c: n %llu sum %lld, want n %llu sum %lld", ctx, (long long)slice,
                  which, (unsigned long long)g->n, (long long)g->sum_ms, (unsigned long long)e->n,
                  (long long)e->sum_ms);
    for (int pass = 0; pass < 2; pass++) {
        const sb_tally_dist_t *d = pass ? e : g;
        for (size_t i = 0; i < d->n_keys; i++)
            ck_assert_msg(dcount(g, d->keys[i]) == dcount(e, d->keys[i]),
                          "%s slice %lld %c key %lld: %llu, want %llu", ctx, (long long)slice,
                          which, (long long)d->keys[i],
                          (unsigned long long)dcount(g, d->keys[i]),
                          (unsigned long long)dcount(e, d->keys[i]));
    }
}

static bool close_to(double a, double b)
{
    return fabs(a - b) <= 1e-9 * fmax(1.0, fabs(b));
}

/* got (read from Redis) equals want (brute force): cells, KPI fields and every metric. */
static void check_window(const sb_tally_window_t *got, const sb_tally_window_t *want,
                         const char *ctx)
{
    char wn[SB_WINDOW_NAME_MAX];
    sb_window_name(want->window_ms, wn, sizeof wn);
    char c[128];
    snprintf(c, sizeof c, "%s %s", ctx, wn);
    ck_assert_int_eq(got->window_ms, want->window_ms);
    ck_assert_msg(got->first_ms == want->first_ms, "%s: first %lld, want %lld", c,
                  (long long)got->first_ms, (long long)want->first_ms);
    size_t n = got->n_cells > want->n_cells ? got->n_cells : want->n_cells;
    for (size_t i = 0; i < n; i++) {
        uint32_t g = i < got->n_cells ? got->cells[i] : 0;
        uint32_t e = i < want->n_cells ? want->cells[i] : 0;
        ck_assert_msg(g == e, "%s: slice %zu cell %zu = %u, want %u", c, i / SB_TALLY_CELLS,
                      i % SB_TALLY_CELLS, g, e);
    }
    int64_t max_slice = (int64_t)(n / SB_TALLY_CELLS);
    for (int pass = 0; pass < 2; pass++) {
        const sb_tally_window_t *w = pass ? want : got;
        for (size_t i = 0; i < w->n_kpi; i++) {
            int64_t s = w->kpi[i].slice;
            if (s > max_slice) max_slice = s;
            const sb_tally_kpi_t *g = kfind(got, s), *e = kfind(want, s);
            static const sb_tally_kpi_t none;
            if (!g) g = &none;
            if (!e) e = &none;
            check_dist(&g->frt, &e->frt, c, s, 'f');
            check_dist(&g->art, &e->art, c, s, 'a');
            ck_assert_msg(g->fcr_n == e->fcr_n && g->fcr_yes == e->fcr_yes && g->tr_n == e->tr_n &&
                              g->tr_yes == e->tr_yes,
                          "%s slice %lld: fcr %llu/%llu tr %llu/%llu, want %llu/%llu %llu/%llu", c,
                          (long long)s, (unsigned long long)g->fcr_yes,
                          (unsigned long long)g->fcr_n, (unsigned long long)g->tr_yes,
                          (unsigned long long)g->tr_n, (unsigned long long)e->fcr_yes,
                          (unsigned long long)e->fcr_n, (unsigned long long)e->tr_yes,
                          (unsigned long long)e->tr_n);
        }
    }
    /* the published values agree too */
    for (int64_t s = 0; s <= max_slice; s++)
        for (int m = 0; m < SB_METRIC__N; m++) {
            sb_metric_value_t g, e;
            sb_tally_metric(got, s, (sb_metric_t)m, E.cfg, &g);
            sb_tally_metric(want, s, (sb_metric_t)m, E.cfg, &e);
            ck_assert_msg(g.has_value == e.has_value && g.count == e.count &&
                              close_to(g.score, e.score) && g.promoters == e.promoters &&
                              g.detractors == e.detractors && g.satisfied == e.satisfied &&
                              g.easy == e.easy && g.num == e.num && g.den == e.den &&
                              g.has_p90 == e.has_p90 && close_to(g.p90, e.p90) &&
                              close_to(g.mean, e.mean),
                          "%s slice %lld metric %s: count %llu score %g, want %llu %g", c,
                          (long long)s, sb_metric_names[m], (unsigned long long)g.count, g.score,
                          (unsigned long long)e.count, e.score);
            ck_assert_int_eq(sb_tally_slice_active(got, s), sb_tally_slice_active(want, s));
        }
}

/* Reads as of T (no lease) and checks every window against the brute force. With snap
 * non-NULL the snapshot is handed back (caller frees). */
static void check_all(int64_t T, const char *ctx, sb_tally_snapshot_t *keep_snap)
{
    sb_tally_snapshot_t s;
    ck_assert_int_eq(sb_tally_read(E.t, T, NULL, 0, &s), 1);
    ck_assert_int_eq(s.as_of_ms, T);
    ck_assert_uint_eq(s.n, E.cfg->n_windows);
    for (size_t k = 0; k < s.n; k++) {
        sb_tally_window_t want;
        expected_window(E.cfg->windows_ms[k], T, &want);
        check_window(&s.w[k], &want, ctx);
        free_window(&want);
    }
    if (keep_snap)
        *keep_snap = s;
    else
        sb_tally_snapshot_free(&s);
}

/* ---- telling the two ways of moving a window apart ----
 * A marker (one count in a cell of slice MARK, and the KPI field "MARK:cn") is planted in a
 * window's running totals before a read. Moving the watermark incrementally (or not at all)
 * only subtracts buckets, so the marker stays; a rebuild deletes the totals, so it goes. */
#define MARK 900

static void mark(int64_t W, long long d)
{
    const char *cell = fmt("#%lld", (long long)sb_tally_cell(MARK, -1, 0));
    const char *dd = fmt("%lld", d);
    freeReplyObject(cmd("BITFIELD", key("hw:%lld", (long long)W), "INCRBY", "u32", cell, dd, NULL));
    freeReplyObject(cmd("HINCRBY", key("kw:%lld", (long long)W), fmt("%d:cn", MARK), dd, NULL));
    if (d < 0) freeReplyObject(cmd("HDEL", key("kw:%lld", (long long)W), fmt("%d:cn", MARK), NULL));
}

static bool marked(int64_t W)
{
    const char *cell = fmt("#%lld", (long long)sb_tally_cell(MARK, -1, 0));
    long long b = num("BITFIELD", key("hw:%lld", (long long)W), "GET", "u32", cell, NULL);
    long long k = num("HGET", key("kw:%lld", (long long)W), fmt("%d:cn", MARK), NULL);
    ck_assert_msg((b == 1) == (k == 1), "marker of %lld half gone: cell %lld field %lld",
                  (long long)W, b, k);
    return b == 1;
}

/* Reads as of T with markers planted; paths[k] is 'r' when window k must be rebuilt, else
 * '.' (moved incrementally or not at all). Then removes the markers left and checks every
 * window against the brute force (the second read as of T moves nothing). */
static void read_path(int64_t T, const char *paths, const char *ctx)
{
    for (size_t k = 0; k < E.cfg->n_windows; k++) mark(E.cfg->windows_ms[k], 1);
    sb_tally_snapshot_t s;
    ck_assert_int_eq(sb_tally_read(E.t, T, NULL, 0, &s), 1);
    sb_tally_snapshot_free(&s);
    for (size_t k = 0; k < E.cfg->n_windows; k++) {
        int64_t W = E.cfg->windows_ms[k];
        bool m = marked(W);
        ck_assert_msg(m == (paths[k] != 'r'), "%s: window %zu %s", ctx, k,
                      m ? "kept its totals, want a rebuild" : "was rebuilt, want incremental");
        if (m) mark(W, -1);
    }
    check_all(T, ctx, NULL);
}

/* Count of items of the model in window W as of T (for asserting the cases are not empty). */
static size_t model_in(int64_t W, int64_t T)
{
    size_t n = 0;
    for (size_t i = 0; i < M.n; i++) n += in_window(W, T, M.v[i].ts);
    return n;
}

/* ---------------------------------------------------------------- 1. windows */

static int64_t SL[5]; /* all|all, agent|a, agent|b, team|x, team|y */

static void register_slices(void)
{
    static const char *const names[] = {"all|all", "agent|a", "agent|b", "team|x", "team|y"};
    bool capped[5];
    ck_assert_int_eq(sb_tally_slices(E.t, names, 5, SL, capped), 0);
    for (int i = 0; i < 5; i++) ck_assert(!capped[i]);
}

/* all|all, maybe an agent, maybe a team */
static size_t rnd_slices(int64_t *sl)
{
    size_t n = 0;
    sl[n++] = SL[0];
    int a = (int)(rnd() % 3), t = (int)(rnd() % 3);
    if (a) sl[n++] = SL[a];
    if (t) sl[n++] = SL[2 + t];
    return n;
}

/* Random event time in (now - span, now] with a share near now, ms resolution. */
static int64_t rnd_ts(int64_t now)
{
    switch (rnd() % 4) {
    case 0: return now - rnd_in(0, 2 * HOUR);
    case 1: return now - rnd_in(0, 26 * HOUR);
    case 2: return now - rnd_in(0, 8 * DAY);
    default: return now - rnd_in(0, 35 * DAY);
    }
}

static size_t rnd_batch(sb_tally_item_t *it, size_t n, int64_t now, const char *tag)
{
    static int seq;
    for (size_t i = 0; i < n; i++) {
        int64_t sl[SB_DIM__N];
        size_t ns = rnd_slices(sl);
        int64_t ts = rnd_ts(now);
        const char *id = fmt("%s-%d", tag, seq++);
        switch (rnd() % 3) {
        case 0: {
            sb_kind_t kind = (sb_kind_t)(rnd() % SB_KIND__N);
            int score = kind == SB_KIND_NPS ? (int)rnd_in(0, 10)
                        : kind == SB_KIND_CSAT ? (int)rnd_in(1, 5)
                                               : (int)rnd_in(1, 7);
            it[i] = resp(id, "fpe"[rnd() % 3], ts, sl, ns, kind, score, NULL);
            break;
        }
        case 1: it[i] = req(id, ts, sl, ns); break;
        default:
            it[i] = kpi(id, ts, sl, ns, rnd() % 4 ? rnd_in(1, 4000000) : -1,
                        rnd() % 4 ? rnd_in(1, 40000000) : -1, (int)(rnd() % 3) - 1,
                        (int)(rnd() % 3) - 1);
        }
    }
    return n;
}

START_TEST(windows_match_brute_force)
{
    env_open("t1:", "");
    register_slices();
    enum { N = 240 };
    sb_tally_item_t *it = calloc(N, sizeof *it);
    ck_assert_ptr_nonnull(it);

    /* responses exactly on the window edges as of T0 (T0 is a day, hence hour and minute,
     * boundary): the oldest bucket of each window and the one just before it */
    static const int64_t edges[] = {HOUR - MIN, HOUR, HOUR + 1, DAY - HOUR, DAY, 7 * DAY - HOUR,
                                    7 * DAY, 30 * DAY - DAY, 30 * DAY, 30 * DAY + 1, 0, 1};
    size_t ne = sizeof edges / sizeof edges[0];
    for (size_t i = 0; i < ne; i++)
        it[i] = resp(fmt("edge-%zu", i), SB_REC_FIRED, T0 - edges[i], SL, 2, SB_KIND_NPS,
                     (int)i % 11, NULL);
    apply(it, ne, T0, "cccccccccccc");
    check_all(T0, "T0 edges", NULL);

    rnd_batch(it, N, T0, "b1");
    apply(it, N, T0, NULL);
    ck_assert_uint_gt(model_in(HOUR, T0), 10);
    read_path(T0, "....", "T0");
    read_path(T0 + MIN, "....", "T0+1m");
    read_path(T0 + 59 * MIN, "....", "T0+59m");
    read_path(T0 + 61 * MIN, "....", "T0+61m");
    /* nothing happened after T0: the 1h window is empty now */
    ck_assert_uint_eq(model_in(HOUR, T0 + 61 * MIN), 0);
    ck_assert_uint_gt(model_in(DAY, T0 + 61 * MIN), 10);

    /* more items, some already behind a watermark (late for 1h, or 24h) */
    int64_t t = T0 + 61 * MIN;
    rnd_batch(it, N, t, "b2");
    apply(it, N, t, NULL);
    ck_assert_uint_gt(model_in(HOUR, t), 5);
    check_all(t, "T0+61m after b2", NULL);
    read_path(T0 + 2 * HOUR, "....", "T0+2h");     /* 1h by 59 min, hourly by 1 h */
    read_path(T0 + 5 * HOUR, "rrr.", "T0+5h");     /* 3 h: 1h, 24h and 7d rebuilt */
    read_path(T0 + 25 * HOUR, "rrr.", "T0+25h");   /* 30d moves one day */
    ck_assert_uint_eq(model_in(DAY, T0 + 25 * HOUR), 0);

    t = T0 + 25 * HOUR;
    rnd_batch(it, N, t, "b3");
    apply(it, N, t, NULL);
    check_all(t, "T0+25h after b3", NULL);
    read_path(T0 + 25 * HOUR + 30 * MIN, "....", "T0+25h30m");
    read_path(T0 + 5 * DAY + HOUR, "rrrr", "T0+5d1h"); /* several days: everything rebuilt */
    read_path(T0 + 6 * DAY, "rrr.", "T0+6d");
    read_path(T0 + 6 * DAY + HOUR / 2, "....", "T0+6d30m");
    read_path(T0 + 7 * DAY + HOUR, "rrr.", "T0+7d1h");
    free(it);
    env_close();
}
END_TEST

/* ---------------------------------------------------------------- 2. exactly once */

START_TEST(exactly_once)
{
    env_open("t2:", "");
    register_slices();
    int64_t now = T0 + 10 * HOUR;
    int64_t sl[2] = {SL[0], SL[1]};
    sb_tally_item_t it[14];
    size_t n = 0;
    it[n++] = resp("r-fired", SB_REC_FIRED, now - 5 * MIN, sl, 2, SB_KIND_CSAT, 5, NULL);
    const char *claimed; /* r-fired's record as a claim leaves it: state 'a', the rest kept */
    size_t claimed_len;
    put_record("r-fired", SB_REC_FIRED, SB_KIND_CSAT, &claimed, &claimed_len);
    ck_assert_int_eq(num("PEXPIRE", key("s:r-fired"), "3600000", NULL), 1);
    it[n++] = resp("r-pending", SB_REC_PENDING, now - 6 * MIN, sl, 2, SB_KIND_NPS, 9, NULL);
    it[n++] = resp("r-expired", SB_REC_EXPIRED, now - 3 * HOUR, sl, 1, SB_KIND_CES, 2, NULL);
    it[n++] = resp("r-missing", 0, now - 5 * MIN, sl, 2, SB_KIND_CSAT, 1, NULL);
    it[n++] = resp("r-cancelled", SB_REC_CANCELLED, now - 5 * MIN, sl, 2, SB_KIND_CSAT, 1, NULL);
    it[n++] = resp("r-suppressed", SB_REC_SUPPRESSED, now - 5 * MIN, sl, 2, SB_KIND_NPS, 0, NULL);
    it[n++] = req("q-1", now - 20 * MIN, sl, 2);
    it[n++] = req("q-2", now - 2 * DAY, sl, 1);
    it[n++] = req("q-1", now - 20 * MIN, sl, 2); /* same id in the same batch */
    it[n++] = kpi("k-1", now - 30 * MIN, sl, 2, 12345, 600000, 1, 0);
    it[n++] = kpi("k-1", now - 30 * MIN, sl, 2, 12345, 600000, 1, 0);
    it[n++] = kpi("k-2", now - 40 * MIN, sl, 1, -1, 5000, 0, -1);
    it[n] = it[0]; /* r-fired again in the same batch (its record is written once) */
    n++;
    /* the records that must come out unchanged */
    redisReply *r = cmd("GET", key("s:r-cancelled"), NULL);
    const char *cancelled = fmt("%s", r->str);
    freeReplyObject(r);
    r = cmd("GET", key("s:r-suppressed"), NULL);
    const char *suppressed = fmt("%s", r->str);
    freeReplyObject(r);
    sb_sched_count_t counters[] = {{"late", 2}, {"dlq|bad_event", 1}};
    ck_assert_int_eq(sb_tally_apply(E.t, it, n, counters, 2, now), 0);
    const char *want1 = "cccunn" "ccd" "cdc" "d";
    for (size_t i = 0; i < n; i++) {
        ck_assert_msg(it[i].result == want1[i], "item %zu (%s): '%c', want '%c'", i, it[i].id,
                      it[i].result, want1[i]);
        if (it[i].result == 'c') model_add(&it[i]);
    }
    /* the claimed records hold the claim value now; the others are unchanged */
    r = cmd("GET", key("s:r-fired"), NULL);
    ck_assert_int_eq(r->type, REDIS_REPLY_STRING);
    ck_assert_uint_eq(r->len, claimed_len);
    ck_assert(memcmp(r->str, claimed, r->len) == 0);
    ck_assert_int_eq(r->str[0], SB_REC_ANSWERED);
    freeReplyObject(r);
    r = cmd("PTTL", key("s:r-fired"), NULL);
    ck_assert_int_gt(r->integer, 3500000); /* its lifetime is kept */
    freeReplyObject(r);
    r = cmd("GET", key("s:r-cancelled"), NULL);
    ck_assert_int_eq(r->type, REDIS_REPLY_STRING);
    ck_assert_str_eq(r->str, cancelled);
    freeReplyObject(r);
    r = cmd("GET", key("s:r-suppressed"), NULL);
    ck_assert_str_eq(r->str, suppressed);
    freeReplyObject(r);
    ck_assert_int_eq(num("EXISTS", key("s:r-missing"), NULL), 0);
    r = cmd("GET", key("s:r-pending"), NULL);
    ck_assert_int_eq(r->str[0], SB_REC_ANSWERED);
    freeReplyObject(r);

    ck_assert_int_eq(stat("counted|csat"), 1);
    ck_assert_int_eq(stat("counted|nps"), 1);
    ck_assert_int_eq(stat("counted|ces"), 1);
    ck_assert_int_eq(stat("duplicate"), 1);
    ck_assert_int_eq(stat("dlq|unknown_survey"), 1);
    ck_assert_int_eq(stat("dlq|not_sent"), 2);
    ck_assert_int_eq(stat("requests"), 2);
    ck_assert_int_eq(stat("requests_duplicate"), 1);
    ck_assert_int_eq(stat("kpi_events"), 2);
    ck_assert_int_eq(stat("kpi_duplicate"), 1);
    ck_assert_int_eq(stat("late"), 2);
    ck_assert_int_eq(stat("dlq|bad_event"), 1);
    sb_tally_snapshot_t s;
    check_all(now, "first apply", &s);
    /* by hand, 1h window, slice agent|a: csat 5 (fired), nps 9 (pending) and one request
     * (q-1); all|all also has the ces 2 from 3 h ago only in 24h and longer */
    ck_assert_uint_eq(s.w[0].cells[sb_tally_cell(SL[1], SB_KIND_CSAT, 5)], 1);
    ck_assert_uint_eq(s.w[0].cells[sb_tally_cell(SL[1], SB_KIND_NPS, 9)], 1);
    ck_assert_uint_eq(s.w[0].cells[sb_tally_cell(SL[1], -1, 0)], 1);
    ck_assert_uint_eq(s.w[0].cells[sb_tally_cell(SL[0], SB_KIND_CES, 2)], 0);
    ck_assert_uint_eq(s.w[1].cells[sb_tally_cell(SL[0], SB_KIND_CES, 2)], 1);
    ck_assert_uint_eq(s.w[2].cells[sb_tally_cell(SL[0], -1, 0)], 2);
    sb_metric_value_t v;
    sb_tally_metric(&s.w[0], SL[1], SB_METRIC_FCR, E.cfg, &v);
    ck_assert_uint_eq(v.num, 1); /* k-1 once */
    ck_assert_uint_eq(v.den, 1);
    sb_tally_metric(&s.w[0], SL[0], SB_METRIC_FCR, E.cfg, &v);
    ck_assert_uint_eq(v.num, 1); /* k-1 yes, k-2 no */
    ck_assert_uint_eq(v.den, 2);
    sb_tally_metric(&s.w[0], SL[0], SB_METRIC_ART, E.cfg, &v);
    ck_assert_uint_eq(v.count, 2);
    ck_assert(close_to(v.score, (600.0 + 5.0) / 2)); /* mean of 600 s and 5 s */
    sb_tally_snapshot_free(&s);

    /* the same batch again (a retry after a lost reply): nothing counts twice */
    ck_assert_int_eq(sb_tally_apply(E.t, it, n, NULL, 0, now + MIN), 0);
    const char *want2 = "dddunn" "ddd" "ddd" "d";
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(it[i].result == want2[i], "again: item %zu (%s): '%c', want '%c'", i,
                      it[i].id, it[i].result, want2[i]);
    ck_assert_int_eq(stat("counted|csat"), 1);
    ck_assert_int_eq(stat("duplicate"), 1 + 4);
    ck_assert_int_eq(stat("requests"), 2);
    ck_assert_int_eq(stat("requests_duplicate"), 1 + 3);
    ck_assert_int_eq(stat("kpi_events"), 2);
    ck_assert_int_eq(stat("kpi_duplicate"), 1 + 3);
    r = cmd("GET", key("s:r-cancelled"), NULL);
    ck_assert_str_eq(r->str, cancelled);
    freeReplyObject(r);
    check_all(now + MIN, "second apply", NULL);
    env_close();
}
END_TEST

/* The aggregator's Kafka loop plans a batch before the script of the one ahead of it has
 * run (sb_tally_apply_plan with a sb_tally_batch_t each). Here B shares a response and a
 * request with A and is planned first: A applies, B's script finds those claims taken,
 * B is planned again without them, and nothing counts twice. */
START_TEST(planned_ahead)
{
    env_open("t2b:", "");
    register_slices();
    int64_t now = T0 + 10 * HOUR;
    int64_t sl[2] = {SL[0], SL[2]};
    sb_tally_item_t a[3], b[3];
    a[0] = resp("pa-1", SB_REC_FIRED, now - 5 * MIN, sl, 2, SB_KIND_NPS, 10, NULL);
    a[1] = resp("pa-2", SB_REC_FIRED, now - 5 * MIN, sl, 2, SB_KIND_NPS, 3, NULL);
    a[2] = req("pq-1", now - 9 * MIN, sl, 2);
    b[0] = a[1]; /* the same response, delivered again in the next batch */
    b[1] = req("pq-1", now - 9 * MIN, sl, 2);
    b[2] = resp("pb-3", SB_REC_FIRED, now - 4 * MIN, sl, 1, SB_KIND_CSAT, 4, NULL);
    sb_tally_batch_t *ta = sb_tally_batch_new(), *tb = sb_tally_batch_new();
    sb_tally_apply_plan(E.t, ta, a, 3, NULL, 0, now);
    sb_tally_apply_plan(E.t, tb, b, 3, NULL, 0, now);
    ck_assert_int_eq(sb_tally_apply_send(E.t, ta), 0);
    ck_assert_int_eq(sb_tally_apply_recv(E.t, ta, a, 3, NULL, 0, now), 0);
    ck_assert_int_eq(sb_tally_apply_send(E.t, tb), 0);
    ck_assert_int_eq(sb_tally_apply_recv(E.t, tb, b, 3, NULL, 0, now), 0);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(a[i].result, 'c');
        model_add(&a[i]);
    }
    ck_assert_int_eq(b[0].result, 'd');
    ck_assert_int_eq(b[1].result, 'd');
    ck_assert_int_eq(b[2].result, 'c');
    model_add(&b[2]);
    ck_assert_int_eq(stat("counted|nps"), 2);
    ck_assert_int_eq(stat("counted|csat"), 1);
    ck_assert_int_eq(stat("duplicate"), 1);
    ck_assert_int_eq(stat("requests"), 1);
    ck_assert_int_eq(stat("requests_duplicate"), 1);
    check_all(now, "planned ahead", NULL);
    sb_tally_batch_free(ta);
    sb_tally_batch_free(tb);
    env_close();
}
END_TEST

/* ---------------------------------------------------------------- 3. late */

START_TEST(late_within_lateness)
{
    env_open("t3:", "");
    register_slices();
    int64_t all[1] = {SL[0]};
    int64_t t1 = T0 + 3 * HOUR;
    sb_tally_item_t it[6];
    it[0] = resp("a", SB_REC_FIRED, t1 - 10 * MIN, all, 1, SB_KIND_CSAT, 4, NULL);
    apply(it, 1, t1, "c");
    check_all(t1, "t1", NULL);

    /* 5 min later the 1h window starts at t1 - 54 min: its watermark has passed the bucket
     * of t1 - 58 min, which is still within the lateness (10 min) */
    int64_t t2 = t1 + 5 * MIN;
    check_all(t2, "t2 before", NULL);
    ck_assert_int_eq(num("HGET", key("wm"), fmt("%lld", (long long)HOUR), NULL), t2 - 59 * MIN);
    it[0] = resp("b", SB_REC_FIRED, t1 - 58 * MIN, all, 1, SB_KIND_CSAT, 2, NULL);
    it[1] = kpi("kb", t1 - 58 * MIN, all, 1, 30000, -1, 1, 1);
    /* and behind the 24h window (which starts at T0 - 20 h) by one hour, not the 7d one */
    it[2] = resp("c", SB_REC_FIRED, t2 - 24 * HOUR - 3 * MIN, all, 1, SB_KIND_CSAT, 1, NULL);
    it[3] = req("qc", t2 - 24 * HOUR - 3 * MIN, all, 1);
    it[4] = resp("d", SB_REC_FIRED, t2 - MIN, all, 1, SB_KIND_CSAT, 5, NULL);
    apply(it, 5, t2, "ccccc");
    sb_tally_snapshot_t s;
    check_all(t2, "t2 after", &s);
    /* by hand: 1h holds a and d (csat 4 and 5); 24h adds b and kb; 7d and 30d add c, qc */
    sb_metric_value_t v;
    uint64_t want_csat[4] = {2, 3, 4, 4};
    uint64_t want_kpi[4] = {0, 1, 1, 1};
    uint64_t want_sent[4] = {0, 0, 1, 1};
    for (int k = 0; k < 4; k++) {
        sb_tally_metric(&s.w[k], SL[0], SB_METRIC_CSAT, E.cfg, &v);
        ck_assert_uint_eq(v.count, want_csat[k]);
        sb_tally_metric(&s.w[k], SL[0], SB_METRIC_FRT, E.cfg, &v);
        ck_assert_uint_eq(v.count, want_kpi[k]);
        sb_tally_metric(&s.w[k], SL[0], SB_METRIC_RESPONSE_RATE, E.cfg, &v);
        ck_assert_uint_eq(v.den, want_sent[k]);
    }
    sb_tally_snapshot_free(&s);
    /* the later windows let them go when they leave, by subtraction and by rebuild */
    read_path(t2 + HOUR, "....", "t2+1h");
    read_path(t2 + 23 * HOUR, "rrr.", "t2+23h");
    read_path(t2 + 24 * HOUR, "....", "t2+24h");
    read_path(t2 + 7 * DAY, "rrrr", "t2+7d");
    env_close();
}
END_TEST

/* A future-dated item (within the lateness): the aggregator clamps such times to its now
 * before applying (ingest.c place_time), but the API takes them. Read before its bucket
 * starts, the running totals already hold it (an item at or after the watermark adds to
 * them, tally.h), which the window definition does not: that moment is left unchecked.
 * Checked: from the read that reaches its bucket on, it counts exactly once, moved by
 * subtraction and by rebuild. */
START_TEST(future_within_lateness)
{
    env_open("t3f:", "");
    register_slices();
    int64_t all[1] = {SL[0]};
    int64_t now = T0 + 3 * HOUR + 30 * SEC;
    sb_tally_item_t it[1];
    it[0] = resp("f", SB_REC_FIRED, now + 5 * MIN, all, 1, SB_KIND_NPS, 10, NULL);
    ck_assert_int_eq(sb_tally_apply(E.t, it, 1, NULL, 0, now), 0);
    ck_assert_int_eq(it[0].result, 'c');
    sb_tally_snapshot_t s;
    ck_assert_int_eq(sb_tally_read(E.t, now, NULL, 0, &s), 1);
    sb_tally_snapshot_free(&s);
    model_add(&it[0]);
    check_all(now + 5 * MIN, "future bucket reached", NULL);
    check_all(now + 30 * MIN, "future +30m", NULL);
    read_path(now + 80 * MIN, "....", "future +80m");
    read_path(now + 2 * DAY, "rrrr", "future +2d");
    env_close();
}
END_TEST

/* Two instances whose clocks differ by 20 min. The one behind plans its batch with the
 * watermarks its own clock gives, the script finds the windows further on (the other
 * instance moved them) and the batch is planned again with the real ones: what is behind
 * the 1h window's watermark counts only in the longer windows, exactly once. */
START_TEST(skewed_clocks)
{
    env_open("t3s:", "");
    register_slices();
    int64_t all[1] = {SL[0]};
    int64_t ahead = T0 + 3 * HOUR + 20 * MIN, behind = T0 + 3 * HOUR;
    sb_tally_item_t it[2];
    it[0] = resp("x", SB_REC_FIRED, ahead - MIN, all, 1, SB_KIND_CSAT, 4, NULL);
    apply(it, 1, ahead, "c");
    /* the 1h window now starts at ahead - 59 min = T0 + 2h21m */
    ck_assert_int_eq(num("HGET", key("wm"), fmt("%lld", (long long)HOUR), NULL),
                     T0 + 2 * HOUR + 21 * MIN);
    sb_tally_t *t2 = sb_tally_new(E.st, E.cfg);
    /* T0 + 2h10m: in the 1h window as of `behind`, but behind the watermark; T0 + 2h55m: in */
    it[0] = resp("y", SB_REC_FIRED, behind - 50 * MIN, all, 1, SB_KIND_CSAT, 2, NULL);
    it[1] = resp("z", SB_REC_FIRED, behind - 5 * MIN, all, 1, SB_KIND_CSAT, 5, NULL);
    ck_assert_int_eq(sb_tally_apply(t2, it, 2, NULL, 0, behind), 0);
    ck_assert_int_eq(it[0].result, 'c');
    ck_assert_int_eq(it[1].result, 'c');
    model_add(&it[0]);
    model_add(&it[1]);
    sb_tally_free(t2);
    sb_tally_snapshot_t s;
    check_all(ahead, "skewed", &s);
    /* by hand: 1h holds x and z (2 responses), 24h also y (3) */
    sb_metric_value_t v;
    sb_tally_metric(&s.w[0], SL[0], SB_METRIC_CSAT, E.cfg, &v);
    ck_assert_uint_eq(v.count, 2);
    sb_tally_metric(&s.w[1], SL[0], SB_METRIC_CSAT, E.cfg, &v);
    ck_assert_uint_eq(v.count, 3);
    sb_tally_snapshot_free(&s);
    read_path(ahead + 2 * HOUR, "r...", "skewed +2h"); /* 1h: 2 h behind, rebuilt */
    env_close();
}
END_TEST

/* ---------------------------------------------------------------- 4. alerts */

START_TEST(alerts_outbox)
{
    env_open("t4:", "");
    register_slices();
    int64_t sl[1] = {SL[0]};
    int64_t now = T0 + HOUR;
    const char *alertq = key("alertq");
    sb_tally_item_t it[4];
    it[0] = resp("al-1", SB_REC_FIRED, now - MIN, sl, 1, SB_KIND_NPS, 2, "{\"alert\":1}");
    it[1] = resp("al-2", SB_REC_FIRED, now - MIN, sl, 1, SB_KIND_NPS, 9, NULL);
    it[2] = resp("al-missing", 0, now - MIN, sl, 1, SB_KIND_NPS, 0, "{\"alert\":\"missing\"}");
    it[3] = resp("al-x", SB_REC_CANCELLED, now - MIN, sl, 1, SB_KIND_NPS, 0, "{\"alert\":\"x\"}");
    apply(it, 4, now, "ccun");
    ck_assert_int_eq(num("ZCARD", alertq, NULL), 1);
    ck_assert_int_eq(num("ZSCORE", alertq, "{\"alert\":1}", NULL), now);

    char *out[4] = {0};
    ck_assert_int_eq(sb_tally_alerts_stale(E.t, now, out, 4), 0); /* enqueued at now: not before */
    ck_assert_int_eq(sb_tally_alerts_stale(E.t, now + 1, out, 4), 1);
    ck_assert_str_eq(out[0], "{\"alert\":1}");
    free(out[0]);

    /* the duplicate brings its alert again: nothing is added */
    it[0].alert = "{\"alert\":\"dup\"}";
    apply(it, 1, now + 2 * SEC, "d");
    ck_assert_int_eq(num("ZCARD", alertq, NULL), 1);

    /* more alerts later, and max */
    it[0] = resp("al-3", SB_REC_FIRED, now, sl, 1, SB_KIND_CSAT, 1, "{\"alert\":3}");
    it[1] = resp("al-4", SB_REC_FIRED, now, sl, 1, SB_KIND_CSAT, 2, "{\"alert\":4}");
    apply(it, 2, now + 10 * SEC, "cc");
    ck_assert_int_eq(num("ZCARD", alertq, NULL), 3);
    ck_assert_int_eq(sb_tally_alerts_stale(E.t, now + 10 * SEC, out, 4), 1); /* only the old */
    free(out[0]);
    ck_assert_int_eq(sb_tally_alerts_stale(E.t, now + 11 * SEC, out, 2), 2); /* max 2, oldest */
    ck_assert_str_eq(out[0], "{\"alert\":1}");
    ck_assert(!strcmp(out[1], "{\"alert\":3}") || !strcmp(out[1], "{\"alert\":4}"));
    free(out[0]), free(out[1]);

    const char *done[] = {"{\"alert\":1}", "{\"alert\":3}", "{\"alert\":nope}"};
    ck_assert_int_eq(sb_tally_alerts_done(E.t, done, 3), 0);
    ck_assert_int_eq(sb_tally_alerts_done(E.t, done, 0), 0);
    ck_assert_int_eq(num("ZCARD", alertq, NULL), 1);
    ck_assert_int_eq(sb_tally_alerts_stale(E.t, now + DAY, out, 4), 1);
    ck_assert_str_eq(out[0], "{\"alert\":4}");
    free(out[0]);
    const char *done2[] = {"{\"alert\":4}"};
    ck_assert_int_eq(sb_tally_alerts_done(E.t, done2, 1), 0);
    ck_assert_int_eq(sb_tally_alerts_stale(E.t, now + DAY, out, 4), 0);
    /* a backlog's worth at once (removed in several commands): all of them, no other */
    enum { MANY = 1201 };
    static char many[MANY][32];
    const char *mp[MANY];
    for (int i = 0; i < MANY; i++) {
        snprintf(many[i], sizeof many[i], "{\"alert\":\"m%d\"}", i);
        mp[i] = many[i];
        ck_assert_int_eq(num("ZADD", alertq, "1", many[i], NULL), 1);
    }
    ck_assert_int_eq(sb_tally_alerts_done(E.t, mp, MANY - 1), 0);
    ck_assert_int_eq(num("ZCARD", alertq, NULL), 1);
    ck_assert_int_eq(num("ZSCORE", alertq, many[MANY - 1], NULL), 1);
    ck_assert_int_eq(sb_tally_alerts_done(E.t, mp + MANY - 1, 1), 0);
    check_all(now + 10 * SEC, "alerts", NULL);
    env_close();
}
END_TEST

/* ---------------------------------------------------------------- 5. lease */

static void msleep(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

START_TEST(leader_lease)
{
    env_open("t5:", "");
    register_slices();
    int64_t sl[1] = {SL[0]};
    sb_tally_item_t it[1];
    it[0] = resp("l-1", SB_REC_FIRED, T0 - MIN, sl, 1, SB_KIND_NPS, 10, NULL);
    apply(it, 1, T0, "c");
    sb_tally_snapshot_t s;
    ck_assert_int_eq(sb_tally_read(E.t, T0, "A", 300, &s), 1);
    ck_assert(s.lease_taken); /* the lease was free */
    ck_assert_uint_eq(s.n, 4);
    ck_assert_uint_eq(s.w[0].cells[sb_tally_cell(SL[0], SB_KIND_NPS, 10)], 1);
    sb_tally_snapshot_free(&s);
    redisReply *r = cmd("GET", key("leader"), NULL);
    ck_assert_str_eq(r->str, "A");
    freeReplyObject(r);
    long long pttl = num("PTTL", key("leader"), NULL);
    ck_assert(pttl > 0 && pttl <= 300);

    ck_assert_int_eq(sb_tally_read(E.t, T0, "B", 300, &s), 0);
    ck_assert_uint_eq(s.n, 0);
    sb_tally_snapshot_free(&s);
    /* A renews; no token reads regardless */
    ck_assert_int_eq(sb_tally_read(E.t, T0 + MIN, "A", 300, &s), 1);
    ck_assert(!s.lease_taken); /* renewed */
    sb_tally_snapshot_free(&s);
    ck_assert_int_eq(sb_tally_read(E.t, T0 + MIN, "", 300, &s), 1);
    ck_assert(!s.lease_taken);
    sb_tally_snapshot_free(&s);
    ck_assert_int_eq(sb_tally_read(E.t, T0 + MIN, NULL, 0, &s), 1);
    sb_tally_snapshot_free(&s);
    msleep(150);
    ck_assert_int_eq(sb_tally_read(E.t, T0 + MIN, "B", 300, &s), 0); /* A renewed 150 ms ago */
    sb_tally_snapshot_free(&s);

    msleep(400);
    ck_assert_int_eq(sb_tally_read(E.t, T0 + 2 * MIN, "B", 300, &s), 1);
    ck_assert(s.lease_taken); /* A's ran out */
    ck_assert_uint_eq(s.w[0].cells[sb_tally_cell(SL[0], SB_KIND_NPS, 10)], 1);
    sb_tally_snapshot_free(&s);
    r = cmd("GET", key("leader"), NULL);
    ck_assert_str_eq(r->str, "B");
    freeReplyObject(r);
    ck_assert_int_eq(sb_tally_read(E.t, T0 + 2 * MIN, "A", 300, &s), 0);
    sb_tally_snapshot_free(&s);
    env_close();
}
END_TEST

/* ---------------------------------------------------------------- 6. slices */

START_TEST(slice_registry_cap)
{
    env_open("t6:", ",\"max_dimension_values\":2");
    ck_assert_int_eq(E.cfg->max_dimension_values, 2);
    const char *names[] = {"agent|a", "agent|b", "agent|c"};
    int64_t ids[3] = {0};
    bool capped[3] = {true, true, false};
    ck_assert_int_eq(sb_tally_slices(E.t, names, 3, ids, capped), 0);
    ck_assert(!capped[0] && !capped[1] && capped[2]);
    long long other = num("HGET", key("slices"), "agent|_other", NULL);
    ck_assert_int_gt(other, 0);
    ck_assert_int_eq(ids[2], other);
    ck_assert_int_ne(ids[0], ids[1]);
    ck_assert_int_ne(ids[0], other);
    ck_assert_int_ne(ids[1], other);
    ck_assert_int_eq(num("HGET", key("slices"), "agent|a", NULL), ids[0]);
    ck_assert_int_eq(num("HGET", key("slices"), "agent|b", NULL), ids[1]);
    ck_assert_int_eq(num("HEXISTS", key("slices"), "agent|c", NULL), 0);
    ck_assert_int_eq(num("HGET", key("slicen"), "agent", NULL), 2);
    ck_assert_str_eq(sb_tally_slice_name(E.t, ids[0]), "agent|a");
    ck_assert_str_eq(sb_tally_slice_name(E.t, other), "agent|_other");
    ck_assert_ptr_null(sb_tally_slice_name(E.t, 9999));

    /* another dimension has its own cap; _other itself is never capped */
    const char *more[] = {"team|x", "agent|d", "agent|_other", "agent|a"};
    int64_t mids[4];
    bool mcap[4];
    ck_assert_int_eq(sb_tally_slices(E.t, more, 4, mids, mcap), 0);
    ck_assert(!mcap[0] && mcap[1] && !mcap[2] && !mcap[3]);
    ck_assert_int_eq(mids[1], other);
    ck_assert_int_eq(mids[2], other);
    ck_assert_int_eq(mids[3], ids[0]);

    /* a second instance (empty cache) resolves the same ids */
    sb_tally_t *t2 = sb_tally_new(E.st, E.cfg);
    int64_t ids2[3];
    bool capped2[3];
    ck_assert_int_eq(sb_tally_slices(t2, names, 3, ids2, capped2), 0);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(ids2[i], ids[i]);
        ck_assert_int_eq(capped2[i], capped[i]);
    }
    int64_t mids2[4];
    ck_assert_int_eq(sb_tally_slices(t2, more, 4, mids2, NULL), 0);
    for (int i = 0; i < 4; i++) ck_assert_int_eq(mids2[i], mids[i]);
    ck_assert_str_eq(sb_tally_slice_name(t2, mids[0]), "team|x");
    ck_assert_int_eq(num("HGET", key("slicen"), "#", NULL), 4); /* a, b, _other, x */
    sb_tally_free(t2);
    env_close();
}
END_TEST

int main(void)
{
    Suite *su = suite_create("tally");
    TCase *tc = tcase_create("redis");
    tcase_add_unchecked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, windows_match_brute_force);
    tcase_add_test(tc, exactly_once);
    tcase_add_test(tc, planned_ahead);
    tcase_add_test(tc, late_within_lateness);
    tcase_add_test(tc, future_within_lateness);
    tcase_add_test(tc, skewed_clocks);
    tcase_add_test(tc, alerts_outbox);
    tcase_add_test(tc, leader_lease);
    tcase_add_test(tc, slice_registry_cap);
    suite_add_tcase(su, tc);
    return sb_h_run_suite(su, false);
}
