// Movement ops as index maps: each maps an index into its output to an index into its
// operand (plus, for pad, the condition under which the operand is read at all). Composing
// these along a chain is how views fold into a kernel's loads without copying anything.

import type { Node, TensorType } from "../ir/types.ts";
import { assertNever } from "../util/errors.ts";
import { addIndex, andPred, constIndex, flatIndex, inRange, mulIndex, unflattenIndex, type IndexExpr, type IndexPred } from "./index-expr.ts";

export type MovementNode = Extract<Node, { op: "reshape" | "permute" | "expand" | "pad" | "slice" | "flip" }>;

export interface MappedIndex {
  readonly index: readonly IndexExpr[];
  /** Extra validity from this op (pad); [] when the operand is always read. */
  readonly valid: IndexPred;
}

/** Maps an index of `n`'s output to an index of its operand (of type `operandType`). */
export function operandIndex(n: MovementNode, operandType: TensorType, out: readonly IndexExpr[]): MappedIndex {
  const inShape = operandType.shape;
  switch (n.op) {
    case "reshape":
      return { index: reshapeIndex(out, n.type.shape, inShape), valid: [] };
    case "permute": {
      const index: IndexExpr[] = new Array(inShape.length);
      n.perm.forEach((p, i) => (index[p] = out[i]!));
      return { index, valid: [] };
    }
    case "expand":
      return { index: inShape.map((d, i) => (d === 1 && n.type.shape[i] !== 1 ? constIndex(0) : out[i]!)), valid: [] };
    case "pad": {
      let valid: IndexPred = [];
      const index = inShape.map((d, i) => {
        const shifted = addIndex(out[i]!, constIndex(-n.low[i]!));
        valid = andPred(valid, inRange(shifted, d));
        return shifted;
      });
      return { index, valid };
    }
    case "slice":
      return { index: inShape.map((_, i) => addIndex(constIndex(n.start[i]!), mulIndex(out[i]!, n.step[i]!))), valid: [] };
    case "flip":
      return { index: inShape.map((d, i) => (n.axes.includes(i) ? addIndex(constIndex(d - 1), mulIndex(out[i]!, -1)) : out[i]!)), valid: [] };
    default:
      return assertNever(n, "movement op");
  }
}

/**
 * Reshape maps dims group-wise where the two shapes split at common prefix products, so a
 * reshape that only inserts/removes size-1 dims or merges/splits neighbours gives plain
 * indices; each group goes through one flat offset (simplified by the index algebra).
 */
export function reshapeIndex(out: readonly IndexExpr[], outShape: readonly number[], inShape: readonly number[]): IndexExpr[] {
  const result: IndexExpr[] = [];
  let o = 0;
  let i = 0;
  while (i < inShape.length || o < outShape.length) {
    // Grow a group on each side until the products match (at least one dim from a side that has any left).
    const oStart = o;
    const iStart = i;
    let po = 1;
    let pi = 1;
    if (o < outShape.length) po *= outShape[o++]!;
    if (i < inShape.length) pi *= inShape[i++]!;
    while (po !== pi) {
      if (po < pi && o < outShape.length) po *= outShape[o++]!;
      else if (i < inShape.length) pi *= inShape[i++]!;
      else if (o < outShape.length) po *= outShape[o++]!;
      else break;
    }
    const flat = flatIndex(out.slice(oStart, o), outShape.slice(oStart, o));
    result.push(...unflattenIndex(flat, inShape.slice(iStart, i)));
  }
  return result;
}
