/* libFuzzer target for survey records read back from Redis (the dispatcher's claims and
 * reads, the aggregator's lookup of the survey a response or request names): raw bytes as a
 * stored record. An accepted record must encode, and the text must decode to the same record;
 * a rejection always carries a counter-safe code. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dlq.h"
#include "record.h"

static void same_or_abort(const sb_record_t *a, const sb_record_t *b)
{
    if (a->state != b->state || a->kind != b->kind || strcmp(a->journey, b->journey) ||
        strcmp(a->customer_id, b->customer_id) || strcmp(a->interaction_id, b->interaction_id) ||
        strcmp(a->channel, b->channel) || strcmp(a->locale, b->locale) ||
        strcmp(a->device_id, b->device_id) || strcmp(a->tz, b->tz) ||
        strcmp(a->reason, b->reason) || a->due_ms != b->due_ms ||
        a->expires_ms != b->expires_ms || a->remind_after_ms != b->remind_after_ms)
        abort();
    for (size_t i = 0; i < SB_DIM__N; i++)
        if (strcmp(a->dim[i], b->dim[i])) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static sb_record_t r, back;
    char err[256] = "", code[64];
    if (sb_record_decode((const char *)data, size, &r, err, sizeof err) != 0) {
        if (sb_reason_code(err, code, sizeof code) != 0) abort();
        return 0;
    }
    if ((unsigned)r.kind >= SB_KIND__N || r.due_ms < 0 || r.expires_ms < 0 ||
        r.remind_after_ms < 0 || strcmp(r.dim[SB_DIM_ALL], "all"))
        abort();
    size_t len = 0;
    char *text = sb_record_encode(&r, &len);
    if (!text) abort(); /* everything accepted is encodable (a NUL state byte included) */
    if (sb_record_decode(text, len, &back, err, sizeof err) != 0) abort();
    same_or_abort(&r, &back);
    free(text);
    return 0;
}
