// A/B timing of two checkouts' wasm backends in one process (`npx tsx --conditions=kiln-source
// bench/wasm-ab.ts <other-checkout> <model.ts> <export> [threads] [rounds] [--cpu]`): the program is
// traced once here, compiled by this checkout's and the other's targets/wasm.ts, and the two
// executables run interleaved, so a shared machine's load hits both alike. Prints median wall
// and process-CPU milliseconds per step and the slowest launches' medians (with --cpu, timed
// by process CPU instead of the wall clock).

import path from "node:path";
import { pathToFileURL } from "node:url";
import { createWasmExecutor } from "../targets/wasm.ts";
import { probeInputs, tracedExport } from "./probe-program.ts";

const args = process.argv.slice(2);
// --cpu: per-launch times as this process's CPU time (steady under a shared machine's load; one thread only)
const cpuClock = args.includes("--cpu");
const [other, file, entry, threadsArg, roundsArg] = args.filter((a) => !a.startsWith("--"));
if (!other || !file || !entry) throw new Error("usage: wasm-ab.ts <other-checkout> <model.ts> <export> [threads] [rounds]");
const g = await tracedExport(file, entry);
const threads = Number(threadsArg ?? 1);
const rounds = Number(roundsArg ?? 9);
if (cpuClock) {
  if (threads !== 1) throw new Error("--cpu times launches by process CPU: one thread only");
  performance.now = (): number => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1000;
  };
}
const otherWasm = (await import(pathToFileURL(path.resolve(other, "targets/wasm.ts")).href)) as { createWasmExecutor: typeof createWasmExecutor };
const inputs = probeInputs(g);
const exes = [
  { label: "other", exe: await otherWasm.createWasmExecutor(g as never, { threads }) },
  { label: "this", exe: await createWasmExecutor(g, { threads }) },
];
const stats = exes.map(() => ({ wall: [] as number[], cpu: [] as number[], per: new Map<string, number[]>() }));
for (const { exe } of exes) {
  await exe.runner.whenThreadsReady(); // launches stay on the calling thread until the workers are up
  exe.runner.write(inputs);
  exe.runner.execute();
}
for (let r = 0; r < rounds; r++)
  exes.forEach(({ exe }, i) => {
    const prof: number[] = [];
    const t = performance.now();
    const c = process.cpuUsage();
    exe.runner.execute(prof);
    stats[i]!.cpu.push(process.cpuUsage(c).user / 1000);
    stats[i]!.wall.push(performance.now() - t);
    const names = exe.runner.launchNames();
    prof.forEach((ms, j) => {
      const list = stats[i]!.per.get(names[j]!) ?? [];
      list.push(ms);
      stats[i]!.per.set(names[j]!, list);
    });
  });
const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
exes.forEach(({ label }, i) =>
  console.log(
    `${label.padEnd(6)} threads ${threads}: median ${median(stats[i]!.wall).toFixed(2)} ms wall, ${median(stats[i]!.cpu).toFixed(2)} ms CPU (min ${Math.min(...stats[i]!.wall).toFixed(2)} wall)`,
  ),
);
const names = new Set([...stats[0]!.per.keys(), ...stats[1]!.per.keys()]);
const rows = [...names].map((n) => ({
  n,
  a: stats[0]!.per.has(n) ? median(stats[0]!.per.get(n)!) : 0,
  b: stats[1]!.per.has(n) ? median(stats[1]!.per.get(n)!) : 0,
}));
rows.sort((x, y) => Math.max(y.a, y.b) - Math.max(x.a, x.b));
for (const r of rows.slice(0, Number(process.env["KILN_AB_TOP"] ?? 16)))
  console.log(`${r.a.toFixed(2).padStart(8)} → ${r.b.toFixed(2).padStart(8)} ms  ${r.n}`);
for (const { exe } of exes) await exe.close();
