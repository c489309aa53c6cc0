/* What every long-running surveybus binary does the same way: command-line options
 * (-c FILE, --set path=value, -h, --version), configuration loading with every problem
 * printed, logging, stop signals, stable client ids, and dead-letter publishing. */
#ifndef SB_SERVICE_H
#define SB_SERVICE_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "kafka.h"

#define SB_DEFAULT_CONFIG "config/surveybus.json"

/* Set by SIGTERM / SIGINT; loops poll it. */
extern volatile sig_atomic_t sb_service_stop;

typedef struct sb_service {
    const char *name;     /* "dispatcher", "aggregator", ... (borrowed) */
    sb_config_t *cfg;     /* owned */
    char client_id[300];  /* cfg->mqtt.client_id or "surveybus-<name>-<host>" */
    char instance[128];   /* "<host>-<pid>": unique per running process */
} sb_service_t;

/* Parses the command line, loads the configuration and installs signal handlers. Returns 0
 * to run, 1 when the process should exit 0 (help or version printed), -1 when it should exit
 * 1 (a one-line reason, or every config problem, printed on stderr). */
int sb_service_init(sb_service_t *svc, const char *name, int argc, char **argv);
void sb_service_fini(sb_service_t *svc);

/* Sleeps up to ms, returning early when a stop signal arrives. */
void sb_service_sleep(int ms);

/* The source text of a dead letter: "kafka:<topic>/<partition>@<offset>" or "mqtt:<topic>". */
void sb_service_source_kafka(char *out, size_t len, const sb_kafka_msg_t *m);
void sb_service_source_mqtt(char *out, size_t len, const char *topic);

#endif
