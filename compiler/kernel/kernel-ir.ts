// The kernel IR: a target-neutral loop nest per fused group. A kernel has one or more
// sections (horizontal fusion puts independent groups side by side); a section iterates an
// output domain and stores one or more values, each a DAG of hash-consed expressions whose
// leaves are loads through symbolic indices. A `reduce` expression owns its loop: targets
// place every expression at the shallowest loop where its variables are bound, which is
// what makes softmax/layerNorm one kernel (the row's max and sum are hoisted per row).

import { hasBinaryOp, hasUnaryOp, type BinaryOp, type UnaryOp } from "../ir/types.ts";
import type { DType } from "../ir/dtype.ts";
import { assertNever, bug, type SourceLoc } from "../util/errors.ts";
import { indexDataRefs, indexKey, indexVars, predKey, type IndexExpr, type IndexPred, type IndexVar } from "./index-expr.ts";

export type ExprId = number;

interface ExprBase {
  readonly dtype: DType;
}
export type KExpr = ExprBase &
  (
    | { readonly op: "const"; readonly value: number }
    /** Element `index` of a buffer; where `valid` fails the load yields 0 and touches nothing. */
    | { readonly op: "load"; readonly buffer: number; readonly index: IndexExpr; readonly valid: IndexPred }
    /** An index expression as an i32 value (iota). */
    | { readonly op: "index"; readonly index: IndexExpr }
    /** A validity predicate as a bool value (pad's mask). */
    | { readonly op: "valid"; readonly pred: IndexPred }
    | { readonly op: UnaryOp; readonly x: ExprId }
    | { readonly op: "cast"; readonly x: ExprId }
    | { readonly op: BinaryOp; readonly x: ExprId; readonly y: ExprId }
    | { readonly op: "where"; readonly cond: ExprId; readonly x: ExprId; readonly y: ExprId }
    /** threefry2x32 uniform for key (seed, stream) at a counter (flat output index). */
    | { readonly op: "rng"; readonly seed: ExprId; readonly stream: number; readonly counter: IndexExpr }
    /** Sum or max of `body` over `vars` (its own loop variables). */
    | { readonly op: "reduce_sum" | "reduce_max"; readonly vars: readonly IndexVar[]; readonly body: ExprId }
    /**
     * Σ_j softmax_j(score) · value over `vars` (j): attention's weighted sum, the softmax's row
     * max and sum folded in on the fly (online softmax), so no score is ever stored. A row whose
     * every score is -inf gives NaN, as the unfused softmax (0/0) does. See docs/kernel-ir.md.
     */
    | { readonly op: "softmax_sum"; readonly vars: readonly IndexVar[]; readonly score: ExprId; readonly value: ExprId }
    /**
     * The online softmax's own row statistics over `vars`: `softmax_max` the max of the scores
     * (the running m at the end), `softmax_norm` Σ_j 2^((score_j − max)·log2 e) (the running
     * l). Beside softmax_sums of the same score and loop they cost nothing more: an attention
     * that keeps its statistics for the backward (docs/kernel-ir.md, "Attention").
     */
    | { readonly op: "softmax_max" | "softmax_norm"; readonly vars: readonly IndexVar[]; readonly score: ExprId }
  );

/** The reductions: expressions that own loop variables (a schedule gives each group of them a loop). */
export type ReduceExpr = Extract<KExpr, { op: "reduce_sum" | "reduce_max" | "softmax_sum" | "softmax_max" | "softmax_norm" }>;
export const isReduceExpr = (e: KExpr): e is ReduceExpr =>
  e.op === "reduce_sum" || e.op === "reduce_max" || e.op === "softmax_sum" || e.op === "softmax_max" || e.op === "softmax_norm";
/** The online softmax's reductions (softmax_sum and the statistics): a renderer runs their key loop as one online softmax. */
export type OnlineExpr = Extract<KExpr, { op: "softmax_sum" | "softmax_max" | "softmax_norm" }>;
export const isOnlineExpr = (e: KExpr): e is OnlineExpr => e.op === "softmax_sum" || e.op === "softmax_max" || e.op === "softmax_norm";
/** The operands a reduction evaluates inside its loop. */
export const reduceBodies = (e: ReduceExpr): ExprId[] => (e.op === "softmax_sum" ? [e.score, e.value] : isOnlineExpr(e) ? [e.score] : [e.body]);

export interface Store {
  readonly buffer: number;
  readonly index: IndexExpr;
  readonly value: ExprId;
}

/** Register tiling of two domain loops (a contraction's M and N): codegen computes a tile per iteration. */
export interface TileHint {
  readonly rowVar: string;
  readonly colVar: string;
  readonly rows: number;
  readonly cols: number;
}

/**
 * A contraction (a graph `dot`) as lowering found it: `reduce` is a reduce_sum of
 * mul(lhs, rhs), where lhs is the row-side operand (the dot's lhs, [..., M, K]) and rhs the
 * column side ([..., K, N]). Backends read this fact to pick a matmul form instead of
 * recognizing the pattern; passes that copy a section's expressions carry it along.
 */
export interface DotFact {
  readonly reduce: ExprId;
  readonly lhs: ExprId;
  readonly rhs: ExprId;
}

/**
 * How a contraction renders as a matmul: register blocks per thread, workgroup-memory tiles,
 * or register blocks whose row operands a subgroup loads once and shares by broadcast
 * (`subgroup`: for an adapter with subgroups of one fixed size, such as lavapipe's 8 lanes).
 */
export type MatmulForm = "registers" | "workgroup" | "subgroup";

/** Every MatmulForm, in the order the kernel IR's text names them. */
export const MATMUL_FORMS: readonly MatmulForm[] = ["registers", "workgroup", "subgroup"];

/**
 * A kernel template a target chose for a section (webgpu's `row-kernels` and `matmul-form`
 * passes, targets/webgpu-passes.ts), used when the section is alone in its dispatch:
 * `row` runs one workgroup per row, its row-level reductions shared by the workgroup's
 * `threads` (a power of two; absent: 64);
 * `matmul` renders the section's one `dot` fact as a tiled matmul in its own dispatch;
 * `vector` runs `width` consecutive elements of the innermost domain loop per thread with
 * vector loads and stores (in any dispatch; codegen falls back to one element per thread
 * where the buffers' placement is not aligned);
 * `attention` (set by lowering on a fused attention group, docs/kernel-ir.md) keeps every
 * other template and pass off the section: its `softmax_sum` loops render as online softmax;
 * `prologue` (wasm's block-contraction pass: a GEMM's column-panel pack) is not launched: section
 * `of` of the same kernel runs it at each iteration of its split loop, over that iteration alone
 * (the section's own split loop bound to the same value), so each thread packs the panels it
 * is about to read while they are still in cache. Prologue sections come after every launched one.
 * Absent: one thread per output element.
 */
export type SectionForm =
  | { readonly kind: "row"; readonly threads?: number }
  | { readonly kind: "matmul"; readonly form: MatmulForm; readonly params?: MatmulParams }
  | { readonly kind: "vector"; readonly width: number }
  | { readonly kind: "attention" }
  | { readonly kind: "prologue"; readonly of: number };

/**
 * The sizes a matmul form renders with, recorded in its `form matmul …` fact so a pass (or an
 * autotuner) chooses them and codegen only reads them: each thread's block of outputs
 * (`rows` × `cols`), the threads of one workgroup, and how many k steps one loop iteration takes
 * (`unroll`: registers form; the workgroup form's k tile). Absent: the renderer's defaults.
 */
export interface MatmulParams {
  readonly rows: number;
  readonly cols: number;
  readonly threads: number;
  readonly unroll: number;
}

/** The names of MatmulParams in the text form, in print order. */
export const MATMUL_PARAM_KEYS = ["rows", "cols", "threads", "unroll"] as const;

export interface Section {
  /** Loop variables of the output domain, outermost first. */
  readonly domain: readonly IndexVar[];
  /** Expressions in topological order (an expression's operands have smaller ids). */
  readonly exprs: readonly KExpr[];
  readonly stores: readonly Store[];
  readonly tile?: TileHint;
  /** The contractions among `exprs` (one per copy after register tiling), in expression order. */
  readonly dots?: readonly DotFact[];
  /** The kernel template a target's pass chose (see SectionForm); absent: one thread per output. */
  readonly form?: SectionForm;
  /** The user's source lines the section was lowered from (distinct, in graph order). */
  readonly locs?: readonly SourceLoc[];
  /** Module paths (`blocks.0.attn`) of the nodes the section computes (distinct, in graph order). */
  readonly scopes?: readonly string[];
}

export interface Kernel {
  readonly name: string;
  readonly sections: readonly Section[];
  /** Buffer ids read and written, sorted; the launch binds these. */
  readonly reads: readonly number[];
  readonly writes: readonly number[];
}

export interface BufferDecl {
  readonly id: number;
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly kind: "input" | "output" | "temp";
  /** Axis `axis` holds `scale` × the program's symbolic dimension at run time (`shape` holds the maximum; compiler/ir/symbolic.ts). */
  readonly symbolic?: { readonly axis: number; readonly scale: number };
  /** On the symbolic dimension's size buffer (an i32[] input named after it): its maximum. */
  readonly dimMax?: number;
}

/** A whole compiled graph at the kernel level: buffers and kernels in launch order. */
export interface KernelProgram {
  readonly name: string;
  readonly buffers: readonly BufferDecl[];
  readonly kernels: readonly Kernel[];
  readonly inputs: readonly { readonly name: string; readonly buffer: number }[];
  readonly outputs: readonly { readonly name: string; readonly buffer: number; readonly aliases?: string }[];
}

export function exprOperands(e: KExpr): ExprId[] {
  if (hasBinaryOp(e)) return [e.x, e.y];
  switch (e.op) {
    case "const":
      return [];
    case "index":
      return [...indexDataRefs(e.index)];
    case "valid":
      return e.pred === false ? [] : e.pred.flatMap((c) => [...indexDataRefs(c.x)]);
    case "load":
      return [...indexDataRefs(e.index), ...(e.valid === false ? [] : e.valid.flatMap((c) => [...indexDataRefs(c.x)]))];
    case "rng":
      return [e.seed, ...indexDataRefs(e.counter)];
    case "where":
      return [e.cond, e.x, e.y];
    case "reduce_sum":
    case "reduce_max":
      return [e.body];
    case "softmax_sum":
      return [e.score, e.value];
    case "softmax_max":
    case "softmax_norm":
      return [e.score];
    case "cast":
    case "neg":
    case "exp2":
    case "log2":
    case "sin":
    case "sqrt":
    case "recip":
      return [e.x];
    default:
      return assertNever(e, "kernel expr");
  }
}

/** Loop variables an expression node reads directly (not through operands). */
export function exprOwnVars(e: KExpr): Set<string> {
  switch (e.op) {
    case "load": {
      const vs = indexVars(e.index);
      if (e.valid !== false) for (const c of e.valid) indexVars(c.x, vs);
      return vs;
    }
    case "index":
      return indexVars(e.index);
    case "valid": {
      const vs = new Set<string>();
      if (e.pred !== false) for (const c of e.pred) indexVars(c.x, vs);
      return vs;
    }
    case "rng":
      return indexVars(e.counter);
    case "const":
    case "where":
    case "cast":
    case "reduce_sum":
    case "reduce_max":
    case "softmax_sum":
    case "softmax_max":
    case "softmax_norm":
      return new Set();
    default:
      // unary and binary ops read only operands
      return hasUnaryOp(e) || hasBinaryOp(e) ? new Set() : assertNever(e, "kernel expr");
  }
}

function exprKey(e: KExpr): string {
  switch (e.op) {
    case "const":
      return `const ${e.dtype} ${Object.is(e.value, -0) ? "-0" : String(e.value)}`;
    case "load":
      return `load ${e.dtype} b${e.buffer}[${indexKey(e.index)}] if ${predKey(e.valid)}`;
    case "index":
      return `index ${indexKey(e.index)}`;
    case "valid":
      return `valid ${predKey(e.pred)}`;
    case "rng":
      return `rng ${e.seed} ${e.stream} ${indexKey(e.counter)}`;
    case "reduce_sum":
    case "reduce_max":
      return `${e.op} ${e.dtype} ${e.vars.map((v) => `${v.name}<${v.extent}`).join(",")} ${e.body}`;
    case "softmax_sum":
      return `${e.op} ${e.dtype} ${e.vars.map((v) => `${v.name}<${v.extent}`).join(",")} ${e.score} ${e.value}`;
    case "softmax_max":
    case "softmax_norm":
      return `${e.op} ${e.dtype} ${e.vars.map((v) => `${v.name}<${v.extent}`).join(",")} ${e.score}`;
    case "where":
    case "cast":
      return `${e.op} ${e.dtype} ${exprOperands(e).join(" ")}`;
    default:
      return hasUnaryOp(e) || hasBinaryOp(e) ? `${e.op} ${e.dtype} ${exprOperands(e).join(" ")}` : assertNever(e, "kernel expr");
  }
}

/** Builds one section's expression DAG with structural hash-consing (free CSE). */
export class SectionBuilder {
  private readonly exprs: KExpr[] = [];
  private readonly byKey = new Map<string, ExprId>();
  private readonly stores: Store[] = [];
  private readonly dots = new Map<ExprId, DotFact>();
  private varCount = 0;

  constructor(readonly domain: readonly IndexVar[]) {}

  add(e: KExpr): ExprId {
    const key = exprKey(e);
    const found = this.byKey.get(key);
    if (found !== undefined) return found;
    for (const o of exprOperands(e)) if (o >= this.exprs.length) bug(`kernel: operand ${o} not yet defined`);
    this.exprs.push(e);
    this.byKey.set(key, this.exprs.length - 1);
    return this.exprs.length - 1;
  }

  get(id: ExprId): KExpr {
    return this.exprs[id] ?? bug(`kernel: expr ${id} not defined`);
  }

  /** A fresh reduction variable. */
  freshVar(extent: number): IndexVar {
    return { kind: "var", name: `r${this.varCount++}`, extent };
  }

  store(buffer: number, index: IndexExpr, value: ExprId): void {
    this.stores.push({ buffer, index, value });
  }

  /** Records that `reduce` (a reduce_sum of mul(lhs, rhs)) is a contraction; see DotFact. */
  markDot(reduce: ExprId, lhs: ExprId, rhs: ExprId): void {
    if (!this.dots.has(reduce)) this.dots.set(reduce, { reduce, lhs, rhs });
  }

  build(tile?: TileHint): Section {
    const dots = [...this.dots.values()].sort((a, b) => a.reduce - b.reduce);
    return { domain: this.domain, exprs: [...this.exprs], stores: [...this.stores], ...(tile ? { tile } : {}), ...(dots.length ? { dots } : {}) };
  }
}

/** A section's source locations and scopes, to carry onto a section rebuilt from it. */
export const sectionSource = (s: Section): Pick<Section, "locs" | "scopes"> => ({
  ...(s.locs ? { locs: s.locs } : {}),
  ...(s.scopes ? { scopes: s.scopes } : {}),
});

/** `root` and every expression it reads, transitively (not past `stopAt`, which is left out). */
export function operandClosure(s: Section, root: ExprId, stopAt?: ExprId): Set<ExprId> {
  const seen = new Set<ExprId>();
  const stack = [root];
  while (stack.length > 0) {
    const id = stack.pop()!;
    if (seen.has(id) || id === stopAt) continue;
    seen.add(id);
    stack.push(...exprOperands(s.exprs[id]!));
  }
  return seen;
}

/** The f32 reduce_sum whose body is `id`, where that is `id`'s only use (stores included). */
export function summedOnce(s: Section, id: ExprId): ExprId | undefined {
  let uses = s.stores.filter((st) => st.value === id).length;
  let outer: ExprId | undefined;
  s.exprs.forEach((e, i) => {
    for (const o of exprOperands(e)) if (o === id) uses++;
    if (e.op === "reduce_sum" && e.dtype === "f32" && e.body === id) outer = i;
  });
  return uses === 1 ? outer : undefined;
}

const loadsOf = new WeakMap<Section, ReadonlySet<number>>();

/** The buffers a section loads from, found once per section (sections are immutable): passes that look for a buffer's readers ask for every section again per candidate. */
export function sectionLoads(s: Section): ReadonlySet<number> {
  let loads = loadsOf.get(s);
  if (loads === undefined) {
    const found = new Set<number>();
    for (const e of s.exprs) if (e.op === "load") found.add(e.buffer);
    loads = found;
    loadsOf.set(s, loads);
  }
  return loads;
}

/** Buffers a section reads (loads) and writes (stores). */
export function sectionBuffers(s: Section): { reads: Set<number>; writes: Set<number> } {
  const reads = new Set<number>();
  for (const e of s.exprs) if (e.op === "load") reads.add(e.buffer);
  return { reads, writes: new Set(s.stores.map((st) => st.buffer)) };
}

/**
 * The online softmax's reductions among `ids` (softmax_sum, softmax_max, softmax_norm) grouped by
 * their score: members of one group share the online softmax's running max and sum (one
 * exponential per key for the whole row of values).
 */
export function softmaxGroups(s: Section, ids: readonly ExprId[]): Map<ExprId, ExprId[]> {
  const groups = new Map<ExprId, ExprId[]>();
  for (const id of ids) {
    const e = s.exprs[id]!;
    if (!isOnlineExpr(e)) continue;
    if (!groups.has(e.score)) groups.set(e.score, []);
    groups.get(e.score)!.push(id);
  }
  return groups;
}
