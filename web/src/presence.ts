// Tells the daemon whether the app is in front, so a chat's news is not pushed to the phone while you are
// looking at it (decided on the server: the service worker must show every push it gets). A beat on every
// visibility change and every 20 s while visible; the daemon forgets a "visible" after ~45 s without one.
import type { Schemas } from "./admin";

export const BEAT_MS = 20_000;

function randomId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function beat(body: Schemas["PresenceRequest"]): void {
  // keepalive: the last beat of a page going away still goes out
  void fetch("/admin/push/presence", {
    method: "POST",
    headers: { "content-type": "application/json" },
    credentials: "same-origin",
    keepalive: true,
    body: JSON.stringify(body),
  }).catch(() => undefined);
}

export function startPresence(): void {
  const client = randomId(); // one per page: two tabs of one phone are two apps
  let timer: ReturnType<typeof setInterval> | undefined;
  const update = () => {
    const visible = document.visibilityState === "visible";
    clearInterval(timer);
    beat({ client, visible });
    if (visible) timer = setInterval(() => beat({ client, visible: true }), BEAT_MS);
  };
  document.addEventListener("visibilitychange", update);
  addEventListener("pagehide", () => beat({ client, visible: false }));
  update();
}
