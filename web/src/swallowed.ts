// The prompt swallowed after a failed reply (DESIGN §6): a prompt that reaches opencode in the moments
// after `session.error`, while the failed turn winds down, is stored but never answered. What the chat shows
// then: the failed reply, the user's prompt after it, and nothing more, with the chat idle. The app offers to
// send such a prompt again.
import type { Message } from "./api";

/** The ids of the user's prompts that opencode kept and will never answer: those after the chat's last
 * reply, when that reply failed (or was stopped), none answers them and no turn runs. */
export function swallowed(messages: Message[] | undefined, running: boolean): string[] {
  if (running || !messages?.length) return [];
  let last = -1;
  for (let i = messages.length - 1; i >= 0 && last < 0; i--) if (messages[i].info.role === "assistant") last = i;
  if (last < 0 || !messages[last].info.error) return [];
  const answered = new Set(messages.filter((m) => m.info.role === "assistant").map((m) => m.info.parentID));
  return messages
    .slice(last + 1)
    .filter((m) => m.info.role === "user" && !answered.has(m.info.id))
    .map((m) => m.info.id);
}
