// `npm run demo`: a short MNIST training run (a fraction of an epoch) on the fastest target
// present — a real GPU adapter if there is one, else the best CPU backend (a software adapter
// such as lavapipe counts as no GPU) — saying which and why; writes the loss curve, the IR
// after every pass and the trained standalone artifact into out/demo/. KILN_TARGET forces one.

import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import * as k from "kiln";
import { dumpProgram } from "../compiler/pipeline.ts";
import { encodeSafetensors } from "../runtime/artifact/safetensors.ts";
import { acquireWebGpu } from "../runtime/webgpu/device.ts";
import { writeLossCurveSvg } from "./loss-curve.ts";
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
  const gpu = available.includes("webgpu") ? await acquireWebGpu() : undefined;
  const adapter = gpu ? `${gpu.adapter.description || gpu.adapter.device || gpu.adapter.vendor}` : undefined;
  if (!CPU_TARGETS.has(probe.target)) return { target: probe.target, why: `${probe.target} is the best target here (by priority: ${available.join(", ")})${gpu && !gpu.adapter.software ? `; WebGPU adapter: ${adapter}` : ""}` };
  const cpuChoice = `the fastest CPU target is ${probe.target} (targets here, by priority: ${available.join(", ")})`;
  if (!gpu) return { target: probe.target, why: `no WebGPU adapter here, so ${cpuChoice}` };
  if (gpu.adapter.software) return { target: probe.target, why: `the only WebGPU adapter is ${adapter}, a software rasterizer, which counts as no GPU; ${cpuChoice}` };
  return { target: probe.target, why: `a GPU: WebGPU adapter ${adapter}` };
}

const { target, why } = await chooseTarget();
console.log("kiln demo: MNIST MLP 784-256-10, AdamW, a short training run");
console.log(`target:      ${target}`);
console.log(`why:         ${why}`);

const result = await trainMnist({ target, epochs: 1, trainImages: steps * BATCH, testImages: 2000 });
const losses = result.losses;
mkdirSync(outDir, { recursive: true });
const svgPath = path.join(outDir, "loss-curve.svg");
writeFileSync(svgPath, writeLossCurveSvg(losses, { title: `MNIST MLP on ${result.target}: ${losses.length} steps of ${BATCH}` }));
const irDir = path.join(outDir, "ir");
const { files } = dumpProgram(result.exe.graph, { all: true });
mkdirSync(irDir, { recursive: true });
for (const f of files) writeFileSync(path.join(irDir, f.name), f.text);
const artifactDir = path.join(outDir, "artifact");
await result.exe.save(artifactDir);
// A batch to try the artifact on: `kiln run` takes its inputs as safetensors.
const batchPath = path.join(outDir, "batch.safetensors");
const batch = k.data.mnist("test", { count: BATCH });
writeFileSync(batchPath, encodeSafetensors({ x: { dtype: "f32", shape: [BATCH, 784], data: batch.images }, y: { dtype: "i32", shape: [BATCH], data: batch.labels } }));

const mean = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
console.log(`compile:     ${result.compileMs.toFixed(0)} ms (${result.exe.stats?.kernels ?? "?"} kernels per step)`);
console.log(`train:       ${losses.length} steps in ${(result.msPerEpoch[0]! / 1000).toFixed(1)} s (${(result.msPerEpoch[0]! / losses.length).toFixed(1)} ms/step)`);
console.log(`loss:        ${mean(losses.slice(0, 10)).toFixed(3)} (first 10 steps) → ${mean(losses.slice(-10)).toFixed(3)} (last 10)`);
console.log(`accuracy:    ${(100 * result.testAccuracy).toFixed(1)}% on 2000 test images`);
console.log(`loss curve:  ${svgPath}`);
console.log(`IR dumps:    ${irDir}/ (${files.map((f) => f.name).join(", ")}: the traced graph, then after each pass; kernel sources in ${artifactDir}/kernels/)`);
console.log(`artifact:    ${artifactDir}/ (try: npx kiln run ${artifactDir} --input ${batchPath}, or import its index.js)`);
process.exit(0);
