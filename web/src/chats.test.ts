import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { mergeChats, SENT_GRACE_MS, type ChatList, type ChatRow } from "./chats";
import { S, type Chat } from "./store";

const NOW = 1_700_000_000_000;
const initial = structuredClone(S);

beforeEach(() => {
  Object.assign(S, structuredClone(initial));
  vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
  vi.stubGlobal("requestAnimationFrame", () => 0);
});

afterEach(() => {
  vi.runAllTimers();
  vi.useRealTimers();
  vi.unstubAllGlobals();
});

function row(id: string, over: Partial<ChatRow> = {}): ChatRow {
  const created = (NOW - 3_600_000) / 1000;
  return {
    repo: "o/r",
    session_id: id,
    path: `/wt/${id}`,
    title: `title ${id}`,
    created,
    found: true,
    status: "idle",
    error: null,
    retry: null,
    waiting: null,
    interrupted: null,
    since: 0,
    updated: created,
    ...over,
  };
}

function list(rows: ChatRow[], over: Partial<ChatList> = {}): ChatList {
  return { chats: rows, opencode: true, following: true, ...over };
}

function chat(id: string, over: Partial<Chat> = {}): Chat {
  return { id, repo: "o/r", path: `/wt/${id}`, title: id, updated: 0, created: 0, status: "idle", found: true, ...over };
}

describe("mergeChats", () => {
  it("takes title, times and status from the daemon, in milliseconds", () => {
    mergeChats(list([row("a", { status: "error", error: "the model refused", updated: NOW / 1000 })]), false, NOW);
    expect(S.chats.a).toMatchObject({
      title: "title a",
      created: NOW - 3_600_000,
      updated: NOW,
      status: "error",
      error: "the model refused",
      found: true,
    });
  });

  it("while the stream is open, a chat keeps the status the stream gave it", () => {
    S.chats = { a: chat("a", { status: "busy" }) };
    mergeChats(list([row("a", { status: "idle" })]), true, NOW);
    expect(S.chats.a.status).toBe("busy");
  });

  it("while the daemon does not see opencode's events, statuses are kept", () => {
    S.chats = { a: chat("a", { status: "busy" }) };
    mergeChats(list([row("a", { status: "idle" })], { following: false }), false, NOW);
    expect(S.chats.a.status).toBe("busy");
  });

  it("a prompt sent a moment ago stays busy until its turn shows, then follows the daemon", () => {
    S.chats = { a: chat("a", { status: "busy", sentAt: NOW - 100 }) };
    mergeChats(list([row("a", { status: "idle" })]), false, NOW);
    expect(S.chats.a.status).toBe("busy");
    mergeChats(list([row("a", { status: "idle" })]), false, NOW + SENT_GRACE_MS);
    expect(S.chats.a.status).toBe("idle");
    expect(S.chats.a.sentAt).toBeUndefined();
  });

  it("a worktree whose session opencode lost is kept but not found; unknown keeps what was known", () => {
    S.chats = { b: chat("b", { title: "known title" }) };
    mergeChats(list([row("a", { found: false }), row("b", { found: null, title: null })], { opencode: false }), false, NOW);
    expect(S.chats.a.found).toBe(false);
    expect(S.chats.b).toMatchObject({ found: true, title: "known title" });
  });

  it("keeps a chat made here a moment ago that the answer does not list yet, and drops old ones", () => {
    S.chats = { fresh: chat("fresh", { created: NOW - 1000 }), gone: chat("gone", { created: NOW - 3_600_000 }) };
    mergeChats(list([row("a")]), false, NOW);
    expect(Object.keys(S.chats).sort()).toEqual(["a", "fresh"]);
  });
});
