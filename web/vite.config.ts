import { build, defineConfig, type Plugin } from "vite";

// Our bundles live under /_app/: opencode's own web UI uses /assets/*, which Caddy must keep sending to it.
// public/_app/ holds the manifest and the icons (scripts/make-icons.py), copied as they are.
export default defineConfig({
  base: "/",
  esbuild: { jsx: "automatic", jsxImportSource: "preact" },
  plugins: [noPreload(), serviceWorker()],
  build: {
    outDir: "dist",
    assetsDir: "_app",
    emptyOutDir: true,
    target: "es2020",
    reportCompressedSize: true,
    manifest: true, // dist/.vite/manifest.json: what each page loads, for scripts/web-budget.py
    modulePreload: false, // one page, one entry chunk: nothing to preload
  },
});

/** The app's lazy chunks (`import("./Dashboard")`) bring their own styles and import nothing the page lacks, so
 * Vite's helper that preloads a chunk's dependencies (~0.5 KB gzipped, wrapped around every dynamic import) would
 * only weigh on the page. Vite wraps an `import()` whose argument starts with a quote; in parentheses it does not,
 * and Rollup still bundles the chunk (scripts/web-budget.py measures the page with and without it). */
function noPreload(): Plugin {
  return {
    name: "dancodes-no-preload",
    apply: "build",
    transform(code, id) {
      if (!id.includes("/src/") || !code.includes("import(")) return null;
      const out = code.replace(/\bimport\((["'][^"'`]+["'])\)/g, "import(($1))");
      return out === code ? null : { code: out, map: null };
    },
    generateBundle(_options, bundle) {
      // without the helper nothing would load a lazy chunk's CSS file: its styles must come inside it
      for (const item of Object.values(bundle))
        if (item.type === "chunk" && item.isDynamicEntry && item.viteMetadata?.importedCss.size)
          this.error(`${item.fileName} has a CSS file of its own: import its styles with ?inline`);
    },
  };
}

/** dist/sw.js: src/sw/sw.ts bundled on its own (a classic script, no imports), told the files of this build (its
 * shell: every /_app/ file) and a version made from all of their contents and the page's. Any change to the app
 * makes a new sw.js, which is how browsers learn of a deploy. */
function serviceWorker(): Plugin {
  let root = "";
  let publicDir = "";
  return {
    name: "dancodes-service-worker",
    apply: "build",
    enforce: "post",
    configResolved(config) {
      root = config.root;
      publicDir = config.publicDir;
    },
    async generateBundle(_options, bundle) {
      const files = new Map<string, string | Uint8Array>();
      for (const item of Object.values(bundle)) {
        const content = item.type === "chunk" ? item.code : item.source;
        if (item.fileName.startsWith("_app/") || item.fileName === "index.html") files.set("/" + item.fileName, content);
      }
      if (!files.has("/index.html")) this.error("index.html is not in the bundle: the worker's page is unknown");
      const ours = `${publicDir}/_app`;
      for (const name of await this.fs.readdir(ours)) files.set(`/_app/${name}`, await this.fs.readFile(`${ours}/${name}`));
      const names = [...files.keys()].sort();
      const shell = names.filter((name) => name.startsWith("/_app/"));
      const encoder = new TextEncoder();
      const parts = names.flatMap((name) => {
        const content = files.get(name)!;
        return [encoder.encode(`${name}\0${content.length}\0`), typeof content === "string" ? encoder.encode(content) : content];
      });
      const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
      parts.reduce((at, p) => (all.set(p, at), at + p.length), 0);
      // Node 18 (Debian bookworm's nodejs, the image's) has no global `crypto`; node:crypto's webcrypto is the
      // same API (a string specifier: the config is type-checked without Node's types).
      const webcrypto = globalThis.crypto ?? ((await import("node:crypto" as string)) as { webcrypto: Crypto }).webcrypto;
      const digest = new Uint8Array(await webcrypto.subtle.digest("SHA-256", all));
      const version = [...digest.slice(0, 8)].map((b) => b.toString(16).padStart(2, "0")).join("");

      const out = await build({
        configFile: false,
        root,
        publicDir: false,
        logLevel: "warn",
        define: {
          __DANCODES_SHELL__: JSON.stringify(shell),
          __DANCODES_VERSION__: JSON.stringify(version),
        },
        build: {
          write: false,
          minify: true,
          target: "es2020",
          copyPublicDir: false,
          rollupOptions: {
            input: `${root}/src/sw/sw.ts`,
            output: { format: "iife", entryFileNames: "sw.js" },
          },
        },
      });
      const outputs = (Array.isArray(out) ? out : [out]).flatMap((o) => ("output" in o ? o.output : []));
      const worker = outputs.find((o) => o.type === "chunk" && o.fileName === "sw.js");
      if (!worker || worker.type !== "chunk") this.error("the service worker's build made no sw.js");
      this.emitFile({ type: "asset", fileName: "sw.js", source: worker.code });
    },
  };
}
