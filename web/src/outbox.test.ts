import { describe, expect, it } from "vitest";
import type { Message } from "./api";
import {
  backoff,
  decode,
  drop,
  giveUp,
  keep,
  kept,
  loadAll,
  MAX_ITEMS,
  merge,
  messageId,
  nextDue,
  nextWake,
  PREFIX,
  rekey,
  requeue,
  stillShown,
  unreachable,
  type KV,
  type Outgoing,
} from "./outbox";

function item(id: string, over: Partial<Outgoing> = {}): Outgoing {
  return {
    id,
    created: Number(id.replace(/\D/g, "")) || 0,
    key: "ses_a",
    repo: "o/r",
    dir: "/wt/a",
    text: `text of ${id}`,
    files: [],
    agent: "build",
    model: "p/m",
    messageID: null,
    phase: "queued",
    tries: 0,
    maybeSent: false,
    triedAt: 0,
    nextAt: 0,
    reason: "",
    ...over,
  };
}

/** localStorage in memory; `room` bounds the characters it holds, like a phone's quota. */
function memory(room = Infinity): KV & { data: Map<string, string> } {
  const data = new Map<string, string>();
  return {
    data,
    getItem: (k) => data.get(k) ?? null,
    setItem: (k, v) => {
      const used = [...data].reduce((n, [key, val]) => n + (key === k ? 0 : val.length), 0);
      if (used + v.length > room) throw new Error("QuotaExceededError");
      data.set(k, v);
    },
    removeItem: (k) => void data.delete(k),
    key: (n) => [...data.keys()][n] ?? null,
    get length() {
      return data.size;
    },
  };
}

describe("nextDue", () => {
  it("takes the items in the order sent", () => {
    expect(nextDue([item("1"), item("2", { key: "ses_b" })], 0)?.id).toBe("1");
  });

  it("sends one at a time: nothing while an item is on its way", () => {
    for (const phase of ["session", "worktree", "prompt"] as const)
      expect(nextDue([item("1", { phase }), item("2", { key: "ses_b" })], 0)).toBeNull();
    expect(nextDue([item("1", { phase: "sent" }), item("2")], 0)?.id).toBe("2");
  });

  it("never lets an item overtake an earlier one of its chat, but lets other chats go", () => {
    const items = [item("1", { nextAt: 500 }), item("2"), item("3", { key: "ses_b" })];
    expect(nextDue(items, 100)?.id).toBe("3");
    expect(nextDue(items.slice(0, 2), 100)).toBeNull();
    expect(nextDue(items, 500)?.id).toBe("1");
  });

  it("says when to look again", () => {
    expect(nextWake([item("1", { nextAt: 900 }), item("2", { nextAt: 300 }), item("3", { phase: "sent" })])).toBe(300);
    expect(nextWake([item("1", { phase: "sent" })])).toBeNull();
  });
});

describe("what is tried again", () => {
  it("a request that reached no server, or a gateway's bare 502/503/504", () => {
    expect(unreachable(0, false)).toBe(true);
    for (const s of [502, 503, 504]) expect(unreachable(s, false)).toBe(true);
  });

  it("never a request refused for its own sake, nor an answer that says why", () => {
    for (const s of [400, 404, 409, 413, 500]) expect(unreachable(s, false)).toBe(false);
    for (const s of [400, 404, 413, 502, 503]) expect(unreachable(s, true)).toBe(false);
    expect(unreachable(undefined, false)).toBe(false); // not a request at all (e.g. the repo is gone)
  });

  it("waits longer after each failure, doubling from 1 s, never more than 30 s", () => {
    expect([1, 2, 3, 4, 5, 6, 7, 50].map(backoff)).toEqual([1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
  });

  it("requeues with the next wait; a prompt that went out may have reached opencode", () => {
    const a = requeue(item("1", { phase: "session" }), "could not start the chat: network error", 10_000);
    expect(a).toMatchObject({ phase: "queued", tries: 1, nextAt: 11_000, maybeSent: false });
    expect(a.reason).toBe("could not start the chat: network error");
    const b = requeue(item("1", { phase: "prompt", tries: 2 }), "x", 10_000);
    expect(b).toMatchObject({ phase: "queued", tries: 3, nextAt: 14_000, maybeSent: true });
    expect(requeue({ ...b, phase: "prompt" }, "x", 0).maybeSent).toBe(true);
  });
});

describe("a draft's chat and a failure for good", () => {
  it("moves every item of the draft to its chat, and no other", () => {
    const items = [item("1", { key: "draft:7:o/r", dir: "" }), item("2", { key: "draft:8:o/r", dir: "" }), item("3", { key: "draft:7:o/r", dir: "" })];
    const moved = rekey(items, "draft:7:o/r", "ses_new", "/wt/new");
    expect(moved.map((i) => [i.key, i.dir])).toEqual([
      ["ses_new", "/wt/new"],
      ["draft:8:o/r", ""],
      ["ses_new", "/wt/new"],
    ]);
  });

  it("gives back the failed item and the later items of its chat, keeping the rest", () => {
    const items = [item("0"), item("1", { phase: "worktree" }), item("2", { key: "ses_b" }), item("3")];
    const { kept, returned } = giveUp(items, items[1]);
    expect(returned.map((i) => i.id)).toEqual(["1", "3"]);
    expect(kept.map((i) => i.id)).toEqual(["0", "2"]);
  });
});

describe("stillShown", () => {
  const msg = (id: string): Message => ({ info: { id, sessionID: "ses_a", role: "user", time: { created: 1 } }, parts: [] });

  it("shows an item until it is sent", () => {
    for (const phase of ["queued", "session", "worktree", "prompt"] as const)
      expect(stillShown(item("1", { phase, messageID: "msg_x" }), [msg("msg_x")], false)).toBe(true);
  });

  it("shows a sent item until opencode's copy (its message id) arrives", () => {
    const sent = item("1", { phase: "sent", messageID: "msg_x" });
    expect(stillShown(sent, [msg("msg_a")], true)).toBe(true);
    expect(stillShown(sent, [msg("msg_a"), msg("msg_x")], true)).toBe(false);
  });

  it("lets a sent item go when the turn it started is over, copy or not", () => {
    expect(stillShown(item("1", { phase: "sent", messageID: "msg_x" }), [], false)).toBe(false);
  });
});

describe("messageId", () => {
  const zeros = (n: number) => new Uint8Array(n);
  // what opencode 1.18.33 made (recorded): msg_ + 12 hex + 14 base-62
  const theirs = "msg_21c4fe46b001TftyqmoOpJA86z";

  it("looks like opencode's", () => {
    const id = messageId(1_795_771_327_595, undefined, zeros);
    expect(id).toMatch(/^msg_[0-9a-f]{12}[0-9A-Za-z]{14}$/);
    expect(id.length).toBe(theirs.length);
  });

  it("sorts by time, and within a millisecond by the order made", () => {
    const a = messageId(5_000_000, undefined, zeros);
    const b = messageId(5_000_000, undefined, zeros);
    const c = messageId(5_000_001, undefined, zeros);
    expect([a, b, c].sort()).toEqual([a, b, c]);
    expect(a < b && b < c).toBe(true);
  });

  it("places the recorded id where opencode's clock put it", () => {
    // opencode stored that message at 1795771327595 ms: an id made a moment before sorts before it, after after
    expect(messageId(1_795_771_327_500, undefined, zeros) < theirs).toBe(true);
    expect(messageId(1_795_771_327_700, undefined, zeros) > theirs).toBe(true);
  });

  it("sorts after the chat's newest message even when the phone's clock is behind", () => {
    const id = messageId(1_795_771_000_000, theirs, zeros);
    expect(id > theirs).toBe(true);
    expect(id.slice(0, 16)).toBe("msg_21c4fe46b002");
  });
});

describe("kept on the phone", () => {
  it("keeps each item under a key of its own, and forgets it when asked", () => {
    const kv = memory();
    keep(kv, item("1"));
    keep(kv, item("2"));
    kv.setItem("dancodes.other", "x");
    expect([...kv.data.keys()].filter((k) => k.startsWith(PREFIX)).length).toBe(2);
    expect(loadAll(kv, 0).map((i) => i.id)).toEqual(["1", "2"]);
    drop(kv, "1");
    expect(loadAll(kv, 0).map((i) => i.id)).toEqual(["2"]);
    expect(kept(kv, "1", 0)).toBeNull();
    expect(kept(kv, "2", 0)?.text).toBe("text of 2");
  });

  it("loads in the order sent, whatever the order of the keys", () => {
    const kv = memory();
    for (const id of ["30", "4", "100"]) keep(kv, item(id));
    expect(loadAll(kv, 0).map((i) => i.id)).toEqual(["4", "30", "100"]);
  });

  it("queues again an item a page left mid-step; one that was sending its prompt may be in opencode", () => {
    const kv = memory();
    keep(kv, item("1", { phase: "worktree", key: "draft:1:o/r" }));
    keep(kv, item("2", { phase: "prompt", messageID: "msg_1", nextAt: 99 }));
    keep(kv, item("3", { nextAt: 777 }));
    const back = loadAll(kv, 50);
    expect(back.map((i) => [i.id, i.phase, i.maybeSent, i.nextAt])).toEqual([
      ["1", "queued", false, 50],
      ["2", "queued", true, 50],
      ["3", "queued", false, 777],
    ]);
    expect(back[1].messageID).toBe("msg_1"); // the same id: looked for, never sent twice
  });

  it("keeps an item without its attachments when the phone has no room for them, and says so", () => {
    const photo = (n: number) => ({ filename: "p.jpg", mime: "image/jpeg", url: "data:image/jpeg;base64," + "A".repeat(n), size: n });
    const kv = memory(1_000_000);
    expect(keep(kv, item("1", { files: [photo(500_000)] }))).toBe(true);
    expect(keep(kv, item("2", { files: [photo(600_000)] }))).toBe(true);
    const [one, two] = loadAll(kv, 0);
    expect(one.files.length).toBe(1);
    expect(two).toMatchObject({ files: [], filesLost: 1, text: "text of 2" });
  });

  it("says when the phone keeps nothing", () => {
    expect(keep(memory(10), item("1"))).toBe(false);
    expect(keep(null, item("1"))).toBe(false);
    expect(loadAll(null, 0)).toEqual([]);
  });

  it("reads nothing from what it cannot read", () => {
    for (const raw of [null, "", "{", "{}", '{"x":1}', "null", '{"id":"1","key":"k"}']) expect(decode(raw, 0)).toBeNull();
  });

  it("loads at most MAX_ITEMS, the newest", () => {
    const kv = memory();
    for (let n = 1; n <= MAX_ITEMS + 5; n++) keep(kv, item(String(n)));
    const back = loadAll(kv, 0);
    expect(back.length).toBe(MAX_ITEMS);
    expect(back[0].id).toBe("6");
  });

  it("takes another page's news of an item: its chat, its message id, whether it may be in opencode", () => {
    const photo = { filename: "p.jpg", mime: "image/jpeg", url: "data:image/jpeg;base64,AAAA", size: 4 };
    const mine = item("1", { key: "draft:1:o/r", dir: "", files: [photo] });
    const theirs = item("1", { key: "ses_made", dir: "/wt/made", messageID: "msg_x", maybeSent: true, tries: 2, triedAt: 9, filesLost: 1 });
    const merged = merge(mine, { ...theirs, files: [] });
    expect(merged).toMatchObject({ key: "ses_made", dir: "/wt/made", messageID: "msg_x", maybeSent: true, tries: 2, triedAt: 9 });
    expect(merged.files).toEqual([photo]); // this page still has the photo the phone could not keep
    expect(merge({ ...mine, maybeSent: true, messageID: "msg_y" }, item("1")).messageID).toBe("msg_y");
  });
});
