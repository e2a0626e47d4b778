import { describe, expect, it } from "vitest";
import { ago, duration, findings, memoryLine, memoryOf, QUIET_SECONDS, STREAM_QUIET_MS, type Diagnosis, type Service } from "./diagnose";
import { bytes } from "./format";

const NOW = 1_700_000_000; // the daemon's clock, seconds
const PAGE_NOW = 1_700_000_000_000; // the page's, ms
const LIVE = { connected: true, lastEvent: PAGE_NOW - 1000, retries: 0 };

function service(over: Partial<Service> = {}): Service {
  return {
    name: "opencode",
    state: "running",
    pid: 42,
    uptime: 100,
    restarts: 0,
    healthy: true,
    reason: null,
    policy: "always",
    run: "r1",
    last_exit: null,
    memory_mb: null,
    memory_limit_mb: null,
    memory_hard_limit_mb: null,
    memory_restarts: 0,
    memory_note: null,
    memory_checked_at: null,
    ...over,
  };
}

function diagnosis(chat: Partial<Diagnosis["chat"]> = {}, over: Partial<Diagnosis> = {}): Diagnosis {
  return {
    session_id: "ses_1",
    repo: "o/r",
    path: "/wt/o__r__ses_1",
    chat: {
      sessionID: "ses_1",
      directory: "/wt/o__r__ses_1",
      status: "idle",
      error: null,
      retry: null,
      waiting: null,
      interrupted: null,
      since: NOW - 30,
      updated: NOW - 5,
      ...chat,
    },
    last_event: { type: "session.status", at: NOW - 5 },
    following: true,
    instance: { directory: "/wt/o__r__ses_1", state: "loaded", last_event: NOW - 5, disposed_at: null },
    opencode: service(),
    opencode_changes: [],
    now: NOW,
    ...over,
  };
}

describe("formatting", () => {
  it("says a duration in its two largest units", () => {
    expect(duration(0)).toBe("0s");
    expect(duration(59.9)).toBe("59s");
    expect(duration(60)).toBe("1m");
    expect(duration(303)).toBe("5m 3s");
    expect(duration(7500)).toBe("2h 5m");
    expect(duration(3 * 86400 + 4 * 3600 + 59)).toBe("3d 4h");
    expect(duration(-5)).toBe("0s");
    expect(duration(null)).toBe("–");
    expect(duration(NaN)).toBe("–");
  });

  it("says sizes in 1024s", () => {
    expect(bytes(512)).toBe("512 B");
    expect(bytes(2048)).toBe("2 KB");
    expect(bytes(5 * (1 << 20) + (1 << 19))).toBe("5.5 MB");
    expect(bytes(3 * (1 << 30))).toBe("3.0 GB");
    expect(bytes(null)).toBe("–");
  });

  it("says when, against the daemon's clock", () => {
    expect(ago(NOW - 12, NOW)).toBe("12s ago");
    expect(ago(null, NOW)).toBe("never");
  });
});

describe("memory", () => {
  it("reads the service's memory fields", () => {
    const mem = memoryOf(
      service({ memory_mb: 312.4, memory_limit_mb: 700, memory_hard_limit_mb: 900, memory_restarts: 1, memory_note: null }),
    );
    expect(mem).toEqual({ mb: 312.4, limit: 700, hard: 900, restarts: 1, note: null });
    expect(memoryLine(mem)).toBe("312 MB of 700 MB (hard 900 MB), 1 memory restart");
    const unmeasured = memoryOf(service({ memory_mb: null, memory_limit_mb: null, memory_hard_limit_mb: null, memory_restarts: 2 }));
    expect(unmeasured).toEqual({ mb: null, limit: null, hard: null, restarts: 2, note: null });
    expect(memoryLine(unmeasured)).toBe("not measured, 2 memory restarts");
  });
});

describe("findings", () => {
  const texts = (d: Diagnosis, page = LIVE) => findings(d, page, PAGE_NOW).map((f) => `${f.level}: ${f.text}`);

  it("an idle chat on a healthy stack is fine", () => {
    expect(texts(diagnosis())).toEqual(["ok: idle: no turn is running"]);
  });

  it("a cut turn says why, and what to do", () => {
    const d = diagnosis({ status: "interrupted", interrupted: "opencode stopped before this reply finished" });
    expect(texts(d)).toEqual(["bad: the last turn was cut: opencode stopped before this reply finished; continue it from the chat"]);
  });

  it("a retry says the attempt and the provider's message", () => {
    const d = diagnosis({ status: "retry", retry: { attempt: 2, message: "over capacity", next: NOW + 3 } });
    expect(texts(d)).toEqual(["warn: the provider failed, retrying (attempt 2): over capacity"]);
  });

  it("a busy chat is working until it has been quiet too long, or its instance went", () => {
    expect(texts(diagnosis({ status: "busy" }))).toEqual(["ok: busy: it is working"]);
    const quiet = diagnosis({ status: "busy" }, { last_event: { type: "message.part.delta", at: NOW - QUIET_SECONDS - 60 } });
    expect(texts(quiet)[0]).toMatch(/^warn: busy, but nothing heard of it for 3m/);
    const gone = diagnosis({ status: "busy" }, { instance: { directory: "/wt", state: "disposed", last_event: null, disposed_at: NOW } });
    expect(texts(gone)).toEqual(["bad: busy, but its opencode instance was disposed"]);
  });

  it("with no event at all, quiet counts from the status's change", () => {
    const d = diagnosis({ status: "busy", since: NOW - QUIET_SECONDS - 1 }, { last_event: null });
    expect(texts(d)[0]).toMatch(/^warn: busy, but nothing heard/);
  });

  it("an error and a wait say what", () => {
    expect(texts(diagnosis({ status: "error", error: "model refused" }))).toEqual(["bad: the last turn failed: model refused"]);
    expect(texts(diagnosis({ status: "waiting", waiting: "question" }))).toEqual(["warn: waiting for you: the agent asks a question"]);
  });

  it("puts what is wrong with the page, the daemon and opencode first", () => {
    const d = diagnosis(
      { status: "retry", retry: { attempt: 1, message: "503", next: null } },
      {
        following: false,
        opencode: service({ state: "unhealthy", healthy: false, reason: "probe failed 2/3: timeout", memory_mb: 800, memory_limit_mb: 700, memory_note: "over the limit since a fresh start: not restarted again" }),
      },
    );
    expect(texts(d, { connected: false, lastEvent: PAGE_NOW - 60_000, retries: 3 })).toEqual([
      "bad: this page's live stream is reconnecting (3 tries): what it shows may be stale",
      "bad: the daemon is not following opencode's events: the status may be stale",
      "bad: opencode is unhealthy: probe failed 2/3: timeout",
      "warn: opencode is over its memory limit (800 of 700 MB)",
      "warn: over the limit since a fresh start: not restarted again",
      "warn: the provider failed, retrying (attempt 1): 503",
    ]);
  });

  it("a connected page that heard nothing for long may hold a dead stream", () => {
    const page = { connected: true, lastEvent: PAGE_NOW - STREAM_QUIET_MS - 5000, retries: 0 };
    expect(texts(diagnosis(), page)[0]).toBe("warn: this page heard nothing for 30s: its stream may be dead");
  });
});
