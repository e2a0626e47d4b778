"""Serves the app with hypercorn inside the daemon's nursery (loopback TCP and the control socket),
and beside it the wall's forward_auth responder on its own unix socket. hypercorn speaks HTTP/1.1
only here (`supervisor.api.http1`): an h2c upgrade is a tunnel past Caddy."""

from __future__ import annotations

import errno
import logging
import os
from typing import TYPE_CHECKING

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio.run import worker_serve
from hypercorn.utils import wrap_app

from supervisor.api import http1
from supervisor.api.app import create_app
from supervisor.auth import FORWARD_AUTH_SOCKET, serve_forward_auth
from supervisor.errors import ListenError

if TYPE_CHECKING:
    from supervisor.daemon import Daemon


async def serve_app(
    daemon: Daemon, stop: trio.Event, *, task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED
) -> None:
    """Bind both listeners, report started, and serve until `stop` is set."""
    loaded = daemon.loaded
    tcp = f"127.0.0.1:{loaded.config.ports.app}"
    sock = loaded.paths.control_socket
    config = HypercornConfig()
    config.bind = [tcp, f"unix:{sock}"]
    config.umask = 0o177  # the control socket is the operator's alone: mode 0600
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")  # through structlog's pipeline, not its own
    config.graceful_timeout = 1.0
    config.keep_alive_timeout = 30.0
    try:
        sockets = config.create_sockets()
    except OSError as exc:
        where = tcp if exc.errno in (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL) else str(sock)
        raise ListenError(f"cannot listen on {where}: {exc.strerror or exc}") from None
    os.chmod(sock, 0o600)
    for listener in sockets.insecure_sockets:
        listener.listen(config.backlog)
    http1.install()
    app = wrap_app(create_app(daemon), config.wsgi_max_body_size, None)
    try:
        async with trio.open_nursery() as nursery:
            # Caddy's forward_auth asks the wall here rather than through hypercorn (supervisor.auth.forward)
            await nursery.start(serve_forward_auth, daemon.auth, loaded.paths.run_dir / FORWARD_AUTH_SOCKET)
            # hypercorn.trio.serve, but with sockets bound here so a busy port is a clear error
            await worker_serve(
                app, config, sockets=sockets, shutdown_trigger=stop.wait, task_status=task_status
            )
            nursery.cancel_scope.cancel()  # hypercorn is done: so is the responder
    finally:
        sock.unlink(missing_ok=True)
