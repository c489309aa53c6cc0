/* Durable survey timers in Redis, shared by the dispatcher (schedule, cancel, claim, ack)
 * and surveybusctl (pending, show, cancel). Every state change is one atomic Lua script, so
 * several dispatcher instances can share one Redis and each survey is claimed once.
 *
 * Keys (P = redis.prefix): P"s:"<id> survey record (record.h), without expiry while pending
 * and kept until max(expires, settle time) + 1 day once settled;
 * P"sched" sorted set of timers scored by due ms, members "<id>" (fire), "<id>:r" (reminder),
 * "<id>:x" (expiry check after firing); P"inflight" sorted set of claimed timers scored by
 * their lease deadline; P"fh:"<customer> fatigue history (members "<id>|<kind>", scored by
 * fire time); P"ro:"<id> the time (ms) of a reopen that found no survey <id> (it came before
 * its completion), kept until a survey of a completion from before it would have expired
 * (reopen + the journey's delay + expires + 2 days), and P"ro:any" the latest expiry of any
 * such marker (absent: no marker to look for); P"stats:dispatcher" hash of counters
 * ("scheduled|<journey>", "fired|<journey>",
 * "suppressed|<journey>|<reason>", "cancelled|<journey>", "expired|<journey>",
 * "reminded|<journey>", "reminder_cancelled|<journey>", "duplicate", "consumed",
 * "dlq|<reason>", ...). */
#ifndef SB_SCHEDULE_H
#define SB_SCHEDULE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "record.h"
#include "store.h"
#include "util.h"

#define SB_SCHED_MEMBER_MAX (SB_SURVEY_ID_LEN + 3) /* "<id>:r" + NUL */

typedef struct sb_sched sb_sched_t;

/* Borrows store and cfg (both must outlive the handle). Never NULL (aborts on OOM). */
sb_sched_t *sb_sched_new(sb_store_t *store, const sb_config_t *cfg);
void sb_sched_free(sb_sched_t *s);

/* ---- ingest ---- */

enum { SB_SCHED_ADD = 1, SB_SCHED_CANCEL = 2 };

/* One ingest operation. ADD: schedule rec under its survey id unless a record already
 * exists (then it is a duplicate), except a survey cancelled by a reopen that happened
 * before at_ms: the interaction was completed again, so the survey is scheduled anew (its
 * record keeps the reason "completed@<at_ms>").
 * CANCEL: cancel the pending survey of every journey for rec->interaction_id (only
 * interaction_id is read), remembering at_ms, the reopen's time, in the record. A survey
 * scheduled anew is not cancelled by a reopen at or before the completion that scheduled it
 * (a reopen delivered again, or late): counted as a duplicate. A survey already sent stays
 * answerable, but its reminder, if still to come, is dropped ("reminder_cancelled"; a
 * reminder in flight then is dropped if it comes back to the schedule unsent). A
 * survey whose request is in flight (claimed, not yet acknowledged) keeps the cancel in its
 * record until the claim settles: acknowledged, it is fired without its reminder; released
 * unsent, it is cancelled when claimed again (status 2). A cancel waiting so keeps an
 * operator's reason, and the latest reopen's time: an older reopen, arriving later, does
 * not move it back.
 * A reopen that finds no survey of a journey (it arrived before its completion) leaves a
 * marker for that survey id with its time. An ADD that creates a survey looks for the
 * marker (one GET; a duplicate does not) and removes it: a completion at or before the
 * reopen creates the record already cancelled ("reopened@<at_ms>", counted cancelled, not
 * scheduled, status 0), one after it schedules with the reason "completed@<at_ms>". */
typedef struct sb_sched_op {
    int op;
    const sb_record_t *rec;
    int64_t at_ms; /* the event's occurrence time */
} sb_sched_op_t;

/* A counter increment applied in the same atomic call ("consumed", "dlq|too_large", ...). */
typedef sb_count_t sb_sched_count_t;

/* Applies a batch of operations and counter increments in one atomic script. status[i]
 * (may be NULL) becomes 1 when op i changed something (scheduled / number of surveys
 * cancelled, plus 2 for each survey whose cancel is left to its in-flight claim) and 0 when
 * not (duplicate / nothing pending). Returns 0, or -1 when Redis is
 * unreachable or refused (nothing or everything applied: the script is atomic, and every
 * operation is idempotent, so the caller retries the same batch). */
int sb_sched_apply(sb_sched_t *s, const sb_sched_op_t *ops, size_t n, const sb_sched_count_t *counts,
                   size_t n_counts, int *status, int64_t now_ms);
/* The same in two halves, so that the caller can work while Redis runs the script: _send
 * sends it without waiting (0, or -1: not sent); _recv reads the answer into status (may be
 * NULL), re-running the call if Redis had lost the script. Nothing else may use the store in
 * between. ops and the records may be reused or freed after _send; counts must stay until
 * _recv. */
int sb_sched_apply_send(sb_sched_t *s, const sb_sched_op_t *ops, size_t n,
                        const sb_sched_count_t *counts, size_t n_counts, int64_t now_ms);
int sb_sched_apply_recv(sb_sched_t *s, int *status);

/* ---- firing ---- */

typedef struct sb_claimed {
    char member[SB_SCHED_MEMBER_MAX];
    char survey_id[SB_SURVEY_ID_LEN + 1];
    bool reminder;
    uint32_t plain_len; /* the stored record's length when it had no reason, else 0 */
    sb_record_t rec;
} sb_claimed_t;

/* What the acknowledgement of a claimed member can take from its claim instead of reading
 * the record again (sb_sched_hint): the record's length as claimed (0: no hint, the record
 * is read) and the fields the acknowledgement uses. journey must stay valid until the
 * acknowledgement's result is read. The record is read anyway when it changed since the
 * claim (answered, or a cancel waiting in its reason), and for reminders. A record deleted
 * and scheduled anew, pending, as long and with no reason, cannot be told from the one
 * claimed: it is fired with the claim's expiry and reminder delay (its lifetime ended and
 * the same interaction and journey came again while the claim was in flight). */
typedef struct sb_sched_hint {
    uint32_t len;
    const char *journey;
    int64_t expires_ms, remind_after_ms;
} sb_sched_hint_t;

/* The hint of a claimed member; journey points into cfg (no hint when the journey is no
 * longer configured). */
void sb_sched_hint(const sb_config_t *cfg, const sb_claimed_t *c, sb_sched_hint_t *out);

/* Claims up to max timers due at now_ms: each moves from P"sched" to P"inflight" with a lease
 * of cfg->tuning.lease_ms. Timers that need no publishing are settled inside the script and
 * counted: cancelled or missing records are dropped, surveys past their expiry become
 * expired, fatigue rules (cfg->fatigue; reminders exempt) suppress with their reason,
 * reminders of answered surveys (state 'a', written by the aggregator) are dropped, a
 * survey answered before its acknowledgement is settled as fired, expiry checks mark
 * unanswered fired surveys
 * expired. Only surveys and reminders to publish are returned in out. *next_due_ms (may be
 * NULL) gets the due time of the earliest remaining timer, or INT64_MAX. Returns the count
 * returned, or -1 (Redis unreachable). *settled (may be NULL) gets the number of timers
 * settled without publishing. */
int sb_sched_claim(sb_sched_t *s, int64_t now_ms, size_t max, sb_claimed_t *out,
                   int64_t *next_due_ms, size_t *settled);

/* Confirms that the claimed members were published: removes them from P"inflight", marks
 * surveys fired (counted), schedules the reminder (when the record has remind_after) and
 * the expiry check. The reminder falls due at remind_at[i] (sb_rules_remind_at: out of the
 * journey's quiet hours) or, where that is 0 or remind_at is NULL, at now + remind_after;
 * none when that is not before the survey's expiry. A member whose lease was already taken
 * over is skipped. hints (may be NULL) are the members' sb_sched_hint. done[i] (may be
 * NULL) is 1 when member i was acknowledged here. Returns 0 or -1. */
int sb_sched_ack(sb_sched_t *s, const char *const *members, const int64_t *remind_at,
                 const sb_sched_hint_t *hints, size_t n, int64_t now_ms, int *done);

/* The same two calls split in two, so that the caller works while Redis runs the script:
 * _send sends the call and returns at once (0, or -1 when nothing could be sent); _recv waits
 * for its result and returns what sb_sched_claim / sb_sched_ack return. Between a _send and
 * its _recv nothing else may use this handle or its store (one call in flight per
 * connection: use a second handle on a second store to overlap a claim and an ack). The
 * members and hints passed to sb_sched_ack_send must stay valid until sb_sched_ack_recv; n
 * there is the count sent. When _recv fails the call may or may not have been applied, as
 * with the blocking calls (a claim is then recovered once its lease expires; an ack may be
 * repeated). */
int sb_sched_claim_send(sb_sched_t *s, int64_t now_ms, size_t max);
int sb_sched_claim_recv(sb_sched_t *s, size_t max, sb_claimed_t *out, int64_t *next_due_ms,
                        size_t *settled);
int sb_sched_ack_send(sb_sched_t *s, const char *const *members, const int64_t *remind_at,
                      const sb_sched_hint_t *hints, size_t n, int64_t now_ms);
int sb_sched_ack_recv(sb_sched_t *s, size_t n, int *done);

/* Puts claimed members back in the schedule at at_ms (publishing failed, or held back by
 * quiet hours). A survey still pending leaves its customer's fatigue history, which its claim
 * had entered it in: it was not sent (its next claim enters it again). Returns 0 or -1. */
int sb_sched_release(sb_sched_t *s, const char *const *members, size_t n, int64_t at_ms);

/* Renews the leases of claims still in flight: their deadline becomes deadline_ms (never
 * earlier; members no longer in flight stay out). A dispatcher renews the claims whose
 * requests still await confirmation, so that another instance does not recover them as a
 * dead dispatcher's while a Kafka or MQTT outage holds them up. Returns how many were
 * renewed, or -1. */
int sb_sched_renew(sb_sched_t *s, const char *const *members, size_t n, int64_t now_ms,
                   int64_t deadline_ms);

/* Lists up to max members whose lease expired before now_ms (their claimer died or hung),
 * without moving them, and the earliest claim time among them in *claimed_since_ms
 * (lease deadline - lease). Returns the count or -1. */
int sb_sched_expired_leases(sb_sched_t *s, int64_t now_ms, char (*members)[SB_SCHED_MEMBER_MAX],
                            size_t max, int64_t *claimed_since_ms);

/* ---- inspection (surveybusctl) ---- */

/* Reads one survey record. Returns 1 found, 0 not found, -1 Redis error, -2 a value there
 * that is not a record this version reads (written by a newer one, or damaged). */
int sb_sched_get(sb_sched_t *s, const char *survey_id, sb_record_t *out);

/* Cancels one pending survey by id. Returns 1 cancelled, 0 not pending, -1 error. */
int sb_sched_cancel_id(sb_sched_t *s, const char *survey_id, int64_t now_ms);

/* Lists pending surveys (timers of kind "fire" in P"sched", earliest first), at most max,
 * optionally only one customer's (customer may be NULL). Records that cannot be read (-2 of
 * sb_sched_get) are left out and counted in *unreadable (may be NULL). Returns the count, or
 * -1 when Redis failed (nothing is listed then, rather than a listing with holes). */
int sb_sched_pending(sb_sched_t *s, const char *customer, sb_record_t *out, size_t max,
                     size_t *unreadable);

/* Number of timers in P"sched" and P"inflight". Returns 0 or -1. */
int sb_sched_depth(sb_sched_t *s, int64_t *scheduled, int64_t *inflight);

#endif
