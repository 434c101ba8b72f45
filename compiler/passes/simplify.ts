// The simplify pass: constant folding and algebraic identities (simplify-rules.ts) run by
// the rewrite engine to a fixpoint, with CSE built in, then DCE. Input graphs are never
// mutated; the result is fresh, verifies, and keeps the source locations of what it replaced.

import { log, logs } from "../debug.ts";
import type { Graph } from "../ir/types.ts";
import type { Pass, PassContext } from "./pass.ts";
import { eliminateDeadCode } from "./dce.ts";
import { rewriteToFixpoint, type RewriteStats } from "./rewrite.ts";
import { SIMPLIFY_RULES } from "./simplify-rules.ts";

export function simplifyGraph(g: Graph): { graph: Graph; stats: RewriteStats } {
  const { graph, stats } = rewriteToFixpoint(g, SIMPLIFY_RULES);
  return { graph: eliminateDeadCode(graph), stats };
}

export const simplify: Pass = {
  name: "simplify",
  run(g: Graph, ctx: PassContext): Graph {
    const { graph, stats } = simplifyGraph(g);
    const fired = Object.fromEntries([...stats.fired].sort(([a], [b]) => (a < b ? -1 : 1)));
    ctx.facts.set("simplify", { fired, merged: stats.merged, sweeps: stats.sweeps, nodesBefore: g.nodes.length, nodesAfter: graph.nodes.length });
    if (logs(1)) log(1, `simplify: ${g.nodes.length} -> ${graph.nodes.length} nodes, ${stats.merged} merged`, fired);
    return graph;
  },
};
