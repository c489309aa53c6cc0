/* The fast JSON reader; see jscan.h. Anything unusual returns -1 rather than being handled:
 * the caller's jansson path is always correct, this one only has to be fast on the common
 * case and never accept what jansson would read differently. */
#include "jscan.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "jsonptr.h"

#define DEPTH_MAX 32     /* deeper documents go to jansson (whose limit is 2048) */
#define INT_DIGITS_MAX 18 /* always fits int64_t; longer integers go to jansson */
#define REAL_TEXT_MAX 64

typedef struct {
    const char *p, *end;
    sb_jtok_t *t;
    int n, cap;
} scan_t;

static void skip_ws(scan_t *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t'))
        s->p++;
}

static int new_tok(scan_t *s, sb_jv_type_t type)
{
    if (s->n >= s->cap) return -1;
    sb_jtok_t *t = &s->t[s->n];
    memset(t, 0, sizeof *t);
    t->v.type = type;
    t->v.k = s->n;
    t->end = s->n + 1; /* a container sets its own once its contents are read */
    return s->n++;
}

/* A string without escapes or control characters (s->p at its opening quote). */
static int string(scan_t *s)
{
    const char *a = s->p + 1, *q = a;
    while (q < s->end && *q != '"') {
        if (*q == '\\' || (unsigned char)*q < 0x20) return -1;
        q++;
    }
    if (q >= s->end) return -1;
    int k = new_tok(s, SB_JV_STR);
    if (k < 0) return -1;
    s->t[k].v.s = a;
    s->t[k].v.n = (size_t)(q - a);
    s->p = q + 1;
    return 0;
}

static bool digit(const scan_t *s, const char *q) { return q < s->end && *q >= '0' && *q <= '9'; }

/* A number in JSON's grammar: an integer of at most INT_DIGITS_MAX digits, or a real that
 * strtod reads to a finite value (what jansson does with both). */
static int number(scan_t *s)
{
    const char *a = s->p, *q = a;
    bool neg = q < s->end && *q == '-', integer = true;
    if (neg) q++;
    if (!digit(s, q)) return -1;
    if (*q == '0')
        q++;
    else
        while (digit(s, q)) q++;
    const char *int_end = q;
    if (q < s->end && *q == '.') {
        q++;
        if (!digit(s, q)) return -1;
        while (digit(s, q)) q++;
        integer = false;
    }
    if (q < s->end && (*q == 'e' || *q == 'E')) {
        q++;
        if (q < s->end && (*q == '+' || *q == '-')) q++;
        if (!digit(s, q)) return -1;
        while (digit(s, q)) q++;
        integer = false;
    }
    int k = new_tok(s, integer ? SB_JV_INT : SB_JV_REAL);
    if (k < 0) return -1;
    sb_jval_t *v = &s->t[k].v;
    if (integer) {
        const char *d = a + neg;
        if (int_end - d > INT_DIGITS_MAX) return -1;
        int64_t x = 0;
        for (; d < int_end; d++) x = x * 10 + (*d - '0');
        v->i = neg ? -x : x;
        v->d = (double)v->i;
    } else {
        char text[REAL_TEXT_MAX + 1];
        size_t n = (size_t)(q - a);
        if (n > REAL_TEXT_MAX) return -1;
        memcpy(text, a, n);
        text[n] = '\0';
        v->d = strtod(text, NULL); /* '.' as in the C locale: the services never set one */
        if (!isfinite(v->d)) return -1; /* jansson: "real number overflow" */
    }
    s->p = q;
    return 0;
}

static int literal(scan_t *s, const char *word, size_t n, sb_jv_type_t type)
{
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0) return -1;
    if (new_tok(s, type) < 0) return -1;
    s->p += n;
    return 0;
}

/* The value of the member key (n bytes) among the members of the object at token o that
 * come before token `before`, or -1. */
static int member(const sb_jtok_t *t, int o, int before, const char *key, size_t n)
{
    for (int j = o + 1; j < before; j = t[j + 1].end)
        if (t[j].v.n == n && memcmp(t[j].v.s, key, n) == 0) return j + 1;
    return -1;
}

static int value(scan_t *s, int depth);

static int container(scan_t *s, int depth, bool object)
{
    if (depth >= DEPTH_MAX) return -1;
    int k = new_tok(s, object ? SB_JV_OBJ : SB_JV_ARR);
    if (k < 0) return -1;
    char close = object ? '}' : ']';
    size_t n = 0;
    s->p++;
    skip_ws(s);
    if (s->p < s->end && *s->p == close) {
        s->p++;
    } else {
        for (;;) {
            if (object) {
                if (s->p >= s->end || *s->p != '"') return -1;
                int key = s->n;
                if (string(s) != 0 || member(s->t, k, key, s->t[key].v.s, s->t[key].v.n) >= 0)
                    return -1; /* a duplicate key */
                skip_ws(s);
                if (s->p >= s->end || *s->p != ':') return -1;
                s->p++;
                skip_ws(s);
            }
            if (value(s, depth + 1) != 0) return -1;
            n++;
            skip_ws(s);
            if (s->p >= s->end) return -1;
            if (*s->p == close) {
                s->p++;
                break;
            }
            if (*s->p != ',') return -1;
            s->p++;
            skip_ws(s);
        }
    }
    s->t[k].v.n = n;
    s->t[k].end = s->n;
    return 0;
}

static int value(scan_t *s, int depth)
{
    if (s->p >= s->end) return -1;
    switch (*s->p) {
    case '{': return container(s, depth, true);
    case '[': return container(s, depth, false);
    case '"': return string(s);
    case 't': return literal(s, "true", 4, SB_JV_TRUE);
    case 'f': return literal(s, "false", 5, SB_JV_FALSE);
    case 'n': return literal(s, "null", 4, SB_JV_NULL);
    default: return number(s);
    }
}

int sb_jscan(const char *buf, size_t len, sb_jtok_t *t, int cap)
{
    scan_t s = {buf, buf + len, t, 0, cap};
    skip_ws(&s);
    if (s.p >= s.end || *s.p != '{' || container(&s, 0, true) != 0) return -1;
    skip_ws(&s);
    return s.p == s.end ? s.n : -1;
}

int sb_jscan_find(const sb_jtok_t *t, int n, const char *ptr)
{
    if (n <= 0) return -1;
    char small[128];
    size_t plen = strlen(ptr);
    char *tok = plen < sizeof small ? small : malloc(plen + 1);
    if (!tok) abort();
    int cur = 0;
    const char *p = ptr;
    while (cur >= 0 && *p == '/') {
        size_t tn, idx;
        p = sb_jsonptr_next(p, tok, &tn);
        const sb_jtok_t *c = &t[cur];
        int next = -1;
        if (c->v.type == SB_JV_OBJ) {
            next = member(t, cur, c->end, tok, tn);
        } else if (c->v.type == SB_JV_ARR && sb_jsonptr_index(tok, &idx) == 0 && idx < c->v.n) {
            next = cur + 1;
            while (idx--) next = t[next].end;
        }
        cur = next;
    }
    if (tok != small) free(tok);
    return cur;
}

sb_jval_t sb_jval_of(const json_t *v)
{
    sb_jval_t o = {.j = (json_t *)v};
    switch (v ? json_typeof(v) : JSON_NULL) {
    case JSON_OBJECT: o.type = SB_JV_OBJ, o.n = json_object_size(v); break;
    case JSON_ARRAY: o.type = SB_JV_ARR, o.n = json_array_size(v); break;
    case JSON_STRING:
        o.type = SB_JV_STR, o.s = json_string_value(v), o.n = json_string_length(v);
        break;
    case JSON_INTEGER:
        o.type = SB_JV_INT, o.i = (int64_t)json_integer_value(v), o.d = (double)o.i;
        break;
    case JSON_REAL: o.type = SB_JV_REAL, o.d = json_real_value(v); break;
    case JSON_TRUE: o.type = SB_JV_TRUE; break;
    case JSON_FALSE: o.type = SB_JV_FALSE; break;
    case JSON_NULL: o.type = v ? SB_JV_NULL : SB_JV_NONE; break;
    }
    return o;
}

sb_jval_t sb_jdoc_get(const sb_jdoc_t *d, const char *ptr)
{
    if (!d->doc) {
        int k = sb_jscan_find(d->t, d->n, ptr);
        return k >= 0 ? d->t[k].v : (sb_jval_t){0};
    }
    json_t *v = NULL;
    sb_jsonptr_resolve(d->doc, ptr, &v, NULL, 0);
    return sb_jval_of(v);
}

sb_jval_t sb_jdoc_key(const sb_jdoc_t *d, const sb_jval_t *obj, const char *key)
{
    if (!d->doc) {
        int o = obj ? obj->k : 0;
        const sb_jtok_t *c = &d->t[o];
        int k = c->v.type == SB_JV_OBJ ? member(d->t, o, c->end, key, strlen(key)) : -1;
        return k >= 0 ? d->t[k].v : (sb_jval_t){0};
    }
    json_t *o = obj ? obj->j : d->doc;
    return sb_jval_of(json_object_get(o, key));
}
