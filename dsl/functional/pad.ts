// torch.nn.functional.pad: constant, reflect, replicate and circular modes. `pad` holds
// (before, after) pairs starting from the LAST dim, as PyTorch's list does. Constant mode is
// the pad primitive (negative amounts crop); the others build each padded axis from slices,
// flips and an expand of the edge, joined with cat, so autodiff only sees movement ops.

import { formatShape } from "../../compiler/util/shape.ts";
import { strictOptions } from "../options.ts";
import { type Tensor, userError } from "../tensor.ts";
import * as M from "../ops/movement.ts";
import { flipAxes, sliceAxis } from "./prims.ts";

export type PadMode = "constant" | "reflect" | "replicate" | "circular";

export interface PadOptions {
  /** "constant" (default), "reflect" (mirror without the edge), "replicate" (repeat the edge), "circular" (wrap). */
  readonly mode?: PadMode;
  /** Fill of constant mode (default 0). */
  readonly value?: number;
}

/**
 * F.pad(x, [left, right, top, bottom, …], mode?, value?) or F.pad(x, pad, { mode, value }).
 * Reflect needs each amount below the dim's size, circular at most the size; replicate any
 * amount. Non-constant modes take non-negative amounts.
 */
export function pad(x: Tensor, amounts: readonly number[], modeOrOptions?: PadMode | PadOptions, value?: number): Tensor {
  const opts: PadOptions =
    typeof modeOrOptions === "string" || modeOrOptions === undefined
      ? { mode: modeOrOptions ?? "constant" }
      : strictOptions<PadOptions>("F.pad", modeOrOptions, { mode: true, value: true });
  const mode = opts.mode ?? "constant";
  const fill = value ?? opts.value;
  if (typeof modeOrOptions === "object" && value !== undefined)
    return userError("invalid-argument", "F.pad: give value in the options or as the fourth argument, not both");
  switch (mode) {
    case "constant":
      return M.pad(x, amounts, fill ?? 0);
    case "reflect":
    case "replicate":
    case "circular":
      break;
    default:
      return userError("invalid-argument", `F.pad: unknown mode '${String(mode)}' (accepted: constant, reflect, replicate, circular)`);
  }
  if (fill !== undefined && fill !== 0)
    return userError("invalid-argument", `F.pad: value is only used by constant mode, got value ${fill} with mode '${mode}'`);
  if (amounts.length % 2 !== 0 || amounts.length > 2 * x.ndim)
    return userError(
      "invalid-argument",
      `F.pad: expects an even number of amounts, at most 2 per dim (${2 * x.ndim} for ${formatShape(x.shape)}), got [${amounts.join(",")}]`,
    );
  if (!amounts.every((a) => Number.isInteger(a) && a >= 0))
    return userError("invalid-argument", `F.pad: ${mode} mode needs non-negative integer amounts, got [${amounts.join(",")}]`);
  let y = x;
  for (let pair = 0; pair < amounts.length / 2; pair++) {
    const axis = x.ndim - 1 - pair;
    y = padAxisBy(y, axis, amounts[2 * pair]!, amounts[2 * pair + 1]!, mode);
  }
  return y;
}

function padAxisBy(x: Tensor, axis: number, before: number, after: number, mode: "reflect" | "replicate" | "circular"): Tensor {
  if (before === 0 && after === 0) return x;
  const size = x.shape[axis]!;
  const limit = mode === "reflect" ? size - 1 : mode === "circular" ? size : Infinity;
  if (size === 0 || before > limit || after > limit) {
    const rule = mode === "reflect" ? "below the dim's size" : mode === "circular" ? "at most the dim's size" : "on a non-empty dim";
    return userError("invalid-argument", `F.pad: ${mode} padding of (${before}, ${after}) on dim ${axis} of ${formatShape(x.shape)} must be ${rule}`);
  }
  const pieces: Tensor[] = [];
  const edge = (at: number, count: number): Tensor =>
    M.expand(
      sliceAxis(x, axis, at, at + 1),
      x.shape.map((d, i) => (i === axis ? count : d)),
    );
  if (before > 0) {
    if (mode === "reflect")
      pieces.push(flipAxes(sliceAxis(x, axis, 1, before + 1), [axis])); // x[before], …, x[1]
    else if (mode === "replicate") pieces.push(edge(0, before));
    else pieces.push(sliceAxis(x, axis, size - before, size));
  }
  pieces.push(x);
  if (after > 0) {
    if (mode === "reflect")
      pieces.push(flipAxes(sliceAxis(x, axis, size - 1 - after, size - 1), [axis])); // x[n-2], …, x[n-1-after]
    else if (mode === "replicate") pieces.push(edge(size - 1, after));
    else pieces.push(sliceAxis(x, axis, 0, after));
  }
  return M.cat(pieces, axis);
}
