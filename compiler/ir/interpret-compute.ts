// Arithmetic primitives for the reference interpreter: elementwise, reductions, dot, gather,
// iota and rng over flat typed arrays. Semantics are documented in interpret.ts; each
// function here writes into a preallocated `out` of the node's canonical storage type.

import { assertNever } from "../util/errors.ts";
import type { HostData } from "./host-tensor.ts";
import { contiguousStrides, numel, type Shape } from "../util/shape.ts";
import { rngValueAt } from "../util/threefry.ts";
import type { BinaryOp, UnaryOp } from "./types.ts";
import { dtypeInfo, dtypeKind, isFloat, type DType } from "./dtype.ts";

/** Raises an "interp" diagnostic naming the node being evaluated. */
export type Fail = (message: string) => never;

export function unary(op: UnaryOp, x: HostData, out: HostData): void {
  const n = x.length;
  switch (op) {
    case "neg":
      for (let i = 0; i < n; i++) out[i] = -x[i]!;
      return;
    case "exp2":
      for (let i = 0; i < n; i++) out[i] = Math.pow(2, x[i]!);
      return;
    case "log2":
      for (let i = 0; i < n; i++) out[i] = Math.log2(x[i]!);
      return;
    case "sin":
      for (let i = 0; i < n; i++) out[i] = Math.sin(x[i]!);
      return;
    case "sqrt":
      for (let i = 0; i < n; i++) out[i] = Math.sqrt(x[i]!);
      return;
    case "recip":
      for (let i = 0; i < n; i++) out[i] = 1 / x[i]!;
      return;
    default:
      return assertNever(op, "unary op");
  }
}

/** f32 → i32 rounds toward zero and saturates, NaN → 0 (CUDA cvt.rzi.sat, WGSL's clamped conversion). */
export function floatToI32(v: number): number {
  if (Number.isNaN(v)) return 0;
  if (v >= 2147483647) return 2147483647;
  if (v <= -2147483648) return -2147483648;
  return Math.trunc(v);
}

export function cast(from: DType, to: DType, x: HostData, out: HostData): void {
  const n = x.length;
  switch (to) {
    case "bool":
      // NaN != 0, so NaN casts to true, as in C and PyTorch.
      for (let i = 0; i < n; i++) out[i] = x[i] !== 0 ? 1 : 0;
      return;
    case "i32":
      if (isFloat(from)) for (let i = 0; i < n; i++) out[i] = floatToI32(x[i]!);
      else for (let i = 0; i < n; i++) out[i] = x[i]!; // bool → i32 is exact
      return;
    case "f32":
    case "f16":
    case "bf16":
      // i32/bool → f32 is exact in float64 (the f32 rounding is the backends' business); the
      // interpreter rounds a 16-bit result after the op (interpret.ts).
      for (let i = 0; i < n; i++) out[i] = x[i]!;
      return;
    default:
      return assertNever(to, "dtype");
  }
}

/** Floor division on i32 (quotient rounded toward -inf, like Python's and PyTorch's `//`). */
export function floorDivI32(a: number, b: number): number {
  // Exact: for |a|, |b| < 2^31 the float quotient cannot round across an integer.
  return Math.floor(a / b) | 0;
}

/** Floor modulo on i32: the result has the divisor's sign (Python's and PyTorch's `%`). */
export function floorModI32(a: number, b: number): number {
  const r = a % b;
  return r !== 0 && r < 0 !== b < 0 ? r + b : r;
}

export function binary(op: BinaryOp, dtype: DType, x: HostData, y: HostData, out: HostData, fail: Fail): void {
  const n = x.length;
  const isInt = dtypeKind(dtype) === "int";
  const isBool = dtypeKind(dtype) === "bool";
  switch (op) {
    case "add":
      if (isInt) for (let i = 0; i < n; i++) out[i] = (x[i]! + y[i]!) | 0;
      else if (isBool) for (let i = 0; i < n; i++) out[i] = x[i]! | y[i]!;
      else for (let i = 0; i < n; i++) out[i] = x[i]! + y[i]!;
      return;
    case "mul":
      if (isInt) for (let i = 0; i < n; i++) out[i] = Math.imul(x[i]!, y[i]!);
      else if (isBool) for (let i = 0; i < n; i++) out[i] = x[i]! & y[i]!;
      else for (let i = 0; i < n; i++) out[i] = x[i]! * y[i]!;
      return;
    case "max":
      // Math.max propagates NaN, like torch.maximum; on bool it is logical or.
      for (let i = 0; i < n; i++) out[i] = Math.max(x[i]!, y[i]!);
      return;
    case "cmplt":
      for (let i = 0; i < n; i++) out[i] = x[i]! < y[i]! ? 1 : 0;
      return;
    case "cmpeq":
      for (let i = 0; i < n; i++) out[i] = x[i] === y[i] ? 1 : 0;
      return;
    case "idiv":
    case "mod":
      for (let i = 0; i < n; i++) {
        const a = x[i]!;
        const b = y[i]!;
        if (b === 0) fail(`integer ${op === "idiv" ? "division" : "modulo"} by zero at flat index ${i} (${a} ${op === "idiv" ? "//" : "%"} 0)`);
        out[i] = op === "idiv" ? floorDivI32(a, b) : floorModI32(a, b);
      }
      return;
    default:
      return assertNever(op, "binary op");
  }
}

export function where(cond: HostData, x: HostData, y: HostData, out: HostData): void {
  for (let i = 0; i < cond.length; i++) out[i] = cond[i] ? x[i]! : y[i]!;
}

/**
 * Sum or max over `axes`, keeping them as size 1. Walks x in row-major order and
 * accumulates into out through strides that are 0 on the reduced axes.
 */
export function reduce(op: "reduce_sum" | "reduce_max", dtype: DType, x: HostData, xShape: Shape, axes: readonly number[], out: HostData): void {
  const outShape = xShape.map((d, i) => (axes.includes(i) ? 1 : d));
  const outStrides = contiguousStrides(outShape).map((s, i) => (axes.includes(i) ? 0 : s));
  const isInt = dtypeKind(dtype) === "int";
  // Identity elements: an empty reduction yields 0 (sum), -inf (f32 max), INT32_MIN (i32 max).
  out.fill(op === "reduce_sum" ? 0 : dtypeInfo(dtype).lowest);
  const total = numel(xShape);
  const rank = xShape.length;
  const index = new Array<number>(rank).fill(0);
  let o = 0;
  for (let n = 0; n < total; n++) {
    const v = x[n]!;
    if (op === "reduce_sum") out[o] = isInt ? (out[o]! + v) | 0 : out[o]! + v;
    else out[o] = Math.max(out[o]!, v);
    for (let axis = rank - 1; axis >= 0; axis--) {
      const i = ++index[axis]!;
      o += outStrides[axis]!;
      if (i < xShape[axis]!) break;
      index[axis] = 0;
      o -= outStrides[axis]! * xShape[axis]!;
    }
  }
}

/** Batched matmul [...B, M, K] x [...B, K, N] -> [...B, M, N]; i32 wraps like repeated add/mul. */
export function dot(dtype: DType, lhs: HostData, lhsShape: Shape, rhs: HostData, rhsShape: Shape, out: HostData): void {
  const rank = lhsShape.length;
  const m = lhsShape[rank - 2]!;
  const k = lhsShape[rank - 1]!;
  const nCols = rhsShape[rank - 1]!;
  const batch = numel(lhsShape.slice(0, -2));
  const isInt = dtypeKind(dtype) === "int";
  out.fill(0);
  for (let b = 0; b < batch; b++) {
    const lhsBase = b * m * k;
    const rhsBase = b * k * nCols;
    const outBase = b * m * nCols;
    // i-k-j order walks rhs and out rows contiguously; each out element still sums over k ascending.
    for (let i = 0; i < m; i++) {
      const outRow = outBase + i * nCols;
      for (let kk = 0; kk < k; kk++) {
        const a = lhs[lhsBase + i * k + kk]!;
        const rhsRow = rhsBase + kk * nCols;
        if (isInt) for (let j = 0; j < nCols; j++) out[outRow + j] = (out[outRow + j]! + Math.imul(a, rhs[rhsRow + j]!)) | 0;
        else for (let j = 0; j < nCols; j++) out[outRow + j] = out[outRow + j]! + a * rhs[rhsRow + j]!;
      }
    }
  }
}

/** out[p] = x[p with p[axis] := index[p]]; an index outside [0, x.shape[axis]) fails. */
export function gather(x: HostData, xShape: Shape, index: HostData, indexShape: Shape, axis: number, out: HostData, fail: Fail): void {
  const xStrides = contiguousStrides(xShape);
  const total = numel(indexShape);
  const rank = indexShape.length;
  const position = new Array<number>(rank).fill(0);
  const size = xShape[axis]!;
  for (let n = 0; n < total; n++) {
    const idx = index[n]!;
    if (idx < 0 || idx >= size) fail(`gather index ${idx} out of range [0, ${size}) along axis ${axis} at index position [${position.join(",")}]`);
    let offset = 0;
    for (let a = 0; a < rank; a++) offset += (a === axis ? idx : position[a]!) * xStrides[a]!;
    out[n] = x[offset]!;
    for (let a = rank - 1; a >= 0; a--) {
      if (++position[a]! < indexShape[a]!) break;
      position[a] = 0;
    }
  }
}

/** out[p] = p[axis]. */
export function iota(shape: Shape, axis: number, out: HostData): void {
  const stride = contiguousStrides(shape)[axis]!;
  const size = shape[axis]!;
  for (let n = 0; n < out.length; n++) out[n] = Math.floor(n / stride) % size;
}

export function rng(seed: number, stream: number, out: HostData): void {
  for (let n = 0; n < out.length; n++) out[n] = rngValueAt(seed, stream, n);
}
