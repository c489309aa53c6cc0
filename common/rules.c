/* Journey matching, due-time computation with quiet hours, and the fatigue check; see rules.h. */
#include "rules.h"

#include <string.h>

#include "record.h"

#define MIN_MS 60000LL
#define DAY_MS 86400000LL
#define TIME_LIMIT_MS (1LL << 62) /* due times beyond +-146 million years are left alone */

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static int64_t sat_add(int64_t a, int64_t b)
{
    if (b > 0 && a > INT64_MAX - b) return INT64_MAX;
    if (b < 0 && a < INT64_MIN - b) return INT64_MIN;
    return a + b;
}

int sb_rules_quiet_adjust(int64_t due_ms, const sb_tz_t *tz, int start_min, int end_min,
                          int64_t *out_ms)
{
    if (!out_ms || start_min < 0 || start_min >= 1440 || end_min < 0 || end_min >= 1440) return -1;
    *out_ms = due_ms;
    if (start_min == end_min) return 0;

    if (due_ms < -TIME_LIMIT_MS || due_ms > TIME_LIMIT_MS) return 0;

    int64_t local = due_ms + (int64_t)sb_tz_offset(tz, due_ms) * 1000;
    int64_t day = floor_div(local, DAY_MS);
    int64_t in_day = local - day * DAY_MS;
    int64_t s = start_min * MIN_MS, e = end_min * MIN_MS;
    int64_t target;
    if (start_min < end_min) {
        if (in_day < s || in_day >= e) return 0;
        target = day * DAY_MS + e;
    } else if (in_day >= s) {
        target = (day + 1) * DAY_MS + e;
    } else if (in_day < e) {
        target = day * DAY_MS + e;
    } else {
        return 0;
    }
    int64_t r = sb_tz_local_to_utc(tz, target, SB_TZ_EARLIER);
    if (r <= due_ms) r = sb_tz_local_to_utc(tz, target, SB_TZ_LATER);
    if (r <= due_ms) return 0;
    *out_ms = r;
    return 1;
}

static const char *type_name(sb_event_type_t t)
{
    switch (t) {
    case SB_EV_COMPLETED:
        return "interaction.completed";
    case SB_EV_VISIT_COMPLETED:
        return "visit.completed";
    case SB_EV_REOPENED:
        return "interaction.reopened";
    }
    return "";
}

static bool journey_matches(const sb_journey_t *j, const sb_event_t *ev)
{
    for (size_t i = 0; i < j->n_on; i++) {
        const sb_match_t *m = &j->on[i];
        if ((unsigned)m->field >= SB_F__N || !m->value) return false;
        const char *have = m->field == SB_F_TYPE ? type_name(ev->type) : ev->val[m->field];
        if (strcmp(have, m->value) != 0) return false;
    }
    return true;
}

/* at moved out of the quiet hours of journey j in the record's zone (as is without). */
static int64_t out_of_quiet(const sb_journey_t *j, const sb_record_t *r, int64_t at)
{
    if (j->has_quiet)
        sb_rules_quiet_adjust(at, sb_tz_get(r->tz), j->quiet_start_min, j->quiet_end_min, &at);
    return at;
}

int64_t sb_rules_remind_at(const sb_config_t *cfg, const sb_record_t *r, int64_t sent_ms)
{
    if (r->remind_after_ms <= 0) return 0; /* most surveys: no lookup */
    const sb_journey_t *j = sb_config_journey(cfg, r->journey);
    return j ? out_of_quiet(j, r, sat_add(sent_ms, r->remind_after_ms)) : 0;
}

int64_t sb_rules_quiet_until(const sb_config_t *cfg, const sb_record_t *r, int64_t now_ms)
{
    const sb_journey_t *j = sb_config_journey(cfg, r->journey);
    int64_t at = j ? out_of_quiet(j, r, now_ms) : now_ms;
    return at > now_ms ? at : 0;
}

size_t sb_rules_match(const sb_config_t *cfg, const sb_event_t *ev, sb_candidate_t *out, size_t max)
{
    if (!cfg || !ev || (ev->type != SB_EV_COMPLETED && ev->type != SB_EV_VISIT_COMPLETED)) return 0;
    const sb_tz_t *tz = sb_tz_get(ev->val[SB_F_CUSTOMER_TZ]);
    if (!tz) tz = sb_tz_utc();

    size_t n = 0;
    for (size_t i = 0; i < cfg->n_journeys && n < max; i++) {
        const sb_journey_t *j = &cfg->journeys[i];
        if (!journey_matches(j, ev)) continue;
        int64_t due = sat_add(ev->occurred_ms, j->delay_ms);
        if (j->has_quiet)
            sb_rules_quiet_adjust(due, tz, j->quiet_start_min, j->quiet_end_min, &due);
        out[n].journey = i;
        out[n].due_ms = due;
        out[n].expires_ms = sat_add(due, j->expires_ms);
        n++;
    }
    return n;
}

const char *sb_rules_fatigue(const sb_fatigue_t *f, sb_kind_t kind, int64_t now_ms,
                             const sb_sent_t *history, size_t n)
{
    if (!f || (!history && n > 0)) return NULL;

    /* "sent less than gap ago": now - at < gap, written without overflow as at > now - gap. */
    if ((unsigned)kind < SB_KIND__N && f->min_gap_by_kind_ms[kind] >= 0) {
        int64_t since = sat_add(now_ms, -f->min_gap_by_kind_ms[kind]);
        for (size_t i = 0; i < n; i++)
            if (history[i].kind == kind && history[i].at_ms > since) return "min_gap_by_kind";
    }
    if (f->min_gap_ms > 0) {
        int64_t since = sat_add(now_ms, -f->min_gap_ms);
        for (size_t i = 0; i < n; i++)
            if (history[i].at_ms > since) return "min_gap";
    }
    if (f->max_per_30d > 0) {
        int64_t since = sat_add(now_ms, -30 * DAY_MS);
        int count = 0;
        for (size_t i = 0; i < n; i++)
            if (history[i].at_ms > since && history[i].at_ms <= now_ms) count++;
        if (count >= f->max_per_30d) return "max_per_30d";
    }
    return NULL;
}
