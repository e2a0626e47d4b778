import { describe, expect, it } from "vitest";
import { chatLink, chatOfHash, chatOfUrl } from "../deeplink";
import { appWindow, cacheName, localUrl, pageOfShell, pushMessage, route, runsBuild, CACHE_PREFIX } from "./policy";

const ORIGIN = "https://dan.example";
const SHELL = new Set(["/_app/index-AAA.js", "/_app/index-BBB.css", "/_app/manifest.webmanifest", "/_app/icon-192.png"]);
const at = (path: string) => ORIGIN + path;

describe("what the worker answers from its cache", () => {
  it("answers a navigation to the app's page, network first", () => {
    expect(route(at("/"), ORIGIN, "GET", "navigate", SHELL)).toBe("page");
    expect(route(at("/?x=1"), ORIGIN, "GET", "navigate", SHELL)).toBe("page");
  });

  it("answers the files of its build from the cache", () => {
    expect(route(at("/_app/index-AAA.js"), ORIGIN, "GET", "cors", SHELL)).toBe("asset");
    expect(route(at("/_app/icon-192.png"), ORIGIN, "GET", "no-cors", SHELL)).toBe("asset");
  });

  it.each([
    ["opencode's API", "/session", "cors"],
    ["opencode's event stream", "/event?directory=%2Fw", "cors"],
    ["the global stream", "/global/event", "cors"],
    ["the admin API", "/admin/chats", "cors"],
    ["the login", "/auth/login", "cors"],
    ["another build's file", "/_app/index-OLD.js", "cors"],
    ["a shell file with a query", "/_app/index-AAA.js?v=2", "cors"],
    ["opencode's own UI files", "/assets/index-x.js", "cors"],
    ["the page fetched by script", "/", "cors"],
    ["the worker itself", "/sw.js", "same-origin"],
  ])("never %s", (_what, path, mode) => {
    expect(route(at(path), ORIGIN, "GET", mode, SHELL)).toBeNull();
  });

  it.each([
    ["the login page", "/auth/login?next=/"],
    ["opencode's own UI", "/L3dvcmsvYQ/session/ses_1"],
    ["the admin docs", "/admin/docs"],
  ])("leaves a navigation to %s to the network", (_what, path) => {
    expect(route(at(path), ORIGIN, "GET", "navigate", SHELL)).toBeNull();
  });

  it("leaves other methods and other origins alone", () => {
    expect(route(at("/_app/index-AAA.js"), ORIGIN, "POST", "cors", SHELL)).toBeNull();
    expect(route("https://other.example/_app/index-AAA.js", ORIGIN, "GET", "cors", SHELL)).toBeNull();
    expect(route("https://other.example/", ORIGIN, "GET", "navigate", SHELL)).toBeNull();
    expect(route("not a url", ORIGIN, "GET", "cors", SHELL)).toBeNull();
  });

  it("names each build's cache apart", () => {
    expect(cacheName("abc")).toBe(CACHE_PREFIX + "abc");
    expect(cacheName("abc")).not.toBe(cacheName("abd"));
  });
});

const PAGE = `<!doctype html><html><head>
<script type="module" crossorigin src="/_app/index-AAA.js"></script>
<link rel="stylesheet" crossorigin href="/_app/index-BBB.css">
<link rel="manifest" href="/_app/manifest.webmanifest" /></head></html>`;

describe("the page kept for offline", () => {
  it("is kept when it is of the worker's build", () => {
    expect(pageOfShell(PAGE, SHELL)).toBe(true);
  });

  it("is not kept when it is of another build (a deploy since), or not the app at all", () => {
    expect(pageOfShell(PAGE.replace("index-AAA", "index-NEW"), SHELL)).toBe(false);
    expect(pageOfShell('<html><form action="/auth/login"></form></html>', SHELL)).toBe(false);
    expect(pageOfShell('{"error": "not signed in"}', SHELL)).toBe(false);
  });
});

describe("a new version", () => {
  const shell = [...SHELL];
  it("takes over quietly when the page already runs its build", () => {
    expect(runsBuild(["/_app/index-AAA.js", "/_app/index-BBB.css"], shell)).toBe(true);
  });

  it("is offered when the page runs another build", () => {
    expect(runsBuild(["/_app/index-OLD.js", "/_app/index-BBB.css"], shell)).toBe(false);
    expect(runsBuild([], shell)).toBe(false);
  });
});

describe("a push", () => {
  it("shows the daemon's payload", () => {
    const m = pushMessage(JSON.stringify({ title: "fix the tests", body: "done", tag: "ses_1", url: "/#chat=ses_1" }));
    expect(m).toEqual({ title: "fix the tests", body: "done", tag: "ses_1", url: "/#chat=ses_1" });
  });

  it.each([
    ["no payload", null],
    ["an empty payload", ""],
    ["text that is not JSON", "hello"],
    ["a JSON list", "[1, 2]"],
    ["JSON of other types", JSON.stringify({ title: 5, body: { x: 1 }, tag: [], url: 7 })],
  ])("always shows something, even for %s", (_what, text) => {
    const m = pushMessage(text);
    expect(m.title).toBe("dancodes");
    expect(typeof m.body).toBe("string");
    expect(m.url).toBe("/");
    expect(m.tag).toBeUndefined();
  });

  it("keeps the text of a payload that is not JSON, cut short", () => {
    expect(pushMessage("hello").body).toBe("hello");
    expect(pushMessage("x".repeat(2000)).body.length).toBe(500);
  });

  it.each(["https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:alert(1)", ""])(
    "never leads off the site: %s",
    (url) => {
      expect(pushMessage(JSON.stringify({ title: "t", url })).url).toBe("/");
      expect(localUrl(url)).toBe("/");
    },
  );
});

describe("a tapped notification", () => {
  const w = (url: string, focused = false) => ({ url, focused });

  it("goes to the app's window, the focused one first", () => {
    expect(appWindow([w(at("/")), w(at("/#chat=a"), true)], ORIGIN)).toBe(1);
    expect(appWindow([w(at("/?x")), w(at("/"))], ORIGIN)).toBe(0);
  });

  it("never to the login page, opencode's own UI or another site; none: a new window", () => {
    expect(appWindow([w(at("/auth/login"), true), w(at("/L3dvcms/session/s")), w("https://x.example/", true)], ORIGIN)).toBe(-1);
    expect(appWindow([w(at("/auth/login"), true), w(at("/"))], ORIGIN)).toBe(1);
    expect(appWindow([], ORIGIN)).toBe(-1);
  });
});

describe("links to a chat", () => {
  it("name the chat", () => {
    expect(chatOfHash("#chat=ses_01J-x")).toBe("ses_01J-x");
    expect(chatOfHash(new URL(chatLink("ses_1"), ORIGIN).hash)).toBe("ses_1");
    expect(chatOfUrl("/#chat=ses_1", ORIGIN)).toBe("ses_1");
    expect(chatOfUrl(at("/#chat=ses_1"), ORIGIN)).toBe("ses_1");
  });

  it.each(["", "#", "#chat=", "#chat=-x", "#chat=a/b", "#chat=a&x=1", "#other=ses_1", `#chat=${"a".repeat(65)}`])(
    "are refused when malformed: %s",
    (hash) => {
      expect(chatOfHash(hash)).toBeNull();
    },
  );

  it("only of this app", () => {
    expect(chatOfUrl("https://other.example/#chat=ses_1", ORIGIN)).toBeNull();
    expect(chatOfUrl("/auth/login#chat=ses_1", ORIGIN)).toBeNull();
  });
});
