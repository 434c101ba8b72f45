// Elementwise ops: PyTorch semantics (broadcasting, type promotion, true division,
// comparisons → bool) lowered to the IR's unary/binary/where primitives. exp and log go
// through exp2/log2 with a constant factor, as tinygrad does, so backends implement only
// the base-2 forms. Error messages name the op the user called (sub, lt…), not the primitive.

import type { BinaryOp, UnaryOp } from "../../compiler/ir/types.ts";
import { halfOf, isBool, isFloat, isInt, type DType } from "../../compiler/ir/dtype.ts";
import { formatShape } from "../../compiler/util/shape.ts";
import { strictOptions } from "../options.ts";
import { Tensor, prim, resultDType, userError, type Scalar, type TensorLike } from "../tensor.ts";
import { broadcastTensors, constant } from "./broadcast.ts";
import { withOneLoc } from "../loc.ts";

const LOG2E = Math.LOG2E;
const LN2 = Math.LN2;

function traceOf(op: string, ...xs: TensorLike[]): Tensor {
  for (const x of xs) checkOperand(op, x);
  const t = xs.find((x): x is Tensor => x instanceof Tensor);
  if (!t) return userError("invalid-argument", `${op}: at least one operand must be a tensor`);
  return t;
}

/**
 * An operand is a Tensor, a number or a boolean. Anything else (a string, null, undefined, an
 * object, an array) would otherwise become a constant through Number(): "3" as 3, null as 0,
 * the rest as NaN, with no error.
 */
function checkOperand(op: string, x: unknown): void {
  if (x instanceof Tensor || typeof x === "number" || typeof x === "boolean") return;
  const shown =
    typeof x === "string" ? JSON.stringify(x) : x === null ? "null" : Array.isArray(x) ? "an array" : typeof x === "object" ? "an object" : String(x);
  userError("invalid-argument", `${op}: operand must be a tensor, a number or a boolean, got ${shown}`);
}

export function unary(op: UnaryOp, x: Tensor): Tensor {
  return prim(x.trace, { op, x: toFloat(x).id });
}

/** The float dtype an op on `d` computes in: a float dtype keeps itself (f16 stays f16), i32 and bool go to f32. */
export const floatDType = (d: DType): DType => (isFloat(d) ? d : "f32");
/** `x` as a float tensor (unchanged when it already is one), as PyTorch's ops promote integers. */
export const toFloat = (x: Tensor): Tensor => cast(x, floatDType(x.dtype));

/** Casts and broadcasts `a`, `b` to `dtype`, then records `op`; `name` is what errors call it. */
export function binary(op: BinaryOp, a: TensorLike, b: TensorLike, dtype: DType, name: string = op): Tensor {
  // One stack capture for the op and its broadcasts' casts, reshapes and expands (withOneLoc).
  return withOneLoc(() => {
    const [x, y] = broadcastPair(a, b, dtype, name);
    return prim(x.trace, { op, x: x.id, y: y.id });
  });
}

export function cast(x: Tensor, dtype: DType): Tensor {
  if (x.dtype === dtype) return x;
  return prim(x.trace, { op: "cast", x: x.id }, { dtype, shape: x.shape });
}

/** Lifts a scalar operand to a tensor constant on `like`'s trace. */
function lift(like: Tensor, v: TensorLike, dtype: DType): Tensor {
  return v instanceof Tensor ? v : constant(like.trace, v, dtype);
}

/** PyTorch refuses a fractional alpha for integer operands rather than truncating it. */
function checkAlpha(op: string, a: TensorLike, b: TensorLike, alpha: number | undefined): void {
  if (alpha !== undefined && !Number.isInteger(alpha) && !isFloat(resultDType(a, b)))
    userError("dtype-mismatch", `${op}: alpha ${alpha} must be an integer for ${resultDType(a, b)} operands`);
}

export function add(a: TensorLike, b: TensorLike, alpha?: number): Tensor {
  traceOf("add", a, b);
  checkAlpha("add", a, b, alpha);
  const scaled = alpha === undefined || alpha === 1 ? b : b instanceof Tensor ? mul(b, alpha) : Number(b) * alpha;
  return binary("add", a, scaled, resultDType(a, scaled), "add");
}
export function sub(a: TensorLike, b: TensorLike, alpha = 1): Tensor {
  const like = traceOf("sub", a, b);
  checkAlpha("sub", a, b, alpha);
  const dtype = resultDType(a, b);
  if (isBool(dtype)) return userError("dtype-mismatch", "sub: subtracting bool tensors is not supported: use logicalXor or logicalNot");
  return withOneLoc(() => {
    const [x, y] = broadcastPair(lift(like, a, dtype), lift(like, b, dtype), dtype, "sub");
    const negY = isInt(dtype)
      ? binary("mul", y, -alpha, dtype, "sub")
      : alpha === 1
        ? prim(y.trace, { op: "neg", x: y.id })
        : binary("mul", y, -alpha, dtype, "sub");
    return binary("add", x, negY, resultDType(x, negY), "sub");
  });
}
export function mul(a: TensorLike, b: TensorLike): Tensor {
  traceOf("mul", a, b);
  return binary("mul", a, b, resultDType(a, b), "mul");
}
/**
 * True division (PyTorch `/`): integer and bool operands give f32. There is no divide
 * primitive: x · recip(y) can differ from a correctly rounded x / y by one f32 ulp.
 */
export function div(a: TensorLike, b: TensorLike): Tensor {
  traceOf("div", a, b);
  const dtype = floatDType(resultDType(a, b));
  return withOneLoc(() => {
    const [x, y] = broadcastPair(a, b, dtype, "div");
    return binary("mul", x, reciprocal(y), dtype, "div");
  });
}
/** PyTorch `//`: floor division (the `idiv` primitive floors integers; floats use floor(a / b)). */
export function floorDivide(a: TensorLike, b: TensorLike): Tensor {
  traceOf("floorDivide", a, b);
  if (isFloat(resultDType(a, b))) return floor(div(a, b));
  return binary("idiv", a, b, "i32", "floorDivide");
}
/** PyTorch `%`: the result takes the divisor's sign (`mod` floors; floats: a - floor(a / b) · b). */
export function remainder(a: TensorLike, b: TensorLike): Tensor {
  const like = traceOf("remainder", a, b);
  if (isFloat(resultDType(a, b))) {
    const dtype = resultDType(a, b);
    const [x, y] = broadcastPair(lift(like, a, dtype), lift(like, b, dtype), dtype, "remainder");
    return sub(x, mul(floor(div(x, y)), y));
  }
  return binary("mod", a, b, "i32", "remainder");
}

// ---- rounding: the IR has none, but cast f32 → i32 truncates toward zero ----
// Beyond 2^31 the i32 cast saturates; every f32 that large is already an integer, so it is kept.
const TRUNC_LIMIT = 2 ** 31;

export function trunc(x: Tensor): Tensor {
  if (!isFloat(x.dtype)) return x;
  return where(lt(abs(x), TRUNC_LIMIT), cast(cast(x, "i32"), x.dtype), x);
}
export function floor(x: Tensor): Tensor {
  if (!isFloat(x.dtype)) return x;
  const t = trunc(x);
  return sub(t, cast(gt(t, x), x.dtype));
}
export function ceil(x: Tensor): Tensor {
  if (!isFloat(x.dtype)) return x;
  return neg(floor(neg(x)));
}
/** Round half to even, as torch.round (2.5 → 2, 3.5 → 4). */
export function round(x: Tensor): Tensor {
  if (!isFloat(x.dtype)) return x;
  const f = floor(x);
  const fraction = sub(x, f);
  const parity = sub(f, mul(floor(mul(f, 0.5)), 2));
  const up = where(gt(fraction, 0.5), 1, where(lt(fraction, 0.5), 0, parity));
  return where(lt(abs(x), TRUNC_LIMIT), add(f, up), x); // inf and NaN stay as they are
}

export function neg(x: Tensor): Tensor {
  if (isBool(x.dtype)) return userError("dtype-mismatch", "neg: negating a bool tensor is not supported: use logicalNot");
  if (isInt(x.dtype)) return binary("mul", x, -1, "i32", "neg");
  return prim(x.trace, { op: "neg", x: x.id });
}
/**
 * A 16-bit input computed in f32 and rounded once at the end, as PyTorch's float16 and
 * bfloat16 kernels do: exp and log scale by log2(e) and ln 2, which 16 bits would cut to 3 digits.
 */
const inF32 = (x: Tensor, f: (xf: Tensor) => Tensor): Tensor => (halfOf(x.dtype) !== undefined ? cast(f(cast(x, "f32")), x.dtype) : f(x));
export const exp = (x: Tensor): Tensor => inF32(x, (xf) => unary("exp2", mul(toFloat(xf), LOG2E)));
export const log = (x: Tensor): Tensor => inF32(x, (xf) => mul(unary("log2", xf), LN2));
export const sqrt = (x: Tensor): Tensor => unary("sqrt", x);
export const reciprocal = (x: Tensor): Tensor => unary("recip", x);
export const rsqrt = (x: Tensor): Tensor => reciprocal(sqrt(x));
export const sin = (x: Tensor): Tensor => unary("sin", x);
export const cos = (x: Tensor): Tensor => unary("sin", add(toFloat(x), Math.PI / 2));

export function abs(x: Tensor): Tensor {
  if (isBool(x.dtype)) return x;
  return maximum(x, neg(x));
}

/** NaN test: the one value not equal to itself. */
export const isnan = (x: Tensor): Tensor => (isFloat(x.dtype) ? ne(x, x) : constant(x.trace, false, "bool", x.shape));
/** ±inf test. */
export const isinf = (x: Tensor): Tensor => (isFloat(x.dtype) ? eq(abs(x), Infinity) : constant(x.trace, false, "bool", x.shape));

/**
 * x ** y. Small integer constant exponents become multiplications (exact, as PyTorch is for
 * a negative base); otherwise exp2(y · log2|x|) with PyTorch's special cases: a negative
 * base gives a real result for integral y (sign from y's parity) and NaN otherwise, x ** 0 = 1.
 */
export function pow(x: Tensor, y: TensorLike): Tensor {
  checkOperand("pow", y);
  const dtype = resultDType(x, y);
  if (typeof y === "number" && Number.isInteger(y) && Math.abs(y) <= 16) {
    if (y < 0 && !isFloat(dtype)) return userError("dtype-mismatch", `pow: integers to negative integer powers are not allowed (exponent ${y})`);
    if (y === 0) return constant(x.trace, 1, isBool(dtype) ? "i32" : dtype, x.shape);
    let base = cast(x, isBool(dtype) ? "i32" : dtype);
    let acc: Tensor | undefined;
    for (let e = Math.abs(y); e > 0; e = Math.floor(e / 2)) {
      if (e % 2 === 1) acc = acc ? mul(acc, base) : base;
      if (e > 1) base = mul(base, base);
    }
    return y < 0 ? reciprocal(acc!) : acc!;
  }
  if (y === 0.5) return sqrt(x);
  const fdtype = floatDType(y instanceof Tensor ? dtype : x.dtype);
  const xf = cast(x, fdtype);
  const yf = y instanceof Tensor ? cast(y, fdtype) : constant(x.trace, y, fdtype);
  const magnitude = unary("exp2", mul(yf, unary("log2", abs(xf))));
  const yInt = cast(yf, "i32");
  const yIntegral = eq(cast(yInt, fdtype), yf);
  const yOdd = eq(remainder(yInt, 2), 1);
  const signed = where(yOdd, neg(magnitude), magnitude);
  const negBase = where(yIntegral, signed, NaN);
  const result = where(lt(xf, 0), negBase, magnitude);
  return where(eq(yf, 0), 1, result);
}

export function maximum(a: TensorLike, b: TensorLike): Tensor {
  traceOf("maximum", a, b);
  return binary("max", a, b, resultDType(a, b), "maximum");
}
export function minimum(a: TensorLike, b: TensorLike): Tensor {
  const like = traceOf("minimum", a, b);
  const dtype = resultDType(a, b);
  return withOneLoc(() => {
    const [x, y] = broadcastPair(lift(like, a, dtype), lift(like, b, dtype), dtype, "minimum");
    if (isBool(dtype)) return binary("mul", x, y, "bool", "minimum");
    return neg(maximum(neg(x), neg(y)));
  });
}
/** torch.clamp's keywords: `x.clamp({ min: 0 })`. */
export interface ClampOptions {
  readonly min?: number;
  readonly max?: number;
}
export function clamp(x: Tensor, minArg?: number | ClampOptions, maxArg?: number): Tensor {
  const { min, max } =
    typeof minArg === "object" && minArg !== null ? strictOptions<ClampOptions>("clamp", minArg, { min: true, max: true }) : { min: minArg, max: maxArg };
  for (const [name, v] of [
    ["min", min],
    ["max", max],
  ] as const)
    if (v !== undefined && typeof v !== "number") return userError("invalid-argument", `clamp: ${name} must be a number, got ${JSON.stringify(v)}`);
  let y = x;
  if (min !== undefined) y = maximum(y, min);
  if (max !== undefined) y = minimum(y, max);
  return y;
}

// Comparisons compare in the promoted dtype and return bool. le/ge are lt|eq so that
// NaN compares false everywhere, as in PyTorch (not(gt) would make NaN <= 1 true).
// `swap` compares b against a (gt via cmplt) after broadcasting in the user's order.
function cmp(op: BinaryOp, a: TensorLike, b: TensorLike, name: string, swap = false): Tensor {
  traceOf(name, a, b);
  return withOneLoc(() => {
    const [x, y] = broadcastPair(a, b, resultDType(a, b), name);
    return swap ? prim(x.trace, { op, x: y.id, y: x.id }) : prim(x.trace, { op, x: x.id, y: y.id });
  });
}
export const lt = (a: TensorLike, b: TensorLike): Tensor => cmp("cmplt", a, b, "lt");
export const gt = (a: TensorLike, b: TensorLike): Tensor => cmp("cmplt", a, b, "gt", true);
export const eq = (a: TensorLike, b: TensorLike): Tensor => cmp("cmpeq", a, b, "eq");
export const ne = (a: TensorLike, b: TensorLike): Tensor => logicalNot(cmp("cmpeq", a, b, "ne"));
export const le = (a: TensorLike, b: TensorLike): Tensor => logicalOr(cmp("cmplt", a, b, "le"), cmp("cmpeq", a, b, "le"));
export const ge = (a: TensorLike, b: TensorLike): Tensor => logicalOr(cmp("cmplt", a, b, "ge", true), cmp("cmpeq", a, b, "ge"));

export function logicalNot(x: Tensor): Tensor {
  return binary("cmpeq", cast(x, "bool"), false, "bool", "logicalNot");
}
export const logicalAnd = (a: TensorLike, b: TensorLike): Tensor => (traceOf("logicalAnd", a, b), binary("mul", a, b, "bool", "logicalAnd"));
export const logicalOr = (a: TensorLike, b: TensorLike): Tensor => (traceOf("logicalOr", a, b), binary("max", a, b, "bool", "logicalOr"));
export function logicalXor(a: TensorLike, b: TensorLike): Tensor {
  traceOf("logicalXor", a, b);
  return logicalNot(binary("cmpeq", a, b, "bool", "logicalXor"));
}

/** The dtype `where` picks for two value operands: tensors promote; two scalars decide alone. */
function whereDType(a: TensorLike, b: TensorLike): DType {
  if (a instanceof Tensor || b instanceof Tensor) return resultDType(a, b);
  const kind = (v: Scalar): number => (typeof v === "boolean" ? 0 : Number.isInteger(v) ? 1 : 2);
  return (["bool", "i32", "f32"] as const)[Math.max(kind(a), kind(b))]!;
}

/** torch.Tensor.masked_fill: `value` where mask is true; the mask broadcasts to x. */
export function maskedFill(x: Tensor, mask: Tensor, value: Scalar): Tensor {
  const filled = where(mask, value, x);
  if (filled.ndim !== x.ndim || filled.shape.some((d, i) => d !== x.shape[i]))
    return userError("shape-mismatch", `shape mismatch in maskedFill: mask ${formatShape(mask.shape)} does not broadcast to ${formatShape(x.shape)}`);
  return cast(filled, x.dtype);
}

/** where(cond, x, y): x where cond is true, else y; broadcasting across all three. */
export function where(cond: Tensor, a: TensorLike, b: TensorLike): Tensor {
  checkOperand("where", a);
  checkOperand("where", b);
  const dtype = whereDType(a, b);
  return withOneLoc(() => {
    const c = cast(cond, "bool");
    const x = lift(c, a, dtype);
    const y = lift(c, b, dtype);
    const [cb, xb, yb] = broadcastTensors([c, cast(x, dtype), cast(y, dtype)], "where");
    return prim(c.trace, { op: "where", cond: cb!.id, x: xb!.id, y: yb!.id });
  });
}

// ---- activations ----
export const relu = (x: Tensor): Tensor => maximum(x, 0);
/** F.leaky_relu: the slope positionally or as `{ negativeSlope }` (default 0.01). */
export interface LeakyReluOptions {
  readonly negativeSlope?: number;
}
export function leakyRelu(x: Tensor, slope: number | LeakyReluOptions = 0.01): Tensor {
  const negativeSlope =
    typeof slope === "number" ? slope : (strictOptions<LeakyReluOptions>("leakyRelu", slope, { negativeSlope: true }).negativeSlope ?? 0.01);
  if (!Number.isFinite(negativeSlope))
    return userError("invalid-argument", `leakyRelu: negativeSlope must be a finite number, got ${JSON.stringify(negativeSlope)}`);
  return where(gt(x, 0), x, mul(x, negativeSlope));
}
export const sigmoid = (x: Tensor): Tensor => reciprocal(add(exp(neg(toFloat(x))), 1));
/** tanh(x) = 2·sigmoid(2x) − 1: no inf/inf at either end; absolute error stays at f32 epsilon. */
export const tanh = (x: Tensor): Tensor => sub(mul(sigmoid(mul(x, 2)), 2), 1);
export const silu = (x: Tensor): Tensor => mul(x, sigmoid(x));

/**
 * erf by Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7, below f32 resolution near 1):
 * the IR has no erf primitive, and this keeps every backend to exp2.
 */
export function erf(x: Tensor): Tensor {
  const xf = toFloat(x);
  const sign = where(lt(xf, 0), -1, 1);
  const ax = abs(xf);
  const t = reciprocal(add(mul(ax, 0.3275911), 1));
  const coeffs = [1.061405429, -1.453152027, 1.421413741, -0.284496736, 0.254829592];
  let poly: Tensor = mul(t, coeffs[0]!);
  for (const c of coeffs.slice(1)) poly = mul(add(poly, c), t);
  const y = sub(1, mul(poly, exp(neg(mul(ax, ax)))));
  return mul(sign, y);
}

/** F.gelu: `approximate` positionally or as `{ approximate }`: "none" (erf, default) or "tanh". */
export interface GeluOptions {
  readonly approximate?: "none" | "tanh";
}
export function gelu(x: Tensor, approximateArg: "none" | "tanh" | GeluOptions = "none"): Tensor {
  const approximate =
    typeof approximateArg === "string" ? approximateArg : (strictOptions<GeluOptions>("gelu", approximateArg, { approximate: true }).approximate ?? "none");
  if (approximate === "tanh") {
    // PyTorch's tanh form: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
    const inner = mul(add(x, mul(pow(x, 3), 0.044715)), Math.sqrt(2 / Math.PI));
    return mul(mul(x, 0.5), add(tanh(inner), 1));
  }
  if (approximate !== "none") return userError("invalid-argument", `gelu: approximate must be "none" or "tanh", got ${JSON.stringify(approximate)}`);
  return mul(mul(x, 0.5), add(erf(mul(x, Math.SQRT1_2)), 1));
}

/** F.softplus: `beta` and `threshold` positionally or as `{ beta, threshold }` (defaults 1 and 20). */
export interface SoftplusOptions {
  readonly beta?: number;
  readonly threshold?: number;
}

/** softplus(x) = log(1 + exp(βx)) / β, linear (x) where βx > threshold (PyTorch). */
export function softplus(x: Tensor, betaArg: number | SoftplusOptions = 1, thresholdArg = 20): Tensor {
  const opts =
    typeof betaArg === "number"
      ? { beta: betaArg, threshold: thresholdArg }
      : strictOptions<SoftplusOptions>("softplus", betaArg, { beta: true, threshold: true });
  const beta = opts.beta ?? 1;
  const threshold = opts.threshold ?? 20;
  for (const [name, v] of [
    ["beta", beta],
    ["threshold", threshold],
  ] as const)
    if (typeof v !== "number" || !Number.isFinite(v))
      return userError("invalid-argument", `softplus: ${name} must be a finite number, got ${JSON.stringify(v)}`);
  if (beta === 0) return userError("invalid-argument", "softplus: beta must be non-zero");
  const bx = mul(x, beta);
  // log1p(exp(-|bx|)) + max(bx, 0) is stable everywhere.
  const smooth = div(add(log(add(exp(neg(abs(bx))), 1)), maximum(bx, 0)), beta);
  return where(gt(bx, threshold), toFloat(x), smooth);
}

/** Converts both operands to `dtype` and broadcasts them to a common shape. */
function broadcastPair(a: TensorLike, b: TensorLike, dtype: DType, op: string): [Tensor, Tensor] {
  const trace = (a instanceof Tensor ? a : (b as Tensor)).trace;
  if (a instanceof Tensor && b instanceof Tensor && a.trace !== b.trace) userError("invalid-argument", `${op}: operands come from different traced functions`);
  return withOneLoc(() => {
    const ta = a instanceof Tensor ? cast(a, dtype) : constant(trace, a, dtype);
    const tb = b instanceof Tensor ? cast(b, dtype) : constant(trace, b, dtype);
    return broadcastTensors([ta, tb], op) as [Tensor, Tensor];
  });
}
