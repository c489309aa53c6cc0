/* surveybusctl surveys: list pending surveys, show one, cancel one. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "record.h"
#include "schedule.h"
#include "util.h"

int ctl_open_store(const ctl_t *ctl, sb_config_t **cfg, sb_store_t **store)
{
    char err[256];
    *store = NULL;
    if (!(*cfg = ctl_load_config(ctl))) return -1;
    *store = sb_store_new(*cfg, err, sizeof err);
    if (*store && sb_store_up(*store)) return 0;
    /* host and port only, as the services log it: the URL may hold the password; the
     * attempt's own failure, not the back-off's "next attempt in" (there is none) */
    fprintf(stderr, "surveybusctl: cannot reach redis at %s:%d: %s\n",
            (*cfg)->redis.host && *(*cfg)->redis.host ? (*cfg)->redis.host : "127.0.0.1",
            (*cfg)->redis.port > 0 ? (*cfg)->redis.port : 6379,
            !*store                   ? err
            : (*store)->last_fail[0] ? (*store)->last_fail
                                     : (*store)->errstr);
    sb_store_free(*store);
    sb_config_free(*cfg);
    *store = NULL, *cfg = NULL;
    return -1;
}

static json_t *record_json(const char *id, const sb_record_t *r)
{
    char due[32], exp[32];
    sb_time_format(r->due_ms, due);
    sb_time_format(r->expires_ms, exp);
    json_t *dims = json_object();
    for (int d = 1; d < SB_DIM__N; d++)
        if (r->dim[d][0]) json_object_set_new(dims, sb_dim_names[d], json_string(r->dim[d]));
    json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:o}", "survey_id", id, "state",
                          sb_record_state_name(r->state), "kind", sb_kind_names[r->kind],
                          "journey", r->journey, "customer_id", r->customer_id, "interaction_id",
                          r->interaction_id, "channel", r->channel, "due_at", due, "expires_at",
                          exp, "dims", dims);
    if (r->reason[0]) json_object_set_new(o, "reason", json_string(r->reason));
    if (r->device_id[0]) json_object_set_new(o, "device_id", json_string(r->device_id));
    if (r->tz[0]) json_object_set_new(o, "customer_tz", json_string(r->tz));
    return o;
}

/* Most surveys one "surveys pending" lists: each takes a record of about 5 KB in memory. */
#define PENDING_LIMIT_MAX 10000

/* The options of "surveys pending" (argv[2..]): 0, or 2 after printing the usage. Read
 * before Redis is reached, so that a typo is a usage error also while Redis is down. */
static int pending_opts(int argc, char **argv, const char **customer, long *limit)
{
    *customer = NULL;
    *limit = 50;
    for (int i = 2; i < argc; i++) {
        char *end = NULL;
        if (!strcmp(argv[i], "--customer") && i + 1 < argc) {
            *customer = argv[++i];
        } else if (!strcmp(argv[i], "--limit") && i + 1 < argc &&
                   (*limit = strtol(argv[++i], &end, 10)) >= 1 && *limit <= PENDING_LIMIT_MAX &&
                   !*end) {
            continue;
        } else {
            fprintf(stderr, "surveybusctl: surveys pending [--customer C] [--limit N (1..%d)]\n",
                    PENDING_LIMIT_MAX);
            return 2;
        }
    }
    return 0;
}

static int pending(ctl_t *ctl, sb_sched_t *sched, const char *customer, long limit)
{
    sb_record_t *recs = calloc((size_t)limit, sizeof *recs);
    if (!recs) {
        fprintf(stderr, "surveybusctl: out of memory for %ld surveys\n", limit);
        return 1;
    }
    size_t unreadable = 0;
    int n = sb_sched_pending(sched, customer, recs, (size_t)limit, &unreadable);
    if (n < 0) {
        fprintf(stderr, "surveybusctl: reading the schedule failed\n");
        free(recs);
        return 1;
    }
    json_t *list = ctl->json ? json_array() : NULL;
    if (!ctl->json)
        printf("%-24s  %-4s  %-18s  %-16s  %-16s  %s\n", "SURVEY", "KIND", "JOURNEY", "CUSTOMER",
               "CHANNEL", "DUE (UTC)");
    for (int i = 0; i < n; i++) {
        char id[SB_SURVEY_ID_LEN + 1], due[32];
        sb_record_survey_id(recs[i].interaction_id, recs[i].journey, id);
        if (list) {
            json_array_append_new(list, record_json(id, &recs[i]));
            continue;
        }
        sb_time_format(recs[i].due_ms, due);
        printf("%-24s  %-4s  %-18.18s  %-16.16s  %-16.16s  %.19s\n", id,
               sb_kind_names[recs[i].kind], recs[i].journey, recs[i].customer_id,
               recs[i].channel, due);
    }
    if (list)
        ctl_print_json(list, 0);
    else
        printf("%d pending%s\n", n, n == limit ? " (limit reached: --limit N for more)" : "");
    free(recs);
    if (unreadable) {
        /* a record written by a newer version, or damaged: the listing has holes */
        fprintf(stderr, "surveybusctl: %zu scheduled record%s could not be read and %s not listed\n",
                unreadable, unreadable == 1 ? "" : "s", unreadable == 1 ? "is" : "are");
        return 1;
    }
    return 0;
}

int ctl_cmd_surveys(ctl_t *ctl, int argc, char **argv)
{
    const char *what = argc > 1 ? argv[1] : "";
    bool needs_id = !strcmp(what, "show") || !strcmp(what, "cancel");
    if (!(needs_id && argc == 3) && strcmp(what, "pending") != 0) {
        fprintf(stderr, "usage: surveybusctl surveys pending [--customer C] [--limit N] | "
                        "show ID | cancel ID\n");
        return 2;
    }
    const char *customer = NULL;
    long limit = 0;
    if (!needs_id && pending_opts(argc, argv, &customer, &limit)) return 2;
    sb_config_t *cfg;
    sb_store_t *store;
    if (ctl_open_store(ctl, &cfg, &store)) return 1;
    sb_sched_t *sched = sb_sched_new(store, cfg);
    int rc = 0;
    if (!strcmp(what, "pending")) {
        rc = pending(ctl, sched, customer, limit);
    } else if (!strcmp(what, "show")) {
        sb_record_t r;
        int found = sb_sched_get(sched, argv[2], &r);
        if (found == 1) {
            json_t *o = record_json(argv[2], &r);
            if (ctl->json) {
                ctl_print_json(o, 0);
            } else {
                const char *key;
                json_t *v;
                json_object_foreach(o, key, v)
                {
                    if (json_is_string(v))
                        printf("%-15s %s\n", key, json_string_value(v));
                    else if (json_is_object(v)) {
                        const char *k2;
                        json_t *v2;
                        json_object_foreach(v, k2, v2)
                        printf("%-15s %s\n", k2, json_string_value(v2));
                    }
                }
                json_decref(o);
            }
        } else {
            fprintf(stderr, "surveybusctl: survey %s %s\n", argv[2],
                    found == 0    ? "not found"
                    : found == -2 ? "has a record this version cannot read"
                                  : "could not be read (redis failed)");
            rc = 1;
        }
    } else {
        int c = sb_sched_cancel_id(sched, argv[2], sb_now_ms());
        /* a failed call (Redis gone, or refusing writes) is not "not pending": the survey
         * may well be, and still due to go out */
        const char *why = store->errstr[0] ? store->errstr : "unexpected reply from redis";
        if (c < 0) fprintf(stderr, "surveybusctl: cancelling %s failed: %s\n", argv[2], why);
        if (ctl->json) {
            json_t *o = json_pack("{s:s,s:b}", "survey_id", argv[2], "cancelled", c >= 1);
            if (o && c < 0) json_object_set_new(o, "error", json_string(why));
            ctl_print_json(o, 0);
        } else if (c == 1)
            printf("cancelled %s\n", argv[2]);
        else if (c == 2)
            printf("cancelling %s: its request is being sent; if it goes out, only its "
                   "reminder is dropped\n", argv[2]);
        else if (c == 0)
            fprintf(stderr, "surveybusctl: %s is not pending (nothing cancelled)\n", argv[2]);
        rc = c >= 1 ? 0 : 1;
    }
    sb_sched_free(sched);
    sb_store_free(store);
    sb_config_free(cfg);
    return rc;
}
