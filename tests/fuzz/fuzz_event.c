/* libFuzzer target: raw bytes as an interaction event, read with the default mapping (with
 * and without an MQTT device id) and with a nested user mapping; also raw JSON Pointers.
 * Aborts when an accepted event breaks an invariant that later stages rely on: an accepted
 * event must make a survey record that reads back, and a survey request the aggregator
 * and the dispatcher's recovery can decode.
 *
 * When the input has a first line (under 300 bytes, no NUL), the rest is also read
 *  - as an MQTT event published on that line as the topic, matched against the default
 *    interaction filter and a '#' filter: the '+' level is the device id, as in the
 *    services' MQTT callbacks;
 *  - with that line as the configured pointer of one field (chosen by the line's length);
 *  - as a document the line points into, resolved by jansson, and by sb_jscan when it
 *    takes the document: both must find the same value. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "dlq.h"
#include "event.h"
#include "jscan.h"
#include "jsonptr.h"
#include "mqtt.h"
#include "record.h"
#include "survey.h"

#define LINE_MAX 300

static char *default_map[SB_F__N];
static char nested_buf[SB_F__N][64];
static char *nested_map[SB_F__N];

static void init_maps(void)
{
    static const char *const nested[SB_F__N] = {
        [SB_F_EVENT_ID] = "/id",         [SB_F_OCCURRED_AT] = "/ts",
        [SB_F_CUSTOMER_ID] = "/cust/id", [SB_F_CUSTOMER_TZ] = "/cust/tz",
        [SB_F_LOCALE] = "/cust/~0lang",  [SB_F_INTERACTION_ID] = "/ticket/id",
        [SB_F_KIND] = "/ticket/type",    [SB_F_CHANNEL] = "/ticket/tags/0",
        [SB_F_AGENT] = "/meta/a~1b",     [SB_F_TYPE] = "/t",
        [SB_F_KPI_FRT] = "/k/0",         [SB_F_KPI_TRANSFERS] = "/k/1",
    };
    for (int f = 0; f < SB_F__N; f++) {
        /* The default pointer of a field is its name, '.' as a level: "/kpi/transfers". */
        char *p = malloc(strlen(sb_field_names[f]) + 2);
        if (!p) abort();
        p[0] = '/';
        strcpy(p + 1, sb_field_names[f]);
        for (char *c = p; *c; c++)
            if (*c == '.') *c = '/';
        default_map[f] = p;
        strcpy(nested_buf[f], nested[f] ? nested[f] : "");
        nested_map[f] = nested_buf[f];
    }
}

static bool is_id_field(int f)
{
    return f == SB_F_EVENT_ID || f == SB_F_CUSTOMER_ID || f == SB_F_INTERACTION_ID ||
           f == SB_F_KIND || (f >= SB_F_CHANNEL && f <= SB_F_DEVICE_ID);
}

/* An accepted event makes a survey record (for a journey with and without a channel of its
 * own) that reads back, and the request the dispatcher builds from it decodes. */
static void record_and_request(const sb_event_t *ev)
{
    static sb_record_t rec, back;
    static sb_survey_request_t q, qb;
    char err[256];
    sb_journey_t journeys[2] = {
        {.name = (char *)"support-csat", .survey = SB_KIND_CSAT, .channel = (char *)"email",
         .has_quiet = true, .remind_after_ms = 86400000},
        {.name = (char *)"visit-nps", .survey = SB_KIND_NPS},
    };
    for (int i = 0; i < 2; i++) {
        const int64_t due = ev->occurred_ms + 3600000, exp = due + 7 * 86400000LL;
        sb_record_from_event(&rec, ev, &journeys[i], due, exp);
        size_t len;
        char *text = sb_record_encode(&rec, &len);
        if (!text || sb_record_decode(text, len, &back, err, sizeof err) != 0) abort();
        if (back.kind != rec.kind || strcmp(back.journey, rec.journey) ||
            strcmp(back.customer_id, rec.customer_id) ||
            strcmp(back.interaction_id, rec.interaction_id) || strcmp(back.channel, rec.channel) ||
            strcmp(back.locale, rec.locale) || strcmp(back.device_id, rec.device_id) ||
            strcmp(back.tz, rec.tz) || back.due_ms != rec.due_ms ||
            back.expires_ms != rec.expires_ms || back.remind_after_ms != rec.remind_after_ms)
            abort();
        for (int d = 0; d < SB_DIM__N; d++)
            if (strcmp(back.dim[d], rec.dim[d])) abort();
        free(text);
        if (!back.channel[0]) continue; /* the dispatcher dead-letters it: missing_field */
        /* as services/dispatcher/fire.c builds it */
        memset(&q, 0, sizeof q);
        strcpy(q.survey_id, "0123456789abcdef01234567");
        strcpy(q.journey, back.journey);
        strcpy(q.customer_id, back.customer_id);
        strcpy(q.interaction_id, back.interaction_id);
        strcpy(q.channel, back.channel);
        strcpy(q.locale, back.locale);
        if (!strcmp(back.channel, "device")) strcpy(q.device_id, back.device_id);
        strcpy(q.question, "How was it?");
        strcpy(q.token, "1795604400000.t");
        q.kind = back.kind;
        q.scale_min = 0, q.scale_max = 10;
        q.issued_ms = back.due_ms;
        q.expires_ms = back.expires_ms;
        char *req = sb_survey_request_encode(&q);
        if (!req || sb_survey_request_decode(req, strlen(req), &qb, err, sizeof err) != 0) abort();
        free(req);
    }
}

static void check_event(const sb_event_t *ev, const char *device_id)
{
    for (int f = 0; f < SB_F__N; f++)
        if (memchr(ev->val[f], '\0', sizeof ev->val[f]) == NULL) abort();
    static const sb_field_t required[] = {SB_F_EVENT_ID, SB_F_CUSTOMER_ID, SB_F_INTERACTION_ID,
                                          SB_F_KIND};
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++)
        if (!ev->val[required[i]][0]) abort();
    for (int f = 0; f < SB_F__N; f++) {
        const char *v = ev->val[f];
        if (is_id_field(f) && v[0] && !sb_str_topic_safe(v, strlen(v))) abort();
    }
    if (ev->val[SB_F_CUSTOMER_TZ][0] && !sb_event_tz_plausible(ev->val[SB_F_CUSTOMER_TZ])) abort();
    if (ev->val[SB_F_LOCALE][0] && !sb_event_locale_valid(ev->val[SB_F_LOCALE])) abort();
    if (ev->occurred_ms < SB_TIME_MIN_MS || ev->occurred_ms >= SB_TIME_MAX_MS) abort();
    if (device_id && strcmp(ev->val[SB_F_DEVICE_ID], device_id) != 0) abort();
    if (strcmp(ev->val[SB_F_TYPE], sb_event_type_name(ev->type)) != 0) abort();
    if (ev->has_frt != (ev->val[SB_F_KPI_FRT][0] != '\0')) abort();
    if (ev->has_art != (ev->val[SB_F_KPI_ART][0] != '\0')) abort();
    if (ev->has_frt && !(ev->frt_s >= 0)) abort();
    if (ev->has_art && !(ev->art_s >= 0)) abort();
    if (ev->has_transfers && (ev->transfers < 0 || ev->transfers > 1000)) abort();
    record_and_request(ev);
}

/* Parses and checks; a rejection always carries a counter-safe code. */
static void parse(const char *buf, size_t size, char *const map[SB_F__N], const char *dev,
                  bool mqtt)
{
    static sb_event_t ev;
    char err[256] = "", code[64];
    if (sb_event_parse(buf, size, map, dev, mqtt, &ev, err, sizeof err) == 0)
        check_event(&ev, dev);
    else if (sb_reason_code(err, code, sizeof code) != 0)
        abort();
}

/* The same value read by jansson (j) and by sb_jscan (v). */
static void same_value(const sb_jval_t *v, json_t *j)
{
    sb_jval_t b = sb_jval_of(j);
    if (v->type != b.type) abort();
    if ((v->type == SB_JV_INT && v->i != b.i) ||
        (v->type == SB_JV_REAL && memcmp(&v->d, &b.d, sizeof v->d)) ||
        (v->type == SB_JV_STR && (v->n != b.n || memcmp(v->s, b.s, v->n))) ||
        ((v->type == SB_JV_OBJ || v->type == SB_JV_ARR) && v->n != b.n))
        abort();
}

static void line_as_pointer(const char *ptr, const char *rest, size_t n)
{
    char err[256];
    json_t *doc = json_loadb(rest, n, JSON_DECODE_ANY, NULL);
    if (!doc) return;
    json_t *v;
    int rc = sb_jsonptr_resolve(doc, ptr, &v, err, sizeof err);
    if ((rc == 0) != sb_jsonptr_valid(ptr)) abort();
    if (rc == 0 && ptr[0] == '\0' && v != doc) abort();
    /* the fast reader resolves "/..." pointers the same way, on what it takes */
    static sb_jtok_t t[256];
    int nt;
    if (rc == 0 && ptr[0] == '/' && !memchr(rest, '\0', n) && sb_utf8_valid(rest, n) &&
        (nt = sb_jscan(rest, n, t, 256)) >= 0) {
        int k = sb_jscan_find(t, nt, ptr);
        if ((k >= 0) != (v != NULL)) abort();
        if (k >= 0) same_value(&t[k].v, v);
    }
    json_decref(doc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool ready;
    const char *buf = (const char *)data;
    if (!ready) init_maps(), ready = true;

    parse(buf, size, default_map, NULL, false);
    parse(buf, size, default_map, "dev-1", true);
    parse(buf, size, nested_map, NULL, true);

    const char *nl = memchr(buf, '\n', size < LINE_MAX ? size : LINE_MAX);
    if (!nl || memchr(buf, '\0', (size_t)(nl - buf))) return 0;
    size_t ll = (size_t)(nl - buf), rn = size - ll - 1;
    const char *rest = nl + 1;
    char line[LINE_MAX + 1];
    memcpy(line, buf, ll);
    line[ll] = '\0';

    /* the line as the MQTT topic the event came on */
    static const char *const filters[] = {"fieldservice/+/visit/completed", "site/#"};
    char level[LINE_MAX + 1];
    const char *dev;
    if (sb_mqtt_match_any(filters, 2, line, level, &dev) >= 0) parse(rest, rn, default_map, dev, true);

    /* the line as the configured pointer of one field */
    char *map[SB_F__N];
    memcpy(map, default_map, sizeof map);
    map[ll % SB_F__N] = line;
    parse(rest, rn, map, NULL, false);

    line_as_pointer(line, rest, rn);
    return 0;
}
