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

const STORE_KEY = "dancodes.outbox";
const MAX_FILE_CHARS = 2_000_000; // attachments kept over a reload, in all (localStorage holds ~5 M characters)

/** What is written to the phone: every item not yet sent, its attachments while they fit. */
export function serialize(items: Outgoing[]): string {
  let room = MAX_FILE_CHARS;
  const kept = items
    .filter((i) => i.phase !== "sent")
    .map((i) => {
      const size = i.files.reduce((n, f) => n + f.url.length, 0);
      if (size <= room) {
        room -= size;
        return i;
      }
      return { ...i, files: [], filesLost: (i.filesLost ?? 0) + i.files.length };
    });
  return JSON.stringify(kept);
}

/** The items a page left behind. One caught on its way (the page went away mid-step) is queued again: if it
 * was sending its prompt, that prompt may have reached opencode. */
export function deserialize(raw: string | null, now: number): Outgoing[] {
  if (!raw) return [];
  let list: unknown;
  try {
    list = JSON.parse(raw);
  } catch {
    return [];
  }
  if (!Array.isArray(list)) return [];
  return list
    .filter((i): i is Outgoing => !!i && typeof i === "object" && typeof i.id === "string" && typeof i.key === "string")
    .map((i): Outgoing => {
      if (i.phase === "queued") return i;
      return { ...i, phase: "queued", maybeSent: i.maybeSent || i.phase === "prompt", nextAt: now };
    })
    .slice(-MAX_ITEMS);
}

export interface KV {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

/** Write the items; false when the phone refused to keep them (then they live in this page alone). */
export function save(kv: KV | null, items: Outgoing[]): boolean {
  try {
    const raw = serialize(items);
    if (raw === "[]") kv?.removeItem(STORE_KEY);
    else kv?.setItem(STORE_KEY, raw);
    return !!kv;
  } catch {
    return false;
  }
}

export function load(kv: KV | null, now: number): Outgoing[] {
  try {
    return deserialize(kv?.getItem(STORE_KEY) ?? null, now);
  } catch {
    return [];
  }
}
