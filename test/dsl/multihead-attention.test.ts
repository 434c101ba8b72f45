// k.nn.MultiheadAttention against torch.nn.MultiheadAttention: test/fixtures/torch/make-attention.py
// records, per case, PyTorch 1.13's state_dict, inputs, masks, outputs and attention weights
// (eval mode); the Kiln module loads the state_dict by PyTorch's names and must give the same
// output and weights on the float64 interpreter. Gradients of the whole module (inputs and every
// parameter) are checked by finite differences; dropout acts in training mode only.

import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, test } from "vitest";
import * as k from "kiln";
import { expectClose } from "../util/ref.ts";
import { gradcheck, uniform } from "../util/gradcheck.ts";

interface Stored {
  shape: number[];
  dtype: "f32" | "bool";
  data: number[];
}
interface Case {
  name: string;
  embedDim: number;
  numHeads: number;
  options: k.nn.MultiheadAttentionOptions;
  averageAttnWeights: boolean;
  state: Record<string, Stored>;
  inputs: Record<"query" | "key" | "value", Stored> & { attnMask?: Stored; keyPaddingMask?: Stored };
  output: Stored;
  weights: Stored;
}

const fixture = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../fixtures/torch/attention.json");
const { cases } = JSON.parse(readFileSync(fixture, "utf8")) as { cases: Case[] };

const spec = (s: Stored): k.InputSpec => (s.dtype === "bool" ? k.bool(s.shape) : k.f32(s.shape));

describe("k.nn.MultiheadAttention follows torch.nn.MultiheadAttention", () => {
  test.each(cases.map((c) => [c.name, c] as const))("%s", async (_name, c) => {
    const mha = new k.nn.MultiheadAttention(c.embedDim, c.numHeads, c.options);
    // PyTorch's parameter names and shapes, in PyTorch's order.
    expect(mha.namedParameters().map(([name, p]) => [name, p.shape])).toEqual(Object.entries(c.state).map(([name, t]) => [name, t.shape]));
    mha.loadStateDict(Object.fromEntries(Object.entries(c.state).map(([name, t]) => [name, { dtype: "f32", shape: t.shape, data: t.data }])));
    mha.eval();
    const names = Object.keys(c.inputs) as (keyof Case["inputs"])[];
    const specs = Object.fromEntries(names.map((n) => [n, spec(c.inputs[n]!)]));
    const exe = await k.compile(
      (t: Record<string, k.Tensor>) => {
        const { output, weights } = mha.attention(t["query"]!, t["key"]!, t["value"]!, {
          ...(t["attnMask"] ? { attnMask: t["attnMask"] } : {}),
          ...(t["keyPaddingMask"] ? { keyPaddingMask: t["keyPaddingMask"] } : {}),
          averageAttnWeights: c.averageAttnWeights,
        });
        return { output, weights };
      },
      specs,
      { target: "reference" },
    );
    const out = (await exe.run(Object.fromEntries(names.map((n) => [n, c.inputs[n]!.data])))) as Record<"output" | "weights", k.HostOutput>;
    expect(out.output.shape).toEqual(c.output.shape);
    expect(out.weights.shape).toEqual(c.weights.shape);
    expectClose(out.output.data, c.output.data, 2e-6, 2e-5);
    expectClose(out.weights.data, c.weights.data, 2e-6, 2e-5);
  });
});

describe("MultiheadAttention in a model", () => {
  test("self-attention through call(); isCausal equals the bool causal mask; dropout only in training", async () => {
    k.manualSeed(11);
    const mha = k.nn.multiheadAttention(8, 2, { batchFirst: true, dropout: 0.5 });
    const x = uniform(2 * 5 * 8, 3);
    const causal = Array.from({ length: 25 }, (_, i) => (i % 5 > Math.floor(i / 5) ? 1 : 0));
    const run = async (training: boolean) => {
      if (training) mha.train();
      else mha.eval();
      const exe = await k.compile(
        (xs: k.Tensor, mask: k.Tensor) => [mha.call(xs), mha.attention(xs, xs, xs, { isCausal: true }).output, mha.call(xs, xs, xs, mask)],
        [k.f32([2, 5, 8]), k.bool([5, 5])],
        { target: "reference" },
      );
      return ((await exe.run([x, causal])) as k.HostOutput[]).map((o) => Array.from(o.data));
    };
    const [plain, viaCausal, viaMask] = await run(false);
    expectClose(viaCausal!, viaMask!, 1e-12, 1e-12);
    expect(plain).not.toEqual(viaCausal);
    const [trained] = await run(true);
    expect(trained).not.toEqual(plain);
  });

  test("gradients of the module (inputs and every parameter) match finite differences", () => {
    const mha = new k.nn.MultiheadAttention(4, 2, { kdim: 3, vdim: 5 });
    const names = mha.namedParameters().map(([name]) => name);
    expect(names).toEqual(["q_proj_weight", "k_proj_weight", "v_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"]);
    const shapes = mha.namedParameters().map(([, p]) => p.shape);
    const fn = (q: k.Tensor, key: k.Tensor, value: k.Tensor, ...params: k.Tensor[]): k.Tensor =>
      k.functionalCall(mha, Object.fromEntries(names.map((n, i) => [n, params[i]!])), () => mha.attention(q, key, value, { isCausal: true }).output);
    const specs = [k.f32([3, 2, 4]), k.f32([3, 2, 3]), k.f32([3, 2, 5]), ...shapes.map((s) => k.f32(s))];
    gradcheck(
      fn,
      specs,
      specs.map((s, i) =>
        uniform(
          s.shape.reduce((a, b) => a * b, 1),
          40 + i,
        ),
      ),
    );
  });

  test("bad shapes and options are one-line errors", () => {
    expect(() => new k.nn.MultiheadAttention(6, 4)).toThrow("MultiheadAttention: embedDim 6 must be divisible by numHeads 4");
    expect(() => new k.nn.MultiheadAttention(4, 2, { batch_first: true } as never)).toThrow(/unknown option 'batch_first' .* did you mean 'batchFirst'\?/);
    const mha = new k.nn.MultiheadAttention(4, 2);
    expect(() => k.traceFunction("t", (x: k.Tensor) => mha.call(x), [k.f32([3, 2, 5])])).toThrow(
      /^shape mismatch in MultiheadAttention: query must be \[seq, batch, 4\], got \[3,2,5\]/,
    );
    expect(() =>
      k.traceFunction("t", (x: k.Tensor, m: k.Tensor) => mha.attention(x, x, x, { attnMask: m }).output, [k.f32([3, 2, 4]), k.bool([3, 4])]),
    ).toThrow(/^shape mismatch in MultiheadAttention: attnMask must be \[3, 3\] or \[4, 3, 3\], got \[3,4\]/);
  });
});
