// Whether the server can be reached: S.offline is set by a request that failed for want of a network (or by the
// browser's "offline" event) and cleared by any answer at all. The app says so (the offline banner) and keeps
// what it shows; loads that must happen (the start-up lists) wait for the network and try again.
import { isUnreachable } from "./api";
import { setReachable } from "./store";

export function watchConnectivity(): void {
  if (!navigator.onLine) setReachable(false);
  window.addEventListener("offline", () => setReachable(false));
}

/** Resolves on the next sign the network may be back (the "online" event, the page shown again), or after `ms`. */
function nextChance(ms: number): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      window.removeEventListener("online", done);
      document.removeEventListener("visibilitychange", shown);
      resolve();
    };
    const shown = () => {
      if (document.visibilityState === "visible") done();
    };
    const timer = setTimeout(done, ms);
    window.addEventListener("online", done);
    document.addEventListener("visibilitychange", shown);
  });
}

/** `load()` until it gets an answer: while the server cannot be reached it waits for a chance (1 s, doubling to
 * 15 s, or sooner when the network returns) and tries again. Any other failure is thrown. */
export async function untilReachable<T>(load: () => Promise<T>): Promise<T> {
  for (let wait = 1000; ; wait = Math.min(wait * 2, 15_000)) {
    try {
      return await load();
    } catch (e) {
      if (!isUnreachable(e)) throw e;
      await nextChance(wait);
    }
  }
}
