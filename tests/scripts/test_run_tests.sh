#!/usr/bin/env bash
# Checks tests/run-tests.sh itself with stand-in suites (shell scripts printing check's
# summary line): a passing, a failing and a crashing suite are counted and reported, the
# exit status says whether all passed, and SB_TEST_JOBS values that are not a positive
# number run the suites one at a time instead of spinning forever (0) or starting them all
# at once. Each case is bounded by `timeout`. usage: tests/scripts/test_run_tests.sh
set -u
cd "$(dirname "$0")/../.."
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
bad=0
mk() {  # $1 name, $2 body
    printf '#!/bin/sh\n%s\n' "$2" >"$dir/$1"
    chmod +x "$dir/$1"
}
# ok sleeps and records how many stand-ins ran at the same time
mk ok 'n=$(ls '"$dir"'/run.* 2>/dev/null | wc -l); touch '"$dir"'/run.$$; [ "$n" -gt 0 ] && touch '"$dir"'/overlap
sleep 0.3; rm -f '"$dir"'/run.$$; echo "100%: Checks: 2, Failures: 0, Errors: 0"'
mk fail 'echo "50%: Checks: 2, Failures: 1, Errors: 0"; exit 1'
mk crash 'echo "Running suite(s): crash"; kill -SEGV $$'

check() {  # $1 what, $2 condition result (0 ok)
    if [ "$2" -eq 0 ]; then echo "ok   $1"; else echo "FAIL $1"; bad=1; fi
}

out=$(SANITIZE=none timeout 30 tests/run-tests.sh integration "$dir/ok" "$dir/fail" "$dir/crash" "$dir/ok" 2>&1)
rc=$?
check "a failing and a crashing suite fail the run (exit $rc)" $([ $rc -eq 1 ]; echo $?)
check "both are named" $(grep -q "^failed: .*fail.*crash\|^failed: .*crash.*fail" <<<"$out"; echo $?)
check "total 5 passed, 2 failed" $(grep -q "^total: 5 passed, 2 failed" <<<"$out"; echo $?)

out=$(SANITIZE=none timeout 30 tests/run-tests.sh integration "$dir/ok" "$dir/ok" 2>&1)
check "passing suites pass the run (exit $?)" $([ $? -eq 0 ]; echo $?)

for jobs in 0 -1 x; do
    rm -f "$dir/overlap"
    out=$(SB_TEST_JOBS=$jobs SANITIZE=none timeout 10 tests/run-tests.sh integration \
          "$dir/ok" "$dir/ok" "$dir/ok" 2>&1)
    rc=$?
    check "SB_TEST_JOBS=$jobs finishes (exit $rc)" $([ $rc -eq 0 ]; echo $?)
    check "SB_TEST_JOBS=$jobs runs one suite at a time" $([ ! -e "$dir/overlap" ]; echo $?)
done
exit $bad
