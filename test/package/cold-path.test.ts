// The built package's cold path (issue 14: cold start): scripts/build-package.mjs writes the
// JavaScript into a scratch folder inside the checkout (out/ is ignored; node_modules resolves
// from there), and a plain `node` process imports its dsl/index.js, compiles and runs a small
// MLP training step for the cpu target, then for "reference", recording every module Node loads
// (a module.register load hook). Checks: the built entry exports what dsl/index.ts exports
// (esbuild's metafile of a one-file bundle of the sources, no code splitting); the
// cpu path loads no chunk holding the WebGPU or CUDA targets, their renderers or runtimes, or
// the interpreter — which the "reference" compile then does load (so the hook sees dynamic
// imports, and the deferred registry entries work in the bundle); that `import "kiln"` reads one
// file of Kiln's (the chunks it needs are folded into dsl/index.js); and that nothing on the cpu
// path reads process.stdout or process.stderr (each first read creates the stream). And the
// library's V8 code cache (scripts/library-script.mjs): the entry takes it where the build
// wrote it and not in a copy of the package elsewhere (the cache names the folder it was made
// in), and a shape error names the user's line, its stack real files, with and without it.

import { execFileSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { build } from "esbuild";
import { afterAll, beforeAll, expect, test } from "vitest";
import { FULL } from "../util/full.ts";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
let scratch = "";

/** What the child prints: the entry's export names, and the module URLs loaded after the cpu run and after the reference run. */
interface ChildReport {
  readonly exports: string[];
  /** The module URLs loaded by `import "kiln"`. */
  readonly afterImport: string[];
  readonly afterCpu: string[];
  readonly afterReference: string[];
  readonly losses: number[];
  /** process.stdout / process.stderr reads during import "kiln" and the cpu compile and run. */
  readonly stdioAfterCpu: string[];
  /** How the entry loaded library.js (scripts/library-script.mjs): "accepted" when V8 took the code cache. */
  readonly codeCache: string;
  /** A shape error raised by a traced op (the line of CHILD with \`k.matmul(a, b)\`): its message and the files its stack names. */
  readonly error: { readonly message: string; readonly files: string[] };
}
let report: ChildReport;
/** The child's import-only report for a copy of the built package in another folder. */
let moved: Pick<ChildReport, "codeCache" | "error">;
/** The same after the copy's dsl/write-library-cache.js wrote it a cache of its own. */
let movedRewritten: Pick<ChildReport, "codeCache" | "error"> | undefined;
/** What a CommonJS program that requires the built entry sees: typeof compile and the code cache state. */
let required = "";
/** The same for the built package under --enable-source-maps. */
let mapped: Pick<ChildReport, "codeCache" | "error">;

const HOOKS = `
import { appendFileSync } from "node:fs";
export async function load(url, context, next) {
  appendFileSync(process.env.KILN_LOAD_LOG, url + "\\n");
  return next(url, context);
}
`;

const CHILD = `
import { readFileSync } from "node:fs";
import { register } from "node:module";
register(new URL("./hooks.mjs", import.meta.url));
const log = () => readFileSync(process.env.KILN_LOAD_LOG, "utf8").trim().split("\\n");
// Who reads process.stdout / process.stderr (Node creates the stream on the first read).
const stdioReads = [];
for (const name of ["stdout", "stderr"]) {
  const d = Object.getOwnPropertyDescriptor(process, name);
  Object.defineProperty(process, name, { configurable: true, enumerable: d.enumerable, get() { stdioReads.push(name); return d.get.call(this); } });
}
const k = await import(process.env.KILN_ENTRY);
const afterImport = log();
const codeCache = globalThis[Symbol.for("kiln.library")]?.codeCache;
let error;
try {
  await k.compile((a, b) => k.matmul(a, b), [k.f32([2, 3]), k.f32([4, 5])], { target: "cpu" });
} catch (e) {
  error = { message: e.message, files: [...e.stack.matchAll(/^\\s+at (?:.* \\()?((?:file:|\\/)[^()\\s]*?):\\d+:\\d+\\)?$/gm)].map((m) => m[1]) };
}
if (process.env.KILN_IMPORT_ONLY) {
  console.log(JSON.stringify({ codeCache, error }));
  process.exit(0);
}
const step = (net) => k.trainStep(net, (logits, y) => k.nn.functional.crossEntropy(logits, y), k.optim.sgd({ lr: 0.1 }));
const net = k.nn.sequential(k.nn.linear(4, 8), k.nn.relu(), k.nn.linear(8, 3));
const x = Array.from({ length: 8 }, (_, i) => Math.sin(i)), y = [0, 2];
const losses = [];
for (const target of ["cpu", "reference"]) {
  const exe = await k.compile(step(net), [k.f32([2, 4]), k.i32([2])], { target });
  losses.push((await exe.run([x, y])).loss.data[0]);
  await exe.close?.();
  if (target === "cpu") globalThis.afterCpu = log(), globalThis.stdioAfterCpu = [...stdioReads];
}
console.log(JSON.stringify({ exports: Object.keys(k), afterImport, afterCpu: globalThis.afterCpu, afterReference: log(), losses, stdioAfterCpu: globalThis.stdioAfterCpu, codeCache, error }));
process.exit(0);
`;

beforeAll(() => {
  mkdirSync(path.join(root, "out"), { recursive: true });
  scratch = mkdtempSync(path.join(root, "out", ".cold-path-"));
  const pkg = path.join(scratch, "pkg");
  execFileSync(process.execPath, [path.join(root, "scripts", "build-package.mjs"), "--outdir", pkg], { cwd: root, stdio: "pipe" });
  writeFileSync(path.join(scratch, "hooks.mjs"), HOOKS);
  writeFileSync(path.join(scratch, "child.mjs"), CHILD);
  const logFile = path.join(scratch, "loaded.txt");
  writeFileSync(logFile, "");
  /** Runs child.mjs on the entry in `pkgDir` (import only, unless `full`) and returns its last line's JSON. */
  const runChild = <T>(pkgDir: string, opts: { full?: boolean; nodeArgs?: string[] } = {}): T => {
    const out = execFileSync(process.execPath, [...(opts.nodeArgs ?? []), path.join(scratch, "child.mjs")], {
      cwd: scratch,
      encoding: "utf8",
      env: {
        ...process.env,
        NODE_OPTIONS: "",
        ...(opts.full ? {} : { KILN_IMPORT_ONLY: "1" }),
        KILN_LOAD_LOG: logFile,
        KILN_ENTRY: pathToFileURL(path.join(pkgDir, "dsl", "index.js")).href,
      },
    });
    return JSON.parse(out.trim().split("\n").at(-1)!) as T;
  };
  report = runChild<ChildReport>(pkg, { full: true });
  // The same build copied elsewhere (as an installed tarball is): its code cache names the build's folder.
  const movedPkg = path.join(scratch, "moved", "pkg");
  cpSync(pkg, movedPkg, { recursive: true });
  moved = runChild<typeof moved>(movedPkg);
  // Its own cache, written where it now is by the script the build ships (as an installed
  // package can): the same script the build just ran, so only under KILN_FULL (~2 s).
  if (FULL) {
    execFileSync(process.execPath, [path.join(movedPkg, "dsl", "write-library-cache.js")], { cwd: scratch, stdio: "pipe" });
    movedRewritten = runChild<typeof moved>(movedPkg);
  }
  // Under --enable-source-maps the entry loads index.esm.js, whose frames Node maps to the sources.
  mapped = runChild<typeof mapped>(pkg, { nodeArgs: ["--enable-source-maps"] });
  // A CommonJS program's require("kiln") (require of an ES module, Node 20.19+: the entry has no top-level await).
  required = execFileSync(
    process.execPath,
    [
      "-e",
      'const k = require(process.argv[1]); process.stdout.write(`${typeof k.compile} ${globalThis[Symbol.for("kiln.library")].codeCache}`)',
      path.join(pkg, "dsl", "index.js"),
    ],
    { cwd: scratch, encoding: "utf8", env: { ...process.env, NODE_OPTIONS: "" } },
  );
}, 120_000);

afterAll(() => {
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

/** A stack frame's file: a file URL, or a path (frames Node maps through a source map). */
const filePath = (f: string): string => (f.startsWith("file:") ? fileURLToPath(f) : f);

/** The source files (from each chunk's source map) of the built modules among `urls` (dsl/index.js: the library.js it compiles, which index.esm.js.map maps). */
function sourcesOf(urls: readonly string[]): string[] {
  const pkg = pathToFileURL(path.join(scratch, "pkg")).href;
  return urls
    .filter((u) => u.startsWith(pkg) && u.endsWith(".js"))
    .map((u) => (u === `${pkg}/dsl/index.js` ? `${pkg}/dsl/index.esm.js` : u))
    .flatMap((u) => (JSON.parse(readFileSync(`${fileURLToPath(u)}.map`, "utf8")) as { sources: string[] }).sources)
    .map((s) => s.replace(/^(\.\.\/)+/, ""));
}

const GPU_OR_INTERPRETER =
  /^(codegen\/(wgsl|cuda)\/|runtime\/(webgpu|cuda)\/|targets\/(webgpu|cuda)[^/]*\.ts$|targets\/reference\.ts$|compiler\/ir\/interpret\.ts$)/;

test("the built entry exports the same names as the sources", async () => {
  // The sources' exports as esbuild lists them for a bundle without code splitting (and
  // without importing the sources here: this file stays cheap).
  const single = await build({
    absWorkingDir: root,
    entryPoints: ["dsl/index.ts"],
    bundle: true,
    write: false,
    outdir: path.join(scratch, "single"),
    format: "esm",
    platform: "node",
    packages: "external",
    conditions: ["kiln-source"],
    metafile: true,
    logLevel: "silent",
  });
  const entry = Object.values(single.metafile.outputs).find((o) => o.entryPoint === "dsl/index.ts");
  expect(entry?.exports.length).toBeGreaterThan(50);
  expect([...report.exports].sort()).toEqual([...entry!.exports].sort());
});

test("a cpu compile and run loads no WebGPU, CUDA or interpreter code; a reference compile then loads the interpreter", () => {
  const cpu = sourcesOf(report.afterCpu);
  // The hook saw the wasm runtime (the dynamic imports it sees: the reference compile below loads the interpreter so).
  expect(cpu).toContain("runtime/wasm/run-artifact.ts");
  expect(cpu.filter((s) => GPU_OR_INTERPRETER.test(s))).toEqual([]);
  const reference = sourcesOf(report.afterReference);
  expect(reference).toContain("compiler/ir/interpret.ts");
  expect(reference.filter((s) => /^codegen\/(wgsl|cuda)\//.test(s))).toEqual([]);
  // Both targets computed the same first loss (the reference in float64): the deferred entry runs.
  expect(report.losses[1]).toBeCloseTo(report.losses[0]!, 5);
});

test("the entry compiles library.js with the V8 code cache the build wrote; a copy elsewhere compiles it from source until its write-library-cache.js writes its own", () => {
  // scripts/library-script.mjs: the cache names the folder it was made in, so only that folder uses it.
  expect(report.codeCache).toBe("accepted");
  expect(moved.codeCache).toBe("elsewhere");
  if (FULL) expect(movedRewritten?.codeCache).toBe("accepted");
  expect(mapped.codeCache).toBe("module");
  expect(required).toBe("function accepted");
});

test("errors name the user's line and stack frames name real files, with and without the code cache and under --enable-source-maps", () => {
  const line = CHILD.split("\n").findIndex((l) => l.includes("k.matmul(a, b)")) + 1;
  for (const [r, pkg] of [
    [report, path.join(scratch, "pkg")],
    [moved, path.join(scratch, "moved", "pkg")],
    ...(movedRewritten ? [[movedRewritten, path.join(scratch, "moved", "pkg")] as const] : []),
  ] as const) {
    expect(r.error.message).toMatch(/shape mismatch in matmul/);
    // The user's frame, past Kiln's own (dsl/loc.ts), as a path relative to the working directory.
    expect(r.error.message).toMatch(new RegExp(`at child\\.mjs:${line}:\\d+$`));
    const files = r.error.files.map(filePath);
    expect(files).toContain(path.join(pkg, "dsl", "library.js"));
    expect(files).toContain(path.join(scratch, "child.mjs"));
    for (const f of files) expect(existsSync(f), f).toBe(true);
  }
  // Source maps on: the same message, Kiln's frames mapped to its TypeScript sources.
  expect(mapped.error.message).toMatch(new RegExp(`at child\\.mjs:${line}:\\d+$`));
  const files = mapped.error.files.map(filePath);
  expect(files.some((f) => f.startsWith(path.join(root, "dsl")) && f.endsWith(".ts"))).toBe(true);
  for (const f of files) expect(existsSync(f), f).toBe(true);
});

test('import "kiln" loads one file of Kiln\'s, dsl/index.js (the chunks it needs are folded into it)', () => {
  // Node's loader costs each module a resolve, a read, a compile and a link: ~16 files took
  // ~7 ms more CPU than one (scripts/build-package.mjs, inlineStartupChunks).
  const pkg = pathToFileURL(path.join(scratch, "pkg")).href;
  expect(report.afterImport.filter((u) => u.startsWith(pkg))).toEqual([`${pkg}/dsl/index.js`]);
  // The folded chunks' shims hand the lazily loaded code dsl/index.js's instances: the reference
  // target (a lazy chunk importing them) registered and ran above.
  expect(report.losses).toHaveLength(2);
});

test("import, a cpu compile and its run never read process.stdout or process.stderr (the wasm worker's output is not piped into them)", () => {
  // Reading one creates the stream (a pipe's loads node:net): a cold-start cost nothing printed needs.
  expect(report.stdioAfterCpu).toEqual([]);
});
