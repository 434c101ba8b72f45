// Runtime helpers the generated JS kernels call through `rt`: the rng primitive
// (threefry2x32-20, a copy of compiler/util/threefry.ts — the runtime never imports the
// compiler; a test checks the two agree), f32 → i32 conversion, floor div/mod on i32, and the
// 16-bit float conversions.

import { bfloat16BitsToNumber, halfBitsToNumber, numberToBfloat16Bits, numberToHalfBits, roundToBfloat16, roundToHalf } from "../artifact/half.ts";

const KS_PARITY = 0x1bd11bda;
const ROTATIONS = [13, 15, 26, 6, 17, 29, 16, 24];
const TWO_POW_MINUS_24 = 1 / 16777216;

/** First output word of threefry2x32-20 for key (key0, key1) and counter (ctr0, 0). */
function threefryWord0(key0: number, key1: number, ctr0: number): number {
  const ks0 = key0 >>> 0;
  const ks1 = key1 >>> 0;
  const ks = [ks0, ks1, (KS_PARITY ^ ks0 ^ ks1) >>> 0];
  let x0 = (ctr0 + ks0) >>> 0;
  let x1 = ks1;
  for (let round = 0; round < 20; round++) {
    x0 = (x0 + x1) >>> 0;
    const r = ROTATIONS[round % 8]!;
    x1 = ((x1 << r) | (x1 >>> (32 - r))) >>> 0;
    x1 = (x1 ^ x0) >>> 0;
    if (round % 4 === 3) {
      const injection = (round + 1) / 4;
      x0 = (x0 + ks[injection % 3]!) >>> 0;
      x1 = (x1 + ks[(injection + 1) % 3]! + injection) >>> 0;
    }
  }
  return x0;
}

export interface KernelRuntime {
  rng(seed: number, stream: number, counter: number): number;
  /** 16-bit floats (runtime/artifact/half.ts): f16 / bf16 bits → value, value → bits, value rounded to the format. */
  h2n(bits: number): number;
  n2h(v: number): number;
  rh(v: number): number;
  b2n(bits: number): number;
  n2b(v: number): number;
  rb(v: number): number;
  f2i(v: number): number;
  idiv(a: number, b: number): number;
  imod(a: number, b: number): number;
}

export const jsKernelRuntime: KernelRuntime = {
  h2n: halfBitsToNumber,
  n2h: numberToHalfBits,
  rh: roundToHalf,
  b2n: bfloat16BitsToNumber,
  n2b: numberToBfloat16Bits,
  rb: roundToBfloat16,
  rng: (seed, stream, counter) => (threefryWord0(seed >>> 0, stream >>> 0, counter >>> 0) >>> 8) * TWO_POW_MINUS_24,
  // Truncates toward zero, saturating; NaN → 0 (the IR's cast semantics).
  f2i: (v) => (Number.isNaN(v) ? 0 : v >= 2147483647 ? 2147483647 : v <= -2147483648 ? -2147483648 : Math.trunc(v)),
  // Floor semantics (PyTorch's // and %); a zero divisor gives 0 rather than trapping.
  idiv: (a, b) => (b === 0 ? 0 : Math.floor(a / b) | 0),
  imod: (a, b) => {
    if (b === 0) return 0;
    const r = a % b;
    return r !== 0 && r < 0 !== b < 0 ? r + b : r;
  },
};
