// Closing a wasm worker pool must not end the process under the caller. The pool's workers are
// unref'd once ready (an idle pool never keeps Node alive), and a terminate() of an unref'd
// worker is not something Node waits for: a script whose last pending work was a model's
// close() exited there (code 13, "unsettled top-level await") and ran nothing after it — seen
// as two k.compileModel models in one process stopping at the first one's close or the second
// one's first steps. Each case runs in a child process (inside vitest something else keeps the
// event loop alive), and must reach its end with exit code 0:
// - the reported sequence: model A (wasm, 2 threads) trains, is closed, model B of the same
//   module and seed is compiled and trains; B's losses equal A's bit for bit (B is not bound to
//   A's closed memory or pool) and A's first loss matches the float64 reference target;
// - deterministic orderings: a runner waits for its workers (create), then closes; a runner
//   closes while its workers are still joining (start), the join settling during the terminate.

import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, test } from "vitest";
import * as k from "kiln";

const root = path.resolve(import.meta.dirname, "../..");
const at = (file: string): string => JSON.stringify(path.join(root, file));

const script = `import * as k from ${at("dsl/index.ts")};
import { WasmArtifactRunner } from ${at("runtime/wasm/run-artifact.ts")};
const batch = 64, features = 64, hidden = 256, classes = 10;
const xs = Float32Array.from({ length: batch * features }, (_, i) => Math.sin(0.37 * i));
const ys = Int32Array.from({ length: batch }, (_, i) => (i * 7) % classes);
const specs = { x: k.f32([batch, features]), y: k.i32([batch]) };
const loss = (logits, y) => k.nn.functional.crossEntropy(logits, y);
async function build(target) {
  k.manualSeed(3);
  const m = k.nn.sequential(k.nn.linear(features, hidden), k.nn.relu(), k.nn.linear(hidden, classes));
  const programs = { predict: (x) => m.call(x), train: k.trainStep(m, loss, k.optim.adam({ lr: 0.01 })) };
  return k.compileModel(m, programs, specs, { target, ...(target === "wasm" ? { threads: 2 } : {}) });
}
const steps = async (model) => {
  const losses = [];
  for (let s = 0; s < 3; s++) losses.push((await model.train({ x: xs, y: ys })).loss.data[0]);
  return losses;
};
// One thread here: no pool of exe's own is joining (a joining worker is held) while the runners close.
const exe = await k.compile((x) => k.relu(x).mul(2).add(1), [k.f32([256, 256])], { target: "wasm", threads: 1 });
const ready = await WasmArtifactRunner.create(exe.artifact, { threads: 2 });
await ready.close();
console.log("ready runner closed");
// Closed right when its worker is ready (it counts itself in the control block, then posts
// "ready"): the message is handled during the terminate, not before it (no await in between).
const turning = await WasmArtifactRunner.start(exe.artifact, { threads: 2 });
const nap = new Int32Array(new SharedArrayBuffer(4));
for (const until = Date.now() + 30000; turning.activeThreads < 2 && Date.now() < until; ) Atomics.wait(nap, 0, 0, 1);
if (turning.activeThreads < 2) throw new Error("the worker did not start");
await turning.close();
console.log("runner closed as its worker turned ready");
for (let i = 0; i < 3; i++) await (await WasmArtifactRunner.start(exe.artifact, { threads: 2 })).close();
console.log("joining runners closed");
await exe.close();
const a = await build("wasm");
const lossesA = await steps(a);
await a.close();
console.log("A closed");
const b = await build("wasm");
const lossesB = await steps(b);
console.log("B trained");
await b.close();
console.log("B closed");
const ref = await build("reference");
const lossRef = (await ref.train({ x: xs, y: ys })).loss.data[0];
await ref.close();
console.log(JSON.stringify({ lossesA, lossesB, lossRef }));
`;

describe.runIf(await k.availableTargets().then((t) => t.includes("wasm")))("closing a wasm worker pool", () => {
  test("the process goes on after a pool's close: two models one after the other, runners closed ready and joining", () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "kiln-pool-close-"));
    const file = path.join(dir, "two-models.mts"); // .mts: an ES module outside any package.json
    writeFileSync(file, script);
    const r = spawnSync(process.execPath, ["--import", "tsx", file], { cwd: root, encoding: "utf8", timeout: 50_000 });
    expect(r.stderr).not.toMatch(/unsettled top-level await/);
    expect(r.stdout.split("\n").slice(0, 6)).toEqual([
      "ready runner closed",
      "runner closed as its worker turned ready",
      "joining runners closed",
      "A closed",
      "B trained",
      "B closed",
    ]);
    expect(r.status).toBe(0);
    const { lossesA, lossesB, lossRef } = JSON.parse(r.stdout.split("\n")[6]!) as { lossesA: number[]; lossesB: number[]; lossRef: number };
    expect(lossesB).toEqual(lossesA);
    expect(lossesA[0]).toBeCloseTo(lossRef, 5);
    expect(lossesA[2]!).toBeLessThan(lossesA[0]!);
  }, 60_000);
});
