/* Unit tests of the pure MQTT topic helpers: filter matching with '+' extraction, template
 * rendering with topic-safety checks, the subscription filters of templates and whether two
 * filters overlap (by the cases of MQTT 3.1.1 §4.7, and against the matcher for every pair
 * of small filters). */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "mqtt.h"

#include "unit.h"

/* ---------------------------------------------------------------- match */

START_TEST(match_device_id)
{
    char dev[64];
    const char *f = "fieldservice/+/visit/completed";
    ck_assert_int_eq(sb_mqtt_topic_match(f, "fieldservice/dev-7/visit/completed", dev, sizeof dev),
                     1);
    ck_assert_str_eq(dev, "dev-7");
    ck_assert_int_eq(sb_mqtt_topic_match(f, "fieldservice/设备-1/visit/completed", dev, sizeof dev),
                     1);
    ck_assert_str_eq(dev, "设备-1");
    /* an empty level is a level: the caller rejects the empty device id */
    ck_assert_int_eq(sb_mqtt_topic_match(f, "fieldservice//visit/completed", dev, sizeof dev), 1);
    ck_assert_str_eq(dev, "");
}
END_TEST

START_TEST(match_rejects_other_topics)
{
    char dev[64] = "junk";
    const char *f = "fieldservice/+/visit/completed";
    ck_assert_int_eq(sb_mqtt_topic_match(f, "fieldservice/dev-7/visit/started", dev, sizeof dev),
                     0);
    ck_assert_str_eq(dev, "");
    ck_assert_int_eq(sb_mqtt_topic_match(f, "fieldservice/dev-7/visit", dev, sizeof dev), 0);
    ck_assert_int_eq(
        sb_mqtt_topic_match(f, "fieldservice/dev-7/visit/completed/x", dev, sizeof dev), 0);
    ck_assert_int_eq(sb_mqtt_topic_match(f, "Fieldservice/dev-7/visit/completed", dev, sizeof dev),
                     0);
    ck_assert_int_eq(sb_mqtt_topic_match(f, "fieldservice/a/b/visit/completed", dev, sizeof dev),
                     0);
    ck_assert_int_eq(sb_mqtt_topic_match(f, "", dev, sizeof dev), 0);
}
END_TEST

START_TEST(match_first_plus_of_several)
{
    char v[16];
    ck_assert_int_eq(sb_mqtt_topic_match("a/+/+/d", "a/b/c/d", v, sizeof v), 1);
    ck_assert_str_eq(v, "b");
    ck_assert_int_eq(sb_mqtt_topic_match("+/x/#", "tenant-9/x/y/z", v, sizeof v), 1);
    ck_assert_str_eq(v, "tenant-9");
}
END_TEST

START_TEST(match_hash)
{
    char v[16] = "junk";
    ck_assert_int_eq(sb_mqtt_topic_match("fieldservice/#", "fieldservice", v, sizeof v), 1);
    ck_assert_str_eq(v, "");
    ck_assert_int_eq(sb_mqtt_topic_match("fieldservice/#", "fieldservice/a/b/c", v, sizeof v), 1);
    ck_assert_int_eq(sb_mqtt_topic_match("fieldservice/#", "fieldservicex/a", v, sizeof v), 0);
    ck_assert_int_eq(sb_mqtt_topic_match("#", "metrics/nps/24h/all/all", v, sizeof v), 1);
    ck_assert_int_eq(sb_mqtt_topic_match("a/+/#", "a/b", v, sizeof v), 1);
    ck_assert_str_eq(v, "b");
}
END_TEST

START_TEST(match_dollar_topics)
{
    ck_assert_int_eq(sb_mqtt_topic_match("#", "$SYS/broker/uptime", NULL, 0), 0);
    ck_assert_int_eq(sb_mqtt_topic_match("+/broker/uptime", "$SYS/broker/uptime", NULL, 0), 0);
    ck_assert_int_eq(sb_mqtt_topic_match("$SYS/#", "$SYS/broker/uptime", NULL, 0), 1);
}
END_TEST

START_TEST(match_exact_without_plus)
{
    char v[8] = "junk";
    ck_assert_int_eq(sb_mqtt_topic_match("alerts/detractor", "alerts/detractor", v, sizeof v), 1);
    ck_assert_str_eq(v, "");
    ck_assert_int_eq(sb_mqtt_topic_match("alerts/detractor", "alerts/detractors", v, sizeof v), 0);
    /* plus_out may be NULL */
    ck_assert_int_eq(sb_mqtt_topic_match("a/+", "a/b", NULL, 0), 1);
}
END_TEST

START_TEST(match_bad_filters)
{
    char v[8];
    ck_assert_int_eq(sb_mqtt_topic_match("a/#/b", "a/x/b", v, sizeof v), -1);
    ck_assert_int_eq(sb_mqtt_topic_match("a+/b", "a+/b", v, sizeof v), -1);
    ck_assert_int_eq(sb_mqtt_topic_match("a/b#", "a/b#", v, sizeof v), -1);
    ck_assert_int_eq(sb_mqtt_topic_match("a/+b", "a/+b", v, sizeof v), -1);
    ck_assert_int_eq(sb_mqtt_topic_match("", "a", v, sizeof v), -1);
    ck_assert_int_eq(sb_mqtt_topic_match(NULL, "a", v, sizeof v), -1);
}
END_TEST

START_TEST(match_plus_buffer_bound)
{
    char v[5];
    /* "abcd" needs 5 bytes with its NUL */
    ck_assert_int_eq(sb_mqtt_topic_match("d/+", "d/abcd", v, 5), 1);
    ck_assert_str_eq(v, "abcd");
    ck_assert_int_eq(sb_mqtt_topic_match("d/+", "d/abcde", v, 5), -1);
    ck_assert_int_eq(sb_mqtt_topic_match("d/+", "d/abcd", v, 4), -1);
}
END_TEST

/* ---------------------------------------------------------------- render */

static const char *const mkeys[] = {"metric", "window", "dimension", "value"};

/* The first matching filter wins; its '+' level comes back even when empty or longer than
 * any id (the caller refuses those), and NULL with a filter without '+'. */
START_TEST(match_any_of_filters)
{
    const char *const f[] = {"a/+/x", "b/#", "c/+/y/+"};
    char buf[400];
    const char *plus = "unset";
    ck_assert_int_eq(sb_mqtt_match_any(f, 3, "a/dev-1/x", buf, &plus), 0);
    ck_assert_str_eq(plus, "dev-1");
    ck_assert_int_eq(sb_mqtt_match_any(f, 3, "a//x", buf, &plus), 0);
    ck_assert_str_eq(plus, "");
    ck_assert_int_eq(sb_mqtt_match_any(f, 3, "b/q/r", buf, &plus), 1);
    ck_assert_ptr_null(plus);
    ck_assert_int_eq(sb_mqtt_match_any(f, 3, "c/1/y/2", buf, &plus), 2);
    ck_assert_str_eq(plus, "1");
    plus = "unset";
    ck_assert_int_eq(sb_mqtt_match_any(f, 3, "d/1/x", buf, &plus), -1);
    ck_assert_ptr_null(plus);
    ck_assert_int_eq(sb_mqtt_match_any(f, 0, "a/1/x", buf, &plus), -1);
    char topic[400] = "a/";
    memset(topic + 2, 'd', 300);
    strcpy(topic + 302, "/x");
    ck_assert_int_eq(sb_mqtt_match_any(f, 3, topic, buf, &plus), 0);
    ck_assert_uint_eq(strlen(plus), 300);
}
END_TEST

START_TEST(render_metrics)
{
    char out[128];
    const char *vals[] = {"nps", "24h", "region", "east"};
    ck_assert_int_eq(sb_mqtt_topic_render("metrics/{metric}/{window}/{dimension}/{value}", mkeys,
                                          vals, 4, out, sizeof out),
                     0);
    ck_assert_str_eq(out, "metrics/nps/24h/region/east");
    const char *vals2[] = {"csat", "7d", "all", "all"};
    ck_assert_int_eq(sb_mqtt_topic_render("metrics/{metric}/{window}/{dimension}/{value}", mkeys,
                                          vals2, 4, out, sizeof out),
                     0);
    ck_assert_str_eq(out, "metrics/csat/7d/all/all");
}
END_TEST

START_TEST(render_device_request_round_trip)
{
    char out[128], dev[64];
    const char *k[] = {"device_id"}, *v[] = {"van 12 (north)"};
    ck_assert_int_eq(
        sb_mqtt_topic_render("fieldservice/{device_id}/survey/request", k, v, 1, out, sizeof out),
        0);
    ck_assert_str_eq(out, "fieldservice/van 12 (north)/survey/request");
    ck_assert_int_eq(sb_mqtt_topic_match("fieldservice/+/survey/request", out, dev, sizeof dev), 1);
    ck_assert_str_eq(dev, "van 12 (north)");
}
END_TEST

START_TEST(render_other_shapes)
{
    char out[64];
    const char *k[] = {"channel", "customer_id", "unused"}, *v[] = {"sms", "c-42", "x"};
    ck_assert_int_eq(
        sb_mqtt_topic_render("surveys/{channel}/{customer_id}", k, v, 3, out, sizeof out), 0);
    ck_assert_str_eq(out, "surveys/sms/c-42");
    ck_assert_int_eq(sb_mqtt_topic_render("{customer_id}/{customer_id}", k, v, 3, out, sizeof out),
                     0);
    ck_assert_str_eq(out, "c-42/c-42");
    ck_assert_int_eq(sb_mqtt_topic_render("alerts/detractor", NULL, NULL, 0, out, sizeof out), 0);
    ck_assert_str_eq(out, "alerts/detractor");
}
END_TEST

START_TEST(render_unsafe_values)
{
    char out[64];
    const char *k[] = {"type"};
    const char *bad[] = {"a/b", "a+b", "#", "a|b", "", "tab\there", "\xff\xfe"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        const char *v[] = {bad[i]};
        ck_assert_int_eq(sb_mqtt_topic_render("alerts/{type}", k, v, 1, out, sizeof out),
                         SB_MQTT_TOPIC_EUNSAFE);
        ck_assert_str_eq(out, "");
    }
    /* 256 bytes is the limit of a topic-safe value */
    char big[258], topic[400];
    memset(big, 'x', 257);
    big[257] = '\0';
    const char *v257[] = {big};
    ck_assert_int_eq(sb_mqtt_topic_render("alerts/{type}", k, v257, 1, topic, sizeof topic),
                     SB_MQTT_TOPIC_EUNSAFE);
    big[256] = '\0';
    ck_assert_int_eq(sb_mqtt_topic_render("alerts/{type}", k, v257, 1, topic, sizeof topic), 0);
    ck_assert_uint_eq(strlen(topic), 7 + 256);
}
END_TEST

START_TEST(render_bad_templates)
{
    char out[64];
    const char *k[] = {"type"}, *v[] = {"detractor"};
    ck_assert_int_eq(sb_mqtt_topic_render("alerts/{kind}", k, v, 1, out, sizeof out),
                     SB_MQTT_TOPIC_EBAD);
    ck_assert_int_eq(sb_mqtt_topic_render("alerts/{type", k, v, 1, out, sizeof out),
                     SB_MQTT_TOPIC_EBAD);
    ck_assert_int_eq(sb_mqtt_topic_render("alerts/{}", k, v, 1, out, sizeof out),
                     SB_MQTT_TOPIC_EBAD);
    ck_assert_int_eq(sb_mqtt_topic_render("alerts/type}", k, v, 1, out, sizeof out),
                     SB_MQTT_TOPIC_EBAD);
    ck_assert_str_eq(out, "");
}
END_TEST

START_TEST(render_length_bound)
{
    char out[16];
    const char *k[] = {"x"}, *v[] = {"bc"};
    ck_assert_int_eq(sb_mqtt_topic_render("a/{x}", k, v, 1, out, 5), 0); /* "a/bc" + NUL */
    ck_assert_str_eq(out, "a/bc");
    ck_assert_int_eq(sb_mqtt_topic_render("a/{x}", k, v, 1, out, 4), SB_MQTT_TOPIC_ELONG);
    ck_assert_str_eq(out, "");
    ck_assert_int_eq(sb_mqtt_topic_render("abcd", k, v, 1, out, 4), SB_MQTT_TOPIC_ELONG);
}
END_TEST

/* ---- template -> subscription filter ---- */

START_TEST(template_filter)
{
    char out[64];
    ck_assert_int_eq(sb_mqtt_template_filter("metrics/{metric}/{window}/{dimension}/{value}", out,
                                             sizeof out), 0);
    ck_assert_str_eq(out, "metrics/+/+/+/+");
    ck_assert_int_eq(sb_mqtt_template_filter("alerts/{type}", out, sizeof out), 0);
    ck_assert_str_eq(out, "alerts/+");
    /* a level is wild as soon as it holds a '{'; other levels stay as they are */
    ck_assert_int_eq(sb_mqtt_template_filter("a/x{y}z/b", out, sizeof out), 0);
    ck_assert_str_eq(out, "a/+/b");
    ck_assert_int_eq(sb_mqtt_template_filter("plain", out, sizeof out), 0);
    ck_assert_str_eq(out, "plain");
    ck_assert_int_eq(sb_mqtt_template_filter("/{a}/", out, sizeof out), 0);
    ck_assert_str_eq(out, "/+/");
    /* length bound: "ab/+" needs 5 bytes */
    ck_assert_int_eq(sb_mqtt_template_filter("ab/{x}", out, 5), 0);
    ck_assert_str_eq(out, "ab/+");
    ck_assert_int_eq(sb_mqtt_template_filter("abc/{x}", out, 5), -1);
}
END_TEST

/* The aggregator's request subscriptions (Kafka off): each rendered request topic matches
 * its template's filter. */
START_TEST(template_filter_requests)
{
    char f[64], topic[64];
    ck_assert_int_eq(sb_mqtt_template_filter("surveys/{channel}/{customer_id}", f, sizeof f), 0);
    ck_assert_str_eq(f, "surveys/+/+");
    const char *k[] = {"channel", "customer_id", "device_id"}, *v[] = {"sms", "c-42", "dev-7"};
    ck_assert_int_eq(
        sb_mqtt_topic_render("surveys/{channel}/{customer_id}", k, v, 3, topic, sizeof topic), 0);
    ck_assert_int_eq(sb_mqtt_topic_match(f, topic, NULL, 0), 1); /* surveys/sms/c-42 */
    ck_assert_int_eq(
        sb_mqtt_template_filter("fieldservice/{device_id}/survey/request", f, sizeof f), 0);
    ck_assert_str_eq(f, "fieldservice/+/survey/request");
    ck_assert_int_eq(sb_mqtt_topic_render("fieldservice/{device_id}/survey/request", k, v, 3, topic,
                                          sizeof topic),
                     0);
    ck_assert_int_eq(sb_mqtt_topic_match(f, topic, NULL, 0), 1);
    /* placeholders sharing a level with text or with each other: the level is one '+',
     * since no value holds a '/' */
    ck_assert_int_eq(sb_mqtt_template_filter("req/{channel}-{customer_id}", f, sizeof f), 0);
    ck_assert_str_eq(f, "req/+");
    ck_assert_int_eq(
        sb_mqtt_topic_render("req/{channel}-{customer_id}", k, v, 3, topic, sizeof topic), 0);
    ck_assert_str_eq(topic, "req/sms-c-42");
    ck_assert_int_eq(sb_mqtt_topic_match(f, topic, NULL, 0), 1);
    ck_assert_int_eq(sb_mqtt_template_filter("dev-{device_id}/ask", f, sizeof f), 0);
    ck_assert_str_eq(f, "+/ask");
    /* a template without a placeholder is its own filter */
    ck_assert_int_eq(sb_mqtt_template_filter("surveys/all", f, sizeof f), 0);
    ck_assert_str_eq(f, "surveys/all");
}
END_TEST

START_TEST(filters_overlap)
{
    /* the default filters: requests, device requests, responses, visits are all apart */
    ck_assert(!sb_mqtt_filters_overlap("fieldservice/+/survey/request",
                                       "fieldservice/+/survey/response"));
    ck_assert(!sb_mqtt_filters_overlap("fieldservice/+/survey/request",
                                       "fieldservice/+/visit/completed"));
    ck_assert(!sb_mqtt_filters_overlap("surveys/+/+", "fieldservice/+/survey/response"));
    /* identical, '+' against a name, '+' against '+' */
    ck_assert(sb_mqtt_filters_overlap("surveys/+/+", "surveys/+/+"));
    ck_assert(sb_mqtt_filters_overlap("surveys/+/+", "surveys/responses/+"));
    ck_assert(sb_mqtt_filters_overlap("+/dev-7/survey/request", "fieldservice/+/+/request"));
    ck_assert(sb_mqtt_filters_overlap("a//b", "a/+/b")); /* '+' matches an empty level */
    /* '#' matches the rest, also its parent level alone */
    ck_assert(sb_mqtt_filters_overlap("fieldservice/#", "fieldservice/+/survey/request"));
    ck_assert(sb_mqtt_filters_overlap("surveys/+/+", "#"));
    ck_assert(sb_mqtt_filters_overlap("a/#", "a"));
    ck_assert(sb_mqtt_filters_overlap("a", "a/#"));
    ck_assert(!sb_mqtt_filters_overlap("b/#", "a/+"));
    /* different numbers of levels */
    ck_assert(!sb_mqtt_filters_overlap("surveys/+/+", "surveys/+"));
    ck_assert(!sb_mqtt_filters_overlap("a/+", "a/b/c"));
    ck_assert(!sb_mqtt_filters_overlap("a/+", "a"));
    ck_assert(!sb_mqtt_filters_overlap("a/b", "a/bc"));
}
END_TEST

/* MQTT 3.1.1 §4.7, worked by hand: each pair that overlaps with a topic both match, each
 * that does not with the reason. */
START_TEST(filters_overlap_by_the_spec)
{
    static const struct {
        const char *a, *b, *both; /* both: a topic matched by a and b, NULL: none exists */
    } cases[] = {
        /* §4.7.1.2 '#': the parent level and any number of levels below, from any level */
        {"sport/tennis/player1/#", "sport/tennis/player1", "sport/tennis/player1"},
        {"sport/tennis/player1/#", "sport/tennis/player1/ranking", "sport/tennis/player1/ranking"},
        {"sport/tennis/player1/#", "sport/+/player1/score/wimbledon",
         "sport/tennis/player1/score/wimbledon"},
        {"sport/#", "sport", "sport"},
        {"sport/#", "#", "sport"},
        {"sport/#", "+/tennis/#", "sport/tennis"},
        {"sport/#", "sports/#", NULL}, /* "sport" and "sports" differ in the first level */
        {"sport/tennis/#", "sport/+", "sport/tennis"},
        {"sport/tennis/#", "sport/+/+/+", "sport/tennis/x/y"},
        /* §4.7.1.3 '+': exactly one level, which may be empty */
        {"sport/tennis/+", "sport/tennis/player1", "sport/tennis/player1"},
        {"sport/tennis/+", "sport/tennis/player1/ranking", NULL}, /* one level too many */
        {"sport/+", "sport", NULL},                               /* '+' needs its level */
        {"sport/+", "sport/", "sport/"},                          /* the empty level */
        {"+/+", "/finance", "/finance"},
        {"/+", "/finance", "/finance"},
        {"+", "/finance", NULL}, /* "/finance" has two levels, the first empty */
        {"+", "#", "x"},
        /* §4.7.3: a topic name has at least one character; the only topic both of these
         * match would be "", a single empty level ("/#" matches its parent level) */
        {"+", "/#", NULL},
        {"+/#", "/#", "/"},
        {"+/tennis/#", "sport/+/player1", "sport/tennis/player1"},
        {"a/+/c", "+/b/+", "a/b/c"},
        {"a/+/c", "+/b/d", NULL}, /* the last levels differ */
        {"+/+/+", "+/+", NULL},   /* three levels against two */
        {"+/+/#", "+/+", "x/y"},  /* '#' also matches no level after "x/y" */
        /* §4.7.2 '$' topics: never matched by a filter that starts with a wildcard */
        {"#", "$SYS/#", NULL},
        {"#", "$SYS", NULL},
        {"+/monitor/Clients", "$SYS/monitor/Clients", NULL},
        {"+/#", "$SYS/broker/uptime", NULL},
        {"$SYS/#", "$SYS/monitor/+", "$SYS/monitor/Clients"},
        {"$SYS/monitor/+", "$SYS/+/Clients", "$SYS/monitor/Clients"},
        {"$SYS/#", "$share/#", NULL},
        /* a '$' not at the start of the topic is an ordinary character */
        {"+/#", "a/$SYS", "a/$SYS"},
        {"a/+", "a/$x", "a/$x"},
        {"#", "a$", "a$"},
        /* two leading wildcards still overlap: on topics that do not start with '$' */
        {"#", "+", "x"},
        {"+/b", "#", "x/b"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *a = cases[i].a, *b = cases[i].b, *both = cases[i].both;
        bool want = both != NULL;
        ck_assert_msg(sb_mqtt_filters_overlap(a, b) == want, "%s and %s: want %d", a, b, want);
        ck_assert_msg(sb_mqtt_filters_overlap(b, a) == want, "%s and %s: want %d", b, a, want);
        if (both) { /* the topic given does match both, by the matcher's own tests */
            ck_assert_int_eq(sb_mqtt_topic_match(a, both, NULL, 0), 1);
            ck_assert_int_eq(sb_mqtt_topic_match(b, both, NULL, 0), 1);
        }
    }
}
END_TEST

/* Every pair of filters of up to three levels made of "a", "$s", "", "+" and "#": they
 * overlap exactly when a topic of up to four levels made of "a", "b", "$s" and "" matches
 * both (sb_mqtt_topic_match; "b" stands for a level that no filter names). Up to three
 * levels are enough for a witness, as a '#' needs no level of its own. */
#define OV_FILTERS 160
#define OV_TOPICS 340
START_TEST(filters_overlap_exhaustive)
{
    static const char *const flev[] = {"a", "$s", "", "+", "#"};
    static const char *const tlev[] = {"a", "b", "$s", ""};
    static char filters[OV_FILTERS][16], topics[OV_TOPICS][20];
    size_t nf = 0, nt = 0;
    for (int len = 1; len <= 3; len++) {
        int combos = 1;
        for (int k = 0; k < len; k++)
            combos *= 5;
        for (int c = 0; c < combos; c++) {
            char f[16] = "";
            bool ok = true;
            for (int k = 0, x = c; k < len; k++, x /= 5) {
                if (x % 5 == 4 && k != len - 1) ok = false; /* '#' only last */
                if (k) strcat(f, "/");
                strcat(f, flev[x % 5]);
            }
            if (ok && f[0]) strcpy(filters[nf++], f); /* "" is no filter */
        }
    }
    for (int len = 1; len <= 4; len++) {
        int combos = 1;
        for (int k = 0; k < len; k++)
            combos *= 4;
        for (int c = 0; c < combos; c++) {
            char t[20] = "";
            for (int k = 0, x = c; k < len; k++, x /= 4) {
                if (k) strcat(t, "/");
                strcat(t, tlev[x % 4]);
            }
            if (t[0]) strcpy(topics[nt++], t); /* "" is no topic */
        }
    }
    ck_assert_uint_le(nf, OV_FILTERS);
    ck_assert_uint_le(nt, OV_TOPICS);
    static bool m[OV_FILTERS][OV_TOPICS];
    for (size_t i = 0; i < nf; i++)
        for (size_t t = 0; t < nt; t++) {
            int r = sb_mqtt_topic_match(filters[i], topics[t], NULL, 0);
            ck_assert_int_ge(r, 0);
            m[i][t] = r == 1;
        }
    size_t overlaps = 0;
    for (size_t i = 0; i < nf; i++)
        for (size_t j = 0; j < nf; j++) {
            bool both = false;
            for (size_t t = 0; t < nt && !both; t++)
                both = m[i][t] && m[j][t];
            ck_assert_msg(sb_mqtt_filters_overlap(filters[i], filters[j]) == both,
                          "\"%s\" and \"%s\": want %d", filters[i], filters[j], both);
            overlaps += both;
        }
    /* neither all nor none: the pairs tell something */
    ck_assert_uint_gt(overlaps, nf);
    ck_assert_uint_lt(overlaps, nf * nf / 2);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("mqtt_topic");
    TCase *m = tcase_create("match");
    tcase_add_test(m, match_device_id);
    tcase_add_test(m, match_rejects_other_topics);
    tcase_add_test(m, match_first_plus_of_several);
    tcase_add_test(m, match_hash);
    tcase_add_test(m, match_dollar_topics);
    tcase_add_test(m, match_exact_without_plus);
    tcase_add_test(m, match_bad_filters);
    tcase_add_test(m, match_plus_buffer_bound);
    tcase_add_test(m, match_any_of_filters);
    suite_add_tcase(s, m);
    TCase *r = tcase_create("render");
    tcase_add_test(r, render_metrics);
    tcase_add_test(r, render_device_request_round_trip);
    tcase_add_test(r, render_other_shapes);
    tcase_add_test(r, render_unsafe_values);
    tcase_add_test(r, render_bad_templates);
    tcase_add_test(r, render_length_bound);
    tcase_add_test(r, template_filter);
    tcase_add_test(r, template_filter_requests);
    tcase_add_test(r, filters_overlap);
    tcase_add_test(r, filters_overlap_by_the_spec);
    tcase_add_test(r, filters_overlap_exhaustive);
    suite_add_tcase(s, r);
    return s;
}

int main(void)
{
    return sb_unit_run(suite());
}
