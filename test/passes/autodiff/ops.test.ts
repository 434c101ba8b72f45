// Gradchecks of the DSL op surface (elementwise, activations, reductions, movement, matmul):
// autodiff through each op's decomposition vs central finite differences in float64, with
// broadcast operands and several shapes. Inputs sit away from kinks (relu at 0, max ties).

import { describe, test } from "vitest";
import * as k from "../../../dsl/index.ts";
import type { InputSpec, Tensor } from "../../../dsl/index.ts";
import { numel } from "../../../compiler/util/shape.ts";
import { gradcheck, uniform } from "../../util/gradcheck.ts";

interface OpCase {
  readonly name: string;
  readonly fn: (...args: Tensor[]) => Tensor;
  readonly specs: readonly InputSpec[];
  /** Data per argument; f32 arguments default to uniform values in `range`. */
  readonly data?: readonly (readonly number[] | undefined)[];
  readonly range?: readonly [number, number];
}

/** Values in [lo, hi) at least `gap` away from each other and from 0: no kinks, no ties. */
function spread(n: number, seed: number, lo = -2, hi = 2): number[] {
  const step = (hi - lo) / n;
  const order = uniform(n, seed)
    .map((v, i) => [v, i] as const)
    .sort((a, b) => a[0] - b[0])
    .map(([, i]) => i);
  return order.map((slot) => {
    const v = lo + step * (slot + 0.5);
    return Math.abs(v) < step / 4 ? v + step / 4 : v;
  });
}

function run(c: OpCase, seed: number): void {
  const inputs = c.specs.map(
    (s, i) => c.data?.[i] ?? (s.dtype === "f32" ? (c.range ? uniform(numel(s.shape), seed + i, ...c.range) : spread(numel(s.shape), seed + i)) : []),
  );
  gradcheck(c.fn, c.specs, inputs);
}

const f = k.f32;

const elementwise: OpCase[] = [
  { name: "add [3,1]+[1,4]", fn: (x, y) => x.add(y), specs: [f([3, 1]), f([1, 4])] },
  { name: "add [2,3]+[3] with alpha", fn: (x, y) => x.add(y, 2.5), specs: [f([2, 3]), f([3])] },
  { name: "sub []-[2,2]", fn: (x, y) => x.sub(y), specs: [f([]), f([2, 2])] },
  { name: "mul [2,1,3]*[4,1]", fn: (x, y) => x.mul(y), specs: [f([2, 1, 3]), f([4, 1])] },
  { name: "mul by a scalar", fn: (x) => x.mul(-1.5), specs: [f([5])] },
  { name: "div [2,3]/[2,1]", fn: (x, y) => x.div(y), specs: [f([2, 3]), f([2, 1])], range: [0.5, 2] },
  { name: "div scalar by tensor", fn: (x) => k.div(2, x), specs: [f([4])], range: [0.5, 2] },
  { name: "neg", fn: (x) => x.neg(), specs: [f([2, 3])] },
  { name: "exp", fn: (x) => x.exp(), specs: [f([2, 3])] },
  { name: "log", fn: (x) => x.log(), specs: [f([4])], range: [0.2, 3] },
  { name: "sqrt", fn: (x) => x.sqrt(), specs: [f([4])], range: [0.2, 3] },
  { name: "rsqrt", fn: (x) => x.rsqrt(), specs: [f([4])], range: [0.2, 3] },
  { name: "abs", fn: (x) => x.abs(), specs: [f([6])] },
  { name: "square", fn: (x) => x.square(), specs: [f([3])] },
  { name: "pow integer exponent", fn: (x) => x.pow(3), specs: [f([2, 2])] },
  { name: "pow negative integer exponent", fn: (x) => x.pow(-2), specs: [f([3])], range: [0.5, 2] },
  { name: "pow fractional exponent", fn: (x) => x.pow(1.7), specs: [f([3])], range: [0.3, 2] },
  { name: "pow tensor exponent [3,1]^[1,2]", fn: (x, y) => x.pow(y), specs: [f([3, 1]), f([1, 2])], range: [0.4, 1.8] },
  { name: "reciprocal", fn: (x) => x.reciprocal(), specs: [f([3])], range: [0.4, 2] },
  { name: "sin", fn: (x) => x.sin(), specs: [f([2, 3])] },
  { name: "cos", fn: (x) => x.cos(), specs: [f([2, 3])] },
  { name: "erf", fn: (x) => x.erf(), specs: [f([5])] },
  { name: "maximum [2,3] vs [3]", fn: (x, y) => x.maximum(y), specs: [f([2, 3]), f([3])] },
  { name: "minimum [2,3] vs [2,1]", fn: (x, y) => x.minimum(y), specs: [f([2, 3]), f([2, 1])] },
  { name: "clamp", fn: (x) => x.clamp(-0.9, 1.1), specs: [f([8])] },
  { name: "where with a broadcast condition", fn: (c, x, y) => c.where(x, y), specs: [k.bool([3, 1]), f([3, 2]), f([2])], data: [[1, 0, 1]] },
  { name: "maskedFill", fn: (x, m) => x.maskedFill(m, -0.5), specs: [f([2, 3]), k.bool([3])], data: [undefined, [1, 0, 1]] },
  { name: "where with a scalar branch", fn: (x) => x.gt(0.1).where(x.mul(x), 0.5), specs: [f([6])] },
];

const activations: OpCase[] = [
  { name: "relu", fn: (x) => x.relu(), specs: [f([3, 4])] },
  { name: "leakyRelu", fn: (x) => x.leakyRelu(0.1), specs: [f([3, 4])] },
  { name: "gelu (erf)", fn: (x) => x.gelu(), specs: [f([6])] },
  { name: "gelu (tanh)", fn: (x) => x.gelu("tanh"), specs: [f([6])] },
  { name: "silu", fn: (x) => x.silu(), specs: [f([6])] },
  { name: "sigmoid", fn: (x) => x.sigmoid(), specs: [f([2, 3])] },
  { name: "tanh", fn: (x) => x.tanh(), specs: [f([2, 3])] },
  { name: "softplus both sides of the threshold", fn: (x) => x.softplus(2, 3), specs: [f([4])], data: [[-1.3, 0.4, 1.2, 2.5]] },
];

const reductions: OpCase[] = [
  { name: "sum all", fn: (x) => x.sum(), specs: [f([2, 3, 4])] },
  { name: "sum dims [0,2]", fn: (x) => x.sum([0, 2]), specs: [f([2, 3, 4])] },
  { name: "sum dim -1 keepdim", fn: (x) => x.sum(-1, true), specs: [f([3, 4])] },
  { name: "mean dim 1", fn: (x) => x.mean(1), specs: [f([2, 5])] },
  { name: "mean dims [0,1] of [2,3,2]", fn: (x) => x.mean([0, 1]), specs: [f([2, 3, 2])] },
  { name: "max dim 1", fn: (x) => x.max(1).values, specs: [f([3, 4])] },
  { name: "max dims [0,2]", fn: (x) => x.amax([0, 2]), specs: [f([2, 3, 2])] },
  { name: "max all", fn: (x) => x.max(), specs: [f([2, 3])] },
  { name: "min dim 0 keepdim", fn: (x) => x.min(0, true).values, specs: [f([3, 2])] },
  { name: "var dim 1", fn: (x) => x.var(1), specs: [f([2, 5])] },
  { name: "std dim 0", fn: (x) => x.std(0), specs: [f([4, 2])] },
  { name: "var all, correction 0", fn: (x) => x.var(undefined, { correction: 0 }), specs: [f([3, 3])] },
  { name: "logsumexp dim 1", fn: (x) => x.logsumexp(1), specs: [f([3, 4])] },
  { name: "logsumexp dims [0,1]", fn: (x) => x.logsumexp([0, 1], true), specs: [f([2, 3])] },
  { name: "softmax dim -1", fn: (x) => x.softmax(-1), specs: [f([3, 5])] },
  { name: "softmax dim 0", fn: (x) => x.softmax(0), specs: [f([4, 2, 2])] },
  { name: "logSoftmax dim 1", fn: (x) => x.logSoftmax(1), specs: [f([2, 6])] },
  { name: "cumsum dim 1", fn: (x) => x.cumsum(1), specs: [f([2, 7])] },
];

const movement: OpCase[] = [
  { name: "reshape", fn: (x) => x.reshape(3, -1), specs: [f([2, 6])] },
  { name: "permute", fn: (x) => x.permute(2, 0, 1), specs: [f([2, 3, 4])] },
  { name: "transpose", fn: (x) => x.transpose(0, 2), specs: [f([2, 3, 2])] },
  { name: "expand with new leading dims", fn: (x) => x.expand(2, 3, 4), specs: [f([3, 1])] },
  { name: "unsqueeze/squeeze", fn: (x) => x.unsqueeze(1).mul(2).squeeze(1), specs: [f([4])] },
  { name: "flatten", fn: (x) => x.flatten(1), specs: [f([2, 2, 3])] },
  { name: "slice with steps and an index", fn: (x) => x.slice([1, null, 2], 1, [null, null, 3]), specs: [f([5, 3, 7])] },
  { name: "slice with a negative start", fn: (x) => x.slice(null, [-3]), specs: [f([2, 5])] },
  { name: "narrow", fn: (x) => x.narrow(1, 1, 2), specs: [f([3, 4])] },
  { name: "flip", fn: (x) => x.flip([0, 2]), specs: [f([2, 3, 2])] },
  { name: "pad (grow)", fn: (x) => x.pad([1, 2, 0, 1], 3), specs: [f([2, 3])] },
  { name: "pad (crop one side)", fn: (x) => x.pad([-1, 2]), specs: [f([2, 4])] },
  {
    name: "split",
    fn: (x) => {
      const [a, b] = x.split([1, 3], 1);
      return a!.mul(b!.sum(1, true));
    },
    specs: [f([2, 4])],
  },
  {
    name: "chunk",
    fn: (x) => {
      const [a, b] = x.chunk(2, 0);
      return a!.mul(b!);
    },
    specs: [f([4, 3])],
  },
  { name: "cat", fn: (x, y) => k.cat([x, y, x], 1), specs: [f([2, 1]), f([2, 3])] },
  { name: "stack", fn: (x, y) => k.stack([x, y], 1), specs: [f([3]), f([3])] },
  { name: "tril", fn: (x) => x.tril(), specs: [f([2, 3, 3])] },
  { name: "triu with a diagonal offset", fn: (x) => x.triu(1), specs: [f([3, 4])] },
  { name: "repeat", fn: (x) => x.repeat(2, 3), specs: [f([2, 2])] },
  {
    name: "gather dim 1 (repeats)",
    fn: (x, i) => x.gather(1, i),
    specs: [f([3, 4]), k.i32([3, 5])],
    data: [undefined, [0, 3, 3, 1, 0, 2, 2, 2, 1, 0, 3, 1, 0, 0, 3]],
  },
  { name: "gather dim 0 of 3-d", fn: (x, i) => x.gather(0, i), specs: [f([3, 2, 2]), k.i32([2, 2, 2])], data: [undefined, [2, 0, 1, 1, 0, 2, 2, 2]] },
  { name: "indexSelect (repeats)", fn: (x, i) => x.indexSelect(0, i), specs: [f([4, 3]), k.i32([5])], data: [undefined, [3, 0, 3, 1, 3]] },
];

const linalg: OpCase[] = [
  { name: "matmul [2,3]@[3,4]", fn: (x, y) => x.matmul(y), specs: [f([2, 3]), f([3, 4])] },
  { name: "matmul batched with broadcast batch [2,1,2,3]@[3,3,2]", fn: (x, y) => x.matmul(y), specs: [f([2, 1, 2, 3]), f([3, 3, 2])] },
  { name: "matmul vector @ matrix", fn: (x, y) => x.matmul(y), specs: [f([3]), f([3, 2])] },
  { name: "matmul matrix @ vector", fn: (x, y) => x.matmul(y), specs: [f([2, 3]), f([3])] },
  { name: "matmul vector @ vector", fn: (x, y) => x.matmul(y), specs: [f([4]), f([4])] },
  { name: "x @ xᵀ relu sum (DESIGN.md)", fn: (x) => x.matmul(x.transpose(0, 1)).relu(), specs: [f([3, 2])] },
];

const groups: [string, OpCase[]][] = [
  ["elementwise", elementwise],
  ["activations", activations],
  ["reductions", reductions],
  ["movement", movement],
  ["linalg", linalg],
];

for (const [group, cases] of groups) {
  describe(`gradcheck: ${group}`, () => {
    cases.forEach((c, i) => test(c.name, () => run(c, 1000 + 17 * i)));
  });
}
