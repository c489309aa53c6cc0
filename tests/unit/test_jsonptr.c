/* RFC 6901 JSON Pointer resolution: the RFC's own example document, escapes, array indices
 * and malformed pointers. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "jsonptr.h"

#include "unit.h"

/* The example document of RFC 6901 section 5. */
static const char *rfc_doc =
    "{\"foo\":[\"bar\",\"baz\"],\"\":0,\"a/b\":1,\"c%d\":2,\"e^f\":3,\"g|h\":4,\"i\\\\j\":5,"
    "\"k\\\"l\":6,\" \":7,\"m~n\":8}";

static json_t *doc;

static void setup(void)
{
    doc = json_loads(rfc_doc, 0, NULL);
    ck_assert_ptr_nonnull(doc);
}

static void teardown(void)
{
    json_decref(doc);
}

static json_int_t int_at(const char *ptr)
{
    json_t *v = sb_jsonptr_get(doc, ptr);
    ck_assert_msg(json_is_integer(v), "pointer %s did not resolve to an integer", ptr);
    return json_integer_value(v);
}

START_TEST(rfc_examples)
{
    ck_assert_ptr_eq(sb_jsonptr_get(doc, ""), doc);
    json_t *foo = sb_jsonptr_get(doc, "/foo");
    ck_assert(json_is_array(foo));
    ck_assert_int_eq(json_array_size(foo), 2);
    ck_assert_str_eq(json_string_value(sb_jsonptr_get(doc, "/foo/0")), "bar");
    ck_assert_str_eq(json_string_value(sb_jsonptr_get(doc, "/foo/1")), "baz");
    ck_assert_int_eq(int_at("/"), 0);
    ck_assert_int_eq(int_at("/a~1b"), 1);
    ck_assert_int_eq(int_at("/c%d"), 2);
    ck_assert_int_eq(int_at("/e^f"), 3);
    ck_assert_int_eq(int_at("/g|h"), 4);
    ck_assert_int_eq(int_at("/i\\j"), 5);
    ck_assert_int_eq(int_at("/k\"l"), 6);
    ck_assert_int_eq(int_at("/ "), 7);
    ck_assert_int_eq(int_at("/m~0n"), 8);
}
END_TEST

START_TEST(escape_order)
{
    /* "~01" unescapes to "~1" (not "/"): ~0 is applied to the text, never re-read. */
    json_t *d = json_loads("{\"~1\":\"tilde-one\",\"/\":\"slash\",\"~\":{\"/\":\"deep\"}}", 0, NULL);
    ck_assert_str_eq(json_string_value(sb_jsonptr_get(d, "/~01")), "tilde-one");
    ck_assert_str_eq(json_string_value(sb_jsonptr_get(d, "/~1")), "slash");
    ck_assert_str_eq(json_string_value(sb_jsonptr_get(d, "/~0/~1")), "deep");
    json_decref(d);
}
END_TEST

START_TEST(array_indices)
{
    json_t *d = json_loads("{\"a\":[10,11,12,13,14,15,16,17,18,19,20],\"o\":{\"01\":\"key\"}}", 0, NULL);
    ck_assert_int_eq(json_integer_value(sb_jsonptr_get(d, "/a/0")), 10);
    ck_assert_int_eq(json_integer_value(sb_jsonptr_get(d, "/a/10")), 20);
    ck_assert_ptr_null(sb_jsonptr_get(d, "/a/11"));   /* past the end */
    ck_assert_ptr_null(sb_jsonptr_get(d, "/a/01"));   /* leading zero */
    ck_assert_ptr_null(sb_jsonptr_get(d, "/a/-"));    /* past-the-end marker */
    ck_assert_ptr_null(sb_jsonptr_get(d, "/a/-1"));
    ck_assert_ptr_null(sb_jsonptr_get(d, "/a/1x"));
    ck_assert_ptr_null(sb_jsonptr_get(d, "/a/"));
    ck_assert_ptr_null(sb_jsonptr_get(d, "/a/99999999999999999999999999"));
    /* On an object "01" is just a key. */
    ck_assert_str_eq(json_string_value(sb_jsonptr_get(d, "/o/01")), "key");
    json_decref(d);
}
END_TEST

START_TEST(missing_and_scalars)
{
    json_t *d = json_loads("{\"n\":5,\"s\":\"x\",\"z\":null}", 0, NULL);
    ck_assert_ptr_null(sb_jsonptr_get(d, "/nope"));
    ck_assert_ptr_null(sb_jsonptr_get(d, "/n/0"));    /* cannot descend into a number */
    ck_assert_ptr_null(sb_jsonptr_get(d, "/s/x"));
    ck_assert_ptr_null(sb_jsonptr_get(d, "/nope/deeper"));
    ck_assert(json_is_null(sb_jsonptr_get(d, "/z"))); /* present, value null */
    json_t *out = (json_t *)1;
    char err[128] = "";
    ck_assert_int_eq(sb_jsonptr_resolve(d, "/nope", &out, err, sizeof err), 0);
    ck_assert_ptr_null(out);
    ck_assert_str_eq(err, "");
    json_decref(d);
}
END_TEST

START_TEST(malformed)
{
    char err[128];
    json_t *out;
    ck_assert(sb_jsonptr_valid(""));
    ck_assert(sb_jsonptr_valid("/"));
    ck_assert(sb_jsonptr_valid("/a~0~1/b"));
    ck_assert(!sb_jsonptr_valid(NULL));
    ck_assert(!sb_jsonptr_valid("foo"));
    ck_assert(!sb_jsonptr_valid("/a~2"));
    ck_assert(!sb_jsonptr_valid("/a~"));
    ck_assert_int_eq(sb_jsonptr_resolve(doc, "foo", &out, err, sizeof err), -1);
    ck_assert_str_eq(err, "bad_pointer: must be empty or start with '/'");
    ck_assert_int_eq(sb_jsonptr_resolve(doc, "/m~2n", &out, err, sizeof err), -1);
    ck_assert_str_eq(err, "bad_pointer: '~' must be followed by '0' or '1'");
    ck_assert_ptr_null(out);
    ck_assert_ptr_null(sb_jsonptr_get(doc, "/m~"));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("jsonptr");
    TCase *tc = tcase_create("resolve");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, rfc_examples);
    tcase_add_test(tc, escape_order);
    tcase_add_test(tc, array_indices);
    tcase_add_test(tc, missing_and_scalars);
    tcase_add_test(tc, malformed);
    suite_add_tcase(s, tc);
    return sb_unit_run(s);
}
