// Gradient checks: the analytic vector-Jacobian product (autodiff, evaluated by the float64
// reference interpreter) against central finite differences of the forward, also in float64.
// The scalar checked is s(x) = sum(f(x) · c) for a fixed random cotangent c, so every entry of
// the Jacobian contributes, not only its column sums.

import { hostArrayFrom, isFloat } from "../../compiler/ir/dtype.ts";
import { interpret } from "../../compiler/ir/interpret.ts";
import { nodeOf } from "../../compiler/ir/graph.ts";
import type { Graph, InputNode, TensorType } from "../../compiler/ir/types.ts";
import { vjpGraph } from "../../compiler/passes/autodiff/engine.ts";
import type { HostTensor } from "../../compiler/ir/host-tensor.ts";
import { numel } from "../../compiler/util/shape.ts";
import { valueAndGrad } from "../../dsl/grad.ts";
import type { Tensor } from "../../dsl/tensor.ts";
import { f32, traceFunction, type InputSpec } from "../../dsl/trace.ts";
import { mulberry32 } from "./random-graph.ts";

export interface GradcheckOptions {
  /** Finite-difference step (default 1e-6). */
  readonly eps?: number;
  readonly atol?: number;
  readonly rtol?: number;
  /** Inputs bound by name besides the positional ones (e.g. `seed` for random ops). */
  readonly extra?: Readonly<Record<string, HostTensor>>;
  /** Seed of the random cotangent. */
  readonly seed?: number;
}

/** A small seeded PRNG (mulberry32, shared with the random-graph generator): tests print their seed, so failures replay. */
export const prng = mulberry32;

/** `n` uniform values in [lo, hi). */
export function uniform(n: number, seed: number, lo = -1, hi = 1): number[] {
  const next = prng(seed);
  return Array.from({ length: n }, () => lo + (hi - lo) * next());
}

export function hostTensor(type: TensorType, data: ArrayLike<number>): HostTensor {
  const typed = hostArrayFrom(type.dtype, data);
  if (typed.length !== numel(type.shape)) throw new Error(`gradcheck: ${typed.length} values for shape [${type.shape.join(",")}]`);
  return { dtype: type.dtype, shape: type.shape, data: typed };
}

/**
 * Checks the gradient of `fn` (traced on `specs`, called with `inputs`) with respect to every
 * f32 argument, through k.valueAndGrad. Returns the analytic gradients for further checks.
 */
export function gradcheck(
  fn: (...args: Tensor[]) => Tensor,
  specs: readonly InputSpec[],
  inputs: readonly ArrayLike<number>[],
  opts: GradcheckOptions = {},
): number[][] {
  const shapeGraph = traceFunction("shape", fn, specs).graph;
  const outNode = nodeOf(shapeGraph, shapeGraph.outputs[0]!.value);
  const argnums = specs.flatMap((s, i) => (isFloat(s.dtype) ? [i] : []));
  const cotSpec = f32(outNode.type.shape);
  const scalar = (...args: Tensor[]): Tensor =>
    fn(...args.slice(0, specs.length))
      .mul(args[specs.length]!)
      .sum();
  const withGrad = (...args: Tensor[]): Tensor[] => {
    const [value, grads] = valueAndGrad(scalar, { argnums })(...args);
    return [value, ...grads];
  };
  const allSpecs = [...specs, cotSpec];
  const cot = uniform(numel(cotSpec.shape), opts.seed ?? 7, 0.5, 1.5);
  const bind = (g: Graph, data: readonly ArrayLike<number>[]): Record<string, HostTensor> => {
    const bound: Record<string, HostTensor> = { ...opts.extra };
    allSpecs.forEach((s, i) => {
      const node = nodeOf(g, g.inputs[i]!) as InputNode;
      bound[node.name] = hostTensor({ dtype: s.dtype, shape: s.shape }, data[i]!);
    });
    return bound;
  };
  const analyticGraph = traceFunction("gradcheck", withGrad, allSpecs).graph;
  const forwardGraph = traceFunction("forward", scalar, allSpecs).graph;
  const analyticOut = interpret(analyticGraph, bind(analyticGraph, [...inputs, cot]));
  const grads = argnums.map((_, k) => Array.from(analyticOut[String(k + 1)]!.data));
  const evalScalar = (data: readonly ArrayLike<number>[]): number => interpret(forwardGraph, bind(forwardGraph, data))["out"]!.data[0]!;
  argnums.forEach((argIndex, k) => {
    const numeric = finiteDifferences((x) => evalScalar(inputs.map((v, i) => (i === argIndex ? x : v)).concat([cot])), inputs[argIndex]!, opts.eps ?? 1e-6);
    expectGradClose(grads[k]!, numeric, `argument ${argIndex}`, opts);
  });
  return grads;
}

/**
 * The same check on a graph built by hand: the vjp of outputs `of` (all f32, any shape) with
 * respect to inputs `wrt`, through vjpGraph, against finite differences.
 */
export function gradcheckGraph(g: Graph, wrt: readonly string[], inputs: Readonly<Record<string, HostTensor>>, opts: GradcheckOptions = {}): void {
  const of = g.outputs.map((o) => o.name);
  const cots: Record<string, HostTensor> = {};
  g.outputs.forEach((o, i) => {
    const type = nodeOf(g, o.value).type;
    cots[`cot.${o.name}`] = hostTensor(type, uniform(numel(type.shape), (opts.seed ?? 7) + i, 0.5, 1.5));
  });
  const vjp = interpret(vjpGraph(g, { of, wrt }), { ...inputs, ...cots });
  const scalarAt = (bound: Readonly<Record<string, HostTensor>>): number => {
    const outs = interpret(g, bound);
    let s = 0;
    for (const name of of) {
      const y = outs[name]!.data;
      const c = cots[`cot.${name}`]!.data;
      for (let i = 0; i < y.length; i++) s += y[i]! * c[i]!;
    }
    return s;
  };
  for (const name of wrt) {
    const x = inputs[name]!;
    const numeric = finiteDifferences((data) => scalarAt({ ...inputs, [name]: { ...x, data: Float64Array.from(data) } }), x.data, opts.eps ?? 1e-6);
    expectGradClose(Array.from(vjp[`grad.${name}`]!.data), numeric, `input '${name}'`, opts);
  }
}

/** Central differences of a scalar function of a flat vector, one coordinate at a time. */
export function finiteDifferences(f: (x: Float64Array) => number, at: ArrayLike<number>, eps: number): number[] {
  const x = Float64Array.from(at);
  return Array.from(x, (v, i) => {
    x[i] = v + eps;
    const up = f(x);
    x[i] = v - eps;
    const down = f(x);
    x[i] = v;
    return (up - down) / (2 * eps);
  });
}

export function expectGradClose(analytic: readonly number[], numeric: readonly number[], what: string, opts: { atol?: number; rtol?: number } = {}): void {
  const atol = opts.atol ?? 1e-5;
  const rtol = opts.rtol ?? 1e-4;
  if (analytic.length !== numeric.length) throw new Error(`gradcheck ${what}: ${analytic.length} gradient entries, expected ${numeric.length}`);
  analytic.forEach((a, i) => {
    const n = numeric[i]!;
    if (!(Math.abs(a - n) <= atol + rtol * Math.abs(n)))
      throw new Error(
        `gradcheck ${what}: entry ${i}: autodiff ${a}, finite differences ${n} (atol ${atol}, rtol ${rtol})\n autodiff: ${analytic.slice(0, 12).join(", ")}\n numeric:  ${numeric.slice(0, 12).join(", ")}`,
      );
  });
}
