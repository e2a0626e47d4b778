// HTTP helpers and the shapes of what opencode and the daemon answer (only the fields we use).
import type { Schemas } from "./admin";
import { setReachable } from "./store";

/** A request that failed: `status` 0 when it reached no server; `answered` when the server that failed it
 * said why (a JSON body), as opposed to a gateway's bare 502/503/504 for a service it cannot reach. */
export class ApiError extends Error {
  constructor(
    public status: number,
    message: string,
    public answered = false,
  ) {
    super(message);
  }
}

/** A request that never got an answer (no network, the server down or unreachable): status 0. */
export function isUnreachable(e: unknown): boolean {
  return e instanceof ApiError && e.status === 0;
}

// The daemon's own answers: generated from its OpenAPI spec (./admin.ts).
export type Repo = Schemas["RepoInfo"];
export type Clone = Schemas["CloneStatus"];
export type GithubRepo = Schemas["GitHubRepoInfo"];
export type Worktree = Schemas["WorktreeInfo"];
export type FileChange = Schemas["FileChange"];
export type WorktreeDiff = Schemas["WorktreeDiff"];

// opencode's answers (only the fields we use)
export interface SessionInfo {
  id: string;
  title: string;
  directory: string;
  time: { created: number; updated: number };
}

export interface MessageError {
  name: string;
  data?: { message?: string };
}

export interface MessageInfo {
  id: string;
  sessionID: string;
  role: "user" | "assistant";
  time: { created: number; completed?: number };
  error?: MessageError;
  parentID?: string; // an assistant message: the user message it answers
  agent?: string;
  modelID?: string;
  providerID?: string;
}

export interface ToolState {
  status: "pending" | "running" | "completed" | "error";
  input?: Record<string, unknown>;
  output?: string;
  error?: string;
  title?: string;
  metadata?: Record<string, unknown>;
}

export interface Part {
  id: string;
  sessionID: string;
  messageID: string;
  type: string;
  text?: string;
  tool?: string;
  callID?: string;
  state?: ToolState;
  filename?: string;
  mime?: string;
  url?: string;
  files?: string[];
}

export interface Message {
  info: MessageInfo;
  parts: Part[];
}

export type StatusMap = Record<string, { type: "busy" | "idle" | "retry"; message?: string }>;

export interface ProviderModel {
  id: string;
  name?: string;
}

export interface Provider {
  id: string;
  name?: string;
  models: Record<string, ProviderModel>;
}

export interface Agent {
  name: string;
  mode?: string;
  hidden?: boolean;
}

/** `timeout` (ms) gives up on a request that hangs (a connection that died without a word): it then fails
 * like a network error (status 0). */
export async function call<T>(
  method: string,
  url: string,
  opts: { body?: unknown; dir?: string; timeout?: number } = {},
): Promise<T> {
  const headers: Record<string, string> = { accept: "application/json" };
  if (opts.body !== undefined) headers["content-type"] = "application/json";
  if (opts.dir) headers["x-opencode-directory"] = encodeURIComponent(opts.dir);
  let res: Response;
  try {
    res = await fetch(url, {
      method,
      headers,
      credentials: "same-origin",
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
      signal: opts.timeout && AbortSignal.timeout ? AbortSignal.timeout(opts.timeout) : undefined,
    });
  } catch (e) {
    setReachable(false);
    throw new ApiError(0, `network error: ${(e as Error).message}`);
  }
  setReachable(true);
  if (res.status === 401) {
    // the login cookie is gone: back to the login page, then here
    location.href = "/auth/login?next=" + encodeURIComponent(location.pathname);
    throw new ApiError(401, "not logged in");
  }
  const text = await res.text();
  let data: unknown = undefined;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = undefined;
    }
  }
  if (!res.ok) {
    const d = data as { error?: unknown; message?: unknown; data?: { message?: unknown } } | undefined;
    const msg =
      (typeof d?.error === "string" && d.error) ||
      (typeof d?.message === "string" && d.message) ||
      (typeof d?.data?.message === "string" && d.data.message) ||
      `${method} ${url.split("?")[0]}: HTTP ${res.status}`;
    throw new ApiError(res.status, msg, data !== undefined);
  }
  return data as T;
}

export const api = {
  get: <T>(url: string, dir?: string) => call<T>("GET", url, { dir }),
  post: <T>(url: string, body: unknown, dir?: string) => call<T>("POST", url, { body, dir }),
  patch: <T>(url: string, body: unknown, dir?: string) => call<T>("PATCH", url, { body, dir }),
  del: <T>(url: string, dir?: string) => call<T>("DELETE", url, { dir }),
};
