// Per-launch kernel times of a program on the wasm target (`npx tsx --conditions=kiln-source
// bench/wasm-profile.ts <model.ts> <export> [threads] [steps]`): compiles the export, fills
// its inputs with deterministic values, times the first step and the median of later steps
// per launch (kernel/section), printed slowest first.

import path from "node:path";
import { pathToFileURL } from "node:url";
import { createWasmExecutor } from "../targets/wasm.ts";
import { traceProgram, type Program } from "../dsl/program.ts";
import { nodeOf } from "../compiler/ir/graph.ts";
import type { HostTensor } from "../compiler/ir/host-tensor.ts";

const [file, entry, threadsArg, stepsArg] = process.argv.slice(2);
if (!file || !entry) throw new Error("usage: wasm-profile.ts <model.ts> <export> [threads] [steps]");
const mod = (await import(pathToFileURL(path.resolve(file)).href)) as Record<string, Program>;
const g = traceProgram(mod[entry]!, entry).graph;
const threads = Number(threadsArg ?? 1);
const steps = Number(stepsArg ?? 5);
const t0 = performance.now();
const exe = await createWasmExecutor(g, { threads });
const compileMs = performance.now() - t0;
const inputs: Record<string, HostTensor> = {};
for (const id of g.inputs) {
  const n = nodeOf(g, id);
  if (n.op !== "input") continue;
  const size = n.type.shape.reduce((a, b) => a * b, 1);
  const data = n.type.dtype === "i32" ? Int32Array.from({ length: size }, (_, i) => i % 10) : Float32Array.from({ length: size }, (_, i) => Math.sin(i) * 0.1);
  inputs[n.name] = { dtype: n.type.dtype, shape: n.type.shape, data } as HostTensor;
}
exe.runner.write(inputs);
const names = exe.runner.launchNames();
const per: number[][] = names.map(() => []);
const totals: number[] = [];
const cpu: number[] = [];
for (let s = 0; s < steps; s++) {
  const prof: number[] = [];
  const t = performance.now();
  const c = process.cpuUsage();
  exe.runner.execute(prof);
  totals.push(performance.now() - t);
  cpu.push(process.cpuUsage(c).user / 1000);
  prof.forEach((ms, i) => per[i]!.push(ms));
}
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const later = (xs: number[]): number[] => (xs.length > 1 ? xs.slice(1) : xs);
console.log(
  `compile ${compileMs.toFixed(0)} ms, first step ${totals[0]!.toFixed(1)} ms, median later ${median(later(totals)).toFixed(1)} ms wall, ${median(later(cpu)).toFixed(1)} ms CPU (threads ${threads}, CPU summed over them)`,
);
const rows = names.map((n, i) => ({ n, first: per[i]![0]!, med: median(later(per[i]!)) })).sort((a, b) => b.med - a.med);
for (const r of rows.slice(0, 15)) console.log(`${r.med.toFixed(2).padStart(9)} ms  (first ${r.first.toFixed(1)})  ${r.n}`);
await exe.close();
