/// <reference lib="webworker" />
// The service worker, served at /sw.js (outside the login wall: browsers fetch it without the cookie). Built by
// vite.config.ts (`serviceWorker`), which fills in the build's files and version; a new build is a new worker.
//
// - The app shell of this build (the page and its /_app/ files) is kept in a cache of its own, so the app opens
//   at once and offline. Nothing else is ever cached (an allowlist: opencode's API and streams, /admin, /auth
//   pass untouched). The page is network first, so an expired login still lands on the login page, and a deploy
//   shows at once; the cached page is the fallback when the network fails, is slow, or answers 5xx.
// - A new worker waits until the page asks it to take over ("reload for the new version"), or takes over quietly
//   when the page already runs its build.
// - Every push shows a notification (never suppressed here: the daemon decides whether to push); tapping it
//   brings the app to that chat.
import {
  ASK_SHELL,
  NETWORK_TIMEOUT_MS,
  OPEN,
  PAGE,
  SKIP_WAITING,
  CACHE_PREFIX,
  appWindow,
  cacheName,
  localUrl,
  pageOfShell,
  pushMessage,
  route,
  type ShellAnswer,
} from "./policy";

declare const self: ServiceWorkerGlobalScope;
declare const __DANCODES_SHELL__: string[];
declare const __DANCODES_VERSION__: string;

const VERSION = __DANCODES_VERSION__;
const SHELL = new Set(__DANCODES_SHELL__);
const CACHE = cacheName(VERSION);

self.addEventListener("install", (event) => {
  event.waitUntil(install());
});

/** Every file of the shell, and the page, or nothing: a worker that cannot show the app offline does not install
 * (the browser tries again on a later visit). */
async function install(): Promise<void> {
  const cache = await caches.open(CACHE);
  try {
    await cache.addAll([...SHELL].map((path) => new Request(path, { cache: "reload" })));
    const page = await fetch(new Request(PAGE, { cache: "reload" }));
    if (!(await keepPage(cache, page))) throw new Error(`the page is not of build ${VERSION} (HTTP ${page.status})`);
  } catch (e) {
    await caches.delete(CACHE); // no half-filled cache is left behind
    throw e;
  }
}

/** Keep a copy of the page when it is a page of this build; true if kept. */
async function keepPage(cache: Cache, response: Response): Promise<boolean> {
  const html = response.headers.get("content-type")?.startsWith("text/html");
  if (response.status !== 200 || response.type !== "basic" || response.redirected || !html) return false;
  if (!pageOfShell(await response.clone().text(), SHELL)) return false;
  await cache.put(PAGE, response);
  return true;
}

self.addEventListener("activate", (event) => {
  event.waitUntil(
    (async () => {
      for (const name of await caches.keys()) {
        if (name.startsWith(CACHE_PREFIX) && name !== CACHE) await caches.delete(name);
      }
      await self.clients.claim(); // the page that installed us is controlled without a reload
    })(),
  );
});

self.addEventListener("fetch", (event) => {
  const { request } = event;
  const how = route(request.url, self.location.origin, request.method, request.mode, SHELL);
  if (how === "page") event.respondWith(page(event));
  else if (how === "asset") event.respondWith(asset(request));
  // anything else: not intercepted, straight to the network, never cached
});

async function page(event: FetchEvent): Promise<Response> {
  let kept: Promise<unknown> = Promise.resolve();
  const network = fetch(event.request).then((response) => {
    // copied before anyone reads it; kept even when the cached page answered first
    if (response.status === 200) {
      const copy = response.clone();
      kept = caches.open(CACHE).then((cache) => keepPage(cache, copy)).catch(() => false);
    }
    return response;
  });
  event.waitUntil(network.then(() => kept, () => undefined));
  let timer: ReturnType<typeof setTimeout> | undefined;
  const slow = new Promise<"slow">((resolve) => (timer = setTimeout(() => resolve("slow"), NETWORK_TIMEOUT_MS)));
  try {
    const first = await Promise.race([network, slow]);
    if (first !== "slow" && first.status < 500) return first; // a redirect to the login page included
    const cached = await caches.match(PAGE, { cacheName: CACHE });
    if (cached) return cached;
    return first === "slow" ? await network : first;
  } catch {
    const cached = await caches.match(PAGE, { cacheName: CACHE });
    if (cached) return cached; // offline: the app starts and says so
    throw new Error("offline, and no copy of the app kept");
  } finally {
    clearTimeout(timer);
  }
}

async function asset(request: Request): Promise<Response> {
  const cache = await caches.open(CACHE);
  const cached = await cache.match(request);
  if (cached) return cached;
  const response = await fetch(request);
  if (response.status === 200 && response.type === "basic") await cache.put(request, response.clone());
  return response;
}

self.addEventListener("message", (event) => {
  const data = event.data as { type?: string } | null;
  if (data?.type === SKIP_WAITING) void self.skipWaiting();
  else if (data?.type === ASK_SHELL) {
    const answer: ShellAnswer = { version: VERSION, shell: [...SHELL] };
    event.ports[0]?.postMessage(answer);
  }
});

self.addEventListener("push", (event) => {
  const message = pushMessage(event.data?.text());
  event.waitUntil(
    self.registration.showNotification(message.title, {
      body: message.body,
      tag: message.tag,
      data: { url: message.url },
      icon: "/_app/icon-192.png",
      // a later push of the same chat replaces the earlier one, and still tells
      ...(message.tag ? { renotify: true } : {}),
    } as NotificationOptions),
  );
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const data = event.notification.data as { url?: unknown } | null;
  const url = new URL(localUrl(data?.url), self.location.origin).href;
  event.waitUntil(openApp(url));
});

/** Bring the app to `url`: an open app window is focused and told to show it (no reload: what the phone keeps
 * in memory stays), else a new window opens there. */
async function openApp(url: string): Promise<void> {
  const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
  const found = windows[appWindow(windows, self.location.origin)];
  if (!found) {
    await self.clients.openWindow(url);
    return;
  }
  found.postMessage({ type: OPEN, url });
  await found.focus().catch(() => undefined); // refused without the tap's user activation; the message is sent
}
