import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { ApiError, call } from "./api";
import { untilReachable, watchConnectivity } from "./offline";
import { S } from "./store";

const initial = structuredClone(S);
let win: EventTarget & { navigator?: unknown };
let doc: EventTarget & { visibilityState: string };

beforeEach(() => {
  Object.assign(S, structuredClone(initial));
  vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
  vi.stubGlobal("requestAnimationFrame", () => 0);
  win = new EventTarget();
  doc = Object.assign(new EventTarget(), { visibilityState: "visible" });
  vi.stubGlobal("window", win);
  vi.stubGlobal("document", doc);
});

afterEach(() => {
  vi.runAllTimers();
  vi.useRealTimers();
  vi.unstubAllGlobals();
});

const unreachable = () => new ApiError(0, "network error: Failed to fetch");

describe("the offline state", () => {
  it("is set by a request that got no answer and cleared by any answer", async () => {
    vi.stubGlobal("fetch", () => Promise.reject(new TypeError("Failed to fetch")));
    await expect(call("GET", "/admin/chats")).rejects.toMatchObject({ status: 0 });
    expect(S.offline).toBe(true);
    vi.stubGlobal("fetch", () => Promise.resolve(new Response('{"error": "nope"}', { status: 500 })));
    await expect(call("GET", "/admin/chats")).rejects.toMatchObject({ status: 500 });
    expect(S.offline).toBe(false); // an error is still an answer: the server is there
  });

  it("follows the browser's offline event, and starts offline when the browser is", () => {
    vi.stubGlobal("navigator", { onLine: false });
    watchConnectivity();
    expect(S.offline).toBe(true);
    S.offline = false;
    vi.stubGlobal("navigator", { onLine: true });
    watchConnectivity();
    expect(S.offline).toBe(false);
    win.dispatchEvent(new Event("offline"));
    expect(S.offline).toBe(true);
  });
});

describe("a load that must happen", () => {
  it("waits while the server cannot be reached, and tries again, sooner when the network returns", async () => {
    const results: (() => Promise<string>)[] = [
      () => Promise.reject(unreachable()),
      () => Promise.reject(unreachable()),
      () => Promise.resolve("the repos"),
    ];
    let calls = 0;
    const done = untilReachable(() => results[calls++]());
    await vi.advanceTimersByTimeAsync(0);
    expect(calls).toBe(1);
    await vi.advanceTimersByTimeAsync(999);
    expect(calls).toBe(1); // 1 s before the second try
    await vi.advanceTimersByTimeAsync(1);
    expect(calls).toBe(2);
    win.dispatchEvent(new Event("online")); // long before the next 2 s
    await vi.advanceTimersByTimeAsync(0);
    expect(calls).toBe(3);
    await expect(done).resolves.toBe("the repos");
  });

  it("tries again when the phone shows the app again", async () => {
    let calls = 0;
    const done = untilReachable(() => (calls++ ? Promise.resolve(calls) : Promise.reject(unreachable())));
    await vi.advanceTimersByTimeAsync(0);
    doc.visibilityState = "hidden";
    doc.dispatchEvent(new Event("visibilitychange"));
    await vi.advanceTimersByTimeAsync(0);
    expect(calls).toBe(1);
    doc.visibilityState = "visible";
    doc.dispatchEvent(new Event("visibilitychange"));
    await expect(done).resolves.toBe(2);
  });

  it("waits at most 15 s between tries", async () => {
    let calls = 0;
    let back = false;
    const done = untilReachable(() => (calls++, back ? Promise.resolve("back") : Promise.reject(unreachable())));
    await vi.advanceTimersByTimeAsync(1000 + 2000 + 4000 + 8000); // 1, 2, 4, 8 s
    expect(calls).toBe(5);
    await vi.advanceTimersByTimeAsync(14_999);
    expect(calls).toBe(5);
    back = true;
    await vi.advanceTimersByTimeAsync(1);
    expect(calls).toBe(6); // 15 s, not 16
    await expect(done).resolves.toBe("back");
  });

  it("gives up on any other failure at once", async () => {
    let calls = 0;
    const failing = untilReachable(() => (calls++, Promise.reject(new ApiError(403, "refused"))));
    await expect(failing).rejects.toThrow("refused");
    expect(calls).toBe(1);
  });
});
