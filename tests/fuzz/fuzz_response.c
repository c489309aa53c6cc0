/* libFuzzer target: raw bytes as a survey response (with and without an MQTT device id);
 * an accepted response must survive encode -> decode unchanged; the same bytes as a
 * dead-letter payload must always give valid JSON. When the input has a first line (under
 * 300 bytes, no NUL), the rest is also read as a response published on that line as the
 * MQTT topic, matched against the default response filter: the '+' level is the device id,
 * as in the aggregator's MQTT callback. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "dlq.h"
#include "mqtt.h"
#include "survey.h"
#include "token.h"

#define LINE_MAX 300

static void same_or_abort(const sb_survey_response_t *a, const sb_survey_response_t *b)
{
    if (strcmp(a->survey_id, b->survey_id) || strcmp(a->token, b->token) || a->score != b->score ||
        a->has_comment != b->has_comment || strcmp(a->comment, b->comment) ||
        a->has_answered != b->has_answered ||
        (a->has_answered && a->answered_ms != b->answered_ms) || strcmp(a->device_id, b->device_id))
        abort();
}

/* What the aggregator relies on in an accepted response. */
static void check(const sb_survey_response_t *r, const char *device_id)
{
    if (!sb_str_topic_safe(r->survey_id, strlen(r->survey_id))) abort();
    if (!r->token[0]) abort();
    for (const char *p = r->token; *p; p++)
        if (*p < '!' || *p > '~') abort();
    /* CR is made LF: only tab and LF remain of the control characters */
    if (r->has_comment != (r->comment[0] != '\0') ||
        !sb_text_no_controls(r->comment, strlen(r->comment), "\t\n"))
        abort();
    if (r->has_answered && (r->answered_ms < SB_TIME_MIN_MS || r->answered_ms >= SB_TIME_MAX_MS))
        abort();
    if (device_id ? strcmp(r->device_id, device_id) : r->device_id[0] != '\0') abort();
    if (r->device_id[0] && !sb_str_topic_safe(r->device_id, strlen(r->device_id))) abort();
    /* the aggregator's next check: the token as given against the survey id, and a token
     * signed for that survey id, which must verify */
    static const char secret[] = "fuzz-secret";
    const int64_t now = r->has_answered ? r->answered_ms : 1795341600000;
    int64_t exp = -1;
    int v = sb_token_verify(secret, r->survey_id, r->token, now, &exp);
    if (v != SB_TOKEN_OK && v != SB_TOKEN_EXPIRED && v != SB_TOKEN_BAD) abort();
    if (v != SB_TOKEN_BAD && exp < 0) abort();
    char tok[SB_TOKEN_MAX];
    if (sb_token_sign(secret, r->survey_id, now, tok, sizeof tok) != 0 ||
        sb_token_verify(secret, r->survey_id, tok, now, &exp) != SB_TOKEN_OK || exp != now)
        abort();
}

static void round_trip(const sb_survey_response_t *r, const char *device_id)
{
    static sb_survey_response_t back;
    char err[256];
    check(r, device_id);
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

    /* the first line as the MQTT topic */
    const char *nl = memchr(buf, '\n', size < LINE_MAX ? size : LINE_MAX);
    if (!nl || memchr(buf, '\0', (size_t)(nl - buf))) return 0;
    char topic[LINE_MAX + 1], level[LINE_MAX + 1];
    memcpy(topic, buf, (size_t)(nl - buf));
    topic[nl - buf] = '\0';
    static const char *const filters[] = {"fieldservice/+/survey/response"};
    const char *dev;
    if (sb_mqtt_match_any(filters, 1, topic, level, &dev) < 0) return 0;
    size_t rn = size - (size_t)(nl - buf) - 1;
    if (sb_survey_response_decode(nl + 1, rn, dev, &r, err, sizeof err) == 0)
        round_trip(&r, dev);
    else if (sb_reason_code(err, code, sizeof code) != 0)
        abort();
    return 0;
}
