/* libFuzzer target: raw bytes as a metric update off the bus; an accepted update must
 * encode, and the text must decode back to the same metric, slice, time and counts, and
 * publish as the same text again. A rejection always carries a counter-safe code. The same
 * bytes as a message for the web service's event stream: its one-line form, when there is
 * one, holds no line break and parses as JSON. */
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dlq.h"
#include "metric.h"

/* What survives publishing exactly: everything but the reals, which are rounded. */
static void same_or_abort(const sb_metric_update_t *a, const sb_metric_update_t *b)
{
    const sb_metric_value_t *x = &a->v, *y = &b->v;
    if (a->metric != b->metric || strcmp(a->window, b->window) ||
        strcmp(a->dimension, b->dimension) || strcmp(a->value, b->value) ||
        a->as_of_ms != b->as_of_ms || x->form != y->form || x->has_value != y->has_value ||
        x->has_p90 != y->has_p90 || x->count != y->count || x->promoters != y->promoters ||
        x->passives != y->passives || x->detractors != y->detractors ||
        x->satisfied != y->satisfied || x->easy != y->easy || x->num != y->num ||
        x->den != y->den)
        abort();
}

/* sb_stats_round2 gains 0.01 per pass from about 2.8e12 up (its tie tolerance outgrows
 * half a cent there), so the text is only a fixed point for reals below that. */
static bool reals_small(const sb_metric_value_t *v)
{
    const double r[] = {v->score, v->moe95, v->ci95_low, v->ci95_high,
                        v->mean,  v->easy_pct, v->p90};
    for (size_t i = 0; i < sizeof r / sizeof r[0]; i++)
        if (!(fabs(r[i]) < 1e12)) return false;
    return true;
}

static void round_trip(const sb_metric_update_t *u)
{
    static sb_metric_update_t back;
    char err[256];
    char *text = sb_metric_update_encode(u);
    if (!text) abort(); /* everything accepted is encodable */
    if (sb_metric_update_decode(text, strlen(text), &back, err, sizeof err) != 0) abort();
    same_or_abort(u, &back);
    /* an update read off the bus publishes as the text it was read from */
    char *again = sb_metric_update_encode(&back);
    if (!again) abort();
    if (reals_small(&u->v) && strcmp(again, text)) abort();
    free(again);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static sb_metric_update_t u;
    char err[256] = "", code[64];
    if (sb_metric_update_decode((const char *)data, size, &u, err, sizeof err) == 0)
        round_trip(&u);
    else if (sb_reason_code(err, code, sizeof code) != 0)
        abort(); /* every reason has a counter-safe code */
    char *line = sb_metric_json_line((const char *)data, size);
    if (line) {
        if (strchr(line, '\n') || strchr(line, '\r')) abort(); /* would break SSE framing */
        json_t *j = json_loads(line, JSON_DECODE_ANY, NULL);
        if (!j) abort();
        json_decref(j);
        free(line);
    }
    return 0;
}
