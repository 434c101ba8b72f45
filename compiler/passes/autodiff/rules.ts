// Vector-Jacobian products of the graph primitives, one rule per op: given the cotangent `g`
// of a node's output, the cotangent of each operand (in operands() order, built lazily) or
// null where the operand gets none. Rules only build primitives (emit.ts), so grad of grad
// reuses them. The engine runs a rule only for f32 outputs and builds cotangents only for
// operands on a path from a wrt value (never for int/bool values).
//
// Ties: max and reduce_max split the cotangent evenly among the positions equal to the
// maximum (JAX's choice; tinygrad does the same for reduce_max), so relu'(0) = 1/2.

import type { Node, Op, ValueId } from "../../ir/types.ts";
import { isFloat } from "../../ir/dtype.ts";
import { numel, type Shape } from "../../util/shape.ts";
import type { Val } from "./emit.ts";

/** The node interface whose `op` can be K (UnaryNode for "log2", BinaryNode for "max", …). */
type NodeOf<K extends Op> = Node extends infer N ? (N extends Node ? (K extends N["op"] ? N : never) : never) : never;

export interface VjpContext<K extends Op> {
  /** The forward node (operand ids refer to the forward graph; read them through `at`). */
  readonly n: NodeOf<K>;
  /** The forward node's own value, for rules that reuse it (exp2, sqrt, recip, reduce_max). */
  readonly out: Val;
  /** The forward value of an operand of `n`. */
  readonly at: (id: ValueId) => Val;
  /** The forward node defining a value, when it is in the region being differentiated. */
  readonly def: (id: ValueId) => Node | undefined;
}

/**
 * An operand's cotangent, built on demand: the engine calls it only for operands on a path
 * from a wrt value (so a weight-only gradient never builds the input's dot), null for none.
 */
export type Cotangent = (() => Val) | null;

export type VjpRule<K extends Op> = (g: Val, ctx: VjpContext<K>) => readonly Cotangent[];

const LN2 = Math.LN2;
const none = (): readonly null[] => [null, null];

export const vjpRules: { readonly [K in Op]: VjpRule<K> } = {
  input: () => [],
  const: () => [],
  iota: () => [],
  rng: () => [null],
  neg: (g) => [() => g.neg()],
  exp2: (g, { out }) => [() => g.mul(out).mul(LN2)],
  log2: (g, { n, at }) => [() => g.mul(at(n.x).recip()).mul(1 / LN2)],
  sin: (g, { n, at }) => [
    () =>
      g.mul(
        at(n.x)
          .add(Math.PI / 2)
          .sin(),
      ),
  ], // cos x = sin(x + π/2)
  sqrt: (g, { out }) => [() => g.mul(out.recip()).mul(0.5)],
  recip: (g, { out }) => [() => g.mul(out).mul(out).neg()],
  // Only a float source gets a cotangent; an int/bool source was not differentiable.
  cast: (g, { n, at }) => [isFloat(at(n.x).dtype) ? () => g.cast(at(n.x).dtype) : null],
  add: (g) => [() => g, () => g],
  mul: (g, { n, at }) => [() => g.mul(at(n.y)), () => g.mul(at(n.x))],
  max: (g, { n, at }) => maxRule(g, at(n.x), at(n.y)),
  cmplt: none,
  cmpeq: none,
  idiv: none,
  mod: none,
  where: (g, { n, at }) => [null, () => at(n.cond).where(g, g.zerosLike()), () => at(n.cond).where(g.zerosLike(), g)],
  reduce_sum: (g, { n, at }) => [() => g.expand(at(n.x).shape)],
  reduce_max: (g, { n, at, out }) => [() => reduceMaxRule(g, at(n.x), out, n.axes)],
  reshape: (g, { n, at }) => [() => g.reshape(at(n.x).shape)],
  permute: (g, { n }) => [() => g.permute(inversePermutation(n.perm))],
  expand: (g, { n, at }) => [() => g.reduceSum(expandedAxes(at(n.x).shape, n.type.shape))],
  pad: (g, { n, at }) => [
    () =>
      g.slice(
        n.low,
        n.low.map((l, i) => l + at(n.x).shape[i]!),
      ),
  ],
  slice: (g, { n, at }) => [() => unslice(g, n.start, n.step, at(n.x).shape)],
  flip: (g, { n }) => [() => g.flip(n.axes)],
  dot: (g, { n, at }) => [() => g.dot(at(n.rhs).transposeLast()), () => at(n.lhs).transposeLast().dot(g)],
  gather: (g, { n, at, def }) => [() => gatherRule(g, n.index, n.axis, at(n.x).shape, at, def), null],
};

/** max(x, y): the side that is larger takes g; on a tie each side takes g/2. */
function maxRule(g: Val, x: Val, y: Val): [Cotangent, Cotangent] {
  let tieShare: Val | undefined;
  const share = (): Val => (tieShare ??= x.cmpeq(y).where(g.mul(0.5), g.zerosLike()));
  return [() => y.cmplt(x).where(g, share()), () => x.cmplt(y).where(g, share())];
}

/** reduce_max: g is divided evenly among the positions equal to the maximum. */
function reduceMaxRule(g: Val, x: Val, out: Val, axes: readonly number[]): Val {
  const isMax = x.cmpeq(out.expand(x.shape));
  const tieCount = isMax.cast(g.dtype).reduceSum(axes);
  const share = g.mul(tieCount.recip()).expand(x.shape);
  return isMax.where(share, x.zerosLike());
}

export function inversePermutation(perm: readonly number[]): number[] {
  const inverse = new Array<number>(perm.length);
  perm.forEach((p, i) => (inverse[p] = i));
  return inverse;
}

/** Axes that `expand` broadcast from size 1: the cotangent is summed back over them. */
function expandedAxes(from: Shape, to: Shape): number[] {
  return from.flatMap((d, i) => (d === 1 && to[i] !== 1 ? [i] : []));
}

/**
 * Cotangent of a strided slice: each stepped axis is re-interleaved with step-1 zeros
 * (reshape to [n, 1], pad to [n, step], reshape to n·step, trim), then one pad puts the
 * window back at `start` inside the source's extent.
 */
function unslice(g: Val, start: readonly number[], step: readonly number[], xShape: Shape): Val {
  if (g.shape.some((d) => d === 0)) return g.em.full(0, { dtype: g.dtype, shape: xShape });
  let spread = g;
  for (let axis = 0; axis < xShape.length; axis++) {
    const s = step[axis]!;
    if (s === 1) continue;
    const count = spread.shape[axis]!;
    const withSlot = [...spread.shape.slice(0, axis), count, 1, ...spread.shape.slice(axis + 1)];
    const rank = withSlot.length;
    const padHigh = withSlot.map((_, i) => (i === axis + 1 ? s - 1 : 0));
    const interleaved = spread
      .reshape(withSlot)
      .pad(new Array<number>(rank).fill(0), padHigh)
      .reshape([...spread.shape.slice(0, axis), count * s, ...spread.shape.slice(axis + 1)]);
    const room = xShape[axis]! - start[axis]!;
    const keep = interleaved.shape.map((d, i) => (i === axis ? Math.min(d, room) : d));
    spread = interleaved.slice(
      keep.map(() => 0),
      keep,
    );
  }
  const high = xShape.map((d, i) => d - start[i]! - spread.shape[i]!);
  return spread.pad(start, high);
}

/** gather's cotangent: rows by one dot when the index is one column broadcast (embedding), else scatter-add. */
function gatherRule(g: Val, indexId: ValueId, axis: number, xShape: Shape, at: (id: ValueId) => Val, def: (id: ValueId) => Node | undefined): Val {
  const indexNode = def(indexId);
  const column = indexNode?.op === "expand" ? at(indexNode.x) : undefined;
  const isColumn = column !== undefined && column.shape.every((d, i) => (i === axis ? d === g.shape[axis] : d === 1));
  if (isColumn && !g.shape.some((d) => d === 0)) return scatterAddRows(g, column, axis, xShape);
  return scatterAdd(g, at(indexId), axis, xShape);
}

/**
 * Scatter-add when every slice along `axis` picks whole rows: index = expand(column) with
 * one index per position along `axis` (embedding). Then the cotangent is oneHotᵀ · g as one
 * dot ([n, m] · [m, rest]), and the one-hot is m × n instead of m × n × rest.
 */
function scatterAddRows(g: Val, column: Val, axis: number, xShape: Shape): Val {
  const picks = column.shape[axis]!;
  const rows = xShape[axis]!;
  const oneHot = column
    .reshape([picks, 1])
    .expand([picks, rows])
    .cmpeq(g.em.iota([picks, rows], 1))
    .cast(g.dtype);
  const toFront = [axis, ...xShape.flatMap((_, i) => (i === axis ? [] : [i]))];
  const front = g.permute(toFront);
  const rest = front.shape.slice(1);
  const summed = oneHot.transposeLast().dot(front.reshape([picks, numel(rest)]));
  return summed.reshape([rows, ...rest]).permute(inversePermutation(toFront));
}

/**
 * Cotangent of gather along `axis`: a scatter-add written with primitives. A new axis of
 * the source's size goes after `axis`; a one-hot compare of iota with the index routes each
 * g element to its source position, and a sum over the index axis adds repeated picks.
 */
function scatterAdd(g: Val, index: Val, axis: number, xShape: Shape): Val {
  const withSlot = [...index.shape.slice(0, axis + 1), 1, ...index.shape.slice(axis + 1)];
  const oneHotShape = withSlot.map((d, i) => (i === axis + 1 ? xShape[axis]! : d));
  const hit = index
    .reshape(withSlot)
    .expand(oneHotShape)
    .cmpeq(g.em.iota(oneHotShape, axis + 1));
  const spread = g.reshape(withSlot).expand(oneHotShape);
  const picked = hit.where(spread, spread.zerosLike()).reduceSum([axis]);
  return picked.reshape(xShape);
}
