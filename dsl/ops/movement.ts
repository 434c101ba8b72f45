// Movement ops: PyTorch's view/shape functions (reshape, slicing, pad, cat, gather…)
// lowered to reshape, permute, expand, pad, slice, flip and gather. None of them computes
// anything; fusion folds them into index math. cat alone needs an iota + where to choose.

import { isBool, isFloat, promoteDTypes } from "../../compiler/ir/dtype.ts";
import { formatShape, normalizeAxis, numel, shapesEqual } from "../../compiler/util/shape.ts";
import { type Tensor, dimIndex, dimList, prim, userError, type Dims } from "../tensor.ts";
import { recordIndexUse } from "../index-checks.ts";
import { broadcastTo, constant, expand, reshape } from "./broadcast.ts";
import * as E from "./elementwise.ts";

export { broadcastTo, expand, reshape };

export function permute(x: Tensor, dims: readonly number[]): Tensor {
  if (dims.length !== x.ndim) return userError("invalid-argument", `permute: expected ${x.ndim} dims, got [${dims.join(",")}]`);
  const perm = dims.map((d) => dimIndex(x, d, "permute"));
  if (new Set(perm).size !== perm.length) return userError("invalid-argument", `permute: [${dims.join(",")}] repeats a dim`);
  if (perm.every((p, i) => p === i)) return x;
  return prim(x.trace, { op: "permute", x: x.id, perm });
}

export function transpose(x: Tensor, dim0: number, dim1: number): Tensor {
  const a = dimIndex(x, dim0, "transpose");
  const b = dimIndex(x, dim1, "transpose");
  const perm = [...Array(x.ndim).keys()];
  perm[a] = b;
  perm[b] = a;
  return permute(x, perm);
}

export function t(x: Tensor): Tensor {
  if (x.ndim > 2) return userError("invalid-argument", `t: expects a tensor with <= 2 dims, got ${formatShape(x.shape)}`);
  return x.ndim < 2 ? x : transpose(x, 0, 1);
}

/** PyTorch expand: new leading dims allowed, -1 keeps a dim, size-1 dims broadcast. */

export function unsqueeze(x: Tensor, dim: number): Tensor {
  const d = normalizeAxis(dim, x.ndim + 1);
  if (d === undefined)
    return userError("invalid-argument", `unsqueeze: dim ${dim} out of range for a ${x.ndim}-d tensor (expected -${x.ndim + 1} to ${x.ndim})`);
  const shape = [...x.shape];
  shape.splice(d, 0, 1);
  return reshape(x, shape);
}

export function squeeze(x: Tensor, dim?: Dims): Tensor {
  const axes = dim === undefined ? [...Array(x.ndim).keys()] : dimList(x, dim, "squeeze");
  return reshape(
    x,
    x.shape.filter((d, i) => !(d === 1 && axes.includes(i))),
  );
}

export function flatten(x: Tensor, startDim = 0, endDim = -1): Tensor {
  if (x.ndim === 0) return reshape(x, [1]);
  const s = dimIndex(x, startDim, "flatten");
  const e = dimIndex(x, endDim, "flatten");
  if (s > e) return userError("invalid-argument", `flatten: startDim ${startDim} comes after endDim ${endDim}`);
  const mid = numel(x.shape.slice(s, e + 1));
  return reshape(x, [...x.shape.slice(0, s), mid, ...x.shape.slice(e + 1)]);
}

/**
 * One entry per leading dim: a number indexes (the dim is dropped; negative counts from the
 * end); [start, stop, step] slices like a Python slice (null/undefined = open end, negative
 * wraps, out of range clamps; step >= 1); null keeps the whole dim.
 */
export type SliceSpec = number | null | "..." | readonly [(number | null)?, (number | null)?, (number | null)?];

export function slice(x: Tensor, rawSpec: readonly SliceSpec[]): Tensor {
  const spec = expandEllipsis(x, rawSpec);
  if (spec.length > x.ndim) return userError("invalid-argument", `slice: ${spec.length} indices given for a ${x.ndim}-d tensor ${formatShape(x.shape)}`);
  const start = x.shape.map(() => 0);
  const stop = [...x.shape];
  const step = x.shape.map(() => 1);
  const dropped: number[] = [];
  spec.forEach((entry, axis) => {
    const size = x.shape[axis]!;
    if (entry === null) return;
    if (typeof entry === "number") {
      const at = normalizeAxis(entry, size);
      if (at === undefined) return userError("invalid-argument", `slice: index ${entry} out of range for dim ${axis} of size ${size}`);
      start[axis] = at;
      stop[axis] = at + 1;
      dropped.push(axis);
      return;
    }
    const [from, to, by] = entry;
    const stride = by ?? 1;
    if (!Number.isInteger(stride) || stride < 1) return userError("invalid-argument", `slice: step must be a positive integer, got ${stride} for dim ${axis}`);
    const clampIndex = (i: number | null | undefined, open: number): number => {
      if (i === null || i === undefined) return open;
      if (!Number.isInteger(i)) return userError("invalid-argument", `slice: bound ${i} for dim ${axis} is not an integer`);
      return Math.min(Math.max(i < 0 ? i + size : i, 0), size);
    };
    const lo = clampIndex(from, 0);
    start[axis] = lo;
    stop[axis] = Math.max(lo, clampIndex(to, size));
    step[axis] = stride;
  });
  const unchanged = x.shape.every((d, i) => start[i] === 0 && stop[i] === d && step[i] === 1);
  const window = unchanged ? x : prim(x.trace, { op: "slice", x: x.id, start, stop, step });
  return dropped.length === 0
    ? window
    : reshape(
        window,
        window.shape.filter((_, i) => !dropped.includes(i)),
      );
}

/** "..." stands for as many whole dims as the other entries leave (at most one "..."). */
function expandEllipsis(x: Tensor, spec: readonly SliceSpec[]): readonly Exclude<SliceSpec, "...">[] {
  const at = spec.indexOf("...");
  if (at < 0) return spec as readonly Exclude<SliceSpec, "...">[];
  if (spec.lastIndexOf("...") !== at) return userError("invalid-argument", `slice: at most one "..." is allowed`);
  const rest = spec.filter((e): e is Exclude<SliceSpec, "..."> => e !== "...");
  const fill = Math.max(0, x.ndim - rest.length);
  return [...rest.slice(0, at), ...Array<null>(fill).fill(null), ...rest.slice(at)];
}

/** Elements [start, start+length) along one dim (torch.narrow; a negative start wraps). */
export function narrow(x: Tensor, dim: number, start: number, length: number): Tensor {
  const axis = dimIndex(x, dim, "narrow");
  const size = x.shape[axis]!;
  const from = Number.isInteger(start) && start < 0 ? start + size : start;
  if (!Number.isInteger(from) || !Number.isInteger(length) || from < 0 || length < 0 || from + length > size)
    return userError("invalid-argument", `narrow: start ${start} and length ${length} do not fit dim ${dim} of size ${size} in ${formatShape(x.shape)}`);
  return sliceAxis(x, axis, from, from + length);
}

/** x[..., from:to, ...] on one (normalized) axis. */
function sliceAxis(x: Tensor, axis: number, from: number, to: number): Tensor {
  if (from === 0 && to === x.shape[axis]) return x;
  const start = x.shape.map((_, i) => (i === axis ? from : 0));
  const stop = x.shape.map((d, i) => (i === axis ? to : d));
  return prim(x.trace, { op: "slice", x: x.id, start, stop, step: x.shape.map(() => 1) });
}

export function flip(x: Tensor, dims: Dims): Tensor {
  const axes = dimList(x, dims, "flip");
  if (axes.length === 0) return x;
  return prim(x.trace, { op: "flip", x: x.id, axes });
}

/**
 * torch.nn.functional.pad, constant mode: `pad` holds (left, right) pairs starting from the
 * LAST dim; negative amounts crop. Cropping is a slice, growing is the pad primitive.
 */
export function pad(x: Tensor, amounts: readonly number[], value = 0): Tensor {
  if (amounts.length % 2 !== 0 || amounts.length > 2 * x.ndim)
    return userError(
      "invalid-argument",
      `pad: expects an even number of amounts, at most 2 per dim (${2 * x.ndim} for ${formatShape(x.shape)}), got [${amounts.join(",")}]`,
    );
  if (!amounts.every(Number.isInteger)) return userError("invalid-argument", `pad: amounts must be integers, got [${amounts.join(",")}]`);
  if (!isFloat(x.dtype) && !Number.isInteger(value)) return userError("dtype-mismatch", `pad: value ${value} is not a valid ${x.dtype}`);
  if (isBool(x.dtype) && value !== 0 && value !== 1) return userError("dtype-mismatch", `pad: value ${value} is not a valid bool`);
  const low = x.shape.map(() => 0);
  const high = x.shape.map(() => 0);
  for (let pair = 0; pair < amounts.length / 2; pair++) {
    const axis = x.ndim - 1 - pair;
    low[axis] = amounts[2 * pair]!;
    high[axis] = amounts[2 * pair + 1]!;
  }
  const cropStart = low.map((p) => Math.max(0, -p));
  const cropStop = x.shape.map((d, i) => d - Math.max(0, -high[i]!));
  if (x.shape.some((_, i) => cropStop[i]! < cropStart[i]!))
    return userError("shape-mismatch", `shape mismatch in pad: [${amounts.join(",")}] crops ${formatShape(x.shape)} below size 0`);
  let y = x;
  if (cropStart.some((s) => s > 0) || cropStop.some((s, i) => s !== x.shape[i]))
    y = prim(x.trace, { op: "slice", x: x.id, start: cropStart, stop: cropStop, step: x.shape.map(() => 1) });
  const grow = (p: number): number => Math.max(0, p);
  if (low.some((p) => p > 0) || high.some((p) => p > 0)) y = prim(x.trace, { op: "pad", x: y.id, low: low.map(grow), high: high.map(grow), value });
  return y;
}

/** torch.split: pieces of `size` (the last may be shorter), or of the listed sizes. */
export function split(x: Tensor, size: number | readonly number[], dim = 0): Tensor[] {
  const axis = dimIndex(x, dim, "split");
  const total = x.shape[axis]!;
  let sizes: number[];
  if (typeof size === "number") {
    if (!Number.isInteger(size) || size < 1) return userError("invalid-argument", `split: split size must be a positive integer, got ${size}`);
    sizes = [];
    for (let at = 0; at < total; at += size) sizes.push(Math.min(size, total - at));
    if (sizes.length === 0) sizes.push(0);
  } else {
    sizes = [...size];
    if (!sizes.every((s) => Number.isInteger(s) && s >= 0) || sizes.reduce((a, b) => a + b, 0) !== total)
      return userError(
        "shape-mismatch",
        `shape mismatch in split: sizes [${sizes.join(",")}] must sum to dim ${dim} of size ${total} in ${formatShape(x.shape)}`,
      );
  }
  let at = 0;
  return sizes.map((s) => {
    const piece = sliceAxis(x, axis, at, at + s);
    at += s;
    return piece;
  });
}

/** torch.chunk: ceil(size / chunks) per piece, so fewer than `chunks` pieces may come back. */
export function chunk(x: Tensor, chunks: number, dim = 0): Tensor[] {
  if (!Number.isInteger(chunks) || chunks < 1) return userError("invalid-argument", `chunk: chunks must be a positive integer, got ${chunks}`);
  const axis = dimIndex(x, dim, "chunk");
  return split(x, Math.max(1, Math.ceil(x.shape[axis]! / chunks)), axis);
}

/** torch.Tensor.repeat: tiles x; extra leading sizes add dims. reshape → expand → reshape. */
export function repeat(x: Tensor, sizes: readonly number[]): Tensor {
  if (sizes.length < x.ndim)
    return userError("invalid-argument", `repeat: needs at least ${x.ndim} sizes for ${formatShape(x.shape)}, got [${sizes.join(",")}]`);
  if (!sizes.every((s) => Number.isInteger(s) && s >= 0))
    return userError("invalid-argument", `repeat: sizes must be non-negative integers, got [${sizes.join(",")}]`);
  const base = [...Array(sizes.length - x.ndim).fill(1), ...x.shape] as number[];
  const interleaved = base.flatMap((d) => [1, d]);
  const tiled = base.flatMap((d, i) => [sizes[i]!, d]);
  return reshape(
    expand(reshape(x, interleaved), tiled),
    base.map((d, i) => d * sizes[i]!),
  );
}

/**
 * torch.cat: every tensor padded out to the result's extent along `dim`, then chosen by
 * position (iota against each piece's offset). `where` rather than a sum keeps values
 * bit-exact (-0, NaN) and works for every dtype.
 */
export function cat(tensors: readonly Tensor[], dim = 0): Tensor {
  if (tensors.length === 0) return userError("invalid-argument", "cat: expects a non-empty list of tensors");
  const first = tensors[0]!;
  const axis = dimIndex(first, dim, "cat");
  for (const t of tensors) {
    if (t.trace !== first.trace) return userError("invalid-argument", "cat: tensors come from different traced functions");
    if (t.ndim !== first.ndim || t.shape.some((d, i) => i !== axis && d !== first.shape[i]))
      return userError("shape-mismatch", `shape mismatch in cat: ${tensors.map((u) => formatShape(u.shape)).join(", ")} differ outside dim ${dim}`);
  }
  const dtype = tensors.map((t) => t.dtype).reduce(promoteDTypes);
  const pieces = tensors.map((t) => E.cast(t, dtype));
  if (pieces.length === 1) return pieces[0]!;
  const total = pieces.reduce((n, t) => n + t.shape[axis]!, 0);
  const outShape = first.shape.map((d, i) => (i === axis ? total : d));
  const position = prim(first.trace, { op: "iota", axis: 0 }, { dtype: "i32", shape: [total] });
  const alongAxis = reshape(
    position,
    outShape.map((d, i) => (i === axis ? d : 1)),
  );
  let out: Tensor | undefined;
  let offset = 0;
  for (const piece of pieces) {
    const size = piece.shape[axis]!;
    const low = outShape.map((_, i) => (i === axis ? offset : 0));
    const high = outShape.map((_, i) => (i === axis ? total - offset - size : 0));
    const placed = size === total ? piece : prim(piece.trace, { op: "pad", x: piece.id, low, high, value: 0 });
    out = out === undefined ? placed : size === 0 ? out : E.where(E.lt(alongAxis, offset), out, placed);
    offset += size;
  }
  return out!;
}

/** torch.stack: a new dim at `dim`, then cat. */
export function stack(tensors: readonly Tensor[], dim = 0): Tensor {
  if (tensors.length === 0) return userError("invalid-argument", "stack: expects a non-empty list of tensors");
  const first = tensors[0]!;
  for (const t of tensors)
    if (!shapesEqual(t.shape, first.shape))
      return userError("shape-mismatch", `shape mismatch in stack: all tensors need one shape, got ${tensors.map((u) => formatShape(u.shape)).join(", ")}`);
  const axis = normalizeAxis(dim, first.ndim + 1);
  if (axis === undefined) return userError("invalid-argument", `stack: dim ${dim} out of range for stacking ${first.ndim}-d tensors`);
  return cat(
    tensors.map((t) => unsqueeze(t, axis)),
    axis,
  );
}

/**
 * torch.gather: out[p] = x[p with p[dim] := index[p]]. The index may be smaller than x
 * along the other dims, so x is cut down to it first; the `gather` primitive wants equal shapes.
 */
export function gather(x: Tensor, dim: number, index: Tensor): Tensor {
  const axis = dimIndex(x, dim, "gather");
  if (index.dtype !== "i32") return userError("dtype-mismatch", `gather: index must be i32, got ${index.dtype}`);
  if (index.ndim !== x.ndim || index.shape.some((d, i) => i !== axis && d > x.shape[i]!))
    return userError(
      "shape-mismatch",
      `shape mismatch in gather: index ${formatShape(index.shape)} must have the rank of input ${formatShape(x.shape)} and no larger size outside dim ${dim}`,
    );
  recordIndexUse(index, { op: "gather", what: `position along dim ${dim}`, high: x.shape[axis]! });
  const stop = x.shape.map((d, i) => (i === axis ? d : index.shape[i]!));
  const cut = stop.every((d, i) => d === x.shape[i])
    ? x
    : prim(x.trace, { op: "slice", x: x.id, start: x.shape.map(() => 0), stop, step: x.shape.map(() => 1) });
  return prim(x.trace, { op: "gather", x: cut.id, index: index.id, axis });
}

/** torch.index_select: whole slices of x at the positions in a 1-D i32 index. */
export function indexSelect(x: Tensor, dim: number, index: Tensor): Tensor {
  const axis = dimIndex(x, dim, "indexSelect");
  if (index.dtype !== "i32") return userError("dtype-mismatch", `indexSelect: index must be i32, got ${index.dtype}`);
  if (index.ndim > 1) return userError("shape-mismatch", `shape mismatch in indexSelect: index must be 1-d, got ${formatShape(index.shape)}`);
  recordIndexUse(index, { op: "indexSelect", what: `position along dim ${dim}`, high: x.shape[axis]! });
  const count = index.ndim === 0 ? 1 : index.shape[0]!;
  const outShape = x.shape.map((d, i) => (i === axis ? count : d));
  const spread = expand(
    reshape(
      index,
      x.shape.map((_, i) => (i === axis ? count : 1)),
    ),
    outShape,
  );
  return prim(x.trace, { op: "gather", x: x.id, index: spread.id, axis });
}

/**
 * torch.tril / torch.triu over the last two dims: keep x[..., i, j] where j - i <= diagonal
 * (tril) or j - i >= diagonal (triu), zero elsewhere. An iota mask, as cat uses.
 */
export function tril(x: Tensor, diagonal = 0): Tensor {
  return triangle(x, diagonal, "tril");
}
export function triu(x: Tensor, diagonal = 0): Tensor {
  return triangle(x, diagonal, "triu");
}
function triangle(x: Tensor, diagonal: number, op: "tril" | "triu"): Tensor {
  if (x.ndim < 2) return userError("invalid-argument", `${op}: expects a tensor with at least 2 dims, got ${formatShape(x.shape)}`);
  if (!Number.isInteger(diagonal)) return userError("invalid-argument", `${op}: diagonal must be an integer, got ${diagonal}`);
  const rows = x.shape[x.ndim - 2]!;
  const cols = x.shape[x.ndim - 1]!;
  const row = prim(x.trace, { op: "iota", axis: 0 }, { dtype: "i32", shape: [rows, cols] });
  const col = prim(x.trace, { op: "iota", axis: 1 }, { dtype: "i32", shape: [rows, cols] });
  const offset = E.sub(col, row);
  const keep = op === "tril" ? E.le(offset, diagonal) : E.ge(offset, diagonal);
  return E.where(keep, x, constant(x.trace, 0, x.dtype));
}
