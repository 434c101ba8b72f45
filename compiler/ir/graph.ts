// Graph construction and lookup. GraphBuilder is the one mutable IR object: it lives
// inside the function filling it (the tracer, the parser, a pass) and hands out an
// immutable Graph at the end. Derived facts (node by id, uses) are cached per Graph.

import { KilnError, bug, type SourceLoc } from "../util/errors.ts";
import { DECLARES_TYPE, TypeRuleError, inferType } from "./infer.ts";
import { valueId, type Graph, type GraphOutput, type Node, type NodeSpec, type TensorType, type ValueId } from "./types.ts";
import { operands, remapOperands } from "./op-schema.ts";

export class GraphBuilder {
  private readonly nodes: Node[] = [];
  private readonly types = new Map<ValueId, TensorType>();
  private readonly inputIds: ValueId[] = [];
  private readonly inputNames = new Set<string>();
  private nextId = 0;

  constructor(readonly name: string) {}

  typeOf(id: ValueId): TensorType {
    return this.types.get(id) ?? bug(`builder: value ${id} is not defined`);
  }

  has(id: ValueId): boolean {
    return this.types.has(id);
  }

  /** The node added as `id` (the builder numbers its nodes 0, 1, … in order). */
  node(id: ValueId): Node {
    const n = this.nodes[id];
    return n !== undefined && n.id === id ? n : bug(`builder: value ${id} is not defined`);
  }

  /**
   * Adds a node, inferring its type (or checking `declared`). A rule violation becomes a
   * KilnError at `spec.loc` — while tracing, that is the user's line.
   */
  add(spec: NodeSpec, declared?: TensorType): ValueId {
    let type: TensorType;
    try {
      type = inferType(spec, (id) => this.types.get(id), declared);
    } catch (e) {
      if (e instanceof TypeRuleError) {
        const code = /dtype/.test(e.message) ? "dtype-mismatch" : "shape-mismatch";
        throw new KilnError({ code, message: e.message, ...(spec.loc ? { loc: spec.loc } : {}) });
      }
      throw e;
    }
    return this.push(spec, type);
  }

  /**
   * Adds a node whose type is already known to be right: a node of a verified graph copied
   * with operands of the same types (DCE, a rewrite sweep's unchanged nodes), or a rewrite's
   * replacement that inferType already checked. No inference: `add` re-derived every node's
   * type in each sweep only to find it equal.
   */
  addTyped(spec: NodeSpec, type: TensorType): ValueId {
    return this.push(spec, type);
  }

  private push(spec: NodeSpec, type: TensorType): ValueId {
    if (spec.op === "input") {
      if (this.inputNames.has(spec.name)) throw new KilnError({ code: "invalid-argument", message: `duplicate input name '${spec.name}'` });
      this.inputNames.add(spec.name);
    }
    const id = valueId(this.nextId++);
    const node = { ...spec, id, type } as Node;
    if (node.loc === undefined) delete (node as { loc?: SourceLoc }).loc;
    if (node.scope === undefined) delete (node as { scope?: string }).scope;
    this.nodes.push(node);
    this.types.set(id, type);
    if (spec.op === "input") this.inputIds.push(id);
    return id;
  }

  input(name: string, type: TensorType, loc?: SourceLoc): ValueId {
    return this.add({ op: "input", name, ...(loc ? { loc } : {}) }, type);
  }

  /** Copies an existing node (with new operand ids) — the usual move in a rewriting pass. */
  copy(node: Node, remap: (id: ValueId) => ValueId): ValueId {
    return this.add(remapOperands(node, remap), DECLARES_TYPE.has(node.op) ? node.type : undefined);
  }

  build(outputs: readonly GraphOutput[]): Graph {
    for (const o of outputs) if (!this.types.has(o.value)) bug(`builder: output ${o.name} refers to undefined value ${o.value}`);
    return { name: this.name, nodes: [...this.nodes], inputs: [...this.inputIds], outputs: [...outputs] };
  }
}

const nodeMaps = new WeakMap<Graph, Map<ValueId, Node>>();

export function nodeMap(g: Graph): Map<ValueId, Node> {
  let m = nodeMaps.get(g);
  if (!m) {
    m = new Map(g.nodes.map((n) => [n.id, n]));
    nodeMaps.set(g, m);
  }
  return m;
}

export function nodeOf(g: Graph, id: ValueId): Node {
  // A GraphBuilder numbers its nodes 0, 1, … in order, so node `id` is usually at index `id`:
  // no map to build for each graph a pass makes (ids are unique, so a match is the node).
  const at = g.nodes[id];
  if (at !== undefined && at.id === id) return at;
  return nodeMap(g).get(id) ?? bug(`graph ${g.name}: value ${id} is not defined`);
}

export function inputNodes(g: Graph): Node[] {
  return g.inputs.map((id) => nodeOf(g, id));
}

const useMaps = new WeakMap<Graph, Map<ValueId, ValueId[]>>();

/** For each value, the ids of nodes using it (in node order, repeated per use). */
export function uses(g: Graph): Map<ValueId, ValueId[]> {
  let m = useMaps.get(g);
  if (!m) {
    m = new Map(g.nodes.map((n) => [n.id, [] as ValueId[]]));
    for (const n of g.nodes) for (const o of operands(n)) m.get(o)?.push(n.id);
    useMaps.set(g, m);
  }
  return m;
}
