/* surveybusctl's shared declarations: global options, config loading, and one function per
 * subcommand (each in its own file). */
#ifndef SB_CTL_H
#define SB_CTL_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "service.h"
#include "store.h"

#define DEFAULT_CONFIG SB_DEFAULT_CONFIG

/* What every subcommand gets: the global options. */
typedef struct ctl {
    const char *config_path;
    const char **sets; /* "path=value" overrides, in order */
    size_t n_sets;
    bool json; /* machine-readable output */
} ctl_t;

/* A subcommand: argv[0] is its name, the rest its own arguments. Returns the exit status
 * (0 ok, 1 failure, 2 usage). */
typedef int (*ctl_cmd_fn)(ctl_t *ctl, int argc, char **argv);

typedef struct ctl_cmd {
    const char *name;
    const char *args; /* synopsis of its own arguments, "" for none */
    const char *help; /* one line */
    ctl_cmd_fn run;
} ctl_cmd_t;

/* Loads the configuration named by the global options. On failure prints every problem as
 * "FILE: problem" on stderr and returns NULL. Caller frees. */
sb_config_t *ctl_load_config(const ctl_t *ctl);

/* Loads the configuration and connects to Redis, waiting at most a few seconds. Returns 0 or
 * prints the reason and returns -1. */
int ctl_open_store(const ctl_t *ctl, sb_config_t **cfg, sb_store_t **store);

int ctl_cmd_surveys(ctl_t *ctl, int argc, char **argv);
int ctl_cmd_stats(ctl_t *ctl, int argc, char **argv);

#endif
