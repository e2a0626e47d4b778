// What the user can do, and the start-up sequence.
import { admin } from "./admin";
import type { Attachment } from "./attachments";
import { api, ApiError, type Agent, type Provider, type SessionInfo } from "./api";
import { loadChats } from "./chats";
import { fetchMessages, isWatched, reconcileStreams, startLifecycle, streamReady } from "./events";
import { S, changed, chatsOfRepo, currentChat, repoInfo, saved, type Chat } from "./store";

export function notify(msg: string): void {
  S.notice = msg;
  changed();
}

export function errText(e: unknown): string {
  return e instanceof ApiError || e instanceof Error ? e.message : String(e);
}

export function focusPrompt(): void {
  setTimeout(() => document.querySelector<HTMLTextAreaElement>('[data-testid="prompt"]')?.focus(), 0);
}

// ---------------------------------------------------------------- loading

async function loadRepos(): Promise<void> {
  const r = await admin("get", "/admin/repos");
  S.repos = r.repos;
  S.clones = r.clones;
  changed();
}

export async function loadGithub(): Promise<void> {
  try {
    S.github = await admin("get", "/admin/repos/github");
  } catch (e) {
    S.github = { error: errText(e) };
  }
  changed();
}

async function loadModels(): Promise<void> {
  const [prov, config] = await Promise.all([
    api.get<{ providers: Provider[]; default: Record<string, string> }>("/config/providers"),
    api.get<{ model?: string }>("/config").catch(() => ({}) as { model?: string }),
  ]);
  S.models = prov.providers.flatMap((p) =>
    Object.values(p.models).map((m) => ({
      providerID: p.id,
      modelID: m.id,
      label: `${p.id}/${m.id}`,
    })),
  );
  const keys = new Set(S.models.map((m) => `${m.providerID}/${m.modelID}`));
  const pick = [saved.model(), config.model].find((m) => m && keys.has(m));
  const firstDefault = Object.entries(prov.default ?? {})
    .map(([p, m]) => `${p}/${m}`)
    .find((k) => keys.has(k));
  S.model = pick || firstDefault || S.models[0]?.label || "";
  changed();
}

async function loadAgents(): Promise<void> {
  const agents = await api.get<Agent[]>("/agent");
  S.agents = agents.filter((a) => !a.hidden && (a.mode === "primary" || a.mode === "all" || !a.mode)).map((a) => a.name);
  const want = saved.agent();
  S.agent = want && S.agents.includes(want) ? want : S.agents.includes("build") ? "build" : (S.agents[0] ?? "build");
  changed();
}

function lastActivity(repo: string): number {
  return Math.max(0, ...chatsOfRepo(repo).map((c) => c.updated));
}

export async function start(): Promise<void> {
  startLifecycle();
  void admin("get", "/admin/health")
    .then((h) => {
      S.version = h.daemon?.version ?? "";
      changed();
    })
    .catch(() => {});
  void loadModels().catch((e) => notify(`models: ${errText(e)}`));
  void loadAgents().catch((e) => notify(`modes: ${errText(e)}`));
  try {
    await Promise.all([loadRepos(), loadChats(isWatched)]);
  } catch (e) {
    notify(errText(e));
  }
  // restore: the last repo and its most recent chat; with neither a last repo nor a clone, the picker
  const last = saved.repo();
  const byActivity = [...S.repos].sort(
    (a, b) => lastActivity(b.repo) - lastActivity(a.repo),
  );
  const repo = (last && repoInfo(last)?.repo) || byActivity[0]?.repo || null;
  S.loading = false;
  if (S.repo !== null || S.chat !== null) {
    // the user chose a repo or started a chat while the lists loaded: restoring would undo that
  } else if (repo) {
    selectRepo(repo);
  } else {
    S.pickerOpen = true;
    void loadGithub();
  }
  changed();
  reconcileStreams(); // each stream re-seeds once it is connected
  pollClones();
}

// ---------------------------------------------------------------- repos

export function selectRepo(repo: string): void {
  S.repo = repo;
  saved.setRepo(repo);
  S.pickerOpen = false;
  const want = saved.chat(repo);
  const chats = chatsOfRepo(repo);
  const recent = [...chats].sort((a, b) => b.updated - a.updated)[0];
  const chat = chats.find((c) => c.id === want) ?? recent ?? null;
  S.chat = null;
  if (chat) selectChat(chat.id);
  else reconcileStreams();
  changed();
  focusPrompt();
}

let clonePoll: number | undefined;
const wanted = new Set<string>(); // clones started here: chosen when done

function pollClones(): void {
  clearTimeout(clonePoll);
  const running = S.clones.some((c) => !c.error && c.phase !== "done" && !c.finished);
  if (!running && wanted.size === 0) return;
  clonePoll = window.setTimeout(async () => {
    try {
      await loadRepos();
    } catch {
      /* try again */
    }
    for (const repo of [...wanted]) {
      if (repoInfo(repo)) {
        wanted.delete(repo);
        if (S.pickerOpen || !S.repo) selectRepo(repo);
        if (S.github && "repos" in S.github)
          for (const g of S.github.repos) if (g.full_name === repo) g.cloned = true;
      } else {
        const c = S.clones.find((x) => x.repo === repo);
        if (c?.error) wanted.delete(repo);
      }
    }
    changed();
    pollClones();
  }, 700);
}

export async function cloneRepo(repo: string): Promise<void> {
  repo = repo.trim().replace(/^https:\/\/github\.com\//, "").replace(/\.git$/, "").replace(/\/$/, "");
  if (!/^[^/\s]+\/[^/\s]+$/.test(repo)) {
    notify("type owner/name");
    return;
  }
  try {
    const r = await admin("post", "/admin/repos/clone", { body: { repo } });
    if (r.repo) {
      if (!repoInfo(r.repo.repo)) S.repos = [...S.repos, r.repo];
      selectRepo(r.repo.repo);
      return;
    }
    if (r.clone) {
      S.clones = [...S.clones.filter((c) => c.repo !== repo), r.clone];
      wanted.add(repo);
      changed();
      pollClones();
    }
  } catch (e) {
    notify(`clone ${repo}: ${errText(e)}`);
  }
}

export function openPicker(open: boolean): void {
  S.pickerOpen = open;
  if (open) {
    S.sidebarOpen = false;
    void loadRepos().catch(() => {});
    if (!S.github || "error" in S.github) void loadGithub();
  }
  changed();
}

// ---------------------------------------------------------------- chats

export function selectChat(id: string): void {
  const chat = S.chats[id];
  if (!chat) return;
  S.chat = id;
  if (S.repo !== chat.repo) {
    S.repo = chat.repo;
    saved.setRepo(chat.repo);
  }
  saved.setChat(chat.repo, id);
  reconcileStreams();
  changed();
  void fetchMessages(id).catch((e) => notify(errText(e)));
}

/** A chat: the session in the repo's clone, then its worktree, into which the daemon moves it. */
export async function newChat(): Promise<Chat | null> {
  const repo = repoInfo(S.repo);
  if (!repo) {
    openPicker(true);
    return null;
  }
  if (S.creating) return null;
  S.creating = true;
  changed();
  try {
    const session = await api.post<SessionInfo>("/session", {}, repo.path);
    const { worktree } = await admin("post", "/admin/worktrees", {
      body: { repo: repo.repo, session_id: session.id },
    });
    const chat: Chat = {
      id: session.id,
      repo: repo.repo,
      path: worktree.path,
      title: session.title,
      updated: Date.now(),
      created: session.time.created,
      status: "idle",
      found: true,
    };
    S.chats = { ...S.chats, [chat.id]: chat };
    S.messages[chat.id] = [];
    S.chat = chat.id;
    saved.setChat(repo.repo, chat.id);
    reconcileStreams();
    focusPrompt();
    return chat;
  } catch (e) {
    notify(`new chat: ${errText(e)}`);
    return null;
  } finally {
    S.creating = false;
    changed();
  }
}

export async function send(text: string, files: Attachment[] = []): Promise<boolean> {
  if (!text.trim() && !files.length) return false;
  let chat = currentChat();
  if (!chat) {
    chat = await newChat();
    if (!chat) return false;
  }
  // the stream must be listening before the turn starts, or its first deltas are lost
  await streamReady(chat.path);
  const [providerID, ...rest] = S.model.split("/");
  const parts: Record<string, unknown>[] = text.trim() ? [{ type: "text", text }] : [];
  for (const f of files) parts.push({ type: "file", mime: f.mime, url: f.url, filename: f.filename });
  const body: Record<string, unknown> = { parts, agent: S.agent };
  if (providerID && rest.length) body.model = { providerID, modelID: rest.join("/") };
  chat.status = "busy";
  chat.error = undefined;
  chat.updated = chat.sentAt = Date.now();
  changed();
  try {
    await api.post(`/session/${encodeURIComponent(chat.id)}/prompt_async`, body, chat.path);
    reconcileStreams();
    return true;
  } catch (e) {
    chat.status = "error";
    chat.error = errText(e);
    chat.sentAt = undefined;
    notify(`send: ${errText(e)}`);
    return false;
  }
}

export async function abort(): Promise<void> {
  const chat = currentChat();
  if (!chat) return;
  try {
    await api.post(`/session/${encodeURIComponent(chat.id)}/abort`, {}, chat.path);
  } catch (e) {
    notify(`stop: ${errText(e)}`);
  }
}
