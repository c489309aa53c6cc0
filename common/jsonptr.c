/* RFC 6901 JSON Pointer resolution on jansson documents; see jsonptr.h. */
#include "jsonptr.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

bool sb_jsonptr_valid(const char *ptr)
{
    if (!ptr) return false;
    if (*ptr == '\0') return true;
    if (*ptr != '/') return false;
    for (const char *p = ptr; *p; p++) {
        if (*p == '~' && p[1] != '0' && p[1] != '1') return false;
    }
    return true;
}

int sb_jsonptr_index(const char *tok, size_t *idx)
{
    if (tok[0] == '\0' || (tok[0] == '0' && tok[1] != '\0')) return -1;
    size_t v = 0;
    for (const char *p = tok; *p; p++) {
        if (*p < '0' || *p > '9') return -1;
        if (v > (SIZE_MAX - 9) / 10) return -1;
        v = v * 10 + (size_t)(*p - '0');
    }
    *idx = v;
    return 0;
}

const char *sb_jsonptr_next(const char *p, char *tok, size_t *len)
{
    size_t n = 0;
    for (p++; *p && *p != '/';) {
        if (*p == '~') {
            tok[n++] = p[1] == '0' ? '~' : '/';
            p += 2;
        } else {
            tok[n++] = *p++;
        }
    }
    tok[n] = '\0';
    *len = n;
    return p;
}

int sb_jsonptr_resolve(json_t *doc, const char *ptr, json_t **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!sb_jsonptr_valid(ptr)) {
        if (!ptr) return sb_fail(err, errlen, "bad_pointer: NULL");
        if (*ptr != '/')
            return sb_fail(err, errlen, "bad_pointer: must be empty or start with '/'");
        return sb_fail(err, errlen, "bad_pointer: '~' must be followed by '0' or '1'");
    }
    json_t *cur = doc;
    if (*ptr == '\0') {
        *out = cur;
        return 0;
    }
    /* One buffer holds each unescaped token in turn; tokens never grow when unescaped.
     * Pointers of a mapping are short: those use the stack (this runs for every field of
     * every event). */
    char small[128];
    size_t plen = strlen(ptr);
    char *tok = plen < sizeof small ? small : malloc(plen + 1);
    if (!tok) return sb_fail(err, errlen, "out_of_memory");
    const char *p = ptr;
    while (cur && *p == '/') {
        size_t n;
        p = sb_jsonptr_next(p, tok, &n);
        if (json_is_object(cur)) {
#if JANSSON_VERSION_HEX >= 0x020e00
            cur = json_object_getn(cur, tok, n); /* the length is known: no strlen per field */
#else
            cur = json_object_get(cur, tok);
#endif
        } else if (json_is_array(cur)) {
            size_t idx;
            cur = sb_jsonptr_index(tok, &idx) == 0 ? json_array_get(cur, idx) : NULL;
        } else {
            cur = NULL;
        }
    }
    if (tok != small) free(tok);
    *out = cur;
    return 0;
}

json_t *sb_jsonptr_get(json_t *doc, const char *ptr)
{
    json_t *v;
    return sb_jsonptr_resolve(doc, ptr, &v, NULL, 0) == 0 ? v : NULL;
}
