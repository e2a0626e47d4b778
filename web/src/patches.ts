// Reading the daemon's unified patch (GET /admin/worktrees/.../diff) one file at a time.

/** The patch of one file, cut out of the whole unified patch ("" when the patch does not hold it). */
export function filePatch(patch: string, path: string): string {
  const blocks = patch.split(/^(?=diff --git )/m);
  return blocks.find((b) => b.startsWith("diff --git ") && b.split("\n", 1)[0].endsWith(` b/${path}`)) ?? "";
}
