// What the service worker (./sw.ts) decides, as plain functions of strings: which requests it answers from its
// cache (the app shell of one build, by an allowlist: never an API or SSE answer), which page it may keep, what a
// push shows and where tapping it leads. Tested in node (policy.test.ts); no worker or DOM types here.

/** The app's page: index.html is served at the root. */
export const PAGE = "/";
/** The worker's script: at the root, so its scope is the whole site. */
export const WORKER = "/sw.js";
/** Caches of the shell are named by build, so a new build never reads an old build's files. */
export const CACHE_PREFIX = "dancodes-shell-";
/** A navigation waits this long for the network before the cached page is shown (the fetch goes on). */
export const NETWORK_TIMEOUT_MS = 4000;

export function cacheName(version: string): string {
  return CACHE_PREFIX + version;
}

/** How the worker answers a request: "page" network first with the cached page as the fallback, "asset" from
 * the cache (a file of this build, named by its content), null not at all (the network's alone). */
export type Route = "page" | "asset" | null;

export function route(url: string, origin: string, method: string, mode: string, shell: ReadonlySet<string>): Route {
  if (method !== "GET") return null;
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return null;
  }
  if (u.origin !== origin) return null;
  // only a navigation to the app's page: /auth/login, opencode's own UI and every API path stay the network's
  if (mode === "navigate") return u.pathname === PAGE ? "page" : null;
  return u.search === "" && u.pathname !== PAGE && shell.has(u.pathname) ? "asset" : null;
}

/** The files of our build a page loads (`/_app/...`), as written in its HTML. */
export function pageAssets(html: string): string[] {
  return [...html.matchAll(/(?:src|href)="(\/_app\/[^"?#]+)"/g)].map((m) => m[1]);
}

/** May the worker keep this page as its offline copy? Only one of its own build: a page of a newer deploy needs
 * files this worker does not have, and would show nothing offline. */
export function pageOfShell(html: string, shell: ReadonlySet<string>): boolean {
  const assets = pageAssets(html);
  return assets.length > 0 && assets.every((a) => shell.has(a));
}

/** Is a page that loads `assets` (its scripts and stylesheets) already running the build of a worker whose shell
 * is `shell`? Then that worker can take over without a reload. */
export function runsBuild(assets: readonly string[], shell: readonly string[]): boolean {
  const files = new Set(shell);
  return assets.length > 0 && assets.every((a) => files.has(a));
}

// ---------------------------------------------------------------- push

/** The push payload the daemon sends (encrypted; the browser decrypts it): `{title, body, tag, url}`. */
export interface PushMessage {
  title: string;
  body: string;
  tag?: string;
  url: string;
}

const MAX_TEXT = 500;

/** A same-origin path to open, else the app's page: a push never sends the phone to another site. */
export function localUrl(value: unknown): string {
  if (typeof value !== "string" || !value.startsWith("/") || value.startsWith("//") || value.includes("\\")) return PAGE;
  return value;
}

/** What a push shows. Always something: the worker must show a notification for every push (iOS revokes the
 * subscription of a worker that shows none), so a payload that is not ours still says what it is. */
export function pushMessage(text: string | null | undefined): PushMessage {
  let data: unknown = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!data || typeof data !== "object" || Array.isArray(data)) {
    return { title: "dancodes", body: (text ?? "").slice(0, MAX_TEXT), url: PAGE };
  }
  const d = data as Record<string, unknown>;
  const str = (v: unknown) => (typeof v === "string" ? v.slice(0, MAX_TEXT) : "");
  const tag = str(d.tag);
  return {
    title: str(d.title) || "dancodes",
    body: str(d.body),
    ...(tag ? { tag } : {}),
    url: localUrl(d.url),
  };
}

/** Which open window a notification's tap goes to: the app's page (not the login page or opencode's own UI),
 * the focused one first, else the first listed (browsers list the most recently focused first); -1: none. */
export function appWindow(windows: readonly { url: string; focused: boolean }[], origin: string): number {
  const isApp = (url: string) => {
    try {
      const u = new URL(url);
      return u.origin === origin && u.pathname === PAGE;
    } catch {
      return false;
    }
  };
  const focused = windows.findIndex((w) => w.focused && isApp(w.url));
  return focused >= 0 ? focused : windows.findIndex((w) => isApp(w.url));
}

// ---------------------------------------------------------------- messages between the page and the worker

/** page -> waiting worker: take over now. */
export const SKIP_WAITING = "skip-waiting";
/** page -> worker: which build are you? answered on the message's port with a `ShellAnswer`. */
export const ASK_SHELL = "shell";
/** worker -> page: show this URL of the app (a notification was tapped). */
export const OPEN = "open";

export interface ShellAnswer {
  version: string;
  shell: string[];
}
