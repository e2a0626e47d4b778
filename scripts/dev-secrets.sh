#!/usr/bin/env bash
# Secrets for `make run`: the login wall needs AUTH_PASSWORD and AUTH_SECRET. Values already in the
# environment win; otherwise random ones are made once and kept in .dancodes/dev-secrets.env (0600),
# which the developer reads to log in. Prints `export` lines for the Makefile to eval.
set -euo pipefail
file=${1:-.dancodes/dev-secrets.env}
if [[ ! -f $file ]]; then
	mkdir -p "$(dirname "$file")"
	umask 077
	{
		echo "AUTH_PASSWORD=$(python3 -c 'import secrets; print(secrets.token_urlsafe(12))')"
		echo "AUTH_SECRET=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')"
	} >"$file"
	echo "make run: made a dev login password; it is in $file" >&2
fi
given_password=${AUTH_PASSWORD:-}
given_secret=${AUTH_SECRET:-}
# shellcheck disable=SC1090
source "$file"
printf 'export AUTH_PASSWORD=%q\n' "${given_password:-$AUTH_PASSWORD}"
printf 'export AUTH_SECRET=%q\n' "${given_secret:-$AUTH_SECRET}"
