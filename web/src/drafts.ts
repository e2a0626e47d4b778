// What is typed in the box, kept per chat: text typed for one chat never shows in another, and survives a
// reload. A chat's draft is keyed by its id; the empty chat "+" opens, by `new:<repo>` (one per repo, the
// phone's alone until its first prompt makes the chat).
//
// The text is written to the phone (localStorage), bounded: the newest drafts, at most MAX_DRAFTS of them
// and MAX_CHARS characters in all, are kept over a reload (the rest stays in this page), and drafts of chats
// that no longer exist are dropped. Attachments stay in the page: photos are too big to keep.
import type { Attachment } from "./attachments";
import type { KV } from "./outbox";

type Storage = Pick<KV, "getItem" | "setItem" | "removeItem">;

export const MAX_DRAFTS = 30;
export const MAX_CHARS = 200_000;
export const DRAFTS_KEY = "dancodes.drafts";

interface Draft {
  text: string;
  at: number; // last change (ms): the newest are the ones kept
}

/** The draft key of a view: the chat's id, or the repo's new chat. */
export function draftKey(chat: string | null, repo: string | null): string {
  return chat ?? `new:${repo ?? ""}`;
}

export class Drafts {
  private texts: Record<string, Draft> = {};
  private files = new Map<string, Attachment[]>();

  constructor(
    private kv: Storage | null,
    private now: () => number = Date.now,
  ) {
    this.texts = this.read();
  }

  private read(): Record<string, Draft> {
    const texts: Record<string, Draft> = {};
    try {
      const raw = this.kv?.getItem(DRAFTS_KEY);
      const parsed: unknown = raw ? JSON.parse(raw) : {};
      if (parsed && typeof parsed === "object")
        for (const [k, d] of Object.entries(parsed as Record<string, Draft>))
          if (typeof d?.text === "string") texts[k] = { text: d.text, at: Number(d.at) || 0 };
    } catch {
      /* unreadable: nothing */
    }
    return texts;
  }

  /** Another page of the app wrote the drafts: take them, keeping those of this page the phone does not
   * keep (too many, or too long). */
  reload(): void {
    const kept = this.persisted();
    const mine = Object.entries(this.texts).filter(([k]) => !(k in kept));
    this.texts = { ...this.read(), ...Object.fromEntries(mine) };
  }

  text(key: string): string {
    return this.texts[key]?.text ?? "";
  }

  attachments(key: string): Attachment[] {
    return this.files.get(key) ?? [];
  }

  setText(key: string, text: string): void {
    if (text) this.texts[key] = { text, at: this.now() };
    else delete this.texts[key];
    this.save();
  }

  setAttachments(key: string, files: Attachment[]): void {
    if (files.length) this.files.set(key, files);
    else this.files.delete(key);
  }

  /** A prompt that did not go out goes back to its chat's draft, before what was typed since. */
  giveBack(key: string, text: string, files: Attachment[]): void {
    const now = this.text(key);
    this.setText(key, now.trim() ? (text ? `${text}\n${now}` : now) : text || now);
    this.setAttachments(key, [...files, ...this.attachments(key)]);
  }

  /** Move a draft to another key (the "+" chat became a real chat while its box held text). */
  move(from: string, to: string): void {
    const text = this.text(from);
    const files = this.attachments(from);
    this.setText(from, "");
    this.setAttachments(from, []);
    if (text || files.length) this.giveBack(to, text, files);
  }

  /** Drop the drafts whose chat (or repo, for a new chat's) no longer exists. */
  prune(exists: (key: string) => boolean): void {
    for (const k of Object.keys(this.texts)) if (!exists(k)) delete this.texts[k];
    for (const k of [...this.files.keys()]) if (!exists(k)) this.files.delete(k);
    this.save();
  }

  /** What is written: the newest drafts, at most MAX_DRAFTS and MAX_CHARS characters in all. */
  persisted(): Record<string, Draft> {
    let room = MAX_CHARS;
    const kept = Object.entries(this.texts)
      .sort((a, b) => b[1].at - a[1].at)
      .slice(0, MAX_DRAFTS)
      .filter(([, d]) => d.text.length <= room && (room -= d.text.length) >= 0);
    return Object.fromEntries(kept);
  }

  private save(): void {
    try {
      const kept = this.persisted();
      if (Object.keys(kept).length) this.kv?.setItem(DRAFTS_KEY, JSON.stringify(kept));
      else this.kv?.removeItem(DRAFTS_KEY);
    } catch {
      /* private mode or full: the drafts live in this page */
    }
  }
}
