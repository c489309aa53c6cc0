/* surveybusctl: the operator's command line. Global options (-c, --set, --json) are parsed
 * here; each subcommand is one function in the table below, called with its own arguments. */
#include "ctl.h"
#include "log.h"
#include "service.h"
#include "util.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmd_check_config(ctl_t *ctl, int argc, char **argv);

/* To add a command, write its ctl_cmd_fn in services/ctl/<name>.c (declared in ctl.h) and add
 * one row here. */
static const ctl_cmd_t commands[] = {
    {"check-config", "", "validate the configuration and print every problem", cmd_check_config},
    {"surveys", "pending [--customer C] [--limit N] | show ID | cancel ID",
     "list, inspect or cancel scheduled surveys", ctl_cmd_surveys},
    {"stats", "", "counters of every service and the schedule depth", ctl_cmd_stats},
    {"metrics", "[--metric M] [--window W] [--dimension D] [--value V]",
     "current metric values from Redis", ctl_cmd_metrics},
    {"watch", "[--dimension D] [--metric M] [--window W] [--min-count N] [--interval S] [--count N]",
     "live view of the headline metrics", ctl_cmd_watch},
    {"simulate", "[--rate R] [--duration D] [--respond SHARE]",
     "realistic interactions in, customers answering their surveys", ctl_cmd_simulate},
    {"dlq", "replay [--reason CODE] [--dry-run] [--limit N]",
     "send dead letters back to their source topic once the cause is fixed", ctl_cmd_dlq},
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *out)
{
    fprintf(out,
            "usage: surveybusctl [-c FILE] [--set path=value]... [--json] <command> [args]\n"
            "       surveybusctl -h | --version\n"
            "\n"
            "options:\n"
            "  -c, --config FILE   configuration file (default %s)\n"
            "  --set path=value    override a config value (value parsed as JSON, else text),\n"
            "                      e.g. --set publish.interval_ms=500 --set journeys[0].delay=5s\n"
            "  --json              machine-readable output\n"
            "  -h, --help          this help\n"
            "  --version           print the version\n"
            "\ncommands:\n",
            DEFAULT_CONFIG);
    for (size_t i = 0; i < N_COMMANDS; i++) {
        char head[160];
        snprintf(head, sizeof head, "%s%s%s", commands[i].name, *commands[i].args ? " " : "",
                 commands[i].args);
        fprintf(out, "  %-18s  %s\n", head, commands[i].help);
    }
}

void ctl_print_json(json_t *o, size_t flags)
{
    /* 15 significant digits: 0.6 prints as given, not as 0.59999999999999998 */
    char *s = o ? json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(15) | flags) : NULL;
    if (s) printf("%s\n", s);
    free(s);
    json_decref(o);
}

/* Loads the configuration named by the global options for a command that needs one. On
 * failure prints one line on stderr, "FILE: problem" for the first problem and how many more
 * there are (check-config lists them all), and returns NULL. Caller frees. */
sb_config_t *ctl_load_config(const ctl_t *ctl)
{
    sb_problems_t probs = {0};
    sb_config_t *cfg = sb_config_load(ctl->config_path, ctl->sets, ctl->n_sets, &probs);
    sb_service_problems(&probs, "surveybusctl", ctl->config_path);
    sb_problems_clear(&probs);
    /* a command-line tool: only warnings and errors unless debug is asked for */
    if (cfg) sb_log_set_level(cfg->log_level > SB_LOG_WARN ? cfg->log_level : cfg->log_level == SB_LOG_DEBUG ? SB_LOG_DEBUG : SB_LOG_WARN);
    return cfg;
}

/* ---------------------------------------------------------------- check-config */

static int cmd_check_config(ctl_t *ctl, int argc, char **argv)
{
    (void)argv;
    if (argc > 1) {
        fprintf(stderr, "surveybusctl: check-config takes no arguments\n");
        return 2;
    }
    sb_problems_t probs = {0};
    sb_config_t *cfg = sb_config_load(ctl->config_path, ctl->sets, ctl->n_sets, &probs);
    bool kafka = cfg && cfg->kafka.brokers && *cfg->kafka.brokers;
    bool mqtt = cfg && cfg->mqtt.url && *cfg->mqtt.url;
    if (ctl->json) {
        json_t *list = json_array();
        for (size_t i = 0; i < probs.n; i++)
            json_array_append_new(list, json_string(probs.msg[i]));
        char *file = sb_utf8_repaired(ctl->config_path); /* a file name is any bytes */
        json_t *out = json_pack("{s:b,s:s,s:o}", "ok", cfg != NULL, "file", file, "problems",
                                list);
        free(file);
        if (out && cfg) {
            json_object_set_new(out, "journeys", json_integer((json_int_t)cfg->n_journeys));
            json_object_set_new(out, "kafka", json_boolean(kafka));
            json_object_set_new(out, "mqtt", json_boolean(mqtt));
        }
        ctl_print_json(out, 0);
    } else if (cfg) {
        printf("config OK: %zu journeys, kafka %s, mqtt %s\n", cfg->n_journeys,
               kafka ? "on" : "off", mqtt ? "on" : "off");
    } else {
        for (size_t i = 0; i < probs.n; i++)
            printf("%s: %s\n", ctl->config_path, probs.msg[i]);
    }
    int rc = cfg ? 0 : 1;
    sb_config_free(cfg);
    sb_problems_clear(&probs);
    return rc;
}

/* ---------------------------------------------------------------- main */

static const ctl_cmd_t *find_command(const char *name)
{
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0) return &commands[i];
    return NULL;
}

/* Global options are accepted before and after the command name ("check-config -c F");
 * everything else after the name goes to the command; "--" passes the rest through. */
int main(int argc, char **argv)
{
    ctl_t ctl = {.config_path = DEFAULT_CONFIG};
    const ctl_cmd_t *cmd = NULL;
    char **sub = calloc((size_t)argc + 1, sizeof *sub);
    const char **sets = calloc((size_t)argc + 1, sizeof *sets);
    int n_sub = 0, rc = 2;
    bool help = false, passthrough = false;
    if (!sub || !sets) {
        fprintf(stderr, "surveybusctl: out of memory\n");
        goto fail;
    }
    ctl.sets = sets;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (passthrough || a[0] != '-' || a[1] == '\0') {
            if (!cmd && !(cmd = find_command(a))) {
                fprintf(stderr, "surveybusctl: unknown command %s\n", a);
                usage(stderr);
                goto fail;
            }
            sub[n_sub++] = argv[i];
        } else if (strcmp(a, "--") == 0) {
            passthrough = true;
        } else if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0 || strcmp(a, "--set") == 0) {
            if (i + 1 == argc) {
                fprintf(stderr, "surveybusctl: %s needs an argument\n", a);
                usage(stderr);
                goto fail;
            }
            if (strcmp(a, "--set") == 0)
                sets[ctl.n_sets++] = argv[++i];
            else
                ctl.config_path = argv[++i];
        } else if (strncmp(a, "--config=", 9) == 0) {
            ctl.config_path = a + 9;
        } else if (strncmp(a, "--set=", 6) == 0) {
            sets[ctl.n_sets++] = a + 6;
        } else if (strcmp(a, "--json") == 0) {
            ctl.json = true;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            help = true;
        } else if (strcmp(a, "--version") == 0) {
            printf("surveybusctl %s\n", SB_VERSION);
            rc = 0;
            goto fail;
        } else if (cmd) {
            sub[n_sub++] = argv[i]; /* the command's own option */
        } else {
            fprintf(stderr, "surveybusctl: unknown option %s\n", a);
            usage(stderr);
            goto fail;
        }
    }
    if (help) {
        if (cmd)
            printf("usage: surveybusctl [options] %s%s%s\n  %s\n", cmd->name, *cmd->args ? " " : "",
                   cmd->args, cmd->help);
        else
            usage(stdout);
        rc = 0;
        goto fail;
    }
    if (!cmd) {
        fprintf(stderr, "surveybusctl: no command given\n");
        usage(stderr);
        goto fail;
    }
    rc = cmd->run(&ctl, n_sub, sub);
fail:
    free(sub);
    free(sets);
    return rc;
}
