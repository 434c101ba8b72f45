// Backward graphs through the whole pipeline: a gradient traced with k.valueAndGrad, compiled
// for the generated-JS target (simplify, fusion, codegen), must match the float64 reference
// interpreter on the same function, and a hand-derived gradient of a small MLP.

import { describe, expect, test } from "vitest";
import * as k from "../../../dsl/index.ts";
import type { Tensor, HostOutput } from "../../../dsl/index.ts";
import { expectClose } from "../../util/ref.ts";
import { uniform } from "../../util/gradcheck.ts";

/** Two-layer MLP loss: mean((relu(x W1ᵀ + b1) W2ᵀ) − y)². */
const mlpLoss = (x: Tensor, y: Tensor, w1: Tensor, b1: Tensor, w2: Tensor) => {
  const h = x.matmul(w1.t()).add(b1).relu();
  return h.matmul(w2.t()).sub(y).square().mean();
};

const trainGrads = (x: Tensor, y: Tensor, w1: Tensor, b1: Tensor, w2: Tensor) => {
  const [loss, grads] = k.valueAndGrad(mlpLoss, { argnums: [2, 3, 4] })(x, y, w1, b1, w2);
  return { loss, w1: grads[0]!, b1: grads[1]!, w2: grads[2]! };
};

const specs = [k.f32([4, 3]), k.f32([4, 2]), k.f32([5, 3]), k.f32([5]), k.f32([2, 5])];
const data = specs.map((s, i) =>
  Float64Array.from(
    uniform(
      s.shape.reduce((a, b) => a * b, 1),
      500 + i,
    ),
  ),
);

type Outputs = Record<"loss" | "w1" | "b1" | "w2", HostOutput>;

/** The same gradient with explicit loops (backprop by hand). */
function handGrads(): Record<"loss" | "w1" | "b1" | "w2", number[]> {
  const [x, y, w1, b1, w2] = data as [Float64Array, Float64Array, Float64Array, Float64Array, Float64Array];
  const [n, d, hdim, o] = [4, 3, 5, 2];
  const pre = new Array<number>(n * hdim).fill(0);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < hdim; j++) {
      let s = b1[j]!;
      for (let t = 0; t < d; t++) s += x[i * d + t]! * w1[j * d + t]!;
      pre[i * hdim + j] = s;
    }
  const h = pre.map((v) => Math.max(v, 0));
  const diff = new Array<number>(n * o).fill(0);
  let loss = 0;
  for (let i = 0; i < n; i++)
    for (let c = 0; c < o; c++) {
      let s = 0;
      for (let j = 0; j < hdim; j++) s += h[i * hdim + j]! * w2[c * hdim + j]!;
      diff[i * o + c] = s - y[i * o + c]!;
      loss += diff[i * o + c]! ** 2 / (n * o);
    }
  const gOut = diff.map((v) => (2 * v) / (n * o));
  const gw2 = new Array<number>(o * hdim).fill(0);
  const gPre = new Array<number>(n * hdim).fill(0);
  for (let i = 0; i < n; i++)
    for (let c = 0; c < o; c++)
      for (let j = 0; j < hdim; j++) {
        gw2[c * hdim + j]! += gOut[i * o + c]! * h[i * hdim + j]!;
        if (pre[i * hdim + j]! > 0) gPre[i * hdim + j]! += gOut[i * o + c]! * w2[c * hdim + j]!;
      }
  const gw1 = new Array<number>(hdim * d).fill(0);
  const gb1 = new Array<number>(hdim).fill(0);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < hdim; j++) {
      gb1[j]! += gPre[i * hdim + j]!;
      for (let t = 0; t < d; t++) gw1[j * d + t]! += gPre[i * hdim + j]! * x[i * d + t]!;
    }
  return { loss: [loss], w1: gw1, b1: gb1, w2: gw2 };
}

describe("gradients through k.compile", () => {
  test("MLP gradient: reference interpreter matches backprop by hand", async () => {
    const exe = await k.compile(trainGrads, specs, { target: "reference" });
    const out = (await exe.run(data)) as Outputs;
    const hand = handGrads();
    for (const key of ["loss", "w1", "b1", "w2"] as const) expectClose(out[key].data, hand[key], 1e-12, 1e-12);
  });

  test("MLP gradient on the generated-JS target matches the reference", async () => {
    const targets = await k.availableTargets();
    expect(targets).toContain("js");
    const ref = (await (await k.compile(trainGrads, specs, { target: "reference" })).run(data)) as Outputs;
    const js = (await (await k.compile(trainGrads, specs, { target: "js" })).run(data)) as Outputs;
    for (const key of ["loss", "w1", "b1", "w2"] as const) {
      expect(js[key].shape).toEqual(ref[key].shape);
      expectClose(js[key].data, ref[key].data, 1e-5, 1e-4);
    }
  });

  test("Hessian-vector product on the generated-JS target matches the reference", async () => {
    const hvp = (x: Tensor, v: Tensor) =>
      k.grad((a: Tensor) =>
        k
          .grad((b: Tensor) => b.softmax(-1).mul(b).sum())(a)
          .mul(v)
          .sum(),
      )(x);
    const hvpSpecs = [k.f32([2, 4]), k.f32([2, 4])];
    const hvpData = [Float64Array.from(uniform(8, 1)), Float64Array.from(uniform(8, 2))];
    const ref = (await (await k.compile(hvp, hvpSpecs, { target: "reference" })).run(hvpData)) as HostOutput;
    const js = (await (await k.compile(hvp, hvpSpecs, { target: "js" })).run(hvpData)) as HostOutput;
    expectClose(js.data, ref.data, 1e-5, 1e-4);
  });
});
