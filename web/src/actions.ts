// What the user can do, and the start-up sequence.
import { admin } from "./admin";
import { api, ApiError, type Agent, type Provider } from "./api";
import { loadChats } from "./chats";
import { chatOfHash } from "./deeplink";
import { pump, startOutbox } from "./delivery";
import { fetchMessages, reconcileStreams, startLifecycle, streaming } from "./events";
import { untilReachable, watchConnectivity } from "./offline";
import { isDraftKey } from "./outbox";
import {
  S,
  changed,
  chatsOfRepo,
  currentChat,
  drafts,
  markRead,
  repoInfo,
  saved,
  unreadChanged,
} from "./store";

export function notify(msg: string): void {
  S.notice = msg;
  changed();
}

/** Open the dashboard or "why is this chat stuck?" (for the chat on screen) over the chat; null closes. */
export function openView(view: typeof S.view): void {
  S.view = view;
  S.sidebarOpen = false;
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
  watchConnectivity();
  startLifecycle();
  const linked = chatOfHash(location.hash); // a link to a chat (a tapped notification) wins over the restore
  startOutbox();
  void untilReachable(() => admin("get", "/admin/health"))
    .then((h) => {
      S.version = h.daemon?.version ?? "";
      changed();
    })
    .catch(() => {});
  // offline (the app opened from the service worker's copy): each waits for the network, the banner says so
  void untilReachable(loadModels).catch((e) => notify(`models: ${errText(e)}`));
  void untilReachable(loadAgents).catch((e) => notify(`modes: ${errText(e)}`));
  S.unread = new Set(saved.unread());
  try {
    await Promise.all([untilReachable(loadRepos), untilReachable(() => loadChats(streaming()))]);
    // the drafts of chats and repos that are gone go with them
    drafts.prune((key) => (key.startsWith("new:") ? !!repoInfo(key.slice(4)) : !!S.chats[key]));
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
  unreadChanged();
  if (S.repo !== null || S.chat !== null) {
    // the user chose a repo or started a chat while the lists loaded: restoring would undo that
  } else if (linked && S.chats[linked]) {
    void openLinked(linked);
  } else if (repo) {
    selectRepo(repo);
    // a first prompt from "+" still waiting to be sent: back to its draft, where it shows as queued
    const waiting = S.outbox.find((i) => isDraftKey(i.key) && i.repo === repo);
    if (waiting) {
      S.chat = null;
      S.draft = Number(waiting.key.split(":")[1]);
      reconcileStreams();
    }
  } else {
    S.pickerOpen = true;
    void loadGithub();
  }
  if (linked && !S.chats[linked]) notify(`the linked chat ${linked} is gone`);
  changed();
  reconcileStreams(); // each stream re-seeds once it is connected
  pollClones();
  void pump();
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
  markRead(id);
  reconcileStreams();
  changed();
  void fetchMessages(id).catch((e) => notify(errText(e)));
}

/** A link to a chat (`/#chat=<id>`: a tapped notification, a bookmark): that chat on screen, whatever was. The
 * link is taken out of the address, so the same link works again after the user went elsewhere. */
export async function openLinked(id: string): Promise<void> {
  if (chatOfHash(location.hash)) history.replaceState(null, "", location.pathname + location.search);
  if (!S.chats[id]) await loadChats(streaming()).catch(() => undefined); // made since the list was loaded
  if (!S.chats[id]) {
    notify(`the linked chat ${id} is gone`);
    return;
  }
  S.pickerOpen = false;
  S.sidebarOpen = false;
  selectChat(id);
  focusPrompt();
}

/** "+": an empty chat on the phone alone. Its session and worktree are made when its first prompt goes out
 * (`send`), so "+" asks nothing of the server, however often it is tapped. */
export function newChat(): void {
  if (!repoInfo(S.repo)) {
    openPicker(true);
    return;
  }
  S.chat = null; // the last real chat stays the one restored after a reload
  S.draft++;
  reconcileStreams();
  changed();
  focusPrompt();
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
