// Web push on this device: whether it can have it, asking for it (only from a tap), subscribing through the
// service worker, and the daemon's list of subscribed devices. The daemon decides when to push (never while an
// app is visible: presence.ts); the service worker shows every push it gets (iOS revokes silent ones).
import { admin, type Schemas } from "./admin";
import { errText } from "./actions";
import { changed } from "./store";

export type Support = "ok" | "ios-home-screen" | "unsupported";

export interface Environment {
  userAgent: string;
  platform: string;
  maxTouchPoints: number;
  standalone: boolean; // opened from the Home Screen (display-mode: standalone)
  serviceWorker: boolean;
  pushManager: boolean;
  notification: boolean;
}

/** iPhone and iPad deliver pushes only to an app added to the Home Screen (iOS 16.4+); iPadOS says "Mac". */
export function isIOS(env: Pick<Environment, "userAgent" | "platform" | "maxTouchPoints">): boolean {
  return /iPhone|iPad|iPod/.test(env.userAgent) || (env.platform === "MacIntel" && env.maxTouchPoints > 1);
}

export function pushSupport(env: Environment): Support {
  if (isIOS(env) && !env.standalone) return "ios-home-screen";
  return env.serviceWorker && env.pushManager && env.notification ? "ok" : "unsupported";
}

export function environment(): Environment {
  const nav = navigator as Navigator & { standalone?: boolean };
  return {
    userAgent: nav.userAgent,
    platform: nav.platform ?? "",
    maxTouchPoints: nav.maxTouchPoints ?? 0,
    standalone: nav.standalone === true || matchMedia("(display-mode: standalone)").matches,
    serviceWorker: "serviceWorker" in nav,
    pushManager: "PushManager" in window,
    notification: "Notification" in window,
  };
}

/** The applicationServerKey: base64url (the daemon's VAPID public key) to bytes. */
export function keyBytes(b64url: string): Uint8Array<ArrayBuffer> {
  const b64 = b64url.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - (b64url.length % 4)) % 4);
  const raw = atob(b64);
  const out = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
  return out;
}

/** The daemon's id of a subscription: the first 16 hex characters of the SHA-256 of its endpoint. */
export async function subscriptionId(endpoint: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(endpoint));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0"))
    .join("")
    .slice(0, 16);
}

function sameKey(a: ArrayBuffer | null | undefined, b: Uint8Array): boolean {
  if (!a || a.byteLength !== b.length) return false;
  const x = new Uint8Array(a);
  return x.every((v, i) => v === b[i]);
}

export type Device = Schemas["PushSubscriptionInfo"];
export type Result = Schemas["PushResult"];

/** What the notifications panel shows. */
export const P = {
  open: false,
  devices: [] as Device[],
  mine: null as string | null, // this browser's subscription id, when it has one
  results: [] as Result[],
  busy: "",
  message: "",
};

function say(message: string): void {
  P.message = message;
  changed();
}

async function registration(): Promise<ServiceWorkerRegistration> {
  // the app registers /sw.js at start; if it has not (yet), register it here
  const found = await navigator.serviceWorker.getRegistration("/");
  if (!found) await navigator.serviceWorker.register("/sw.js");
  return navigator.serviceWorker.ready;
}

async function currentSubscription(): Promise<PushSubscription | null> {
  if (pushSupport(environment()) !== "ok") return null;
  const reg = await navigator.serviceWorker.getRegistration("/");
  return reg ? reg.pushManager.getSubscription() : null;
}

export async function loadDevices(): Promise<void> {
  try {
    const listed = await admin("get", "/admin/push/subscriptions");
    P.devices = listed.subscriptions;
    const sub = await currentSubscription().catch(() => null);
    P.mine = sub ? await subscriptionId(sub.endpoint) : null;
    if (P.mine && !P.devices.some((d) => d.id === P.mine)) P.mine = null; // deleted elsewhere
  } catch (e) {
    P.message = errText(e);
  }
  changed();
}

export function openPanel(open: boolean): void {
  P.open = open;
  P.message = "";
  P.results = [];
  changed();
  if (open) void loadDevices();
}

async function step(label: string, run: () => Promise<string>): Promise<void> {
  P.busy = label;
  changed();
  try {
    say(await run());
  } catch (e) {
    say(`${label}: ${errText(e)}`);
  } finally {
    P.busy = "";
    await loadDevices();
  }
}

/** Turn notifications on for this device. Call it from a tap: browsers ask for permission only then. */
export function enable(): Promise<void> {
  // asked first, within the tap (Safari refuses a request that comes after other awaits)
  const asked = Notification.requestPermission();
  return step("enable", async () => {
    const permission = await asked;
    if (permission !== "granted") return "notifications are blocked for this site: allow them in the browser's settings";
    const { public_key } = await admin("get", "/admin/push/key");
    const key = keyBytes(public_key);
    const reg = await registration();
    let sub = await reg.pushManager.getSubscription();
    if (sub && !sameKey(sub.options.applicationServerKey, key)) {
      await sub.unsubscribe(); // made for another key: the daemon's key changed
      sub = null;
    }
    sub ??= await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key });
    const json = sub.toJSON();
    if (!json.endpoint || !json.keys?.p256dh || !json.keys?.auth) throw new Error("the browser gave no push keys");
    const saved = await admin("post", "/admin/push/subscriptions", {
      body: { endpoint: json.endpoint, expirationTime: json.expirationTime ?? null, keys: { p256dh: json.keys.p256dh, auth: json.keys.auth } },
    });
    return `notifications on for ${saved.subscription.device}`;
  });
}

/** Forget a device; this device's own subscription is also ended in the browser. */
export function remove(device: Device): Promise<void> {
  return step("delete", async () => {
    if (device.id === P.mine) await (await currentSubscription())?.unsubscribe();
    await admin("delete", "/admin/push/subscriptions/{sub_id}", { path: { sub_id: device.id } });
    return `${device.device}: no more notifications`;
  });
}

export function sendTest(): Promise<void> {
  return step("test", async () => {
    const answer = await admin("post", "/admin/push/test", { body: {} });
    P.results = answer.results;
    if (!answer.results.length) return "no device to send to";
    const ok = answer.results.filter((r) => r.ok).length;
    return `test sent: ${ok} of ${answer.results.length} push services took it`;
  });
}
