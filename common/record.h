/* The survey record: what the dispatcher stores in Redis when it schedules a survey, and what
 * the aggregator and surveybusctl read back (kind, journey, customer, the dimension values
 * recorded at scheduling time, due and expiry). Stored as one compact string value (fields in
 * a fixed order separated by 0x1F, which validated values never contain) so that a pending
 * survey costs few bytes of Redis memory: times are base-36 milliseconds, and only what
 * firing and attribution need is kept (not the event id, zone or occurrence time). Pure. */
#ifndef SB_RECORD_H
#define SB_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

#define SB_SURVEY_ID_LEN 24 /* hex characters: 96 bits of SHA-256 */
#define SB_REC_SEP '\x1f' /* between the fields of a stored record */

/* Record states; the state is the first byte of the stored value. */
enum {
    SB_REC_PENDING = 'p',   /* scheduled, not yet due or being fired */
    SB_REC_FIRED = 'f',     /* request published */
    SB_REC_CANCELLED = 'x', /* interaction reopened before it fired */
    SB_REC_SUPPRESSED = 's',/* fatigue rule at fire time */
    SB_REC_EXPIRED = 'e',   /* due passed its expiry before firing, or never answered */
    SB_REC_ANSWERED = 'a',  /* a response was counted (set by the aggregator, final) */
};

typedef struct sb_record {
    char state;
    sb_kind_t kind;
    char journey[SB_STR_MAX + 1];
    char customer_id[SB_STR_MAX + 1];
    char interaction_id[SB_STR_MAX + 1];
    char channel[SB_STR_MAX + 1];
    char locale[SB_STR_MAX + 1];
    char device_id[SB_STR_MAX + 1];
    /* dimension values recorded at scheduling time, indexed by sb_dim_t ("" when absent;
     * SB_DIM_ALL is always "all", SB_DIM_JOURNEY the journey name) */
    char dim[SB_DIM__N][SB_STR_MAX + 1];
    int64_t due_ms, expires_ms; /* >= 0 */
    int64_t remind_after_ms; /* 0: no reminder */
    char tz[SB_STR_MAX + 1]; /* the customer's zone, kept only when the journey has quiet
                                hours ("" otherwise, and UTC when unknown) */
    char reason[32];          /* suppression reason ("" otherwise) */
} sb_record_t;

/* The survey id of (interaction, journey): 24 lowercase hex characters of SHA-256 over
 * "interaction_id|journey". One survey per interaction and journey: a repeated or duplicate
 * completion of the same interaction schedules nothing new. out must hold 25 bytes. */
void sb_record_survey_id(const char *interaction_id, const char *journey, char *out);

/* Fills a record from a parsed event and the journey that matched (dimension values from
 * the event, journey name, state pending). The channel the survey goes out on is the
 * journey's, else the event's, else "device" when the event has a device id (MQTT visits),
 * else "" (nowhere to send). The channel dimension is the interaction's, as for its KPIs:
 * the event's channel, else "device" with a device id, else the channel sent on. */
struct sb_event;
void sb_record_from_event(sb_record_t *r, const struct sb_event *ev, const sb_journey_t *j,
                          int64_t due_ms, int64_t expires_ms);

/* Encodes to the stored string (caller frees); returns NULL on OOM, a bad kind or a negative
 * time. The layout is read in place by the Lua scripts of schedule.c (the state byte, kind,
 * journey and customer from the front; expires and remind_after as the second and third
 * field from the end): keep them in step when it changes. Written as format version 3 when
 * tz is set, else as version 2 (the same without the zone field). */
char *sb_record_encode(const sb_record_t *r, size_t *len);

/* Decodes a stored value. Returns 0, or -1 with a reason when it is not a record. */
int sb_record_decode(const char *buf, size_t len, sb_record_t *out, char *err, size_t errlen);

/* Name of a state byte ("pending", "fired", ...), "unknown" otherwise. */
const char *sb_record_state_name(char state);

#endif
