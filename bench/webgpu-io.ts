// `npx tsx --conditions=kiln-source bench/webgpu-io.ts`: where exe.run's host I/O goes on WebGPU
// for the elementwise 16M case (two 64 MB inputs, one 64 MB output), interleaved A/B in one
// process: A reads the output back through one staging buffer of its size (readbackChunkBytes
// 1 GiB), B in 8 MiB chunks (the default). Prints wall and process CPU medians (lavapipe's
// threads run in this process, so CPU time is the steadier measure on a loaded machine), the
// kernels alone (device timestamps) and one plain copy of the I/O bytes. Not a test.

import * as k from "kiln";
import { acquireWebGpu } from "../runtime/webgpu/device.ts";
import { WebGpuArtifactRunner, webGpuBufferCounts } from "../runtime/webgpu/run-artifact.ts";
import { newRunProfiler } from "../runtime/artifact/profile.ts";
import { elementwiseCase } from "./cases/elementwise.ts";

const ctx = await acquireWebGpu();
if (!ctx) throw new Error("no WebGPU adapter (set XDG_RUNTIME_DIR; lavapipe: ../shared/setup/webgpu-deps.sh)");
const rounds = Number(process.env["ROUNDS"] ?? 9);
const program = elementwiseCase.kiln();
const exe = await k.compile(program.fn, program.specs, { target: "webgpu" });
const artifact = exe.artifact!;
const [xs, ys] = program.inputs(elementwiseCase.makeData()) as Float32Array[];
const [xIo, yIo] = artifact.inputs;
const inputs = {
  [xIo!.name]: { dtype: "f32" as const, shape: [xs!.length], data: xs! },
  [yIo!.name]: { dtype: "f32" as const, shape: [ys!.length], data: ys! },
};
const out = { [artifact.outputs[0]!.name]: new Float32Array(xs!.length) };
const runners = {
  A: await WebGpuArtifactRunner.create(ctx.device, artifact, { readbackChunkBytes: 1 << 30 }),
  B: await WebGpuArtifactRunner.create(ctx.device, artifact),
};
const cpuMs = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
const median = (v: readonly number[]): number => [...v].sort((p, q) => p - q)[Math.floor(v.length / 2)]!;
const t: Record<string, number[]> = {};
const record = (name: string, ms: number): void => void (t[name] ??= []).push(ms);
const copyFrom = new Float32Array(3 * xs!.length).fill(1);
const copyTo = new Float32Array(copyFrom.length);
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
}
for (const [name, v] of Object.entries(t)) console.log(name.padEnd(14), median(v).toFixed(1).padStart(7), " ", v.map((x) => x.toFixed(0)).join(" "));
for (const name of ["A", "B"] as const)
  console.log(`${name}: exe.run − kernels = ${((median(t[name]!) - median(t["kernels"]!)) / median(t["one copy"]!)).toFixed(2)}× one copy (wall)`);
console.log(`GPU buffers made during the timed runs: ${webGpuBufferCounts().created - made} (the profiled run's query buffers: 2)`);
process.exit(0);
