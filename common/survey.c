/* Survey requests and responses: encoding for the bus and strict decoding of what comes
 * back from it; every rejection is a "code: detail" dead-letter reason. Pure. */
#include "survey.h"

#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "dlq.h"
#include "event.h"

#define MSG_TOKENS 64 /* more go to jansson: a request has about 30, a response 12 */

/* ---- field readers: 1 present, 0 absent (missing, null or ""), -1 error ---- */

static int get_text(const sb_jdoc_t *doc, const char *key, char *dst, size_t max, char *err,
                    size_t errlen)
{
    sb_jval_t v = sb_jdoc_key(doc, NULL, key);
    if (sb_jval_absent(&v)) return 0;
    if (v.type != SB_JV_STR) return sb_fail(err, errlen, "wrong_type: %s", key);
    if (v.n == 0) return 0;
    if (v.n > max) return sb_fail(err, errlen, "too_long: %s", key);
    memcpy(dst, v.s, v.n);
    dst[v.n] = '\0';
    return 1;
}

/* A text used in topics and keys. */
static int get_id(const sb_jdoc_t *doc, const char *key, bool required, char *dst, char *err, size_t errlen)
{
    int rc = get_text(doc, key, dst, SB_STR_MAX, err, errlen);
    if (rc < 0) return -1;
    if (rc == 0) return required ? sb_fail(err, errlen, "missing_field: %s", key) : 0;
    if (!sb_str_topic_safe(dst, strlen(dst))) return sb_fail(err, errlen, "unsafe_chars: %s", key);
    return 1;
}

static bool token_ok(const char *s, size_t n)
{
    if (n == 0 || n > SB_TOKEN_TEXT_MAX) return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '!' || s[i] > '~') return false;
    return true;
}

static int get_token(const sb_jdoc_t *doc, char *dst, char *err, size_t errlen)
{
    sb_jval_t v = sb_jdoc_key(doc, NULL, "token");
    if (sb_jval_absent(&v)) return sb_fail(err, errlen, "missing_field: token");
    if (v.type != SB_JV_STR) return sb_fail(err, errlen, "wrong_type: token");
    if (v.n == 0) return sb_fail(err, errlen, "missing_field: token");
    if (!token_ok(v.s, v.n)) return sb_fail(err, errlen, "bad_token_format");
    memcpy(dst, v.s, v.n);
    dst[v.n] = '\0';
    return 1;
}

static int get_time(const sb_jdoc_t *doc, const char *key, bool required, int64_t *ms, char *err,
                    size_t errlen)
{
    sb_jval_t v = sb_jdoc_key(doc, NULL, key);
    if (sb_jval_absent(&v) || (v.type == SB_JV_STR && v.n == 0))
        return required ? sb_fail(err, errlen, "missing_field: %s", key) : 0;
    return sb_dlq_time_val(&v, key, ms, err, errlen) == 0 ? 1 : -1;
}

static int get_int(const sb_jdoc_t *doc, const sb_jval_t *obj, const char *key, const char *name,
                   int *out, char *err, size_t errlen)
{
    sb_jval_t v = sb_jdoc_key(doc, obj, key);
    if (sb_jval_absent(&v)) return sb_fail(err, errlen, "missing_field: %s", name);
    if (v.type != SB_JV_INT) return sb_fail(err, errlen, "wrong_type: %s", name);
    int64_t n = v.i;
    if (n < INT_MIN || n > INT_MAX) return sb_fail(err, errlen, "bad_scale: %s", name);
    *out = (int)n;
    return 1;
}

/* ---- requests ---- */

/* The dispatcher encodes one request per fired survey, so the request is written directly
 * rather than built as a jansson tree and dumped (that was most of the dispatcher's CPU per
 * survey). The output is byte for byte what json_dumps(JSON_COMPACT) made of the same
 * object, keys in insertion order: strings must be valid UTF-8; '"', '\\' and control
 * characters are escaped (\b \f \n \r \t, the others as \u00XX with upper-case hex);
 * everything else, '/' and non-ASCII included, is copied as is. */

/* Bytes of s once escaped, or -1 when s is not valid UTF-8. */
static ptrdiff_t json_str_len(const char *s, size_t n)
{
    if (!sb_utf8_valid(s, n)) return -1;
    ptrdiff_t len = 2;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\' || c == '\b' || c == '\f' || c == '\n' || c == '\r' || c == '\t')
            len += 2;
        else if (c < 0x20)
            len += 6;
        else
            len += 1;
    }
    return len;
}

/* Writes s (n bytes, already checked) as a JSON string; returns the end. */
static char *json_str_put(char *o, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    *o++ = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            *o++ = (char)c;
            continue;
        }
        *o++ = '\\';
        switch (c) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '\b': *o++ = 'b'; break;
        case '\f': *o++ = 'f'; break;
        case '\n': *o++ = 'n'; break;
        case '\r': *o++ = 'r'; break;
        case '\t': *o++ = 't'; break;
        default:
            *o++ = 'u', *o++ = '0', *o++ = '0';
            *o++ = hex[c >> 4], *o++ = hex[c & 15];
        }
    }
    *o++ = '"';
    return o;
}

/* Writes v in decimal; returns the end. */
static char *json_int_put(char *o, long long v)
{
    char tmp[24];
    int n = 0;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) *o++ = '-';
    while (n) *o++ = tmp[--n];
    return o;
}

char *sb_survey_request_encode(const sb_survey_request_t *r)
{
    char issued[32], expires[32];
    if ((unsigned)r->kind >= SB_KIND__N) return NULL;
    sb_time_format(r->issued_ms, issued);
    sb_time_format(r->expires_ms, expires);
    /* key (with its quotes, colon and the comma before it), then the value */
    struct {
        const char *key;
        const char *val;
    } f[] = {{"{\"survey_id\":", r->survey_id},
             {",\"kind\":", sb_kind_names[r->kind]},
             {",\"journey\":", r->journey},
             {",\"customer_id\":", r->customer_id},
             {",\"interaction_id\":", r->interaction_id},
             {",\"channel\":", r->channel},
             {",\"locale\":", r->locale},
             {",\"question\":", r->question},
             {NULL, NULL}, /* scale */
             {",\"issued_at\":", issued},
             {",\"expires_at\":", expires},
             {",\"token\":", r->token},
             {",\"device_id\":", r->device_id[0] ? r->device_id : NULL}};
    enum { NF = sizeof f / sizeof f[0] };
    size_t vlen[NF];
    size_t total = sizeof ",\"scale\":{\"min\":,\"max\":}" + 2 * 12 + sizeof ",\"reminder\":true}";
    for (size_t i = 0; i < NF; i++) {
        if (!f[i].key || !f[i].val) continue;
        vlen[i] = strlen(f[i].val);
        ptrdiff_t n = json_str_len(f[i].val, vlen[i]);
        if (n < 0) return NULL;
        total += strlen(f[i].key) + (size_t)n;
    }
    char *text = malloc(total), *o = text;
    if (!text) return NULL;
    for (size_t i = 0; i < NF; i++) {
        if (!f[i].key) {
            static const char k1[] = ",\"scale\":{\"min\":", k2[] = ",\"max\":";
            memcpy(o, k1, sizeof k1 - 1), o += sizeof k1 - 1;
            o = json_int_put(o, r->scale_min);
            memcpy(o, k2, sizeof k2 - 1), o += sizeof k2 - 1;
            o = json_int_put(o, r->scale_max);
            *o++ = '}';
            continue;
        }
        if (!f[i].val) continue;
        size_t kl = strlen(f[i].key);
        memcpy(o, f[i].key, kl), o += kl;
        o = json_str_put(o, f[i].val, vlen[i]);
    }
    if (r->reminder) {
        static const char rem[] = ",\"reminder\":true";
        memcpy(o, rem, sizeof rem - 1), o += sizeof rem - 1;
    }
    *o++ = '}';
    *o = '\0';
    return text;
}

int sb_survey_request_decode(const char *buf, size_t len, sb_survey_request_t *out, char *err,
                             size_t errlen)
{
    int rc = -1;
    char q[96], kind[SB_STR_MAX + 1];
    memset(out, 0, sizeof *out);
    sb_jtok_t toks[MSG_TOKENS];
    sb_jdoc_t d, *doc = &d;
    if (sb_dlq_open(buf, len, toks, MSG_TOKENS, doc, err, errlen) != 0) return -1;
    if (get_id(doc, "survey_id", true, out->survey_id, err, errlen) < 0) goto fail;

    int k = get_text(doc, "kind", kind, SB_STR_MAX, err, errlen);
    if (k < 0) goto fail;
    if (k == 0) {
        sb_fail(err, errlen, "missing_field: kind");
        goto fail;
    }
    if ((k = sb_kind_parse(kind)) < 0) {
        sb_dlq_quote(q, sizeof q, kind, strlen(kind));
        sb_fail(err, errlen, "bad_kind: %s", q);
        goto fail;
    }
    out->kind = (sb_kind_t)k;

    if (get_id(doc, "journey", true, out->journey, err, errlen) < 0 ||
        get_id(doc, "customer_id", true, out->customer_id, err, errlen) < 0 ||
        get_id(doc, "interaction_id", true, out->interaction_id, err, errlen) < 0 ||
        get_id(doc, "channel", true, out->channel, err, errlen) < 0)
        goto fail;

    int lr = get_text(doc, "locale", out->locale, SB_STR_MAX, err, errlen);
    if (lr < 0) goto fail;
    if (lr > 0 && !sb_event_locale_valid(out->locale)) {
        sb_dlq_quote(q, sizeof q, out->locale, strlen(out->locale));
        sb_fail(err, errlen, "bad_locale: %s", q);
        goto fail;
    }

    int qr = get_text(doc, "question", out->question, SB_QUESTION_MAX, err, errlen);
    if (qr < 0) goto fail;
    if (qr == 0) {
        sb_fail(err, errlen, "missing_field: question");
        goto fail;
    }
    if (!sb_text_no_controls(out->question, strlen(out->question), "\n\t")) {
        sb_fail(err, errlen, "bad_chars: question");
        goto fail;
    }

    sb_jval_t scale = sb_jdoc_key(doc, NULL, "scale");
    if (sb_jval_absent(&scale)) {
        sb_fail(err, errlen, "missing_field: scale");
        goto fail;
    }
    if (scale.type != SB_JV_OBJ) {
        sb_fail(err, errlen, "wrong_type: scale");
        goto fail;
    }
    if (get_int(doc, &scale, "min", "scale.min", &out->scale_min, err, errlen) < 0 ||
        get_int(doc, &scale, "max", "scale.max", &out->scale_max, err, errlen) < 0)
        goto fail;
    if (out->scale_min < 0 || out->scale_min >= out->scale_max || out->scale_max > SB_SCORE_MAX) {
        sb_fail(err, errlen, "bad_scale: %d..%d", out->scale_min, out->scale_max);
        goto fail;
    }

    if (get_time(doc, "issued_at", true, &out->issued_ms, err, errlen) < 0 ||
        get_time(doc, "expires_at", true, &out->expires_ms, err, errlen) < 0)
        goto fail;
    if (out->expires_ms <= out->issued_ms) {
        sb_fail(err, errlen, "bad_time: expires_at: not after issued_at");
        goto fail;
    }
    if (get_token(doc, out->token, err, errlen) < 0) goto fail;
    if (get_id(doc, "device_id", false, out->device_id, err, errlen) < 0) goto fail;

    sb_jval_t rem = sb_jdoc_key(doc, NULL, "reminder");
    if (!sb_jval_absent(&rem)) {
        if (rem.type != SB_JV_TRUE && rem.type != SB_JV_FALSE) {
            sb_fail(err, errlen, "wrong_type: reminder");
            goto fail;
        }
        out->reminder = rem.type == SB_JV_TRUE;
    }
    rc = 0;
fail:
    sb_dlq_close(doc);
    return rc;
}

/* ---- responses ---- */

/* Checks and copies a comment, CR LF and lone CR made LF. Returns 1, 0 (empty) or -1. */
static int read_comment(const sb_jval_t *v, sb_survey_response_t *out, char *err, size_t errlen)
{
    if (v->type != SB_JV_STR) return sb_fail(err, errlen, "wrong_type: comment");
    size_t n = v->n, o = 0;
    if (n > SB_COMMENT_MAX) return sb_fail(err, errlen, "comment_too_long");
    if (!sb_text_no_controls(v->s, n, "\t\n\r"))
        return sb_fail(err, errlen, "bad_comment: control character");
    const unsigned char *s = (const unsigned char *)v->s;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        if (c == '\r') {
            if (i + 1 < n && s[i + 1] == '\n') i++;
            c = '\n';
        }
        out->comment[o++] = (char)c;
    }
    out->comment[o] = '\0';
    out->has_comment = o > 0;
    return o > 0;
}

int sb_survey_response_decode(const char *buf, size_t len, const char *device_id,
                              sb_survey_response_t *out, char *err, size_t errlen)
{
    int rc = -1;
    memset(out, 0, sizeof *out);
    sb_jtok_t toks[MSG_TOKENS];
    sb_jdoc_t d, *doc = &d;
    if (sb_dlq_open(buf, len, toks, MSG_TOKENS, doc, err, errlen) != 0) return -1;
    if (get_id(doc, "survey_id", true, out->survey_id, err, errlen) < 0) goto fail;
    if (get_token(doc, out->token, err, errlen) < 0) goto fail;

    sb_jval_t score = sb_jdoc_key(doc, NULL, "score");
    if (sb_jval_absent(&score)) {
        sb_fail(err, errlen, "missing_field: score");
        goto fail;
    }
    if (score.type == SB_JV_REAL) {
        sb_fail(err, errlen, "score_not_integer");
        goto fail;
    }
    if (score.type != SB_JV_INT) {
        sb_fail(err, errlen, "wrong_type: score");
        goto fail;
    }
    int64_t s = score.i;
    if (s < INT_MIN || s > INT_MAX) {
        sb_fail(err, errlen, "score_out_of_range");
        goto fail;
    }
    out->score = (int)s;

    sb_jval_t comment = sb_jdoc_key(doc, NULL, "comment");
    if (!sb_jval_absent(&comment) && read_comment(&comment, out, err, errlen) < 0) goto fail;

    int tr = get_time(doc, "answered_at", false, &out->answered_ms, err, errlen);
    if (tr < 0) goto fail;
    out->has_answered = tr > 0;

    if (device_id) {
        size_t n = strlen(device_id);
        if (n > SB_STR_MAX) {
            sb_fail(err, errlen, "too_long: device_id");
            goto fail;
        }
        if (!sb_str_topic_safe(device_id, n)) {
            sb_fail(err, errlen, "unsafe_chars: device_id");
            goto fail;
        }
        memcpy(out->device_id, device_id, n + 1);
    }
    rc = 0;
fail:
    sb_dlq_close(doc);
    return rc;
}

char *sb_survey_response_encode(const sb_survey_response_t *r)
{
    char *text = NULL, when[32];
    json_t *o = json_pack("{s:s, s:s, s:i}", "survey_id", r->survey_id, "token", r->token, "score",
                          r->score);
    if (!o) goto fail;
    if (r->has_comment && json_object_set_new(o, "comment", json_string(r->comment))) goto fail;
    if (r->has_answered) {
        sb_time_format(r->answered_ms, when);
        if (json_object_set_new(o, "answered_at", json_string(when))) goto fail;
    }
    text = json_dumps(o, JSON_COMPACT);
fail:
    json_decref(o);
    return text;
}
