// `npx tsx --conditions=kiln-source bench/webgpu-io.ts [elementwise|softmax]`: where exe.run's
// host I/O goes on WebGPU for the elementwise 16M case (two 64 MB inputs, one 64 MB output) or
// softmax 4096×1024 (16 MB in, 16 MB out), interleaved A/B in one process: A waits for the
// device the plain way (Dawn's Node binding busy-polls while a map is pending), B quietly
// (quietWait: a timer through most of the run, see runtime/webgpu/quiet-wait.ts; what
// k.compile does on a software adapter). Prints wall and process CPU medians (lavapipe's
// threads run in this process, so CPU time is the steadier measure on a loaded machine), the
// kernels alone (device timestamps, profiled quietly), one plain copy of the I/O bytes, and
// the floor WebGPU allows for moving them: the inputs written (queue.writeBuffer), the output's
// bytes copied to a staging buffer, mapped and copied out. Not a test.

import * as k from "kiln";
import { acquireWebGpu } from "../runtime/webgpu/device.ts";
import { WebGpuArtifactRunner, webGpuBufferCounts } from "../runtime/webgpu/run-artifact.ts";
import { newRunProfiler } from "../runtime/artifact/profile.ts";
import { elementwiseCase } from "./cases/elementwise.ts";
import { softmaxCase } from "./cases/softmax.ts";

const ctx = await acquireWebGpu();
if (!ctx) throw new Error("no WebGPU adapter (set XDG_RUNTIME_DIR; lavapipe: ../shared/setup/webgpu-deps.sh)");
const rounds = Number(process.env["ROUNDS"] ?? 9);
const benchCase = process.argv[2] === "softmax" ? softmaxCase : elementwiseCase;
const program = benchCase.kiln();
const exe = await k.compile(program.fn, program.specs, { target: "webgpu" });
const artifact = exe.artifact!;
const given = program.inputs(benchCase.makeData()) as Float32Array[];
const inputs = Object.fromEntries(artifact.inputs.map((io, i) => [io.name, { dtype: "f32" as const, shape: [...io.shape], data: given[i]! }]));
const outCount = artifact.outputs[0]!.shape.reduce((a, b) => a * b, 1);
const out = { [artifact.outputs[0]!.name]: new Float32Array(outCount) };
const runners = {
  A: await WebGpuArtifactRunner.create(ctx.device, artifact, { quietWait: false }),
  B: await WebGpuArtifactRunner.create(ctx.device, artifact, { quietWait: true }),
};
const cpuMs = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
const median = (v: readonly number[]): number => [...v].sort((p, q) => p - q)[Math.floor(v.length / 2)]!;
const t: Record<string, number[]> = {};
const record = (name: string, ms: number): void => void (t[name] ??= []).push(ms);
const inBytes = given.reduce((a, x) => a + x.byteLength, 0);
const copyFrom = new Float32Array(inBytes / 4 + outCount).fill(1);
const copyTo = new Float32Array(copyFrom.length);
// The floor: the same bytes through WebGPU's own moves, no kernel (buffers made once, here).
const floorIn = ctx.device.createBuffer({ size: inBytes, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST });
const floorOut = ctx.device.createBuffer({ size: outCount * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
const floorStage = ctx.device.createBuffer({ size: outCount * 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
const floorOutArray = new Float32Array(outCount);
const floor = async (): Promise<void> => {
  let at = 0;
  for (const x of given) {
    ctx.device.queue.writeBuffer(floorIn, at, x as Float32Array<ArrayBuffer>);
    at += x.byteLength;
  }
  const encoder = ctx.device.createCommandEncoder();
  encoder.copyBufferToBuffer(floorOut, 0, floorStage, 0, outCount * 4);
  ctx.device.queue.submit([encoder.finish()]);
  await floorStage.mapAsync(GPUMapMode.READ);
  floorOutArray.set(new Float32Array(floorStage.getMappedRange()));
  floorStage.unmap();
};
for (const r of Object.values(runners)) await r.run(inputs, { out });
const made = webGpuBufferCounts().created;
for (let i = 0; i < rounds; i++) {
  const order = i % 2 === 0 ? (["A", "B"] as const) : (["B", "A"] as const);
  for (const name of order) {
    const [wall, cpu] = [performance.now(), cpuMs()];
    await runners[name].run(inputs, { out });
    record(name, performance.now() - wall);
    record(`cpu ${name}`, cpuMs() - cpu);
  }
  const profile = newRunProfiler(artifact.kernels.length);
  await runners.B.run(inputs, { out, profile });
  record(
    "kernels",
    profile.kernelMs.reduce((a, b) => a + b, 0),
  );
  const [wall, cpu] = [performance.now(), cpuMs()];
  copyTo.set(copyFrom);
  record("one copy", performance.now() - wall);
  record("cpu one copy", cpuMs() - cpu);
  const [fWall, fCpu] = [performance.now(), cpuMs()];
  await floor();
  record("webgpu floor", performance.now() - fWall);
  record("cpu floor", cpuMs() - fCpu);
}
const m = (name: string): number => median(t[name]!);
for (const [name, v] of Object.entries(t)) console.log(name.padEnd(14), median(v).toFixed(1).padStart(7), " ", v.map((x) => x.toFixed(0)).join(" "));
console.log(`${benchCase.title}: ${(inBytes / 1e6).toFixed(1)} MB in, ${((outCount * 4) / 1e6).toFixed(1)} MB out`);
for (const name of ["A", "B"] as const)
  console.log(
    `${name} (wall medians): (exe.run − kernels) / one copy = ${((m(name) - m("kernels")) / m("one copy")).toFixed(2)}× (issue 14's aim ≤ 1.5×); ` +
      `exe.run / (kernels + one copy) = ${(m(name) / (m("kernels") + m("one copy"))).toFixed(2)}× (issue 15's aim ≤ 1.5×); ` +
      `exe.run / (kernels + webgpu floor) = ${(m(name) / (m("kernels") + m("webgpu floor"))).toFixed(2)}×`,
  );
console.log(`GPU buffers made during the timed runs: ${webGpuBufferCounts().created - made} (the profiled run's query buffers: 2)`);
process.exit(0);
