/* libFuzzer target: raw bytes as a survey response (with and without an MQTT device id);
 * an accepted response must survive encode -> decode unchanged; the same bytes as a
 * dead-letter payload must always give valid JSON. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "dlq.h"
#include "survey.h"

static void same_or_abort(const sb_survey_response_t *a, const sb_survey_response_t *b)
{
    if (strcmp(a->survey_id, b->survey_id) || strcmp(a->token, b->token) || a->score != b->score ||
        a->has_comment != b->has_comment || strcmp(a->comment, b->comment) ||
        a->has_answered != b->has_answered ||
        (a->has_answered && a->answered_ms != b->answered_ms) || strcmp(a->device_id, b->device_id))
        abort();
}

static void round_trip(const sb_survey_response_t *r, const char *device_id)
{
    static sb_survey_response_t back;
    char err[256];
    char *text = sb_survey_response_encode(r);
    if (!text) abort(); /* everything accepted is encodable */
    if (sb_survey_response_decode(text, strlen(text), device_id, &back, err, sizeof err) != 0)
        abort();
    same_or_abort(r, &back);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static sb_survey_response_t r;
    char err[256] = "", code[64];
    const char *buf = (const char *)data;

    if (sb_survey_response_decode(buf, size, NULL, &r, err, sizeof err) == 0) {
        round_trip(&r, NULL);
    } else if (sb_reason_code(err, code, sizeof code) != 0) {
        abort(); /* every reason has a counter-safe code */
    }
    if (sb_survey_response_decode(buf, size, "dev-1", &r, err, sizeof err) == 0)
        round_trip(&r, "dev-1");

    char *dl = sb_dlq_encode(err, "mqtt:fieldservice/dev-1/survey/response", buf, size);
    if (!dl) abort();
    json_t *j = json_loads(dl, JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES, NULL);
    if (!j || !json_is_string(json_object_get(j, "payload"))) abort();
    json_decref(j);
    free(dl);
    return 0;
}
