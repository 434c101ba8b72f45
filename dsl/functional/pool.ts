// maxPool2d and avgPool2d over NCHW (or unbatched CHW) input, PyTorch semantics with
// ceilMode=false: windows come from movement ops (windows1d per spatial axis), then one
// reduce_max or reduce_sum over the two kernel axes.

import { dtypeInfo, isBool } from "../../compiler/ir/dtype.ts";
import { formatShape } from "../../compiler/util/shape.ts";
import { strictOptions, type KeyTable } from "../options.ts";
import { type Tensor, prim, userError } from "../tensor.ts";
import * as M from "../ops/movement.ts";
import { asBatched4d, fill, pair, padAxes, windowCount, windows1d, type IntPair } from "./prims.ts";

export interface MaxPool2dOptions {
  /** Defaults to the kernel size. */
  readonly stride?: IntPair | null;
  /** Implicit -inf padding on both sides, at most half the (dilated) kernel. */
  readonly padding?: IntPair;
  readonly dilation?: IntPair;
  readonly ceilMode?: boolean;
}

export interface AvgPool2dOptions {
  readonly stride?: IntPair | null;
  /** Implicit zero padding on both sides, at most half the kernel. */
  readonly padding?: IntPair;
  readonly ceilMode?: boolean;
  /** Count padded zeros in the divisor (PyTorch default true). */
  readonly countIncludePad?: boolean;
  /** Divide every window by this instead. */
  readonly divisorOverride?: number | null;
}

export const maxPool2dKeys: KeyTable<MaxPool2dOptions> = { stride: true, padding: true, dilation: true, ceilMode: true };
export const avgPool2dKeys: KeyTable<AvgPool2dOptions> = { stride: true, padding: true, ceilMode: true, countIncludePad: true, divisorOverride: true };

interface PoolGeometry {
  readonly kernel: [number, number];
  readonly stride: [number, number];
  readonly padding: [number, number];
  readonly dilation: [number, number];
}

function poolGeometry(
  input: Tensor,
  kernelSize: IntPair,
  opts: { stride?: IntPair | null; padding?: IntPair; dilation?: IntPair; ceilMode?: boolean },
  op: string,
): PoolGeometry {
  if (opts.ceilMode) return userError("unsupported", `${op}: ceilMode=true is not supported`);
  const kernel = pair(kernelSize, "kernelSize", op, 1);
  const stride = pair(opts.stride ?? kernel, "stride", op, 1);
  const padding = pair(opts.padding ?? 0, "padding", op, 0);
  const dilation = pair(opts.dilation ?? 1, "dilation", op, 1);
  for (const i of [0, 1]) {
    const span = dilation[i]! * (kernel[i]! - 1) + 1;
    if (padding[i]! * 2 > span) return userError("invalid-argument", `${op}: padding ${padding[i]} should be at most half of the kernel size ${span}`);
    const size = input.shape[input.ndim - 2 + i]!;
    if (windowCount(size + 2 * padding[i]!, kernel[i]!, stride[i]!, dilation[i]!) < 1)
      return userError(
        "shape-mismatch",
        `shape mismatch in ${op}: input ${formatShape(input.shape)} is smaller than the kernel ${kernel.join("x")} (padding ${padding.join(",")}, dilation ${dilation.join(",")})`,
      );
  }
  return { kernel, stride, padding, dilation };
}

/** [N, C, H, W] padded by `fillValue` -> [N, C, kH, OH, kW, OW]. */
function poolWindows(x: Tensor, geo: PoolGeometry, fillValue: number): Tensor {
  const padded = padAxes(x, [2, 3], geo.padding, geo.padding, fillValue);
  const rows = windows1d(padded, 2, geo.kernel[0], geo.stride[0], geo.dilation[0]);
  return windows1d(rows, 4, geo.kernel[1], geo.stride[1], geo.dilation[1]);
}

function dropKernelAxes(windowsReduced: Tensor): Tensor {
  const [n, c, , oh, , ow] = windowsReduced.shape as [number, number, number, number, number, number];
  return M.reshape(windowsReduced, [n, c, oh, ow]);
}

export function maxPool2d(input: Tensor, kernelSize: IntPair, opts: MaxPool2dOptions = {}): Tensor {
  const op = "maxPool2d";
  strictOptions(op, opts, maxPool2dKeys);
  const { x4, restore } = asBatched4d(input, op);
  if (isBool(input.dtype)) return userError("dtype-mismatch", `dtype mismatch in ${op}: input must be numeric, got bool`);
  const geo = poolGeometry(input, kernelSize, opts, op);
  const lowest = dtypeInfo(input.dtype).lowest;
  const win = poolWindows(x4, geo, lowest);
  return restore(dropKernelAxes(prim(x4.trace, { op: "reduce_max", x: win.id, axes: [2, 4] })));
}

export function avgPool2d(input: Tensor, kernelSize: IntPair, opts: AvgPool2dOptions = {}): Tensor {
  const op = "avgPool2d";
  strictOptions(op, opts, avgPool2dKeys);
  const { x4, restore } = asBatched4d(input.float(), op);
  const geo = poolGeometry(input, kernelSize, opts, op);
  const sums = dropKernelAxes(prim(x4.trace, { op: "reduce_sum", x: poolWindows(x4, geo, 0).id, axes: [2, 4] }));
  if (opts.divisorOverride != null) {
    if (!(opts.divisorOverride > 0)) return userError("invalid-argument", `${op}: divisorOverride must be positive, got ${opts.divisorOverride}`);
    return restore(sums.div(opts.divisorOverride));
  }
  if ((opts.countIncludePad ?? true) || (geo.padding[0] === 0 && geo.padding[1] === 0)) return restore(sums.div(geo.kernel[0] * geo.kernel[1]));
  // Divisor = real (unpadded) elements per window: pool a ones image padded with zeros.
  const [h, w] = [x4.shape[2]!, x4.shape[3]!];
  const ones = fill(x4, 1, "f32", [1, 1, h, w]);
  const counts = dropKernelAxes(prim(x4.trace, { op: "reduce_sum", x: poolWindows(ones, geo, 0).id, axes: [2, 4] }));
  return restore(sums.div(counts));
}
