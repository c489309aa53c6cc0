/* Dead letters: shared input checks, reason helpers and the dead-letter envelope; see dlq.h. */
#include "dlq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

#define QUOTE_MAX 64
#define ENVELOPE_TEXT_MAX 1024 /* bytes kept of reason and source */

/* Length of the well-formed UTF-8 sequence at s[0..avail), or 0 when it is malformed. */
static size_t utf8_seq(const unsigned char *s, size_t avail)
{
    size_t n;
    if (s[0] < 0x80) return 1;
    if ((s[0] & 0xE0) == 0xC0)
        n = 2;
    else if ((s[0] & 0xF0) == 0xE0)
        n = 3;
    else if ((s[0] & 0xF8) == 0xF0)
        n = 4;
    else
        return 0;
    if (n > avail || !sb_utf8_valid((const char *)s, n)) return 0;
    return n;
}

/* Copies at most max bytes of s into out, cut at a UTF-8 boundary with "..." appended when
 * cut; control characters and malformed bytes become '?'. */
static void sanitize(char *out, size_t outlen, const char *s, size_t len, size_t max)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, o = 0;
    bool cut = false;
    if (outlen == 0) return;
    size_t room = outlen > 4 ? outlen - 4 : 0; /* leaves room for "..." and NUL */
    if (max > room) max = room;
    while (i < len) {
        size_t n = utf8_seq(u + i, len - i);
        size_t w = n ? n : 1;
        if (o + w > max) {
            cut = true;
            break;
        }
        if (n == 0 || (n == 1 && (u[i] < 0x20 || u[i] == 0x7F))) {
            out[o++] = '?';
        } else {
            memcpy(out + o, u + i, n);
            o += n;
        }
        i += w;
    }
    if (cut && outlen - o > 3) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
}

void sb_dlq_quote(char *out, size_t outlen, const char *s, size_t len)
{
    sanitize(out, outlen, s, len, QUOTE_MAX);
}

/* The checks of outside input before any JSON parser sees it. Returns 0 or -1. */
static int check_raw(const char *buf, size_t len, char *err, size_t errlen)
{
    if (len > SB_MSG_MAX) return sb_fail(err, errlen, "too_large");
    if (len > 0 && memchr(buf, '\0', len)) return sb_fail(err, errlen, "nul_byte");
    if (!sb_utf8_valid(buf, len)) return sb_fail(err, errlen, "invalid_utf8");
    return 0;
}

/* jansson's reading of checked input as an object, or NULL with the reason. */
static json_t *load_checked(const char *buf, size_t len, char *err, size_t errlen)
{
    /* Duplicate keys are rejected: parsers disagree on which one wins (first, last, error),
     * so a message like {"score":10,"score":0} could be read differently by a gateway that
     * checked it and by us; an ambiguous message is a dead letter, not a guess. */
    json_error_t je;
    json_t *doc = json_loadb(len ? buf : "", len, JSON_REJECT_DUPLICATES, &je);
    if (!doc) {
        char text[JSON_ERROR_TEXT_LENGTH + 4];
        sanitize(text, sizeof text, je.text, strnlen(je.text, JSON_ERROR_TEXT_LENGTH - 1),
                 JSON_ERROR_TEXT_LENGTH - 1);
        /* jansson tells a \u0000 in a key (json_error_null_byte_in_key) from one in a value;
         * both are the same NUL escape to the sender */
        enum json_error_code code = json_error_code(&je);
        if (code == json_error_null_character || code == json_error_null_byte_in_key)
            sb_fail(err, errlen, "nul_byte: \\u0000 escape (line %d, column %d)", je.line,
                    je.column);
        else
            sb_fail(err, errlen, "invalid_json: %s (line %d, column %d)", text, je.line, je.column);
        return NULL;
    }
    if (!json_is_object(doc)) {
        json_decref(doc);
        sb_fail(err, errlen, "invalid_json: not an object");
        return NULL;
    }
    return doc;
}

json_t *sb_dlq_load(const char *buf, size_t len, char *err, size_t errlen)
{
    return check_raw(buf, len, err, errlen) == 0 ? load_checked(buf, len, err, errlen) : NULL;
}

int sb_dlq_open(const char *buf, size_t len, sb_jtok_t *t, int cap, sb_jdoc_t *d, char *err,
                size_t errlen)
{
    *d = (sb_jdoc_t){NULL, t, -1};
    if (check_raw(buf, len, err, errlen) != 0) return -1;
    if ((d->n = sb_jscan(buf, len, t, cap)) >= 0) return 0;
    d->doc = load_checked(buf, len, err, errlen);
    return d->doc ? 0 : -1;
}

int sb_dlq_time_val(const sb_jval_t *v, const char *name, int64_t *ms, char *err, size_t errlen)
{
    int64_t t;
    if (v->type == SB_JV_INT) {
        t = v->i;
    } else if (v->type == SB_JV_STR) {
        char small[64];
        char *s = v->n < sizeof small ? small : malloc(v->n + 1);
        if (!s) abort();
        memcpy(s, v->s, v->n);
        s[v->n] = '\0';
        size_t n = strspn(s, "0123456789");
        int rc = 0;
        if (n > 0 && s[n] == '\0') {
            if (n > 15)
                rc = sb_fail(err, errlen, "bad_time: %s: out of range", name);
            else
                t = strtoll(s, NULL, 10);
        } else if (sb_time_parse_rfc3339(s, &t) != 0) {
            rc = sb_fail(err, errlen, "bad_time: %s: not RFC 3339 or epoch milliseconds", name);
        }
        if (s != small) free(s);
        if (rc) return rc;
    } else if (v->type == SB_JV_REAL) {
        return sb_fail(err, errlen, "bad_time: %s: epoch milliseconds must be an integer", name);
    } else {
        return sb_fail(err, errlen, "bad_time: %s: not a string or integer", name);
    }
    if (t < SB_TIME_MIN_MS || t >= SB_TIME_MAX_MS)
        return sb_fail(err, errlen, "bad_time: %s: out of range", name);
    *ms = t;
    return 0;
}

/* Repairs bytes into a JSON string value: malformed UTF-8 bytes become U+FFFD; at most max
 * input bytes are used, cut at a sequence boundary. *cut tells whether input was left out,
 * *fixed whether a byte was replaced (both may be NULL). */
static json_t *repaired_string(const char *s, size_t len, size_t max, bool *cut, bool *fixed)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t lim = len < max ? len : max, i = 0, o = 0;
    char *buf = malloc(lim * 3 + 1);
    if (!buf) return NULL;
    while (i < len) {
        size_t n = utf8_seq(u + i, len - i);
        size_t w = n ? n : 1;
        if (i + w > lim) break;
        if (n) {
            memcpy(buf + o, u + i, n);
            o += n;
        } else {
            memcpy(buf + o, "\xEF\xBF\xBD", 3);
            o += 3;
            if (fixed) *fixed = true;
        }
        i += w;
    }
    if (cut) *cut = i < len;
    json_t *str = json_stringn(buf, o); /* NUL bytes are kept and encoded as \u0000 */
    free(buf);
    return str;
}

char *sb_dlq_encode(const char *reason, const char *source, const char *payload, size_t len)
{
    char *text = NULL;
    bool cut = false, fixed = false, src_cut = false, src_fixed = false;
    json_t *o = json_object();
    if (!o) goto fail;
    if (!reason) reason = "";
    if (!source) source = "";
    if (!payload) len = 0;
    if (json_object_set_new(o, "error",
                            repaired_string(reason, strlen(reason), ENVELOPE_TEXT_MAX, NULL, NULL)) ||
        json_object_set_new(o, "source", /* a source cut or repaired names another topic */
                            repaired_string(source, strlen(source), ENVELOPE_TEXT_MAX, &src_cut,
                                            &src_fixed)) ||
        json_object_set_new(o, "payload",
                            repaired_string(payload ? payload : "", len, SB_DLQ_PAYLOAD_MAX, &cut,
                                            &fixed)))
        goto fail;
    if ((cut || src_cut) && json_object_set_new(o, "truncated", json_true())) goto fail;
    if ((fixed || src_fixed) && json_object_set_new(o, "repaired", json_true())) goto fail;
    text = json_dumps(o, JSON_COMPACT);
fail:
    json_decref(o);
    return text;
}

int sb_reason_code(const char *reason, char *out, size_t outlen)
{
    size_t n = reason ? strcspn(reason, ":") : 0;
    while (n > 0 && reason[n - 1] == ' ')
        n--;
    bool ok = n > 0 && n < outlen;
    for (size_t i = 0; ok && i < n; i++) {
        char c = reason[i];
        ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
    }
    if (!ok) {
        if (outlen) snprintf(out, outlen, "unknown");
        return -1;
    }
    memcpy(out, reason, n);
    out[n] = '\0';
    return 0;
}

/* Whether a replay can publish on topic t: Kafka allows 1..249 of [a-zA-Z0-9._-] in a name,
 * MQTT any 1..65535 bytes but the wildcards (a PUBLISH on a filter is refused). */
static bool topic_ok(sb_dlq_to_t to, const char *t)
{
    size_t n = strlen(t);
    if (to == SB_DLQ_TO_MQTT) return n > 0 && n <= 65535 && !strpbrk(t, "+#");
    if (n == 0 || n > 249) return false;
    for (size_t i = 0; i < n; i++) {
        char c = t[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

void sb_dlq_letter_read(const char *buf, size_t len, sb_dlq_letter_t *l)
{
    *l = (sb_dlq_letter_t){.code = "unknown"};
    /* a payload that held a NUL byte holds it as \u0000: its bytes can go back as they came */
    l->doc = buf ? json_loadb(buf, len, JSON_ALLOW_NUL, NULL) : NULL;
    const char *reason = json_string_value(json_object_get(l->doc, "error"));
    if (reason) sb_reason_code(reason, l->code, sizeof l->code);
    json_t *src = json_object_get(l->doc, "source");
    l->source = json_string_value(src);
    json_t *pl = json_object_get(l->doc, "payload");
    if (!l->source || strlen(l->source) != json_string_length(src) || !json_is_string(pl)) {
        l->skip = "unreadable";
        return;
    }
    /* only the bytes as they came can be sent again: a payload cut short, or one whose
     * invalid UTF-8 was replaced (it would now be accepted), is not */
    if (json_is_true(json_object_get(l->doc, "truncated"))) {
        l->skip = "truncated";
        return;
    }
    if (json_is_true(json_object_get(l->doc, "repaired"))) {
        l->skip = "repaired";
        return;
    }
    l->payload = json_string_value(pl);
    l->len = json_string_length(pl);
    if (!strncmp(l->source, "kafka:", 6)) {
        /* kafka:<topic>/<partition>@<offset> */
        const char *t = l->source + 6, *slash = strrchr(t, '/');
        if (!slash) {
            l->skip = "unreadable";
            return;
        }
        l->to = SB_DLQ_TO_KAFKA;
        l->topic = strndup(t, (size_t)(slash - t));
    } else if (!strncmp(l->source, "mqtt:", 5)) {
        l->to = SB_DLQ_TO_MQTT;
        l->topic = strdup(l->source + 5);
    } else {
        l->skip = "unknown_source";
        return;
    }
    if (!l->topic) abort();
    /* such a letter would fail the whole replay, on every run */
    if (!topic_ok(l->to, l->topic)) l->skip = "bad_topic";
}

void sb_dlq_letter_free(sb_dlq_letter_t *l)
{
    json_decref(l->doc);
    free(l->topic);
    l->doc = NULL, l->topic = NULL;
}

void sb_dlq_log(const char *source, const char *reason)
{
    char qs[1200], qr[1200];
    sb_warn("dead letter (kafka off) source=%s reason=%s", sb_log_quote(qs, sizeof qs, source),
            sb_log_quote(qr, sizeof qr, reason));
}
