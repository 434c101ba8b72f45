// What each pipeline of a WebGPU program costs to create on this adapter, one at a time (no
// overlap), for issue 15 item 4: the kernel, its WGSL size, pipeline creation + first dispatch
// (wall and process CPU), and the same for each quick variant a CPU adapter's kernels carry.
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
type Shader = { name: string; source: string; bindings: number[]; workgroups: [number, number, number] };
const artifact = exe.artifact as k.Executable<unknown>["artifact"] & {
  kernels: (Shader & { quick?: { source: string; workgroups: [number, number, number] } })[];
};
const slotBytes = artifact.memory.slotBytes;
let total = 0;
const distinct = new Set(artifact.kernels.map((kk) => kk.source)).size;
// Each kernel, then its quick variant where it has one (a CPU adapter's tiered start: docs/webgpu.md).
const shaders: Shader[] = artifact.kernels.flatMap((kk) => [kk, ...(kk.quick ? [{ ...kk, name: `${kk.name} (quick)`, ...kk.quick }] : [])]);
let totalCpu = 0;
for (const kk of shaders) {
  const cpuBefore = process.cpuUsage();
  const t = await timeShader(
    gpu.device,
    { label: kk.name, source: kk.source + `\n// ${Math.random()}`, bindingBytes: kk.bindings.map((b) => slotBytes[b] ?? 16), workgroups: kk.workgroups },
    { minReps: 1, maxReps: 1 },
  );
  // Process CPU (lavapipe's compile thread included) moves less with the machine's load than the wall time.
  const used = process.cpuUsage(cpuBefore);
  const cpuMs = (used.user + used.system) / 1000;
  total += t.compileMs;
  totalCpu += cpuMs;
  console.log(
    `${kk.name.padEnd(48)} ${String(kk.source.length).padStart(6)} chars  compile+first ${t.compileMs.toFixed(0).padStart(6)} ms  cpu ${cpuMs.toFixed(0).padStart(5)} ms  run ${t.ms.toFixed(2)} ms  ${kk.source.split("\n")[0]}`,
  );
}
console.log(
  `${artifact.kernels.length} kernels, ${distinct} distinct sources, ${shaders.length} shaders: ${total.toFixed(0)} ms serial, ${totalCpu.toFixed(0)} ms of CPU`,
);
await exe.close();
process.exit(0);
