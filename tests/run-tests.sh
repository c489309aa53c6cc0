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

run_check_bin() {   # $1 group, $2 binary
    local group=$1 bin=$2 log out rc t0=$SECONDS
    log=$(mktemp)
    if [ "$group" = unit ] && [ -z "${SANITIZE:-}" ] && command -v valgrind >/dev/null; then
        CK_FORK=no valgrind -q --leak-check=full --show-leak-kinds=definite,indirect \
            --errors-for-leak-kinds=definite,indirect --error-exitcode=99 "$bin" >"$log" 2>&1
    else
        "$bin" >"$log" 2>&1
    fi
    rc=$?
    out=$(grep -E '^[0-9]+%: Checks: ' "$log" | tail -n 1)
    local n=0 f=0 e=0
    if [[ $out =~ Checks:\ ([0-9]+),\ Failures:\ ([0-9]+),\ Errors:\ ([0-9]+) ]]; then
        n=${BASH_REMATCH[1]}; f=${BASH_REMATCH[2]}; e=${BASH_REMATCH[3]}
    fi
    local bad=$((f + e))
    if [ $rc -ne 0 ] && [ $bad -eq 0 ]; then bad=1; fi   # crash, leak or valgrind error
    pass=$((pass + n - (f + e))); fail=$((fail + bad))
    if [ $bad -ne 0 ] || [ $rc -ne 0 ]; then
        failed_bins+=("$bin")
        echo "---- $bin (exit $rc)"; tail -n 60 "$log"
    else
        printf '  %-48s %s (%d s)\n' "$(basename "$bin")" "$out" $((SECONDS - t0))
    fi
    rm -f "$log"
}

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
    for b in "$@"; do
        if [ "$group" = fuzz ]; then run_fuzz_bin "$b"; else run_check_bin "$group" "$b"; fi
    done
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
