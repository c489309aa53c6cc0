/* Survey requests and responses on the bus, and the dead-letter envelope: exact encodings,
 * round trips, and every rejection reason as a dead-letter reader would see it. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "dlq.h"
#include "survey.h"
#include "util.h"

#include "unit.h"

static char err[256];

/* 2026-11-22T11:00:00Z: 20779 days after the epoch (see test_event.c) * 86400 + 11 h. */
#define T_ISSUED 1795345200000LL
#define H72 (72LL * 3600 * 1000)

static sb_survey_request_t sample_request(void)
{
    sb_survey_request_t r;
    memset(&r, 0, sizeof r);
    strcpy(r.survey_id, "s-1");
    strcpy(r.journey, "support-csat");
    strcpy(r.customer_id, "c-42");
    strcpy(r.interaction_id, "t-9");
    strcpy(r.channel, "email");
    strcpy(r.locale, "zh-CN");
    strcpy(r.question, "您对本次服务满意吗?");
    r.kind = SB_KIND_CSAT;
    r.scale_min = 1, r.scale_max = 5;
    r.issued_ms = T_ISSUED;
    r.expires_ms = T_ISSUED + H72;
    strcpy(r.token, "v1.Zm9vYmFy-_");
    return r;
}

/* ---- requests ---- */

START_TEST(request_encode_exact)
{
    sb_survey_request_t r = sample_request();
    char *text = sb_survey_request_encode(&r);
    ck_assert_str_eq(text,
                     "{\"survey_id\":\"s-1\",\"kind\":\"csat\",\"journey\":\"support-csat\","
                     "\"customer_id\":\"c-42\",\"interaction_id\":\"t-9\",\"channel\":\"email\","
                     "\"locale\":\"zh-CN\",\"question\":\"您对本次服务满意吗?\","
                     "\"scale\":{\"min\":1,\"max\":5},\"issued_at\":\"2026-11-22T11:00:00.000Z\","
                     "\"expires_at\":\"2026-11-25T11:00:00.000Z\",\"token\":\"v1.Zm9vYmFy-_\"}");
    free(text);
    strcpy(r.device_id, "tablet-17");
    strcpy(r.channel, "device");
    r.reminder = true;
    r.kind = SB_KIND_NPS;
    r.scale_min = 0, r.scale_max = 10;
    text = sb_survey_request_encode(&r);
    ck_assert_ptr_nonnull(strstr(text, "\"kind\":\"nps\""));
    ck_assert_ptr_nonnull(strstr(text, "\"scale\":{\"min\":0,\"max\":10}"));
    ck_assert_ptr_nonnull(strstr(text, ",\"device_id\":\"tablet-17\",\"reminder\":true}"));
    free(text);
    r.kind = SB_KIND__N;
    ck_assert_ptr_null(sb_survey_request_encode(&r));
    r.kind = SB_KIND_CES;
    strcpy(r.question, "\xFF");
    ck_assert_ptr_null(sb_survey_request_encode(&r));
}
END_TEST

/* The request is written without jansson; the reference below is how it was built before
 * (json_pack + json_dumps compact), and the two must agree byte for byte. */
static char *reference_encode(const sb_survey_request_t *r)
{
    char issued[32], expires[32], *text = NULL;
    if ((unsigned)r->kind >= SB_KIND__N) return NULL;
    sb_time_format(r->issued_ms, issued);
    sb_time_format(r->expires_ms, expires);
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:{s:i, s:i}, s:s, s:s, s:s}",
                          "survey_id", r->survey_id, "kind", sb_kind_names[r->kind], "journey",
                          r->journey, "customer_id", r->customer_id, "interaction_id",
                          r->interaction_id, "channel", r->channel, "locale", r->locale, "question",
                          r->question, "scale", "min", r->scale_min, "max", r->scale_max,
                          "issued_at", issued, "expires_at", expires, "token", r->token);
    if (!o) return NULL;
    if ((!r->device_id[0] || !json_object_set_new(o, "device_id", json_string(r->device_id))) &&
        (!r->reminder || !json_object_set_new(o, "reminder", json_true())))
        text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return text;
}

START_TEST(request_encode_escapes)
{
    sb_survey_request_t r = sample_request();
    /* every byte 0x01..0x7F once: '"' -> \", '\\' -> \\, 0x08 0x0C 0x0A 0x0D 0x09 -> \b \f \n
     * \r \t, the other controls -> \u00XX upper-case (0x1F -> \u001F), '/' and DEL as is */
    for (int c = 1; c < 128; c++) r.question[c - 1] = (char)c;
    r.question[127] = '\0';
    char *text = sb_survey_request_encode(&r);
    ck_assert_ptr_nonnull(text);
    ck_assert_ptr_nonnull(strstr(text, "\\u0001\\u0002"));
    ck_assert_ptr_nonnull(strstr(text, "\\u0007\\b\\t\\n\\u000B\\f\\r\\u000E"));
    ck_assert_ptr_nonnull(strstr(text, "\\u001F !\\\"#"));
    ck_assert_ptr_nonnull(strstr(text, "./0"));
    ck_assert_ptr_nonnull(strstr(text, "[\\\\]"));
    ck_assert_ptr_nonnull(strstr(text, "}~\x7F\""));
    char *ref = reference_encode(&r);
    ck_assert_str_eq(text, ref);
    free(text);
    free(ref);
    /* negative and extreme scale numbers are written like jansson's %lld */
    r = sample_request();
    r.scale_min = -2147483647 - 1, r.scale_max = 2147483647;
    text = sb_survey_request_encode(&r);
    ck_assert_ptr_nonnull(strstr(text, "\"scale\":{\"min\":-2147483648,\"max\":2147483647}"));
    ref = reference_encode(&r);
    ck_assert_str_eq(text, ref);
    free(text);
    free(ref);
    /* invalid UTF-8 in any text field: NULL, as jansson refused it (a lone continuation
     * byte, an overlong '/', a surrogate, a truncated 3-byte sequence) */
    static const char *const bad[] = {"\x80", "\xC0\xAF", "\xED\xA0\x80", "ok\xE6\x82"};
    for (size_t b = 0; b < sizeof bad / sizeof *bad; b++) {
        for (int field = 0; field < 4; field++) {
            r = sample_request();
            char *dst[] = {r.survey_id, r.journey, r.token, r.device_id};
            strcpy(dst[field], bad[b]);
            ck_assert_ptr_null(sb_survey_request_encode(&r));
            ck_assert_ptr_null(reference_encode(&r));
        }
    }
}
END_TEST

/* Random requests (texts of random valid UTF-8 with controls, quotes and backslashes, random
 * optional fields): the same text as jansson's, and decodable back when the fields are
 * valid for the decoder. */
START_TEST(request_encode_matches_jansson)
{
    static const char *const pieces[] = {"a", "Z", "0", "-", "\"", "\\", "/", "\n", "\t", "\r",
                                         "\x01", "\x1f", "\x7f", "é", "ü", "€", "中", "😀", " ",
                                         "\b", "\f", "'", "<", "&"};
    enum { NP = sizeof pieces / sizeof *pieces };
    unsigned seed = 12345;
    for (int iter = 0; iter < 2000; iter++) {
        sb_survey_request_t r = sample_request();
        char *dst[] = {r.survey_id, r.journey, r.customer_id, r.interaction_id,
                       r.channel,   r.locale,  r.question,    r.device_id, r.token};
        size_t cap[] = {sizeof r.survey_id, sizeof r.journey, sizeof r.customer_id,
                        sizeof r.interaction_id, sizeof r.channel, sizeof r.locale,
                        sizeof r.question, sizeof r.device_id, sizeof r.token};
        for (size_t f = 0; f < sizeof dst / sizeof *dst; f++) {
            seed = seed * 1103515245 + 12345;
            size_t n = (seed >> 16) % 12, len = 0;
            dst[f][0] = '\0';
            for (size_t k = 0; k < n; k++) {
                seed = seed * 1103515245 + 12345;
                const char *p = pieces[(seed >> 16) % NP];
                if (len + strlen(p) + 1 >= cap[f]) break;
                strcpy(dst[f] + len, p);
                len += strlen(p);
            }
        }
        seed = seed * 1103515245 + 12345;
        r.reminder = (seed >> 16) & 1;
        r.kind = (sb_kind_t)((seed >> 17) % SB_KIND__N);
        r.scale_min = (int)((seed >> 20) % 5), r.scale_max = r.scale_min + 1 + (int)((seed >> 23) % 7);
        r.issued_ms = 1700000000000LL + (seed >> 8);
        r.expires_ms = r.issued_ms + 1 + (seed >> 12);
        char *a = sb_survey_request_encode(&r), *b = reference_encode(&r);
        ck_assert_ptr_nonnull(a);
        ck_assert_ptr_nonnull(b);
        ck_assert_str_eq(a, b);
        free(a);
        free(b);
    }
}
END_TEST

START_TEST(request_round_trip)
{
    sb_survey_request_t r = sample_request(), back;
    for (int variant = 0; variant < 2; variant++) {
        if (variant == 1) {
            strcpy(r.device_id, "tablet-17");
            strcpy(r.question, "第一行\n\t第二行: «ok»?");
            r.reminder = true;
            r.kind = SB_KIND_CES;
            r.scale_min = 1, r.scale_max = 7;
        }
        char *text = sb_survey_request_encode(&r);
        ck_assert_ptr_nonnull(text);
        ck_assert_int_eq(sb_survey_request_decode(text, strlen(text), &back, err, sizeof err), 0);
        free(text);
        ck_assert_str_eq(back.survey_id, r.survey_id);
        ck_assert_str_eq(back.journey, r.journey);
        ck_assert_str_eq(back.customer_id, r.customer_id);
        ck_assert_str_eq(back.interaction_id, r.interaction_id);
        ck_assert_str_eq(back.channel, r.channel);
        ck_assert_str_eq(back.locale, r.locale);
        ck_assert_str_eq(back.device_id, r.device_id);
        ck_assert_str_eq(back.question, r.question);
        ck_assert_int_eq(back.kind, r.kind);
        ck_assert_int_eq(back.scale_min, r.scale_min);
        ck_assert_int_eq(back.scale_max, r.scale_max);
        ck_assert_int_eq(back.issued_ms, r.issued_ms);
        ck_assert_int_eq(back.expires_ms, r.expires_ms);
        ck_assert_str_eq(back.token, r.token);
        ck_assert_int_eq(back.reminder, r.reminder);
    }
}
END_TEST

/* Decodes the sample request with one key replaced by `kv` (or removed when kv is ""). */
static const char *req_with(const char *key, const char *kv)
{
    static const char *keys[] = {"survey_id", "kind", "journey", "customer_id", "interaction_id",
                                 "channel", "locale", "question", "scale", "issued_at",
                                 "expires_at", "token"};
    static const char *vals[] = {"\"s-1\"", "\"csat\"", "\"support-csat\"", "\"c-42\"", "\"t-9\"",
                                 "\"email\"", "\"en\"", "\"How was it?\"", "{\"min\":1,\"max\":5}",
                                 "\"2026-11-22T11:00:00Z\"", "\"2026-11-25T11:00:00Z\"", "\"tok\""};
    static char buf[4096];
    static sb_survey_request_t out;
    size_t o = 0;
    o += (size_t)snprintf(buf + o, sizeof buf - o, "{");
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const char *item = NULL;
        char tmp[2048];
        if (strcmp(keys[i], key) == 0) {
            if (!*kv) continue;
            item = kv;
        } else {
            snprintf(tmp, sizeof tmp, "\"%s\":%s", keys[i], vals[i]);
            item = tmp;
        }
        o += (size_t)snprintf(buf + o, sizeof buf - o, "%s%s", o > 1 ? "," : "", item);
    }
    if (!strcmp(key, "extra")) o += (size_t)snprintf(buf + o, sizeof buf - o, ",%s", kv);
    snprintf(buf + o, sizeof buf - o, "}");
    err[0] = '\0';
    int rc = sb_survey_request_decode(buf, strlen(buf), &out, err, sizeof err);
    ck_assert_int_eq(rc, err[0] ? -1 : 0);
    return rc == 0 ? "" : err;
}

START_TEST(request_rejections)
{
    ck_assert_str_eq(req_with("none", ""), "");
    ck_assert_str_eq(req_with("locale", ""), ""); /* optional */
    ck_assert_str_eq(req_with("extra", "\"future_key\":[1]"), "");
    ck_assert_str_eq(req_with("survey_id", ""), "missing_field: survey_id");
    ck_assert_str_eq(req_with("kind", ""), "missing_field: kind");
    ck_assert_str_eq(req_with("journey", ""), "missing_field: journey");
    ck_assert_str_eq(req_with("customer_id", ""), "missing_field: customer_id");
    ck_assert_str_eq(req_with("interaction_id", ""), "missing_field: interaction_id");
    ck_assert_str_eq(req_with("channel", ""), "missing_field: channel");
    ck_assert_str_eq(req_with("question", ""), "missing_field: question");
    ck_assert_str_eq(req_with("scale", ""), "missing_field: scale");
    ck_assert_str_eq(req_with("issued_at", ""), "missing_field: issued_at");
    ck_assert_str_eq(req_with("expires_at", ""), "missing_field: expires_at");
    ck_assert_str_eq(req_with("token", ""), "missing_field: token");
    ck_assert_str_eq(req_with("kind", "\"kind\":\"nps2\""), "bad_kind: nps2");
    ck_assert_str_eq(req_with("kind", "\"kind\":2"), "wrong_type: kind");
    ck_assert_str_eq(req_with("customer_id", "\"customer_id\":42"), "wrong_type: customer_id");
    ck_assert_str_eq(req_with("channel", "\"channel\":\"sms/eu\""), "unsafe_chars: channel");
    ck_assert_str_eq(req_with("journey", "\"journey\":\"j#1\""), "unsafe_chars: journey");
    ck_assert_str_eq(req_with("extra", "\"device_id\":\"d+1\""), "unsafe_chars: device_id");
    ck_assert_str_eq(req_with("locale", "\"locale\":\"zh_CN\""), "bad_locale: zh_CN");
    ck_assert_str_eq(req_with("question", "\"question\":\"a\\u0007b\""), "bad_chars: question");
    /* DEL and the C1 controls (U+0085 NEL, U+009B CSI) are control characters too */
    ck_assert_str_eq(req_with("question", "\"question\":\"a\\u007fb\""), "bad_chars: question");
    ck_assert_str_eq(req_with("question", "\"question\":\"a\\u0085b\""), "bad_chars: question");
    ck_assert_str_eq(req_with("question", "\"question\":\"a\xC2\x9B" "1m\""), "bad_chars: question");
    ck_assert_str_eq(req_with("question", "\"question\":\"a\\u00a0b\\nc\\td\""), ""); /* NBSP */
    ck_assert_str_eq(req_with("scale", "\"scale\":[1,5]"), "wrong_type: scale");
    ck_assert_str_eq(req_with("scale", "\"scale\":{\"min\":1}"), "missing_field: scale.max");
    ck_assert_str_eq(req_with("scale", "\"scale\":{\"min\":1.0,\"max\":5}"), "wrong_type: scale.min");
    ck_assert_str_eq(req_with("scale", "\"scale\":{\"min\":5,\"max\":1}"), "bad_scale: 5..1");
    ck_assert_str_eq(req_with("scale", "\"scale\":{\"min\":0,\"max\":11}"), "bad_scale: 0..11");
    ck_assert_str_eq(req_with("scale", "\"scale\":{\"min\":-1,\"max\":5}"), "bad_scale: -1..5");
    ck_assert_str_eq(req_with("expires_at", "\"expires_at\":\"2026-11-22T11:00:00Z\""),
                     "bad_time: expires_at: not after issued_at");
    ck_assert_str_eq(req_with("issued_at", "\"issued_at\":\"soon\""),
                     "bad_time: issued_at: not RFC 3339 or epoch milliseconds");
    /* Epoch ms is accepted for the times as well: 1795345200000 = 2026-11-22T11:00:00Z. */
    ck_assert_str_eq(req_with("issued_at", "\"issued_at\":1795345200000"), "");
    ck_assert_str_eq(req_with("token", "\"token\":\"a b\""), "bad_token_format");
    ck_assert_str_eq(req_with("extra", "\"reminder\":\"yes\""), "wrong_type: reminder");
    ck_assert_str_eq(req_with("extra", "\"reminder\":false"), "");

    /* the limit matches the config's: questions up to 2000 bytes */
    char q[2100], kv[2200];
    memset(q, 'q', 2000);
    q[2000] = '\0';
    snprintf(kv, sizeof kv, "\"question\":\"%s\"", q);
    ck_assert_str_eq(req_with("question", kv), "");
    q[2000] = 'q', q[2001] = '\0';
    snprintf(kv, sizeof kv, "\"question\":\"%s\"", q);
    ck_assert_str_eq(req_with("question", kv), "too_long: question");

    ck_assert_int_eq(sb_survey_request_decode("[]", 2, &(sb_survey_request_t){0}, err, sizeof err), -1);
    ck_assert_str_eq(err, "invalid_json: not an object");
}
END_TEST

/* ---- responses ---- */

static sb_survey_response_t resp;

static const char *response(const char *text, const char *device)
{
    err[0] = '\0';
    int rc = sb_survey_response_decode(text, strlen(text), device, &resp, err, sizeof err);
    ck_assert_int_eq(rc, err[0] ? -1 : 0);
    return rc == 0 ? "" : err;
}

START_TEST(response_basic)
{
    ck_assert_str_eq(response("{\"survey_id\":\"s-1\",\"token\":\"tok\",\"score\":4}", NULL), "");
    ck_assert_str_eq(resp.survey_id, "s-1");
    ck_assert_str_eq(resp.token, "tok");
    ck_assert_int_eq(resp.score, 4);
    ck_assert(!resp.has_comment && !resp.has_answered);
    ck_assert_str_eq(resp.device_id, "");

    /* Full form, with keys we do not know (ignored) and dimensions we never trust. */
    ck_assert_str_eq(response("{\"survey_id\":\"s-1\",\"token\":\"tok\",\"score\":9,"
                              "\"comment\":\"很好 \\ud83d\\ude00\",\"answered_at\":\"2026-11-22T19:30:00.5+08:00\","
                              "\"agent\":\"a-999\",\"v\":2,\"meta\":{\"app\":\"ios\"}}",
                              "tablet-17"),
                     "");
    ck_assert_int_eq(resp.score, 9);
    ck_assert(resp.has_comment);
    ck_assert_str_eq(resp.comment, "很好 \xF0\x9F\x98\x80");
    ck_assert(resp.has_answered);
    /* 19:30:00.5+08:00 = 11:30:00.500Z = 1795345200000 + 1800000 + 500. */
    ck_assert_int_eq(resp.answered_ms, 1795347000500LL);
    ck_assert_str_eq(resp.device_id, "tablet-17");

    ck_assert_str_eq(response("{\"survey_id\":\"s-1\",\"token\":\"tok\",\"score\":0,"
                              "\"answered_at\":1795345200000,\"comment\":null}", NULL),
                     "");
    ck_assert_int_eq(resp.answered_ms, 1795345200000LL);
    ck_assert(!resp.has_comment);
    ck_assert_str_eq(response("{\"survey_id\":\"s-1\",\"token\":\"tok\",\"score\":-2147483648}", NULL), "");
    ck_assert_int_eq(resp.score, -2147483647 - 1);
    ck_assert_str_eq(response("{\"survey_id\":\"s-1\",\"token\":\"tok\",\"score\":2147483647}", NULL), "");
}
END_TEST

START_TEST(response_rejections)
{
    ck_assert_str_eq(response("{\"survey_id\":\"s-1\",\"token\":\"tok\",\"score\":4.0}", NULL), "score_not_integer");
    ck_assert_str_eq(response("{\"survey_id\":\"s-1\",\"token\":\"tok\",\"score\":4.5}", NULL), "score_not_integer");
    ck_assert_str_eq(response("{\"survey_id\":\"s-1\",\"token\":\"tok\",\"score\":4e0}", NULL), "score_not_integer");
    ck_assert_str_eq(response("{\"survey_id\":\"s-1\",\"token\":\"tok\",\"score\":\"4\"}", NULL), "wrong_type: score");
    ck_assert_str_eq(response("{\"survey_id\":\"s-1\",\"token\":\"tok\",\"score\":true}", NULL), "wrong_type: score");
    ck_assert_str_eq(response("{\"survey_id\":\"s-1\",\"token\":\"tok\"}", NULL), "missing_field: score");
    ck_assert_str_eq(response("{\"survey_id\":\"s-1\",\"token\":\"tok\",\"score\":null}", NULL), "missing_field: score");
    ck_assert_str_eq(response("{\"survey_id\":\"s-1\",\"token\":\"tok\",\"score\":2147483648}", NULL), "score_out_of_range");
    ck_assert_str_eq(response("{\"survey_id\":\"s-1\",\"token\":\"tok\",\"score\":-2147483649}", NULL), "score_out_of_range");
    ck_assert_str_eq(response("{\"token\":\"tok\",\"score\":4}", NULL), "missing_field: survey_id");
    ck_assert_str_eq(response("{\"survey_id\":\"s-1\",\"score\":4}", NULL), "missing_field: token");
    ck_assert_str_eq(response("{\"survey_id\":\"s/1\",\"token\":\"tok\",\"score\":4}", NULL), "unsafe_chars: survey_id");
    ck_assert_str_eq(response("{\"survey_id\":7,\"token\":\"tok\",\"score\":4}", NULL), "wrong_type: survey_id");
    ck_assert_str_eq(response("{\"survey_id\":\"s-1\",\"token\":7,\"score\":4}", NULL), "wrong_type: token");
    ck_assert_str_eq(response("{\"survey_id\":\"s-1\",\"token\":\"a b\",\"score\":4}", NULL), "bad_token_format");
    ck_assert_str_eq(response("{\"survey_id\":\"s-1\",\"token\":\"t\xC3\xA9\",\"score\":4}", NULL), "bad_token_format");
    ck_assert_str_eq(response("{\"survey_id\":\"s-1\",\"token\":\"tok\",\"score\":4,\"comment\":5}", NULL),
                     "wrong_type: comment");
    ck_assert_str_eq(response("{\"survey_id\":\"s-1\",\"token\":\"tok\",\"score\":4,\"comment\":\"a\\u001bb\"}", NULL),
                     "bad_comment: control character");
    ck_assert_str_eq(response("{\"survey_id\":\"s-1\",\"token\":\"tok\",\"score\":4,\"comment\":\"a\\u0085b\"}", NULL),
                     "bad_comment: control character"); /* C1: NEL */
    ck_assert_str_eq(response("{\"survey_id\":\"s-1\",\"token\":\"tok\",\"score\":4,\"comment\":\"\xC2\x9B" "31m\"}", NULL),
                     "bad_comment: control character"); /* C1: CSI, raw */
    ck_assert_str_eq(response("{\"survey_id\":\"s-1\",\"token\":\"tok\",\"score\":4,\"comment\":\"a\\u007f\"}", NULL),
                     "bad_comment: control character");
    ck_assert_str_eq(response("{\"survey_id\":\"s-1\",\"token\":\"tok\",\"score\":4,\"comment\":\"\xC2\xA0\xC2\xBF\"}", NULL),
                     ""); /* U+00A0, U+00BF are not controls */
    ck_assert_str_eq(response("{\"survey_id\":\"s-1\",\"token\":\"tok\",\"score\":4,\"answered_at\":\"now\"}", NULL),
                     "bad_time: answered_at: not RFC 3339 or epoch milliseconds");
    ck_assert_str_eq(response("{\"survey_id\":\"s-1\",\"token\":\"tok\",\"score\":4}", "dev#1"),
                     "unsafe_chars: device_id");
    ck_assert_str_eq(response("{\"survey_id\":\"s-1\",\"token\":\"tok\",\"score\":10,\"score\":0}", NULL),
                     "invalid_json: duplicate object key near '\"score\"' (line 1, column 51)");
    ck_assert_str_eq(response("{\"survey_id\":\"s-1\",\"token\":\"tok\",\"score\":4", NULL),
                     "invalid_json: '}' expected near end of file (line 1, column 42)");
    ck_assert_str_eq(response("{\"survey_id\":\"s-1\xFF\",\"token\":\"tok\",\"score\":4}", NULL), "invalid_utf8");
}
END_TEST

START_TEST(response_token_and_comment_limits)
{
    char text[8192], tok[200], comment[2100];
    memset(tok, 'T', 127);
    tok[127] = '\0';
    snprintf(text, sizeof text, "{\"survey_id\":\"s\",\"token\":\"%s\",\"score\":1}", tok);
    ck_assert_str_eq(response(text, NULL), "");
    ck_assert_int_eq(strlen(resp.token), 127);
    tok[127] = 'T', tok[128] = '\0';
    snprintf(text, sizeof text, "{\"survey_id\":\"s\",\"token\":\"%s\",\"score\":1}", tok);
    ck_assert_str_eq(response(text, NULL), "bad_token_format");

    /* Exactly 2000 bytes: 666 three-byte characters and "ok". */
    comment[0] = '\0';
    for (int i = 0; i < 666; i++) strcat(comment, "好");
    strcat(comment, "ok");
    ck_assert_int_eq(strlen(comment), 2000);
    snprintf(text, sizeof text, "{\"survey_id\":\"s\",\"token\":\"t\",\"score\":1,\"comment\":\"%s\"}", comment);
    ck_assert_str_eq(response(text, NULL), "");
    ck_assert_str_eq(resp.comment, comment);
    strcat(comment, "!");
    snprintf(text, sizeof text, "{\"survey_id\":\"s\",\"token\":\"t\",\"score\":1,\"comment\":\"%s\"}", comment);
    ck_assert_str_eq(response(text, NULL), "comment_too_long");

    /* Newlines and tabs stay; CR LF and a lone CR become LF; "" is no comment. */
    ck_assert_str_eq(response("{\"survey_id\":\"s\",\"token\":\"t\",\"score\":1,"
                              "\"comment\":\"a\\r\\nb\\rc\\n\\td\"}", NULL),
                     "");
    ck_assert_str_eq(resp.comment, "a\nb\nc\n\td");
    ck_assert_str_eq(response("{\"survey_id\":\"s\",\"token\":\"t\",\"score\":1,\"comment\":\"\"}", NULL), "");
    ck_assert(!resp.has_comment);
}
END_TEST

START_TEST(response_round_trip)
{
    sb_survey_response_t r, back;
    memset(&r, 0, sizeof r);
    strcpy(r.survey_id, "s-77");
    strcpy(r.token, "abc.DEF_123");
    r.score = 10;
    char *text = sb_survey_response_encode(&r);
    ck_assert_str_eq(text, "{\"survey_id\":\"s-77\",\"token\":\"abc.DEF_123\",\"score\":10}");
    free(text);
    r.has_comment = true;
    strcpy(r.comment, "Техник пришёл вовремя.\n谢谢");
    r.has_answered = true;
    r.answered_ms = T_ISSUED + 1;
    text = sb_survey_response_encode(&r);
    ck_assert_str_eq(text, "{\"survey_id\":\"s-77\",\"token\":\"abc.DEF_123\",\"score\":10,"
                           "\"comment\":\"Техник пришёл вовремя.\\n谢谢\","
                           "\"answered_at\":\"2026-11-22T11:00:00.001Z\"}");
    ck_assert_int_eq(sb_survey_response_decode(text, strlen(text), "van-2", &back, err, sizeof err), 0);
    free(text);
    ck_assert_str_eq(back.survey_id, r.survey_id);
    ck_assert_str_eq(back.token, r.token);
    ck_assert_int_eq(back.score, 10);
    ck_assert_str_eq(back.comment, r.comment);
    ck_assert_int_eq(back.answered_ms, r.answered_ms);
    ck_assert_str_eq(back.device_id, "van-2");
}
END_TEST

/* ---- dead letters ---- */

START_TEST(dlq_envelope)
{
    char *t = sb_dlq_encode("missing_field: kind", "kafka:interactions/3@42", "{\"a\":1}", 7);
    ck_assert_str_eq(t, "{\"error\":\"missing_field: kind\",\"source\":\"kafka:interactions/3@42\","
                        "\"payload\":\"{\\\"a\\\":1}\"}");
    free(t);
    /* Malformed bytes become U+FFFD, a NUL stays as \u0000: the envelope is valid JSON, and
     * says the payload is not the original (a replay must not send it). */
    t = sb_dlq_encode("invalid_utf8", "mqtt:fieldservice/x/visit/completed", "a\xFF" "b\0c\xC3", 6);
    ck_assert_str_eq(t, "{\"error\":\"invalid_utf8\",\"source\":\"mqtt:fieldservice/x/visit/completed\","
                        "\"payload\":\"a\xEF\xBF\xBD" "b\\u0000c\xEF\xBF\xBD\",\"repaired\":true}");
    json_t *j = json_loads(t, JSON_ALLOW_NUL, NULL);
    ck_assert_ptr_nonnull(j);
    json_decref(j);
    free(t);
    /* NULL pieces are empty strings; a broken reason is repaired too. */
    t = sb_dlq_encode(NULL, "src\xC0", NULL, 0);
    ck_assert_str_eq(t, "{\"error\":\"\",\"source\":\"src\xEF\xBF\xBD\",\"payload\":\"\","
                        "\"repaired\":true}");
    free(t);
    /* a repaired reason is only text: the letter can still be sent again */
    t = sb_dlq_encode("x\xC0", "kafka:t/0@1", "{}", 2);
    ck_assert_str_eq(t, "{\"error\":\"x\xEF\xBF\xBD\",\"source\":\"kafka:t/0@1\",\"payload\":\"{}\"}");
    free(t);
}
END_TEST

START_TEST(dlq_truncation)
{
    /* 4095 'a' then "中" (3 bytes): the character would end at byte 4098 > 4096, so the cut
     * falls before it and the payload keeps exactly 4095 bytes. */
    size_t n = 4095 + 3 + 4;
    char *p = malloc(n);
    memset(p, 'a', 4095);
    memcpy(p + 4095, "中tail", 7);
    char *t = sb_dlq_encode("too_large", "kafka:t/0@1", p, n);
    json_t *j = json_loads(t, 0, NULL);
    ck_assert_ptr_nonnull(j);
    const char *payload = json_string_value(json_object_get(j, "payload"));
    ck_assert_int_eq(strlen(payload), 4095);
    ck_assert_int_eq(strspn(payload, "a"), 4095);
    ck_assert(json_is_true(json_object_get(j, "truncated")));
    json_decref(j);
    free(t);
    /* 4093 'a' + "中" is exactly 4096 bytes: kept whole, no "truncated". */
    memset(p, 'a', 4093);
    memcpy(p + 4093, "中", 3);
    t = sb_dlq_encode("x", "y", p, 4096);
    j = json_loads(t, 0, NULL);
    payload = json_string_value(json_object_get(j, "payload"));
    ck_assert_int_eq(strlen(payload), 4096);
    ck_assert_str_eq(payload + 4093, "中");
    ck_assert_ptr_null(json_object_get(j, "truncated"));
    json_decref(j);
    free(t);
    free(p);
    /* An MQTT topic of 1100 bytes: the source keeps 1024, which names another topic, so the
     * letter says it was cut and a replay skips it instead of publishing there. 1019 bytes of
     * topic after "mqtt:" still fit whole. */
    char src[1106];
    memcpy(src, "mqtt:", 5);
    memset(src + 5, 'a', 1100);
    src[1105] = '\0';
    t = sb_dlq_encode("missing_field: score", src, "{}", 2);
    sb_dlq_letter_t l;
    sb_dlq_letter_read(t, strlen(t), &l);
    ck_assert_uint_eq(strlen(l.source), 1024);
    ck_assert_str_eq(l.skip, "truncated");
    sb_dlq_letter_free(&l);
    free(t);
    src[5 + 1019] = '\0';
    t = sb_dlq_encode("missing_field: score", src, "{}", 2);
    sb_dlq_letter_read(t, strlen(t), &l);
    ck_assert_ptr_null(l.skip);
    ck_assert_str_eq(l.source, src);
    sb_dlq_letter_free(&l);
    free(t);
}
END_TEST

/* Reads text as a dead letter; its skip cause must be want (NULL: replayable). */
static void letter(const char *text, const char *want_code, const char *want_skip,
                   sb_dlq_letter_t *l)
{
    sb_dlq_letter_read(text, strlen(text), l);
    ck_assert_str_eq(l->code, want_code);
    if (want_skip)
        ck_assert_msg(l->skip && !strcmp(l->skip, want_skip), "%s: skip %s, want %s", text,
                      l->skip ? l->skip : "(none)", want_skip);
    else
        ck_assert_msg(!l->skip, "%s: skipped as %s", text, l->skip);
}

START_TEST(dlq_letters)
{
    sb_dlq_letter_t l;
    letter("{\"error\":\"unknown_survey: no survey s-1\",\"source\":\"kafka:responses/3@42\","
           "\"payload\":\"{\\\"score\\\":9}\"}",
           "unknown_survey", NULL, &l);
    ck_assert_int_eq(l.to, SB_DLQ_TO_KAFKA);
    ck_assert_str_eq(l.topic, "responses");
    ck_assert_str_eq(l.source, "kafka:responses/3@42");
    ck_assert_uint_eq(l.len, 11);
    ck_assert_str_eq(l.payload, "{\"score\":9}");
    sb_dlq_letter_free(&l);
    letter("{\"error\":\"missing_field: device_id\",\"source\":\"mqtt:fs/d-7/visit/response\","
           "\"payload\":\"\"}",
           "missing_field", NULL, &l);
    ck_assert_int_eq(l.to, SB_DLQ_TO_MQTT);
    ck_assert_str_eq(l.topic, "fs/d-7/visit/response");
    ck_assert_uint_eq(l.len, 0);
    sb_dlq_letter_free(&l);
    /* the causes of a skip, and a reason without a code */
    letter("{\"error\":\"too_large\",\"source\":\"kafka:i/0@1\",\"payload\":\"{\",\"truncated\":true}",
           "too_large", "truncated", &l);
    sb_dlq_letter_free(&l);
    letter("{\"error\":\"invalid_utf8\",\"source\":\"mqtt:a/b\",\"payload\":\"x\",\"repaired\":true}",
           "invalid_utf8", "repaired", &l);
    sb_dlq_letter_free(&l);
    letter("{\"error\":\"Bad\",\"source\":\"file:/tmp/a\",\"payload\":\"\"}", "unknown",
           "unknown_source", &l);
    sb_dlq_letter_free(&l);
    letter("{\"error\":\"x\",\"source\":\"kafka:nopartition\",\"payload\":\"\"}", "x",
           "unreadable", &l);
    sb_dlq_letter_free(&l);
    letter("{\"error\":\"x\",\"source\":\"kafka:t/0@1\",\"payload\":7}", "x", "unreadable", &l);
    sb_dlq_letter_free(&l);
    /* a topic the transport would refuse: the replay's publish would fail, and with it the
     * whole run, every time */
    const char *bad[] = {"kafka:/0@1", "kafka:a b/0@1", "kafka:r\\u00e9ponses/0@1", "mqtt:",
                         "mqtt:fs/+/visit/response", "mqtt:fs/#"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[200];
        snprintf(text, sizeof text, "{\"error\":\"x\",\"source\":\"%s\",\"payload\":\"\"}", bad[i]);
        letter(text, "x", "bad_topic", &l);
        sb_dlq_letter_free(&l);
    }
    /* A message dead-lettered for its NUL byte: the envelope holds it as \u0000, and the
     * letter reads back with its code and the bytes as they came. A NUL in the source
     * would cut the topic: unreadable. */
    char *t = sb_dlq_encode("nul_byte: \\u0000 escape", "kafka:interactions/1@5", "{\"a\":\"\0\"}", 8);
    letter(t, "nul_byte", NULL, &l);
    ck_assert_str_eq(l.topic, "interactions");
    ck_assert_uint_eq(l.len, 8);
    ck_assert_mem_eq(l.payload, "{\"a\":\"\0\"}", 8);
    sb_dlq_letter_free(&l);
    free(t);
    letter("{\"error\":\"x\",\"source\":\"kafka:a\\u0000b/0@1\",\"payload\":\"\"}", "x", "unreadable", &l);
    sb_dlq_letter_free(&l);
    letter("not json", "unknown", "unreadable", &l);
    ck_assert_ptr_null(l.source);
    sb_dlq_letter_free(&l);
    sb_dlq_letter_read(NULL, 0, &l); /* a Kafka tombstone */
    ck_assert_str_eq(l.skip, "unreadable");
    sb_dlq_letter_free(&l);
}
END_TEST

START_TEST(reason_codes)
{
    char code[32];
    ck_assert_int_eq(sb_reason_code("missing_field: customer_id", code, sizeof code), 0);
    ck_assert_str_eq(code, "missing_field");
    ck_assert_int_eq(sb_reason_code("too_large", code, sizeof code), 0);
    ck_assert_str_eq(code, "too_large");
    ck_assert_int_eq(sb_reason_code("invalid_json: '}' expected near 'x' (line 1, column 2)", code, sizeof code), 0);
    ck_assert_str_eq(code, "invalid_json");
    ck_assert_int_eq(sb_reason_code("", code, sizeof code), -1);
    ck_assert_str_eq(code, "unknown");
    ck_assert_int_eq(sb_reason_code(NULL, code, sizeof code), -1);
    ck_assert_int_eq(sb_reason_code("Bad Thing: x", code, sizeof code), -1);
    ck_assert_str_eq(code, "unknown");
    char small[8];
    ck_assert_int_eq(sb_reason_code("missing_field: x", small, sizeof small), -1);
    ck_assert_str_eq(small, "unknown");
}
END_TEST

START_TEST(quote_details)
{
    char q[96], in[200];
    memset(in, 'x', 100);
    sb_dlq_quote(q, sizeof q, in, 100);
    ck_assert_int_eq(strlen(q), 67);
    ck_assert_str_eq(q + 64, "...");
    memset(in, 'x', 63);
    memcpy(in + 63, "中", 3);
    sb_dlq_quote(q, sizeof q, in, 66); /* the character would cross byte 64 */
    ck_assert_int_eq(strlen(q), 66);
    ck_assert_str_eq(q + 63, "...");
    sb_dlq_quote(q, sizeof q, "a\nb\xFF", 4);
    ck_assert_str_eq(q, "a?b?");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("survey");
    TCase *tq = tcase_create("request");
    tcase_add_test(tq, request_encode_exact);
    tcase_add_test(tq, request_round_trip);
    tcase_add_test(tq, request_encode_escapes);
    tcase_add_test(tq, request_encode_matches_jansson);
    tcase_add_test(tq, request_rejections);
    suite_add_tcase(s, tq);
    TCase *tr = tcase_create("response");
    tcase_add_test(tr, response_basic);
    tcase_add_test(tr, response_rejections);
    tcase_add_test(tr, response_token_and_comment_limits);
    tcase_add_test(tr, response_round_trip);
    suite_add_tcase(s, tr);
    TCase *td = tcase_create("dlq");
    tcase_add_test(td, dlq_envelope);
    tcase_add_test(td, dlq_truncation);
    tcase_add_test(td, dlq_letters);
    tcase_add_test(td, reason_codes);
    tcase_add_test(td, quote_details);
    suite_add_tcase(s, td);
    return sb_unit_run(s);
}
