/* surveybusctl watch: a live terminal view of the headline metrics of one dimension's values
 * over the shortest and the longest window, with the aggregator's counters, refreshed every
 * few seconds until SIGINT / SIGTERM (or a given number of times). */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"
#include "util.h"

typedef struct watch {
    const sb_config_t *cfg;
    sb_store_t *store;
    sb_tally_t *tally;
    ctl_metric_filter_t filter;   /* the dimension */
    size_t windows[2], n_windows; /* snapshot indexes shown: shortest, longest */
    bool tty;
} watch_t;

static void on_stop(int sig)
{
    (void)sig;
    sb_service_stop = 1;
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

/* One row per value of the dimension that has a value in a shown window; a cell is
 * "score (count)", "-" when empty. */
static void fill_table(const watch_t *w, const sb_tally_snapshot_t *snap, const ctl_slice_t *slices,
                       size_t n_slices, ctl_table_t *table)
{
    /* two header rows: the metric over its windows' columns, then the windows */
    ctl_table_add(table, "%s", w->filter.dimension);
    for (int m = 0; m < SB_METRIC__N; m++)
        for (size_t j = 0; j < w->n_windows; j++)
            ctl_table_add(table, "%s", j ? "" : sb_metric_names[m]);
    ctl_table_add(table, "%s", "");
    for (int m = 0; m < SB_METRIC__N; m++)
        for (size_t j = 0; j < w->n_windows; j++) {
            char name[SB_WINDOW_NAME_MAX];
            sb_window_name(snap->w[w->windows[j]].window_ms, name, sizeof name);
            ctl_table_add(table, "%s", name);
        }
    for (size_t i = 0; i < n_slices; i++) {
        char cell[SB_METRIC__N * 2][64];
        size_t c = 0, filled = 0;
        for (int m = 0; m < SB_METRIC__N; m++)
            for (size_t j = 0; j < w->n_windows; j++, c++) {
                sb_metric_update_t u;
                if (!ctl_metric_value(w->cfg, snap, w->windows[j], &slices[i], (sb_metric_t)m,
                                      &u)) {
                    snprintf(cell[c], sizeof cell[c], "-");
                    continue;
                }
                char score[48];
                ctl_metric_number(u.v.has_value, u.v.score, score, sizeof score);
                snprintf(cell[c], sizeof cell[c], "%s (%llu)", score,
                         (unsigned long long)ctl_metric_count(&u));
                filled++;
            }
        if (!filled) continue;
        ctl_table_add(table, "%s", slices[i].name + slices[i].dim_len + 1);
        for (size_t k = 0; k < c; k++)
            ctl_table_add(table, "%s", cell[k]);
    }
}

/* Clears the screen (on a terminal) and draws the view once. Returns 0, or -1 when Redis
 * could not be read (the reason is shown in place of the table). */
static int refresh(const watch_t *w)
{
    char when[32], err[300];
    sb_time_format(sb_now_ms(), when);
    long long counted, dups, dead;
    sb_tally_snapshot_t snap;
    ctl_slice_t *slices;
    size_t n_slices;
    int rc = read_counters(w->store, &counted, &dups, &dead);
    if (rc)
        snprintf(err, sizeof err, "reading the counters failed: %s", w->store->errstr);
    else
        rc = ctl_metric_read(w->tally, w->store, &w->filter, &snap, &slices, &n_slices, err,
                             sizeof err);
    if (w->tty) fputs("\033[H\033[2J", stdout);
    if (rc) {
        printf("surveybus  %s\n\n%s\n", when, err);
        fflush(stdout);
        return -1;
    }
    printf("surveybus  %s  responses counted %lld  duplicates %lld  dead letters %lld\n\n", when,
           counted, dups, dead);
    ctl_table_t table;
    ctl_table_init(&table, 1 + SB_METRIC__N * w->n_windows);
    fill_table(w, &snap, slices, n_slices, &table);
    if (table.n > 2 * table.cols)
        ctl_table_print(&table, stdout);
    else
        printf("no values of %s yet\n", w->filter.dimension);
    ctl_table_free(&table);
    free(slices);
    sb_tally_snapshot_free(&snap);
    fflush(stdout);
    return 0;
}

static int usage(void)
{
    fprintf(stderr, "usage: surveybusctl watch [--interval S] [--dimension D] [--count N]\n");
    return 2;
}

int ctl_cmd_watch(ctl_t *ctl, int argc, char **argv)
{
    double interval = 2;
    long count = 0;
    const char *names[4] = {NULL, NULL, "all", NULL}; /* metric, window, dimension, value */
    for (int i = 1; i < argc; i++) {
        char *end = NULL;
        if (i + 1 == argc) return usage();
        const char *arg = argv[++i];
        if (strcmp(argv[i - 1], "--interval") == 0) {
            interval = strtod(arg, &end);
            if (*end || !isfinite(interval) || interval < 0.05 || interval > 3600) return usage();
        } else if (strcmp(argv[i - 1], "--count") == 0) {
            count = strtol(arg, &end, 10);
            if (*end || !*arg || count < 0) return usage();
        } else if (strcmp(argv[i - 1], "--dimension") == 0) {
            names[2] = arg;
        } else {
            return usage();
        }
    }
    if (ctl->json) {
        fprintf(stderr, "surveybusctl: watch is for terminals; use metrics --json\n");
        return 2;
    }
    watch_t w = {.tty = isatty(STDOUT_FILENO) == 1};
    sb_config_t *cfg;
    int status = ctl_metric_open(ctl, names, &w.filter, &cfg, &w.store);
    if (status) return status;
    w.cfg = cfg;
    w.tally = sb_tally_new(w.store, cfg);
    w.windows[0] = 0;
    w.windows[1] = cfg->n_windows - 1;
    w.n_windows = cfg->n_windows > 1 ? 2 : 1;

    struct sigaction sa = {.sa_handler = on_stop};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    int rc = 0;
    for (long done = 0; !sb_service_stop;) {
        rc = refresh(&w) ? 1 : 0;
        if (count && ++done >= count) break;
        sb_service_sleep((int)(interval * 1000));
    }
    if (sb_service_stop) rc = 0; /* stopped by the user: not a failure */
    sb_tally_free(w.tally);
    sb_store_free(w.store);
    sb_config_free(cfg);
    return rc;
}
