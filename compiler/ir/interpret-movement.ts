// Movement primitives for the reference interpreter as strided index math: every op is an
// affine map from an output multi-index to an input offset (permute, expand, slice, flip) or
// from an input multi-index to an output offset (pad), walked by one odometer loop.

import { contiguousStrides, numel, type Shape } from "../util/shape.ts";
import type { HostData } from "./host-tensor.ts";

/**
 * For every multi-index p in `shape` (row-major order): dst[dstOffset + p·dstStrides] =
 * src[srcOffset + p·srcStrides]. Offsets advance incrementally, so this costs O(1) per element.
 */
export function stridedCopy(
  shape: Shape,
  src: HostData,
  srcOffset: number,
  srcStrides: readonly number[],
  dst: HostData,
  dstOffset: number,
  dstStrides: readonly number[],
): void {
  const total = numel(shape);
  if (total === 0) return;
  const rank = shape.length;
  const index = new Array<number>(rank).fill(0);
  let s = srcOffset;
  let d = dstOffset;
  for (let n = 0; n < total; n++) {
    dst[d] = src[s]!;
    // Odometer step: bump the last axis, carrying into earlier axes.
    for (let axis = rank - 1; axis >= 0; axis--) {
      const i = ++index[axis]!;
      s += srcStrides[axis]!;
      d += dstStrides[axis]!;
      if (i < shape[axis]!) break;
      index[axis] = 0;
      s -= srcStrides[axis]! * shape[axis]!;
      d -= dstStrides[axis]! * shape[axis]!;
    }
  }
}

/** out[p] = x[p permuted]: output axis k walks input axis perm[k]. */
export function permute(x: HostData, xShape: Shape, perm: readonly number[], out: HostData): void {
  const xStrides = contiguousStrides(xShape);
  const outShape = perm.map((p) => xShape[p]!);
  stridedCopy(
    outShape,
    x,
    0,
    perm.map((p) => xStrides[p]!),
    out,
    0,
    contiguousStrides(outShape),
  );
}

/** Size-1 axes of x repeat along the output: they get input stride 0. */
export function expand(x: HostData, xShape: Shape, outShape: Shape, out: HostData): void {
  const xStrides = contiguousStrides(xShape).map((s, i) => (xShape[i] === 1 && outShape[i] !== 1 ? 0 : s));
  stridedCopy(outShape, x, 0, xStrides, out, 0, contiguousStrides(outShape));
}

/** out[p] = x[start + p * step] per axis. */
export function slice(x: HostData, xShape: Shape, start: readonly number[], step: readonly number[], outShape: Shape, out: HostData): void {
  const xStrides = contiguousStrides(xShape);
  const offset = start.reduce((acc, a, i) => acc + a * xStrides[i]!, 0);
  stridedCopy(
    outShape,
    x,
    offset,
    xStrides.map((s, i) => s * step[i]!),
    out,
    0,
    contiguousStrides(outShape),
  );
}

/** out[p] = x[p with p[a] := size[a] - 1 - p[a] for each flipped axis a]. */
export function flip(x: HostData, shape: Shape, axes: readonly number[], out: HostData): void {
  const strides = contiguousStrides(shape);
  let offset = 0;
  const srcStrides = strides.map((s, i) => {
    if (!axes.includes(i)) return s;
    offset += (shape[i]! - 1) * s;
    return -s;
  });
  stridedCopy(shape, x, offset, srcStrides, out, 0, strides);
}

/** Fills `out` with `value`, then scatters x into the interior starting at `low`. */
export function pad(x: HostData, xShape: Shape, low: readonly number[], value: number, outShape: Shape, out: HostData): void {
  out.fill(value);
  const outStrides = contiguousStrides(outShape);
  const offset = low.reduce((acc, l, i) => acc + l * outStrides[i]!, 0);
  stridedCopy(xShape, x, 0, contiguousStrides(xShape), out, offset, outStrides);
}
