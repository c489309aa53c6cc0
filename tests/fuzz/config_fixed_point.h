/* Shared by the configuration fuzz targets: a loaded config dumps to a text that loads to the
 * same dump (a fixed point), or the target aborts. */
#ifndef SB_FUZZ_CONFIG_FIXED_POINT_H
#define SB_FUZZ_CONFIG_FIXED_POINT_H

#include <stdlib.h>
#include <string.h>

#include "config.h"

static inline void config_dump_is_fixed_point(const sb_config_t *cfg)
{
    sb_problems_t probs = {0};
    char *d1 = sb_config_dump(cfg);
    sb_config_t *again = sb_config_load_string(d1, strlen(d1), &probs);
    if (!again) abort();
    char *d2 = sb_config_dump(again);
    if (strcmp(d1, d2) != 0) abort();
    free(d1);
    free(d2);
    sb_config_free(again);
    sb_problems_clear(&probs);
}

#endif
