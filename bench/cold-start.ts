// One cold start, in a fresh process: `node … bench/cold-start.ts <case> <target> <dataDir>`
// builds the case's Kiln program, compiles it, loads the shared weights and runs one step,
// then prints JSON: the time from this process's start (performance.now() counts from it) to
// the first loss, and its parts: `readyMs` (Node's own start and `import "kiln"`, which the
// static imports below run before this body), `buildMs` (constructing the model: parameter
// init), `compileMs` (k.compile: trace, compile, runner), `runMs` (the first exe.run), and
// `stages`, k.compile's stages (exe.compileStats), `cpuMs`, the process's CPU time (every thread) up to the loss (`readyCpuMs`: up to ready), and
// where Linux gives it (bench/thread-cpu.ts), `main`: the main thread's own CPU time in
// each part, which is what the wall time is on a quiet machine and what a loaded one inflates
// least (it leaves out the wasm workers' boot, which overlaps the compile). `kiln` says which "kiln" the
// process imported (the built dist/ or the TypeScript sources). bench/run.ts spawns it, as
// plain node on an esbuild bundle of this file (what a user's JavaScript importing the built
// package gets) and through tsx on the sources (what `npm run demo` in a checkout gets).

import * as k from "kiln";
import { readFileSync } from "node:fs";
import * as path from "node:path";
import { BENCH_CASES } from "./cases/all-cases.ts";
import type { CaseData, CaseId } from "./cases/case.ts";
import { threadCpuMs } from "./thread-cpu.ts";

const readyMs = performance.now();
const readyCpu = process.cpuUsage();
const mainReady = threadCpuMs();
const [id, target, dir] = process.argv.slice(2) as [CaseId, string, string];
const spec = JSON.parse(readFileSync(path.join(dir, "arrays.json"), "utf8")) as Record<string, { file: string; dtype: string }>;
const data: CaseData = Object.fromEntries(
  Object.entries(spec).map(([name, a]) => {
    // A view of the file's bytes where they are 4-byte aligned (a file this size gets a buffer
    // of its own), as a program loading its weights would: copying them cost the row ~2 ms of
    // fresh pages that were not Kiln's.
    const bytes = readFileSync(a.file);
    const buffer = bytes.byteOffset % 4 === 0 ? bytes.buffer : bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
    const at = bytes.byteOffset % 4 === 0 ? bytes.byteOffset : 0;
    const n = bytes.byteLength / 4;
    return [name, a.dtype === "i32" ? new Int32Array(buffer, at, n) : new Float32Array(buffer, at, n)];
  }),
);
const buildStart = performance.now();
const mainBuild = threadCpuMs();
const program = BENCH_CASES[id].kiln();
const compileStart = performance.now();
const mainCompile = threadCpuMs();
const exe = await k.compile(program.fn, program.specs, { target });
const compileEnd = performance.now();
const mainCompiled = threadCpuMs();
program.setup?.(exe, data);
const runStart = performance.now();
const loss = program.output(await exe.run(program.inputs(data)))[0];
const ms = performance.now();
const cpu = process.cpuUsage();
const mainEnd = threadCpuMs();
const main =
  mainReady === undefined || mainBuild === undefined || mainCompile === undefined || mainCompiled === undefined || mainEnd === undefined
    ? undefined
    : { readyMs: mainReady, buildMs: mainCompile - mainBuild, compileMs: mainCompiled - mainCompile, runMs: mainEnd - mainCompiled, ms: mainEnd };
console.log(
  JSON.stringify({
    ms,
    readyMs,
    buildMs: compileStart - buildStart,
    compileMs: compileEnd - compileStart,
    runMs: ms - runStart,
    cpuMs: (cpu.user + cpu.system) / 1000,
    readyCpuMs: (readyCpu.user + readyCpu.system) / 1000,
    main,
    loss,
    // k.compile's stages (trace, the passes, render, runner), wall ms: where a change moved time.
    stages: Object.fromEntries(exe.compileStats.stages.map((st) => [st.name, st.ms])),
    kiln: import.meta.resolve("kiln"),
    // How the built entry loaded the library (scripts/library-script.mjs): "accepted" = with the V8 code cache of Kiln's own code; "off" (KILN_LIBRARY_CACHE=0), "none", "elsewhere", "rejected" = compiled from source; absent for the sources.
    libraryCache: (globalThis as Record<symbol, { codeCache?: string } | undefined>)[Symbol.for("kiln.library")]?.codeCache,
  }),
);
process.exit(0);
