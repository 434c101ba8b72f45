// Function transforms k.grad, k.valueAndGrad and k.vjp (JAX semantics). Called with tensors
// of a trace, they trace `f` into that same trace and append its backward nodes there
// (compiler/passes/autodiff), so the gradient is made of primitives and grad of grad works.
//
// Why not trace f into a fresh graph and inline it: f may close over tensors of the caller's
// trace (`k.grad((x) => k.grad(f)(x).mul(v).sum())`), which a separate graph cannot read. The
// nodes f adds form the region being differentiated; anything f reads from before the call
// (captured tensors) is a constant to it, as in JAX.

import { isFloat } from "../compiler/ir/dtype.ts";
import { formatType } from "../compiler/ir/infer.ts";
import type { Node, ValueId } from "../compiler/ir/types.ts";
import { Emitter } from "../compiler/passes/autodiff/emit.ts";
import { emitBackward } from "../compiler/passes/autodiff/engine.ts";
import { Tensor, prim, userError } from "./tensor.ts";
import { currentTrace, flattenTree, withTrace, type Trace, type TensorTree } from "./trace.ts";
import { captureUserLoc } from "./loc.ts";
import { strictOptions } from "./options.ts";

export interface GradOptions<N extends number | readonly number[] = number | readonly number[]> {
  /** Which positional arguments to differentiate with respect to (default 0). */
  readonly argnums?: N;
  /** f returns [scalar, aux]: aux rides along undifferentiated (JAX's has_aux). */
  readonly hasAux?: boolean;
}

/** One gradient for a single argnum, an array of them for an array of argnums. */
export type Grads<N> = N extends readonly number[] ? Tensor[] : Tensor;

/** The gradient of a scalar-valued `f` with respect to argument `argnums` (default 0). */
export function grad<A extends unknown[], N extends number | readonly number[] = number>(
  f: (...args: A) => Tensor,
  opts?: GradOptions<N> & { readonly hasAux?: false },
): (...args: A) => Grads<N>;
/** With `hasAux`, f returns [scalar, aux] and the result is [gradient(s), aux]. */
export function grad<A extends unknown[], Aux, N extends number | readonly number[] = number>(
  f: (...args: A) => readonly [Tensor, Aux],
  opts: GradOptions<N> & { readonly hasAux: true },
): (...args: A) => [Grads<N>, Aux];
export function grad(f: (...args: unknown[]) => unknown, opts: GradOptions = {}): (...args: unknown[]) => unknown {
  strictOptions("grad", opts, { argnums: true, hasAux: true });
  const withValue = valueAndGrad as (f: unknown, opts: GradOptions) => (...args: unknown[]) => [unknown, unknown];
  const call = withValue(f, opts);
  return (...args: unknown[]) => {
    const [value, grads] = call(...args);
    return opts.hasAux ? [grads, (value as [Tensor, unknown])[1]] : grads;
  };
}

/** `f`'s value and its gradient with respect to `argnums`, from one trace of f. */
export function valueAndGrad<A extends unknown[], N extends number | readonly number[] = number>(
  f: (...args: A) => Tensor,
  opts?: GradOptions<N> & { readonly hasAux?: false },
): (...args: A) => [Tensor, Grads<N>];
/** With `hasAux`, f returns [scalar, aux] and the result is [[value, aux], gradient(s)]. */
export function valueAndGrad<A extends unknown[], Aux, N extends number | readonly number[] = number>(
  f: (...args: A) => readonly [Tensor, Aux],
  opts: GradOptions<N> & { readonly hasAux: true },
): (...args: A) => [[Tensor, Aux], Grads<N>];
export function valueAndGrad(f: (...args: unknown[]) => unknown, opts: GradOptions = {}): (...args: unknown[]) => unknown {
  strictOptions("valueAndGrad", opts, { argnums: true, hasAux: true });
  const many = Array.isArray(opts.argnums);
  const argnums = argnumList(opts);
  return (...args: unknown[]) => {
    const call = traceCall("grad", f, args, argnums);
    let out = call.result;
    let aux: unknown;
    if (opts.hasAux) {
      if (!Array.isArray(out) || out.length !== 2)
        return userError("invalid-argument", `grad: with hasAux the function must return [scalar, aux], got ${describe(out)}`);
      [out, aux] = out as [unknown, unknown];
    }
    if (!(out instanceof Tensor)) return userError("invalid-argument", `grad: the function must return one scalar tensor, got ${describe(out)}`);
    if (out.trace !== call.trace) return userError("invalid-argument", "grad: the function returned a tensor of another traced function");
    if (!isFloat(out.dtype) || out.ndim !== 0)
      return userError("invalid-argument", `grad: the function must return a scalar f32 tensor, got ${formatType(out.type)} (reduce it, e.g. with .sum())`);
    const grads = call.backward([[out, undefined]]);
    const value = opts.hasAux ? [out, aux] : out;
    return [value, many ? grads : grads[0]!];
  };
}

/**
 * Vector-Jacobian product (JAX's `vjp`): returns f's outputs and a function mapping
 * cotangents shaped like them to the cotangent of each primal.
 */
export function vjp<A extends Tensor[], R extends TensorTree>(f: (...args: A) => R, ...primals: A): [R, (cotangents: R) => Tensor[]] {
  const call = traceCall(
    "vjp",
    f as (...a: unknown[]) => unknown,
    primals,
    primals.map((_, i) => i),
  );
  const outLeaves = flattenTree(call.result);
  const vjpFn = (cotangents: R): Tensor[] => {
    const cotLeaves = flattenTree(cotangents);
    if (cotLeaves.length !== outLeaves.length)
      return userError("invalid-argument", `vjp: expected ${outLeaves.length} cotangent tensor(s) shaped like the outputs, got ${cotLeaves.length}`);
    const pairs = outLeaves.map((o, i): [Tensor, Tensor] => {
      const ct = cotLeaves[i]!.tensor;
      if (ct.trace !== call.trace) return userError("invalid-argument", `vjp: cotangent '${o.name}' comes from another traced function`);
      if (ct.dtype !== o.tensor.dtype || ct.shape.join() !== o.tensor.shape.join())
        return userError("shape-mismatch", `vjp: cotangent '${o.name}' must be ${formatType(o.tensor.type)}, got ${formatType(ct.type)}`);
      return [o.tensor, ct];
    });
    return call.backward(pairs.filter(([o]) => isFloat(o.dtype)));
  };
  return [call.result as R, vjpFn];
}

interface TracedCall {
  readonly trace: Trace;
  readonly result: unknown;
  /** Emits the backward pass for (output, cotangent) pairs (undefined: a scalar seed of 1). */
  readonly backward: (seeds: readonly (readonly [Tensor, Tensor | undefined])[]) => Tensor[];
}

/** Runs f on args in their trace and records which nodes it added. */
function traceCall(what: string, f: (...a: unknown[]) => unknown, args: readonly unknown[], argnums: readonly number[]): TracedCall {
  const trace = traceOfArgs(what, args);
  for (const i of argnums) {
    const a = args[i];
    if (!Number.isInteger(i) || i < 0 || i >= args.length)
      return userError("invalid-argument", `${what}: argnums entry ${i} is out of range for ${args.length} argument(s)`);
    if (!(a instanceof Tensor)) return userError("invalid-argument", `${what}: argument ${i} must be a tensor, got ${describe(a)}`);
    if (a.trace !== trace) return userError("invalid-argument", `${what}: argument ${i} comes from another traced function`);
    if (!isFloat(a.dtype)) return userError("invalid-argument", `${what}: argument ${i} is ${formatType(a.type)}; only f32 arguments have gradients`);
  }
  const callArgs = separateRepeatedArgs(trace, args, argnums);
  const before = trace.builder.build([]).nodes.length;
  const result = currentTrace() === trace ? f(...callArgs) : withTrace(trace, () => f(...callArgs));
  const region: readonly Node[] = trace.builder.build([]).nodes.slice(before);
  const wrt = argnums.map((i) => (callArgs[i] as Tensor).id);

  const backward = (seedPairs: readonly (readonly [Tensor, Tensor | undefined])[]): Tensor[] => {
    const em = new Emitter(trace.builder);
    em.loc = captureUserLoc();
    const seeds = new Map<ValueId, ValueId>();
    for (const [out, cot] of seedPairs) {
      const c = cot ? em.value(cot.id) : em.full(1, out.type);
      const prev = seeds.get(out.id);
      seeds.set(out.id, prev === undefined ? c.id : em.value(prev).add(c).id);
    }
    const cots = emitBackward(em, { region, seeds, wrt, primal: (id) => id });
    em.loc = captureUserLoc();
    return cots.map((c, k) => new Tensor(trace, (c ?? em.full(0, (callArgs[argnums[k]!] as Tensor).type)).id));
  };
  return { trace, result, backward };
}

function argnumList(opts: GradOptions): readonly number[] {
  return opts.argnums === undefined ? [0] : typeof opts.argnums === "number" ? [opts.argnums] : opts.argnums;
}

function traceOfArgs(what: string, args: readonly unknown[]): Trace {
  const first = args.find((a): a is Tensor => a instanceof Tensor);
  if (!first) return userError("invalid-argument", `${what}: call the transformed function with tensors, inside a function given to k.compile/k.program`);
  return first.trace;
}

/**
 * A differentiated argument that is the same tensor as another argument gets its own copy
 * (a same-shape reshape), so f(x, x) differentiates each parameter separately.
 */
function separateRepeatedArgs(trace: Trace, args: readonly unknown[], argnums: readonly number[]): unknown[] {
  const callArgs = [...args];
  for (const i of argnums) {
    const a = args[i] as Tensor;
    const repeated = args.some((b, j) => j !== i && b instanceof Tensor && b.id === a.id);
    if (repeated) callArgs[i] = prim(trace, { op: "reshape", x: a.id }, a.type);
  }
  return callArgs;
}

function describe(x: unknown): string {
  if (x instanceof Tensor) return x.toString();
  if (Array.isArray(x)) return "an array";
  return typeof x;
}
