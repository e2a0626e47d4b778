import { describe, expect, it } from "vitest";
import type { Message } from "./api";
import {
  backoff,
  deserialize,
  giveUp,
  load,
  MAX_ITEMS,
  messageId,
  nextDue,
  nextWake,
  rekey,
  requeue,
  save,
  serialize,
  stillShown,
  unreachable,
  type KV,
  type Outgoing,
} from "./outbox";

function item(id: string, over: Partial<Outgoing> = {}): Outgoing {
  return {
    id,
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

function memory(): KV & { data: Map<string, string> } {
  const data = new Map<string, string>();
  return {
    data,
    getItem: (k) => data.get(k) ?? null,
    setItem: (k, v) => void data.set(k, v),
    removeItem: (k) => void data.delete(k),
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
  it("keeps what is not sent yet, and nothing when nothing waits", () => {
    const kv = memory();
    save(kv, [item("1"), item("2", { phase: "sent" })]);
    expect(load(kv, 0).map((i) => i.id)).toEqual(["1"]);
    save(kv, [item("2", { phase: "sent" })]);
    expect(kv.data.size).toBe(0);
  });

  it("queues again an item a page left mid-step; one that was sending its prompt may be in opencode", () => {
    const raw = serialize([
      item("1", { phase: "worktree", key: "draft:1:o/r" }),
      item("2", { phase: "prompt", messageID: "msg_1", nextAt: 99 }),
      item("3", { nextAt: 777 }),
    ]);
    const back = deserialize(raw, 50);
    expect(back.map((i) => [i.id, i.phase, i.maybeSent, i.nextAt])).toEqual([
      ["1", "queued", false, 50],
      ["2", "queued", true, 50],
      ["3", "queued", false, 777],
    ]);
    expect(back[1].messageID).toBe("msg_1"); // the same id: looked for, never sent twice
  });

  it("keeps attachments while they fit, and says which items lost theirs", () => {
    const photo = (n: number) => ({ filename: "p.jpg", mime: "image/jpeg", url: "data:image/jpeg;base64," + "A".repeat(n), size: n });
    const back = deserialize(serialize([item("1", { files: [photo(1_500_000)] }), item("2", { files: [photo(1_000_000)] })]), 0);
    expect(back[0].files.length).toBe(1);
    expect(back[1]).toMatchObject({ files: [], filesLost: 1 });
  });

  it("reads nothing from what it cannot read", () => {
    for (const raw of [null, "", "{", "{}", '[{"x":1}]', "[null]"]) expect(deserialize(raw, 0)).toEqual([]);
    const full: KV = { getItem: () => null, setItem: () => { throw new Error("QuotaExceededError"); }, removeItem: () => undefined };
    expect(save(full, [item("1")])).toBe(false);
    expect(save(null, [item("1")])).toBe(false);
  });

  it("keeps at most MAX_ITEMS, the newest", () => {
    const many = Array.from({ length: MAX_ITEMS + 5 }, (_, n) => item(String(n)));
    const back = deserialize(JSON.stringify(many), 0);
    expect(back.length).toBe(MAX_ITEMS);
    expect(back[0].id).toBe("5");
  });
});
