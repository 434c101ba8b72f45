// `npm run bench -- --symbolic [--target T] [--repeat N] [--cpu]`: what a symbolic batch costs. The
// bench's MLP step (784-512-512-10, SGD, mean cross-entropy) compiled for a fixed batch and for
// `["batch", 784]` with that batch as its max, run on the same inputs, interleaved (fixed,
// symbolic, fixed, …) so load drifts hit both; then the symbolic program at half its max
// beside a program fixed at that half (a run below the max computes the max's rows: see
// docs/training.md, "A symbolic batch"). Prints medians and the ratios symbolic / fixed. With
// --cpu (js, wasm), one thread timed by process CPU time, which a loaded machine disturbs less.

import * as k from "kiln";

const BATCH = 128;

function mlpStep() {
  k.manualSeed(0);
  const net = k.nn.sequential(k.nn.linear(784, 512), k.nn.relu(), k.nn.linear(512, 512), k.nn.relu(), k.nn.linear(512, 10));
  return k.trainStep(net, (logits, y) => k.nn.functional.crossEntropy(logits, y!), k.optim.sgd({ lr: 0.01 }));
}

function inputs(batch: number): { x: Float32Array; y: Int32Array } {
  let s = 12345;
  const next = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0), s / 4294967296);
  return { x: Float32Array.from({ length: batch * 784 }, () => next() * 2 - 1), y: Int32Array.from({ length: batch }, () => Math.floor(next() * 10)) };
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
};

/** Milliseconds of this process's CPU time (user + system): steady under a shared machine's load, for one thread. */
const cpuMs = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

async function pair(target: string, batch: number, max: number, repeat: number, cpu: boolean): Promise<{ fixed: number; symbolic: number }> {
  const opts = cpu && target !== "js" ? { target, threads: 1 } : { target };
  const fixed = await k.compile(mlpStep(), { x: k.f32([batch, 784]), y: k.i32([batch]) }, opts);
  const symbolic = await k.compile(mlpStep(), { x: k.f32(["batch", 784], { max: { batch: max } }), y: k.i32(["batch"]) }, opts);
  const clock = cpu ? cpuMs : () => performance.now();
  const data = inputs(batch);
  await fixed.run(data);
  await symbolic.run(data);
  const times = { fixed: [] as number[], symbolic: [] as number[] };
  for (let i = 0; i < repeat; i++)
    for (const [name, exe] of [
      ["fixed", fixed],
      ["symbolic", symbolic],
    ] as const) {
      const t0 = clock();
      await exe.run(data);
      times[name].push(clock() - t0);
    }
  return { fixed: median(times.fixed), symbolic: median(times.symbolic) };
}

export async function benchSymbolicBatch(target: string, repeat: number, cpu = false): Promise<void> {
  if (cpu && target === "webgpu") throw new Error("--cpu times one thread by process CPU: js, wasm or cpu only");
  const clock = cpu ? "process CPU time, one thread" : "wall time";
  console.log(`symbolic batch vs fixed batch: MLP 784-512-512-10 SGD step on ${target}, median of ${repeat} interleaved steps (${clock})`);
  for (const [batch, max] of [
    [BATCH, BATCH],
    [BATCH / 2, BATCH],
  ] as const) {
    const r = await pair(target, batch, max, repeat, cpu);
    console.log(
      `  batch ${String(batch).padStart(3)} (max ${max}): fixed ${r.fixed.toFixed(2)} ms, symbolic ${r.symbolic.toFixed(2)} ms, ratio ${(r.symbolic / r.fixed).toFixed(3)}`,
    );
  }
}
