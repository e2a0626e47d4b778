#!/usr/bin/env bash
# Build the web app (web/ -> web/dist) only when something changed; a second run is a fast no-op.
#
#   scripts/build-web.sh [--force]
#
#   web/node_modules   npm ci, when missing or when package-lock.json changed (stamp: web/.npm-stamp)
#   web/src/generated  the /admin API's types: its OpenAPI spec written by the Python package
#                      (python -m supervisor.api.spec), then openapi-typescript, when the spec changed
#   web/dist           npm run build (tsc --noEmit && vite build), when web/src, web/public, index.html, the
#                      configs or the lockfile changed since the last build (stamp: web/.build-stamp); with
#                      dist/sw.js, the service worker, made by vite.config.ts for this build
# Prints the gzipped size of the JS + CSS of each page and lazy chunk (the budget is 60 KB each, checked by
# scripts/web-budget.py; the service worker apart).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WEB=$REPO/web
FORCE=0
for arg in "$@"; do
    case $arg in
        --force) FORCE=1 ;;
        -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "build-web.sh: error: unknown option '$arg' (try --help)" >&2; exit 2 ;;
    esac
done
command -v npm >/dev/null 2>&1 || { echo "build-web.sh: error: npm not found (run scripts/install.sh)" >&2; exit 1; }

LOG=$(mktemp -t dancodes-build-web.XXXXXX)
trap 'rm -f "$LOG"' EXIT
quiet() {
    local what=$1; shift
    local rc=0
    "$@" >"$LOG" 2>&1 || rc=$?
    if ((rc)); then
        tail -n 40 "$LOG" >&2
        echo "build-web.sh: error: $what failed (exit status $rc; its last output is above)" >&2
        exit 1
    fi
}
stamp_ok() { [[ $FORCE == 0 && -f $1 && $(<"$1") == "$2" ]]; }

cd "$WEB"
npm_hash=$(cat package.json package-lock.json | sha256sum | cut -d' ' -f1)
if [[ ! -d node_modules ]] || ! stamp_ok .npm-stamp "$npm_hash"; then
    echo "build-web.sh: npm ci in web/"
    quiet "npm ci" npm ci --no-audit --no-fund
    echo "$npm_hash" >.npm-stamp
    rm -f .build-stamp
fi

# The web app's types for /admin come from the spec the daemon serves, never by hand: a change to the
# API that the app does not follow fails tsc below (tests/test_admin_api.py checks they are current).
PY=$REPO/.venv/bin/python
[[ -x $PY ]] || { echo "build-web.sh: error: $PY not found (run scripts/install.sh)" >&2; exit 1; }
mkdir -p src/generated
(cd "$REPO" && quiet "writing the /admin OpenAPI spec" "$PY" -m supervisor.api.spec web/src/generated/admin-openapi.json)
spec_hash=$(sha256sum <src/generated/admin-openapi.json | cut -d' ' -f1)
# (`npm run types`: openapi-typescript with --default-non-nullable false, since a field with a default may
# be left out of a request body)
if [[ ! -f src/generated/admin.ts ]] || ! stamp_ok src/generated/.stamp "$spec_hash"; then
    quiet "openapi-typescript" npm run --silent types -- src/generated/admin-openapi.json -o src/generated/admin.ts
    echo "$spec_hash" >src/generated/.stamp
fi

# every input of the build, by content (file names included, so a rename or a deletion counts)
inputs=(src index.html package.json package-lock.json tsconfig.json tsconfig.sw.json vite.config.ts)
[[ -d public ]] && inputs+=(public)
src_hash=$(
    find "${inputs[@]}" -type f | LC_ALL=C sort | while IFS= read -r f; do printf '%s\0' "$f"; sha256sum <"$f"; done | sha256sum | cut -d' ' -f1
)
if [[ -f dist/index.html ]] && stamp_ok .build-stamp "$src_hash"; then
    built=0
else
    echo "build-web.sh: building web/dist"
    quiet "npm run build" npm run build
    echo "$src_hash" >.build-stamp
    built=1
fi

# the gzipped size of what a browser downloads (JS + CSS) per page: the page, and each lazily loaded chunk
sw=$(awk -v b="$(gzip -9 -c dist/sw.js | wc -c)" 'BEGIN { printf "%.1f", b / 1024 }')
if ((built)); then
    echo "build-web.sh: web/dist built (budget 60 KB a page), service worker ${sw} KB; JS + CSS gzipped:"
else
    echo "build-web.sh: web/dist up to date, service worker ${sw} KB; JS + CSS gzipped:"
fi
if ! "$PY" "$REPO/scripts/web-budget.py" dist | sed 's/^/  /'; then
    echo "build-web.sh: error: a page of the web app is over the 60 KB budget" >&2
    exit 1
fi
