// What each pipeline of a WebGPU program costs to create on this adapter, one at a time (no
// overlap), for issue 15 item 4: the kernel, its WGSL size, pipeline creation + first dispatch.
// Run with an empty shader cache to see the driver's compile cost:
//   MESA_SHADER_CACHE_DISABLE=true npx tsx bench/webgpu-pipeline-costs.ts [mlp|cnn]
// A benchmark, never a test.

import * as k from "kiln";
import { acquireWebGpu } from "../runtime/webgpu/device.ts";
import { timeShader } from "../runtime/webgpu/time-dispatch.ts";
import { trainStep } from "../examples/mlp.ts";

const gpu =
  (await acquireWebGpu()) ??
  (() => {
    throw new Error("no WebGPU adapter");
  })();
const exe = await k.compile(trainStep, undefined, { target: "webgpu", progress: false });
const artifact = exe.artifact as k.Executable<unknown>["artifact"] & {
  kernels: { name: string; source: string; bindings: number[]; workgroups: [number, number, number] }[];
};
const slotBytes = artifact.memory.slotBytes;
let total = 0;
const distinct = new Set(artifact.kernels.map((kk) => kk.source)).size;
for (const kk of artifact.kernels) {
  const t = await timeShader(
    gpu.device,
    { label: kk.name, source: kk.source + `\n// ${Math.random()}`, bindingBytes: kk.bindings.map((b) => slotBytes[b] ?? 16), workgroups: kk.workgroups },
    { minReps: 1, maxReps: 1 },
  );
  total += t.compileMs;
  console.log(
    `${kk.name.padEnd(40)} ${String(kk.source.length).padStart(6)} chars  compile+first ${t.compileMs.toFixed(0).padStart(6)} ms  run ${t.ms.toFixed(2)} ms  ${kk.source.split("\n")[0]}`,
  );
}
console.log(`${artifact.kernels.length} kernels, ${distinct} distinct sources, ${total.toFixed(0)} ms serial`);
await exe.close();
process.exit(0);
