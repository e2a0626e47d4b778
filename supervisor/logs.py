"""Logging: structlog set-up, secret redaction, and the bounded tail kept per service.

Events are key/value data: JSON lines when stdout is not a terminal, readable lines when it is.
Every value that contains a secret from the environment is masked before it is rendered, so a
child that prints its API key does not leak it into the daemon's log.

A child's output is shaped before it is logged: a line that is a JSON object (Caddy's log) is
merged into the daemon's event as fields, not nested as a string; a Node warning's multi-line
object dump and stack (opencode's MaxListeners warning) is folded into its first line, with a count
of how often it came (`-v` logs the folded lines as debug events).
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from collections import deque
from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any, Literal

import structlog
import trio

#: Environment variables whose values never appear in a log line.
SECRET_ENV = ("AUTH_PASSWORD", "AUTH_SECRET", "AUTH_SECRET_PREVIOUS", "GITHUB_TOKEN")
_SECRET_SUFFIXES = ("_API_KEY", "_TOKEN", "_SECRET", "_PASSWORD")
_MASK = "[redacted]"


def secret_values(environ: MutableMapping[str, str] | None = None) -> list[str]:
    env = os.environ if environ is None else environ
    names = {n for n in env if n in SECRET_ENV or n.endswith(_SECRET_SUFFIXES)}
    # Short values would mask ordinary words; a real secret is longer than this.
    return sorted({env[n] for n in names if len(env[n]) >= 6}, key=len, reverse=True)


class Redactor:
    """A structlog processor that masks secret values anywhere in an event's strings."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self.secrets = list(secrets)

    def __call__(self, _logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        if self.secrets:
            for key, value in event.items():
                if isinstance(value, str):
                    event[key] = self.mask(value)
        return event

    def mask(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, _MASK)
        return text

    def mask_value(self, value: Any) -> Any:
        """`value` with every string in it masked, nested lists and objects included."""
        if isinstance(value, str):
            return self.mask(value)
        if isinstance(value, dict):
            return {self.mask(str(k)): self.mask_value(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.mask_value(v) for v in value]
        return value


#: The keys of an output event that a child's own JSON fields must not overwrite.
_OUTPUT_KEYS = frozenset({"event", "level", "timestamp", "service", "stream", "line", "logger_name"})


def json_fields(service: str, line: str) -> dict[str, Any] | None:
    """A child's JSON log line as event fields, or None when it is not a JSON object.

    A field named like one of the event's own keys is prefixed with the service's name, so Caddy's
    `level` becomes `caddy_level` and the daemon's own `level` stays the daemon's.
    """
    if not line.startswith("{"):
        return None
    try:
        parsed = json.loads(line)
    except ValueError:
        return None
    if not isinstance(parsed, dict):
        return None
    return {(f"{service}_{k}" if k in _OUTPUT_KEYS else k): v for k, v in parsed.items()}


#: The first line of a Node process warning: "MaxListenersExceededWarning: ...", "(node:7) Warning: ...".
_WARNING = re.compile(r"^(?:\(node:\d+\) )?[A-Za-z]*Warning: ")
#: The lines that carry on a warning: an object dump's indented fields and closing braces, the stack.
_CONTINUATION = re.compile(r"^(?:\s.*|[\]}\)]+[,;]?|)$")


class WarningFolder:
    """Folds a Node warning's multi-line detail into its first line, for one output stream.

    The first line passes at once (nothing waits on a timer); the indented dump and stack after it
    are dropped. A warning seen before is shown with how many times it has come.
    """

    def __init__(self) -> None:
        self._folding = False
        self.seen: dict[str, int] = {}

    def feed(self, line: str) -> str | None:
        """The line to keep for `line`, or None when it is a folded warning's detail."""
        if self._folding and _CONTINUATION.match(line):
            return None
        self._folding = False
        if not _WARNING.match(line):
            return line
        self._folding = True
        count = self.seen[line] = self.seen.get(line, 0) + 1
        return line if count == 1 else f"{line} (seen {count} times)"


def configure(*, json: bool | None = None, level: int = logging.INFO) -> None:
    """Set up structlog for the daemon; stdlib loggers (hypercorn) go through the same pipeline."""
    if json is None:
        json = not sys.stdout.isatty()
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        Redactor(secret_values()),
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(colors=sys.stdout.isatty())
    )
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            # format_exc_info: a library's traceback (hypercorn's "Error in ASGI Framework") as text
            foreign_pre_chain=[
                structlog.stdlib.add_logger_name,
                *shared,
                structlog.processors.format_exc_info,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)


Stream = Literal["stdout", "stderr"]


@dataclass(frozen=True, slots=True)
class LogLine:
    t: float  # wall-clock seconds since the epoch, for people reading it
    stream: Stream
    line: str

    def as_json(self) -> dict[str, Any]:
        return {"t": self.t, "stream": self.stream, "line": self.line}


class ServiceLog:
    """The last `size` output lines of one service, and live followers of new ones."""

    def __init__(self, service: str, size: int, redactor: Redactor | None = None) -> None:
        self.service = service
        self.lines: deque[LogLine] = deque(maxlen=size)
        self._followers: set[trio.MemorySendChannel[LogLine]] = set()
        self._log = structlog.get_logger("dancodes.output").bind(service=service)
        self._redactor = redactor or Redactor(secret_values())
        self._folders: dict[Stream, WarningFolder] = {"stdout": WarningFolder(), "stderr": WarningFolder()}

    def append(self, stream: Stream, text: str) -> None:
        kept = self._folders[stream].feed(text)
        if kept is None:  # a folded warning's detail: only `dancodes run -v` shows it
            self._log.debug("output", stream=stream, line=self._redactor.mask(text), folded=True)
            return
        text = self._redactor.mask(kept)
        entry = LogLine(time.time(), stream, text)
        self.lines.append(entry)
        fields = json_fields(self.service, kept)
        if fields is None:
            self._log.info("output", stream=stream, line=text)
        else:
            # masked field by field too: a secret JSON-escaped in the raw line is plain once parsed
            self._log.info("output", stream=stream, **self._redactor.mask_value(fields))
        for follower in list(self._followers):
            try:
                follower.send_nowait(entry)
            except trio.WouldBlock:
                pass  # a slow reader loses lines rather than growing memory without bound
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._followers.discard(follower)

    def tail(self, n: int) -> list[LogLine]:
        if n <= 0:
            return []
        return list(self.lines)[-n:]

    def last_line(self, stream: Stream = "stderr", *, since: float = 0.0) -> str | None:
        """The last non-blank line on `stream` written at or after `since` (wall clock)."""
        for entry in reversed(self.lines):
            if entry.t < since:
                return None
            if entry.stream == stream and entry.line.strip():
                return entry.line.strip()
        return None

    def follow(self, buffer: int = 1000) -> trio.MemoryReceiveChannel[LogLine]:
        """A channel of new lines; close it to stop following."""
        send, receive = trio.open_memory_channel[LogLine](buffer)
        self._followers.add(send)
        return receive

    def close(self) -> None:
        for follower in self._followers:
            follower.close()
        self._followers.clear()
