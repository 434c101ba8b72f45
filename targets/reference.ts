// The "reference" target: the float64 interpreter of the graph IR (compiler/ir/interpret.ts),
// the oracle every target is compared against. Builds no artifact.

import { interpret } from "../compiler/ir/interpret.ts";
import type { TargetEntry } from "./backend.ts";

export const referenceTarget: TargetEntry = {
  name: "reference",
  description: "float64 interpreter of the graph IR: the oracle every target is compared against",
  priority: 0,
  factory: (graph) => ({ run: async (inputs) => interpret(graph, inputs) }),
};
