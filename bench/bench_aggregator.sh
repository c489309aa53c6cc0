#!/usr/bin/env bash
# Aggregator benchmark (`make bench-aggregator`): starts redis-server, surveybus-devkafka and
# surveybus-aggregator on free loopback ports in a private temp dir and measures, in one run:
# end-to-end response ingest beside kcat's raw consume rate of the same topic, Redis commands
# and Redis CPU per response (INFO commandstats), response-to-metric-update latency at a steady
# rate, and the aggregator's memory. Prints a table; always tears everything down.
# Smaller sizes for a quick look: BENCH_N=20000 BENCH_LAT_SECONDS=5. BENCH_PERF=1 (or dwarf)
# profiles the aggregator and redis-server while they ingest (scripts/servers.sh perf_start).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$ROOT/bin
LOADGEN=${LOADGEN:-$ROOT/build/bench/loadgen}
N=${BENCH_N:-200000}                # responses in the backlog (ingest phase)
LAT_RATE=${BENCH_LAT_RATE:-2000}    # responses/s in the latency phase
LAT_SECONDS=${BENCH_LAT_SECONDS:-20}
PARTITIONS=${BENCH_PARTITIONS:-32}  # devkafka keeps ~5 MiB per partition
INTERVAL_MS=${BENCH_INTERVAL_MS:-1000}
# the mock cluster answers a fetch only when fetch.wait.max.ms ends, whatever arrives meanwhile
# (real brokers answer as soon as data is there): shorter than the default 500 ms for latency
FETCH_WAIT_MS=${BENCH_FETCH_WAIT_MS:-20}
AGG_SET=${BENCH_AGGREGATOR_SET:-}     # one --set path=value for the aggregator only
AGGREGATOR=${BENCH_AGGREGATOR_BIN:-$BIN/surveybus-aggregator} # another build, for A/B runs

for b in "$AGGREGATOR" "$BIN/surveybus-devkafka" "$LOADGEN"; do
    [ -x "$b" ] || { echo "bench: $b missing (run: make bench-aggregator)" >&2; exit 1; }
done
for t in redis-server redis-cli redis-benchmark kcat; do
    command -v "$t" >/dev/null || { echo "bench: $t not installed (make deps)" >&2; exit 1; }
done

. "$ROOT/scripts/servers.sh"
AGG_PID=""
bench_stop_services() { stop_pid "$AGG_PID"; }

start_servers interactions,survey.requests,survey.responses,survey.metrics,survey.alerts,surveybus.dlq

CFG=$TMP/bench.json
cat >"$CFG" <<EOF
{
  "dev": true,
  "kafka": {"brokers": "$BOOT", "group": "bench", "properties": {"fetch.wait.max.ms": "$FETCH_WAIT_MS"}},
  "mqtt": {"url": ""},
  "redis": {"url": "redis://127.0.0.1:$REDIS_PORT/0", "prefix": "sb:"},
  "publish": {"interval_ms": $INTERVAL_MS, "republish_s": 60},
  "log": {"level": "info"}
}
EOF
log "redis :$REDIS_PORT (appendonly ${BENCH_AOF:-yes}, appendfsync everysec), devkafka $BOOT ($PARTITIONS partitions), temp $TMP"

# ------------------------------------------------------------------ 1. backlog and raw ceiling

log "1/3 $N csat surveys written to Redis, a response to each produced to survey.responses"
OUT=$("$LOADGEN" responses -c "$CFG" -k csat -n "$N" --from 0 --prepare) || die "prepare: $OUT"
OUT=$("$LOADGEN" responses -c "$CFG" -k csat -n "$N" --from 0) || die "produce: $OUT"
PRODUCE_RATE=$(kv rate "$OUT"); RESP_BYTES=$(kv avg_bytes "$OUT")
OUT=$(kcat -C -b "$BOOT" -t survey.responses -o beginning -e -q -c "$N" -f '%o\n' | "$LOADGEN" stamp)
[ "$(kv lines "$OUT")" -eq "$N" ] || die "kcat read $(kv lines "$OUT") of $N messages (retention? raise BENCH_PARTITIONS)"
RAW_RATE=$(kv rate "$OUT")
log "    kcat: $RAW_RATE msg/s (from the first message to the last)"

# ------------------------------------------------------------------ 2. ingest

aof_settle # the 200,000 records just written would set off a rewrite during ingest
rcli config resetstat >/dev/null
R0=$(redis_cpu)
agg_args=(-c "$CFG")
[ -z "$AGG_SET" ] || agg_args+=(--set "$AGG_SET")
"$AGGREGATOR" "${agg_args[@]}" 2>>"$TMP/aggregator.log" &
AGG_PID=$!
C0=$(ticks "$AGG_PID"); K0=$(ticks "$KAFKA_PID")
log "2/3 ingest: aggregator started on the backlog"
perf_start ingest aggregator="$AGG_PID" redis="$REDIS_PID"
OUT=$("$LOADGEN" wait -c "$CFG" --hash stats:aggregator --field 'counted|csat' -n "$N" --timeout 300) ||
    die "ingest: $OUT $(tail -3 "$TMP/aggregator.log")"
ING_RATE=$(kv rate "$OUT")
ING_S=$(awk -v a="$(kv done_ms "$OUT")" -v b="$(kv first_ms "$OUT")" 'BEGIN{printf "%.3f", (a-b)/1000}')
C1=$(ticks "$AGG_PID"); R1=$(redis_cpu); K1=$(ticks "$KAFKA_PID")
perf_stop ingest
STATS=$(rcli info commandstats | tr -d '\r')
# less the HGETs of the benchmark's own polling (loadgen wait)
CALLS=$(awk -F'[=,:]' -v own="$(kv hgets "$OUT")" '/^cmdstat_/{s+=$3} END{print s - own}' <<<"$STATS")
CMD_PER=$(awk -v c="$CALLS" -v n="$N" 'BEGIN{printf "%.3f", c / n}')
TOP=$(awk -F'[=,:]' '/^cmdstat_/{sub("cmdstat_", "", $1); printf "%s %d %.0f\n", $1, $3, $5}' <<<"$STATS" |
    sort -k2 -nr | head -6 | awk '{printf "%s%s %d calls (%d us)", (NR > 1 ? ", " : ""), $1, $2, $3}')
RCPU=$(awk -v a="$R0" -v b="$R1" -v n="$N" 'BEGIN{printf "%.1f", (b - a) * 1e6 / n}')
ACPU=$(awk -v t=$(( C1 - C0 )) -v c="$CLK" -v n="$N" 'BEGIN{printf "%.1f", t / c * 1e6 / n}')
KCPU=$(awk -v t=$(( K1 - K0 )) -v c="$CLK" -v n="$N" 'BEGIN{printf "%.1f", t / c * 1e6 / n}')
RATIO=$(awk -v a="$ING_RATE" -v b="$RAW_RATE" 'BEGIN{printf "%.0f", (b > 0 ? 100 * a / b : 0)}')
ING_HWM=$(mib_of "$AGG_PID" VmHWM)
log "    $N counted in ${ING_S}s: $ING_RATE responses/s ($RATIO % of kcat); $CMD_PER Redis commands/response;" \
    "CPU us/response: redis $RCPU, aggregator $ACPU, devkafka $KCPU; commands: $TOP"

# ------------------------------------------------------------------ 3. latency

LAT_N=$(( LAT_RATE * LAT_SECONDS ))
log "3/3 latency: $LAT_N nps responses at $LAT_RATE/s, watching nps|1h|all|all (publish interval ${INTERVAL_MS} ms)"
OUT=$("$LOADGEN" responses -c "$CFG" -k nps -n "$LAT_N" --from "$N" --prepare) || die "prepare: $OUT"
OUT=$("$LOADGEN" responses -c "$CFG" -k nps -n "$LAT_N" --from "$N" --rate "$LAT_RATE" \
    --watch 'nps|1h|all|all' --timeout 60) || die "latency: $OUT"
P50=$(kv p50_ms "$OUT"); P99=$(kv p99_ms "$OUT"); PMAX=$(kv max_ms "$OUT")
HWM=$(mib_of "$AGG_PID" VmHWM); RSS=$(mib_of "$AGG_PID" VmRSS)
log "    response produced -> metric update received: p50 $P50 ms, p99 $P99 ms, max $PMAX ms; aggregator VmRSS $RSS MiB, VmHWM $HWM MiB"

INCR_RATE=$(redis-benchmark -p "$REDIS_PORT" -q -n 200000 -P 100 -t incr 2>/dev/null | tr '\r' '\n' |
    sed -n 's/^INCR: \([0-9.]*\) requests per second.*/\1/p' | tail -1)
INCR_RATE=${INCR_RATE%.*}

# ------------------------------------------------------------------ table

P99_MAX=$(( INTERVAL_MS + 250 ))
cat <<EOF

surveybus-aggregator benchmark  ($(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) CPUs, devkafka $PARTITIONS partitions/topic,
  redis appendonly ${BENCH_AOF:-yes} + appendfsync everysec, responses of $RESP_BYTES bytes over 40 dimension profiles
  (33 slices x 4 windows), tuning defaults (batch 1000), publish interval $INTERVAL_MS ms, MQTT off)

| metric | value | target | ceiling / ratio |
|---|---|---|---|
| aggregator ingest, responses/s ($N, backlog) | $(fmt "$ING_RATE") | >= 80 % of kcat ($(met "$RATIO" 80 ge)) | kcat $(fmt "$RAW_RATE") msg/s; ratio $RATIO % |
| Redis commands per response (INFO commandstats) | $CMD_PER | <= 1.5 ($(met "$CMD_PER" 1.5 le)) | redis-benchmark INCR -P 100: $(fmt "$INCR_RATE")/s |
| Redis CPU per response, us | $RCPU | - | aggregator $ACPU us, devkafka $KCPU us |
| produced -> update p50, ms ($LAT_RATE/s for ${LAT_SECONDS}s) | $P50 | - | max $PMAX |
| produced -> update p99, ms | $P99 | <= $P99_MAX ($(met "$P99" "$P99_MAX" le)) | publish interval $INTERVAL_MS ms |
| aggregator VmRSS after the run | $RSS MiB | <= 64 MiB ($(met "$HWM" 64 le) by VmHWM $HWM) | VmHWM after the backlog $ING_HWM MiB |

Redis commands during ingest: $TOP.
Producer (loadgen, acks=all): $(fmt "$PRODUCE_RATE") responses/s.
EOF
