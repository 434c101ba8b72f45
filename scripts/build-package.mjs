// `npm run build` (and `prepack`): the library as ESM JavaScript + .d.ts in dist/.
// - JavaScript: esbuild bundles the two entry points, dist/dsl/index.js (`import "kiln"`) and
//   dist/cli/main.js (the `kiln` command), with code splitting: what both share, and every
//   module the library imports lazily (`await import(…)`: the IR parsers, the artifact folder
//   writer, the WebGPU and CUDA targets…), goes into dist/chunks/; then the chunks
//   dsl/index.js imports statically are folded into it (inlineStartupChunks), so Node reads one
//   file of Kiln's at `import "kiln"` instead of ~150 (issue 14: cold start). Every output file sits
//   two levels below the package root, as the sources do below the checkout, so the paths
//   modules find beside themselves (new URL("../…", import.meta.url)) agree.
// - Declarations: tsc (tsconfig.build.json, declarations only, no type check; `.ts` specifiers become `.js`).
// What the built code reads at run time stays where it is and ships at the package root
// ("files" in package.json): runtime/**/*.ts, which artifact folders carry as source, and the
// CUDA runtime's C++ sources. (Not inside dist/: a .ts beside a .d.ts is what TypeScript would
// pick when a user's project checks its types.)
//   node scripts/build-package.mjs [--js-only] [--outdir DIR]
//   (--js-only: skip the declarations, ~1 s; --outdir: the JavaScript into DIR instead of dist/,
//   declarations skipped: test/package/cold-path.test.ts checks a build without touching dist/)
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { assertNotReassigned, splitLibrary, writeLibraryCodeCache } from "./library-script.mjs";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const outdirAt = process.argv.indexOf("--outdir");
const dist = outdirAt > 0 ? path.resolve(process.argv[outdirAt + 1]) : path.join(root, "dist");
/** The name a folded chunk's shim holds its bindings in (inlineStartupChunks). */
const HOLDER = "__kilnFoldedChunk";
const jsOnly = process.argv.includes("--js-only") || outdirAt > 0;

// --js-only (the bench's cold start) keeps the declarations a full build wrote; the chunks' names change with their contents.
if (jsOnly) rmSync(path.join(dist, "chunks"), { recursive: true, force: true });
else rmSync(dist, { recursive: true, force: true });
const split = await build({
  absWorkingDir: root,
  entryPoints: { "dsl/index": "dsl/index.ts", "cli/main": "cli/main.ts" },
  outdir: dist,
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "node",
  target: "node20",
  // Dependencies stay imports (npm installs them beside kiln); only Kiln's own modules are bundled.
  packages: "external",
  chunkNames: "chunks/[name]-[hash]",
  // Kiln's own sources, not the built package this script is writing (package.json's self-reference).
  conditions: ["kiln-source"],
  sourcemap: "linked",
  metafile: true,
  logLevel: "warning",
});
await inlineStartupChunks(split.metafile);
// The library as a script with V8's code cache, behind a small entry (scripts/library-script.mjs).
splitLibrary(path.join(dist, "dsl"));
writeLibraryCodeCache(path.join(dist, "dsl"), !process.argv.includes("--no-code-cache"));
if (!jsOnly) {
  const tsc = spawnSync(
    process.execPath,
    // --noCheck: `npm run typecheck` checks the sources; emitting the declarations without a
    // full check writes the same files (all 217 byte for byte when this was added) in a third
    // of the time (~5 s of CPU, not ~13 s: most of `npm pack` and of test/package/pack.test.ts).
    [path.join(root, "node_modules/typescript/bin/tsc"), "-p", path.join(root, "tsconfig.build.json"), "--emitDeclarationOnly", "--noCheck"],
    { stdio: "inherit" },
  );
  if (tsc.status !== 0) process.exit(tsc.status ?? 1);
}

/**
 * Folds the chunks `import "kiln"` loads into dist/dsl/index.js: one module instead of ~16.
 * Node's loader costs each module a resolve, a file read, a compile and a link: one file took
 * `import "kiln"` from ~31 to ~24 ms of CPU (~40 to ~24 ms wall) on this 2-core VM (issue
 * #14.5, cold start). The lazily imported chunks (the WebGPU, CUDA and reference targets, the
 * artifact writer…) and the CLI still import those chunks by name: each becomes a shim that
 * imports dsl/index.js and re-exports its share of the bindings, which dsl/index.js hands over
 * in a registry (keyed by its URL and by the build), so every importer gets the same instances
 * (one KilnError class, one target registry). A shim's exports are copies, so no folded chunk may
 * export a binding it reassigns (checked here).
 */
async function inlineStartupChunks(metafile) {
  const abs = (o) => path.resolve(root, o);
  const outputs = Object.keys(metafile.outputs).filter((o) => o.endsWith(".js"));
  const entry = outputs.find((o) => abs(o) === path.join(dist, "dsl", "index.js"));
  if (!entry) throw new Error("build: no dsl/index.js among esbuild's outputs");
  const folded = new Set();
  const walk = (o) => {
    for (const i of metafile.outputs[o].imports)
      if (i.kind === "import-statement" && !i.external && !folded.has(i.path)) {
        folded.add(i.path);
        walk(i.path);
      }
  };
  walk(entry);
  const key = (o) => path.basename(o);
  for (const o of folded) {
    const text = readFileSync(abs(o), "utf8");
    const block = /export \{([^}]*)\};\s*(?:\/\/# sourceMappingURL=\S+\s*)?$/.exec(text);
    for (const part of block ? block[1].split(",") : []) {
      const local = part.trim().split(/\s+as\s+/)[0];
      if (local) assertNotReassigned(text, local, key(o));
    }
  }
  // dsl/index.js registers the folded chunks under its URL and under this build's id: a bundler
  // that moves the shims and dsl/index.js into one file or splits them into others changes the
  // URLs (import.meta.url is then the output file's), not the id.
  const buildId = `kiln ${createHash("sha256")
    .update(readFileSync(abs(entry)))
    .digest("hex")
    .slice(0, 16)}`;
  const dslDir = path.join(dist, "dsl");
  const entryFile = path.join(dslDir, "index.entry.js");
  const chunkNs = [...folded].map((o, i) => [o, `__chunk${i}`]);
  writeFileSync(
    entryFile,
    [
      'export * from "./index.js";',
      ...chunkNs.map(([o, ns]) => `import * as ${ns} from ${JSON.stringify(`./${path.relative(dslDir, abs(o)).split(path.sep).join("/")}`)};`),
      `const folded = Object.freeze({ ${chunkNs.map(([o, ns]) => `${JSON.stringify(key(o))}: ${ns}`).join(", ")} });`,
      `const registry = (globalThis[Symbol.for("kiln.folded-chunks")] ??= {});`,
      `registry[import.meta.url] = folded;`,
      `registry[${JSON.stringify(buildId)}] = folded;`,
      "",
    ].join("\n"),
  );
  const single = await build({
    entryPoints: [entryFile],
    outfile: path.join(dslDir, "index.js"),
    allowOverwrite: true,
    write: false,
    bundle: true,
    format: "esm",
    platform: "node",
    target: "node20",
    packages: "external",
    sourcemap: "linked",
    logLevel: "warning",
    plugins: [
      {
        name: "lazy-chunks-stay-files",
        setup(b) {
          // A lazily imported chunk stays its own file, named from dist/dsl/.
          b.onResolve({ filter: /.*/ }, (args) => {
            if (args.kind !== "dynamic-import" || !args.path.startsWith(".")) return undefined;
            const target = path.resolve(args.resolveDir, args.path);
            // A chunk that only re-exports folded code (the wasm worker pool's, which the cpu
            // path imports lazily) is folded too: loading it would cost two modules for nothing.
            const lazy = outputs.find((o) => abs(o) === target);
            if (
              lazy &&
              Object.keys(metafile.outputs[lazy].inputs).length === 0 &&
              metafile.outputs[lazy].imports.every((i) => i.external || folded.has(i.path))
            )
              return { path: target };
            const rel = path.relative(dslDir, target).split(path.sep).join("/");
            return { path: rel.startsWith(".") ? rel : `./${rel}`, external: true };
          });
        },
      },
    ],
  });
  rmSync(entryFile);
  for (const f of single.outputFiles) writeFileSync(f.path, f.contents);
  for (const [o] of chunkNs) {
    const exports = metafile.outputs[o].exports;
    if (exports.includes(HOLDER)) throw new Error(`build: ${key(o)} exports ${HOLDER}, the name its shim holds the bindings in`);
    const lines = [
      `// Folded into dsl/index.js (scripts/build-package.mjs, inlineStartupChunks): its bindings, as dsl/index.js registers them.`,
      'import "../dsl/index.js";',
      `const ${HOLDER} = ((r) => r[new URL("../dsl/index.js", import.meta.url).href] ?? r[${JSON.stringify(buildId)}])(globalThis[Symbol.for("kiln.folded-chunks")])[${JSON.stringify(key(o))}];`,
      ...exports.map((e) => (e === "default" ? `export default ${HOLDER}.default;` : `export const ${e} = ${HOLDER}.${e};`)),
      "",
    ];
    writeFileSync(abs(o), lines.join("\n"));
    writeFileSync(`${abs(o)}.map`, JSON.stringify({ version: 3, sources: [], names: [], mappings: "" }));
  }
}
