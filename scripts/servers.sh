# Sourced by the benchmarks and `make demo`: a private temp dir, teardown on exit, small
# helpers, and redis-server, surveybus-devkafka and mosquitto on free loopback ports.
# The sourcing script sets BIN and PARTITIONS, may define bench_stop_services (called first
# on exit) and adds background helpers to BG_PIDS.

TMP=$(mktemp -d "${TMPDIR:-/tmp}/sbbench.XXXXXX")
REDIS_PID="" KAFKA_PID="" MQTT_PID="" BG_PIDS=""

stop_pid() { # SIGTERM, up to 10 s, then SIGKILL; only processes this script started
    local pid=$1
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    for p in $BG_PIDS; do stop_pid "$p"; done
    if declare -F bench_stop_services >/dev/null; then bench_stop_services; fi
    stop_pid "$KAFKA_PID"
    stop_pid "$MQTT_PID"
    stop_pid "$REDIS_PID"
    if [ -n "${BENCH_KEEP_TMP:-}" ]; then echo "bench: kept $TMP" >&2; else rm -rf "$TMP"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '[%6.1fs] %s\n' "$(awk -v a="$(date +%s.%N)" -v b="$T_START" 'BEGIN{print a-b}')" "$*" >&2; }
die() { echo "${0##*/}: $*" >&2; exit 1; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
kv() { sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p" <<<"$2"; } # kv key "a=1 key=2" -> 2
rcli() { redis-cli -p "$REDIS_PORT" "$@"; }
rinfo() { rcli info "$1" | tr -d '\r' | sed -n "s/^$2:\\(.*\\)/\\1/p"; }
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; } # utime + stime of a process
redis_cpu() { rcli info cpu | tr -d '\r' | awk -F: '/^used_cpu_(sys|user):/{s+=$2} END{printf "%.3f", s}'; }
mib_of() { awk -v f="$2:" '$1 == f {printf "%.1f", $2 / 1024}' "/proc/$1/status"; } # mib_of PID VmHWM
fmt() { sed ':a;s/\B[0-9]\{3\}\>/,&/;ta' <<<"$1"; } # 1234567 -> 1,234,567
met() { awk -v v="$1" -v t="$2" -v op="$3" 'BEGIN{ok = op == "ge" ? v >= t : v <= t; print ok ? "met" : "MISSED"}'; }
CLK=$(getconf CLK_TCK)

# aof_settle: rewrites the AOF now and waits for the rewrite to end, so that a rewrite set off
# by a benchmark's own preparation (bulk writes) does not run, on a third core's worth of CPU,
# during the phase that follows. BENCH_AOF=no runs Redis without its append-only file (to
# measure what durability costs; nothing to settle then)
aof_settle() {
    [ "${BENCH_AOF:-yes}" = yes ] || return 0
    for _ in $(seq 600); do
        [ "$(rinfo persistence aof_rewrite_in_progress)" = 0 ] &&
            [ "$(rinfo persistence aof_rewrite_scheduled)" = 0 ] && break
        sleep 0.1
    done
    rcli bgrewriteaof >/dev/null
    sleep 0.1
    for _ in $(seq 600); do
        [ "$(rinfo persistence aof_rewrite_in_progress)" = 0 ] &&
            [ "$(rinfo persistence aof_rewrite_scheduled)" = 0 ] && return 0
        sleep 0.1
    done
    die "redis AOF rewrite did not finish in 60 s"
}

# perf_start PHASE NAME=PID...: with BENCH_PERF=1 (or dwarf, for full call graphs) records the
# processes into $TMP/perf.PHASE.NAME.data until perf_stop PHASE, which prints each one's top
# libraries and symbols on stderr. Without BENCH_PERF both do nothing.
PERF_PIDS="" PERF_NAMES=""
perf_start() {
    [ "${BENCH_PERF:-0}" != 0 ] || return 0
    local phase=$1 cg=-g x; shift
    [ "$BENCH_PERF" = dwarf ] && cg="--call-graph=dwarf,16384"
    PERF_PIDS="" PERF_NAMES=""
    for x in "$@"; do
        perf record -F 999 $cg -p "${x#*=}" -o "$TMP/perf.$phase.${x%%=*}.data" >/dev/null 2>&1 &
        PERF_PIDS="$PERF_PIDS $!" PERF_NAMES="$PERF_NAMES ${x%%=*}"
    done
    BG_PIDS="$BG_PIDS $PERF_PIDS"
}
perf_stop() {
    [ "${BENCH_PERF:-0}" != 0 ] || return 0
    local p w
    for p in $PERF_PIDS; do kill -INT "$p" 2>/dev/null || true; done
    for p in $PERF_PIDS; do wait "$p" 2>/dev/null || true; done
    for w in $PERF_NAMES; do
        { perf report -i "$TMP/perf.$1.$w.data" --no-children --sort dso --stdio -g none 2>/dev/null |
            grep '%' | grep -v '^#' | head -8
          perf report -i "$TMP/perf.$1.$w.data" --no-children --sort dso,sym --stdio -g none 2>/dev/null |
            grep '%' | grep -v '^#' | head -25; } >"$TMP/perf.$1.$w.txt" || true
        echo "--- perf ($1, $w): self time by library, then by symbol" >&2
        cat "$TMP/perf.$1.$w.txt" >&2
    done
}
T_START=$(date +%s.%N)

# start_servers TOPICS: redis-server (AOF, fsync every second) and devkafka; sets REDIS_PORT, BOOT
start_servers() {
    for _ in $(seq 20); do # a free loopback port for Redis
        REDIS_PORT=$(( 20000 + RANDOM % 40000 ))
        ss -ltn 2>/dev/null | grep -q ":$REDIS_PORT " && continue
        mkdir -p "$TMP/redis"
        printf '%s\n' "port $REDIS_PORT" "bind 127.0.0.1" "protected-mode no" "dir $TMP/redis" \
            "appendonly ${BENCH_AOF:-yes}" "appendfsync everysec" 'save ""' "daemonize no" 'logfile ""' \
            >"$TMP/redis.conf"
        redis-server "$TMP/redis.conf" >"$TMP/redis.log" 2>&1 &
        REDIS_PID=$!
        for _ in $(seq 100); do rcli ping 2>/dev/null | grep -q PONG && break 2; sleep 0.05; done
        stop_pid "$REDIS_PID"; REDIS_PID=""
    done
    [ -n "$REDIS_PID" ] || die "redis-server did not start (log $TMP/redis.log)"
    "$BIN/surveybus-devkafka" --brokers 1 --partitions "$PARTITIONS" --topics "$1" \
        --bootstrap-file "$TMP/boot" >"$TMP/devkafka.log" 2>&1 &
    KAFKA_PID=$!
    for _ in $(seq 300); do [ -s "$TMP/boot" ] && break; sleep 0.05; done
    [ -s "$TMP/boot" ] || die "surveybus-devkafka did not start (log $TMP/devkafka.log)"
    BOOT=$(head -1 "$TMP/boot")
}

# start_mosquitto: a local broker (anonymous, persistent sessions); sets MQTT_PORT
start_mosquitto() {
    local user="# running as $(id -un)"
    [ "$(id -u)" = 0 ] && user="user root" # mosquitto drops root privileges otherwise
    for _ in $(seq 20); do
        MQTT_PORT=$(( 20000 + RANDOM % 40000 ))
        ss -ltn 2>/dev/null | grep -q ":$MQTT_PORT " && continue
        mkdir -p "$TMP/mosquitto"
        printf '%s\n' "listener $MQTT_PORT 127.0.0.1" "allow_anonymous true" "persistence true" \
            "persistence_location $TMP/mosquitto/" "$user" >"$TMP/mosquitto.conf"
        mosquitto -c "$TMP/mosquitto.conf" >"$TMP/mosquitto.log" 2>&1 &
        MQTT_PID=$!
        for _ in $(seq 100); do
            ss -ltn 2>/dev/null | grep -q "127.0.0.1:$MQTT_PORT " && return 0
            kill -0 "$MQTT_PID" 2>/dev/null || break
            sleep 0.05
        done
        stop_pid "$MQTT_PID"; MQTT_PID=""
    done
    die "mosquitto did not start (log $TMP/mosquitto.log)"
}
