// Host inputs for a traced graph's `input` nodes, filled by each test's own rule (sines, NaN
// every few elements, small integers with ties): the walk over a graph's inputs that the
// codegen tests share, written once.

import type { DType } from "../../compiler/ir/dtype.ts";
import type { HostData, HostTensor } from "../../compiler/ir/host-tensor.ts";
import type { Graph } from "../../compiler/ir/types.ts";
import { numel } from "../../compiler/util/shape.ts";

export interface InputSlot {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
  /** Elements in the input. */
  readonly count: number;
  /** Position among the graph's inputs. */
  readonly index: number;
}

/** One HostTensor per `input` node, of the node's dtype and shape, holding `fill`'s data. */
export function graphInputs(g: Graph, fill: (slot: InputSlot) => HostData): Record<string, HostTensor> {
  const out: Record<string, HostTensor> = {};
  g.inputs.forEach((id, index) => {
    const node = g.nodes[id]!;
    if (node.op !== "input") return;
    const slot = { name: node.name, dtype: node.type.dtype, shape: node.type.shape, count: numel(node.type.shape), index };
    out[node.name] = { dtype: slot.dtype, shape: slot.shape, data: fill(slot) };
  });
  return out;
}
