#!/usr/bin/env bash
# Installs the Debian packages surveybus needs to build, test and run its demo.
# As root it runs apt-get; otherwise it prints the command to run and fails.
set -eu
pkgs="build-essential pkg-config librdkafka-dev libmosquitto-dev libjansson-dev libhiredis-dev
check libssl-dev libmicrohttpd-dev redis-server redis-tools mosquitto mosquitto-clients kcat
valgrind clang tzdata chromium fonts-noto-cjk"
[ "${1:-}" = "--list" ] && { echo $pkgs; exit 0; }
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    echo "surveybus: missing Debian packages:$missing" >&2
    echo "run: sudo apt-get update && sudo apt-get install -y$missing" >&2
    exit 1
fi
echo "surveybus: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends $missing >/dev/null
# Debian starts the packaged daemons where an init system runs; tests start their own.
