/* Dead letters: the checks every message from outside passes before its fields are read
 * (size, NUL, UTF-8, JSON object), the "code: detail" reasons they produce, and the
 * envelope published on the dead-letter topic (SPEC §4, §7). Pure. */
#ifndef SB_DLQ_H
#define SB_DLQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "jscan.h"

/* Earliest and latest (exclusive) plausible event time: 2000-01-01 and 2100-01-01 UTC. */
#define SB_TIME_MIN_MS 946684800000LL
#define SB_TIME_MAX_MS 4102444800000LL

/* Loads raw outside input as a JSON object. Rejects, in this order: len > SB_MSG_MAX
 * ("too_large"), a NUL byte or a \u0000 escape ("nul_byte"), malformed UTF-8
 * ("invalid_utf8"), anything jansson rejects, duplicate keys included, or a document that
 * is not an object ("invalid_json: <detail> (line L, column C)").
 * Returns a new reference (caller json_decref's) or NULL with the reason in err. */
json_t *sb_dlq_load(const char *buf, size_t len, char *err, size_t errlen);

/* sb_dlq_load into d, with the same checks and reasons, but read by sb_jscan into t (cap
 * tokens) when it can, which allocates nothing, and by jansson otherwise. Returns 0 (the
 * caller then calls sb_dlq_close), or -1 with the reason in err. */
int sb_dlq_open(const char *buf, size_t len, sb_jtok_t *t, int cap, sb_jdoc_t *d, char *err,
                size_t errlen);
static inline void sb_dlq_close(sb_jdoc_t *d) { json_decref(d->doc), d->doc = NULL; }

/* Reads a time value: an RFC 3339 string, or epoch milliseconds as a JSON integer or a
 * string of digits; it must lie in [SB_TIME_MIN_MS, SB_TIME_MAX_MS). Returns 0 and *ms, or
 * -1 with "bad_time: <name>: <why>" in err. */
int sb_dlq_time_val(const sb_jval_t *v, const char *name, int64_t *ms, char *err, size_t errlen);

/* Copies untrusted text into a reason detail: at most 64 bytes of s, cut at a UTF-8
 * boundary, "..." appended when cut, control characters and malformed bytes shown as '?'.
 * out is always NUL-terminated (outlen > 0). */
void sb_dlq_quote(char *out, size_t outlen, const char *s, size_t len);

/* The dead-letter message, compact JSON:
 * {"error":reason,"source":source,"payload":text[,"truncated":true][,"repaired":true]}. text is the payload
 * cut to at most SB_DLQ_PAYLOAD_MAX input bytes at a UTF-8 boundary, each malformed byte
 * replaced by U+FFFD, so the result is valid JSON for any input bytes ("truncated" says it
 * was cut, "repaired" that a byte was replaced). reason and source get the same repair, cut
 * at 1024 bytes; as a source cut or repaired no longer names where the payload came from, it
 * sets "truncated" or "repaired" too (a replay skips such a letter). NULL counts as "".
 * Caller frees. */
char *sb_dlq_encode(const char *reason, const char *source, const char *payload, size_t len);

/* With Kafka off a dead letter has nowhere to go: logs it as a warning ("dead letter (kafka
 * off) source=\"…\" reason=\"…\"", both values quoted and escaped: they come from outside). */
void sb_dlq_log(const char *source, const char *reason);

/* The stable code of a reason, the part before ':' ("missing_field: x" -> "missing_field"),
 * used as a counter name. Returns 0; or -1 with "unknown" in out when reason is NULL or its
 * code is empty, not [a-z0-9_] or does not fit in outlen. */
int sb_reason_code(const char *reason, char *out, size_t outlen);

/* A dead letter read back from the dead-letter topic to be sent again (surveybusctl dlq
 * replay). */
typedef enum { SB_DLQ_TO_KAFKA, SB_DLQ_TO_MQTT } sb_dlq_to_t;
typedef struct sb_dlq_letter {
    char code[64];       /* the reason's code; "unknown" when it has none */
    const char *skip;    /* why it cannot be sent again: "unreadable", "truncated", "repaired",
                            "unknown_source", "bad_topic" (one its transport cannot publish
                            on); NULL when it can */
    const char *source;  /* the envelope's source (NULL when it has none) */
    sb_dlq_to_t to;      /* when skip is NULL: the transport, */
    char *topic;         /* the topic (owned), */
    const char *payload; /* and the bytes as they came (len of them) */
    size_t len;
    json_t *doc;         /* the envelope, which source and payload point into (owned) */
} sb_dlq_letter_t;

/* Reads a dead-letter message into l: its reason's code, and where and what to send again,
 * or why it cannot be. Any bytes are read; the caller calls sb_dlq_letter_free. */
void sb_dlq_letter_read(const char *buf, size_t len, sb_dlq_letter_t *l);
void sb_dlq_letter_free(sb_dlq_letter_t *l);

#endif
