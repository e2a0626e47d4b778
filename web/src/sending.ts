// A prompt on its way. "+" opens a draft that lives on the phone alone; its first prompt makes the chat's
// session, then its worktree, then goes out. Meanwhile the prompt shows as a pending message with a line
// saying which step runs; a step that fails names itself (outbox.ts decides whether it is tried again).
//
// Nothing here touches the network or the store: the steps come in as functions (actions.ts gives the real
// ones), so the order and what is undone on a failure are tested directly.
export type Step = "session" | "worktree" | "prompt";

/** What the phone shows while a step runs. */
export const STEP_TEXT: Record<Step, string> = {
  session: "starting the chat…",
  worktree: "making the chat's worktree…",
  prompt: "sending…",
};

const FAILED: Record<Step, string> = {
  session: "could not start the chat",
  worktree: "could not make the chat's worktree",
  prompt: "could not send",
};

/** A step failed: its message is the one line the user sees; `status` and `answered` are those of the
 * request that failed (api.ts ApiError), when it was one. */
export class SendError extends Error {
  status?: number;
  answered = false;
  constructor(
    public step: Step,
    cause: unknown,
  ) {
    super(`${FAILED[step]}: ${text(cause)}`);
    const c = cause as { status?: unknown; answered?: unknown } | null;
    if (typeof c?.status === "number") this.status = c.status;
    this.answered = c?.answered === true;
  }
}

/** The key of what is on screen: the chat's id, or the current draft of the repo. */
export function viewKey(chat: string | null, repo: string | null, draft: number): string {
  return chat ?? `draft:${draft}:${repo ?? ""}`;
}

/** The steps a send takes; each may throw, with a message for the user. */
export interface SendSteps<C> {
  createSession(): Promise<{ id: string }>;
  createWorktree(sessionID: string): Promise<C>;
  /** Undo a session whose worktree could not be made. */
  deleteSession(sessionID: string): Promise<void>;
  prompt(chat: C): Promise<void>;
  /** A step starts (for the progress line); `chat` once the chat exists. */
  progress(step: Step, chat: C | null): void;
}

function text(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Send to `chat`, or, for a draft (null), make its chat first. Resolves to the chat; rejects with a
 * SendError naming the failed step.
 *
 * A session whose worktree could not be made is deleted at once: it would otherwise be a chat with no
 * worktree (opencode would run its turns in the shared clone), and the next send from the draft starts
 * over. A chat whose prompt failed is kept: it is a real, empty chat, and the next send goes to it. */
export async function deliver<C>(chat: C | null, steps: SendSteps<C>): Promise<C> {
  if (chat === null) {
    steps.progress("session", null);
    let session: { id: string };
    try {
      session = await steps.createSession();
    } catch (e) {
      throw new SendError("session", e);
    }
    steps.progress("worktree", null);
    try {
      chat = await steps.createWorktree(session.id);
    } catch (e) {
      await steps.deleteSession(session.id).catch(() => undefined);
      throw new SendError("worktree", e);
    }
  }
  steps.progress("prompt", chat);
  try {
    await steps.prompt(chat);
  } catch (e) {
    throw new SendError("prompt", e);
  }
  return chat;
}
