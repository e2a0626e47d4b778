import { defineConfig } from "vitest/config";

// Unit tests of the web app's state logic (src/**/*.test.ts), in node: no DOM, no browser. The production
// build (vite.config.ts) never sees them, as nothing in the app imports a test file.
export default defineConfig({
  test: {
    environment: "node",
    include: ["src/**/*.test.ts"],
  },
});
