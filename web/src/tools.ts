// How a tool call ended, decided once for the view: opencode marks a tool "completed" even when the
// command it ran failed; its bash tool keeps the command's exit status in `metadata.exit`.
import type { ToolState } from "./api";

export interface ToolOutcome {
  /** The command's exit status, when the tool ran one (bash). */
  exit: number | null;
  /** The call failed: the tool itself errored, or its command exited non-zero. */
  failed: boolean;
  /** What the tool's header says after its title ("", "running", "error", "exit 3"). */
  label: string;
}

export function toolOutcome(state: ToolState | undefined): ToolOutcome {
  const st = state ?? { status: "pending" as const };
  const raw = st.metadata?.exit;
  const exit = typeof raw === "number" && Number.isInteger(raw) ? raw : null;
  const failed = st.status === "error" || (exit !== null && exit !== 0);
  let label = st.status === "completed" ? "" : st.status;
  if (st.status === "completed" && exit !== null && exit !== 0) label = `exit ${exit}`;
  return { exit, failed, label };
}
