// The daemon's /admin API, typed from the OpenAPI spec it serves: web/src/generated/admin.ts is made from
// that spec by scripts/build-web.sh (openapi-typescript), so a path, its parameters, its body and its answer
// are checked by tsc against the Python that serves them. Nothing here is written by hand but the plumbing.
import { call } from "./api";
import type { components, paths } from "./generated/admin";

export type Schemas = components["schemas"];

type Method = "get" | "post" | "put" | "patch" | "delete";
/** The paths that have an operation for `M`. */
type PathsFor<M extends Method> = { [P in keyof paths]: paths[P][M] extends undefined ? never : P }[keyof paths];
type Operation<P extends keyof paths, M extends Method> = NonNullable<paths[P][M]>;

type JsonOf<R> = R extends { content: { "application/json": infer J } } ? J : never;
/** What a call answers when it succeeds (a 2xx), as JSON. */
export type Answer<O> = O extends { responses: infer R } ? JsonOf<R[Extract<keyof R, 200 | 201 | 202>]> : never;
type BodyOf<O> = O extends { requestBody: { content: { "application/json": infer B } } } ? B : undefined;
type PathOf<O> = O extends { parameters: { path: infer Q } } ? Q : undefined;
type QueryOf<O> = O extends { parameters: { query?: infer Q } } ? Q : undefined;

/** Path parameters and a body are required exactly when the operation has them. */
type Args<O> = (PathOf<O> extends undefined ? { path?: undefined } : { path: PathOf<O> }) &
  (BodyOf<O> extends undefined ? { body?: undefined } : { body: BodyOf<O> }) & { query?: QueryOf<O> };
type ArgList<O> = object extends Args<O> ? [args?: Args<O>] : [args: Args<O>];

/** `admin("get", "/admin/worktrees/{owner}/{name}/{session_id}/diff", { path: {...} })`. */
export function admin<M extends Method, P extends PathsFor<M>>(
  method: M,
  path: P,
  ...[args]: ArgList<Operation<P, M>>
): Promise<Answer<Operation<P, M>>> {
  const values = (args?.path ?? {}) as Record<string, string>;
  let url: string = path.replace(/\{(\w+)\}/g, (_, key: string) => encodeURIComponent(values[key]));
  const query = Object.entries((args?.query ?? {}) as Record<string, unknown>).filter(([, v]) => v !== undefined);
  if (query.length) url += "?" + new URLSearchParams(query.map(([k, v]) => [k, String(v)]));
  return call(method.toUpperCase(), url, { body: args?.body });
}

/** The path parameters of a chat's worktree, from its repo ("owner/name") and session id. */
export function worktreeOf(chat: { repo: string; id: string }): { owner: string; name: string; session_id: string } {
  const [owner, name] = chat.repo.split("/");
  return { owner, name, session_id: chat.id };
}
