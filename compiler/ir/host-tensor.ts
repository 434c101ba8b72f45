// Tensors held in host memory: the data callers bind to graph inputs and get back from the
// reference interpreter and the runtimes. Canonical storage per dtype: f32 → Float64Array
// (or Float32Array where a runtime produced it), f16/bf16 → Float64Array of values of the
// format, i32 → Int32Array, bool → Uint8Array of 0/1.

import type { DType } from "./dtype.ts";
import { KilnError, assertNever } from "../util/errors.ts";
import { formatShape, numel } from "../util/shape.ts";
import { decodeHalf, roundHalfInPlace } from "../../runtime/artifact/half.ts";

export type HostData = Float64Array | Float32Array | Uint16Array | Int32Array | Uint8Array;

// f16 and bf16 hold their values (not bit patterns) in a Float64Array, every one of them a
// value of the format; a Uint16Array given for one is read as bit patterns (what runtimes hold).

export interface HostTensor {
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly data: HostData;
}

/** A fresh, zero-filled array of the canonical storage type for `dtype`. */
export function allocHostData(dtype: DType, length: number): Float64Array | Int32Array | Uint8Array {
  switch (dtype) {
    case "f32":
    case "f16":
    case "bf16":
      return new Float64Array(length);
    case "i32":
      return new Int32Array(length);
    case "bool":
      return new Uint8Array(length);
    default:
      return assertNever(dtype, "dtype");
  }
}

/**
 * Converts `data` into storage fit for `dtype`. f32 keeps Float64Array/Float32Array as given
 * and widens anything else to Float64Array; i32 and bool keep Int32Array/Uint8Array and check
 * the values of anything else (integers in i32 range; 0 or 1). `what` names the data in errors.
 */
export function toHostData(dtype: DType, data: ArrayLike<number>, what = "data"): HostData {
  switch (dtype) {
    case "f32":
      return data instanceof Float64Array || data instanceof Float32Array ? data : Float64Array.from(data);
    case "f16":
    case "bf16": {
      if (data instanceof Uint16Array) return decodeHalf(dtype, data);
      const out = Float64Array.from(data);
      roundHalfInPlace(dtype, out);
      return out;
    }
    case "i32": {
      if (data instanceof Int32Array) return data;
      const out = new Int32Array(data.length);
      for (let i = 0; i < data.length; i++) {
        const v = data[i]!;
        if (!Number.isInteger(v) || v < -2147483648 || v > 2147483647)
          throw new KilnError({ code: "dtype-mismatch", message: `${what}: element ${i} is ${v}, not an i32` });
        out[i] = v;
      }
      return out;
    }
    case "bool": {
      const isBoolArray = data instanceof Uint8Array;
      const out = isBoolArray ? data : new Uint8Array(data.length);
      for (let i = 0; i < data.length; i++) {
        const v = data[i]!;
        if (v !== 0 && v !== 1) throw new KilnError({ code: "dtype-mismatch", message: `${what}: element ${i} is ${v}, not a bool (0 or 1)` });
        if (!isBoolArray) out[i] = v;
      }
      return out;
    }
    default:
      return assertNever(dtype, "dtype");
  }
}

/** Builds a HostTensor, converting `data` (see toHostData) and checking its length against `shape`. */
export function hostTensor(dtype: DType, shape: readonly number[], data: ArrayLike<number> | HostData): HostTensor {
  const expected = numel(shape);
  if (data.length !== expected)
    throw new KilnError({ code: "shape-mismatch", message: `host tensor ${dtype}${formatShape(shape)} needs ${expected} elements, got ${data.length}` });
  return { dtype, shape: [...shape], data: toHostData(dtype, data) };
}

/** A short, readable rendering for error messages: `f32[2,3] [1, 2, 3, 4, 5, 6]`, elided past `maxElements`. */
export function formatHostTensor(t: HostTensor, maxElements = 8): string {
  const shown = Array.from(t.data.subarray(0, maxElements), (v) => String(v));
  const more = t.data.length > maxElements ? `, … (${t.data.length} elements)` : "";
  return `${t.dtype}${formatShape(t.shape)} [${shown.join(", ")}${more}]`;
}
