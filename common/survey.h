/* Survey messages on the bus (SPEC §4): requests the dispatcher publishes and responses
 * customers send back, as validated structs <-> compact JSON. Pure. */
#ifndef SB_SURVEY_H
#define SB_SURVEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

#define SB_TOKEN_TEXT_MAX 127     /* bytes in a token (printable ASCII) */
#define SB_QUESTION_MAX 2000 /* bytes in a question text */

typedef struct sb_survey_request {
    char survey_id[SB_STR_MAX + 1];
    char journey[SB_STR_MAX + 1];
    char customer_id[SB_STR_MAX + 1];
    char interaction_id[SB_STR_MAX + 1];
    char channel[SB_STR_MAX + 1];
    char locale[SB_STR_MAX + 1];    /* "" when unknown */
    char device_id[SB_STR_MAX + 1]; /* "" unless the survey goes to a device */
    char question[SB_QUESTION_MAX + 1];
    sb_kind_t kind;
    int scale_min, scale_max;
    int64_t issued_ms, expires_ms;
    char token[SB_TOKEN_TEXT_MAX + 1];
    bool reminder;
} sb_survey_request_t;

typedef struct sb_survey_response {
    char survey_id[SB_STR_MAX + 1];
    char token[SB_TOKEN_TEXT_MAX + 1];
    int score; /* integral; the scale check is the aggregator's, against the survey */
    bool has_comment;
    char comment[SB_COMMENT_MAX + 1];
    bool has_answered;
    int64_t answered_ms;
    char device_id[SB_STR_MAX + 1]; /* from the MQTT topic; "" otherwise */
} sb_survey_response_t;

/* The request as compact JSON: survey_id, kind, journey, customer_id, interaction_id,
 * channel, locale, question, scale {min,max}, issued_at, expires_at (RFC 3339, ms, UTC),
 * token, then "device_id" only when non-empty and "reminder":true only when set.
 * Returns a string the caller frees, or NULL when a field is not valid UTF-8 or the kind is
 * out of range. */
char *sb_survey_request_encode(const sb_survey_request_t *r);

/* Parses a request as encoded above, checked as strictly as outside input: too_large,
 * nul_byte, invalid_utf8, invalid_json, missing_field, wrong_type, too_long, unsafe_chars
 * (ids, journey, channel, device_id), bad_kind, bad_scale (0 <= min < max <= SB_SCORE_MAX),
 * bad_time (issued_at/expires_at: RFC 3339 or epoch ms; expires_at after issued_at),
 * bad_locale, bad_chars (question: no control characters but \n and \t), bad_token_format.
 * Unknown keys are ignored. Returns 0, or -1 with the reason in err. */
int sb_survey_request_decode(const char *buf, size_t len, sb_survey_request_t *out, char *err,
                             size_t errlen);

/* Parses a response {"survey_id","token","score"[,"comment"][,"answered_at"]}. device_id,
 * when not NULL, is the device id from the MQTT topic (must be topic-safe) and is copied to
 * out->device_id. Keys other than these are ignored, so that clients may send more
 * (forward compatibility); dimensions are never taken from a response. A JSON null counts as
 * absent. The comment has CR LF and lone CR turned into LF; an empty one is no comment.
 * Reasons: too_large, nul_byte, invalid_utf8, invalid_json, missing_field (survey_id, token,
 * score), wrong_type, too_long / unsafe_chars (survey_id, device_id), bad_token_format
 * (1..127 bytes of '!'..'~'), score_not_integer (4.0 or 4.5), score_out_of_range (beyond
 * int), comment_too_long (> SB_COMMENT_MAX bytes as received), bad_comment (control
 * characters other than \n \t \r), bad_time (answered_at). Returns 0, or -1 with the reason. */
int sb_survey_response_decode(const char *buf, size_t len, const char *device_id,
                              sb_survey_response_t *out, char *err, size_t errlen);

/* The response as compact JSON (device_id is not part of it: it travels in the topic).
 * Returns a string the caller frees, or NULL when a text is not valid UTF-8. */
char *sb_survey_response_encode(const sb_survey_response_t *r);

#endif
