/* Metric updates: the published form of one slice's metric, and its exact inverse; see
 * metric.h. Pure. */
#include "metric.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "dlq.h"

/* Reals keep 15 significant digits: enough for any rounded score, short enough that 2.02
 * prints as 2.02 and not as the 17-digit expansion of the nearest double. */
#define DUMP_FLAGS (JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15))

const char *const sb_metric_names[SB_METRIC__N] = {
    "nps", "csat", "ces", "response_rate", "frt", "art", "fcr", "transfer_rate",
};

int sb_metric_parse(const char *name)
{
    for (int i = 0; name && i < SB_METRIC__N; i++)
        if (strcmp(sb_metric_names[i], name) == 0) return i;
    return -1;
}

int sb_metric_form(sb_metric_t m)
{
    switch (m) {
    case SB_METRIC_NPS: return SB_STATS_NPS;
    case SB_METRIC_CSAT: return SB_STATS_CSAT;
    case SB_METRIC_CES: return SB_STATS_CES;
    case SB_METRIC_RESPONSE_RATE:
    case SB_METRIC_FCR:
    case SB_METRIC_TRANSFER_RATE: return SB_STATS_RATE;
    case SB_METRIC_FRT:
    case SB_METRIC_ART: return SB_STATS_KPI;
    default: return -1;
    }
}

/* The name of the numerator of a rate metric, published after "count" (which is the
 * denominator, except for response_rate, whose count is the responses). */
static const char *rate_key(sb_metric_t m)
{
    switch (m) {
    case SB_METRIC_RESPONSE_RATE: return "requests";
    case SB_METRIC_FCR: return "resolved";
    case SB_METRIC_TRANSFER_RATE: return "transferred";
    default: return NULL;
    }
}

/* ---- encoding: each adder returns 0, or -1 (o keeps what was added; the caller frees) ---- */

static int add_text(json_t *o, const char *key, const char *s, size_t cap)
{
    /* json_stringn checks UTF-8 and returns NULL on a bad text; set_new fails on NULL. */
    return json_object_set_new(o, key, json_stringn(s, strnlen(s, cap)));
}

static int add_count(json_t *o, const char *key, uint64_t n)
{
    if (n > (uint64_t)INT64_MAX) return -1; /* json_int_t is signed */
    return json_object_set_new(o, key, json_integer((json_int_t)n));
}

/* A published number: rounded, or null when there is none. json_real refuses NaN and
 * infinities, so those fail here instead of producing invalid JSON. */
static int add_real(json_t *o, const char *key, bool present, double x)
{
    return json_object_set_new(o, key, present ? json_real(sb_stats_round2(x)) : json_null());
}

char *sb_metric_update_encode(const sb_metric_update_t *u)
{
    const sb_metric_value_t *v = &u->v;
    char *text = NULL, as_of[32];
    int form = sb_metric_form(u->metric);
    if (form < 0) return NULL;
    sb_time_format(u->as_of_ms, as_of);

    /* sb_stats_rate counts the denominator; response_rate publishes the responses instead. */
    uint64_t count = v->count;
    if (u->metric == SB_METRIC_RESPONSE_RATE)
        count = v->num;
    else if (form == SB_STATS_RATE)
        count = v->den;

    json_t *o = json_object();
    if (!o) return NULL;
    if (json_object_set_new(o, "metric", json_string(sb_metric_names[u->metric])) ||
        add_text(o, "window", u->window, sizeof u->window) ||
        add_text(o, "dimension", u->dimension, sizeof u->dimension) ||
        add_text(o, "value", u->value, sizeof u->value) ||
        json_object_set_new(o, "as_of", json_string(as_of)) || add_count(o, "count", count) ||
        add_real(o, "score", v->has_value, v->score))
        goto fail;

    int rc = 0;
    switch ((sb_stats_form_t)form) {
    case SB_STATS_NPS:
        rc = add_count(o, "promoters", v->promoters) || add_count(o, "passives", v->passives) ||
             add_count(o, "detractors", v->detractors) ||
             add_real(o, "moe95", v->has_value, v->moe95);
        break;
    case SB_STATS_CSAT:
        rc = add_count(o, "satisfied", v->satisfied) ||
             add_real(o, "ci95_low", v->has_value, v->ci95_low) ||
             add_real(o, "ci95_high", v->has_value, v->ci95_high);
        break;
    case SB_STATS_CES:
        rc = add_real(o, "mean", v->has_value, v->mean) || add_count(o, "easy", v->easy) ||
             add_real(o, "easy_pct", v->has_value, v->easy_pct);
        break;
    case SB_STATS_RATE:
        rc = add_count(o, rate_key(u->metric),
                       u->metric == SB_METRIC_RESPONSE_RATE ? v->den : v->num);
        break;
    case SB_STATS_KPI:
        rc = add_real(o, "mean", v->has_value, v->mean) || add_real(o, "p90", v->has_p90, v->p90);
        break;
    }
    if (rc) goto fail;
    text = json_dumps(o, DUMP_FLAGS);
fail:
    json_decref(o);
    return text;
}

/* ---- decoding: each reader returns 0, or -1 with the reason in err ---- */

static int get_text(json_t *doc, const char *key, char *dst, size_t max, char *err, size_t errlen)
{
    json_t *v = json_object_get(doc, key);
    if (!v || json_is_null(v)) return sb_fail(err, errlen, "missing_field: %s", key);
    if (!json_is_string(v)) return sb_fail(err, errlen, "wrong_type: %s", key);
    size_t n = json_string_length(v);
    if (n == 0) return sb_fail(err, errlen, "missing_field: %s", key);
    if (n > max) return sb_fail(err, errlen, "too_long: %s", key);
    memcpy(dst, json_string_value(v), n + 1); /* sb_dlq_load refused \u0000, so n is strlen */
    return 0;
}

static int get_count(json_t *doc, const char *key, uint64_t *out, char *err, size_t errlen)
{
    json_t *v = json_object_get(doc, key);
    if (!v || json_is_null(v)) return sb_fail(err, errlen, "missing_field: %s", key);
    if (!json_is_integer(v)) return sb_fail(err, errlen, "wrong_type: %s", key);
    json_int_t n = json_integer_value(v);
    if (n < 0) return sb_fail(err, errlen, "wrong_type: %s: negative", key);
    *out = (uint64_t)n;
    return 0;
}

/* A number that may be null. *present (when not NULL) says which; a null reads as 0. The key
 * must be there, null or not, since the encoder always writes it. */
static int get_real(json_t *doc, const char *key, double *out, bool *present, char *err,
                    size_t errlen)
{
    json_t *v = json_object_get(doc, key);
    if (!v) return sb_fail(err, errlen, "missing_field: %s", key);
    if (present) *present = !json_is_null(v);
    if (json_is_null(v)) return 0;
    if (!json_is_number(v)) return sb_fail(err, errlen, "wrong_type: %s", key);
    *out = json_number_value(v);
    return 0;
}

/* Reads the fields that follow "score" for the metric's form. */
static int get_form(json_t *doc, sb_metric_t m, sb_metric_value_t *v, uint64_t count, char *err,
                    size_t errlen)
{
    switch (v->form) {
    case SB_STATS_NPS:
        v->count = count;
        return get_count(doc, "promoters", &v->promoters, err, errlen) ||
                       get_count(doc, "passives", &v->passives, err, errlen) ||
                       get_count(doc, "detractors", &v->detractors, err, errlen) ||
                       get_real(doc, "moe95", &v->moe95, NULL, err, errlen)
                   ? -1
                   : 0;
    case SB_STATS_CSAT:
        v->count = count;
        return get_count(doc, "satisfied", &v->satisfied, err, errlen) ||
                       get_real(doc, "ci95_low", &v->ci95_low, NULL, err, errlen) ||
                       get_real(doc, "ci95_high", &v->ci95_high, NULL, err, errlen)
                   ? -1
                   : 0;
    case SB_STATS_CES:
        v->count = count;
        return get_real(doc, "mean", &v->mean, NULL, err, errlen) ||
                       get_count(doc, "easy", &v->easy, err, errlen) ||
                       get_real(doc, "easy_pct", &v->easy_pct, NULL, err, errlen)
                   ? -1
                   : 0;
    case SB_STATS_RATE: {
        uint64_t other;
        if (get_count(doc, rate_key(m), &other, err, errlen)) return -1;
        /* v->count is the denominator, as sb_stats_rate leaves it. */
        if (m == SB_METRIC_RESPONSE_RATE)
            v->num = count, v->den = other;
        else
            v->den = count, v->num = other;
        v->count = v->den;
        return 0;
    }
    case SB_STATS_KPI:
        v->count = count;
        return get_real(doc, "mean", &v->mean, NULL, err, errlen) ||
                       get_real(doc, "p90", &v->p90, &v->has_p90, err, errlen)
                   ? -1
                   : 0;
    }
    return -1;
}

int sb_metric_update_decode(const char *buf, size_t len, sb_metric_update_t *out, char *err,
                            size_t errlen)
{
    int rc = -1;
    char name[SB_STR_MAX + 1], when[SB_STR_MAX + 1], q[96];
    memset(out, 0, sizeof *out);
    json_t *doc = sb_dlq_load(buf, len, err, errlen);
    if (!doc) goto fail;

    if (get_text(doc, "metric", name, SB_STR_MAX, err, errlen)) goto fail;
    int m = sb_metric_parse(name);
    if (m < 0) {
        sb_dlq_quote(q, sizeof q, name, strlen(name));
        sb_fail(err, errlen, "bad_metric: %s", q);
        goto fail;
    }
    out->metric = (sb_metric_t)m;
    out->v.form = (sb_stats_form_t)sb_metric_form(out->metric);

    if (get_text(doc, "window", out->window, sizeof out->window - 1, err, errlen) ||
        get_text(doc, "dimension", out->dimension, SB_STR_MAX, err, errlen) ||
        get_text(doc, "value", out->value, SB_STR_MAX, err, errlen))
        goto fail;

    if (get_text(doc, "as_of", when, SB_STR_MAX, err, errlen)) goto fail;
    /* An offset can carry a 4-digit year past 0000 or 9999 in UTC, which sb_time_format
     * cannot write back as RFC 3339 ("-001-12-31T...", "10000-01-01T..."): refused, so
     * that whatever decodes encodes to a text that decodes again. */
    const int64_t first_ms = sb_days_from_civil(0, 1, 1) * 86400000,
                  end_ms = sb_days_from_civil(10000, 1, 1) * 86400000;
    if (sb_time_parse_rfc3339(when, &out->as_of_ms) < 0 || out->as_of_ms < first_ms ||
        out->as_of_ms >= end_ms) {
        sb_dlq_quote(q, sizeof q, when, strlen(when));
        sb_fail(err, errlen, "bad_time: as_of: %s", q);
        goto fail;
    }

    uint64_t count;
    if (get_count(doc, "count", &count, err, errlen) ||
        get_real(doc, "score", &out->v.score, &out->v.has_value, err, errlen) ||
        get_form(doc, out->metric, &out->v, count, err, errlen))
        goto fail;
    rc = 0;
fail:
    json_decref(doc);
    return rc;
}

char *sb_metric_json_line(const char *payload, size_t len)
{
    json_t *j = json_loadb(payload, len, JSON_DECODE_ANY, NULL);
    if (!j) return NULL;
    char *line;
    if (memchr(payload, '\n', len) || memchr(payload, '\r', len) || memchr(payload, '\0', len))
        line = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    else
        line = strndup(payload, len);
    json_decref(j);
    return line;
}
