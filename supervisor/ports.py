"""One owner per port: is a TCP port free for us, and who holds it if not.

Caddy binds its listeners with SO_REUSEPORT, so a second Caddy on the same port does not fail: the
kernel shares the port and spreads connections over both (measured: a second daemon's Caddy
answered 26 of 40 requests meant for the first). So before the daemon starts, and before each start
of a service that owns a port, we bind the port ourselves *without* SO_REUSEPORT: that bind fails
with EADDRINUSE while anything listens there, SO_REUSEPORT or not.

The test bind is on the IPv6 wildcard with IPV6_V6ONLY off, which conflicts with a listener on any
IPv4 or IPv6 address (checked on Linux), else on the IPv4 wildcard. SO_REUSEADDR is set so that
connections of a previous run still in TIME_WAIT do not count as an owner.
"""

from __future__ import annotations

import contextlib
import errno
import socket
from collections.abc import Iterable

import msgspec
import psutil

from .config import LoadedConfig, start_order
from .errors import ListenError
from .tls import ACME_PORTS


def port_label(loaded: LoadedConfig, port: int, service: str | None = None) -> str:
    """What `port` is for, as a user finds it in the config: "ports.public, for caddy"."""
    table: dict[str, int] = msgspec.structs.asdict(loaded.config.ports)
    key = next((f"ports.{name}" for name, value in table.items() if value == port), None)
    if key is None and loaded.config.tls.mode == "acme" and port in ACME_PORTS:
        key = f"tls.mode acme's {'HTTPS' if port == ACME_PORTS[0] else 'HTTP'} port"
    if service is None:
        return key or "the daemon"
    return f"{key}, for {service}" if key else f"services.{service}.owns_ports"


def daemon_ports(loaded: LoadedConfig) -> list[tuple[int, str]]:
    """Every port the daemon and its enabled services must own, each with what it is for."""
    wanted: dict[int, str] = {}
    app = loaded.config.ports.app
    if app:
        wanted[app] = "ports.app, the daemon's own listener"
    services = loaded.services
    for name in start_order(loaded):
        for port in services[name].owned_ports():
            wanted.setdefault(port, port_label(loaded, port, name))
    return list(wanted.items())


def in_use(port: int) -> bool:
    """True when another socket holds `port` (TCP); other bind errors are left to the real listener."""
    for family, address in ((socket.AF_INET6, "::"), (socket.AF_INET, "0.0.0.0")):
        try:
            sock = socket.socket(family, socket.SOCK_STREAM)
        except OSError:
            continue  # no IPv6 here: the IPv4 wildcard decides
        with sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            try:
                sock.bind((address, port))
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    return True
                if exc.errno == errno.EADDRNOTAVAIL and family == socket.AF_INET6:
                    continue  # IPv6 configured off: try IPv4
                # e.g. EACCES below 1024 for a non-root daemon: the service may still be allowed
                return False
            return False
    return False


def holder(port: int) -> str | None:
    """Who listens on `port`, as "pid 4242 (caddy)", when it can be found out."""
    with contextlib.suppress(psutil.Error, OSError):
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
                try:
                    name = psutil.Process(conn.pid).name()
                except psutil.Error:
                    return f"pid {conn.pid}"
                return f"pid {conn.pid} ({name})"
    return None


def busy_reason(port: int, label: str) -> str | None:
    """One line saying `port` is taken and by whom, or None when it is free."""
    if not in_use(port):
        return None
    who = holder(port)
    return f"port {port} ({label}) is already in use" + (f" by {who}" if who else " by another process")


def check_free(ports: Iterable[tuple[int, str]]) -> None:
    """Raise ListenError naming the first port that is taken; each comes with what it is for."""
    for port, label in ports:
        reason = busy_reason(port, label)
        if reason is not None:
            raise ListenError(reason)
