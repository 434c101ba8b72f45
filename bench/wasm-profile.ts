// Per-launch kernel times of a program on the wasm target (`npx tsx --conditions=kiln-source
// bench/wasm-profile.ts <model.ts> <export> [threads] [steps]`): compiles the export, fills
// its inputs with deterministic values, times the first step and the median of later steps
// per launch (kernel/section), printed slowest first. With --cpu (one thread) launches are timed
// by process CPU time, steadier than the wall clock on a shared machine. KILN_PROFILE_TOP=n prints
// the n slowest launches (default 15).

import { createWasmExecutor } from "../targets/wasm.ts";
import { probeInputs, tracedExport } from "./probe-program.ts";

const args = process.argv.slice(2);
const cpuClock = args.includes("--cpu");
const [file, entry, threadsArg, stepsArg] = args.filter((a) => !a.startsWith("--"));
if (!file || !entry) throw new Error("usage: wasm-profile.ts <model.ts> <export> [threads] [steps] [--cpu]");
const g = await tracedExport(file, entry);
const threads = Number(threadsArg ?? 1);
const steps = Number(stepsArg ?? 5);
const t0 = performance.now();
const exe = await createWasmExecutor(g, { threads });
const compileMs = performance.now() - t0;
// Launches run on the calling thread alone until the workers are up (runtime/wasm/pool.ts): wait for them.
await exe.runner.whenThreadsReady();
if (cpuClock) {
  if (threads !== 1) throw new Error("--cpu times launches by process CPU: one thread only");
  performance.now = (): number => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1000;
  };
}
const inputs = probeInputs(g);
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
for (const r of rows.slice(0, Number(process.env.KILN_PROFILE_TOP ?? 15)))
  console.log(`${r.med.toFixed(2).padStart(9)} ms  (first ${r.first.toFixed(1)})  ${r.n}`);
await exe.close();
