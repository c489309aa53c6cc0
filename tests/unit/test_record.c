/* Survey records: the survey id (known SHA-256 answers), the exact stored format with its
 * base-36 times (worked by hand), encode's refusals, a round trip of a full record with Chinese
 * values and every dimension, every decode rejection, filling a record from an event (without
 * the event's id, zone and occurrence time), and the state names. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"
#include "record.h"

#include "unit.h"

#define S "\x1f"

/* ---------------------------------------------------------------- survey id */

START_TEST(survey_id_known_answers)
{
    char id[SB_SURVEY_ID_LEN + 1];
    /* printf 't-9|support-csat' | sha256sum -> 5e8203f46184f12c264e1b6a45cd... */
    sb_record_survey_id("t-9", "support-csat", id);
    ck_assert_str_eq(id, "5e8203f46184f12c264e1b6a");
    /* UTF-8 is hashed as bytes: printf '工单-42|售后-满意度' | sha256sum */
    sb_record_survey_id("工单-42", "售后-满意度", id);
    ck_assert_str_eq(id, "b162108581876a2badded8c0");
    /* printf '|' | sha256sum */
    sb_record_survey_id("", "", id);
    ck_assert_str_eq(id, "cbe5cfdf7c2118a9c3d78ef1");
    /* one survey per (interaction, journey): another journey is another survey */
    char other[SB_SURVEY_ID_LEN + 1];
    sb_record_survey_id("t-9", "onboarding-nps", other);
    ck_assert_str_ne(id, other);
    ck_assert_uint_eq(strlen(other), 24);
    ck_assert_uint_eq(strspn(other, "0123456789abcdef"), 24);
}
END_TEST

START_TEST(survey_id_longest_values)
{
    /* 256-byte interaction and journey: the whole "a|b" (513 bytes) is hashed, so a change
     * in the last byte of the journey changes the id */
    char inter[SB_STR_MAX + 1], j1[SB_STR_MAX + 1], j2[SB_STR_MAX + 1];
    memset(inter, 'i', SB_STR_MAX), inter[SB_STR_MAX] = '\0';
    memset(j1, 'j', SB_STR_MAX), j1[SB_STR_MAX] = '\0';
    memcpy(j2, j1, sizeof j2), j2[SB_STR_MAX - 1] = 'k';
    char a[SB_SURVEY_ID_LEN + 1], b[SB_SURVEY_ID_LEN + 1];
    sb_record_survey_id(inter, j1, a);
    sb_record_survey_id(inter, j2, b);
    ck_assert_str_ne(a, b);
    ck_assert_uint_eq(strlen(a), 24);
}
END_TEST

/* ---------------------------------------------------------------- encode / decode */

static void fill_full(sb_record_t *r)
{
    memset(r, 0, sizeof *r);
    r->state = SB_REC_SUPPRESSED;
    r->kind = SB_KIND_NPS;
    strcpy(r->journey, "售后-满意度");
    strcpy(r->customer_id, "客户-00731");
    strcpy(r->interaction_id, "工单-42");
    strcpy(r->channel, "微信");
    strcpy(r->locale, "zh-CN");
    strcpy(r->device_id, "设备-7");
    strcpy(r->dim[SB_DIM_ALL], "all");
    strcpy(r->dim[SB_DIM_CHANNEL], "电话"); /* a phone call, surveyed over 微信 */
    strcpy(r->dim[SB_DIM_AGENT], "王小明");
    strcpy(r->dim[SB_DIM_TEAM], "上海一组");
    strcpy(r->dim[SB_DIM_REGION], "华东");
    strcpy(r->dim[SB_DIM_PRODUCT], "宽带");
    strcpy(r->dim[SB_DIM_STAGE], "售后");
    strcpy(r->dim[SB_DIM_JOURNEY], "售后-满意度");
    strcpy(r->dim[SB_DIM_KIND], "support_ticket");
    strcpy(r->dim[SB_DIM_LOCALE], "zh-CN");
    strcpy(r->dim[SB_DIM_DEVICE], "设备-7");
    r->due_ms = 1795345200000LL; /* 2026-11-22T11:00:00Z */
    r->expires_ms = 1795604400000LL;
    r->remind_after_ms = 86400000LL;
    strcpy(r->tz, "America/New_York");
    strcpy(r->reason, "min_gap_by_kind");
}

static void assert_same(const sb_record_t *a, const sb_record_t *b)
{
    ck_assert_int_eq(a->state, b->state);
    ck_assert_int_eq(a->kind, b->kind);
    ck_assert_str_eq(a->journey, b->journey);
    ck_assert_str_eq(a->customer_id, b->customer_id);
    ck_assert_str_eq(a->interaction_id, b->interaction_id);
    ck_assert_str_eq(a->channel, b->channel);
    ck_assert_str_eq(a->locale, b->locale);
    ck_assert_str_eq(a->device_id, b->device_id);
    for (int d = 0; d < SB_DIM__N; d++) ck_assert_str_eq(a->dim[d], b->dim[d]);
    ck_assert_int_eq(a->due_ms, b->due_ms);
    ck_assert_int_eq(a->expires_ms, b->expires_ms);
    ck_assert_int_eq(a->remind_after_ms, b->remind_after_ms);
    ck_assert_str_eq(a->tz, b->tz);
    ck_assert_str_eq(a->reason, b->reason);
}

START_TEST(encode_exact_format)
{
    sb_record_t r;
    memset(&r, 0, sizeof r);
    r.state = SB_REC_PENDING;
    r.kind = SB_KIND_CES;
    strcpy(r.journey, "j");
    strcpy(r.customer_id, "c");
    strcpy(r.interaction_id, "i");
    strcpy(r.channel, "ch");
    strcpy(r.locale, "en");
    strcpy(r.dim[SB_DIM_AGENT], "a");
    strcpy(r.dim[SB_DIM_TEAM], "t");
    strcpy(r.dim[SB_DIM_REGION], "r");
    strcpy(r.dim[SB_DIM_PRODUCT], "pr");
    strcpy(r.dim[SB_DIM_STAGE], "st");
    strcpy(r.dim[SB_DIM_KIND], "k");
    /* times in base 36, worked by hand:
     *   1795341600000 = 36 * 49870600000;  49870600000 = 36 * 1385294444 + 16 ('g');
     *   1385294444 = 22*36^5 + 32*36^4 + 27*36^3 + 24*36^2 + 1*36 + 8  -> "mwro18" "g" "0"
     *   (check: 22*36^7 + 32*36^6 + 27*36^5 + 24*36^4 + 36^3 + 8*36^2 + 16*36 = 1795341600000)
     *   86400000 = 36^5 + 15*36^4 + 15*36^3 + 30*36^2 + 24*36 -> "1ffuo0" */
    r.due_ms = 1795341600000LL, r.expires_ms = 86400000LL, r.remind_after_ms = 0;
    size_t len = 0;
    char *v = sb_record_encode(&r, &len);
    ck_assert_ptr_nonnull(v);
    static const char want[] = "p" S "2" S "ces" S "j" S "c" S "i" S "ch" S "en" S "" S "" S
                               "a" S "t" S "r" S "pr" S "st" S "k" S "mwro18g0" S "1ffuo0" S "0" S
                               "";
    ck_assert_uint_eq(len, sizeof want - 1);
    ck_assert_str_eq(v, want);
    /* with a zone (a reminder with quiet hours): version 3, the zone before the times */
    strcpy(r.tz, "Europe/Berlin");
    char *z = sb_record_encode(&r, NULL);
    static const char want_tz[] = "p" S "3" S "ces" S "j" S "c" S "i" S "ch" S "en" S "" S "" S
                                "a" S "t" S "r" S "pr" S "st" S "k" S "Europe/Berlin" S
                                "mwro18g0" S "1ffuo0" S "0" S "";
    ck_assert_str_eq(z, want_tz);
    free(z);
    r.tz[0] = '\0';
    /* len may be NULL */
    char *v2 = sb_record_encode(&r, NULL);
    ck_assert_str_eq(v2, want);
    free(v2);

    /* decoding derives the dimensions kept once in the value, and reads the times back */
    sb_record_t d;
    char err[128] = "";
    ck_assert_int_eq(sb_record_decode(v, len, &d, err, sizeof err), 0);
    ck_assert_str_eq(d.dim[SB_DIM_ALL], "all");
    ck_assert_str_eq(d.dim[SB_DIM_CHANNEL], "ch");
    ck_assert_str_eq(d.dim[SB_DIM_JOURNEY], "j");
    ck_assert_str_eq(d.dim[SB_DIM_LOCALE], "en");
    ck_assert_str_eq(d.dim[SB_DIM_DEVICE], "");
    ck_assert_int_eq(d.due_ms, 1795341600000LL);
    ck_assert_int_eq(d.expires_ms, 86400000LL);
    ck_assert_int_eq(d.remind_after_ms, 0);
    ck_assert_int_eq(d.kind, SB_KIND_CES);
    free(v);

    /* an interaction channel other than the delivery channel is field 9; decoded as the
     * channel dimension, the delivery channel staying as it is */
    strcpy(r.dim[SB_DIM_CHANNEL], "phone");
    v = sb_record_encode(&r, &len);
    static const char want3[] = "p" S "2" S "ces" S "j" S "c" S "i" S "ch" S "en" S "" S
                                "phone" S "a" S "t" S "r" S "pr" S "st" S "k" S "mwro18g0" S
                                "1ffuo0" S "0" S "";
    ck_assert_str_eq(v, want3);
    ck_assert_int_eq(sb_record_decode(v, len, &d, err, sizeof err), 0);
    ck_assert_str_eq(d.channel, "ch");
    ck_assert_str_eq(d.dim[SB_DIM_CHANNEL], "phone");
    free(v);
    /* the same as the delivery channel: not stored twice */
    strcpy(r.dim[SB_DIM_CHANNEL], "ch");
    v = sb_record_encode(&r, &len);
    ck_assert_str_eq(v, want);
    free(v);
    strcpy(r.dim[SB_DIM_CHANNEL], "");

    /* digit boundaries: 35 is "z", 36 is "10", 36^2 - 1 is "zz", INT64_MAX 13 digits */
    r.due_ms = 35, r.expires_ms = 36, r.remind_after_ms = 1295;
    v = sb_record_encode(&r, &len);
    static const char want2[] = "p" S "2" S "ces" S "j" S "c" S "i" S "ch" S "en" S "" S "" S
                                "a" S "t" S "r" S "pr" S "st" S "k" S "z" S "10" S "zz" S "";
    ck_assert_str_eq(v, want2);
    free(v);
    r.due_ms = INT64_MAX;
    v = sb_record_encode(&r, &len);
    ck_assert_ptr_nonnull(strstr(v, S "1y2p0ij32e8e7" S "10" S));
    ck_assert_int_eq(sb_record_decode(v, len, &d, err, sizeof err), 0);
    ck_assert_int_eq(d.due_ms, INT64_MAX);
    free(v);
}
END_TEST

START_TEST(encode_refuses)
{
    sb_record_t r;
    fill_full(&r);
    size_t len = 12345;
    char *v = sb_record_encode(&r, &len);
    ck_assert_ptr_nonnull(v);
    free(v);

    /* a negative time (e.g. an event dated before 1970) cannot be stored: each of the three */
    int64_t *times[] = {&r.due_ms, &r.expires_ms, &r.remind_after_ms};
    const int64_t bad[] = {-1, -86400000LL, INT64_MIN};
    for (size_t t = 0; t < 3; t++)
        for (size_t b = 0; b < 3; b++) {
            fill_full(&r);
            *times[t] = bad[b];
            ck_assert_msg(sb_record_encode(&r, &len) == NULL, "time %zu = %lld encoded", t,
                          (long long)bad[b]);
            ck_assert_ptr_null(sb_record_encode(&r, NULL));
        }
    /* 0 is a time (and "no reminder") */
    fill_full(&r);
    r.due_ms = r.expires_ms = r.remind_after_ms = 0;
    v = sb_record_encode(&r, &len);
    ck_assert_ptr_nonnull(v);
    ck_assert_ptr_nonnull(strstr(v, S "0" S "0" S "0" S "min_gap_by_kind"));
    free(v);

    /* a kind out of range cannot be encoded */
    fill_full(&r);
    r.kind = SB_KIND__N;
    ck_assert_ptr_null(sb_record_encode(&r, &len));
    r.kind = (sb_kind_t)-1;
    ck_assert_ptr_null(sb_record_encode(&r, &len));
}
END_TEST

START_TEST(round_trip_full_record)
{
    sb_record_t r, d;
    fill_full(&r);
    size_t len;
    char *v = sb_record_encode(&r, &len);
    ck_assert_ptr_nonnull(v);
    ck_assert_uint_eq(strlen(v), len);
    ck_assert_int_eq(v[0], 's');
    char err[128] = "";
    ck_assert_msg(sb_record_decode(v, len, &d, err, sizeof err) == 0, "decode: %s", err);
    assert_same(&r, &d);
    free(v);

    /* every state and kind survives, and an empty reason */
    const char states[] = {SB_REC_PENDING, SB_REC_FIRED, SB_REC_CANCELLED, SB_REC_SUPPRESSED,
                           SB_REC_EXPIRED};
    for (size_t i = 0; i < sizeof states; i++) {
        r.state = states[i];
        r.kind = (sb_kind_t)(i % SB_KIND__N);
        r.reason[0] = '\0';
        r.due_ms += (int64_t)i * 1000;
        v = sb_record_encode(&r, &len);
        ck_assert_int_eq(sb_record_decode(v, len, &d, err, sizeof err), 0);
        assert_same(&r, &d);
        free(v);
    }
}
END_TEST

START_TEST(round_trip_longest_fields)
{
    sb_record_t r, d;
    fill_full(&r);
    char *str[] = {r.journey, r.customer_id, r.interaction_id, r.channel, r.locale,
                   r.device_id, r.dim[SB_DIM_AGENT], r.dim[SB_DIM_TEAM], r.dim[SB_DIM_REGION],
                   r.dim[SB_DIM_PRODUCT], r.dim[SB_DIM_STAGE], r.dim[SB_DIM_KIND]};
    for (size_t i = 0; i < sizeof str / sizeof str[0]; i++) {
        memset(str[i], 'a' + (int)i, SB_STR_MAX);
        str[i][SB_STR_MAX] = '\0';
    }
    memcpy(r.dim[SB_DIM_CHANNEL], r.channel, sizeof r.channel);
    memcpy(r.dim[SB_DIM_JOURNEY], r.journey, sizeof r.journey);
    memcpy(r.dim[SB_DIM_LOCALE], r.locale, sizeof r.locale);
    memcpy(r.dim[SB_DIM_DEVICE], r.device_id, sizeof r.device_id);
    memset(r.reason, 'z', sizeof r.reason - 1);
    r.reason[sizeof r.reason - 1] = '\0';
    r.due_ms = INT64_MAX;
    r.expires_ms = 0;
    size_t len;
    char *v = sb_record_encode(&r, &len);
    ck_assert_ptr_nonnull(v);
    char err[128] = "";
    ck_assert_msg(sb_record_decode(v, len, &d, err, sizeof err) == 0, "decode: %s", err);
    assert_same(&r, &d);
    free(v);
}
END_TEST

/* Decodes text that must be rejected; returns the error text's stable code check. */
static void reject(const char *text, size_t len, const char *want_err)
{
    sb_record_t d;
    char err[128] = "";
    ck_assert_msg(sb_record_decode(text, len, &d, err, sizeof err) == -1, "accepted: %.*s",
                  (int)len, text);
    ck_assert_msg(strcmp(err, want_err) == 0, "err \"%s\", want \"%s\"", err, want_err);
}

/* A minimal record's encoding (20 fields, version 2) with field idx replaced. */
static char *with_field(int idx, const char *value)
{
    static char buf[4096];
    const char *f[20] = {"p", "2", "csat", "j", "c", "i", "ch", "en", "", "", "a",
                         "t", "r", "pr", "st", "k", "1", "2", "3", ""};
    f[idx] = value;
    size_t n = 0;
    for (int i = 0; i < 20; i++) n += (size_t)snprintf(buf + n, sizeof buf - n, "%s%s", i ? S : "", f[i]);
    return buf;
}

START_TEST(decode_rejects)
{
    /* baseline: the unmodified text is a record */
    sb_record_t d;
    char err[128];
    char *ok = with_field(0, "p");
    ck_assert_int_eq(sb_record_decode(ok, strlen(ok), &d, err, sizeof err), 0);
    ck_assert_str_eq(d.journey, "j");
    ck_assert_int_eq(d.due_ms, 1);
    ck_assert_int_eq(d.expires_ms, 2);
    ck_assert_int_eq(d.remind_after_ms, 3);

    /* field counts: 18 (no reason field), 21 (one too many for version 2), nothing at all */
    static const char f18[] = "p" S "1" S "csat" S "j" S "c" S "i" S "ch" S "en" S "" S "a" S
                              "t" S "r" S "pr" S "st" S "k" S "1" S "2" S "3";
    reject(f18, sizeof f18 - 1, "bad_record: 18 fields");
    char f21[512];
    snprintf(f21, sizeof f21, "%s" S "extra", ok);
    reject(f21, strlen(f21), "bad_record: 21 fields");
    snprintf(f21, sizeof f21, "%s" S, ok); /* trailing separator: an empty 21st field */
    reject(f21, strlen(f21), "bad_record: 21 fields");
    reject("", 0, "bad_record: 1 fields");
    reject("p", 1, "bad_record: 1 fields");
    /* the old 22-field layout (decimal times, event id, zone, occurrence) is not a record */
    static const char old[] = "p" S "1" S "csat" S "j" S "c" S "i" S "e" S "ch" S "en" S "" S
                              "UTC" S "a" S "t" S "r" S "pr" S "st" S "k" S "1" S "2" S "3" S
                              "0" S "";
    reject(old, sizeof old - 1, "bad_record: 21 fields");

    /* a version 1 record (19 fields, written before the interaction's channel was kept)
     * is read with the delivery channel as the channel dimension */
    static const char v1[] = "f" S "1" S "csat" S "j" S "c" S "i" S "ch" S "en" S "" S "a" S
                             "t" S "r" S "pr" S "st" S "k" S "1" S "2" S "3" S "";
    ck_assert_int_eq(sb_record_decode(v1, sizeof v1 - 1, &d, err, sizeof err), 0);
    ck_assert_int_eq(d.state, 'f');
    ck_assert_str_eq(d.channel, "ch");
    ck_assert_str_eq(d.dim[SB_DIM_CHANNEL], "ch");
    ck_assert_str_eq(d.dim[SB_DIM_AGENT], "a");
    ck_assert_str_eq(d.dim[SB_DIM_KIND], "k");
    ck_assert_int_eq(d.due_ms, 1);
    ck_assert_int_eq(d.expires_ms, 2);
    ck_assert_int_eq(d.remind_after_ms, 3);
    ck_assert_str_eq(d.reason, "");
    /* ... but 19 fields are not a version 2 record, nor 20 a version 1 */
    char *t21 = with_field(19, "x" S "3");
    reject(t21, strlen(t21), "bad_record: 21 fields");
    char v1x[512];
    snprintf(v1x, sizeof v1x, "%.*s" S "x", (int)(sizeof v1 - 1), v1);
    reject(v1x, strlen(v1x), "bad_record: 20 fields");
    static const char v2short[] = "p" S "2" S "csat" S "j" S "c" S "i" S "ch" S "en" S "" S
                                  "a" S "t" S "r" S "pr" S "st" S "k" S "1" S "2" S "3" S "";
    reject(v2short, sizeof v2short - 1, "bad_record: 19 fields");
    /* version 3 (21 fields): the customer's zone before the times */
    static const char v3[] = "p" S "3" S "csat" S "j" S "c" S "i" S "ch" S "en" S "" S "" S "a" S
                             "t" S "r" S "pr" S "st" S "k" S "Asia/Tokyo" S "1" S "2" S "3" S "";
    ck_assert_int_eq(sb_record_decode(v3, sizeof v3 - 1, &d, err, sizeof err), 0);
    ck_assert_str_eq(d.tz, "Asia/Tokyo");
    ck_assert_str_eq(d.dim[SB_DIM_KIND], "k");
    ck_assert_int_eq(d.due_ms, 1);
    ck_assert_int_eq(d.expires_ms, 2);
    ck_assert_int_eq(d.remind_after_ms, 3);
    ok = with_field(0, "p"); /* with_field's buffer was reused since */
    ck_assert_int_eq(sb_record_decode(ok, strlen(ok), &d, err, sizeof err), 0);
    ck_assert_str_eq(d.tz, ""); /* version 2: none */


    /* version, state byte */
    reject(with_field(1, "4"), strlen(with_field(1, "4")), "bad_record: version");
    /* version 3 has the zone: 20 fields are not one */
    reject(with_field(1, "3"), strlen(with_field(1, "3")), "bad_record: 20 fields");
    reject(with_field(1, "0"), strlen(with_field(1, "0")), "bad_record: version");
    reject(with_field(1, "11"), strlen(with_field(1, "11")), "bad_record: version");
    reject(with_field(1, ""), strlen(with_field(1, "")), "bad_record: version");
    reject(with_field(0, ""), strlen(with_field(0, "")), "bad_record: version");
    reject(with_field(0, "pp"), strlen(with_field(0, "pp")), "bad_record: version");

    /* kind */
    const char *kinds[] = {"", "CSAT", "survey", "npsnpsnpsnpsnpsnpsnps"};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        char *t = with_field(2, kinds[i]);
        reject(t, strlen(t), "bad_record: kind");
    }

    /* times: each of the three, with text that is not lowercase base 36 up to INT64_MAX
     * ("1y2p0ij32e8e8" is INT64_MAX + 1; 14 digits are too many even with leading zeros) */
    const char *times[] = {"", "A", "MWRO18G0", "1.5", " 5", "5 ", "+5", "-1", "-",
                           "1_0", "1y2p0ij32e8e8", "zzzzzzzzzzzzz", "00000000000001"};
    for (int fi = 16; fi <= 18; fi++)
        for (size_t i = 0; i < sizeof times / sizeof times[0]; i++) {
            char *t = with_field(fi, times[i]);
            reject(t, strlen(t), "bad_record: time");
        }
    /* the extremes are times: 0 and INT64_MAX; and the hand-worked value */
    char *t = with_field(16, "1y2p0ij32e8e7");
    ck_assert_int_eq(sb_record_decode(t, strlen(t), &d, err, sizeof err), 0);
    ck_assert_int_eq(d.due_ms, INT64_MAX);
    t = with_field(17, "0");
    ck_assert_int_eq(sb_record_decode(t, strlen(t), &d, err, sizeof err), 0);
    ck_assert_int_eq(d.expires_ms, 0);
    t = with_field(18, "mwro18g0");
    ck_assert_int_eq(sb_record_decode(t, strlen(t), &d, err, sizeof err), 0);
    ck_assert_int_eq(d.remind_after_ms, 1795341600000LL);

    /* over-long text fields: 257 bytes in each of fields 3..15, 32 bytes of reason */
    char big[SB_STR_MAX + 2];
    memset(big, 'x', SB_STR_MAX + 1);
    big[SB_STR_MAX + 1] = '\0';
    for (int fi = 3; fi <= 15; fi++) {
        char want[64];
        snprintf(want, sizeof want, "bad_record: field %d too long", fi);
        t = with_field(fi, big);
        reject(t, strlen(t), want);
    }
    big[SB_STR_MAX] = '\0'; /* 256 bytes is the limit, accepted */
    t = with_field(4, big);
    ck_assert_int_eq(sb_record_decode(t, strlen(t), &d, err, sizeof err), 0);
    ck_assert_uint_eq(strlen(d.customer_id), SB_STR_MAX);
    char reason[40];
    memset(reason, 'r', 32), reason[32] = '\0';
    t = with_field(19, reason);
    reject(t, strlen(t), "bad_record: reason");
    reason[31] = '\0';
    t = with_field(19, reason);
    ck_assert_int_eq(sb_record_decode(t, strlen(t), &d, err, sizeof err), 0);
    ck_assert_str_eq(d.reason, reason);

    /* len is honoured: a valid record followed by bytes outside len decodes; cut before
     * the last separator (inside the reminder time) it does not */
    t = with_field(0, "f");
    size_t n = strlen(t);
    ck_assert_int_eq(sb_record_decode(t, n, &d, err, sizeof err), 0);
    ck_assert_int_eq(d.state, 'f');
    ck_assert_int_eq(d.remind_after_ms, 3);
    ck_assert_int_eq(sb_record_decode(t, n - 1, &d, err, sizeof err), -1);
    ck_assert_int_eq(sb_record_decode(t, n - 2, &d, err, sizeof err), -1);

    /* err may be NULL */
    ck_assert_int_eq(sb_record_decode("x", 1, &d, NULL, 0), -1);
}
END_TEST

/* ---------------------------------------------------------------- from an event */

static void ev_set(sb_event_t *ev, sb_field_t f, const char *v)
{
    snprintf(ev->val[f], sizeof ev->val[f], "%s", v);
}

START_TEST(from_event_fills_dimensions)
{
    sb_event_t ev;
    memset(&ev, 0, sizeof ev);
    ev.type = SB_EV_COMPLETED;
    ev.occurred_ms = 1795341600000LL;
    ev_set(&ev, SB_F_EVENT_ID, "evt-1");
    ev_set(&ev, SB_F_CUSTOMER_ID, "客户-1");
    ev_set(&ev, SB_F_CUSTOMER_TZ, "Asia/Shanghai");
    ev_set(&ev, SB_F_LOCALE, "zh-CN");
    ev_set(&ev, SB_F_INTERACTION_ID, "t-9");
    ev_set(&ev, SB_F_KIND, "support_ticket");
    ev_set(&ev, SB_F_CHANNEL, "phone");
    ev_set(&ev, SB_F_STAGE, "post-sale");
    ev_set(&ev, SB_F_AGENT, "王小明");
    ev_set(&ev, SB_F_TEAM, "sh-1");
    ev_set(&ev, SB_F_REGION, "east");
    ev_set(&ev, SB_F_PRODUCT, "fiber");
    ev_set(&ev, SB_F_DEVICE_ID, "dev-7");

    char jname[] = "support-csat", jchan[] = "email", empty[] = "";
    sb_journey_t j;
    memset(&j, 0, sizeof j);
    j.name = jname;
    j.survey = SB_KIND_CSAT;
    j.channel = jchan;
    j.remind_after_ms = 86400000LL;

    sb_record_t r;
    memset(&r, 0x55, sizeof r); /* every byte is overwritten */
    sb_record_from_event(&r, &ev, &j, 1795345200000LL, 1795604400000LL);
    ck_assert_int_eq(r.state, SB_REC_PENDING);
    ck_assert_int_eq(r.kind, SB_KIND_CSAT);
    ck_assert_str_eq(r.journey, "support-csat");
    ck_assert_str_eq(r.customer_id, "客户-1");
    ck_assert_str_eq(r.interaction_id, "t-9");
    ck_assert_str_eq(r.channel, "email"); /* the journey's channel wins */
    ck_assert_str_eq(r.locale, "zh-CN");
    ck_assert_str_eq(r.device_id, "dev-7");
    ck_assert_str_eq(r.dim[SB_DIM_ALL], "all");
    /* the channel dimension is the interaction's: a phone call surveyed by email counts
     * for phone, as its KPIs do */
    ck_assert_str_eq(r.dim[SB_DIM_CHANNEL], "phone");
    ck_assert_str_eq(r.dim[SB_DIM_AGENT], "王小明");
    ck_assert_str_eq(r.dim[SB_DIM_TEAM], "sh-1");
    ck_assert_str_eq(r.dim[SB_DIM_REGION], "east");
    ck_assert_str_eq(r.dim[SB_DIM_PRODUCT], "fiber");
    ck_assert_str_eq(r.dim[SB_DIM_STAGE], "post-sale");
    ck_assert_str_eq(r.dim[SB_DIM_JOURNEY], "support-csat");
    ck_assert_str_eq(r.dim[SB_DIM_KIND], "support_ticket");
    ck_assert_str_eq(r.dim[SB_DIM_LOCALE], "zh-CN");
    ck_assert_str_eq(r.dim[SB_DIM_DEVICE], "dev-7");
    ck_assert_int_eq(r.due_ms, 1795345200000LL);
    ck_assert_int_eq(r.expires_ms, 1795604400000LL);
    ck_assert_int_eq(r.remind_after_ms, 86400000LL);
    ck_assert_str_eq(r.reason, "");

    /* what is stored decodes to the same record; the event's id, zone and occurrence
     * time are not stored (1795341600000 would be "mwro18g0") */
    size_t len;
    char *v = sb_record_encode(&r, &len);
    ck_assert_ptr_nonnull(v);
    ck_assert_ptr_null(strstr(v, "evt-1"));
    ck_assert_ptr_null(strstr(v, "Asia/Shanghai"));
    ck_assert_ptr_null(strstr(v, "mwro18g0"));
    ck_assert_ptr_nonnull(strstr(v, S "mwrq6e80" S "mww0hy80" S "1ffuo0" S));
    sb_record_t d;
    char err[128];
    ck_assert_int_eq(sb_record_decode(v, len, &d, err, sizeof err), 0);
    assert_same(&r, &d);
    free(v);
    ck_assert_str_eq(r.tz, ""); /* a reminder, but no quiet hours: the zone is not needed */

    /* quiet hours: the zone is kept, to check them again when the survey and its reminder
     * go out */
    j.has_quiet = true, j.quiet_start_min = 21 * 60, j.quiet_end_min = 8 * 60;
    sb_record_from_event(&r, &ev, &j, 1795345200000LL, 1795604400000LL);
    ck_assert_str_eq(r.tz, "Asia/Shanghai");
    v = sb_record_encode(&r, &len);
    ck_assert_ptr_nonnull(strstr(v, S "Asia/Shanghai" S "mwrq6e80" S));
    ck_assert_int_eq(sb_record_decode(v, len, &d, err, sizeof err), 0);
    assert_same(&r, &d);
    free(v);
    j.has_quiet = false;

    /* without a journey channel (NULL or ""), the event's channel; no reminder */
    j.channel = NULL;
    j.remind_after_ms = 0;
    j.survey = SB_KIND_NPS;
    sb_record_from_event(&r, &ev, &j, 1, 2);
    ck_assert_str_eq(r.channel, "phone");
    ck_assert_str_eq(r.dim[SB_DIM_CHANNEL], "phone");
    ck_assert_int_eq(r.kind, SB_KIND_NPS);
    ck_assert_int_eq(r.remind_after_ms, 0);
    j.channel = empty;
    sb_record_from_event(&r, &ev, &j, 1, 2);
    ck_assert_str_eq(r.channel, "phone");
    /* no channel on either side, but a device (an MQTT visit): the device */
    ev_set(&ev, SB_F_CHANNEL, "");
    sb_record_from_event(&r, &ev, &j, 1, 2);
    ck_assert_str_eq(r.channel, "device");
    ck_assert_str_eq(r.dim[SB_DIM_CHANNEL], "device");
    /* sent by email, the visit's channel is still "device" */
    j.channel = jchan;
    sb_record_from_event(&r, &ev, &j, 1, 2);
    ck_assert_str_eq(r.channel, "email");
    ck_assert_str_eq(r.dim[SB_DIM_CHANNEL], "device");
    /* neither a channel nor a device in the event: the channel sent on */
    ev_set(&ev, SB_F_DEVICE_ID, "");
    sb_record_from_event(&r, &ev, &j, 1, 2);
    ck_assert_str_eq(r.dim[SB_DIM_CHANNEL], "email");
    j.channel = empty;

    /* absent fields stay "" */
    memset(&ev, 0, sizeof ev);
    ev_set(&ev, SB_F_INTERACTION_ID, "t-10");
    sb_record_from_event(&r, &ev, &j, 1, 2);
    ck_assert_str_eq(r.channel, "");
    ck_assert_str_eq(r.dim[SB_DIM_CHANNEL], "");
    ck_assert_str_eq(r.dim[SB_DIM_AGENT], "");
    ck_assert_str_eq(r.dim[SB_DIM_DEVICE], "");
    ck_assert_str_eq(r.dim[SB_DIM_ALL], "all");
    ck_assert_str_eq(r.dim[SB_DIM_JOURNEY], "support-csat");
}
END_TEST

START_TEST(state_names)
{
    ck_assert_str_eq(sb_record_state_name(SB_REC_PENDING), "pending");
    ck_assert_str_eq(sb_record_state_name(SB_REC_FIRED), "fired");
    ck_assert_str_eq(sb_record_state_name(SB_REC_CANCELLED), "cancelled");
    ck_assert_str_eq(sb_record_state_name(SB_REC_SUPPRESSED), "suppressed");
    ck_assert_str_eq(sb_record_state_name(SB_REC_EXPIRED), "expired");
    ck_assert_str_eq(sb_record_state_name('p'), "pending");
    ck_assert_str_eq(sb_record_state_name('z'), "unknown");
    ck_assert_str_eq(sb_record_state_name('\0'), "unknown");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("record");
    TCase *tc = tcase_create("record");
    tcase_add_test(tc, survey_id_known_answers);
    tcase_add_test(tc, survey_id_longest_values);
    tcase_add_test(tc, encode_exact_format);
    tcase_add_test(tc, encode_refuses);
    tcase_add_test(tc, round_trip_full_record);
    tcase_add_test(tc, round_trip_longest_fields);
    tcase_add_test(tc, decode_rejects);
    tcase_add_test(tc, from_event_fills_dimensions);
    tcase_add_test(tc, state_names);
    suite_add_tcase(s, tc);
    return sb_unit_run(s);
}
