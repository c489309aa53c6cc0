/* The fast JSON reader: the token layout of small documents worked out by hand, the values
 * it reads, the documents it leaves to jansson, pointer resolution, and the same event read
 * through both paths. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dlq.h"
#include "event.h"
#include "jscan.h"

#include "unit.h"

static sb_jtok_t t[64];

static int scan(const char *s) { return sb_jscan(s, strlen(s), t, 64); }

static void assert_str(int k, const char *want)
{
    ck_assert_int_eq(t[k].v.type, SB_JV_STR);
    ck_assert_uint_eq(t[k].v.n, strlen(want));
    ck_assert(memcmp(t[k].v.s, want, t[k].v.n) == 0);
}

START_TEST(layout)
{
    /* 0 {  1 "a"  2 [  3 1  4 true  5 "b"  6 {  7 "c"  8 null  9 "d"  10 "x" */
    const char *doc = " {\"a\":[1,true],\"b\":{\"c\":null},\"d\":\"x\"} ";
    ck_assert_int_eq(scan(doc), 11);
    ck_assert_int_eq(t[0].v.type, SB_JV_OBJ);
    ck_assert_uint_eq(t[0].v.n, 3);
    ck_assert_int_eq(t[0].end, 11);
    assert_str(1, "a");
    ck_assert_int_eq(t[2].v.type, SB_JV_ARR);
    ck_assert_uint_eq(t[2].v.n, 2);
    ck_assert_int_eq(t[2].end, 5);
    ck_assert_int_eq(t[3].v.type, SB_JV_INT);
    ck_assert_int_eq(t[3].v.i, 1);
    ck_assert_int_eq(t[4].v.type, SB_JV_TRUE);
    assert_str(5, "b");
    ck_assert_int_eq(t[6].v.type, SB_JV_OBJ);
    ck_assert_int_eq(t[6].end, 9);
    ck_assert_int_eq(t[8].v.type, SB_JV_NULL);
    assert_str(10, "x");
    ck_assert_int_eq(t[10].end, 11);
    ck_assert_int_eq(scan("{}"), 1);
    ck_assert_int_eq(scan("{\"\":[]}"), 3);
}
END_TEST

START_TEST(numbers)
{
    ck_assert_int_eq(scan("{\"n\":[0,-0,-12,123456789012345678,2.5,-0.0,1e3,1.5E-2]}"), 11);
    ck_assert_int_eq(t[3].v.type, SB_JV_INT);
    ck_assert_int_eq(t[3].v.i, 0);
    ck_assert_int_eq(t[4].v.type, SB_JV_INT);
    ck_assert_int_eq(t[4].v.i, 0);
    ck_assert_int_eq(t[5].v.i, -12);
    ck_assert(t[5].v.d == -12.0);
    ck_assert_int_eq(t[6].v.i, 123456789012345678LL); /* 18 digits */
    ck_assert_int_eq(t[7].v.type, SB_JV_REAL);
    ck_assert(t[7].v.d == 2.5);
    ck_assert_int_eq(t[8].v.type, SB_JV_REAL);
    ck_assert(t[8].v.d == 0 && signbit(t[8].v.d));
    ck_assert_int_eq(t[9].v.type, SB_JV_REAL);
    ck_assert(t[9].v.d == 1000.0);
    ck_assert(t[10].v.d == 0.015);
}
END_TEST

START_TEST(left_to_jansson)
{
    static const char *const docs[] = {
        "", "   ", "[1]", "\"s\"", "{", "{\"a\":1", "{\"a\":1}x", "{\"a\":1,}", "{,}",
        "{\"a\" 1}", "{\"a\":1 \"b\":2}", "{\"a\":[1,,2]}", "{\"a\":[1 2]}", "{1:2}",
        "{\"a\":01}", "{\"a\":1.}", "{\"a\":.5}", "{\"a\":-}", "{\"a\":1e}", "{\"a\":+1}",
        "{\"a\":tru}", "{\"a\":nul}", "{\"a\":True}", "{\"a\":1e999}", "{\"a\":-1e999}",
        "{\"a\":1234567890123456789}", /* 19 digits: jansson decides (it fits, or not) */
        "{\"a\":\"x\\ny\"}", "{\"a\":\"tab\there\"}", "{\"a\\u0062\":1}", "{\"a\":1,\"a\":2}",
        "{\"o\":{\"k\":1,\"k\":1}}", "{\"a\":\"unterminated}", "\xef\xbb\xbf{}", /* BOM */
    };
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++)
        ck_assert_msg(scan(docs[i]) == -1, "took %s", docs[i]);
    /* 32 levels of nesting are read, 33 are left to jansson */
    char deep[80] = "{\"a\":";
    for (int i = 0; i < 31; i++) strcat(deep, "[");
    for (int i = 0; i < 31; i++) strcat(deep, "]");
    strcat(deep, "}");
    ck_assert_int_eq(scan(deep), 33);
    char deeper[80] = "{\"a\":";
    for (int i = 0; i < 32; i++) strcat(deeper, "[");
    for (int i = 0; i < 32; i++) strcat(deeper, "]");
    strcat(deeper, "}");
    ck_assert_int_eq(scan(deeper), -1);
    /* more tokens than room */
    ck_assert_int_eq(sb_jscan("{\"a\":[1,2,3]}", 13, t, 6), 6);
    ck_assert_int_eq(sb_jscan("{\"a\":[1,2,3]}", 13, t, 5), -1);
}
END_TEST

START_TEST(find)
{
    int n = scan("{\"a\":[\"p\",{\"b\":2}],\"x/y\":3,\"m~n\":4,\"\":5,\"s\":\"t\"}");
    ck_assert_int_eq(n, 15);
    ck_assert_int_eq(sb_jscan_find(t, n, "/a"), 2);
    ck_assert_int_eq(sb_jscan_find(t, n, "/a/0"), 3);
    ck_assert_int_eq(sb_jscan_find(t, n, "/a/1/b"), 6);
    ck_assert_int_eq(t[6].v.i, 2);
    ck_assert_int_eq(t[sb_jscan_find(t, n, "/x~1y")].v.i, 3);
    ck_assert_int_eq(t[sb_jscan_find(t, n, "/m~0n")].v.i, 4);
    ck_assert_int_eq(t[sb_jscan_find(t, n, "/")].v.i, 5);
    ck_assert_int_eq(sb_jscan_find(t, n, "/a/2"), -1);   /* past the end */
    ck_assert_int_eq(sb_jscan_find(t, n, "/a/01"), -1);  /* not an index */
    ck_assert_int_eq(sb_jscan_find(t, n, "/a/-"), -1);
    ck_assert_int_eq(sb_jscan_find(t, n, "/s/0"), -1);   /* into a string */
    ck_assert_int_eq(sb_jscan_find(t, n, "/nope"), -1);
    ck_assert_int_eq(sb_jscan_find(t, n, "/a/1/b/c"), -1);
}
END_TEST

/* An event the fast path reads and the same event with one escape (which jansson reads)
 * give the same fields. */
START_TEST(event_both_paths)
{
    char *map[SB_F__N] = {0};
    static char ptrs[SB_F__N][48];
    for (int f = 0; f < SB_F__N; f++) {
        ptrs[f][0] = '/';
        strcpy(ptrs[f] + 1, sb_field_names[f]);
        for (char *c = ptrs[f]; *c; c++)
            if (*c == '.') *c = '/';
        map[f] = ptrs[f];
    }
    const char *fast = "{\"event_id\":\"e-1\",\"occurred_at\":\"2026-11-24T10:00:00.250Z\","
                       "\"customer_id\":42,\"interaction_id\":\"t-1\",\"kind\":\"support\","
                       "\"channel\":\"phone\",\"kpi\":{\"first_response_s\":12.25,"
                       "\"resolution_s\":600,\"resolved_first_contact\":false,\"transfers\":2}}";
    const char *slow = "{\"event_id\":\"e-\\u0031\",\"occurred_at\":\"2026-11-24T10:00:00.250Z\","
                       "\"customer_id\":42,\"interaction_id\":\"t-1\",\"kind\":\"support\","
                       "\"channel\":\"phone\",\"kpi\":{\"first_response_s\":12.25,"
                       "\"resolution_s\":600,\"resolved_first_contact\":false,\"transfers\":2}}";
    ck_assert_int_ge(sb_jscan(fast, strlen(fast), t, 64), 0);
    ck_assert_int_eq(sb_jscan(slow, strlen(slow), t, 64), -1);
    sb_event_t *a = malloc(sizeof *a), *b = malloc(sizeof *b);
    char err[200];
    ck_assert_int_eq(sb_event_parse(fast, strlen(fast), map, NULL, false, a, err, sizeof err), 0);
    ck_assert_int_eq(sb_event_parse(slow, strlen(slow), map, NULL, false, b, err, sizeof err), 0);
    ck_assert(memcmp(a, b, sizeof *a) == 0);
    ck_assert_str_eq(a->val[SB_F_EVENT_ID], "e-1");
    ck_assert_str_eq(a->val[SB_F_CUSTOMER_ID], "42");
    ck_assert_int_eq(a->occurred_ms, 1795514400250LL);
    ck_assert_str_eq(a->val[SB_F_KPI_FRT], "12.25");
    ck_assert(a->frt_s == 12.25 && a->art_s == 600.0);
    ck_assert(a->has_fcr && !a->fcr);
    ck_assert_int_eq(a->transfers, 2);
    /* the reasons of jansson's path are unchanged: a duplicate key */
    const char *dup = "{\"event_id\":\"e-1\",\"event_id\":\"e-2\"}";
    ck_assert_int_eq(sb_event_parse(dup, strlen(dup), map, NULL, false, a, err, sizeof err), -1);
    ck_assert_msg(strncmp(err, "invalid_json: duplicate object key", 34) == 0, "%s", err);
    free(a), free(b);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("jscan");
    TCase *tc = tcase_create("scan");
    tcase_add_test(tc, layout);
    tcase_add_test(tc, numbers);
    tcase_add_test(tc, left_to_jansson);
    tcase_add_test(tc, find);
    tcase_add_test(tc, event_both_paths);
    suite_add_tcase(s, tc);
    return sb_unit_run(s);
}
