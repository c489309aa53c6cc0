#!/usr/bin/env bash
# The dashboard's build (vite 8) needs Node.js ^20.19 or >= 22.12 and npm. Debian 12's own
# nodejs package is 18, too old: install a newer Node.js from your usual source. Exits 1 with
# a one-line reason when it is missing or too old.
v=$(node --version 2>/dev/null) || v=""
command -v npm >/dev/null 2>&1 || v=""
IFS=. read -r major minor _ <<<"${v#v}"
if [ -n "$v" ] && { [ "$major" -ge 23 ] || { [ "$major" -eq 22 ] && [ "$minor" -ge 12 ]; } ||
                    { [ "$major" -eq 20 ] && [ "$minor" -ge 19 ]; }; }; then
    exit 0
fi
echo "surveybus: the dashboard needs Node.js ^20.19 or >= 22.12 with npm (found: ${v:-none});" \
     "Debian 12's nodejs package is 18" >&2
exit 1
