#!/usr/bin/env bash
# `make demo`: the whole pipeline on this machine. Starts redis-server, mosquitto and
# surveybus-devkafka on free loopback ports in a temp dir, then surveybus-dispatcher,
# surveybus-aggregator and `surveybusctl simulate` (interactions in, customers answering their
# surveys), and shows `surveybusctl watch` until Ctrl-C; everything is stopped on exit.
# DEMO_RATE=events/s (default 20), DEMO_DIMENSION=region (the watch view's rows),
# DEMO_SECONDS=N: stop after about N seconds and print the aggregator's counters (smoke test).
# DEMO_TEST="command": run it (with WEB_URL and CTL set) instead of the live view, and exit
# with its status (the browser test). The dashboard is served when web/dist is built
# (make web).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$ROOT/bin
PARTITIONS=4
RATE=${DEMO_RATE:-20}
DIMENSION=${DEMO_DIMENSION:-region}
CFG=$ROOT/config/dev.json

for b in surveybus-dispatcher surveybus-aggregator surveybus-devkafka surveybusctl; do
    [ -x "$BIN/$b" ] || { echo "demo: $BIN/$b missing (run: make demo)" >&2; exit 1; }
done
for t in redis-server redis-cli mosquitto; do
    command -v "$t" >/dev/null || { echo "demo: $t not installed (make deps)" >&2; exit 1; }
done

. "$ROOT/scripts/servers.sh"
SVC_PIDS=""
bench_stop_services() { for p in $SVC_PIDS; do stop_pid "$p"; done; }

start_servers interactions,survey.requests,survey.responses,survey.metrics,survey.alerts,surveybus.dlq
start_mosquitto
export SURVEYBUS_KAFKA_BROKERS=$BOOT
export SURVEYBUS_MQTT_URL=mqtt://127.0.0.1:$MQTT_PORT
export SURVEYBUS_REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0
log "redis :$REDIS_PORT, mosquitto :$MQTT_PORT, devkafka $BOOT; logs in $TMP"
log "config $CFG (journeys with delays of seconds, windows 5m/1h/24h/7d)"

"$BIN/surveybus-dispatcher" -c "$CFG" 2>"$TMP/dispatcher.log" &
SVC_PIDS="$SVC_PIDS $!"
"$BIN/surveybus-aggregator" -c "$CFG" 2>"$TMP/aggregator.log" &
SVC_PIDS="$SVC_PIDS $!"
"$BIN/surveybusctl" -c "$CFG" simulate --rate "$RATE" 2>"$TMP/simulate.log" &
SVC_PIDS="$SVC_PIDS $!"
WEB_URL=""
if [ -x "$BIN/surveybus-web" ] && [ -f "$ROOT/web/dist/index.html" ]; then
    # a free port, and the dashboard answering on it before its URL is given out (a browser
    # sent there at once found nothing listening on a loaded machine); another port if the
    # one picked was taken in between
    for _ in 1 2 3; do
        for _ in $(seq 20); do
            WEB_PORT=$(( 20000 + RANDOM % 40000 ))
            ss -ltn 2>/dev/null | grep -q ":$WEB_PORT " || break
        done
        "$BIN/surveybus-web" -c "$CFG" --set "http.web=127.0.0.1:$WEB_PORT" \
            --set "http.web_root=$ROOT/web/dist" 2>>"$TMP/web.log" &
        WEB_PID=$!
        for _ in $(seq 100); do
            (exec 3<>"/dev/tcp/127.0.0.1/$WEB_PORT") 2>/dev/null && break
            kill -0 "$WEB_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -0 "$WEB_PID" 2>/dev/null && break
    done
    SVC_PIDS="$SVC_PIDS $WEB_PID"
    WEB_URL=http://127.0.0.1:$WEB_PORT/
    log "dashboard: $WEB_URL"
else
    log "no dashboard: run make web first to build web/dist"
fi
log "dispatcher, aggregator and simulate ($RATE events/s) started; the first surveys are due in seconds"
log "other views: $BIN/surveybusctl -c $CFG metrics | stats | surveys pending (with the three SURVEYBUS_* variables below)"
echo "  export SURVEYBUS_KAFKA_BROKERS=$BOOT SURVEYBUS_MQTT_URL=$SURVEYBUS_MQTT_URL SURVEYBUS_REDIS_URL=$SURVEYBUS_REDIS_URL" >&2

if [ -n "${DEMO_TEST:-}" ]; then
    [ -n "$WEB_URL" ] || die "DEMO_TEST needs the dashboard (make web)"
    export WEB_URL CTL="$BIN/surveybusctl -c $CFG"
    rc=0
    bash -c "$DEMO_TEST" || rc=$?
    exit "$rc"
fi
if [ -n "${DEMO_SECONDS:-}" ]; then
    sleep "$DEMO_SECONDS"
    "$BIN/surveybusctl" -c "$CFG" watch --count 1 --dimension "$DIMENSION" || true
    "$BIN/surveybusctl" -c "$CFG" stats
    exit 0
fi
"$BIN/surveybusctl" -c "$CFG" watch --dimension "$DIMENSION" || true
