/* Unit tests of the configuration module: defaults, precedence (file < env < overrides),
 * every kind of problem with its exact path, URL and journey parsing, questions, dump. */
#include "config.h"
#include "log.h"

#include <check.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "unit.h"

#define DATA "tests/data/config/"

static const char *const env_vars[] = {"SURVEYBUS_KAFKA_BROKERS", "SURVEYBUS_MQTT_URL",
                                       "SURVEYBUS_REDIS_URL", "SURVEYBUS_TOKEN_SECRET",
                                       "SURVEYBUS_LOG_LEVEL"};

/* Each test starts from an environment without SURVEYBUS_* variables. */
static void clean_env(void)
{
    for (size_t i = 0; i < sizeof env_vars / sizeof env_vars[0]; i++)
        unsetenv(env_vars[i]);
}

static sb_problems_t probs;

static void setup(void)
{
    clean_env();
    memset(&probs, 0, sizeof probs);
}

static void teardown(void)
{
    sb_problems_clear(&probs);
    clean_env();
}

static sb_config_t *load_str(const char *text)
{
    return sb_config_load_string(text, strlen(text), &probs);
}

/* True when some problem equals want exactly. */
static bool has_problem(const char *want)
{
    for (size_t i = 0; i < probs.n; i++)
        if (strcmp(probs.msg[i], want) == 0) return true;
    return false;
}

#define ck_problem(want)                                                                           \
    do {                                                                                           \
        if (!has_problem(want)) {                                                                  \
            for (size_t i_ = 0; i_ < probs.n; i_++)                                                \
                fprintf(stderr, "  got: %s\n", probs.msg[i_]);                                     \
            ck_abort_msg("missing problem: %s", want);                                             \
        }                                                                                          \
    } while (0)

/* Loads text, expects failure with exactly one problem equal to want. */
static void expect_one(const char *text, const char *want)
{
    sb_problems_clear(&probs);
    sb_config_t *c = load_str(text);
    ck_assert_ptr_null(c);
    if (probs.n != 1 || strcmp(probs.msg[0], want) != 0) {
        for (size_t i = 0; i < probs.n; i++)
            fprintf(stderr, "  got: %s\n", probs.msg[i]);
        ck_abort_msg("for %s expected exactly: %s", text, want);
    }
}

/* ---------------------------------------------------------------- names and defaults */

START_TEST(test_names)
{
    ck_assert_int_eq(sb_kind_parse("csat"), SB_KIND_CSAT);
    ck_assert_int_eq(sb_kind_parse("nps"), SB_KIND_NPS);
    ck_assert_int_eq(sb_kind_parse("NPS"), -1);
    ck_assert_int_eq(sb_field_parse("kpi.transfers"), SB_F_KPI_TRANSFERS);
    ck_assert_int_eq(sb_field_parse("device_id"), SB_F_DEVICE_ID);
    ck_assert_int_eq(sb_field_parse("transfers"), -1);
    ck_assert_int_eq(sb_dim_parse("all"), SB_DIM_ALL);
    ck_assert_int_eq(sb_dim_parse("device"), SB_DIM_DEVICE);
    ck_assert_int_eq(sb_dim_parse(NULL), -1);
    ck_assert_str_eq(sb_field_names[SB_F_KPI_FCR], "kpi.resolved_first_contact");
}
END_TEST

START_TEST(test_defaults)
{
    sb_config_t *c = sb_config_new();
    ck_assert_str_eq(c->kafka.brokers, "localhost:9092");
    ck_assert_str_eq(c->kafka.group, "surveybus");
    ck_assert_uint_eq(c->kafka.n_properties, 0);
    ck_assert_str_eq(c->mqtt.url, "mqtt://localhost:1883");
    ck_assert_str_eq(c->mqtt.host, "localhost");
    ck_assert_int_eq(c->mqtt.port, 1883);
    ck_assert_ptr_null(c->mqtt.user);
    ck_assert_ptr_null(c->mqtt.pass);
    ck_assert_ptr_null(c->mqtt.client_id);
    ck_assert_int_eq(c->mqtt.qos, 1);
    ck_assert_str_eq(c->redis.url, "redis://localhost:6379/0");
    ck_assert_str_eq(c->redis.host, "localhost");
    ck_assert_int_eq(c->redis.port, 6379);
    ck_assert_int_eq(c->redis.db, 0);
    ck_assert_ptr_null(c->redis.pass);
    ck_assert_str_eq(c->redis.prefix, "sb:");
    ck_assert_ptr_null(c->token.secret);
    ck_assert_str_eq(c->topics.interactions, "interactions");
    ck_assert_str_eq(c->topics.requests, "survey.requests");
    ck_assert_str_eq(c->topics.responses, "survey.responses");
    ck_assert_str_eq(c->topics.metrics, "survey.metrics");
    ck_assert_str_eq(c->topics.alerts, "survey.alerts");
    ck_assert_str_eq(c->topics.dlq, "surveybus.dlq");
    ck_assert_uint_eq(c->mqtt_topics.n_interactions, 1);
    ck_assert_str_eq(c->mqtt_topics.interactions[0], "fieldservice/+/visit/completed");
    ck_assert_uint_eq(c->mqtt_topics.n_responses, 1);
    ck_assert_str_eq(c->mqtt_topics.responses[0], "fieldservice/+/survey/response");
    ck_assert_str_eq(c->mqtt_topics.device_requests, "fieldservice/{device_id}/survey/request");
    ck_assert_str_eq(c->mqtt_topics.requests, "surveys/{channel}/{customer_id}");
    ck_assert_str_eq(c->mqtt_topics.metrics, "metrics/{metric}/{window}/{dimension}/{value}");
    ck_assert_str_eq(c->mqtt_topics.alerts, "alerts/{type}");
    ck_assert_str_eq(c->mapping[SB_F_EVENT_ID], "/event_id");
    ck_assert_str_eq(c->mapping[SB_F_CUSTOMER_TZ], "/customer_tz");
    ck_assert_str_eq(c->mapping[SB_F_DEVICE_ID], "/device_id");
    ck_assert_str_eq(c->mapping[SB_F_KPI_FRT], "/kpi/first_response_s");
    ck_assert_str_eq(c->mapping[SB_F_KPI_ART], "/kpi/resolution_s");
    ck_assert_str_eq(c->mapping[SB_F_KPI_FCR], "/kpi/resolved_first_contact");
    ck_assert_str_eq(c->mapping[SB_F_KPI_TRANSFERS], "/kpi/transfers");
    ck_assert_int_eq(c->scales[SB_KIND_NPS].min, 0);
    ck_assert_int_eq(c->scales[SB_KIND_NPS].max, 10);
    ck_assert_int_eq(c->scales[SB_KIND_CSAT].min, 1);
    ck_assert_int_eq(c->scales[SB_KIND_CSAT].max, 5);
    ck_assert_int_eq(c->scales[SB_KIND_CSAT].satisfied_min, 4);
    ck_assert_int_eq(c->scales[SB_KIND_CES].min, 1);
    ck_assert_int_eq(c->scales[SB_KIND_CES].max, 7);
    ck_assert(c->scales[SB_KIND_CES].easy_low);
    ck_assert_int_eq(c->scales[SB_KIND_CES].easy_max, 2);
    ck_assert_int_eq(c->scales[SB_KIND_CES].easy_min, 6);
    for (int k = 0; k < SB_KIND__N; k++) {
        ck_assert_uint_eq(c->questions[k].n, 2);
        ck_assert_str_eq(c->questions[k].text[0].key, "en");
        ck_assert_str_eq(c->questions[k].text[1].key, "zh-CN");
    }
    ck_assert_str_eq(sb_config_question(c, SB_KIND_CSAT, "en"),
                     "How satisfied were you with this service?");
    ck_assert_str_eq(sb_config_question(c, SB_KIND_CSAT, "zh-CN"), "您对本次服务满意吗?");
    ck_assert_uint_eq(c->n_journeys, 0);
    ck_assert_int_eq(c->fatigue.min_gap_ms, 0);
    for (int k = 0; k < SB_KIND__N; k++)
        ck_assert_int_eq(c->fatigue.min_gap_by_kind_ms[k], -1);
    ck_assert_int_eq(c->fatigue.max_per_30d, 0);
    ck_assert_uint_eq(c->n_windows, 4);
    ck_assert_int_eq(c->windows_ms[0], 3600000);
    ck_assert_int_eq(c->windows_ms[1], 86400000);
    ck_assert_int_eq(c->windows_ms[2], 7 * 86400000LL);
    ck_assert_int_eq(c->windows_ms[3], 30 * 86400000LL);
    ck_assert_int_eq(c->allowed_lateness_ms, 600000);
    ck_assert_uint_eq(c->n_dimensions, 7);
    ck_assert_int_eq(c->dimensions[0], SB_DIM_CHANNEL);
    ck_assert_int_eq(c->dimensions[6], SB_DIM_JOURNEY);
    ck_assert_int_eq(c->max_dimension_values, 10000);
    ck_assert_int_eq(c->alerts.nps_max, 6);
    ck_assert_int_eq(c->alerts.csat_max, 3);
    ck_assert_int_eq(c->alerts.ces_hard_min, 6);
    ck_assert_int_eq(c->alerts.ces_hard_max, 2);
    ck_assert_int_eq(c->publish.interval_ms, 1000);
    ck_assert_int_eq(c->publish.republish_s, 60);
    ck_assert_str_eq(c->http.dispatcher, "");
    ck_assert_str_eq(c->http.aggregator, "");
    ck_assert_str_eq(c->http.web, "127.0.0.1:8080");
    ck_assert_str_eq(c->http.web_root, "web/dist");
    ck_assert_int_eq(c->tuning.batch, 1000);
    ck_assert_int_eq(c->tuning.batch_ms, 50);
    ck_assert_int_eq(c->tuning.lease_ms, 30000);
    ck_assert_int_eq(c->log_level, SB_LOG_INFO);
    ck_assert(!c->dev);
    sb_config_free(c);
    sb_config_free(NULL);
}
END_TEST

START_TEST(test_secret_rules)
{
    expect_one("{}", "token.secret: required unless \"dev\" is true (set SURVEYBUS_TOKEN_SECRET)");
    expect_one("{\"token\":{\"secret\":\"\"}}",
               "token.secret: required unless \"dev\" is true (set SURVEYBUS_TOKEN_SECRET)");
    expect_one("{\"token\":{\"secret\":\"surveybus-dev-secret\"}}",
               "token.secret: the development secret may only be used with \"dev\": true");
    sb_problems_clear(&probs);
    sb_config_t *c = load_str("{\"dev\":true}");
    ck_assert_ptr_nonnull(c);
    ck_assert_str_eq(c->token.secret, "surveybus-dev-secret");
    ck_assert(c->dev);
    sb_config_free(c);
    c = load_str("{\"dev\":true,\"token\":{\"secret\":\"mine\"}}");
    ck_assert_ptr_nonnull(c);
    ck_assert_str_eq(c->token.secret, "mine");
    sb_config_free(c);
    ck_assert_uint_eq(probs.n, 0);
}
END_TEST

/* ---------------------------------------------------------------- file, env, overrides */

START_TEST(test_file_overrides)
{
    sb_config_t *c = sb_config_load(DATA "full.json", NULL, 0, &probs);
    ck_assert_uint_eq(probs.n, 0);
    ck_assert_ptr_nonnull(c);
    ck_assert_str_eq(c->kafka.brokers, "k1:9092,k2:9092");
    ck_assert_str_eq(c->kafka.group, "g1");
    ck_assert_uint_eq(c->kafka.n_properties, 4);
    ck_assert_str_eq(c->kafka.properties[0].key, "security.protocol");
    ck_assert_str_eq(c->kafka.properties[0].value, "SASL_SSL");
    ck_assert_str_eq(c->kafka.properties[2].key, "linger.ms");
    ck_assert_str_eq(c->kafka.properties[2].value, "5");
    ck_assert_str_eq(c->kafka.properties[3].value, "true");
    ck_assert_str_eq(c->mqtt.host, "broker.example");
    ck_assert_int_eq(c->mqtt.port, 8883);
    ck_assert_str_eq(c->mqtt.user, "bob");
    ck_assert_str_eq(c->mqtt.pass, "hunter2");
    ck_assert_str_eq(c->mqtt.client_id, "sb-test");
    ck_assert_int_eq(c->mqtt.qos, 2);
    ck_assert_str_eq(c->redis.host, "cache.example");
    ck_assert_int_eq(c->redis.port, 6380);
    ck_assert_int_eq(c->redis.db, 3);
    ck_assert_str_eq(c->redis.pass, "rpw");
    ck_assert_str_eq(c->redis.prefix, "t:");
    ck_assert_str_eq(c->token.secret, "file-secret");
    /* partial sections keep the other defaults */
    ck_assert_str_eq(c->topics.interactions, "ix");
    ck_assert_str_eq(c->topics.requests, "survey.requests");
    ck_assert_str_eq(c->topics.dlq, "dead.letters");
    ck_assert_uint_eq(c->mqtt_topics.n_interactions, 2);
    ck_assert_str_eq(c->mqtt_topics.interactions[1], "b/+/done");
    ck_assert_str_eq(c->mqtt_topics.alerts, "al/{type}");
    ck_assert_str_eq(c->mqtt_topics.requests, "surveys/{channel}/{customer_id}");
    ck_assert_str_eq(c->mapping[SB_F_CUSTOMER_ID], "/customer/id");
    ck_assert_str_eq(c->mapping[SB_F_KPI_TRANSFERS], "/stats/xfers");
    ck_assert_str_eq(c->mapping[SB_F_AGENT], "");
    ck_assert_str_eq(c->mapping[SB_F_EVENT_ID], "/event_id");
    ck_assert_int_eq(c->scales[SB_KIND_CSAT].max, 10);
    ck_assert_int_eq(c->scales[SB_KIND_CSAT].satisfied_min, 8);
    ck_assert(!c->scales[SB_KIND_CES].easy_low);
    ck_assert_int_eq(c->scales[SB_KIND_CES].easy_min, 4); /* max - 1 when not given */
    /* questions merge over the defaults: en replaced, zh-CN kept, fr added */
    ck_assert_uint_eq(c->questions[SB_KIND_CSAT].n, 3);
    ck_assert_str_eq(sb_config_question(c, SB_KIND_CSAT, "en"), "Happy?");
    ck_assert_str_eq(sb_config_question(c, SB_KIND_CSAT, "fr"), "Êtes-vous satisfait ?");
    ck_assert_str_eq(sb_config_question(c, SB_KIND_CSAT, "zh-CN"), "您对本次服务满意吗?");
    ck_assert_uint_eq(c->n_journeys, 2);
    ck_assert_int_eq(c->fatigue.min_gap_ms, 7 * 86400000LL);
    ck_assert_int_eq(c->fatigue.min_gap_by_kind_ms[SB_KIND_NPS], 90 * 86400000LL);
    ck_assert_int_eq(c->fatigue.min_gap_by_kind_ms[SB_KIND_CSAT], -1);
    ck_assert_int_eq(c->fatigue.max_per_30d, 3);
    ck_assert_uint_eq(c->n_windows, 3); /* sorted */
    ck_assert_int_eq(c->windows_ms[0], 15 * 60000);
    ck_assert_int_eq(c->windows_ms[1], 3600000);
    ck_assert_int_eq(c->windows_ms[2], 30 * 86400000LL);
    ck_assert_int_eq(c->allowed_lateness_ms, 120000);
    ck_assert_uint_eq(c->n_dimensions, 2);
    ck_assert_int_eq(c->dimensions[0], SB_DIM_REGION);
    ck_assert_int_eq(c->dimensions[1], SB_DIM_KIND);
    ck_assert_int_eq(c->max_dimension_values, 500);
    ck_assert_int_eq(c->alerts.nps_max, 5);
    ck_assert_int_eq(c->alerts.csat_max, 6);
    ck_assert_int_eq(c->alerts.ces_hard_min, 3);
    ck_assert_int_eq(c->alerts.ces_hard_max, 1);
    ck_assert_int_eq(c->publish.interval_ms, 250);
    ck_assert_int_eq(c->publish.republish_s, 0);
    ck_assert_str_eq(c->http.dispatcher, "127.0.0.1:9101");
    ck_assert_str_eq(c->http.aggregator, ":9102");
    ck_assert_str_eq(c->http.web, "");
    ck_assert_str_eq(c->http.web_root, "/srv/www");
    ck_assert_int_eq(c->tuning.batch, 10);
    ck_assert_int_eq(c->tuning.batch_ms, 5);
    ck_assert_int_eq(c->tuning.lease_ms, 120000);
    ck_assert_int_eq(c->log_level, SB_LOG_DEBUG);
    sb_config_free(c);
}
END_TEST

START_TEST(test_env_over_file)
{
    setenv("SURVEYBUS_KAFKA_BROKERS", "env-k:9093", 1);
    setenv("SURVEYBUS_MQTT_URL", "mqtt://env-m", 1);
    setenv("SURVEYBUS_REDIS_URL", "redis://env-r:7000/2", 1);
    setenv("SURVEYBUS_TOKEN_SECRET", "env-secret", 1);
    setenv("SURVEYBUS_LOG_LEVEL", "warn", 1);
    sb_config_t *c = sb_config_load(DATA "full.json", NULL, 0, &probs);
    ck_assert_uint_eq(probs.n, 0);
    ck_assert_ptr_nonnull(c);
    ck_assert_str_eq(c->kafka.brokers, "env-k:9093");
    ck_assert_str_eq(c->mqtt.url, "mqtt://env-m");
    ck_assert_str_eq(c->mqtt.host, "env-m");
    ck_assert_int_eq(c->mqtt.port, 1883);
    ck_assert_ptr_null(c->mqtt.user);
    ck_assert_str_eq(c->redis.host, "env-r");
    ck_assert_int_eq(c->redis.port, 7000);
    ck_assert_int_eq(c->redis.db, 2);
    ck_assert_ptr_null(c->redis.pass);
    ck_assert_str_eq(c->token.secret, "env-secret");
    ck_assert_int_eq(c->log_level, SB_LOG_WARN);
    ck_assert_str_eq(c->kafka.group, "g1"); /* untouched by env */
    sb_config_free(c);

    /* an empty variable turns the transport off */
    setenv("SURVEYBUS_KAFKA_BROKERS", "", 1);
    setenv("SURVEYBUS_MQTT_URL", "", 1);
    c = sb_config_load(DATA "full.json", NULL, 0, &probs);
    ck_assert_ptr_nonnull(c);
    ck_assert_str_eq(c->kafka.brokers, "");
    ck_assert_str_eq(c->mqtt.url, "");
    ck_assert_ptr_null(c->mqtt.host);
    sb_config_free(c);

    /* a bad value names the variable it came from */
    setenv("SURVEYBUS_LOG_LEVEL", "loud", 1);
    c = sb_config_load(DATA "full.json", NULL, 0, &probs);
    ck_assert_ptr_null(c);
    ck_assert_uint_eq(probs.n, 1);
    ck_assert_str_eq(probs.msg[0], "log.level: must be debug, info, warn, error or off, got "
                                   "\"loud\" (from SURVEYBUS_LOG_LEVEL)");
}
END_TEST

START_TEST(test_overrides_over_env)
{
    setenv("SURVEYBUS_KAFKA_BROKERS", "env-k:9093", 1);
    setenv("SURVEYBUS_TOKEN_SECRET", "env-secret", 1);
    const char *ov[] = {
        "kafka.brokers=flag-k:1",
        "publish.interval_ms=500",  /* parsed as JSON: an integer */
        "token.secret=flag-secret", /* not JSON: taken as a string */
        "journeys[0].delay=5s",
        "journeys.1.channel=sms",            /* numeric segment indexes an array */
        "mapping.kpi.transfers=/t",          /* dotted key of an existing entry */
        "scales.csat={\"satisfied_min\":5}", /* objects merge */
        "dimensions=[\"team\"]",
        "dev=true",
    };
    sb_config_t *c = sb_config_load(DATA "full.json", ov, sizeof ov / sizeof ov[0], &probs);
    for (size_t i = 0; i < probs.n; i++)
        fprintf(stderr, "%s\n", probs.msg[i]);
    ck_assert_uint_eq(probs.n, 0);
    ck_assert_ptr_nonnull(c);
    ck_assert_str_eq(c->kafka.brokers, "flag-k:1");
    ck_assert_int_eq(c->publish.interval_ms, 500);
    ck_assert_str_eq(c->token.secret, "flag-secret");
    ck_assert_int_eq(c->journeys[0].delay_ms, 5000);
    ck_assert_str_eq(c->journeys[1].channel, "sms");
    ck_assert_str_eq(c->mapping[SB_F_KPI_TRANSFERS], "/t");
    ck_assert_int_eq(c->scales[SB_KIND_CSAT].satisfied_min, 5);
    ck_assert_int_eq(c->scales[SB_KIND_CSAT].max, 10);
    ck_assert_uint_eq(c->n_dimensions, 1);
    ck_assert_int_eq(c->dimensions[0], SB_DIM_TEAM);
    ck_assert(c->dev);
    sb_config_free(c);
}
END_TEST

START_TEST(test_override_problems)
{
    setenv("SURVEYBUS_TOKEN_SECRET", "s", 1);
    const char *ov[] = {
        "publish.interval_ms=\"fast\"", /* same type checks as the file */
        "kafka.brokres=x",              /* unknown keys too */
        "no-equals-sign",
        "kafka.brokers.x=1",
        "journeys[5].delay=1s",
        "a..b=1",
    };
    sb_config_t *c = sb_config_load(NULL, ov, sizeof ov / sizeof ov[0], &probs);
    ck_assert_ptr_null(c);
    ck_problem("publish.interval_ms: expected integer, got string (from override)");
    ck_problem("kafka.brokres: unknown key (did you mean \"brokers\"?) (from override)");
    ck_problem("override no-equals-sign: expected path=value");
    ck_problem("override kafka.brokers.x: kafka.brokers is a string, not an object");
    ck_problem("override journeys[5].delay: journeys has 0 elements; expected an index 0..0");
    ck_problem("override a..b: malformed path (expected a.b.c or a[0].b)");
    ck_assert_uint_eq(probs.n, 6);
}
END_TEST

/* A problem with an object or a list is labelled when an override set a part of it (the
 * label used to need the override at the problem's path or above it). */
START_TEST(test_override_label_on_parent)
{
    const char *ov[] = {"dev=true", "scales.csat.min=5", "windows[2]=1h", "scales.ces.easy_max=2"};
    sb_config_t *c = sb_config_load(NULL, ov, sizeof ov / sizeof ov[0], &probs);
    ck_assert_ptr_null(c);
    ck_problem("scales.csat: min (5) must be below max (5) (from override)");
    ck_problem("windows: duplicate window 1h (from override)");
    ck_assert_uint_eq(probs.n, 2);
    /* the same problems from the file: no label, although an override set a neighbour
     * (scales.ces.easy_max) and one a path that starts alike (dimensions[1] is not part of
     * dimensions[10]) */
    sb_problems_clear(&probs);
    char path[] = "/tmp/sb-test-config-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    const char *text = "{\"dev\":true,\"scales\":{\"csat\":{\"min\":5}},\"dimensions\":["
                       "\"channel\",\"agent\",\"team\",\"region\",\"product\",\"stage\","
                       "\"journey\",\"kind\",\"locale\",\"device\",\"team\"]}";
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    const char *ov2[] = {"scales.ces.easy_max=2", "dimensions[1]=agent"};
    c = sb_config_load(path, ov2, 2, &probs);
    unlink(path);
    ck_assert_ptr_null(c);
    ck_problem("scales.csat: min (5) must be below max (5)");
    ck_problem("dimensions[10]: duplicate dimension \"team\"");
    ck_assert_uint_eq(probs.n, 2);
}
END_TEST

START_TEST(test_no_file)
{
    sb_config_t *c = sb_config_load(DATA "does-not-exist.json", NULL, 0, &probs);
    ck_assert_ptr_null(c);
    ck_assert_uint_eq(probs.n, 1);
    ck_assert_str_eq(probs.msg[0], "cannot open config file: No such file or directory");
    /* no file at all: defaults (plus dev for the secret) */
    sb_problems_clear(&probs);
    const char *ov[] = {"dev=true"};
    c = sb_config_load(NULL, ov, 1, &probs);
    ck_assert_ptr_nonnull(c);
    ck_assert_str_eq(c->kafka.brokers, "localhost:9092");
    sb_config_free(c);
}
END_TEST

/* ---------------------------------------------------------------- problems */

START_TEST(test_invalid_json)
{
    sb_config_t *c = sb_config_load(DATA "invalid.json", NULL, 0, &probs);
    ck_assert_ptr_null(c);
    ck_assert_uint_eq(probs.n, 1);
    ck_assert_str_eq(probs.msg[0], "invalid JSON at line 4, column 3: string or '}' expected "
                                   "near '}'");
    expect_one("[1,2]", "expected a JSON object at the top level, got array");
    expect_one("{\"dev\":true,\"dev\":false}",
               "invalid JSON at line 1, column 17: duplicate object key near '\"dev\"'");
}
END_TEST

START_TEST(test_type_errors)
{
    expect_one("{\"dev\":true,\"publish\":{\"interval_ms\":\"fast\"}}",
               "publish.interval_ms: expected integer, got string");
    expect_one("{\"dev\":true,\"publish\":{\"interval_ms\":1.5}}",
               "publish.interval_ms: expected integer, got number");
    expect_one("{\"dev\":\"yes\",\"token\":{\"secret\":\"s\"}}",
               "dev: expected boolean, got string");
    expect_one("{\"dev\":true,\"kafka\":[]}", "kafka: expected object, got array");
    expect_one("{\"dev\":true,\"kafka\":{\"group\":null}}",
               "kafka.group: expected string, got null");
    expect_one("{\"dev\":true,\"journeys\":{}}", "journeys: expected array, got object");
    expect_one("{\"dev\":true,\"windows\":\"1h\"}",
               "windows: expected array of durations, got string");
    expect_one("{\"dev\":true,\"kafka\":{\"properties\":{\"x\":{}}}}",
               "kafka.properties.x: expected string, got object");
    expect_one("{\"dev\":true,\"allowed_lateness\":600}",
               "allowed_lateness: expected duration (e.g. \"30s\"), got integer");
}
END_TEST

START_TEST(test_unknown_keys)
{
    expect_one("{\"dev\":true,\"kafka\":{\"brokres\":\"x\"}}",
               "kafka.brokres: unknown key (did you mean \"brokers\"?)");
    expect_one("{\"dev\":true,\"zzz\":1}", "zzz: unknown key");
    expect_one("{\"dev\":true,\"mapping\":{\"customer\":\"/c\"}}",
               "mapping.customer: unknown field (did you mean \"customer_id\"?)");
    expect_one("{\"dev\":true,\"scales\":{\"nps\":{\"satisfied_min\":9}}}",
               "scales.nps.satisfied_min: unknown key");
    expect_one("{\"dev\":true,\"questions\":{\"xyz\":{}}}", "questions.xyz: unknown key");
    expect_one("{\"dev\":true,\"journeys\":[{\"name\":\"j\",\"survey\":\"nps\",\"dealy\":\"1h\"}]}",
               "journeys[0].dealy: unknown key (did you mean \"delay\"?)");
    expect_one("{\"dev\":true,\"fatigue\":{\"min_gap_by_kind\":{\"promoters\":\"1d\"}}}",
               "fatigue.min_gap_by_kind.promoters: unknown survey kind");
}
END_TEST

START_TEST(test_range_errors)
{
    expect_one("{\"dev\":true,\"mqtt\":{\"qos\":3}}", "mqtt.qos: must be between 0 and 2, got 3");
    expect_one("{\"dev\":true,\"redis\":{\"url\":\"\"}}", "redis.url: must not be empty");
    expect_one("{\"dev\":true,\"scales\":{\"csat\":{\"min\":5,\"max\":5}}}",
               "scales.csat: min (5) must be below max (5)");
    expect_one("{\"dev\":true,\"scales\":{\"csat\":{\"max\":11}}}",
               "scales.csat.max: must be between 0 and 10, got 11");
    expect_one("{\"dev\":true,\"scales\":{\"csat\":{\"satisfied_min\":6}}}",
               "scales.csat.satisfied_min: must be within the scale 1..5, got 6");
    expect_one("{\"dev\":true,\"scales\":{\"ces\":{\"easy\":\"medium\"}}}",
               "scales.ces.easy: must be \"low\" or \"high\", got \"medium\"");
    expect_one("{\"dev\":true,\"scales\":{\"nps\":{\"min\":1}}}",
               "scales.nps: NPS is defined on 0..10, got 1..10");
    expect_one("{\"dev\":true,\"alerts\":{\"csat_max\":7}}",
               "alerts.csat_max: must be within scales.csat (1..5), got 7");
    expect_one("{\"dev\":true,\"windows\":[\"90s\"]}",
               "windows[0]: must be a whole number of minutes, got 90s");
    expect_one("{\"dev\":true,\"windows\":[\"1h\",\"60m\"]}", "windows: duplicate window 1h");
    expect_one("{\"dev\":true,\"windows\":[]}", "windows: expected 1 to 8 windows, got 0");
    expect_one("{\"dev\":true,\"tuning\":{\"lease\":\"0s\"}}",
               "tuning.lease: must be between 1s and 1h, got 0s");
    expect_one("{\"dev\":true,\"dimensions\":[\"all\"]}",
               "dimensions[0]: \"all\" is always present and must not be listed");
    expect_one("{\"dev\":true,\"dimensions\":[\"team\",\"team\"]}",
               "dimensions[1]: duplicate dimension \"team\"");
    expect_one("{\"dev\":true,\"dimensions\":[\"regoin\"]}",
               "dimensions[0]: unknown dimension \"regoin\" (did you mean \"region\"?)");
    expect_one("{\"dev\":true,\"mapping\":{\"kind\":\"kind\"}}",
               "mapping.kind: not a JSON Pointer (\"\" or starting with \"/\"): \"kind\"");
    expect_one("{\"dev\":true,\"mapping\":{\"kind\":\"/a~2\"}}",
               "mapping.kind: not a JSON Pointer (\"\" or starting with \"/\"): \"/a~2\"");
    expect_one("{\"dev\":true,\"topics\":{\"dlq\":\"dead letters\"}}",
               "topics.dlq: \"dead letters\" is not a valid Kafka topic name (letters, digits, "
               "'.', '_', '-')");
    /* a stream sharing its topic with another would read back what is written to it */
    expect_one("{\"dev\":true,\"topics\":{\"dlq\":\"interactions\"}}",
               "topics.dlq: \"interactions\" is already topics.interactions; every stream "
               "needs its own topic");
    expect_one("{\"dev\":true,\"topics\":{\"requests\":\"r\",\"responses\":\"r\"}}",
               "topics.responses: \"r\" is already topics.requests; every stream needs its "
               "own topic");
    expect_one("{\"dev\":true,\"mqtt_topics\":{\"responses\":[\"a/#/b\"]}}",
               "mqtt_topics.responses[0]: '#' must be the last level");
    expect_one("{\"dev\":true,\"mqtt_topics\":{\"responses\":[\"a/x+/b\"]}}",
               "mqtt_topics.responses[0]: '+' and '#' must fill a whole topic level");
    expect_one("{\"dev\":true,\"mqtt_topics\":{\"alerts\":\"alerts/{kind}\"}}",
               "mqtt_topics.alerts: unknown placeholder {kind} (allowed: {type})");
    /* what sb_http_start cannot listen on is refused here too */
    expect_one("{\"dev\":true,\"http\":{\"aggregator\":\"[::1]:9102\"}}",
               "http.aggregator: expected \"host:port\" or \"\" (off): IPv6 addresses are not "
               "supported; use an IPv4 address or a host name");
    expect_one("{\"dev\":true,\"http\":{\"web\":\"localhost\"}}",
               "http.web: expected \"host:port\" or \"\" (off): missing port");
    expect_one("{\"dev\":true,\"log\":{\"level\":\"loud\"}}",
               "log.level: must be debug, info, warn, error or off, got \"loud\"");
    expect_one("{\"dev\":true,\"questions\":{\"nps\":{\"fr\":\"\"}}}",
               "questions.nps.fr: must not be empty");
    /* a question the request decoder would refuse (bad_chars) is refused here */
    expect_one("{\"dev\":true,\"questions\":{\"csat\":{\"en\":\"How?\\r\\nRate us\"}}}",
               "questions.csat.en: may not contain control characters other than newline and "
               "tab: \"How?\\x0d\\x0aRate us\"");
    expect_one("{\"dev\":true,\"questions\":{\"ces\":{\"en\":\"a\\u0007\"}}}",
               "questions.ces.en: may not contain control characters other than newline and "
               "tab: \"a\\x07\"");
    expect_one("{\"dev\":true,\"questions\":{\"nps\":{\"en\":\"a\\u007f\"}}}",
               "questions.nps.en: may not contain control characters other than newline and "
               "tab: \"a\\x7f\"");
    expect_one("{\"dev\":true,\"questions\":{\"nps\":{\"en\":\"a\\u0085\"}}}",
               "questions.nps.en: may not contain control characters other than newline and "
               "tab: \"a\xc2\x85\"");
}
END_TEST

/* An interaction filter and a response filter that some topic matches both: the dispatcher
 * would read responses as events, the aggregator events as responses. */
#define OVERLAPS "overlaps mqtt_topics.interactions"
#define READ_AS_BOTH                                                                               \
    "a message on a topic both match would be read as an interaction event by the dispatcher "     \
    "and as a response by the aggregator; every stream needs its own topics"
START_TEST(test_mqtt_filters_apart)
{
    /* '#' catches the default response filter */
    expect_one("{\"dev\":true,\"mqtt_topics\":{\"interactions\":[\"fieldservice/#\"]}}",
               "mqtt_topics.responses[0]: \"fieldservice/+/survey/response\" " OVERLAPS
               "[0] \"fieldservice/#\": " READ_AS_BOTH);
    /* '+' against a name; the same filter in both lists */
    expect_one("{\"dev\":true,\"mqtt_topics\":{\"responses\":[\"fieldservice/+/+/completed\"]}}",
               "mqtt_topics.responses[0]: \"fieldservice/+/+/completed\" " OVERLAPS
               "[0] \"fieldservice/+/visit/completed\": " READ_AS_BOTH);
    expect_one(
        "{\"dev\":true,\"mqtt_topics\":{\"interactions\":[\"x/y\"],\"responses\":[\"x/y\"]}}",
        "mqtt_topics.responses[0]: \"x/y\" " OVERLAPS "[0] \"x/y\": " READ_AS_BOTH);
    /* every pair, at the response filter: "b" is the parent level of "b/#" */
    sb_problems_clear(&probs);
    ck_assert_ptr_null(load_str("{\"dev\":true,\"mqtt_topics\":{\"interactions\":[\"a/+\","
                                "\"b/#\"],\"responses\":[\"a/b\",\"c/+\",\"b\",\"+/x\"]}}"));
    ck_problem("mqtt_topics.responses[0]: \"a/b\" " OVERLAPS "[0] \"a/+\": " READ_AS_BOTH);
    ck_problem("mqtt_topics.responses[2]: \"b\" " OVERLAPS "[1] \"b/#\": " READ_AS_BOTH);
    ck_problem("mqtt_topics.responses[3]: \"+/x\" " OVERLAPS "[0] \"a/+\": " READ_AS_BOTH);
    ck_problem("mqtt_topics.responses[3]: \"+/x\" " OVERLAPS "[1] \"b/#\": " READ_AS_BOTH);
    ck_assert_uint_eq(probs.n, 4);
    /* from an override: labelled as such */
    sb_problems_clear(&probs);
    const char *ov[] = {"dev=true", "mqtt_topics.responses=[\"fieldservice/+/visit/+\"]"};
    ck_assert_ptr_null(sb_config_load(NULL, ov, 2, &probs));
    ck_problem("mqtt_topics.responses[0]: \"fieldservice/+/visit/+\" " OVERLAPS
               "[0] \"fieldservice/+/visit/completed\": " READ_AS_BOTH " (from override)");
    ck_assert_uint_eq(probs.n, 1);

    /* apart: not the same number of levels, a level that differs, '$' topics (never
     * matched by a filter that starts with a wildcard), "+" and "/#" (they share only "",
     * which is no topic) */
    static const char *const apart[] = {
        "{\"dev\":true,\"mqtt_topics\":{\"interactions\":[\"a/+\"],\"responses\":[\"a/+/+\"]}}",
        "{\"dev\":true,\"mqtt_topics\":{\"interactions\":[\"a/+/c\"],\"responses\":[\"+/b/d\"]}}",
        "{\"dev\":true,\"mqtt_topics\":{\"interactions\":[\"#\"],\"responses\":[\"$r/+\"]}}",
        "{\"dev\":true,\"mqtt_topics\":{\"interactions\":[\"$i/#\"],\"responses\":[\"+/#\"]}}",
        "{\"dev\":true,\"mqtt_topics\":{\"interactions\":[\"+\"],\"responses\":[\"/#\"]}}",
        /* overlaps inside one list are not between streams */
        "{\"dev\":true,\"mqtt_topics\":{\"interactions\":[\"v/+\",\"v/#\"],\"responses\":[\"r/#\","
        "\"r/+\"]}}",
        /* no filter at all on one side */
        "{\"dev\":true,\"mqtt_topics\":{\"interactions\":[\"#\"],\"responses\":[]}}",
    };
    for (size_t i = 0; i < sizeof apart / sizeof apart[0]; i++) {
        sb_problems_clear(&probs);
        sb_config_t *c = load_str(apart[i]);
        if (!c)
            for (size_t k = 0; k < probs.n; k++)
                fprintf(stderr, "  got: %s\n", probs.msg[k]);
        ck_assert_msg(c != NULL, "%s", apart[i]);
        sb_config_free(c);
    }

    /* a list with a malformed filter is not compared (its indexes would be off): only the
     * malformed one is reported */
    expect_one("{\"dev\":true,\"mqtt_topics\":{\"interactions\":[\"a/#/b\",\"#\"]}}",
               "mqtt_topics.interactions[0]: '#' must be the last level");
}
END_TEST

START_TEST(test_many_problems)
{
    sb_config_t *c = sb_config_load(DATA "many.json", NULL, 0, &probs);
    ck_assert_ptr_null(c);
    ck_problem("kafka.brokres: unknown key (did you mean \"brokers\"?)");
    ck_problem("publish.interval_ms: expected integer, got string");
    ck_problem("journeys[1].delay: not a duration: \"5x\"");
    ck_problem("journeys[1].quiet_hours: expected \"HH:MM-HH:MM\", got \"25:00-08:00\"");
    ck_problem("windows[1]: must be a whole number of minutes, got 90s");
    ck_problem("dimensions[0]: unknown dimension \"regoin\" (did you mean \"region\"?)");
    ck_assert_uint_eq(probs.n, 6);
}
END_TEST

/* ---------------------------------------------------------------- URLs */

static sb_config_t *with_urls(const char *mqtt, const char *redis)
{
    char text[512];
    snprintf(text, sizeof text,
             "{\"dev\":true,\"mqtt\":{\"url\":\"%s\"},\"redis\":{\"url\":\"%s\"}}", mqtt, redis);
    sb_problems_clear(&probs);
    return load_str(text);
}

START_TEST(test_urls)
{
    sb_config_t *c = with_urls("mqtt://u%40x:p%3Aw@[::1]:1884", "redis://:se%2Fcret@10.0.0.5");
    ck_assert_ptr_nonnull(c);
    ck_assert_str_eq(c->mqtt.user, "u@x");
    ck_assert_str_eq(c->mqtt.pass, "p:w");
    ck_assert_str_eq(c->mqtt.host, "::1");
    ck_assert_int_eq(c->mqtt.port, 1884);
    ck_assert_str_eq(c->redis.pass, "se/cret");
    ck_assert_str_eq(c->redis.host, "10.0.0.5");
    ck_assert_int_eq(c->redis.port, 6379);
    ck_assert_int_eq(c->redis.db, 0);
    sb_config_free(c);

    c = with_urls("mqtt://onlyuser@h", "redis://h:1/15");
    ck_assert_ptr_nonnull(c);
    ck_assert_str_eq(c->mqtt.user, "onlyuser");
    ck_assert_ptr_null(c->mqtt.pass);
    ck_assert_int_eq(c->mqtt.port, 1883);
    ck_assert_int_eq(c->redis.port, 1);
    ck_assert_int_eq(c->redis.db, 15);
    sb_config_free(c);

    c = with_urls("", "redis://h/");
    ck_assert_ptr_nonnull(c); /* mqtt off */
    ck_assert_str_eq(c->mqtt.url, "");
    ck_assert_ptr_null(c->mqtt.host);
    ck_assert_int_eq(c->redis.db, 0);
    sb_config_free(c);

    static const struct {
        const char *mqtt, *redis, *want;
    } bad[] = {
        {"tcp://h", "redis://h",
         "mqtt.url: expected mqtt://[user[:pass]@]host[:port]: "
         "unsupported scheme"},
        {"mqtt://h:0", "redis://h",
         "mqtt.url: expected mqtt://[user[:pass]@]host[:port]: "
         "port must be a number 1..65535"},
        {"mqtt://h:x", "redis://h",
         "mqtt.url: expected mqtt://[user[:pass]@]host[:port]: "
         "port must be a number 1..65535"},
        {"mqtt://:1883", "redis://h",
         "mqtt.url: expected mqtt://[user[:pass]@]host[:port]: "
         "missing host"},
        {"mqtt://h/topic", "redis://h",
         "mqtt.url: expected mqtt://[user[:pass]@]host[:port]: "
         "unexpected path"},
        {"mqtt://::1", "redis://h",
         "mqtt.url: expected mqtt://[user[:pass]@]host[:port]: "
         "IPv6 addresses must be written in brackets"},
        {"mqtt://:pw@h", "redis://h",
         "mqtt.url: expected mqtt://[user[:pass]@]host[:port]: "
         "a password needs a user name"},
        {"mqtt://u:%zz@h", "redis://h",
         "mqtt.url: expected mqtt://[user[:pass]@]host[:port]: "
         "bad %-escape in user or password"},
        {"mqtt://h", "redis://h/x",
         "redis.url: expected redis://[:pass@]host[:port][/db]: "
         "database must be a non-negative number"},
        {"mqtt://h", "redis://h?db=1",
         "redis.url: expected redis://[:pass@]host[:port][/db]: "
         "query and fragment are not supported"},
        {"mqtt://h", "redis://admin:pw@h",
         "redis.url: expected redis://[:pass@]host[:port][/db]: "
         "user names are not supported (use "
         "redis://:password@host)"},
        {"mqtt://h", "localhost:6379",
         "redis.url: expected redis://[:pass@]host[:port][/db]: "
         "unsupported scheme"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        c = with_urls(bad[i].mqtt, bad[i].redis);
        ck_assert_ptr_null(c);
        ck_assert_uint_eq(probs.n, 1);
        ck_assert_str_eq(probs.msg[0], bad[i].want);
    }
}
END_TEST

/* ---------------------------------------------------------------- journeys */

START_TEST(test_journeys)
{
    sb_config_t *c = sb_config_load(DATA "full.json", NULL, 0, &probs);
    ck_assert_ptr_nonnull(c);
    const sb_journey_t *j = sb_config_journey(c, "support-csat");
    ck_assert_ptr_eq(j, &c->journeys[0]);
    ck_assert_str_eq(j->name, "support-csat");
    ck_assert_uint_eq(j->n_on, 2);
    ck_assert_int_eq(j->on[0].field, SB_F_TYPE);
    ck_assert_str_eq(j->on[0].value, "interaction.completed");
    ck_assert_int_eq(j->on[1].field, SB_F_KIND);
    ck_assert_str_eq(j->on[1].value, "support_ticket");
    ck_assert_int_eq(j->survey, SB_KIND_CSAT);
    ck_assert_int_eq(j->delay_ms, 3600000);
    ck_assert_int_eq(j->expires_ms, 72 * 3600000LL);
    ck_assert_int_eq(j->remind_after_ms, 24 * 3600000LL);
    ck_assert_str_eq(j->channel, "email");
    ck_assert(j->has_quiet);
    ck_assert_int_eq(j->quiet_start_min, 21 * 60);
    ck_assert_int_eq(j->quiet_end_min, 8 * 60);

    j = sb_config_journey(c, "onboarding-nps");
    ck_assert_ptr_nonnull(j);
    ck_assert_int_eq(j->survey, SB_KIND_NPS);
    ck_assert_int_eq(j->delay_ms, 30 * 86400000LL);
    ck_assert_int_eq(j->expires_ms, 7 * 86400000LL); /* default */
    ck_assert_int_eq(j->remind_after_ms, 0);
    ck_assert_ptr_null(j->channel);
    ck_assert(!j->has_quiet);
    ck_assert_ptr_null(sb_config_journey(c, "nope"));
    sb_config_free(c);

    c = load_str("{\"dev\":true,\"journeys\":[{\"name\":\"n\",\"survey\":\"ces\","
                 "\"quiet_hours\":\"00:30-06:15\",\"delay\":\"500ms\"}]}");
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(c->journeys[0].quiet_start_min, 30);
    ck_assert_int_eq(c->journeys[0].quiet_end_min, 6 * 60 + 15);
    ck_assert_int_eq(c->journeys[0].delay_ms, 500);
    ck_assert_uint_eq(c->journeys[0].n_on, 0);
    sb_config_free(c);
}
END_TEST

START_TEST(test_journey_errors)
{
    expect_one("{\"dev\":true,\"journeys\":[{\"survey\":\"nps\"}]}", "journeys[0].name: required");
    expect_one("{\"dev\":true,\"journeys\":[{\"name\":\"n\"}]}", "journeys[0].survey: required");
    expect_one("{\"dev\":true,\"journeys\":[{\"name\":\"a/b\",\"survey\":\"nps\"}]}",
               "journeys[0].name: \"a/b\" may not contain control characters, '+', '#', '/' "
               "or '|'");
    expect_one("{\"dev\":true,\"journeys\":[{\"name\":\"a\",\"survey\":\"nps\"},"
               "{\"name\":\"a\",\"survey\":\"csat\"}]}",
               "journeys[1].name: duplicate journey name \"a\" (also journeys[0])");
    expect_one("{\"dev\":true,\"journeys\":[{\"name\":\"a\",\"survey\":\"xps\"}]}",
               "journeys[0].survey: must be \"csat\", \"ces\" or \"nps\", got \"xps\"");
    expect_one("{\"dev\":true,\"journeys\":[{\"name\":\"a\",\"survey\":\"nps\",\"delay\":\"5x\"}]}",
               "journeys[0].delay: not a duration: \"5x\"");
    expect_one("{\"dev\":true,\"journeys\":[{\"name\":\"a\",\"survey\":\"nps\",\"expires\":\"1h\","
               "\"remind_after\":\"2h\"}]}",
               "journeys[0].remind_after: must be shorter than expires (1h)");
    expect_one("{\"dev\":true,\"journeys\":[{\"name\":\"a\",\"survey\":\"nps\","
               "\"on\":{\"type\":\"interaction.reopened\"}}]}",
               "journeys[0].on.type: only completion events start journeys "
               "(\"interaction.completed\" or \"visit.completed\"), got \"interaction.reopened\"");
    expect_one("{\"dev\":true,\"journeys\":[{\"name\":\"a\",\"survey\":\"nps\","
               "\"on\":{\"knd\":\"x\"}}]}",
               "journeys[0].on.knd: unknown field (did you mean \"kind\"?)");
    expect_one("{\"dev\":true,\"journeys\":[{\"name\":\"a\",\"survey\":\"nps\","
               "\"on\":{\"kind\":7}}]}",
               "journeys[0].on.kind: expected string, got integer");
    expect_one("{\"dev\":true,\"journeys\":[{\"name\":\"a\",\"survey\":\"nps\","
               "\"quiet_hours\":\"9:00-17:00\"}]}",
               "journeys[0].quiet_hours: expected \"HH:MM-HH:MM\", got \"9:00-17:00\"");
    expect_one("{\"dev\":true,\"journeys\":[{\"name\":\"a\",\"survey\":\"nps\","
               "\"quiet_hours\":\"08:00-08:00\"}]}",
               "journeys[0].quiet_hours: start and end are equal: \"08:00-08:00\"");
    expect_one("{\"dev\":true,\"journeys\":[{\"name\":\"a\",\"survey\":\"nps\","
               "\"channel\":\"e+mail\"}]}",
               "journeys[0].channel: \"e+mail\" may not contain control characters, '+', '#', "
               "'/' or '|'");
}
END_TEST

/* ---------------------------------------------------------------- questions, dump */

START_TEST(test_question_fallback)
{
    sb_config_t *c = load_str("{\"dev\":true,\"questions\":{\"nps\":{\"pt\":\"PT?\","
                              "\"pt-BR\":\"BR?\",\"de\":\"Zeile 1\\n\\tZeile 2\"}}}");
    ck_assert_ptr_nonnull(c);
    /* newline and tab are the control characters a question may hold */
    ck_assert_str_eq(sb_config_question(c, SB_KIND_NPS, "de"), "Zeile 1\n\tZeile 2");
    const char *en = "How likely are you to recommend us to a friend or colleague?";
    ck_assert_str_eq(sb_config_question(c, SB_KIND_NPS, "pt-BR"), "BR?");
    ck_assert_str_eq(sb_config_question(c, SB_KIND_NPS, "PT-br"), "BR?"); /* case-insensitive */
    ck_assert_str_eq(sb_config_question(c, SB_KIND_NPS, "pt-PT"), "PT?"); /* language */
    ck_assert_str_eq(sb_config_question(c, SB_KIND_NPS, "zh-TW"),
                     "您有多大可能向朋友或同事推荐我们?"); /* same language, other region */
    ck_assert_str_eq(sb_config_question(c, SB_KIND_NPS, "zh"), "您有多大可能向朋友或同事推荐我们?");
    ck_assert_str_eq(sb_config_question(c, SB_KIND_NPS, "fr-FR"), en);
    ck_assert_str_eq(sb_config_question(c, SB_KIND_NPS, ""), en);
    ck_assert_str_eq(sb_config_question(c, SB_KIND_NPS, NULL), en);

    /* without "en" the first text is used; without any text, "" */
    sb_questions_t *q = &c->questions[SB_KIND_CES];
    free(q->text[0].key);
    free(q->text[0].value);
    q->text[0] = q->text[1];
    q->n = 1;
    ck_assert_str_eq(sb_config_question(c, SB_KIND_CES, "de"), "今天办理您的事情有多容易?");
    free(q->text[0].key);
    free(q->text[0].value);
    q->n = 0;
    ck_assert_str_eq(sb_config_question(c, SB_KIND_CES, "en"), "");
    ck_assert_str_eq(sb_config_question(c, (sb_kind_t)7, "en"), "");
    sb_config_free(c);
}
END_TEST

/* Locale tags ignore case (configuration.md §9.2), so a text written under "EN" or "zh-cn"
 * replaces the built-in "en" or "zh-CN" one, as "en" does (§1.1): it used to be added
 * beside it and never chosen, the built-in text coming first */
START_TEST(test_question_tag_case)
{
    sb_config_t *c = load_str("{\"dev\":true,\"questions\":{\"csat\":{\"EN\":\"Happy?\","
                              "\"zh-cn\":\"满意吗?\"}}}");
    ck_assert_ptr_nonnull(c);
    ck_assert_str_eq(sb_config_question(c, SB_KIND_CSAT, "en"), "Happy?");
    ck_assert_str_eq(sb_config_question(c, SB_KIND_CSAT, "en-GB"), "Happy?");
    ck_assert_str_eq(sb_config_question(c, SB_KIND_CSAT, "fr"), "Happy?");
    ck_assert_str_eq(sb_config_question(c, SB_KIND_CSAT, "zh-CN"), "满意吗?");
    ck_assert_str_eq(sb_config_question(c, SB_KIND_CSAT, "zh-TW"), "满意吗?");
    ck_assert_uint_eq(c->questions[SB_KIND_CSAT].n, 2);
    sb_config_free(c);
}
END_TEST

START_TEST(test_dump_round_trip)
{
    sb_config_t *c = sb_config_load(DATA "full.json", NULL, 0, &probs);
    ck_assert_ptr_nonnull(c);
    char *d1 = sb_config_dump(c);
    json_error_t e;
    json_t *doc = json_loads(d1, 0, &e);
    ck_assert_ptr_nonnull(doc);
    /* secrets are masked */
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(doc, "token"), "secret")),
                     "***");
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(doc, "mqtt"), "url")),
                     "mqtt://bob:***@broker.example:8883");
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(doc, "redis"), "url")),
                     "redis://:***@cache.example:6380/3");
    json_t *props = json_object_get(json_object_get(doc, "kafka"), "properties");
    ck_assert_str_eq(json_string_value(json_object_get(props, "sasl.password")), "***");
    ck_assert_str_eq(json_string_value(json_object_get(props, "linger.ms")), "5");
    ck_assert(strstr(d1, "hunter2") == NULL && strstr(d1, "file-secret") == NULL);
    /* effective values in file syntax */
    json_t *j0 = json_array_get(json_object_get(doc, "journeys"), 0);
    ck_assert_str_eq(json_string_value(json_object_get(j0, "quiet_hours")), "21:00-08:00");
    ck_assert_str_eq(json_string_value(json_object_get(j0, "expires")), "3d");
    ck_assert_str_eq(json_string_value(json_array_get(json_object_get(doc, "windows"), 0)), "15m");
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(doc, "log"), "level")),
                     "debug");
    json_decref(doc);

    /* dump -> load -> dump is a fixed point */
    sb_config_t *c2 = sb_config_load_string(d1, strlen(d1), &probs);
    for (size_t i = 0; i < probs.n; i++)
        fprintf(stderr, "%s\n", probs.msg[i]);
    ck_assert_ptr_nonnull(c2);
    char *d2 = sb_config_dump(c2);
    ck_assert_str_eq(d1, d2);
    ck_assert_int_eq(c2->journeys[0].quiet_start_min, 21 * 60);
    ck_assert_int_eq(c2->windows_ms[2], 30 * 86400000LL);
    free(d2);
    sb_config_free(c2);
    free(d1);
    sb_config_free(c);

    /* the defaults round-trip too (a dev config keeps its dev secret masked) */
    c = sb_config_new();
    d1 = sb_config_dump(c);
    c2 = sb_config_load_string(d1, strlen(d1), &probs);
    ck_assert_ptr_null(c2); /* secret is null in a bare default config */
    ck_problem("token.secret: required unless \"dev\" is true (set SURVEYBUS_TOKEN_SECRET)");
    free(d1);
    sb_config_free(c);
}
END_TEST

START_TEST(test_shipped_configs)
{
    sb_config_t *c = sb_config_load("config/dev.json", NULL, 0, &probs);
    for (size_t i = 0; i < probs.n; i++)
        fprintf(stderr, "%s\n", probs.msg[i]);
    ck_assert_ptr_nonnull(c);
    ck_assert(c->dev);
    ck_assert_uint_eq(c->n_journeys, 4);
    sb_config_free(c);
    setenv("SURVEYBUS_TOKEN_SECRET", "prod-secret", 1);
    c = sb_config_load("config/surveybus.json", NULL, 0, &probs);
    ck_assert_uint_eq(probs.n, 0);
    ck_assert_ptr_nonnull(c);
    ck_assert_uint_eq(c->n_journeys, 4);
    ck_assert_str_eq(c->journeys[1].name, "field-visit-csat");
    ck_assert_int_eq(c->fatigue.min_gap_by_kind_ms[SB_KIND_NPS], 90 * 86400000LL);
    sb_config_free(c);
}
END_TEST

static Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("config");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_names);
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_secret_rules);
    tcase_add_test(tc, test_file_overrides);
    tcase_add_test(tc, test_env_over_file);
    tcase_add_test(tc, test_overrides_over_env);
    tcase_add_test(tc, test_override_problems);
    tcase_add_test(tc, test_override_label_on_parent);
    tcase_add_test(tc, test_no_file);
    tcase_add_test(tc, test_invalid_json);
    tcase_add_test(tc, test_type_errors);
    tcase_add_test(tc, test_unknown_keys);
    tcase_add_test(tc, test_range_errors);
    tcase_add_test(tc, test_mqtt_filters_apart);
    tcase_add_test(tc, test_many_problems);
    tcase_add_test(tc, test_urls);
    tcase_add_test(tc, test_journeys);
    tcase_add_test(tc, test_journey_errors);
    tcase_add_test(tc, test_question_fallback);
    tcase_add_test(tc, test_question_tag_case);
    tcase_add_test(tc, test_dump_round_trip);
    tcase_add_test(tc, test_shipped_configs);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return sb_unit_run(config_suite());
}
