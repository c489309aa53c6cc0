/* The aggregator's counters in Redis: score histograms, requests sent and service KPIs per
 * slice (dimension value), in event-time buckets and in running window totals, updated
 * exactly once per response / request / interaction by one atomic script per batch, and
 * read back in one call by the publisher, surveybusctl and the web service.
 *
 * Keys (P = redis.prefix):
 *  P"slices"  hash "dim|value" -> slice id (1, 2, ...), the registry
 *  P"slicen"  hash dim -> values registered (the per-dimension cap), "#" -> last id
 *  P"hb:"<B>":"<start>  bucket of width B ms: a string of u32 cells (BITFIELD), per slice
 *                       SB_TALLY_CELLS of them: csat 0..10, ces 0..10, nps 0..10, sent
 *  P"kb:"<B>":"<start>  the bucket's KPI hash: "<slice>:<field>" -> integer
 *  P"hw:"<W>, P"kw:"<W>  the same for the whole window W ms (running totals)
 *  P"wm"      hash W -> the oldest bucket start the window's totals hold (its watermark)
 *  P"rq:"<survey id>  "request counted" markers; P"ke:"<day start> hash of KPI event ids
 *  P"alertq"  sorted set of alerts not yet confirmed published (outbox), scored by time
 *  P"leader"  the publishing instance's token (lease)
 *  P"shown"   hash "<slice id>|<window name>" -> one character per metric: which updates
 *             the publisher last sent with a value (sb_tally_shown_save)
 *  P"stats:aggregator"  counters
 * A window's totals change in two ways only: an item whose bucket is at or after the
 * watermark adds to them, and moving the watermark forward subtracts the buckets that
 * left, so a read costs one GET per window whatever its length. When the watermark falls
 * far behind (no instance ran for more than a bucket and an hour, so buckets may have
 * expired) the totals are rebuilt from the buckets still in the window instead. */
#ifndef SB_TALLY_H
#define SB_TALLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "metric.h"
#include "schedule.h"
#include "stats.h"
#include "store.h"
#include "window.h"

#define SB_TALLY_CELLS 34 /* per slice: 3 kinds x 11 scores, then requests sent */
#define SB_TALLY_SENT 33
#define SB_TALLY_OTHER "_other" /* the value that collects a dimension's values past the cap */

/* Cell of (slice, kind, score) or of the slice's sent counter (kind -1). */
static inline int64_t sb_tally_cell(int64_t slice, int kind, int score)
{
    return slice * SB_TALLY_CELLS + (kind < 0 ? SB_TALLY_SENT : kind * 11 + score);
}

typedef struct sb_tally sb_tally_t;

/* Borrows store and cfg. Never NULL (aborts on OOM). */
sb_tally_t *sb_tally_new(sb_store_t *store, const sb_config_t *cfg);
void sb_tally_free(sb_tally_t *t);

/* Slice ids of names "dim|value" (n of them): from the local cache, else registered in one
 * script call. A value past cfg->max_dimension_values distinct ones in its dimension gets
 * the id of "dim|_other" and capped[i] (may be NULL) is set. Returns 0 or -1 (Redis). */
int sb_tally_slices(sb_tally_t *t, const char *const *names, size_t n, int64_t *ids,
                    bool *capped);
/* The same, registering through via (a connection to the same Redis), for a caller whose
 * own connection waits on a script sent with sb_tally_apply_send. */
int sb_tally_slices_via(sb_tally_t *t, sb_store_t *via, const char *const *names, size_t n,
                        int64_t *ids, bool *capped);

/* "dim|value" of a slice id, refreshing the registry from Redis when the id is unknown.
 * Returns a borrowed string, or NULL when the id is not registered or Redis failed. */
const char *sb_tally_slice_name(sb_tally_t *t, int64_t id);

enum { SB_TALLY_RESPONSE = 'r', SB_TALLY_REQUEST = 'q', SB_TALLY_KPI = 'k' };

/* One thing to count. The slices are the dimension values the item is attributed to. */
typedef struct sb_tally_item {
    char type;
    const char *id; /* survey id (response, request) or event id (KPI) */
    int64_t ts_ms;  /* event time: answered, issued, occurred; at most the now_ms of the
                     * apply call (the aggregator clamps times ahead of its clock): a later
                     * one counts in a window before its bucket does, and a rebuild of the
                     * totals leaves it out */
    int64_t slices[SB_DIM__N];
    size_t n_slices;
    /* response: kind and score, and the alert to put in the outbox when it counts (NULL:
     * none) */
    sb_kind_t kind;
    int score;
    const char *alert;
    /* KPI: whole-second bucket keys and millisecond values (has_* false when absent);
     * fcr / transferred: 1 yes, 0 no, -1 unknown */
    bool has_frt, has_art;
    int64_t frt_key, frt_ms, art_key, art_ms;
    int64_t day_ms; /* KPI: the UTC day (start ms) whose id set deduplicates the event */
    int fcr, transferred;
    /* out: 'c' counted, 'd' duplicate (already counted), 'u' unknown survey (its record is
     * gone), 'n' not answerable (cancelled or suppressed: never sent) */
    char result;
} sb_tally_item_t;

/* Counts a batch atomically: responses are claimed (the record's first byte, its state,
 * becomes 'a', once; the rest of the record and its lifetime stay as they are),
 * requests and KPI events are deduplicated by id, and only what is new adds to its buckets
 * and windows; counters[] are added to P"stats:aggregator" in the same call, together with
 * the batch's own (counted|<kind>, duplicate, requests, kpi_events, ...). Alerts of
 * counted responses enter P"alertq". An item repeated in the batch (same type and id) is
 * a duplicate of its first occurrence. Returns 0 (every items[i].result set), or -1 when
 * Redis failed: nothing or everything was applied, and applying the same batch again is
 * harmless.
 *
 * Cost: the additions are merged in C (sb_tally_plan) and the script claims each item with
 * one command, then adds the merged sums with one command per key. It does so only when
 * every claim is new and the windows' watermarks are the ones planned with; otherwise it
 * undoes its claims and the batch is planned again with what it reported (a batch with
 * duplicates from a redelivery costs two calls). */
int sb_tally_apply(sb_tally_t *t, sb_tally_item_t *items, size_t n,
                   const sb_sched_count_t *counters, size_t n_counters, int64_t now_ms);

/* sb_tally_apply in parts, so that the caller can work while Redis runs the script, and
 * even plan the next batch meanwhile: each batch in flight has its own sb_tally_batch_t.
 * _plan plans the batch into tb (no I/O); _send sends its script without waiting (0, or -1:
 * nothing sent); _recv takes its answer and, when it did not apply (a claim already made,
 * moved watermarks, the script not loaded), finishes the batch with the synchronous
 * attempts. _recv returns what sb_tally_apply returns. Between _send and _recv no other
 * command may use the store, and from _plan to _recv the items and counters must stay as
 * they are. A batch planned before the previous one applied is planned with what was known
 * then; the script refuses it if that was stale, and _recv plans it again. */
typedef struct sb_tally_batch sb_tally_batch_t;
sb_tally_batch_t *sb_tally_batch_new(void); /* never NULL (aborts on OOM) */
void sb_tally_batch_free(sb_tally_batch_t *tb);
void sb_tally_apply_plan(sb_tally_t *t, sb_tally_batch_t *tb, sb_tally_item_t *items, size_t n,
                         const sb_sched_count_t *counters, size_t n_counters, int64_t now_ms);
int sb_tally_apply_send(sb_tally_t *t, sb_tally_batch_t *tb);
int sb_tally_apply_recv(sb_tally_t *t, sb_tally_batch_t *tb, sb_tally_item_t *items, size_t n,
                        const sb_sched_count_t *counters, size_t n_counters, int64_t now_ms);

/* ---- planning a batch (pure, no I/O; sb_tally_apply uses it) ---- */

/* What one addition of a batch adds to: a score cell (SB_TALLY_OP_CELL, cell index a), or a
 * KPI field of slice a (b: the distribution key of the *_KEY fields). */
enum {
    SB_TALLY_OP_FRT_N, SB_TALLY_OP_FRT_SUM, SB_TALLY_OP_FRT_KEY,
    SB_TALLY_OP_ART_N, SB_TALLY_OP_ART_SUM, SB_TALLY_OP_ART_KEY,
    SB_TALLY_OP_FCR_N, SB_TALLY_OP_FCR_YES, SB_TALLY_OP_TR_N, SB_TALLY_OP_TR_YES,
    SB_TALLY_OP_CELL
};

typedef struct sb_tally_op {
    char target;   /* 'w' a window's running totals, 'b' a bucket */
    int64_t width; /* the window's length ('w') or the bucket's width ('b'), ms */
    int64_t start; /* the bucket's start ('b'); 0 for 'w' */
    int code;      /* SB_TALLY_OP_* */
    int64_t a, b;
    int64_t delta; /* never 0 */
} sb_tally_op_t;

/* The additions of the items i with use[i] (use NULL: all), when window k's totals hold the
 * buckets from wm[k] on: an item adds to window k when its bucket of that window's width
 * starts at or after wm[k], and then to that bucket too (a bucket shared by two windows
 * gets the item once). Equal targets are merged, zero sums dropped, and the result sorted
 * by (target, width, start, cells before KPI fields, a, code, b). Returns the count and
 * *out (malloc'd, the caller frees). */
size_t sb_tally_plan(const sb_config_t *cfg, const int64_t *wm, const sb_tally_item_t *items,
                     const bool *use, size_t n, sb_tally_op_t **out);

/* The op's BITFIELD offset ("#<cell>") or KPI hash field ("<slice>:fn", "<slice>:f:<key>",
 * ...; see sb_tally_kpi_field). Returns snprintf's count, or -1 for an unknown code. */
int sb_tally_op_field(const sb_tally_op_t *op, char *buf, size_t len);

/* Removes published alerts from the outbox (a command per 500). Returns 0, or -1 when a
 * command failed (some may have been removed). */
int sb_tally_alerts_done(sb_tally_t *t, const char *const *alerts, size_t n);
/* Lists up to max alerts enqueued before before_ms (their instance died before publishing
 * them). Returns the count (strings the caller frees) or -1. */
int sb_tally_alerts_stale(sb_tally_t *t, int64_t before_ms, char **out, size_t max);

/* One KPI distribution of a slice (frt or art). */
typedef struct sb_tally_dist {
    uint64_t n;
    int64_t sum_ms;
    int64_t *keys;
    uint64_t *counts;
    size_t n_keys, cap;
} sb_tally_dist_t;

typedef struct sb_tally_kpi {
    int64_t slice;
    sb_tally_dist_t frt, art;
    uint64_t fcr_n, fcr_yes, tr_n, tr_yes;
} sb_tally_kpi_t;

/* One window's totals as of a read. */
typedef struct sb_tally_window {
    int64_t window_ms, first_ms; /* the window's buckets start at first_ms */
    uint32_t *cells;             /* index sb_tally_cell() */
    size_t n_cells;
    sb_tally_kpi_t *kpi; /* sorted by slice */
    size_t n_kpi;
} sb_tally_window_t;

typedef struct sb_tally_snapshot {
    int64_t as_of_ms;
    /* the lease was free (run out, handed over, or lost with Redis' data) and this read took
     * it: another instance may have published since this token last held it */
    bool lease_taken;
    size_t n;
    sb_tally_window_t w[SB_WINDOW_MAX];
} sb_tally_snapshot_t;

/* Moves every window forward to now_ms and reads the totals. With a non-empty leader
 * token, it first takes or renews the publisher lease (lease_ms) and reads only when the
 * lease is this token's. Returns 1 read, 0 another instance holds the lease, -1 error. */
int sb_tally_read(sb_tally_t *t, int64_t now_ms, const char *leader, int64_t lease_ms,
                  sb_tally_snapshot_t *out);
void sb_tally_snapshot_free(sb_tally_snapshot_t *s);
/* Gives up the publisher lease if token holds it (a stopping leader). Returns 0 or -1. */
int sb_tally_release_lease(sb_tally_t *t, const char *token);

/* What the publisher has shown. A retained MQTT value stays until something replaces it,
 * so a publisher must send the empty update of a slice that empties; one newly elected
 * cannot tell from its own memory what its predecessor sent. The publisher therefore keeps,
 * per (slice, window), one character per metric in sb_metric_t order: '1' when the last
 * update it sent had a value, '0' otherwise. sb_tally_shown_save writes rows (a row whose
 * flags are all '0' is deleted) in one round trip; sb_tally_shown_load calls fn for every
 * row stored. Both return 0, or -1 when Redis failed. */
typedef struct sb_tally_shown_row {
    char key[64]; /* "<slice id>|<window name>" */
    char flags[SB_METRIC__N + 1];
} sb_tally_shown_row_t;
typedef void (*sb_tally_shown_fn)(void *opaque, int64_t slice, const char *window,
                                  const char *flags);
int sb_tally_shown_load(sb_tally_t *t, sb_tally_shown_fn fn, void *opaque);
int sb_tally_shown_save(sb_tally_t *t, const sb_tally_shown_row_t *rows, size_t n);

/* ---- pure helpers (no I/O) ---- */

/* Parses a KPI totals hash reply's fields into per-slice distributions (appending to
 * *kpi, sorted by slice at the end). Field names: "<slice>:fn" / ":fs" / ":f:<key>", the
 * same with 'a' for art, ":cn" ":c1" (first-contact resolution known / yes), ":tn" ":t1"
 * (transfers known / more than zero). Unknown fields are ignored. Returns 0 or -1 (OOM). */
int sb_tally_kpi_field(sb_tally_kpi_t **kpi, size_t *n, size_t *cap, const char *field,
                       int64_t value);
void sb_tally_kpi_sort(sb_tally_kpi_t *kpi, size_t n);

/* Whether a slice has anything in a window (a response, a request or a KPI). */
bool sb_tally_slice_active(const sb_tally_window_t *w, int64_t slice);

/* The value of metric m for a slice in a window (config gives the scales). */
void sb_tally_metric(const sb_tally_window_t *w, int64_t slice, sb_metric_t m,
                     const sb_config_t *cfg, sb_metric_value_t *out);

/* The slice names of an item's dimension values: "all|all" then "dim|value" for each
 * configured dimension whose value is non-empty. vals is indexed by sb_dim_t. Writes at
 * most SB_DIM__N names of up to SB_TALLY_NAME_MAX bytes; returns the count. */
#define SB_TALLY_NAME_MAX (2 * SB_STR_MAX + 2)
size_t sb_tally_slice_names(const sb_config_t *cfg, const char (*vals)[SB_STR_MAX + 1],
                            char (*names)[SB_TALLY_NAME_MAX]);

#endif
