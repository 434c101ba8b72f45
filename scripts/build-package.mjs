// `npm run build` (and `prepack`): the library as ESM JavaScript + .d.ts in dist/.
// - JavaScript: esbuild bundles the two entry points, dist/dsl/index.js (`import "kiln"`) and
//   dist/cli/main.js (the `kiln` command), with code splitting: what both share, and every
//   module the library imports lazily (`await import(…)`: the IR parsers, the artifact folder
//   writer, the WebGPU and CUDA targets…), goes into dist/chunks/. Node then reads a handful
//   of files at `import "kiln"` instead of ~150 (issue 14: cold start). Every output file sits
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
import { rmSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const outdirAt = process.argv.indexOf("--outdir");
const dist = outdirAt > 0 ? path.resolve(process.argv[outdirAt + 1]) : path.join(root, "dist");
const jsOnly = process.argv.includes("--js-only") || outdirAt > 0;

// --js-only (the bench's cold start) keeps the declarations a full build wrote; the chunks' names change with their contents.
if (jsOnly) rmSync(path.join(dist, "chunks"), { recursive: true, force: true });
else rmSync(dist, { recursive: true, force: true });
await build({
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
  logLevel: "warning",
});
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
