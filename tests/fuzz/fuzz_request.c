/* libFuzzer target: raw bytes as a survey request; an accepted request must hold what its
 * readers rely on, and re-encode and decode back to the same struct. A rejection always
 * carries a counter-safe code. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dlq.h"
#include "event.h"
#include "survey.h"

static void same_or_abort(const sb_survey_request_t *a, const sb_survey_request_t *b)
{
    if (strcmp(a->survey_id, b->survey_id) || strcmp(a->journey, b->journey) ||
        strcmp(a->customer_id, b->customer_id) || strcmp(a->interaction_id, b->interaction_id) ||
        strcmp(a->channel, b->channel) || strcmp(a->locale, b->locale) ||
        strcmp(a->device_id, b->device_id) || strcmp(a->question, b->question) ||
        a->kind != b->kind || a->scale_min != b->scale_min || a->scale_max != b->scale_max ||
        a->issued_ms != b->issued_ms || a->expires_ms != b->expires_ms ||
        strcmp(a->token, b->token) || a->reminder != b->reminder)
        abort();
}

/* What the aggregator and the dispatcher's recovery rely on in an accepted request. */
static void check(const sb_survey_request_t *r)
{
    const char *ids[] = {r->survey_id, r->journey, r->customer_id, r->interaction_id, r->channel};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
        if (!sb_str_topic_safe(ids[i], strlen(ids[i]))) abort();
    if (r->device_id[0] && !sb_str_topic_safe(r->device_id, strlen(r->device_id))) abort();
    if (r->locale[0] && !sb_event_locale_valid(r->locale)) abort();
    if (!r->question[0] || !sb_text_no_controls(r->question, strlen(r->question), "\n\t"))
        abort();
    if ((unsigned)r->kind >= SB_KIND__N || r->scale_min < 0 || r->scale_min >= r->scale_max ||
        r->scale_max > SB_SCORE_MAX)
        abort();
    if (r->issued_ms < SB_TIME_MIN_MS || r->expires_ms >= SB_TIME_MAX_MS ||
        r->expires_ms <= r->issued_ms)
        abort();
    if (!r->token[0]) abort();
    for (const char *p = r->token; *p; p++)
        if (*p < '!' || *p > '~') abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static sb_survey_request_t r, back;
    char err[256] = "";
    if (sb_survey_request_decode((const char *)data, size, &r, err, sizeof err) != 0) {
        char code[64];
        if (sb_reason_code(err, code, sizeof code) != 0) abort(); /* a counter-safe code */
        return 0;
    }
    check(&r);
    char *text = sb_survey_request_encode(&r);
    if (!text) abort(); /* everything accepted is encodable */
    if (sb_survey_request_decode(text, strlen(text), &back, err, sizeof err) != 0) abort();
    same_or_abort(&r, &back);
    free(text);
    return 0;
}
