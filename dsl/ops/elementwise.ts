// Elementwise ops: PyTorch semantics (broadcasting, type promotion, true division) lowered
// to the IR's unary/binary primitives. exp and log go through exp2/log2 with a constant
// factor, as tinygrad does, so backends implement only the base-2 forms.

import type { BinaryOp, DType, UnaryOp } from "../../compiler/ir/types.ts";
import { Tensor, broadcastPair, broadcastTensors, constant, prim, resultDType, userError, type TensorLike } from "../tensor.ts";

const LOG2E = Math.LOG2E;
const LN2 = Math.LN2;

function traceOf(...xs: TensorLike[]): Tensor {
  const t = xs.find((x): x is Tensor => x instanceof Tensor);
  if (!t) return userError("invalid-argument", "at least one operand must be a tensor");
  return t;
}

export function unary(op: UnaryOp, x: Tensor): Tensor {
  return prim(x.trace, { op, x: cast(x, "f32").id });
}

export function binary(op: BinaryOp, a: TensorLike, b: TensorLike, dtype: DType): Tensor {
  const [x, y] = broadcastPair(a, b, dtype, op);
  return prim(traceOf(a, b).trace, { op, x: x.id, y: y.id });
}

export function cast(x: Tensor, dtype: DType): Tensor {
  if (x.dtype === dtype) return x;
  return prim(x.trace, { op: "cast", x: x.id }, { dtype, shape: x.shape });
}

const floatOf = (a: TensorLike, b: TensorLike): DType => {
  const d = resultDType(a, b);
  return d === "bool" ? "i32" : d;
};

export function add(a: TensorLike, b: TensorLike, alpha?: number): Tensor {
  const scaled = alpha === undefined || alpha === 1 ? b : mul(b, alpha);
  return binary("add", a, scaled, floatOf(a, scaled));
}
export function sub(a: TensorLike, b: TensorLike, alpha = 1): Tensor {
  const bt = asTensorLike(traceOf(a, b), b, floatOf(a, b));
  return add(a, neg(alpha === 1 ? bt : mul(bt, alpha)));
}
export function mul(a: TensorLike, b: TensorLike): Tensor {
  return binary("mul", a, b, floatOf(a, b));
}
/** True division (PyTorch `/`): integer operands give f32. */
export function div(a: TensorLike, b: TensorLike): Tensor {
  if (typeof b === "number" && a instanceof Tensor && b !== 0) return mul(cast(a, "f32"), 1 / b);
  const d: DType = "f32";
  const [x, y] = broadcastPair(a, b, d, "div");
  return mul(x, reciprocal(y));
}
/** Floor division on integers (PyTorch `//` for i32). */
export function floorDivide(a: TensorLike, b: TensorLike): Tensor {
  const d = resultDType(a, b);
  if (d === "f32") return userError("dtype-mismatch", "floorDivide on f32 is not supported: use div");
  return binary("idiv", a, b, "i32");
}
export function remainder(a: TensorLike, b: TensorLike): Tensor {
  const d = resultDType(a, b);
  if (d === "f32") return userError("dtype-mismatch", "remainder on f32 is not supported");
  return binary("mod", a, b, "i32");
}

function asTensorLike(like: Tensor, v: TensorLike, dtype: DType): Tensor {
  return v instanceof Tensor ? v : constant(like.trace, v, dtype);
}

export function neg(x: Tensor): Tensor {
  if (x.dtype === "bool") return userError("dtype-mismatch", "neg of a bool tensor: use logicalNot");
  if (x.dtype === "i32") return mul(x, -1);
  return prim(x.trace, { op: "neg", x: x.id });
}
export const exp = (x: Tensor): Tensor => unary("exp2", mul(cast(x, "f32"), LOG2E));
export const log = (x: Tensor): Tensor => mul(unary("log2", x), LN2);
export const sqrt = (x: Tensor): Tensor => unary("sqrt", x);
export const reciprocal = (x: Tensor): Tensor => unary("recip", x);
export const rsqrt = (x: Tensor): Tensor => reciprocal(sqrt(x));
export const sin = (x: Tensor): Tensor => unary("sin", x);
export const cos = (x: Tensor): Tensor => unary("sin", add(cast(x, "f32"), Math.PI / 2));

export function abs(x: Tensor): Tensor {
  if (x.dtype === "bool") return x;
  return maximum(x, neg(x));
}

/**
 * x ** y. Integer constant exponents become multiplications (exact, and defined for a
 * negative base as in PyTorch); otherwise exp2(y * log2 x), NaN for a negative base.
 */
export function pow(x: Tensor, y: TensorLike): Tensor {
  if (typeof y === "number" && Number.isInteger(y) && Math.abs(y) <= 16) {
    if (y === 0) return add(mul(x, 0), 1);
    let base = cast(x, resultDType(x, y));
    let acc: Tensor | undefined;
    for (let e = Math.abs(y); e > 0; e >>= 1) {
      if (e & 1) acc = acc ? mul(acc, base) : base;
      if (e > 1) base = mul(base, base);
    }
    return y < 0 ? reciprocal(acc!) : acc!;
  }
  if (typeof y === "number" && y === 0.5) return sqrt(x);
  const yt = y instanceof Tensor ? y : constant(x.trace, y as number, "f32");
  return unary("exp2", mul(yt, unary("log2", x)));
}

export function maximum(a: TensorLike, b: TensorLike): Tensor {
  return binary("max", a, b, resultDType(a, b));
}
export function minimum(a: TensorLike, b: TensorLike): Tensor {
  return neg(maximum(neg(asTensorLike(traceOf(a, b), a, resultDType(a, b))), neg(asTensorLike(traceOf(a, b), b, resultDType(a, b)))));
}
export function clamp(x: Tensor, min?: number, max?: number): Tensor {
  let y = x;
  if (min !== undefined) y = maximum(y, min);
  if (max !== undefined) y = minimum(y, max);
  return y;
}

const cmpType = (a: TensorLike, b: TensorLike): DType => resultDType(a, b);
export const lt = (a: TensorLike, b: TensorLike): Tensor => binary("cmplt", a, b, cmpType(a, b));
export const gt = (a: TensorLike, b: TensorLike): Tensor => binary("cmplt", b, a, cmpType(a, b));
export const eq = (a: TensorLike, b: TensorLike): Tensor => binary("cmpeq", a, b, cmpType(a, b));
export const ne = (a: TensorLike, b: TensorLike): Tensor => logicalNot(eq(a, b));
export const le = (a: TensorLike, b: TensorLike): Tensor => logicalNot(gt(a, b));
export const ge = (a: TensorLike, b: TensorLike): Tensor => logicalNot(lt(a, b));

export function logicalNot(x: Tensor): Tensor {
  return binary("cmpeq", cast(x, "bool"), false, "bool");
}
export const logicalAnd = (a: TensorLike, b: TensorLike): Tensor => binary("mul", a, b, "bool");
export const logicalOr = (a: TensorLike, b: TensorLike): Tensor => binary("max", a, b, "bool");

/** where(cond, x, y) with broadcasting across all three. */
export function where(cond: Tensor, a: TensorLike, b: TensorLike): Tensor {
  const dtype = resultDType(a, b);
  const c = cast(cond, "bool");
  const [x, y] = broadcastPair(a, b, dtype, "where");
  const [cb, xb, yb] = broadcastTensors([c, x, y], "where");
  return prim(c.trace, { op: "where", cond: cb!.id, x: xb!.id, y: yb!.id });
}


// ---- activations ----
export const relu = (x: Tensor): Tensor => maximum(x, 0);
export const leakyRelu = (x: Tensor, slope: number): Tensor => where(gt(x, 0), x, mul(x, slope));
export const sigmoid = (x: Tensor): Tensor => reciprocal(add(exp(neg(cast(x, "f32"))), 1));
/** tanh(x) = 2·sigmoid(2x) − 1: stable at both ends (no inf/inf). */
export const tanh = (x: Tensor): Tensor => sub(mul(sigmoid(mul(x, 2)), 2), 1);
export const silu = (x: Tensor): Tensor => mul(x, sigmoid(x));

/**
 * erf by Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7, below f32 resolution near 1):
 * the IR has no erf primitive, and this keeps every backend to exp2.
 */
export function erf(x: Tensor): Tensor {
  const xf = cast(x, "f32");
  const sign = where(lt(xf, 0), -1, 1);
  const ax = abs(xf);
  const t = reciprocal(add(mul(ax, 0.3275911), 1));
  const coeffs = [1.061405429, -1.453152027, 1.421413741, -0.284496736, 0.254829592];
  let poly: Tensor = mul(t, coeffs[0]!);
  for (const c of coeffs.slice(1)) poly = mul(add(poly, c), t);
  const y = sub(1, mul(poly, exp(neg(mul(ax, ax)))));
  return mul(sign, y);
}

export function gelu(x: Tensor, approximate: "none" | "tanh"): Tensor {
  if (approximate === "tanh") {
    const inner = mul(add(x, mul(pow(x, 3), 0.044715)), Math.sqrt(2 / Math.PI));
    return mul(mul(x, 0.5), add(tanh(inner), 1));
  }
  return mul(mul(x, 0.5), add(erf(mul(x, Math.SQRT1_2)), 1));
}

/** softplus(x) = log(1 + exp(βx)) / β, linear above the threshold (PyTorch). */
export function softplus(x: Tensor, beta: number, threshold: number): Tensor {
  const bx = mul(x, beta);
  // log1p(exp(-|bx|)) + max(bx, 0) is stable everywhere.
  const smooth = div(add(log(add(exp(neg(abs(bx))), 1)), maximum(bx, 0)), beta);
  return where(gt(bx, threshold), x, smooth);
}
