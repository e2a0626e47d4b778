import { defineConfig } from "vite";

// Our bundles live under /_app/: opencode's own web UI uses /assets/*, which Caddy must keep sending to it.
export default defineConfig({
  base: "/",
  esbuild: { jsx: "automatic", jsxImportSource: "preact" },
  build: {
    outDir: "dist",
    assetsDir: "_app",
    emptyOutDir: true,
    target: "es2020",
    reportCompressedSize: true,
  },
});
