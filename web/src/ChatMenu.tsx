// The chat's three-dots menu: its branch, its diff, and publishing it (commit, push, open the PR),
// all done by the daemon (/admin/worktrees/...), so the agent is not needed; and deleting the chat.
import { useState } from "preact/hooks";
import { admin, worktreeOf } from "./admin";
import { api, ApiError, type WorktreeDiff } from "./api";
import { errText, notify, openView } from "./actions";
import { DiffView } from "./Messages";
import { filePatch } from "./patches";
import { transcript } from "./transcript";
import { S, changed, currentChat } from "./store";

export function ChatMenu() {
  const chat = currentChat();
  const [open, setOpen] = useState(false);
  const [diff, setDiff] = useState<WorktreeDiff | null>(null);
  const [shown, setShown] = useState<string | null>(null);
  const [busy, setBusy] = useState("");
  const [pr, setPr] = useState<{ url: string; number: number } | null>(null);
  if (!chat) return null;
  const branch = `dancodes/${chat.id}`;

  async function act(label: string, run: () => Promise<string>): Promise<void> {
    setBusy(label);
    try {
      notify(await run());
    } catch (e) {
      notify(`${label}: ${errText(e)}`);
    } finally {
      setBusy("");
    }
  }
  const c = chat;
  const path = worktreeOf(c);
  const loadDiff = () =>
    act("diff", async () => {
      const d = await admin("get", "/admin/worktrees/{owner}/{name}/{session_id}/diff", { path });
      setDiff(d);
      return `${d.files.length} files changed, +${d.additions} -${d.deletions}`;
    });
  const commit = () =>
    act("commit", async () => {
      const done = await admin("post", "/admin/worktrees/{owner}/{name}/{session_id}/commit", { path, body: {} });
      return `committed ${done.commit} (${done.files} files)`;
    });
  const push = () =>
    act("push", async () => {
      const done = await admin("post", "/admin/worktrees/{owner}/{name}/{session_id}/push", { path, body: {} });
      return `pushed ${done.branch}`;
    });
  const openPr = () =>
    act("pull request", async () => {
      const done = await admin("post", "/admin/worktrees/{owner}/{name}/{session_id}/pr", { path, body: {} });
      setPr(done);
      return `${done.created ? "opened" : "already open:"} PR #${done.number}`;
    });
  const rename = () =>
    act("rename", async () => {
      const title = prompt("Rename the chat", c.title)?.trim();
      if (!title || title === c.title) return "kept the name";
      await api.patch(`/session/${encodeURIComponent(c.id)}`, { title }, c.path); // opencode's own title
      c.title = title;
      changed();
      return "renamed";
    });
  const copy = async (text: string, what: string): Promise<string> => {
    if (!navigator.clipboard) throw new Error("this browser gives no clipboard here");
    await navigator.clipboard.writeText(text);
    return `${what} copied`;
  };
  const share = () =>
    act("share", async () => {
      // nothing is uploaded anywhere: the phone's share sheet gets links that need the login
      const url = pr?.url ?? location.origin + "/";
      const text = `${c.title} (${branch})`;
      if (navigator.share) {
        await navigator.share({ title: c.title, text, url });
        return "shared";
      }
      return copy(`${text}\n${url}`, "link");
    });
  const copyTranscript = () =>
    act("transcript", () => copy(transcript(c.title, S.messages[c.id] ?? []), "transcript"));
  const remove = () =>
    act("delete", async () => {
      if (!confirm(`Delete the chat "${c.title}" and its worktree?`)) return "kept";
      try {
        await admin("delete", "/admin/worktrees/{owner}/{name}/{session_id}", { path });
      } catch (e) {
        if (!(e instanceof ApiError) || e.status !== 409) throw e;
        // it holds work, or runs: say which, and back it up only when asked again
        if (!confirm(`${e.message}\n\nBack it up and delete it anyway?`)) return "kept";
        await admin("delete", "/admin/worktrees/{owner}/{name}/{session_id}", { path, query: { force: true } });
      }
      await api.del(`/session/${encodeURIComponent(c.id)}`, c.path).catch(() => undefined);
      delete S.chats[c.id];
      S.chat = null;
      setOpen(false);
      changed();
      return "chat deleted";
    });

  return (
    <>
      <button class="icon" data-testid="chat-menu-button" aria-label="chat menu" onClick={() => setOpen(!open)}>
        ⋮
      </button>
      {open && (
        <div class="chat-menu" data-testid="chat-menu">
          <div class="menu-branch">
            <code data-testid="branch-name">{branch}</code>
            <button onClick={() => void navigator.clipboard?.writeText(branch).then(() => notify("branch copied"))}>
              copy
            </button>
          </div>
          <div class="menu-actions">
            <button data-testid="show-diff" disabled={!!busy} onClick={() => void loadDiff()}>
              diff
            </button>
            <button data-testid="commit" disabled={!!busy} onClick={() => void commit()}>
              commit all
            </button>
            <button data-testid="push" disabled={!!busy} onClick={() => void push()}>
              push
            </button>
            <button data-testid="open-pr" disabled={!!busy} onClick={() => void openPr()}>
              open PR
            </button>
            <button data-testid="rename-chat" disabled={!!busy} onClick={() => void rename()}>
              rename
            </button>
            <button data-testid="share-chat" disabled={!!busy} onClick={() => void share()}>
              share
            </button>
            <button data-testid="copy-transcript" disabled={!!busy} onClick={() => void copyTranscript()}>
              transcript
            </button>
            <button data-testid="menu-why-stuck" onClick={() => (setOpen(false), openView("stuck"))}>
              why stuck?
            </button>
            <button data-testid="delete-chat" class="danger" disabled={!!busy} onClick={() => void remove()}>
              delete
            </button>
          </div>
          {busy && <div class="dim">{busy}…</div>}
          {pr && (
            <a data-testid="pr-link" href={pr.url} target="_blank" rel="noopener">
              PR #{pr.number}
            </a>
          )}
          {diff && (
            <div class="diff-view" data-testid="diff-view">
              <div class="dim">
                {diff.files.length} files, +{diff.additions} -{diff.deletions}
                {diff.base_branch ? ` since ${diff.base_branch}` : ""}
              </div>
              {diff.files.map((f) => (
                <div key={f.path}>
                  <button
                    class="diff-file"
                    data-testid="diff-file"
                    onClick={() => setShown(shown === f.path ? null : f.path)}
                  >
                    {f.path} <span class="dim">{f.binary ? "binary" : `+${f.additions} -${f.deletions}`}</span>
                  </button>
                  {shown === f.path && (
                    <div class="diff-patch">
                      {filePatch(diff.patch, f.path) ? (
                        <DiffView diff={filePatch(diff.patch, f.path)} />
                      ) : (
                        <pre class="out">(no text: binary, or past the cut)</pre>
                      )}
                    </div>
                  )}
                </div>
              ))}
              {diff.truncated && <div class="dim">… the patch is cut: it is too large to show here</div>}
            </div>
          )}
        </div>
      )}
    </>
  );
}
