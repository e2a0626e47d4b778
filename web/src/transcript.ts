// A chat as markdown, for "copy transcript": what was asked, what was answered, what ran.
import type { Message } from "./api";
import { toolOutcome } from "./tools";

function fence(text: string): string {
  const longest = Math.max(2, ...(text.match(/`+/g) ?? []).map((m) => m.length));
  const ticks = "`".repeat(longest + 1);
  return `${ticks}\n${text.replace(/\n$/, "")}\n${ticks}`;
}

export function transcript(title: string, messages: Message[]): string {
  const out = [`# ${title || "chat"}`];
  for (const m of messages) {
    const who = m.info.role === "user" ? "## you" : "## agent";
    const body: string[] = [];
    for (const p of m.parts) {
      if (p.type === "text" && p.text?.trim()) body.push(p.text.trim());
      if (p.type === "tool") {
        const st = p.state;
        const command = typeof st?.input?.command === "string" ? st.input.command : "";
        const outcome = toolOutcome(st);
        const status = outcome.failed ? ` (${outcome.label || "failed"})` : "";
        body.push(`**${p.tool ?? "tool"}**${status}${command ? "\n" + fence("$ " + command) : ""}`);
      }
    }
    if (body.length) out.push(who, ...body);
  }
  return out.join("\n\n") + "\n";
}
