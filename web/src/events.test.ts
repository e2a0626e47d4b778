import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { Message, MessageInfo } from "./api";
import type { Schemas } from "./admin";
import { applySnapshot, closeStream, handleEvent, live, overlay, reconcileStreams } from "./events";
import { S, markRead, type Chat } from "./store";

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
  send(data: unknown): void {
    this.onmessage?.({ data: JSON.stringify(data) } as MessageEvent);
  }
}

const open = () => FakeEventSource.all.filter((es) => !es.closed);
const initial = structuredClone(S);
const NOW = 1_700_000_000_000;

beforeEach(() => {
  Object.assign(S, structuredClone(initial));
  live.clear();
  FakeEventSource.all = [];
  vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "setInterval", "clearInterval", "Date"] });
  vi.setSystemTime(NOW);
  vi.stubGlobal("requestAnimationFrame", () => 0);
  vi.stubGlobal("EventSource", FakeEventSource);
  vi.stubGlobal("fetch", () => new Promise(() => {})); // a reseed's requests never answer here
});

afterEach(() => {
  closeStream();
  expect(open()).toEqual([]);
  vi.runOnlyPendingTimers();
  vi.useRealTimers();
  vi.unstubAllGlobals();
});

function chat(id: string, over: Partial<Chat> = {}): Chat {
  return { id, repo: "o/r", path: `/srv/wt/${id}`, title: id, updated: 0, created: 0, status: "idle", found: true, ...over };
}

function assistant(id: string, sessionID: string, over: Partial<MessageInfo> = {}): MessageInfo {
  return { id, sessionID, role: "assistant", time: { created: NOW - 1000 }, ...over };
}

function state(sessionID: string, over: Partial<Schemas["ChatState"]> = {}): Schemas["ChatState"] {
  return { sessionID, directory: `/srv/wt/${sessionID}`, status: "idle", error: null, retry: null, waiting: null, interrupted: null, since: 0, updated: NOW / 1000, ...over };
}

const delta = (partID: string, text: string, messageID = "m1", sessionID = "s1") => ({
  sessionID,
  messageID,
  partID,
  field: "text",
  delta: text,
});

describe("the one stream", () => {
  it("is the daemon's, one for every chat, and a snapshot marks it connected", () => {
    S.chats = { s1: chat("s1"), s2: chat("s2", { path: "/srv/wt/other" }) };
    reconcileStreams();
    reconcileStreams();
    expect(open().map((es) => es.url)).toEqual(["/admin/chats/events?follow=1"]);
    open()[0].send({ type: "snapshot", properties: { following: true, chats: [state("s2", { status: "busy" })], live: [] } });
    expect(S.chats.s2.status).toBe("busy");
  });

  it("after an error it is opened again, and the next snapshot replaces the running text", () => {
    S.chats = { s1: chat("s1", { status: "busy" }) };
    reconcileStreams();
    open()[0].onerror?.(new Event("error"));
    expect(S.stale).toBe(true);
    vi.advanceTimersByTime(600);
    expect(open()).toHaveLength(1);
    open()[0].send({
      type: "snapshot",
      properties: { following: true, chats: [state("s1", { status: "busy" })], live: [{ sessionID: "s1", messageID: "m1", partID: "p1", field: "text", text: "so far", truncated: false }] },
    });
    expect(live.get("p1")?.text).toBe("so far");
  });
});

describe("the text of a running turn", () => {
  it("deltas build each part in order, a delta of an unseen part creates it", () => {
    S.chats = { s1: chat("s1") };
    handleEvent("message.part.delta", delta("p2", "b"));
    handleEvent("message.part.delta", delta("p1", "a"));
    handleEvent("message.part.delta", delta("p2", "c"));
    expect(S.messages.s1[0].parts.map((p) => [p.id, p.type, p.text])).toEqual([
      ["p1", "text", "a"],
      ["p2", "text", "bc"],
    ]);
  });

  it("survives a refetch of the messages, which opencode stores empty until the part ends", () => {
    S.chats = { s1: chat("s1", { status: "busy" }) };
    applySnapshot({ following: true, chats: [], live: [{ sessionID: "s1", messageID: "m1", partID: "p1", field: "text", text: "tick 1 ", truncated: false }] });
    for (const d of ["tick 2 ", "tick 3 "]) handleEvent("message.part.delta", delta("p1", d));
    // a reload, a switch back or a reconnect fetches the session's messages: the part's text is empty there
    const stored: Message[] = [{ info: assistant("m1", "s1"), parts: [{ id: "p1", sessionID: "s1", messageID: "m1", type: "text", text: "" }] }];
    S.messages.s1 = stored;
    overlay("s1");
    expect(S.messages.s1[0].parts[0].text).toBe("tick 1 tick 2 tick 3 ");
    // opencode sends the running part again, still empty in it: what streamed stays
    handleEvent("message.part.updated", { part: { id: "p1", sessionID: "s1", messageID: "m1", type: "text", text: "" } });
    expect(S.messages.s1[0].parts[0].text).toBe("tick 1 tick 2 tick 3 ");
    handleEvent("message.part.delta", delta("p1", "tick 4"));
    expect(S.messages.s1[0].parts[0].text).toBe("tick 1 tick 2 tick 3 tick 4");
    // finished: opencode's stored text is the truth, and nothing is kept here any more
    const done = { id: "p1", sessionID: "s1", messageID: "m1", type: "text", text: "tick 1 tick 2 tick 3 tick 4", time: { end: 1 } };
    handleEvent("message.part.updated", { part: done });
    expect(live.has("p1")).toBe(false);
    expect(S.messages.s1[0].parts[0].text).toBe(done.text);
  });
});

describe("statuses come from the daemon", () => {
  it("retry and waiting carry what the chat shows", () => {
    S.chats = { s1: chat("s1", { status: "busy" }) };
    handleEvent("chat.status", state("s1", { status: "retry", retry: { attempt: 2, message: "overloaded", next: NOW / 1000 + 4 } }));
    expect(S.chats.s1).toMatchObject({ status: "retry", retry: { attempt: 2, message: "overloaded" } });
    handleEvent("chat.status", state("s1", { status: "waiting", waiting: "permission" }));
    expect(S.chats.s1).toMatchObject({ status: "waiting", waiting: "permission", retry: undefined });
  });

  it("a turn that ends while the chat is not looked at marks it unread, and looking at it reads it", () => {
    S.chats = { s1: chat("s1", { status: "busy" }), s2: chat("s2", { status: "busy" }) };
    S.chat = "s2";
    vi.stubGlobal("document", { visibilityState: "visible", title: "" });
    handleEvent("chat.status", state("s1", { status: "error", error: "quota exceeded" }));
    handleEvent("chat.status", state("s2", { status: "idle" }));
    expect([...S.unread]).toEqual(["s1"]); // s2 was on screen
    expect(S.chats.s1.error).toBe("quota exceeded");
    expect(document.title).toBe("(1) dancodes");
    markRead("s1");
    expect(S.unread.size).toBe(0);
    expect(document.title).toBe("dancodes");
  });

  it("a status of an idle chat, told again, is not news", () => {
    S.chats = { s1: chat("s1") };
    handleEvent("chat.status", state("s1", { status: "idle" }));
    expect(S.unread.size).toBe(0);
  });
});

describe("session events", () => {
  it("a renamed session renames its chat", () => {
    S.chats = { s1: chat("s1") };
    handleEvent("session.updated", { info: { id: "s1", title: "New title", directory: "/x", time: { created: 1, updated: NOW } } });
    expect(S.chats.s1.title).toBe("New title");
  });
});
