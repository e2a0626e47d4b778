// A prompt on its way. "+" opens a draft that lives on the phone alone; its first prompt makes the chat's
// session, then its worktree, then goes out. Meanwhile the prompt shows as a pending message with a line
// saying which step runs; a step that fails names itself, and the caller puts the text back in the box.
//
// Nothing here touches the network or the store: the steps come in as functions (actions.ts gives the real
// ones), so the order and what is undone on a failure are tested directly.
import type { Attachment } from "./attachments";
import type { Message } from "./api";
import type { ChatStatus } from "./store";

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

/** A step failed: its message is the one line the user sees. */
export class SendError extends Error {
  constructor(
    public step: Step,
    cause: string,
  ) {
    super(`${FAILED[step]}: ${cause}`);
  }
}

/** A prompt sent from here that the chat's messages do not show yet. */
export interface Pending {
  repo: string;
  text: string;
  files: Attachment[];
  step: Step | "sent";
  users: number; // the chat's user messages when it was sent: one more means opencode has it
}

/** The key of what is on screen: the chat's id, or the current draft of the repo. */
export function viewKey(chat: string | null, repo: string | null, draft: number): string {
  return chat ?? `draft:${draft}:${repo ?? ""}`;
}

export function userCount(messages: Message[] | undefined): number {
  return (messages ?? []).filter((m) => m.info.role === "user").length;
}

/** Whether the pending prompt still shows: until opencode's copy of it arrives, or the turn it started is
 * over (whatever opencode kept is then what the chat shows). */
export function pendingShown(p: Pending, messages: Message[] | undefined, status: ChatStatus | null): boolean {
  if (userCount(messages) > p.users) return false;
  return p.step !== "sent" || status === "busy" || status === "retry" || status === "waiting";
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
      throw new SendError("session", text(e));
    }
    steps.progress("worktree", null);
    try {
      chat = await steps.createWorktree(session.id);
    } catch (e) {
      await steps.deleteSession(session.id).catch(() => undefined);
      throw new SendError("worktree", text(e));
    }
  }
  steps.progress("prompt", chat);
  try {
    await steps.prompt(chat);
  } catch (e) {
    throw new SendError("prompt", text(e));
  }
  return chat;
}
