// Movement ops: PyTorch's view/shape functions lowered to reshape, permute, expand, pad,
// slice and flip. None of them computes anything; fusion folds them into index math.

import { formatShape, numel } from "../../compiler/util/shape.ts";
import { Tensor, dimIndex, dimList, prim, userError, type Dims } from "../tensor.ts";

export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  const inferAt = shape.indexOf(-1);
  if (shape.filter((d) => d === -1).length > 1) return userError("invalid-argument", `reshape: only one dim may be -1, got ${formatShape(shape)}`);
  let target = [...shape];
  if (inferAt >= 0) {
    const rest = numel(shape.filter((d) => d !== -1));
    if (rest === 0 || x.numel() % rest !== 0) return userError("shape-mismatch", `shape mismatch in reshape: cannot reshape ${formatShape(x.shape)} to ${formatShape(shape)}`);
    target[inferAt] = x.numel() / rest;
  }
  if (target.some((d) => !Number.isInteger(d) || d < 0) || numel(target) !== x.numel())
    return userError("shape-mismatch", `shape mismatch in reshape: cannot reshape ${formatShape(x.shape)} (${x.numel()} elements) to ${formatShape(shape)}`);
  if (target.length === x.ndim && target.every((d, i) => d === x.shape[i])) return x;
  return prim(x.trace, { op: "reshape", x: x.id }, { dtype: x.dtype, shape: target });
}

export function permute(x: Tensor, dims: readonly number[]): Tensor {
  if (dims.length !== x.ndim) return userError("invalid-argument", `permute: expected ${x.ndim} dims, got [${dims.join(",")}]`);
  const perm = dims.map((d) => dimIndex(x, d, "permute"));
  if (new Set(perm).size !== perm.length) return userError("invalid-argument", `permute: [${dims.join(",")}] repeats a dim`);
  if (perm.every((p, i) => p === i)) return x;
  return prim(x.trace, { op: "permute", x: x.id, perm });
}

export function transpose(x: Tensor, dim0: number, dim1: number): Tensor {
  const a = dimIndex(x, dim0, "transpose");
  const b = dimIndex(x, dim1, "transpose");
  const perm = [...Array(x.ndim).keys()];
  perm[a] = b;
  perm[b] = a;
  return permute(x, perm);
}

export function t(x: Tensor): Tensor {
  if (x.ndim > 2) return userError("invalid-argument", `t: expects a tensor with <= 2 dims, got ${formatShape(x.shape)}`);
  return x.ndim < 2 ? x : transpose(x, 0, 1);
}

/** PyTorch expand: new leading dims allowed, -1 keeps a dim, size-1 dims broadcast. */
export function expand(x: Tensor, shape: readonly number[]): Tensor {
  if (shape.length < x.ndim) return userError("shape-mismatch", `shape mismatch in expand: cannot expand ${formatShape(x.shape)} to ${formatShape(shape)}`);
  const lead = shape.length - x.ndim;
  const target = shape.map((d, i) => (d === -1 && i >= lead ? x.shape[i - lead]! : d));
  const ok = x.shape.every((d, i) => d === target[i + lead] || d === 1) && target.every((d) => Number.isInteger(d) && d >= 0);
  if (!ok) return userError("shape-mismatch", `shape mismatch in expand: cannot expand ${formatShape(x.shape)} to ${formatShape(shape)}`);
  const lifted = lead > 0 ? reshape(x, [...Array(lead).fill(1), ...x.shape]) : x;
  if (lifted.shape.every((d, i) => d === target[i])) return lifted;
  return prim(x.trace, { op: "expand", x: lifted.id }, { dtype: x.dtype, shape: target });
}

export const broadcastTo = expand;

export function unsqueeze(x: Tensor, dim: number): Tensor {
  const d = dimIndex({ ndim: x.ndim + 1 }, dim, "unsqueeze");
  const shape = [...x.shape];
  shape.splice(d, 0, 1);
  return reshape(x, shape);
}

export function squeeze(x: Tensor, dim?: Dims): Tensor {
  const axes = dim === undefined ? [...Array(x.ndim).keys()] : dimList(x, dim, "squeeze");
  return reshape(x, x.shape.filter((d, i) => !(d === 1 && axes.includes(i))));
}

export function flatten(x: Tensor, startDim: number, endDim: number): Tensor {
  if (x.ndim === 0) return reshape(x, [1]);
  const s = dimIndex(x, startDim, "flatten");
  const e = dimIndex(x, endDim, "flatten");
  if (s > e) return userError("invalid-argument", `flatten: startDim ${startDim} comes after endDim ${endDim}`);
  const mid = numel(x.shape.slice(s, e + 1));
  return reshape(x, [...x.shape.slice(0, s), mid, ...x.shape.slice(e + 1)]);
}

/** One entry per leading dim: a number indexes (the dim is dropped); [start, stop, step] slices; null = whole dim. */
export type SliceSpec = number | null | readonly [number | null, (number | null)?, (number | null)?];

const todo = (name: string): never => userError("unsupported", `${name} is not implemented yet`);
export function slice(x: Tensor, _spec: readonly SliceSpec[]): Tensor { return todo("slice") ?? x; }
export function narrow(x: Tensor, _dim: number, _start: number, _length: number): Tensor { return todo("narrow") ?? x; }
export function flip(x: Tensor, _dims: Dims): Tensor { return todo("flip") ?? x; }
export function pad(x: Tensor, _pad: readonly number[], _value: number): Tensor { return todo("pad") ?? x; }
export function split(x: Tensor, _size: number | readonly number[], _dim: number): Tensor[] { return todo("split") ?? [x]; }
export function chunk(x: Tensor, _chunks: number, _dim: number): Tensor[] { return todo("chunk") ?? [x]; }
export function repeat(x: Tensor, _sizes: readonly number[]): Tensor { return todo("repeat") ?? x; }
export function gather(x: Tensor, _dim: number, _index: Tensor): Tensor { return todo("gather") ?? x; }
export function indexSelect(x: Tensor, _dim: number, _index: Tensor): Tensor { return todo("indexSelect") ?? x; }
