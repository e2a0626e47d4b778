"""Serves the app with hypercorn inside the daemon's nursery (loopback TCP and the control socket),
and beside it the wall's forward_auth responder on its own unix socket. hypercorn speaks HTTP/1.1
only here (`supervisor.api.http1`): an h2c upgrade is a tunnel past Caddy."""

from __future__ import annotations

import errno
import logging
import os
from typing import TYPE_CHECKING

import hypercorn.trio.run
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.utils import wrap_app

from ..auth import FORWARD_AUTH_SOCKET, serve_forward_auth
from ..errors import ListenError
from . import http1
from .app import create_app
from .response_end import shield_response_end

if TYPE_CHECKING:
    from ..typing import AdminContext


class _TCPServer(TCPServer):
    """hypercorn's connection, ended as soon as its peer has closed it, and never closed under a send.

    hypercorn keeps a connection whose peer is gone until its keep-alive timer fires: every
    `dancodes-ctl` call and every upstream connection Caddy drops would hold a socket and a task
    that long (500 control-socket requests: ~380 sockets and +6 MB of RSS at 150 s).
    """

    async def _read_data(self) -> None:
        await super()._read_data()  # returns when the peer closed, the read failed, or we closed
        await self.idle_task.stop()

    async def _close(self) -> None:
        # hypercorn sends EOF without its send lock: a close that comes while the app still sends
        # its answer (the peer went away, or the answer says Connection: close) made that send fail
        # with BusyResourceError. Wait for the send in progress; unless this task is the sender.
        with trio.CancelScope(shield=True):
            if self.send_lock.statistics().owner is trio.lowlevel.current_task():
                await super()._close()
                return
            async with self.send_lock:
                await super()._close()


async def serve_app(
    context: AdminContext,
    stop: trio.Event,
    *,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Bind both listeners, report started, and serve until `stop` is set."""
    loaded = context.loaded
    tcp = f"127.0.0.1:{loaded.config.ports.app}"
    sock = loaded.paths.control_socket
    config = HypercornConfig()
    config.bind = [tcp, f"unix:{sock}"]
    config.umask = 0o177  # the control socket is the operator's alone: mode 0600
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")  # through structlog's pipeline, not its own
    config.graceful_timeout = 1.0
    # Longer than Caddy's upstream idle timeout (2 min by default): Caddy, not we, ends an idle
    # connection, so it never sends a request on one we are closing at that moment (a 502).
    config.keep_alive_timeout = 150.0
    try:
        sockets = config.create_sockets()
    except OSError as exc:
        on_port = exc.errno in (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL)
        where = f"{tcp} (ports.app)" if on_port else f"the control socket {sock}"
        raise ListenError(f"cannot listen on {where}: {exc.strerror or exc}") from None
    os.chmod(sock, 0o600)
    for listener in sockets.insecure_sockets:
        listener.listen(config.backlog)
    http1.install()
    # hypercorn must finish each response's end even when the app cancels it (supervisor.api.response_end)
    app = wrap_app(shield_response_end(create_app(context)), config.wsgi_max_body_size, "asgi")
    try:
        async with trio.open_nursery() as nursery:
            # Caddy's forward_auth asks the wall here rather than through hypercorn (supervisor.auth.forward)
            await nursery.start(serve_forward_auth, context.auth, loaded.paths.run_dir / FORWARD_AUTH_SOCKET)
            # hypercorn.trio.serve, but with sockets bound here so a busy port is a clear error, and
            # with connections that end when their peer ends them (worker_serve looks the class up here)
            hypercorn.trio.run.TCPServer = _TCPServer  # type: ignore[attr-defined]
            await hypercorn.trio.run.worker_serve(
                app, config, sockets=sockets, shutdown_trigger=stop.wait, task_status=task_status
            )
            nursery.cancel_scope.cancel()  # hypercorn is done: so is the responder
    finally:
        sock.unlink(missing_ok=True)
