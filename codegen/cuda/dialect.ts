// CUDA C spellings of the kernel IR's types, literals and ops: a C-like dialect table the
// renderer (render-cuda.ts) asks for every token it prints, also given in the shape of the
// shared renderer base (`cudaCLike`), which writes the thread-per-point sections.
// Semantics match compiler/ir/interpret*.ts: wrapping i32, floor div/mod, NaN-propagating max.

import type { BinaryOp, UnaryOp } from "../../compiler/ir/types.ts";
import { dtypeInfo, isFloat, type DType } from "../../compiler/ir/dtype.ts";
import { assertNever } from "../../compiler/util/errors.ts";
import { roundToBfloat16, roundToHalf } from "../../runtime/artifact/half.ts";
import type { CLikeDialect as CLikeBase } from "../render/base.ts";

export interface CLikeDialect {
  /** Type of a value in registers. */
  readonly typeName: (t: DType) => string;
  /** Element type of a buffer in memory (bool is one byte, as in the artifact format). */
  readonly storageTypeName: (t: DType) => string;
  readonly literal: (value: number, t: DType) => string;
  readonly unary: Readonly<Record<UnaryOp, (x: string) => string>>;
  /** `t` is the operands' dtype (comparisons return bool). */
  readonly binary: Readonly<Record<BinaryOp, (a: string, b: string, t: DType) => string>>;
  readonly cast: (x: string, from: DType, to: DType) => string;
  readonly select: (cond: string, a: string, b: string) => string;
  /** A loaded element converted to its register type. */
  readonly loadValue: (element: string, t: DType) => string;
  /** A register value converted to its storage type. */
  readonly storeValue: (value: string, t: DType) => string;
  readonly reduceIdentity: (op: "reduce_sum" | "reduce_max", t: DType) => string;
  readonly reduceStep: (op: "reduce_sum" | "reduce_max", acc: string, x: string, t: DType) => string;
  /** Combines a warp's partial results (all lanes receive the total). */
  readonly warpReduce: (op: "reduce_sum" | "reduce_max", x: string, t: DType) => string;
  readonly rng: (seed: string, stream: number, counter: string) => string;
}

const I32_MIN = "(-2147483647 - 1)";

function f32Literal(v: number): string {
  if (Number.isNaN(v)) return "NAN";
  if (v === Infinity) return "INFINITY";
  if (v === -Infinity) return "(-INFINITY)";
  if (Object.is(v, -0)) return "-0.0f";
  // 9 significant digits name an f32 exactly; the literal is the f32 nearest to the graph's value.
  const f = Math.fround(v);
  const text = Number.isInteger(f) && Math.abs(f) < 1e15 ? `${f}.0` : f.toPrecision(9);
  return f < 0 ? `(${text}f)` : `${text}f`;
}

function i32Literal(v: number): string {
  const i = v | 0;
  if (i === -2147483648) return I32_MIN;
  return i < 0 ? `(${i})` : String(i);
}

/** i32 add/mul wrap like the interpreter: computed in unsigned arithmetic (signed overflow is undefined in C). */
const wrapping = (op: "+" | "*", a: string, b: string): string => `(int)((unsigned)${a} ${op} (unsigned)${b})`;

/** The spellings that differ per dtype; a dtype missing here does not compile. */
interface CudaDTypeSpelling {
  readonly literal: (v: number) => string;
  readonly add: (a: string, b: string) => string;
  readonly mul: (a: string, b: string) => string;
  readonly max: (a: string, b: string) => string;
  readonly sumIdentity: string;
  readonly maxIdentity: string;
  /** Suffix of the kiln_warp_* helpers. */
  readonly warpSuffix: string;
  /** Register → storage and back (bool is one byte in memory). */
  readonly load: (element: string) => string;
  readonly store: (value: string) => string;
}

/** A float dtype computed in float registers; `round`, `load` and `store` say how it is held. */
const floatSpelling = (round: (v: number) => number, load: (e: string) => string, store: (v: string) => string): CudaDTypeSpelling => ({
  literal: (v) => f32Literal(round(v)),
  add: (a, b) => `(${a} + ${b})`,
  mul: (a, b) => `(${a} * ${b})`,
  max: (a, b) => `kiln_fmax(${a}, ${b})`,
  sumIdentity: "0.0f",
  maxIdentity: "(-INFINITY)",
  warpSuffix: "f",
  load,
  store,
});

const CUDA_DTYPES: { readonly [D in DType]: CudaDTypeSpelling } = {
  f32: floatSpelling(
    (v) => v,
    (e) => e,
    (v) => v,
  ),
  // 16-bit floats compute in float registers; memory holds __half / __nv_bfloat16, converted
  // on load and store with CUDA's intrinsics (round to nearest even; the prelude has stand-ins).
  f16: floatSpelling(
    roundToHalf,
    (e) => `__half2float(${e})`,
    (v) => `__float2half_rn(${v})`,
  ),
  bf16: floatSpelling(
    roundToBfloat16,
    (e) => `__bfloat162float(${e})`,
    (v) => `__float2bfloat16_rn(${v})`,
  ),
  i32: {
    literal: i32Literal,
    add: (a, b) => wrapping("+", a, b),
    mul: (a, b) => wrapping("*", a, b),
    max: (a, b) => `max(${a}, ${b})`,
    sumIdentity: "0",
    maxIdentity: I32_MIN,
    warpSuffix: "i",
    load: (e) => e,
    store: (v) => v,
  },
  bool: {
    literal: (v) => (v !== 0 ? "true" : "false"),
    add: (a, b) => `(${a} || ${b})`,
    mul: (a, b) => `(${a} && ${b})`,
    max: (a, b) => `(${a} || ${b})`,
    sumIdentity: "false",
    maxIdentity: "false",
    warpSuffix: "b",
    load: (e) => `(${e} != 0)`,
    store: (v) => `(unsigned char)${v}`,
  },
};

export const cudaDialect: CLikeDialect = {
  typeName: (t) => dtypeInfo(t).cuda.value,
  storageTypeName: (t) => dtypeInfo(t).cuda.storage,
  literal: (v, t) => CUDA_DTYPES[t].literal(v),
  unary: {
    neg: (x) => `-${x}`,
    exp2: (x) => `exp2f(${x})`,
    log2: (x) => `log2f(${x})`,
    sin: (x) => `sinf(${x})`,
    sqrt: (x) => `sqrtf(${x})`,
    recip: (x) => `(1.0f / ${x})`,
  },
  binary: {
    add: (a, b, t) => CUDA_DTYPES[t].add(a, b),
    mul: (a, b, t) => CUDA_DTYPES[t].mul(a, b),
    max: (a, b, t) => CUDA_DTYPES[t].max(a, b),
    cmplt: (a, b) => `(${a} < ${b})`,
    cmpeq: (a, b) => `(${a} == ${b})`,
    idiv: (a, b) => `kiln_idiv(${a}, ${b})`,
    mod: (a, b) => `kiln_imod(${a}, ${b})`,
  },
  cast: (x, from, to) => {
    if (from === to) return x;
    switch (to) {
      case "bool":
        return `(${x} != 0)`;
      case "i32":
        // f32 → i32 truncates and saturates like the interpreter (a plain C cast is undefined out of range)
        return isFloat(from) ? `kiln_f2i(${x})` : `(int)${x}`;
      case "f32":
      case "f16":
      case "bf16":
        return `(float)${x}`;
      default:
        return assertNever(to, "dtype");
    }
  },
  select: (c, a, b) => `(${c} ? ${a} : ${b})`,
  loadValue: (element, t) => CUDA_DTYPES[t].load(element),
  storeValue: (value, t) => CUDA_DTYPES[t].store(value),
  reduceIdentity: (op, t) => (op === "reduce_sum" ? CUDA_DTYPES[t].sumIdentity : CUDA_DTYPES[t].maxIdentity),
  reduceStep: (op, acc, x, t) => {
    if (op === "reduce_max") return `${acc} = ${cudaDialect.binary.max(acc, x, t)};`;
    if (isFloat(t)) return `${acc} += ${x};`;
    return `${acc} = ${cudaDialect.binary.add(acc, x, t)};`;
  },
  warpReduce: (op, x, t) => {
    const kind = CUDA_DTYPES[t].warpSuffix;
    switch (op) {
      case "reduce_sum":
        return `kiln_warp_sum_${kind}(${x})`;
      case "reduce_max":
        return `kiln_warp_max_${kind}(${x})`;
      default:
        return assertNever(op, "reduce op");
    }
  },
  rng: (seed, stream, counter) => `kiln_rng(${seed}, ${stream}u, (unsigned)(${counter}))`,
};

/** The same spellings in the shape of the shared C-like renderer base (codegen/render/base.ts). */
export const cudaCLike: CLikeBase = {
  typeName: cudaDialect.typeName,
  constant: cudaDialect.literal,
  unary: (op, x) => cudaDialect.unary[op](x),
  binary: (op, x, y, operand) => cudaDialect.binary[op](x, y, operand),
  cast: cudaDialect.cast,
  select: cudaDialect.select,
  rng: cudaDialect.rng,
  reduceInit: cudaDialect.reduceIdentity,
  declareLet: (name, t, value) => `const ${cudaDialect.typeName(t)} ${name} = ${value};`,
  declareVar: (name, t, value) => `${cudaDialect.typeName(t)} ${name} = ${value};`,
  forLoop: (v, extent, start = "0") => `for (int ${v} = ${start}; ${v} < ${extent}; ${v}++) {`,
  floorDiv: (x, divisor) => `kiln_idiv(${x}, ${divisor})`,
  floorMod: (x, divisor) => `kiln_imod(${x}, ${divisor})`,
  roundHalf: (x, t) => CUDA_DTYPES[t].load(CUDA_DTYPES[t].store(x)),
};
