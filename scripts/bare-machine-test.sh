#!/usr/bin/env bash
# The image's test without Docker: build what the Dockerfile builds, step for step, in a bare Debian
# (debootstrap --variant=minbase bookworm), start `dancodes run` there as PID 1 of its own pid namespace
# (unshare --pid --fork --mount-proc ... chroot ROOT dancodes run), and wait for /admin/health to answer 200
# through Caddy on 127.0.0.1:8080 (the chroot shares the host's network). Then stop it by pid (TERM, then KILL
# of the namespace's init if it lingers). Slow (minutes), so not part of `make test`: `make bare-test`.
#
#   scripts/bare-machine-test.sh [--keep] [--timeout SECONDS]
#
#   --keep             leave the build root (printed at the end) instead of deleting it
#   --timeout SECONDS  how long to wait for health (default 120)
#
# Needs root, apt-get (it installs debootstrap when missing) and the network. The bare Debian (with python3
# and python3-venv, as the image's base has) is cached in $DANCODES_BARE_CACHE (default
# /var/cache/dancodes-bare) with a stamp, so a second run starts from a copy of it. The host's CA bundle
# ($SSL_CERT_FILE, else /etc/ssl/certs/ca-certificates.crt) is copied in and named by SSL_CERT_FILE, PIP_CERT,
# NODE_EXTRA_CA_CERTS, GIT_SSL_CAINFO; the host's PIP_* and npm_config_* variables and ~/.npmrc go in too
# (a PIP_FIND_LINKS directory is bind-mounted read-only at the same path).
# The repo goes in as the Dockerfile's COPY sees it: the working tree's tracked and untracked files, less
# what .gitignore ignores (uncommitted changes are tested too).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
KEEP=0
TIMEOUT=120
while (($#)); do
    case $1 in
        --keep) KEEP=1 ;;
        --timeout)
            (($# > 1)) || { echo "bare-machine-test.sh: error: --timeout needs a number of seconds" >&2; exit 2; }
            TIMEOUT=$2; shift ;;
        -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "bare-machine-test.sh: error: unknown option '$1' (try --help)" >&2; exit 2 ;;
    esac
    shift
done
[[ $TIMEOUT =~ ^[0-9]+$ ]] || { echo "bare-machine-test.sh: error: --timeout wants whole seconds, not '$TIMEOUT'" >&2; exit 2; }

SUITE=bookworm
PACKAGES=(python3 python3-venv)   # the image's base (python:3.11-slim-bookworm) has a Python 3.11 with venv
CACHE=${DANCODES_BARE_CACHE:-/var/cache/dancodes-bare}
PORT=8080
START=$SECONDS

say() { echo "bare-machine-test.sh: [$((SECONDS - START))s] $*"; }
die() { echo "bare-machine-test.sh: error: $*" >&2; exit 1; }
LOG=$(mktemp -t dancodes-bare.XXXXXX)
quiet() {  # what, command...: its output in $LOG; on failure its tail and a one-line error
    local what=$1; shift
    local rc=0
    "$@" >"$LOG" 2>&1 || rc=$?
    if ((rc)); then
        tail -n 40 "$LOG" >&2
        die "$what failed (exit status $rc; its last output is above)"
    fi
}

[[ $(id -u) == 0 ]] || die "needs root (debootstrap, chroot, unshare)"
command -v apt-get >/dev/null || die "apt-get not found: this script needs a Debian-like host"
command -v curl >/dev/null || die "curl not found (apt-get install curl)"
command -v unshare >/dev/null || die "unshare not found (apt-get install util-linux)"

# The mirror apt already uses (deb822 sources first, then sources.list), so debootstrap needs no new route.
mirror() {
    local f
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -f $f ]] || continue
        awk '/^URIs:/ { print $2; exit }' "$f" | grep -v security && return 0
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -f $f ]] || continue
        awk '$1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' "$f" |
            grep . && return 0
    done
    echo http://deb.debian.org/debian
}
MIRROR=$(mirror | head -n1)

# ---------------------------------------------------------------- the cached bare Debian
BASE=$CACHE/base
KEY="$SUITE minbase $MIRROR ${PACKAGES[*]}"
if [[ ! -f $CACHE/base.stamp || $(<"$CACHE/base.stamp") != "$KEY" || ! -x $BASE/usr/bin/python3 ]]; then
    if ! command -v debootstrap >/dev/null; then
        say "installing debootstrap (apt-get)"
        quiet "apt-get update" env DEBIAN_FRONTEND=noninteractive apt-get update
        quiet "apt-get install debootstrap" env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y --no-install-recommends debootstrap
    fi
    mkdir -p "$CACHE"
    rm -rf "$BASE" "$CACHE/base.tmp" "$CACHE/base.stamp"
    say "debootstrap --variant=minbase $SUITE from $MIRROR into $CACHE (cached for the next run)"
    quiet "debootstrap" debootstrap --variant=minbase "$SUITE" "$CACHE/base.tmp" "$MIRROR"
    cp /etc/resolv.conf "$CACHE/base.tmp/etc/resolv.conf"
    say "apt-get install ${PACKAGES[*]} in the bare Debian"
    quiet "apt-get install ${PACKAGES[*]}" unshare --mount --pid --fork --mount-proc="$CACHE/base.tmp/proc" \
        chroot "$CACHE/base.tmp" sh -c "apt-get update && DEBIAN_FRONTEND=noninteractive \
            apt-get install -y --no-install-recommends ${PACKAGES[*]} && rm -rf /var/lib/apt/lists/*"
    mv "$CACHE/base.tmp" "$BASE"
    echo "$KEY" >"$CACHE/base.stamp"
else
    say "bare Debian from the cache ($BASE)"
fi

# ---------------------------------------------------------------- a fresh root for this run
ROOT=$(mktemp -d "$CACHE/run.XXXXXX")
DAEMON_PID=
cleanup() {
    local rc=$?
    if [[ -n $DAEMON_PID ]] && kill -0 "$DAEMON_PID" 2>/dev/null; then  # unshare and its namespace's init
        pkill -KILL -P "$DAEMON_PID" 2>/dev/null || true
        kill -KILL "$DAEMON_PID" 2>/dev/null || true
        wait "$DAEMON_PID" 2>/dev/null || true
    fi
    # every mount lives in the unshare'd mount namespaces, gone with them; this is for a namespace that lingers
    { grep -o " ${ROOT}[^ ]*" /proc/self/mounts || true; } | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
    if [[ $KEEP == 1 ]]; then
        echo "bare-machine-test.sh: the build root is kept: $ROOT"
    else
        rm -rf "$ROOT"
    fi
    rm -f "$LOG"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
say "copying the bare Debian to $ROOT"
cp -a "$BASE/." "$ROOT/"
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"

# The host's CA bundle and registry settings (this machine reaches PyPI and npm only through them).
HOST_CA=${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}
[[ -f $HOST_CA ]] || die "the host's CA bundle $HOST_CA is not a file (set SSL_CERT_FILE)"
CA=/etc/dancodes-host-ca.crt
cp "$HOST_CA" "$ROOT$CA"
ENVS=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8
    "SSL_CERT_FILE=$CA" "PIP_CERT=$CA" "NODE_EXTRA_CA_CERTS=$CA" "GIT_SSL_CAINFO=$CA" "REQUESTS_CA_BUNDLE=$CA")
BINDS=()
while IFS='=' read -r name value; do
    case $name in
        PIP_CERT) ;;
        PIP_* | npm_config_* | NPM_CONFIG_*) ENVS+=("$name=$value") ;;
        *) continue ;;
    esac
    if [[ $name == PIP_FIND_LINKS && -d $value ]]; then BINDS+=("$value"); fi
done < <(env)
if [[ -f $HOME/.npmrc ]]; then cp "$HOME/.npmrc" "$ROOT/root/.npmrc"; fi

# root_command command...: sets CMD to run a command in the root as PID 1 of new pid and mount namespaces
# (their mounts, /proc and /dev and the binds, go away with them), with the environment above.
root_command() {
    local b mounts="mount --rbind /dev '$ROOT/dev'"
    for b in "${BINDS[@]}"; do
        mkdir -p "$ROOT$b"
        mounts+=" && mount --bind -o ro '$b' '$ROOT$b'"
    done
    CMD=(unshare --mount --propagation private --pid --fork --mount-proc="$ROOT/proc"
        sh -c "$mounts && exec chroot '$ROOT' env -i \"\$@\"" sh "${ENVS[@]}" "$@")
}
in_root() { root_command "$@"; "${CMD[@]}"; }

# ---------------------------------------------------------------- the Dockerfile's steps
# Keep these in step with the Dockerfile: its ENV, the manifests' layer (install.sh --prod), the rest of
# the repo (build-web.sh), the agent's user, the entrypoint.
ENVS+=(PREFIX=/opt/dancodes PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1
    PIP_DISABLE_PIP_VERSION_CHECK=1)
APP=$ROOT/opt/dancodes
mkdir -p "$APP"
# COPY the manifests (the install layer; supervisor/__init__.py lets the editable install find the package)
MANIFESTS=(pyproject.toml setup.py constraints.txt package.json package-lock.json scripts/install.sh
    supervisor/__init__.py)
(cd "$REPO" && cp --parents "${MANIFESTS[@]}" "$APP/")
say "scripts/install.sh --prod (Debian packages, .venv, opencode)"
quiet "install.sh --prod" in_root sh -c 'cd /opt/dancodes && scripts/install.sh --prod \
    && rm -rf /var/lib/apt/lists/* /root/.npm /root/.cache'
# COPY . (the working tree as .dockerignore leaves it: .gitignore covers what it drops)
(cd "$REPO" && git ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' f; do [[ -e $f ]] && printf '%s\0' "$f"; done |
    tar --null -T - -cf -) | tar -xf - -C "$APP"
say "scripts/build-web.sh (web/dist)"
quiet "build-web.sh" in_root sh -c 'cd /opt/dancodes && scripts/build-web.sh \
    && rm -rf web/node_modules /root/.npm /root/.cache'
quiet "useradd dancodes-agent" in_root useradd --system --user-group --no-create-home \
    --home-dir /vol/home --shell /bin/bash dancodes-agent
ENVS+=(PATH=/opt/dancodes/.venv/bin:/opt/dancodes/node_modules/.bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
    DANCODES_DATA_DIR=/vol)
mkdir -p "$ROOT/vol"

# ---------------------------------------------------------------- run it as PID 1 and ask for health
URL=http://127.0.0.1:$PORT/admin/health
if curl -s -o /dev/null --max-time 2 "$URL"; then
    die "something already answers on 127.0.0.1:$PORT (the daemon's Caddy needs that port); stop it first"
fi
DAEMON_LOG=$ROOT/daemon.log
say "dancodes run as PID 1 (unshare --pid ... chroot $ROOT)"
AUTH_PASSWORD=bare-test-$RANDOM$RANDOM
AUTH_SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
ENVS+=(AUTH_PASSWORD="$AUTH_PASSWORD" AUTH_SECRET="$AUTH_SECRET")
root_command dancodes run
"${CMD[@]}" >"$DAEMON_LOG" 2>&1 &   # a simple command: $! is unshare itself, the namespace's init its child
UNSHARE_PID=$!
DAEMON_PID=$UNSHARE_PID
code=000
for ((i = 0; i < TIMEOUT * 2; i++)); do
    kill -0 "$UNSHARE_PID" 2>/dev/null || break
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$URL" || true)
    [[ $code == 200 ]] && break
    sleep 0.5
done

# the namespace's init (the daemon): unshare's child, through sh's exec, chroot's and env's
INIT=$(pgrep -P "$UNSHARE_PID" | head -n1 || true)
[[ -n $INIT ]] || say "warning: unshare ($UNSHARE_PID) has no child: the daemon has exited already"
if [[ $code == 200 ]]; then
    say "healthy: GET $URL answered 200 through Caddy"
fi
say "stopping the daemon (SIGTERM to pid ${INIT:-?})"
if [[ -n $INIT ]]; then kill -TERM "$INIT" 2>/dev/null || true; fi
for ((i = 0; i < 40; i++)); do
    kill -0 "$UNSHARE_PID" 2>/dev/null || break
    sleep 0.5
done
KILLED=0
if kill -0 "$UNSHARE_PID" 2>/dev/null; then
    say "still running after 20 s: SIGKILL to the namespace's init"
    if [[ -n $INIT ]]; then kill -KILL "$INIT" 2>/dev/null || true; fi  # takes the whole pid namespace
    KILLED=1
fi
stop_rc=0
wait "$UNSHARE_PID" || stop_rc=$?
DAEMON_PID=
if [[ $code != 200 ]]; then
    tail -n 40 "$DAEMON_LOG" >&2 || true
    die "no 200 from $URL within ${TIMEOUT}s (last status $code); the daemon's log is above"
fi
if ((KILLED)) || ((stop_rc)); then
    tail -n 40 "$DAEMON_LOG" >&2 || true
    ((KILLED == 0)) || die "healthy, but the daemon did not stop on SIGTERM within 20 s (killed); its log is above"
    die "healthy, but the daemon exited with status $stop_rc on SIGTERM; its log is above"
fi
say "done: the image's steps build on a bare $SUITE, the daemon came up healthy and stopped on SIGTERM"
