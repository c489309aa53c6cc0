/* A fast reader for the usual shape of incoming JSON: one object, plain strings, numbers,
 * booleans and null, read into a flat array of tokens on the caller's stack with no
 * allocation. jansson stays the parser of record: sb_jscan takes a document only when jansson
 * (with JSON_REJECT_DUPLICATES) would take it and read the same values, and declines
 * everything else (escapes, control characters, big integers, deep nesting, any syntax
 * error, duplicate keys), so the caller parses those with jansson and reports its reasons.
 * A differential fuzz target (tests/fuzz/fuzz_jscan.c) holds it to that. Pure. */
#ifndef SB_JSCAN_H
#define SB_JSCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

typedef enum {
    SB_JV_NONE, /* nothing there */
    SB_JV_NULL,
    SB_JV_FALSE,
    SB_JV_TRUE,
    SB_JV_INT,
    SB_JV_REAL,
    SB_JV_STR,
    SB_JV_OBJ,
    SB_JV_ARR,
} sb_jv_type_t;

/* One JSON value as the readers of events and responses see it, whichever parser read it. */
typedef struct sb_jval {
    sb_jv_type_t type;
    const char *s; /* STR: its bytes (UTF-8, no NUL inside; not NUL-terminated) */
    size_t n;      /* STR: length; OBJ: members; ARR: elements */
    int64_t i;     /* INT */
    double d;      /* REAL; INT: the integer as a double (json_number_value) */
    int k;         /* where it is: its token (sb_jscan), or */
    json_t *j;     /* its jansson value (borrowed) */
} sb_jval_t;

/* Nothing there, or null: what the readers treat as a field left out. */
static inline bool sb_jval_absent(const sb_jval_t *v)
{
    return v->type == SB_JV_NONE || v->type == SB_JV_NULL;
}

/* A value in document order: an object is followed by its members as key (STR) and value,
 * an array by its elements; end is the index just past the value and what it contains. */
typedef struct sb_jtok {
    sb_jval_t v;
    int end;
} sb_jtok_t;

/* Reads buf (len bytes, already known to be valid UTF-8) into at most cap tokens. Returns
 * the token count (token 0 is the root object), or -1 when the document is one to leave to
 * jansson. */
int sb_jscan(const char *buf, size_t len, sb_jtok_t *t, int cap);

/* Resolves a well-formed JSON Pointer (sb_jsonptr_valid) in the tokens of sb_jscan, with
 * the rules of sb_jsonptr_resolve. Returns the token index, or -1 when nothing is there. */
int sb_jscan_find(const sb_jtok_t *t, int n, const char *ptr);

/* The view of a jansson value (NULL: SB_JV_NONE); it borrows v's string. */
sb_jval_t sb_jval_of(const json_t *v);

/* A document read by sb_jscan (n >= 0, doc NULL) or else by jansson (doc, n < 0): see
 * sb_dlq_open, which fills it. */
typedef struct sb_jdoc {
    json_t *doc;
    const sb_jtok_t *t;
    int n;
} sb_jdoc_t;

/* The value at a well-formed pointer (sb_jsonptr_valid), SB_JV_NONE when nothing is there;
 * it borrows from the document and its buffer. */
sb_jval_t sb_jdoc_get(const sb_jdoc_t *d, const char *ptr);

/* The member key of the object obj (NULL: the document), SB_JV_NONE when there is none. */
sb_jval_t sb_jdoc_key(const sb_jdoc_t *d, const sb_jval_t *obj, const char *key);

#endif
