/* Interaction events: raw bytes in the user's own JSON schema -> a validated sb_event_t,
 * using the configured `mapping` of canonical fields to JSON Pointers (RFC 6901). Pure. */
#ifndef SB_EVENT_H
#define SB_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

typedef enum {
    SB_EV_COMPLETED = 0,   /* "interaction.completed" (default when absent, non-MQTT) */
    SB_EV_VISIT_COMPLETED, /* "visit.completed" (default when absent on MQTT) */
    SB_EV_REOPENED,        /* "interaction.reopened" */
} sb_event_type_t;

typedef struct sb_event {
    sb_event_type_t type;
    int64_t occurred_ms; /* epoch ms */
    /* Text of every canonical field, "" when absent. val[SB_F_TYPE] holds the canonical type
     * name, val[SB_F_OCCURRED_AT] the time as given, KPI fields their JSON text. */
    char val[SB_F__N][SB_STR_MAX + 1];
    bool has_frt, has_art, has_fcr, has_transfers;
    double frt_s, art_s; /* >= 0 */
    bool fcr;
    int64_t transfers;   /* >= 0 */
} sb_event_t;

/* Parses and validates one event (SPEC §4, §7). mapping[f] is the JSON Pointer of field f in
 * the user's document (NULL or "" = not mapped). A JSON null or "" counts as absent. Id-like
 * text fields (the topic-safe ones but locale) also take a JSON integer, as its decimal text.
 * device_id, when not NULL, is the device id taken from an MQTT topic: it wins over the
 * payload and fills val[SB_F_DEVICE_ID]. mqtt says the event came over MQTT, where an absent
 * type means visit.completed (SPEC §4), with or without a device id from the topic.
 * Returns 0, or -1 with a reason in err: too_large, nul_byte, invalid_utf8, invalid_json,
 * bad_mapping, missing_field, wrong_type, too_long, unsafe_chars, bad_time, bad_type, bad_tz,
 * bad_locale, bad_kpi (each "code: field[: detail]" where there is a field). */
int sb_event_parse(const char *buf, size_t len, char *const mapping[SB_F__N],
                   const char *device_id, bool mqtt, sb_event_t *out, char *err,
                   size_t errlen);

/* The wire name of a type ("interaction.completed", ...), or NULL when out of range. */
const char *sb_event_type_name(sb_event_type_t type);
/* The type for a wire name, or -1. */
int sb_event_type_parse(const char *name);

/* True when s looks like an IANA zone name ("Asia/Shanghai", "Etc/GMT+8", "UTC"): 1..64
 * bytes of letters, digits, '/', '_', '-', '+', no "..", no empty level. Whether the zone
 * exists is for the tz module to say. */
bool sb_event_tz_plausible(const char *s);
/* True when s is a BCP 47-like language tag: 1..35 bytes of [A-Za-z0-9-], starting with a
 * letter, no empty subtag ("zh-CN", "en", "sr-Latn-RS"). */
bool sb_event_locale_valid(const char *s);

#endif
