#!/usr/bin/env bash
# Builds every tests/fuzz/fuzz_*.c target with libFuzzer + ASan/UBSan (clang) and runs each
# for a bounded time on a scratch copy of its seed corpus. usage: fuzz.sh [seconds-per-target]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-30}
cc=${FUZZ_CC:-clang}
out=build/fuzz
mkdir -p "$out"
pkgs="rdkafka libmosquitto jansson hiredis libcrypto libmicrohttpd"
flags="-std=c11 -D_GNU_SOURCE -O1 -g -fno-omit-frame-pointer -Icommon $(pkg-config --cflags $pkgs)"
san="-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined"
objs=()
for src in common/*.c; do
    o="$out/$(basename "${src%.c}").o"
    "$cc" $flags -fsanitize=fuzzer-no-link,address,undefined -c "$src" -o "$o"
    objs+=("$o")
done
status=0
for t in tests/fuzz/fuzz_*.c; do
    name=$(basename "${t%.c}"); name=${name#fuzz_}
    bin="$out/fuzz_$name"
    "$cc" $flags $san "$t" "${objs[@]}" -o "$bin" $(pkg-config --libs $pkgs) -lm -lpthread
    scratch=$(mktemp -d)
    cp -r "tests/fuzz/corpus/$name/." "$scratch/" 2>/dev/null || true
    echo "== fuzz_$name for ${secs}s"
    if ! "$bin" -max_total_time="$secs" -max_len=70000 -print_final_stats=1 \
            -artifact_prefix="$out/fuzz_$name-" "$scratch" 2>"$out/fuzz_$name.log"; then
        status=1
        echo "fuzz_$name FOUND A CRASH: see $out/fuzz_$name.log and $out/fuzz_$name-*"
        tail -n 40 "$out/fuzz_$name.log"
    else
        grep -E "stat::number_of_executed_units|stat::peak_rss" "$out/fuzz_$name.log" | tr '\n' ' '
        echo
    fi
    rm -rf "$scratch"
done
exit $status
