// Quick wasm-target timings while tuning kernels (`npx tsx bench/wasm-micro.ts [case…]`):
// matmul 1024³ GFLOP/s, a 16M elementwise chain, softmax 4096×1024, on 1 thread and on all
// cores, kernels only (no host copies). Peers: `npm run bench -- --target wasm`.

import { availableParallelism } from "node:os";
import * as k from "kiln";
import { createWasmExecutor, type WasmCompileOptions } from "../targets/wasm.ts";
import { nodeOf } from "../compiler/ir/graph.ts";
import type { HostTensor } from "../compiler/ir/host-tensor.ts";

interface MicroCase {
  readonly name: string;
  readonly fn: (...xs: k.Tensor[]) => k.Tensor;
  readonly specs: readonly k.InputSpec[];
  readonly flops?: number;
}

const CASES: readonly MicroCase[] = [
  { name: "matmul 1024^3", fn: (a, b) => a.matmul(b), specs: [k.f32([1024, 1024]), k.f32([1024, 1024])], flops: 2 * 1024 ** 3 },
  { name: "linear 128x784 @ 512x784^T", fn: (a, b) => a.matmul(b.t()), specs: [k.f32([128, 784]), k.f32([512, 784])], flops: 2 * 128 * 784 * 512 },
  { name: "elementwise chain 16M", fn: (x, y) => x.mul(y).add(1).relu().mul(x), specs: [k.f32([16 * 1024 * 1024]), k.f32([16 * 1024 * 1024])] },
  { name: "softmax 4096x1024", fn: (x) => x.softmax(-1), specs: [k.f32([4096, 1024])] },
];

/** Best of five: wall time, and this process's CPU time (steadier on a shared machine; with threads it sums every core's). */
async function time(c: MicroCase, threads: number, opts: WasmCompileOptions): Promise<{ wallMs: number; cpuMs: number }> {
  const g = k.traceFunction(c.name.replace(/\W+/g, "_"), c.fn as never, c.specs).graph;
  const exe = await createWasmExecutor(g, { ...opts, threads });
  const inputs: Record<string, HostTensor> = {};
  for (const id of g.inputs) {
    const n = nodeOf(g, id);
    if (n.op !== "input") continue;
    const size = n.type.shape.reduce((a, b) => a * b, 1);
    inputs[n.name] = { dtype: "f32", shape: n.type.shape, data: Float32Array.from({ length: size }, (_, i) => Math.sin(i) * 0.5) };
  }
  // Launches run on the calling thread alone until the workers are up (runtime/wasm/pool.ts).
  await exe.runner.whenThreadsReady();
  exe.runner.write(inputs);
  exe.runner.execute(); // warm up
  const times: number[] = [];
  const cpu: number[] = [];
  for (let r = 0; r < 5; r++) {
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    exe.runner.execute();
    cpu.push(process.cpuUsage(c0).user / 1000);
    times.push(performance.now() - t0);
  }
  await exe.close();
  return { wallMs: Math.min(...times), cpuMs: Math.min(...cpu) };
}

const args = process.argv.slice(2);
// --no-relaxed: mul + add instead of relaxed_madd; --threads=n: only that thread count
const only = args.filter((a) => !a.startsWith("--"));
const opts: WasmCompileOptions = args.includes("--no-relaxed") ? { relaxedSimd: false } : {};
const threadArg = args.find((a) => a.startsWith("--threads="));
for (const c of CASES) {
  if (only.length > 0 && !only.some((o) => c.name.includes(o))) continue;
  for (const threads of threadArg ? [Number(threadArg.slice(10))] : [1, availableParallelism()]) {
    const { wallMs, cpuMs } = await time(c, threads, opts);
    const rate = c.flops ? `${(c.flops / wallMs / 1e6).toFixed(1)} GFLOP/s (wall)` : "";
    console.log(`${c.name.padEnd(28)} threads ${threads}  ${wallMs.toFixed(2)} ms wall, ${cpuMs.toFixed(2)} ms cpu  ${rate}`);
  }
}
