/* libFuzzer target, differential: whenever sb_jscan takes a document, jansson (as
 * sb_dlq_load calls it) must take it too and read the same tree, value for value, and every
 * JSON Pointer to a member must resolve to the same value through both. Aborts otherwise. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "jscan.h"
#include "jsonptr.h"
#include "util.h"

#define CAP 96

static void same_val(const sb_jval_t *a, const sb_jval_t *b)
{
    if (a->type != b->type) abort();
    switch (a->type) {
    case SB_JV_INT:
        if (a->i != b->i || memcmp(&a->d, &b->d, sizeof a->d)) abort();
        break;
    case SB_JV_REAL:
        if (memcmp(&a->d, &b->d, sizeof a->d)) abort(); /* bit for bit, -0.0 included */
        break;
    case SB_JV_STR:
        if (a->n != b->n || memcmp(a->s, b->s, a->n)) abort();
        break;
    case SB_JV_OBJ:
    case SB_JV_ARR:
        if (a->n != b->n) abort();
        break;
    default:
        break;
    }
}

/* Appends one pointer token for the key or index text s (n bytes) to ptr. */
static size_t push_token(char *ptr, size_t at, const char *s, size_t n)
{
    ptr[at++] = '/';
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '~') ptr[at++] = '~', ptr[at++] = '0';
        else if (s[i] == '/') ptr[at++] = '~', ptr[at++] = '1';
        else ptr[at++] = s[i];
    }
    ptr[at] = '\0';
    return at;
}

/* Compares token k with j and, through ptr (the pointer of k, at bytes long), everything
 * below it; also resolves ptr both ways. Returns the index after k's subtree. */
static int same_tree(const sb_jtok_t *t, int n, int k, json_t *j, json_t *root, char *ptr,
                     size_t at)
{
    sb_jval_t b = sb_jval_of(j);
    same_val(&t[k].v, &b);
    if (sb_jscan_find(t, n, ptr) != k || sb_jsonptr_get(root, ptr) != j) abort();
    int c = k + 1;
    if (t[k].v.type == SB_JV_OBJ) {
        for (size_t m = 0; m < t[k].v.n; m++) {
            const sb_jval_t *key = &t[c].v;
            json_t *jm = json_object_getn(j, key->s, key->n);
            if (!jm) abort();
            size_t a2 = push_token(ptr, at, key->s, key->n);
            c = same_tree(t, n, c + 1, jm, root, ptr, a2);
            ptr[at] = '\0';
        }
    } else if (t[k].v.type == SB_JV_ARR) {
        for (size_t m = 0; m < t[k].v.n; m++) {
            char idx[24];
            size_t il = (size_t)sb_int_format((int64_t)m, idx);
            size_t a2 = push_token(ptr, at, idx, il);
            c = same_tree(t, n, c, json_array_get(j, m), root, ptr, a2);
            ptr[at] = '\0';
        }
    }
    if (c != t[k].end) abort();
    return c;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    /* what sb_dlq_open checks before either parser runs */
    if (size > SB_MSG_MAX || (size && memchr(buf, '\0', size)) || !sb_utf8_valid(buf, size))
        return 0;
    static sb_jtok_t t[CAP];
    int n = sb_jscan(buf, size, t, CAP);
    if (n < 0) return 0;
    json_t *doc = json_loadb(size ? buf : "", size, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(doc)) abort();
    /* pointers are at most twice the document (every byte escaped) */
    char *ptr = malloc(2 * size + 2);
    if (!ptr) abort();
    ptr[0] = '\0';
    /* "" is the whole document for jansson's resolver; sb_jscan_find gets only "/..." */
    sb_jval_t a = t[0].v, b = sb_jval_of(doc);
    same_val(&a, &b);
    int c = 1;
    for (size_t m = 0; m < t[0].v.n; m++) {
        json_t *jm = json_object_getn(doc, t[c].v.s, t[c].v.n);
        if (!jm) abort();
        size_t at = push_token(ptr, 0, t[c].v.s, t[c].v.n);
        c = same_tree(t, n, c + 1, jm, doc, ptr, at);
    }
    if (c != n || t[0].end != n) abort();
    free(ptr);
    json_decref(doc);
    return 0;
}
