/* Interaction events: the canonical schema, a user's own schema mapped by JSON Pointers,
 * and every rejection reason with the exact text a dead-letter reader would see. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"

#include "unit.h"

/* A writable string literal: sb_event_parse takes the config's `char *` pointers. */
#define P(s) ((char[]){s})

/* The default mapping: each canonical field at its own name, KPIs under /kpi. */
static char *def_map[SB_F__N] = {
    [SB_F_EVENT_ID] = P("/event_id"),
    [SB_F_TYPE] = P("/type"),
    [SB_F_OCCURRED_AT] = P("/occurred_at"),
    [SB_F_CUSTOMER_ID] = P("/customer_id"),
    [SB_F_CUSTOMER_TZ] = P("/customer_tz"),
    [SB_F_LOCALE] = P("/locale"),
    [SB_F_INTERACTION_ID] = P("/interaction_id"),
    [SB_F_KIND] = P("/kind"),
    [SB_F_CHANNEL] = P("/channel"),
    [SB_F_STAGE] = P("/stage"),
    [SB_F_AGENT] = P("/agent"),
    [SB_F_TEAM] = P("/team"),
    [SB_F_REGION] = P("/region"),
    [SB_F_PRODUCT] = P("/product"),
    [SB_F_DEVICE_ID] = P("/device_id"),
    [SB_F_KPI_FRT] = P("/kpi/first_response_s"),
    [SB_F_KPI_ART] = P("/kpi/resolution_s"),
    [SB_F_KPI_FCR] = P("/kpi/resolved_first_contact"),
    [SB_F_KPI_TRANSFERS] = P("/kpi/transfers"),
};

static sb_event_t ev;
static char err[256];

/* Parses text with a mapping; returns "" on success or the reason. */
static const char *parse_map(const char *text, char **map, const char *dev)
{
    err[0] = '\0';
    int rc = sb_event_parse(text, strlen(text), map, dev, dev != NULL, &ev, err, sizeof err);
    ck_assert_int_eq(rc, err[0] ? -1 : 0);
    return rc == 0 ? "" : err;
}

static const char *parse(const char *text)
{
    return parse_map(text, def_map, NULL);
}

/* A minimal valid event with `extra` spliced in after the required fields. */
static const char *parse_with(const char *extra)
{
    static char buf[1024];
    snprintf(buf, sizeof buf,
             "{\"event_id\":\"e-1\",\"occurred_at\":\"2026-11-22T10:00:00Z\","
             "\"customer_id\":\"c-42\",\"interaction_id\":\"t-9\",\"kind\":\"support_ticket\"%s}",
             extra);
    return parse(buf);
}

/* 2026-11-22T10:00:00Z by hand: 56 years from 1970 with 14 leap days = 20454 days to
 * 2026-01-01, plus 304 days to Nov 1 and 21 more = 20779 days; 20779 * 86400 + 36000 s. */
#define T_2026_11_22_10H 1795341600000LL

START_TEST(canonical_example)
{
    const char *spec =
        "{\"event_id\":\"e-1\",\"type\":\"interaction.completed\",\"occurred_at\":\"2026-11-22T10:00:00Z\","
        "\"customer_id\":\"c-42\",\"customer_tz\":\"Asia/Shanghai\",\"locale\":\"zh-CN\","
        "\"interaction_id\":\"t-9\",\"kind\":\"support_ticket\",\"channel\":\"phone\",\"stage\":\"support\","
        "\"agent\":\"a-7\",\"team\":\"tier1\",\"region\":\"east\",\"product\":\"router-x\","
        "\"kpi\":{\"first_response_s\":120,\"resolution_s\":5400,\"resolved_first_contact\":true,\"transfers\":1}}";
    ck_assert_str_eq(parse(spec), "");
    ck_assert_int_eq(ev.type, SB_EV_COMPLETED);
    ck_assert_int_eq(ev.occurred_ms, T_2026_11_22_10H);
    ck_assert_str_eq(ev.val[SB_F_EVENT_ID], "e-1");
    ck_assert_str_eq(ev.val[SB_F_TYPE], "interaction.completed");
    ck_assert_str_eq(ev.val[SB_F_OCCURRED_AT], "2026-11-22T10:00:00Z");
    ck_assert_str_eq(ev.val[SB_F_CUSTOMER_ID], "c-42");
    ck_assert_str_eq(ev.val[SB_F_CUSTOMER_TZ], "Asia/Shanghai");
    ck_assert_str_eq(ev.val[SB_F_LOCALE], "zh-CN");
    ck_assert_str_eq(ev.val[SB_F_INTERACTION_ID], "t-9");
    ck_assert_str_eq(ev.val[SB_F_KIND], "support_ticket");
    ck_assert_str_eq(ev.val[SB_F_CHANNEL], "phone");
    ck_assert_str_eq(ev.val[SB_F_STAGE], "support");
    ck_assert_str_eq(ev.val[SB_F_AGENT], "a-7");
    ck_assert_str_eq(ev.val[SB_F_TEAM], "tier1");
    ck_assert_str_eq(ev.val[SB_F_REGION], "east");
    ck_assert_str_eq(ev.val[SB_F_PRODUCT], "router-x");
    ck_assert_str_eq(ev.val[SB_F_DEVICE_ID], "");
    ck_assert(ev.has_frt && ev.has_art && ev.has_fcr && ev.has_transfers);
    ck_assert_double_eq(ev.frt_s, 120.0);
    ck_assert_double_eq(ev.art_s, 5400.0);
    ck_assert(ev.fcr);
    ck_assert_int_eq(ev.transfers, 1);
    ck_assert_str_eq(ev.val[SB_F_KPI_FRT], "120");
    ck_assert_str_eq(ev.val[SB_F_KPI_ART], "5400");
    ck_assert_str_eq(ev.val[SB_F_KPI_FCR], "true");
    ck_assert_str_eq(ev.val[SB_F_KPI_TRANSFERS], "1");
}
END_TEST

/* The built-in default mapping of the config reads the SPEC's canonical event. */
START_TEST(config_default_mapping)
{
    sb_config_t *cfg = sb_config_new();
    const char *spec =
        "{\"event_id\":\"e-1\",\"occurred_at\":\"2026-11-22T10:00:00Z\",\"customer_id\":\"c-42\","
        "\"interaction_id\":\"t-9\",\"kind\":\"support_ticket\",\"region\":\"east\","
        "\"kpi\":{\"first_response_s\":120,\"resolution_s\":5400,\"resolved_first_contact\":true,\"transfers\":1}}";
    const char *r = parse_map(spec, cfg->mapping, NULL);
    ck_assert_str_eq(r, "");
    ck_assert_str_eq(ev.val[SB_F_REGION], "east");
    ck_assert(ev.has_frt && ev.has_art && ev.has_fcr && ev.has_transfers);
    ck_assert_double_eq(ev.art_s, 5400.0);
    sb_config_free(cfg);
}
END_TEST

START_TEST(users_own_schema)
{
    /* A helpdesk's export, unchanged: numeric id, epoch ms, nested objects, a key with '/'
     * and one with '~', a tag array. */
    const char *text =
        "{\"id\":98765,\"ts\":1700000000000,"
        "\"cust\":{\"id\":\"c-42\",\"tz\":\"Europe/Berlin\",\"lang\":\"de-DE\"},"
        "\"ticket\":{\"id\":\"T-1001\",\"type\":\"support_ticket\",\"via\":\"chat\",\"tags\":[\"billing\",\"vip\"]},"
        "\"meta\":{\"agent\":{\"id\":4711},\"team/name\":\"tier2\",\"geo~region\":\"emea\"},"
        "\"stats\":{\"frt\":12.5,\"fcr\":false,\"hops\":0},\"extra\":{\"ignored\":[1,2,3]}}";
    char *map[SB_F__N] = {
        [SB_F_EVENT_ID] = P("/id"),
        [SB_F_OCCURRED_AT] = P("/ts"),
        [SB_F_CUSTOMER_ID] = P("/cust/id"),
        [SB_F_CUSTOMER_TZ] = P("/cust/tz"),
        [SB_F_LOCALE] = P("/cust/lang"),
        [SB_F_INTERACTION_ID] = P("/ticket/id"),
        [SB_F_KIND] = P("/ticket/type"),
        [SB_F_CHANNEL] = P("/ticket/via"),
        [SB_F_STAGE] = P("/ticket/tags/0"),
        [SB_F_AGENT] = P("/meta/agent/id"),
        [SB_F_TEAM] = P("/meta/team~1name"),
        [SB_F_REGION] = P("/meta/geo~0region"),
        [SB_F_PRODUCT] = P("/ticket/product"), /* mapped, but absent in this document */
        [SB_F_TYPE] = P(""),                   /* not mapped */
        [SB_F_KPI_FRT] = P("/stats/frt"),
        [SB_F_KPI_FCR] = P("/stats/fcr"),
        [SB_F_KPI_TRANSFERS] = P("/stats/hops"),
    };
    ck_assert_str_eq(parse_map(text, map, NULL), "");
    ck_assert_str_eq(ev.val[SB_F_EVENT_ID], "98765");
    /* 1700000000000 ms = 2023-11-14T22:13:20Z, kept as given. */
    ck_assert_int_eq(ev.occurred_ms, 1700000000000LL);
    ck_assert_str_eq(ev.val[SB_F_OCCURRED_AT], "1700000000000");
    ck_assert_str_eq(ev.val[SB_F_CUSTOMER_ID], "c-42");
    ck_assert_str_eq(ev.val[SB_F_CUSTOMER_TZ], "Europe/Berlin");
    ck_assert_str_eq(ev.val[SB_F_LOCALE], "de-DE");
    ck_assert_str_eq(ev.val[SB_F_INTERACTION_ID], "T-1001");
    ck_assert_str_eq(ev.val[SB_F_KIND], "support_ticket");
    ck_assert_str_eq(ev.val[SB_F_CHANNEL], "chat");
    ck_assert_str_eq(ev.val[SB_F_STAGE], "billing");
    ck_assert_str_eq(ev.val[SB_F_AGENT], "4711");
    ck_assert_str_eq(ev.val[SB_F_TEAM], "tier2");
    ck_assert_str_eq(ev.val[SB_F_REGION], "emea");
    ck_assert_str_eq(ev.val[SB_F_PRODUCT], "");
    ck_assert_int_eq(ev.type, SB_EV_COMPLETED);
    ck_assert_str_eq(ev.val[SB_F_TYPE], "interaction.completed");
    ck_assert(ev.has_frt && !ev.has_art && ev.has_fcr && ev.has_transfers);
    ck_assert_double_eq(ev.frt_s, 12.5);
    ck_assert_str_eq(ev.val[SB_F_KPI_FRT], "12.5");
    ck_assert(!ev.fcr);
    ck_assert_str_eq(ev.val[SB_F_KPI_FCR], "false");
    ck_assert_int_eq(ev.transfers, 0);
}
END_TEST

START_TEST(numbers_as_ids)
{
    ck_assert_str_eq(parse("{\"event_id\":12345,\"occurred_at\":1700000000000,\"customer_id\":-7,"
                           "\"interaction_id\":0,\"kind\":\"k\",\"agent\":9007199254740993}"),
                     "");
    ck_assert_str_eq(ev.val[SB_F_EVENT_ID], "12345");
    ck_assert_str_eq(ev.val[SB_F_CUSTOMER_ID], "-7");
    ck_assert_str_eq(ev.val[SB_F_INTERACTION_ID], "0");
    ck_assert_str_eq(ev.val[SB_F_AGENT], "9007199254740993"); /* beyond a double's precision */
    ck_assert_str_eq(parse("{\"event_id\":1.5,\"occurred_at\":1700000000000,\"customer_id\":\"c\","
                           "\"interaction_id\":\"i\",\"kind\":\"k\"}"),
                     "wrong_type: event_id");
    ck_assert_str_eq(parse("{\"event_id\":\"e\",\"occurred_at\":1700000000000,\"customer_id\":1e3,"
                           "\"interaction_id\":\"i\",\"kind\":\"k\"}"),
                     "wrong_type: customer_id");
    /* Numbers are not accepted for locale, type or time zone. */
    ck_assert_str_eq(parse_with(",\"locale\":7"), "wrong_type: locale");
    ck_assert_str_eq(parse_with(",\"type\":1"), "wrong_type: type");
    ck_assert_str_eq(parse_with(",\"customer_tz\":8"), "wrong_type: customer_tz");
}
END_TEST

START_TEST(times)
{
    ck_assert_str_eq(parse("{\"event_id\":\"e\",\"occurred_at\":\"2026-11-22T18:00:00.250+08:00\","
                           "\"customer_id\":\"c\",\"interaction_id\":\"i\",\"kind\":\"k\"}"),
                     "");
    ck_assert_int_eq(ev.occurred_ms, T_2026_11_22_10H + 250);
    ck_assert_str_eq(ev.val[SB_F_OCCURRED_AT], "2026-11-22T18:00:00.250+08:00");
    /* 2000-01-01T00:00:00Z is 10957 days after the epoch: 946684800000 ms, the first
     * accepted instant; one millisecond earlier is rejected. */
    ck_assert_str_eq(parse("{\"event_id\":\"e\",\"occurred_at\":\"2000-01-01T00:00:00Z\","
                           "\"customer_id\":\"c\",\"interaction_id\":\"i\",\"kind\":\"k\"}"),
                     "");
    ck_assert_int_eq(ev.occurred_ms, 946684800000LL);
    ck_assert_str_eq(parse("{\"event_id\":\"e\",\"occurred_at\":946684799999,"
                           "\"customer_id\":\"c\",\"interaction_id\":\"i\",\"kind\":\"k\"}"),
                     "bad_time: occurred_at: out of range");
    /* Epoch ms as a string of digits. */
    ck_assert_str_eq(parse("{\"event_id\":\"e\",\"occurred_at\":\"1795341600000\","
                           "\"customer_id\":\"c\",\"interaction_id\":\"i\",\"kind\":\"k\"}"),
                     "");
    ck_assert_int_eq(ev.occurred_ms, T_2026_11_22_10H);
    /* 2100-01-01T00:00:00Z = 4102444800000 ms is the first rejected instant. */
    ck_assert_str_eq(parse("{\"event_id\":\"e\",\"occurred_at\":\"2100-01-01T00:00:00Z\","
                           "\"customer_id\":\"c\",\"interaction_id\":\"i\",\"kind\":\"k\"}"),
                     "bad_time: occurred_at: out of range");
    ck_assert_str_eq(parse("{\"event_id\":\"e\",\"occurred_at\":4102444799999,"
                           "\"customer_id\":\"c\",\"interaction_id\":\"i\",\"kind\":\"k\"}"),
                     "");
    ck_assert_str_eq(parse("{\"event_id\":\"e\",\"occurred_at\":1700000000,"
                           "\"customer_id\":\"c\",\"interaction_id\":\"i\",\"kind\":\"k\"}"),
                     "bad_time: occurred_at: out of range"); /* epoch seconds, not ms */
    ck_assert_str_eq(parse("{\"event_id\":\"e\",\"occurred_at\":-1,"
                           "\"customer_id\":\"c\",\"interaction_id\":\"i\",\"kind\":\"k\"}"),
                     "bad_time: occurred_at: out of range");
    ck_assert_str_eq(parse("{\"event_id\":\"e\",\"occurred_at\":1.7e12,"
                           "\"customer_id\":\"c\",\"interaction_id\":\"i\",\"kind\":\"k\"}"),
                     "bad_time: occurred_at: epoch milliseconds must be an integer");
    ck_assert_str_eq(parse("{\"event_id\":\"e\",\"occurred_at\":\"yesterday\","
                           "\"customer_id\":\"c\",\"interaction_id\":\"i\",\"kind\":\"k\"}"),
                     "bad_time: occurred_at: not RFC 3339 or epoch milliseconds");
    ck_assert_str_eq(parse("{\"event_id\":\"e\",\"occurred_at\":\"2026-02-29T10:00:00Z\","
                           "\"customer_id\":\"c\",\"interaction_id\":\"i\",\"kind\":\"k\"}"),
                     "bad_time: occurred_at: not RFC 3339 or epoch milliseconds");
    ck_assert_str_eq(parse("{\"event_id\":\"e\",\"occurred_at\":{\"ms\":1},"
                           "\"customer_id\":\"c\",\"interaction_id\":\"i\",\"kind\":\"k\"}"),
                     "bad_time: occurred_at: not a string or integer");
}
END_TEST

START_TEST(required_fields)
{
    ck_assert_str_eq(parse("{\"occurred_at\":1700000000000,\"customer_id\":\"c\","
                           "\"interaction_id\":\"i\",\"kind\":\"k\"}"),
                     "missing_field: event_id");
    ck_assert_str_eq(parse("{\"event_id\":\"e\",\"customer_id\":\"c\","
                           "\"interaction_id\":\"i\",\"kind\":\"k\"}"),
                     "missing_field: occurred_at");
    ck_assert_str_eq(parse("{\"event_id\":\"e\",\"occurred_at\":1700000000000,"
                           "\"interaction_id\":\"i\",\"kind\":\"k\"}"),
                     "missing_field: customer_id");
    ck_assert_str_eq(parse("{\"event_id\":\"e\",\"occurred_at\":1700000000000,\"customer_id\":\"c\","
                           "\"kind\":\"k\"}"),
                     "missing_field: interaction_id");
    ck_assert_str_eq(parse("{\"event_id\":\"e\",\"occurred_at\":1700000000000,\"customer_id\":\"c\","
                           "\"interaction_id\":\"i\"}"),
                     "missing_field: kind");
    /* null and "" count as absent. */
    ck_assert_str_eq(parse("{\"event_id\":null,\"occurred_at\":1700000000000,\"customer_id\":\"c\","
                           "\"interaction_id\":\"i\",\"kind\":\"k\"}"),
                     "missing_field: event_id");
    ck_assert_str_eq(parse("{\"event_id\":\"e\",\"occurred_at\":\"\",\"customer_id\":\"c\","
                           "\"interaction_id\":\"i\",\"kind\":\"k\"}"),
                     "missing_field: occurred_at");
    ck_assert_str_eq(parse("{\"event_id\":\"e\",\"occurred_at\":1700000000000,\"customer_id\":\"\","
                           "\"interaction_id\":\"i\",\"kind\":\"k\"}"),
                     "missing_field: customer_id");
    /* An unmapped required field is missing too. */
    char *map[SB_F__N];
    memcpy(map, def_map, sizeof map);
    map[SB_F_KIND] = P("");
    ck_assert_str_eq(parse_map("{\"event_id\":\"e\",\"occurred_at\":1700000000000,\"customer_id\":\"c\","
                               "\"interaction_id\":\"i\",\"kind\":\"k\"}",
                               map, NULL),
                     "missing_field: kind");
    /* Optional fields that are null or "" stay empty. */
    ck_assert_str_eq(parse_with(",\"agent\":null,\"team\":\"\",\"kpi\":{\"transfers\":null}"), "");
    ck_assert_str_eq(ev.val[SB_F_AGENT], "");
    ck_assert_str_eq(ev.val[SB_F_TEAM], "");
    ck_assert(!ev.has_transfers && !ev.has_frt && !ev.has_art && !ev.has_fcr);
    /* So do KPIs: "" is no value, not a value of the wrong type (events.md §1). */
    ck_assert_str_eq(parse_with(",\"kpi\":{\"first_response_s\":\"\",\"resolution_s\":\"\","
                                "\"resolved_first_contact\":\"\",\"transfers\":\"\"}"),
                     "");
    ck_assert(!ev.has_transfers && !ev.has_frt && !ev.has_art && !ev.has_fcr);
    for (int f = SB_F_KPI_FRT; f <= SB_F_KPI_TRANSFERS; f++) ck_assert_str_eq(ev.val[f], "");
    /* a KPI in a string is still refused */
    ck_assert_str_eq(parse_with(",\"kpi\":{\"transfers\":\"1\"}"),
                     "bad_kpi: kpi.transfers: not an integer");
}
END_TEST

START_TEST(raw_input_rejections)
{
    char *big = malloc(SB_MSG_MAX + 2);
    memset(big, ' ', SB_MSG_MAX + 1);
    big[SB_MSG_MAX + 1] = '\0';
    ck_assert_str_eq(parse(big), "too_large");
    free(big);

    const char nul[] = "{\"event_id\":\"e\0\"}";
    ck_assert_int_eq(sb_event_parse(nul, sizeof nul - 1, def_map, NULL, false, &ev, err, sizeof err), -1);
    ck_assert_str_eq(err, "nul_byte");
    ck_assert_str_eq(parse("{\"event_id\":\"e\\u0000x\"}"), "nul_byte: \\u0000 escape (line 1, column 22)");
    /* in a key too, even one nobody maps ("\u0000" can never be looked up) */
    ck_assert_str_eq(parse("{\"a\\u0000\":1}"), "nul_byte: \\u0000 escape (line 1, column 10)");
    ck_assert_str_eq(parse_with(",\"kpi\":{\"x\\u0000y\":1}"),
                     "nul_byte: \\u0000 escape (line 1, column 140)");
    ck_assert_str_eq(parse("{\"event_id\":\"\xC3\x28\"}"), "invalid_utf8");
    ck_assert_str_eq(parse("{\"event_id\":\"\xED\xA0\x80\"}"), "invalid_utf8"); /* surrogate */
    ck_assert_str_eq(parse("{\"event_id\":\"\xC0\xAF\"}"), "invalid_utf8");     /* overlong '/' */
    ck_assert_str_eq(parse("{\"event_id\":"), "invalid_json: unexpected token near end of file (line 1, column 12)");
    ck_assert_str_eq(parse(""), "invalid_json: '[' or '{' expected near end of file (line 1, column 0)");
    ck_assert_str_eq(parse("[1,2]"), "invalid_json: not an object");
    ck_assert_str_eq(parse("{\"a\":1} x"), "invalid_json: end of file expected near 'x' (line 1, column 9)");
    ck_assert_str_eq(parse("{\"event_id\":\"e\",\"event_id\":\"f\"}"),
                     "invalid_json: duplicate object key near '\"event_id\"' (line 1, column 26)");
}
END_TEST

START_TEST(text_limits)
{
    char extra[600], id[300];
    memset(id, 'x', 256);
    id[256] = '\0';
    snprintf(extra, sizeof extra, ",\"agent\":\"%s\"", id);
    ck_assert_str_eq(parse_with(extra), "");
    ck_assert_int_eq(strlen(ev.val[SB_F_AGENT]), 256);
    id[256] = 'x', id[257] = '\0';
    snprintf(extra, sizeof extra, ",\"agent\":\"%s\"", id);
    ck_assert_str_eq(parse_with(extra), "too_long: agent");
    /* 85 three-byte characters = 255 bytes pass, 86 = 258 bytes do not. */
    char zh[300] = "";
    for (int i = 0; i < 85; i++) strcat(zh, "\xE4\xB8\xAD");
    snprintf(extra, sizeof extra, ",\"region\":\"%s\"", zh);
    ck_assert_str_eq(parse_with(extra), "");
    strcat(zh, "\xE4\xB8\xAD");
    snprintf(extra, sizeof extra, ",\"region\":\"%s\"", zh);
    ck_assert_str_eq(parse_with(extra), "too_long: region");
    /* occurred_at keeps its text too: a valid time over 256 bytes (only hundreds of fraction
     * digits make one) is too_long, as docs/events.md §2.1 lists */
    char t[400] = "{\"event_id\":\"e\",\"customer_id\":\"c\",\"interaction_id\":\"i\","
                  "\"kind\":\"k\",\"occurred_at\":\"2026-11-22T10:00:00.";
    size_t at = strlen(t);
    memset(t + at, '5', 236); /* 20 + 236 + 1 ("Z") = 257 bytes */
    strcpy(t + at + 236, "Z\"}");
    ck_assert_str_eq(parse(t), "too_long: occurred_at");
    strcpy(t + at + 235, "Z\"}"); /* 256 bytes */
    ck_assert_str_eq(parse(t), "");
    ck_assert_int_eq(ev.occurred_ms, T_2026_11_22_10H + 555);
    ck_assert_int_eq(strlen(ev.val[SB_F_OCCURRED_AT]), 256);
}
END_TEST

START_TEST(unsafe_and_wrong_types)
{
    ck_assert_str_eq(parse_with(",\"agent\":\"a/b\""), "unsafe_chars: agent");
    ck_assert_str_eq(parse_with(",\"team\":\"t+1\""), "unsafe_chars: team");
    ck_assert_str_eq(parse_with(",\"channel\":\"#all\""), "unsafe_chars: channel");
    ck_assert_str_eq(parse_with(",\"product\":\"a|b\""), "unsafe_chars: product");
    ck_assert_str_eq(parse_with(",\"stage\":\"a\\u0001\""), "unsafe_chars: stage");
    ck_assert_str_eq(parse_with(",\"device_id\":\"d\\n\""), "unsafe_chars: device_id");
    ck_assert_str_eq(parse("{\"event_id\":\"e/1\",\"occurred_at\":1700000000000,\"customer_id\":\"c\","
                           "\"interaction_id\":\"i\",\"kind\":\"k\"}"),
                     "unsafe_chars: event_id");
    ck_assert_str_eq(parse_with(",\"agent\":{\"id\":1}"), "wrong_type: agent");
    ck_assert_str_eq(parse_with(",\"agent\":[\"a\"]"), "wrong_type: agent");
    ck_assert_str_eq(parse_with(",\"agent\":true"), "wrong_type: agent");
    /* Spaces and non-ASCII are fine in topic levels. */
    ck_assert_str_eq(parse_with(",\"team\":\"Tier 1 \xE5\x8C\x97\xE4\xBA\xAC\""), "");
    ck_assert_str_eq(ev.val[SB_F_TEAM], "Tier 1 \xE5\x8C\x97\xE4\xBA\xAC");
    /* A malformed pointer in the mapping is reported, not silently ignored. */
    char *map[SB_F__N];
    memcpy(map, def_map, sizeof map);
    map[SB_F_TEAM] = P("team");
    ck_assert_str_eq(parse_map("{\"event_id\":\"e\",\"occurred_at\":1700000000000,\"customer_id\":\"c\","
                               "\"interaction_id\":\"i\",\"kind\":\"k\"}",
                               map, NULL),
                     "bad_mapping: team");
}
END_TEST

START_TEST(types_and_device)
{
    ck_assert_str_eq(parse_with(""), "");
    ck_assert_int_eq(ev.type, SB_EV_COMPLETED);
    ck_assert_str_eq(ev.val[SB_F_TYPE], "interaction.completed");
    ck_assert_str_eq(parse_with(",\"type\":\"interaction.reopened\""), "");
    ck_assert_int_eq(ev.type, SB_EV_REOPENED);
    ck_assert_str_eq(ev.val[SB_F_TYPE], "interaction.reopened");
    ck_assert_str_eq(parse_with(",\"type\":\"visit.completed\",\"device_id\":\"van-3\""), "");
    ck_assert_int_eq(ev.type, SB_EV_VISIT_COMPLETED);
    ck_assert_str_eq(ev.val[SB_F_DEVICE_ID], "van-3");
    ck_assert_str_eq(parse_with(",\"type\":\"interaction.created\""), "bad_type: interaction.created");
    ck_assert_str_eq(parse_with(",\"type\":\"Interaction.Completed\""), "bad_type: Interaction.Completed");
    ck_assert_str_eq(parse_with(",\"type\":\"a\\tb\""), "bad_type: a?b");

    /* On MQTT the topic's device id wins over the payload and an absent type is a visit. */
    const char *mqtt = "{\"event_id\":\"e\",\"occurred_at\":1700000000000,\"customer_id\":\"c\","
                       "\"interaction_id\":\"i\",\"kind\":\"repair\",\"device_id\":\"from-payload\"}";
    ck_assert_str_eq(parse_map(mqtt, def_map, "tablet-17"), "");
    ck_assert_str_eq(ev.val[SB_F_DEVICE_ID], "tablet-17");
    ck_assert_int_eq(ev.type, SB_EV_VISIT_COMPLETED);
    ck_assert_str_eq(ev.val[SB_F_TYPE], "visit.completed");
    /* On MQTT through a filter without '+': still a visit, the device from the payload; the
     * same event from Kafka is an interaction. */
    ck_assert_int_eq(sb_event_parse(mqtt, strlen(mqtt), def_map, NULL, true, &ev, err, sizeof err), 0);
    ck_assert_int_eq(ev.type, SB_EV_VISIT_COMPLETED);
    ck_assert_str_eq(ev.val[SB_F_DEVICE_ID], "from-payload");
    ck_assert_int_eq(sb_event_parse(mqtt, strlen(mqtt), def_map, NULL, false, &ev, err, sizeof err), 0);
    ck_assert_int_eq(ev.type, SB_EV_COMPLETED);
    /* ... and a payload's device_id of the wrong type does not matter then. */
    ck_assert_str_eq(parse_map("{\"event_id\":\"e\",\"occurred_at\":1700000000000,\"customer_id\":\"c\","
                               "\"interaction_id\":\"i\",\"kind\":\"k\",\"device_id\":[1]}",
                               def_map, "tablet-17"),
                     "");
    /* An explicit type still wins on MQTT. */
    ck_assert_str_eq(parse_map("{\"event_id\":\"e\",\"occurred_at\":1700000000000,\"customer_id\":\"c\","
                               "\"interaction_id\":\"i\",\"kind\":\"k\",\"type\":\"interaction.reopened\"}",
                               def_map, "tablet-17"),
                     "");
    ck_assert_int_eq(ev.type, SB_EV_REOPENED);
    ck_assert_str_eq(parse_map(mqtt, def_map, ""), "unsafe_chars: device_id");
    ck_assert_str_eq(parse_map(mqtt, def_map, "a+b"), "unsafe_chars: device_id");
    ck_assert_str_eq(sb_event_type_name(SB_EV_VISIT_COMPLETED), "visit.completed");
    ck_assert_int_eq(sb_event_type_parse("interaction.reopened"), SB_EV_REOPENED);
    ck_assert_int_eq(sb_event_type_parse("nope"), -1);
}
END_TEST

START_TEST(tz_and_locale)
{
    ck_assert_str_eq(parse_with(",\"customer_tz\":\"America/Argentina/Buenos_Aires\""), "");
    ck_assert_str_eq(parse_with(",\"customer_tz\":\"Etc/GMT+8\""), "");
    ck_assert_str_eq(parse_with(",\"customer_tz\":\"UTC\""), "");
    ck_assert_str_eq(parse_with(",\"customer_tz\":\"Mars/Olympus_Mons\""), ""); /* existence: tz module */
    ck_assert_str_eq(parse_with(",\"customer_tz\":\"../etc/passwd\""), "bad_tz: ../etc/passwd");
    ck_assert_str_eq(parse_with(",\"customer_tz\":\"/etc/localtime\""), "bad_tz: /etc/localtime");
    ck_assert_str_eq(parse_with(",\"customer_tz\":\"Asia/\""), "bad_tz: Asia/");
    ck_assert_str_eq(parse_with(",\"customer_tz\":\"Asia Shanghai\""), "bad_tz: Asia Shanghai");
    ck_assert_str_eq(parse_with(",\"locale\":\"sr-Latn-RS\""), "");
    ck_assert_str_eq(ev.val[SB_F_LOCALE], "sr-Latn-RS");
    ck_assert_str_eq(parse_with(",\"locale\":\"zh_CN\""), "bad_locale: zh_CN");
    ck_assert_str_eq(parse_with(",\"locale\":\"en-\""), "bad_locale: en-");
    ck_assert_str_eq(parse_with(",\"locale\":\"a-bcdefghij-bcdefghij-bcdefghij-bcd\""), ""); /* 35 */
    ck_assert_str_eq(parse_with(",\"locale\":\"a-bcdefghij-bcdefghij-bcdefghij-bcde\""),
                     "bad_locale: a-bcdefghij-bcdefghij-bcdefghij-bcde");
}
END_TEST

/* The text of a real KPI: the shortest decimal that reads back as the same double. Values of
 * the form k/1000 take a fast path; the others must come out as they did with "%.15g" alone. */
START_TEST(kpi_real_text)
{
    static const struct {
        const char *json, *text;
    } cases[] = {
        {"1234.5", "1234.5"},       /* one decimal */
        {"0.001", "0.001"},         /* the smallest k/1000 */
        {"12.125", "12.125"},       /* three decimals */
        {"7.250", "7.25"},          /* trailing zero dropped */
        {"90.0", "90"},             /* a real with no fraction prints as an integer */
        {"315359999.999", "315359999.999"}, /* 12 significant digits, just under the cap */
        {"0.0001", "0.0001"},       /* below 0.001: the general path ("%.15g" gives 0.0001) */
        {"0.00001", "1e-05"},       /* "%g" switches to an exponent below 1e-4 */
        {"1.0001", "1.0001"},       /* four decimals: general path */
        {"0.30000000000000004", "0.30000000000000004"}, /* 0.1 + 0.2 needs 17 digits */
        {"2.5e2", "250"},           /* exponent notation in, a real 250.0 */
        {"-0.0", "-0"},             /* -0.0 passes the range check; "%.15g" gives "-0" */
    };
    char extra[96];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(extra, sizeof extra, ",\"kpi\":{\"resolution_s\":%s}", cases[i].json);
        ck_assert_str_eq(parse_with(extra), "");
        ck_assert_str_eq(ev.val[SB_F_KPI_ART], cases[i].text);
    }
}
END_TEST

START_TEST(kpis)
{
    ck_assert_str_eq(parse_with(",\"kpi\":{\"first_response_s\":0.1,\"resolution_s\":0,"
                                "\"resolved_first_contact\":false,\"transfers\":1000}"),
                     "");
    ck_assert_double_eq(ev.frt_s, 0.1);
    ck_assert_str_eq(ev.val[SB_F_KPI_FRT], "0.1");
    ck_assert_double_eq(ev.art_s, 0.0);
    ck_assert(ev.has_fcr && !ev.fcr);
    ck_assert_int_eq(ev.transfers, 1000);
    /* Ten years of 365 days = 315360000 s is the largest duration accepted. */
    ck_assert_str_eq(parse_with(",\"kpi\":{\"resolution_s\":315360000}"), "");
    ck_assert_str_eq(parse_with(",\"kpi\":{\"resolution_s\":315360000.5}"),
                     "bad_kpi: kpi.resolution_s: out of range");
    ck_assert_str_eq(parse_with(",\"kpi\":{\"first_response_s\":-1}"),
                     "bad_kpi: kpi.first_response_s: out of range");
    ck_assert_str_eq(parse_with(",\"kpi\":{\"first_response_s\":\"120\"}"),
                     "bad_kpi: kpi.first_response_s: not a number");
    ck_assert_str_eq(parse_with(",\"kpi\":{\"resolved_first_contact\":1}"),
                     "bad_kpi: kpi.resolved_first_contact: not a boolean");
    ck_assert_str_eq(parse_with(",\"kpi\":{\"transfers\":1001}"), "bad_kpi: kpi.transfers: out of range");
    ck_assert_str_eq(parse_with(",\"kpi\":{\"transfers\":-1}"), "bad_kpi: kpi.transfers: out of range");
    ck_assert_str_eq(parse_with(",\"kpi\":{\"transfers\":2.0}"), "bad_kpi: kpi.transfers: not an integer");
    /* A kpi that is not an object simply has no KPI fields. */
    ck_assert_str_eq(parse_with(",\"kpi\":7"), "");
    ck_assert(!ev.has_frt && !ev.has_transfers);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("event");
    TCase *tc = tcase_create("parse");
    tcase_add_test(tc, canonical_example);
    tcase_add_test(tc, config_default_mapping);
    tcase_add_test(tc, users_own_schema);
    tcase_add_test(tc, numbers_as_ids);
    tcase_add_test(tc, times);
    tcase_add_test(tc, required_fields);
    tcase_add_test(tc, raw_input_rejections);
    tcase_add_test(tc, text_limits);
    tcase_add_test(tc, unsafe_and_wrong_types);
    tcase_add_test(tc, types_and_device);
    tcase_add_test(tc, tz_and_locale);
    tcase_add_test(tc, kpis);
    tcase_add_test(tc, kpi_real_text);
    suite_add_tcase(s, tc);
    return sb_unit_run(s);
}
