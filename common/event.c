/* Interaction events: the user's JSON, read through the configured JSON Pointers, becomes a
 * validated sb_event_t; every rejection is a "code: detail" dead-letter reason. Pure. */
#include "event.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dlq.h"
#include "jsonptr.h"

#define KPI_SECONDS_MAX (10.0 * 365 * 86400) /* ten years */
#define TRANSFERS_MAX 1000
#define LOCALE_MAX 35
#define TZ_MAX 64
#define EVENT_TOKENS 256 /* more go to jansson: events have a few dozen */

/* How a canonical field is read and checked. */
enum ftype {
    FT_ID,      /* text used in topics and keys: topic-safe; an integer is taken as text */
    FT_TYPE,    /* one of the event type names */
    FT_TIME,    /* RFC 3339 or epoch ms */
    FT_TZ,      /* IANA-like zone name */
    FT_LOCALE,  /* BCP 47-like tag */
    FT_SECONDS, /* KPI: number of seconds */
    FT_BOOL,    /* KPI: boolean */
    FT_COUNT,   /* KPI: small non-negative integer */
};

static const struct {
    enum ftype type;
    bool required;
} fields[SB_F__N] = {
    [SB_F_EVENT_ID] = {FT_ID, true},
    [SB_F_TYPE] = {FT_TYPE, false},
    [SB_F_OCCURRED_AT] = {FT_TIME, true},
    [SB_F_CUSTOMER_ID] = {FT_ID, true},
    [SB_F_CUSTOMER_TZ] = {FT_TZ, false},
    [SB_F_LOCALE] = {FT_LOCALE, false},
    [SB_F_INTERACTION_ID] = {FT_ID, true},
    [SB_F_KIND] = {FT_ID, true},
    [SB_F_CHANNEL] = {FT_ID, false},
    [SB_F_STAGE] = {FT_ID, false},
    [SB_F_AGENT] = {FT_ID, false},
    [SB_F_TEAM] = {FT_ID, false},
    [SB_F_REGION] = {FT_ID, false},
    [SB_F_PRODUCT] = {FT_ID, false},
    [SB_F_DEVICE_ID] = {FT_ID, false},
    [SB_F_KPI_FRT] = {FT_SECONDS, false},
    [SB_F_KPI_ART] = {FT_SECONDS, false},
    [SB_F_KPI_FCR] = {FT_BOOL, false},
    [SB_F_KPI_TRANSFERS] = {FT_COUNT, false},
};

static const char *const type_names[] = {"interaction.completed", "visit.completed",
                                         "interaction.reopened"};

const char *sb_event_type_name(sb_event_type_t type)
{
    return (unsigned)type < sizeof type_names / sizeof type_names[0] ? type_names[type] : NULL;
}

int sb_event_type_parse(const char *name)
{
    for (size_t i = 0; name && i < sizeof type_names / sizeof type_names[0]; i++)
        if (strcmp(name, type_names[i]) == 0) return (int)i;
    return -1;
}

bool sb_event_tz_plausible(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > TZ_MAX || s[0] == '/' || s[n - 1] == '/') return false;
    if (strstr(s, "..") || strstr(s, "//")) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '/' || c == '_' || c == '-' || c == '+'))
            return false;
    }
    return true;
}

bool sb_event_locale_valid(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > LOCALE_MAX) return false;
    if (!((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z'))) return false;
    if (s[n - 1] == '-' || strstr(s, "--")) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-'))
            return false;
    }
    return true;
}

/* Shortest decimal text that reads back as the same double. */
static void format_real(double d, char *out, size_t outlen)
{
    /* Fast path for what KPIs usually are, d = k / 1000 for an integer k (12.5, 0.25): when
     * k / 1000.0 == d, d is the double nearest to the decimal k/1000, which has at most 12
     * significant digits here (d <= KPI_SECONDS_MAX), so "%.15g" prints exactly that decimal,
     * trailing zeros dropped; d >= 0.001 keeps "%g" out of exponent notation. -0.0 and
     * everything else take the general path. */
    double m = d * 1000;
    if (d >= 0.001 && d <= KPI_SECONDS_MAX && !signbit(d) && m == floor(m) &&
        (double)(int64_t)m / 1000.0 == d && outlen >= SB_INT_TEXT_MAX + 4) {
        int64_t k = (int64_t)m;
        size_t n = sb_int_format(k / 1000, out);
        int frac = (int)(k % 1000);
        if (frac) {
            out[n++] = '.';
            for (int div = 100; frac; div /= 10) {
                out[n++] = (char)('0' + frac / div);
                frac %= div;
            }
            out[n] = '\0';
        }
        return;
    }
    /* 15 significant digits always give the shortest text when any precision up to 15 would
     * round-trip (%g drops the trailing zeros), so the search starts there */
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(out, outlen, "%.*g", prec, d);
        if (strtod(out, NULL) == d) return;
    }
}

/* Reads a text field: a string (or, when allow_int, an integer as its decimal text) into dst
 * and its length into *len. Returns 1 when present, 0 when absent ("" counts as absent), -1
 * with a reason. */
static int read_text(const sb_jval_t *v, const char *name, bool allow_int, char *dst,
                     size_t *len, char *err, size_t errlen)
{
    if (v->type == SB_JV_STR) {
        size_t n = v->n;
        if (n == 0) return 0;
        if (n > SB_STR_MAX) return sb_fail(err, errlen, "too_long: %s", name);
        memcpy(dst, v->s, n);
        dst[n] = '\0';
        *len = n;
        return 1;
    }
    if (allow_int && v->type == SB_JV_INT) {
        *len = sb_int_format(v->i, dst);
        return 1;
    }
    return sb_fail(err, errlen, "wrong_type: %s", name);
}

/* Reads and checks one mapped field v (present: not null, not "") into out. Returns 0 or -1. */
static int read_field(sb_field_t f, const sb_jval_t *v, sb_event_t *out, char *err, size_t errlen)
{
    const char *name = sb_field_names[f];
    char *dst = out->val[f];
    char q[96];
    size_t len = 0; /* of the text read_text put in dst */
    int rc;
    switch (fields[f].type) {
    case FT_ID:
        if ((rc = read_text(v, name, true, dst, &len, err, errlen)) <= 0) return rc;
        if (!sb_str_topic_safe(dst, len))
            return sb_fail(err, errlen, "unsafe_chars: %s", name);
        return 0;
    case FT_TYPE:
        if ((rc = read_text(v, name, false, dst, &len, err, errlen)) <= 0) return rc;
        if ((rc = sb_event_type_parse(dst)) < 0) {
            sb_dlq_quote(q, sizeof q, dst, len);
            dst[0] = '\0';
            return sb_fail(err, errlen, "bad_type: %s", q);
        }
        out->type = (sb_event_type_t)rc;
        return 0;
    case FT_TIME:
        if (sb_dlq_time_val(v, name, &out->occurred_ms, err, errlen) != 0) return -1;
        return read_text(v, name, true, dst, &len, err, errlen) < 0 ? -1 : 0;
    case FT_TZ:
        if ((rc = read_text(v, name, false, dst, &len, err, errlen)) <= 0) return rc;
        if (!sb_event_tz_plausible(dst)) {
            sb_dlq_quote(q, sizeof q, dst, len);
            dst[0] = '\0';
            return sb_fail(err, errlen, "bad_tz: %s", q);
        }
        return 0;
    case FT_LOCALE:
        if ((rc = read_text(v, name, false, dst, &len, err, errlen)) <= 0) return rc;
        if (!sb_event_locale_valid(dst)) {
            sb_dlq_quote(q, sizeof q, dst, len);
            dst[0] = '\0';
            return sb_fail(err, errlen, "bad_locale: %s", q);
        }
        return 0;
    case FT_SECONDS: {
        if (v->type != SB_JV_INT && v->type != SB_JV_REAL)
            return sb_fail(err, errlen, "bad_kpi: %s: not a number", name);
        double d = v->d;
        if (!isfinite(d) || d < 0 || d > KPI_SECONDS_MAX)
            return sb_fail(err, errlen, "bad_kpi: %s: out of range", name);
        if (v->type == SB_JV_INT)
            sb_int_format(v->i, dst);
        else
            format_real(d, dst, SB_STR_MAX + 1);
        if (f == SB_F_KPI_FRT)
            out->has_frt = true, out->frt_s = d;
        else
            out->has_art = true, out->art_s = d;
        return 0;
    }
    case FT_BOOL:
        if (v->type != SB_JV_TRUE && v->type != SB_JV_FALSE)
            return sb_fail(err, errlen, "bad_kpi: %s: not a boolean", name);
        out->has_fcr = true;
        out->fcr = v->type == SB_JV_TRUE;
        strcpy(dst, out->fcr ? "true" : "false");
        return 0;
    case FT_COUNT: {
        if (v->type != SB_JV_INT) return sb_fail(err, errlen, "bad_kpi: %s: not an integer", name);
        int64_t n = v->i;
        if (n < 0 || n > TRANSFERS_MAX)
            return sb_fail(err, errlen, "bad_kpi: %s: out of range", name);
        out->has_transfers = true;
        out->transfers = (int64_t)n;
        sb_int_format(n, dst);
        return 0;
    }
    }
    return sb_fail(err, errlen, "internal: field %d", (int)f);
}

int sb_event_parse(const char *buf, size_t len, char *const mapping[SB_F__N], const char *device_id,
                   bool mqtt, sb_event_t *out, char *err, size_t errlen)
{
    int rc = -1;
    memset(out, 0, sizeof *out);
    sb_jtok_t toks[EVENT_TOKENS];
    sb_jdoc_t doc;
    if (sb_dlq_open(buf, len, toks, EVENT_TOKENS, &doc, err, errlen) != 0) return -1;
    out->type = mqtt || device_id ? SB_EV_VISIT_COMPLETED : SB_EV_COMPLETED;
    for (int i = 0; i < SB_F__N; i++) {
        sb_field_t f = (sb_field_t)i;
        const char *name = sb_field_names[f];
        if (f == SB_F_DEVICE_ID && device_id) {
            size_t n = strlen(device_id);
            if (n > SB_STR_MAX) {
                sb_fail(err, errlen, "too_long: %s", name);
                goto fail;
            }
            if (!sb_str_topic_safe(device_id, n)) {
                sb_fail(err, errlen, "unsafe_chars: %s", name);
                goto fail;
            }
            memcpy(out->val[f], device_id, n + 1);
            continue;
        }
        const char *ptr = mapping ? mapping[f] : NULL;
        sb_jval_t v = {SB_JV_NONE};
        if (ptr && *ptr) {
            if (!sb_jsonptr_valid(ptr)) {
                sb_fail(err, errlen, "bad_mapping: %s", name);
                goto fail;
            }
            v = sb_jdoc_get(&doc, ptr);
        }
        /* null and "" are no value, whatever type the field takes (a KPI too) */
        bool none = sb_jval_absent(&v) || (v.type == SB_JV_STR && v.n == 0);
        if (!none && read_field(f, &v, out, err, errlen) != 0) {
            out->val[f][0] = '\0';
            goto fail;
        }
        if (fields[f].required && out->val[f][0] == '\0') {
            sb_fail(err, errlen, "missing_field: %s", name);
            goto fail;
        }
    }
    strcpy(out->val[SB_F_TYPE], type_names[out->type]);
    rc = 0;
fail:
    sb_dlq_close(&doc);
    return rc;
}
