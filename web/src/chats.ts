// The chat list: every worktree's chat with its title and status, from the daemon's /admin/chats.
//
// The daemon follows opencode's global event stream, so this one call costs nothing in opencode. Asking
// opencode itself about each chat would boot every worktree's instance and keep them all in memory.
import { admin, type Schemas } from "./admin";
import { S, changed, isRunning, type Chat } from "./store";

export type ChatRow = Schemas["ChatInfo"];
export type ChatList = Schemas["ChatList"];

/** How long a chat stays busy after a prompt went out from here, whatever a poll says: the turn may not have
 * started yet when the poll was answered. */
export const SENT_GRACE_MS = 5000;

/** Merge one answer of /admin/chats into S.chats. While the daemon's stream is open (`streaming`), a chat known
 * here keeps the status the stream gave it; chats opencode does not know are hidden; ones made here a moment ago are kept. */
export function mergeChats(list: ChatList, streaming: boolean, now = Date.now()): void {
  const next: Record<string, Chat> = {};
  for (const row of list.chats) {
    const old = S.chats[row.session_id];
    const chat: Chat = {
      id: row.session_id,
      repo: row.repo,
      path: row.path,
      title: row.title ?? old?.title ?? row.session_id,
      created: row.created !== null ? row.created * 1000 : (old?.created ?? 0),
      updated: Math.max(old?.updated ?? 0, row.updated * 1000),
      sentAt: old?.sentAt,
      status: old?.status ?? "idle",
      error: old?.error,
      retry: old?.retry,
      waiting: old?.waiting,
      interrupted: old?.interrupted,
      found: row.found ?? old?.found ?? true,
    };
    const justSent = chat.sentAt !== undefined && now - chat.sentAt < SENT_GRACE_MS;
    // the stream's statuses are newer than a list's; a chat made a moment ago may not have started yet
    if (list.following && (!old || !streaming) && !(justSent && !isRunning(row))) {
      chat.status = row.status;
      chat.error = row.error ?? undefined;
      chat.retry = row.retry ?? undefined;
      chat.waiting = row.waiting ?? undefined;
      chat.interrupted = row.interrupted ?? undefined;
      if (!isRunning(chat)) chat.sentAt = undefined;
    }
    next[chat.id] = chat;
  }
  for (const c of Object.values(S.chats)) if (!next[c.id] && c.found && c.created > now - 60_000) next[c.id] = c;
  S.chats = next;
  changed();
}

export async function loadChats(streaming: boolean): Promise<void> {
  mergeChats(await admin("get", "/admin/chats"), streaming);
}
