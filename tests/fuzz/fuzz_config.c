/* libFuzzer target for the configuration loader: any bytes as a config text. A text that
 * loads must dump to a text that loads to the same dump (a fixed point), or we abort. Every
 * question text a loaded config holds must go out in a survey request that reads back
 * (the aggregator and the dispatcher's recovery decode the requests the dispatcher sent). */
#include "config.h"
#include "config_fixed_point.h"
#include "survey.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void question_reads_back(const sb_config_t *cfg, sb_kind_t k, const char *text)
{
    static sb_survey_request_t r, back;
    char err[256];
    memset(&r, 0, sizeof r);
    strcpy(r.survey_id, "s-1");
    strcpy(r.journey, "j");
    strcpy(r.customer_id, "c");
    strcpy(r.interaction_id, "i");
    strcpy(r.channel, "email");
    strcpy(r.token, "1795604400000.t");
    size_t n = strlen(text);
    if (n >= sizeof r.question) abort(); /* the dispatcher would cut it */
    memcpy(r.question, text, n + 1);
    r.kind = k;
    r.scale_min = cfg->scales[k].min;
    r.scale_max = cfg->scales[k].max;
    r.issued_ms = 1795341600000;
    r.expires_ms = 1795604400000;
    char *enc = sb_survey_request_encode(&r);
    if (!enc || sb_survey_request_decode(enc, strlen(enc), &back, err, sizeof err) != 0) abort();
    free(enc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sb_problems_t probs = {0};
    sb_config_t *cfg = sb_config_load_string((const char *)data, size, &probs);
    if (cfg) {
        if (probs.n != 0) abort(); /* a config is returned only when nothing was wrong */
        config_dump_is_fixed_point(cfg);
        for (size_t k = 0; k < SB_KIND__N; k++) {
            if (!sb_config_question(cfg, (sb_kind_t)k, "zh-TW")) abort();
            for (size_t i = 0; i < cfg->questions[k].n; i++)
                question_reads_back(cfg, (sb_kind_t)k, cfg->questions[k].text[i].value);
        }
        sb_config_free(cfg);
    } else if (probs.n == 0) {
        abort(); /* a refusal always says why */
    }
    sb_problems_clear(&probs);
    return 0;
}
