// JavaScript codegen: renders a kernel-IR kernel as the body of a plain JS function over
// typed arrays (Float32Array / Int32Array / Uint8Array), one block per section. Every f32
// result is rounded to f32 (Math.fround), as an f32 device computes: then a value recomputed
// inside one kernel equals, bit for bit, the same value another kernel stored — which max's
// tie test (x == max(x)) in its gradient relies on. i32 arithmetic wraps (`| 0`,
// Math.imul); bool is 0/1. Helpers (rng, f32→i32, floor div/mod) come in `rt`. f16 and bf16
// live in Uint16Arrays as bit patterns: a load decodes (rt.h2n / rt.b2n), a store encodes, and
// every 16-bit result is rounded to its format (rt.rh / rt.rb) where it is computed, as the
// interpreter does per op, so a recomputed value equals a stored one here too; sums
// accumulate in float64 and round once.

import { reduceRange } from "../../compiler/kernel/key-range.ts";
import { sectionSourceNote } from "../../compiler/kernel/print.ts";
import { rowBounds, sizeBuffer } from "../../compiler/kernel/symbolic-bound.ts";
import { scheduleSection, type ScheduleItem } from "../../compiler/kernel/schedule.ts";
import { bounds, type Atom, type IndexExpr, type IndexPred } from "../../compiler/kernel/index-expr.ts";
import { isOnlineExpr, softmaxGroups, type BufferDecl, type ExprId, type KExpr, type Kernel, type Section } from "../../compiler/kernel/kernel-ir.ts";
import { halfOf, isFloat, isInt, type DType } from "../../compiler/ir/dtype.ts";
import { roundToBfloat16, roundToHalf } from "../../runtime/artifact/half.ts";
import { assertNever, bug } from "../../compiler/util/errors.ts";

/** The generated function's parameters: buffers (in `params` order) and the runtime helpers. */
export const JS_KERNEL_PARAMS = ["bufs", "rt"] as const;

export interface RenderedKernel {
  readonly name: string;
  readonly source: string;
  /** Buffer ids in the order the function expects them in `bufs`. */
  readonly params: readonly number[];
}

/**
 * A section's loops that stop at a symbolic batch's rows (rowBounds,
 * compiler/kernel/symbolic-bound.ts): each a `const` computed from the size buffer when the
 * section starts, `lim_<var>` = ceil(extent × n / max).
 */
function runtimeBounds(s: Section, buffers: readonly BufferDecl[]): Map<string, string> {
  const size = sizeBuffer(buffers);
  const out = new Map<string, string>();
  if (!size) return out;
  for (const [v, extent] of rowBounds(s, buffers).vars) out.set(v, `Math.min(${extent}, Math.ceil(${extent} * b${size.id}[0] / ${size.dimMax}))`);
  return out;
}

export function renderJsKernel(kernel: Kernel, buffers: readonly BufferDecl[]): RenderedKernel {
  const size = sizeBuffer(buffers);
  const shrunk = kernel.sections.map((s) => runtimeBounds(s, buffers));
  const reads = shrunk.some((b) => b.size > 0) ? [...kernel.reads, size!.id] : kernel.reads;
  const params = [...new Set([...reads, ...kernel.writes])].sort((a, b) => a - b);
  const lines: string[] = [`// ${kernel.name}`, `"use strict";`, `const f32 = Math.fround;`];
  params.forEach((id, i) => {
    const b = buffers[id]!;
    lines.push(`const b${id} = bufs[${i}]; // ${b.name}: ${b.dtype}[${b.shape.join(",")}]`);
  });
  kernel.sections.forEach((s, i) => {
    const source = sectionSourceNote(s);
    lines.push(`{ // section ${i}${s.tile ? ` (tile ${s.tile.rows}x${s.tile.cols})` : ""}${source ? ` ${source}` : ""}`);
    for (const [v, expr] of shrunk[i]!) lines.push(`  const lim_${v} = ${expr};`);
    renderItems(scheduleSection(s), s, lines, "  ", shrunk[i]!);
    lines.push(`}`);
  });
  return { name: kernel.name, source: lines.join("\n") + "\n", params };
}

function renderItems(items: readonly ScheduleItem[], s: Section, lines: string[], indent: string, bounded: ReadonlyMap<string, string>): void {
  const limit = (v: { name: string; extent: number }): string => (bounded.has(v.name) ? `lim_${v.name}` : String(v.extent));
  for (const item of items) {
    switch (item.kind) {
      case "expr":
        lines.push(`${indent}const t${item.id} = ${renderExpr(s, s.exprs[item.id]!)};`);
        break;
      case "loop":
        if (item.v.extent === 1) {
          // A size-1 axis: its variable simplified away to 0 everywhere, so no loop is needed.
          renderItems(item.body, s, lines, indent, bounded);
          break;
        }
        lines.push(`${indent}for (let ${item.v.name} = 0; ${item.v.name} < ${limit(item.v)}; ${item.v.name}++) {`);
        renderItems(item.body, s, lines, indent + "  ", bounded);
        lines.push(`${indent}}`);
        break;
      case "reduce": {
        const online = softmaxGroups(s, item.reduces);
        for (const r of item.reduces) lines.push(`${indent}let t${r} = ${reduceInit(s.exprs[r]!)};`);
        for (const score of online.keys()) lines.push(`${indent}let m${score} = -Infinity, l${score} = 0;`);
        let inner = indent;
        const loopVars = item.vars.filter((v) => v.extent !== 1);
        // A causal mask's keys (compiler/kernel/key-range.ts): the loop runs only where a step adds something.
        const range = reduceRange(s, item.vars, item.reduces);
        for (const v of loopVars) {
          const lo = range?.v.name === v.name && range.lo ? `Math.max(0, ${renderIndex(range.lo)})` : "0";
          const hi = range?.v.name === v.name && range.hi ? `Math.min(${limit(v)}, ${renderIndex(range.hi)})` : limit(v);
          lines.push(`${inner}for (let ${v.name} = ${lo}; ${v.name} < ${hi}; ${v.name}++) {`);
          inner += "  ";
        }
        renderItems(item.body, s, lines, inner, bounded);
        for (const r of item.reduces) if (!isOnlineExpr(s.exprs[r]!)) lines.push(`${inner}${reduceStep(s.exprs[r]!, `t${r}`)}`);
        for (const [score, members] of online) lines.push(...onlineSoftmaxStep(s, score, members, inner));
        for (let i = loopVars.length - 1; i >= 0; i--) {
          inner = inner.slice(2);
          lines.push(`${inner}}`);
        }
        // f32 and 16-bit sums accumulate in float64 and round once: the same value wherever it is computed.
        for (const r of item.reduces)
          if (s.exprs[r]!.op === "reduce_sum" && isFloat(s.exprs[r]!.dtype)) lines.push(`${indent}t${r} = ${roundFor(s.exprs[r]!.dtype, `t${r}`)};`);
        // An all -inf row leaves l = 0 and every accumulator 0: 0/0 is NaN, as the unfused softmax gives.
        // softmax_max and softmax_norm are the running max and sum themselves.
        for (const [score, members] of online)
          for (const r of members) {
            const op = s.exprs[r]!.op;
            lines.push(`${indent}t${r} = ${op === "softmax_max" ? `m${score}` : op === "softmax_norm" ? `f32(l${score})` : `f32(t${r} / l${score})`};`);
          }
        break;
      }
      case "store": {
        const half = halfOf(s.exprs[item.value]!.dtype);
        const v = half === "f16" ? `rt.n2h(t${item.value})` : half === "bf16" ? `rt.n2b(t${item.value})` : `t${item.value}`;
        lines.push(`${indent}b${item.buffer}[${renderIndex(item.index)}] = ${v};`);
        break;
      }
      default:
        assertNever(item, "schedule item");
    }
  }
}

/**
 * The spellings that differ per dtype; a dtype missing here does not compile. Values are JS
 * numbers: f32 results round through Math.fround (`f32`), i32 wraps with `| 0`/Math.imul,
 * bool is 0/1 and add/mul/max are or/and/or.
 */
interface JsDTypeSpelling {
  readonly literal: (v: number) => string;
  readonly add: (a: string, b: string) => string;
  readonly mul: (a: string, b: string) => string;
  /** Accumulating one summand into a reduce_sum (f32 sums in float64, rounded once after the loop). */
  readonly sumStep: (acc: string, x: string) => string;
  /** Identity of reduce_max. */
  readonly lowest: string;
}

const JS_DTYPES: { readonly [D in DType]: JsDTypeSpelling } = {
  f32: {
    literal: (v) => renderNumber(Math.fround(v)),
    add: (a, b) => `f32(${a} + ${b})`,
    mul: (a, b) => `f32(${a} * ${b})`,
    sumStep: (acc, x) => `${acc} += ${x};`,
    lowest: "-Infinity",
  },
  f16: {
    literal: (v) => renderNumber(roundToHalf(v)),
    add: (a, b) => `rt.rh(${a} + ${b})`,
    mul: (a, b) => `rt.rh(${a} * ${b})`,
    sumStep: (acc, x) => `${acc} += ${x};`,
    lowest: "-Infinity",
  },
  bf16: {
    literal: (v) => renderNumber(roundToBfloat16(v)),
    add: (a, b) => `rt.rb(${a} + ${b})`,
    mul: (a, b) => `rt.rb(${a} * ${b})`,
    sumStep: (acc, x) => `${acc} += ${x};`,
    lowest: "-Infinity",
  },
  i32: {
    literal: renderNumber,
    add: (a, b) => `(${a} + ${b}) | 0`,
    mul: (a, b) => `Math.imul(${a}, ${b})`,
    sumStep: (acc, x) => `${acc} = (${acc} + ${x}) | 0;`,
    lowest: "-2147483648",
  },
  bool: {
    literal: renderNumber,
    add: (a, b) => `${a} | ${b}`,
    mul: (a, b) => `${a} & ${b}`,
    sumStep: (acc, x) => `${acc} += ${x};`,
    lowest: "-Infinity",
  },
};

/** `x` (a JS number) rounded to `d` where d is a 16-bit float; the f32 rounding otherwise. */
function roundFor(d: DType, x: string): string {
  const half = halfOf(d);
  return half === "f16" ? `rt.rh(${x})` : half === "bf16" ? `rt.rb(${x})` : `f32(${x})`;
}

/**
 * One key of the online softmax (docs/kernel-ir.md, softmax_sum): a score s above the running
 * max m rescales the sum l and each accumulator by exp(m - s) and becomes m (a few times per
 * row); every key adds exp(s - m) (times the value). The guard keeps an all -inf prefix at
 * l = 0 instead of NaN; a NaN score makes the row NaN, as unfused.
 */
function onlineSoftmaxStep(s: Section, score: ExprId, members: readonly ExprId[], indent: string): string[] {
  const [m, l, sc] = [`m${score}`, `l${score}`, `t${score}`];
  const sums = members.filter((r) => s.exprs[r]!.op === "softmax_sum");
  const lines = [
    `${indent}if (${sc} > ${m}) {`,
    `${indent}  const c${score} = Math.exp(${m} - ${sc});`,
    `${indent}  ${l} *= c${score};`,
    ...sums.map((r) => `${indent}  t${r} *= c${score};`),
    `${indent}  ${m} = ${sc};`,
    `${indent}}`,
    `${indent}const p${score} = ${sc} === -Infinity ? 0 : Math.exp(${sc} - ${m});`,
    `${indent}${l} += p${score};`,
  ];
  for (const r of sums) {
    const e = s.exprs[r] as Extract<KExpr, { op: "softmax_sum" }>;
    lines.push(`${indent}t${r} += p${score} * t${e.value};`);
  }
  return lines;
}

function reduceInit(e: KExpr): string {
  if (e.op === "reduce_sum" || e.op === "softmax_sum") return "0";
  return JS_DTYPES[e.dtype].lowest;
}

function reduceStep(e: KExpr, acc: string): string {
  if (e.op !== "reduce_sum" && e.op !== "reduce_max") return bug(`js: ${e.op} has no plain reduce step`);
  const body = `t${e.body}`;
  if (e.op === "reduce_max") return `${acc} = Math.max(${acc}, ${body});`;
  return JS_DTYPES[e.dtype].sumStep(acc, body);
}

export function renderNumber(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "Infinity";
  if (v === -Infinity) return "-Infinity";
  if (Object.is(v, -0)) return "-0";
  return v < 0 ? `(${v})` : String(v);
}

function renderExpr(s: Section, e: KExpr): string {
  const t = (id: ExprId): string => `t${id}`;
  const dtypeOf = (id: ExprId): DType => s.exprs[id]!.dtype;
  switch (e.op) {
    case "const":
      return JS_DTYPES[e.dtype].literal(e.value);
    case "load": {
      const half = halfOf(e.dtype);
      const bits = `b${e.buffer}[${renderIndex(e.index)}]`;
      const load = half === "f16" ? `rt.h2n(${bits})` : half === "bf16" ? `rt.b2n(${bits})` : bits;
      if (e.valid === false) return "0";
      return e.valid.length === 0 ? load : `(${renderPred(e.valid)} ? ${load} : 0)`;
    }
    case "index":
      return renderIndex(e.index);
    case "valid":
      return `(${renderPred(e.pred)} ? 1 : 0)`;
    case "rng":
      return `rt.rng(${t(e.seed)}, ${e.stream}, ${renderIndex(e.counter)})`;
    case "reduce_sum":
    case "reduce_max":
    case "softmax_sum":
    case "softmax_max":
    case "softmax_norm":
      return bug(`js: ${e.op} outside a reduce item`);
    case "neg":
      return `-${t(e.x)}`;
    case "exp2":
      return roundFor(e.dtype, `Math.pow(2, ${t(e.x)})`);
    case "log2":
      return roundFor(e.dtype, `Math.log2(${t(e.x)})`);
    case "sin":
      return roundFor(e.dtype, `Math.sin(${t(e.x)})`);
    case "sqrt":
      return roundFor(e.dtype, `Math.sqrt(${t(e.x)})`);
    case "recip":
      return roundFor(e.dtype, `1 / ${t(e.x)}`);
    case "cast": {
      const from = dtypeOf(e.x);
      switch (e.dtype) {
        case "bool":
          return `(${t(e.x)} !== 0 ? 1 : 0)`;
        case "i32":
          return isFloat(from) ? `rt.f2i(${t(e.x)})` : t(e.x); // f32 → i32 saturates, NaN → 0
        case "f32":
          return isInt(from) ? `f32(${t(e.x)})` : t(e.x); // bool 0/1 and a 16-bit value are already exact f32s
        case "f16":
        case "bf16":
          // From a wider float or an i32 the value rounds; bool 0/1 and the same format stay.
          return from === e.dtype || from === "bool" ? t(e.x) : roundFor(e.dtype, t(e.x));
        default:
          return assertNever(e.dtype, "dtype");
      }
    }
    case "where":
      return `(${t(e.cond)} ? ${t(e.x)} : ${t(e.y)})`;
    case "add":
      return JS_DTYPES[dtypeOf(e.x)].add(t(e.x), t(e.y));
    case "mul":
      return JS_DTYPES[dtypeOf(e.x)].mul(t(e.x), t(e.y));
    case "max":
      return `Math.max(${t(e.x)}, ${t(e.y)})`;
    case "cmplt":
      return `(${t(e.x)} < ${t(e.y)} ? 1 : 0)`;
    case "cmpeq":
      return `(${t(e.x)} === ${t(e.y)} ? 1 : 0)`;
    case "idiv":
      return `rt.idiv(${t(e.x)}, ${t(e.y)})`;
    case "mod":
      return `rt.imod(${t(e.x)}, ${t(e.y)})`;
    default:
      return assertNever(e, "kernel expr");
  }
}

export function renderIndex(e: IndexExpr): string {
  const parts: string[] = [];
  for (const term of e.terms) {
    const a = renderAtom(term.atom);
    parts.push(term.coef === 1 ? a : term.coef === -1 ? `-${a}` : `${term.coef} * ${a}`);
  }
  if (e.constant !== 0 || parts.length === 0) parts.push(String(e.constant));
  return parts.join(" + ").replace(/\+ -/g, "- ");
}

function renderAtom(a: Atom): string {
  switch (a.kind) {
    case "var":
      return a.name;
    case "data":
      return `t${a.ref}`;
    case "div": {
      const [lo] = bounds(a.x);
      return lo >= 0 ? `((${renderIndex(a.x)}) / ${a.divisor} | 0)` : `Math.floor((${renderIndex(a.x)}) / ${a.divisor})`;
    }
    case "mod": {
      const [lo] = bounds(a.x);
      return lo >= 0 ? `((${renderIndex(a.x)}) % ${a.divisor})` : `(((${renderIndex(a.x)}) % ${a.divisor} + ${a.divisor}) % ${a.divisor})`;
    }
  }
}

function renderPred(p: IndexPred): string {
  if (p === false) return "false";
  if (p.length === 0) return "true";
  return p.map((c) => `${renderIndex(c.x)} ${c.op === "lt" ? "<" : ">="} ${c.bound}`).join(" && ");
}
