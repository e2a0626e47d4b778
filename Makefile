# dancodes developer entry points. Every target that needs the tools first runs scripts/install.sh, which only
# installs what is missing (a fast no-op when everything is up to date).
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

PY := .venv/bin/python
INSTALL := scripts/install.sh
PYTEST_ARGS ?=

.PHONY: help install web run test bench bare-test wheel lint constraints clean

help:
	@echo "make install      install what is missing: Debian packages, .venv (with [dev]), node_modules (opencode)"
	@echo "make web          build the web app into web/dist (only when web/ changed)"
	@echo "make run          install, then run the daemon with conf/dev.toml (data in ./.dancodes)"
	@echo "make test         install, then vitest (web/) and pytest; extra args: make test PYTEST_ARGS='-k reaper -x'"
	@echo "make bench        install with --bench (.bench-venv with supervisord), then python -m bench"
	@echo "make bare-test    the Dockerfile's steps on a bare Debian (debootstrap), then health through Caddy (root, slow)"
	@echo "make wheel        dist/dancodes-*.whl with conf/, the web app and the opencode pin (pipx install it)"
	@echo "make lint         ruff check, ruff format --check, mypy"
	@echo "make constraints  re-pin constraints.txt after changing dependencies in pyproject.toml"
	@echo "make clean        remove .venv, .bench-venv, node_modules and caches (keeps .dancodes, the dev data)"

install:
	$(INSTALL)

web: install
	scripts/build-web.sh

run: web
	eval "$$(scripts/dev-secrets.sh)"; exec .venv/bin/dancodes run --config conf/dev.toml

# The web app's unit tests (vitest, web/src/*.test.ts) run before pytest; a failing one stops make test.
# The browser tests (tests/browser) drive Debian's chromium against the built web app: both are made first,
# when missing. make itself exits 2 when a recipe fails; the pytest line names pytest's own exit code.
test:
	$(INSTALL) --with-chromium
	scripts/build-web.sh
	cd web && npx --no-install vitest run
	@$(PY) -m pytest $(PYTEST_ARGS) || { rc=$$?; echo "make test: pytest exited with status $$rc" >&2; exit $$rc; }

bench:
	$(INSTALL) --bench
	$(PY) -m bench

# The image without Docker (scripts/bare-machine-test.sh --help); minutes, so not part of make test.
bare-test:
	scripts/bare-machine-test.sh

# The wheel a VPS installs with pipx or uv tool (README, "On a VPS"); setup.py puts conf/, web/dist and the
# opencode pin inside it.
wheel: web
	rm -rf build dist/dancodes-*.whl  # build/: setuptools would reuse stale files of an earlier build
	$(PY) -m pip wheel . --no-deps -q -w dist
	@ls dist/dancodes-*.whl

lint: install
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy

constraints:
	scripts/freeze-constraints.sh

clean:
	rm -rf .venv .bench-venv node_modules web/node_modules web/dist dist web/.npm-stamp web/.build-stamp \
		.mypy_cache .ruff_cache .pytest_cache .hypothesis build test-artifacts *.egg-info
	find . \( -path ./.dancodes -o -path ./.git \) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
