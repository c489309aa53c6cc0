/* Time zones: offsets around real 2026 DST changes (Berlin, New York), a zone without DST
 * (Shanghai), the footer rule far beyond the transition table, local->UTC for gaps and
 * repeated hours, hand-built TZif files (v1, v2 footers), bad names and files, the cache. */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tz.h"
#include "util.h"

#include "unit.h"

#define H 3600

/* Epoch ms of a UTC civil time (also used for "local ms", a local time written as UTC). */
static int64_t at(int64_t y, unsigned mo, unsigned d, int h, int mi, int s)
{
    return ((sb_days_from_civil(y, mo, d) * 86400) + h * 3600 + mi * 60 + s) * 1000LL;
}

static sb_tz_t *load_ok(const char *name)
{
    char err[256] = "";
    sb_tz_t *tz = sb_tz_load(name, err, sizeof err);
    ck_assert_msg(tz != NULL, "loading %s: %s", name, err);
    return tz;
}

START_TEST(epoch_helper_matches_known_values)
{
    /* date -u -d 2026-03-29T01:00:00Z +%s */
    ck_assert_int_eq(at(2026, 3, 29, 1, 0, 0), 1774746000000LL);
    ck_assert_int_eq(at(2026, 11, 1, 6, 0, 0), 1793512800000LL);
}
END_TEST

START_TEST(berlin_dst_start_and_end_2026)
{
    unsetenv("TZDIR");
    sb_tz_t *tz = load_ok("Europe/Berlin");
    ck_assert_str_eq(sb_tz_name(tz), "Europe/Berlin");
    /* Last Sunday of March: 02:00 CET -> 03:00 CEST at 01:00Z. */
    ck_assert_int_eq(sb_tz_offset(tz, at(2026, 3, 29, 0, 59, 59)), 3600);
    ck_assert_int_eq(sb_tz_offset(tz, at(2026, 3, 29, 0, 59, 59) + 999), 3600);
    ck_assert_int_eq(sb_tz_offset(tz, at(2026, 3, 29, 1, 0, 0)), 7200);
    /* Last Sunday of October: 03:00 CEST -> 02:00 CET at 01:00Z. */
    ck_assert_int_eq(sb_tz_offset(tz, at(2026, 10, 25, 0, 59, 59)), 7200);
    ck_assert_int_eq(sb_tz_offset(tz, at(2026, 10, 25, 1, 0, 0)), 3600);
    /* Mid-winter and mid-summer. */
    ck_assert_int_eq(sb_tz_offset(tz, at(2026, 1, 15, 12, 0, 0)), 3600);
    ck_assert_int_eq(sb_tz_offset(tz, at(2026, 7, 15, 12, 0, 0)), 7200);
    sb_tz_free(tz);
}
END_TEST

START_TEST(new_york_dst_start_and_end_2026)
{
    unsetenv("TZDIR");
    sb_tz_t *tz = load_ok("America/New_York");
    /* Second Sunday of March, 02:00 EST = 07:00Z. */
    ck_assert_int_eq(sb_tz_offset(tz, at(2026, 3, 8, 6, 59, 59)), -5 * H);
    ck_assert_int_eq(sb_tz_offset(tz, at(2026, 3, 8, 7, 0, 0)), -4 * H);
    /* First Sunday of November, 02:00 EDT = 06:00Z. */
    ck_assert_int_eq(sb_tz_offset(tz, at(2026, 11, 1, 5, 59, 59)), -4 * H);
    ck_assert_int_eq(sb_tz_offset(tz, at(2026, 11, 1, 6, 0, 0)), -5 * H);
    sb_tz_free(tz);
}
END_TEST

START_TEST(shanghai_is_constant)
{
    unsetenv("TZDIR");
    sb_tz_t *tz = load_ok("Asia/Shanghai");
    ck_assert_int_eq(sb_tz_offset(tz, at(2026, 1, 1, 0, 0, 0)), 8 * H);
    ck_assert_int_eq(sb_tz_offset(tz, at(2026, 3, 29, 1, 0, 0)), 8 * H);
    ck_assert_int_eq(sb_tz_offset(tz, at(2026, 7, 1, 0, 0, 0)), 8 * H);
    ck_assert_int_eq(sb_tz_offset(tz, at(2026, 11, 22, 15, 0, 0)), 8 * H);
    ck_assert_int_eq(sb_tz_offset(tz, at(2090, 6, 1, 0, 0, 0)), 8 * H);
    /* China used DST 1986-1991: 1990-07-01 was +09. */
    ck_assert_int_eq(sb_tz_offset(tz, at(1990, 7, 1, 0, 0, 0)), 9 * H);
    sb_tz_free(tz);
}
END_TEST

START_TEST(footer_rule_far_future)
{
    unsetenv("TZDIR");
    sb_tz_t *tz = load_ok("Europe/Berlin");
    /* 2090: last Sunday of March is the 26th, of October the 29th (both at 01:00Z). */
    ck_assert_int_eq(sb_tz_offset(tz, at(2090, 3, 26, 0, 59, 59)), 3600);
    ck_assert_int_eq(sb_tz_offset(tz, at(2090, 3, 26, 1, 0, 0)), 7200);
    ck_assert_int_eq(sb_tz_offset(tz, at(2090, 10, 29, 0, 59, 59)), 7200);
    ck_assert_int_eq(sb_tz_offset(tz, at(2090, 10, 29, 1, 0, 0)), 3600);
    ck_assert_int_eq(sb_tz_offset(tz, at(2090, 12, 31, 23, 59, 59)), 3600);
    sb_tz_free(tz);

    tz = load_ok("America/New_York");
    /* 2090: March 12 07:00Z and November 5 06:00Z. */
    ck_assert_int_eq(sb_tz_offset(tz, at(2090, 3, 12, 6, 59, 59)), -5 * H);
    ck_assert_int_eq(sb_tz_offset(tz, at(2090, 3, 12, 7, 0, 0)), -4 * H);
    ck_assert_int_eq(sb_tz_offset(tz, at(2090, 11, 5, 5, 59, 59)), -4 * H);
    ck_assert_int_eq(sb_tz_offset(tz, at(2090, 11, 5, 6, 0, 0)), -5 * H);
    sb_tz_free(tz);
}
END_TEST

START_TEST(local_to_utc_gap_and_ambiguous)
{
    unsetenv("TZDIR");
    sb_tz_t *tz = load_ok("Europe/Berlin");
    /* Ordinary times. */
    ck_assert_int_eq(sb_tz_local_to_utc(tz, at(2026, 1, 15, 9, 0, 0), SB_TZ_EARLIER),
                     at(2026, 1, 15, 8, 0, 0));
    ck_assert_int_eq(sb_tz_local_to_utc(tz, at(2026, 7, 15, 9, 0, 0), SB_TZ_LATER),
                     at(2026, 7, 15, 7, 0, 0));
    /* Gap 02:00-03:00 on 2026-03-29: shifted forward by one hour. */
    ck_assert_int_eq(sb_tz_local_to_utc(tz, at(2026, 3, 29, 1, 59, 59), SB_TZ_EARLIER),
                     at(2026, 3, 29, 0, 59, 59));
    ck_assert_int_eq(sb_tz_local_to_utc(tz, at(2026, 3, 29, 2, 0, 0), SB_TZ_EARLIER),
                     at(2026, 3, 29, 1, 0, 0));
    ck_assert_int_eq(sb_tz_local_to_utc(tz, at(2026, 3, 29, 2, 30, 0), SB_TZ_EARLIER),
                     at(2026, 3, 29, 1, 30, 0)); /* = 03:30 CEST */
    ck_assert_int_eq(sb_tz_local_to_utc(tz, at(2026, 3, 29, 2, 30, 0), SB_TZ_LATER),
                     at(2026, 3, 29, 1, 30, 0));
    ck_assert_int_eq(sb_tz_local_to_utc(tz, at(2026, 3, 29, 3, 0, 0), SB_TZ_EARLIER),
                     at(2026, 3, 29, 1, 0, 0));
    /* 02:00-03:00 on 2026-10-25 happens twice: CEST (00:xxZ) then CET (01:xxZ). */
    ck_assert_int_eq(sb_tz_local_to_utc(tz, at(2026, 10, 25, 2, 30, 0), SB_TZ_EARLIER),
                     at(2026, 10, 25, 0, 30, 0));
    ck_assert_int_eq(sb_tz_local_to_utc(tz, at(2026, 10, 25, 2, 30, 0), SB_TZ_LATER),
                     at(2026, 10, 25, 1, 30, 0));
    ck_assert_int_eq(sb_tz_local_to_utc(tz, at(2026, 10, 25, 3, 0, 0), SB_TZ_EARLIER),
                     at(2026, 10, 25, 2, 0, 0));
    /* Milliseconds are kept. */
    ck_assert_int_eq(sb_tz_local_to_utc(tz, at(2026, 10, 25, 1, 59, 59) + 999, SB_TZ_EARLIER),
                     at(2026, 10, 24, 23, 59, 59) + 999);
    /* Footer rule: the 2090 gap. */
    ck_assert_int_eq(sb_tz_local_to_utc(tz, at(2090, 3, 26, 2, 15, 0), SB_TZ_EARLIER),
                     at(2090, 3, 26, 1, 15, 0));
    sb_tz_free(tz);

    tz = load_ok("America/New_York");
    ck_assert_int_eq(sb_tz_local_to_utc(tz, at(2026, 3, 8, 2, 30, 0), SB_TZ_EARLIER),
                     at(2026, 3, 8, 7, 30, 0)); /* = 03:30 EDT */
    ck_assert_int_eq(sb_tz_local_to_utc(tz, at(2026, 11, 1, 1, 30, 0), SB_TZ_EARLIER),
                     at(2026, 11, 1, 5, 30, 0)); /* 01:30 EDT */
    ck_assert_int_eq(sb_tz_local_to_utc(tz, at(2026, 11, 1, 1, 30, 0), SB_TZ_LATER),
                     at(2026, 11, 1, 6, 30, 0)); /* 01:30 EST */
    sb_tz_free(tz);

    tz = load_ok("Asia/Shanghai");
    ck_assert_int_eq(sb_tz_local_to_utc(tz, at(2026, 11, 22, 23, 0, 0), SB_TZ_EARLIER),
                     at(2026, 11, 22, 15, 0, 0));
    sb_tz_free(tz);
}
END_TEST

START_TEST(utc_and_null)
{
    sb_tz_t *tz = load_ok("UTC");
    ck_assert_str_eq(sb_tz_name(tz), "UTC");
    ck_assert_int_eq(sb_tz_offset(tz, at(2026, 7, 1, 0, 0, 0)), 0);
    ck_assert_int_eq(sb_tz_local_to_utc(tz, 1234567, SB_TZ_EARLIER), 1234567);
    sb_tz_free(tz);
    tz = load_ok("");
    ck_assert_str_eq(sb_tz_name(tz), "UTC");
    sb_tz_free(tz);
    ck_assert_int_eq(sb_tz_offset(NULL, 42), 0);
    ck_assert_int_eq(sb_tz_offset(sb_tz_utc(), 42), 0);
    ck_assert_int_eq(sb_tz_local_to_utc(NULL, -1, SB_TZ_LATER), -1);
    sb_tz_free(NULL);
}
END_TEST

START_TEST(extreme_instants_do_not_overflow)
{
    unsetenv("TZDIR");
    sb_tz_t *tz = load_ok("Europe/Berlin");
    /* Before the first transition: local mean time, +0:53:28; east of UTC the earliest local
     * time maps below INT64_MIN and saturates. */
    ck_assert_int_eq(sb_tz_offset(tz, INT64_MIN), 3208);
    ck_assert_int_eq(sb_tz_local_to_utc(tz, INT64_MIN, SB_TZ_EARLIER), INT64_MIN);
    int32_t o = sb_tz_offset(tz, INT64_MAX);
    ck_assert(o == 3600 || o == 7200);
    ck_assert_int_eq(sb_tz_local_to_utc(tz, INT64_MAX, SB_TZ_EARLIER), INT64_MAX - o * 1000LL);
    sb_tz_free(tz);
    /* West of UTC the latest local time maps above INT64_MAX and saturates. */
    tz = load_ok("America/New_York");
    ck_assert_int_eq(sb_tz_local_to_utc(tz, INT64_MAX, SB_TZ_EARLIER), INT64_MAX);
    sb_tz_free(tz);
}
END_TEST

START_TEST(bad_names_are_rejected)
{
    static const char *const bad[] = {
        "../etc/passwd",
        "/etc/localtime",
        "Europe/../../etc/passwd",
        "Europe/Ber lin",
        "Europe/Berlin;rm",
        "Europe\\Berlin",
        "Europe/Berlin\n",
        "a..b",
        "..",
    };
    char err[256];
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        err[0] = '\0';
        ck_assert_ptr_null(sb_tz_load(bad[i], err, sizeof err));
        ck_assert_msg(strncmp(err, "invalid_tz_name", 15) == 0, "%s: %s", bad[i], err);
        ck_assert_ptr_null(sb_tz_get(bad[i]));
    }
    char longname[SB_TZ_NAME_MAX + 2];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    ck_assert_ptr_null(sb_tz_load(longname, err, sizeof err));
    ck_assert_ptr_null(sb_tz_load(NULL, err, sizeof err));

    unsetenv("TZDIR");
    ck_assert_ptr_null(sb_tz_load("Mars/Olympus_Mons", err, sizeof err));
    ck_assert_str_eq(err, "unknown_tz: Mars/Olympus_Mons");
    ck_assert_ptr_null(sb_tz_load("Europe", err, sizeof err)); /* a directory */
    ck_assert_str_eq(err, "unknown_tz: Europe");
    ck_assert_ptr_null(sb_tz_load("Europe/Berlin/x", err, sizeof err));
    ck_assert_str_eq(err, "unknown_tz: Europe/Berlin/x");
}
END_TEST

/* ---------------------------------------------------------------- hand-built TZif files */

static char dir[64];

static void put32(FILE *f, uint32_t v)
{
    unsigned char b[4] = {v >> 24, v >> 16, v >> 8, v};
    fwrite(b, 1, 4, f);
}

static void put64(FILE *f, int64_t v)
{
    put32(f, (uint32_t)((uint64_t)v >> 32));
    put32(f, (uint32_t)v);
}

static void header(FILE *f, char version, uint32_t leap, uint32_t nt, uint32_t ntypes)
{
    fwrite("TZif", 1, 4, f);
    fputc(version, f);
    for (int i = 0; i < 15; i++)
        fputc(0, f);
    put32(f, 0), put32(f, 0), put32(f, leap), put32(f, nt), put32(f, ntypes), put32(f, 4);
}

static void block(FILE *f, int tsize, uint32_t leap, size_t nt, const int64_t *tr,
                  const uint8_t *idx, size_t ntypes, const int32_t *offs)
{
    for (size_t i = 0; i < nt; i++)
        tsize == 8 ? put64(f, tr[i]) : put32(f, (uint32_t)tr[i]);
    if (nt) fwrite(idx, 1, nt, f);
    for (size_t i = 0; i < ntypes; i++) {
        put32(f, (uint32_t)offs[i]);
        fputc(0, f);
        fputc(0, f);
    }
    fwrite("ZZZ", 1, 4, f);
    for (uint32_t i = 0; i < leap; i++) { /* occurrence, correction */
        if (tsize == 8)
            put64(f, 0);
        else
            put32(f, 0);
        put32(f, 1);
    }
}

/* Writes dir/name as TZif: version 0 gives a v1-only file, otherwise v2 with the footer. */
static void write_tzif(const char *name, char version, uint32_t leap, size_t nt, const int64_t *tr,
                       const uint8_t *idx, size_t ntypes, const int32_t *offs, const char *footer)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    header(f, version, leap, (uint32_t)nt, (uint32_t)ntypes);
    block(f, 4, leap, nt, tr, idx, ntypes, offs);
    if (version) {
        header(f, version, leap, (uint32_t)nt, (uint32_t)ntypes);
        block(f, 8, leap, nt, tr, idx, ntypes, offs);
        fprintf(f, "\n%s\n", footer);
    }
    fclose(f);
}

static void write_raw(const char *name, const void *buf, size_t len)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    fwrite(buf, 1, len, f);
    fclose(f);
}

static const char *const made[] = {"V1",     "Quoted", "Cst",   "Us",    "South",
                                   "AllDst", "Neg",    "Empty", "Magic", "Trunc",
                                   "NoRule", "Leap",   "Idx",   "Order"};

static void make_dir(void)
{
    strcpy(dir, "/tmp/sb_test_tz.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    setenv("TZDIR", dir, 1);
}

static void remove_dir(void)
{
    char path[256];
    for (size_t i = 0; i < sizeof made / sizeof *made; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, made[i]);
        unlink(path);
    }
    rmdir(dir);
    unsetenv("TZDIR");
}

START_TEST(tzdir_v1_file)
{
    /* One transition at the epoch: +01 before, +02 after, no footer (v1). */
    int64_t tr[] = {0};
    uint8_t idx[] = {1};
    int32_t offs[] = {3600, 7200};
    write_tzif("V1", 0, 0, 1, tr, idx, 2, offs, "");
    sb_tz_t *tz = load_ok("V1");
    ck_assert_int_eq(sb_tz_offset(tz, -1), 3600);
    ck_assert_int_eq(sb_tz_offset(tz, 0), 7200);
    ck_assert_int_eq(sb_tz_offset(tz, at(2090, 1, 1, 0, 0, 0)), 7200);
    /* The jump skips local [01:00, 02:00) on 1970-01-01: 01:30 is read with +01 -> 00:30Z. */
    ck_assert_int_eq(sb_tz_local_to_utc(tz, at(1970, 1, 1, 1, 30, 0), SB_TZ_EARLIER),
                     at(1970, 1, 1, 0, 30, 0));
    sb_tz_free(tz);
}
END_TEST

START_TEST(tzdir_footers)
{
    int32_t z[] = {0};
    /* No transitions: the footer holds for every instant. */
    write_tzif("Quoted", '2', 0, 0, NULL, NULL, 1, (int32_t[]){28800}, "<+08>-8");
    write_tzif("Cst", '2', 0, 0, NULL, NULL, 1, (int32_t[]){28800}, "CST-8");
    write_tzif("Us", '2', 0, 0, NULL, NULL, 1, (int32_t[]){-18000}, "EST5EDT,M3.2.0,M11.1.0");
    write_tzif("South", '3', 0, 0, NULL, NULL, 1, (int32_t[]){36000},
               "AEST-10AEDT,M10.1.0,M4.1.0/3");
    write_tzif("AllDst", '3', 0, 0, NULL, NULL, 1, (int32_t[]){-18000}, "EST5EDT,0/0,J365/25");
    write_tzif("Neg", '3', 0, 0, NULL, NULL, 1, (int32_t[]){-7200},
               "<-02>2<-01>,M3.5.0/-1,M10.5.0/0");
    /* An empty footer: the last transition's type holds after it. */
    write_tzif("Empty", '2', 0, 1, (int64_t[]){1000}, (uint8_t[]){0}, 1, z, "");

    char err[256];
    ck_assert_ptr_null(sb_tz_load("Europe/Berlin", err, sizeof err)); /* TZDIR is honoured */
    ck_assert_str_eq(err, "unknown_tz: Europe/Berlin");

    sb_tz_t *tz = load_ok("Quoted");
    ck_assert_int_eq(sb_tz_offset(tz, at(1900, 1, 1, 0, 0, 0)), 8 * H);
    ck_assert_int_eq(sb_tz_offset(tz, at(2090, 7, 1, 0, 0, 0)), 8 * H);
    sb_tz_free(tz);
    tz = load_ok("Cst");
    ck_assert_int_eq(sb_tz_offset(tz, at(2026, 7, 1, 0, 0, 0)), 8 * H);
    sb_tz_free(tz);

    /* The US rule alone reproduces New York's 2026 changes. */
    tz = load_ok("Us");
    ck_assert_int_eq(sb_tz_offset(tz, at(2026, 3, 8, 6, 59, 59)), -5 * H);
    ck_assert_int_eq(sb_tz_offset(tz, at(2026, 3, 8, 7, 0, 0)), -4 * H);
    ck_assert_int_eq(sb_tz_offset(tz, at(2026, 11, 1, 5, 59, 59)), -4 * H);
    ck_assert_int_eq(sb_tz_offset(tz, at(2026, 11, 1, 6, 0, 0)), -5 * H);
    sb_tz_free(tz);

    /* Southern hemisphere: DST ends 2026-04-05 03:00 AEDT (= 04-04 16:00Z), starts
     * 2026-10-04 02:00 AEST (= 10-03 16:00Z); summer spans the new year. */
    tz = load_ok("South");
    ck_assert_int_eq(sb_tz_offset(tz, at(2026, 1, 1, 0, 0, 0)), 11 * H);
    ck_assert_int_eq(sb_tz_offset(tz, at(2026, 4, 4, 15, 59, 59)), 11 * H);
    ck_assert_int_eq(sb_tz_offset(tz, at(2026, 4, 4, 16, 0, 0)), 10 * H);
    ck_assert_int_eq(sb_tz_offset(tz, at(2026, 10, 3, 15, 59, 59)), 10 * H);
    ck_assert_int_eq(sb_tz_offset(tz, at(2026, 10, 3, 16, 0, 0)), 11 * H);
    ck_assert_int_eq(sb_tz_offset(tz, at(2026, 12, 31, 23, 0, 0)), 11 * H);
    sb_tz_free(tz);

    /* DST all year (RFC 8536 §3.3.1 example): always -04, also across new year. */
    tz = load_ok("AllDst");
    ck_assert_int_eq(sb_tz_offset(tz, at(2026, 1, 1, 4, 0, 0)), -4 * H);
    ck_assert_int_eq(sb_tz_offset(tz, at(2026, 1, 1, 5, 0, 0)), -4 * H);
    ck_assert_int_eq(sb_tz_offset(tz, at(2026, 7, 1, 0, 0, 0)), -4 * H);
    ck_assert_int_eq(sb_tz_offset(tz, at(2027, 1, 1, 4, 0, 0)), -4 * H);
    sb_tz_free(tz);

    /* Negative transition time (Nuuk style): -1:00 local std on the last Sunday of March is
     * 2026-03-28 23:00 -02 = 03-29 01:00Z; 00:00 -01 on 2026-10-25 = 10-25 01:00Z. */
    tz = load_ok("Neg");
    ck_assert_int_eq(sb_tz_offset(tz, at(2026, 3, 29, 0, 59, 59)), -2 * H);
    ck_assert_int_eq(sb_tz_offset(tz, at(2026, 3, 29, 1, 0, 0)), -1 * H);
    ck_assert_int_eq(sb_tz_offset(tz, at(2026, 10, 25, 0, 59, 59)), -1 * H);
    ck_assert_int_eq(sb_tz_offset(tz, at(2026, 10, 25, 1, 0, 0)), -2 * H);
    sb_tz_free(tz);

    tz = load_ok("Empty");
    ck_assert_int_eq(sb_tz_offset(tz, at(2090, 7, 1, 0, 0, 0)), 0);
    sb_tz_free(tz);
}
END_TEST

START_TEST(tzdir_malformed_files)
{
    char err[256];
    int32_t offs[] = {0, 3600};
    char magic[44] = "TZjf2";
    write_raw("Magic", magic, sizeof magic);
    write_raw("Trunc", "TZif2", 5);
    write_tzif("NoRule", '2', 0, 0, NULL, NULL, 1, offs, "CET-1CEST");
    write_tzif("Leap", '2', 1, 0, NULL, NULL, 1, offs, "UTC0");
    write_tzif("Idx", '2', 0, 1, (int64_t[]){0}, (uint8_t[]){2}, 2, offs, "");
    write_tzif("Order", '2', 0, 2, (int64_t[]){10, 10}, (uint8_t[]){0, 1}, 2, offs, "");

    ck_assert_ptr_null(sb_tz_load("Magic", err, sizeof err));
    ck_assert_str_eq(err, "invalid_tzif: header");
    ck_assert_ptr_null(sb_tz_load("Trunc", err, sizeof err));
    ck_assert_str_eq(err, "invalid_tzif: header");
    ck_assert_ptr_null(sb_tz_load("NoRule", err, sizeof err));
    ck_assert_str_eq(err, "invalid_tzif: footer rule \"CET-1CEST\"");
    ck_assert_ptr_null(sb_tz_load("Leap", err, sizeof err));
    ck_assert_str_eq(err, "invalid_tzif: leap seconds not supported");
    ck_assert_ptr_null(sb_tz_load("Idx", err, sizeof err));
    ck_assert_str_eq(err, "invalid_tzif: type index");
    ck_assert_ptr_null(sb_tz_load("Order", err, sizeof err));
    ck_assert_str_eq(err, "invalid_tzif: transitions not ascending");
}
END_TEST

/* ---------------------------------------------------------------- cache */

START_TEST(cache_returns_one_zone_per_name)
{
    unsetenv("TZDIR");
    const sb_tz_t *a = sb_tz_get("Europe/Berlin"), *b = sb_tz_get("Europe/Berlin");
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_eq(a, b);
    ck_assert_int_eq(sb_tz_offset(a, at(2026, 7, 1, 0, 0, 0)), 7200);
    ck_assert_ptr_ne(sb_tz_get("Asia/Shanghai"), a);
    ck_assert_ptr_eq(sb_tz_get("UTC"), sb_tz_utc());
    ck_assert_ptr_eq(sb_tz_get(""), sb_tz_utc());
    ck_assert_ptr_null(sb_tz_get("Mars/Olympus_Mons"));
    ck_assert_ptr_null(sb_tz_get("Mars/Olympus_Mons")); /* remembered failure */
    ck_assert_ptr_null(sb_tz_get(NULL));
    sb_tz_cache_free();
    a = sb_tz_get("Europe/Berlin"); /* usable again after a free */
    ck_assert_ptr_nonnull(a);
    ck_assert_int_eq(sb_tz_offset(a, at(2026, 1, 1, 0, 0, 0)), 3600);
    sb_tz_cache_free();
}
END_TEST

/* A system's whole tzdata tree fits in the cache: with its posix/ and right/ copies it has
 * under 2,000 names, and a producer naming each of them must not leave later customers in
 * UTC. 2,500 names (copies of one zone) are all cached and all right. */
START_TEST(cache_holds_a_whole_tzdata_tree)
{
    enum { N = 2500 };
    FILE *src = fopen("/usr/share/zoneinfo/Europe/Berlin", "rb");
    ck_assert_ptr_nonnull(src);
    static unsigned char buf[65536];
    size_t len = fread(buf, 1, sizeof buf, src);
    fclose(src);
    ck_assert_uint_gt(len, 0);
    char tzdir[] = "/tmp/sb_test_tzmany.XXXXXX", path[128], name[16];
    ck_assert_ptr_nonnull(mkdtemp(tzdir));
    for (int i = 0; i < N; i++) {
        snprintf(path, sizeof path, "%s/Z%04d", tzdir, i);
        FILE *f = fopen(path, "wb");
        ck_assert_ptr_nonnull(f);
        ck_assert_uint_eq(fwrite(buf, 1, len, f), len);
        fclose(f);
    }
    sb_tz_cache_free();
    setenv("TZDIR", tzdir, 1);
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "Z%04d", i);
        const sb_tz_t *tz = sb_tz_get(name);
        ck_assert_msg(tz != NULL, "zone %d of %d not cached", i, N);
        ck_assert_int_eq(sb_tz_offset(tz, at(2026, 7, 1, 0, 0, 0)), 7200);
    }
    ck_assert_ptr_eq(sb_tz_get("Z0000"), sb_tz_get("Z0000"));
    unsetenv("TZDIR");
    sb_tz_cache_free();
    for (int i = 0; i < N; i++) {
        snprintf(path, sizeof path, "%s/Z%04d", tzdir, i);
        unlink(path);
    }
    rmdir(tzdir);
}
END_TEST

static void *get_many(void *arg)
{
    static const char *const names[] = {"Europe/Berlin", "America/New_York", "Asia/Shanghai",
                                        "Australia/Sydney", "Nowhere/Land"};
    const sb_tz_t **seen = arg;
    for (int r = 0; r < 200; r++)
        for (size_t i = 0; i < 5; i++) {
            const sb_tz_t *tz = sb_tz_get(names[i]);
            if (r == 0) seen[i] = tz;
            if (tz != seen[i]) seen[5] = tz; /* mark a mismatch */
        }
    return NULL;
}

START_TEST(cache_is_thread_safe)
{
    unsetenv("TZDIR");
    enum { N = 8 };
    pthread_t th[N];
    const sb_tz_t *seen[N][6] = {{0}};
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, get_many, seen[i]), 0);
    for (int i = 0; i < N; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < N; i++) {
        for (int k = 0; k < 4; k++) {
            ck_assert_ptr_nonnull(seen[i][k]);
            ck_assert_ptr_eq(seen[i][k], seen[0][k]);
        }
        ck_assert_ptr_null(seen[i][4]);
        ck_assert_ptr_null(seen[i][5]);
    }
    ck_assert_int_eq(sb_tz_offset(seen[0][3], at(2026, 1, 1, 0, 0, 0)), 11 * H);
    sb_tz_cache_free();
}
END_TEST

int main(void)
{
    Suite *s = suite_create("tz");
    TCase *tc = tcase_create("real zones");
    tcase_add_test(tc, epoch_helper_matches_known_values);
    tcase_add_test(tc, berlin_dst_start_and_end_2026);
    tcase_add_test(tc, new_york_dst_start_and_end_2026);
    tcase_add_test(tc, shanghai_is_constant);
    tcase_add_test(tc, footer_rule_far_future);
    tcase_add_test(tc, local_to_utc_gap_and_ambiguous);
    tcase_add_test(tc, utc_and_null);
    tcase_add_test(tc, extreme_instants_do_not_overflow);
    tcase_add_test(tc, bad_names_are_rejected);
    suite_add_tcase(s, tc);
    tc = tcase_create("tzif files");
    tcase_add_checked_fixture(tc, make_dir, remove_dir); /* a fresh TZDIR per test */
    tcase_add_test(tc, tzdir_v1_file);
    tcase_add_test(tc, tzdir_footers);
    tcase_add_test(tc, tzdir_malformed_files);
    suite_add_tcase(s, tc);
    tc = tcase_create("cache");
    tcase_add_test(tc, cache_returns_one_zone_per_name);
    tcase_add_test(tc, cache_is_thread_safe);
    tcase_add_test(tc, cache_holds_a_whole_tzdata_tree);
    suite_add_tcase(s, tc);

    int rc = sb_unit_run(s);
    sb_tz_cache_free();
    return rc;
}
