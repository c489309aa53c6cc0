/* The one configuration every binary reads (SPEC §6): built-in defaults < JSON file <
 * environment < command-line overrides. Loading validates everything and collects every
 * problem with its JSON path, so `surveybusctl check-config` can print them all. */
#ifndef SB_CONFIG_H
#define SB_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

/* Survey kinds. */
typedef enum { SB_KIND_CSAT = 0, SB_KIND_CES, SB_KIND_NPS, SB_KIND__N } sb_kind_t;
extern const char *const sb_kind_names[SB_KIND__N]; /* "csat", "ces", "nps" */
/* Returns the kind for a name, or -1. */
int sb_kind_parse(const char *name);

/* Canonical interaction-event fields; `mapping` maps each to a JSON Pointer (RFC 6901). */
typedef enum {
    SB_F_EVENT_ID = 0,
    SB_F_TYPE,
    SB_F_OCCURRED_AT,
    SB_F_CUSTOMER_ID,
    SB_F_CUSTOMER_TZ,
    SB_F_LOCALE,
    SB_F_INTERACTION_ID,
    SB_F_KIND,
    SB_F_CHANNEL,
    SB_F_STAGE,
    SB_F_AGENT,
    SB_F_TEAM,
    SB_F_REGION,
    SB_F_PRODUCT,
    SB_F_DEVICE_ID,
    SB_F_KPI_FRT,       /* kpi.first_response_s */
    SB_F_KPI_ART,       /* kpi.resolution_s */
    SB_F_KPI_FCR,       /* kpi.resolved_first_contact */
    SB_F_KPI_TRANSFERS, /* kpi.transfers */
    SB_F__N
} sb_field_t;
/* Names as used in `mapping` keys and journey `on` keys: "event_id", ..., "device_id",
 * "kpi.first_response_s", "kpi.resolution_s", "kpi.resolved_first_contact", "kpi.transfers". */
extern const char *const sb_field_names[SB_F__N];
/* Returns the field for a name, or -1. */
int sb_field_parse(const char *name);

/* Dimensions a metric can be sliced by. "all" (value "all") is always present. */
typedef enum {
    SB_DIM_ALL = 0,
    SB_DIM_CHANNEL,
    SB_DIM_AGENT,
    SB_DIM_TEAM,
    SB_DIM_REGION,
    SB_DIM_PRODUCT,
    SB_DIM_STAGE,
    SB_DIM_JOURNEY,
    SB_DIM_KIND,   /* interaction kind */
    SB_DIM_LOCALE,
    SB_DIM_DEVICE,
    SB_DIM__N
} sb_dim_t;
extern const char *const sb_dim_names[SB_DIM__N]; /* "all", "channel", ..., "device" */
int sb_dim_parse(const char *name);

typedef struct sb_kv {
    char *key, *value;
} sb_kv_t;

/* One `on` condition of a journey: the event's field must equal value. */
typedef struct sb_match {
    sb_field_t field;
    char *value;
} sb_match_t;

typedef struct sb_journey {
    char *name;
    sb_match_t *on;
    size_t n_on;
    sb_kind_t survey;
    int64_t delay_ms;
    int64_t expires_ms;      /* default 7d */
    int64_t remind_after_ms; /* 0: no reminder */
    char *channel;           /* NULL: the event's channel ("device" for MQTT visits) */
    bool has_quiet;          /* quiet_hours given */
    int quiet_start_min;     /* minutes after local midnight, e.g. 21:00 -> 1260 */
    int quiet_end_min;       /* e.g. 08:00 -> 480; start > end wraps over midnight */
} sb_journey_t;

typedef struct sb_fatigue {
    int64_t min_gap_ms;                      /* 0: none */
    int64_t min_gap_by_kind_ms[SB_KIND__N];  /* -1: not set, min_gap_ms applies */
    int max_per_30d;                         /* 0: unlimited */
} sb_fatigue_t;

typedef struct sb_scale {
    int min, max;      /* inclusive, 0 <= min < max <= SB_SCORE_MAX */
    int satisfied_min; /* csat: scores >= this are satisfied (top-2-box) */
    bool easy_low;     /* ces: true when low scores mean easy ("easy":"low") */
    int easy_max;      /* ces, easy_low: scores <= easy_max are easy */
    int easy_min;      /* ces, !easy_low: scores >= easy_min are easy */
} sb_scale_t;
#define SB_SCORE_MAX 10

/* Question texts of one survey kind, by locale ("en", "zh-CN", ...). */
typedef struct sb_questions {
    sb_kv_t *text; /* key: locale, value: question */
    size_t n;
} sb_questions_t;

typedef struct sb_config {
    struct {
        char *brokers; /* "" or NULL: Kafka off */
        char *group;
        sb_kv_t *properties; /* passed verbatim to librdkafka */
        size_t n_properties;
    } kafka;
    struct {
        char *url; /* "" or NULL: MQTT off */
        char *client_id; /* default "surveybus-<service>-<hostname>" filled by the service */
        int qos;
        /* parsed from url */
        char *host, *user, *pass;
        int port;
    } mqtt;
    struct {
        char *url;
        char *prefix;
        /* parsed from url */
        char *host, *pass;
        int port, db;
    } redis;
    struct {
        char *secret;
    } token;
    struct {
        char *interactions, *requests, *responses, *metrics, *alerts, *dlq;
    } topics;
    struct {
        char **interactions; /* subscription filters, '+' = device id */
        size_t n_interactions;
        char **responses;
        size_t n_responses;
        char *device_requests; /* template with {device_id} */
        char *requests;        /* template with {channel} and {customer_id} */
        char *metrics;         /* template with {metric} {window} {dimension} {value} */
        char *alerts;          /* template with {type} */
    } mqtt_topics;
    char *mapping[SB_F__N];    /* JSON Pointer per canonical field; "" = not mapped */
    sb_scale_t scales[SB_KIND__N];
    sb_questions_t questions[SB_KIND__N];
    sb_journey_t *journeys;
    size_t n_journeys;
    sb_fatigue_t fatigue;
    int64_t windows_ms[8];     /* ascending */
    size_t n_windows;
    int64_t allowed_lateness_ms;
    sb_dim_t dimensions[SB_DIM__N]; /* configured slices, without SB_DIM_ALL */
    size_t n_dimensions;
    int max_dimension_values;  /* cap of distinct values per dimension (default 10000) */
    struct {
        int nps_max;      /* NPS score <= this alerts (detractor) */
        int csat_max;     /* CSAT score <= this alerts */
        int ces_hard_min; /* CES, easy_low: score >= this alerts */
        int ces_hard_max; /* CES, !easy_low: score <= this alerts */
    } alerts;
    struct {
        int interval_ms;
        int republish_s;
    } publish;
    struct {
        char *dispatcher, *aggregator, *web; /* "host:port" to serve /healthz,/metrics; "" off */
        char *web_root;                      /* directory of the dashboard's static files */
    } http;
    struct {
        int batch;          /* messages per processing batch (default 1000) */
        int batch_ms;       /* max wait to fill a batch (default 50) */
        int64_t lease_ms;   /* firing lease before a claimed survey is requeued (30s) */
    } tuning;
    int log_level;          /* SB_LOG_* */
    bool dev;               /* "dev": true allows the built-in development token secret */
} sb_config_t;

/* Returns a config holding the built-in defaults (never NULL; aborts on OOM). */
sb_config_t *sb_config_new(void);
void sb_config_free(sb_config_t *cfg);

/* Loads: defaults, then the JSON file at path (NULL: none), then the SURVEYBUS_* environment,
 * then each override "json.path=value" (value parsed as JSON if it parses, else a string),
 * then validates the whole. Every problem is appended to probs as "path: reason".
 * Returns a config, or NULL when any problem was found. */
sb_config_t *sb_config_load(const char *path, const char *const *overrides, size_t n_overrides,
                            sb_problems_t *probs);

/* Like sb_config_load with no file, environment or overrides: defaults, then the JSON text
 * json[0..len) (need not be NUL-terminated), then validation. Used by tests and fuzzing. */
sb_config_t *sb_config_load_string(const char *json, size_t len, sb_problems_t *probs);

/* The JSON text of a config (all keys, effective values, secret masked). Caller frees. */
char *sb_config_dump(const sb_config_t *cfg);

/* The journey with that name, or NULL. */
const sb_journey_t *sb_config_journey(const sb_config_t *cfg, const char *name);

/* The question for a kind and locale: exact locale, then its language ("zh" of "zh-CN"),
 * then "en", then the first one. Never NULL. */
const char *sb_config_question(const sb_config_t *cfg, sb_kind_t kind, const char *locale);

#endif
