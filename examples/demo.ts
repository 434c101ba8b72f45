// `npm run demo`: compile the MNIST MLP's forward pass on the best target available here,
// run it on a batch of real test digits, and write the graph IR to out/. The weights are
// untrained until training lands — TODO(#3): train a few epochs here with k.trainStep.

import { mkdirSync, writeFileSync } from "node:fs";
import * as k from "kiln";
import { BATCH, CLASSES, forward, initParams } from "./mlp.ts";
import { loadMnist } from "./mnist-data.ts";

const target = process.env.KILN_TARGET ?? "auto";
const outDir = "out";

const batch = loadMnist("test", BATCH);
const params = initParams(0);

const compileStart = performance.now();
const exe = await k.compile(forward, undefined, { target, name: "forward" });
const compileMs = performance.now() - compileStart;

// TODO(#3): train here: const step = k.trainStep(...); for (...) await step.run({ x, y });

const runStart = performance.now();
const logits = await exe.run([batch.images, params.w1, params.b1, params.w2, params.b2]);
const runMs = performance.now() - runStart;

const predictions = argmaxRows(logits.data, CLASSES);
const correct = predictions.filter((p, i) => p === batch.labels[i]).length;

mkdirSync(outDir, { recursive: true });
const dumpPath = `${outDir}/mlp-forward.kir`;
writeFileSync(dumpPath, k.printGraph(exe.graph));

console.log(`kiln demo: MNIST MLP 784-256-10, forward pass on ${BATCH} test images`);
console.log(`target:      ${exe.target}${target === "auto" ? " (best available)" : ""}`);
console.log(`output:      logits ${logits.dtype}[${logits.shape.join(",")}]`);
console.log(`compile:     ${compileMs.toFixed(1)} ms, run: ${runMs.toFixed(1)} ms`);
console.log(`predicted:   ${predictions.slice(0, 16).join(" ")} …`);
console.log(`labels:      ${Array.from(batch.labels.subarray(0, 16)).join(" ")} …`);
console.log(`accuracy:    ${correct}/${BATCH} (untrained weights: about 1 in 10 is chance; training comes with #3)`);
console.log(`graph IR:    ${dumpPath} (${exe.graph.nodes.length} nodes)`);

function argmaxRows(data: ArrayLike<number>, width: number): number[] {
  const rows = data.length / width;
  return Array.from({ length: rows }, (_, r) => {
    let best = 0;
    for (let c = 1; c < width; c++) if (data[r * width + c]! > data[r * width + best]!) best = c;
    return best;
  });
}
