// What `kiln view` shows, as plain data: the graph after every graph pass (with what the pass
// changed), each folded by module path into a tree whose lifted edges are ready to lay out,
// the kernels (their nodes, fusion groups, kernel IR, generated sources, cost and launch
// shape), the text dumps of the other stages, and optionally a profile. Built from one run of
// the compile driver (compiler/compile.ts); the page (cli/view-page.ts) only draws it.
//
// Folding: a node's module path is its `scope` split at dots (`blocks.0.attn`). Nodes without
// one (the loss, the optimizer) are folded too, so a train step's root stays small: a node
// whose results reach exactly one output that updates a state input goes under
// `(update)/<that input's dotted path>` (values several updates share under `(shared)` there); any other goes under `(line) file:line` when several share the line.
// An edge u→v is drawn once, in the innermost module holding both, between the two items of
// that module (a direct node, or the child module) that contain u and v.

import type { Compiled } from "../compiler/compile.ts";
import { kernelOps } from "../compiler/kernel/kernel-cost.ts";
import { printKernel } from "../compiler/kernel/print.ts";
import { formatType } from "../compiler/ir/infer.ts";
import { operands, opSchema } from "../compiler/ir/op-schema.ts";
import { printNode, valueNames } from "../compiler/ir/printer.ts";
import type { Graph, Node, ValueId } from "../compiler/ir/types.ts";
import type { Artifact } from "../runtime/artifact/format.ts";

export const VIEW_DATA_VERSION = 1;

export interface ViewNode {
  /** Index in the stage's `nodes` (node order); operands refer to these. */
  readonly id: number;
  /** The printed value name (`%x`, `%"0.weight"`, `%12`), as in the stage's dump. */
  readonly name: string;
  readonly op: string;
  /** The IR statement without its loc (`%3 = add %1, %2 : f32[4]`). */
  readonly text: string;
  readonly type: string;
  readonly operands: readonly number[];
  /** `file:line:col` of the user's source, when traced with one. */
  readonly loc?: string;
  readonly scope?: string;
  /** For a node without a scope: the module it is drawn in (where its users are; see modulePaths). */
  readonly placedIn?: string;
  /** Index into the view's kernels of the kernel computing this node (final stage only). */
  readonly kernel?: number;
  /** New or rewritten by this stage's pass (absent from the previous stage's graph). */
  readonly changed?: true;
  /** Output names this node's value is returned as. */
  readonly outputs?: readonly string[];
}

/** An item of a module: a node id (≥ 0) or a child module as -(index + 1). */
export type ViewItem = number;

export interface ViewModule {
  /** Path segments from the root (`["blocks", "0", "attn"]`); the root has none. */
  readonly path: readonly string[];
  readonly parent: number;
  /** Nodes directly in this module. */
  readonly nodes: readonly number[];
  readonly children: readonly number[];
  /** Lifted edges between this module's items: [from, to, how many graph edges]. */
  readonly edges: readonly (readonly [ViewItem, ViewItem, number])[];
  /** Nodes in this module and its descendants. */
  readonly size: number;
  /** Changed nodes in the subtree (see ViewNode.changed). */
  readonly changed: number;
}

export interface ViewStage {
  /** The pass whose output this is ("input": the graph as traced). */
  readonly name: string;
  /** Its dump file in `kiln dump --all --target T` (`01-simplify.kir`). */
  readonly file: string;
  readonly nodes: readonly ViewNode[];
  readonly modules: readonly ViewModule[];
  readonly outputs: readonly { readonly name: string; readonly node: number; readonly aliases?: string }[];
  /** Nodes of the previous stage this pass removed or rewrote, counted by op. */
  readonly removed: Readonly<Record<string, number>>;
}

export interface ViewKernel {
  readonly name: string;
  /** Fusion groups in this kernel: id, label, and shape of its iteration domain. */
  readonly groups: readonly { readonly id: number; readonly label: string; readonly shape: readonly number[] }[];
  /** Final-stage node ids this kernel computes (group roots and inlined values). */
  readonly nodes: readonly number[];
  /** Distinct `file:line:col` and module paths of those nodes, from the kernel IR sections. */
  readonly locs: readonly string[];
  readonly scopes: readonly string[];
  /** The kernel IR after the last kernel pass. */
  readonly kir: string;
  /** What the target rendered for it (several dispatches when the target split it): name and index into `sources`. */
  readonly rendered: readonly { readonly name: string; readonly source: number; readonly launch?: string }[];
  /** Output elements stored: each section's domain size times its stores. */
  readonly elements: number;
  /** Arithmetic operations (compiler/kernel/kernel-cost.ts, the count exe.profile divides by time). */
  readonly flops: number;
  /** Bytes of the buffers it reads and writes (whole buffers, as bound). */
  readonly bytesRead: number;
  readonly bytesWritten: number;
}

/** Measured time per kernel (exe.profile's records, reduced to what the page shows). */
export interface ViewProfile {
  readonly steps: number;
  /** What measured it (e.g. "timestamp queries", "host timers around each kernel"). */
  readonly method?: string;
  /** Per rendered kernel (artifact kernel name): calls over all steps and total milliseconds. */
  readonly kernels: readonly { readonly name: string; readonly calls: number; readonly totalMs: number }[];
  /** Time outside kernels over all steps (copies, scheduling), when measured. */
  readonly hostMs?: number;
}

export interface ViewData {
  readonly version: typeof VIEW_DATA_VERSION;
  readonly title: string;
  readonly target: string;
  readonly stages: readonly ViewStage[];
  readonly kernels: readonly ViewKernel[];
  /** Distinct rendered kernel sources (identical ones stored once). */
  readonly sources: readonly string[];
  /** How `sources` are written: wgsl, cuda, js, wat (wasm's text format, as kiln view writes it), or wasm (base64 of the binary module). */
  readonly sourceKind: string;
  /** The other stages' dumps (fusion groups, kernel IR after each kernel pass, memory plan). */
  readonly dumps: readonly { readonly name: string; readonly text: string }[];
  /** The user's source files named by locs, by file name as the locs spell it. */
  readonly files: Readonly<Record<string, string>>;
  readonly stats: { readonly kernels: number; readonly bytesRead: number; readonly bytesWritten: number; readonly peakBytes: number };
  readonly profile?: ViewProfile;
}

export interface ViewInput {
  readonly title: string;
  readonly target: string;
  /** The graph as traced, then after each graph pass, in order (the last is what was fused). */
  readonly graphs: readonly { readonly stage: string; readonly graph: Graph }[];
  readonly compiled: Compiled<Artifact>;
  /** Reads a source file a loc names (undefined: not embedded). */
  readonly readSource?: (file: string) => string | undefined;
  readonly profile?: ViewProfile;
}

/** Builds the view's data; see the module comment. */
export function buildViewData(input: ViewInput): ViewData {
  const { compiled } = input;
  const finalGraph = compiled.graph;
  const { kernels, sources, nodeKernel } = viewKernels(compiled);
  const stages: ViewStage[] = [];
  let previous: Graph | undefined;
  input.graphs.forEach(({ stage, graph }, i) => {
    const { changed, removed } = previous ? passDiff(previous, graph) : { changed: new Set<number>(), removed: {} };
    const mapped = graph === finalGraph ? nodeKernel : undefined;
    stages.push(viewStage(stage, `${String(i).padStart(2, "0")}-${stage}.kir`, graph, changed, removed, mapped));
    previous = graph;
  });
  const graphFiles = new Set(stages.map((s) => s.file));
  const dumps = compiled.dumps.filter((d) => !graphFiles.has(d.name) && !/^\d+-render\//.test(d.name));
  const files: Record<string, string> = {};
  if (input.readSource) {
    const names = new Set<string>();
    for (const s of stages) for (const n of s.nodes) if (n.loc) names.add(n.loc.replace(/:\d+:\d+$/, ""));
    let budget = 2_000_000;
    for (const name of [...names].sort()) {
      const text = input.readSource(name);
      if (text === undefined || text.length > budget) continue;
      files[name] = text;
      budget -= text.length;
    }
  }
  const stats = compiled.artifact.stats;
  return {
    version: VIEW_DATA_VERSION,
    title: input.title,
    target: input.target,
    stages,
    kernels,
    sources,
    sourceKind: sourceKindOf(compiled.artifact.target),
    dumps,
    files,
    stats: { kernels: stats.kernels, bytesRead: stats.bytesRead, bytesWritten: stats.bytesWritten, peakBytes: stats.peakBytes },
    ...(input.profile ? { profile: input.profile } : {}),
  };
}

function sourceKindOf(target: Artifact["target"]): string {
  switch (target) {
    case "webgpu":
      return "wgsl";
    case "cuda":
      return "cuda";
    case "js":
      return "js";
    case "wasm":
      return "wasm";
  }
}

/**
 * What a pass changed between graphs `before` and `after`: the nodes of `after` it created
 * (ids), and the nodes of `before` it removed, counted by op. A node of `after` is kept when
 * `before` has one computing the same thing (equal structural keys), or, failing that, one
 * with the same op, type, attributes, source line and module whose operands changed
 * (rewired, not new); each node of `before` pairs with at most one of `after`. What is left
 * over on either side is what the pass made or took away.
 */
export function passDiff(before: Graph, after: Graph): { changed: Set<number>; removed: Record<string, number> } {
  const kb = structuralKeys(before);
  const ka = structuralKeys(after);
  const pool = (keyOf: (n: Node) => string, nodes: readonly Node[]): Map<string, Node[]> => {
    const m = new Map<string, Node[]>();
    for (const n of nodes) {
      const k = keyOf(n);
      const list = m.get(k);
      if (list) list.push(n);
      else m.set(k, [n]);
    }
    return m;
  };
  const used = new Set<Node>();
  const take = (m: Map<string, Node[]>, key: string): boolean => {
    const list = m.get(key);
    while (list && list.length > 0) {
      const n = list.pop()!;
      if (!used.has(n)) {
        used.add(n);
        return true;
      }
    }
    return false;
  };
  const exact = pool((n) => kb.get(n.id)!, before.nodes);
  const unmatched: Node[] = [];
  for (const n of after.nodes) if (!take(exact, ka.get(n.id)!)) unmatched.push(n);
  const local = pool(localKey, before.nodes);
  const changed = new Set<number>();
  for (const n of unmatched) if (!take(local, localKey(n))) changed.add(n.id);
  const removed: Record<string, number> = {};
  for (const n of before.nodes) if (!used.has(n)) removed[n.op] = (removed[n.op] ?? 0) + 1;
  return { changed, removed };
}

/** A node's own signature, without its operands: op, type, attributes, loc and scope. */
function localKey(n: Node): string {
  const fields = n as unknown as Readonly<Record<string, unknown>>;
  const operandFields = new Set<string>(opSchema(n.op).operands as readonly string[]);
  const attrs = Object.keys(fields)
    .filter((f) => f !== "id" && f !== "type" && !operandFields.has(f))
    .sort()
    .map((f) => `${f}=${JSON.stringify(fields[f])}`)
    .join(",");
  return `${formatType(n.type)} ${attrs}`;
}

/**
 * A key per node that two graphs share exactly when the node computes the same thing from
 * the same inputs (op, type, attributes and operands' keys; inputs by name): what a pass
 * kept. Value ids and names play no part, since passes renumber.
 */
export function structuralKeys(g: Graph): Map<number, string> {
  const keyOf = new Map<number, string>();
  for (const n of g.nodes) {
    const fields = n as unknown as Readonly<Record<string, unknown>>;
    const ids = operands(n);
    const operandFields = new Set<string>(opSchema(n.op).operands as readonly string[]);
    const attrs = Object.keys(fields)
      .filter((f) => f !== "id" && f !== "type" && f !== "loc" && f !== "scope" && f !== "op" && !operandFields.has(f))
      .sort()
      .map((f) => `${f}=${JSON.stringify(fields[f])}`)
      .join(",");
    keyOf.set(n.id, hashText(`${n.op} ${formatType(n.type)} ${attrs} (${ids.map((id) => keyOf.get(id)!).join(",")})`));
  }
  return keyOf;
}

/** Two independent 32-bit FNV-1a style hashes of `text`, as 16 hex digits (a key, not a checksum). */
function hashText(text: string): string {
  let a = 0x811c9dc5;
  let b = 0x01000193 ^ text.length;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995) ^ (b >>> 15);
  }
  return (a >>> 0).toString(16).padStart(8, "0") + (b >>> 0).toString(16).padStart(8, "0");
}

function viewKernels(compiled: Compiled<Artifact>): { kernels: ViewKernel[]; sources: string[]; nodeKernel: Map<number, number> } {
  const { plan, program, memory, artifact } = compiled;
  const sources: string[] = [];
  const sourceIndex = new Map<string, number>();
  const nodeKernel = new Map<number, number>();
  const bytesOf = (b: number): number => memory.bufferBytes[b] ?? 0;
  const kernels = program.kernels.map((k, i): ViewKernel => {
    const groupIds = plan.kernels.length === program.kernels.length ? (plan.kernels[i] ?? []) : [];
    const groups = groupIds.map((id) => plan.groups.find((g) => g.id === id)!).filter((g) => g !== undefined);
    const nodes = [...new Set(groups.flatMap((g) => [...g.roots, ...g.inlined]))].sort((a, b) => a - b) as number[];
    for (const n of nodes) if (!nodeKernel.has(n)) nodeKernel.set(n, i);
    const rendered = artifact.kernels
      .filter((a) => a.name === k.name || a.name.startsWith(`${k.name}_part`))
      .map((a) => {
        let source = sourceIndex.get(a.source);
        if (source === undefined) {
          source = sources.length;
          sources.push(a.source);
          sourceIndex.set(a.source, source);
        }
        const launch = launchOf(a as unknown as Readonly<Record<string, unknown>>);
        return { name: a.name, source, ...(launch ? { launch } : {}) };
      });
    const sum = (ids: readonly number[]): number => ids.reduce((a, b) => a + bytesOf(b), 0);
    const cost = {
      elements: k.sections.reduce((a, sec) => a + sec.domain.reduce((n, v) => n * v.extent, 1) * sec.stores.length, 0),
      flops: kernelOps(k),
      bytesRead: sum(k.reads),
      bytesWritten: sum(k.writes),
    };
    const locs = [...new Set(k.sections.flatMap((s) => (s.locs ?? []).map((l) => `${l.file}:${l.line}:${l.col}`)))];
    const scopes = [...new Set(k.sections.flatMap((s) => s.scopes ?? []))];
    return {
      name: k.name,
      groups: groups.map((g) => ({ id: g.id, label: g.label, shape: g.shape })),
      nodes,
      locs,
      scopes,
      kir: printKernel(k),
      rendered,
      ...cost,
    };
  });
  return { kernels, sources, nodeKernel };
}

/** The launch shape a target recorded: WebGPU workgroups (and the shader's workgroup size), CUDA grid and block. */
function launchOf(a: Readonly<Record<string, unknown>>): string | undefined {
  const dims = (v: unknown): string => (v as readonly number[]).join("×");
  if (Array.isArray(a["workgroups"])) {
    const size = /@workgroup_size\(([^)]*)\)/.exec(String(a["source"]))?.[1]?.replace(/\s+/g, "");
    return `${dims(a["workgroups"])} workgroups${size ? ` of ${size.split(",").join("×")} threads` : ""}`;
  }
  const launch = a["launch"] as { readonly grid?: readonly number[]; readonly block?: readonly number[]; readonly sharedBytes?: number } | undefined;
  if (launch?.grid && launch.block)
    return `grid ${dims(launch.grid)}, block ${dims(launch.block)}${launch.sharedBytes ? `, ${launch.sharedBytes} B shared` : ""}`;
  return undefined;
}

/** The stage's nodes and module tree (see the module comment). */
function viewStage(
  name: string,
  file: string,
  g: Graph,
  changed: ReadonlySet<number>,
  removed: Readonly<Record<string, number>>,
  nodeKernel: ReadonlyMap<number, number> | undefined,
): ViewStage {
  const index = new Map<ValueId, number>(g.nodes.map((n, i) => [n.id, i]));
  const names = valueNames(g);
  const outputsOf = new Map<number, string[]>();
  for (const o of g.outputs) outputsOf.set(index.get(o.value)!, [...(outputsOf.get(index.get(o.value)!) ?? []), o.name]);
  const nodes = g.nodes.map((n, i): ViewNode => {
    const kernel = nodeKernel?.get(n.id);
    const outs = outputsOf.get(i);
    return {
      id: i,
      name: names.get(n.id)!,
      op: n.op,
      text: printNode(n, names),
      type: formatType(n.type),
      operands: operands(n).map((id) => index.get(id)!),
      ...(n.loc ? { loc: `${n.loc.file}:${n.loc.line}:${n.loc.col}` } : {}),
      ...(n.scope !== undefined ? { scope: n.scope } : {}),
      ...(kernel !== undefined ? { kernel } : {}),
      ...(changed.has(n.id) ? { changed: true as const } : {}),
      ...(outs ? { outputs: outs } : {}),
    };
  });
  const { paths, inferred } = modulePaths(g);
  nodes.forEach((n, i) => {
    if (inferred[i] && paths[i]!.length > 0) (n as { placedIn?: string }).placedIn = paths[i]!.join(".");
  });
  return {
    name,
    file,
    nodes,
    modules: foldModules(
      nodes.map((n) => n.operands),
      paths,
      nodes.map((n) => n.changed === true),
    ),
    outputs: g.outputs.map((o) => ({ name: o.name, node: index.get(o.value)!, ...(o.aliases !== undefined ? { aliases: o.aliases } : {}) })),
    removed,
  };
}

/** Each node's module path (see the module comment), by node index, and whether it was inferred (the node has no scope of its own). */
export function modulePaths(g: Graph): { readonly paths: string[][]; readonly inferred: boolean[] } {
  const index = new Map<ValueId, number>(g.nodes.map((n, i) => [n.id, i]));
  const users: number[][] = g.nodes.map(() => []);
  g.nodes.forEach((n, i) => {
    for (const id of new Set(operands(n))) users[index.get(id)!]!.push(i);
  });
  // Which outputs each node reaches.
  const reaches: Set<number>[] = g.nodes.map(() => new Set<number>());
  g.outputs.forEach((o, j) => reaches[index.get(o.value)!]!.add(j));
  for (let i = g.nodes.length - 1; i >= 0; i--) for (const id of operands(g.nodes[i]!)) for (const j of reaches[i]!) reaches[index.get(id)!]!.add(j);
  const lineOf = (n: Node): string | undefined => (n.loc ? `${n.loc.file}:${n.loc.line}` : undefined);
  const scoped = (n: Node): boolean => n.scope !== undefined && n.scope !== "";
  const lineCount = new Map<string, number>();
  for (const n of g.nodes) if (!scoped(n) && n.op !== "input" && lineOf(n)) lineCount.set(lineOf(n)!, (lineCount.get(lineOf(n)!) ?? 0) + 1);
  const scopes = new Set(g.nodes.filter(scoped).map((n) => n.scope!));
  const paths: string[][] = g.nodes.map(() => []);
  const inferred: boolean[] = g.nodes.map(() => false);
  // The longest common prefix of the users' paths (users come later in node order, so are decided first).
  const usersPrefix = (i: number): string[] => {
    const us = users[i]!;
    if (us.length === 0) return [];
    let prefix = paths[us[0]!]!;
    for (const u of us.slice(1)) {
      const p = paths[u]!;
      let k = 0;
      while (k < prefix.length && k < p.length && prefix[k] === p[k]) k++;
      prefix = prefix.slice(0, k);
    }
    return prefix;
  };
  for (let i = g.nodes.length - 1; i >= 0; i--) {
    const n = g.nodes[i]!;
    if (scoped(n)) {
      paths[i] = n.scope!.split(".");
      continue;
    }
    inferred[i] = true;
    if (n.op === "input") {
      // A parameter lives in its module (`blocks.0.attn.qkv.weight`); other inputs where all their users are.
      const owner = n.name.includes(".") ? n.name.slice(0, n.name.lastIndexOf(".")) : undefined;
      paths[i] = owner !== undefined && scopes.has(owner) ? owner.split(".") : usersPrefix(i);
      continue;
    }
    const outs = [...reaches[i]!];
    const only = outs.length === 1 ? g.outputs[outs[0]!]! : undefined;
    if (only?.aliases !== undefined) {
      // Nested like the model (`(update)/blocks/0/attn/qkv/weight`), so no level holds every parameter.
      paths[i] = ["(update)", ...only.aliases.split(".")];
      continue;
    }
    const prefix = usersPrefix(i);
    if (prefix.length > 0) {
      // What several parameters' updates share (bias corrections, the step count) gets a box of its own.
      paths[i] = prefix[0] === "(update)" ? [...prefix, "(shared)"] : prefix;
      continue;
    }
    const line = lineOf(n);
    paths[i] = line !== undefined && lineCount.get(line)! > 1 ? [`(line) ${line}`] : ["(no module)"];
  }
  return { paths, inferred };
}

/**
 * The module tree of nodes with the given operand lists and paths: module 0 is the root;
 * each edge is lifted to the innermost module holding both ends (see the module comment).
 */
export function foldModules(
  operandLists: readonly (readonly number[])[],
  paths: readonly (readonly string[])[],
  changed: readonly boolean[] = [],
): ViewModule[] {
  interface Building {
    path: string[];
    parent: number;
    nodes: number[];
    children: number[];
    edges: Map<string, [number, number, number]>;
    size: number;
    changed: number;
  }
  const modules: Building[] = [{ path: [], parent: -1, nodes: [], children: [], edges: new Map(), size: 0, changed: 0 }];
  const byKey = new Map<string, number>([["", 0]]);
  const moduleFor = (path: readonly string[]): number => {
    const key = JSON.stringify(path);
    const hit = path.length === 0 ? 0 : byKey.get(key);
    if (hit !== undefined) return hit;
    const parent = moduleFor(path.slice(0, -1));
    const id = modules.length;
    modules.push({ path: [...path], parent, nodes: [], children: [], edges: new Map(), size: 0, changed: 0 });
    modules[parent]!.children.push(id);
    byKey.set(key, id);
    return id;
  };
  const home = paths.map((p, i) => {
    const m = moduleFor(p);
    modules[m]!.nodes.push(i);
    for (let a = m; a >= 0; a = modules[a]!.parent) {
      modules[a]!.size++;
      if (changed[i]) modules[a]!.changed++;
    }
    return m;
  });
  // The chain of modules from the root down to m.
  const chain = (m: number): number[] => {
    const out: number[] = [];
    for (let a = m; a >= 0; a = modules[a]!.parent) out.push(a);
    return out.reverse();
  };
  const chains = modules.map((_, m) => chain(m));
  operandLists.forEach((ops, v) => {
    for (const u of new Set(ops)) {
      const cu = chains[home[u]!]!;
      const cv = chains[home[v]!]!;
      let depth = 0;
      while (depth + 1 < cu.length && depth + 1 < cv.length && cu[depth + 1] === cv[depth + 1]) depth++;
      const lca = cu[depth]!;
      const itemOf = (c: readonly number[], node: number): number => (c.length > depth + 1 ? -(c[depth + 1]! + 1) : node);
      const a = itemOf(cu, u);
      const b = itemOf(cv, v);
      if (a === b) continue;
      const edges = modules[lca]!.edges;
      const key = `${a} ${b}`;
      const e = edges.get(key);
      if (e) e[2]++;
      else edges.set(key, [a, b, 1]);
    }
  });
  return modules.map((m) => ({
    path: m.path,
    parent: m.parent,
    nodes: m.nodes,
    children: m.children,
    edges: [...m.edges.values()],
    size: m.size,
    changed: m.changed,
  }));
}
