import { describe, expect, it } from "vitest";
import { filePatch } from "./patches";

const PATCH = `diff --git a/a.txt b/a.txt
new file mode 100644
--- /dev/null
+++ b/a.txt
@@ -0,0 +1 @@
+a
diff --git a/dir/b b.txt b/dir/b b.txt
--- a/dir/b b.txt
+++ b/dir/b b.txt
@@ -1 +1 @@
-old
+new
`;

describe("filePatch", () => {
  it("cuts one file's block out of the whole patch", () => {
    expect(filePatch(PATCH, "a.txt")).toBe(
      "diff --git a/a.txt b/a.txt\nnew file mode 100644\n--- /dev/null\n+++ b/a.txt\n@@ -0,0 +1 @@\n+a\n",
    );
    expect(filePatch(PATCH, "dir/b b.txt")).toContain("+new");
  });
  it("answers nothing for a file the (capped) patch does not hold", () => {
    expect(filePatch(PATCH, "missing.txt")).toBe("");
    expect(filePatch("", "a.txt")).toBe("");
  });
});
