/* surveybusctl stats: the counters each service keeps in Redis, grouped for reading, and the
 * depth of the schedule. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "schedule.h"

static const char *const services[] = {"dispatcher", "aggregator"};

/* The counters the contract lists (consumed, scheduled, fired, suppressed by reason, responses
 * counted, duplicates, dead letters by reason, late), shown even while still 0: a counter
 * exists in Redis only from its first increment. A trailing "|" marks a group of them
 * (by journey, reason or kind). */
static const char *const always[][8] = {
    {"consumed", "scheduled|", "fired|", "suppressed|", "duplicate", "dlq|", NULL},
    {"consumed|", "counted|", "duplicate", "dlq|", "late", NULL},
};

/* "suppressed|support-csat|min_gap" -> {"suppressed":{"support-csat":{"min_gap":n}}} */
static void put(json_t *root, const char *field, long long n)
{
    char buf[600];
    snprintf(buf, sizeof buf, "%s", field);
    json_t *node = root;
    char *save = NULL, *part = strtok_r(buf, "|", &save);
    while (part) {
        char *next = strtok_r(NULL, "|", &save);
        if (!next) {
            json_object_set_new(node, part, json_integer(n));
            break;
        }
        json_t *child = json_object_get(node, part);
        if (!json_is_object(child)) {
            child = json_object();
            json_object_set_new(node, part, child);
        }
        node = child;
        part = next;
    }
}

/* The sum of every counter under a group, however deep (suppressed|journey|reason). */
static long long total(json_t *o)
{
    if (json_is_integer(o)) return json_integer_value(o);
    long long t = 0;
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v) t += total(v);
    return t;
}

static void print_tree(const char *indent, json_t *o)
{
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v)
    {
        if (json_is_object(v)) {
            if (*indent)
                printf("%s%-28s %lld\n", indent, key, total(v));
            else
                printf("%s\n", key); /* a service: its counters are not additive */
            char deeper[32];
            snprintf(deeper, sizeof deeper, "%s  ", indent);
            print_tree(deeper, v);
        } else {
            printf("%s%-28s %lld\n", indent, key, (long long)json_integer_value(v));
        }
    }
}

int ctl_cmd_stats(ctl_t *ctl, int argc, char **argv)
{
    (void)argv;
    if (argc > 1) {
        fprintf(stderr, "usage: surveybusctl stats\n");
        return 2;
    }
    sb_config_t *cfg;
    sb_store_t *store;
    if (ctl_open_store(ctl, &cfg, &store)) return 1;
    json_t *out = json_object();
    int rc = 0;
    for (size_t s = 0; s < sizeof services / sizeof services[0]; s++) {
        char key[300];
        sb_store_key(store, key, sizeof key, "stats:%s", services[s]);
        redisReply *r = sb_store_cmd(store, "HGETALL %s", key);
        if (!r || r->type != REDIS_REPLY_ARRAY) {
            rc = 1;
            if (r) freeReplyObject(r);
            continue;
        }
        json_t *svc = json_object();
        for (const char *const *k = always[s]; *k; k++) {
            size_t kl = strlen(*k);
            if ((*k)[kl - 1] == '|')
                json_object_setn_new(svc, *k, kl - 1, json_object());
            else
                json_object_set_new(svc, *k, json_integer(0));
        }
        for (size_t i = 0; i + 1 < r->elements; i += 2)
            put(svc, r->element[i]->str, strtoll(r->element[i + 1]->str, NULL, 10));
        json_object_set_new(out, services[s], svc);
        freeReplyObject(r);
    }
    sb_sched_t *sched = sb_sched_new(store, cfg);
    int64_t scheduled = -1, inflight = -1;
    if (sb_sched_depth(sched, &scheduled, &inflight) == 0) {
        json_object_set_new(json_object_get(out, "dispatcher"), "schedule_timers",
                            json_integer(scheduled));
        json_object_set_new(json_object_get(out, "dispatcher"), "inflight", json_integer(inflight));
    }
    sb_sched_free(sched);
    if (rc) fprintf(stderr, "surveybusctl: reading counters failed: %s\n", store->errstr);
    if (ctl->json) {
        ctl_print_json(json_incref(out), JSON_SORT_KEYS);
    } else {
        print_tree("", out);
    }
    json_decref(out);
    sb_store_free(store);
    sb_config_free(cfg);
    return rc;
}
