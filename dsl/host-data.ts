// Host data at the edge of an executable: what a person may pass to `exe.run` (typed
// arrays, plain arrays, or { shape, dtype, data }) and its checked conversion to the
// HostTensor a target consumes. Every error names the input and says what was expected.

import type { TensorType } from "../compiler/ir/types.ts";
import { halfOf, type DType } from "../compiler/ir/dtype.ts";
import { decodeHalf } from "../runtime/artifact/half.ts";
import { KilnError, assertNever, bug } from "../compiler/util/errors.ts";
import { formatShape, numel, shapesEqual } from "../compiler/util/shape.ts";
import { toHostData, type HostData, type HostTensor } from "../compiler/ir/host-tensor.ts";

export type HostArray = HostData;

/** Data for one input: flat row-major values (shape and dtype from the spec), or a full tensor. */
export type HostInput =
  | HostArray
  | readonly number[]
  | readonly boolean[]
  | { readonly shape: readonly number[]; readonly dtype?: DType; readonly data: HostArray | readonly number[] | readonly boolean[] };

/** One output as `exe.run` returns it. */
export interface HostOutput {
  readonly shape: readonly number[];
  readonly dtype: DType;
  readonly data: HostArray;
}

const invalid = (message: string): never => {
  throw new KilnError({ code: "invalid-argument", message });
};

const arrayKind = (data: unknown): string =>
  Array.isArray(data) ? "number[]" : ArrayBuffer.isView(data) ? data.constructor.name : data === null ? "null" : typeof data;

const isHostArray = (x: unknown): x is HostArray =>
  x instanceof Float32Array || x instanceof Float64Array || x instanceof Uint16Array || x instanceof Int32Array || x instanceof Uint8Array;

const ACCEPTED: Record<DType, string> = {
  f32: "Float32Array, Float64Array or number[]",
  f16: "Float32Array, Float64Array or number[] (rounded to f16), or a Uint16Array of f16 bit patterns",
  bf16: "Float32Array, Float64Array or number[] (rounded to bf16), or a Uint16Array of bf16 bit patterns",
  i32: "Int32Array or number[] of integers",
  bool: "Uint8Array of 0/1, boolean[] or number[] of 0/1",
};

/** `f32[2, 3]`: formatted only for an error (exe.run's per-call path). */
const formatType = (t: TensorType): string => `${t.dtype}${formatShape(t.shape)}`;

/** Converts the data for input `name` to a HostTensor of exactly `expected`'s type. */
export function toHostTensor(name: string, value: unknown, expected: TensorType): HostTensor {
  if (value === undefined || value === null) return invalid(`input '${name}': missing data (expected ${formatType(expected)})`);
  let data: unknown = value;
  if (!isHostArray(value) && !Array.isArray(value)) {
    if (typeof value !== "object" || !("data" in value) || !("shape" in value))
      return invalid(`input '${name}': expected ${ACCEPTED[expected.dtype]} or { shape, dtype, data }, got ${arrayKind(value)}`);
    const full = value as { shape: unknown; dtype?: unknown; data: unknown };
    const shapeOk = Array.isArray(full.shape) && full.shape.every((d) => Number.isInteger(d) && d >= 0);
    if (!shapeOk) return invalid(`input '${name}': shape must be an array of non-negative integers, got ${JSON.stringify(full.shape)}`);
    if (!shapesEqual(full.shape as number[], expected.shape))
      return invalid(`input '${name}': shape mismatch: expected ${formatShape(expected.shape)}, got ${formatShape(full.shape as number[])}`);
    if (full.dtype !== undefined && full.dtype !== expected.dtype)
      return invalid(`input '${name}': dtype mismatch: expected ${expected.dtype}, got ${String(full.dtype)}`);
    data = full.data;
  }
  const length = isHostArray(data) || Array.isArray(data) ? data.length : -1;
  if (length < 0) return invalid(`input '${name}': expected ${ACCEPTED[expected.dtype]}, got ${arrayKind(data)}`);
  const count = numel(expected.shape);
  if (length !== count) return invalid(`input '${name}': expected ${count} values for ${formatType(expected)} (flat, row-major), got ${length}`);
  return { dtype: expected.dtype, shape: expected.shape, data: convertData(name, data as HostArray | unknown[], expected.dtype) };
}

function convertData(name: string, data: HostArray | unknown[], dtype: DType): HostArray {
  const wrongKind = (): never => invalid(`input '${name}': ${dtype} data must be ${ACCEPTED[dtype]}, got ${arrayKind(data)}`);
  switch (dtype) {
    case "f32":
      if (data instanceof Float32Array || data instanceof Float64Array) return data;
      if (!Array.isArray(data)) return wrongKind();
      return Float32Array.from(data, (v, i) => (typeof v === "number" ? v : invalid(`input '${name}': element ${i} is ${typeof v}, not a number`)));
    case "f16":
    case "bf16":
      // Values round to the format (bit patterns decode): a Float64Array of the format's values.
      if (data instanceof Uint16Array || data instanceof Float32Array || data instanceof Float64Array) return toHostData(dtype, data);
      if (!Array.isArray(data)) return wrongKind();
      return toHostData(
        dtype,
        data.map((v, i) => (typeof v === "number" ? v : invalid(`input '${name}': element ${i} is ${typeof v}, not a number`))),
      );
    case "i32":
      if (data instanceof Int32Array) return data;
      if (!Array.isArray(data)) return wrongKind();
      return Int32Array.from(data, (v, i) =>
        typeof v === "number" && Number.isInteger(v) && v >= -2147483648 && v <= 2147483647
          ? v
          : invalid(`input '${name}': element ${i} (${String(v)}) is not an int32`),
      );
    case "bool": {
      if (data instanceof Uint8Array) {
        const bad = data.findIndex((v) => v > 1);
        return bad < 0 ? data : invalid(`input '${name}': element ${bad} (${data[bad]}) is not a bool (0 or 1)`);
      }
      if (!Array.isArray(data)) return wrongKind();
      return Uint8Array.from(data, (v, i) =>
        v === true || v === 1 ? 1 : v === false || v === 0 ? 0 : invalid(`input '${name}': element ${i} (${String(v)}) is not a bool (0 or 1)`),
      );
    }
    default:
      return assertNever(dtype, "dtype");
  }
}

/** Wraps a target's result for the caller; the data array is handed over, not copied. */
export function toHostOutput(name: string, t: HostTensor | undefined, expected: TensorType): HostOutput {
  if (!t) return bug(`target returned no value for output '${name}'`);
  if (t.dtype !== expected.dtype || !shapesEqual(t.shape, expected.shape) || t.data.length !== numel(expected.shape))
    bug(`target returned ${t.dtype}${formatShape(t.shape)} for output '${name}', graph says ${expected.dtype}${formatShape(expected.shape)}`);
  // A 16-bit float output comes back as its values in a Float32Array (every f16/bf16 value is an f32).
  const half = halfOf(t.dtype);
  const data =
    half === undefined || t.data instanceof Float32Array
      ? t.data
      : t.data instanceof Uint16Array
        ? decodeHalf(half, t.data, new Float32Array(t.data.length))
        : Float32Array.from(t.data); // the interpreter's float64 values, each exact in f32
  return { shape: [...t.shape], dtype: t.dtype, data };
}
