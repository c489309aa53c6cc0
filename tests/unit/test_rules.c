/* Journey rules: quiet hours across DST changes and in a zone without DST, which journeys an
 * event triggers and when, and every fatigue reason with its exact boundaries. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "record.h"
#include "rules.h"

#include "unit.h"

#define MIN_MS 60000LL
#define HOUR_MS 3600000LL
#define DAY_MS 86400000LL

static int64_t at(int64_t y, unsigned mo, unsigned d, int h, int mi, int s)
{
    return ((sb_days_from_civil(y, mo, d) * 86400) + h * 3600 + mi * 60 + s) * 1000LL;
}

/* ---------------------------------------------------------------- quiet hours */

#define Q_START (21 * 60)
#define Q_END (8 * 60)

START_TEST(quiet_berlin_night_before_dst_starts)
{
    const sb_tz_t *tz = sb_tz_get("Europe/Berlin");
    ck_assert_ptr_nonnull(tz);
    int64_t out;
    /* 2026-03-28 22:30 CET = 21:30Z -> 2026-03-29 08:00 CEST = 06:00Z (a 8.5 h move, not 9.5). */
    ck_assert_int_eq(sb_rules_quiet_adjust(at(2026, 3, 28, 21, 30, 0), tz, Q_START, Q_END, &out),
                     1);
    ck_assert_int_eq(out, at(2026, 3, 29, 6, 0, 0));
    /* 2026-03-29 01:30 CET (before the jump) -> the same 08:00 CEST. */
    ck_assert_int_eq(sb_rules_quiet_adjust(at(2026, 3, 29, 0, 30, 0), tz, Q_START, Q_END, &out), 1);
    ck_assert_int_eq(out, at(2026, 3, 29, 6, 0, 0));
}
END_TEST

START_TEST(quiet_new_york_night_before_dst_ends)
{
    const sb_tz_t *tz = sb_tz_get("America/New_York");
    ck_assert_ptr_nonnull(tz);
    int64_t out;
    /* 2026-10-31 23:00 EDT = 11-01 03:00Z -> 2026-11-01 08:00 EST = 13:00Z. */
    ck_assert_int_eq(sb_rules_quiet_adjust(at(2026, 11, 1, 3, 0, 0), tz, Q_START, Q_END, &out), 1);
    ck_assert_int_eq(out, at(2026, 11, 1, 13, 0, 0));
}
END_TEST

START_TEST(quiet_shanghai_without_dst)
{
    const sb_tz_t *tz = sb_tz_get("Asia/Shanghai");
    ck_assert_ptr_nonnull(tz);
    int64_t out;
    /* 2026-11-22 23:00 +08 = 15:00Z -> 2026-11-23 08:00 +08 = 00:00Z. */
    ck_assert_int_eq(sb_rules_quiet_adjust(at(2026, 11, 22, 15, 0, 0), tz, Q_START, Q_END, &out),
                     1);
    ck_assert_int_eq(out, at(2026, 11, 23, 0, 0, 0));
    /* 18:00 +08 (10:00Z) is outside. */
    ck_assert_int_eq(sb_rules_quiet_adjust(at(2026, 11, 22, 10, 0, 0), tz, Q_START, Q_END, &out),
                     0);
    ck_assert_int_eq(out, at(2026, 11, 22, 10, 0, 0));
}
END_TEST

START_TEST(quiet_boundaries)
{
    const sb_tz_t *tz = sb_tz_get("Europe/Berlin");
    int64_t out, t;
    /* 2026-06-10 (CEST, +2). Just before 21:00 local: unchanged. */
    t = at(2026, 6, 10, 18, 59, 59) + 999;
    ck_assert_int_eq(sb_rules_quiet_adjust(t, tz, Q_START, Q_END, &out), 0);
    ck_assert_int_eq(out, t);
    /* Exactly 21:00 local is inside: next day 08:00 CEST = 06:00Z. */
    ck_assert_int_eq(sb_rules_quiet_adjust(at(2026, 6, 10, 19, 0, 0), tz, Q_START, Q_END, &out), 1);
    ck_assert_int_eq(out, at(2026, 6, 11, 6, 0, 0));
    /* Just before midnight local still goes to the next morning. */
    ck_assert_int_eq(sb_rules_quiet_adjust(at(2026, 6, 10, 21, 59, 59), tz, Q_START, Q_END, &out),
                     1);
    ck_assert_int_eq(out, at(2026, 6, 11, 6, 0, 0));
    /* Exactly 08:00 local is the end: unchanged. */
    t = at(2026, 6, 11, 6, 0, 0);
    ck_assert_int_eq(sb_rules_quiet_adjust(t, tz, Q_START, Q_END, &out), 0);
    ck_assert_int_eq(out, t);
    /* 07:59:59.999 local: moved 1 ms forward to 08:00. */
    ck_assert_int_eq(sb_rules_quiet_adjust(t - 1, tz, Q_START, Q_END, &out), 1);
    ck_assert_int_eq(out, t);
}
END_TEST

START_TEST(quiet_early_morning_moves_to_same_day)
{
    const sb_tz_t *tz = sb_tz_get("Europe/Berlin");
    int64_t out;
    /* 03:00 CEST on 2026-06-10 = 01:00Z -> 08:00 CEST the same day = 06:00Z. */
    ck_assert_int_eq(sb_rules_quiet_adjust(at(2026, 6, 10, 1, 0, 0), tz, Q_START, Q_END, &out), 1);
    ck_assert_int_eq(out, at(2026, 6, 10, 6, 0, 0));
    /* Midnight local exactly (22:00Z the day before) -> 08:00 the same local day. */
    ck_assert_int_eq(sb_rules_quiet_adjust(at(2026, 6, 9, 22, 0, 0), tz, Q_START, Q_END, &out), 1);
    ck_assert_int_eq(out, at(2026, 6, 10, 6, 0, 0));
}
END_TEST

START_TEST(quiet_non_wrapping_interval)
{
    int64_t out, t;
    /* 12:00-13:00 in UTC (tz NULL). */
    ck_assert_int_eq(sb_rules_quiet_adjust(at(2026, 5, 5, 12, 30, 0), NULL, 720, 780, &out), 1);
    ck_assert_int_eq(out, at(2026, 5, 5, 13, 0, 0));
    ck_assert_int_eq(sb_rules_quiet_adjust(at(2026, 5, 5, 12, 0, 0), NULL, 720, 780, &out), 1);
    ck_assert_int_eq(out, at(2026, 5, 5, 13, 0, 0));
    t = at(2026, 5, 5, 13, 0, 0);
    ck_assert_int_eq(sb_rules_quiet_adjust(t, NULL, 720, 780, &out), 0);
    ck_assert_int_eq(out, t);
    t = at(2026, 5, 5, 11, 59, 59);
    ck_assert_int_eq(sb_rules_quiet_adjust(t, NULL, 720, 780, &out), 0);
    ck_assert_int_eq(out, t);
    /* Late evening is outside a midday interval. */
    t = at(2026, 5, 5, 23, 0, 0);
    ck_assert_int_eq(sb_rules_quiet_adjust(t, NULL, 720, 780, &out), 0);
    ck_assert_int_eq(out, t);
    /* Same interval in Shanghai: 12:30 +08 = 04:30Z -> 13:00 +08 = 05:00Z. */
    ck_assert_int_eq(
        sb_rules_quiet_adjust(at(2026, 5, 5, 4, 30, 0), sb_tz_get("Asia/Shanghai"), 720, 780, &out),
        1);
    ck_assert_int_eq(out, at(2026, 5, 5, 5, 0, 0));
}
END_TEST

START_TEST(quiet_empty_and_invalid)
{
    int64_t out = 0, t = at(2026, 5, 5, 3, 0, 0);
    ck_assert_int_eq(sb_rules_quiet_adjust(t, NULL, 480, 480, &out), 0); /* start == end */
    ck_assert_int_eq(out, t);
    ck_assert_int_eq(sb_rules_quiet_adjust(t, NULL, -1, 480, &out), -1);
    ck_assert_int_eq(sb_rules_quiet_adjust(t, NULL, 1260, 1440, &out), -1);
    ck_assert_int_eq(sb_rules_quiet_adjust(t, NULL, 1260, 480, NULL), -1);
    /* Instants far outside any calendar are left alone, without overflow. */
    const sb_tz_t *tz = sb_tz_get("Europe/Berlin");
    ck_assert_int_eq(sb_rules_quiet_adjust(INT64_MAX, tz, 0, 1439, &out), 0);
    ck_assert_int_eq(out, INT64_MAX);
    ck_assert_int_eq(sb_rules_quiet_adjust(INT64_MIN, tz, 0, 1439, &out), 0);
    ck_assert_int_eq(out, INT64_MIN);
}
END_TEST

START_TEST(quiet_end_in_repeated_or_skipped_hour)
{
    const sb_tz_t *ny = sb_tz_get("America/New_York");
    int64_t out;
    /* Quiet 01:00-01:45 on 2026-11-01, when 01:00-02:00 happens twice. 01:30 EDT (05:30Z)
     * -> 01:45 EDT (05:45Z), the earlier instant. */
    ck_assert_int_eq(sb_rules_quiet_adjust(at(2026, 11, 1, 5, 30, 0), ny, 60, 105, &out), 1);
    ck_assert_int_eq(out, at(2026, 11, 1, 5, 45, 0));
    /* 01:30 EST (06:30Z): 01:45 EDT would be in the past, so 01:45 EST (06:45Z). */
    ck_assert_int_eq(sb_rules_quiet_adjust(at(2026, 11, 1, 6, 30, 0), ny, 60, 105, &out), 1);
    ck_assert_int_eq(out, at(2026, 11, 1, 6, 45, 0));

    /* Quiet 01:00-02:30 in Berlin on 2026-03-29: 02:30 does not exist and is read as
     * 03:30 CEST = 01:30Z. Due 01:30 CET = 00:30Z. */
    const sb_tz_t *be = sb_tz_get("Europe/Berlin");
    ck_assert_int_eq(sb_rules_quiet_adjust(at(2026, 3, 29, 0, 30, 0), be, 60, 150, &out), 1);
    ck_assert_int_eq(out, at(2026, 3, 29, 1, 30, 0));
}
END_TEST

/* ---------------------------------------------------------------- matching */

#define P(s) ((char[]){s})

static sb_match_t on_support[] = {{SB_F_TYPE, P("interaction.completed")},
                                  {SB_F_KIND, P("support_ticket")}};
static sb_match_t on_visit[] = {{SB_F_TYPE, P("visit.completed")}};
static sb_match_t on_self[] = {{SB_F_KIND, P("self_service")}};
static sb_match_t on_support_any[] = {{SB_F_KIND, P("support_ticket")}};
static sb_match_t on_phone_east[] = {{SB_F_CHANNEL, P("phone")}, {SB_F_REGION, P("east")}};

static sb_journey_t journeys[] = {
    {.name = P("support-csat"),
     .on = on_support,
     .n_on = 2,
     .survey = SB_KIND_CSAT,
     .delay_ms = HOUR_MS,
     .expires_ms = 72 * HOUR_MS,
     .channel = P("email"),
     .has_quiet = true,
     .quiet_start_min = Q_START,
     .quiet_end_min = Q_END},
    {.name = P("field-visit-csat"),
     .on = on_visit,
     .n_on = 1,
     .survey = SB_KIND_CSAT,
     .delay_ms = 0,
     .expires_ms = 7 * DAY_MS,
     .channel = P("device")},
    {.name = P("self-service-ces"),
     .on = on_self,
     .n_on = 1,
     .survey = SB_KIND_CES,
     .delay_ms = 5 * MIN_MS,
     .expires_ms = 7 * DAY_MS},
    {.name = P("support-nps"),
     .on = on_support_any,
     .n_on = 1,
     .survey = SB_KIND_NPS,
     .delay_ms = 30 * DAY_MS,
     .expires_ms = 7 * DAY_MS},
    {.name = P("phone-east"),
     .on = on_phone_east,
     .n_on = 2,
     .survey = SB_KIND_CES,
     .delay_ms = 10 * MIN_MS,
     .expires_ms = DAY_MS},
};

static sb_config_t cfg;
static sb_event_t ev;
static sb_candidate_t out[8];

static void setup(void)
{
    memset(&cfg, 0, sizeof cfg);
    cfg.journeys = journeys;
    cfg.n_journeys = sizeof journeys / sizeof *journeys;
    memset(&ev, 0, sizeof ev);
    memset(out, 0xAB, sizeof out);
}

static void set_event(sb_event_type_t type, int64_t occurred, const char *kind, const char *tz)
{
    static const char *const names[] = {"interaction.completed", "visit.completed",
                                        "interaction.reopened"};
    ev.type = type;
    ev.occurred_ms = occurred;
    strcpy(ev.val[SB_F_TYPE], names[type]);
    strcpy(ev.val[SB_F_EVENT_ID], "e-1");
    strcpy(ev.val[SB_F_CUSTOMER_ID], "c-42");
    strcpy(ev.val[SB_F_INTERACTION_ID], "t-9");
    strcpy(ev.val[SB_F_KIND], kind);
    strcpy(ev.val[SB_F_CUSTOMER_TZ], tz);
}

START_TEST(every_matching_journey_yields_a_candidate)
{
    /* 2026-11-22 10:00Z = 18:00 in Shanghai. */
    set_event(SB_EV_COMPLETED, at(2026, 11, 22, 10, 0, 0), "support_ticket", "Asia/Shanghai");
    ck_assert_int_eq(sb_rules_match(&cfg, &ev, out, 8), 2);
    /* support-csat: +1 h = 19:00 local, outside quiet hours. */
    ck_assert_uint_eq(out[0].journey, 0);
    ck_assert_int_eq(out[0].due_ms, at(2026, 11, 22, 11, 0, 0));
    ck_assert_int_eq(out[0].expires_ms, at(2026, 11, 25, 11, 0, 0));
    /* support-nps: +30 d, no quiet hours configured. */
    ck_assert_uint_eq(out[1].journey, 3);
    ck_assert_int_eq(out[1].due_ms, at(2026, 12, 22, 10, 0, 0));
    ck_assert_int_eq(out[1].expires_ms, at(2026, 12, 29, 10, 0, 0));
}
END_TEST

START_TEST(delay_lands_in_quiet_hours)
{
    /* 13:30Z = 21:30 +08; +1 h = 22:30 local -> 2026-11-23 08:00 +08 = 00:00Z. */
    set_event(SB_EV_COMPLETED, at(2026, 11, 22, 13, 30, 0), "support_ticket", "Asia/Shanghai");
    ck_assert_int_eq(sb_rules_match(&cfg, &ev, out, 8), 2);
    ck_assert_uint_eq(out[0].journey, 0);
    ck_assert_int_eq(out[0].due_ms, at(2026, 11, 23, 0, 0, 0));
    ck_assert_int_eq(out[0].expires_ms, at(2026, 11, 26, 0, 0, 0));
    ck_assert_uint_eq(out[1].journey, 3);
    ck_assert_int_eq(out[1].due_ms, at(2026, 12, 22, 13, 30, 0));
}
END_TEST

/* A reminder keeps out of the journey's quiet hours (21:00-08:00) in the customer's zone, as
 * the survey did; worked by hand. */
START_TEST(reminder_moved_out_of_quiet_hours)
{
    sb_record_t r;
    memset(&r, 0, sizeof r);
    strcpy(r.journey, "support-csat");
    strcpy(r.tz, "Asia/Shanghai");
    r.remind_after_ms = DAY_MS;
    /* sent 14:00Z = 22:00 +08; +24 h = 22:00 +08 the next day, quiet -> 08:00 +08 on the
     * 24th = 00:00Z */
    ck_assert_int_eq(sb_rules_remind_at(&cfg, &r, at(2026, 11, 22, 14, 0, 0)),
                     at(2026, 11, 24, 0, 0, 0));
    /* sent 02:00Z = 10:00 +08: +24 h is 10:00 +08, not quiet */
    ck_assert_int_eq(sb_rules_remind_at(&cfg, &r, at(2026, 11, 22, 2, 0, 0) + 7),
                     at(2026, 11, 23, 2, 0, 0) + 7);
    /* no zone (or an unknown one): UTC; 22:00Z -> 08:00Z the day after */
    r.tz[0] = '\0';
    ck_assert_int_eq(sb_rules_remind_at(&cfg, &r, at(2026, 11, 22, 22, 0, 0)),
                     at(2026, 11, 24, 8, 0, 0));
    strcpy(r.tz, "Mars/Olympus");
    ck_assert_int_eq(sb_rules_remind_at(&cfg, &r, at(2026, 11, 22, 22, 0, 0)),
                     at(2026, 11, 24, 8, 0, 0));
    /* a journey without quiet hours: sent + remind_after as is (22:00 Shanghai) */
    strcpy(r.journey, "self-service-ces");
    strcpy(r.tz, "Asia/Shanghai");
    ck_assert_int_eq(sb_rules_remind_at(&cfg, &r, at(2026, 11, 22, 14, 0, 0)),
                     at(2026, 11, 23, 14, 0, 0));
    /* no reminder, or a journey no longer configured: 0 */
    r.remind_after_ms = 0;
    ck_assert_int_eq(sb_rules_remind_at(&cfg, &r, at(2026, 11, 22, 14, 0, 0)), 0);
    r.remind_after_ms = DAY_MS;
    strcpy(r.journey, "gone");
    ck_assert_int_eq(sb_rules_remind_at(&cfg, &r, at(2026, 11, 22, 14, 0, 0)), 0);
}
END_TEST

/* A survey claimed inside its journey's quiet hours (it fires late) waits for their end, in
 * the customer's zone; worked by hand with support-csat's 21:00-08:00. */
START_TEST(late_survey_waits_out_quiet_hours)
{
    sb_record_t r;
    memset(&r, 0, sizeof r);
    strcpy(r.journey, "support-csat");
    strcpy(r.tz, "Asia/Shanghai");
    /* 15:30Z = 23:30 +08: quiet until 08:00 +08 on the 23rd = 00:00Z */
    ck_assert_int_eq(sb_rules_quiet_until(&cfg, &r, at(2026, 11, 22, 15, 30, 0)),
                     at(2026, 11, 23, 0, 0, 0));
    /* 23:59:59.999Z = 07:59:59.999 +08: one millisecond left */
    ck_assert_int_eq(sb_rules_quiet_until(&cfg, &r, at(2026, 11, 22, 23, 59, 59) + 999),
                     at(2026, 11, 23, 0, 0, 0));
    /* 00:00Z = 08:00 +08, the end itself, and 12:59Z = 20:59 +08: not quiet */
    ck_assert_int_eq(sb_rules_quiet_until(&cfg, &r, at(2026, 11, 23, 0, 0, 0)), 0);
    ck_assert_int_eq(sb_rules_quiet_until(&cfg, &r, at(2026, 11, 22, 12, 59, 0)), 0);
    /* 13:00Z = 21:00 +08, the start: quiet */
    ck_assert_int_eq(sb_rules_quiet_until(&cfg, &r, at(2026, 11, 22, 13, 0, 0)),
                     at(2026, 11, 23, 0, 0, 0));
    /* no zone: UTC; 23:30Z -> 08:00Z */
    r.tz[0] = '\0';
    ck_assert_int_eq(sb_rules_quiet_until(&cfg, &r, at(2026, 11, 22, 23, 30, 0)),
                     at(2026, 11, 23, 8, 0, 0));
    /* a journey without quiet hours, or one no longer configured: now */
    strcpy(r.journey, "self-service-ces");
    ck_assert_int_eq(sb_rules_quiet_until(&cfg, &r, at(2026, 11, 22, 23, 30, 0)), 0);
    strcpy(r.journey, "gone");
    ck_assert_int_eq(sb_rules_quiet_until(&cfg, &r, at(2026, 11, 22, 23, 30, 0)), 0);
}
END_TEST

START_TEST(delay_arithmetic_keeps_milliseconds)
{
    set_event(SB_EV_COMPLETED, at(2026, 11, 22, 10, 0, 0) + 250, "self_service", "");
    ck_assert_int_eq(sb_rules_match(&cfg, &ev, out, 8), 1);
    ck_assert_uint_eq(out[0].journey, 2);
    ck_assert_int_eq(out[0].due_ms, at(2026, 11, 22, 10, 5, 0) + 250);
    ck_assert_int_eq(out[0].expires_ms, at(2026, 11, 29, 10, 5, 0) + 250);
    /* A delay overflowing the clock saturates instead of wrapping. */
    set_event(SB_EV_COMPLETED, INT64_MAX - 1000, "self_service", "");
    ck_assert_int_eq(sb_rules_match(&cfg, &ev, out, 8), 1);
    ck_assert_int_eq(out[0].due_ms, INT64_MAX);
    ck_assert_int_eq(out[0].expires_ms, INT64_MAX);
}
END_TEST

START_TEST(reopened_never_matches)
{
    set_event(SB_EV_REOPENED, at(2026, 11, 22, 10, 0, 0), "support_ticket", "");
    ck_assert_int_eq(sb_rules_match(&cfg, &ev, out, 8), 0);
    /* Not even a journey whose only condition is the kind, nor one with no conditions. */
    sb_journey_t any = {.name = P("any"), .survey = SB_KIND_CSAT, .expires_ms = DAY_MS};
    cfg.journeys = &any;
    cfg.n_journeys = 1;
    ck_assert_int_eq(sb_rules_match(&cfg, &ev, out, 8), 0);
    set_event(SB_EV_COMPLETED, at(2026, 11, 22, 10, 0, 0), "anything", "");
    ck_assert_int_eq(sb_rules_match(&cfg, &ev, out, 8), 1);
    ck_assert_int_eq(out[0].due_ms, at(2026, 11, 22, 10, 0, 0));
}
END_TEST

START_TEST(type_condition_uses_canonical_type)
{
    /* A visit of kind support_ticket: field-visit-csat (type) and support-nps (kind only),
     * but not support-csat, which asks for interaction.completed. */
    set_event(SB_EV_VISIT_COMPLETED, at(2026, 11, 22, 10, 0, 0), "support_ticket", "");
    strcpy(ev.val[SB_F_DEVICE_ID], "dev-1");
    ck_assert_int_eq(sb_rules_match(&cfg, &ev, out, 8), 2);
    ck_assert_uint_eq(out[0].journey, 1);
    ck_assert_int_eq(out[0].due_ms, at(2026, 11, 22, 10, 0, 0)); /* delay 0s */
    ck_assert_int_eq(out[0].expires_ms, at(2026, 11, 29, 10, 0, 0));
    ck_assert_uint_eq(out[1].journey, 3);
}
END_TEST

START_TEST(field_equality_is_exact)
{
    static const char *const near[] = {"Support_Ticket", "support_ticket ", " support_ticket",
                                       "support",        "support_ticketx", ""};
    for (size_t i = 0; i < sizeof near / sizeof *near; i++) {
        set_event(SB_EV_COMPLETED, at(2026, 11, 22, 10, 0, 0), near[i], "");
        ck_assert_msg(sb_rules_match(&cfg, &ev, out, 8) == 0, "kind \"%s\" matched", near[i]);
    }
    /* All conditions must hold: phone alone is not enough. */
    set_event(SB_EV_COMPLETED, at(2026, 11, 22, 10, 0, 0), "sales_call", "");
    strcpy(ev.val[SB_F_CHANNEL], "phone");
    ck_assert_int_eq(sb_rules_match(&cfg, &ev, out, 8), 0);
    strcpy(ev.val[SB_F_REGION], "west");
    ck_assert_int_eq(sb_rules_match(&cfg, &ev, out, 8), 0);
    strcpy(ev.val[SB_F_REGION], "east");
    ck_assert_int_eq(sb_rules_match(&cfg, &ev, out, 8), 1);
    ck_assert_uint_eq(out[0].journey, 4);
    ck_assert_int_eq(out[0].due_ms, at(2026, 11, 22, 10, 10, 0));
    ck_assert_int_eq(out[0].expires_ms, at(2026, 11, 23, 10, 10, 0));
}
END_TEST

START_TEST(unknown_or_empty_zone_means_utc)
{
    /* 20:30Z + 1 h = 21:30 UTC: in quiet hours read in UTC -> 2026-11-23 08:00Z. */
    static const char *const zones[] = {"", "UTC", "Mars/Olympus_Mons", "../../etc/passwd",
                                        "Not a zone"};
    for (size_t i = 0; i < sizeof zones / sizeof *zones; i++) {
        set_event(SB_EV_COMPLETED, at(2026, 11, 22, 20, 30, 0), "support_ticket", zones[i]);
        ck_assert_int_eq(sb_rules_match(&cfg, &ev, out, 8), 2);
        ck_assert_msg(out[0].due_ms == at(2026, 11, 23, 8, 0, 0), "zone \"%s\"", zones[i]);
    }
    /* The same event in Shanghai (04:30 local) -> 08:00 +08 = 00:00Z. */
    set_event(SB_EV_COMPLETED, at(2026, 11, 22, 20, 30, 0), "support_ticket", "Asia/Shanghai");
    ck_assert_int_eq(sb_rules_match(&cfg, &ev, out, 8), 2);
    ck_assert_int_eq(out[0].due_ms, at(2026, 11, 23, 0, 0, 0));
}
END_TEST

START_TEST(max_bounds_the_output)
{
    set_event(SB_EV_COMPLETED, at(2026, 11, 22, 10, 0, 0), "support_ticket", "");
    sb_candidate_t one[2];
    memset(one, 0xAB, sizeof one);
    ck_assert_int_eq(sb_rules_match(&cfg, &ev, one, 1), 1);
    ck_assert_uint_eq(one[0].journey, 0);
    ck_assert_uint_eq(one[1].journey, (size_t)0xABABABABABABABABULL); /* untouched */
    ck_assert_int_eq(sb_rules_match(&cfg, &ev, NULL, 0), 0);
    cfg.n_journeys = 0;
    ck_assert_int_eq(sb_rules_match(&cfg, &ev, out, 8), 0);
}
END_TEST

/* ---------------------------------------------------------------- fatigue */

/* The SPEC example: min_gap 7d, nps 90d, at most 3 per 30 days. */
static const sb_fatigue_t spec = {
    .min_gap_ms = 7 * DAY_MS,
    .min_gap_by_kind_ms = {[SB_KIND_CSAT] = -1, [SB_KIND_CES] = -1, [SB_KIND_NPS] = 90 * DAY_MS},
    .max_per_30d = 3,
};
static const int64_t NOW = 1800000000000LL; /* 2027-01-15T08:00:00Z */

static const char *fatigue1(const sb_fatigue_t *f, sb_kind_t kind, int64_t ago, sb_kind_t prev)
{
    sb_sent_t h = {NOW - ago, prev};
    return sb_rules_fatigue(f, kind, NOW, &h, 1);
}

START_TEST(fatigue_empty_history_sends)
{
    ck_assert_ptr_null(sb_rules_fatigue(&spec, SB_KIND_NPS, NOW, NULL, 0));
    ck_assert_ptr_null(sb_rules_fatigue(&spec, SB_KIND_CSAT, NOW, NULL, 0));
}
END_TEST

START_TEST(fatigue_min_gap_by_kind)
{
    ck_assert_str_eq(fatigue1(&spec, SB_KIND_NPS, 89 * DAY_MS, SB_KIND_NPS), "min_gap_by_kind");
    ck_assert_str_eq(fatigue1(&spec, SB_KIND_NPS, 90 * DAY_MS - 1, SB_KIND_NPS), "min_gap_by_kind");
    ck_assert_ptr_null(fatigue1(&spec, SB_KIND_NPS, 90 * DAY_MS, SB_KIND_NPS)); /* exactly */
    ck_assert_ptr_null(fatigue1(&spec, SB_KIND_NPS, 120 * DAY_MS, SB_KIND_NPS));
    /* An NPS 89 days ago does not hold back a CSAT (csat has no per-kind gap). */
    ck_assert_ptr_null(fatigue1(&spec, SB_KIND_CSAT, 89 * DAY_MS, SB_KIND_NPS));
    /* Reported before min_gap when both apply. */
    ck_assert_str_eq(fatigue1(&spec, SB_KIND_NPS, DAY_MS, SB_KIND_NPS), "min_gap_by_kind");
}
END_TEST

START_TEST(fatigue_min_gap_any_kind)
{
    ck_assert_str_eq(fatigue1(&spec, SB_KIND_CSAT, 7 * DAY_MS - 1, SB_KIND_CES), "min_gap");
    ck_assert_str_eq(fatigue1(&spec, SB_KIND_CSAT, 0, SB_KIND_CSAT), "min_gap");
    ck_assert_ptr_null(fatigue1(&spec, SB_KIND_CSAT, 7 * DAY_MS, SB_KIND_CES)); /* exactly */
    /* An NPS two days after a CSAT: its own 90 d gap is clear, the 7 d gap is not. */
    ck_assert_str_eq(fatigue1(&spec, SB_KIND_NPS, 2 * DAY_MS, SB_KIND_CSAT), "min_gap");
    /* A per-kind gap shorter than min_gap does not relax min_gap. */
    sb_fatigue_t f = spec;
    f.min_gap_by_kind_ms[SB_KIND_CSAT] = DAY_MS;
    ck_assert_str_eq(fatigue1(&f, SB_KIND_CSAT, 3 * DAY_MS, SB_KIND_CSAT), "min_gap");
    ck_assert_str_eq(fatigue1(&f, SB_KIND_CSAT, DAY_MS - 1, SB_KIND_CSAT), "min_gap_by_kind");
    /* min_gap 0: none. */
    f = spec;
    f.min_gap_ms = 0;
    ck_assert_ptr_null(fatigue1(&f, SB_KIND_CSAT, 0, SB_KIND_CSAT));
    /* A per-kind gap of 0 is set but blocks nothing already in the past. */
    f.min_gap_by_kind_ms[SB_KIND_CSAT] = 0;
    ck_assert_ptr_null(fatigue1(&f, SB_KIND_CSAT, 0, SB_KIND_CSAT));
}
END_TEST

START_TEST(fatigue_max_per_30d)
{
    sb_sent_t h[4] = {
        {NOW - 8 * DAY_MS, SB_KIND_CSAT},
        {NOW - 15 * DAY_MS, SB_KIND_CES},
        {NOW - 30 * DAY_MS + 1, SB_KIND_CSAT}, /* 1 ms inside the window */
        {NOW - 30 * DAY_MS, SB_KIND_CSAT},     /* exactly 30 days ago: outside */
    };
    ck_assert_str_eq(sb_rules_fatigue(&spec, SB_KIND_CSAT, NOW, h, 3), "max_per_30d");
    ck_assert_str_eq(sb_rules_fatigue(&spec, SB_KIND_CSAT, NOW, h, 4), "max_per_30d");
    /* Two inside plus one exactly at the edge: 2 < 3, send. */
    sb_sent_t edge[3] = {h[0], h[1], h[3]};
    ck_assert_ptr_null(sb_rules_fatigue(&spec, SB_KIND_CSAT, NOW, edge, 3));
    /* One ms later the 1-ms-inside survey has left the window too. */
    ck_assert_ptr_null(sb_rules_fatigue(&spec, SB_KIND_CSAT, NOW + 1, h, 3));
    /* max_per_30d 0: unlimited. */
    sb_fatigue_t f = spec;
    f.max_per_30d = 0;
    ck_assert_ptr_null(sb_rules_fatigue(&f, SB_KIND_CSAT, NOW, h, 4));
    /* min_gap is reported before max_per_30d. */
    sb_sent_t both[4] = {h[0], h[1], h[2], {NOW - DAY_MS, SB_KIND_CES}};
    ck_assert_str_eq(sb_rules_fatigue(&spec, SB_KIND_CSAT, NOW, both, 4), "min_gap");
    /* max_per_30d 1 with a survey 29 days ago, no gaps configured. */
    f = (sb_fatigue_t){.min_gap_ms = 0, .min_gap_by_kind_ms = {-1, -1, -1}, .max_per_30d = 1};
    ck_assert_str_eq(fatigue1(&f, SB_KIND_NPS, 29 * DAY_MS, SB_KIND_CSAT), "max_per_30d");
    ck_assert_ptr_null(fatigue1(&f, SB_KIND_NPS, 30 * DAY_MS, SB_KIND_CSAT));
}
END_TEST

START_TEST(fatigue_future_history_entries)
{
    /* A survey recorded 1 minute "in the future" (clock skew) counts for the gap ... */
    ck_assert_str_eq(fatigue1(&spec, SB_KIND_CSAT, -MIN_MS, SB_KIND_CES), "min_gap");
    /* ... but not for the 30-day window. */
    sb_fatigue_t f = {.min_gap_ms = 0, .min_gap_by_kind_ms = {-1, -1, -1}, .max_per_30d = 1};
    ck_assert_ptr_null(fatigue1(&f, SB_KIND_CSAT, -MIN_MS, SB_KIND_CES));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("rules");
    TCase *tc = tcase_create("quiet hours");
    tcase_add_test(tc, quiet_berlin_night_before_dst_starts);
    tcase_add_test(tc, quiet_new_york_night_before_dst_ends);
    tcase_add_test(tc, quiet_shanghai_without_dst);
    tcase_add_test(tc, quiet_boundaries);
    tcase_add_test(tc, quiet_early_morning_moves_to_same_day);
    tcase_add_test(tc, quiet_non_wrapping_interval);
    tcase_add_test(tc, quiet_empty_and_invalid);
    tcase_add_test(tc, quiet_end_in_repeated_or_skipped_hour);
    suite_add_tcase(s, tc);
    tc = tcase_create("match");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, every_matching_journey_yields_a_candidate);
    tcase_add_test(tc, delay_lands_in_quiet_hours);
    tcase_add_test(tc, delay_arithmetic_keeps_milliseconds);
    tcase_add_test(tc, reminder_moved_out_of_quiet_hours);
    tcase_add_test(tc, late_survey_waits_out_quiet_hours);
    tcase_add_test(tc, reopened_never_matches);
    tcase_add_test(tc, type_condition_uses_canonical_type);
    tcase_add_test(tc, field_equality_is_exact);
    tcase_add_test(tc, unknown_or_empty_zone_means_utc);
    tcase_add_test(tc, max_bounds_the_output);
    suite_add_tcase(s, tc);
    tc = tcase_create("fatigue");
    tcase_add_test(tc, fatigue_empty_history_sends);
    tcase_add_test(tc, fatigue_min_gap_by_kind);
    tcase_add_test(tc, fatigue_min_gap_any_kind);
    tcase_add_test(tc, fatigue_max_per_30d);
    tcase_add_test(tc, fatigue_future_history_entries);
    suite_add_tcase(s, tc);

    int rc = sb_unit_run(s);
    sb_tz_cache_free();
    return rc;
}
