import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { MessageInfo } from "./api";
import { handleEvent, reconcileStreams } from "./events";
import { S, upsertMessageInfo, type Chat } from "./store";

/** EventSource does not exist in node: this one records what events.ts opens and closes. */
class FakeEventSource {
  static all: FakeEventSource[] = [];
  onmessage: ((ev: MessageEvent) => void) | null = null;
  onerror: ((ev: Event) => void) | null = null;
  closed = false;
  constructor(
    public url: string,
    public init?: EventSourceInit,
  ) {
    FakeEventSource.all.push(this);
  }
  close(): void {
    this.closed = true;
  }
}

const openUrls = () => FakeEventSource.all.filter((es) => !es.closed).map((es) => es.url);
const eventUrl = (dir: string) => `/event?directory=${encodeURIComponent(dir)}`;

const initial = structuredClone(S);
const NOW = 1_700_000_000_000;

beforeEach(() => {
  Object.assign(S, structuredClone(initial));
  FakeEventSource.all = [];
  vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "setInterval", "clearInterval", "Date"] });
  vi.setSystemTime(NOW);
  vi.stubGlobal("requestAnimationFrame", () => 0);
  vi.stubGlobal("EventSource", FakeEventSource);
});

afterEach(() => {
  // no chats: every stream events.ts keeps (module state) is closed
  S.chats = {};
  S.chat = null;
  reconcileStreams();
  expect(openUrls()).toEqual([]);
  vi.runAllTimers();
  vi.useRealTimers();
  vi.unstubAllGlobals();
});

function chat(id: string, over: Partial<Chat> = {}): Chat {
  return { id, repo: "o/r", path: `/srv/wt/${id}`, title: id, updated: 0, created: 0, status: "idle", found: true, ...over };
}

function assistant(id: string, sessionID: string, over: Partial<MessageInfo> = {}): MessageInfo {
  return { id, sessionID, role: "assistant", time: { created: NOW - 1000 }, ...over };
}

describe("message events", () => {
  it("message.updated, message.part.updated and deltas build the text in order", () => {
    const c = chat("s1");
    S.chats = { s1: c };
    const dir = c.path;
    handleEvent(dir, "message.updated", { info: assistant("m1", "s1") });
    handleEvent(dir, "message.part.updated", {
      part: { id: "p1", sessionID: "s1", messageID: "m1", type: "text", text: "" },
    });
    for (const delta of ["The ", "quick ", "brown ", "fox"])
      handleEvent(dir, "message.part.delta", { sessionID: "s1", messageID: "m1", partID: "p1", field: "text", delta });
    expect(S.messages.s1).toHaveLength(1);
    expect(S.messages.s1[0].info.id).toBe("m1");
    expect(S.messages.s1[0].parts).toHaveLength(1);
    expect(S.messages.s1[0].parts[0].text).toBe("The quick brown fox");
    // text streaming in means the chat is busy
    expect(c.status).toBe("busy");
    expect(c.updated).toBe(NOW);
  });

  it("a delta without a field goes to text, and a delta of an unseen part creates it", () => {
    S.chats = { s1: chat("s1") };
    handleEvent("/srv/wt/s1", "message.part.delta", { sessionID: "s1", messageID: "m1", partID: "p2", delta: "b" });
    handleEvent("/srv/wt/s1", "message.part.delta", { sessionID: "s1", messageID: "m1", partID: "p1", delta: "a" });
    handleEvent("/srv/wt/s1", "message.part.delta", { sessionID: "s1", messageID: "m1", partID: "p2", delta: "c" });
    expect(S.messages.s1[0].parts.map((p) => [p.id, p.type, p.text])).toEqual([
      ["p1", "text", "a"],
      ["p2", "text", "bc"],
    ]);
  });

  it("a failed reply stored after the turn went idle marks the chat as failed", () => {
    const c = chat("s1", { status: "busy" });
    S.chats = { s1: c };
    const failed = assistant("m1", "s1", { error: { name: "APIError", data: { message: "overloaded" } } });
    handleEvent(c.path, "message.updated", { info: failed });
    expect(c.status).toBe("busy"); // the turn is not over yet
    handleEvent(c.path, "session.status", { sessionID: "s1", status: { type: "idle" } });
    handleEvent(c.path, "message.updated", { info: { ...failed, time: { created: 1, completed: 2 } } });
    expect(c.status).toBe("error");
    expect(c.error).toBe("overloaded");
  });

  it("an older failed reply sent again does not mark a chat whose last reply is fine", () => {
    const c = chat("s1", { status: "busy" });
    S.chats = { s1: c };
    const old = assistant("m1", "s1", { error: { name: "APIError", data: { message: "overloaded" } } });
    upsertMessageInfo(old);
    upsertMessageInfo(assistant("m2", "s1"));
    handleEvent(c.path, "message.updated", { info: old }); // opencode re-sends it during the next turn
    expect(c.status).toBe("busy");
    handleEvent(c.path, "session.status", { sessionID: "s1", status: { type: "idle" } });
    handleEvent(c.path, "message.updated", { info: old });
    expect(c.status).toBe("idle");
    expect(c.error).toBeUndefined();
  });

  it("message.updated with an abort leaves the status alone", () => {
    const c = chat("s1", { status: "busy" });
    S.chats = { s1: c };
    handleEvent(c.path, "message.updated", { info: assistant("m1", "s1", { error: { name: "MessageAbortedError" } }) });
    expect(c.status).toBe("busy");
    expect(c.error).toBeUndefined();
  });
});

describe("session.status", () => {
  it("busy makes the chat busy, clears its error and watches its worktree", () => {
    const c = chat("s1", { status: "error", error: "old failure" });
    S.chats = { s1: c };
    handleEvent(c.path, "session.status", { sessionID: "s1", status: { type: "busy" } });
    expect(c.status).toBe("busy");
    expect(c.error).toBeUndefined();
    expect(c.updated).toBe(NOW);
    expect(openUrls()).toEqual([eventUrl(c.path)]);
  });

  it("idle after an assistant message with a real error gives error", () => {
    const c = chat("s1", { status: "busy", sentAt: NOW - 10 });
    S.chats = { s1: c };
    upsertMessageInfo(assistant("m1", "s1", { error: { name: "ProviderAuthError" } }));
    handleEvent(c.path, "session.status", { sessionID: "s1", status: { type: "idle" } });
    expect(c.status).toBe("error");
    expect(c.sentAt).toBeUndefined();
  });

  it("idle after an aborted assistant message gives idle", () => {
    const c = chat("s1", { status: "busy", sentAt: NOW - 10 });
    S.chats = { s1: c };
    upsertMessageInfo(assistant("m1", "s1", { error: { name: "MessageAbortedError" } }));
    handleEvent(c.path, "session.status", { sessionID: "s1", status: { type: "idle" } });
    expect(c.status).toBe("idle");
    expect(c.sentAt).toBeUndefined();
  });

  it("idle stops watching a worktree that is neither current nor busy", () => {
    const c = chat("s1");
    S.chats = { s1: c };
    handleEvent(c.path, "session.status", { sessionID: "s1", status: { type: "busy" } });
    expect(openUrls()).toEqual([eventUrl(c.path)]);
    handleEvent(c.path, "session.status", { sessionID: "s1", status: { type: "idle" } });
    expect(c.status).toBe("idle");
    expect(openUrls()).toEqual([]);
    expect(FakeEventSource.all).toHaveLength(1);
  });
});

describe("session.error", () => {
  it("an abort does not set an error", () => {
    const c = chat("s1", { status: "busy" });
    S.chats = { s1: c };
    handleEvent(c.path, "session.error", { sessionID: "s1", error: { name: "MessageAbortedError", data: { message: "x" } } });
    expect(c.status).toBe("busy");
    expect(c.error).toBeUndefined();
  });

  it("another error sets it, its message first", () => {
    const c = chat("s1", { status: "busy" });
    const d = chat("s2", { status: "busy" });
    S.chats = { s1: c, s2: d };
    handleEvent(c.path, "session.error", { sessionID: "s1", error: { name: "APIError", data: { message: "quota exceeded" } } });
    handleEvent(d.path, "session.error", { sessionID: "s2", error: { name: "ContextOverflowError" } });
    expect([c.status, c.error]).toEqual(["error", "quota exceeded"]);
    expect([d.status, d.error]).toEqual(["error", "ContextOverflowError"]);
  });
});

describe("session.updated", () => {
  it("updates the title and the time of last activity", () => {
    const c = chat("s1", { title: "New session", updated: 500 });
    const other = chat("s2", { title: "Other" });
    S.chats = { s1: c, s2: other };
    handleEvent(c.path, "session.updated", {
      info: { id: "s1", title: "Fix the login page", directory: c.path, time: { created: 100, updated: 900 } },
    });
    expect(c.title).toBe("Fix the login page");
    expect(c.updated).toBe(900);
    expect(other.title).toBe("Other");
    // an older session time never moves the activity back
    handleEvent(c.path, "session.updated", {
      info: { id: "s1", title: "Fix the login page, v2", directory: c.path, time: { created: 100, updated: 700 } },
    });
    expect(c.title).toBe("Fix the login page, v2");
    expect(c.updated).toBe(900);
  });
});

describe("reconcileStreams", () => {
  it("watches the current chat first, then the most recently active busy chats, at most 4", () => {
    S.chats = {
      cur: chat("cur", { path: "/srv/wt/o/r/current chat", updated: 1 }),
      b1: chat("b1", { status: "busy", updated: 10 }),
      b2: chat("b2", { status: "busy", updated: 50, path: "/srv/wt/o/r/b2 & more?" }),
      b3: chat("b3", { status: "busy", updated: 30 }),
      b4: chat("b4", { status: "busy", updated: 40 }),
      b5: chat("b5", { status: "busy", updated: 20 }),
      idle: chat("idle", { updated: 99 }),
      failed: chat("failed", { status: "error", updated: 98 }),
    };
    S.chat = "cur";
    reconcileStreams();
    const want = [S.chats.cur, S.chats.b2, S.chats.b4, S.chats.b3].map((c) => eventUrl(c.path));
    expect(openUrls()).toEqual(want);
    expect(openUrls()[0]).toBe("/event?directory=%2Fsrv%2Fwt%2Fo%2Fr%2Fcurrent%20chat");
    expect(openUrls()[1]).toBe("/event?directory=%2Fsrv%2Fwt%2Fo%2Fr%2Fb2%20%26%20more%3F");
    expect(FakeEventSource.all.every((es) => es.init?.withCredentials === true)).toBe(true);

    // nothing changed: nothing is opened or closed
    reconcileStreams();
    expect(FakeEventSource.all).toHaveLength(4);
    expect(openUrls()).toEqual(want);

    // another current chat: its stream opens, the old current one closes, the busy ones stay as they were
    S.chat = "idle";
    reconcileStreams();
    const [oldCurrent, b2, b4, b3] = FakeEventSource.all;
    expect(oldCurrent.closed).toBe(true);
    expect([b2.closed, b4.closed, b3.closed]).toEqual([false, false, false]);
    expect(FakeEventSource.all).toHaveLength(5);
    expect(FakeEventSource.all[4].url).toBe(eventUrl(S.chats.idle.path));
    expect(new Set(openUrls())).toEqual(new Set([eventUrl(S.chats.idle.path), ...want.slice(1)]));
  });

  it("opens one stream for a busy chat in the current chat's worktree", () => {
    S.chats = {
      cur: chat("cur", { path: "/srv/wt/shared" }),
      same: chat("same", { path: "/srv/wt/shared", status: "busy", updated: 5 }),
      b1: chat("b1", { status: "busy", updated: 1 }),
    };
    S.chat = "cur";
    reconcileStreams();
    expect(openUrls()).toEqual([eventUrl("/srv/wt/shared"), eventUrl("/srv/wt/b1")]);
  });

  it("a busy chat becoming current keeps its stream, and the freed slot goes to the next busy chat", () => {
    S.chats = {
      cur: chat("cur"),
      b1: chat("b1", { status: "busy", updated: 10 }),
      b2: chat("b2", { status: "busy", updated: 20 }),
      b3: chat("b3", { status: "busy", updated: 30 }),
      b4: chat("b4", { status: "busy", updated: 40 }),
    };
    S.chat = "cur";
    reconcileStreams();
    expect(openUrls()).toEqual(["cur", "b4", "b3", "b2"].map((id) => eventUrl(`/srv/wt/${id}`)));
    S.chat = "b3";
    reconcileStreams();
    expect(FakeEventSource.all.find((es) => es.url === eventUrl("/srv/wt/cur"))!.closed).toBe(true);
    expect(FakeEventSource.all.filter((es) => es.url === eventUrl("/srv/wt/b3"))).toHaveLength(1);
    expect(new Set(openUrls())).toEqual(new Set(["b4", "b3", "b2", "b1"].map((id) => eventUrl(`/srv/wt/${id}`))));
  });
});
