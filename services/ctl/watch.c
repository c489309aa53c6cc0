/* surveybusctl watch: a live view that fits 80 columns and 24 lines. It shows NPS, CSAT, CES
 * and the response rate of everything in each window (the first four), with counts and
 * intervals, and the five highest and five lowest values of one dimension by one metric over
 * one window, plus the aggregator's counters. It refreshes every second until q, SIGINT or
 * SIGTERM, or a given number of refreshes. On a terminal it redraws in place and reads keys;
 * into a pipe it prints each refresh in turn, with a blank line between them. */
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "ctl.h"
#include "util.h"

/* The screen: header, blank, the all block (a row of window names and two lines per metric),
 * blank, the dimension's title and its top and bottom rows: 23 lines. Terminals get a 24th,
 * the key hint, with no newline after it so that the screen does not scroll. */
#define SCREEN_COLS 80
#define LABEL_W 13 /* "response_rate": the all block's first column, then two blanks */
#define CELL_W 16  /* a window's column in the all block: up to 15 columns of text, a blank */
#define ALL_WINDOWS 4
#define RANK_LABEL_W 8 /* "bottom 5" */
#define VALUE_W 20     /* a dimension value; a longer one is cut, ending in "…" */
#define SCORE_W 7      /* "-100.00" */
#define COUNT_W 8      /* "(999999)" */
#define RANKED 5

static const sb_metric_t all_metrics[] = {SB_METRIC_NPS, SB_METRIC_CSAT, SB_METRIC_CES,
                                          SB_METRIC_RESPONSE_RATE};

typedef struct watch {
    const sb_config_t *cfg;
    sb_store_t *store;
    sb_tally_t *tally;
    const char *dimension; /* ranked: a static sb_dim_names entry */
    sb_metric_t metric;    /* ranked by */
    size_t window;         /* ranked over: a snapshot index */
    uint64_t min_count;    /* ranked: values with at least this count */
    size_t n_all;          /* windows in the all block: the first up to ALL_WINDOWS */
    bool tty;              /* stdout is a terminal: redraw in place */
    bool keys;             /* stdin is read for keys (a terminal too) */
    bool raw;              /* stdin is in non-canonical, no-echo mode: saved holds its own */
    struct termios saved;
} watch_t;

/* ---------------------------------------------------------------- text in columns */

/* Decodes the UTF-8 sequence at s into *cp and returns its length. An invalid or cut sequence
 * (also an overlong one, a surrogate) reads as one byte, *cp = '?'. Never reads past a NUL. */
static size_t utf8_next(const char *s, uint32_t *cp)
{
    static const uint32_t least[] = {0, 0, 0x80, 0x800, 0x10000};
    const unsigned char *u = (const unsigned char *)s;
    size_t n = u[0] < 0x80                   ? 1
               : u[0] >= 0xC2 && u[0] < 0xE0 ? 2
               : u[0] >= 0xE0 && u[0] < 0xF0 ? 3
               : u[0] >= 0xF0 && u[0] < 0xF5 ? 4
                                             : 0;
    uint32_t c = n == 1 ? u[0] : u[0] & (0x7Fu >> n);
    for (size_t i = 1; i < n; i++) {
        if ((u[i] & 0xC0) != 0x80) {
            n = 0;
            break;
        }
        c = c << 6 | (u[i] & 0x3Fu);
    }
    if (n == 0 || c < least[n] || (c >= 0xD800 && c <= 0xDFFF) || c > 0x10FFFF) {
        *cp = '?';
        return 1;
    }
    *cp = c;
    return n;
}

/* Writes c as UTF-8 at out (room for 4 bytes); returns the length. */
static size_t utf8_put(uint32_t c, char *out)
{
    if (c < 0x80) {
        out[0] = (char)c;
        return 1;
    }
    size_t n = c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
    for (size_t i = n - 1; i > 0; i--, c >>= 6)
        out[i] = (char)(0x80 | (c & 0x3F));
    out[0] = (char)((n == 2 ? 0xC0 : n == 3 ? 0xE0 : 0xF0) | c);
    return n;
}

/* Control characters (C0, DEL, C1) are shown as '?': a value must not move the cursor. */
static uint32_t printable(uint32_t c)
{
    return c < 0x20 || (c >= 0x7F && c < 0xA0) ? '?' : c;
}

/* Columns a terminal gives c, without asking the locale: 0 for combining and zero-width
 * marks, 2 for East Asian wide and fullwidth characters and the common emoji, else 1. */
static size_t width(uint32_t c)
{
    if ((c >= 0x300 && c <= 0x36F) || (c >= 0x200B && c <= 0x200F) || (c >= 0xFE00 && c <= 0xFE0F))
        return 0;
    if ((c >= 0x1100 && c <= 0x115F) || (c >= 0x2E80 && c <= 0xA4CF && c != 0x303F) ||
        (c >= 0xAC00 && c <= 0xD7A3) || (c >= 0xF900 && c <= 0xFAFF) ||
        (c >= 0xFE30 && c <= 0xFE4F) || (c >= 0xFF00 && c <= 0xFF60) ||
        (c >= 0xFFE0 && c <= 0xFFE6) || (c >= 0x1F300 && c <= 0x1F64F) ||
        (c >= 0x1F900 && c <= 0x1F9FF) || (c >= 0x20000 && c <= 0x3FFFD))
        return 2;
    return 1;
}

/* Copies src to dst (len bytes, at least 8) with controls and invalid bytes made '?', cut to
 * at most max columns: a longer text keeps what fits in max - 1 columns and ends in "…".
 * Returns the columns written. */
static size_t fit(char *dst, size_t len, const char *src, size_t max)
{
    size_t total = 0;
    uint32_t c;
    for (const char *s = src; *s;) {
        s += utf8_next(s, &c);
        total += width(printable(c));
    }
    size_t room = total > max ? (max ? max - 1 : 0) : max, used = 0, cols = 0;
    for (const char *s = src; *s;) {
        s += utf8_next(s, &c);
        c = printable(c);
        if (cols + width(c) > room || used + 4 + 3 >= len) break;
        used += utf8_put(c, dst + used);
        cols += width(c);
    }
    if (total > max && max && used + 3 < len) {
        used += utf8_put(0x2026, dst + used); /* … */
        cols++;
    }
    dst[used] = '\0';
    return cols;
}

/* One screen line being put together: fields padded to their columns. */
typedef struct line {
    char buf[SCREEN_COLS * 4 + 8];
    size_t len, cols;
} line_t;

/* Appends text cut to w columns (see fit) and padded with blanks to w, on the right of the
 * text (left-aligned) or on its left (right). w 0: the text as it is, up to the screen's
 * width. */
static void field(line_t *l, const char *text, size_t w, bool right)
{
    char cut[sizeof l->buf];
    size_t c = fit(cut, sizeof cut, text, w ? w : SCREEN_COLS);
    size_t pad = w > c ? w - c : 0, n = strlen(cut);
    if (l->len + pad + n + 1 > sizeof l->buf) return;
    if (!right) {
        memcpy(l->buf + l->len, cut, n);
        l->len += n;
    }
    memset(l->buf + l->len, ' ', pad);
    l->len += pad;
    if (right) {
        memcpy(l->buf + l->len, cut, n);
        l->len += n;
    }
    l->cols += c + pad;
    l->buf[l->len] = '\0';
}

/* Writes a line without its trailing blanks and cut to the screen's width; on a terminal it
 * also clears what the previous screen left on the rest of the line. */
static void emit(const watch_t *w, FILE *out, const char *text)
{
    char cut[SCREEN_COLS * 4 + 8];
    fit(cut, sizeof cut, text, SCREEN_COLS);
    size_t n = strlen(cut);
    while (n && cut[n - 1] == ' ')
        n--;
    fprintf(out, "%.*s%s\n", (int)n, cut, w->tty ? "\033[K" : "");
}

static void emit_line(const watch_t *w, FILE *out, line_t *l)
{
    emit(w, out, l->buf);
    l->len = l->cols = 0;
    l->buf[0] = '\0';
}

/* ---------------------------------------------------------------- numbers */

/* n as text: exact, or when short and n > 9999 in at most 4 characters, rounded down:
 * "12k", "999k", "1.2M", "45G". */
static void count_text(uint64_t n, bool shorten, char *buf, size_t len)
{
    static const char unit[] = "kMGTPE";
    if (!shorten || n < 10000) {
        snprintf(buf, len, "%llu", (unsigned long long)n);
        return;
    }
    double x = (double)n;
    int u = -1;
    while (x >= 1000 && u < 5) {
        x /= 1000;
        u++;
    }
    if (x < 10)
        snprintf(buf, len, "%.1f%c", floor(x * 10) / 10, unit[u]);
    else
        snprintf(buf, len, "%.0f%c", floor(x), unit[u]);
}

/* The interval or detail shown next to a score: NPS "±moe95", CSAT "[low–high]" (Wilson,
 * 95 %), CES "easy P%", rates "num/den" (response rate: responses/requests), KPIs "p90 S".
 * Empty when the metric has no value. */
static void interval_text(const sb_metric_update_t *u, bool shorten, char *buf, size_t len)
{
    const sb_metric_value_t *v = &u->v;
    char a[48], b[48];
    int form = sb_metric_form(u->metric);
    buf[0] = '\0';
    if (!v->has_value && form != SB_STATS_RATE) return;
    switch (form) {
    case SB_STATS_NPS:
        ctl_metric_number(true, v->moe95, a, sizeof a);
        snprintf(buf, len, "\u00b1%s", a);
        break;
    case SB_STATS_CSAT:
        ctl_metric_number(true, v->ci95_low, a, sizeof a);
        ctl_metric_number(true, v->ci95_high, b, sizeof b);
        snprintf(buf, len, "[%s\u2013%s]", a, b);
        break;
    case SB_STATS_CES:
        ctl_metric_number(true, v->easy_pct, a, sizeof a);
        snprintf(buf, len, "easy %s%%", a);
        break;
    case SB_STATS_RATE:
        count_text(v->num, shorten, a, sizeof a);
        count_text(v->den, shorten, b, sizeof b);
        snprintf(buf, len, "%s/%s", a, b);
        break;
    case SB_STATS_KPI:
        ctl_metric_number(v->has_p90, v->p90, a, sizeof a);
        snprintf(buf, len, "p90 %s", a);
        break;
    }
}

/* Columns of a text of ours (numbers, "±", "–", "…": one column per code point). */
static size_t text_cols(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

/* The all block's cell of u: "score (count)" and the interval, each within CELL_W - 1
 * columns; the counts are shortened when the exact ones would not fit. */
static void cell_text(const sb_metric_update_t *u, char *top, char *bottom, size_t len)
{
    char score[48], n[32];
    ctl_metric_number(u->v.has_value, u->v.score, score, sizeof score);
    for (int shorten = 0; shorten < 2; shorten++) {
        count_text(sb_snapshot_count(u), shorten, n, sizeof n);
        snprintf(top, len, "%s (%s)", score, n);
        interval_text(u, shorten, bottom, len);
        if (text_cols(top) < CELL_W && text_cols(bottom) < CELL_W) break;
    }
}

/* ---------------------------------------------------------------- the view */

static void on_stop(int sig)
{
    (void)sig;
    sb_service_stop = 1;
}

static volatile sig_atomic_t suspend_asked;

static void on_suspend(int sig)
{
    (void)sig;
    suspend_asked = 1;
}

/* The aggregator's counters: responses counted (all kinds), duplicate responses, dead letters
 * (all reasons), from its stats hash. Returns 0 or -1 (Redis). */
static int read_counters(sb_store_t *store, long long *counted, long long *dups, long long *dead)
{
    char key[300];
    sb_store_key(store, key, sizeof key, "stats:aggregator");
    redisReply *r = sb_store_cmd(store, "HGETALL %s", key);
    bool ok = r && r->type == REDIS_REPLY_ARRAY;
    *counted = *dups = *dead = 0;
    for (size_t i = 0; ok && i + 1 < r->elements; i += 2) {
        const char *field = r->element[i]->str;
        long long n = strtoll(r->element[i + 1]->str, NULL, 10);
        if (strncmp(field, "counted|", 8) == 0)
            *counted += n;
        else if (strcmp(field, "duplicate") == 0)
            *dups += n;
        else if (strncmp(field, "dlq|", 4) == 0)
            *dead += n;
    }
    if (r) freeReplyObject(r);
    return ok ? 0 : -1;
}

/* "surveybus HH:MM:SSZ" (UTC, the time of the read) and the counters; the counts are
 * shortened when the exact ones would make the line wider than the screen. */
static void emit_header(const watch_t *w, FILE *out, const char *when, const long long *n)
{
    char line[256];
    for (int shorten = 0; shorten < 2; shorten++) {
        char t[3][32];
        for (int i = 0; i < 3; i++)
            count_text(n[i] < 0 ? 0 : (uint64_t)n[i], shorten, t[i], sizeof t[i]);
        snprintf(line, sizeof line,
                 "surveybus %.8sZ  responses counted %s  duplicates %s  dead letters %s", when + 11,
                 t[0], t[1], t[2]);
        if (text_cols(line) <= SCREEN_COLS) break;
    }
    emit(w, out, line);
}

/* The all block: a row of window names, then per metric a row of "score (count)" cells and
 * a row of intervals; "-" where a window holds nothing. */
static void emit_all(const watch_t *w, FILE *out, const sb_tally_snapshot_t *snap,
                     const sb_snapshot_slice_t *all)
{
    line_t l = {0};
    field(&l, "all", LABEL_W + 2, false);
    for (size_t k = 0; k < w->n_all; k++) {
        char name[SB_WINDOW_NAME_MAX];
        sb_window_name(snap->w[k].window_ms, name, sizeof name);
        field(&l, name, CELL_W, false);
    }
    emit_line(w, out, &l);
    for (size_t i = 0; i < sizeof all_metrics / sizeof all_metrics[0]; i++) {
        char top[ALL_WINDOWS][128], bottom[ALL_WINDOWS][128];
        for (size_t k = 0; k < w->n_all; k++) {
            sb_metric_update_t u;
            if (all && sb_snapshot_value(w->cfg, snap, k, all, all_metrics[i], &u)) {
                cell_text(&u, top[k], bottom[k], sizeof top[k]);
            } else {
                snprintf(top[k], sizeof top[k], "-");
                bottom[k][0] = '\0';
            }
        }
        field(&l, sb_metric_names[all_metrics[i]], LABEL_W + 2, false);
        for (size_t k = 0; k < w->n_all; k++)
            field(&l, top[k], CELL_W, false);
        emit_line(w, out, &l);
        field(&l, "", LABEL_W + 2, false);
        for (size_t k = 0; k < w->n_all; k++)
            field(&l, bottom[k], CELL_W, false);
        emit_line(w, out, &l);
    }
}

/* A ranked value: its slice and the score and count it is ranked by. */
typedef struct ranked {
    const sb_snapshot_slice_t *slice;
    double score; /* as published (2 decimals), so that ties are the ties one sees */
    uint64_t count;
} ranked_t;

static int value_cmp(const ranked_t *x, const ranked_t *y)
{
    if (x->count != y->count) return x->count > y->count ? -1 : 1;
    return strcmp(x->slice->name + x->slice->dim_len + 1, y->slice->name + y->slice->dim_len + 1);
}

/* Highest score first; ties: larger count, then value in byte order. */
static int top_cmp(const void *a, const void *b)
{
    const ranked_t *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return value_cmp(x, y);
}

/* Lowest score first; ties as top_cmp. */
static int bottom_cmp(const void *a, const void *b)
{
    const ranked_t *x = a, *y = b;
    if (x->score != y->score) return x->score < y->score ? -1 : 1;
    return value_cmp(x, y);
}

/* Rows "label  value  score  (count)  interval" of the first RANKED of list; the label is
 * on the first row only. */
static void emit_ranked(const watch_t *w, FILE *out, const sb_tally_snapshot_t *snap,
                        const char *label, const ranked_t *list, size_t n)
{
    line_t l = {0};
    for (size_t i = 0; i < n && i < RANKED; i++) {
        sb_metric_update_t u;
        sb_snapshot_value(w->cfg, snap, w->window, list[i].slice, w->metric, &u);
        char score[48], count[48], detail[128];
        ctl_metric_number(u.v.has_value, u.v.score, score, sizeof score);
        for (int shorten = 0; shorten < 2; shorten++) {
            char n_text[32];
            count_text(list[i].count, shorten, n_text, sizeof n_text);
            snprintf(count, sizeof count, "(%s)", n_text);
            interval_text(&u, shorten, detail, sizeof detail);
            if (text_cols(count) <= COUNT_W && text_cols(detail) < CELL_W) break;
        }
        field(&l, i ? "" : label, RANK_LABEL_W + 2, false);
        field(&l, list[i].slice->name + list[i].slice->dim_len + 1, VALUE_W, false);
        field(&l, "  ", 2, false);
        field(&l, score, SCORE_W, true);
        field(&l, "  ", 2, false);
        field(&l, count, COUNT_W + 2, false);
        field(&l, detail, 0, false);
        emit_line(w, out, &l);
    }
}

/* The dimension block: a title, then the top and the bottom values of the dimension by the
 * metric over the window, among those with a score and at least min_count. Returns 0, or -1
 * when out of memory. */
static int emit_dimension(const watch_t *w, FILE *out, const sb_tally_snapshot_t *snap,
                          const sb_snapshot_slice_t *slices, size_t n_slices)
{
    ranked_t *list = malloc((n_slices ? n_slices : 1) * sizeof *list);
    if (!list) return -1;
    size_t n = 0, dim_len = strlen(w->dimension);
    for (size_t i = 0; i < n_slices; i++) {
        const sb_snapshot_slice_t *s = &slices[i];
        sb_metric_update_t u;
        if (s->dim_len != dim_len || memcmp(s->name, w->dimension, dim_len) != 0) continue;
        if (!sb_snapshot_value(w->cfg, snap, w->window, s, w->metric, &u) || !u.v.has_value)
            continue;
        uint64_t count = sb_snapshot_count(&u);
        if (count < w->min_count) continue;
        list[n++] = (ranked_t){s, sb_stats_round2(u.v.score), count};
    }
    char window[SB_WINDOW_NAME_MAX], title[200];
    sb_window_name(snap->w[w->window].window_ms, window, sizeof window);
    snprintf(title, sizeof title, "%s by %s over %s  (%zu value%s with count >= %llu)",
             w->dimension, sb_metric_names[w->metric], window, n, n == 1 ? "" : "s",
             (unsigned long long)w->min_count);
    emit(w, out, title);
    if (n) {
        qsort(list, n, sizeof *list, top_cmp);
        emit_ranked(w, out, snap, "top 5", list, n);
        qsort(list, n, sizeof *list, bottom_cmp);
        emit_ranked(w, out, snap, "bottom 5", list, n);
    }
    free(list);
    return 0;
}

/* Draws the view once: on a terminal over the previous one (cleared first when clear),
 * otherwise after a blank line unless first. Returns 0, or -1 when Redis could not be read
 * (the reason is shown in place of the blocks). */
static int refresh(const watch_t *w, bool first)
{
    char when[32], err[300];
    sb_time_format(sb_now_ms(), when);
    long long counters[3];
    sb_tally_snapshot_t snap;
    sb_snapshot_slice_t *slices = NULL;
    size_t n_slices = 0;
    /* every dimension: the all block's slice and the ranked dimension's, in one read */
    const sb_snapshot_filter_t every = {.metric = -1, .window = -1};
    int rc = read_counters(w->store, &counters[0], &counters[1], &counters[2]);
    if (rc)
        snprintf(err, sizeof err, "reading the counters failed: %s", w->store->errstr);
    else
        rc = sb_snapshot_read(w->tally, w->store, &every, &snap, &slices, &n_slices, err,
                              sizeof err);

    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&text, &size);
    if (!out) abort();
    if (rc) {
        char head[40];
        snprintf(head, sizeof head, "surveybus %.8sZ", when + 11);
        emit(w, out, head);
        emit(w, out, "");
        /* the reason in full, over as many lines as it takes */
        for (const char *p = err; *p;) {
            char part[SCREEN_COLS * 4 + 8];
            size_t used = 0, cols = 0;
            uint32_t c;
            for (size_t n; p[used]; used += n) {
                n = utf8_next(p + used, &c);
                if (cols + width(printable(c)) > SCREEN_COLS) break;
                cols += width(printable(c));
            }
            snprintf(part, sizeof part, "%.*s", (int)used, p);
            emit(w, out, part);
            p += used;
        }
    } else {
        emit_header(w, out, when, counters);
        emit(w, out, "");
        const sb_snapshot_slice_t *all = NULL;
        for (size_t i = 0; i < n_slices && !all; i++)
            if (strcmp(slices[i].name, "all|all") == 0) all = &slices[i];
        emit_all(w, out, &snap, all);
        emit(w, out, "");
        if (emit_dimension(w, out, &snap, slices, n_slices)) abort();
        free(slices);
        sb_tally_snapshot_free(&snap);
    }
    if (w->keys) fputs("q quits", out); /* the 24th line: no newline, no scrolling */
    if (fclose(out) != 0) abort();

    if (w->tty)
        fputs(first ? "\033[H\033[2J" : "\033[H", stdout);
    else if (!first)
        fputc('\n', stdout);
    fwrite(text, 1, size, stdout);
    if (w->tty) fputs("\033[J", stdout);
    fflush(stdout);
    free(text);
    return rc ? -1 : 0;
}

/* ---------------------------------------------------------------- keys and the loop */

/* Puts the terminal on stdin in non-canonical, no-echo mode: keys arrive one by one, unseen.
 * Signals from keys (^C, ^Z) stay on. Returns whether it did. */
static bool keys_on(watch_t *w)
{
    struct termios t = w->saved;
    t.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
    t.c_cc[VMIN] = 0; /* a read after poll returns what is there, never waits */
    t.c_cc[VTIME] = 0;
    w->raw = tcsetattr(STDIN_FILENO, TCSANOW, &t) == 0;
    return w->raw;
}

/* Gives the terminal its own mode back (when it was changed). */
static void keys_off(watch_t *w)
{
    if (w->raw) tcsetattr(STDIN_FILENO, TCSANOW, &w->saved);
    w->raw = false;
}

/* ^Z: the terminal gets its mode back while the view is stopped, and loses it again when
 * continued if keys were still read (the caller then redraws). */
static void suspend(watch_t *w)
{
    struct sigaction dfl = {.sa_handler = SIG_DFL}, mine = {.sa_handler = on_suspend};
    sigemptyset(&dfl.sa_mask);
    sigemptyset(&mine.sa_mask);
    mine.sa_flags = SA_RESTART;
    bool keys = w->keys;
    suspend_asked = 0;
    keys_off(w);
    fputs("\n", stdout);
    fflush(stdout);
    sigaction(SIGTSTP, &dfl, NULL);
    raise(SIGTSTP); /* returns once continued */
    sigaction(SIGTSTP, &mine, NULL);
    if (keys && !keys_on(w)) w->keys = false;
}

enum { WAIT_TIME, WAIT_QUIT, WAIT_REDRAW };

/* Waits until the monotonic time next_ms, reading keys when w->keys. Returns WAIT_QUIT on
 * q or Q, WAIT_REDRAW after a suspension, else WAIT_TIME (also at once when a signal asked
 * to stop: the caller checks sb_service_stop). */
static int wait_until(watch_t *w, int64_t next_ms)
{
    for (;;) {
        if (sb_service_stop) return WAIT_TIME;
        if (suspend_asked) {
            suspend(w);
            return WAIT_REDRAW;
        }
        int64_t left = next_ms - sb_mono_ms();
        if (left <= 0) return WAIT_TIME;
        struct pollfd p = {.fd = STDIN_FILENO, .events = POLLIN};
        int n = poll(&p, w->keys ? 1 : 0, (int)left);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) { /* stdin is unusable: wait without it */
            if (!w->keys) {
                sb_service_sleep((int)left);
                return WAIT_TIME;
            }
            w->keys = false;
            continue;
        }
        if (n == 0) return WAIT_TIME;
        if (p.revents & (POLLHUP | POLLERR | POLLNVAL)) { /* hung up: no more keys */
            w->keys = false;
            continue;
        }
        /* 0 bytes is no key yet (VMIN 0), not the end: a terminal has none */
        char buf[64];
        ssize_t got = read(STDIN_FILENO, buf, sizeof buf);
        if (got < 0 && errno != EINTR && errno != EAGAIN) w->keys = false;
        if (got <= 0) continue;
        if (memchr(buf, 'q', (size_t)got) || memchr(buf, 'Q', (size_t)got)) return WAIT_QUIT;
    }
}

static int usage(void)
{
    fprintf(stderr, "usage: surveybusctl watch [--dimension D] [--metric M] [--window W]\n"
                    "                          [--min-count N] [--interval S] [--count N]\n");
    return 2;
}

int ctl_cmd_watch(ctl_t *ctl, int argc, char **argv)
{
    double interval = 1;
    long count = 0;
    long long min_count = 1;
    /* metric, window, dimension, value: the ranking's */
    const char *names[4] = {"csat", NULL, NULL, NULL};
    for (int i = 1; i < argc; i++) {
        char *end = NULL;
        if (i + 1 == argc) return usage();
        const char *opt = argv[i], *arg = argv[++i];
        if (strcmp(opt, "--interval") == 0) {
            interval = strtod(arg, &end);
            if (*end || end == arg || !isfinite(interval) || interval < 0.05 || interval > 3600)
                return usage();
        } else if (strcmp(opt, "--count") == 0) {
            count = strtol(arg, &end, 10);
            if (*end || !*arg || count < 0) return usage();
        } else if (strcmp(opt, "--min-count") == 0) {
            min_count = strtoll(arg, &end, 10);
            if (*end || !*arg || min_count < 1) return usage();
        } else if (strcmp(opt, "--dimension") == 0) {
            names[2] = arg;
        } else if (strcmp(opt, "--metric") == 0) {
            names[0] = arg;
        } else if (strcmp(opt, "--window") == 0) {
            names[1] = arg;
        } else {
            return usage();
        }
    }
    if (ctl->json) {
        fprintf(stderr, "surveybusctl: watch is for terminals; use metrics --json\n");
        return 2;
    }
    watch_t w = {.tty = isatty(STDOUT_FILENO) == 1, .min_count = (uint64_t)min_count};
    sb_snapshot_filter_t f;
    sb_config_t *cfg;
    int status = ctl_metric_open(ctl, names, &f, &cfg, &w.store);
    if (status) return status;
    w.cfg = cfg;
    w.tally = sb_tally_new(w.store, cfg);
    w.metric = (sb_metric_t)f.metric;
    w.window = f.window >= 0 ? (size_t)f.window : cfg->n_windows - 1; /* ascending: longest */
    w.n_all = cfg->n_windows < ALL_WINDOWS ? cfg->n_windows : ALL_WINDOWS;
    /* the dimension: agent when configured, else the first configured one, else all */
    w.dimension = f.dimension;
    for (size_t i = 0; i < cfg->n_dimensions && !w.dimension; i++)
        if (cfg->dimensions[i] == SB_DIM_AGENT) w.dimension = sb_dim_names[SB_DIM_AGENT];
    if (!w.dimension)
        w.dimension = sb_dim_names[cfg->n_dimensions ? cfg->dimensions[0] : SB_DIM_ALL];

    struct sigaction sa = {.sa_handler = on_stop};
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART; /* poll is never restarted: a signal still ends the wait */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    /* keys only when both ends are the terminal: into a file, no terminal mode is touched */
    if (w.tty && isatty(STDIN_FILENO) == 1 && tcgetattr(STDIN_FILENO, &w.saved) == 0 &&
        keys_on(&w)) {
        w.keys = true;
        sa.sa_handler = on_suspend;
        sigaction(SIGTSTP, &sa, NULL);
    }

    int rc = 0;
    bool first = true;
    for (long done = 0; !sb_service_stop;) {
        int64_t next = sb_mono_ms() + (int64_t)(interval * 1000);
        rc = refresh(&w, first) ? 1 : 0;
        first = false;
        if (count && ++done >= count) break;
        int why = wait_until(&w, next);
        if (why == WAIT_QUIT) {
            rc = 0; /* stopped by the user: not a failure */
            break;
        }
        first = why == WAIT_REDRAW;
    }
    if (sb_service_stop) rc = 0; /* also stopped by the user */
    keys_off(&w);
    if (w.tty) {
        fputs("\n", stdout);
        fflush(stdout);
    }
    sb_tally_free(w.tally);
    sb_store_free(w.store);
    sb_config_free(cfg);
    return rc;
}
