// WGSL spellings for the C-like renderer base, and the helper functions kernels call for
// the IR semantics WGSL does not give directly: floor division/modulo on i32 (WGSL's `/`
// and `%` truncate), saturating f32 → i32 with NaN → 0, NaN-propagating max, NaN for
// log2/sqrt of negatives, and the threefry2x32-20 rng (bit-exact with compiler/util/threefry.ts).
// NaN and infinities come from bitcasts of runtime values: WGSL has no literal for them.

import type { BinaryOp, UnaryOp } from "../../compiler/ir/types.ts";
import { dtypeInfo, halfOf, isBool, isFloat, type DType } from "../../compiler/ir/dtype.ts";
import { roundToBfloat16, roundToHalf } from "../../runtime/artifact/half.ts";
import { assertNever, bug } from "../../compiler/util/errors.ts";
import type { CLikeDialect, ReduceKind } from "../render/base.ts";

// Functions, not constant expressions: WGSL rejects a constant that evaluates to NaN or ±inf.
const NAN = "kiln_nan()";
const POS_INF = "kiln_inf()";
const NEG_INF = "-kiln_inf()";
const F32_MAX = 3.4028234663852886e38;

export function wgslTypeName(t: DType): string {
  return dtypeInfo(t).wgsl.value;
}

export function wgslF32(value: number): string {
  if (Number.isNaN(value)) return NAN;
  const f = Math.fround(value);
  if (f === Infinity || value > F32_MAX) return POS_INF;
  if (f === -Infinity || value < -F32_MAX) return NEG_INF;
  if (Object.is(f, -0)) return "-0.0f";
  const text = String(f);
  return `${/[.e]/.test(text) ? text : `${text}.0`}f`;
}

export function wgslConstant(value: number, t: DType): string {
  switch (t) {
    case "f32":
      return wgslF32(value);
    case "f16":
      return wgslF32(roundToHalf(value));
    case "bf16":
      return wgslF32(roundToBfloat16(value));
    case "i32":
      // -2^31 has no i32 literal (the minus applies to 2147483648i, which overflows).
      return value === -2147483648 ? "i32(-2147483648)" : `${value}i`;
    case "bool":
      return value !== 0 ? "true" : "false";
    default:
      return assertNever(t, "dtype");
  }
}

function unary(op: UnaryOp, x: string, t: DType): string {
  if (!isFloat(t) && op !== "neg") bug(`wgsl: ${op} on ${t}`);
  switch (op) {
    case "neg":
      return `-${x}`;
    case "exp2":
      return `exp2(${x})`;
    case "log2":
      return `kiln_log2(${x})`;
    case "sin":
      return `sin(${x})`;
    case "sqrt":
      return `kiln_sqrt(${x})`;
    case "recip":
      return `1.0f / ${x}`;
    default:
      return assertNever(op, "unary op");
  }
}

/** The spellings that differ per dtype; a dtype missing here does not compile. */
interface WgslDTypeSpelling {
  /** bool add/mul/max are logical or/and/or, and cmplt is (!x && y). */
  readonly logical: boolean;
  readonly max: (x: string, y: string) => string;
  /** Identity of reduce_max. */
  readonly lowest: string;
}

const WGSL_DTYPES: { readonly [D in DType]: WgslDTypeSpelling } = {
  // WGSL leaves max(NaN, x) unspecified: kiln_maxf propagates NaN like the interpreter.
  f32: { logical: false, max: (x, y) => `kiln_maxf(${x}, ${y})`, lowest: NEG_INF },
  // 16-bit floats compute in f32 registers.
  f16: { logical: false, max: (x, y) => `kiln_maxf(${x}, ${y})`, lowest: NEG_INF },
  bf16: { logical: false, max: (x, y) => `kiln_maxf(${x}, ${y})`, lowest: NEG_INF },
  i32: { logical: false, max: (x, y) => `max(${x}, ${y})`, lowest: "i32(-2147483648)" },
  bool: { logical: true, max: (x, y) => `(${x} || ${y})`, lowest: "false" },
};

function binary(op: BinaryOp, x: string, y: string, operand: DType): string {
  const logical = WGSL_DTYPES[operand].logical;
  switch (op) {
    case "add":
      return logical ? `(${x} || ${y})` : `(${x} + ${y})`;
    case "mul":
      return logical ? `(${x} && ${y})` : `(${x} * ${y})`;
    case "max":
      return WGSL_DTYPES[operand].max(x, y);
    case "cmplt":
      return logical ? `(!${x} && ${y})` : `(${x} < ${y})`;
    case "cmpeq":
      return `(${x} == ${y})`;
    case "idiv":
      return `kiln_idiv(${x}, ${y})`;
    case "mod":
      return `kiln_imod(${x}, ${y})`;
    default:
      return assertNever(op, "binary op");
  }
}

function cast(x: string, from: DType, to: DType): string {
  if (from === to) return x;
  if (isBool(from)) return `select(${wgslConstant(0, to)}, ${wgslConstant(1, to)}, ${x})`;
  switch (to) {
    case "bool":
      return `(${x} != ${wgslConstant(0, from)})`;
    case "i32":
      return `kiln_f2i(${x})`; // saturating, NaN → 0, like the interpreter
    case "f32":
    case "f16":
    case "bf16":
      return `f32(${x})`;
    default:
      return assertNever(to, "dtype");
  }
}

function reduceInit(op: ReduceKind, t: DType): string {
  return op === "reduce_sum" ? wgslConstant(0, t) : WGSL_DTYPES[t].lowest;
}

export const wgslDialect: CLikeDialect = {
  typeName: wgslTypeName,
  constant: wgslConstant,
  unary,
  binary,
  cast,
  select: (cond, ifTrue, ifFalse) => `select(${ifFalse}, ${ifTrue}, ${cond})`,
  rng: (seed, stream, counter) => `kiln_rng(${seed}, ${stream >>> 0}u, ${counter})`,
  reduceInit,
  declareLet: (name, t, value) => `let ${name}: ${wgslTypeName(t)} = ${value};`,
  declareVar: (name, t, value) => `var ${name}: ${wgslTypeName(t)} = ${value};`,
  forLoop: (v, extent, start = "0") => `for (var ${v}: i32 = ${start}; ${v} < ${extent}; ${v}++) {`,
  floorDiv: (x, divisor) => `kiln_idiv(${x}, ${divisor}i)`,
  floorMod: (x, divisor) => `kiln_imod(${x}, ${divisor}i)`,
  roundHalf: (x, t) => `${halfOf(t) === "bf16" ? "kiln_rb" : "kiln_rh"}(${x})`,
};

/**
 * The name of a shader's opaque zero (dispatch.ts's opaqueZero declares it in `main`): 0 at run
 * time, unknown to the driver's compiler. A loop bound `extent + kiln_zero` keeps a constant-trip
 * loop rolled: lavapipe (Mesa's NIR, then LLVM) unrolls loops of up to 32 iterations, and
 * its JIT time grows with every unrolled storage access (each is a per-lane gather or scatter
 * with a bounds check: ~10-20 ms of LLVM time apiece), so a 10-long reduction or a matmul's
 * 8x8 epilogue cost it seconds. Rolled, the same loop runs the same iterations in the same order.
 */
export const OPAQUE_ZERO = "kiln_zero";

/** A constant loop bound, kept rolled (`extent + kiln_zero`) where `rolled`. */
export const loopBound = (extent: number, rolled: boolean): string => (rolled ? `${extent} + ${OPAQUE_ZERO}` : `${extent}`);

/** The WGSL dialect whose constant-trip loops stay rolled (see OPAQUE_ZERO). */
export const wgslRolledDialect: CLikeDialect = {
  ...wgslDialect,
  forLoop: (v, extent, start) => wgslDialect.forLoop(v, typeof extent === "number" ? loopBound(extent, true) : extent, start),
};

/** The dialect for a render that keeps loops rolled or not. */
export const wgslDialectFor = (rolled: boolean): CLikeDialect => (rolled ? wgslRolledDialect : wgslDialect);

/** A 16-bit element's storage word (its bit pattern in the low half of a u32) → the f32 value. */
export const wgslLoadHalf = (word: string, t: DType): string => `${halfOf(t) === "bf16" ? "kiln_b2f" : "kiln_h2f"}(${word})`;
/** An f32 value → the u32 word holding its 16-bit pattern (rounded to nearest even). */
export const wgslStoreHalf = (value: string, t: DType): string => `${halfOf(t) === "bf16" ? "kiln_f2b" : "kiln_f2h"}(${value})`;

// ---- helper functions, included in a kernel only when its body calls them ----

const ROTATIONS = [13, 15, 26, 6, 17, 29, 16, 24];

/** threefry2x32-20, first output word, key (seed, stream), counter (index, 0): see compiler/util/threefry.ts. */
function rngHelper(): string {
  const lines = [
    "fn kiln_rng(seed: i32, stream: u32, counter: i32) -> f32 {",
    "  let ks = array<u32, 3>(bitcast<u32>(seed), stream, 0x1bd11bdau ^ bitcast<u32>(seed) ^ stream);",
    "  var x0: u32 = bitcast<u32>(counter) + ks[0];",
    "  var x1: u32 = ks[1];",
  ];
  for (let round = 0; round < 20; round++) {
    const r = ROTATIONS[round % 8]!;
    lines.push(`  x0 = x0 + x1; x1 = ((x1 << ${r}u) | (x1 >> ${32 - r}u)) ^ x0;`);
    if (round % 4 === 3) {
      const injection = (round + 1) / 4;
      lines.push(`  x0 = x0 + ks[${injection % 3}]; x1 = x1 + ks[${(injection + 1) % 3}] + ${injection}u;`);
    }
  }
  lines.push("  return f32(x0 >> 8u) * 5.9604644775390625e-8f;", "}");
  return lines.join("\n");
}

const HELPERS: readonly { readonly name: string; readonly uses: readonly string[]; readonly source: () => string }[] = [
  { name: "kiln_nan", uses: [], source: () => "fn kiln_nan() -> f32 { var bits = 0x7fc00000u; return bitcast<f32>(bits); }" },
  { name: "kiln_inf", uses: [], source: () => "fn kiln_inf() -> f32 { var bits = 0x7f800000u; return bitcast<f32>(bits); }" },
  { name: "kiln_isnan", uses: [], source: () => "fn kiln_isnan(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u; }" },
  {
    name: "kiln_maxf",
    uses: ["kiln_isnan", "kiln_nan"],
    // WGSL leaves max(NaN, x) unspecified; the IR propagates NaN (torch.maximum).
    source: () => `fn kiln_maxf(a: f32, b: f32) -> f32 { if (kiln_isnan(a) || kiln_isnan(b)) { return ${NAN}; } return max(a, b); }`,
  },
  { name: "kiln_log2", uses: ["kiln_nan"], source: () => `fn kiln_log2(x: f32) -> f32 { if (x < 0.0f) { return ${NAN}; } return log2(x); }` },
  { name: "kiln_sqrt", uses: ["kiln_nan"], source: () => `fn kiln_sqrt(x: f32) -> f32 { if (x < 0.0f) { return ${NAN}; } return sqrt(x); }` },
  {
    name: "kiln_f2i",
    uses: ["kiln_isnan"],
    // WGSL clamps to the largest f32 below 2^31 (2147483520); the IR saturates to 2^31 - 1.
    source: () =>
      "fn kiln_f2i(x: f32) -> i32 { if (kiln_isnan(x)) { return 0i; } if (x >= 2147483648.0f) { return 2147483647i; } if (x <= -2147483648.0f) { return i32(-2147483648); } return i32(x); }",
  },
  {
    name: "kiln_idiv",
    uses: [],
    // Floor division; a zero divisor gives 0 (as the JS backend), -1 avoids the i32::MIN / -1 case.
    source: () =>
      "fn kiln_idiv(a: i32, b: i32) -> i32 { if (b == 0i) { return 0i; } if (b == -1i) { return -a; } let q = a / b; if (a % b != 0i && ((a < 0i) != (b < 0i))) { return q - 1i; } return q; }",
  },
  {
    name: "kiln_imod",
    uses: [],
    source: () =>
      "fn kiln_imod(a: i32, b: i32) -> i32 { if (b == 0i || b == -1i) { return 0i; } let r = a % b; if (r != 0i && ((r < 0i) != (b < 0i))) { return r + b; } return r; }",
  },
  { name: "kiln_rng", uses: [], source: rngHelper },
  // 16-bit floats in integer ops (no shader-f16 needed; pack2x16float's rounding is not specified):
  // f32 → f16 bits rounds to nearest even, overflow → inf, subnormals through round() (ties to even).
  {
    name: "kiln_f2h",
    uses: [],
    // Branch-free (selects; a GPU runs both sides of a branch anyway).
    source: () =>
      [
        "fn kiln_f2h(x: f32) -> u32 {",
        "  let bits = bitcast<u32>(x);",
        "  let sign = (bits >> 16u) & 0x8000u;",
        "  let a = bits & 0x7fffffffu;",
        "  let m = a - 0x38000000u;",
        "  let normal = (m + 0xfffu + ((m >> 13u) & 1u)) >> 13u;",
        "  let small = u32(round(abs(x) * 16777216.0f));",
        "  let special = select(0x7c00u, 0x7e00u, a > 0x7f800000u);",
        "  return sign | select(select(normal, small, a < 0x38800000u), special, a >= 0x477ff000u);",
        "}",
      ].join("\n"),
  },
  {
    name: "kiln_h2f",
    uses: [],
    source: () =>
      [
        "fn kiln_h2f(h: u32) -> f32 {",
        "  let e = (h >> 10u) & 0x1fu;",
        "  let m = h & 0x3ffu;",
        "  let s = (h & 0x8000u) << 16u;",
        "  let small = bitcast<u32>(f32(m) * 5.9604644775390625e-8f);",
        "  let normal = ((e + 112u) << 23u) | (m << 13u);",
        "  let special = 0x7f800000u | (m << 13u);",
        "  return bitcast<f32>(s | select(select(normal, small, e == 0u), special, e == 31u));",
        "}",
      ].join("\n"),
  },
  {
    name: "kiln_f2b",
    uses: [],
    source: () =>
      "fn kiln_f2b(x: f32) -> u32 { let bits = bitcast<u32>(x); if ((bits & 0x7fffffffu) > 0x7f800000u) { return (bits >> 16u) | 0x40u; } return (bits + 0x7fffu + ((bits >> 16u) & 1u)) >> 16u; }",
  },
  { name: "kiln_b2f", uses: [], source: () => "fn kiln_b2f(h: u32) -> f32 { return bitcast<f32>(h << 16u); }" },
  {
    name: "kiln_rh",
    uses: [],
    // x rounded to f16 and back without the bit pattern, branch-free (selects): the same values
    // as kiln_h2f(kiln_f2h(x)). Normal range: round the f32 mantissa to 10 bits (ties to even; a
    // carry steps the exponent); below 2^-14 to a multiple of 2^-24 (round() ties to even);
    // from 65520 up ±inf; inf and NaN pass through.
    source: () =>
      [
        "fn kiln_rh(x: f32) -> f32 {",
        "  let bits = bitcast<u32>(x);",
        "  let a = bits & 0x7fffffffu;",
        "  let normal = bitcast<f32>((bits + 0xfffu + ((bits >> 13u) & 1u)) & 0xffffe000u);",
        "  let small = round(x * 16777216.0f) * 5.9604644775390625e-8f;",
        "  let inf = bitcast<f32>((bits & 0x80000000u) | 0x7f800000u);",
        "  return select(select(select(normal, small, a < 0x38800000u), inf, a >= 0x477ff000u), x, a >= 0x7f800000u);",
        "}",
      ].join("\n"),
  },
  { name: "kiln_rb", uses: ["kiln_f2b", "kiln_b2f"], source: () => "fn kiln_rb(x: f32) -> f32 { return kiln_b2f(kiln_f2b(x)); }" },
  // vec4<f32> forms of the NaN-aware helpers (codegen/wgsl/vector.ts).
  {
    name: "kiln_isnanv",
    uses: [],
    source: () => "fn kiln_isnanv(x: vec4<f32>) -> vec4<bool> { return (bitcast<vec4<u32>>(x) & vec4<u32>(0x7fffffffu)) > vec4<u32>(0x7f800000u); }",
  },
  {
    name: "kiln_maxv",
    uses: ["kiln_isnanv", "kiln_nan"],
    source: () => `fn kiln_maxv(a: vec4<f32>, b: vec4<f32>) -> vec4<f32> { return select(max(a, b), vec4<f32>(${NAN}), kiln_isnanv(a) | kiln_isnanv(b)); }`,
  },
  {
    name: "kiln_log2v",
    uses: ["kiln_nan"],
    source: () => `fn kiln_log2v(x: vec4<f32>) -> vec4<f32> { return select(log2(x), vec4<f32>(${NAN}), x < vec4<f32>(0.0f)); }`,
  },
  {
    name: "kiln_sqrtv",
    uses: ["kiln_nan"],
    source: () => `fn kiln_sqrtv(x: vec4<f32>) -> vec4<f32> { return select(sqrt(x), vec4<f32>(${NAN}), x < vec4<f32>(0.0f)); }`,
  },
];

/** Definitions of the helpers `body` calls (and the helpers those call), in dependency order. */
export function wgslHelpersFor(body: string): string[] {
  const wanted = new Set<string>();
  const want = (name: string): void => {
    if (wanted.has(name)) return;
    wanted.add(name);
    for (const u of HELPERS.find((h) => h.name === name)?.uses ?? []) want(u);
  };
  for (const h of HELPERS) if (body.includes(`${h.name}(`)) want(h.name);
  return HELPERS.filter((h) => wanted.has(h.name)).map((h) => h.source());
}
