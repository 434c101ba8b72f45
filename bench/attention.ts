// Fused attention (one online-softmax kernel, `fuseAttention: true`) against the unfused
// kernels (q·kᵀ, softmax row kernel, p·v: `fuseAttention: false`) for one causal
// scaledDotProductAttention forward, interleaved per round so machine load hits both alike.
// Prints kernels, bytes moved and the median `exe.run` time of each (docs/kernels.md keeps
// the numbers). `--backward`: the gradient wrt q, k and v of Σ attention·w instead (fused: the
// two kernels of compiler/passes/attention-backward.ts). `--step`: the loss and that gradient in
// one program, as a training step computes them (fused: the forward's kernel also writes the row
// max and sum its backward reads).
//   npx tsx --conditions=kiln-source bench/attention.ts [--target wasm] [--shape 2,4,256,64] [--rounds 7] [--backward | --step]

import { parseArgs } from "node:util";
import * as k from "kiln";

const { values } = parseArgs({
  options: { target: { type: "string" }, shape: { type: "string" }, rounds: { type: "string" }, backward: { type: "boolean" }, step: { type: "boolean" } },
});
const target = values.target ?? "wasm";
const [B, H, L, E] = (values.shape ?? "2,4,256,64").split(",").map(Number) as [number, number, number, number];
const rounds = Number(values.rounds ?? 7);
const spec = k.f32([B, H, L, E]);
const attend = (q: k.Tensor, kk: k.Tensor, v: k.Tensor): k.Tensor => k.nn.functional.scaledDotProductAttention(q, kk, v, { isCausal: true });
const step = values.step === true;
const backward = values.backward === true || step;
const loss = (w: k.Tensor) => (a: k.Tensor, b: k.Tensor, c: k.Tensor) => attend(a, b, c).mul(w).sum();
const fn = step
  ? (q: k.Tensor, kk: k.Tensor, v: k.Tensor, w: k.Tensor) => k.valueAndGrad(loss(w), { argnums: [0, 1, 2] })(q, kk, v)
  : backward
    ? (q: k.Tensor, kk: k.Tensor, v: k.Tensor, w: k.Tensor) => k.grad(loss(w), { argnums: [0, 1, 2] })(q, kk, v)
    : attend;
const n = B * H * L * E;
const data = (backward ? [0, 1, 2, 3] : [0, 1, 2]).map((s) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37 + s)));
const specs = data.map(() => spec);

const variants = await Promise.all(
  [true, false].map(async (fuseAttention) => {
    const exe = await k.compile(fn as (...a: k.Tensor[]) => k.Tensor, specs, { target, fuseAttention });
    await exe.run(data);
    return { fuseAttention, exe, times: [] as number[] };
  }),
);
for (let r = 0; r < rounds; r++)
  for (const v of variants) {
    const t0 = performance.now();
    await v.exe.run(data);
    v.times.push(performance.now() - t0);
  }
for (const v of variants) {
  const stats = v.exe.artifact!.stats;
  const median = [...v.times].sort((a, b) => a - b)[Math.floor(rounds / 2)]!;
  console.log(
    `${target} ${[B, H, L, E].join("x")}${step ? " step" : backward ? " backward" : ""} ${v.fuseAttention ? "fused  " : "unfused"} kernels=${stats.kernels} bytes=${stats.bytesRead + stats.bytesWritten} median=${median.toFixed(2)} ms`,
  );
}
process.exit(0);
