import { describe, expect, it } from "vitest";
import type { Message } from "./api";
import recorded from "./recorded/swallowed.json";
import { swallowed } from "./swallowed";

// Message lists as opencode 1.18.33 stored them (GET /session/{id}/message), with the scripted LLM:
//   answered                two prompts, two replies
//   swallowed               a reply, then a reply failed by the provider (400 invalid_request_error), and a
//                           prompt sent the moment `session.error` arrived: stored, never answered, idle
//   answered_after_failure  the same, the prompt sent 0.5 s after `session.error`: answered
//   failed_last             a failed reply and nothing after it
//   no_reply_after_failure  a failed reply, then a prompt stored with `noReply` (what the browser test makes)
const lists = recorded as unknown as Record<string, Message[]>;
const userId = (list: Message[], text: string) =>
  list.find((m) => m.info.role === "user" && m.parts.some((p) => p.text === text))!.info.id;

describe("swallowed", () => {
  it("finds the prompt sent in the failed turn's last moments", () => {
    const list = lists.swallowed;
    expect(swallowed(list, false)).toEqual([userId(list, "sent right after the failure")]);
  });

  it("finds a prompt stored after a failed reply and never answered", () => {
    const list = lists.no_reply_after_failure;
    expect(swallowed(list, false)).toEqual([userId(list, "stored, never answered")]);
  });

  it("finds nothing while a turn runs: the prompt may still be answered", () => {
    expect(swallowed(lists.swallowed, true)).toEqual([]);
  });

  it("finds nothing once the prompt is answered", () => {
    expect(swallowed(lists.answered_after_failure, false)).toEqual([]);
  });

  it("finds nothing when the failed reply is the last message", () => {
    expect(swallowed(lists.failed_last, false)).toEqual([]);
  });

  it("finds nothing in a chat whose replies did not fail", () => {
    expect(swallowed(lists.answered, false)).toEqual([]);
    // a prompt just sent, its reply not started: the last reply did not fail
    expect(swallowed(lists.answered.slice(0, 3), false)).toEqual([]);
    expect(swallowed([], false)).toEqual([]);
    expect(swallowed(undefined, false)).toEqual([]);
  });

  it("finds nothing before any reply: a first prompt waits for its turn", () => {
    expect(swallowed(lists.answered.slice(0, 1), false)).toEqual([]);
  });

  it("finds every prompt swallowed after the failure, in order, and none of those answered", () => {
    const list = lists.no_reply_after_failure;
    const again = structuredClone(list[2]);
    again.info.id = list[2].info.id.replace(/.$/, "~");
    expect(swallowed([...list, again], false)).toEqual([list[2].info.id, again.info.id]);
    // the one resent and answered since is no longer offered; the reply is the last message, and did not fail
    const answer = structuredClone(lists.answered[1]);
    answer.info.parentID = again.info.id;
    expect(swallowed([...list, again, answer], false)).toEqual([]);
  });

  it("counts a stopped reply as failed: a prompt after it that nothing answers is offered", () => {
    const list = structuredClone(lists.no_reply_after_failure);
    list[1].info.error = { name: "MessageAbortedError", data: { message: "Aborted" } };
    expect(swallowed(list, false)).toEqual([list[2].info.id]);
  });
});
