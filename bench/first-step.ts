// Where a cpu executable's first step goes (issue 14: no first step more than 3× a later one):
// `npx tsx --conditions=kiln-source bench/first-step.ts <case> [threads] [steps]` runs a bench
// case as the bench does (k.compile on the wasm target, the case's setup, exe.run with
// `out: "reuse"`) and prints per step the wall and CPU time of exe.run and of the wasm runner's
// parts — inputs written, kernels executed, outputs read — with the threads the launches found ready.

import * as k from "kiln";
import { WasmArtifactRunner } from "../runtime/wasm/run-artifact.ts";
import { BENCH_CASES } from "./cases/all-cases.ts";
import type { CaseId } from "./cases/case.ts";

const [caseId = "softmax", threadsArg = "2", stepsArg = "5"] = process.argv.slice(2);
const benchCase = BENCH_CASES[caseId as CaseId];
if (!benchCase) throw new Error(`no case '${caseId}' (cases: ${Object.keys(BENCH_CASES).join(", ")})`);
const cpuMs = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
const parts: Record<string, number> = {};
let threadsSeen = 0;
const proto = WasmArtifactRunner.prototype as unknown as Record<string, (...args: unknown[]) => unknown>;
for (const name of ["write", "execute", "read"]) {
  const original = proto[name]!;
  proto[name] = function (this: WasmArtifactRunner, ...args: unknown[]) {
    if (name === "write") threadsSeen = this.activeThreads;
    const t = performance.now();
    try {
      return original.apply(this, args);
    } finally {
      parts[name] = performance.now() - t;
    }
  };
}
const data = benchCase.makeData();
const program = benchCase.kiln();
const t0 = performance.now();
const c0 = cpuMs();
const exe = await k.compile(program.fn as never, program.specs, { target: "wasm", threads: Number(threadsArg) });
const prepareMs = performance.now() - t0;
program.setup?.(exe, data);
console.log(`${caseId}, ${threadsArg} thread(s): k.compile ${prepareMs.toFixed(1)} ms (CPU ${(cpuMs() - c0).toFixed(1)})`);
const inputs = program.inputs(data);
for (let s = 0; s < Number(stepsArg); s++) {
  const w0 = performance.now();
  const wc = cpuMs();
  program.output(await exe.run(inputs, { out: "reuse" }));
  const ms = performance.now() - w0;
  const f = (n: string): string => (parts[n] ?? 0).toFixed(1);
  console.log(
    `step ${s}: ${ms.toFixed(1)} ms (CPU ${(cpuMs() - wc).toFixed(1)}) = write ${f("write")} + execute ${f("execute")} + read ${f("read")} + rest ${(ms - (parts["write"] ?? 0) - (parts["execute"] ?? 0) - (parts["read"] ?? 0)).toFixed(1)}; threads ${threadsSeen}`,
  );
}
await exe.close();
