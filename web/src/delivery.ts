// Sending prompts: the outbox's runner (outbox.ts decides, this does the I/O). A prompt joins the outbox at
// once and shows in its chat; the runner sends what is due, one at a time, with the real steps (sending.ts
// `deliver`: the "+" draft's session, then its worktree, then the prompt), when the phone is online, again
// on `online`, on focus and on return to the page, and after a bounded backoff.
//
// Two pages of the app on one phone (a tab and the installed app share localStorage) share one outbox: each
// item is kept under a key of its own, a page learns of the others' items from `storage` events, and an item
// is sent under a lock (Web Locks) after reading it back from the phone: one the other page sent is gone,
// one it tried carries its message id, so that an item still goes out once.
import { admin } from "./admin";
import type { Attachment } from "./attachments";
import { api, ApiError, call, type Message, type SessionInfo } from "./api";
import { DRAFTS_KEY, draftKey } from "./drafts";
import { reconcileStreams, streamReady } from "./events";
import * as box from "./outbox";
import type { Outgoing } from "./outbox";
import { deliver, SendError } from "./sending";
import { S, changed, currentKey, drafts, repoInfo, saved, storage, type Chat, type ChatStatus } from "./store";

function notify(msg: string): void {
  S.notice = msg;
  changed();
}

// ---------------------------------------------------------------- the outbox in the page and on the phone

const unkept = new Set<string>(); // items this page could not keep on the phone
let warned = false;

/** Items another page sent or gave back (their record went from the phone): never written back from here,
 * whatever this page still had in hand when the news came. */
const goneElsewhere = new Set<string>();

/** Write an item to the phone (a sent one is forgotten there); say once when the phone keeps nothing. */
function keep(item: Outgoing): void {
  if (goneElsewhere.has(item.id)) return;
  if (item.phase === "sent") box.drop(storage(), item.id);
  else if (box.keep(storage(), item)) unkept.delete(item.id);
  else {
    unkept.add(item.id);
    if (!warned) notify("this phone would not keep the prompts waiting to be sent: they are lost if the page reloads");
    warned = true;
  }
}

function find(id: string): Outgoing | undefined {
  return S.outbox.find((i) => i.id === id);
}

function update(id: string, patch: Partial<Outgoing>): void {
  S.outbox = S.outbox.map((i) => (i.id === id ? { ...i, ...patch } : i));
  const item = find(id);
  if (item) keep(item);
  changed();
}

function remove(ids: string[]): void {
  S.outbox = S.outbox.filter((i) => !ids.includes(i.id));
  for (const id of ids) box.drop(storage(), id);
  changed();
}

/** The box an item's text goes back to: its chat's, or its repo's new chat's while the chat is not made. */
function textKey(item: Outgoing): string {
  return box.isDraftKey(item.key) ? draftKey(null, item.repo) : item.key;
}

/** The items of a view (a chat's id or a draft's key) that still show, in the order sent. */
export function outgoingOf(key: string, messages: Message[] | undefined, running: boolean): Outgoing[] {
  return S.outbox.filter((i) => i.key === key && box.stillShown(i, messages, running));
}

export function running(status: ChatStatus | undefined): boolean {
  return status !== undefined && status !== "idle" && status !== "error";
}

/** Forget the sent items that no longer show (opencode's copy took their place, or their turn ended). */
function sweep(): void {
  S.outbox = S.outbox.filter(
    (i) => i.phase !== "sent" || box.stillShown(i, S.messages[i.key], running(S.chats[i.key]?.status)),
  );
}

// ---------------------------------------------------------------- what the user does

/** Queue a prompt for the view `key` (the chat on screen, or its "+" draft) and start sending it. False when
 * there is nothing to send or nowhere to send it. */
export function send(text: string, files: Attachment[] = [], key = currentKey()): boolean {
  if (!text.trim() && !files.length) return false;
  const chat = box.isDraftKey(key) ? undefined : S.chats[key];
  const repo = chat?.repo ?? (box.isDraftKey(key) ? repoInfo(S.repo)?.repo : undefined);
  if (!repo) return false;
  sweep();
  if (S.outbox.filter((i) => i.phase !== "sent").length >= box.MAX_ITEMS) {
    notify(`${box.MAX_ITEMS} prompts are already waiting to be sent: send this one once they are`);
    return false;
  }
  const item: Outgoing = {
    id: `${Date.now().toString(36)}.${Math.random().toString(36).slice(2)}`,
    created: Date.now(),
    key,
    repo,
    dir: chat?.path ?? "",
    text,
    files,
    agent: S.agent,
    model: S.model,
    messageID: null,
    phase: "queued",
    tries: 0,
    maybeSent: false,
    triedAt: 0,
    nextAt: 0,
    reason: "",
  };
  S.outbox = [...S.outbox, item];
  keep(item);
  changed();
  void pump();
  return true;
}

/** Send a prompt opencode kept but never answered (swallowed.ts) again, as a new prompt of its chat. */
export function resend(chat: Chat, m: Message): void {
  const text = m.parts
    .filter((p) => p.type === "text" && !(p as { synthetic?: boolean }).synthetic)
    .map((p) => p.text ?? "")
    .join("\n");
  const files: Attachment[] = m.parts
    .filter((p) => p.type === "file" && p.url?.startsWith("data:"))
    .map((p) => ({ filename: p.filename ?? "file", mime: p.mime ?? "", url: p.url!, size: p.url!.length }));
  send(text, files, chat.id);
}

/** Take a queued prompt back into its chat's box (it has not left the phone). */
export function unqueue(id: string): void {
  const item = find(id);
  if (!item || item.phase !== "queued" || item.maybeSent) return;
  remove([id]);
  drafts.giveBack(textKey(item), item.text, item.files);
}

// ---------------------------------------------------------------- the runner

// A prompt (photos and all) that has not gone out in this long went nowhere the phone can tell: it is tried
// again like a network error, and looked for first. Not the chat's session and worktree: a worktree takes
// as long as its fetch takes, and giving up on one that is being made would leave it behind.
const PROMPT_TIMEOUT_MS = 90_000;
const CHECK_TIMEOUT_MS = 30_000;

let pumping = false;
let wake: number | undefined;

/** Send whatever is due, one at a time; then sleep until the next one is. */
export async function pump(): Promise<void> {
  if (pumping || S.loading) return;
  pumping = true;
  try {
    for (;;) {
      if (!navigator.onLine) break; // the `online` event starts it again
      const item = box.nextDue(S.outbox, Date.now());
      if (!item) break;
      await exclusive(() => claim(item.id));
    }
  } finally {
    pumping = false;
    sweep();
    clearTimeout(wake);
    const at = box.nextWake(S.outbox);
    if (at !== null && navigator.onLine) wake = window.setTimeout(() => void pump(), Math.max(0, at - Date.now()) + 10);
    changed();
  }
}

/** Run `fn` while no other page of the app sends (where the browser has Web Locks). */
function exclusive(fn: () => Promise<void>): Promise<void> {
  const locks = (navigator as Navigator & { locks?: LockManager }).locks;
  return locks ? locks.request("dancodes.outbox", fn).then(() => undefined) : fn();
}

/** Read the item back from the phone before sending it: another page may have sent it, or tried it. */
async function claim(id: string): Promise<void> {
  let item = find(id);
  if (!item || item.phase !== "queued") return;
  const kv = storage();
  if (kv && !unkept.has(id)) {
    const theirs = box.kept(kv, id, Date.now());
    if (!theirs) {
      S.outbox = S.outbox.filter((i) => i.id !== id); // sent, or given back, by another page
      return changed();
    }
    item = box.merge(item, theirs);
    S.outbox = S.outbox.map((i) => (i.id === id ? item! : i));
  }
  sendingHere.add(id);
  try {
    await attempt(item);
  } finally {
    sendingHere.delete(id);
  }
}

/** The items this page is sending now (under the lock): another page's news of them is its own echo. */
const sendingHere = new Set<string>();

/** Another page of the app changed a draft or an item: take its news. */
function fromElsewhere(e: StorageEvent): void {
  if (e.key === null) return; // storage cleared: what this page holds stays
  if (e.key === DRAFTS_KEY) {
    drafts.reload();
    return changed();
  }
  if (!e.key.startsWith(box.PREFIX)) return;
  const id = e.key.slice(box.PREFIX.length);
  const theirs = box.decode(e.newValue, Date.now());
  const mine = find(id);
  if (!theirs) {
    // sent or given back by another page (whatever phase its news left here): this page holds it no more
    if (mine && !sendingHere.has(id)) {
      goneElsewhere.add(id);
      S.outbox = S.outbox.filter((i) => i.id !== id);
    }
  } else if (!mine) {
    S.outbox = [...S.outbox, theirs].sort((a, b) => a.created - b.created);
  } else if (mine.phase === "queued") {
    S.outbox = S.outbox.map((i) => (i.id === id ? box.merge(i, theirs) : i));
  }
  changed();
  void pump();
}

/** The items a reload left behind; the sending starts once the chats are known (`pump` from `start`). */
export function startOutbox(): void {
  S.outbox = box.loadAll(storage(), Date.now());
  const lost = S.outbox.filter((i) => i.filesLost);
  if (lost.length) {
    // the phone could not keep their photos: back to their box rather than sent without them
    remove(lost.map((i) => i.id));
    for (const i of lost) drafts.giveBack(textKey(i), i.text, []);
    notify("this phone could not keep the photos of a prompt waiting to be sent: its text is back in its box");
  }
  const now = () => {
    // the network is back, or the phone woke up: try at once, whatever the backoff said
    S.outbox = S.outbox.map((i) => (i.phase === "queued" ? { ...i, nextAt: Math.min(i.nextAt, Date.now()) } : i));
    void pump();
  };
  window.addEventListener("online", now);
  window.addEventListener("offline", changed);
  window.addEventListener("focus", now);
  window.addEventListener("storage", fromElsewhere);
  document.addEventListener("visibilitychange", () => document.visibilityState === "visible" && now());
}

/** One try of an item: look whether an earlier try already reached opencode, else send it. */
async function attempt(item: Outgoing): Promise<void> {
  if (item.maybeSent && item.messageID && !box.isDraftKey(item.key)) {
    const since = Date.now() - item.triedAt;
    if (since < box.SETTLE_MS) {
      update(item.id, { nextAt: item.triedAt + box.SETTLE_MS });
      return;
    }
    update(item.id, { phase: "prompt" });
    try {
      const url = `/session/${encodeURIComponent(item.key)}/message/${encodeURIComponent(item.messageID)}`;
      await call("GET", url, { dir: item.dir, timeout: CHECK_TIMEOUT_MS });
      return sent(item.id); // it got there: never again
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 404)) return failed(item.id, new SendError("prompt", e));
      // not there: send it (with the same id)
    }
  }
  const [providerID, ...rest] = item.model.split("/");
  const parts: Record<string, unknown>[] = item.text.trim() ? [{ type: "text", text: item.text }] : [];
  for (const f of item.files) parts.push({ type: "file", mime: f.mime, url: f.url, filename: f.filename });
  const body: Record<string, unknown> = { parts, agent: item.agent };
  if (providerID && rest.length) body.model = { providerID, modelID: rest.join("/") };
  const repo = repoInfo(item.repo);
  let session: SessionInfo | undefined;
  let before: { status: ChatStatus; error?: string } | undefined;
  try {
    await deliver<{ id: string; path: string }>(box.isDraftKey(item.key) ? null : { id: item.key, path: item.dir }, {
      createSession: async () => {
        if (!repo) throw new Error(`${item.repo} is not on the server any more`);
        return (session = await api.post<SessionInfo>("/session", {}, repo.path));
      },
      createWorktree: async (id) => {
        const made = await admin("post", "/admin/worktrees", { body: { repo: item.repo, session_id: id } });
        const chat = adopt(session!, made.worktree, item.key);
        return { id: chat.id, path: chat.path };
      },
      deleteSession: (id) => api.del<void>(`/session/${encodeURIComponent(id)}`, repo?.path),
      progress: (step) => update(item.id, { phase: step, triedAt: Date.now() }),
      prompt: async (c) => {
        const chat = S.chats[c.id];
        if (chat) {
          before = { status: chat.status, error: chat.error };
          chat.status = "busy"; // watched from now on: the stream must listen before the turn starts
          chat.error = undefined;
          chat.updated = chat.sentAt = Date.now();
        }
        reconcileStreams();
        await streamReady();
        const list = S.messages[c.id];
        const messageID = find(item.id)?.messageID ?? box.messageId(Date.now(), list?.[list.length - 1]?.info.id);
        update(item.id, { messageID, triedAt: Date.now() }); // kept before it leaves: a reload can look for it
        const url = `/session/${encodeURIComponent(c.id)}/prompt_async`;
        await call("POST", url, { body: { ...body, messageID }, dir: c.path, timeout: PROMPT_TIMEOUT_MS });
      },
    });
    sent(item.id);
  } catch (e) {
    const chat = S.chats[find(item.id)?.key ?? ""];
    if (chat && before && chat.status === "busy") {
      // no turn started from here: the chat is as it was
      chat.status = before.status;
      chat.error = before.error;
      chat.sentAt = undefined;
    }
    failed(item.id, e instanceof SendError ? e : new SendError("prompt", e));
  }
}

function sent(id: string): void {
  update(id, { phase: "sent", reason: "" });
  reconcileStreams();
}

/** A try failed: queued again when the server could not be reached, else back to its chat's box, with the
 * later prompts of that chat, and one line saying why. */
function failed(id: string, e: SendError): void {
  const item = find(id);
  if (!item) return;
  if (box.unreachable(e.status, e.answered)) {
    const again = box.requeue(item, e.message, Date.now());
    update(id, again);
    return;
  }
  const { returned } = box.giveUp(S.outbox, item);
  remove(returned.map((i) => i.id));
  const byKey = new Map<string, Outgoing[]>();
  for (const i of returned) byKey.set(textKey(i), [...(byKey.get(textKey(i)) ?? []), i]);
  for (const [key, list] of byKey)
    drafts.giveBack(
      key,
      list
        .map((i) => i.text)
        .filter((t) => t.trim())
        .join("\n"),
      list.flatMap((i) => i.files),
    );
  const chat = S.chats[item.key];
  if (chat && e.step === "prompt") {
    chat.status = "error";
    chat.error = e.message;
    chat.sentAt = undefined;
  }
  notify(e.message);
}

/** The draft's session and worktree are made: it becomes a chat (and the one on screen if the draft still
 * is); the draft's prompts go to it from now on, and so does what was typed in its box meanwhile. */
function adopt(session: SessionInfo, worktree: { repo: string; path: string }, key: string): Chat {
  const chat: Chat = {
    id: session.id,
    repo: worktree.repo,
    path: worktree.path,
    title: session.title,
    updated: Date.now(),
    created: session.time.created,
    status: "idle",
    found: true,
  };
  S.chats = { ...S.chats, [chat.id]: chat };
  S.messages[chat.id] = [];
  S.outbox = box.rekey(S.outbox, key, chat.id, chat.path);
  for (const i of S.outbox) if (i.key === chat.id) keep(i);
  if (currentKey() === key) {
    S.chat = chat.id;
    saved.setChat(chat.repo, chat.id);
    drafts.move(draftKey(null, chat.repo), chat.id);
  }
  changed();
  return chat;
}
