import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { MessageInfo, Part } from "./api";
import {
  S,
  appendDelta,
  changed,
  chatsOfRepo,
  realError,
  removeMessage,
  removePart,
  subscribe,
  upsertMessageInfo,
  upsertPart,
  type Chat,
} from "./store";

const initial = structuredClone(S);
let frames: FrameRequestCallback[] = [];

beforeEach(() => {
  Object.assign(S, structuredClone(initial));
  frames = [];
  vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "setInterval", "clearInterval", "Date"] });
  vi.setSystemTime(1_000_000);
  vi.stubGlobal("requestAnimationFrame", (cb: FrameRequestCallback) => frames.push(cb));
});

afterEach(() => {
  vi.runAllTimers(); // a changed() left pending must not swallow the next test's
  vi.useRealTimers();
  vi.unstubAllGlobals();
});

function info(id: string, over: Partial<MessageInfo> = {}): MessageInfo {
  return { id, sessionID: "s1", role: "assistant", time: { created: 1 }, ...over };
}

function part(id: string, messageID: string, over: Partial<Part> = {}): Part {
  return { id, sessionID: "s1", messageID, type: "text", ...over };
}

function chat(id: string, over: Partial<Chat> = {}): Chat {
  return { id, repo: "o/r", path: `/wt/${id}`, title: id, updated: 0, created: 0, status: "idle", found: true, ...over };
}

const ids = (sessionID = "s1") => (S.messages[sessionID] ?? []).map((m) => m.info.id);
const partIds = (messageID: string) => S.messages.s1.find((m) => m.info.id === messageID)!.parts.map((p) => p.id);

describe("upsertMessageInfo", () => {
  it("keeps the messages of a session ordered by id", () => {
    upsertMessageInfo(info("m3"));
    upsertMessageInfo(info("m1"));
    upsertMessageInfo(info("m2"));
    upsertMessageInfo(info("x1", { sessionID: "s2" }));
    expect(ids()).toEqual(["m1", "m2", "m3"]);
    expect(ids("s2")).toEqual(["x1"]);
  });

  it("replaces the info of a known message and keeps its parts", () => {
    upsertMessageInfo(info("m1"));
    upsertMessageInfo(info("m2"));
    upsertPart(part("p1", "m1", { text: "hi" }));
    const before = S.messages.s1;
    upsertMessageInfo(info("m1", { time: { created: 1, completed: 5 }, modelID: "gpt" }));
    expect(ids()).toEqual(["m1", "m2"]);
    expect(S.messages.s1[0].info.time.completed).toBe(5);
    expect(S.messages.s1[0].info.modelID).toBe("gpt");
    expect(S.messages.s1[0].parts.map((p) => p.text)).toEqual(["hi"]);
    // a new list, so that a render comparing by reference sees the change
    expect(S.messages.s1).not.toBe(before);
  });
});

describe("upsertPart", () => {
  it("inserts parts in id order", () => {
    upsertMessageInfo(info("m1"));
    upsertPart(part("p2", "m1"));
    upsertPart(part("p3", "m1"));
    upsertPart(part("p1", "m1"));
    expect(partIds("m1")).toEqual(["p1", "p2", "p3"]);
  });

  it("replaces a known part in place", () => {
    upsertMessageInfo(info("m1"));
    upsertPart(part("p1", "m1", { text: "a" }));
    upsertPart(part("p2", "m1", { type: "tool", tool: "bash", state: { status: "running" } }));
    upsertPart(part("p2", "m1", { type: "tool", tool: "bash", state: { status: "completed", output: "ok" } }));
    const m = S.messages.s1[0];
    expect(m.parts.map((p) => p.id)).toEqual(["p1", "p2"]);
    expect(m.parts[1].state).toEqual({ status: "completed", output: "ok" });
    expect(m.parts[0].text).toBe("a");
  });

  it("creates an assistant message for a part of an unknown message", () => {
    upsertPart(part("p1", "m9", { text: "early" }));
    expect(ids()).toEqual(["m9"]);
    expect(S.messages.s1[0].info.role).toBe("assistant");
    expect(S.messages.s1[0].parts[0].text).toBe("early");
  });
});

describe("appendDelta", () => {
  it("appends to the field of a known part", () => {
    upsertMessageInfo(info("m1"));
    upsertPart(part("p1", "m1", { text: "Hel" }));
    appendDelta("s1", "m1", "p1", "text", "lo");
    appendDelta("s1", "m1", "p1", "text", ", world");
    expect(S.messages.s1[0].parts[0].text).toBe("Hello, world");
  });

  it("creates the message and a text part when both are missing", () => {
    upsertMessageInfo(info("m1"));
    appendDelta("s1", "m2", "p5", "text", "new");
    expect(ids()).toEqual(["m1", "m2"]);
    const m2 = S.messages.s1[1];
    expect(m2.info).toMatchObject({ id: "m2", sessionID: "s1", role: "assistant" });
    expect(m2.parts).toEqual([{ id: "p5", sessionID: "s1", messageID: "m2", type: "text", text: "new" }]);
  });

  it("inserts a missing part in id order among the existing ones", () => {
    upsertMessageInfo(info("m1"));
    upsertPart(part("p1", "m1", { text: "a" }));
    upsertPart(part("p3", "m1", { text: "c" }));
    appendDelta("s1", "m1", "p2", "text", "b");
    expect(S.messages.s1[0].parts.map((p) => p.text)).toEqual(["a", "b", "c"]);
  });

  it("works on a field other than text", () => {
    upsertMessageInfo(info("m1"));
    upsertPart(part("p1", "m1", { type: "tool", tool: "bash", text: "untouched" }));
    appendDelta("s1", "m1", "p1", "output", "line 1\n");
    appendDelta("s1", "m1", "p1", "output", "line 2\n");
    const p = S.messages.s1[0].parts[0] as Part & { output?: string };
    expect(p.output).toBe("line 1\nline 2\n");
    expect(p.text).toBe("untouched");
    expect(p.type).toBe("tool");
  });

  it("creates a missing part with the named field, not text", () => {
    appendDelta("s1", "m1", "p1", "reasoning", "thinking");
    const p = S.messages.s1[0].parts[0] as Part & { reasoning?: string };
    expect(p.reasoning).toBe("thinking");
    expect(p.text).toBeUndefined();
  });

  it("does not mutate the part objects it was given", () => {
    upsertMessageInfo(info("m1"));
    const p1 = part("p1", "m1", { text: "a" });
    upsertPart(p1);
    appendDelta("s1", "m1", "p1", "text", "b");
    expect(p1.text).toBe("a");
    expect(S.messages.s1[0].parts[0].text).toBe("ab");
  });
});

describe("removePart and removeMessage", () => {
  beforeEach(() => {
    upsertMessageInfo(info("m1"));
    upsertMessageInfo(info("m2"));
    upsertPart(part("p1", "m1"));
    upsertPart(part("p2", "m1"));
  });

  it("removePart drops one part and keeps the others", () => {
    removePart("s1", "m1", "p1");
    expect(partIds("m1")).toEqual(["p2"]);
    expect(ids()).toEqual(["m1", "m2"]);
  });

  it("removePart of an unknown message changes nothing", () => {
    removePart("s1", "m7", "p1");
    removePart("s9", "m1", "p1");
    expect(ids()).toEqual(["m1", "m2"]);
    expect(partIds("m1")).toEqual(["p1", "p2"]);
    expect(S.messages.s9).toBeUndefined();
  });

  it("removeMessage drops one message of the session", () => {
    removeMessage("s1", "m1");
    expect(ids()).toEqual(["m2"]);
    removeMessage("s9", "m2");
    expect(ids()).toEqual(["m2"]);
    expect(S.messages.s9).toBeUndefined();
  });
});

describe("realError", () => {
  it("is undefined without an error", () => {
    expect(realError(info("m1"))).toBeUndefined();
  });

  it("does not count an abort by the user", () => {
    expect(realError(info("m1", { error: { name: "MessageAbortedError", data: { message: "aborted" } } }))).toBeUndefined();
  });

  it("prefers data.message over the name", () => {
    expect(realError(info("m1", { error: { name: "APIError", data: { message: "rate limited" } } }))).toBe("rate limited");
  });

  it("falls back to the name", () => {
    expect(realError(info("m1", { error: { name: "ProviderAuthError" } }))).toBe("ProviderAuthError");
    expect(realError(info("m1", { error: { name: "UnknownError", data: { message: "" } } }))).toBe("UnknownError");
  });
});

describe("chatsOfRepo", () => {
  it("lists the found chats of one repo, newest created first", () => {
    S.chats = {
      a: chat("a", { created: 10 }),
      b: chat("b", { created: 30 }),
      c: chat("c", { created: 20 }),
      other: chat("other", { repo: "o/other", created: 40 }),
      gone: chat("gone", { created: 50, found: false }),
    };
    expect(chatsOfRepo("o/r").map((c) => c.id)).toEqual(["b", "c", "a"]);
    expect(chatsOfRepo("o/other").map((c) => c.id)).toEqual(["other"]);
    expect(chatsOfRepo(null)).toEqual([]);
  });

  it("orders chats created at the same time by id", () => {
    S.chats = { y: chat("y", { created: 5 }), x: chat("x", { created: 5 }), z: chat("z", { created: 6 }) };
    expect(chatsOfRepo("o/r").map((c) => c.id)).toEqual(["z", "x", "y"]);
  });
});

describe("changed", () => {
  it("coalesces many calls into one listener call per frame", () => {
    const fn = vi.fn();
    const unsubscribe = subscribe(fn);
    for (let i = 0; i < 10; i++) changed();
    expect(fn).not.toHaveBeenCalled();
    expect(frames).toHaveLength(1);
    frames[0](0);
    expect(fn).toHaveBeenCalledTimes(1);
    // the fallback timeout of the same batch does not render again
    vi.advanceTimersByTime(200);
    expect(fn).toHaveBeenCalledTimes(1);
    // the next change schedules a new render
    changed();
    changed();
    expect(frames).toHaveLength(2);
    frames[1](0);
    expect(fn).toHaveBeenCalledTimes(2);
    unsubscribe();
  });

  it("still renders after 100 ms when no animation frame comes (background tab)", () => {
    const fn = vi.fn();
    const unsubscribe = subscribe(fn);
    changed();
    changed();
    vi.advanceTimersByTime(99);
    expect(fn).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(fn).toHaveBeenCalledTimes(1);
    // the late frame of the same batch does nothing
    frames[0](0);
    expect(fn).toHaveBeenCalledTimes(1);
    unsubscribe();
  });

  it("calls every listener, and no longer one that unsubscribed", () => {
    const a = vi.fn();
    const b = vi.fn();
    const unsubscribeA = subscribe(a);
    const unsubscribeB = subscribe(b);
    changed();
    vi.runAllTimers();
    expect(a).toHaveBeenCalledTimes(1);
    expect(b).toHaveBeenCalledTimes(1);
    unsubscribeA();
    changed();
    vi.runAllTimers();
    expect(a).toHaveBeenCalledTimes(1);
    expect(b).toHaveBeenCalledTimes(2);
    unsubscribeB();
  });
});
