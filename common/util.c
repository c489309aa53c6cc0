/* Pure helpers shared by every module; see util.h. */
#include "util.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int64_t sb_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t sb_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t sb_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

size_t sb_int_format(int64_t v, char *out)
{
    char tmp[SB_INT_TEXT_MAX];
    size_t n = 0, o = 0;
    /* through unsigned, so that INT64_MIN has a magnitude */
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) out[o++] = '-';
    while (n) out[o++] = tmp[--n];
    out[o] = '\0';
    return o;
}

bool sb_utf8_valid(const char *buf, size_t len)
{
    const unsigned char *s = (const unsigned char *)buf, *end = s + len;
    while (s < end) {
        unsigned c = *s;
        if (c < 0x80) {
            /* Messages are mostly ASCII: skip it eight bytes at a time (memcpy, as the
             * bytes need not be aligned) until a byte with the high bit set is near. */
            s++;
            while (end - s >= 8) {
                uint64_t w;
                memcpy(&w, s, 8);
                if (w & 0x8080808080808080ULL) break;
                s += 8;
            }
            continue;
        }
        size_t n;
        unsigned cp, min;
        if ((c & 0xE0) == 0xC0) {
            n = 1, cp = c & 0x1F, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            n = 2, cp = c & 0x0F, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            n = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return false;
        }
        if ((size_t)(end - s) <= n) return false;
        for (size_t i = 1; i <= n; i++) {
            if ((s[i] & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (s[i] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
        s += n + 1;
    }
    return true;
}

char *sb_utf8_repaired(const char *s)
{
    size_t n = strlen(s), o = 0;
    char *t = malloc(n + 1);
    if (!t) abort();
    for (size_t i = 0; i < n;) {
        unsigned char b = (unsigned char)s[i];
        size_t l = b < 0x80 ? 1 : b >= 0xC2 && b <= 0xDF ? 2 : b >= 0xE0 && b <= 0xEF ? 3
                 : b >= 0xF0 && b <= 0xF4 ? 4 : 0;
        if (l && i + l <= n && sb_utf8_valid(s + i, l)) {
            memcpy(t + o, s + i, l);
            o += l, i += l;
        } else {
            t[o++] = '?', i++;
        }
    }
    t[o] = '\0';
    return t;
}

bool sb_str_topic_safe(const char *s, size_t len)
{
    if (len == 0 || len > SB_STR_MAX) return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7F || c == '+' || c == '#' || c == '/' || c == '|') return false;
        /* the C1 controls U+0080..U+009F: C2 80..C2 9F (C2 is never a continuation byte) */
        if (c == 0xC2 && i + 1 < len && (unsigned char)s[i + 1] <= 0x9F) return false;
    }
    return sb_utf8_valid(s, len);
}

bool sb_text_no_controls(const char *s, size_t len, const char *allowed)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && (c == 0 || !strchr(allowed, c))) || c == 0x7F) return false;
        /* U+0080..U+009F are C2 80..C2 9F (C2 is never a continuation byte) */
        if (c == 0xC2 && i + 1 < len && (unsigned char)s[i + 1] <= 0x9F) return false;
    }
    return true;
}

int sb_duration_parse(const char *s, int64_t *ms)
{
    if (!s || !*s) return -1;
    const char *p = s;
    int64_t v = 0;
    if (*p < '0' || *p > '9') return -1;
    while (*p >= '0' && *p <= '9') {
        if (v > (INT64_MAX - 9) / 10) return -1;
        v = v * 10 + (*p++ - '0');
    }
    int64_t mult;
    if (*p == '\0') {
        if (v != 0) return -1; /* a bare number is ambiguous unless it is 0 */
        mult = 1;
    } else if (strcmp(p, "ms") == 0) {
        mult = 1;
    } else if (strcmp(p, "s") == 0) {
        mult = 1000;
    } else if (strcmp(p, "m") == 0) {
        mult = 60000;
    } else if (strcmp(p, "h") == 0) {
        mult = 3600000;
    } else if (strcmp(p, "d") == 0) {
        mult = 86400000;
    } else {
        return -1;
    }
    if (v > INT64_MAX / mult) return -1;
    *ms = v * mult;
    return 0;
}

void sb_duration_format(int64_t ms, char *out, size_t outlen)
{
    static const struct {
        int64_t mult;
        const char *unit;
    } units[] = {{86400000, "d"}, {3600000, "h"}, {60000, "m"}, {1000, "s"}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (ms != 0 && ms % units[i].mult == 0) {
            snprintf(out, outlen, "%lld%s", (long long)(ms / units[i].mult), units[i].unit);
            return;
        }
    }
    snprintf(out, outlen, ms == 0 ? "0s" : "%lldms", (long long)ms);
}

/* Howard Hinnant's civil-calendar algorithms (public domain description). */
int64_t sb_days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

void sb_civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const unsigned doe = (unsigned)(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static int digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9') return -1;
        v = v * 10 + (c - '0');
    }
    *p += n;
    *out = v;
    return 0;
}

int sb_time_parse_rfc3339(const char *s, int64_t *ms)
{
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const char *p = s;
    int Y, M, D, h, mi, sec, frac = 0;
    if (!s) return -1;
    if (digits(&p, 4, &Y) || *p++ != '-' || digits(&p, 2, &M) || *p++ != '-' ||
        digits(&p, 2, &D))
        return -1;
    if (*p != 'T' && *p != 't' && *p != ' ') return -1;
    p++;
    if (digits(&p, 2, &h) || *p++ != ':' || digits(&p, 2, &mi) || *p++ != ':' ||
        digits(&p, 2, &sec))
        return -1;
    if (M < 1 || M > 12 || D < 1 || D > mdays[M - 1] || h > 23 || mi > 59 || sec > 60) return -1;
    bool leap = (Y % 4 == 0 && Y % 100 != 0) || Y % 400 == 0;
    if (M == 2 && D == 29 && !leap) return -1;
    if (sec == 60) sec = 59; /* a leap second counts as the second before it */
    if (*p == '.') {
        p++;
        int n = 0;
        if (*p < '0' || *p > '9') return -1;
        while (*p >= '0' && *p <= '9') {
            if (n < 3) frac = frac * 10 + (*p - '0');
            n++, p++; /* RFC 3339 sets no limit on the digits; the text is bounded */
        }
        while (n < 3) frac *= 10, n++;
    }
    int off = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p++ == '-' ? -1 : 1, oh, om;
        if (digits(&p, 2, &oh) || *p++ != ':' || digits(&p, 2, &om) || oh > 23 || om > 59)
            return -1;
        off = sign * (oh * 60 + om);
    } else {
        return -1;
    }
    if (*p != '\0') return -1;
    int64_t days = sb_days_from_civil(Y, (unsigned)M, (unsigned)D);
    *ms = ((days * 86400 + h * 3600 + mi * 60 + sec) - (int64_t)off * 60) * 1000 + frac;
    return 0;
}

void sb_time_format(int64_t ms, char out[32])
{
    int64_t secs = ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
    int msr = (int)(ms - secs * 1000);
    int64_t days = secs >= 0 ? secs / 86400 : -((-secs + 86399) / 86400);
    int64_t sod = secs - days * 86400, y;
    unsigned m, d;
    sb_civil_from_days(days, &y, &m, &d);
    snprintf(out, 32, "%04lld-%02u-%02uT%02d:%02d:%02d.%03dZ", (long long)y, m, d,
             (int)(sod / 3600), (int)(sod / 60 % 60), (int)(sod % 60), msr);
}

void sb_problems_add(sb_problems_t *p, const char *fmt, ...)
{
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 8;
        char **m = realloc(p->msg, cap * sizeof *m);
        if (!m) abort();
        p->msg = m, p->cap = cap;
    }
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&p->msg[p->n], fmt, ap) < 0) abort();
    va_end(ap);
    p->n++;
}

void sb_problems_clear(sb_problems_t *p)
{
    for (size_t i = 0; i < p->n; i++) free(p->msg[i]);
    free(p->msg);
    p->msg = NULL, p->n = p->cap = 0;
}

int sb_fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

void sb_counts_add(sb_counts_t *cs, const char *field, int64_t n)
{
    size_t len = strnlen(field, SB_COUNT_NAME_MAX - 1);
    for (size_t i = 0; i < cs->n; i++)
        if (!strncmp(cs->names[i], field, len) && cs->names[i][len] == '\0') {
            cs->c[i].n += n;
            return;
        }
    if (cs->n == cs->cap) {
        cs->cap = cs->cap ? cs->cap * 2 : 16;
        cs->c = realloc(cs->c, cs->cap * sizeof *cs->c);
        cs->names = realloc(cs->names, cs->cap * sizeof *cs->names);
        if (!cs->c || !cs->names) abort();
        for (size_t i = 0; i < cs->n; i++) cs->c[i].field = cs->names[i]; /* names moved */
    }
    memcpy(cs->names[cs->n], field, len);
    cs->names[cs->n][len] = '\0';
    cs->c[cs->n] = (sb_count_t){cs->names[cs->n], n};
    cs->n++;
}

void sb_counts_free(sb_counts_t *cs)
{
    free(cs->c);
    free(cs->names);
    memset(cs, 0, sizeof *cs);
}
