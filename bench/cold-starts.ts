// The bench's cold-start section: each case in fresh processes, start → first loss, for
//   - "built": plain `node` on an esbuild bundle of bench/cold-start.ts whose `import "kiln"`
//     resolves to the built package (dist/, `npm run build`): what a user's JavaScript gets
//     after `npm install kiln`. dist/ is rebuilt first (JavaScript only) when any source is
//     newer than it, and the output says so;
//   - "sources": node through tsx on the TypeScript sources (`--conditions=kiln-source`), what
//     `npm run demo` in a checkout gets: transpiling included (tsx caches it on disk, warm
//     after the first run);
//   - "built, no library cache": the same without the V8 code cache of Kiln's own code that
//     the build writes beside dist/dsl/library.js (KILN_LIBRARY_CACHE=0; scripts/library-script.mjs):
//     V8 then parses and compiles Kiln's functions as they first run, as for an installed tarball;
//   - "built, cached": the built path again with Kiln's persistent compile cache
//     (KILN_COMPILE_CACHE, targets/compile-cache.ts) filled by one unreported run first: the
//     passes and the renderer skipped. The "built" row runs with the cache off (a true cold start);
//   - PyTorch's torch-peer.py --cold, where it runs.
// Each Kiln cell gives the wall time and its parts (bench/cold-start.ts says what each is)
// and the process's CPU time, which a loaded machine inflates less than the wall time, and
// where Linux counts it, the main thread's CPU time in the same parts (the wall time of a quiet
// machine, less the waits on file reads).

import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, rmSync, statSync } from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { buildSync } from "esbuild";
import { BENCH_CASES } from "./cases/all-cases.ts";
import { torchPython, writeCaseArrays } from "./peers/torch.ts";

const benchDir = path.dirname(fileURLToPath(import.meta.url));
const root = path.dirname(benchDir);
const SOURCE_DIRS = ["dsl", "compiler", "codegen", "runtime", "targets", "cli"];

function newestSourceMs(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestSourceMs(full));
    else if (entry.name.endsWith(".ts")) newest = Math.max(newest, statSync(full).mtimeMs);
  }
  return newest;
}

/**
 * Builds dist/ (JavaScript only) when it is missing or older than a source, and writes the
 * library's code cache when dist/ has none (`npm pack`, which test/package/pack.test.ts runs,
 * rebuilds dist/ without it); returns a note when it did either.
 */
function ensureBuilt(): string | undefined {
  const dsl = path.join(root, "dist", "dsl");
  const entry = path.join(dsl, "index.js");
  const newest = Math.max(...SOURCE_DIRS.map((d) => newestSourceMs(path.join(root, d))));
  // library.js: a dist/ from before the entry compiled the library as a script with a code cache (scripts/library-script.mjs).
  if (existsSync(entry) && existsSync(path.join(dsl, "library.js")) && statSync(entry).mtimeMs >= newest) {
    if (existsSync(path.join(dsl, "library.cache"))) return undefined;
    const written = spawnSync(process.execPath, [path.join(dsl, "write-library-cache.js")], { encoding: "utf8" });
    return written.status === 0
      ? "  (dist/ had no library code cache: written with `node dist/dsl/write-library-cache.js`)"
      : `  (dist/ has no library code cache, and writing one failed: ${written.stderr.trim()})`;
  }
  const built = spawnSync(process.execPath, [path.join(root, "scripts", "build-package.mjs"), "--js-only"], { encoding: "utf8" });
  if (built.status !== 0) throw new Error(`building dist/ failed: ${built.stderr}`);
  return "  (dist/ was older than the sources: rebuilt with `node scripts/build-package.mjs --js-only`)";
}

/** bench/cold-start.ts as one plain-JavaScript file inside the checkout (out/ is ignored), so `import "kiln"` finds the package by its own name. */
function bundleColdStart(): string {
  const outfile = path.join(root, "out", ".cold-start", "cold-start.mjs");
  buildSync({
    entryPoints: [path.join(benchDir, "cold-start.ts")],
    outfile,
    bundle: true,
    format: "esm",
    platform: "node",
    packages: "external",
    // "kiln" by name too: esbuild resolves the package's own name to its sources (a self-reference), which would bundle Kiln in.
    external: ["kiln"],
    logLevel: "warning",
  });
  return outfile;
}

function parseJson(text: string): Record<string, unknown> | undefined {
  try {
    return JSON.parse(text.trim().split("\n").pop() ?? "") as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

const ms = (v: unknown): string => `${Number(v).toFixed(0)}`;

function kilnCell(label: string, result: ReturnType<typeof spawnSync>): string {
  const r = parseJson(String(result.stdout));
  if (!r)
    return `${label}: failed: ${
      String(result.stderr)
        .trim()
        .split("\n")
        .find((l) => l.trim() !== "") ?? `exit ${result.status}`
    }`;
  const main = r["main"] as Record<string, number> | undefined;
  const mainText = main
    ? `; main thread CPU ${ms(main["ms"])} ms = ${ms(main["readyMs"])} + ${ms(main["buildMs"])} + ${ms(main["compileMs"])} + ${ms(main["runMs"])}`
    : "";
  const lib = r["libraryCache"] === undefined ? "" : ` [library code cache: ${String(r["libraryCache"])}]`;
  return `${label}: ${ms(r["ms"])} ms = ready ${ms(r["readyMs"])} + model ${ms(r["buildMs"])} + k.compile ${ms(r["compileMs"])} + first run ${ms(r["runMs"])} (+ data); CPU ${ms(r["cpuMs"])} ms (ready ${ms(r["readyCpuMs"])})${mainText}${lib}`;
}

export function coldStarts(target: string, dir: string, keptPeers: readonly string[] | undefined): string {
  const lines = [
    "\ncold start: a fresh process, process start → first loss, one run each (a loaded machine inflates the wall time; the CPU time less)",
    "  built   = plain node importing the built package (dist/), with the V8 code cache of Kiln's own code the build writes (scripts/library-script.mjs)",
    "  no lib  = the same without that code cache (KILN_LIBRARY_CACHE=0): V8 compiles Kiln's functions as they first run; what an installed tarball gets",
    "  sources = node + tsx on the TypeScript sources: `npm run demo` in a checkout",
    "  cached  = built, with the persistent compile cache (KILN_COMPILE_CACHE) filled by one run before: the passes and renderer skipped",
    '  ready = Node\'s start + import "kiln"; model = building the module (parameter init, drawn lazily); first run = exe.run (on the calling thread alone until the wasm workers are up)',
  ];
  const rebuilt = ensureBuilt();
  if (rebuilt) lines.push(rebuilt);
  const bundle = bundleColdStart();
  const python = keptPeers === undefined || keptPeers.includes("pytorch") ? torchPython() : undefined;
  const source = path.join(benchDir, "cold-start.ts");
  // The repository's source condition must not reach the "built" process (NODE_OPTIONS would
  // carry it); a compile cache the caller set must not reach the true cold start.
  const plainEnv: NodeJS.ProcessEnv = { ...process.env, NODE_OPTIONS: "" };
  delete plainEnv["KILN_COMPILE_CACHE"];
  const cacheDir = path.join(dir, "compile-cache");
  rmSync(cacheDir, { recursive: true, force: true });
  const cachedEnv = { ...plainEnv, KILN_COMPILE_CACHE: cacheDir };
  for (const id of ["mlp", "transformer"] as const) {
    const caseDir = path.join(dir, id);
    writeCaseArrays(BENCH_CASES[id].makeData(), caseDir);
    lines.push(`  ${id}`);
    const built = spawnSync(process.execPath, [bundle, id, target, caseDir], { encoding: "utf8", timeout: 600000, env: plainEnv });
    lines.push(`    ${kilnCell(`kiln ${target}, built  `, built)}`);
    const noLib = spawnSync(process.execPath, [bundle, id, target, caseDir], {
      encoding: "utf8",
      timeout: 600000,
      env: { ...plainEnv, KILN_LIBRARY_CACHE: "0" },
    });
    lines.push(`    ${kilnCell(`kiln ${target}, no lib `, noLib)}`);
    spawnSync(process.execPath, [bundle, id, target, caseDir], { encoding: "utf8", timeout: 600000, env: cachedEnv }); // fills the cache
    const cached = spawnSync(process.execPath, [bundle, id, target, caseDir], { encoding: "utf8", timeout: 600000, env: cachedEnv });
    lines.push(`    ${kilnCell(`kiln ${target}, cached `, cached)}`);
    const fromSource = spawnSync(process.execPath, ["--import", "tsx/esm", "--conditions=kiln-source", source, id, target, caseDir], {
      encoding: "utf8",
      timeout: 600000,
    });
    lines.push(`    ${kilnCell(`kiln ${target}, sources`, fromSource)}`);
    if (python) {
      const torch = spawnSync(python, [path.join(benchDir, "peers", "torch-peer.py"), "--cold", id, caseDir], { encoding: "utf8", timeout: 600000 });
      const t = parseJson(torch.stdout);
      lines.push(`    ${t ? `pytorch: ${ms(t["ms"])} ms` : `pytorch failed: ${torch.stderr.trim().split("\n").pop()}`}`);
    }
  }
  lines.push("  aims (issue 14): MLP < 200 ms, transformer < 1 s (the built path; say whether with the compile cache)");
  return lines.join("\n");
}
