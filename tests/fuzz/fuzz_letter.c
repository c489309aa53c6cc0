/* libFuzzer target for dead letters read back by surveybusctl dlq replay (anything on the
 * dead-letter topic): raw bytes as an envelope. A letter to be sent again must name a topic
 * its transport can publish on, and carry the payload its envelope holds; a letter that
 * sb_dlq_encode wrote reads back, when it is to be sent again, to the source and payload it
 * was given. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dlq.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Kafka: 1..249 of [a-zA-Z0-9._-]; MQTT: 1..65535 bytes of UTF-8 without NUL or wildcards. */
static bool publishable(sb_dlq_to_t to, const char *t)
{
    size_t n = strlen(t);
    if (to == SB_DLQ_TO_KAFKA) {
        if (n == 0 || n > 249) return false;
        for (size_t i = 0; i < n; i++)
            if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-", t[i]))
                return false;
        return true;
    }
    return n > 0 && n <= 65535 && sb_utf8_valid(t, n) && !strpbrk(t, "+#");
}

static void check(const sb_dlq_letter_t *l)
{
    char code[64];
    if (strcmp(l->code, "unknown") && (sb_reason_code(l->code, code, sizeof code) ||
                                       strcmp(code, l->code)))
        abort();
    if (l->skip) return;
    if (!l->source || !l->topic || !l->payload || !publishable(l->to, l->topic)) abort();
    const char *pl = json_string_value(json_object_get(l->doc, "payload"));
    if (pl != l->payload || json_string_length(json_object_get(l->doc, "payload")) != l->len)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sb_dlq_letter_t l;
    sb_dlq_letter_read((const char *)data, size, &l);
    check(&l);
    sb_dlq_letter_free(&l);
    /* the bytes as the source and payload of a letter we write: first line the source */
    const char *nl = memchr(data, '\n', size);
    if (!nl) return 0;
    char *source = strndup((const char *)data, (size_t)(nl - (const char *)data));
    if (!source) abort();
    const char *payload = nl + 1;
    size_t len = size - (size_t)(payload - (const char *)data);
    char *text = sb_dlq_encode("missing_field: kind", source, payload, len);
    if (!text) abort();
    sb_dlq_letter_read(text, strlen(text), &l);
    check(&l);
    if (strcmp(l.code, "missing_field")) abort();
    if (!l.skip) {
        /* what goes back is what came: the same source (so the same topic) and bytes */
        if (strcmp(l.source, source) || l.len != len || memcmp(l.payload, payload, len)) abort();
    }
    sb_dlq_letter_free(&l);
    free(text);
    free(source);
    return 0;
}
