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

/* Parses and validates one event (SPEC §4, §7). device_id, when not NULL, is the device id
 * taken from an MQTT topic: it fills val[SB_F_DEVICE_ID] and makes an absent type mean
 * visit.completed. Returns 0, or -1 with a reason "code: detail" in err. */
int sb_event_parse(const char *buf, size_t len, char *const mapping[SB_F__N],
                   const char *device_id, sb_event_t *out, char *err, size_t errlen);

#endif
