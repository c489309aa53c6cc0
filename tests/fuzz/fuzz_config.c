/* libFuzzer target for the configuration loader: any bytes as a config text. A text that
 * loads must dump to a text that loads to the same dump (a fixed point), or we abort. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sb_problems_t probs = {0};
    sb_config_t *cfg = sb_config_load_string((const char *)data, size, &probs);
    if (cfg) {
        if (probs.n != 0) abort(); /* a config is returned only when nothing was wrong */
        char *d1 = sb_config_dump(cfg);
        sb_config_t *again = sb_config_load_string(d1, strlen(d1), &probs);
        if (!again) abort();
        char *d2 = sb_config_dump(again);
        if (strcmp(d1, d2) != 0) abort();
        for (size_t k = 0; k < SB_KIND__N; k++)
            if (!sb_config_question(cfg, (sb_kind_t)k, "zh-TW")) abort();
        free(d1);
        free(d2);
        sb_config_free(again);
        sb_config_free(cfg);
    } else if (probs.n == 0) {
        abort(); /* a refusal always says why */
    }
    sb_problems_clear(&probs);
    return 0;
}
