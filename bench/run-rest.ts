// exe.run's own JavaScript per call (issue 14.3): the part of each step that is neither the
// runner's copies nor its kernels (`timeIo`: wall − write − execute − read), for the
// transformer train step and a 16-float program, warm and after a 96 MB copy (cold caches).
// Usage: tsx --conditions=kiln-source bench/run-rest.ts [--runs 41] [--cold]

import * as k from "kiln";
import { transformerCase } from "./cases/transformer.ts";
import { medianOf } from "./host-io.ts";

const args = process.argv.slice(2);
const runs = Number(args[args.indexOf("--runs") + 1] ?? 41) || 41;
const cold = args.includes("--cold");
const big = cold ? new Float32Array(24 << 20).fill(1) : undefined;
const bigTo = cold ? new Float32Array(24 << 20) : undefined;

async function measure(name: string, exe: k.Executable<unknown>, inputs: k.RunInputs): Promise<void> {
  const rest: number[] = [];
  const writes: number[] = [];
  let bytesIn = 0;
  for (let i = 0; i < runs + 10; i++) {
    if (bigTo) bigTo.set(big!);
    const t0 = performance.now();
    await exe.run(inputs, { out: "reuse", timeIo: true });
    const ms = performance.now() - t0;
    const t = exe.ioStats!.times!;
    if (i >= 10) rest.push((ms - t.writeMs - t.executeMs - t.readMs) * 1000);
    if (i >= 10) writes.push(t.writeMs * 1000);
    bytesIn = exe.ioStats!.bytesIn;
  }
  console.log(
    `${name}: rest ${medianOf(rest).toFixed(1)} µs (min ${Math.min(...rest).toFixed(1)}); write ${medianOf(writes).toFixed(1)} µs of ${bytesIn} bytes; ${runs} runs${cold ? ", after a 96 MB copy" : ""}`,
  );
}

k.manualSeed(0);
const tf = transformerCase.kiln();
const data = transformerCase.makeData();
const tfExe = await k.compile(tf.fn, tf.specs, { target: "cpu" });
tf.setup?.(tfExe as never, data);
const tiny = await k.compile(({ x }: { x: k.Tensor }) => x.mul(2).add(1), { x: k.f32([16]) }, { target: "cpu" });
const x16 = new Float32Array(16).fill(1);
const onlyTf = args.includes("--transformer");
for (let round = 0; round < 2; round++) {
  if (!onlyTf) await measure("16-float x·2+1", tiny, { x: x16 });
  await measure("transformer step", tfExe, tf.inputs(data));
}
await tfExe.close();
await tiny.close();
