/* surveybus-web: serves the dashboard, its snapshot API and live stream (see web.h) on
 * http.web until SIGTERM / SIGINT, which ends every open stream and exits 0. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "log.h"
#include "web.h"

#define KEEPALIVE_MS 15000
#define WEB_REDIS_TIMEOUT_MS 2000 /* see sb_store_set_timeout below */
#define MAX_QUEUE 1024 /* events a stream may be behind before it is dropped */

int main(int argc, char **argv)
{
    sb_service_t svc;
    int init = sb_service_init(&svc, "web", argc, argv);
    if (init) return sb_service_init_status(init);
    sb_config_t *cfg = svc.cfg;
    if (!cfg->http.web || !cfg->http.web[0]) {
        fprintf(stderr, "surveybus-web: http.web is empty: no address to serve on\n");
        sb_service_fini(&svc);
        return 1;
    }
    char err[600];
    web_t w = {.cfg = cfg};
    w.store = sb_store_new(cfg, err, sizeof err);
    if (!w.store) {
        fprintf(stderr, "surveybus-web: redis: %s\n", err);
        sb_service_fini(&svc);
        return 1;
    }
    /* requests wait for each other on this connection: a hung Redis costs each of them at
     * most this (twice, with the reconnection), and a stop waits for the one running */
    sb_store_set_timeout(w.store, WEB_REDIS_TIMEOUT_MS);
    pthread_mutex_init(&w.lock, NULL);
    w.tally = sb_tally_new(w.store, cfg);
    w.hub = hub_new(MAX_QUEUE, KEEPALIVE_MS);
    int rc = 1;
    source_t *src = NULL;
    if (sb_http_can_listen(cfg->http.web, err, sizeof err) != 0 ||
        !(src = source_start(&svc, w.hub, err, sizeof err))) {
        fprintf(stderr, "surveybus-web: %s\n", err);
    } else {
        size_t n_counters;
        const sb_http_counter_t *counters = source_counters(src, &n_counters);
        sb_http_probe_t probe = {.cfg = cfg,
                                 .service = "web",
                                 .consumer = source_consumer(src),
                                 .mqtt = source_mqtt(src),
                                 .counters = counters,
                                 .n_counters = n_counters,
                                 .route = web_route,
                                 .route_arg = &w,
                                 .thread_per_connection = 1};
        sb_http_t *http = sb_http_start(cfg->http.web, &probe, err, sizeof err);
        if (!http) {
            fprintf(stderr, "surveybus-web: %s\n", err);
        } else {
            sb_info("dashboard on http://%s/ web_root=%s", sb_http_addr(http), cfg->http.web_root);
            while (!sb_service_stop)
                sb_service_sleep(1000);
            sb_info("stopping clients=%zu", hub_clients(w.hub));
            hub_stop(w.hub); /* every stream's read returns its end */
            sb_http_stop(http);
            rc = 0;
        }
        source_stop(src);
    }
    hub_free(w.hub);
    sb_tally_free(w.tally);
    sb_store_free(w.store);
    pthread_mutex_destroy(&w.lock);
    return sb_service_end(&svc, rc);
}
