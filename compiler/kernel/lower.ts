// Lowering of a fusion plan to the kernel IR: each group becomes a section whose stores
// compute the group's roots at the output index, inlining every value the plan did not
// materialize. Movement ops become index maps, pad a mask, gather an indirect (data) index,
// a reduction or contraction a `reduce` expression with its own loop variables.

import { symbolicInfo, type SymbolicInfo } from "../ir/symbolic.ts";
import { nodeOf } from "../ir/graph.ts";
import { hasBinaryOp, hasUnaryOp, type Graph, type Node, type ValueId } from "../ir/types.ts";
import { groupSource, type FusionGroup, type FusionPlan } from "./fusion-plan.ts";
import { assertNever, bug } from "../util/errors.ts";
import { halfOf, type DType } from "../ir/dtype.ts";
import { lowerSum } from "./block-sum.ts";
import { shapesEqual } from "../util/shape.ts";
import {
  addIndex,
  andPred,
  constIndex,
  mulIndex,
  flatIndex,
  fromAtom,
  indexKey,
  indexVar,
  predKey,
  type IndexExpr,
  type IndexPred,
  type IndexVar,
} from "./index-expr.ts";
import { SectionBuilder, sectionBuffers, type BufferDecl, type ExprId, type Kernel, type KernelProgram, type Section } from "./kernel-ir.ts";
import { operandIndex } from "./movement-index.ts";
import { tileSection } from "./tile.ts";
import { unrollColumns, type RowBlockOutput } from "./row-block.ts";

export interface LowerOptions {
  /** Register-tile contractions (default true): a tile of outputs per loop iteration. */
  readonly tile?: boolean;
}

/** A buffer's symbolic axis, for the dump (the first one, when a value has several). */
function symbolicMarks(sym: SymbolicInfo | undefined, id: ValueId): Pick<BufferDecl, "symbolic"> {
  const states = sym?.axes.get(id) ?? [];
  const axis = states.findIndex((s) => typeof s === "number");
  return axis < 0 ? {} : { symbolic: { axis, scale: states[axis] as number } };
}

export function lowerProgram(g: Graph, plan: FusionPlan, opts: LowerOptions = {}): KernelProgram {
  const buffers: BufferDecl[] = [];
  const bufferOf = new Map<ValueId, number>();
  const sym = symbolicInfo(g);
  const outputNames = new Map<ValueId, string>();
  for (const o of g.outputs) if (!outputNames.has(o.value)) outputNames.set(o.value, o.name);
  for (const id of g.inputs) {
    const n = nodeOf(g, id);
    if (n.op !== "input") bug("lower: graph input is not an input node");
    bufferOf.set(id, buffers.length);
    buffers.push({
      id: buffers.length,
      name: n.name,
      dtype: n.type.dtype,
      shape: n.type.shape,
      kind: "input",
      ...symbolicMarks(sym, id),
      ...(n.dimMax !== undefined ? { dimMax: n.dimMax } : {}),
    });
  }
  for (const grp of plan.groups)
    for (const root of grp.roots) {
      const t = nodeOf(g, root).type;
      const outName = outputNames.get(root);
      bufferOf.set(root, buffers.length);
      buffers.push({
        id: buffers.length,
        name: outName ?? `t${root}`,
        dtype: t.dtype,
        shape: t.shape,
        kind: outName === undefined ? "temp" : "output",
        ...symbolicMarks(sym, root),
      });
    }
  const kernels: Kernel[] = plan.kernels.map((groupIds, k) => {
    const sections = groupIds.map((gid) => lowerGroup(g, plan.groups[gid]!, bufferOf, opts));
    const reads = new Set<number>();
    const writes = new Set<number>();
    for (const s of sections) {
      const b = sectionBuffers(s);
      b.reads.forEach((x) => reads.add(x));
      b.writes.forEach((x) => writes.add(x));
    }
    // Kernel names become dump file names: keep them short (sections past the third are counted).
    const labels = groupIds.map((gid) => plan.groups[gid]!.label);
    const label = labels.length > 3 ? `${labels.slice(0, 3).join("__")}__and${labels.length - 3}` : labels.join("__");
    return { name: `k${k}_${label}`, sections, reads: [...reads].sort((a, b) => a - b), writes: [...writes].sort((a, b) => a - b) };
  });
  return {
    name: g.name,
    buffers,
    kernels,
    inputs: g.inputs.map((id) => ({ name: (nodeOf(g, id) as Extract<Node, { op: "input" }>).name, buffer: bufferOf.get(id)! })),
    outputs: g.outputs.map((o) => ({
      name: o.name,
      buffer: bufferOf.get(o.value) ?? bug(`lower: output ${o.name} has no buffer`),
      ...(o.aliases !== undefined ? { aliases: o.aliases } : {}),
    })),
  };
}

/** Query rows per point of an attention: up to 4 (dividing the row count), at most 256 accumulators. */
function attentionRows(shape: readonly number[]): number {
  const queries = shape[shape.length - 2]!;
  const columns = shape[shape.length - 1]!;
  return [4, 2, 1].find((r) => queries % r === 0 && r * columns <= 256) ?? 1;
}

function lowerGroup(g: Graph, grp: FusionGroup, bufferOf: ReadonlyMap<ValueId, number>, opts: LowerOptions): Section {
  // An attention group iterates blocks of `rows` query rows: each point computes every column
  // of its rows in one pass over the keys, each key's k and v loaded once for the block.
  const attention = grp.attention;
  // An attention backward group iterates rows too: a point computes every column of its roots.
  const rowBlock = grp.attentionGrad !== undefined;
  const rows = attention ? attentionRows(grp.shape) : 1;
  const domain = (attention || rowBlock ? grp.shape.slice(0, -1) : grp.shape).map((d, i) => indexVar(`o${i}`, i === grp.shape.length - 2 ? d / rows : d));
  const sb = new SectionBuilder(domain);
  const own = new Set(grp.roots);
  const memo = new Map<string, ExprId>();
  let hasContraction = false;
  const dotVars = new Map<ValueId, IndexVar>();

  const value = (id: ValueId, index: readonly IndexExpr[], valid: IndexPred): ExprId => {
    const key = `${id}|${index.map(indexKey).join(",")}|${predKey(valid)}`;
    const hit = memo.get(key);
    if (hit !== undefined) return hit;
    const result = compute(nodeOf(g, id), index, valid);
    memo.set(key, result);
    return result;
  };

  const compute = (n: Node, index: readonly IndexExpr[], valid: IndexPred): ExprId => {
    const dtype = n.type.dtype;
    const buffer = bufferOf.get(n.id);
    if (buffer !== undefined && !own.has(n.id)) {
      if (valid === false) return sb.add({ op: "const", value: 0, dtype });
      return sb.add({ op: "load", buffer, index: flatIndex(index, n.type.shape), valid, dtype });
    }
    if (stats && (n.id === stats.max || n.id === stats.sum)) return onlineStat(n, index, valid, n.id === stats.max ? "softmax_max" : "softmax_norm");
    if (hasUnaryOp(n)) return sb.add({ op: n.op, x: value(n.x, index, valid), dtype });
    if (hasBinaryOp(n)) return sb.add({ op: n.op, x: value(n.x, index, valid), y: value(n.y, index, valid), dtype });
    switch (n.op) {
      case "input":
        return bug(`lower: input %${n.id} has no buffer`);
      case "const":
        return sb.add({ op: "const", value: n.value, dtype });
      case "iota":
        return sb.add({ op: "index", index: index[n.axis]!, dtype: "i32" });
      case "rng":
        return sb.add({ op: "rng", seed: value(n.seed, [], valid), stream: n.stream, counter: flatIndex(index, n.type.shape), dtype });
      case "cast":
        return sb.add({ op: "cast", x: value(n.x, index, valid), dtype });
      case "where":
        return sb.add({ op: "where", cond: value(n.cond, index, valid), x: value(n.x, index, valid), y: value(n.y, index, valid), dtype });
      case "reshape":
      case "permute":
      case "expand":
      case "slice":
      case "flip":
        return value(n.x, operandIndex(n, nodeOf(g, n.x).type, index).index, valid);
      case "pad": {
        const mapped = operandIndex(n, nodeOf(g, n.x).type, index);
        const padValue = sb.add({ op: "const", value: n.value, dtype });
        if (mapped.valid === false) return padValue;
        const inner = value(n.x, mapped.index, andPred(valid, mapped.valid));
        if (mapped.valid.length === 0) return inner;
        // A masked load already yields 0 where the pad is: no select needed for zero padding.
        const innerExpr = sb.get(inner);
        if (n.value === 0 && !Object.is(n.value, -0) && innerExpr.op === "load") return inner;
        const mask = sb.add({ op: "valid", pred: mapped.valid, dtype: "bool" });
        return sb.add({ op: "where", cond: mask, x: inner, y: padValue, dtype });
      }
      case "reduce_sum":
      case "reduce_max": {
        if (n.axes.length === 0) return value(n.x, index, valid);
        const xShape = nodeOf(g, n.x).type.shape;
        if (n.op === "reduce_sum") {
          const summand = (axisIndex: readonly IndexExpr[]): ExprId => {
            const inIndex = [...index];
            n.axes.forEach((a, i) => (inIndex[a] = axisIndex[i]!));
            return value(n.x, inIndex, valid);
          };
          return lowerSum(
            sb,
            n.axes.map((a) => xShape[a]!),
            summand,
            dtype,
          );
        }
        const vars = n.axes.map((a) => sb.freshVar(xShape[a]!));
        const inIndex = [...index];
        n.axes.forEach((a, i) => (inIndex[a] = fromAtom(vars[i]!)));
        const body = value(n.x, inIndex, valid);
        return sb.add({ op: n.op, vars, body, dtype });
      }
      case "dot": {
        if (attention?.dot === n.id) return attend(n, index, valid);
        hasContraction = true;
        const lhsShape = nodeOf(g, n.lhs).type.shape;
        const r = lhsShape.length;
        // An attention's rows share one contraction variable per dot: the block's q·k of one
        // key run in one loop over the features, each k element loaded once for every row.
        let k = attention ? dotVars.get(n.id) : undefined;
        if (!k) {
          k = sb.freshVar(lhsShape[r - 1]!);
          if (attention) dotVars.set(n.id, k);
        }
        const kIndex = fromAtom(k);
        // A 16-bit matmul multiplies and accumulates in f32 (its products are exact there) and
        // rounds once at the end, as the interpreter rounds its float64 dot once.
        const acc: DType = halfOf(dtype) !== undefined ? "f32" : dtype;
        const widen = (id: ExprId): ExprId => (acc === dtype ? id : sb.add({ op: "cast", x: id, dtype: acc }));
        const features = lhsShape[r - 1]!;
        // An attention backward's q·k and dO·v (score-shaped, over the features) where the target
        // asks (FusionGroup.unrolledFeatures): the products written out as a balanced sum, so the
        // row's q and dO elements depend on the point alone and are loaded once per point, not
        // once per key of every pass.
        if (stats && features <= (grp.unrolledFeatures ?? 0) && shapesEqual(n.type.shape, nodeOf(g, stats.score).type.shape)) {
          const terms = Array.from({ length: features }, (_, c) => {
            const a = widen(value(n.lhs, [...index.slice(0, r - 1), constIndex(c)], valid));
            const b = widen(value(n.rhs, [...index.slice(0, r - 2), constIndex(c), index[r - 1]!], valid));
            return sb.add({ op: "mul", x: a, y: b, dtype: acc });
          });
          const tree = (lo: number, hi: number): ExprId =>
            hi - lo === 1 ? terms[lo]! : sb.add({ op: "add", x: tree(lo, (lo + hi) >> 1), y: tree((lo + hi) >> 1, hi), dtype: acc });
          const sum = tree(0, features);
          return acc === dtype ? sum : sb.add({ op: "cast", x: sum, dtype });
        }
        const a = widen(value(n.lhs, [...index.slice(0, r - 1), kIndex], valid));
        const b = widen(value(n.rhs, [...index.slice(0, r - 2), kIndex, index[r - 1]!], valid));
        const body = sb.add({ op: "mul", x: a, y: b, dtype: acc });
        const reduce = sb.add({ op: "reduce_sum", vars: [k], body, dtype: acc });
        // Inside an attention the scores' contraction stays a plain loop of the key loop.
        if (!attention && !rowBlock) sb.markDot(reduce, a, b);
        return acc === dtype ? reduce : sb.add({ op: "cast", x: reduce, dtype });
      }
      case "gather": {
        const xShape = nodeOf(g, n.x).type.shape;
        const idx = value(n.index, index, valid);
        const xIndex = [...index];
        xIndex[n.axis] = fromAtom({ kind: "data", ref: idx, lo: 0, hi: xShape[n.axis]! - 1 });
        return value(n.x, xIndex, valid);
      }
      default:
        return assertNever(n, "op");
    }
  };

  // One key variable for the whole row: every column's softmax_sum shares its loop (and the scores).
  let keyVar: IndexVar | undefined;
  function attend(n: Node, index: readonly IndexExpr[], valid: IndexPred): ExprId {
    const att = attention!;
    const r = n.type.shape.length;
    keyVar ??= sb.freshVar(nodeOf(g, att.score).type.shape[r - 1]!);
    const j = fromAtom(keyVar);
    const score = value(att.score, [...index.slice(0, r - 1), j], valid);
    const v = value(att.value, [...index.slice(0, r - 2), j, index[r - 1]!], valid);
    return sb.add({ op: "softmax_sum", vars: [keyVar], score, value: v, dtype: n.type.dtype });
  }

  // An attention backward's softmax max and sum: one online pass over the keys for both.
  const stats = grp.softmaxStats;
  let statVar: IndexVar | undefined;
  function onlineStat(n: Node, index: readonly IndexExpr[], valid: IndexPred, op: "softmax_max" | "softmax_norm"): ExprId {
    const r = n.type.shape.length;
    const keys = nodeOf(g, stats!.score).type.shape[r - 1]!;
    // A forward's statistics share its softmax_sums' key loop (and their online m and l).
    const v = attention ? (keyVar ??= sb.freshVar(keys)) : (statVar ??= sb.freshVar(keys));
    const score = value(stats!.score, [...index.slice(0, r - 1), fromAtom(v)], valid);
    return sb.add({ op, vars: [v], score, dtype: n.type.dtype });
  }

  const rowIndex = domain.map((v) => fromAtom(v));
  const source = groupSource(g, grp);
  const sourceFacts = { ...(source.locs.length ? { locs: source.locs } : {}), ...(source.scopes.length ? { scopes: source.scopes } : {}) };
  if (rowBlock) {
    // Each root at a symbolic column (one variable per width), then copied per column.
    const columnVars = new Map<number, IndexVar>();
    const outputs = grp.roots.map((root): RowBlockOutput => {
      const shape = nodeOf(g, root).type.shape;
      const transposed = grp.transposedRoots?.includes(root) ?? false;
      const at = (col: IndexExpr): IndexExpr[] => (transposed ? [...rowIndex.slice(0, -1), col, rowIndex.at(-1)!] : [...rowIndex, col]);
      const width = shape.at(transposed ? -2 : -1)!;
      if (width === 1) return { buffer: bufferOf.get(root)!, shape, transposed, value: value(root, at(constIndex(0)), []) };
      let column = columnVars.get(width);
      if (!column) columnVars.set(width, (column = sb.freshVar(width)));
      return { buffer: bufferOf.get(root)!, shape, transposed, column, value: value(root, at(fromAtom(column)), []) };
    });
    return { ...unrollColumns(sb.build(), domain, outputs), form: { kind: "attention" }, ...sourceFacts };
  }
  const columns = grp.shape[grp.shape.length - 1]!;
  const blockRow = (u: number): IndexExpr[] => [...rowIndex.slice(0, -1), addIndex(mulIndex(rowIndex.at(-1)!, rows), constIndex(u))];
  const outIndices = attention
    ? Array.from({ length: rows }, (_, u) => Array.from({ length: columns }, (_, c) => [...blockRow(u), constIndex(c)])).flat()
    : [rowIndex];
  const isStat = (root: ValueId): boolean => attention !== undefined && (root === stats?.max || root === stats?.sum);
  for (const outIndex of outIndices)
    for (const root of grp.roots) {
      if (isStat(root)) continue;
      const v = value(root, outIndex, []);
      sb.store(bufferOf.get(root)!, flatIndex(outIndex, grp.shape), v);
    }
  // The row max and sum an attention forward keeps for its backward: one per query row of the block.
  for (const root of grp.roots.filter(isStat))
    for (let u = 0; u < rows; u++) {
      const at = [...blockRow(u), constIndex(0)];
      sb.store(bufferOf.get(root)!, flatIndex(at, nodeOf(g, root).type.shape), value(root, at, []));
    }
  const section: Section = {
    ...sb.build(),
    ...(attention ? { form: { kind: "attention" as const } } : {}),
    ...sourceFacts,
  };
  return opts.tile !== false && hasContraction && !attention ? tileSection(section) : section;
}
