// WebAssembly facts per dtype: the memory instructions a buffer element takes and the SIMD
// lane instructions of its value type. Keyed by DType (or by the dtype table's wasm value
// type), so a new dtype does not compile until it has its instructions.

import { dtypeInfo, type DType, type DTypeInfo } from "../../compiler/ir/dtype.ts";
import { Op, Simd } from "./encoder.ts";

/** Load/store opcodes and their alignment (log2 bytes): bool is one byte in memory, 0/1 as an i32 value. */
export const WASM_MEMORY: { readonly [D in DType]: { readonly load: number; readonly store: number; readonly align: number } } = {
  f32: { load: Op.f32Load, store: Op.f32Store, align: 2 },
  // 16-bit floats: the bit pattern loads zero-extended into an i32 and converts to f32 (and back).
  f16: { load: Op.i32Load16u, store: Op.i32Store16, align: 1 },
  bf16: { load: Op.i32Load16u, store: Op.i32Store16, align: 1 },
  i32: { load: Op.i32Load, store: Op.i32Store, align: 2 },
  bool: { load: Op.i32Load8u, store: Op.i32Store8, align: 0 },
};

type WasmValue = DTypeInfo["wasm"]["value"];

/** f32x4 or i32x4 lane instructions, by the value type a dtype takes. */
const LANE_OPS: { readonly [V in WasmValue]: { readonly splat: number; readonly extract: number; readonly replace: number; readonly neg: number } } = {
  f32: { splat: Simd.f32x4Splat, extract: Simd.f32x4ExtractLane, replace: Simd.f32x4ReplaceLane, neg: Simd.f32x4Neg },
  i32: { splat: Simd.i32x4Splat, extract: Simd.i32x4ExtractLane, replace: Simd.i32x4ReplaceLane, neg: Simd.i32x4Neg },
};

export const laneOps = (d: DType): (typeof LANE_OPS)[WasmValue] => LANE_OPS[dtypeInfo(d).wasm.value];

/** Whether a dtype's values live in f32 locals (else i32: ints and bool 0/1). */
export const isF32Value = (d: DType): boolean => dtypeInfo(d).wasm.value === "f32";

/** Element-wise SIMD binaries per dtype; bool add/mul/max are or/and/or on 0/1 lanes. */
export const SIMD_BINARY: {
  readonly [D in DType]: { readonly add: number; readonly mul: number; readonly max: number; readonly cmplt: number; readonly cmpeq: number };
} = {
  f32: { add: Simd.f32x4Add, mul: Simd.f32x4Mul, max: Simd.f32x4Max, cmplt: Simd.f32x4Lt, cmpeq: Simd.f32x4Eq },
  f16: { add: Simd.f32x4Add, mul: Simd.f32x4Mul, max: Simd.f32x4Max, cmplt: Simd.f32x4Lt, cmpeq: Simd.f32x4Eq },
  bf16: { add: Simd.f32x4Add, mul: Simd.f32x4Mul, max: Simd.f32x4Max, cmplt: Simd.f32x4Lt, cmpeq: Simd.f32x4Eq },
  i32: { add: Simd.i32x4Add, mul: Simd.i32x4Mul, max: Simd.i32x4MaxS, cmplt: Simd.i32x4LtS, cmpeq: Simd.i32x4Eq },
  bool: { add: Simd.v128Or, mul: Simd.v128And, max: Simd.v128Or, cmplt: Simd.i32x4LtS, cmpeq: Simd.i32x4Eq },
};
