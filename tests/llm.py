"""A scripted OpenAI-compatible LLM server for tests: the only stand-in in the test suite (DESIGN section 7).

opencode (through `@ai-sdk/openai-compatible`) only calls `POST /v1/chat/completions` with `stream: true` and
reads OpenAI chunks ending with `data: [DONE]`, tool calls included. `ScriptedLLM` serves that from a
`ThreadingHTTPServer` in a background thread on 127.0.0.1 (a free port), so synchronous tests and browser
tests can script what the "model" says:

    with ScriptedLLM() as llm:
        env["OPENCODE_CONFIG_CONTENT"] = opencode_config(llm.base_url)
        llm.reply_text("hello world", chunk_size=3, delay=0.05)        # streamed as deltas
        llm.reply_tool_call("bash", {"command": "echo hi", "description": "say hi"})
        llm.reply_text("done")                                        # answers the tool's result
        llm.reply_text("for alpha", when="alpha")                     # only for a prompt containing "alpha"
        ...
        request = llm.wait_for_requests(1)[0]                         # what opencode sent
        assert request.last_user_text == "say hello"

Each chat request takes the first queued reply whose `when` is in the last user message, else the first queued
reply without a `when`, else the default reply ("ok"). Session-title requests (opencode's small model, see
`is_title_request`) never touch the queue: they get `title` and are recorded with `kind == "title"`.
`hold()` makes every chat reply stop after its first chunk until `release()`, to keep a turn busy.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

TITLE_MARKER = "You are a title generator"
"""opencode 1.18's title agent prompt starts with this; it is sent as the first system message."""


@dataclass
class ToolCall:
    name: str
    arguments: dict[str, Any]
    id: str = ""


@dataclass
class Reply:
    """One scripted model turn: text, then tool calls, streamed as OpenAI chunks (or an HTTP error)."""

    text: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    chunk_size: int = 8
    delay: float = 0.0
    when: str | None = None
    held_after: int = 1
    """While `hold()` is on, the reply stops after this many text or tool-call chunks."""
    status: int = 200
    """Anything but 200 answers with that HTTP status and an OpenAI-style error body instead of a stream."""
    error: str = "scripted error"


@dataclass
class LLMRequest:
    """One `POST /v1/chat/completions` received, with the reply it got."""

    kind: Literal["chat", "title", "other"]
    path: str
    body: dict[str, Any]
    reply: Reply | None = None
    started: float = field(default_factory=time.monotonic)
    finished: threading.Event = field(default_factory=threading.Event)
    disconnected: bool = False
    """The client went away before the reply ended (opencode aborted the turn)."""

    @property
    def messages(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = self.body.get("messages", [])
        return messages

    @property
    def system_text(self) -> str:
        return "\n".join(message_text(m) for m in self.messages if m.get("role") == "system")

    @property
    def last_user_text(self) -> str:
        for message in reversed(self.messages):
            if message.get("role") == "user":
                return message_text(message)
        return ""

    @property
    def tool_results(self) -> list[str]:
        """The `tool` messages' contents: what opencode's tools returned to the model."""
        return [message_text(m) for m in self.messages if m.get("role") == "tool"]

    @property
    def tool_names(self) -> list[str]:
        """The tools opencode offered the model."""
        return [t.get("function", {}).get("name", "") for t in self.body.get("tools", [])]


def message_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def is_title_request(body: dict[str, Any]) -> bool:
    """opencode asks its small model for a session title with the title agent's system prompt.

    Its first message is `system` starting with "You are a title generator", then a user message
    "Generate a title for this conversation:\n", then the user's prompt; it offers no `tools`. A chat turn's
    system prompt is the coding agent's ("You are opencode, ...") and it always offers tools.
    """
    messages = body.get("messages") or [{}]
    return any(
        m.get("role") == "system" and message_text(m).lstrip().startswith(TITLE_MARKER) for m in messages[:2]
    )


class ScriptedLLM:
    """A loopback OpenAI-compatible chat server with a queue of scripted replies; see the module docstring."""

    def __init__(self, *, default: str = "ok", title: str = "Scripted session", host: str = "127.0.0.1"):
        self.default = default
        self.title = title
        self.host = host
        self.requests: list[LLMRequest] = []
        self._queue: list[Reply] = []
        self._lock = threading.Condition()
        self._gate = threading.Event()
        self._gate.set()
        self._ids = itertools.count(1)
        self._server = ThreadingHTTPServer((host, 0), _make_handler(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # --- lifecycle ---------------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        port: int = self._server.server_address[1]
        return port

    @property
    def base_url(self) -> str:
        """The provider's `baseURL`, e.g. http://127.0.0.1:PORT/v1."""
        return f"http://{self.host}:{self.port}/v1"

    def start(self) -> ScriptedLLM:
        self._thread = threading.Thread(target=self._server.serve_forever, name="scripted-llm", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> ScriptedLLM:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- scripting ---------------------------------------------------------------------------------------

    def reply(self, reply: Reply) -> Reply:
        with self._lock:
            self._queue.append(reply)
        return reply

    def reply_text(
        self, text: str, *, chunk_size: int = 8, delay: float = 0.0, when: str | None = None
    ) -> Reply:
        """Queue a text answer, streamed as deltas of `chunk_size` characters with `delay` seconds between."""
        return self.reply(Reply(text=text, chunk_size=chunk_size, delay=delay, when=when))

    def reply_tool_call(
        self,
        name: str,
        arguments: dict[str, Any],
        *,
        text: str = "",
        when: str | None = None,
        delay: float = 0.0,
    ) -> Reply:
        """Queue a tool call (after optional `text`).

        opencode runs the tool, then asks again with the result: queue that answer too.
        """
        call = ToolCall(name=name, arguments=arguments)
        return self.reply(Reply(text=text, tool_calls=[call], when=when, delay=delay))

    def reply_error(
        self, status: int = 500, message: str = "scripted error", *, when: str | None = None
    ) -> Reply:
        """Queue an HTTP error answer (an OpenAI-style error body) instead of a stream."""
        return self.reply(Reply(status=status, error=message, when=when))

    def when_prompt_contains(self, needle: str, reply: Reply) -> Reply:
        """Queue `reply` for the next request whose last user message contains `needle`."""
        reply.when = needle
        return self.reply(reply)

    def pending(self) -> list[Reply]:
        with self._lock:
            return list(self._queue)

    def reset(self) -> None:
        """Forget queued replies and recorded requests and release a hold (between tests sharing a server)."""
        with self._lock:
            self._queue.clear()
            self.requests.clear()
        self.release()

    def hold(self) -> None:
        """From now on every chat reply stops after its first chunk (`Reply.held_after`) until `release()`."""
        self._gate.clear()

    def release(self) -> None:
        self._gate.set()

    # --- inspection --------------------------------------------------------------------------------------

    def chat_requests(self) -> list[LLMRequest]:
        with self._lock:
            return [r for r in self.requests if r.kind == "chat"]

    def title_requests(self) -> list[LLMRequest]:
        with self._lock:
            return [r for r in self.requests if r.kind == "title"]

    def wait_for_requests(
        self, count: int, timeout: float = 30.0, kind: Literal["chat", "title", "other"] = "chat"
    ) -> list[LLMRequest]:
        """Block until at least `count` requests of `kind` arrived; return them all."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                found = [r for r in self.requests if r.kind == kind]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out waiting for {count} {kind} request(s); got {len(found)}")
                self._lock.wait(left)

    # --- serving -----------------------------------------------------------------------------------------

    def _record(self, path: str, body: dict[str, Any]) -> LLMRequest:
        with self._lock:
            if path.rstrip("/").endswith("/chat/completions"):
                kind: Literal["chat", "title", "other"] = "title" if is_title_request(body) else "chat"
            else:
                kind = "other"
            request = LLMRequest(kind=kind, path=path, body=body)
            if kind == "title":
                request.reply = Reply(text=self.title)
            elif kind == "chat":
                request.reply = self._take(request.last_user_text)
            self.requests.append(request)
            self._lock.notify_all()
            return request

    def _take(self, prompt: str) -> Reply:
        for i, reply in enumerate(self._queue):
            if reply.when is not None and reply.when in prompt:
                return self._queue.pop(i)
        for i, reply in enumerate(self._queue):
            if reply.when is None:
                return self._queue.pop(i)
        return Reply(text=self.default)

    def _chunks(self, reply: Reply, model: str) -> Iterator[dict[str, Any]]:
        """The OpenAI `chat.completion.chunk` objects for a reply, in order."""
        completion_id = f"chatcmpl-{next(self._ids)}"
        created = int(time.time())

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }

        yield chunk({"role": "assistant", "content": ""})
        size = max(1, reply.chunk_size)
        for start in range(0, len(reply.text), size):
            yield chunk({"content": reply.text[start : start + size]})
        for index, call in enumerate(reply.tool_calls):
            call_id = call.id or f"call_{next(self._ids)}"
            arguments = json.dumps(call.arguments)
            yield chunk(
                {
                    "tool_calls": [
                        {
                            "index": index,
                            "id": call_id,
                            "type": "function",
                            "function": {"name": call.name, "arguments": ""},
                        }
                    ]
                }
            )
            half = len(arguments) // 2
            for part in (arguments[:half], arguments[half:]):
                yield chunk({"tool_calls": [{"index": index, "function": {"arguments": part}}]})
        yield chunk({}, "tool_calls" if reply.tool_calls else "stop")
        usage = {"prompt_tokens": 10, "completion_tokens": max(1, len(reply.text) // 4), "total_tokens": 0}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        yield {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [],
            "usage": usage,
        }


def _make_handler(llm: ScriptedLLM) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            if self.path.rstrip("/").endswith("/models"):
                self._json(
                    200, {"object": "list", "data": [{"id": "m", "object": "model", "owned_by": "test"}]}
                )
            else:
                self._json(404, {"error": {"message": f"no route {self.path}"}})

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                body = {}
            request = llm._record(self.path, body)
            try:
                if request.reply is None:
                    self._json(404, {"error": {"message": f"no route {self.path}"}})
                elif request.reply.status != 200:
                    # as OpenAI types them; opencode retries a `server_error` and fails the turn on the other
                    kind = "server_error" if request.reply.status >= 500 else "invalid_request_error"
                    error = {"message": request.reply.error, "type": kind, "code": None}
                    self._json(request.reply.status, {"error": error})
                elif body.get("stream"):
                    self._stream(request, request.reply, str(body.get("model", "m")))
                else:
                    self._complete(request.reply, str(body.get("model", "m")))
            except (BrokenPipeError, ConnectionResetError):
                request.disconnected = True
                self.close_connection = True
            finally:
                request.finished.set()

        def _json(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _complete(self, reply: Reply, model: str) -> None:
            message: dict[str, Any] = {"role": "assistant", "content": reply.text}
            if reply.tool_calls:
                message["tool_calls"] = [
                    {
                        "id": call.id or f"call_{i}",
                        "type": "function",
                        "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
                    }
                    for i, call in enumerate(reply.tool_calls)
                ]
            finish = "tool_calls" if reply.tool_calls else "stop"
            self._json(
                200,
                {
                    "id": "chatcmpl-0",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": model,
                    "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 11},
                },
            )

        def _stream(self, request: LLMRequest, reply: Reply, model: str) -> None:
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("cache-control", "no-cache")
            self.send_header("connection", "close")
            self.end_headers()
            self.close_connection = True
            sent = 0
            for chunk in llm._chunks(reply, model):
                payload = _is_payload(chunk)
                if payload and sent:
                    if sent >= reply.held_after:
                        self._wait_gate(request)
                    if reply.delay:
                        time.sleep(reply.delay)
                self._send(chunk)
                sent += payload
            if not sent:  # a reply with neither text nor tool calls is held too
                self._wait_gate(request)
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()

        def _wait_gate(self, request: LLMRequest) -> None:
            """While `hold()` is on, wait; an SSE comment every 0.5 s notices a client that went away."""
            while request.kind == "chat" and not llm._gate.wait(0.5):
                self.wfile.write(b": held\n\n")
                self.wfile.flush()

        def _send(self, chunk: dict[str, Any]) -> None:
            self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
            self.wfile.flush()

    return Handler


def _is_payload(chunk: dict[str, Any]) -> bool:
    """A chunk that carries text or a tool call (not the role, finish or usage chunks)."""
    delta: dict[str, Any] = chunk["choices"][0]["delta"] if chunk["choices"] else {}
    return bool(delta.get("content") or delta.get("tool_calls"))


def opencode_config(base_url: str, **extra: Any) -> str:
    """`OPENCODE_CONFIG_CONTENT`: a provider `scripted` at `base_url`, its model `m` as model and small model.

    The bash tool (and every other tool) runs without asking, sharing and autoupdate are off. `extra` keys are
    merged in at the top level.
    """
    config: dict[str, Any] = {
        "$schema": "https://opencode.ai/config.json",
        "provider": {
            "scripted": {
                "name": "Scripted",
                "npm": "@ai-sdk/openai-compatible",
                "options": {"baseURL": base_url, "apiKey": "x"},
                "models": {"m": {"name": "Scripted model", "tool_call": True}},
            }
        },
        "model": "scripted/m",
        "small_model": "scripted/m",
        "share": "disabled",
        "autoupdate": False,
        "permission": {"*": "allow"},
        **extra,
    }
    return json.dumps(config)


def opencode_xdg(root: Path) -> dict[str, str]:
    """`XDG_*_HOME` variables putting all of an opencode's state under `root`, its config dir pre-seeded.

    On each instance boot opencode 1.18 checks `$XDG_CONFIG_HOME/opencode`: when `node_modules` is missing,
    or `package.json` names a dependency that `package-lock.json` lacks, it runs an in-process npm install of
    `@opencode-ai/plugin` (a detached background task, ~6 s after the boot, ~10 s long when the registry is
    reachable). While that runs, npm's signal handlers own SIGTERM/SIGINT/SIGHUP and the process does not exit
    on SIGTERM: it spins at 100% CPU until SIGKILL. Tests need nothing from that package, so this writes an
    empty `node_modules` and a matching package.json and package-lock.json: the check passes, nothing runs.
    """
    env = {f"XDG_{name.upper()}_HOME": str(root / name) for name in ("data", "config", "state", "cache")}
    config_dir = root / "config" / "opencode"
    (config_dir / "node_modules").mkdir(parents=True, exist_ok=True)
    dependencies = {"@opencode-ai/plugin": "1.18.33"}
    (config_dir / "package.json").write_text(json.dumps({"dependencies": dependencies}))
    lock = {"lockfileVersion": 3, "packages": {"": {"dependencies": dependencies}}}
    (config_dir / "package-lock.json").write_text(json.dumps(lock))
    return env
