// One cold start, in a fresh process: `node … bench/cold-start.ts <case> <target> <dataDir>`
// builds the case's Kiln program, compiles it, loads the shared weights and runs one step,
// then prints JSON: the time from this process's start (performance.now() counts from it) to
// the first loss, and k.compile's share. bench/run.ts spawns it (and torch-peer.py --cold).

import * as k from "kiln";
import { readFileSync } from "node:fs";
import * as path from "node:path";
import { BENCH_CASES } from "./cases/all-cases.ts";
import type { CaseData, CaseId } from "./cases/case.ts";

const [id, target, dir] = process.argv.slice(2) as [CaseId, string, string];
const spec = JSON.parse(readFileSync(path.join(dir, "arrays.json"), "utf8")) as Record<string, { file: string; dtype: string }>;
const data: CaseData = Object.fromEntries(
  Object.entries(spec).map(([name, a]) => {
    const bytes = readFileSync(a.file);
    const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
    return [name, a.dtype === "i32" ? new Int32Array(buffer) : new Float32Array(buffer)];
  }),
);
const program = BENCH_CASES[id].kiln();
const compileStart = performance.now();
const exe = await k.compile(program.fn, program.specs, { target });
const compileMs = performance.now() - compileStart;
program.setup?.(exe, data);
const loss = program.output(await exe.run(program.inputs(data)))[0];
console.log(JSON.stringify({ ms: performance.now(), compileMs, loss }));
process.exit(0);
