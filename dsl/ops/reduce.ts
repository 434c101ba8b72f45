// Reductions: sum and max are primitives (kept dims); everything else (mean, var, argmax,
// logsumexp, softmax…) is built from them here.

import { Tensor, dimList, prim, userError, type Dims } from "../tensor.ts";
import * as E from "./elementwise.ts";
import * as M from "./movement.ts";

function dropDims(x: Tensor, axes: readonly number[], keepdim: boolean): Tensor {
  return keepdim ? x : M.reshape(x, x.shape.filter((_, i) => !axes.includes(i)));
}

export function sum(x: Tensor, dim: Dims | undefined, keepdim: boolean): Tensor {
  const axes = dimList(x, dim, "sum");
  const src = x.dtype === "bool" ? E.cast(x, "i32") : x;
  if (axes.length === 0) return src;
  const r = prim(x.trace, { op: "reduce_sum", x: src.id, axes });
  return dropDims(r, axes, keepdim);
}

export function max(x: Tensor, dim: Dims | undefined, keepdim: boolean): Tensor {
  const axes = dimList(x, dim, "max");
  if (axes.length === 0) return x;
  const src = x.dtype === "bool" ? E.cast(x, "i32") : x;
  const r = prim(x.trace, { op: "reduce_max", x: src.id, axes });
  return dropDims(x.dtype === "bool" ? E.cast(r, "bool") : r, axes, keepdim);
}

export function min(x: Tensor, dim: Dims | undefined, keepdim: boolean): Tensor {
  return E.neg(max(E.neg(x), dim, keepdim));
}

export function mean(x: Tensor, dim: Dims | undefined, keepdim: boolean): Tensor {
  const axes = dimList(x, dim, "mean");
  const count = axes.reduce((n, a) => n * x.shape[a]!, 1);
  return E.div(sum(E.cast(x, "f32"), dim, keepdim), count);
}

const todo = (name: string): never => userError("unsupported", `${name} is not implemented yet`);
export function variance(x: Tensor, _dim: Dims | undefined, _correction: number, _keepdim: boolean): Tensor { return todo("var") ?? x; }
export function logsumexp(x: Tensor, _dim: Dims, _keepdim: boolean): Tensor { return todo("logsumexp") ?? x; }
export function argmax(x: Tensor, _dim: number | undefined, _keepdim: boolean): Tensor { return todo("argmax") ?? x; }
export function argmin(x: Tensor, _dim: number | undefined, _keepdim: boolean): Tensor { return todo("argmin") ?? x; }
export function cumsum(x: Tensor, _dim: number): Tensor { return todo("cumsum") ?? x; }
export function softmax(x: Tensor, _dim: number): Tensor { return todo("softmax") ?? x; }
export function logSoftmax(x: Tensor, _dim: number): Tensor { return todo("logSoftmax") ?? x; }
