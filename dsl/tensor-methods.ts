// Tensor's op methods (x.add, x.sum, x.reshape, …), PyTorch names and semantics: declared on
// Tensor by declaration merging (TensorMethods) and installed on its prototype when this module
// loads. They live here, not in tensor.ts, because the ops (ops/*.ts) construct Tensors:
// tensor.ts stays below them, so the import graph has no cycle (docs/architecture.md).
// trace.ts imports this module, so every traced tensor has its methods.

import { DTYPES, isDType, type DType } from "../compiler/ir/dtype.ts";
import type { KeepdimArg } from "./options.ts";
import { Tensor, userError, type Dims, type Scalar, type TensorLike } from "./tensor.ts";
import * as E from "./ops/elementwise.ts";
import * as R from "./ops/reduce.ts";
import * as M from "./ops/movement.ts";
import * as L from "./ops/linalg.ts";
import * as S from "./ops/select.ts";

declare module "./tensor.ts" {
  interface Tensor extends TensorMethods {}
}

/** The methods of a traced Tensor that record ops (each one calls the op of the same name in ops/*.ts). */
export interface TensorMethods {
  // ---- elementwise arithmetic (broadcasting, PyTorch type promotion) ----
  add(y: TensorLike, alpha?: number): Tensor;
  sub(y: TensorLike, alpha?: number): Tensor;
  mul(y: TensorLike): Tensor;
  div(y: TensorLike): Tensor;
  neg(): Tensor;
  exp(): Tensor;
  log(): Tensor;
  sqrt(): Tensor;
  rsqrt(): Tensor;
  abs(): Tensor;
  pow(y: TensorLike): Tensor;
  square(): Tensor;
  reciprocal(): Tensor;
  /** PyTorch `//` (floors). */
  floorDivide(y: TensorLike): Tensor;
  /** PyTorch `%` (the result has the divisor's sign). */
  remainder(y: TensorLike): Tensor;
  floor(): Tensor;
  ceil(): Tensor;
  trunc(): Tensor;
  /** Half to even, as torch.round. */
  round(): Tensor;
  erf(): Tensor;
  isnan(): Tensor;
  isinf(): Tensor;
  sin(): Tensor;
  cos(): Tensor;
  maximum(y: TensorLike): Tensor;
  minimum(y: TensorLike): Tensor;
  clamp(min?: number | E.ClampOptions, max?: number): Tensor;
  lt(y: TensorLike): Tensor;
  le(y: TensorLike): Tensor;
  gt(y: TensorLike): Tensor;
  ge(y: TensorLike): Tensor;
  eq(y: TensorLike): Tensor;
  ne(y: TensorLike): Tensor;
  logicalNot(): Tensor;
  logicalAnd(y: TensorLike): Tensor;
  logicalOr(y: TensorLike): Tensor;
  logicalXor(y: TensorLike): Tensor;
  /** `cond.where(x, y)`: x where this (bool) is true, else y. */
  where(x: TensorLike, y: TensorLike): Tensor;
  /** torch.Tensor.masked_fill: `value` where mask (broadcast to this shape) is true. */
  maskedFill(mask: Tensor, value: Scalar): Tensor;
  cast(dtype: DType): Tensor;
  float(): Tensor;
  /** torch.Tensor.half: to f16. */
  half(): Tensor;
  /** torch.Tensor.bfloat16: to bf16. */
  bfloat16(): Tensor;
  /** torch.Tensor.to(dtype): the same as cast. */
  to(dtype: DType): Tensor;
  int(): Tensor;
  // activations
  relu(): Tensor;
  leakyRelu(negativeSlope?: number | E.LeakyReluOptions): Tensor;
  gelu(approximate?: "none" | "tanh" | E.GeluOptions): Tensor;
  silu(): Tensor;
  sigmoid(): Tensor;
  tanh(): Tensor;
  softplus(beta?: number | E.SoftplusOptions, threshold?: number): Tensor;

  // ---- reductions ----
  // keepdim: positional (`x.sum(1, true)`) or PyTorch's keyword (`x.sum(1, { keepdim: true })`).
  sum(dim?: Dims, keepdim?: KeepdimArg): Tensor;
  mean(dim?: Dims, keepdim?: KeepdimArg): Tensor;
  /** No dim: the largest element. One dim: `{ values, indices }` as PyTorch's max(dim). */
  max(): Tensor;
  max(dim: number, keepdim?: KeepdimArg): R.ValuesIndices;
  min(): Tensor;
  min(dim: number, keepdim?: KeepdimArg): R.ValuesIndices;
  /** Values over one dim or several (torch.amax). */
  amax(dim?: Dims, keepdim?: KeepdimArg): Tensor;
  amin(dim?: Dims, keepdim?: KeepdimArg): Tensor;
  /** `{ correction }` (default 1) or PyTorch's older `{ unbiased }`, and keepdim; a boolean is `unbiased`. */
  var(dim?: Dims, opts?: R.VarArg): Tensor;
  std(dim?: Dims, opts?: R.VarArg): Tensor;
  logsumexp(dim: Dims, keepdim?: KeepdimArg): Tensor;
  argmax(dim?: number, keepdim?: KeepdimArg): Tensor;
  argmin(dim?: number, keepdim?: KeepdimArg): Tensor;
  /** The k largest (or smallest) along a dim with their indices (torch.topk); k rounds of max, for small k. */
  topk(k: number, opts?: S.TopkOptions): R.ValuesIndices;
  /** Sorted values along a dim with their indices (torch.sort; stable; NaN largest): `sort(dim?, descending?)` or `sort({ dim, descending })`. O(n²) per row. */
  sort(...args: S.SortArgs): R.ValuesIndices;
  /** The indices that sort a dim (torch.argsort), as sort's. */
  argsort(...args: S.SortArgs): Tensor;
  cumsum(dim: number): Tensor;
  softmax(dim: number): Tensor;
  logSoftmax(dim: number): Tensor;
  any(dim?: Dims, keepdim?: KeepdimArg): Tensor;
  all(dim?: Dims, keepdim?: KeepdimArg): Tensor;

  // ---- movement ----
  reshape(...shape: (number | readonly number[])[]): Tensor;
  view(...shape: (number | readonly number[])[]): Tensor;
  permute(...dims: (number | readonly number[])[]): Tensor;
  transpose(dim0: number, dim1: number): Tensor;
  /** 2-D transpose (PyTorch `.t()`; `.T` reverses all dims). */
  t(): Tensor;
  get T(): Tensor;
  expand(...shape: (number | readonly number[])[]): Tensor;
  expandAs(other: Tensor): Tensor;
  broadcastTo(shape: readonly number[]): Tensor;
  unsqueeze(dim: number): Tensor;
  squeeze(dim?: Dims): Tensor;
  flatten(startDim?: number, endDim?: number): Tensor;
  /** Slicing: one entry per leading dim; a number indexes (drops the dim), [start, stop, step?] slices (null = open end). */
  slice(...spec: M.SliceSpec[]): Tensor;
  narrow(dim: number, start: number, length: number): Tensor;
  flip(dims: Dims): Tensor;
  pad(pad: readonly number[], value?: number): Tensor;
  split(splitSize: number | readonly number[], dim?: number): Tensor[];
  chunk(chunks: number, dim?: number): Tensor[];
  repeat(...sizes: (number | readonly number[])[]): Tensor;
  gather(dim: number, index: Tensor): Tensor;
  indexSelect(dim: number, index: Tensor): Tensor;
  /** Lower triangle of the last two dims (torch.tril), zero above `diagonal`. */
  tril(diagonal?: number): Tensor;
  /** Upper triangle of the last two dims (torch.triu), zero below `diagonal`. */
  triu(diagonal?: number): Tensor;
  contiguous(): Tensor;

  // ---- linear algebra ----
  matmul(y: Tensor): Tensor;
  mm(y: Tensor): Tensor;
  bmm(y: Tensor): Tensor;
}

function flatShapeArgs(args: readonly (number | readonly number[])[]): number[] {
  if (args.length === 1 && Array.isArray(args[0])) return [...(args[0] as readonly number[])];
  return args as number[];
}

const methods: TensorMethods & ThisType<Tensor> = {
  // ---- elementwise arithmetic (broadcasting, PyTorch type promotion) ----
  add(y: TensorLike, alpha?: number): Tensor {
    return E.add(this, y, alpha);
  },
  sub(y: TensorLike, alpha?: number): Tensor {
    return E.sub(this, y, alpha);
  },
  mul(y: TensorLike): Tensor {
    return E.mul(this, y);
  },
  div(y: TensorLike): Tensor {
    return E.div(this, y);
  },
  neg(): Tensor {
    return E.neg(this);
  },
  exp(): Tensor {
    return E.exp(this);
  },
  log(): Tensor {
    return E.log(this);
  },
  sqrt(): Tensor {
    return E.sqrt(this);
  },
  rsqrt(): Tensor {
    return E.rsqrt(this);
  },
  abs(): Tensor {
    return E.abs(this);
  },
  pow(y: TensorLike): Tensor {
    return E.pow(this, y);
  },
  square(): Tensor {
    return E.mul(this, this);
  },
  reciprocal(): Tensor {
    return E.reciprocal(this);
  },
  floorDivide(y: TensorLike): Tensor {
    return E.floorDivide(this, y);
  },
  remainder(y: TensorLike): Tensor {
    return E.remainder(this, y);
  },
  floor(): Tensor {
    return E.floor(this);
  },
  ceil(): Tensor {
    return E.ceil(this);
  },
  trunc(): Tensor {
    return E.trunc(this);
  },
  round(): Tensor {
    return E.round(this);
  },
  erf(): Tensor {
    return E.erf(this);
  },
  isnan(): Tensor {
    return E.isnan(this);
  },
  isinf(): Tensor {
    return E.isinf(this);
  },
  sin(): Tensor {
    return E.sin(this);
  },
  cos(): Tensor {
    return E.cos(this);
  },
  maximum(y: TensorLike): Tensor {
    return E.maximum(this, y);
  },
  minimum(y: TensorLike): Tensor {
    return E.minimum(this, y);
  },
  clamp(min?: number | E.ClampOptions, max?: number): Tensor {
    return E.clamp(this, min, max);
  },
  lt(y: TensorLike): Tensor {
    return E.lt(this, y);
  },
  le(y: TensorLike): Tensor {
    return E.le(this, y);
  },
  gt(y: TensorLike): Tensor {
    return E.gt(this, y);
  },
  ge(y: TensorLike): Tensor {
    return E.ge(this, y);
  },
  eq(y: TensorLike): Tensor {
    return E.eq(this, y);
  },
  ne(y: TensorLike): Tensor {
    return E.ne(this, y);
  },
  logicalNot(): Tensor {
    return E.logicalNot(this);
  },
  logicalAnd(y: TensorLike): Tensor {
    return E.logicalAnd(this, y);
  },
  logicalOr(y: TensorLike): Tensor {
    return E.logicalOr(this, y);
  },
  logicalXor(y: TensorLike): Tensor {
    return E.logicalXor(this, y);
  },
  where(x: TensorLike, y: TensorLike): Tensor {
    return E.where(this, x, y);
  },
  maskedFill(mask: Tensor, value: Scalar): Tensor {
    return E.maskedFill(this, mask, value);
  },
  cast(dtype: DType): Tensor {
    return E.cast(this, dtype);
  },
  float(): Tensor {
    return E.cast(this, "f32");
  },
  half(): Tensor {
    return E.cast(this, "f16");
  },
  bfloat16(): Tensor {
    return E.cast(this, "bf16");
  },
  to(dtype: DType): Tensor {
    if (!isDType(dtype)) return userError("invalid-argument", `to: unknown dtype ${JSON.stringify(dtype)} (one of ${DTYPES.join(", ")})`);
    return E.cast(this, dtype);
  },
  int(): Tensor {
    return E.cast(this, "i32");
  },
  // activations
  relu(): Tensor {
    return E.relu(this);
  },
  leakyRelu(negativeSlope: number | E.LeakyReluOptions = 0.01): Tensor {
    return E.leakyRelu(this, negativeSlope);
  },
  gelu(approximate: "none" | "tanh" | E.GeluOptions = "none"): Tensor {
    return E.gelu(this, approximate);
  },
  silu(): Tensor {
    return E.silu(this);
  },
  sigmoid(): Tensor {
    return E.sigmoid(this);
  },
  tanh(): Tensor {
    return E.tanh(this);
  },
  softplus(beta: number | E.SoftplusOptions = 1, threshold = 20): Tensor {
    return E.softplus(this, beta, threshold);
  },

  // ---- reductions ----
  // keepdim: positional (`x.sum(1, true)`) or PyTorch's keyword (`x.sum(1, { keepdim: true })`).
  sum(dim?: Dims, keepdim: KeepdimArg = false): Tensor {
    return R.sum(this, dim, keepdim);
  },
  mean(dim?: Dims, keepdim: KeepdimArg = false): Tensor {
    return R.mean(this, dim, keepdim);
  },
  max: function (this: Tensor, dim?: number, keepdim?: KeepdimArg): Tensor | R.ValuesIndices {
    return R.maxOf(this, dim, keepdim);
  } as TensorMethods["max"],
  min: function (this: Tensor, dim?: number, keepdim?: KeepdimArg): Tensor | R.ValuesIndices {
    return R.minOf(this, dim, keepdim);
  } as TensorMethods["min"],
  amax(dim?: Dims, keepdim: KeepdimArg = false): Tensor {
    return R.amax(this, dim, keepdim);
  },
  amin(dim?: Dims, keepdim: KeepdimArg = false): Tensor {
    return R.amin(this, dim, keepdim);
  },
  var(dim?: Dims, opts?: R.VarArg): Tensor {
    return R.varianceOf(this, dim, opts, "x.var");
  },
  std(dim?: Dims, opts?: R.VarArg): Tensor {
    return R.stdOf(this, dim, opts, "x.std");
  },
  logsumexp(dim: Dims, keepdim: KeepdimArg = false): Tensor {
    return R.logsumexp(this, dim, keepdim);
  },
  argmax(dim?: number, keepdim: KeepdimArg = false): Tensor {
    return R.argmax(this, dim, keepdim);
  },
  argmin(dim?: number, keepdim: KeepdimArg = false): Tensor {
    return R.argmin(this, dim, keepdim);
  },
  topk(k: number, opts?: S.TopkOptions): R.ValuesIndices {
    return S.topk(this, k, opts);
  },
  sort(...args: S.SortArgs): R.ValuesIndices {
    return S.sort(this, ...args);
  },
  argsort(...args: S.SortArgs): Tensor {
    return S.argsort(this, ...args);
  },
  cumsum(dim: number): Tensor {
    return R.cumsum(this, dim);
  },
  softmax(dim: number): Tensor {
    return R.softmax(this, dim);
  },
  logSoftmax(dim: number): Tensor {
    return R.logSoftmax(this, dim);
  },
  any(dim?: Dims, keepdim: KeepdimArg = false): Tensor {
    return R.any(this, dim, keepdim);
  },
  all(dim?: Dims, keepdim: KeepdimArg = false): Tensor {
    return R.all(this, dim, keepdim);
  },

  // ---- movement ----
  reshape(...shape: (number | readonly number[])[]): Tensor {
    return M.reshape(this, flatShapeArgs(shape));
  },
  view(...shape: (number | readonly number[])[]): Tensor {
    return M.reshape(this, flatShapeArgs(shape));
  },
  permute(...dims: (number | readonly number[])[]): Tensor {
    return M.permute(this, flatShapeArgs(dims));
  },
  transpose(dim0: number, dim1: number): Tensor {
    return M.transpose(this, dim0, dim1);
  },
  t(): Tensor {
    return M.t(this);
  },
  get T(): Tensor {
    return M.permute(this, [...Array(this.ndim).keys()].reverse());
  },
  expand(...shape: (number | readonly number[])[]): Tensor {
    return M.expand(this, flatShapeArgs(shape));
  },
  expandAs(other: Tensor): Tensor {
    return M.expand(this, other.shape);
  },
  broadcastTo(shape: readonly number[]): Tensor {
    return M.expand(this, shape);
  },
  unsqueeze(dim: number): Tensor {
    return M.unsqueeze(this, dim);
  },
  squeeze(dim?: Dims): Tensor {
    return M.squeeze(this, dim);
  },
  flatten(startDim = 0, endDim = -1): Tensor {
    return M.flatten(this, startDim, endDim);
  },
  slice(...spec: M.SliceSpec[]): Tensor {
    return M.slice(this, spec);
  },
  narrow(dim: number, start: number, length: number): Tensor {
    return M.narrow(this, dim, start, length);
  },
  flip(dims: Dims): Tensor {
    return M.flip(this, dims);
  },
  pad(pad: readonly number[], value = 0): Tensor {
    return M.pad(this, pad, value);
  },
  split(splitSize: number | readonly number[], dim = 0): Tensor[] {
    return M.split(this, splitSize, dim);
  },
  chunk(chunks: number, dim = 0): Tensor[] {
    return M.chunk(this, chunks, dim);
  },
  repeat(...sizes: (number | readonly number[])[]): Tensor {
    return M.repeat(this, flatShapeArgs(sizes));
  },
  gather(dim: number, index: Tensor): Tensor {
    return M.gather(this, dim, index);
  },
  indexSelect(dim: number, index: Tensor): Tensor {
    return M.indexSelect(this, dim, index);
  },
  tril(diagonal = 0): Tensor {
    return M.tril(this, diagonal);
  },
  triu(diagonal = 0): Tensor {
    return M.triu(this, diagonal);
  },
  contiguous(): Tensor {
    return this;
  },

  // ---- linear algebra ----
  matmul(y: Tensor): Tensor {
    return L.matmul(this, y);
  },
  mm(y: Tensor): Tensor {
    return L.matmul(this, y);
  },
  bmm(y: Tensor): Tensor {
    return L.matmul(this, y);
  },
};

// Non-enumerable, as methods declared in the class body would be.
for (const [name, descriptor] of Object.entries(Object.getOwnPropertyDescriptors(methods))) {
  Object.defineProperty(Tensor.prototype, name, { ...descriptor, enumerable: false });
}
