"""`python -m bench forward_auth [--requests N] [--seconds S] [--conns C] [--json]`: the wall's cost.

Starts the real daemon (`dancodes run`, services disabled) and a real Caddy with three loopback
sites that all answer `respond "ok"`:

    none   no auth at all: the ceiling
    fast   forward_auth to the daemon's unix socket responder (`<run_dir>/auth.sock`): production
    app    forward_auth to the Quart route /auth/check on the app's TCP port, for comparison

Every request carries a valid cookie from a real login. It measures the latency of sequential
keep-alive requests through each site (p50/p99, and what the auth adds to the "none" site), then
requests per second with several client processes in parallel, each on its own kept-alive
connection. The clients are raw sockets and a fraction of the ceiling's speed is all the auth sites
need, so the clients are not what limits them.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import platform
import socket
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench.procs import BenchError, Processes, free_ports, log, part_main, run_part, start_bare_daemon

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 30.0
TARGET_ADDED_P50_MS = 1.0
TARGET_CHECKS_PER_S = 2000.0
SITES = ("none", "fast", "app")

CADDYFILE = """\
{{
	admin off
	auto_https off
	persist_config off
}}
http://127.0.0.1:{none} {{
	bind 127.0.0.1
	respond "ok" 200
}}
http://127.0.0.1:{fast} {{
	bind 127.0.0.1
	forward_auth unix/{socket} {{
		uri /auth/check
	}}
	respond "ok" 200
}}
http://127.0.0.1:{app_site} {{
	bind 127.0.0.1
	forward_auth 127.0.0.1:{app} {{
		uri /auth/check
	}}
	respond "ok" 200
}}
"""


# -- the client: raw HTTP/1.1 on one kept-alive connection -----------------------------------------


class Client:
    """GET / over one kept-alive connection; `get` returns the status."""

    def __init__(self, port: int, cookie: str) -> None:
        self.port = port
        self.request = (
            f"GET /some/page?x=1 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: application/json\r\n"
            f"Cookie: dancodes_auth={cookie}\r\n\r\n"
        ).encode()
        self.sock = self._connect()
        self.buffer = b""

    def _connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def get(self) -> int:
        self.sock.sendall(self.request)
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(self.buffer) < length:
            self._fill()
        self.buffer = self.buffer[length:]
        return status

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise BenchError(f"127.0.0.1:{self.port} closed the connection")
        self.buffer += data

    def close(self) -> None:
        self.sock.close()


def latencies(port: int, cookie: str, n: int) -> list[float]:
    """Milliseconds per request, `n` sequential requests on one connection (after a warm-up)."""
    client = Client(port, cookie)
    try:
        for _ in range(50):
            _expect_ok(client.get(), port)
        samples = []
        clock = time.perf_counter
        for _ in range(n):
            t0 = clock()
            status = client.get()
            samples.append((clock() - t0) * 1000)
            _expect_ok(status, port)
        return samples
    finally:
        client.close()


def _expect_ok(status: int, port: int) -> None:
    if status != 200:
        raise BenchError(f"127.0.0.1:{port} answered {status}, not 200: is the cookie refused?")


def _load_worker(port: int, cookie: str, start: float, seconds: float, out: Any) -> None:
    """One client process: requests as fast as answers come, from `start` for `seconds`."""
    try:
        client = Client(port, cookie)
        for _ in range(20):
            _expect_ok(client.get(), port)
        time.sleep(max(0.0, start - time.time()))
        end = time.perf_counter() + seconds
        count = 0
        while time.perf_counter() < end:
            _expect_ok(client.get(), port)
            count += 1
        client.close()
        out.put(("ok", count))
    except Exception as exc:  # reported by the parent
        out.put(("error", f"{type(exc).__name__}: {exc}"))


def throughput(port: int, cookie: str, conns: int, seconds: float, watch: list[int]) -> dict[str, Any]:
    """Requests per second with `conns` client processes; CPU seconds the `watch` pids spent."""
    context = multiprocessing.get_context("fork")
    out = context.Queue()
    start = time.time() + 0.5  # every worker connected and warm before the clock starts
    workers = [
        context.Process(target=_load_worker, args=(port, cookie, start, seconds, out)) for _ in range(conns)
    ]
    for worker in workers:
        worker.start()
    time.sleep(max(0.0, start - time.time()))
    cpu0 = [_cpu(pid) for pid in watch]
    results = [out.get(timeout=seconds + 30) for _ in workers]
    cpu1 = [_cpu(pid) for pid in watch]
    for worker in workers:
        worker.join(10)
    errors = [detail for kind, detail in results if kind == "error"]
    if errors:
        raise BenchError(f"a client on 127.0.0.1:{port} failed: {errors[0]}")
    total = sum(int(count) for _, count in results)
    return {
        "per_s": total / seconds,
        "requests": total,
        "cpu_s": [b - a for a, b in zip(cpu0, cpu1, strict=True)],
    }


def _cpu(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


# -- the processes ---------------------------------------------------------------------------------


def _wait(what: str, check: Any, proc: Any, logfile: Path) -> Any:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = logfile.read_text(errors="replace").strip().splitlines()[-5:]
            raise BenchError(f"{what} exited with {proc.returncode}: {' | '.join(tail)}")
        try:
            result = check()
        except (httpx.HTTPError, OSError):
            result = None
        if result:
            return result
        time.sleep(0.05)
    raise BenchError(f"{what} not ready after {START_TIMEOUT:g}s (log: {logfile})")


def start_daemon(procs: Processes, tmp: Path) -> tuple[int, int, Path, str]:
    """The daemon with no services; return its pid, app port, run dir and a logged-in cookie."""
    daemon = start_bare_daemon(procs, tmp)
    proc, logfile, ports, password, data = (
        daemon.proc,
        daemon.logfile,
        daemon.ports,
        daemon.password,
        daemon.data,
    )
    app = f"http://127.0.0.1:{ports['app']}"
    _wait("dancodes", lambda: httpx.get(f"{app}/admin/health", timeout=2).status_code == 200, proc, logfile)
    login = httpx.post(
        f"{app}/auth/login",
        data={"password": password, "next": "/"},
        headers={"Sec-Fetch-Site": "same-origin"},
        timeout=5,
    )
    cookie = login.cookies.get("dancodes_auth")
    if login.status_code != 303 or not cookie:
        raise BenchError(
            f"logging in to the daemon answered {login.status_code}: is the auth blueprint wired in?"
        )
    return proc.pid, ports["app"], data / "run", cookie


def start_caddy(procs: Processes, tmp: Path, app_port: int, run_dir: Path) -> tuple[int, dict[str, int]]:
    from supervisor.auth import FORWARD_AUTH_SOCKET

    socket_path = run_dir / FORWARD_AUTH_SOCKET
    if not socket_path.is_socket():
        raise BenchError(
            f"the daemon has no forward_auth socket at {socket_path}: is the responder wired in?"
        )
    sites = dict(zip(SITES, free_ports(len(SITES)), strict=True))
    caddyfile = tmp / "Caddyfile"
    caddyfile.write_text(
        CADDYFILE.format(
            none=sites["none"], fast=sites["fast"], app_site=sites["app"], app=app_port, socket=socket_path
        )
    )
    env = {
        **os.environ,
        "XDG_DATA_HOME": str(tmp / "caddy-data"),
        "XDG_CONFIG_HOME": str(tmp / "caddy-config"),
    }
    logfile = tmp / "caddy.log"
    proc = procs.start(
        [str(ROOT / ".venv/bin/caddy"), "run", "--config", str(caddyfile), "--adapter", "caddyfile"],
        log=logfile,
        env=env,
        cwd=tmp,
    )
    for port in sites.values():
        url = f"http://127.0.0.1:{port}/"
        _wait("caddy", lambda url=url: httpx.get(url, timeout=2).status_code > 0, proc, logfile)
    return proc.pid, sites


# -- the measurement -------------------------------------------------------------------------------


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]  # nearest rank


def measure(requests: int, seconds: float, conns: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="dancodes-bench-fa-") as tmp_name:
        tmp = Path(tmp_name)
        procs = Processes()
        try:
            log("starting dancodes (no services) and Caddy with three sites")
            daemon_pid, app_port, run_dir, cookie = start_daemon(procs, tmp)
            caddy_pid, sites = start_caddy(procs, tmp, app_port, run_dir)
            rounds = 5  # sites take turns, so a noisy neighbour hits them all alike
            samples: dict[str, list[float]] = {site: [] for site in SITES}
            log(f"latency: {requests} sequential requests per site")
            for _ in range(rounds):
                for site in SITES:
                    samples[site] += latencies(sites[site], cookie, max(1, requests // rounds))
            rates: dict[str, dict[str, Any]] = {}
            for site in SITES:
                log(f"throughput: {conns} clients for {seconds:g} s through '{site}'")
                rates[site] = throughput(sites[site], cookie, conns, seconds, [daemon_pid, caddy_pid])
        finally:
            procs.stop_all()
    return report(samples, rates, conns, seconds)


def report(
    samples: dict[str, list[float]], rates: dict[str, dict[str, Any]], conns: int, seconds: float
) -> dict[str, Any]:
    latency = {
        site: {
            "p50": statistics.median(ms),
            "p99": percentile(ms, 0.99),
            "mean": statistics.fmean(ms),
            "n": len(ms),
        }
        for site, ms in samples.items()
    }
    added = {
        site: {q: latency[site][q] - latency["none"][q] for q in ("p50", "p99")} for site in ("fast", "app")
    }
    per_s = {site: rates[site]["per_s"] for site in SITES}
    cpu_us = {
        site: {
            "daemon": rates[site]["cpu_s"][0] / max(1, rates[site]["requests"]) * 1e6,
            "caddy": rates[site]["cpu_s"][1] / max(1, rates[site]["requests"]) * 1e6,
        }
        for site in SITES
    }
    return {
        "conns": conns,
        "seconds": seconds,
        "latency_ms": latency,
        "added_ms": added,
        "per_s": per_s,
        "cpu_us_per_request": cpu_us,
        "ratio": {
            "fast_vs_none_per_s": per_s["fast"] / per_s["none"],
            "fast_vs_app_per_s": per_s["fast"] / per_s["app"],
            "app_vs_fast_added_p50": added["app"]["p50"] / added["fast"]["p50"]
            if added["fast"]["p50"] > 0
            else None,
        },
        "targets": {
            "added_p50_ms": {
                "value": added["fast"]["p50"],
                "limit": TARGET_ADDED_P50_MS,
                "pass": added["fast"]["p50"] <= TARGET_ADDED_P50_MS,
            },
            "checks_per_s": {
                "value": per_s["fast"],
                "limit": TARGET_CHECKS_PER_S,
                "pass": per_s["fast"] >= TARGET_CHECKS_PER_S,
            },
        },
    }


def render(r: dict[str, Any]) -> str:
    lat, added, per_s, cpu = r["latency_ms"], r["added_ms"], r["per_s"], r["cpu_us_per_request"]

    def verdict(name: str) -> str:
        return "PASS" if r["targets"][name]["pass"] else "MISS"

    labels = {
        "none": "no auth (ceiling)",
        "fast": "forward_auth, unix socket",
        "app": "forward_auth, Quart route",
    }
    out = [
        f"forward_auth through Caddy: Python {platform.python_version()}, {os.cpu_count()} CPUs, "
        "a valid cookie on every request",
        "",
        f"latency, ms (sequential keep-alive requests, {lat['none']['n']} per site)",
        f"  {'site':<28} {'p50':>7} {'p99':>7} {'+p50':>7} {'+p99':>7}",
    ]
    for site in SITES:
        plus = added.get(site)
        extra = f" {plus['p50']:>7.3f} {plus['p99']:>7.3f}" if plus else f" {'':>7} {'':>7}"
        out.append(f"  {labels[site]:<28} {lat[site]['p50']:>7.3f} {lat[site]['p99']:>7.3f}{extra}")
    out += [
        "",
        f"throughput, requests/s ({r['conns']} client processes, {r['seconds']:g} s each)",
        f"  {'site':<28} {'req/s':>9} {'vs none':>8} {'daemon us/req':>14} {'caddy us/req':>13}",
    ]
    for site in SITES:
        out.append(
            f"  {labels[site]:<28} {per_s[site]:>9.0f} {per_s[site] / per_s['none']:>7.2f}x "
            f"{cpu[site]['daemon']:>14.0f} {cpu[site]['caddy']:>13.0f}"
        )
    out += [
        f"  unix-socket responder vs Quart route: {r['ratio']['fast_vs_app_per_s']:.2f}x the checks/s",
        "",
        "targets (the unix-socket responder, as in production)",
        f"  added p50 <= {TARGET_ADDED_P50_MS:g} ms: {added['fast']['p50']:.3f} ms"
        f"  {verdict('added_p50_ms')}",
        f"  checks/s >= {TARGET_CHECKS_PER_S:g}: {per_s['fast']:.0f}  {verdict('checks_per_s')}",
    ]
    return "\n".join(out)


def run(requests: int, seconds: float, conns: int) -> dict[str, Any] | None:
    """Measure; None (after saying why on stderr) if the bench itself failed."""
    return run_part("forward_auth", lambda: measure(requests, seconds, conns))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--requests", type=int, default=3000, metavar="N", help="sequential requests per site"
    )
    parser.add_argument("--seconds", type=float, default=3.0, metavar="S", help="seconds of load per site")
    parser.add_argument("--conns", type=int, default=6, metavar="C", help="client processes under load")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench forward_auth", description=__doc__.splitlines()[0])
    add_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    if args.requests < 1 or args.seconds <= 0 or args.conns < 1:
        parser.error("--requests, --seconds and --conns must be positive")
    return part_main(
        "forward_auth", lambda: measure(args.requests, args.seconds, args.conns), render, as_json=args.json
    )
