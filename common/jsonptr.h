/* RFC 6901 JSON Pointers over jansson values: how `mapping` finds each canonical event field
 * inside a user's own JSON schema ("/ticket/id", "/tags/0", "/a~1b" for the key "a/b"). */
#ifndef SB_JSONPTR_H
#define SB_JSONPTR_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

/* True when ptr is a well-formed pointer: "" (the whole document) or one or more "/token",
 * where '~' only appears as "~0" ('~') or "~1" ('/'). NULL is not well-formed. */
bool sb_jsonptr_valid(const char *ptr);

/* Unescapes the token that starts at p (a '/' of a well-formed pointer) into tok (which
 * needs strlen(p) bytes) and its length into *len; returns where the next token starts. */
const char *sb_jsonptr_next(const char *p, char *tok, size_t *len);

/* An array index token per RFC 6901: "0" or [1-9][0-9]*. Returns 0 and *idx, or -1. */
int sb_jsonptr_index(const char *tok, size_t *idx);

/* Resolves ptr in doc. An object level looks the unescaped token up as a key; an array
 * level needs "0" or a decimal without leading zeros below the array size ("-", the RFC's
 * past-the-end element, never exists). Returns 0 with *out the value (borrowed from doc) or
 * NULL when nothing is there; -1 with a reason in err when ptr is not well-formed. */
int sb_jsonptr_resolve(json_t *doc, const char *ptr, json_t **out, char *err, size_t errlen);

/* sb_jsonptr_resolve without the distinction: the value (borrowed) or NULL. */
json_t *sb_jsonptr_get(json_t *doc, const char *ptr);

#endif
