/* libFuzzer target: raw bytes as an interaction event, read with the default mapping (with
 * and without an MQTT device id) and with a nested user mapping; also raw JSON Pointers.
 * Aborts when an accepted event breaks an invariant that later stages rely on. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "dlq.h"
#include "event.h"
#include "jsonptr.h"

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

static void check_event(const sb_event_t *ev, const char *device_id)
{
    for (int f = 0; f < SB_F__N; f++)
        if (memchr(ev->val[f], '\0', sizeof ev->val[f]) == NULL) abort();
    static const sb_field_t required[] = {SB_F_EVENT_ID, SB_F_CUSTOMER_ID, SB_F_INTERACTION_ID,
                                          SB_F_KIND};
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++) {
        const char *v = ev->val[required[i]];
        if (!sb_str_topic_safe(v, strlen(v))) abort();
    }
    if (ev->occurred_ms < SB_TIME_MIN_MS || ev->occurred_ms >= SB_TIME_MAX_MS) abort();
    if (device_id && strcmp(ev->val[SB_F_DEVICE_ID], device_id) != 0) abort();
    if (strcmp(ev->val[SB_F_TYPE], sb_event_type_name(ev->type)) != 0) abort();
    if (ev->has_frt && !(ev->frt_s >= 0)) abort();
    if (ev->has_transfers && (ev->transfers < 0 || ev->transfers > 1000)) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool ready;
    static sb_event_t ev;
    char err[256] = "";
    const char *buf = (const char *)data;
    if (!ready) init_maps(), ready = true;

    char code[64];
    if (sb_event_parse(buf, size, default_map, NULL, false, &ev, err, sizeof err) == 0)
        check_event(&ev, NULL);
    else if (sb_reason_code(err, code, sizeof code) != 0)
        abort(); /* every reason has a counter-safe code */
    if (sb_event_parse(buf, size, default_map, "dev-1", true, &ev, err, sizeof err) == 0)
        check_event(&ev, "dev-1");
    if (sb_event_parse(buf, size, nested_map, NULL, true, &ev, err, sizeof err) == 0)
        check_event(&ev, NULL);

    /* The first line (when short and NUL-free) as a pointer into the rest as a document. */
    const char *nl = memchr(buf, '\n', size < 128 ? size : 128);
    if (nl && !memchr(buf, '\0', (size_t)(nl - buf))) {
        char ptr[129];
        memcpy(ptr, buf, (size_t)(nl - buf));
        ptr[nl - buf] = '\0';
        json_t *doc = json_loadb(nl + 1, size - (size_t)(nl - buf) - 1, JSON_DECODE_ANY, NULL);
        if (doc) {
            json_t *v;
            int rc = sb_jsonptr_resolve(doc, ptr, &v, err, sizeof err);
            if ((rc == 0) != sb_jsonptr_valid(ptr)) abort();
            if (rc == 0 && ptr[0] == '\0' && v != doc) abort();
            json_decref(doc);
        }
    }
    return 0;
}
