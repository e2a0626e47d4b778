// What the dashboard and "why is this chat stuck?" show, decided apart from how it is drawn: durations, a
// service's memory against its limits, and the findings for a chat (the daemon's diagnosis plus this page's own
// stream). Only the lazily loaded views import this file.
import type { Schemas } from "./admin";

export type Service = Schemas["ServiceInfo"];
export type Diagnosis = Schemas["ChatDiagnosis"];

/** This page's live stream (events.ts): open, and when it last heard anything. */
export interface PageStream {
  connected: boolean;
  lastEvent: number; // ms, 0: never
  retries: number; // failed connects in a row
}

export interface Finding {
  level: "ok" | "warn" | "bad";
  text: string;
}

/** 42 s, 5m 3s, 2h 5m, 3d 4h: the two largest units. */
export function duration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "–";
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s}s`;
  const units: [number, string][] = [
    [86400, "d"],
    [3600, "h"],
    [60, "m"],
    [1, "s"],
  ];
  const i = units.findIndex(([n]) => s >= n);
  const [big, bigName] = units[i];
  const [small, smallName] = units[i + 1];
  const rest = Math.floor((s % big) / small);
  return `${Math.floor(s / big)}${bigName}${rest ? ` ${rest}${smallName}` : ""}`;
}

/** `at` (epoch seconds) as "12s ago" against `now` (epoch seconds); "never" for none. */
export function ago(at: number | null | undefined, now: number): string {
  if (!at) return "never";
  return `${duration(now - at)} ago`;
}

/** A service's memory as the daemon reports it (`memory_mb` and its limits), when it does: older daemons say
 * nothing of it, so each field is read only when it is there and of the right type. */
export interface Memory {
  mb: number | null; // the RSS of its whole process tree; null: not measured
  limit: number | null;
  hard: number | null;
  restarts: number;
  note: string | null;
}

export function memoryOf(service: Service): Memory {
  return {
    mb: service.memory_mb,
    limit: service.memory_limit_mb,
    hard: service.memory_hard_limit_mb,
    restarts: service.memory_restarts,
    note: service.memory_note || null,
  };
}

/** "312 MB of 700 MB (hard 900 MB), 1 memory restart". */
export function memoryLine(mem: Memory): string {
  const used = mem.mb === null ? "not measured" : `${Math.round(mem.mb)} MB`;
  const limit = mem.limit === null ? "" : ` of ${mem.limit} MB`;
  const hard = mem.hard === null ? "" : ` (hard ${mem.hard} MB)`;
  const restarts = mem.restarts ? `, ${mem.restarts} memory restart${mem.restarts === 1 ? "" : "s"}` : "";
  return `${used}${limit}${hard}${restarts}`;
}

/** A turn that has heard nothing for this long may be wedged (a tool call can be this slow, a reply rarely). */
export const QUIET_SECONDS = 120;
/** The page's stream sends something at least every 10 s (a heartbeat): past this it may be dead. */
export const STREAM_QUIET_MS = 25_000;

/** What is worth saying about a chat, worst first: the page's stream, the daemon's view of opencode, opencode
 * itself, then the chat's own state. `now` is the daemon's clock (seconds), `pageNow` the page's (ms). */
export function findings(d: Diagnosis, page: PageStream, pageNow: number): Finding[] {
  const out: Finding[] = [];
  const chat = d.chat;
  if (!page.connected) {
    out.push({ level: "bad", text: `this page's live stream is reconnecting (${page.retries} tries): what it shows may be stale` });
  } else if (page.lastEvent && pageNow - page.lastEvent > STREAM_QUIET_MS) {
    out.push({ level: "warn", text: `this page heard nothing for ${duration((pageNow - page.lastEvent) / 1000)}: its stream may be dead` });
  }
  if (!d.following) out.push({ level: "bad", text: "the daemon is not following opencode's events: the status may be stale" });
  const oc = d.opencode;
  if (oc && (oc.state !== "running" || oc.healthy === false)) {
    out.push({ level: "bad", text: `opencode is ${oc.state}${oc.reason ? `: ${oc.reason}` : ""}` });
  }
  const mem = oc ? memoryOf(oc) : null;
  if (mem?.mb != null && mem.limit != null && mem.mb > mem.limit) {
    out.push({ level: "warn", text: `opencode is over its memory limit (${Math.round(mem.mb)} of ${mem.limit} MB)` });
  }
  if (mem?.note) out.push({ level: "warn", text: mem.note });
  const quiet = d.now - (d.last_event?.at ?? chat.since);
  switch (chat.status) {
    case "retry":
      out.push({
        level: "warn",
        text: `the provider failed, retrying (attempt ${chat.retry?.attempt ?? "?"}): ${chat.retry?.message ?? "no message"}`,
      });
      break;
    case "waiting":
      out.push({ level: "warn", text: `waiting for you: the agent asks ${chat.waiting === "question" ? "a question" : "a permission"}` });
      break;
    case "error":
      out.push({ level: "bad", text: `the last turn failed: ${chat.error ?? "no message"}` });
      break;
    case "interrupted":
      out.push({ level: "bad", text: `the last turn was cut: ${chat.interrupted ?? "opencode went away"}; continue it from the chat` });
      break;
    case "busy":
      if (d.instance.state === "disposed") out.push({ level: "bad", text: "busy, but its opencode instance was disposed" });
      else if (quiet > QUIET_SECONDS)
        out.push({ level: "warn", text: `busy, but nothing heard of it for ${duration(quiet)}: a slow tool, or a stuck turn (stop it and send again)` });
      else out.push({ level: "ok", text: "busy: it is working" });
      break;
    default:
      out.push({ level: "ok", text: "idle: no turn is running" });
  }
  const rank = { bad: 0, warn: 1, ok: 2 };
  return out.sort((a, b) => rank[a.level] - rank[b.level]);
}
