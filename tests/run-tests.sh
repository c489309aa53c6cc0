#!/usr/bin/env bash
# Runs test binaries and prints one summary line per group and a total.
# usage: run-tests.sh unit|integration|fuzz BIN...   or   run-tests.sh all
# Unit tests run under valgrind (zero leaks, zero errors) unless SANITIZE is set,
# in which case the sanitizers do that job.
set -u
cd "$(dirname "$0")/.."
B=build
pass=0; fail=0
declare -a failed_bins=()

# Runs one test binary: its output goes to $3.log, then "exit-status seconds" to $3.
run_one() {         # $1 group, $2 binary, $3 result file
    local group=$1 bin=$2 res=$3 t0=$SECONDS rc
    if [ "$group" = unit ] && [ -z "${SANITIZE:-}" ] && command -v valgrind >/dev/null; then
        CK_FORK=no valgrind -q --leak-check=full --show-leak-kinds=definite,indirect \
            --errors-for-leak-kinds=definite,indirect --error-exitcode=99 "$bin" >"$res.log" 2>&1
    else
        "$bin" >"$res.log" 2>&1
    fi
    rc=$?
    echo "$rc $((SECONDS - t0))" >"$res"
}

# Counts and prints the outcome of a binary run_one has finished.
report_one() {      # $1 binary, $2 result file
    local bin=$1 res=$2 rc secs out n=0 f=0 e=0
    read -r rc secs <"$res"
    out=$(grep -E '^[0-9]+%: Checks: ' "$res.log" | tail -n 1)
    if [[ $out =~ Checks:\ ([0-9]+),\ Failures:\ ([0-9]+),\ Errors:\ ([0-9]+) ]]; then
        n=${BASH_REMATCH[1]}; f=${BASH_REMATCH[2]}; e=${BASH_REMATCH[3]}
    fi
    local bad=$((f + e))
    if [ "$rc" -ne 0 ] && [ $bad -eq 0 ]; then bad=1; fi   # crash, leak or valgrind error
    pass=$((pass + n - (f + e))); fail=$((fail + bad))
    if [ $bad -ne 0 ] || [ "$rc" -ne 0 ]; then
        failed_bins+=("$bin")
        echo "---- $bin (exit $rc, $secs s)"; tail -n 60 "$res.log"
    else
        printf '  %-48s %s (%d s)\n' "$(basename "$bin")" "$out" "$secs"
    fi
    rm -f "$res" "$res.log"
}

# Runs the binaries of a group SB_TEST_JOBS at a time (default 2), the longest-running
# suites first, and prints each outcome as it comes. Each suite starts its own servers on
# free ports in its own temp dir, so suites do not meet; SB_TEST_JOBS=1 runs them one by one.
run_check_bins() {  # $1 group, rest binaries
    local group=$1; shift
    local jobs=${SB_TEST_JOBS:-2} dir i
    # not a positive number (0 would wait for a free lane forever): one at a time
    [[ $jobs =~ ^[0-9]+$ ]] && [ "$jobs" -ge 1 ] || jobs=1
    dir=$(mktemp -d)
    local -a bins=() done_=()
    for slow in $SLOW_FIRST; do
        for b in "$@"; do [ "$(basename "$b")" = "$slow" ] && bins+=("$b"); done
    done
    for b in "$@"; do [[ " $SLOW_FIRST " == *" $(basename "$b") "* ]] || bins+=("$b"); done
    report_finished() {
        local k
        for k in "${!bins[@]}"; do
            if [ -z "${done_[$k]:-}" ] && [ -s "$dir/$k" ]; then
                done_[$k]=1; report_one "${bins[$k]}" "$dir/$k"
            fi
        done
    }
    for i in "${!bins[@]}"; do
        while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n; report_finished; done
        run_one "$group" "${bins[$i]}" "$dir/$i" &
    done
    wait
    report_finished
    rmdir "$dir"
}

# The suites that take minutes, started first so that the others fill the second lane.
SLOW_FIRST="test_aggregator test_dispatcher test_kafka test_browser test_demo"

run_fuzz_bin() {    # replay a fuzz target over its seed corpus
    local bin=$1 name corpus
    name=$(basename "$bin"); name=${name#replay_fuzz_}
    corpus=tests/fuzz/corpus/$name
    if "$bin" "$corpus" >/dev/null 2>&1; then
        pass=$((pass + 1)); printf '  %-48s corpus %s ok\n' "$(basename "$bin")" "$corpus"
    else
        fail=$((fail + 1)); failed_bins+=("$bin"); echo "---- $bin failed on $corpus"
        "$bin" "$corpus" 2>&1 | tail -n 30
    fi
}

run_group() {       # $1 group, rest binaries
    local group=$1; shift
    echo "== $group tests"
    if [ "$group" = fuzz ]; then
        for b in "$@"; do run_fuzz_bin "$b"; done
    else
        run_check_bins "$group" "$@"
    fi
}

start=$(date +%s)
if [ "${1:-}" = all ]; then
    run_group unit $(ls $B/tests/unit/test_* 2>/dev/null | grep -v '\.o$')
    run_group integration $(ls $B/tests/integration/test_* 2>/dev/null | grep -v '\.o$')
    run_group fuzz $(ls $B/tests/fuzz/replay_* 2>/dev/null | grep -v '\.o$')
else
    group=$1; shift; run_group "$group" "$@"
fi
echo "time: $(( $(date +%s) - start )) s"
[ ${#failed_bins[@]} -gt 0 ] && echo "failed: ${failed_bins[*]}"
echo "total: $pass passed, $fail failed"
[ $fail -eq 0 ]
