import { memo } from "preact/compat";
import { useLayoutEffect, useMemo, useRef, useState } from "preact/hooks";
import { errText, notify, openView } from "./actions";
import { api, type Message, type Part } from "./api";
import { renderMarkdown } from "./markdown";
import { outgoingOf, resend, running, send, unqueue } from "./delivery";
import type { Outgoing } from "./outbox";
import { STEP_TEXT } from "./sending";
import { S, currentKey, isRunning, realError, statusLine, type Ask, type Chat } from "./store";
import { swallowed } from "./swallowed";
import { toolOutcome } from "./tools";

export function Messages({ chat }: { chat: Chat | null }) {
  const box = useRef<HTMLDivElement>(null);
  const atBottom = useRef(true);
  const [showJump, setShowJump] = useState(false);
  const list = chat ? (S.messages[chat.id] ?? []) : [];
  const chatId = chat?.id ?? "";
  const live = running(chat?.status);
  const outgoing = outgoingOf(currentKey(), list, live);
  const pending = outgoing.length > 0;
  // prompts opencode kept after a failed reply and will never answer; none while one is on its way
  const unanswered = chat && !pending ? swallowed(list, live) : [];

  const onScroll = () => {
    const el = box.current;
    if (!el) return;
    const bottom = el.scrollHeight - el.scrollTop - el.clientHeight < 40;
    atBottom.current = bottom;
    if (showJump === bottom) setShowJump(!bottom);
  };
  const toBottom = () => {
    const el = box.current;
    if (!el) return;
    el.scrollTop = el.scrollHeight;
    atBottom.current = true;
    setShowJump(false);
  };
  // a chat opens at its end
  useLayoutEffect(() => {
    atBottom.current = true;
    toBottom();
  }, [chatId]);
  // follow new content only while at the bottom
  useLayoutEffect(() => {
    if (atBottom.current) {
      const el = box.current;
      if (el) el.scrollTop = el.scrollHeight;
    } else if (!showJump) setShowJump(true);
  });

  return (
    <div class="messages-wrap">
      <div class="messages" data-testid="messages" data-session-id={chatId} ref={box} onScroll={onScroll}>
        {!chat && !pending && (
          <div class="empty dim">
            {S.loading ? "loading…" : S.repo ? `new chat in ${S.repo}: type below` : "choose a repo"}
          </div>
        )}
        {chat && list.length === 0 && !pending && <div class="empty dim">new chat in {chat.repo}: type below</div>}
        {list.map((m) => (
          <MessageView key={m.info.id} m={m} root={chat?.path ?? ""} />
        ))}
        {chat && unanswered.length > 0 && <Unanswered chat={chat} list={list} ids={unanswered} />}
        {outgoing.map((p) => (
          <PendingView key={p.id} p={p} />
        ))}
        {chat && isRunning(chat) && !outgoing.some((p) => p.phase === "prompt") && (
          <div class={"working dim " + chat.status} data-testid="chat-status" data-status={chat.status}>
            {statusLine(chat)}{" "}
            <button class="why" data-testid="why-stuck" onClick={() => openView("stuck")}>
              why?
            </button>
          </div>
        )}
        {chat && chat.status === "interrupted" && !outgoing.length && (
          <div class="working dim interrupted" data-testid="chat-interrupted">
            {chat.interrupted ?? "this reply was cut off"}{" "}
            <button data-testid="continue" onClick={() => send("continue", [], chat.id)}>
              continue
            </button>
          </div>
        )}
        {chat && (S.asks[chat.id] ?? []).map((a) => <AskView key={a.id} chat={chat} ask={a} />)}
      </div>
      {showJump && (
        <button class="scroll-bottom" data-testid="scroll-bottom" aria-label="scroll to bottom" onClick={toBottom}>
          ↓
        </button>
      )}
    </div>
  );
}

/** What the agent asks: a permission is answered here (once, always, or no); a question in opencode's UI. */
function AskView({ chat, ask }: { chat: Chat; ask: Ask }) {
  const reply = (answer: "once" | "always" | "reject") =>
    void api
      .post(`/permission/${encodeURIComponent(ask.id)}/reply`, { reply: answer }, chat.path)
      .catch((e) => notify(`answer: ${errText(e)}`));
  return (
    <div class="ask" data-testid="ask" data-kind={ask.kind}>
      <div>
        {ask.kind === "permission" ? "The agent asks to run " : "The agent asks: "}
        <code>{ask.what}</code>
      </div>
      {ask.kind === "permission" ? (
        <div class="ask-actions">
          <button data-testid="ask-once" onClick={() => reply("once")}>allow once</button>
          <button data-testid="ask-always" onClick={() => reply("always")}>always</button>
          <button data-testid="ask-reject" onClick={() => reply("reject")}>no</button>
        </div>
      ) : (
        <div class="dim">answer it in opencode's own web UI (the link in the top bar)</div>
      )}
    </div>
  );
}

/** A prompt on its way from here, until opencode's own copy shows: queued (waiting for the server), which
 * step of sending it runs, or sent. */
function PendingView({ p }: { p: Outgoing }) {
  const queued = p.phase === "queued";
  const line = queued
    ? !navigator.onLine
      ? "queued: offline, sends when the phone is back online"
      : p.tries
        ? `queued: ${p.reason}; trying again`
        : "queued"
    : p.phase !== "sent" && p.phase !== "queued" && STEP_TEXT[p.phase];
  return (
    <div class="message user pending" data-testid="message" data-role="user" data-pending="true" data-phase={p.phase}>
      <div class="who">&gt; you</div>
      {p.text.trim() && <div class="part-text user-text">{p.text}</div>}
      {p.files.map((f) =>
        f.mime.startsWith("image/") ? (
          <img key={f.url} class="thumb" src={f.url} alt={f.filename} />
        ) : (
          <div key={f.url} class="file dim">
            [file] {f.filename}
          </div>
        ),
      )}
      {line && (
        <div class={"progress dim" + (queued ? " queued" : "")} data-testid="progress" role="status">
          {line}
          {queued && !p.maybeSent && (
            <button class="link" data-testid="unqueue" onClick={() => unqueue(p.id)}>
              edit
            </button>
          )}
        </div>
      )}
    </div>
  );
}

/** The prompts a failed reply swallowed: one tap sends each again, as a new prompt. */
function Unanswered({ chat, list, ids }: { chat: Chat; list: Message[]; ids: string[] }) {
  return (
    <div class="unanswered" data-testid="unanswered" role="status">
      <span class="dim">opencode kept {ids.length > 1 ? "these prompts" : "this prompt"} after the failed reply but will not answer</span>
      <button
        data-testid="resend"
        onClick={() => {
          for (const id of ids) {
            const m = list.find((x) => x.info.id === id);
            if (m) resend(chat, m);
          }
        }}
      >
        resend
      </button>
    </div>
  );
}

const MessageView = memo(function MessageView({ m, root }: { m: Message; root: string }) {
  const err = realError(m.info);
  const aborted = m.info.error?.name === "MessageAbortedError";
  return (
    <div class={"message " + m.info.role} data-testid="message" data-role={m.info.role}>
      {m.info.role === "user" && <div class="who">&gt; you</div>}
      {m.parts.map((p) => (
        <PartView key={p.id} p={p} role={m.info.role} root={root} />
      ))}
      {err && <div class="msg-error">error: {err}</div>}
      {aborted && <div class="dim">(stopped)</div>}
    </div>
  );
});

/** `path` relative to the chat's worktree, when it lies inside it. */
function relative(path: string, root: string): string {
  return root && path.startsWith(root + "/") ? path.slice(root.length + 1) : path;
}

const PartView = memo(function PartView({ p, role, root }: { p: Part; role: string; root: string }) {
  switch (p.type) {
    case "text":
      if (!p.text) return null;
      return role === "user" ? (
        <div class="part-text user-text" data-testid="part-text">
          {p.text}
        </div>
      ) : (
        <Markdown text={p.text} />
      );
    case "reasoning":
      return p.text ? <div class="reasoning dim">{p.text}</div> : null;
    case "tool":
      return <ToolView p={p} />;
    case "file":
      // a photo sent from the phone: a data: URL only, never a link the model chose
      return p.mime?.startsWith("image/") && p.url?.startsWith("data:image/") ? (
        <img class="thumb" data-testid="part-image" src={p.url} alt={p.filename ?? "photo"} />
      ) : (
        <div class="file dim">[file] {p.filename ?? p.mime ?? ""}</div>
      );
    case "patch":
      return <div class="dim">changed: {(p.files ?? []).map((f) => relative(f, root)).join(", ")}</div>;
    default:
      return null;
  }
});

function Markdown({ text }: { text: string }) {
  const html = useMemo(() => renderMarkdown(text), [text]);
  return <div class="part-text md" data-testid="part-text" dangerouslySetInnerHTML={{ __html: html }} />;
}

function str(v: unknown): string {
  if (v === undefined || v === null) return "";
  return typeof v === "string" ? v : JSON.stringify(v, null, 2);
}

export function DiffView({ diff }: { diff: string }) {
  return (
    <pre class="diff">
      {diff.split("\n").map((line, i) => (
        <span
          key={i}
          class={
            line.startsWith("+") && !line.startsWith("+++")
              ? "add"
              : line.startsWith("-") && !line.startsWith("---")
                ? "del"
                : line.startsWith("@@")
                  ? "hunk"
                  : ""
          }
        >
          {line + "\n"}
        </span>
      ))}
    </pre>
  );
}

function ToolView({ p }: { p: Part }) {
  const [open, setOpen] = useState(true);
  const st = p.state ?? { status: "pending" as const };
  const input = st.input ?? {};
  const meta = st.metadata ?? {};
  const tool = p.tool ?? "tool";
  const outcome = toolOutcome(st);
  let head = st.title || "";
  let body: preact.ComponentChildren = null;
  if (tool === "bash") {
    head = head || str(input.command);
    body = (
      <>
        <pre class="cmd">$ {str(input.command)}</pre>
        {(st.output ?? meta.output) !== undefined && <pre class="out">{str(st.output ?? meta.output)}</pre>}
        {outcome.exit !== null && outcome.exit !== 0 && <div class="exit">exit status {outcome.exit}</div>}
      </>
    );
  } else {
    const diff = typeof meta.diff === "string" ? meta.diff : "";
    const content = tool === "write" && typeof input.content === "string" ? input.content : "";
    const shownInput = { ...input };
    if (content) delete shownInput.content;
    body = (
      <>
        {Object.keys(shownInput).length > 0 && <pre class="in">{str(shownInput)}</pre>}
        {diff && <DiffView diff={diff} />}
        {content && <pre class="out">{content}</pre>}
        {!diff && st.output !== undefined && st.output !== "" && <pre class="out">{st.output}</pre>}
      </>
    );
  }
  return (
    <div
      class={"part-tool " + st.status + (outcome.failed ? " failed" : "")}
      data-testid="part-tool"
      data-tool={tool}
      data-state={st.status}
      data-exit={outcome.exit ?? undefined}
    >
      <button class="tool-head" onClick={() => setOpen(!open)} aria-expanded={open}>
        <span class="tool-name">{tool}</span>{" "}
        {/* before the title, which may be cut off at the screen's edge */}
        {outcome.label && <span class={outcome.failed ? "tool-failed" : "dim"}>{outcome.label} </span>}
        <span class="tool-title">{head}</span> <span class="dim">{open ? "▾" : "▸"}</span>
      </button>
      {open && (
        <div class="tool-body">
          {body}
          {st.error && <pre class="msg-error">{st.error}</pre>}
        </div>
      )}
    </div>
  );
}
