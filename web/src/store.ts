// One global mutable state, a change counter and a render scheduler: small and enough for this app.
import type { Clone, GithubRepo, Message, MessageInfo, Part, Repo } from "./api";
import { Drafts } from "./drafts";
import type { KV, Outgoing } from "./outbox";
import { viewKey } from "./sending";

/** As the daemon derives it (never here): busy, retrying the provider, waiting on the user, idle or failed. */
export type ChatStatus = "busy" | "retry" | "waiting" | "idle" | "error" | "interrupted";

export interface Chat {
  id: string;
  repo: string;
  path: string; // the worktree: every opencode call for this chat names it
  title: string;
  updated: number; // ms, last activity
  created: number; // ms
  sentAt?: number; // a prompt went out from here: busy until opencode says otherwise
  status: ChatStatus;
  error?: string;
  retry?: { attempt: number; message: string; next: number | null }; // status "retry"
  waiting?: string; // status "waiting": "permission" | "question"
  interrupted?: string; // status "interrupted": why its turn was cut (opencode went away mid-turn)
  found: boolean; // opencode knows the session
}

/** The sidebar's word for a status. */
export function statusLabel(chat: { status: ChatStatus }): string {
  const words = { busy: "busy", retry: "retrying", waiting: "waiting for you", idle: "idle", error: "error" };
  return { ...words, interrupted: "interrupted" }[chat.status];
}

/** The line under a running chat's messages: what it does now, and for a retry why and when it tries next. */
export function statusLine(chat: Chat, now = Date.now()): string {
  if (chat.status === "retry" && chat.retry) {
    const next = chat.retry.next === null ? null : Math.max(0, Math.round(chat.retry.next - now / 1000));
    const when = next === null ? "" : next ? ` — next try in ${next} s` : " — trying again now";
    return `the provider failed, retrying (attempt ${chat.retry.attempt}): ${chat.retry.message}${when}`;
  }
  if (chat.status === "waiting") return `waiting for you: the agent asks ${chat.waiting === "question" ? "a question" : "a permission"}`;
  return "working…";
}

/** A turn is running (the agent works, retries, or waits on the user). */
export function isRunning(chat: { status: string } | null | undefined): boolean {
  return !!chat && (chat.status === "busy" || chat.status === "retry" || chat.status === "waiting");
}

export interface ModelChoice {
  providerID: string;
  modelID: string;
  label: string;
}

export const S = {
  version: "",
  opencodeVersion: "",
  view: null as "dashboard" | "stuck" | null, // the lazily loaded views (./Dashboard.tsx), over the chat
  repos: [] as Repo[],
  clones: [] as Clone[],
  github: null as { repos: GithubRepo[] } | { error: string } | null,
  repo: null as string | null,
  chats: {} as Record<string, Chat>,
  chat: null as string | null,
  messages: {} as Record<string, Message[]>,
  loading: true,
  stale: false,
  offline: false, // the server cannot be reached (./offline.ts)
  update: false, // a new version of the app is ready (./pwa.ts)
  sidebarOpen: false,
  pickerOpen: false,
  models: [] as ModelChoice[],
  model: "" as string, // providerID/modelID
  agents: [] as string[],
  agent: "build",
  notice: "" as string,
  // "+" opens draft n+1: an empty chat on the phone alone, until its first prompt is sent (numbered from the
  // page's start, so a draft's queued prompt kept over a reload never shows in another draft)
  draft: Date.now(),
  outbox: [] as Outgoing[], // prompts on their way, in the order sent (outbox.ts)
  unread: new Set<string>(), // chats that finished or failed since they were last looked at
  asks: {} as Record<string, Ask[]>, // by session: what the agent asks the user now (opencode's requests)
};

/** A permission the agent asks for (opencode's `permission.asked`), or a question it asks. */
export interface Ask {
  id: string;
  kind: "permission" | "question";
  what: string; // e.g. "bash: git push"
}

/** An opencode request as its event or `GET /permission` gives it. */
export function askOf(kind: Ask["kind"], p: Record<string, unknown>): Ask {
  const patterns = Array.isArray(p.patterns) ? (p.patterns as unknown[]).map(String).join(", ") : "";
  const questions = Array.isArray(p.questions) ? (p.questions as { question?: unknown }[]) : [];
  const what =
    kind === "permission"
      ? `${String(p.permission ?? "permission")}${patterns ? ": " + patterns : ""}`
      : questions.map((q) => String(q.question ?? "")).join(" / ") || "a question";
  return { id: String(p.id), kind, what };
}

const listeners = new Set<() => void>();
let scheduled = false;

export function subscribe(fn: () => void): () => void {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

/** Request a render; many changes in one frame cost one render. */
export function changed(): void {
  if (scheduled) return;
  scheduled = true;
  const run = () => {
    if (!scheduled) return;
    scheduled = false;
    listeners.forEach((fn) => fn());
  };
  // rAF pauses in background tabs; the timeout makes sure state still lands
  requestAnimationFrame(run);
  setTimeout(run, 100);
}

/** The last request got an answer (true) or none at all (false): the offline banner. */
export function setReachable(reachable: boolean): void {
  if (S.offline !== reachable) return;
  S.offline = !reachable;
  changed();
}

// ---------------------------------------------------------------- persistence on the device

const LS = {
  repo: "dancodes.repo",
  chat: (repo: string) => `dancodes.chat.${repo}`,
  model: "dancodes.model",
  agent: "dancodes.agent",
  unread: "dancodes.unread",
};

function lsGet(key: string): string | null {
  try {
    return localStorage.getItem(key);
  } catch {
    return null;
  }
}
function lsSet(key: string, value: string | null): void {
  try {
    if (value === null) localStorage.removeItem(key);
    else localStorage.setItem(key, value);
  } catch {
    /* private mode */
  }
}

/** The page's localStorage, or null where there is none (private mode, tests). */
export function storage(): KV | null {
  try {
    return typeof localStorage === "undefined" ? null : localStorage;
  } catch {
    return null;
  }
}

/** What is typed in the box, per chat (drafts.ts). */
export const drafts = new Drafts(storage());

export const saved = {
  repo: () => lsGet(LS.repo),
  setRepo: (repo: string | null) => lsSet(LS.repo, repo),
  chat: (repo: string) => lsGet(LS.chat(repo)),
  setChat: (repo: string, id: string | null) => lsSet(LS.chat(repo), id),
  model: () => lsGet(LS.model),
  setModel: (m: string) => lsSet(LS.model, m),
  agent: () => lsGet(LS.agent),
  setAgent: (a: string) => lsSet(LS.agent, a),
  unread: (): string[] => {
    try {
      const list: unknown = JSON.parse(lsGet(LS.unread) ?? "[]");
      return Array.isArray(list) ? list.filter((x): x is string => typeof x === "string") : [];
    } catch {
      return [];
    }
  },
  setUnread: (ids: Iterable<string>) => lsSet(LS.unread, JSON.stringify([...ids].slice(-200))),
};

// ---------------------------------------------------------------- unread: a chat that ended while not looked at

/** The chat on screen, with the app visible, is being looked at. */
function lookedAt(chat: Chat): boolean {
  return S.chat === chat.id && typeof document !== "undefined" && document.visibilityState === "visible";
}

/** A chat's turn ended (done or failed): unread unless it is being looked at. */
export function markUnread(chat: Chat): void {
  if (lookedAt(chat)) return;
  S.unread.add(chat.id);
  unreadChanged();
}

/** The chat is on screen: read. */
export function markRead(id: string | null): void {
  if (id && S.unread.delete(id)) unreadChanged();
}

/** Page title and app badge count the unread chats; kept across reloads. */
export function unreadChanged(): void {
  for (const id of [...S.unread]) if (!S.chats[id] && !S.loading) S.unread.delete(id); // deleted chats
  saved.setUnread(S.unread);
  const n = S.unread.size;
  if (typeof document !== "undefined") document.title = n ? `(${n}) dancodes` : "dancodes";
  const nav = typeof navigator !== "undefined" ? (navigator as Navigator & { setAppBadge?: (n?: number) => Promise<void>; clearAppBadge?: () => Promise<void> }) : undefined;
  if (n) void nav?.setAppBadge?.(n).catch(() => {});
  else void nav?.clearAppBadge?.().catch(() => {});
}

// ---------------------------------------------------------------- derived helpers

export function chatsOfRepo(repo: string | null): Chat[] {
  return Object.values(S.chats)
    .filter((c) => c.found && c.repo === repo)
    .sort((a, b) => b.created - a.created || (a.id < b.id ? -1 : 1));
}

export function currentChat(): Chat | null {
  return (S.chat && S.chats[S.chat]) || null;
}

/** What is on screen: the chat's id, or the draft's key. */
export function currentKey(): string {
  return viewKey(S.chat, S.repo, S.draft);
}

export function repoInfo(repo: string | null): Repo | undefined {
  return S.repos.find((r) => r.repo === repo);
}

// ---------------------------------------------------------------- message mutations (from fetches and events)

function msgList(sessionID: string): Message[] {
  return (S.messages[sessionID] ??= []);
}

function findMsg(sessionID: string, messageID: string): Message | undefined {
  return S.messages[sessionID]?.find((m) => m.info.id === messageID);
}

export function upsertMessageInfo(info: MessageInfo): void {
  const list = msgList(info.sessionID);
  const i = list.findIndex((m) => m.info.id === info.id);
  if (i >= 0) list[i] = { ...list[i], info };
  else {
    list.push({ info, parts: [] });
    list.sort((a, b) => (a.info.id < b.info.id ? -1 : a.info.id > b.info.id ? 1 : 0));
  }
  S.messages[info.sessionID] = [...list];
}

function ensureMsg(sessionID: string, messageID: string): Message {
  let m = findMsg(sessionID, messageID);
  if (!m) {
    upsertMessageInfo({ id: messageID, sessionID, role: "assistant", time: { created: Date.now() } });
    m = findMsg(sessionID, messageID)!;
  }
  return m;
}

function replaceMsg(sessionID: string, m: Message): void {
  const list = msgList(sessionID);
  S.messages[sessionID] = list.map((x) => (x.info.id === m.info.id ? m : x));
}

export function upsertPart(part: Part): void {
  const m = ensureMsg(part.sessionID, part.messageID);
  const i = m.parts.findIndex((p) => p.id === part.id);
  const parts = [...m.parts];
  if (i >= 0) parts[i] = part;
  else {
    parts.push(part);
    parts.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }
  replaceMsg(part.sessionID, { ...m, parts });
}

export function appendDelta(sessionID: string, messageID: string, partID: string, field: string, delta: string): void {
  const m = ensureMsg(sessionID, messageID);
  const i = m.parts.findIndex((p) => p.id === partID);
  const parts = [...m.parts];
  if (i >= 0) {
    const p = { ...parts[i] } as Part & Record<string, unknown>;
    p[field] = String(p[field] ?? "") + delta;
    parts[i] = p;
  } else {
    parts.push({ id: partID, sessionID, messageID, type: "text", [field]: delta } as Part);
    parts.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }
  replaceMsg(sessionID, { ...m, parts });
}

export function removePart(sessionID: string, messageID: string, partID: string): void {
  const m = findMsg(sessionID, messageID);
  if (!m) return;
  replaceMsg(sessionID, { ...m, parts: m.parts.filter((p) => p.id !== partID) });
}

export function removeMessage(sessionID: string, messageID: string): void {
  const list = S.messages[sessionID];
  if (list) S.messages[sessionID] = list.filter((m) => m.info.id !== messageID);
}

/** A message error that means something went wrong (an abort by the user does not). */
export function realError(info: MessageInfo): string | undefined {
  const e = info.error;
  if (!e || e.name === "MessageAbortedError") return undefined;
  return e.data?.message || e.name;
}
