// mask-symbolic: makes a graph with a symbolic dimension (compiler/ir/symbolic.ts) correct
// at every size up to its max. Every target runs the graph at the maximum shapes, the rows
// past the run's size holding whatever the buffers held (zeros, or a previous run's values);
// a value at a valid position depends only on valid positions except where a reduction or a
// contraction runs over a symbolic axis. This pass puts a mask on those operands:
// `where(iota(axis) < scale × n, x, identity)` (0 for sums and contractions, -inf for max),
// so the padding never reaches a valid result, whatever it holds (NaN included). Runs first
// (before simplify, whose folds count the maximum size) in the driver when the graph has a
// symbol; a graph without one is returned unchanged. Records in ctx.facts ("mask-symbolic")
// whether every value has at most one symbolic axis (compiler/kernel/symbolic-rows.ts reads it).

import { GraphBuilder, nodeOf } from "../ir/graph.ts";
import { symbolicInfo, type AxisState, type SymbolicInfo } from "../ir/symbolic.ts";
import type { Graph, Node, TensorType, ValueId } from "../ir/types.ts";
import type { Pass } from "./pass.ts";

export const maskSymbolic: Pass = {
  name: "mask-symbolic",
  run: (g, ctx) => {
    const sym = symbolicInfo(g);
    if (!sym) return g;
    // For the kernel pass that drops the masks where js and wasm stop every reduction over the
    // batch at the run's rows (compiler/kernel/symbolic-rows.ts): the buffers mark one symbolic
    // axis each, so a value with two would hide padding from it.
    const oneAxis = [...sym.axes.values()].every((states) => states.filter((a) => typeof a === "number").length <= 1);
    ctx?.facts.set("mask-symbolic", { oneAxis });
    return maskGraph(g, sym);
  },
};

/** The symbolic axes among `axes` of value `id`. */
const symbolicAmong = (sym: SymbolicInfo, id: ValueId, axes: readonly number[]): { axis: number; scale: number }[] => {
  const states: readonly AxisState[] = sym.axes.get(id) ?? [];
  return axes.flatMap((axis) => (typeof states[axis] === "number" ? [{ axis, scale: states[axis] as number }] : []));
};

function maskGraph(g: Graph, sym: SymbolicInfo): Graph {
  const needs = g.nodes.some((n) => masksOf(n, g, sym).length > 0);
  if (!needs) return g;
  const b = new GraphBuilder(g.name);
  const map = new Map<ValueId, ValueId>();
  const remap = (id: ValueId): ValueId => map.get(id)!;
  const masked = new Map<string, ValueId>();
  const conds = new Map<string, ValueId>();
  for (const n of g.nodes) {
    const source = { ...(n.loc ? { loc: n.loc } : {}), ...(n.scope !== undefined ? { scope: n.scope } : {}) };
    const limitAt = (t: TensorType, scale: number): ValueId => {
      const size = remap(sym.size);
      const scaled =
        scale === 1 ? size : b.add({ op: "mul", x: size, y: b.add({ op: "const", value: scale, ...source }, { dtype: "i32", shape: [] }), ...source });
      const ones = t.shape.map(() => 1);
      const r = t.shape.length === 0 ? scaled : b.add({ op: "reshape", x: scaled, ...source }, { dtype: "i32", shape: ones });
      return b.add({ op: "expand", x: r, ...source }, { dtype: "i32", shape: t.shape });
    };
    const condFor = (t: TensorType, axis: number, scale: number): ValueId => {
      const key = `${t.shape.join(",")}|${axis}|${scale}`;
      let c = conds.get(key);
      if (c === undefined) {
        const iota = b.add({ op: "iota", axis, ...source }, { dtype: "i32", shape: t.shape });
        c = b.add({ op: "cmplt", x: iota, y: limitAt(t, scale), ...source });
        conds.set(key, c);
      }
      return c;
    };
    const maskValue = (id: ValueId, axes: { axis: number; scale: number }[], identity: number): ValueId => {
      const key = `${id}|${axes.map((a) => a.axis).join(",")}|${identity}`;
      let m = masked.get(key);
      if (m === undefined) {
        const t = nodeOf(g, id).type;
        let cond = condFor(t, axes[0]!.axis, axes[0]!.scale);
        for (const a of axes.slice(1)) cond = b.add({ op: "mul", x: cond, y: condFor(t, a.axis, a.scale), ...source });
        const fill = b.add({ op: "const", value: identity, ...source }, { dtype: t.dtype, shape: t.shape });
        m = b.add({ op: "where", cond, x: remap(id), y: fill, ...source });
        masked.set(key, m);
      }
      return m;
    };
    const masks = masksOf(n, g, sym);
    if (masks.length === 0) {
      map.set(n.id, b.copy(n, remap));
      continue;
    }
    // Masked before the permutes that lead to the operand: the masked copy keeps the layout the
    // operand is read through, as the program of a fixed batch reads it (a blocked matmul needs that).
    const maskThroughPermutes = (id: ValueId, axes: { axis: number; scale: number }[], identity: number): ValueId => {
      const p = nodeOf(g, id);
      if (p.op !== "permute") return maskValue(id, axes, identity);
      const inner = maskThroughPermutes(
        p.x,
        axes.map((a) => ({ axis: p.perm[a.axis]!, scale: a.scale })),
        identity,
      );
      return b.add({ op: "permute", x: inner, perm: p.perm, ...source });
    };
    const replaced = new Map(masks.map((m) => [m.operand, maskThroughPermutes(m.operand, m.axes, m.identity)]));
    map.set(
      n.id,
      b.copy(n, (id) => replaced.get(id) ?? remap(id)),
    );
  }
  return b.build(g.outputs.map((o) => ({ ...o, value: remap(o.value) })));
}

interface Mask {
  readonly operand: ValueId;
  readonly axes: { axis: number; scale: number }[];
  readonly identity: number;
}

/** The operands of `n` to mask, along which axes, with which fill. */
function masksOf(n: Node, g: Graph, sym: SymbolicInfo): Mask[] {
  switch (n.op) {
    case "reduce_sum":
    case "reduce_max": {
      const axes = symbolicAmong(sym, n.x, n.axes);
      if (axes.length === 0) return [];
      const dtype = nodeOf(g, n.x).type.dtype;
      const identity = n.op === "reduce_sum" ? 0 : dtype === "i32" ? -2147483648 : -Infinity;
      return [{ operand: n.x, axes, identity }];
    }
    case "dot": {
      const r = nodeOf(g, n.lhs).type.shape.length;
      const lhs = symbolicAmong(sym, n.lhs, [r - 1]);
      const rhs = symbolicAmong(sym, n.rhs, [r - 2]);
      return [...(lhs.length ? [{ operand: n.lhs, axes: lhs, identity: 0 }] : []), ...(rhs.length ? [{ operand: n.rhs, axes: rhs, identity: 0 }] : [])];
    }
    default:
      return [];
  }
}
