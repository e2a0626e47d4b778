// The outbox: prompts on their way, kept on the phone until opencode has them. A prompt sent while the
// phone is offline or the server cannot be reached (a network error, 502/503/504 while opencode or the
// daemon restarts) waits here, persisted, and goes out once, when it can; one that the server refuses for
// its own sake (400, 404, 409, 413, …) goes back to its chat's draft with one line saying why.
//
// Exactly once: each prompt carries a message id made here (opencode's `messageID`, accepted by
// `prompt_async`). opencode 1.18 does not treat a second prompt with the same id as a repeat: it adds the
// parts to that message again. So after an attempt that may have reached opencode (no answer, or a gateway
// error), the next attempt first asks whether the message is there (`GET …/message/{id}`), and sends only if
// it is not.
//
// Never to another chat: an item carries its chat's id, or the key of the "+" draft it was sent from until
// that draft's chat is made; then every item of the draft moves to the chat.
//
// Pure: the runner (delivery.ts) does the I/O and the clock comes in as `now`.
import type { Attachment } from "./attachments";
import type { Message } from "./api";
import type { Step } from "./sending";

/** Where an item stands: waiting, one of the steps of sending it, or sent (shown until opencode's copy is). */
export type Phase = "queued" | Step | "sent";

export interface Outgoing {
  id: string; // this phone's id for the item
  created: number; // ms: the items go in this order
  key: string; // the chat's id, or the draft's key ("draft:…") until the chat exists
  repo: string;
  dir: string; // the chat's worktree ("" for a draft)
  text: string;
  files: Attachment[];
  agent: string;
  model: string; // "providerID/modelID", "" for opencode's default
  messageID: string | null; // made at the first attempt to send the prompt, then kept
  phase: Phase;
  tries: number; // attempts that could not reach the server
  maybeSent: boolean; // an attempt of the prompt may have reached opencode: look before sending again
  triedAt: number; // the last attempt started (ms)
  nextAt: number; // not before (ms)
  reason: string; // why it waits, for the line under it
  filesLost?: number; // attachments this phone could not keep over a reload
}

export const MAX_ITEMS = 50;
const FIRST_RETRY_MS = 1000;
const MAX_RETRY_MS = 30_000;
/** An item that may have reached opencode is looked for no sooner than this after its attempt: opencode
 * answers `prompt_async` before it stores the message. */
export const SETTLE_MS = 3000;

export function isDraftKey(key: string): boolean {
  return key.startsWith("draft:");
}

/** The wait before attempt `tries + 1`: doubling from 1 s, at most 30 s. */
export function backoff(tries: number): number {
  return Math.min(MAX_RETRY_MS, FIRST_RETRY_MS * 2 ** Math.max(0, tries - 1));
}

/** The next item to try now, if any: one at a time, in the order sent; an item never overtakes an earlier
 * one of the same chat. */
export function nextDue(items: Outgoing[], now: number): Outgoing | null {
  if (items.some((i) => i.phase !== "queued" && i.phase !== "sent")) return null; // one is on its way
  const held = new Set<string>();
  for (const i of items) {
    if (i.phase !== "queued" || held.has(i.key)) continue;
    if (i.nextAt <= now) return i;
    held.add(i.key);
  }
  return null;
}

/** When the runner should look again: the earliest time a waiting item is due. */
export function nextWake(items: Outgoing[]): number | null {
  const due = items.filter((i) => i.phase === "queued").map((i) => i.nextAt);
  return due.length ? Math.min(...due) : null;
}

/** Whether a failure means the server could not be reached, so the request may be tried again: a network
 * error (status 0), or a gateway's bare 502/503/504 (Caddy's, while opencode or the app restarts). An
 * answer that says why (the daemon's 502 for a git fetch that failed, opencode's 400 or 404, a 413) is the
 * request's own: it is not tried again. */
export function unreachable(status: number | undefined, answered: boolean): boolean {
  if (status === 0) return true;
  return !answered && (status === 502 || status === 503 || status === 504);
}

/** The item after an attempt that could not reach the server: queued again, with a longer wait. An attempt
 * of the prompt step may have reached opencode all the same. */
export function requeue(item: Outgoing, reason: string, now: number): Outgoing {
  const tries = item.tries + 1;
  return {
    ...item,
    phase: "queued",
    tries,
    maybeSent: item.maybeSent || item.phase === "prompt",
    nextAt: now + backoff(tries),
    reason,
  };
}

/** The draft's chat is made: its items go to the chat from now on. */
export function rekey(items: Outgoing[], from: string, to: string, dir: string): Outgoing[] {
  return items.map((i) => (i.key === from ? { ...i, key: to, dir } : i));
}

/** An item failed for good: it and the later items of its chat (which depended on it, e.g. on the chat it
 * was making) leave the outbox, to go back to the chat's draft in order. */
export function giveUp(items: Outgoing[], item: Outgoing): { kept: Outgoing[]; returned: Outgoing[] } {
  const at = items.findIndex((i) => i.id === item.id);
  const returned = items.filter((i, n) => i.id === item.id || (n > at && i.key === item.key && i.phase === "queued"));
  const gone = new Set(returned.map((i) => i.id));
  return { kept: items.filter((i) => !gone.has(i.id)), returned };
}

/** Whether a sent item still shows: until opencode's copy of it arrives, or the turn it started is over. */
export function stillShown(item: Outgoing, messages: Message[] | undefined, running: boolean): boolean {
  if (item.phase !== "sent") return true;
  if (messages?.some((m) => m.info.id === item.messageID)) return false;
  return running;
}

// ---------------------------------------------------------------- message ids

const B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
let lastMs = 0;
let counter = 0;

/** A message id as opencode makes them (`msg_`, 12 hex digits of the low 48 bits of ms × 4096 + a counter,
 * 14 base-62 random characters), so that it sorts by time among opencode's own; and after `after` (the
 * chat's newest known message), so a phone whose clock is behind the server's still sorts it last. */
export function messageId(
  now: number,
  after?: string,
  random: (n: number) => Uint8Array = (n) => crypto.getRandomValues(new Uint8Array(n)),
): string {
  if (now !== lastMs) {
    lastMs = now;
    counter = 0;
  }
  counter++;
  const mask = (1n << 48n) - 1n;
  let v = (BigInt(now) * 4096n + BigInt(counter)) & mask;
  const prev = after && /^msg_[0-9a-f]{12}/.test(after) ? BigInt("0x" + after.slice(4, 16)) : -1n;
  if (prev >= v && prev < mask) v = prev + 1n;
  let tail = "";
  for (const b of random(14)) tail += B62[b % 62];
  return "msg_" + v.toString(16).padStart(12, "0") + tail;
}

// ---------------------------------------------------------------- persistence

/** localStorage, or what stands for it in tests. */
export interface KV {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
  key(index: number): string | null;
  readonly length: number;
}

/** Each item is kept under a key of its own, so that two pages of the app (a tab and the installed app)
 * never write over each other's items, and one can see that the other has sent an item (its key is gone). */
export const PREFIX = "dancodes.outbox.";

/** Keep an item on the phone: with its attachments if there is room, else without them, marked as such.
 * False when the phone keeps nothing (then it lives in this page alone). */
export function keep(kv: KV | null, item: Outgoing): boolean {
  if (!kv) return false;
  const copies = [item, ...(item.files.length ? [{ ...item, files: [], filesLost: item.files.length }] : [])];
  for (const copy of copies) {
    try {
      kv.setItem(PREFIX + item.id, JSON.stringify(copy));
      return true;
    } catch {
      /* full: try without the attachments */
    }
  }
  return false;
}

export function drop(kv: KV | null, id: string): void {
  try {
    kv?.removeItem(PREFIX + id);
  } catch {
    /* nothing kept */
  }
}

/** An item as the phone keeps it, or null. One caught on its way (its page went away mid-step) is queued
 * again: if it was sending its prompt, that prompt may have reached opencode. */
export function decode(raw: string | null, now: number): Outgoing | null {
  let i: Outgoing;
  try {
    i = raw ? JSON.parse(raw) : null;
  } catch {
    return null;
  }
  if (!i || typeof i !== "object" || typeof i.id !== "string" || typeof i.key !== "string") return null;
  if (typeof i.text !== "string" || !Array.isArray(i.files)) return null;
  if (i.phase === "queued") return i;
  return { ...i, phase: "queued", maybeSent: !!i.maybeSent || i.phase === "prompt", nextAt: now };
}

/** The item kept under `id`: null when it is not (sent, or given back, by this page or another). */
export function kept(kv: KV, id: string, now: number): Outgoing | null {
  return decode(kv.getItem(PREFIX + id), now);
}

/** Every item kept on the phone, in the order sent (at most MAX_ITEMS, the newest). */
export function loadAll(kv: KV | null, now: number): Outgoing[] {
  const items: Outgoing[] = [];
  try {
    for (let n = 0; kv && n < kv.length; n++) {
      const k = kv.key(n);
      const item = k?.startsWith(PREFIX) ? decode(kv.getItem(k), now) : null;
      if (item) items.push(item);
    }
  } catch {
    /* unreadable: nothing */
  }
  return items.sort((a, b) => a.created - b.created || (a.id < b.id ? -1 : 1)).slice(-MAX_ITEMS);
}

/** What another page learned about an item since this one kept it: where it goes (that page made its
 * chat), its message id, and whether it may have reached opencode. This page's attachments stay. */
export function merge(mine: Outgoing, theirs: Outgoing): Outgoing {
  return {
    ...mine,
    key: theirs.key,
    dir: theirs.dir,
    messageID: theirs.messageID ?? mine.messageID,
    maybeSent: mine.maybeSent || theirs.maybeSent,
    tries: Math.max(mine.tries, theirs.tries),
    triedAt: Math.max(mine.triedAt, theirs.triedAt),
  };
}
