"""`dancodes-ctl`: the operator's command line, a client of the daemon's admin API on its control socket.

It lives in its own process and talks HTTP over the unix socket with a synchronous httpx client:
argument parsing, one function per command, and the small formatters behind the human tables.
`--json` prints what the daemon answered, for scripts. Every failure is one line on stderr and an
exit status that says which kind it was (see EPILOG); a traceback never reaches the user.
`-q` prints nothing on success but what was asked for (`logs`, `config get`, `worktrees`, `--json`);
`-v` adds each request to the daemon, and its answer's status, on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from .errors import ConfigError, ControlError, DaemonUnreachable, DancodesError
from .verbosity import add_verbosity

PROG = "dancodes-ctl"

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2  # argparse's own
EXIT_NOT_RUNNING = 3  # LSB's "program is not running", as supervisorctl uses it
EXIT_UNREACHABLE = 4
EXIT_BROKEN_PIPE = 128 + 13  # what a shell reports for a reader that went away (SIGPIPE)

EPILOG = """\
exit status:
  0  success
  1  the daemon refused or failed the request (the reason is on stderr)
  2  usage error, or a --config file that cannot be read
  3  a service is not running: `status` when any service is not in state running,
     `start`/`restart` when the service did not reach running
  4  the daemon cannot be reached on its control socket

The socket is --socket, else the one of the daemon config given with --config, else
$DANCODES_SOCKET, else <data_dir>/run/dancodes.sock (data_dir: $DANCODES_DATA_DIR, else /vol
when writable, else ./.dancodes).
"""

Json = dict[str, Any]


# -- talking to the daemon -------------------------------------------------------------------------


class DaemonClient:
    """The admin API on the control socket; every failure comes out as a ControlError."""

    def __init__(self, socket: Path, timeout: float, *, verbose: bool = False) -> None:
        self.socket = socket
        self.timeout = timeout
        hooks: dict[str, list[Callable[..., None]]] = {"response": [_trace_response]} if verbose else {}
        self._client = httpx.Client(
            transport=httpx.HTTPTransport(uds=str(socket)),
            base_url="http://dancodes",
            timeout=timeout,
            event_hooks=hooks,
        )

    def close(self) -> None:
        self._client.close()

    def get(self, path: str, *, ok: Sequence[int] = (200,)) -> Json:
        with self._failures():
            response = self._client.get(path)
        return _body(response, ok)

    def post(self, path: str) -> Json:
        return self.request("POST", path)

    def request(
        self,
        method: str,
        path: str,
        body: Json | None = None,
        *,
        ok: Sequence[int] = (200,),
        timeout: float | None = None,
    ) -> Json:
        """`timeout`: for a request that takes longer than most (an opencode update)."""
        with self._failures():
            response = self._client.request(
                method, path, json=body, timeout=self.timeout if timeout is None else timeout
            )
        return _body(response, ok)

    def stream_lines(self, path: str) -> Iterator[str]:
        """The lines of a streamed answer, as they come; reads wait as long as the daemon is quiet."""
        timeout = httpx.Timeout(self.timeout, read=None)
        with self._failures(), self._client.stream("GET", path, timeout=timeout) as response:
            if response.status_code != 200:
                response.read()
                _body(response, (200,))
            yield from response.iter_lines()

    @contextmanager
    def _failures(self) -> Iterator[None]:
        try:
            yield
        except httpx.ConnectError as exc:
            raise self._unreachable(exc) from None
        except httpx.TimeoutException:
            raise ControlError(
                f"the daemon at {self.socket} did not answer within {self.timeout:g}s"
            ) from None
        except httpx.HTTPError as exc:
            detail = str(exc) or type(exc).__name__
            raise ControlError(f"lost the connection to the daemon at {self.socket}: {detail}") from None

    def _unreachable(self, exc: BaseException) -> DaemonUnreachable:
        # a socket of another user (mode 0600) is there and listening: "is it running?" would mislead
        if _caused_by(exc, PermissionError):
            return DaemonUnreachable(
                f"permission denied on the control socket {self.socket}: run {PROG} as the daemon's user"
            )
        return DaemonUnreachable(f"cannot reach the daemon at {self.socket}: is it running?")


def _trace_response(response: httpx.Response) -> None:
    request = response.request
    note(f"{request.method} {request.url.path} -> {response.status_code}")


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, kind):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _body(response: httpx.Response, ok: Sequence[int]) -> Json:
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code in ok and isinstance(body, dict):
        return body
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        raise ControlError(body["error"], status=response.status_code)
    raise ControlError(
        f"the daemon answered HTTP {response.status_code} {response.reason_phrase} "
        f"to {response.request.method} {response.request.url.path} without a usable body",
        status=response.status_code,
    )


def service_path(name: str, *rest: str) -> str:
    return "/".join(["/admin/services", quote(name, safe=""), *rest])


# -- formatting ----------------------------------------------------------------------------------


def human_duration(seconds: float | None) -> str:
    """3s, 5m12s, 2h03m, 4d02h: two units at most, enough to read at a glance."""
    if seconds is None:
        return "-"
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def human_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    size, unit = float(n), "B"
    for bigger in ("K", "M", "G", "T"):
        if size < 1024:
            break
        size, unit = size / 1024, bigger
    return f"{size:.0f}{unit}" if unit == "B" or size >= 100 else f"{size:.1f}{unit}"


def cpu_time(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.2f}s" if seconds < 60 else human_duration(seconds)


def last_exit(exit_: Json | None) -> str:
    if not exit_:
        return "-"
    if exit_.get("signal"):
        return str(exit_["signal"])
    return f"status {exit_.get('code')}"


def health_word(healthy: bool | None) -> str:
    if healthy is None:
        return "-"  # no verdict: not running, or still starting
    return "healthy" if healthy else "unhealthy"


def table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], notes: Sequence[str | None] | None = None
) -> list[str]:
    """Columns padded to their widest cell; a row's note, if any, goes on an indented line below it."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()

    out = [line(headers)]
    for i, row in enumerate(rows):
        out.append(line(row))
        note = notes[i] if notes else None
        if note:
            out.append(f"  {note}")
    return out


def service_line(svc: Json) -> str:
    """`opencode: running (pid 123)`, or the state with its reason."""
    text = f"{svc['name']}: {svc['state']}"
    if svc.get("pid") is not None:
        text += f" (pid {svc['pid']})"
    if svc.get("reason"):
        text += f": {svc['reason']}"
    return text


def status_lines(health: Json, orphans: list[Json], *, width: int | None) -> list[str]:
    services = list(health.get("services", {}).values())
    lines = (
        table(
            ["SERVICE", "STATE", "PID", "UPTIME", "RESTARTS", "LAST-EXIT", "HEALTH"],
            [
                [
                    s["name"],
                    s["state"],
                    _dash(s.get("pid")),
                    human_duration(s.get("uptime")),
                    str(s.get("restarts", 0)),
                    last_exit(s.get("last_exit")),
                    health_word(s.get("healthy")),
                ]
                for s in services
            ],
            [s.get("reason") for s in services],
        )
        if services
        else ["no services"]
    )
    lines += ["", daemon_line(health)]
    disk = disk_line(health)
    lines += [disk, ""] if disk else [""]
    lines += orphan_lines(orphans, width=width)
    return lines


def disk_line(health: Json) -> str | None:
    disk = health.get("disk")
    if not disk:
        return None
    used, total, free = (human_bytes(disk[k]) for k in ("used", "total", "free"))
    return f"disk {used} used of {total}, {free} free"


def daemon_line(health: Json) -> str:
    d = health.get("daemon", {})
    parts = [
        f"daemon pid {d.get('pid')}",
        f"mode {d.get('mode')}",
        f"version {d.get('version')}",
        f"up {human_duration(d.get('uptime'))}",
        f"health {health.get('status')}",
        f"{d.get('orphans_reaped', 0)} orphans reaped",
    ]
    if d.get("stopping"):
        parts.append("STOPPING")
    return ", ".join(parts)


def orphan_lines(orphans: list[Json], *, width: int | None) -> list[str]:
    if not orphans:
        return ["no orphans"]
    lines = [
        "ORPHANS",
        *table(
            ["PID", "AGE", "CPU", "RSS", "SERVICE", "COMMAND"],
            [
                [
                    str(o["pid"]),
                    human_duration(o.get("age")),
                    cpu_time(o.get("cpu")),
                    human_bytes(o.get("rss")),
                    o.get("service") or "-",
                    shlex.join(o.get("cmdline") or []),
                ]
                for o in orphans
            ],
        ),
    ]
    # only a terminal gets cut to its width; a pipe keeps whole command lines for grep
    return [_fit(line, width) for line in lines] if width else lines


def _fit(line: str, width: int) -> str:
    return line if len(line) <= width else line[: max(0, width - 1)] + "…"


def _dash(value: object) -> str:
    return "-" if value is None else str(value)


def log_line(entry: Json, *, raw: bool = False) -> str:
    clock = time.strftime("%H:%M:%S", time.localtime(float(entry.get("t", 0))))
    line = str(entry.get("line", ""))
    return f"{clock} {entry.get('stream', '?'):<6} {line if raw else readable(line)}"


def readable(line: str) -> str:
    """A JSON log line (Caddy's) as `level logger: msg key=value`; any other line as it is.

    Nested objects (a request's headers) are left out but for the request's method and URI: -v
    shows the whole line.
    """
    if not line.startswith("{"):
        return line
    try:
        fields = json.loads(line)
    except ValueError:
        return line
    if not isinstance(fields, dict) or "msg" not in fields:
        return line
    head = " ".join(str(fields[k]) for k in ("level", "logger") if k in fields)
    parts = [f"{head}: {fields['msg']}" if head else str(fields["msg"])]
    request = fields.get("request")
    if isinstance(request, dict) and "method" in request:
        parts.append(f"request={request['method']} {request.get('uri', '')}".rstrip())
    for key, value in fields.items():
        if key not in ("level", "logger", "msg", "ts") and isinstance(value, str | int | float | bool):
            parts.append(f"{key}={value}")
    return " ".join(parts)


# -- commands ------------------------------------------------------------------------------------


#: -q: commands that change something or report a state say nothing on success (main sets it).
QUIET = False


def out(text: str = "") -> None:
    print(text, flush=True)  # flush: `logs -f` into a pipe must not sit in a buffer


def say(text: str) -> None:
    """A confirmation or a report: printed unless -q (the exit status carries the answer then)."""
    if not QUIET:
        out(text)


def note(text: str) -> None:
    """-v detail: on stderr, so it never mixes into what a script reads from stdout."""
    print(f"{PROG}: {text}", file=sys.stderr, flush=True)


def out_json(value: object) -> None:
    out(json.dumps(value, indent=2))


def cmd_status(daemon: DaemonClient, args: argparse.Namespace) -> int:
    health = daemon.get("/admin/health", ok=(200, 503))  # 503 is a degraded daemon, still an answer
    orphans = daemon.get("/admin/processes").get("orphans", [])
    if args.json:
        out_json({"health": health, "orphans": orphans})
    else:
        width = shutil.get_terminal_size().columns if sys.stdout.isatty() else None
        for line in status_lines(health, orphans, width=width):
            say(line)
    services = health.get("services", {}).values()
    return EXIT_OK if all(s.get("state") == "running" for s in services) else EXIT_NOT_RUNNING


def cmd_kill(daemon: DaemonClient, args: argparse.Namespace) -> int:
    if args.orphans:
        body = daemon.post("/admin/processes/orphans/kill")
    else:
        body = daemon.post(f"/admin/processes/{args.pid}/kill")
    if args.json:
        out_json(body)
        return EXIT_OK
    killed = body.get("killed", [])
    if killed:
        say("killed " + " ".join(str(pid) for pid in killed))
    else:
        say("no orphans to kill" if args.orphans else f"pid {args.pid} was already gone")
    return EXIT_OK


def cmd_control(daemon: DaemonClient, args: argparse.Namespace) -> int:
    # the daemon answers once a start has played out: running, or failed with its reason
    svc = daemon.post(service_path(args.service, args.command))["service"]
    if args.json:
        out_json({"service": svc})
    else:
        say(service_line(svc))
    if args.command == "stop":
        return EXIT_OK
    return EXIT_OK if svc["state"] == "running" else EXIT_NOT_RUNNING


def cmd_logs(daemon: DaemonClient, args: argparse.Namespace) -> int:
    raw = args.verbosity > 0

    def render(entry: Json) -> str:
        return json.dumps(entry) if args.json else log_line(entry, raw=raw)

    def show(entry: Json) -> None:
        out(render(entry))

    if not args.follow:
        for entry in daemon.get(service_path(args.service, "logs") + f"?n={args.n}").get("lines", []):
            show(entry)
        return EXIT_OK
    try:
        for raw in daemon.stream_lines(service_path(args.service, "logs") + f"?follow=1&n={args.n}"):
            if raw.strip():  # blank lines are the daemon's heartbeats
                show(_entry(raw))
    except KeyboardInterrupt:
        return EXIT_OK  # Ctrl-C is how one stops following
    raise ControlError("the daemon ended the log stream (is it stopping?)")


def _entry(raw: str) -> Json:
    try:
        entry = json.loads(raw)
    except ValueError:
        entry = None
    if not isinstance(entry, dict):
        raise ControlError(f"the daemon sent a log line that is not a JSON object: {raw[:80]!r}")
    return entry


def cmd_config(daemon: DaemonClient, args: argparse.Namespace) -> int:
    if args.action == "get" and args.key is None:
        body = daemon.get("/admin/config")
        if args.json:
            out_json(body)
        else:
            import tomli_w

            out("# layers, each over the one before: " + ", ".join(body.get("layers", [])))
            out(tomli_w.dumps(_without_nulls(body["config"])).rstrip())
        return EXIT_OK
    path = "/admin/config/" + quote(args.key, safe="")
    if args.action == "get":
        body = daemon.get(path)
    elif args.action == "set":
        body = daemon.request("PUT", path, {"value": args.value})
    else:
        body = daemon.request("DELETE", path)
    if args.json:
        out_json(body)
    elif args.action == "get":
        out(_config_value(body.get("value")))
    else:
        shown = "unset" if args.action == "unset" else f"= {_config_value(body.get('value'))}"
        note = "restart the daemon to apply it" if body.get("restart_needed") else "applied"
        say(f"{args.key} {shown} ({note})")
    return EXIT_OK


def _config_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    return json.dumps(value)


def _without_nulls(value: Any) -> Any:
    # TOML has no null: an unset optional key is simply absent
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    return value


def cmd_worktrees(daemon: DaemonClient, args: argparse.Namespace) -> int:
    worktrees = daemon.get("/admin/worktrees")["worktrees"]
    if args.json:
        out_json({"worktrees": worktrees})
        return EXIT_OK
    now = time.time()
    rows = [
        [
            f"{wt['repo']}/{wt['session_id']}",
            wt["branch"] or "-",
            "dirty" if wt["dirty"] else "clean",
            str(wt["unpushed"]),
            human_bytes(wt["size"]),
            human_duration(now - wt["last_activity"]) + " ago",
        ]
        for wt in worktrees
    ]
    for line in table(["WORKTREE", "BRANCH", "STATE", "UNPUSHED", "SIZE", "ACTIVE"], rows):
        out(line)
    return EXIT_OK


def cmd_gc(daemon: DaemonClient, args: argparse.Namespace) -> int:
    report = daemon.request("POST", "/admin/gc", {"dry_run": args.dry_run, "force": args.force})
    if args.json:
        out_json(report)
        return EXIT_OK
    rows = [
        [
            f"{d['repo']}/{d['session_id']}",
            d["action"] + (" (backed up)" if d.get("backup") else ""),
            d["reason"],
        ]
        for d in report["decisions"]
    ]
    for line in table(["WORKTREE", "ACTION", "WHY"], rows):
        say(line)
    verb = "would delete" if args.dry_run else "deleted"
    count = (
        sum(1 for d in report["decisions"] if d["action"] == "delete")
        if args.dry_run
        else len(report["deleted"])
    )
    say(f"{verb} {count} worktree(s)")
    for name, ref in report.get("backups", {}).items():
        say(f"backed up: {name}: {ref}")
    for name, error in report["errors"].items():
        if QUIET:  # the one thing -q still shows: each failure, one line on stderr
            print(f"{PROG}: gc failed: {name}: {error}", file=sys.stderr, flush=True)
        else:
            out(f"failed: {name}: {error}")
    return EXIT_ERROR if report["errors"] else EXIT_OK


def cmd_logout(daemon: DaemonClient, args: argparse.Namespace) -> int:
    body = daemon.request("DELETE", "/admin/sessions")
    if args.json:
        out_json(body)
    else:
        say(f"ended {body['ended']} session(s): every browser must log in again")
    return EXIT_OK


def cmd_token(daemon: DaemonClient, args: argparse.Namespace) -> int:
    if args.action == "create":
        body = daemon.request("POST", "/admin/tokens", {"name": args.name}, ok=(201,))
        if args.json:
            out_json(body)
        else:
            out(body["token"])
            # the value alone on stdout (for a pipe); how to use it on stderr
            print(
                f"token '{body['name']}': shown only now. On the laptop: "
                "opencode attach https://HOST -p TOKEN",
                file=sys.stderr,
            )
        return EXIT_OK
    if args.action == "revoke":
        body = daemon.request("DELETE", f"/admin/tokens/{quote(args.name, safe='')}")
        if args.json:
            out_json(body)
        else:
            out(f"revoked token '{body['name']}': it is refused from now on")
        return EXIT_OK
    body = daemon.get("/admin/tokens")
    if args.json:
        out_json(body)
        return EXIT_OK
    now = time.time()
    rows = [
        [
            t["name"],
            human_duration(now - t["created"]) + " ago",
            "never" if t["last_used"] is None else human_duration(now - t["last_used"]) + " ago",
        ]
        for t in body["tokens"]
    ]
    for line in table(["NAME", "CREATED", "LAST USED"], rows) if rows else ["no tokens"]:
        out(line)
    return EXIT_OK


#: Seconds an update may take: npm downloads ~350 MB, then the contract check and the restart.
UPDATE_TIMEOUT = 1800.0


def cmd_opencode(daemon: DaemonClient, args: argparse.Namespace) -> int:
    if args.action == "versions":
        body = daemon.get("/admin/opencode")
        if args.json:
            out_json(body)
        else:
            for line in opencode_lines(body):
                out(line)
        return EXIT_OK
    if args.action == "update":
        if not QUIET and not args.json:
            what = f"opencode {args.version}" if args.version else "the latest opencode"
            print(f"{PROG}: installing {what} and checking it; this can take minutes", file=sys.stderr)
        daemon.timeout = max(daemon.timeout, UPDATE_TIMEOUT)
        body = daemon.request(
            "POST", "/admin/opencode/update", {"version": args.version}, timeout=daemon.timeout
        )
    else:
        body = daemon.request("POST", "/admin/opencode/rollback", timeout=max(daemon.timeout, 300.0))
    if args.json:
        out_json(body)
    else:
        say(f"opencode {body['current']} is running (previous: {body['previous'] or '-'})")
    return EXIT_OK


def opencode_lines(body: Json) -> list[str]:
    """Each installed version, marked current, previous or pinned."""
    rows = []
    for item in body.get("installed", []):
        version = item["version"]
        marks = [
            mark
            for mark, key in (("current", "current"), ("previous", "previous"), ("pinned", "pinned"))
            if body.get(key) == version
        ]
        rows.append([version, ", ".join(marks) or "-", item["path"]])
    lines = table(["VERSION", "", "PATH"], rows) if rows else ["no opencode installed"]
    lines.append(
        f"current {body.get('current') or '-'}, previous {body.get('previous') or '-'}, "
        f"pinned {body.get('pinned')}" + (" (an update is running)" if body.get("changing") else "")
    )
    return lines


COMMANDS: dict[str, Callable[[DaemonClient, argparse.Namespace], int]] = {
    "opencode": cmd_opencode,
    "config": cmd_config,
    "worktrees": cmd_worktrees,
    "gc": cmd_gc,
    "logout": cmd_logout,
    "token": cmd_token,
    "status": cmd_status,
    "kill": cmd_kill,
    "logs": cmd_logs,
    "start": cmd_control,
    "stop": cmd_control,
    "restart": cmd_control,
}


# -- the command line ----------------------------------------------------------------------------


def number(kind: Callable[[str], float], lo: float, hi: float = float("inf")) -> Callable[[str], Any]:
    """An argparse type: `kind` of `text`, between `lo` and `hi`, or a one-line usage error."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: '{text}'") from None
        if not lo <= value <= hi:
            bound = f"at least {lo:g}" if hi == float("inf") else f"between {lo:g} and {hi:g}"
            raise argparse.ArgumentTypeError(f"must be {bound}, got {text}")
        return value

    return parse


def opencode_version(text: str) -> str:
    """An argparse type: an exact version (the daemon checks it again), or a one-line usage error."""
    from .opencode_install import EXACT_VERSION  # a regex; the rest of that module is not needed here

    if not EXACT_VERSION.fullmatch(text):
        raise argparse.ArgumentTypeError(f"not an exact version like 1.18.32: '{text[:64]}'")
    return text


positive_int = number(int, 1)
positive_float = number(float, 0.001)
count = number(int, 0, 100_000)


QUIET_HELP = "print nothing on success but what was asked for (logs, config get, worktrees, --json)"
VERBOSE_HELP = "each request to the daemon on stderr; `logs` lines as the service wrote them"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Operate a running dancodes daemon over its control socket.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--socket", metavar="PATH", help="the daemon's control socket")
    where.add_argument("--config", metavar="PATH", help="find the socket through this daemon config file")
    parser.add_argument("--json", action="store_true", help="print the daemon's JSON answer, for scripts")
    add_verbosity(parser, default=0, quiet=QUIET_HELP, verbose=VERBOSE_HELP)
    parser.add_argument(
        "--timeout",
        type=positive_float,
        default=75.0,
        metavar="SECONDS",
        help="how long to wait for an answer, a start included (default 75)",
    )
    # --json also after the command; SUPPRESS keeps the subparser from resetting an earlier one
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    add_verbosity(common, default=argparse.SUPPRESS, quiet=QUIET_HELP, verbose=VERBOSE_HELP)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("status", parents=[common], help="services, the daemon and orphan processes")

    kill = sub.add_parser("kill", parents=[common], help="kill an orphan process tree, or all orphans")
    target = kill.add_mutually_exclusive_group(required=True)
    target.add_argument("pid", nargs="?", type=positive_int, help="the pid to kill with its descendants")
    target.add_argument("--orphans", action="store_true", help="kill every orphan")

    for action, text in (
        ("start", "start a service"),
        ("stop", "stop a service and keep it stopped"),
        ("restart", "stop a service, then start it"),
    ):
        control = sub.add_parser(action, parents=[common], help=text)
        control.add_argument("service")

    config = sub.add_parser("config", parents=[common], help="read or change the running config")
    verbs = config.add_subparsers(dest="action", required=True, metavar="ACTION")
    get = verbs.add_parser("get", parents=[common], help="the effective config, or one dotted key of it")
    get.add_argument("key", nargs="?", help="e.g. orphans.kill_after_minutes")
    put = verbs.add_parser(
        "set", parents=[common], help="set a key in <data_dir>/settings.toml, validated, then reload"
    )
    put.add_argument("key")
    put.add_argument("value", help='in TOML syntax (30, true, ["a"]); other text is a string')
    unset = verbs.add_parser("unset", parents=[common], help="remove a key from <data_dir>/settings.toml")
    unset.add_argument("key")

    sub.add_parser("worktrees", parents=[common], help="each chat's worktree: branch, work at risk, size")
    gc = sub.add_parser(
        "gc", parents=[common], help="prune worktrees whose chat is gone or idle, keeping work"
    )
    gc.add_argument("--dry-run", action="store_true", help="show what would go, change nothing")
    gc.add_argument(
        "--force", action="store_true", help="also delete worktrees holding work, backed up first"
    )

    logout = sub.add_parser("logout", parents=[common], help="sign out: end every login session")
    logout.add_argument(
        "--all",
        action="store_true",
        required=True,
        help="every session, on every device (one session: DELETE /admin/sessions/<id>)",
    )

    token = sub.add_parser("token", parents=[common], help="access tokens for opencode attach on a laptop")
    token_verbs = token.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = token_verbs.add_parser("create", parents=[common], help="make a token and print it (only now)")
    create.add_argument("name", help="what it is for, e.g. laptop")
    token_verbs.add_parser("list", parents=[common], help="names, when made, when last used")
    revoke = token_verbs.add_parser("revoke", parents=[common], help="refuse a token from now on")
    revoke.add_argument("name")

    opencode = sub.add_parser("opencode", parents=[common], help="opencode's versions: update, rollback")
    oc_verbs = opencode.add_subparsers(dest="action", required=True, metavar="ACTION")
    oc_verbs.add_parser(
        "versions", parents=[common], help="the current, previous and pinned versions on disk"
    )
    oc_update = oc_verbs.add_parser(
        "update",
        parents=[common],
        help="install a version beside the current one, check it on a copy of the state, switch to it",
    )
    oc_update.add_argument(
        "version", nargs="?", type=opencode_version, help="an exact version (default: the registry's latest)"
    )
    oc_verbs.add_parser("rollback", parents=[common], help="switch back to the previous version")

    logs = sub.add_parser("logs", parents=[common], help="a service's recent output")
    logs.add_argument("service")
    logs.add_argument("-n", type=count, default=50, metavar="N", help="how many recent lines (default 50)")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new lines until Ctrl-C")
    return parser


def socket_path(args: argparse.Namespace) -> Path:
    if args.socket:
        return Path(args.socket)
    from .config import default_data_dir, load_config  # only when no --socket is given

    if args.config:
        return load_config(args.config).paths.control_socket
    env = os.environ.get("DANCODES_SOCKET")
    if env:
        return Path(env)
    return default_data_dir("") / "run" / "dancodes.sock"


def fail(message: str, code: int) -> int:
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)
    return code


def main(argv: list[str] | None = None) -> int:
    global QUIET
    args = build_parser().parse_args(argv)
    QUIET = args.verbosity < 0
    try:
        return _run(args)
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        return 130
    except DaemonUnreachable as exc:
        return fail(str(exc), EXIT_UNREACHABLE)
    except ConfigError as exc:
        return fail(str(exc), EXIT_USAGE)
    except DancodesError as exc:
        return fail(str(exc), EXIT_ERROR)


def _run(args: argparse.Namespace) -> int:
    socket = socket_path(args)
    if args.verbosity > 0:
        note(f"control socket {socket}")
    daemon = DaemonClient(socket, args.timeout, verbose=args.verbosity > 0)
    try:
        return COMMANDS[args.command](daemon, args)
    finally:
        daemon.close()


def _silence_stdout() -> None:
    # the reader is gone; without this, Python's flush of stdout at exit complains once more
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


if __name__ == "__main__":
    sys.exit(main())
