// Common-subexpression elimination: nodes with equal op, attributes, operands and type
// become one value (the first, whose source location is kept). It is the rewrite engine
// with no rules — structural hashing is built into every rewrite — followed by DCE.

import type { Graph } from "../ir/types.ts";
import type { Pass } from "./pass.ts";
import { eliminateDeadCode } from "./dce.ts";
import { rewriteToFixpoint } from "./rewrite.ts";

export function eliminateCommonSubexpressions(g: Graph): Graph {
  return eliminateDeadCode(rewriteToFixpoint(g, []).graph);
}

export const cse: Pass = { name: "cse", run: (g) => eliminateCommonSubexpressions(g) };
