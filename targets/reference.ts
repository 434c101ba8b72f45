// The "reference" target: the float64 interpreter of the graph IR (compiler/ir/interpret.ts),
// the oracle every target is compared against. Builds no artifact.

import { interpret } from "../compiler/ir/interpret.ts";
import { atActualSize } from "../compiler/ir/symbolic.ts";
import type { TargetEntry } from "./backend.ts";
import { referenceInfo } from "./deferred-targets.ts";

export const referenceTarget: TargetEntry = {
  ...referenceInfo,
  // Compiled targets take and give maximum-size tensors for a symbolic dimension; the interpreter runs at the actual size.
  factory: (graph) => ({ run: async (inputs) => atActualSize(graph, inputs, (cut) => interpret(graph, cut)) }),
};
