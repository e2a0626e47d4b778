# dancodes: one container, `dancodes run` as PID 1 supervising opencode and Caddy (see fly.toml).
FROM python:3.11-slim-bookworm

ENV PREFIX=/opt/dancodes \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /opt/dancodes
COPY . /opt/dancodes

# Debian packages (git, procps, nodejs + npm, ...), .venv without dev extras (brings caddy), node_modules
# (opencode), the web app built into web/dist (its build tools are dropped after); then the download caches.
RUN scripts/install.sh --prod \
    && scripts/build-web.sh \
    && rm -rf web/node_modules /var/lib/apt/lists/* /root/.npm /root/.cache

# The agent's own user (opencode and its tools run as it; README, "The agent's boundary"). The daemon
# would create it at start too; made here, its uid is fixed by the image.
RUN useradd --system --user-group --no-create-home --home-dir /vol/home --shell /bin/bash dancodes-agent

ENV PATH=/opt/dancodes/.venv/bin:/opt/dancodes/node_modules/.bin:$PATH \
    DANCODES_DATA_DIR=/vol

VOLUME /vol
EXPOSE 8080
STOPSIGNAL SIGTERM
# Exec form: the daemon itself is PID 1 (reaps orphans, handles TERM/INT/HUP).
ENTRYPOINT ["dancodes", "run"]
