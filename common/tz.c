/* IANA time zones read straight from TZif files (RFC 8536), so the process never has to set
 * TZ: transition table for the past, POSIX TZ footer rule for everything after it. */
#include "tz.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

#define TZIF_MAX_FILE (1024 * 1024)
#define UTOFF_MIN (-89999) /* RFC 8536 §3.2 */
#define UTOFF_MAX 93599

/* One date of a POSIX rule: 'J' Julian day 1..365 without Feb 29, 'D' zero-based day
 * 0..365 counting Feb 29, 'M' month.week.weekday; plus the local time of day in seconds. */
typedef struct rule_date {
    char kind;
    int a, b, c;
    int32_t secs;
} rule_date_t;

typedef struct posix_rule {
    int32_t std_off, dst_off; /* seconds east of UTC */
    bool has_dst;
    rule_date_t start, end;
} posix_rule_t;

struct sb_tz {
    char *name;
    int64_t *trans; /* transition instants, UTC seconds, ascending */
    uint8_t *idx;   /* time type after each transition */
    size_t n_trans;
    int32_t *off; /* UT offset of each time type */
    size_t n_types;
    bool has_rule; /* footer rule applies from the last transition on */
    posix_rule_t rule;
};

static int32_t utc_off0 = 0;
static sb_tz_t utc_zone = {(char *)"UTC", NULL, NULL, 0, &utc_off0, 1, false, {0}};

const sb_tz_t *sb_tz_utc(void)
{
    return &utc_zone;
}

const char *sb_tz_name(const sb_tz_t *tz)
{
    return tz ? tz->name : utc_zone.name;
}

void sb_tz_free(sb_tz_t *tz)
{
    if (!tz || tz == &utc_zone) return;
    free(tz->name);
    free(tz->trans);
    free(tz->idx);
    free(tz->off);
    free(tz);
}

/* ---------------------------------------------------------------- calendar helpers */

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static bool is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int month_days(int64_t y, int m)
{
    static const int d[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : d[m - 1];
}

/* 0 = Sunday; 1970-01-01 was a Thursday. */
static int weekday(int64_t days)
{
    return (int)(((days % 7) + 11) % 7);
}

static int64_t year_of(int64_t t)
{
    int64_t y;
    unsigned m, d;
    sb_civil_from_days(floor_div(t, 86400), &y, &m, &d);
    return y;
}

/* ---------------------------------------------------------------- POSIX TZ rule */

static int parse_abbr(const char **p)
{
    const char *s = *p, *b;
    if (*s == '<') {
        b = ++s;
        while ((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
               *s == '+' || *s == '-')
            s++;
        if (*s != '>' || s == b) return -1;
        s++;
    } else {
        b = s;
        while ((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z'))
            s++;
        if (s - b < 3) return -1;
    }
    *p = s;
    return 0;
}

static int parse_num(const char **p, int maxdigits, int max, int *out)
{
    const char *s = *p;
    int v = 0, n = 0;
    while (*s >= '0' && *s <= '9' && n < maxdigits)
        v = v * 10 + (*s++ - '0'), n++;
    if (n == 0 || v > max) return -1;
    *p = s;
    *out = v;
    return 0;
}

/* [+-]hh[:mm[:ss]] with hh <= maxh; the value in seconds, sign applied. */
static int parse_hms(const char **p, int maxh, int32_t *out)
{
    const char *s = *p;
    int sign = 1, h, m = 0, sec = 0;
    if (*s == '+' || *s == '-') sign = *s++ == '-' ? -1 : 1;
    if (parse_num(&s, 3, maxh, &h) < 0) return -1;
    if (*s == ':') {
        s++;
        if (parse_num(&s, 2, 59, &m) < 0) return -1;
        if (*s == ':') {
            s++;
            if (parse_num(&s, 2, 59, &sec) < 0) return -1;
        }
    }
    *p = s;
    *out = sign * (h * 3600 + m * 60 + sec);
    return 0;
}

static int parse_date(const char **p, rule_date_t *d)
{
    const char *s = *p;
    memset(d, 0, sizeof *d);
    if (*s == 'J') {
        s++;
        d->kind = 'J';
        if (parse_num(&s, 3, 365, &d->a) < 0 || d->a < 1) return -1;
    } else if (*s == 'M') {
        s++;
        d->kind = 'M';
        if (parse_num(&s, 2, 12, &d->a) < 0 || d->a < 1 || *s++ != '.') return -1;
        if (parse_num(&s, 1, 5, &d->b) < 0 || d->b < 1 || *s++ != '.') return -1;
        if (parse_num(&s, 1, 6, &d->c) < 0) return -1;
    } else {
        d->kind = 'D';
        if (parse_num(&s, 3, 365, &d->a) < 0) return -1;
    }
    d->secs = 2 * 3600;
    if (*s == '/') {
        s++;
        if (parse_hms(&s, 167, &d->secs) < 0) return -1; /* RFC 8536 extension: -167..167 h */
    }
    *p = s;
    return 0;
}

/* "std offset [dst [offset] ,start[/time],end[/time]]"; a DST name without a rule is
 * rejected (zic always writes the rule). */
static int parse_posix(const char *s, posix_rule_t *r)
{
    int32_t v;
    memset(r, 0, sizeof *r);
    if (parse_abbr(&s) < 0 || parse_hms(&s, 24, &v) < 0) return -1;
    r->std_off = -v; /* POSIX offsets count hours west */
    if (*s == '\0') return 0;
    if (parse_abbr(&s) < 0) return -1;
    r->has_dst = true;
    r->dst_off = r->std_off + 3600;
    if (*s != ',') {
        if (parse_hms(&s, 24, &v) < 0) return -1;
        r->dst_off = -v;
    }
    if (*s++ != ',' || parse_date(&s, &r->start) < 0) return -1;
    if (*s++ != ',' || parse_date(&s, &r->end) < 0) return -1;
    if (*s != '\0') return -1;
    if (r->std_off < UTOFF_MIN || r->std_off > UTOFF_MAX || r->dst_off < UTOFF_MIN ||
        r->dst_off > UTOFF_MAX)
        return -1;
    return 0;
}

/* Days since the epoch of a rule date in year y. */
static int64_t rule_day(const rule_date_t *d, int64_t y)
{
    int64_t jan1 = sb_days_from_civil(y, 1, 1);
    if (d->kind == 'J') return jan1 + d->a - 1 + (is_leap(y) && d->a >= 60);
    if (d->kind == 'D') return jan1 + d->a;
    int64_t first = sb_days_from_civil(y, (unsigned)d->a, 1);
    int day = (d->c - weekday(first) + 7) % 7 + (d->b - 1) * 7;
    while (day >= month_days(y, d->a))
        day -= 7;
    return first + day;
}

typedef struct rule_event {
    int64_t at;  /* UTC seconds */
    int32_t off; /* offset from then on */
} rule_event_t;

/* The rule's transitions in years y0 .. y0+ny-1, ascending; equal instants keep year order so
 * the later year's event wins (year-round DST "0/0,J365/25" stays in DST). */
static size_t rule_events(const posix_rule_t *r, int64_t y0, int ny, rule_event_t *ev)
{
    size_t n = 0;
    for (int64_t y = y0; y < y0 + ny; y++) {
        ev[n].at = rule_day(&r->start, y) * 86400 + r->start.secs - r->std_off;
        ev[n++].off = r->dst_off;
        ev[n].at = rule_day(&r->end, y) * 86400 + r->end.secs - r->dst_off;
        ev[n++].off = r->std_off;
    }
    for (size_t i = 1; i < n; i++) { /* stable insertion sort */
        rule_event_t e = ev[i];
        size_t j = i;
        while (j > 0 && ev[j - 1].at > e.at)
            ev[j] = ev[j - 1], j--;
        ev[j] = e;
    }
    return n;
}

static int32_t rule_offset(const posix_rule_t *r, int64_t t)
{
    if (!r->has_dst) return r->std_off;
    rule_event_t ev[6];
    size_t n = rule_events(r, year_of(t) - 1, 3, ev);
    int32_t off = ev[0].off == r->dst_off ? r->std_off : r->dst_off;
    for (size_t i = 0; i < n && ev[i].at <= t; i++)
        off = ev[i].off;
    return off;
}

static int64_t rule_next(const posix_rule_t *r, int64_t t)
{
    if (!r->has_dst) return INT64_MAX;
    rule_event_t ev[8];
    size_t n = rule_events(r, year_of(t) - 1, 4, ev);
    for (size_t i = 0; i < n; i++)
        if (ev[i].at > t) return ev[i].at;
    return INT64_MAX;
}

/* ---------------------------------------------------------------- lookups (seconds) */

/* Index of the last transition at or before t, or -1. */
static long last_at_or_before(const sb_tz_t *tz, int64_t t)
{
    size_t lo = 0, hi = tz->n_trans; /* first index with trans > t */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (tz->trans[mid] <= t)
            lo = mid + 1;
        else
            hi = mid;
    }
    return (long)lo - 1;
}

static int32_t offset_at(const sb_tz_t *tz, int64_t t)
{
    if (tz->n_trans == 0) return tz->has_rule ? rule_offset(&tz->rule, t) : tz->off[0];
    long i = last_at_or_before(tz, t);
    if (i < 0) return tz->off[0];
    if ((size_t)i == tz->n_trans - 1 && tz->has_rule) return rule_offset(&tz->rule, t);
    return tz->off[tz->idx[i]];
}

/* The first transition strictly after t, or INT64_MAX. */
static int64_t next_change(const sb_tz_t *tz, int64_t t)
{
    if (tz->n_trans > 0 && t < tz->trans[tz->n_trans - 1])
        return tz->trans[last_at_or_before(tz, t) + 1];
    return tz->has_rule ? rule_next(&tz->rule, t) : INT64_MAX;
}

int32_t sb_tz_offset(const sb_tz_t *tz, int64_t utc_ms)
{
    return offset_at(tz ? tz : &utc_zone, floor_div(utc_ms, 1000));
}

static int64_t sat_add(int64_t a, int64_t b)
{
    if (b > 0 && a > INT64_MAX - b) return INT64_MAX;
    if (b < 0 && a < INT64_MIN - b) return INT64_MIN;
    return a + b;
}

#define LOCAL_SCAN 32
#define LOCAL_WINDOW (2 * 86400) /* wider than any UT offset */

int64_t sb_tz_local_to_utc(const sb_tz_t *tz, int64_t local_ms, int prefer)
{
    if (!tz) tz = &utc_zone;
    int64_t L = floor_div(local_ms, 1000), rem = local_ms % 1000;
    if (rem < 0) rem += 1000;
    int64_t lo = L - LOCAL_WINDOW, hi = L + LOCAL_WINDOW; /* |L| < 2^63 / 1000: no overflow */

    /* Every offset in force near L, and the transitions between them. */
    int32_t offs[LOCAL_SCAN + 1];
    struct {
        int64_t at;
        int32_t before, after;
    } tr[LOCAL_SCAN];
    size_t n_offs = 0, n_tr = 0;
    int64_t t = lo;
    int32_t cur = offset_at(tz, t);
    offs[n_offs++] = cur;
    while (n_tr < LOCAL_SCAN) {
        int64_t nt = next_change(tz, t);
        if (nt > hi) break;
        int32_t o = offset_at(tz, nt);
        tr[n_tr].at = nt, tr[n_tr].before = cur, tr[n_tr++].after = o;
        bool seen = false;
        for (size_t i = 0; i < n_offs; i++)
            seen |= offs[i] == o;
        if (!seen) offs[n_offs++] = o;
        cur = o;
        t = nt;
    }

    bool found = false;
    int64_t best = 0;
    for (size_t i = 0; i < n_offs; i++) {
        int64_t c = L - offs[i];
        if (offset_at(tz, c) != offs[i]) continue;
        if (!found || (prefer == SB_TZ_LATER ? c > best : c < best)) best = c;
        found = true;
    }
    if (!found) {
        /* In a gap: read L with the offset in force before the jump. */
        best = L - offs[0];
        for (size_t i = 0; i < n_tr; i++) {
            if (tr[i].after > tr[i].before && L >= tr[i].at + tr[i].before &&
                L < tr[i].at + tr[i].after) {
                best = L - tr[i].before;
                break;
            }
        }
    }
    if (best > (INT64_MAX - 999) / 1000) return INT64_MAX;
    if (best < INT64_MIN / 1000 + 1) return INT64_MIN;
    return sat_add(best * 1000, rem);
}

/* ---------------------------------------------------------------- TZif */

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const unsigned char *p)
{
    return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

typedef struct tzif_hdr {
    uint64_t isut, isstd, leap, time, type, chars;
} tzif_hdr_t;

static int read_hdr(const unsigned char *b, size_t len, size_t at, tzif_hdr_t *h, int *version)
{
    if (len < at || len - at < 44 || memcmp(b + at, "TZif", 4) != 0) return -1;
    *version = b[at + 4];
    h->isut = be32(b + at + 20), h->isstd = be32(b + at + 24), h->leap = be32(b + at + 28);
    h->time = be32(b + at + 32), h->type = be32(b + at + 36), h->chars = be32(b + at + 40);
    return 0;
}

static uint64_t block_size(const tzif_hdr_t *h, int tsize)
{
    return h->time * (uint64_t)tsize + h->time + h->type * 6 + h->chars +
           h->leap * (uint64_t)(tsize + 4) + h->isstd + h->isut;
}

static int parse_tzif(sb_tz_t *tz, const unsigned char *b, size_t len, char *err, size_t errlen)
{
    tzif_hdr_t h;
    int version, tsize = 4;
    size_t at = 0;
    if (read_hdr(b, len, 0, &h, &version) < 0) return sb_fail(err, errlen, "invalid_tzif: header");
    if (version != 0) { /* v2+: skip the 32-bit block, use the 64-bit one */
        at = 44 + block_size(&h, 4);
        if (block_size(&h, 4) > len || read_hdr(b, len, at, &h, &version) < 0)
            return sb_fail(err, errlen, "invalid_tzif: second header");
        tsize = 8;
    }
    at += 44;
    if (h.type == 0 || h.type > 256 || h.chars == 0 || (h.isut && h.isut != h.type) ||
        (h.isstd && h.isstd != h.type) || h.time > 100000)
        return sb_fail(err, errlen, "invalid_tzif: counts");
    if (h.leap != 0) return sb_fail(err, errlen, "invalid_tzif: leap seconds not supported");
    if (block_size(&h, tsize) > len - at) return sb_fail(err, errlen, "invalid_tzif: truncated");

    const unsigned char *p = b + at;
    tz->n_trans = h.time;
    tz->n_types = h.type;
    tz->trans = malloc((h.time ? h.time : 1) * sizeof *tz->trans);
    tz->idx = malloc(h.time ? h.time : 1);
    tz->off = malloc(h.type * sizeof *tz->off);
    if (!tz->trans || !tz->idx || !tz->off) return sb_fail(err, errlen, "out_of_memory");
    for (size_t i = 0; i < h.time; i++, p += tsize) {
        tz->trans[i] = tsize == 8 ? be64(p) : (int64_t)(int32_t)be32(p);
        if (i > 0 && tz->trans[i] <= tz->trans[i - 1])
            return sb_fail(err, errlen, "invalid_tzif: transitions not ascending");
    }
    for (size_t i = 0; i < h.time; i++, p++) {
        tz->idx[i] = *p;
        if (*p >= h.type) return sb_fail(err, errlen, "invalid_tzif: type index");
    }
    for (size_t i = 0; i < h.type; i++, p += 6) {
        int32_t o = (int32_t)be32(p);
        if (o < UTOFF_MIN || o > UTOFF_MAX || p[5] >= h.chars)
            return sb_fail(err, errlen, "invalid_tzif: time type");
        tz->off[i] = o;
    }
    at += block_size(&h, tsize);

    /* Footer (v2+): "\n<POSIX TZ>\n"; empty means no rule. */
    if (tsize == 8) {
        if (at >= len || b[at] != '\n') return sb_fail(err, errlen, "invalid_tzif: footer");
        const unsigned char *s = b + at + 1, *nl = memchr(s, '\n', len - at - 1);
        if (!nl || nl - s > 127) return sb_fail(err, errlen, "invalid_tzif: footer");
        if (nl > s) {
            char rule[128];
            memcpy(rule, s, (size_t)(nl - s));
            rule[nl - s] = '\0';
            if (parse_posix(rule, &tz->rule) < 0)
                return sb_fail(err, errlen, "invalid_tzif: footer rule \"%s\"", rule);
            tz->has_rule = true;
        }
    }
    return 0;
}

/* ---------------------------------------------------------------- loading */

static bool name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n > SB_TZ_NAME_MAX || name[0] == '/' || strstr(name, "..")) return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '/' || c == '_' || c == '+' || c == '-'))
            return false;
    }
    return true;
}

static bool is_utc_name(const char *name)
{
    return name[0] == '\0' || strcmp(name, "UTC") == 0;
}

sb_tz_t *sb_tz_load(const char *name, char *err, size_t errlen)
{
    sb_tz_t *tz = NULL;
    unsigned char *buf = NULL;
    int fd = -1;

    if (!name || !name_ok(name)) {
        sb_fail(err, errlen, "invalid_tz_name: %.64s", name ? name : "(null)");
        return NULL;
    }
    tz = calloc(1, sizeof *tz);
    if (!tz || !(tz->name = strdup(is_utc_name(name) ? "UTC" : name))) {
        sb_fail(err, errlen, "out_of_memory");
        goto fail;
    }
    if (is_utc_name(name)) {
        tz->n_types = 1;
        if (!(tz->off = calloc(1, sizeof *tz->off))) {
            sb_fail(err, errlen, "out_of_memory");
            goto fail;
        }
        return tz;
    }

    const char *dir = getenv("TZDIR");
    if (!dir || !*dir) dir = "/usr/share/zoneinfo";
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path) {
        sb_fail(err, errlen, "invalid_tz_name: path too long");
        goto fail;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            sb_fail(err, errlen, "unknown_tz: %s", name);
        else
            sb_fail(err, errlen, "tz_read: %s: %s", path, strerror(errno));
        goto fail;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > TZIF_MAX_FILE) {
        sb_fail(err, errlen, "unknown_tz: %s", name);
        goto fail;
    }
    size_t len = (size_t)st.st_size, got = 0;
    if (!(buf = malloc(len ? len : 1))) {
        sb_fail(err, errlen, "out_of_memory");
        goto fail;
    }
    while (got < len) {
        ssize_t r = read(fd, buf + got, len - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            sb_fail(err, errlen, "tz_read: %s: %s", path, r < 0 ? strerror(errno) : "short read");
            goto fail;
        }
        got += (size_t)r;
    }
    if (parse_tzif(tz, buf, len, err, errlen) < 0) goto fail;
    free(buf);
    close(fd);
    return tz;

fail:
    free(buf);
    if (fd >= 0) close(fd);
    sb_tz_free(tz);
    return NULL;
}

/* ---------------------------------------------------------------- cache */

#define CACHE_SLOTS (2 * SB_TZ_CACHE_MAX) /* open addressing, load <= 1/2 */
#define NEG_MAX 256

static pthread_mutex_t cache_mu = PTHREAD_MUTEX_INITIALIZER;
static sb_tz_t *cache[CACHE_SLOTS];
static size_t cache_n;
static char *neg[NEG_MAX]; /* names that failed to load, replaced round-robin */
static size_t neg_next;

static size_t hash_name(const char *s)
{
    uint32_t h = 2166136261u;
    while (*s)
        h = (h ^ (unsigned char)*s++) * 16777619u;
    return h & (CACHE_SLOTS - 1);
}

const sb_tz_t *sb_tz_get(const char *name)
{
    if (!name) return NULL;
    if (is_utc_name(name)) return &utc_zone;
    if (!name_ok(name)) return NULL;

    sb_tz_t *tz = NULL;
    pthread_mutex_lock(&cache_mu);
    size_t i = hash_name(name);
    while (cache[i]) {
        if (strcmp(cache[i]->name, name) == 0) {
            tz = cache[i];
            goto out;
        }
        i = (i + 1) & (CACHE_SLOTS - 1);
    }
    for (size_t k = 0; k < NEG_MAX; k++)
        if (neg[k] && strcmp(neg[k], name) == 0) goto out;
    if (cache_n >= SB_TZ_CACHE_MAX) goto out;
    char err[128] = "";
    tz = sb_tz_load(name, err, sizeof err);
    if (tz) {
        cache[i] = tz; /* i is the empty slot the probe ended on */
        cache_n++;
    } else if (strncmp(err, "unknown_tz", 10) == 0 || strncmp(err, "invalid_tzif", 12) == 0) {
        char *copy = strdup(name); /* transient failures (I/O, memory) are not remembered */
        if (copy) {
            free(neg[neg_next]);
            neg[neg_next] = copy;
            neg_next = (neg_next + 1) % NEG_MAX;
        }
    }
out:
    pthread_mutex_unlock(&cache_mu);
    return tz;
}

void sb_tz_cache_free(void)
{
    pthread_mutex_lock(&cache_mu);
    for (size_t i = 0; i < CACHE_SLOTS; i++) {
        sb_tz_free(cache[i]);
        cache[i] = NULL;
    }
    for (size_t k = 0; k < NEG_MAX; k++) {
        free(neg[k]);
        neg[k] = NULL;
    }
    cache_n = 0;
    neg_next = 0;
    pthread_mutex_unlock(&cache_mu);
}
