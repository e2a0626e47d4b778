// One SSE stream per watched worktree directory (`/event?directory=`: EventSource cannot send headers),
// a heartbeat watchdog, and re-seeding after any reconnect.
//
// Only the current chat's worktree and the worktrees of busy chats are watched, at most MAX_STREAMS: over
// HTTP/1.1 a browser keeps 6 connections per origin, and each open stream holds one for good. The status of
// the other chats comes from the daemon's /admin/chats, polled.
import { api, type Message, type MessageInfo, type Part, type SessionInfo, type StatusMap } from "./api";
import { loadChats, SENT_GRACE_MS } from "./chats";
import { S, type Chat, appendDelta, changed, realError, removeMessage, removePart, upsertMessageInfo, upsertPart } from "./store";

const MAX_STREAMS = 4;
const HEARTBEAT_TIMEOUT = 25_000;

interface Stream {
  dir: string;
  es: EventSource | null;
  lastEvent: number;
  connected: boolean;
  retry: number;
  timer: number | undefined;
}

const streams = new Map<string, Stream>();

/** The worktree's stream is open: its chats' statuses come from their own events. */
export function isWatched(dir: string): boolean {
  return streams.has(dir);
}

export function chatByDir(dir: string) {
  return Object.values(S.chats).find((c) => c.path === dir);
}

function watchedDirs(): string[] {
  const dirs: string[] = [];
  const cur = S.chat ? S.chats[S.chat] : null;
  if (cur) dirs.push(cur.path);
  const busy = Object.values(S.chats)
    .filter((c) => c.status === "busy" && c.path !== cur?.path)
    .sort((a, b) => b.updated - a.updated);
  for (const c of busy) if (dirs.length < MAX_STREAMS) dirs.push(c.path);
  return dirs;
}

/** Open and close streams to match what should be watched now; call after any change of chat or status. */
export function reconcileStreams(): void {
  const want = new Set(watchedDirs());
  for (const [dir, st] of streams) {
    if (!want.has(dir)) {
      closeStream(st);
      streams.delete(dir);
    }
  }
  for (const dir of want) if (!streams.has(dir)) openStream(dir);
}

/** Resolve when the stream of `dir` has connected (or after `ms`). */
export function streamReady(dir: string, ms = 3000): Promise<void> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const check = () => {
      if (streams.get(dir)?.connected || Date.now() - t0 > ms) resolve();
      else setTimeout(check, 50);
    };
    check();
  });
}

function closeStream(st: Stream): void {
  clearTimeout(st.timer);
  st.es?.close();
  st.es = null;
  st.connected = false;
}

function openStream(dir: string): void {
  const st: Stream = { dir, es: null, lastEvent: Date.now(), connected: false, retry: 0, timer: undefined };
  streams.set(dir, st);
  connect(st);
}

function connect(st: Stream): void {
  closeStream(st);
  st.lastEvent = Date.now();
  const es = new EventSource(`/event?directory=${encodeURIComponent(st.dir)}`, { withCredentials: true });
  st.es = es;
  es.onmessage = (ev) => {
    st.lastEvent = Date.now();
    let data: { type?: string; properties?: Record<string, unknown> };
    try {
      data = JSON.parse(ev.data as string);
    } catch {
      return;
    }
    if (data.type === "server.connected") {
      const again = st.retry > 0 || st.connected;
      st.connected = true;
      st.retry = 0;
      // every (re)connect may have missed events: seed again
      if (again) markStale();
      scheduleReseed(again ? 0 : 300);
      return;
    }
    if (data.type === "server.instance.disposed") {
      // opencode dropped this directory's instance: the stream ends, open it again
      markStale();
      reconnectSoon(st, 300);
      return;
    }
    handleEvent(st.dir, data.type ?? "", data.properties ?? {});
  };
  es.onerror = () => {
    // EventSource retries by itself on a dropped connection but not on an HTTP error (502 while opencode
    // restarts): always take over, with a backoff
    markStale();
    reconnectSoon(st, Math.min(500 * 2 ** st.retry, 5000));
    st.retry++;
  };
}

function reconnectSoon(st: Stream, ms: number): void {
  clearTimeout(st.timer);
  st.es?.close();
  st.es = null;
  st.connected = false;
  st.timer = window.setTimeout(() => {
    if (streams.get(st.dir) === st) connect(st);
  }, ms);
}

export function handleEvent(dir: string, type: string, p: Record<string, unknown>): void {
  const sid = (p.sessionID as string | undefined) ?? undefined;
  const chat = sid ? S.chats[sid] : chatByDir(dir);
  switch (type) {
    case "message.part.delta": {
      appendDelta(p.sessionID as string, p.messageID as string, p.partID as string, (p.field as string) || "text", p.delta as string);
      if (chat) {
        chat.updated = Date.now();
        if (chat.status !== "busy") chat.status = "busy";
      }
      break;
    }
    case "message.part.updated": {
      const part = p.part as Part;
      upsertPart(part);
      if (chat) chat.updated = Date.now();
      break;
    }
    case "message.part.removed":
      removePart(p.sessionID as string, p.messageID as string, p.partID as string);
      break;
    case "message.updated": {
      const info = p.info as MessageInfo;
      upsertMessageInfo(info);
      const c = S.chats[info.sessionID];
      if (c) {
        c.updated = Math.max(c.updated, info.time.completed ?? info.time.created);
        // a failed reply may be stored after the turn went idle; opencode also sends older messages again
        // during a turn: only the chat's last message, once the turn is over, decides
        if (c.status !== "busy") settle(c);
      }
      break;
    }
    case "message.removed":
      removeMessage(p.sessionID as string, p.messageID as string);
      break;
    case "session.status": {
      const st = (p.status as { type: string } | undefined)?.type;
      if (chat && st) {
        if (st === "busy" || st === "retry") {
          chat.status = "busy";
          chat.error = undefined;
        } else if (chat.status === "busy") settle(chat);
        if (st !== "busy") chat.sentAt = undefined;
        chat.updated = Date.now();
      }
      reconcileStreams();
      break;
    }
    case "session.idle":
      if (chat) chat.sentAt = undefined;
      if (chat && chat.status === "busy") settle(chat);
      reconcileStreams();
      break;
    case "session.error": {
      if (chat) {
        const e = p.error as { name?: string; data?: { message?: string } } | undefined;
        if (e && e.name !== "MessageAbortedError") {
          chat.status = "error";
          chat.error = e.data?.message || e.name || "error";
        }
      }
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

/** A turn is over: the chat is idle, or in error when its last message failed. */
function settle(chat: Chat): void {
  chat.error = lastError(chat.id);
  chat.status = chat.error ? "error" : "idle";
}

function lastError(sessionID: string): string | undefined {
  const list = S.messages[sessionID];
  const last = list?.[list.length - 1];
  return last && last.info.role === "assistant" ? realError(last.info) : undefined;
}

// ---------------------------------------------------------------- staleness and re-seeding

export function markStale(): void {
  if (!S.stale) {
    S.stale = true;
    changed();
  }
}

let reseedTimer: number | undefined;
let reseeding: Promise<void> | null = null;
let reseedAgain = false;

export function scheduleReseed(ms = 0): void {
  clearTimeout(reseedTimer);
  reseedTimer = window.setTimeout(() => void reseed(), ms);
}

export async function fetchMessages(sessionID: string): Promise<void> {
  const chat = S.chats[sessionID];
  if (!chat) return;
  const list = await api.get<Message[]>(`/session/${encodeURIComponent(sessionID)}/message`, chat.path);
  S.messages[sessionID] = list;
  if (chat.status !== "busy") settle(chat);
  changed();
}

/** Seed every chat's status: all of them from the daemon's /admin/chats, then those whose stream is open from
 * opencode's /session/status in their worktree (their instance is loaded anyway). */
export async function seedStatuses(): Promise<void> {
  await loadChats(isWatched);
  const dirs = [...streams.keys()];
  const results = await Promise.all(
    dirs.map((d) => api.get<StatusMap>("/session/status", d).then((m) => [d, m] as const)),
  );
  const chats = Object.values(S.chats);
  for (const [dir, map] of results) {
    for (const c of chats) {
      if (c.path !== dir) continue;
      const st = map[c.id]?.type;
      if (st === "busy" || st === "retry") c.status = "busy";
      // a prompt sent a moment ago may not show as busy yet
      else if (c.status === "busy" && Date.now() - (c.sentAt ?? 0) > SENT_GRACE_MS) settle(c);
    }
  }
  changed();
}

/** After a reconnect: statuses, then the messages of the visible chat and of the busy ones. */
export function reseed(): Promise<void> {
  if (reseeding) {
    reseedAgain = true;
    return reseeding;
  }
  reseeding = (async () => {
    try {
      await seedStatuses();
      const ids = new Set<string>();
      if (S.chat) ids.add(S.chat);
      for (const c of Object.values(S.chats)) if (c.status === "busy") ids.add(c.id);
      await Promise.all([...ids].map((id) => fetchMessages(id)));
      // stale until every watched stream is connected again
      if ([...streams.values()].every((s) => s.connected)) S.stale = false;
      reconcileStreams();
      changed();
    } catch {
      S.stale = true;
      changed();
      scheduleReseed(2000);
    } finally {
      reseeding = null;
      if (reseedAgain) {
        reseedAgain = false;
        scheduleReseed(100);
      }
    }
  })();
  return reseeding;
}

/** Watchdog, page visibility and network events; polling of the statuses of unwatched chats. */
export function startLifecycle(): void {
  window.setInterval(() => {
    const now = Date.now();
    for (const st of streams.values()) {
      if (st.es && now - st.lastEvent > HEARTBEAT_TIMEOUT) {
        markStale();
        reconnectSoon(st, 0);
      }
    }
  }, 5000);
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") {
      markStale();
      // a phone that slept may hold dead sockets: open every stream afresh
      for (const st of streams.values()) reconnectSoon(st, 0);
      scheduleReseed(0);
    }
  });
  window.addEventListener("online", () => {
    markStale();
    for (const st of streams.values()) reconnectSoon(st, 0);
    scheduleReseed(0);
  });
  window.setInterval(() => {
    if (document.visibilityState === "visible" && !S.loading) void seedStatuses().then(reconcileStreams, () => {});
  }, 15_000);
}
