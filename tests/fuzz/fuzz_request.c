/* libFuzzer target: raw bytes as a survey request; an accepted request must re-encode and
 * decode back to the same struct. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static sb_survey_request_t r, back;
    char err[256] = "";
    if (sb_survey_request_decode((const char *)data, size, &r, err, sizeof err) != 0) return 0;
    char *text = sb_survey_request_encode(&r);
    if (!text) abort(); /* everything accepted is encodable */
    if (sb_survey_request_decode(text, strlen(text), &back, err, sizeof err) != 0) abort();
    same_or_abort(&r, &back);
    free(text);
    return 0;
}
