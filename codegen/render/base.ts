// The C-like renderer base: walks one kernel-IR section's loop tree (compiler/kernel/
// schedule.ts) and writes statements, asking a dialect only for spellings (types, literals,
// operators, loops) and the caller only for buffer access. WGSL uses it; CUDA C will too.
// The outer `parallelDepth` domain loops are bound by the thread index (declared by the
// caller); deeper domain loops and every reduction are serial loops inside the thread.

import { reduceRange } from "../../compiler/kernel/key-range.ts";
import { bounds, type Atom, type IndexExpr, type IndexPred } from "../../compiler/kernel/index-expr.ts";
import { softmaxGroups, type ExprId, type KExpr, type Section } from "../../compiler/kernel/kernel-ir.ts";
import { onlineSoftmaxLines } from "./online-softmax.ts";
import { scheduleSection, type ScheduleItem } from "../../compiler/kernel/schedule.ts";
import type { BinaryOp, UnaryOp } from "../../compiler/ir/types.ts";
import type { DType } from "../../compiler/ir/dtype.ts";
import { assertNever } from "../../compiler/util/errors.ts";
import { needsHalfRounding, roundsAfterReduce } from "../../compiler/kernel/half-rounding.ts";

export type ReduceKind = "reduce_sum" | "reduce_max";

/** Spellings of one C-like language. Operands are always names of already computed values. */
export interface CLikeDialect {
  readonly typeName: (t: DType) => string;
  readonly constant: (value: number, t: DType) => string;
  readonly unary: (op: UnaryOp, x: string, t: DType) => string;
  /** `operand` is the operands' dtype (cmplt on f32 yields a bool). */
  readonly binary: (op: BinaryOp, x: string, y: string, operand: DType) => string;
  readonly cast: (x: string, from: DType, to: DType) => string;
  readonly select: (cond: string, ifTrue: string, ifFalse: string) => string;
  readonly rng: (seed: string, stream: number, counter: string) => string;
  readonly reduceInit: (op: ReduceKind, t: DType) => string;
  /** An immutable and a mutable local. */
  readonly declareLet: (name: string, t: DType, value: string) => string;
  readonly declareVar: (name: string, t: DType, value: string) => string;
  /** The opening line of `for (v = start; v < extent; v++) {` (`extent` a number, or a name computed at run time; start 0 unless given). */
  readonly forLoop: (v: string, extent: number | string, start?: string) => string;
  /** Floor division / modulo of an index that may be negative, by a positive constant. */
  readonly floorDiv: (x: string, divisor: number) => string;
  readonly floorMod: (x: string, divisor: number) => string;
  /** An f32 value rounded to the 16-bit format `t` (f16, bf16): see compiler/kernel/half-rounding.ts. */
  readonly roundHalf: (x: string, t: DType) => string;
}

/** How the kernel around a section reads and writes its buffers (bindings, packing). */
export interface BufferAccess {
  load(buffer: number, index: string, t: DType): string;
  store(buffer: number, index: string, value: string, t: DType): string;
}

export const exprName = (id: ExprId): string => `t${id}`;

/**
 * Renders a section's body; the thread-bound domain variables must already be declared.
 * `limits`: loops (domain or reduction) that stop at a name computed at run time instead of
 * their extent (a symbolic batch's rows: compiler/kernel/symbolic-bound.ts, rowBounds).
 */
export function renderSectionBody(
  s: Section,
  items: readonly ScheduleItem[],
  parallelDepth: number,
  d: CLikeDialect,
  access: BufferAccess,
  indent: string,
  limits?: ReadonlyMap<string, string>,
): string[] {
  const lines: string[] = [];
  const loop = (v: { readonly name: string; readonly extent: number }): string => d.forLoop(v.name, limits?.get(v.name) ?? v.extent);
  const parallel = new Set(s.domain.slice(0, parallelDepth).map((v) => v.name));
  // A reduce item's loops (extent-1 ones elided) around its body, then `accumulate` at the innermost level.
  // A causal mask's range (compiler/kernel/key-range.ts): the loop runs only where a step adds something.
  const inReduceLoops = (item: Extract<ScheduleItem, { kind: "reduce" }>, ind: string, accumulate: (inner: string) => void): void => {
    let inner = ind;
    const loopVars = item.vars.filter((v) => v.extent !== 1);
    const range = reduceRange(s, item.vars, item.reduces);
    for (const v of loopVars) {
      if (range?.v.name === v.name) {
        const limit = limits?.get(v.name) ?? String(v.extent);
        const end = range.hi && `(${renderIndex(range.hi, d)})`;
        const hi = end ? d.select(`${end} < ${limit}`, end, limit) : limit;
        lines.push(`${inner}${d.forLoop(v.name, hi, range.lo ? d.binary("max", "0", `(${renderIndex(range.lo, d)})`, "i32") : undefined)}`);
      } else lines.push(`${inner}${loop(v)}`);
      inner += "  ";
    }
    walk(item.body, inner);
    accumulate(inner);
    for (let i = loopVars.length - 1; i >= 0; i--) {
      inner = inner.slice(2);
      lines.push(`${inner}}`);
    }
  };
  const walk = (list: readonly ScheduleItem[], ind: string): void => {
    for (const item of list) {
      switch (item.kind) {
        case "expr":
          renderExpr(s, item.id, d, access, ind, lines);
          break;
        case "loop":
          if (parallel.has(item.v.name) || item.v.extent === 1) walk(item.body, ind);
          else {
            lines.push(`${ind}${loop(item.v)}`);
            walk(item.body, ind + "  ");
            lines.push(`${ind}}`);
          }
          break;
        case "reduce": {
          const online = softmaxGroups(s, item.reduces);
          if (online.size > 0) {
            const sm = onlineSoftmaxLines(d, s.exprs, online, exprName);
            lines.push(...sm.init.map((l) => ind + l));
            inReduceLoops(item, ind, (inner) => lines.push(...sm.step.map((l) => inner + l)));
            lines.push(...sm.finish.map((l) => ind + l));
            break;
          }
          for (const r of item.reduces) {
            const e = s.exprs[r]!;
            lines.push(`${ind}${d.declareVar(exprName(r), e.dtype, d.reduceInit(reduceKind(e), e.dtype))}`);
          }
          inReduceLoops(item, ind, (inner) => {
            for (const r of item.reduces) {
              const e = s.exprs[r]!;
              const kind = reduceKind(e);
              const body = exprName((e as { body: ExprId }).body);
              lines.push(`${inner}${exprName(r)} = ${d.binary(kind === "reduce_sum" ? "add" : "max", exprName(r), body, e.dtype)};`);
            }
          });
          for (const r of item.reduces)
            if (roundsAfterReduce(s.exprs[r]!)) lines.push(`${ind}${exprName(r)} = ${d.roundHalf(exprName(r), s.exprs[r]!.dtype)};`);
          break;
        }
        case "store":
          lines.push(`${ind}${access.store(item.buffer, renderIndex(item.index, d), exprName(item.value), s.exprs[item.value]!.dtype)}`);
          break;
        default:
          assertNever(item, "schedule item");
      }
    }
  };
  walk(items, indent);
  return lines;
}

function reduceKind(e: KExpr): ReduceKind {
  return e.op === "reduce_sum" || e.op === "reduce_max" ? e.op : assertNever(e as never, "reduce expression");
}

/**
 * How many outer domain loops the thread index binds: all of them, unless a reduction is
 * hoisted above an inner domain loop (a row's max/sum broadcast back over the row, as in
 * softmax); then the thread owns the row and loops over it, computing the reduction once.
 */
export function parallelDepthOf(s: Section, items: readonly ScheduleItem[]): number {
  let depth = s.domain.length;
  const walk = (list: readonly ScheduleItem[], at: number): void => {
    for (const item of list) {
      if (item.kind === "loop") walk(item.body, at + 1);
      else if (item.kind === "reduce" && at < depth) depth = at;
    }
  };
  walk(items, 0);
  return depth;
}

export { scheduleSection };

/** Renders the given (reduction-free) expressions in id order: a hand-built loop nest's body. */
export function renderExprList(s: Section, ids: Iterable<ExprId>, d: CLikeDialect, access: BufferAccess, indent: string): string[] {
  const lines: string[] = [];
  for (const id of [...ids].sort((a, b) => a - b)) renderExpr(s, id, d, access, indent, lines);
  return lines;
}

function renderExpr(s: Section, id: ExprId, d: CLikeDialect, access: BufferAccess, ind: string, lines: string[]): void {
  const e = s.exprs[id]!;
  const name = exprName(id);
  const t = (x: ExprId): string => exprName(x);
  const dtypeOf = (x: ExprId): DType => s.exprs[x]!.dtype;
  const emit = (value: string): void =>
    void lines.push(`${ind}${d.declareLet(name, e.dtype, needsHalfRounding(e, s.exprs) ? d.roundHalf(value, e.dtype) : value)}`);
  switch (e.op) {
    case "const":
      return emit(d.constant(e.value, e.dtype));
    case "load": {
      if (e.valid === false) return emit(d.constant(0, e.dtype));
      const load = access.load(e.buffer, renderIndex(e.index, d), e.dtype);
      if (e.valid.length === 0) return emit(load);
      // A statement, not a select: the masked-off index may be out of bounds.
      lines.push(`${ind}${d.declareVar(name, e.dtype, d.constant(0, e.dtype))}`);
      lines.push(`${ind}if (${renderPred(e.valid, d)}) { ${name} = ${load}; }`);
      return;
    }
    case "index":
      return emit(renderIndex(e.index, d));
    case "valid":
      return emit(renderPred(e.pred, d));
    case "rng":
      return emit(d.rng(t(e.seed), e.stream, renderIndex(e.counter, d)));
    case "reduce_sum":
    case "reduce_max":
    case "softmax_sum":
    case "softmax_max":
    case "softmax_norm":
      return assertNever(e as never, "reduce outside a reduce item");
    case "neg":
    case "exp2":
    case "log2":
    case "sin":
    case "sqrt":
    case "recip":
      return emit(d.unary(e.op, t(e.x), e.dtype));
    case "cast":
      return emit(d.cast(t(e.x), dtypeOf(e.x), e.dtype));
    case "where":
      return emit(d.select(t(e.cond), t(e.x), t(e.y)));
    case "add":
    case "mul":
    case "max":
    case "cmplt":
    case "cmpeq":
    case "idiv":
    case "mod":
      return emit(d.binary(e.op, t(e.x), t(e.y), dtypeOf(e.x)));
    default:
      return assertNever(e, "kernel expr");
  }
}

/** An index expression as integer arithmetic (literals are plain integers). */
export function renderIndex(e: IndexExpr, d: CLikeDialect): string {
  const parts: string[] = [];
  for (const term of e.terms) {
    const a = renderAtom(term.atom, d);
    parts.push(term.coef === 1 ? a : term.coef === -1 ? `-${a}` : `${term.coef} * ${a}`);
  }
  if (e.constant !== 0 || parts.length === 0) parts.push(String(e.constant));
  return parts.join(" + ").replace(/\+ -/g, "- ");
}

function renderAtom(a: Atom, d: CLikeDialect): string {
  switch (a.kind) {
    case "var":
      return a.name;
    case "data":
      return exprName(a.ref);
    case "div":
      // Truncating division equals floor division when the dividend is non-negative.
      return bounds(a.x)[0] >= 0 ? `((${renderIndex(a.x, d)}) / ${a.divisor})` : d.floorDiv(renderIndex(a.x, d), a.divisor);
    case "mod":
      return bounds(a.x)[0] >= 0 ? `((${renderIndex(a.x, d)}) % ${a.divisor})` : d.floorMod(renderIndex(a.x, d), a.divisor);
  }
}

export function renderPred(p: IndexPred, d: CLikeDialect): string {
  if (p === false) return d.constant(0, "bool");
  if (p.length === 0) return d.constant(1, "bool");
  return `(${p.map((c) => `${renderIndex(c.x, d)} ${c.op === "lt" ? "<" : ">="} ${c.bound}`).join(" && ")})`;
}
