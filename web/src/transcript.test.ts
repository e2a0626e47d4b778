import { describe, expect, it } from "vitest";
import type { Message } from "./api";
import { transcript } from "./transcript";

function msg(role: "user" | "assistant", parts: Message["parts"]): Message {
  return { info: { id: role + parts.length, sessionID: "s", role, time: { created: 1 } }, parts };
}

describe("transcript", () => {
  it("writes the asks, the answers and the commands, failed ones marked", () => {
    const part = { id: "p", sessionID: "s", messageID: "m" };
    const md = transcript("Fix the build", [
      msg("user", [{ ...part, type: "text", text: "please fix it" }]),
      msg("assistant", [
        { ...part, type: "tool", tool: "bash", state: { status: "completed", input: { command: "make" }, metadata: { exit: 2 } } },
        { ...part, type: "text", text: "It needed a ```fence``` fix.\n" },
        { ...part, type: "step-start" },
      ]),
    ]);
    expect(md).toBe(
      "# Fix the build\n\n## you\n\nplease fix it\n\n## agent\n\n**bash** (exit 2)\n```\n$ make\n```\n\nIt needed a ```fence``` fix.\n",
    );
  });
  it("a command holding backticks gets a longer fence", () => {
    const part = { id: "p", sessionID: "s", messageID: "m" };
    const md = transcript("", [
      msg("assistant", [{ ...part, type: "tool", tool: "bash", state: { status: "completed", input: { command: "echo ```" } } }]),
    ]);
    expect(md).toContain("````\n$ echo ```\n````");
    expect(md.startsWith("# chat\n")).toBe(true);
  });
});
