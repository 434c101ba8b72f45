// On-demand timings of the webgpu target's kernel variants (a benchmark, never a test): a 1024³
// matmul tiled and naive, softmax with a workgroup or a thread per row, and a fused elementwise
// chain over 4M elements. Reports the first run (shader JIT included) and the best of three.
//   npx tsx bench/webgpu-micro.ts

import * as k from "kiln";
import { compileWebGpu } from "../targets/webgpu.ts";
import type { TiledMatmulMode } from "../targets/webgpu-passes.ts";
import type { HostTensor } from "../compiler/ir/host-tensor.ts";
import { WebGpuArtifactRunner } from "../runtime/webgpu/run-artifact.ts";
import { webGpuTestEnv } from "../test/util/webgpu-env.ts";

const env = await webGpuTestEnv();
const N = 1024;

// Modes: a TiledMatmulMode, "workgroup" (the shared-memory tiled matmul instead of the default
// register-blocked one), or "rows-off" (no workgroup-per-row kernels). Row kernels are used
// below 256 rows only, so the softmax pair uses 128 long rows.
type Mode = TiledMatmulMode | "workgroup" | "rows-off";
const cases: [string, (...x: k.Tensor[]) => k.Tensor, k.InputSpec[], Mode, number][] = [
  ["matmul 1024³, register-blocked (default form)", (a, b) => a.matmul(b), [k.f32([N, N]), k.f32([N, N])], "always", 2 * N ** 3],
  ["matmul 1024³, workgroup-tiled (shared memory)", (a, b) => a.matmul(b), [k.f32([N, N]), k.f32([N, N])], "workgroup", 2 * N ** 3],
  ["matmul 1024³, one thread per output", (a, b) => a.matmul(b), [k.f32([N, N]), k.f32([N, N])], "never", 2 * N ** 3],
  ["softmax 128x8192, one workgroup per row", (x) => x.softmax(-1), [k.f32([128, 8192])], "auto", 0],
  ["softmax 128x8192, one thread per row", (x) => x.softmax(-1), [k.f32([128, 8192])], "rows-off", 0],
  [
    "elementwise chain, 2048x2048 (7 ops fused)",
    (x, y) => x.mul(y).add(1).exp().mul(x).relu().sub(y.sin()),
    [k.f32([2048, 2048]), k.f32([2048, 2048])],
    "never",
    0,
  ],
];

if (!env.available) {
  console.log("webgpu-micro: no WebGPU adapter here");
  process.exit(0);
}
for (const [name, fn, specs, mode, flops] of cases) {
  {
    const g = k.traceFunction("bench", fn as never, specs).graph;
    const compiled = compileWebGpu(g, {
      limits: env.context!.limits,
      ...(mode === "rows-off"
        ? { rowKernels: false }
        : mode === "workgroup"
          ? { tiledMatmul: "always" as const, matmulForm: "workgroup" as const }
          : { tiledMatmul: mode }),
    });
    const runner = await WebGpuArtifactRunner.create(env.context!.device, compiled.artifact);
    const inputs: Record<string, HostTensor> = {};
    for (const io of compiled.artifact.inputs)
      inputs[io.name] = { dtype: "f32", shape: io.shape, data: new Float32Array(io.shape.reduce((a, b) => a * b, 1)).fill(0.5) };
    let t0 = performance.now();
    await runner.run(inputs, { readback: [] });
    const first = performance.now() - t0;
    const times: number[] = [];
    for (let i = 0; i < 3; i++) {
      t0 = performance.now();
      await runner.run(inputs, { readback: [] });
      times.push(performance.now() - t0);
    }
    runner.destroy();
    const best = Math.min(...times);
    const a = env.context!.adapter;
    console.log(
      `${name} on ${a.description}: first run ${first.toFixed(0)} ms, best of 3 ${best.toFixed(1)} ms${flops ? `, ${(flops / best / 1e6).toFixed(2)} GFLOP/s` : ""}`,
    );
  }
}
process.exit(0);
