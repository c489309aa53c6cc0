/* Unit tests for common/util.c: UTF-8, topic safety, durations, RFC 3339 times. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

#include "unit.h"

START_TEST(utf8_accepts_valid)
{
    ck_assert(sb_utf8_valid("", 0));
    ck_assert(sb_utf8_valid("plain ascii", 11));
    ck_assert(sb_utf8_valid("\xe6\x82\xa8\xe5\xa5\xbd", 6));     /* 您好 */
    ck_assert(sb_utf8_valid("\xf0\x9f\x98\x80", 4));             /* U+1F600 */
    ck_assert(sb_utf8_valid("\xc3\xa9t\xc3\xa9", 5));            /* été */
    ck_assert(sb_utf8_valid("\xf4\x8f\xbf\xbf", 4));             /* U+10FFFF, the last */
}
END_TEST

START_TEST(utf8_ascii_runs)
{
    /* ASCII is skipped eight bytes at a time: a multi-byte sequence (or a bad byte) must be
     * seen wherever it falls relative to those words, and at the very end */
    char buf[40];
    for (size_t at = 0; at + 3 <= sizeof buf; at++) {
        memset(buf, 'a', sizeof buf);
        memcpy(buf + at, "\xe6\x82\xa8", 3); /* 您, valid */
        ck_assert(sb_utf8_valid(buf, sizeof buf));
        buf[at + 2] = 'a'; /* its last continuation byte replaced by ASCII: invalid */
        ck_assert(!sb_utf8_valid(buf, sizeof buf));
        memset(buf, 'a', sizeof buf);
        buf[at] = (char)0xff; /* never valid */
        ck_assert(!sb_utf8_valid(buf, sizeof buf));
    }
    memset(buf, 'a', sizeof buf);
    buf[sizeof buf - 1] = (char)0xc3; /* a truncated 2-byte sequence as the last byte */
    ck_assert(!sb_utf8_valid(buf, sizeof buf));
    ck_assert(sb_utf8_valid(buf, sizeof buf - 1));
}
END_TEST

START_TEST(int_format)
{
    char out[SB_INT_TEXT_MAX];
    ck_assert_uint_eq(sb_int_format(0, out), 1);
    ck_assert_str_eq(out, "0");
    ck_assert_uint_eq(sb_int_format(7, out), 1);
    ck_assert_str_eq(out, "7");
    ck_assert_uint_eq(sb_int_format(-42, out), 3);
    ck_assert_str_eq(out, "-42");
    ck_assert_uint_eq(sb_int_format(1000, out), 4);
    ck_assert_str_eq(out, "1000");
    /* 2^63 - 1 and -2^63: 19 digits, and 19 digits with the sign */
    ck_assert_uint_eq(sb_int_format(INT64_MAX, out), 19);
    ck_assert_str_eq(out, "9223372036854775807");
    ck_assert_uint_eq(sb_int_format(INT64_MIN, out), 20);
    ck_assert_str_eq(out, "-9223372036854775808");
}
END_TEST

START_TEST(utf8_repaired_marks_bad_bytes)
{
    static const struct {
        const char *in, *out;
    } cases[] = {{"", ""},
                 {"plain", "plain"},
                 {"\xe6\x82\xa8\xe5\xa5\xbd", "\xe6\x82\xa8\xe5\xa5\xbd"}, /* kept whole */
                 {"a\xff.json", "a?.json"},
                 {"\xe6\x82x", "?" "?x"},          /* a cut sequence: each of its bytes */
                 {"\xc0\xaf/", "?" "?/"},          /* overlong */
                 {"\xed\xa0\x80", "?" "?" "?"},   /* surrogate */
                 {"end\xe6\x82", "end?" "?"}};     /* cut at the end */
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *t = sb_utf8_repaired(cases[i].in);
        ck_assert_str_eq(t, cases[i].out);
        ck_assert(sb_utf8_valid(t, strlen(t)));
        free(t);
    }
}
END_TEST

START_TEST(utf8_rejects_invalid)
{
    ck_assert(!sb_utf8_valid("\xc0\xaf", 2));         /* overlong '/' */
    ck_assert(!sb_utf8_valid("\xe0\x80\xaf", 3));     /* overlong 3-byte */
    ck_assert(!sb_utf8_valid("\xed\xa0\x80", 3));     /* surrogate U+D800 */
    ck_assert(!sb_utf8_valid("\xf4\x90\x80\x80", 4)); /* U+110000 */
    ck_assert(!sb_utf8_valid("\xe6\x82", 2));         /* truncated */
    ck_assert(!sb_utf8_valid("\x80", 1));             /* lone continuation */
    ck_assert(!sb_utf8_valid("\xff", 1));
    ck_assert(!sb_utf8_valid("a\xe6\x82" "a", 4));    /* continuation replaced by ASCII */
}
END_TEST

START_TEST(topic_safety)
{
    ck_assert(sb_str_topic_safe("agent-7", 7));
    ck_assert(sb_str_topic_safe("\xe5\x8c\x97\xe4\xba\xac", 6)); /* 北京 */
    ck_assert(!sb_str_topic_safe("", 0));
    ck_assert(!sb_str_topic_safe("a/b", 3));
    ck_assert(!sb_str_topic_safe("a+", 2));
    ck_assert(!sb_str_topic_safe("#", 1));
    ck_assert(!sb_str_topic_safe("a|b", 3));
    ck_assert(!sb_str_topic_safe("a\nb", 3));
    ck_assert(!sb_str_topic_safe("a\0b", 3));
    /* C1 controls (U+0085 NEL, U+009F) are refused; U+00A0 (no-break space) and U+00BF are not
     * controls */
    ck_assert(!sb_str_topic_safe("a\xc2\x85", 3));
    ck_assert(!sb_str_topic_safe("\xc2\x9f", 2));
    ck_assert(!sb_str_topic_safe("\xc2\x80z", 3));
    ck_assert(sb_str_topic_safe("a\xc2\xa0", 3));
    ck_assert(sb_str_topic_safe("\xc2\xbf", 2));
    char big[SB_STR_MAX + 2];
    memset(big, 'x', sizeof big);
    ck_assert(sb_str_topic_safe(big, SB_STR_MAX));
    ck_assert(!sb_str_topic_safe(big, SB_STR_MAX + 1));
}
END_TEST

START_TEST(text_controls)
{
    ck_assert(sb_text_no_controls("", 0, ""));
    ck_assert(sb_text_no_controls("a\tb\nc", 5, "\n\t"));
    ck_assert(!sb_text_no_controls("a\rb", 3, "\n\t"));
    ck_assert(sb_text_no_controls("a\rb", 3, "\t\n\r"));
    ck_assert(!sb_text_no_controls("a\x01", 2, "\n\t"));
    ck_assert(!sb_text_no_controls("a\x1b[1m", 5, "\n\t"));
    ck_assert(!sb_text_no_controls("a\x7f", 2, "\n\t"));
    ck_assert(!sb_text_no_controls("a\0b", 3, "\n\t")); /* NUL is never "allowed" */
    /* C1 controls (U+0080, U+0085 NEL, U+009B CSI, U+009F) are refused; U+00A0 and U+00BF,
     * and a character whose last byte is 0x80..0x9F (U+4E2D: E4 B8 AD, U+20AC: E2 82 AC), are
     * not controls */
    ck_assert(!sb_text_no_controls("\xc2\x80", 2, ""));
    ck_assert(!sb_text_no_controls("a\xc2\x85", 3, ""));
    ck_assert(!sb_text_no_controls("\xc2\x9b" "1m", 4, ""));
    ck_assert(!sb_text_no_controls("\xc2\x9f", 2, ""));
    ck_assert(sb_text_no_controls("\xc2\xa0\xc2\xbf", 4, ""));
    ck_assert(sb_text_no_controls("\xe4\xb8\xad\xe2\x82\xac\xc3\x82\xc2\xa0", 10, ""));
}
END_TEST

START_TEST(durations)
{
    int64_t ms;
    ck_assert_int_eq(sb_duration_parse("30s", &ms), 0);
    ck_assert_int_eq(ms, 30000);
    ck_assert_int_eq(sb_duration_parse("5m", &ms), 0);
    ck_assert_int_eq(ms, 300000);
    ck_assert_int_eq(sb_duration_parse("1h", &ms), 0);
    ck_assert_int_eq(ms, 3600000);
    ck_assert_int_eq(sb_duration_parse("7d", &ms), 0);
    ck_assert_int_eq(ms, 604800000);
    ck_assert_int_eq(sb_duration_parse("250ms", &ms), 0);
    ck_assert_int_eq(ms, 250);
    ck_assert_int_eq(sb_duration_parse("0", &ms), 0);
    ck_assert_int_eq(ms, 0);
    ck_assert_int_eq(sb_duration_parse("0s", &ms), 0);
    ck_assert_int_eq(sb_duration_parse("5", &ms), -1);
    ck_assert_int_eq(sb_duration_parse("5x", &ms), -1);
    ck_assert_int_eq(sb_duration_parse("-5s", &ms), -1);
    ck_assert_int_eq(sb_duration_parse("1.5h", &ms), -1);
    ck_assert_int_eq(sb_duration_parse("", &ms), -1);
    ck_assert_int_eq(sb_duration_parse("s", &ms), -1);
    ck_assert_int_eq(sb_duration_parse("99999999999999999999d", &ms), -1);
    ck_assert_int_eq(sb_duration_parse("999999999999999d", &ms), -1); /* overflows ms */

    char buf[32];
    sb_duration_format(604800000, buf, sizeof buf);
    ck_assert_str_eq(buf, "7d");
    sb_duration_format(90000, buf, sizeof buf);
    ck_assert_str_eq(buf, "90s");
    sb_duration_format(86400000, buf, sizeof buf);
    ck_assert_str_eq(buf, "1d");
    sb_duration_format(1500, buf, sizeof buf);
    ck_assert_str_eq(buf, "1500ms");
    sb_duration_format(0, buf, sizeof buf);
    ck_assert_str_eq(buf, "0s");
}
END_TEST

START_TEST(rfc3339_parse)
{
    int64_t ms;
    /* 2026-11-22 is day 20779 since the epoch: 20779 * 86400 + 36000 = 1795341600 s. */
    ck_assert_int_eq(sb_days_from_civil(2026, 11, 22), 20779);
    ck_assert_int_eq(sb_time_parse_rfc3339("2026-11-22T10:00:00Z", &ms), 0);
    ck_assert_int_eq(ms, 1795341600000LL);
    /* +08:00 is eight hours earlier in UTC */
    ck_assert_int_eq(sb_time_parse_rfc3339("2026-11-22T18:00:00+08:00", &ms), 0);
    ck_assert_int_eq(ms, 1795341600000LL);
    ck_assert_int_eq(sb_time_parse_rfc3339("2026-11-22T05:30:00-04:30", &ms), 0);
    ck_assert_int_eq(ms, 1795341600000LL);
    ck_assert_int_eq(sb_time_parse_rfc3339("2026-11-22T10:00:00.123456Z", &ms), 0);
    ck_assert_int_eq(ms, 1795341600123LL);
    ck_assert_int_eq(sb_time_parse_rfc3339("2026-11-22t10:00:00.5z", &ms), 0);
    ck_assert_int_eq(ms, 1795341600500LL);
    /* any number of fraction digits, cut (not rounded) to milliseconds */
    ck_assert_int_eq(sb_time_parse_rfc3339("2026-11-22T10:00:00.99999999999999Z", &ms), 0);
    ck_assert_int_eq(ms, 1795341600999LL);
    ck_assert_int_eq(sb_time_parse_rfc3339("1970-01-01T00:00:00Z", &ms), 0);
    ck_assert_int_eq(ms, 0);
    ck_assert_int_eq(sb_time_parse_rfc3339("2024-02-29T00:00:00Z", &ms), 0); /* leap year */
    ck_assert_int_eq(sb_time_parse_rfc3339("2026-02-29T00:00:00Z", &ms), -1);
    ck_assert_int_eq(sb_time_parse_rfc3339("2100-02-29T00:00:00Z", &ms), -1); /* not leap */
    ck_assert_int_eq(sb_time_parse_rfc3339("2026-11-22T10:00:00", &ms), -1);  /* no zone */
    ck_assert_int_eq(sb_time_parse_rfc3339("2026-11-22 10:00:00Z", &ms), 0);
    ck_assert_int_eq(sb_time_parse_rfc3339("2026-13-01T00:00:00Z", &ms), -1);
    ck_assert_int_eq(sb_time_parse_rfc3339("2026-11-22T24:00:00Z", &ms), -1);
    ck_assert_int_eq(sb_time_parse_rfc3339("2026-11-22T10:00:00Zjunk", &ms), -1);
    ck_assert_int_eq(sb_time_parse_rfc3339("2026-11-22T10:00:00.Z", &ms), -1);
    ck_assert_int_eq(sb_time_parse_rfc3339("", &ms), -1);
    ck_assert_int_eq(sb_time_parse_rfc3339("yesterday", &ms), -1);
}
END_TEST

START_TEST(time_format_round_trip)
{
    char buf[32];
    sb_time_format(1795341600123LL, buf);
    ck_assert_str_eq(buf, "2026-11-22T10:00:00.123Z");
    sb_time_format(0, buf);
    ck_assert_str_eq(buf, "1970-01-01T00:00:00.000Z");
    sb_time_format(-1, buf); /* one ms before the epoch */
    ck_assert_str_eq(buf, "1969-12-31T23:59:59.999Z");
    for (int64_t t = 946684800000LL; t < 4102444800000LL; t += 987654321987LL) {
        int64_t back;
        sb_time_format(t, buf);
        ck_assert_int_eq(sb_time_parse_rfc3339(buf, &back), 0);
        ck_assert_int_eq(back, t);
    }
}
END_TEST

START_TEST(problems_and_fail)
{
    sb_problems_t p = {0};
    for (int i = 0; i < 20; i++) sb_problems_add(&p, "problem %d", i);
    ck_assert_uint_eq(p.n, 20);
    ck_assert_str_eq(p.msg[19], "problem 19");
    sb_problems_clear(&p);
    ck_assert_uint_eq(p.n, 0);
    char err[16];
    ck_assert_int_eq(sb_fail(err, sizeof err, "too_large: %d", 70000), -1);
    ck_assert_str_eq(err, "too_large: 7000");  /* truncated to the buffer */
    ck_assert_int_eq(sb_fail(NULL, 0, "x"), -1);
}
END_TEST

START_TEST(counts_merge_by_name)
{
    sb_counts_t cs = {0};
    sb_counts_add(&cs, "consumed", 1000);
    sb_counts_add(&cs, "dlq|bad_json", 1);
    sb_counts_add(&cs, "consumed", 24); /* merged: 1000 + 24 */
    sb_counts_add(&cs, "dlq|bad_json", -1);
    ck_assert_uint_eq(cs.n, 2);
    ck_assert_str_eq(cs.c[0].field, "consumed");
    ck_assert_int_eq(cs.c[0].n, 1024);
    ck_assert_str_eq(cs.c[1].field, "dlq|bad_json");
    ck_assert_int_eq(cs.c[1].n, 0);
    /* a prefix of a name is another name */
    sb_counts_add(&cs, "dlq|bad", 5);
    ck_assert_uint_eq(cs.n, 3);
    /* past the first 16 entries the arrays grow: every field still points at its own name */
    char f[32];
    for (int i = 0; i < 40; i++) {
        snprintf(f, sizeof f, "capped|dim%d", i);
        sb_counts_add(&cs, f, i);
    }
    ck_assert_uint_eq(cs.n, 43);
    for (size_t i = 0; i < cs.n; i++) ck_assert_ptr_eq(cs.c[i].field, cs.names[i]);
    ck_assert_str_eq(cs.c[42].field, "capped|dim39");
    ck_assert_int_eq(cs.c[42].n, 39);
    ck_assert_int_eq(cs.c[0].n, 1024);
    /* a field longer than 95 bytes is cut to 95, and its repeats merge with the cut name */
    char longf[130];
    memset(longf, 'x', 120);
    longf[120] = '\0';
    sb_counts_add(&cs, longf, 1);
    sb_counts_add(&cs, longf, 1);
    ck_assert_uint_eq(cs.n, 44);
    ck_assert_uint_eq(strlen(cs.c[43].field), SB_COUNT_NAME_MAX - 1);
    ck_assert_int_eq(cs.c[43].n, 2);
    /* reuse for the next batch */
    cs.n = 0;
    sb_counts_add(&cs, "late", 3);
    ck_assert_uint_eq(cs.n, 1);
    ck_assert_str_eq(cs.c[0].field, "late");
    sb_counts_free(&cs);
    ck_assert_uint_eq(cs.n, 0);
    ck_assert_ptr_null(cs.c);
}
END_TEST

START_TEST(log_levels)
{
    ck_assert_int_eq(sb_log_level_parse("debug"), SB_LOG_DEBUG);
    ck_assert_int_eq(sb_log_level_parse("error"), SB_LOG_ERROR);
    ck_assert_int_eq(sb_log_level_parse("loud"), -1);
    ck_assert_int_eq(sb_log_level_parse(NULL), -1);
    sb_log_init("test", SB_LOG_OFF);
    sb_info("not printed key=%d", 1);
    ck_assert_int_eq(sb_log_level(), SB_LOG_OFF);
}
END_TEST

/* Values from outside are quoted and escaped, so that key=value parsing of a log line holds:
 * worked by hand. */
START_TEST(log_quote_escapes)
{
    char b[64];
    ck_assert_str_eq(sb_log_quote(b, sizeof b, "mqtt:a/b"), "\"mqtt:a/b\"");
    ck_assert_str_eq(sb_log_quote(b, sizeof b, ""), "\"\"");
    ck_assert_str_eq(sb_log_quote(b, sizeof b, "a b\"c=d\\"), "\"a b\\\"c=d\\\\\"");
    ck_assert_str_eq(sb_log_quote(b, sizeof b, "x\ny\x7f"), "\"x\\x0ay\\x7f\"");
    ck_assert_str_eq(sb_log_quote(b, sizeof b, "\xe5\x8c\x97"), "\"\xe5\x8c\x97\""); /* UTF-8 kept */
    /* a C1 control (U+0085) is escaped, a no-break space (U+00A0) kept */
    ck_assert_str_eq(sb_log_quote(b, sizeof b, "a\xc2\x85\xc2\xa0"), "\"a\\xc2\\x85\xc2\xa0\"");
    /* cut to fit: 8 bytes hold the quotes, 5 characters and the NUL; an escape is never split */
    ck_assert_str_eq(sb_log_quote(b, 8, "abcdefgh"), "\"abcde\"");
    ck_assert_str_eq(sb_log_quote(b, 8, "abcd\"e"), "\"abcd\"");
    ck_assert_str_eq(sb_log_quote(b, 3, "abc"), "\"\"");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("util");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, utf8_accepts_valid);
    tcase_add_test(tc, utf8_rejects_invalid);
    tcase_add_test(tc, utf8_repaired_marks_bad_bytes);
    tcase_add_test(tc, utf8_ascii_runs);
    tcase_add_test(tc, int_format);
    tcase_add_test(tc, topic_safety);
    tcase_add_test(tc, text_controls);
    tcase_add_test(tc, durations);
    tcase_add_test(tc, rfc3339_parse);
    tcase_add_test(tc, time_format_round_trip);
    tcase_add_test(tc, problems_and_fail);
    tcase_add_test(tc, counts_merge_by_name);
    tcase_add_test(tc, log_levels);
    tcase_add_test(tc, log_quote_escapes);
    suite_add_tcase(s, tc);
    return sb_unit_run(s);
}
