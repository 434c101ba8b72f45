// The rewrite engine: local rules applied bottom-up over a graph until nothing changes,
// with structural hashing on the way (every emitted node is looked up by op + attributes +
// operands + type first, so equal subexpressions become one value: CSE for free).
// Invariants: the input graph is never mutated; every rewrite keeps the value's type; a
// node built from a rule's NodeSpec keeps the replaced node's source location.

import { log, logs } from "../debug.ts";
import { GraphBuilder } from "../ir/graph.ts";
import { formatType, inferType, typesEqual } from "../ir/infer.ts";
import { remapOperands } from "../ir/op-schema.ts";
import type { Graph, Node, NodeSpec, TensorType, ValueId } from "../ir/types.ts";
import { bug } from "../util/errors.ts";

/** What a rule sees of the graph being built: operand nodes are already rewritten. */
export interface RewriteView {
  node(id: ValueId): Node;
  /** Adds a helper node (hash-consed, rules applied) for rewrites that need more than one new node. */
  emit(spec: NodeSpec, type: TensorType): ValueId;
}

/**
 * One local rewrite. `n` is a candidate node whose operands are final; return an existing
 * value to use instead, a NodeSpec to build instead (its type is n's type), or undefined
 * for "no match". A pure function of `n` and what `g` shows (never of ids' values or state
 * kept between calls): that is what makes one sweep a fixpoint (rewriteToFixpoint).
 */
export type Rule = (n: Node, g: RewriteView) => ValueId | NodeSpec | undefined;

export interface NamedRule {
  readonly name: string;
  readonly rule: Rule;
}

export interface RewriteStats {
  /** How often each rule fired. */
  readonly fired: ReadonlyMap<string, number>;
  /** Nodes that hashed equal to an earlier node and were merged. */
  readonly merged: number;
  /** Sweeps over the graph (one: rewriteToFixpoint). */
  readonly sweeps: number;
}

const MAX_REWRITES_PER_NODE = 64;

/** A number as a key: unlike JSON, keeps NaN, ±Infinity and -0 apart from null and 0. */
const numberKey = (v: number): string => (Object.is(v, -0) ? "-0" : String(v));

function fieldKey(v: unknown): string {
  if (typeof v === "number") return numberKey(v);
  if (Array.isArray(v)) return `[${v.map(fieldKey).join(",")}]`;
  return JSON.stringify(v);
}

/** Structural key: op, attributes, operands and type; never the source location or scope. */
export function structuralKey(spec: NodeSpec, type: TensorType): string {
  // `k=value` per field in key order, `;` between, then the type: one string built in a loop
  // (no copy of the spec, no closure per field: a cold compile runs this once per node).
  const fields = spec as unknown as Record<string, unknown>;
  let key = "";
  for (const k of Object.keys(fields).sort()) {
    if (k === "loc" || k === "scope") continue;
    const v = fields[k];
    key += `${key === "" ? "" : ";"}${k}=${typeof v === "number" ? numberKey(v) : fieldKey(v)}`;
  }
  return `${key}:${formatType(type)}`;
}

/** One bottom-up sweep; returns the new graph and how many nodes merged. */
function sweep(g: Graph, rules: readonly NamedRule[], fired: Map<string, number>): { graph: Graph; merged: number } {
  const builder = new GraphBuilder(g.name);
  const newId = new Map<ValueId, ValueId>();
  const byKey = new Map<string, ValueId>();
  const built = new Map<ValueId, Node>();
  let merged = 0;

  const add = (spec: NodeSpec, type: TensorType): ValueId => {
    const key = structuralKey(spec, type);
    const existing = spec.op === "input" ? undefined : byKey.get(key);
    if (existing !== undefined) {
      merged++;
      return existing;
    }
    // The type is checked already: an unchanged node's operands kept their types, and a rule's replacement passed inferType below.
    const id = builder.addTyped(spec, type);
    byKey.set(key, id);
    built.set(id, builder.node(id));
    return id;
  };

  const view: RewriteView = {
    node: (id) => built.get(id) ?? bug(`rewrite: value ${id} is not built yet`),
    emit: (spec, type) => simplifyAndAdd(spec, type),
  };

  function simplifyAndAdd(first: NodeSpec, type: TensorType): ValueId {
    let spec = first;
    for (let step = 0; step < MAX_REWRITES_PER_NODE; step++) {
      const candidate = { ...spec, id: -1 as ValueId, type } as Node;
      let result: ValueId | NodeSpec | undefined;
      let ruleName = "";
      for (const r of rules) {
        result = r.rule(candidate, view);
        if (result !== undefined) {
          ruleName = r.name;
          break;
        }
      }
      if (result === undefined) return add(spec, type);
      fired.set(ruleName, (fired.get(ruleName) ?? 0) + 1);
      if (typeof result === "number") {
        const got = view.node(result).type;
        if (!typesEqual(got, type)) bug(`rewrite: rule ${ruleName} replaced a ${formatType(type)} by a ${formatType(got)}`);
        if (logs(4)) log(4, `rewrite ${ruleName}: ${spec.op} -> %${result}`);
        return result;
      }
      // A replacement node keeps the replaced node's source location and module scope.
      const { loc, scope } = spec as { loc?: unknown; scope?: unknown };
      const next = {
        ...result,
        ...(loc !== undefined && (result as { loc?: unknown }).loc === undefined ? { loc } : {}),
        ...(scope !== undefined && (result as { scope?: unknown }).scope === undefined ? { scope } : {}),
      } as NodeSpec;
      inferType(next, (id) => built.get(id)?.type, type); // a rule must keep the type: throws otherwise
      if (logs(4)) log(4, `rewrite ${ruleName}: ${spec.op} -> ${next.op}`);
      spec = next;
    }
    return bug(`rewrite: more than ${MAX_REWRITES_PER_NODE} rewrites of one node (rules loop?)`);
  }

  for (const n of g.nodes) {
    const spec = remapOperands(n, (id) => newId.get(id) ?? bug(`rewrite: operand ${id} of %${n.id} not defined before use`));
    const id = n.op === "input" ? add(spec, n.type) : simplifyAndAdd(spec, n.type);
    newId.set(n.id, id);
  }
  const outputs = g.outputs.map((o) => ({ ...o, value: newId.get(o.value) ?? bug(`rewrite: output ${o.name} not defined`) }));
  return { graph: builder.build(outputs), merged };
}

/**
 * Rewrites `g` with `rules` to a fixpoint: one bottom-up sweep reaches it. A rule sees the
 * candidate node and, through the view, only nodes this sweep has built, each of which was
 * rewritten until no rule matched and hash-consed against the ones before it; so a second
 * sweep over the result meets every node as it already is and changes nothing (rules are
 * pure functions of what they see: test/passes/simplify.test.ts checks this on random and
 * traced graphs). Each sweep rebuilds the whole graph: the confirming one that used to run
 * was ~40 % of a cold MLP compile's simplify. Dead nodes are left for DCE.
 */
export function rewriteToFixpoint(g: Graph, rules: readonly NamedRule[]): { graph: Graph; stats: RewriteStats } {
  const fired = new Map<string, number>();
  const result = sweep(g, rules, fired);
  return { graph: result.graph, stats: { fired, merged: result.merged, sweeps: 1 } };
}
