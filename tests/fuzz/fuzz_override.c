/* libFuzzer target for the command line's configuration overrides (--set path=value): each
 * line of the input is one override, applied after "dev=true" to the defaults (no file, no
 * environment). A config is returned exactly when no problem was found, and it dumps to a
 * text that loads to the same dump, as a config file's does. */
#include "config.h"
#include "config_fixed_point.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_OVERRIDES 16

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    const char *vars[] = {"SURVEYBUS_KAFKA_BROKERS", "SURVEYBUS_MQTT_URL", "SURVEYBUS_REDIS_URL",
                          "SURVEYBUS_TOKEN_SECRET", "SURVEYBUS_LOG_LEVEL"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        unsetenv(vars[i]);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text) abort();
    memcpy(text, data, size);
    text[size] = '\0'; /* a NUL inside ends that override, as on a command line */
    const char *ov[MAX_OVERRIDES + 1] = {"dev=true"};
    size_t n = 1;
    for (char *p = text; p && n <= MAX_OVERRIDES;) {
        char *nl = strchr(p, '\n');
        if (nl) *nl = '\0';
        ov[n++] = p;
        p = nl ? nl + 1 : NULL;
    }
    sb_problems_t probs = {0};
    sb_config_t *cfg = sb_config_load(NULL, ov, n, &probs);
    if (cfg) {
        if (probs.n != 0) abort();
        config_dump_is_fixed_point(cfg);
        sb_config_free(cfg);
    } else if (probs.n == 0) {
        abort(); /* a refusal always says why */
    }
    sb_problems_clear(&probs);
    free(text);
    return 0;
}
