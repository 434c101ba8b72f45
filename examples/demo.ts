// `npm run demo`: a short MNIST training run (a fraction of an epoch) on the fastest target
// present — a real GPU adapter if there is one, else the best CPU backend (a software adapter
// such as lavapipe counts as no GPU) — saying which and why; writes the loss curve, every
// compile stage (graph IR after each pass, kernel IR, memory plan, kernels) and the trained
// standalone artifact into out/demo/. KILN_TARGET forces one. It uses only `kiln`'s public API.

import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import * as k from "kiln";
import { BATCH, trainMnist } from "./mnist.ts";

const outDir = "out/demo";
// Half an epoch: a few seconds on the wasm target, enough for over 90% test accuracy.
const steps = Number(process.env["KILN_DEMO_STEPS"] ?? 234);

const CPU_TARGETS = new Set(["wasm", "cpu", "js", "reference"]);

/** The target and a sentence on why: KILN_TARGET, else what "auto" picks and what the GPU adapter is. */
async function chooseTarget(): Promise<{ target: string; why: string }> {
  const forced = process.env["KILN_TARGET"];
  if (forced !== undefined && forced !== "" && forced !== "auto") return { target: forced, why: "asked for with KILN_TARGET" };
  const available = await k.availableTargets();
  const probe = await k.compile((x: k.Tensor) => x.add(1), [k.f32([1])], { target: "auto" });
  const gpu = available.includes("webgpu") ? await k.targetDevice("webgpu") : undefined;
  if (!CPU_TARGETS.has(probe.target))
    return {
      target: probe.target,
      why: `${probe.target} is the best target here (by priority: ${available.join(", ")})${gpu && !gpu.software ? `; WebGPU adapter: ${gpu.name}` : ""}`,
    };
  const cpuChoice = `the fastest CPU target is ${probe.target} (targets here, by priority: ${available.join(", ")})`;
  if (!gpu) return { target: probe.target, why: `no WebGPU adapter here, so ${cpuChoice}` };
  if (gpu.software) return { target: probe.target, why: `the only WebGPU adapter is ${gpu.name}, a software rasterizer, which counts as no GPU; ${cpuChoice}` };
  return { target: probe.target, why: `a GPU: WebGPU adapter ${gpu.name}` };
}

const { target, why } = await chooseTarget();
console.log("kiln demo: MNIST MLP 784-256-10, AdamW, a short training run");
console.log(`target:      ${target}`);
console.log(`why:         ${why}`);

const result = await trainMnist({ target, epochs: 1, trainImages: steps * BATCH, testImages: 2000 });
const losses = result.losses;
mkdirSync(outDir, { recursive: true });
const svgPath = path.join(outDir, "loss-curve.svg");
writeFileSync(svgPath, k.lossCurveSvg(losses, { title: `MNIST MLP on ${result.target}: ${losses.length} steps of ${BATCH}` }));
const irDir = path.join(outDir, "ir");
const files = await k.dumpStages(result.exe.graph, { target: result.target, dir: irDir });
const artifactDir = path.join(outDir, "artifact");
await result.exe.save(artifactDir);
// A batch to try the artifact on: `kiln run` takes its inputs as safetensors.
const batchPath = path.join(outDir, "batch.safetensors");
const batch = k.data.mnist("test", { count: BATCH });
k.safetensors.write(batchPath, { x: { dtype: "f32", shape: [BATCH, 784], data: batch.images }, y: { dtype: "i32", shape: [BATCH], data: batch.labels } });

const mean = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
console.log(`compile:     ${result.compileMs.toFixed(0)} ms (${result.exe.stats?.kernels ?? "?"} kernels per step)`);
console.log(
  `train:       ${losses.length} steps in ${(result.msPerEpoch[0]! / 1000).toFixed(1)} s (${(result.msPerEpoch[0]! / losses.length).toFixed(1)} ms/step)`,
);
console.log(`loss:        ${mean(losses.slice(0, 10)).toFixed(3)} (first 10 steps) → ${mean(losses.slice(-10)).toFixed(3)} (last 10)`);
console.log(`accuracy:    ${(100 * result.testAccuracy).toFixed(1)}% on 2000 test images`);
console.log(`loss curve:  ${svgPath}`);
console.log(
  `IR dumps:    ${irDir}/ (${files.length} files, ${files[0]} … ${files.at(-1)}: the traced graph, each graph and kernel pass, the memory plan and the rendered kernels; as 'kiln dump --target ${result.target} --all' writes them)`,
);
console.log(`artifact:    ${artifactDir}/ (try: npx kiln run ${artifactDir} --input ${batchPath}, or import its index.js)`);
process.exit(0);
