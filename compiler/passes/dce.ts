// Dead-code elimination: keeps the nodes an output depends on, plus every input (inputs
// are the graph's calling convention, so they stay even when unused). The result is a
// fresh graph with ids renumbered densely in the original order.

import { GraphBuilder, nodeOf } from "../ir/graph.ts";
import type { Graph, ValueId } from "../ir/types.ts";
import { operands, remapOperands } from "../ir/op-schema.ts";
import { bug } from "../util/errors.ts";
import type { Pass } from "./pass.ts";

/** The ids of nodes reachable backwards from the outputs, plus the inputs. */
export function liveValues(g: Graph): Set<ValueId> {
  const live = new Set<ValueId>(g.inputs);
  const visited = new Set<ValueId>();
  const stack = g.outputs.map((o) => o.value);
  while (stack.length > 0) {
    const id = stack.pop()!;
    if (visited.has(id)) continue;
    visited.add(id);
    live.add(id);
    for (const o of operands(nodeOf(g, id))) stack.push(o);
  }
  return live;
}

export function eliminateDeadCode(g: Graph): Graph {
  const live = liveValues(g);
  const builder = new GraphBuilder(g.name);
  const newId = new Map<ValueId, ValueId>();
  for (const n of g.nodes) {
    if (!live.has(n.id)) continue;
    // Every operand of a live node is live and keeps its type: the node's type stands (no re-inference).
    const id = builder.addTyped(
      remapOperands(n, (o) => newId.get(o) ?? bug(`dce: operand ${o} of %${n.id} dropped`)),
      n.type,
    );
    newId.set(n.id, id);
  }
  return builder.build(g.outputs.map((o) => ({ ...o, value: newId.get(o.value) ?? bug(`dce: output ${o.name} dropped`) })));
}

export const dce: Pass = { name: "dce", run: (g) => eliminateDeadCode(g) };
