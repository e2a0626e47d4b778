import { describe, expect, it } from "vitest";
import { fitted, refusal } from "./attachments";

describe("refusal", () => {
  it("takes photos and text files", () => {
    expect(refusal({ name: "a.jpg", type: "image/jpeg", size: 5 << 20 })).toBeNull();
    expect(refusal({ name: "notes.md", type: "", size: 1000 })).toBeNull();
    expect(refusal({ name: "log.txt", type: "text/plain", size: 1000 })).toBeNull();
  });
  it("refuses what is neither, in one line naming the file", () => {
    expect(refusal({ name: "app.zip", type: "application/zip", size: 10 })).toBe(
      "app.zip: only photos and text files can be attached",
    );
  });
  it("refuses a 30 MB photo and a big text file, saying the size", () => {
    expect(refusal({ name: "big.jpg", type: "image/jpeg", size: 30 << 20 })).toBe("big.jpg is 30.0 MB: at most 25.0 MB");
    expect(refusal({ name: "dump.txt", type: "text/plain", size: 300 << 10 })).toContain("at most 256 KB");
  });
});

describe("fitted", () => {
  it("keeps small images and shrinks big ones to 2048 on the longer side", () => {
    expect(fitted(800, 600)).toEqual({ width: 800, height: 600 });
    expect(fitted(4032, 3024)).toEqual({ width: 2048, height: 1536 });
    expect(fitted(3000, 6000)).toEqual({ width: 1024, height: 2048 });
  });
});
