// A/B of the wasm pool's launch tuning (runtime/wasm/pool.ts launchTuning) on one executor
// (`npx tsx --conditions=kiln-source bench/wasm-pool-ab.ts [model.ts] [export] [threads]`,
// default the MLP step of bench/case-steps.ts on 2 threads): the settings in KILN_AB_SPIN
// (polls before a thread sleeps, comma-separated, default "0,1000") take turns step by step,
// each measured after one unmeasured step in it; prints min, p10, p25, median wall and the
// median process CPU per step. On a shared machine run it under `chrt -f 10` (SCHED_FIFO: the
// other processes wait while it runs), or the second thread mostly waits for a core.

import { createWasmExecutor } from "../targets/wasm.ts";
import { launchTuning } from "../runtime/wasm/pool.ts";
import { probeInputs, tracedExport } from "./probe-program.ts";

const [file = "bench/case-steps.ts", entry = "mlpStep", threadsArg = "2"] = process.argv.slice(2);
const g = await tracedExport(file, entry);
// KILN_AB_CHUNKS="8,16" compares chunks per thread instead (launchTuning.chunksPerThread).
const chunkSettings = process.env["KILN_AB_CHUNKS"]?.split(",").map(Number);
const settings = chunkSettings ?? (process.env["KILN_AB_SPIN"] ?? "0,1000").split(",").map(Number);
const steps = Number(process.env["KILN_AB_STEPS"] ?? 100);
const exe = await createWasmExecutor(g, { threads: Number(threadsArg) });
await exe.runner.whenThreadsReady();
exe.runner.write(probeInputs(g));
for (let i = 0; i < 10; i++) exe.runner.execute();
const wall = settings.map((): number[] => []);
const cpu = settings.map((): number[] => []);
for (let i = 0; i < steps; i++)
  settings.forEach((spin, j) => {
    if (chunkSettings) launchTuning.chunksPerThread = spin;
    else launchTuning.spinPolls = spin;
    exe.runner.execute(); // the workers read the setting as a launch ends
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    exe.runner.execute();
    wall[j]!.push(performance.now() - t0);
    const c = process.cpuUsage(c0);
    cpu[j]!.push((c.user + c.system) / 1000);
  });
const at = (xs: readonly number[], q: number): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length * q)]!;
settings.forEach((spin, j) =>
  console.log(
    `${chunkSettings ? "chunks" : "spin"} ${String(spin).padStart(6)}: wall min ${Math.min(...wall[j]!).toFixed(2)} p10 ${at(wall[j]!, 0.1).toFixed(2)} p25 ${at(wall[j]!, 0.25).toFixed(2)} median ${at(wall[j]!, 0.5).toFixed(2)} ms; CPU median ${at(cpu[j]!, 0.5).toFixed(2)} ms`,
  ),
);
await exe.close();
