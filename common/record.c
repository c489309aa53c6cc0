/* Survey records: compact 0x1F-separated strings in Redis; see record.h. */
#include "record.h"
#include "event.h"

#include <errno.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SEP SB_REC_SEP
/* Version 3 has 21 fields. Version 2 (20) lacks the customer's zone (field 16), which is
 * only kept when the journey has quiet hours to respect when the survey or its reminder is
 * sent, so version 2 is still what is written otherwise (a pending survey costs no byte
 * more). Version 1 (19) also lacked the
 * interaction's channel (field 9), and is still read: records written before an upgrade stay
 * in Redis until they expire. */
#define NFIELDS 21

/* SHA-256 fetched once: SHA256() looks the algorithm up in OpenSSL's provider store on every
 * call (locks and a hash table), which cost more than the hashing of these short texts. */
static EVP_MD *sha256;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void sha256_fetch(void)
{
    sha256 = EVP_MD_fetch(NULL, "SHA256", NULL); /* kept for the process's life */
}

void sb_record_survey_id(const char *interaction_id, const char *journey, char *out)
{
    unsigned char md[SHA256_DIGEST_LENGTH];
    char buf[2 * SB_STR_MAX + 2];
    /* "interaction_id|journey", cut to the buffer as snprintf would cut it */
    size_t n = strnlen(interaction_id, sizeof buf - 1);
    memcpy(buf, interaction_id, n);
    if (n < sizeof buf - 1) buf[n++] = '|';
    size_t jn = strnlen(journey, sizeof buf - 1 - n);
    memcpy(buf + n, journey, jn);
    n += jn;
    pthread_once(&sha256_once, sha256_fetch);
    if (!sha256 || !EVP_Digest(buf, n, md, NULL, sha256, NULL))
        SHA256((const unsigned char *)buf, n, md);
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < SB_SURVEY_ID_LEN / 2; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[SB_SURVEY_ID_LEN] = '\0';
}

/* Copies src (NULL: "") into a field, cut to SB_STR_MAX bytes. */
static void copy(char *dst, const char *src)
{
    if (!src) src = "";
    size_t n = strnlen(src, SB_STR_MAX);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

void sb_record_from_event(sb_record_t *r, const sb_event_t *ev, const sb_journey_t *j,
                          int64_t due_ms, int64_t expires_ms)
{
    memset(r, 0, sizeof *r);
    r->state = SB_REC_PENDING;
    r->kind = j->survey;
    copy(r->journey, j->name);
    copy(r->customer_id, ev->val[SB_F_CUSTOMER_ID]);
    copy(r->interaction_id, ev->val[SB_F_INTERACTION_ID]);
    /* the journey's channel, else the event's, else the event's device: an MQTT visit names
     * its device in the topic and usually carries no channel */
    copy(r->channel, j->channel && *j->channel    ? j->channel
                     : ev->val[SB_F_CHANNEL][0]   ? ev->val[SB_F_CHANNEL]
                     : ev->val[SB_F_DEVICE_ID][0] ? "device"
                                                  : "");
    copy(r->locale, ev->val[SB_F_LOCALE]);
    copy(r->device_id, ev->val[SB_F_DEVICE_ID]);
    copy(r->dim[SB_DIM_ALL], "all");
    /* the interaction's channel is the dimension, as for its KPIs (a phone call surveyed by
     * email counts for phone); without one, the channel the survey goes out on */
    copy(r->dim[SB_DIM_CHANNEL], ev->val[SB_F_CHANNEL][0]     ? ev->val[SB_F_CHANNEL]
                                 : ev->val[SB_F_DEVICE_ID][0] ? "device"
                                                              : r->channel);
    copy(r->dim[SB_DIM_AGENT], ev->val[SB_F_AGENT]);
    copy(r->dim[SB_DIM_TEAM], ev->val[SB_F_TEAM]);
    copy(r->dim[SB_DIM_REGION], ev->val[SB_F_REGION]);
    copy(r->dim[SB_DIM_PRODUCT], ev->val[SB_F_PRODUCT]);
    copy(r->dim[SB_DIM_STAGE], ev->val[SB_F_STAGE]);
    copy(r->dim[SB_DIM_JOURNEY], j->name);
    copy(r->dim[SB_DIM_KIND], ev->val[SB_F_KIND]);
    copy(r->dim[SB_DIM_LOCALE], r->locale);
    copy(r->dim[SB_DIM_DEVICE], r->device_id);
    r->due_ms = due_ms;
    r->expires_ms = expires_ms;
    r->remind_after_ms = j->remind_after_ms;
    /* quiet hours are checked again when the survey (or its reminder) is sent */
    if (j->has_quiet) copy(r->tz, ev->val[SB_F_CUSTOMER_TZ]);
}

/* Writes v >= 0 in base 36 (lowercase); returns the length. */
static int b36(char *out, int64_t v)
{
    char tmp[16];
    int n = 0;
    do {
        tmp[n++] = "0123456789abcdefghijklmnopqrstuvwxyz"[v % 36];
        v /= 36;
    } while (v > 0);
    for (int i = 0; i < n; i++) out[i] = tmp[n - 1 - i];
    out[n] = '\0';
    return n;
}

char *sb_record_encode(const sb_record_t *r, size_t *len)
{
    if ((unsigned)r->kind >= SB_KIND__N || r->due_ms < 0 || r->expires_ms < 0 ||
        r->remind_after_ms < 0)
        return NULL;
    char due[16], exp[16], rem[16];
    b36(due, r->due_ms), b36(exp, r->expires_ms), b36(rem, r->remind_after_ms);
    /* Written field by field (this runs once per scheduled survey, and a format string of
     * 20 fields cost more than the copying): state, version "2", then the texts, each after
     * a separator. The state is written as a byte even when it is NUL, as "%c" did. The
     * channel dimension is kept only when it differs from the delivery channel. */
    const char *ich = strcmp(r->dim[SB_DIM_CHANNEL], r->channel) ? r->dim[SB_DIM_CHANNEL] : "";
    const char *f[] = {sb_kind_names[r->kind], r->journey, r->customer_id, r->interaction_id,
                       r->channel, r->locale, r->device_id, ich, r->dim[SB_DIM_AGENT],
                       r->dim[SB_DIM_TEAM], r->dim[SB_DIM_REGION], r->dim[SB_DIM_PRODUCT],
                       r->dim[SB_DIM_STAGE], r->dim[SB_DIM_KIND], r->tz, due, exp, rem, r->reason};
    enum { NF = sizeof f / sizeof f[0], TZ = 14 };
    bool v3 = r->tz[0] != '\0'; /* else version 2: without the zone field */
    size_t fl[NF], total = 3; /* state, separator, version */
    for (size_t i = 0; i < NF; i++) {
        if (i == TZ && !v3) continue;
        fl[i] = strlen(f[i]);
        total += 1 + fl[i];
    }
    char *buf = malloc(total + 1), *o = buf;
    if (!buf) return NULL;
    *o++ = r->state, *o++ = SEP, *o++ = v3 ? '3' : '2';
    for (size_t i = 0; i < NF; i++) {
        if (i == TZ && !v3) continue;
        *o++ = SEP;
        memcpy(o, f[i], fl[i]);
        o += fl[i];
    }
    *o = '\0';
    if (len) *len = total;
    return buf;
}

static int field_str(char *dst, size_t cap, const char *s, size_t n)
{
    if (n >= cap) return -1;
    memcpy(dst, s, n);
    dst[n] = '\0';
    return 0;
}

/* Parses 1..13 base-36 digits (lowercase) up to INT64_MAX, the encoding of a time. */
static int field_int(int64_t *dst, const char *s, size_t n)
{
    if (n == 0 || n > 13) return -1;
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'z' ? c - 'a' + 10 : -1;
        if (d < 0 || v > (INT64_MAX - d) / 36) return -1; /* not a digit, or beyond int64 */
        v = v * 36 + d;
    }
    *dst = v;
    return 0;
}

int sb_record_decode(const char *buf, size_t len, sb_record_t *out, char *err, size_t errlen)
{
    const char *f[NFIELDS];
    size_t fl[NFIELDS];
    size_t nf = 0;
    const char *p = buf, *end = buf + len;
    memset(out, 0, sizeof *out);
    bool more = true; /* a separator follows the last field split off */
    while (more && nf < NFIELDS) {
        const char *q = memchr(p, SEP, (size_t)(end - p));
        more = q != NULL;
        if (!q) q = end;
        f[nf] = p, fl[nf] = (size_t)(q - p), nf++;
        if (more) p = q + 1;
    }
    /* versions 1 and 2 are read as version 3 with the fields they lack empty */
    int version = nf >= 2 && fl[1] == 1 && f[1][0] >= '1' && f[1][0] <= '3' ? f[1][0] - '0' : 0;
    size_t lacks = version ? (size_t)(3 - version) : 0;
    if (more || nf < NFIELDS - 2 || (version && nf != NFIELDS - lacks))
        return sb_fail(err, errlen, "bad_record: %zu fields", nf);
    if (!version || fl[0] != 1) return sb_fail(err, errlen, "bad_record: version");
    if (version < 2) { /* no interaction's channel: an empty field 9 */
        memmove(f + 10, f + 9, (NFIELDS - 10) * sizeof *f);
        memmove(fl + 10, fl + 9, (NFIELDS - 10) * sizeof *fl);
        f[9] = "", fl[9] = 0;
    }
    if (version < 3) { /* no zone: an empty field 16 */
        memmove(f + 17, f + 16, (NFIELDS - 17) * sizeof *f);
        memmove(fl + 17, fl + 16, (NFIELDS - 17) * sizeof *fl);
        f[16] = "", fl[16] = 0;
    }
    out->state = f[0][0];
    char kind[16];
    int k = -1; /* sb_kind_t is unsigned: test the parse result before storing it */
    if (field_str(kind, sizeof kind, f[2], fl[2]) == 0) k = sb_kind_parse(kind);
    if (k < 0) return sb_fail(err, errlen, "bad_record: kind");
    out->kind = (sb_kind_t)k;
    char *str[] = {out->journey, out->customer_id, out->interaction_id, out->channel,
                   out->locale, out->device_id, out->dim[SB_DIM_CHANNEL], out->dim[SB_DIM_AGENT],
                   out->dim[SB_DIM_TEAM], out->dim[SB_DIM_REGION], out->dim[SB_DIM_PRODUCT],
                   out->dim[SB_DIM_STAGE], out->dim[SB_DIM_KIND], out->tz};
    for (size_t i = 0; i < sizeof str / sizeof str[0]; i++)
        if (field_str(str[i], SB_STR_MAX + 1, f[3 + i], fl[3 + i]))
            return sb_fail(err, errlen, "bad_record: field %zu too long", 3 + i);
    if (field_int(&out->due_ms, f[17], fl[17]) || field_int(&out->expires_ms, f[18], fl[18]) ||
        field_int(&out->remind_after_ms, f[19], fl[19]))
        return sb_fail(err, errlen, "bad_record: time");
    if (field_str(out->reason, sizeof out->reason, f[20], fl[20]))
        return sb_fail(err, errlen, "bad_record: reason");
    snprintf(out->dim[SB_DIM_ALL], SB_STR_MAX + 1, "all");
    if (!out->dim[SB_DIM_CHANNEL][0])
        memcpy(out->dim[SB_DIM_CHANNEL], out->channel, sizeof out->channel);
    memcpy(out->dim[SB_DIM_JOURNEY], out->journey, sizeof out->journey);
    memcpy(out->dim[SB_DIM_LOCALE], out->locale, sizeof out->locale);
    memcpy(out->dim[SB_DIM_DEVICE], out->device_id, sizeof out->device_id);
    return 0;
}

const char *sb_record_state_name(char state)
{
    switch (state) {
    case SB_REC_PENDING: return "pending";
    case SB_REC_FIRED: return "fired";
    case SB_REC_CANCELLED: return "cancelled";
    case SB_REC_SUPPRESSED: return "suppressed";
    case SB_REC_EXPIRED: return "expired";
    case SB_REC_ANSWERED: return "answered";
    default: return "unknown";
    }
}
