// The canonical text form of the kernel IR (grammar in docs/kernel-ir.md), for dumps
// (`NN-lower.kir`, `NN-<kernel pass>.kir`) and FileCheck tests. Every field a KernelProgram
// carries prints, so parser.ts reads the text back to an equal program, and the same program
// prints byte-identically (expressions keep their ids, which are their positions).

import { formatLocation, formatNumber, quoteName } from "../ir/printer.ts";
import { assertNever } from "../util/errors.ts";
import type { Atom, IndexExpr, IndexPred, IndexVar } from "./index-expr.ts";
import {
  MATMUL_PARAM_KEYS,
  type BufferDecl,
  type DotFact,
  type KExpr,
  type Kernel,
  type KernelProgram,
  type Section,
  type SectionForm,
  type Store,
} from "./kernel-ir.ts";

/** Words the kernel IR parser reads as keywords: a kernel name spelled like one is quoted. */
export const KERNEL_KEYWORDS: ReadonlySet<string> = new Set([
  "program",
  "buffer",
  "input",
  "output",
  "temp",
  "aliases",
  "kernel",
  "reads",
  "writes",
  "section",
  "domain",
  "tile",
  "store",
  "dot",
  "form",
  "if",
  "true",
  "false",
  "loc",
  "scope",
  "data",
  "div",
  "mod",
  "inf",
  "nan",
]);
const PLAIN_NAME = /^[A-Za-z_][A-Za-z0-9_.]*$/;

/** A kernel name: bare when it is a plain identifier (not a keyword), else a JSON string. */
export const kernelName = (name: string): string => (PLAIN_NAME.test(name) && !KERNEL_KEYWORDS.has(name) ? name : JSON.stringify(name));

export function printKernelProgram(p: KernelProgram): string {
  const lines = [`program @${quoteName(p.name)}`];
  const symbol = p.buffers.find((b) => b.dimMax !== undefined)?.name;
  for (const b of p.buffers) lines.push(`  ${printBuffer(b, symbol)}`);
  for (const i of p.inputs) lines.push(`  input ${JSON.stringify(i.name)} = b${i.buffer}`);
  for (const o of p.outputs)
    lines.push(`  output ${JSON.stringify(o.name)} = b${o.buffer}${o.aliases === undefined ? "" : ` aliases ${JSON.stringify(o.aliases)}`}`);
  for (const k of p.kernels) lines.push(printKernel(k));
  return lines.join("\n") + "\n";
}

/** `buffer b0 input f32[batch,784] "x"`; the size buffer of a symbolic dimension ends its type with `max(N)`. */
export const printBuffer = (b: BufferDecl, symbol?: string): string => {
  const dims = b.shape.map((d, i) =>
    b.symbolic?.axis === i && symbol !== undefined ? (b.symbolic.scale === 1 ? symbol : `${b.symbolic.scale}*${symbol}`) : String(d),
  );
  const max = b.dimMax !== undefined ? ` max(${b.dimMax})` : "";
  return `buffer b${b.id} ${b.kind} ${b.dtype}[${dims.join(",")}]${max} ${JSON.stringify(b.name)}`;
};

export function printKernel(k: Kernel): string {
  const refs = (ids: readonly number[]): string => ids.map((b) => `b${b}`).join(", ");
  const lines = [`kernel ${kernelName(k.name)} reads(${refs(k.reads)}) writes(${refs(k.writes)})`];
  k.sections.forEach((s, i) => lines.push(printSection(s, i)));
  return lines.join("\n");
}

/**
 * `loc("model.ts":7:12) scope("0.fc1")`: where a section comes from, spelled as in the graph
 * and kernel IR dumps, for the comments of generated sources (empty when unknown).
 */
export const sectionSourceNote = (s: Section): string =>
  [...(s.locs ?? []).map(formatLocation), ...(s.scopes ?? []).map((sc) => `scope(${JSON.stringify(sc)})`)].join(" ");

export const formatVarDecl = (v: IndexVar): string => `${v.name}<${v.extent}`;

/** `section N domain [...]` with its tile, source locations and module scopes. */
export function sectionHeader(s: Section, index: number): string {
  const tile = s.tile ? ` tile(${s.tile.rowVar}: ${s.tile.rows}, ${s.tile.colVar}: ${s.tile.cols})` : "";
  const source = sectionSourceNote(s);
  return `section ${index} domain [${s.domain.map(formatVarDecl).join(", ")}]${tile}${source ? ` ${source}` : ""}`;
}

function printSection(s: Section, index: number): string {
  const lines = [`  ${sectionHeader(s, index)}`];
  s.exprs.forEach((e, id) => lines.push(`    ${printStatement(e, id)}`));
  for (const st of s.stores) lines.push(`    ${printStore(st)}`);
  for (const d of s.dots ?? []) lines.push(`    ${printDot(d)}`);
  if (s.form) lines.push(`    ${printForm(s.form)}`);
  return lines.join("\n");
}

export const printStatement = (e: KExpr, id: number): string => `%${id} = ${printExpr(e)}`;
/** `dot %7 lhs=%3 rhs=%4`: %7 is a contraction of the row-side %3 and the column-side %4. */
export const printDot = (d: DotFact): string => `dot %${d.reduce} lhs=%${d.lhs} rhs=%${d.rhs}`;
/** `form row`, `form matmul registers rows=8 cols=8 threads=64 unroll=4`, `form vector width=4`: the kernel template a target chose for the section. */
export function printForm(f: SectionForm): string {
  switch (f.kind) {
    case "row":
      return f.threads === undefined ? "form row" : `form row threads=${f.threads}`;
    case "matmul":
      return `form matmul ${f.form}${f.params ? MATMUL_PARAM_KEYS.map((key) => ` ${key}=${f.params![key]}`).join("") : ""}`;
    case "vector":
      return `form vector width=${f.width}`;
    case "attention":
      return "form attention";
    case "prologue":
      return `form prologue of=${f.of}`;
    default:
      return assertNever(f, "section form");
  }
}
export const printStore = (st: Store): string => `store b${st.buffer}[${formatIndex(st.index)}] = %${st.value}`;

function formatAtom(a: Atom): string {
  switch (a.kind) {
    case "var":
      return a.name;
    case "data":
      return `data(%${a.ref}, ${a.lo}, ${a.hi})`;
    case "div":
      return `(${formatIndex(a.x)} div ${a.divisor})`;
    case "mod":
      return `(${formatIndex(a.x)} mod ${a.divisor})`;
    default:
      return assertNever(a, "index atom");
  }
}

/** `8*o0 + o1 + -1`: terms in their canonical order, the constant last (alone when 0 and no terms). */
export function formatIndex(e: IndexExpr): string {
  const parts = e.terms.map((t) => (t.coef === 1 ? formatAtom(t.atom) : `${t.coef}*${formatAtom(t.atom)}`));
  if (e.constant !== 0 || parts.length === 0) parts.push(String(e.constant));
  return parts.join(" + ");
}

/** `o0 < 4 && o0 >= 1`; `true` for the empty conjunction, `false` for never. */
export function formatPred(p: IndexPred): string {
  if (p === false) return "false";
  if (p.length === 0) return "true";
  return p.map((c) => `${formatIndex(c.x)} ${c.op === "lt" ? "<" : ">="} ${c.bound}`).join(" && ");
}

export function printExpr(e: KExpr): string {
  const head = `${e.op} ${e.dtype}`;
  switch (e.op) {
    case "const":
      return `${head} ${formatNumber(e.value)}`;
    case "load":
      return `${head} b${e.buffer}[${formatIndex(e.index)}]${e.valid === false || e.valid.length > 0 ? ` if ${formatPred(e.valid)}` : ""}`;
    case "index":
      return `${head} ${formatIndex(e.index)}`;
    case "valid":
      return `${head} ${formatPred(e.pred)}`;
    case "rng":
      return `${head} %${e.seed} stream=${e.stream} counter=${formatIndex(e.counter)}`;
    case "reduce_sum":
    case "reduce_max":
      return `${head} [${e.vars.map(formatVarDecl).join(", ")}] %${e.body}`;
    case "softmax_sum":
      return `${head} [${e.vars.map(formatVarDecl).join(", ")}] %${e.score}, %${e.value}`;
    case "softmax_max":
    case "softmax_norm":
      return `${head} [${e.vars.map(formatVarDecl).join(", ")}] %${e.score}`;
    case "where":
      return `${head} %${e.cond}, %${e.x}, %${e.y}`;
    case "cast":
    case "neg":
    case "exp2":
    case "log2":
    case "sin":
    case "sqrt":
    case "recip":
      return `${head} %${e.x}`;
    case "add":
    case "mul":
    case "max":
    case "cmplt":
    case "cmpeq":
    case "idiv":
    case "mod":
      return `${head} %${e.x}, %${e.y}`;
    default:
      return assertNever(e, "kernel expression");
  }
}
