import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
import { abort, cloneRepo, errText, focusPrompt, newChat, notify, openPicker, openView, selectChat, selectRepo } from "./actions";
import { prepare } from "./attachments";
import { ChatMenu } from "./ChatMenu";
import { send } from "./delivery";
import { draftKey } from "./drafts";
import { bytes } from "./format";
import { Messages } from "./Messages";
import { Notifications } from "./Notifications";
import { openPanel } from "./push";
import { applyUpdate } from "./pwa";
import { S, changed, chatsOfRepo, currentChat, drafts, isRunning, saved, statusLabel, subscribe, type Chat } from "./store";

function useStore(): void {
  const [, force] = useState(0);
  useEffect(() => {
    const unsubscribe = subscribe(() => force((n) => n + 1));
    force((n) => n + 1); // a change made between the first render and now (the start-up's) is shown too
    return unsubscribe;
  }, []);
}

export function ago(ms: number): string {
  if (!ms) return "";
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86400) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

/** opencode's own web UI for this chat: `/<base64 of the directory>/session/<id>` (its router's scheme). */
function opencodeHref(): string {
  const chat = currentChat();
  const dir = chat?.path ?? S.repos.find((r) => r.repo === S.repo)?.path;
  if (!dir) return "/new"; // opencode answers unknown paths with its UI
  const b64 = btoa(String.fromCharCode(...new TextEncoder().encode(dir)))
    .replace(/\+/g, "-")
    .replace(/\//g, "_")
    .replace(/=+$/, "");
  return chat ? `/${b64}/session/${chat.id}` : `/${b64}/session`;
}

export function App() {
  useStore();
  useSwipe();
  const chat = currentChat();
  return (
    <div class="app">
      <TopBar />
      {S.offline ? (
        <div class="stale" data-testid="offline-banner" role="status">
          offline: the server cannot be reached; trying again
        </div>
      ) : (
        S.stale && (
          <div class="stale" data-testid="stale-banner" role="status">
            reconnecting… what you see may be stale
          </div>
        )
      )}
      {S.update && (
        <button class="update" data-testid="update-banner" onClick={applyUpdate}>
          a new version is ready: tap to reload
        </button>
      )}
      {S.notice && (
        <div class="notice" role="alert" onClick={() => notify("")}>
          {S.notice} <span class="dim">(tap to dismiss)</span>
        </div>
      )}
      <div class="main">
        <Messages chat={chat} />
      </div>
      <InputArea chat={chat} />
      <Sidebar />
      {S.pickerOpen && <RepoPicker />}
      <Notifications />
      <Views />
    </div>
  );
}

let views: typeof import("./Dashboard") | null = null;

/** The dashboard and "why is this chat stuck?": a chunk of their own, fetched the first time one opens. */
function Views() {
  if (!S.view) return null;
  if (!views) {
    // not wrapped in Vite's preloading helper (vite.config.ts noPreload): the chunk has nothing to preload
    import("./Dashboard").then(
      (m) => ((views = m), changed()),
      (e) => ((S.view = null), notify(errText(e))),
    );
    return <div class="picker dim pad">loading…</div>;
  }
  return S.view === "dashboard" ? <views.Dashboard /> : <views.Stuck />;
}

function TopBar() {
  return (
    <header class="top">
      <button
        class="icon"
        data-testid="sidebar-toggle"
        aria-label="chats"
        onClick={() => {
          S.sidebarOpen = !S.sidebarOpen;
          changed();
        }}
      >
        ☰
      </button>
      <button class="repo" data-testid="repo-button" onClick={() => openPicker(!S.pickerOpen)}>
        {S.repo ?? "choose repo"} ▾
      </button>
      <span class="spacer" />
      <a class="oc dim" data-testid="opencode-link" href={opencodeHref()} target="_blank" rel="noopener">
        opencode
      </a>
      <button class="version dim" data-testid="version" aria-label="dashboard" onClick={() => openView("dashboard")}>
        {S.opencodeVersion ? <span data-testid="opencode-version">{S.opencodeVersion}</span> : S.version && `v${S.version}`}
      </button>
      <ChatMenu />
      <button
        class="icon plus"
        data-testid="new-chat"
        aria-label="new chat"
        onClick={() => {
          S.sidebarOpen = false;
          void newChat();
        }}
      >
        +
      </button>
    </header>
  );
}

function ChatItem({ c, showRepo }: { c: Chat; showRepo: boolean }) {
  return (
    <li>
      <button
        class={"chat-item" + (c.id === S.chat ? " current" : "")}
        data-testid="chat-item"
        data-session-id={c.id}
        data-status={c.status}
        data-unread={String(S.unread.has(c.id))}
        title={c.error ?? c.retry?.message}
        onClick={() => {
          selectChat(c.id);
          S.sidebarOpen = false;
          changed();
          focusPrompt();
        }}
      >
        <span class="title">
          {S.unread.has(c.id) && <span class="unread" data-testid="unread" aria-label="unread" />}
          {c.title}
        </span>
        <span class="meta">
          <span class={"status " + c.status}>{statusLabel(c)}</span>
          {showRepo && <span class="dim"> {c.repo}</span>}
          <span class="dim"> {ago(c.updated)}</span>
        </span>
      </button>
    </li>
  );
}

function Sidebar() {
  const mine = chatsOfRepo(S.repo);
  const others = Object.values(S.chats)
    .filter((c) => c.found && c.repo !== S.repo && (isRunning(c) || S.unread.has(c.id)))
    .sort((a, b) => b.created - a.created);
  const close = () => {
    S.sidebarOpen = false;
    changed();
  };
  return (
    <>
      {S.sidebarOpen && <div class="scrim" onClick={close} />}
      <nav class={"sidebar" + (S.sidebarOpen ? " open" : "")} data-testid="sidebar" data-open={String(S.sidebarOpen)}>
        <div class="side-head">
          <span>{S.repo ?? "no repo"}</span>
          <span class="spacer" />
          <button class="icon" data-testid="dashboard-button" aria-label="dashboard" onClick={() => openView("dashboard")}>
            ▤
          </button>
          <button class="icon" data-testid="notifications-button" aria-label="notifications" onClick={() => openPanel(true)}>
            🔔
          </button>
          <button class="icon" onClick={close} aria-label="close">
            ×
          </button>
        </div>
        <button
          class="side-new"
          onClick={() => {
            close();
            void newChat();
          }}
        >
          + new chat
        </button>
        <ul>
          {mine.map((c) => (
            <ChatItem key={c.id} c={c} showRepo={false} />
          ))}
        </ul>
        {mine.length === 0 && <p class="dim pad">no chats in this repo yet</p>}
        {others.length > 0 && (
          <>
            <div class="side-sub dim">running or unread in other repos</div>
            <ul>
              {others.map((c) => (
                <ChatItem key={c.id} c={c} showRepo={true} />
              ))}
            </ul>
          </>
        )}
      </nav>
    </>
  );
}

function RepoPicker() {
  const [name, setName] = useState("");
  const gh = S.github;
  const cloned = new Set(S.repos.map((r) => r.repo));
  const active = S.clones.filter((c) => !cloned.has(c.repo) || c.error);
  return (
    <div class="picker" data-testid="repo-picker">
      <div class="picker-head">
        <span>repos</span>
        {S.repo && (
          <button class="icon" aria-label="close" onClick={() => openPicker(false)}>
            ×
          </button>
        )}
      </div>
      <form
        class="clone-row"
        onSubmit={(e) => {
          e.preventDefault();
          void cloneRepo(name);
          setName("");
        }}
      >
        <input
          data-testid="clone-input"
          placeholder="owner/name"
          autocapitalize="off"
          autocorrect="off"
          spellcheck={false}
          value={name}
          onInput={(e) => setName((e.target as HTMLInputElement).value)}
        />
        <button data-testid="clone-button" type="submit">
          clone
        </button>
      </form>
      {active.map((c) => (
        <div class={"clone-progress" + (c.error ? " err" : "")} data-testid="clone-progress" data-repo={c.repo} key={c.repo}>
          {c.repo}: {c.error ? `failed: ${c.error}` : `${c.phase} ${c.received_objects}/${c.total_objects || "?"} objects, ${bytes(c.received_bytes)}`}
        </div>
      ))}
      <div class="section dim">on disk</div>
      <ul>
        {S.repos.map((r) => (
          <li key={r.repo}>
            <button
              class={"repo-item" + (r.repo === S.repo ? " current" : "")}
              data-testid="repo-item"
              data-repo={r.repo}
              onClick={() => selectRepo(r.repo)}
            >
              <span>{r.repo}</span>
              <span class="dim">
                {r.default_branch} · {chatsOfRepo(r.repo).length} chats
              </span>
            </button>
          </li>
        ))}
      </ul>
      {S.repos.length === 0 && <p class="dim pad">nothing cloned yet</p>}
      <div class="section dim">GitHub</div>
      {!gh && <p class="dim pad">loading…</p>}
      {gh && "error" in gh && <p class="dim pad">{gh.error}</p>}
      {gh && "repos" in gh && (
        <ul>
          {gh.repos
            .filter((g) => !cloned.has(g.full_name))
            .map((g) => (
              <li key={g.full_name}>
                <button
                  class="repo-item"
                  data-testid="repo-item"
                  data-repo={g.full_name}
                  onClick={() => void cloneRepo(g.full_name)}
                >
                  <span>
                    {g.full_name}
                    {g.private ? " 🔒" : ""}
                  </span>
                  <span class="dim">{g.description ?? ""} · clone</span>
                </button>
              </li>
            ))}
        </ul>
      )}
    </div>
  );
}

function InputArea({ chat }: { chat: Chat | null }) {
  const ref = useRef<HTMLTextAreaElement>(null);
  const [, redraw] = useState(0);
  // what is typed is the chat's own draft (drafts.ts): kept per chat and over a reload
  const key = draftKey(S.chat, S.repo);
  const text = drafts.text(key);
  const files = drafts.attachments(key);
  const setText = (t: string) => {
    drafts.setText(key, t);
    redraw((n) => n + 1);
  };
  const setFiles = (f: typeof files) => {
    drafts.setAttachments(key, f);
    redraw((n) => n + 1);
  };
  const busy = isRunning(chat);
  const noRepo = !S.repo;
  const grow = () => {
    const el = ref.current;
    if (!el) return;
    el.style.height = "auto";
    el.style.height = Math.min(el.scrollHeight, window.innerHeight * 0.4) + "px";
  };
  useLayoutEffect(grow, [text]);
  useEffect(() => {
    if (!S.pickerOpen) ref.current?.focus();
  }, []);
  const submit = () => {
    if ((!text.trim() && !files.length) || noRepo) return;
    // into the outbox: it shows in its chat at once, and goes out when it can (delivery.ts); a prompt the
    // server refuses comes back to this chat's draft, wherever the phone is then
    if (!send(text, files)) return;
    setText("");
    setFiles([]);
  };
  const attach = async (list: FileList | null) => {
    for (const file of Array.from(list ?? [])) {
      try {
        const one = await prepare(file);
        drafts.setAttachments(key, [...drafts.attachments(key), one]); // the chat it was attached in
        redraw((n) => n + 1);
      } catch (e) {
        notify(e instanceof Error ? e.message : String(e));
      }
    }
  };
  const ready = !!text.trim() || files.length > 0;
  return (
    <footer class="input">
      {files.length > 0 && (
        <div class="attachments">
          {files.map((f, i) => (
            <span class="attachment" data-testid="attachment" key={f.url}>
              {f.mime.startsWith("image/") ? <img class="thumb" src={f.url} alt={f.filename} /> : f.filename}
              <button aria-label={`remove ${f.filename}`} onClick={() => setFiles(files.filter((_, j) => j !== i))}>
                ×
              </button>
            </span>
          ))}
        </div>
      )}
      <textarea
        ref={ref}
        data-testid="prompt"
        rows={1}
        placeholder={noRepo ? "choose a repo first" : busy ? "busy… (a message is added to the running turn)" : "message"}
        value={text}
        enterkeyhint="enter"
        onInput={(e) => setText((e.target as HTMLTextAreaElement).value)}
        onKeyDown={(e) => {
          // Enter is a newline (a phone has no other way); Ctrl/Cmd+Enter sends
          if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
            e.preventDefault();
            submit();
          }
        }}
      />
      <div class="controls">
        <select
          data-testid="model-picker"
          aria-label="model"
          value={S.model}
          onChange={(e) => {
            S.model = (e.target as HTMLSelectElement).value;
            saved.setModel(S.model);
            changed();
          }}
        >
          {S.models.length === 0 && <option value="">model</option>}
          {S.models.map((m) => (
            <option key={m.label} value={m.label}>
              {m.label}
            </option>
          ))}
        </select>
        <select
          data-testid="mode-picker"
          aria-label="mode"
          value={S.agent}
          onChange={(e) => {
            S.agent = (e.target as HTMLSelectElement).value;
            saved.setAgent(S.agent);
            changed();
          }}
        >
          {(S.agents.length ? S.agents : [S.agent]).map((a) => (
            <option key={a} value={a}>
              {a}
            </option>
          ))}
        </select>
        <label class="attach" aria-label="attach a photo or a text file">
          attach
          <input
            type="file"
            data-testid="attach"
            accept="image/*,text/*,.md,.json,.yaml,.yml,.toml,.csv,.log,.diff,.patch"
            multiple
            hidden
            onChange={(e) => {
              const input = e.target as HTMLInputElement;
              void attach(input.files).finally(() => (input.value = ""));
            }}
          />
        </label>
        <span class="spacer" />
        {busy && (
          <button class="stop" data-testid="stop" onClick={() => void abort()}>
            stop
          </button>
        )}
        {(!busy || ready) && (
          <button class="send" data-testid="send" disabled={noRepo || !ready} onClick={submit}>
            send
          </button>
        )}
      </div>
    </footer>
  );
}

// ---------------------------------------------------------------- swipe: right opens the sidebar, left closes it

function useSwipe(): void {
  useEffect(() => {
    let x0 = 0,
      y0 = 0,
      t0 = 0,
      track = false;
    const selecting = () => {
      const sel = window.getSelection();
      return !!sel && !sel.isCollapsed && sel.toString().length > 0;
    };
    const scrollsSideways = (el: Element | null): boolean => {
      for (; el && el !== document.body; el = el.parentElement) {
        if (el.matches("input, textarea, select")) return true;
        if (el.scrollWidth > el.clientWidth + 2) {
          const ox = getComputedStyle(el).overflowX;
          if (ox === "auto" || ox === "scroll") return true;
        }
      }
      return false;
    };
    const onStart = (e: TouchEvent) => {
      track = false;
      if (e.touches.length !== 1 || S.pickerOpen || selecting()) return;
      if (scrollsSideways(e.target as Element)) return;
      x0 = e.touches[0].clientX;
      y0 = e.touches[0].clientY;
      t0 = Date.now();
      track = true;
    };
    const onEnd = (e: TouchEvent) => {
      if (!track) return;
      track = false;
      // a long press selects text: that is not a swipe
      if (selecting() || Date.now() - t0 > 800) return;
      const t = e.changedTouches[0];
      const dx = t.clientX - x0,
        dy = t.clientY - y0;
      if (Math.abs(dx) < 60 || Math.abs(dy) > Math.abs(dx) * 0.6) return;
      if (dx > 0 && !S.sidebarOpen) S.sidebarOpen = true;
      else if (dx < 0 && S.sidebarOpen) S.sidebarOpen = false;
      else return;
      changed();
    };
    document.addEventListener("touchstart", onStart, { passive: true });
    document.addEventListener("touchend", onEnd, { passive: true });
    return () => {
      document.removeEventListener("touchstart", onStart);
      document.removeEventListener("touchend", onEnd);
    };
  }, []);
}
