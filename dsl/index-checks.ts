// Checked indices: class ids (crossEntropy/nllLoss targets) and gather/indexSelect/embedding/
// oneHot indices that come straight from a graph input are range-checked on the host before a
// run, so a label of 10 for 10 classes, or −1 without ignoreIndex, is a one-line error naming
// the input, the first bad position and value and the valid range, not a finite wrong loss.
// Ops record each index use at trace time (`recordIndexUse`); `indexChecksOf` follows the
// index back through movement ops to the input it reads, after the graph is built.

import { nodeOf } from "../compiler/ir/graph.ts";
import type { Graph, ValueId } from "../compiler/ir/types.ts";
import { KilnError, type SourceLoc } from "../compiler/util/errors.ts";
import type { HostTensor } from "../compiler/ir/host-tensor.ts";
import { captureUserLoc } from "./loc.ts";

/** How an op uses an i32 tensor as an index: valid values are [0, high), plus ignoreIndex. */
export interface IndexUse {
  readonly op: string;
  /** What the values index, for the message: "class index", "row of the weight". */
  readonly what: string;
  readonly high: number;
  readonly ignoreIndex?: number;
  readonly loc?: SourceLoc;
}

/** An index use that reads a graph input element for element (through reshapes, expands, permutes). */
export interface IndexCheck extends IndexUse {
  readonly input: string;
}

/**
 * What recordIndexUse needs of a Tensor: its value and its trace's list of index uses. (A shape,
 * not the Tensor class: tensor.ts's Trace holds IndexUse, so this module stays below it.)
 */
export interface IndexedTensor {
  readonly id: ValueId;
  readonly trace: { readonly indexUses: { readonly value: ValueId; readonly use: IndexUse }[] };
}

/** Called by the ops as they trace: `index` holds indices into [0, high). */
export function recordIndexUse(index: IndexedTensor, use: Omit<IndexUse, "loc">): void {
  const loc = captureUserLoc();
  index.trace.indexUses.push({ value: index.id, use: { ...use, ...(loc ? { loc } : {}) } });
}

/** Ops that only move or repeat values: the index still holds the input's values (and only them). */
const passThrough = new Set(["reshape", "expand", "permute", "flip"]);

/** An index the graph computes: its value is known only after a run (checkNumerics checks it, dsl/numerics.ts). */
export interface ComputedIndex extends IndexUse {
  readonly value: ValueId;
}

/**
 * Splits the recorded uses into checks on graph inputs (done by exe.run before each run) and
 * computed indices, which only a debug run can check (checkNumerics mode checks them).
 */
export function indexChecksOf(
  graph: Graph,
  uses: readonly { readonly value: ValueId; readonly use: IndexUse }[],
  userInputs: ReadonlySet<string>,
): { fromInputs: IndexCheck[]; computed: ComputedIndex[] } {
  const fromInputs: IndexCheck[] = [];
  const computed: ComputedIndex[] = [];
  for (const { value, use } of uses) {
    let node = nodeOf(graph, value);
    while (passThrough.has(node.op) && "x" in node) node = nodeOf(graph, node.x);
    if (node.op === "input" && userInputs.has(node.name) && node.type.dtype === "i32") fromInputs.push({ ...use, input: node.name });
    else computed.push({ ...use, value });
  }
  return { fromInputs, computed };
}

function position(flat: number, shape: readonly number[]): string {
  const index = new Array<number>(shape.length);
  for (let axis = shape.length - 1; axis >= 0; axis--) {
    index[axis] = flat % shape[axis]!;
    flat = Math.floor(flat / shape[axis]!);
  }
  return `[${index.join(", ")}]`;
}

/** Throws a one-line KilnError for the first value of a checked input outside its range. */
export function checkIndexInputs(checks: readonly IndexCheck[], inputs: Readonly<Record<string, HostTensor>>): void {
  for (const check of checks) {
    const t = inputs[check.input];
    if (!t) continue;
    const { high, ignoreIndex } = check;
    const data = t.data;
    for (let i = 0; i < data.length; i++) {
      const v = data[i]!;
      if ((v >= 0 && v < high) || v === ignoreIndex) continue;
      const range = `[0, ${high})${ignoreIndex !== undefined ? ` or ignoreIndex ${ignoreIndex}` : ""}`;
      // The location is where the op used the input as an index (the run's own line says less).
      throw new KilnError({
        code: "invalid-argument",
        message: `exe.run: input '${check.input}' holds ${v} at ${position(i, t.shape)}, but ${check.op} takes it as a ${check.what} in ${range}`,
        ...(check.loc ? { loc: check.loc } : {}),
      });
    }
  }
}
