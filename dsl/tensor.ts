// The traced Tensor: a handle (trace, value id, type) whose methods record graph nodes.
// Methods follow PyTorch names and semantics (broadcasting, negative dims, keepdim); each
// one lowers to the IR's primitives, so passes and autodiff never see a composite op.
// The op implementations live in ops/*.ts; this class is the public surface.

import type { NodeSpec, TensorType, ValueId } from "../compiler/ir/types.ts";
import { dtypeInfo, dtypeKind, type DType } from "../compiler/ir/dtype.ts";
import { KilnError, assertNever, type DiagCode } from "../compiler/util/errors.ts";
import { broadcastShapes, formatShape, normalizeAxis, type Shape } from "../compiler/util/shape.ts";
import { captureUserLoc } from "./loc.ts";
import type { KeepdimArg } from "./options.ts";
import type { Trace } from "./trace.ts";
import * as E from "./ops/elementwise.ts";
import * as R from "./ops/reduce.ts";
import * as M from "./ops/movement.ts";
import * as L from "./ops/linalg.ts";
import * as S from "./ops/select.ts";

export type Scalar = number | boolean;
export type TensorLike = Tensor | Scalar;
export type Dims = number | readonly number[];

export class Tensor {
  constructor(
    readonly trace: Trace,
    readonly id: ValueId,
  ) {}

  get type(): TensorType {
    return this.trace.builder.typeOf(this.id);
  }
  get shape(): Shape {
    return this.type.shape;
  }
  get dtype(): DType {
    return this.type.dtype;
  }
  get ndim(): number {
    return this.shape.length;
  }
  /** Number of elements. */
  numel(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }
  size(dim?: number): number | Shape {
    return dim === undefined ? this.shape : this.shape[dimIndex(this, dim, "size")]!;
  }
  toString(): string {
    return `Tensor(${this.dtype}${formatShape(this.shape)})`;
  }

  // ---- elementwise arithmetic (broadcasting, PyTorch type promotion) ----
  add(y: TensorLike, alpha?: number): Tensor { return E.add(this, y, alpha); }
  sub(y: TensorLike, alpha?: number): Tensor { return E.sub(this, y, alpha); }
  mul(y: TensorLike): Tensor { return E.mul(this, y); }
  div(y: TensorLike): Tensor { return E.div(this, y); }
  neg(): Tensor { return E.neg(this); }
  exp(): Tensor { return E.exp(this); }
  log(): Tensor { return E.log(this); }
  sqrt(): Tensor { return E.sqrt(this); }
  rsqrt(): Tensor { return E.rsqrt(this); }
  abs(): Tensor { return E.abs(this); }
  pow(y: TensorLike): Tensor { return E.pow(this, y); }
  square(): Tensor { return E.mul(this, this); }
  reciprocal(): Tensor { return E.reciprocal(this); }
  /** PyTorch `//` (floors). */
  floorDivide(y: TensorLike): Tensor { return E.floorDivide(this, y); }
  /** PyTorch `%` (the result has the divisor's sign). */
  remainder(y: TensorLike): Tensor { return E.remainder(this, y); }
  floor(): Tensor { return E.floor(this); }
  ceil(): Tensor { return E.ceil(this); }
  trunc(): Tensor { return E.trunc(this); }
  /** Half to even, as torch.round. */
  round(): Tensor { return E.round(this); }
  erf(): Tensor { return E.erf(this); }
  isnan(): Tensor { return E.isnan(this); }
  isinf(): Tensor { return E.isinf(this); }
  sin(): Tensor { return E.sin(this); }
  cos(): Tensor { return E.cos(this); }
  maximum(y: TensorLike): Tensor { return E.maximum(this, y); }
  minimum(y: TensorLike): Tensor { return E.minimum(this, y); }
  clamp(min?: number | E.ClampOptions, max?: number): Tensor { return E.clamp(this, min, max); }
  lt(y: TensorLike): Tensor { return E.lt(this, y); }
  le(y: TensorLike): Tensor { return E.le(this, y); }
  gt(y: TensorLike): Tensor { return E.gt(this, y); }
  ge(y: TensorLike): Tensor { return E.ge(this, y); }
  eq(y: TensorLike): Tensor { return E.eq(this, y); }
  ne(y: TensorLike): Tensor { return E.ne(this, y); }
  logicalNot(): Tensor { return E.logicalNot(this); }
  logicalAnd(y: TensorLike): Tensor { return E.logicalAnd(this, y); }
  logicalOr(y: TensorLike): Tensor { return E.logicalOr(this, y); }
  logicalXor(y: TensorLike): Tensor { return E.logicalXor(this, y); }
  /** `cond.where(x, y)`: x where this (bool) is true, else y. */
  where(x: TensorLike, y: TensorLike): Tensor { return E.where(this, x, y); }
  /** torch.Tensor.masked_fill: `value` where mask (broadcast to this shape) is true. */
  maskedFill(mask: Tensor, value: Scalar): Tensor { return E.maskedFill(this, mask, value); }
  cast(dtype: DType): Tensor { return E.cast(this, dtype); }
  float(): Tensor { return E.cast(this, "f32"); }
  int(): Tensor { return E.cast(this, "i32"); }
  // activations
  relu(): Tensor { return E.relu(this); }
  leakyRelu(negativeSlope: number | E.LeakyReluOptions = 0.01): Tensor { return E.leakyRelu(this, negativeSlope); }
  gelu(approximate: "none" | "tanh" | E.GeluOptions = "none"): Tensor { return E.gelu(this, approximate); }
  silu(): Tensor { return E.silu(this); }
  sigmoid(): Tensor { return E.sigmoid(this); }
  tanh(): Tensor { return E.tanh(this); }
  softplus(beta: number | E.SoftplusOptions = 1, threshold = 20): Tensor { return E.softplus(this, beta, threshold); }

  // ---- reductions ----
  // keepdim: positional (`x.sum(1, true)`) or PyTorch's keyword (`x.sum(1, { keepdim: true })`).
  sum(dim?: Dims, keepdim: KeepdimArg = false): Tensor { return R.sum(this, dim, keepdim); }
  mean(dim?: Dims, keepdim: KeepdimArg = false): Tensor { return R.mean(this, dim, keepdim); }
  /** No dim: the largest element. One dim: `{ values, indices }` as PyTorch's max(dim). */
  max(): Tensor;
  max(dim: number, keepdim?: KeepdimArg): R.ValuesIndices;
  max(dim?: number, keepdim?: KeepdimArg): Tensor | R.ValuesIndices { return R.maxOf(this, dim, keepdim); }
  min(): Tensor;
  min(dim: number, keepdim?: KeepdimArg): R.ValuesIndices;
  min(dim?: number, keepdim?: KeepdimArg): Tensor | R.ValuesIndices { return R.minOf(this, dim, keepdim); }
  /** Values over one dim or several (torch.amax). */
  amax(dim?: Dims, keepdim: KeepdimArg = false): Tensor { return R.amax(this, dim, keepdim); }
  amin(dim?: Dims, keepdim: KeepdimArg = false): Tensor { return R.amin(this, dim, keepdim); }
  /** `{ correction }` (default 1) or PyTorch's older `{ unbiased }`, and keepdim; a boolean is `unbiased`. */
  var(dim?: Dims, opts?: R.VarArg): Tensor { return R.varianceOf(this, dim, opts, "x.var"); }
  std(dim?: Dims, opts?: R.VarArg): Tensor { return R.stdOf(this, dim, opts, "x.std"); }
  logsumexp(dim: Dims, keepdim: KeepdimArg = false): Tensor { return R.logsumexp(this, dim, keepdim); }
  argmax(dim?: number, keepdim: KeepdimArg = false): Tensor { return R.argmax(this, dim, keepdim); }
  argmin(dim?: number, keepdim: KeepdimArg = false): Tensor { return R.argmin(this, dim, keepdim); }
  /** The k largest (or smallest) along a dim with their indices (torch.topk); k rounds of max, for small k. */
  topk(k: number, opts?: S.TopkOptions): R.ValuesIndices { return S.topk(this, k, opts); }
  cumsum(dim: number): Tensor { return R.cumsum(this, dim); }
  softmax(dim: number): Tensor { return R.softmax(this, dim); }
  logSoftmax(dim: number): Tensor { return R.logSoftmax(this, dim); }
  any(dim?: Dims, keepdim: KeepdimArg = false): Tensor { return R.any(this, dim, keepdim); }
  all(dim?: Dims, keepdim: KeepdimArg = false): Tensor { return R.all(this, dim, keepdim); }

  // ---- movement ----
  reshape(...shape: (number | readonly number[])[]): Tensor { return M.reshape(this, flatShapeArgs(shape)); }
  view(...shape: (number | readonly number[])[]): Tensor { return M.reshape(this, flatShapeArgs(shape)); }
  permute(...dims: (number | readonly number[])[]): Tensor { return M.permute(this, flatShapeArgs(dims)); }
  transpose(dim0: number, dim1: number): Tensor { return M.transpose(this, dim0, dim1); }
  /** 2-D transpose (PyTorch `.t()`; `.T` reverses all dims). */
  t(): Tensor { return M.t(this); }
  get T(): Tensor { return M.permute(this, [...Array(this.ndim).keys()].reverse()); }
  expand(...shape: (number | readonly number[])[]): Tensor { return M.expand(this, flatShapeArgs(shape)); }
  expandAs(other: Tensor): Tensor { return M.expand(this, other.shape); }
  broadcastTo(shape: readonly number[]): Tensor { return M.expand(this, shape); }
  unsqueeze(dim: number): Tensor { return M.unsqueeze(this, dim); }
  squeeze(dim?: Dims): Tensor { return M.squeeze(this, dim); }
  flatten(startDim = 0, endDim = -1): Tensor { return M.flatten(this, startDim, endDim); }
  /** Slicing: one entry per leading dim; a number indexes (drops the dim), [start, stop, step?] slices (null = open end). */
  slice(...spec: M.SliceSpec[]): Tensor { return M.slice(this, spec); }
  narrow(dim: number, start: number, length: number): Tensor { return M.narrow(this, dim, start, length); }
  flip(dims: Dims): Tensor { return M.flip(this, dims); }
  pad(pad: readonly number[], value = 0): Tensor { return M.pad(this, pad, value); }
  split(splitSize: number | readonly number[], dim = 0): Tensor[] { return M.split(this, splitSize, dim); }
  chunk(chunks: number, dim = 0): Tensor[] { return M.chunk(this, chunks, dim); }
  repeat(...sizes: (number | readonly number[])[]): Tensor { return M.repeat(this, flatShapeArgs(sizes)); }
  gather(dim: number, index: Tensor): Tensor { return M.gather(this, dim, index); }
  indexSelect(dim: number, index: Tensor): Tensor { return M.indexSelect(this, dim, index); }
  /** Lower triangle of the last two dims (torch.tril), zero above `diagonal`. */
  tril(diagonal = 0): Tensor { return M.tril(this, diagonal); }
  /** Upper triangle of the last two dims (torch.triu), zero below `diagonal`. */
  triu(diagonal = 0): Tensor { return M.triu(this, diagonal); }
  contiguous(): Tensor { return this; }

  // ---- linear algebra ----
  matmul(y: Tensor): Tensor { return L.matmul(this, y); }
  mm(y: Tensor): Tensor { return L.matmul(this, y); }
  bmm(y: Tensor): Tensor { return L.matmul(this, y); }
}

function flatShapeArgs(args: readonly (number | readonly number[])[]): number[] {
  if (args.length === 1 && Array.isArray(args[0])) return [...(args[0] as readonly number[])];
  return args as number[];
}

// ---- helpers shared by the op modules ----

/** Throws a user diagnostic at the user's line. */
export function userError(code: DiagCode, message: string): never {
  const loc = captureUserLoc();
  throw new KilnError({ code, message, ...(loc ? { loc } : {}) });
}

/** Records one primitive at the user's current line (and module path) and wraps the result. */
export function prim(trace: Trace, spec: NodeSpec, declared?: TensorType): Tensor {
  const loc = captureUserLoc();
  const scope = trace.scope();
  const withLoc = { ...spec, ...(loc ? { loc } : {}), ...(scope !== undefined ? { scope } : {}) } as NodeSpec;
  return new Tensor(trace, trace.builder.add(withLoc, declared));
}

export function dimIndex(x: Tensor | { ndim: number }, dim: number, op: string): number {
  const ndim = x.ndim;
  const a = normalizeAxis(dim, ndim);
  if (a === undefined) userError("invalid-argument", `${op}: dim ${dim} out of range for a ${ndim}-d tensor`);
  return a;
}

/** Normalizes `dim` (number, list or undefined = all) to sorted unique axes. */
export function dimList(x: Tensor, dim: Dims | undefined, op: string): number[] {
  if (dim === undefined) return [...Array(x.ndim).keys()];
  const list = typeof dim === "number" ? [dim] : [...dim];
  const axes = list.map((d) => dimIndex(x, d, op));
  if (new Set(axes).size !== axes.length) userError("invalid-argument", `${op}: dim [${list.join(",")}] repeats an axis`);
  return axes.sort((a, b) => a - b);
}

/** PyTorch-style promotion for two operands; a JS number adopts the tensor's kind unless it is fractional. */
export function resultDType(a: TensorLike, b: TensorLike): DType {
  const rank = (d: DType): number => dtypeInfo(d).promotionRank;
  const kindOf = (v: TensorLike): DType | undefined => (v instanceof Tensor ? v.dtype : undefined);
  const ka = kindOf(a);
  const kb = kindOf(b);
  const scalarKind = (v: Scalar): DType => (typeof v === "boolean" ? "bool" : Number.isInteger(v) ? "i32" : "f32");
  if (ka && kb) return rank(ka) >= rank(kb) ? ka : kb;
  const t = (ka ?? kb)!;
  const s = scalarKind((ka ? b : a) as Scalar);
  // A scalar only raises the category (int tensor + 0.5 -> f32; bool tensor + 1 -> i32).
  return rank(s) > rank(t) ? s : t;
}

/** A JS number as a constant of `dtype`: bool is 0/1, integers truncate toward zero. */
function constantIn(dtype: DType, value: number): number {
  const kind = dtypeKind(dtype);
  switch (kind) {
    case "bool":
      return value ? 1 : 0;
    case "int":
      return Math.trunc(value);
    case "float":
      return value;
    default:
      return assertNever(kind, "dtype kind");
  }
}

/** A scalar constant of `dtype`, broadcast to `shape`. */
export function constant(trace: Trace, value: number | boolean, dtype: DType, shape: Shape = []): Tensor {
  const v = typeof value === "boolean" ? (value ? 1 : 0) : constantIn(dtype, value);
  const scalar = prim(trace, { op: "const", value: v }, { dtype, shape: [] });
  return shape.length === 0 ? scalar : M.expand(M.reshape(scalar, shape.map(() => 1)), shape);
}

/** Converts both operands to `dtype` and broadcasts them to a common shape. */
export function broadcastPair(a: TensorLike, b: TensorLike, dtype: DType, op: string): [Tensor, Tensor] {
  const trace = (a instanceof Tensor ? a : (b as Tensor)).trace;
  if (a instanceof Tensor && b instanceof Tensor && a.trace !== b.trace) userError("invalid-argument", `${op}: operands come from different traced functions`);
  const ta = a instanceof Tensor ? E.cast(a, dtype) : constant(trace, a, dtype);
  const tb = b instanceof Tensor ? E.cast(b, dtype) : constant(trace, b, dtype);
  return broadcastTensors([ta, tb], op) as [Tensor, Tensor];
}

export function broadcastTensors(ts: readonly Tensor[], op: string): Tensor[] {
  let shape: number[] | undefined = [];
  for (const t of ts) {
    shape = broadcastShapes(shape!, t.shape);
    if (!shape) userError("shape-mismatch", `shape mismatch in ${op}: cannot broadcast ${ts.map((x) => formatShape(x.shape)).join(" and ")}`);
  }
  return ts.map((t) => M.broadcastTo(t, shape!));
}
