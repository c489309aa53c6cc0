/* libFuzzer target for MQTT topic matching, which every MQTT message's topic goes through
 * (any client may publish on any topic the broker allows): bytes up to the first newline as
 * a filter, the rest as a topic (NUL ends either). Checks that the answer does not depend on
 * the buffer given for the '+' level except by refusing a level that does not fit, that a
 * level returned is one whole level of the topic, and that sb_mqtt_match_any agrees. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mqtt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    char *nl = strchr(text, '\n');
    const char *filter = text, *topic = "";
    if (nl) *nl = '\0', topic = nl + 1;
    size_t tl = strlen(topic);
    char *plus = malloc(tl + 1), small[8];
    if (!plus) abort();
    int bare = sb_mqtt_topic_match(filter, topic, NULL, 0);
    int full = sb_mqtt_topic_match(filter, topic, plus, tl + 1);
    int cut = sb_mqtt_topic_match(filter, topic, small, sizeof small);
    if (bare < -1 || bare > 1 || full != bare) abort();
    if (cut != bare && cut != -1) abort(); /* a level that does not fit: -1 */
    if (full == 1) {
        size_t pl = strlen(plus);
        if (!strchr(filter, '+') && pl != 0) abort();
        /* a whole level: no separator in it, and found in the topic between separators */
        if (strchr(plus, '/')) abort();
        if (strchr(filter, '+')) {
            const char *p = topic;
            bool found = false;
            for (;;) {
                const char *e = strchr(p, '/');
                size_t l = e ? (size_t)(e - p) : strlen(p);
                if (l == pl && !memcmp(p, plus, pl)) found = true;
                if (!e) break;
                p = e + 1;
            }
            if (!found) abort();
        }
    }
    const char *filters[] = {filter};
    const char *level = "unset";
    int idx = sb_mqtt_match_any(filters, 1, topic, plus, &level);
    if (idx != (bare == 1 ? 0 : -1)) abort();
    if (idx == 0 && (strchr(filter, '+') != NULL) != (level != NULL)) abort();
    if (idx < 0 && level != NULL) abort();
    free(plus);
    free(text);
    return 0;
}
