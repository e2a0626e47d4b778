import { describe, expect, it } from "vitest";
import { toolOutcome } from "./tools";

describe("toolOutcome", () => {
  it("marks a completed command with a non-zero exit as failed", () => {
    const out = toolOutcome({ status: "completed", metadata: { output: "err\n", exit: 3 } });
    expect(out).toEqual({ exit: 3, failed: true, label: "exit 3" });
  });
  it("leaves a command that exited 0 plain", () => {
    expect(toolOutcome({ status: "completed", metadata: { exit: 0 } })).toEqual({
      exit: 0,
      failed: false,
      label: "",
    });
  });
  it("a tool error fails whatever the metadata says", () => {
    expect(toolOutcome({ status: "error", error: "boom" })).toEqual({ exit: null, failed: true, label: "error" });
  });
  it("ignores an exit that is not a whole number, and tools without one", () => {
    expect(toolOutcome({ status: "completed", metadata: { exit: "3" } }).failed).toBe(false);
    expect(toolOutcome({ status: "completed", metadata: { exit: 1.5 } }).exit).toBeNull();
    expect(toolOutcome({ status: "running" })).toEqual({ exit: null, failed: false, label: "running" });
    expect(toolOutcome(undefined).label).toBe("pending");
  });
});
