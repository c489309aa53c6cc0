/* Journey rules (SPEC §5): which journeys an interaction event triggers and when each survey
 * falls due (delay, then the customer's quiet hours in their own zone), and the fatigue check
 * made when a survey is about to be sent. Pure apart from the shared time-zone cache. */
#ifndef SB_RULES_H
#define SB_RULES_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "event.h"
#include "tz.h"

/* Moves due_ms out of quiet hours. The quiet interval is [start_min, end_min) in minutes after
 * local midnight (0..1439), in the zone tz (NULL: UTC); it wraps over midnight when
 * start_min > end_min, and start_min == end_min means no quiet hours. When the local wall time
 * of due_ms lies inside, *out_ms is the next local end_min (the same local day, or the next
 * one for the evening part of a wrapping interval) converted back to UTC with the zone's
 * offset at that moment (so DST changes in between are honoured). The end time resolves like
 * sb_tz_local_to_utc(): the earlier of two instants when it occurs twice, unless that would not
 * be after due_ms, then the later one; shifted forward when it falls in a DST gap. Otherwise
 * *out_ms = due_ms (also for |due_ms| > 2^62, far outside any calendar). Returns 1 when moved,
 * 0 when unchanged, -1 on invalid minutes or NULL out_ms. */
int sb_rules_quiet_adjust(int64_t due_ms, const sb_tz_t *tz, int start_min, int end_min,
                          int64_t *out_ms);

/* When the reminder of a survey sent at sent_ms falls due: sent_ms + the record's
 * remind_after (saturating), moved out of its journey's quiet hours in the record's zone
 * (empty or unknown: UTC), as the survey itself was. 0 when the record has no reminder or its
 * journey is no longer configured (sb_sched_ack then reminds after remind_after as is). */
struct sb_record;
int64_t sb_rules_remind_at(const sb_config_t *cfg, const struct sb_record *r, int64_t sent_ms);

/* When a survey (or its reminder) claimed at now_ms may go out: 0 when now, or the end of
 * the quiet hours of its journey, in the record's zone (empty or unknown: UTC), that now_ms
 * lies in. Due times are moved out of quiet hours when scheduled, so this only holds a survey
 * back when it fires late (a backlog, an outage) or a reminder is claimed after its time. 0
 * also when the journey is no longer configured. */
int64_t sb_rules_quiet_until(const sb_config_t *cfg, const struct sb_record *r, int64_t now_ms);

/* One survey an event asks for. */
typedef struct sb_candidate {
    size_t journey; /* index into cfg->journeys */
    int64_t due_ms, expires_ms;
} sb_candidate_t;

/* The journeys that the event triggers, in configuration order, written to out[0..max).
 * Only completion events (SB_EV_COMPLETED, SB_EV_VISIT_COMPLETED) match; a reopened event
 * never does. A journey matches when every `on` condition equals the event's field byte for
 * byte (a field absent from the event is ""; a `type` condition is compared with the canonical
 * type name of ev->type, "interaction.completed" or "visit.completed"; a journey without
 * conditions matches every completion event). due = occurred + delay (saturating), then moved
 * out of the journey's quiet hours in the zone named by ev->val[SB_F_CUSTOMER_TZ]; an empty or
 * unknown zone name means UTC, and the survey is still scheduled (callers that want to count
 * unknown zones can test sb_tz_get() themselves). expires_ms = due + journey expires.
 * Returns the number of candidates written; max >= cfg->n_journeys never truncates. */
size_t sb_rules_match(const sb_config_t *cfg, const sb_event_t *ev, sb_candidate_t *out,
                      size_t max);

/* One survey already sent to the customer (reminders are not listed). */
typedef struct sb_sent {
    int64_t at_ms;
    sb_kind_t kind;
} sb_sent_t;

/* Decides at fire time whether a survey of `kind` may be sent now, given the customer's
 * history[0..n) of sent surveys (any order). Checks, in this order, and returns the first
 * failing reason:
 *  "min_gap_by_kind"  min_gap_by_kind[kind] is set (>= 0) and a survey of the same kind was
 *                     sent less than that long ago (now - at < gap);
 *  "min_gap"          min_gap > 0 and a survey of any kind was sent less than min_gap ago;
 *                     the per-kind gap only adds to this, it never relaxes it;
 *  "max_per_30d"      max_per_30d > 0 and at least that many surveys were sent in the window
 *                     (now - 30d, now].
 * A gap exactly equal to the limit is allowed; a survey sent exactly 30 days ago is outside
 * the window. History entries later than now (clock skew) count for the gaps but not for the
 * 30-day window. Returns NULL when the survey may be sent, otherwise the static reason.
 * The caller does not call this for reminders: they are exempt. */
const char *sb_rules_fatigue(const sb_fatigue_t *f, sb_kind_t kind, int64_t now_ms,
                             const sb_sent_t *history, size_t n);

#endif
