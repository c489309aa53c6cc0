#!/usr/bin/env bash
# Dispatcher benchmark (`make bench-dispatcher`): starts redis-server, surveybus-devkafka and
# surveybus-dispatcher on free loopback ports in a private temp dir, measures ingest, firing,
# due-to-publish latency and memory in one run beside raw ceilings measured in the same run
# (kcat, redis-benchmark), prints a table, and always tears everything down. See
# docs/benchmarks.md. Sizes can be lowered for a quick look: BENCH_N=20000 BENCH_PENDING=100000.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$ROOT/bin
LOADGEN=${LOADGEN:-$ROOT/build/bench/loadgen}
N=${BENCH_N:-200000}                   # events for ingest vs kcat, and surveys fired at once
PENDING=${BENCH_PENDING:-1000000}      # pending surveys for the memory measurement
LAT_RATE=${BENCH_LAT_RATE:-2000}       # steady-state events/s
LAT_SECONDS=${BENCH_LAT_SECONDS:-20}
LAT_DELAY_MS=2000                      # journey delay of the latency phase ("2s" below)
PARTITIONS=${BENCH_PARTITIONS:-32}     # devkafka keeps ~5 MiB per partition
AHEAD=${BENCH_AHEAD:-20000}            # fill phase: producer at most this far ahead
FATIGUE=${BENCH_FATIGUE:-1}            # 0: no fatigue rules (the claim script skips them)
DISP_SET=${BENCH_DISPATCHER_SET:-}     # one --set path=value for the dispatcher only
DISPATCHER=${BENCH_DISPATCHER_BIN:-$BIN/surveybus-dispatcher} # another build, for A/B runs

for b in "$DISPATCHER" "$BIN/surveybus-devkafka" "$LOADGEN"; do
    [ -x "$b" ] || { echo "bench: $b missing (run: make bench-dispatcher)" >&2; exit 1; }
done
for t in redis-server redis-cli redis-benchmark kcat; do
    command -v "$t" >/dev/null || { echo "bench: $t not installed (make deps)" >&2; exit 1; }
done

. "$ROOT/scripts/servers.sh"
DISP_PID=""
bench_stop_services() { stop_pid "$DISP_PID"; }
mib() { mib_of "$DISP_PID" "$1"; }

start_servers interactions,survey.requests,survey.responses,survey.metrics,survey.alerts,surveybus.dlq,bench.raw

if [ "$FATIGUE" = 1 ]; then
    FATIGUE_JSON='{"min_gap": "7d", "min_gap_by_kind": {"nps": "90d"}, "max_per_30d": 3}'
    FATIGUE_TXT="fatigue rules on (7d / nps 90d / 3 per 30d)"
else
    FATIGUE_JSON='{}' FATIGUE_TXT="fatigue rules off"
fi
CFG=$TMP/bench.json
cat >"$CFG" <<EOF
{
  "dev": true,
  "kafka": {"brokers": "$BOOT", "group": "bench"},
  "mqtt": {"url": ""},
  "redis": {"url": "redis://127.0.0.1:$REDIS_PORT/0", "prefix": "sb:"},
  "journeys": [
    {"name": "bench-far", "on": {"kind": "bench_far"}, "survey": "csat", "delay": "30d",
     "expires": "7d", "channel": "email"},
    {"name": "bench-fire", "on": {"kind": "bench_fire"}, "survey": "csat", "delay": "0s",
     "expires": "1h"},
    {"name": "bench-lat", "on": {"kind": "bench_lat"}, "survey": "nps", "delay": "2s",
     "expires": "1h"}
  ],
  "fatigue": $FATIGUE_JSON,
  "log": {"level": "info"}
}
EOF
log "redis :$REDIS_PORT (appendonly ${BENCH_AOF:-yes}, appendfsync everysec), devkafka $BOOT ($PARTITIONS partitions), temp $TMP"

start_dispatcher() {
    local args=(-c "$CFG")
    [ -z "$DISP_SET" ] || args+=(--set "$DISP_SET")
    "$DISPATCHER" "${args[@]}" 2>>"$TMP/dispatcher.log" &
    DISP_PID=$!
}

# ------------------------------------------------------------------ 1. raw ceiling: kcat

log "1/5 raw: producing $N events to bench.raw"
OUT=$("$LOADGEN" produce -c "$CFG" -t bench.raw -k bench_raw -n "$N") || die "produce: $OUT"
PRODUCE_RATE=$(kv rate "$OUT"); EV_BYTES=$(kv avg_bytes "$OUT")
# timed like the dispatcher below: from the first message seen to the last (startup excluded)
t0=$(date +%s%N)
OUT=$(kcat -C -b "$BOOT" -t bench.raw -o beginning -e -q -c "$N" -f '%o\n' | "$LOADGEN" stamp)
t1=$(date +%s%N)
[ "$(kv lines "$OUT")" -eq "$N" ] || die "kcat read $(kv lines "$OUT") of $N messages (retention? raise BENCH_PARTITIONS)"
RAW_RATE=$(kv rate "$OUT")
RAW_S=$(awk -v a="$(kv done_ms "$OUT")" -v b="$(kv first_ms "$OUT")" 'BEGIN{printf "%.3f", (a-b)/1000}')
log "    kcat: $N messages in ${RAW_S}s after the first ($(( (t1 - t0) / 1000000 )) ms with startup): $RAW_RATE msg/s"

# ------------------------------------------------------------------ 2. ingest

MEM0=$(rinfo memory used_memory)
log "2/5 ingest: producing $N events to interactions, dispatcher not yet running"
OUT=$("$LOADGEN" produce -c "$CFG" -t interactions -k bench_far -n "$N" --from 0) || die "produce: $OUT"
start_dispatcher
C0=$(ticks "$DISP_PID"); R0=$(redis_cpu); K0=$(ticks "$KAFKA_PID")
perf_start ingest dispatcher="$DISP_PID" redis="$REDIS_PID"
OUT=$("$LOADGEN" wait -c "$CFG" --field 'scheduled|bench-far' -n "$N" --timeout 120) || die "ingest: $OUT"
perf_stop ingest
ING_RATE=$(kv rate "$OUT")
ING_S=$(awk -v a="$(kv done_ms "$OUT")" -v b="$(kv first_ms "$OUT")" 'BEGIN{printf "%.3f", (a-b)/1000}')
C1=$(ticks "$DISP_PID"); R1=$(redis_cpu); K1=$(ticks "$KAFKA_PID")
# CPU per event over the whole phase including the dispatcher's start and group join
ING_DCPU=$(awk -v t=$(( C1 - C0 )) -v c="$CLK" -v n="$N" 'BEGIN{printf "%.1f", t / c * 1e6 / n}')
ING_RCPU=$(awk -v a="$R0" -v b="$R1" -v n="$N" 'BEGIN{printf "%.1f", (b - a) * 1e6 / n}')
ING_KCPU=$(awk -v t=$(( K1 - K0 )) -v c="$CLK" -v n="$N" 'BEGIN{printf "%.1f", t / c * 1e6 / n}')
ING_HWM=$(mib VmHWM)
ING_RATIO=$(awk -v a="$ING_RATE" -v b="$RAW_RATE" 'BEGIN{printf "%.0f", (b > 0 ? 100 * a / b : 0)}')
log "    dispatcher: $N surveys scheduled in ${ING_S}s: $ING_RATE events/s ($ING_RATIO % of kcat);" \
    "CPU us/event: dispatcher $ING_DCPU, redis $ING_RCPU, devkafka $ING_KCPU; dispatcher VmHWM $ING_HWM MiB"

# ------------------------------------------------------------------ 3. memory at 1M pending

# A fresh dispatcher for the steady state: the backlog above made librdkafka prefetch up to
# queued.max.messages.kbytes (64 MiB by default), and freed heap is not always given back.
stop_pid "$DISP_PID"
start_dispatcher
FILL=$(( PENDING - N ))
log "3/5 memory: dispatcher restarted; $FILL more events, producer at most $AHEAD ahead of it"
"$LOADGEN" wait -c "$CFG" --field 'scheduled|bench-far' -n "$PENDING" --timeout 300 >"$TMP/fill.out" &
FILL_WAIT=$!
BG_PIDS="$BG_PIDS $FILL_WAIT"
OUT=$("$LOADGEN" produce -c "$CFG" -t interactions -k bench_far -n "$FILL" --from "$N" --ahead "$AHEAD") ||
    die "produce: $OUT"
wait "$FILL_WAIT" || die "fill: $(cat "$TMP/fill.out")"
FILL_RATE=$(kv rate "$(cat "$TMP/fill.out")") # from the first survey the new dispatcher stored
SCHED=$(rcli zcard sb:sched | tr -d '\r')
[ "$SCHED" -eq "$PENDING" ] || die "expected $PENDING pending, sb:sched holds $SCHED"
MEM1=$(rinfo memory used_memory)
BYTES_PER=$(awk -v a="$MEM0" -v b="$MEM1" -v n="$PENDING" 'BEGIN{printf "%.0f", (b - a) / n}')
RSS_MIB=$(mib VmRSS); FILL_HWM=$(mib VmHWM)
log "    $PENDING pending: redis used_memory +$(( (MEM1 - MEM0) / 1048576 )) MiB = $BYTES_PER B/survey;" \
    "dispatcher VmRSS $RSS_MIB MiB (VmHWM $FILL_HWM MiB); live-producer ingest $FILL_RATE events/s"

# ------------------------------------------------------------------ 4. firing burst

aof_settle # the fill just wrote a million surveys: its rewrite is not the firing's
FROM_FIRE=$PENDING
MARGIN_MS=$(awk -v n="$N" -v r="$FILL_RATE" 'BEGIN{printf "%d", n / r * 1500 + 8000}')
T=$(( $(now_ms) + MARGIN_MS ))
log "4/5 firing: $N surveys all due at T = now + $(( MARGIN_MS / 1000 ))s"
"$LOADGEN" consume -c "$CFG" -t survey.requests -k bench_fire -n "$N" --from "$FROM_FIRE" \
    --delay 0 --ready "$TMP/ready.fire" --timeout $(( MARGIN_MS / 1000 + 120 )) >"$TMP/fire.out" &
FIRE_CONS=$!
BG_PIDS="$BG_PIDS $FIRE_CONS"
OUT=$("$LOADGEN" produce -c "$CFG" -t interactions -k bench_fire -n "$N" --from "$FROM_FIRE" --occurred "$T" \
    --ahead "$AHEAD") ||
    die "produce: $OUT"
OUT=$("$LOADGEN" wait -c "$CFG" --field 'scheduled|bench-fire' -n "$N" --timeout 120) || die "fire ingest: $OUT"
for _ in $(seq 200); do [ -e "$TMP/ready.fire" ] && break; sleep 0.05; done
[ -e "$TMP/ready.fire" ] || die "request consumer not ready"
LEFT=$(( T - $(now_ms) ))
[ "$LEFT" -gt 200 ] || die "the $N surveys were not all scheduled before their due time (late by $(( -LEFT )) ms)"
sleep "$(awk -v l="$LEFT" 'BEGIN{printf "%.3f", (l - 150) / 1000}')"
rcli config resetstat >/dev/null
[ -z "${BENCH_SLOWLOG:-}" ] || rcli config set slowlog-log-slower-than 0 slowlog-max-len 1000000 >/dev/null
C0=$(ticks "$DISP_PID"); R0=$(redis_cpu); K0=$(ticks "$KAFKA_PID")
perf_start fire dispatcher="$DISP_PID" redis="$REDIS_PID"
wait "$FIRE_CONS" || die "firing: $(cat "$TMP/fire.out")"
perf_stop fire
if [ -n "${BENCH_SLOWLOG:-}" ]; then
    rcli slowlog get 1000000 >"$TMP/slowlog.txt"
    rcli config set slowlog-log-slower-than 10000 >/dev/null
fi
C1=$(ticks "$DISP_PID"); R1=$(redis_cpu); K1=$(ticks "$KAFKA_PID")
OUT=$(cat "$TMP/fire.out")
FIRE_HWM=$(mib VmHWM); FIRE_RSS=$(mib VmRSS)
FIRE_RATE=$(kv rate_from_due "$OUT"); FIRE_LAST=$(kv last_after_ms "$OUT"); FIRE_FIRST=$(kv first_after_ms "$OUT")
FIRE_S=$(awk -v l="$FIRE_LAST" 'BEGIN{printf "%.3f", l / 1000}')
[ "$(kv duplicates "$OUT")" = 0 ] || log "    WARNING: duplicate requests: $OUT"
FIRE_DCPU=$(awk -v t=$(( C1 - C0 )) -v c="$CLK" -v s="$FIRE_S" 'BEGIN{printf "%.0f", 100 * t / c / (s + 0.15)}')
FIRE_RCPU=$(awk -v a="$R0" -v b="$R1" -v n="$N" 'BEGIN{printf "%.1f", (b - a) * 1e6 / n}')
FIRE_KCPU=$(awk -v t=$(( K1 - K0 )) -v c="$CLK" -v n="$N" 'BEGIN{printf "%.1f", t / c * 1e6 / n}')
FIRE_DCPU_EV=$(awk -v t=$(( C1 - C0 )) -v c="$CLK" -v n="$N" 'BEGIN{printf "%.1f", t / c * 1e6 / n}')
EVAL_US=$(rcli info commandstats | tr -d '\r' | awk -F'[=,:]' '/^cmdstat_evalsha:/{print $5}')
EVAL_US_PER=$(awk -v u="$EVAL_US" -v n="$N" 'BEGIN{printf "%.1f", u / n}')
EVAL_CALLS=$(rcli info commandstats | tr -d '\r' | awk -F'[=,:]' '/^cmdstat_evalsha:/{print $3}')
# every command run during firing (those inside the scripts included), by time per survey
CMD_US=$(rcli info commandstats | tr -d '\r' | awk -F'[=,:]' -v n="$N" \
    '/^cmdstat_/{sub("cmdstat_", "", $1); if ($1 != "evalsha" && $5 / n >= 0.05) printf "%s %d calls %.2f us, ", $1, $3, $5 / n}')
EVAL_CEIL=$(awk -v u="$EVAL_US" -v n="$N" 'BEGIN{printf "%.0f", n / (u / 1e6)}')
log "    $N requests on survey.requests ${FIRE_S}s after T (first after ${FIRE_FIRST} ms): $FIRE_RATE surveys/s;" \
    "produced by the dispatcher from +$(kv produced_first_after_ms "$OUT") to +$(kv produced_last_after_ms "$OUT") ms," \
    "Kafka transit p50 $(kv transit_p50_ms "$OUT") ms;" \
    "dispatcher CPU ${FIRE_DCPU}% of a core ($FIRE_DCPU_EV us/survey), redis $FIRE_RCPU us/survey" \
    "(scripts $EVAL_US_PER us/survey in $EVAL_CALLS calls), devkafka $FIRE_KCPU us/survey; dispatcher VmRSS $FIRE_RSS MiB, VmHWM $FIRE_HWM MiB"
log "    commands per survey during firing (inside scripts too): ${CMD_US%, }"

# ------------------------------------------------------------------ 5. steady-state latency

aof_settle
LAT_N=$(( LAT_RATE * LAT_SECONDS ))
LAT_START=$(now_ms)
FROM_LAT=$(( PENDING + N ))
log "5/5 latency: $LAT_N events at $LAT_RATE/s, journey delay ${LAT_DELAY_MS} ms"
"$LOADGEN" consume -c "$CFG" -t survey.requests -k bench_lat -n "$LAT_N" --from "$FROM_LAT" \
    --delay "$LAT_DELAY_MS" --ready "$TMP/ready.lat" --series "$TMP/lat.series" --timeout $(( LAT_SECONDS + 90 )) >"$TMP/lat.out" &
LAT_CONS=$!
BG_PIDS="$BG_PIDS $LAT_CONS"
for _ in $(seq 400); do [ -e "$TMP/ready.lat" ] && break; sleep 0.05; done
[ -e "$TMP/ready.lat" ] || die "request consumer not ready"
OUT=$("$LOADGEN" produce -c "$CFG" -t interactions -k bench_lat -n "$LAT_N" --from "$FROM_LAT" --rate "$LAT_RATE") ||
    die "produce: $OUT"
wait "$LAT_CONS" || die "latency: $(cat "$TMP/lat.out")"
OUT=$(cat "$TMP/lat.out")
P50=$(kv p50_ms "$OUT"); P99=$(kv p99_ms "$OUT"); PMAX=$(kv max_ms "$OUT")
HWM_MIB=$(mib VmHWM)
PP50=$(kv produce_p50_ms "$OUT"); PP99=$(kv produce_p99_ms "$OUT")
TP50=$(kv transit_p50_ms "$OUT"); TP99=$(kv transit_p99_ms "$OUT")
log "    due-to-arrival p50 $P50 ms, p99 $P99 ms, max $PMAX ms; due to the dispatcher's produce call" \
    "p50 $PP50 ms, p99 $PP99 ms; produce call to arrival (Kafka) p50 $TP50 ms, p99 $TP99 ms;" \
    "dispatcher VmHWM $HWM_MIB MiB"

LAT_END=$(now_ms)
# AOF rewrites (a forked child rewriting the whole dataset, one more busy CPU) from the log
REWRITES=0 REWRITES_LAT=0
while read -r d m y t; do
    s_ms=$(( $(date -d "$d $m $y $t" +%s%N) / 1000000 ))
    REWRITES=$(( REWRITES + 1 ))
    [ "$s_ms" -lt "$LAT_START" ] || [ "$s_ms" -gt "$LAT_END" ] || REWRITES_LAT=$(( REWRITES_LAT + 1 ))
done < <(sed -n 's/^[0-9]*:M \([0-9]* [A-Za-z]* [0-9]* [0-9:.]*\) .*Background append only file rewriting started.*/\1/p' "$TMP/redis.log")

# ------------------------------------------------------------------ redis-benchmark ceiling

SET_RATE=$(redis-benchmark -p "$REDIS_PORT" -q -n 200000 -P 100 -t set 2>/dev/null | tr '\r' '\n' |
    sed -n 's/^SET: \([0-9.]*\) requests per second.*/\1/p' | tail -1)
SET_RATE=${SET_RATE%.*}

# ------------------------------------------------------------------ table

ING_MET=$(met "$ING_RATIO" 80 ge); FIRE_MET=$(met "$FIRE_RATE" 50000 ge); P99_MET=$(met "$P99" 250 le)
RSS_MET=$(met "$RSS_MIB" 64 le); MEM_MET=$(met "$BYTES_PER" 400 le)
cat <<EOF

surveybus-dispatcher benchmark  ($(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) CPUs, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM,
  devkafka $PARTITIONS partitions/topic, redis appendonly ${BENCH_AOF:-yes} + appendfsync everysec, events of $EV_BYTES bytes,
  tuning defaults (batch 1000, lease 30s), MQTT off, $FATIGUE_TXT)

| metric | value | target | ceiling / ratio |
|---|---|---|---|
| dispatcher ingest, events/s ($N events, backlog) | $(fmt "$ING_RATE") | >= 80 % of kcat ($ING_MET) | kcat $(fmt "$RAW_RATE") msg/s; ratio $ING_RATIO % |
| surveys fired/s ($N due at the same ms) | $(fmt "$FIRE_RATE") | >= 50,000 ($FIRE_MET) | Redis scripts alone: $(fmt "$EVAL_CEIL")/s ($EVAL_US_PER us/survey); redis-benchmark SET -P 100: $(fmt "$SET_RATE")/s |
| due-to-publish p50, ms ($LAT_RATE/s for ${LAT_SECONDS}s, delay 2s) | $P50 | - | due to produce call $PP50, then Kafka $TP50; max $PMAX |
| due-to-publish p99, ms | $P99 | <= 250 ($P99_MET) | due to produce call $PP99; produce call to arrival $TP99 |
| dispatcher VmRSS, $PENDING pending (steady state) | $RSS_MIB MiB | <= 64 MiB ($RSS_MET) | VmHWM: $ING_HWM MiB draining the $N backlog, $HWM_MIB MiB fill to end |
| Redis memory per pending survey | $BYTES_PER B | <= 400 B ($MEM_MET) | used_memory +$(( (MEM1 - MEM0) / 1048576 )) MiB for $PENDING |

CPU per event while ingesting: dispatcher $ING_DCPU us, redis $ING_RCPU us, devkafka $ING_KCPU us.
CPU while firing: dispatcher ${FIRE_DCPU}% of one core ($FIRE_DCPU_EV us/survey), redis $FIRE_RCPU us/survey, devkafka $FIRE_KCPU us/survey.
Redis AOF rewrites (a child process rewriting the whole dataset): $REWRITES in the run, $REWRITES_LAT during the latency phase.
Producer (loadgen, idempotent, acks=all): $(fmt "$PRODUCE_RATE") events/s; ingest with a live producer (fill phase): $(fmt "$FILL_RATE") events/s.
EOF
