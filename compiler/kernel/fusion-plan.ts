// The fusion plan: which values a graph writes to memory (group roots), which it recomputes
// inside kernels, and how groups share kernels. It is the interface between the graph level
// (compiler/passes/fuse.ts decides it) and the kernel level (compiler/kernel/lower.ts reads it),
// kept in its own module so neither imports the other for the type.

import { nodeOf } from "../ir/graph.ts";
import type { Graph, ValueId } from "../ir/types.ts";
import { formatLoc, type SourceLoc } from "../util/errors.ts";
import type { Shape } from "../util/shape.ts";

export interface FusionGroup {
  readonly id: number;
  /** Values this group writes; all share `shape` (its iteration domain). */
  readonly roots: readonly ValueId[];
  readonly shape: Shape;
  /** Values computed inside the group's kernel and never written (movement ops excluded). */
  readonly inlined: readonly ValueId[];
  /** Materialized values (graph inputs or other groups' roots) the group loads. */
  readonly reads: readonly ValueId[];
  /** Groups that must run first (they write values this one reads). */
  readonly deps: readonly number[];
  /** Memory traffic avoided by not materializing the inlined values (write + one read each). */
  readonly savesBytes: number;
  /** Short name from the ops inside ("dot_add_max"; "attention" for an attention group). */
  readonly label: string;
  /**
   * A fused attention (compiler/passes/attention-pattern.ts): the group's one root is
   * dot(softmax(score), value), lowered as an online-softmax `softmax_sum` over the keys.
   */
  readonly attention?: { readonly dot: ValueId; readonly score: ValueId; readonly value: ValueId };
  /**
   * A fused attention backward group (compiler/passes/attention-backward.ts): a point per query
   * row (`query`: dQ and the row statistics) or per key row (`key`: dK, dV). Its roots share
   * all but their last axis (`shape` ends with the widest); lowering computes every column of a
   * row in one point, so the scores it recomputes are shared by the columns.
   */
  readonly attentionGrad?: "query" | "key";
  /**
   * An attention backward's softmax (its scores, row max and row sum) where the group computes
   * the max and sum itself: lowering makes them `softmax_max` and `softmax_norm` of one online
   * pass over the keys instead of a pass for the max and another for the sum.
   */
  readonly softmaxStats?: { readonly score: ValueId; readonly max: ValueId; readonly sum: ValueId };
  /** An attention backward's query group: its q·k and dO·v over at most this many features are written out, not looped (FuseOptions.attentionUnrolledFeatures). */
  readonly unrolledFeatures?: number;
  /** Roots of an attention backward group whose rows run along their last axis, their columns along the one before (dKᵀ). */
  readonly transposedRoots?: readonly ValueId[];
}

export interface FusionPlan {
  /** Groups in a valid launch order. */
  readonly groups: readonly FusionGroup[];
  /** Kernels in launch order, each a list of group ids (several: horizontally fused). */
  readonly kernels: readonly (readonly number[])[];
}

export interface FuseOptions {
  /** Put independent groups of equal dependency depth in one kernel (default true). */
  readonly horizontal?: boolean;
  /** Never inline anything: one group per computed node (a debugging baseline). */
  readonly noFusion?: boolean;
  /**
   * Horizontal fusion stops adding groups to a kernel past this many distinct buffers (a
   * target limit, e.g. WebGPU's 8 storage buffers per stage). A single group may exceed it.
   */
  readonly maxBuffersPerKernel?: number;
  /**
   * Fuse attention (`dot(softmax(S), V)`, compiler/passes/attention-pattern.ts) into one
   * online-softmax kernel: true always, false never; by default only where the scores the
   * unfused kernels would write exceed ATTENTION_FUSE_MIN_BYTES (long sequences: below it the
   * unfused tiled matmuls are faster on every target measured; docs/kernels.md).
   */
  readonly fuseAttention?: boolean;
  /**
   * A fused attention backward's query group writes its recomputed q·k and dO·v out as sums of
   * products (each row's q and dO loaded once per row, not per key and pass) where the feature
   * axis has at most this many elements (absent: loops). Set by the wasm target, whose query
   * rows run four per f32x4 with strided q loads; a GPU shader would grow with it.
   */
  readonly attentionUnrolledFeatures?: number;
}

/** By default attention fuses when its scores ([..., L, S] f32) would take at least this many bytes. */
export const ATTENTION_FUSE_MIN_BYTES = 64 << 20;

/**
 * Where a group comes from: the distinct source locations and module scopes of the nodes it
 * computes (roots and inlined values), in graph order. Lowering puts them on the group's
 * section, so dumps and generated sources name the user's lines.
 */
export function groupSource(g: Graph, grp: FusionGroup): { readonly locs: readonly SourceLoc[]; readonly scopes: readonly string[] } {
  const ids = [...new Set([...grp.roots, ...grp.inlined])].sort((a, b) => a - b);
  const locs = new Map<string, SourceLoc>();
  // Most nodes share their op call's one location object (dsl/loc.ts, withOneLoc): each object
  // is formatted once (a read resolves a deferred location), not twice per node.
  const seen = new Set<SourceLoc>();
  const scopes = new Set<string>();
  for (const id of ids) {
    const n = nodeOf(g, id);
    if (n.loc && !seen.has(n.loc)) {
      seen.add(n.loc);
      const key = formatLoc(n.loc);
      if (!locs.has(key)) locs.set(key, n.loc);
    }
    if (n.scope !== undefined) scopes.add(n.scope);
  }
  return { locs: [...locs.values()], scopes: [...scopes] };
}
