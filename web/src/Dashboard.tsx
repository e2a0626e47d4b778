// The dashboard (services, opencode's instances, disk, orphan processes, worktrees, GC, logs) and "why is this chat
// stuck?" (what the daemon knows of the open chat, and this page's own stream). A chunk of its own, loaded the
// first time either opens (App.tsx), so the chat page does not carry it. Everything comes from /admin.
import { useEffect, useState } from "preact/hooks";
import { admin, type Schemas } from "./admin";
import { errText, notify, openView } from "./actions";
import { ago, duration, findings, memoryLine, memoryOf, type Diagnosis, type Service } from "./diagnose";
import { bytes } from "./format";
import { chatByDir, refreshOpencodeVersion, streamState } from "./events";
import { S, currentChat, statusLabel } from "./store";
import css from "./dashboard.css?inline";

// its styles come with it, as text: a CSS file of its own would make the page carry Vite's preloading helper
document.head.appendChild(document.createElement("style")).textContent = css;

/** Every `ms` while the view is open, and once at once; the answer, or the last error. */
function usePoll<T>(load: () => Promise<T>, ms: number, deps: unknown[] = []): [T | null, string, () => void] {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState("");
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    const run = () =>
      load().then(
        (d) => live && (setData(d), setError("")),
        (e) => live && setError(errText(e)),
      );
    void run();
    const timer = ms ? setInterval(run, ms) : undefined;
    return () => {
      live = false;
      clearInterval(timer);
    };
  }, [tick, ...deps]);
  return [data, error, () => setTick((n) => n + 1)];
}

function Head({ title, testid }: { title: string; testid: string }) {
  return (
    <div class="picker-head">
      <span>{title}</span>
      <button class="icon" data-testid={`${testid}-close`} aria-label="close" onClick={() => openView(null)}>
        ×
      </button>
    </div>
  );
}

function Err({ text }: { text: string }) {
  return text ? <p class="dash-err">{text}</p> : null;
}

// ---------------------------------------------------------------- the dashboard

export function Dashboard() {
  useEffect(refreshOpencodeVersion, []);
  const [health, healthErr] = usePoll(() => admin("get", "/admin/health"), 2000);
  const now = Date.now() / 1000;
  return (
    <div class="picker dash" data-testid="dashboard">
      <Head title="dashboard" testid="dashboard" />
      <div class="section dim">services</div>
      <Err text={healthErr} />
      {health?.daemon && (
        <div class="row dim" data-testid="daemon-info">
          daemon v{health.daemon.version} · pid {health.daemon.pid} · up {duration(health.daemon.uptime)} ·{" "}
          {health.status}
          {S.opencodeVersion && ` · opencode ${S.opencodeVersion}`}
        </div>
      )}
      {Object.values(health?.services ?? {}).map((svc) => (
        <ServiceRow key={svc.name} svc={svc} now={now} />
      ))}
      <Instances />
      <Disk volume={health?.disk} />
      <Orphans />
      <Worktrees />
      <Gc />
    </div>
  );
}

function ServiceRow({ svc, now }: { svc: Service; now: number }) {
  const [open, setOpen] = useState(false);
  const mem = memoryOf(svc);
  const exit = svc.last_exit;
  return (
    <div class="svc" data-testid="service" data-name={svc.name} data-state={svc.state}>
      <button class="svc-head" onClick={() => setOpen(!open)}>
        <span>{svc.name}</span>
        <span class={"state " + svc.state} data-testid="service-state">
          {svc.state}
        </span>
      </button>
      <div class="row dim">
        {svc.pid ? `pid ${svc.pid} · ` : ""}up {duration(svc.uptime)} · {svc.restarts} restarts
        {exit && ` · last exit: ${exit.description}${exit.at ? ` ${ago(exit.at, now)}` : ""}`}
      </div>
      {svc.reason && <div class="row warn">{svc.reason}</div>}
      {mem && (
        <div class="row" data-testid="service-memory">
          memory: {memoryLine(mem)}
          {mem.note && <div class="warn">{mem.note}</div>}
        </div>
      )}
      {open && <Logs name={svc.name} />}
    </div>
  );
}

function Logs({ name }: { name: string }) {
  const [logs, err] = usePoll(() => admin("get", "/admin/services/{name}/logs", { path: { name }, query: { n: 40 } }), 3000);
  return (
    <div data-testid="service-logs">
      <Err text={err} />
      <pre class="out dash-logs">
        {logs ? logs.lines.map((l) => `${new Date(l.t * 1000).toLocaleTimeString()} ${l.stream === "stderr" ? "! " : ""}${l.line}`).join("\n") || "(nothing yet)" : "loading…"}
      </pre>
    </div>
  );
}

function Instances() {
  const [list, err] = usePoll(() => admin("get", "/admin/instances"), 5000);
  const now = Date.now() / 1000;
  const shown = (list?.instances ?? []).filter((i) => i.state !== "unknown").reverse();
  return (
    <>
      <div class="section dim">opencode instances</div>
      <Err text={err} />
      {list && !list.following && <div class="row warn">the daemon is not following opencode's events now</div>}
      {shown.map((i) => (
        <div class="row" data-testid="instance" data-state={i.state} key={i.directory}>
          <span class={"state " + i.state}>{i.state}</span> {chatByDir(i.directory)?.title ?? i.directory.split("/").pop()}{" "}
          <span class="dim">{i.state === "disposed" ? `disposed ${ago(i.disposed_at, now)}` : `heard ${ago(i.last_event, now)}`}</span>
        </div>
      ))}
      {list && shown.length === 0 && <div class="row dim">none seen since the daemon connected to opencode</div>}
    </>
  );
}

function Disk({ volume }: { volume: Schemas["Volume"] | undefined }) {
  const [disk, err] = usePoll(() => admin("get", "/admin/disk"), 0);
  const vol = disk?.volume ?? volume;
  return (
    <>
      <div class="section dim">disk</div>
      <Err text={err} />
      {vol && (
        <div class="row" data-testid="disk-volume">
          volume: {bytes(vol.used)} used of {bytes(vol.total)}, {bytes(vol.free)} free
          <div class="bar">
            <div style={{ width: `${Math.min(100, (100 * vol.used) / Math.max(1, vol.total)).toFixed(1)}%` }} />
          </div>
        </div>
      )}
      {disk && (
        <div class="row" data-testid="disk-usage">
          repos {bytes(disk.repos_total)} · worktrees {bytes(disk.worktrees_total)} · backups {bytes(disk.backups_total)}
          {disk.repos.map((r) => (
            <div class="dim" key={r.repo}>
              {r.repo}: {bytes(r.size)}
            </div>
          ))}
        </div>
      )}
    </>
  );
}

function Orphans() {
  const [list, err, reload] = usePoll(() => admin("get", "/admin/processes"), 2000);
  const kill = async (pid: number) => {
    try {
      const done = await admin("post", "/admin/processes/{pid}/kill", { path: { pid } });
      notify(`killed ${done.killed.join(", ")}`);
    } catch (e) {
      notify(`kill ${pid}: ${errText(e)}`);
    }
    reload();
  };
  return (
    <>
      <div class="section dim">orphan processes{list ? ` (${list.reaped} reaped)` : ""}</div>
      <Err text={err} />
      {list?.orphans.map((o) => (
        <div class="row orphan" data-testid="orphan" data-pid={o.pid} key={o.pid}>
          <span class="cmd">
            {o.pid} {o.cmdline.join(" ")}
            <div class="dim">
              {o.service ?? "?"} · {duration(o.age)} · {bytes(o.rss)}
            </div>
          </span>
          <button class="danger" data-testid="orphan-kill" onClick={() => void kill(o.pid)}>
            kill
          </button>
        </div>
      ))}
      {list && list.orphans.length === 0 && <div class="row dim" data-testid="no-orphans">none</div>}
    </>
  );
}

function Worktrees() {
  const [list, err] = usePoll(() => admin("get", "/admin/worktrees"), 0);
  const now = Date.now() / 1000;
  return (
    <>
      <div class="section dim">worktrees</div>
      <Err text={err} />
      {!list && !err && <div class="row dim">loading…</div>}
      {list?.worktrees.map((w) => (
        <div class="row" data-testid="worktree" data-session-id={w.session_id} key={w.path}>
          {S.chats[w.session_id]?.title ?? w.session_id} <span class="dim">{w.repo}</span>
          <div class={w.at_risk.length ? "warn" : "dim"}>
            {w.dirty ? `${w.changed_files} changed` : "clean"} · {w.unpushed} unpushed · {bytes(w.size)} · active{" "}
            {ago(w.last_activity, now)}
            {w.at_risk.length > 0 && ` · at risk: ${w.at_risk.join(", ")}`}
          </div>
        </div>
      ))}
      {list && list.worktrees.length === 0 && <div class="row dim">none</div>}
    </>
  );
}

function Gc() {
  const [report, setReport] = useState<Schemas["GcReport"] | null>(null);
  const [busy, setBusy] = useState(false);
  const run = async (dry_run: boolean) => {
    if (!dry_run && !confirm("Delete the worktrees the dry run marked delete (work on no remote is backed up)?")) return;
    setBusy(true);
    try {
      setReport(await admin("post", "/admin/gc", { body: { dry_run } }));
    } catch (e) {
      notify(`gc: ${errText(e)}`);
    } finally {
      setBusy(false);
    }
  };
  const deletes = report?.decisions.filter((d) => d.action === "delete").length ?? 0;
  return (
    <>
      <div class="section dim">garbage collection</div>
      <div class="row">
        <button data-testid="gc-dry-run" disabled={busy} onClick={() => void run(true)}>
          dry run
        </button>{" "}
        <button class="danger" data-testid="gc-run" disabled={busy || !report?.dry_run || !deletes} onClick={() => void run(false)}>
          run GC
        </button>
      </div>
      {report && (
        <div class="row" data-testid="gc-report">
          {report.dry_run ? `dry run: ${deletes} would go` : `deleted ${report.deleted.length}`}
          {report.decisions.map((d) => (
            <div class={d.action === "delete" ? "warn" : "dim"} key={d.path}>
              {d.action} {d.repo} {d.session_id.slice(0, 12)}: {d.reason}
            </div>
          ))}
          {Object.entries(report.errors).map(([k, v]) => (
            <div class="dash-err" key={k}>
              {k}: {v}
            </div>
          ))}
        </div>
      )}
    </>
  );
}

// ---------------------------------------------------------------- why is this chat stuck?

export function Stuck() {
  const chat = currentChat();
  const id = chat?.id ?? "";
  const [d, err] = usePoll(
    () => (id ? admin("get", "/admin/chats/{session_id}/diagnosis", { path: { session_id: id } }) : Promise.reject(new Error("no chat is open"))),
    2000,
    [id],
  );
  const page = streamState();
  return (
    <div class="picker dash" data-testid="stuck">
      <Head title={`why is "${chat?.title ?? "this chat"}" stuck?`} testid="stuck" />
      <Err text={err} />
      {d && <Diagnosed d={d} page={page} />}
      {!d && !err && <p class="dim pad">asking the daemon…</p>}
    </div>
  );
}

function Diagnosed({ d, page }: { d: Diagnosis; page: ReturnType<typeof streamState> }) {
  const c = d.chat;
  const oc = d.opencode;
  const mem = oc ? memoryOf(oc) : null;
  const found = findings(d, page, Date.now());
  return (
    <>
      <div data-testid="findings">
        {found.map((f) => (
          <div class={"finding " + f.level} data-level={f.level} key={f.text}>
            {f.text}
          </div>
        ))}
      </div>
      <div class="section dim">the chat, as the daemon sees it</div>
      <div class="row" data-testid="stuck-status" data-status={c.status}>
        status: <span class={"state " + c.status}>{statusLabel(c)}</span>{" "}
        {c.since ? `for ${duration(d.now - c.since)}` : "since the daemon started"}
      </div>
      <div class="row" data-testid="stuck-last-event">
        last event: {d.last_event ? `${d.last_event.type}, ${ago(d.last_event.at, d.now)}` : "none since the daemon started"}
      </div>
      {c.retry && (
        <div class="row warn" data-testid="stuck-retry">
          retry attempt {c.retry.attempt}: {c.retry.message}
          {c.retry.next ? ` (next try in ${duration(Math.max(0, c.retry.next - d.now))})` : ""}
        </div>
      )}
      {c.error && <div class="row dash-err">error: {c.error}</div>}
      <div class="row" data-testid="stuck-instance" data-state={d.instance.state}>
        its opencode instance: {d.instance.state}
        {d.instance.state === "disposed" && ` ${ago(d.instance.disposed_at, d.now)}`}
        {d.instance.state === "loaded" && `, last heard ${ago(d.instance.last_event, d.now)}`}
        {d.instance.state === "unknown" && " (nothing heard from it since the daemon connected to opencode)"}
      </div>
      <div class="row dim">the daemon {d.following ? "follows" : "does NOT follow"} opencode's events</div>
      <div class="section dim">opencode: its state and probes</div>
      {oc ? (
        <div class="row" data-testid="stuck-opencode" data-state={oc.state}>
          <span class={"state " + oc.state}>{oc.state}</span> · up {duration(oc.uptime)} · {oc.restarts} restarts
          {oc.healthy === false && " · unhealthy"}
          {oc.reason && <div class="warn">{oc.reason}</div>}
          {mem && <div>memory: {memoryLine(mem)}</div>}
        </div>
      ) : (
        <div class="row dim">no opencode service configured</div>
      )}
      <div class="row dim" data-testid="stuck-probes">
        {d.opencode_changes.length === 0 && "no state change since the daemon started"}
        {d.opencode_changes
          .slice(-8)
          .reverse()
          .map((ch, i) => (
            <div key={i}>
              {ago(ch.at, d.now)}: {ch.state}
              {ch.reason ? ` — ${ch.reason}` : ""}
            </div>
          ))}
      </div>
      <div class="section dim">this page</div>
      <div class="row" data-testid="stuck-sse" data-connected={String(page.connected)}>
        live stream: {page.connected ? "connected" : `reconnecting (${page.retries} tries)`}, last event received{" "}
        {page.lastEvent ? `${duration((Date.now() - page.lastEvent) / 1000)} ago` : "never"}
      </div>
    </>
  );
}
