// linear, conv2d and convTranspose2d with PyTorch layouts (NCHW; weights [out, in] and
// [out, in/groups, kH, kW]; transposed conv weight [in, out/groups, kH, kW]). A conv is
// im2col from movement ops (windows1d per spatial axis) and one `dot` batched over groups
// whose output is channel-major (convCore);
// a transposed conv is a regular conv over the stride-dilated input with a flipped kernel.

import { formatShape } from "../../compiler/util/shape.ts";
import { strictOptions, type KeyTable } from "../options.ts";
import { type Tensor, prim, requireTensor, userError } from "../tensor.ts";
import * as M from "../ops/movement.ts";
import { withOneLoc } from "../loc.ts";
import {
  asBatched4d,
  flipAxes,
  optionalTensorArg,
  padOrCrop,
  pair,
  padAxes,
  positiveInt,
  requireFloat,
  sliceAxis,
  windowCount,
  windows1d,
  type IntPair,
} from "./prims.ts";

/** y = x W^T + b, weight [out, in], x [..., in].
 * One stack capture for all the ops it makes (dsl/loc.ts, withOneLoc): no user code runs inside.
 */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null): Tensor {
  return withOneLoc(() => linearOps(x, weight, bias));
}

function linearOps(x: Tensor, weight: Tensor, bias?: Tensor | null): Tensor {
  requireTensor(x, "input", "linear");
  requireTensor(weight, "weight", "linear");
  optionalTensorArg(bias, "bias", "linear", "linear(x, weight, bias?)");
  if (weight.ndim !== 2) return userError("shape-mismatch", `shape mismatch in linear: weight must be [out, in], got ${formatShape(weight.shape)}`);
  if (x.ndim < 1 || x.shape[x.ndim - 1] !== weight.shape[1])
    return userError(
      "shape-mismatch",
      `shape mismatch in linear: input ${formatShape(x.shape)} has ${x.shape[x.ndim - 1] ?? 0} features but weight ${formatShape(weight.shape)} expects ${weight.shape[1]}`,
    );
  const y = x.matmul(M.transpose(weight, 0, 1));
  if (!bias) return y;
  if (bias.ndim !== 1 || bias.shape[0] !== weight.shape[0])
    return userError(
      "shape-mismatch",
      `shape mismatch in linear: bias ${formatShape(bias.shape)} must be [${weight.shape[0]}] for weight ${formatShape(weight.shape)}`,
    );
  return y.add(bias);
}

export interface Conv2dOptions {
  readonly stride?: IntPair;
  /** Zero padding on both sides of H and W, or "valid" (none) / "same" (output size = input size, stride 1). */
  readonly padding?: IntPair | "same" | "valid";
  readonly dilation?: IntPair;
  readonly groups?: number;
}

export interface ConvTranspose2dOptions {
  readonly stride?: IntPair;
  readonly padding?: IntPair;
  /** Extra size added to one side of each output dim (PyTorch output_padding). */
  readonly outputPadding?: IntPair;
  readonly dilation?: IntPair;
  readonly groups?: number;
}

export const conv2dKeys: KeyTable<Conv2dOptions> = { stride: true, padding: true, dilation: true, groups: true };
export const convTranspose2dKeys: KeyTable<ConvTranspose2dOptions> = { stride: true, padding: true, outputPadding: true, dilation: true, groups: true };

/** Geometry of a stride-`stride` conv over x padded by padLow/padHigh (negative = crop). */
interface ConvGeometry {
  readonly stride: readonly [number, number];
  readonly dilation: readonly [number, number];
  readonly groups: number;
  readonly padLow: readonly [number, number];
  readonly padHigh: readonly [number, number];
}

export function conv2d(input: Tensor, weight: Tensor, bias?: Tensor | null, opts: Conv2dOptions = {}): Tensor {
  const op = "conv2d";
  requireTensor(input, "input", op);
  requireTensor(weight, "weight", op);
  optionalTensorArg(bias, "bias", op, "conv2d(x, w, bias | null, { stride, padding, dilation, groups })");
  strictOptions(op, opts, conv2dKeys);
  const { x4, restore } = asBatched4d(input, op);
  requireFloat(input, "input", op);
  requireFloat(weight, "weight", op);
  const groups = positiveInt(opts.groups ?? 1, "groups", op);
  if (weight.ndim !== 4)
    return userError("shape-mismatch", `shape mismatch in ${op}: weight must be [out, in/groups, kH, kW], got ${formatShape(weight.shape)}`);
  const [outChannels, groupChannels, kh, kw] = weight.shape as [number, number, number, number];
  const channels = x4.shape[1]!;
  if (channels !== groupChannels * groups)
    return userError(
      "shape-mismatch",
      `shape mismatch in ${op}: input ${formatShape(input.shape)} has ${channels} channels but weight ${formatShape(weight.shape)} expects ${groupChannels * groups} (groups=${groups})`,
    );
  if (outChannels % groups !== 0)
    return userError(
      "shape-mismatch",
      `shape mismatch in ${op}: weight ${formatShape(weight.shape)} has ${outChannels} output channels, not divisible by groups=${groups}`,
    );
  const stride = pair(opts.stride ?? 1, "stride", op, 1);
  const dilation = pair(opts.dilation ?? 1, "dilation", op, 1);
  const [padLow, padHigh] = resolvePadding(opts.padding ?? 0, [kh, kw], stride, dilation, op);
  const y = convCore(x4, weight, { stride, dilation, groups, padLow, padHigh }, input, op);
  return restore(addChannelBias(y, bias, outChannels, op));
}

/**
 * The gradient-of-conv2d shaped op: out = (H-1)*stride - 2*padding + dilation*(k-1) + outputPadding + 1.
 * Zeros are interleaved into the input (stride - 1 between pixels), the border grows by
 * dilation*(k-1) - padding, and a stride-1 conv runs with the kernel flipped and in/out swapped.
 */
export function convTranspose2d(input: Tensor, weight: Tensor, bias?: Tensor | null, opts: ConvTranspose2dOptions = {}): Tensor {
  const op = "convTranspose2d";
  requireTensor(input, "input", op);
  requireTensor(weight, "weight", op);
  optionalTensorArg(bias, "bias", op, "convTranspose2d(x, w, bias | null, { stride, padding, outputPadding, dilation, groups })");
  strictOptions(op, opts, convTranspose2dKeys);
  const { x4, restore } = asBatched4d(input, op);
  requireFloat(input, "input", op);
  requireFloat(weight, "weight", op);
  const groups = positiveInt(opts.groups ?? 1, "groups", op);
  if (weight.ndim !== 4)
    return userError("shape-mismatch", `shape mismatch in ${op}: weight must be [in, out/groups, kH, kW], got ${formatShape(weight.shape)}`);
  const [inChannels, groupOut, kh, kw] = weight.shape as [number, number, number, number];
  const channels = x4.shape[1]!;
  if (channels !== inChannels)
    return userError(
      "shape-mismatch",
      `shape mismatch in ${op}: input ${formatShape(input.shape)} has ${channels} channels but weight ${formatShape(weight.shape)} expects ${inChannels} (groups=${groups})`,
    );
  if (inChannels % groups !== 0)
    return userError(
      "shape-mismatch",
      `shape mismatch in ${op}: weight ${formatShape(weight.shape)} has ${inChannels} input channels, not divisible by groups=${groups}`,
    );
  const stride = pair(opts.stride ?? 1, "stride", op, 1);
  const padding = pair(opts.padding ?? 0, "padding", op, 0);
  const outputPadding = pair(opts.outputPadding ?? 0, "outputPadding", op, 0);
  const dilation = pair(opts.dilation ?? 1, "dilation", op, 1);
  for (const i of [0, 1])
    if (outputPadding[i]! >= Math.max(stride[i]!, dilation[i]!))
      return userError("invalid-argument", `${op}: outputPadding ${outputPadding[i]} must be smaller than stride or dilation (${stride[i]}, ${dilation[i]})`);

  const dilated = interleaveZeros(x4, stride);
  const grow = [0, 1].map((i) => dilation[i]! * ([kh, kw][i]! - 1) - padding[i]!) as [number, number];
  const padHigh = [grow[0] + outputPadding[0], grow[1] + outputPadding[1]] as const;
  // [in, out/g, kH, kW] -> [out, in/g, kH, kW], spatially flipped.
  const perGroup = M.reshape(weight, [groups, inChannels / groups, groupOut, kh, kw]);
  const swapped = M.reshape(M.permute(perGroup, [0, 2, 1, 3, 4]), [groups * groupOut, inChannels / groups, kh, kw]);
  const kernel = flipAxes(swapped, [2, 3]);
  const y = convCore(dilated, kernel, { stride: [1, 1], dilation, groups, padLow: grow, padHigh }, input, op);
  return restore(addChannelBias(y, bias, groups * groupOut, op));
}

/** [N, C, H, W] -> [N, C, (H-1)*sH + 1, (W-1)*sW + 1] with x at every stride-th position. */
function interleaveZeros(x: Tensor, stride: readonly [number, number]): Tensor {
  const [sh, sw] = stride;
  if (sh === 1 && sw === 1) return x;
  const [n, c, h, w] = x.shape as [number, number, number, number];
  const spread = padAxes(M.reshape(x, [n, c, h, 1, w, 1]), [3, 5], [0, 0], [sh - 1, sw - 1]);
  const flat = M.reshape(spread, [n, c, h * sh, w * sw]);
  return sliceAxis(sliceAxis(flat, 2, 0, (h - 1) * sh + 1), 3, 0, (w - 1) * sw + 1);
}

function resolvePadding(
  padding: IntPair | "same" | "valid",
  kernel: readonly [number, number],
  stride: readonly [number, number],
  dilation: readonly [number, number],
  op: string,
): [[number, number], [number, number]] {
  if (padding === "valid")
    return [
      [0, 0],
      [0, 0],
    ];
  if (padding === "same") {
    if (stride[0] !== 1 || stride[1] !== 1) return userError("invalid-argument", `${op}: padding "same" needs stride 1, got stride [${stride.join(",")}]`);
    // PyTorch puts the odd extra element on the high side.
    const total = [0, 1].map((i) => dilation[i]! * (kernel[i]! - 1));
    const low = total.map((t) => Math.floor(t / 2)) as [number, number];
    return [low, [total[0]! - low[0], total[1]! - low[1]]];
  }
  const p = pair(padding, "padding", op, 0);
  return [p, p];
}

/**
 * x [N, C, H, W] (f32), w [O, C/g, kH, kW]: im2col as movement ops and one dot batched over
 * groups. The dot is w [g, O/g, kH·kW·C/g] · patches [g, kH·kW·C/g, N·OH·OW], so its output
 * is channel-major ([O, N, OH·OW], an outer permute from NCHW): a pool or the next conv reads
 * it contiguously along OW, with no transpose, and so do the gradients — the filter gradient
 * is the same plain dot, the input gradient's overlap-add reads along OW. k runs over
 * (kH, kW, C/g), channels innermost, and windows are cut along W first, so the overlap-add's
 * first (bigger) stage sums along H and streams along W. A graph with a symbolic batch keeps
 * the batch leading, as compiler/ir/symbolic.ts requires: there the dot is
 * patches [g, N·OH·OW, C/g·kH·kW] · w [g, C/g·kH·kW, O/g] (channel-last output, permuted to NCHW).
 */
function convCore(x: Tensor, w: Tensor, geo: ConvGeometry, userInput: Tensor, op: string): Tensor {
  const [n, c] = x.shape as [number, number];
  const [outChannels, groupChannels, kh, kw] = w.shape as [number, number, number, number];
  const g = geo.groups;
  const padded = padOrCrop(x, [2, 3], geo.padLow, geo.padHigh);
  const [hp, wp] = [padded.shape[2]!, padded.shape[3]!];
  const oh = windowCount(hp, kh, geo.stride[0], geo.dilation[0]);
  const ow = windowCount(wp, kw, geo.stride[1], geo.dilation[1]);
  if (hp < 1 || wp < 1 || oh < 1 || ow < 1)
    return userError(
      "shape-mismatch",
      `shape mismatch in ${op}: input ${formatShape(userInput.shape)} (padded to ${hp}x${wp}) is smaller than the kernel ${kh}x${kw} with dilation [${geo.dilation.join(",")}]`,
    );
  if (x.trace.symbol) {
    const rows = windows1d(padded, 2, kh, geo.stride[0], geo.dilation[0]); // [N, C, kH, OH, Wp]
    const win = windows1d(rows, 4, kw, geo.stride[1], geo.dilation[1]); // [N, C, kH, OH, kW, OW]
    const grouped = M.reshape(win, [n, g, c / g, kh, oh, kw, ow]);
    const patches = M.reshape(M.permute(grouped, [1, 0, 4, 6, 2, 3, 5]), [g, n * oh * ow, groupChannels * kh * kw]);
    const kernel = M.permute(M.reshape(w, [g, outChannels / g, groupChannels * kh * kw]), [0, 2, 1]);
    const out = prim(x.trace, { op: "dot", lhs: patches.id, rhs: kernel.id }); // [g, N*OH*OW, O/g]
    const nchw = M.permute(M.reshape(out, [g, n, oh, ow, outChannels / g]), [1, 0, 4, 2, 3]);
    return M.reshape(nchw, [n, outChannels, oh, ow]);
  }
  const cols = windows1d(padded, 3, kw, geo.stride[1], geo.dilation[1]); // [N, C, Hp, kW, OW]
  const win = windows1d(cols, 2, kh, geo.stride[0], geo.dilation[0]); // [N, C, kH, OH, kW, OW]
  const grouped = M.reshape(win, [n, g, c / g, kh, oh, kw, ow]);
  const patches = M.reshape(M.permute(grouped, [1, 3, 5, 2, 0, 4, 6]), [g, kh * kw * groupChannels, n * oh * ow]);
  const kernel = M.reshape(M.permute(M.reshape(w, [g, outChannels / g, groupChannels, kh, kw]), [0, 1, 3, 4, 2]), [
    g,
    outChannels / g,
    kh * kw * groupChannels,
  ]);
  const out = prim(x.trace, { op: "dot", lhs: kernel.id, rhs: patches.id }); // [g, O/g, N*OH*OW]
  const nchw = M.permute(M.reshape(out, [g, outChannels / g, n, oh * ow]), [2, 0, 1, 3]);
  return M.reshape(nchw, [n, outChannels, oh, ow]);
}

function addChannelBias(y: Tensor, bias: Tensor | null | undefined, channels: number, op: string): Tensor {
  if (!bias) return y;
  if (bias.ndim !== 1 || bias.shape[0] !== channels)
    return userError("shape-mismatch", `shape mismatch in ${op}: bias ${formatShape(bias.shape)} must be [${channels}] (one per output channel)`);
  return y.add(M.reshape(bias, [1, channels, 1, 1]));
}
