// Operator fusion: decides which values are written to memory (group roots) and which are
// recomputed inside the kernels that use them. Walks the graph from outputs to inputs,
// tracking for every value the indices at which each group reads it (symbolic, through the
// movement ops), so a decision can see whether inlining would recompute anything:
// - movement ops and constants always fold into their users' indices;
// - elementwise ops inline into every user, unless one user group would evaluate them more
//   than 8 times per element (an activation feeding a matmul's k loop is written out once),
//   or their recomputation reads more than 8 values and more than one group reads them (a
//   residual stream is written once per layer, not recomputed from the embedding by every
//   later layer's kernels: that made the IR and the traffic quadratic in depth);
// - a reduction or contraction inlines into its single user group when that group evaluates
//   it once per output element (a softmax row's max and sum; a matmul's bias+ReLU epilogue);
// - a value that must be written (graph output, shared reduction) joins a user group as an
//   extra root when that group reads it at its own output index (multi-output kernels).
// Independent groups at the same dependency depth then share a kernel (horizontal fusion).
// The plan is data (FusionPlan) that lowering, tests and dumps read.

import { nodeOf, uses } from "../ir/graph.ts";
import type { Graph, Node, ValueId } from "../ir/types.ts";
import { opRole, operands, roleView } from "../ir/op-schema.ts";
import { dtypeBytes } from "../ir/dtype.ts";
import { operandIndex } from "../kernel/movement-index.ts";
import { fromAtom, indexKey, indexVar, indexVars, type IndexExpr, type IndexVar } from "../kernel/index-expr.ts";
import { assertNever, bug } from "../util/errors.ts";
import { numel, shapesEqual, type Shape } from "../util/shape.ts";
import type { Pass } from "./pass.ts";
import { ATTENTION_FUSE_MIN_BYTES, groupSource, type FuseOptions, type FusionGroup, type FusionPlan } from "../kernel/fusion-plan.ts";
import { formatLocation, formatScope, valueNames } from "../ir/printer.ts";
import { matchAttention, type AttentionMatch } from "./attention-pattern.ts";
import { findAttentionRegions, type AttentionRegion } from "./attention-backward.ts";

const HORIZONTAL_MAX_ELEMENTS = 1 << 22;
/** An expensive elementwise value is written out when one group would evaluate it more often than this per element. */
const RECOMPUTE_LIMIT = 8;
/** An elementwise value read by several groups is written out when recomputing it reads more values than this. */
const FAN_IN_LIMIT = 16;

interface GroupState {
  readonly id: number;
  readonly shape: Shape;
  readonly roots: ValueId[];
  readonly inlined: Set<ValueId>;
  readonly reads: Set<ValueId>;
  readonly deps: Set<number>;
  /** Evaluation count of the loop scope each variable belongs to. */
  readonly varCount: Map<string, number>;
  readonly vars: IndexVar[];
  nextVar: number;
  /** Set on a fused attention group (one root, the dot); no other value joins it. */
  attention?: AttentionMatch;
  /** Set on a fused attention backward group (its roots are the region's; no other value joins it). */
  attentionGrad?: "query" | "key";
  /** The softmax whose max and sum an attention backward group computes in one online pass (FusionGroup.softmaxStats). */
  softmaxStats?: { score: ValueId; max: ValueId; sum: ValueId };
  /** The column variable of each last-axis extent of an attention backward group's roots. */
  columns?: Map<number, IndexVar>;
  /** Its roots whose rows run along their last axis (their columns along the one before). */
  transposed?: Set<ValueId>;
}

type Accesses = Map<number, Map<string, readonly IndexExpr[]>>;

const keyOf = (index: readonly IndexExpr[]): string => index.map(indexKey).join(", ");

export function planFusion(g: Graph, opts: FuseOptions = {}): FusionPlan {
  const groups: GroupState[] = [];
  const accesses = new Map<ValueId, Accesses>();
  const outputValues = new Set(g.outputs.map((o) => o.value));

  const newGroup = (shape: Shape): GroupState => {
    const vars = shape.map((d, i) => indexVar(`o${i}`, d));
    const varCount = new Map<string, number>();
    let count = 1;
    vars.forEach((v) => varCount.set(v.name, (count *= v.extent)));
    const grp: GroupState = { id: groups.length, shape, roots: [], inlined: new Set(), reads: new Set(), deps: new Set(), varCount, vars, nextVar: 0 };
    groups.push(grp);
    return grp;
  };
  const identity = (grp: GroupState): IndexExpr[] => grp.vars.map((v) => fromAtom(v));
  /** `id` becomes a root (a written value) of `grp`: every other group reading it depends on `grp` and reads it. */
  const addRoot = (grp: GroupState, id: ValueId, acc: Accesses | undefined): void => {
    grp.roots.push(id);
    if (acc)
      for (const gid of acc.keys())
        if (gid !== grp.id) {
          groups[gid]!.deps.add(grp.id);
          groups[gid]!.reads.add(id);
        }
  };
  const placementCount = (grp: GroupState, index: readonly IndexExpr[]): number => {
    let c = 1;
    for (const e of index) for (const v of indexVars(e)) c = Math.max(c, grp.varCount.get(v) ?? bug(`fuse: unknown var ${v}`));
    return c;
  };
  const record = (id: ValueId, grp: GroupState, index: readonly IndexExpr[]): void => {
    let byGroup = accesses.get(id);
    if (!byGroup) accesses.set(id, (byGroup = new Map()));
    let byKey = byGroup.get(grp.id);
    if (!byKey) byGroup.set(grp.id, (byKey = new Map()));
    byKey.set(keyOf(index), index);
  };
  const freshVar = (grp: GroupState, extent: number, count: number): IndexVar => {
    const v = indexVar(`f${grp.nextVar++}`, extent);
    grp.varCount.set(v.name, count);
    return v;
  };
  /** Whether group `from` depends, directly or not, on any group of `targets`: one walk for all of them. */
  const reachesAny = (from: number, targets: ReadonlySet<number>): boolean => {
    const seen = new Set<number>();
    const stack = [from];
    while (stack.length > 0) {
      const gid = stack.pop()!;
      if (gid !== from && targets.has(gid)) return true;
      if (seen.has(gid)) continue;
      seen.add(gid);
      for (const dep of groups[gid]!.deps) if (!seen.has(dep)) stack.push(dep);
    }
    return false;
  };

  /** Records the operand indices of `n` evaluated at `index` inside `grp`. */
  const propagate = (n: Node, grp: GroupState, index: readonly IndexExpr[]): void => {
    const count = placementCount(grp, index);
    const v = roleView(n);
    switch (v.role) {
      case "source":
        // rng's seed is a scalar: read once, at the empty index.
        for (const o of operands(v.node)) record(o, grp, []);
        return;
      case "elementwise":
        for (const o of operands(v.node)) record(o, grp, index);
        return;
      case "movement": {
        const x = nodeOf(g, v.node.x);
        return record(v.node.x, grp, operandIndex(v.node, x.type, index).index);
      }
      case "reduce": {
        const r = v.node;
        const x = nodeOf(g, r.x);
        const extents = r.axes.map((a) => x.type.shape[a]!);
        const inner = count * numel(extents);
        const inIndex = [...index];
        r.axes.forEach((a) => (inIndex[a] = fromAtom(freshVar(grp, x.type.shape[a]!, inner))));
        return record(r.x, grp, inIndex);
      }
      case "contraction": {
        const d = v.node;
        const lhs = nodeOf(g, d.lhs);
        const r = lhs.type.shape.length;
        const kExtent = lhs.type.shape[r - 1]!;
        const k = fromAtom(freshVar(grp, kExtent, count * kExtent));
        record(d.lhs, grp, [...index.slice(0, r - 1), k]);
        record(d.rhs, grp, [...index.slice(0, r - 2), k, index[r - 1]!]);
        return;
      }
      case "gather": {
        const ga = v.node;
        const x = nodeOf(g, ga.x);
        record(ga.index, grp, index);
        const xIndex = [...index];
        xIndex[ga.axis] = fromAtom(freshVar(grp, x.type.shape[ga.axis]!, count));
        return record(ga.x, grp, xIndex);
      }
      default:
        return assertNever(v, "op role");
    }
  };

  const totalCount = (acc: Accesses): number => {
    let total = 0;
    for (const [gid, byKey] of acc) for (const index of byKey.values()) total += placementCount(groups[gid]!, index);
    return total;
  };

  /** The most evaluations any one group makes (recomputing across groups is what fusion trades for traffic). */
  const maxGroupCount = (acc: Accesses): number => {
    let most = 0;
    for (const [gid, byKey] of acc) {
      let total = 0;
      for (const index of byKey.values()) total += placementCount(groups[gid]!, index);
      most = Math.max(most, total);
    }
    return most;
  };

  /** Makes `n` a root: of a user group that reads it at its own index, else of a new group. */
  const materialize = (n: Node, acc: Accesses | undefined, requireOnlyIdentity: boolean): void => {
    let target: GroupState | undefined;
    if (acc && !opts.noFusion) {
      for (const [gid, byKey] of acc) {
        const grp = groups[gid]!;
        if (grp.attention || grp.attentionGrad || !shapesEqual(grp.shape, n.type.shape)) continue;
        if (!byKey.has(keyOf(identity(grp)))) continue;
        if (requireOnlyIdentity && byKey.size !== 1) continue;
        if (acc.size > 1 && reachesAny(gid, new Set(acc.keys()))) continue;
        target = grp;
        break;
      }
    }
    const grp = target ?? newGroup(n.type.shape);
    addRoot(grp, n.id, acc);
    const own = target ? acc!.get(grp.id)!.values() : [identity(grp)];
    for (const index of own) propagate(n, grp, index);
  };

  /**
   * A fused attention: `m.dot` becomes the root of a group of its own that reads the scores at
   * (row, key j) and the values at (key j, column), j a loop of the row (not of each output:
   * every column of a row shares one pass over the keys). The softmax between them is computed
   * online by the kernel, so its nodes are counted as inlined and read by nobody here.
   */
  const attentionGroups = new Map<ValueId, GroupState>();
  const attend = (n: Node, acc: Accesses | undefined, m: AttentionMatch): void => {
    const grp = newGroup(n.type.shape);
    grp.attention = m;
    attentionGroups.set(n.id, grp);
    grp.roots.push(n.id);
    for (const id of m.absorbed) grp.inlined.add(id);
    if (acc)
      for (const gid of acc.keys()) {
        groups[gid]!.deps.add(grp.id);
        groups[gid]!.reads.add(n.id);
      }
    const r = n.type.shape.length;
    const keys = nodeOf(g, m.score).type.shape[r - 1]!;
    const rowCount = grp.varCount.get(grp.vars[r - 2]!.name)!;
    const j = fromAtom(freshVar(grp, keys, rowCount * keys));
    const out = identity(grp);
    record(m.score, grp, [...out.slice(0, r - 1), j]);
    record(m.value, grp, [...out.slice(0, r - 2), j, out[r - 1]!]);
  };

  /**
   * An attention backward's group (compiler/passes/attention-backward.ts): a point per query
   * row (`query`) or key row (`key`) that computes every column of its roots, so the scores it
   * recomputes inside are shared by the columns. Created when fusion meets its first root.
   */
  const gradGroups = new Map<string, GroupState>();
  /** The softmax max and sum an attention forward writes for its backward (keyed by the statistic), with the forward's dot. */
  const forwardStat = new Map<ValueId, { dot: ValueId; region: AttentionRegion }>();
  const rootInGrad = (n: Node, acc: Accesses | undefined, region: AttentionRegion, part: "query" | "key"): void => {
    const regionKey = `${region.score}:${part}`;
    let grp = gradGroups.get(regionKey);
    if (!grp) {
      const scoreShape = nodeOf(g, region.score).type.shape;
      const roots = part === "query" ? region.queryRoots : region.keyRoots;
      const columns = Math.max(...roots.map((id) => nodeOf(g, id).type.shape.at(region.transposed.has(id) ? -2 : -1)!));
      const rows = part === "query" ? scoreShape.slice(0, -1) : [...scoreShape.slice(0, -2), scoreShape.at(-1)!];
      grp = newGroup([...rows, columns]);
      grp.attentionGrad = part;
      grp.softmaxStats = { score: region.score, max: region.max, sum: region.sum };
      grp.columns = new Map();
      grp.transposed = new Set();
      for (const id of region.inlined) if (!forwardStat.has(id)) grp.inlined.add(id);
      gradGroups.set(regionKey, grp);
    }
    addRoot(grp, n.id, acc);
    const shape = n.type.shape;
    const flip = part === "key" && region.transposed.has(n.id);
    if (flip) grp.transposed!.add(n.id);
    const c = shape.at(flip ? -2 : -1)!;
    const rowVars = grp.vars.slice(0, -1).map((v) => fromAtom(v));
    let col = grp.columns!.get(c);
    if (!col) grp.columns!.set(c, (col = freshVar(grp, c, numel(shape))));
    propagate(n, grp, flip ? [...rowVars.slice(0, -1), fromAtom(col), rowVars.at(-1)!] : [...rowVars, fromAtom(col)]);
  };

  const inline = (n: Node, acc: Accesses): void => {
    for (const [gid, byKey] of acc) {
      const grp = groups[gid]!;
      if (n.op !== "const" && n.op !== "iota" && opRole(n.op) !== "movement") grp.inlined.add(n.id);
      for (const index of byKey.values()) propagate(n, grp, index);
    }
  };

  // Values computed from constants and iota alone (a causal mask) cost no memory to recompute.
  const pure = new Set<ValueId>();
  for (const n of g.nodes) {
    const leafOk = n.op === "const" || n.op === "iota";
    const opsOk = opRole(n.op) === "elementwise" || opRole(n.op) === "movement";
    if (leafOk || (opsOk && operands(n).every((o) => pure.has(o)))) pure.add(n.id);
  }

  // Conditions built from iota, constants and a symbolic dimension's size input: the masks of
  // mask-symbolic (compiler/passes/mask-symbolic.ts). A masked operand is materialized, so the
  // contraction or reduction reading it sees a plain buffer, as in the program of a fixed batch
  // (a `where` inlined into a contraction's operand would keep a backend off its blocked matmul).
  const maskConds = new Set<ValueId>();
  for (const n of g.nodes) {
    const leafOk = n.op === "const" || n.op === "iota" || (n.op === "input" && n.dimMax !== undefined);
    const opsOk = opRole(n.op) === "elementwise" || opRole(n.op) === "movement";
    if (leafOk || (opsOk && operands(n).length > 0 && operands(n).every((o) => maskConds.has(o)))) maskConds.add(n.id);
  }
  const symbolicMask = (n: Node): boolean => n.op === "where" && !pure.has(n.id) && maskConds.has(n.cond) && !maskConds.has(n.x);
  const wide = wideValues(g, pure);

  // Attention backwards fuse where the forward would (same option and threshold).
  const fusesAttention = (score: ValueId): boolean =>
    !opts.noFusion && opts.fuseAttention !== false && (opts.fuseAttention === true || numel(nodeOf(g, score).type.shape) * 4 >= ATTENTION_FUSE_MIN_BYTES);
  const regions = opts.noFusion || opts.fuseAttention === false ? [] : findAttentionRegions(g, fusesAttention);
  const gradRoot = new Map<ValueId, { region: AttentionRegion; part: "query" | "key" }>();
  const gradInlined = new Set<ValueId>();
  const forwardOf = new Map<ValueId, AttentionMatch>();
  for (const region of regions) {
    // With the forward in the program, its kernel writes the softmax's row max and sum (its
    // online m and l) and the backward's groups read them instead of computing them again.
    if (region.forward) {
      forwardOf.set(region.forward.dot, region.forward);
      for (const id of [region.max, region.sum]) forwardStat.set(id, { dot: region.forward.dot, region });
    }
    for (const id of region.queryRoots) if (!forwardStat.has(id)) gradRoot.set(id, { region, part: "query" });
    for (const id of region.keyRoots) gradRoot.set(id, { region, part: "key" });
    for (const id of region.inlined) if (!forwardStat.has(id)) gradInlined.add(id);
  }

  for (let i = g.nodes.length - 1; i >= 0; i--) {
    const n = g.nodes[i]!;
    const acc = accesses.get(n.id);
    if (n.op === "input") {
      if (acc) for (const gid of acc.keys()) groups[gid]!.reads.add(n.id);
      continue;
    }
    const isOutput = outputValues.has(n.id);
    if (!acc && !isOutput) continue; // dead
    const stat = forwardStat.get(n.id);
    const statGroup = stat && attentionGroups.get(stat.dot);
    if (stat && statGroup) {
      statGroup.inlined.delete(n.id);
      statGroup.softmaxStats = { score: stat.region.score, max: stat.region.max, sum: stat.region.sum };
      addRoot(statGroup, n.id, acc);
      continue;
    }
    const grad = gradRoot.get(n.id);
    if (grad) {
      rootInGrad(n, acc, grad.region, grad.part);
      continue;
    }
    // Inside an attention backward everything is recomputed from q, k, v and dO (the forward's
    // group reads the scores' chain too).
    if (gradInlined.has(n.id) && !isOutput) {
      if (acc) inline(n, acc);
      continue;
    }
    let attention = forwardOf.get(n.id) ?? (opts.noFusion || opts.fuseAttention === false ? undefined : matchAttention(g, n));
    if (attention && opts.fuseAttention === undefined && numel(nodeOf(g, attention.score).type.shape) * 4 < ATTENTION_FUSE_MIN_BYTES) attention = undefined;
    if (attention) {
      attend(n, acc, attention);
      continue;
    }
    if (isOutput || opts.noFusion) {
      if (opts.noFusion && !isOutput && (n.op === "const" || n.op === "iota" || opRole(n.op) === "movement")) {
        inline(n, acc!);
        continue;
      }
      materialize(n, acc, opRole(n.op) === "contraction" || opRole(n.op) === "reduce");
      continue;
    }
    if (n.op === "const" || n.op === "iota" || opRole(n.op) === "movement") {
      inline(n, acc!);
      continue;
    }
    if (opRole(n.op) === "contraction" || opRole(n.op) === "reduce") {
      if (acc!.size === 1 && totalCount(acc!) <= numel(n.type.shape)) inline(n, acc!);
      else materialize(n, acc, true);
      continue;
    }
    // An attention's masked scores stay inline: its kernel has no blocked matmul to keep.
    const onlyAttention = [...acc!.keys()].every((gid) => groups[gid]!.attention);
    if (
      (symbolicMask(n) && !onlyAttention) ||
      (!pure.has(n.id) && maxGroupCount(acc!) > RECOMPUTE_LIMIT * numel(n.type.shape)) ||
      (wide.has(n.id) && acc!.size > 1 && !onlyAttention)
    ) {
      materialize(n, acc, true);
      continue;
    }
    inline(n, acc!);
  }
  return finishPlan(g, groups, opts);
}

/**
 * Elementwise values (and gathers) whose recomputation would read more than FAN_IN_LIMIT
 * distinct values — inputs, reductions, contractions, or wide values used more than once,
 * which are written out and count as one — in one forward walk, each node's set capped at
 * the limit (linear in the graph). A wide value used once stays inline: its one user pays
 * the same reads either way.
 */
function wideValues(g: Graph, pure: ReadonlySet<ValueId>): Set<ValueId> {
  const useCount = uses(g);
  const wide = new Set<ValueId>();
  // null: more than FAN_IN_LIMIT
  const reads = new Map<ValueId, readonly ValueId[] | null>();
  for (const n of g.nodes) {
    const role = opRole(n.op);
    if (pure.has(n.id)) reads.set(n.id, []);
    else if (role === "elementwise" || role === "movement" || role === "gather") {
      let set: ValueId[] | null = [];
      for (const o of operands(n)) {
        const from = reads.get(o);
        if (from === null || from === undefined) {
          set = null;
          break;
        }
        for (const id of from) if (!set.includes(id)) set.push(id);
        if (set.length > FAN_IN_LIMIT) {
          set = null;
          break;
        }
      }
      if (set === null && role !== "movement" && (useCount.get(n.id)?.length ?? 0) > 1) {
        wide.add(n.id);
        set = [n.id];
      }
      reads.set(n.id, set);
    } else reads.set(n.id, [n.id]);
  }
  return wide;
}

function finishPlan(g: Graph, states: readonly GroupState[], opts: FuseOptions): FusionPlan {
  // Launch order: depth-first over deps, visiting groups in creation order reversed (upstream first).
  const order: number[] = [];
  const state = new Map<number, "visiting" | "done">();
  const visit = (gid: number): void => {
    const s = state.get(gid);
    if (s === "done") return;
    if (s === "visiting") bug(`fuse: dependency cycle through group ${gid}`);
    state.set(gid, "visiting");
    for (const d of [...states[gid]!.deps].sort((a, b) => b - a)) visit(d);
    state.set(gid, "done");
    order.push(gid);
  };
  for (let gid = states.length - 1; gid >= 0; gid--) visit(gid);
  const renumber = new Map(order.map((old, i) => [old, i]));
  const groups: FusionGroup[] = order.map((old, i) => {
    const s = states[old]!;
    const inlined = [...s.inlined].sort((a, b) => a - b);
    const savesBytes = inlined.reduce((sum, id) => {
      const t = nodeOf(g, id).type;
      return sum + 2 * numel(t.shape) * dtypeBytes(t.dtype);
    }, 0);
    return {
      id: i,
      roots: [...s.roots].sort((a, b) => a - b),
      shape: s.shape,
      inlined,
      reads: [...s.reads].sort((a, b) => a - b),
      deps: [...s.deps].map((d) => renumber.get(d)!).sort((a, b) => a - b),
      savesBytes,
      label: s.attention
        ? "attention"
        : s.attentionGrad === "query"
          ? "attention_dq"
          : s.attentionGrad === "key"
            ? "attention_dkv"
            : groupLabel(g, [...inlined, ...s.roots]),
      ...(s.attention ? { attention: { dot: s.attention.dot, score: s.attention.score, value: s.attention.value } } : {}),
      ...(s.attentionGrad ? { attentionGrad: s.attentionGrad } : {}),
      ...(s.softmaxStats ? { softmaxStats: s.softmaxStats } : {}),
      ...(s.attentionGrad === "query" && opts.attentionUnrolledFeatures ? { unrolledFeatures: opts.attentionUnrolledFeatures } : {}),
      ...(s.transposed?.size ? { transposedRoots: [...s.transposed].sort((a, b) => a - b) } : {}),
    };
  });
  return { groups, kernels: horizontalKernels(g, groups, opts) };
}

function groupLabel(g: Graph, ids: readonly ValueId[]): string {
  const ops: string[] = [];
  for (const id of [...ids].sort((a, b) => a - b)) {
    const op = nodeOf(g, id).op;
    if (!ops.includes(op)) ops.push(op);
  }
  const shown = ops.slice(0, 4).map((op) => op.replace("reduce_", ""));
  return shown.join("_") || "copy";
}

/** Groups at equal dependency depth are independent: they share a kernel (small ones only). */
function horizontalKernels(g: Graph, groups: readonly FusionGroup[], opts: FuseOptions): number[][] {
  if (opts.horizontal === false) return groups.map((grp) => [grp.id]);
  const maxBuffers = opts.maxBuffersPerKernel ?? Infinity;
  // An in-place update (an output aliasing an input) must not share a kernel with a group
  // reading that input: sections of one kernel may run concurrently on a GPU.
  const inputByName = new Map(g.inputs.map((id) => [(nodeOf(g, id) as Extract<Node, { op: "input" }>).name, id]));
  const updated = new Map<ValueId, ValueId>();
  for (const o of g.outputs) if (o.aliases !== undefined && inputByName.has(o.aliases)) updated.set(o.value, inputByName.get(o.aliases)!);
  const updatesOf = (grp: FusionGroup): ValueId[] => grp.roots.flatMap((r) => (updated.has(r) ? [updated.get(r)!] : []));
  const conflict = (a: FusionGroup, b: FusionGroup): boolean => updatesOf(a).some((x) => b.reads.includes(x)) || updatesOf(b).some((x) => a.reads.includes(x));
  const buffersOf = (ids: readonly number[]): Set<ValueId> => new Set(ids.flatMap((gid) => [...groups[gid]!.reads, ...groups[gid]!.roots]));
  const level: number[] = [];
  for (const grp of groups) level[grp.id] = grp.deps.reduce((m, d) => Math.max(m, level[d]! + 1), 0);
  const maxLevel = Math.max(0, ...level);
  const hasDependents = new Set(groups.flatMap((grp) => grp.deps));
  const kernels: number[][] = [];
  const openByLevel = new Map<number, number[][]>();
  const fits = (kernel: readonly number[], grp: FusionGroup): boolean =>
    buffersOf([...kernel, grp.id]).size <= maxBuffers && !kernel.some((other) => conflict(groups[other]!, grp));
  const place = (grp: FusionGroup, latest: number): void => {
    const small = numel(grp.shape) <= HORIZONTAL_MAX_ELEMENTS;
    if (small)
      for (let l = level[grp.id]!; l <= latest; l++) {
        const open = (openByLevel.get(l) ?? []).find((kernel) => fits(kernel, grp));
        if (open) {
          open.push(grp.id);
          level[grp.id] = l;
          return;
        }
      }
    const kernel = [grp.id];
    kernels.push(kernel);
    if (small) openByLevel.set(level[grp.id]!, [...(openByLevel.get(level[grp.id]!) ?? []), kernel]);
  };
  // Groups nothing depends on (parameter updates, outputs) may run as late as the last level:
  // placing them after the others lets them share a kernel they do not conflict with.
  for (const grp of groups) if (hasDependents.has(grp.id)) place(grp, level[grp.id]!);
  for (const grp of groups) if (!hasDependents.has(grp.id)) place(grp, maxLevel);
  // Deps sit at lower levels, so ordering kernels by level keeps every dep earlier. Within a
  // level, a kernel reading an input runs before the kernel updating it in place.
  const kernelLevel = (k: readonly number[]): number => level[k[0]!]!;
  const reads = (k: readonly number[]): Set<ValueId> => new Set(k.flatMap((gid) => groups[gid]!.reads));
  const updates = (k: readonly number[]): ValueId[] => k.flatMap((gid) => updatesOf(groups[gid]!));
  const mustPrecede = (a: readonly number[], b: readonly number[]): boolean => {
    const r = reads(a);
    return updates(b).some((x) => r.has(x));
  };
  const byLevel = [...kernels.keys()].sort((a, b) => kernelLevel(kernels[a]!) - kernelLevel(kernels[b]!) || a - b);
  const ordered: number[] = [];
  const remaining = [...byLevel];
  while (remaining.length > 0) {
    const lvl = kernelLevel(kernels[remaining[0]!]!);
    const sameLevel = remaining.filter((i) => kernelLevel(kernels[i]!) === lvl);
    // First kernel of this level that no other waiting kernel must precede (else the first: a cycle is left to memory planning).
    const next = sameLevel.find((i) => !sameLevel.some((j) => j !== i && mustPrecede(kernels[j]!, kernels[i]!))) ?? sameLevel[0]!;
    ordered.push(next);
    remaining.splice(remaining.indexOf(next), 1);
  }
  return ordered.map((i) => kernels[i]!);
}

/** A one-line summary per kernel for dumps: `k3 [dot_add_max] f32[128,512] fused: saves 1.2 MB`. */
export function formatFusionPlan(g: Graph, plan: FusionPlan): string {
  const lines = [`fusion @${g.name}: ${plan.kernels.length} kernels, ${plan.groups.length} groups`];
  // Roots by their names in the graph dump (`%12`, `%x`), so a group is found in the .kir by search.
  const names = valueNames(g);
  plan.kernels.forEach((k, i) => {
    for (const gid of k) {
      const grp = plan.groups[gid]!;
      const saves = grp.savesBytes > 0 ? ` fused: saves ${formatBytes(grp.savesBytes)}` : "";
      const source = groupSource(g, grp);
      const from = [...source.locs.map(formatLocation), ...source.scopes.map(formatScope)].join(" ");
      lines.push(
        `  k${i} g${gid} [${grp.label}] [${grp.shape.join(",")}] roots=${grp.roots.map((r) => names.get(r)).join(",")} inlined=${grp.inlined.length}${saves}${from ? `  ${from}` : ""}`,
      );
    }
  });
  return lines.join("\n");
}

export function formatBytes(bytes: number): string {
  if (bytes >= 1e6) return `${(bytes / 1e6).toFixed(1)} MB`;
  if (bytes >= 1e3) return `${(bytes / 1e3).toFixed(1)} kB`;
  return `${bytes} B`;
}

/**
 * The pass: records the plan in ctx.facts ("fusion"); the graph itself is unchanged. When
 * dumped it also writes the groups (with their byte scores); the graph-only pipeline of
 * compiler/pipeline.ts adds the lowered kernel IR (lowering is the kernel level's job).
 */
export const fuse: Pass = {
  name: "fuse",
  run(g, ctx) {
    const plan = planFusion(g);
    ctx.facts.set("fusion", plan);
    if (ctx.dumping) {
      ctx.dump(`${ctx.step}-fuse.groups.txt`, formatFusionPlan(g, plan));
    }
    return g;
  },
};
