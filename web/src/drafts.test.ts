import { describe, expect, it } from "vitest";
import { draftKey, Drafts, MAX_CHARS, MAX_DRAFTS } from "./drafts";
type KV = NonNullable<ConstructorParameters<typeof Drafts>[0]>;

function memory(): KV & { data: Map<string, string> } {
  const data = new Map<string, string>();
  return {
    data,
    getItem: (k) => data.get(k) ?? null,
    setItem: (k, v) => void data.set(k, v),
    removeItem: (k) => void data.delete(k),
  };
}

const photo = { filename: "p.jpg", mime: "image/jpeg", url: "data:image/jpeg;base64,AAAA", size: 4 };

describe("Drafts", () => {
  it("keeps each chat's text apart: what is typed for one never shows in another", () => {
    const d = new Drafts(memory());
    d.setText("ses_a", "for a");
    d.setText("ses_b", "for b");
    d.setText(draftKey(null, "o/r"), "for a new chat");
    expect([d.text("ses_a"), d.text("ses_b"), d.text("new:o/r"), d.text("new:o/s"), d.text("ses_c")]).toEqual([
      "for a",
      "for b",
      "for a new chat",
      "",
      "",
    ]);
  });

  it("brings the text back after a reload, but not the attachments", () => {
    const kv = memory();
    const d = new Drafts(kv);
    d.setText("ses_a", "half a thought");
    d.setAttachments("ses_a", [photo]);
    const again = new Drafts(kv);
    expect(again.text("ses_a")).toBe("half a thought");
    expect(again.attachments("ses_a")).toEqual([]);
    expect(d.attachments("ses_a")).toEqual([photo]);
  });

  it("forgets an emptied draft on the phone too", () => {
    const kv = memory();
    const d = new Drafts(kv);
    d.setText("ses_a", "x");
    d.setText("ses_a", "");
    expect(kv.data.size).toBe(0);
    expect(new Drafts(kv).text("ses_a")).toBe("");
  });

  it("gives a prompt back before what was typed since", () => {
    const d = new Drafts(memory());
    d.giveBack("ses_a", "the prompt", [photo]);
    expect([d.text("ses_a"), d.attachments("ses_a")]).toEqual(["the prompt", [photo]]);
    const e = new Drafts(memory());
    e.setText("ses_a", "typed since");
    e.giveBack("ses_a", "the prompt", []);
    expect(e.text("ses_a")).toBe("the prompt\ntyped since");
    e.giveBack("ses_a", "", []);
    expect(e.text("ses_a")).toBe("the prompt\ntyped since");
  });

  it("moves a new chat's box to the chat it became", () => {
    const d = new Drafts(memory());
    d.setText("new:o/r", "typed while the chat was made");
    d.setAttachments("new:o/r", [photo]);
    d.move("new:o/r", "ses_new");
    expect([d.text("new:o/r"), d.attachments("new:o/r")]).toEqual(["", []]);
    expect([d.text("ses_new"), d.attachments("ses_new")]).toEqual(["typed while the chat was made", [photo]]);
  });

  it("drops the drafts of chats that no longer exist, on the phone too", () => {
    const kv = memory();
    const d = new Drafts(kv);
    d.setText("ses_gone", "lost cause");
    d.setText("ses_here", "keep me");
    d.setText("new:gone/repo", "x");
    const chats = new Set(["ses_here"]);
    d.prune((k) => (k.startsWith("new:") ? k === "new:o/r" : chats.has(k)));
    const again = new Drafts(kv);
    expect([again.text("ses_gone"), again.text("ses_here"), again.text("new:gone/repo")]).toEqual(["", "keep me", ""]);
  });

  it("keeps at most MAX_DRAFTS over a reload, the newest", () => {
    const kv = memory();
    let now = 0;
    const d = new Drafts(kv, () => ++now);
    for (let i = 0; i < MAX_DRAFTS + 3; i++) d.setText(`ses_${i}`, `draft ${i}`);
    const again = new Drafts(kv);
    expect(again.text("ses_0")).toBe("");
    expect(again.text("ses_2")).toBe("");
    expect(again.text("ses_3")).toBe("draft 3");
    expect(again.text(`ses_${MAX_DRAFTS + 2}`)).toBe(`draft ${MAX_DRAFTS + 2}`);
    expect(d.text("ses_0")).toBe("draft 0"); // still in this page
  });

  it("keeps at most MAX_CHARS in all over a reload: a huge draft stays in the page, the others are kept", () => {
    const kv = memory();
    let now = 0;
    const d = new Drafts(kv, () => ++now);
    d.setText("ses_small", "small");
    d.setText("ses_huge", "x".repeat(MAX_CHARS + 1));
    d.setText("ses_newest", "newest");
    const again = new Drafts(kv);
    expect([again.text("ses_small"), again.text("ses_huge"), again.text("ses_newest")]).toEqual(["small", "", "newest"]);
    expect(kv.data.get("dancodes.drafts")!.length).toBeLessThan(1000);
  });

  it("takes the drafts another page of the app wrote, keeping its own that the phone could not keep", () => {
    const kv = memory();
    let now = 0;
    const here = new Drafts(kv, () => ++now);
    const there = new Drafts(kv, () => ++now);
    here.setText("ses_huge", "x".repeat(MAX_CHARS + 1)); // this page's alone
    there.setText("ses_a", "typed in the other page");
    here.reload();
    expect(here.text("ses_a")).toBe("typed in the other page");
    expect(here.text("ses_huge").length).toBe(MAX_CHARS + 1);
    here.setText("ses_b", "and here");
    expect(new Drafts(kv).text("ses_a")).toBe("typed in the other page"); // this page's write kept it
  });

  it("starts empty from what it cannot read, and works with no storage at all", () => {
    for (const raw of ["{", "[]", "null", '{"ses_a": 3}']) {
      const kv = memory();
      kv.data.set("dancodes.drafts", raw);
      expect(new Drafts(kv).text("ses_a")).toBe("");
    }
    const d = new Drafts(null);
    d.setText("ses_a", "here only");
    expect(d.text("ses_a")).toBe("here only");
    const full: KV = { getItem: () => null, setItem: () => { throw new Error("QuotaExceededError"); }, removeItem: () => undefined };
    const e = new Drafts(full);
    e.setText("ses_a", "kept in the page");
    expect(e.text("ses_a")).toBe("kept in the page");
  });
});
