# dancodes: one container, `dancodes run` as PID 1 supervising opencode and Caddy (see fly.toml).
FROM python:3.11-slim-bookworm

ENV PREFIX=/opt/dancodes \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /opt/dancodes

# The install layer, cached while its inputs do not change: the manifests first (supervisor/__init__.py lets
# the editable install find the package; the rest of it comes in the next COPY), then Debian packages (git,
# procps, nodejs + npm, ...), .venv without dev extras (brings caddy), node_modules (opencode); then the
# download caches. scripts/bare-machine-test.sh (make bare-test) runs these same steps on a bare Debian: keep
# the two in step.
COPY pyproject.toml setup.py constraints.txt package.json package-lock.json /opt/dancodes/
COPY scripts/install.sh /opt/dancodes/scripts/
COPY supervisor/__init__.py /opt/dancodes/supervisor/
RUN scripts/install.sh --prod \
    && rm -rf /var/lib/apt/lists/* /root/.npm /root/.cache

# The rest of the repo, and the web app built into web/dist (its build tools are dropped after).
COPY . /opt/dancodes
RUN scripts/build-web.sh \
    && rm -rf web/node_modules /root/.npm /root/.cache

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
