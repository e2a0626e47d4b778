import { describe, expect, it } from "vitest";
import { ApiError } from "./api";
import { deliver, SendError, viewKey, type SendSteps, type Step } from "./sending";

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

describe("SendError", () => {
  it("keeps the status of the request that failed, and whether its server said why", () => {
    const gateway = new SendError("prompt", new ApiError(502, "POST /x: HTTP 502"));
    expect([gateway.status, gateway.answered]).toEqual([502, false]);
    const said = new SendError("worktree", new ApiError(502, "fetch failed", true));
    expect([said.status, said.answered, said.message]).toEqual([502, true, "could not make the chat's worktree: fetch failed"]);
    const plain = new SendError("session", new Error("acme/rocket is not on the server any more"));
    expect([plain.status, plain.answered]).toEqual([undefined, false]);
  });

  it("passes the cause through deliver", async () => {
    const { s } = steps();
    s.prompt = async () => {
      throw new ApiError(0, "network error: Failed to fetch");
    };
    const e = await failure(deliver({ id: "c" }, s));
    expect([e.step, e.status]).toEqual(["prompt", 0]);
  });
});

describe("viewKey", () => {
  it("keys a chat by its id and each draft of a repo apart", () => {
    expect(viewKey("ses_1", "o/r", 3)).toBe("ses_1");
    expect(viewKey(null, "o/r", 3)).not.toBe(viewKey(null, "o/r", 4));
    expect(viewKey(null, "o/r", 3)).not.toBe(viewKey(null, "o/s", 3));
  });
});
