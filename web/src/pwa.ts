// The installed app: the service worker (/sw.js, built from ./sw/sw.ts) registered, the "new version" banner,
// and links into a chat (`/#chat=<id>`: on load, on hashchange, and from a tapped notification, which the
// worker passes to the open window as a message).
import { openLinked } from "./actions";
import { chatOfHash, chatOfUrl } from "./deeplink";
import { S, changed } from "./store";
import { ASK_SHELL, OPEN, SKIP_WAITING, WORKER, runsBuild, type ShellAnswer } from "./sw/policy";

let waiting: ServiceWorker | null = null;
let reloadOnChange = false;

export function startWorker(): void {
  window.addEventListener("hashchange", () => {
    const id = chatOfHash(location.hash);
    if (id) void openLinked(id);
  });
  if (!("serviceWorker" in navigator)) return; // an http origin other than localhost: no worker, the app works
  const container = navigator.serviceWorker;
  container.addEventListener("message", (event: MessageEvent) => {
    const data = event.data as { type?: string; url?: unknown } | null;
    if (data?.type !== OPEN || typeof data.url !== "string") return;
    const id = chatOfUrl(data.url, location.origin);
    if (id) void openLinked(id);
    else location.assign(data.url);
  });
  container.startMessages();
  container.addEventListener("controllerchange", () => {
    if (reloadOnChange) location.reload(); // the user asked for the new version
  });
  container
    .register(WORKER, { scope: "/", updateViaCache: "none" })
    .then((registration) => {
      // a worker installed while another controls the page is a new version, waiting; the browser may have
      // found it (on this very load) before this ran
      const track = (worker: ServiceWorker | null) => {
        if (!worker) return;
        const installed = () => worker.state === "installed" && container.controller !== null;
        if (installed()) void offer(worker);
        else worker.addEventListener("statechange", () => installed() && void offer(worker));
      };
      track(registration.waiting);
      track(registration.installing);
      registration.addEventListener("updatefound", () => track(registration.installing));
      // an installed app stays open for days: look for a deploy whenever it is shown again
      document.addEventListener("visibilitychange", () => {
        if (document.visibilityState === "visible") void registration.update().catch(() => undefined);
      });
    })
    .catch((e: unknown) => console.warn("service worker not registered:", e));
}

/** The files of our build this page runs. */
function runningAssets(): string[] {
  return [...document.querySelectorAll<HTMLScriptElement | HTMLLinkElement>('script[src^="/_app/"], link[rel=stylesheet][href^="/_app/"]')].map(
    (e) => e.getAttribute(e instanceof HTMLScriptElement ? "src" : "href") ?? "",
  );
}

/** A new worker waits: if this page already runs its build (loaded from the network after the deploy) it takes
 * over quietly, else the banner offers the reload. */
async function offer(worker: ServiceWorker): Promise<void> {
  const answer = await ask(worker);
  if (answer && runsBuild(runningAssets(), answer.shell)) {
    worker.postMessage({ type: SKIP_WAITING });
    return;
  }
  waiting = worker;
  S.update = true;
  changed();
}

function ask(worker: ServiceWorker): Promise<ShellAnswer | null> {
  return new Promise((resolve) => {
    const channel = new MessageChannel();
    const timer = setTimeout(() => resolve(null), 3000);
    channel.port1.onmessage = (event: MessageEvent) => {
      clearTimeout(timer);
      resolve(event.data as ShellAnswer);
    };
    worker.postMessage({ type: ASK_SHELL }, [channel.port2]);
  });
}

/** The banner's tap: the waiting worker takes over, then the page reloads with the new version. */
export function applyUpdate(): void {
  if (!waiting) return;
  if (waiting.state === "redundant") {
    location.reload(); // a newer one came since: the reload installs that
    return;
  }
  reloadOnChange = true;
  waiting.postMessage({ type: SKIP_WAITING });
}
