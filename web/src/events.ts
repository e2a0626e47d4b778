// The app's one live stream: the daemon's /admin/chats/events. It starts with a snapshot (every chat's status as
// the daemon derives it, and the text so far of every running turn, which opencode stores only once a part is
// done), then relays each event. So one connection serves every chat (a browser keeps 6 per origin over
// HTTP/1.1), the app never derives a status itself, and opening, reloading, switching back or reconnecting in
// the middle of a reply shows all of it: opencode's stored messages, with the running parts' text laid over them.
import { api, type Message, type MessageInfo, type Part, type SessionInfo } from "./api";
import type { Schemas } from "./admin";
import { loadChats } from "./chats";
import {
  S,
  type Chat,
  appendDelta,
  changed,
  isRunning,
  askOf,
  markRead,
  markUnread,
  removeMessage,
  removePart,
  upsertMessageInfo,
  upsertPart,
} from "./store";

const HEARTBEAT_TIMEOUT = 25_000; // the daemon sends a heartbeat every 10 s
const URL = "/admin/chats/events?follow=1";

type ChatState = Schemas["ChatState"];
type LivePart = Schemas["LivePart"];

const stream = {
  es: null as EventSource | null,
  connected: false,
  lastEvent: 0,
  retry: 0,
  timer: undefined as number | undefined,
};

/** The running parts' text so far, by part id: laid over opencode's stored (empty) text until the part ends. */
export const live = new Map<string, LivePart>();

/** Every chat's status comes from the stream while it is connected. */
export function streaming(): boolean {
  return stream.connected;
}

/** The stream as "why is this chat stuck?" shows it. */
export function streamState(): { connected: boolean; lastEvent: number; retries: number } {
  return { connected: stream.connected, lastEvent: stream.lastEvent, retries: stream.retry };
}

/** opencode's version for the top bar: asked again on each (re)connect, since opencode may have been updated. */
export function refreshOpencodeVersion(): void {
  api.get<{ version?: string }>("/global/health").then(
    (h) => {
      S.opencodeVersion = h.version ?? "";
      changed();
    },
    () => {},
  );
}

/** Close the stream (tests; a page that goes away closes it by itself). */
export function closeStream(): void {
  clearTimeout(stream.timer);
  stream.timer = undefined;
  stream.es?.close();
  stream.es = null;
  stream.connected = false;
}

/** Keep the stream open (the one stream serves every chat: nothing to choose). */
export function reconcileStreams(): void {
  if (!stream.es && stream.timer === undefined) connect();
}

/** Resolve when the stream is connected (or after `ms`). */
export function streamReady(ms = 3000): Promise<void> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const check = () => {
      if (stream.connected || Date.now() - t0 > ms) resolve();
      else setTimeout(check, 50);
    };
    check();
  });
}

function connect(): void {
  stream.es?.close();
  stream.connected = false;
  stream.lastEvent = Date.now();
  const es = new EventSource(URL, { withCredentials: true });
  stream.es = es;
  es.onmessage = (ev) => {
    stream.lastEvent = Date.now();
    let data: { type?: string; properties?: Record<string, unknown> };
    try {
      data = JSON.parse(ev.data as string);
    } catch {
      return;
    }
    if (data.type === "snapshot") {
      stream.connected = true;
      stream.retry = 0;
      applySnapshot(data.properties as Schemas["ChatSnapshotData"]);
      void reseed();
      refreshOpencodeVersion();
      return;
    }
    handleEvent(data.type ?? "", data.properties ?? {});
  };
  es.onerror = () => {
    // EventSource retries by itself on a dropped connection but not on an HTTP error (502 while the daemon
    // restarts): always take over, with a backoff; the next snapshot resyncs everything
    reconnectSoon(Math.min(500 * 2 ** stream.retry, 5000));
    stream.retry++;
  };
}

function reconnectSoon(ms: number): void {
  markStale();
  clearTimeout(stream.timer);
  stream.es?.close();
  stream.es = null;
  stream.connected = false;
  stream.timer = setTimeout(() => {
    stream.timer = undefined;
    connect();
  }, ms);
}

/** What the stream starts from: statuses, and the running turns' text so far. */
export function applySnapshot(snap: Schemas["ChatSnapshotData"]): void {
  live.clear();
  for (const p of snap.live) live.set(p.partID, p);
  for (const state of snap.chats) applyState(state, false);
  for (const sid of Object.keys(S.messages)) overlay(sid);
  changed();
}

/** The daemon's status of a chat. `tell`: a change seen live (a finished turn may mark the chat unread). */
export function applyState(state: ChatState, tell = true): void {
  const chat = S.chats[state.sessionID];
  if (!chat) return;
  const wasRunning = isRunning(chat);
  chat.status = state.status;
  chat.error = state.error ?? undefined;
  chat.retry = state.retry ?? undefined;
  chat.waiting = state.waiting ?? undefined;
  chat.interrupted = state.interrupted ?? undefined;
  chat.updated = Math.max(chat.updated, state.updated * 1000);
  if (!isRunning(chat)) chat.sentAt = undefined;
  if (chat.status !== "waiting") delete S.asks[chat.id];
  if (tell && wasRunning && !isRunning(chat)) markUnread(chat);
}

/** Lay the running parts' text over a session's messages as fetched (opencode stores them empty until done). */
export function overlay(sessionID: string): void {
  for (const p of live.values()) {
    if (p.sessionID !== sessionID) continue;
    const list = S.messages[sessionID] ?? [];
    const stored = list.find((m) => m.info.id === p.messageID)?.parts.find((x) => x.id === p.partID) as
      | (Part & Record<string, unknown>)
      | undefined;
    const text = String(stored?.[p.field] ?? "");
    if (text.length < p.text.length) {
      if (stored) upsertPart({ ...stored, [p.field]: p.text } as Part);
      else appendDelta(sessionID, p.messageID, p.partID, p.field, p.text);
    }
  }
}

export function handleEvent(type: string, p: Record<string, unknown>): void {
  switch (type) {
    case "chat.status":
      applyState(p as unknown as ChatState);
      break;
    case "dancodes.following":
      // the daemon lost opencode's stream (opencode restarts) or has it again: stale until a resync
      if (p.following) void reseed();
      else markStale();
      return;
    case "message.part.delta": {
      const sid = p.sessionID as string;
      const partID = p.partID as string;
      const field = (p.field as string) || "text";
      const delta = p.delta as string;
      const held = live.get(partID);
      if (held && held.field === field) held.text += delta;
      else live.set(partID, { sessionID: sid, messageID: p.messageID as string, partID, field, text: delta, truncated: false });
      appendDelta(sid, p.messageID as string, partID, field, delta);
      const chat = S.chats[sid];
      if (chat) chat.updated = Date.now();
      break;
    }
    case "message.part.updated": {
      const part = p.part as Part & { time?: { end?: number } };
      if (part.time?.end) live.delete(part.id);
      const held = live.get(part.id);
      // a part is sent again as it runs, its text still empty in it: keep what streamed
      upsertPart(held && String((part as unknown as Record<string, unknown>)[held.field] ?? "").length < held.text.length
        ? ({ ...part, [held.field]: held.text } as Part)
        : part);
      const chat = S.chats[part.sessionID];
      if (chat) chat.updated = Date.now();
      break;
    }
    case "message.part.removed":
      live.delete(p.partID as string);
      removePart(p.sessionID as string, p.messageID as string, p.partID as string);
      break;
    case "message.updated": {
      const info = p.info as MessageInfo;
      upsertMessageInfo(info);
      const c = S.chats[info.sessionID];
      if (c) c.updated = Math.max(c.updated, info.time.completed ?? info.time.created);
      break;
    }
    case "message.removed":
      removeMessage(p.sessionID as string, p.messageID as string);
      break;
    case "permission.asked":
    case "question.asked": {
      const sid = p.sessionID as string;
      const ask = askOf(type === "permission.asked" ? "permission" : "question", p);
      S.asks[sid] = [...(S.asks[sid] ?? []).filter((a) => a.id !== ask.id), ask];
      break;
    }
    case "permission.replied":
    case "question.replied":
    case "question.rejected": {
      const sid = p.sessionID as string;
      S.asks[sid] = (S.asks[sid] ?? []).filter((a) => a.id !== p.requestID);
      break;
    }
    case "session.updated": {
      const info = p.info as SessionInfo | undefined;
      if (info && S.chats[info.id]) {
        S.chats[info.id].title = info.title;
        S.chats[info.id].updated = Math.max(S.chats[info.id].updated, info.time.updated);
      }
      break;
    }
    default:
      return;
  }
  changed();
}

// ---------------------------------------------------------------- staleness and re-seeding

export function markStale(): void {
  if (!S.stale) {
    S.stale = true;
    changed();
  }
}

let reseeding: Promise<void> | null = null;
let reseedAgain = false;

export async function fetchMessages(sessionID: string): Promise<void> {
  const chat = S.chats[sessionID];
  if (!chat) return;
  const list = await api.get<Message[]>(`/session/${encodeURIComponent(sessionID)}/message`, chat.path);
  S.messages[sessionID] = list;
  overlay(sessionID);
  if (chat.status === "waiting") {
    // what it asks came before this page listened: opencode lists the pending requests of the directory
    const pending = await api.get<Record<string, unknown>[]>("/permission", chat.path).catch(() => []);
    S.asks[sessionID] = pending.filter((r) => r.sessionID === sessionID).map((r) => askOf("permission", r));
  }
  changed();
}

/** After the stream (re)connected: the chat list, then the messages of the visible chat and the running ones. */
export function reseed(): Promise<void> {
  if (reseeding) {
    reseedAgain = true;
    return reseeding;
  }
  reseeding = (async () => {
    try {
      await loadChats(streaming());
      const ids = new Set<string>();
      if (S.chat) ids.add(S.chat);
      for (const c of Object.values(S.chats)) if (isRunning(c) && S.messages[c.id]) ids.add(c.id);
      await Promise.all([...ids].map((id) => fetchMessages(id)));
      if (stream.connected) S.stale = false;
      changed();
    } catch {
      S.stale = true;
      changed();
      setTimeout(() => void reseed(), 2000);
    } finally {
      reseeding = null;
      if (reseedAgain) {
        reseedAgain = false;
        setTimeout(() => void reseed(), 100);
      }
    }
  })();
  return reseeding;
}

/** Watchdog, page visibility and network events; a slow poll of the chat list for chats made elsewhere. */
export function startLifecycle(): void {
  reconcileStreams();
  setInterval(() => {
    if (stream.es && Date.now() - stream.lastEvent > HEARTBEAT_TIMEOUT) reconnectSoon(0);
  }, 5000);
  document.addEventListener("visibilitychange", () => {
    // a phone that slept may hold a dead socket: open the stream afresh (its snapshot resyncs)
    if (document.visibilityState === "visible") {
      markRead(S.chat);
      reconnectSoon(0);
    }
  });
  window.addEventListener("online", () => reconnectSoon(0));
  setInterval(() => {
    if (document.visibilityState === "visible" && !S.loading) void loadChats(streaming()).catch(() => {});
  }, 15_000);
}

/** The chat of a worktree directory. */
export function chatByDir(dir: string): Chat | undefined {
  return Object.values(S.chats).find((c) => c.path === dir);
}
