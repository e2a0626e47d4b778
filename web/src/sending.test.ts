import { describe, expect, it } from "vitest";
import type { Message } from "./api";
import { deliver, pendingShown, SendError, userCount, viewKey, type Pending, type SendSteps, type Step } from "./sending";

interface FakeChat {
  id: string;
}

/** Steps that record what ran; `fail` names the one that throws. */
function steps(fail: Partial<Record<"session" | "worktree" | "delete" | "prompt", string>> = {}) {
  const log: string[] = [];
  const s: SendSteps<FakeChat> = {
    createSession: async () => {
      log.push("session");
      if (fail.session) throw new Error(fail.session);
      return { id: "ses_1" };
    },
    createWorktree: async (id) => {
      log.push(`worktree ${id}`);
      if (fail.worktree) throw new Error(fail.worktree);
      return { id };
    },
    deleteSession: async (id) => {
      log.push(`delete ${id}`);
      if (fail.delete) throw new Error(fail.delete);
    },
    prompt: async (chat) => {
      log.push(`prompt ${chat.id}`);
      if (fail.prompt) throw new Error(fail.prompt);
    },
    progress: (step: Step, chat) => log.push(`progress ${step}${chat ? ` ${chat.id}` : ""}`),
  };
  return { log, s };
}

async function failure(p: Promise<unknown>): Promise<SendError> {
  const e = await p.then(
    () => null,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(SendError);
  return e as SendError;
}

describe("deliver", () => {
  it("makes a draft's session, then its worktree, then sends, saying each step first", async () => {
    const { log, s } = steps();
    expect(await deliver(null, s)).toEqual({ id: "ses_1" });
    expect(log).toEqual([
      "progress session",
      "session",
      "progress worktree",
      "worktree ses_1",
      "progress prompt ses_1",
      "prompt ses_1",
    ]);
  });

  it("sends to an existing chat and makes nothing", async () => {
    const { log, s } = steps();
    await deliver({ id: "old" }, s);
    expect(log).toEqual(["progress prompt old", "prompt old"]);
  });

  it("deletes the session whose worktree failed, and names the worktree", async () => {
    const { log, s } = steps({ worktree: "fetch of o/r failed" });
    const e = await failure(deliver(null, s));
    expect(e.step).toBe("worktree");
    expect(e.message).toBe("could not make the chat's worktree: fetch of o/r failed");
    expect(log).toContain("delete ses_1");
    expect(log.some((l) => l.startsWith("prompt"))).toBe(false);
  });

  it("names the worktree even when deleting the session fails too", async () => {
    const { s } = steps({ worktree: "no default branch", delete: "network error" });
    const e = await failure(deliver(null, s));
    expect(e.message).toBe("could not make the chat's worktree: no default branch");
  });

  it("makes no worktree when the session failed", async () => {
    const { log, s } = steps({ session: "opencode is restarting" });
    const e = await failure(deliver(null, s));
    expect(e.step).toBe("session");
    expect(e.message).toBe("could not start the chat: opencode is restarting");
    expect(log).toEqual(["progress session", "session"]);
  });

  it("keeps the chat whose prompt failed: nothing is deleted", async () => {
    const { log, s } = steps({ prompt: "HTTP 500" });
    const e = await failure(deliver(null, s));
    expect(e.step).toBe("prompt");
    expect(e.message).toBe("could not send: HTTP 500");
    expect(log.some((l) => l.startsWith("delete"))).toBe(false);
  });
});

function msg(id: string, role: "user" | "assistant"): Message {
  return { info: { id, sessionID: "s", role, time: { created: 1 } }, parts: [] };
}

function pending(over: Partial<Pending> = {}): Pending {
  return { repo: "o/r", text: "hi", files: [], step: "sent", users: 1, ...over };
}

describe("pendingShown", () => {
  const before = [msg("m1", "user"), msg("m2", "assistant")];

  it("shows while a step runs, whatever the chat says", () => {
    expect(pendingShown(pending({ step: "worktree", users: 0 }), undefined, null)).toBe(true);
    expect(pendingShown(pending({ step: "prompt" }), before, "idle")).toBe(true);
  });

  it("shows once sent until opencode's copy arrives", () => {
    expect(pendingShown(pending(), before, "busy")).toBe(true);
    expect(pendingShown(pending(), [...before, msg("m3", "user")], "busy")).toBe(false);
    expect(pendingShown(pending(), [...before, msg("m3", "assistant")], "busy")).toBe(true);
  });

  it("goes when the turn it started is over, copy or not", () => {
    expect(pendingShown(pending(), before, "idle")).toBe(false);
    expect(pendingShown(pending(), before, "error")).toBe(false);
  });
});

describe("viewKey and userCount", () => {
  it("keys a chat by its id and each draft of a repo apart", () => {
    expect(viewKey("ses_1", "o/r", 3)).toBe("ses_1");
    expect(viewKey(null, "o/r", 3)).not.toBe(viewKey(null, "o/r", 4));
    expect(viewKey(null, "o/r", 3)).not.toBe(viewKey(null, "o/s", 3));
  });

  it("counts the user's messages", () => {
    expect(userCount(undefined)).toBe(0);
    expect(userCount([msg("a", "user"), msg("b", "assistant"), msg("c", "user")])).toBe(2);
  });
});
