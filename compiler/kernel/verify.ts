// The kernel IR verifier: the invariants every kernel pass (lowering, tiling, contraction
// blocking, splitting) must keep. Buffers are declared and bound by the kernels that touch
// them, expressions are in topological order with consistent dtypes, index expressions are
// canonical, use only loop variables in scope and stay inside their buffer, every output is
// written before it is read. A finding names the kernel, the section, the statement as
// printed and the rule; verifyKernelProgram also names the pass that produced the program.

import { DTYPES, isFloat, type DType } from "../ir/dtype.ts";
import { KilnError } from "../util/errors.ts";
import { atomKey, bounds, type Atom, type IndexExpr, type IndexPred, type IndexVar } from "./index-expr.ts";
import {
  exprOperands,
  exprOwnVars,
  isReduceExpr,
  MATMUL_FORMS,
  MATMUL_PARAM_KEYS,
  type KExpr,
  type Kernel,
  type KernelProgram,
  type Section,
} from "./kernel-ir.ts";
import { kernelName, printBuffer, printDot, printForm, printStatement, printStore } from "./print.ts";
import { numel } from "../util/shape.ts";

/** At most this many findings are listed under the error. */
const MAX_LISTED = 20;

export interface KernelFinding {
  /** `kernel k0_exp2, section 0, '%3 = add f32 %1, %2'` or `program @f` for program-level rules. */
  readonly where: string;
  readonly rule: string;
}

const isReduce = isReduceExpr;

/** Every broken invariant of `p`, in program order; empty when the program is valid. */
export function verifyKernelFindings(p: KernelProgram): KernelFinding[] {
  const found: KernelFinding[] = [];
  const programWhere = `program @${p.name}`;
  const report = (where: string, rule: string): void => void found.push({ where, rule });

  p.buffers.forEach((b, i) => {
    const where = `${programWhere}, '${safe(() => printBuffer(b))}'`;
    if (b.id !== i) report(where, `buffer at position ${i} is declared as b${b.id} (buffers are numbered b0, b1, … in order)`);
    if (!DTYPES.includes(b.dtype)) report(where, `unknown dtype '${String(b.dtype)}'`);
    if (b.shape.some((d) => !Number.isSafeInteger(d) || d < 0)) report(where, `shape [${b.shape.join(",")}] must hold non-negative integers`);
    if (b.kind !== "input" && b.kind !== "output" && b.kind !== "temp") report(where, `unknown buffer kind '${String(b.kind)}'`);
  });
  const declared = (id: number): boolean => Number.isInteger(id) && id >= 0 && id < p.buffers.length;

  const inputNames = new Set<string>();
  const listedInputs = new Set<number>();
  for (const i of p.inputs) {
    const where = `${programWhere}, input "${i.name}"`;
    if (inputNames.has(i.name)) report(where, `input name '${i.name}' is used twice`);
    inputNames.add(i.name);
    listedInputs.add(i.buffer);
    if (!declared(i.buffer)) report(where, `buffer b${i.buffer} is not declared`);
    else if (p.buffers[i.buffer]!.kind !== "input") report(where, `buffer b${i.buffer} is a ${p.buffers[i.buffer]!.kind} buffer, not an input`);
  }
  for (const b of p.buffers)
    if (b.kind === "input" && !listedInputs.has(b.id)) report(programWhere, `input buffer b${b.id} "${b.name}" is not bound by any 'input' line`);
  const outputNames = new Set<string>();
  for (const o of p.outputs) {
    const where = `${programWhere}, output "${o.name}"`;
    if (outputNames.has(o.name)) report(where, `output name '${o.name}' is used twice`);
    outputNames.add(o.name);
    if (!declared(o.buffer)) report(where, `buffer b${o.buffer} is not declared`);
    if (o.aliases !== undefined && !inputNames.has(o.aliases)) report(where, `aliases '${o.aliases}', which is not an input`);
  }

  const kernelNames = new Set<string>();
  const written = new Set<number>();
  for (const k of p.kernels) {
    const kWhere = `kernel ${kernelName(k.name)}`;
    if (kernelNames.has(k.name)) report(kWhere, `kernel name '${k.name}' is used twice`);
    kernelNames.add(k.name);
    checkBufferList(k.reads, "reads", kWhere, declared, report);
    checkBufferList(k.writes, "writes", kWhere, declared, report);
    const reads = new Set(k.reads);
    const writes = new Set(k.writes);
    k.sections.forEach((s, si) => checkSection(p, k, s, `${kWhere}, section ${si}`, reads, writes, report));
    checkPrologues(k, (si, rule) => report(`${kWhere}, section ${si}, '${safe(() => printForm(k.sections[si]!.form!))}'`, rule));
    // (a prologue's stores come before the loads of the section it runs in)
    const prologueWrites = new Set(k.sections.flatMap((s) => (s.form?.kind === "prologue" ? s.stores.map((st) => st.buffer) : [])));
    for (const b of k.reads) {
      const buf = p.buffers[b];
      if (buf && buf.kind !== "input" && !written.has(b) && !prologueWrites.has(b) && loadsBuffer(k, b))
        report(kWhere, `reads b${b} "${buf.name}" before any earlier kernel writes it`);
    }
    for (const b of k.writes) written.add(b);
  }
  for (const b of p.buffers)
    if (b.kind !== "input" && !written.has(b.id)) report(programWhere, `${b.kind} buffer b${b.id} "${b.name}" is never written by any kernel`);
  return found;
}

/**
 * Throws a KilnError ("ir-verify") when `p` breaks an invariant: the message names the pass
 * that produced the program (when given), the kernel, the section, the statement and the rule.
 */
export function verifyKernelProgram(p: KernelProgram, passName?: string): void {
  const found = verifyKernelFindings(p);
  const first = found[0];
  if (!first) return;
  const prefix = passName === undefined ? `kernel IR of @${p.name}` : `kernel IR after pass '${passName}'`;
  const more = found.slice(1, MAX_LISTED + 1).map((f) => `  also: ${f.where}: ${f.rule}`);
  if (found.length > MAX_LISTED + 1) more.push(`  … and ${found.length - MAX_LISTED - 1} more`);
  throw new KilnError({ code: "ir-verify", message: `${prefix}: ${first.where}: ${first.rule}`, ...(more.length ? { detail: more.join("\n") } : {}) });
}

function safe(f: () => string): string {
  try {
    return f();
  } catch {
    return "<unprintable>";
  }
}

function loadsBuffer(k: Kernel, b: number): boolean {
  return k.sections.some((s) => s.exprs.some((e) => e.op === "load" && e.buffer === b));
}

function checkBufferList(
  ids: readonly number[],
  what: string,
  where: string,
  declared: (id: number) => boolean,
  report: (where: string, rule: string) => void,
): void {
  ids.forEach((b, i) => {
    if (!declared(b)) report(where, `${what}(b${b}): buffer b${b} is not declared`);
    if (i > 0 && ids[i - 1]! >= b) report(where, `${what}(…) must list buffers sorted and once each, found b${ids[i - 1]} before b${b}`);
  });
}

/** The loop variables of a section: its domain and every reduction's own variables. */
function sectionVars(s: Section, report: (rule: string) => void): Map<string, IndexVar> {
  const vars = new Map<string, IndexVar>();
  for (const v of s.domain) {
    if (vars.has(v.name)) report(`domain variable '${v.name}' is declared twice`);
    if (!Number.isSafeInteger(v.extent) || v.extent < 0) report(`domain variable '${v.name}' has extent ${v.extent} (a non-negative integer is required)`);
    vars.set(v.name, v);
  }
  const domainNames = new Set(vars.keys());
  s.exprs.forEach((e, id) => {
    if (!isReduce(e)) return;
    for (const v of e.vars) {
      if (domainNames.has(v.name)) report(`%${id}: reduction variable '${v.name}' shadows a domain variable`);
      const prev = vars.get(v.name);
      if (prev && prev.extent !== v.extent) report(`%${id}: reduction variable '${v.name}' has extent ${v.extent} here and ${prev.extent} elsewhere`);
      if (!Number.isSafeInteger(v.extent) || v.extent < 1)
        report(`%${id}: reduction variable '${v.name}' has extent ${v.extent} (a positive integer is required)`);
      vars.set(v.name, v);
    }
  });
  return vars;
}

function checkSection(
  p: KernelProgram,
  k: Kernel,
  s: Section,
  where: string,
  reads: ReadonlySet<number>,
  writes: ReadonlySet<number>,
  report: (where: string, rule: string) => void,
): void {
  const vars = sectionVars(s, (rule) => report(where, rule));
  const domain = new Set(s.domain.map((v) => v.name));
  if (s.tile) {
    const t = s.tile;
    for (const [name, size] of [
      [t.rowVar, t.rows],
      [t.colVar, t.cols],
    ] as const) {
      if (!domain.has(name)) report(where, `tile names '${name}', which is not a domain variable`);
      if (!Number.isSafeInteger(size) || size < 1) report(where, `tile size ${size} for '${name}' must be a positive integer`);
    }
  }
  const dtypeOf = (id: number): DType | undefined => s.exprs[id]?.dtype;
  const free: Set<string>[] = [];
  s.exprs.forEach((e, id) => {
    const at = `${where}, '${safe(() => printStatement(e, id))}'`;
    const fail = (rule: string): void => report(at, rule);
    const ops = safeOperands(e);
    let operandsOk = true;
    for (const o of ops)
      if (!Number.isInteger(o) || o < 0 || o >= id) {
        fail(`operand %${o} is not defined before %${id} (expressions are in topological order)`);
        operandsOk = false;
      }
    if (!DTYPES.includes(e.dtype)) fail(`unknown dtype '${String(e.dtype)}'`);
    for (const x of indexExprsOf(e)) checkIndex(x, id, vars, dtypeOf, fail);
    if (operandsOk) checkDtypes(p, e, dtypeOf, fail);
    if (e.op === "load") {
      const b = p.buffers[e.buffer];
      if (!b) fail(`load from b${e.buffer}, which is not declared`);
      else {
        if (!reads.has(e.buffer)) fail(`load from b${e.buffer}, which kernel ${kernelName(k.name)} does not list in reads(…)`);
        if (e.valid !== false && e.valid.length === 0) checkInBounds(e.index, b.shape, `load from b${e.buffer}`, fail);
      }
    }
    const vs = safeSet(() => exprOwnVars(e));
    if (operandsOk) for (const o of ops) for (const v of free[o] ?? []) vs.add(v);
    if (isReduce(e)) {
      if (e.vars.length === 0) fail(`a reduction needs at least one loop variable`);
      for (const v of e.vars) vs.delete(v.name);
    }
    free[id] = vs;
  });
  let prevDot = -1;
  for (const d of s.dots ?? []) {
    const fail = (rule: string): void => report(`${where}, '${printDot(d)}'`, rule);
    const r = s.exprs[d.reduce];
    const body = r && r.op === "reduce_sum" ? s.exprs[r.body] : undefined;
    if (d.reduce <= prevDot) fail(`dot facts must be sorted by their reduction and listed once`);
    prevDot = d.reduce;
    if (!r || r.op !== "reduce_sum") fail(`%${d.reduce} must be a reduce_sum, found ${r ? r.op : "nothing"}`);
    else if (!body || body.op !== "mul" || !((body.x === d.lhs && body.y === d.rhs) || (body.x === d.rhs && body.y === d.lhs)))
      fail(`the body of %${d.reduce} must be mul(%${d.lhs}, %${d.rhs}), found ${body ? safe(() => printStatement(body, r.body)) : "nothing"}`);
    if (s.form?.kind === "attention") fail(`an attention section keeps no dot facts (its contractions are inside softmax_sum loops)`);
  }
  for (const st of s.stores) {
    const at = `${where}, '${safe(() => printStore(st))}'`;
    const fail = (rule: string): void => report(at, rule);
    const b = p.buffers[st.buffer];
    if (!b) fail(`store to b${st.buffer}, which is not declared`);
    else if (!writes.has(st.buffer)) fail(`store to b${st.buffer}, which kernel ${kernelName(k.name)} does not list in writes(…)`);
    const value = s.exprs[st.value];
    if (!value) {
      fail(`stores %${st.value}, which is not defined`);
      continue;
    }
    if (b && value.dtype !== b.dtype) fail(`stores a ${value.dtype} value into ${b.dtype} buffer b${st.buffer}`);
    checkIndex(st.index, s.exprs.length, vars, dtypeOf, fail);
    if (b) checkInBounds(st.index, b.shape, `store to b${st.buffer}`, fail);
    const escaping = [...(free[st.value] ?? []), ...indexVarNames(st.index)].filter((v) => !domain.has(v));
    if (escaping.length > 0)
      fail(`uses loop variable${escaping.length > 1 ? "s" : ""} ${[...new Set(escaping)].map((v) => `'${v}'`).join(", ")} outside the reduction that binds it`);
  }
  if (s.form) checkForm(s, (rule) => report(`${where}, '${safe(() => printForm(s.form!))}'`, rule));
}

/**
 * A prologue section runs inside a launched section of its kernel, once per iteration of that
 * section's split loop (its first loop of extent > 1), over the same iteration of its own: so
 * it comes after every launched section, names one of them, and their split loops agree.
 */
function checkPrologues(k: Kernel, fail: (section: number, rule: string) => void): void {
  const firstPrologue = k.sections.findIndex((s) => s.form?.kind === "prologue");
  if (firstPrologue < 0) return;
  const split = (s: Section) => s.domain.find((v) => v.extent > 1);
  const callers = new Set<number>();
  k.sections.forEach((s, si) => {
    if (si > firstPrologue && s.form?.kind !== "prologue") fail(si, `a launched section cannot follow a prologue section (section ${firstPrologue})`);
    if (s.form?.kind !== "prologue") return;
    const of = s.form.of;
    const target = k.sections[of];
    if (!Number.isSafeInteger(of) || !target || target.form?.kind === "prologue") return fail(si, `'of=${of}' must name a launched section of the kernel`);
    if (callers.has(of)) fail(si, `section ${of} already has a prologue`);
    callers.add(of);
    const [mine, theirs] = [split(s), split(target)];
    if (!mine || !theirs || mine.extent !== theirs.extent)
      fail(
        si,
        `its split loop (${mine ? `${mine.name}<${mine.extent}` : "none"}) must match section ${of}'s (${theirs ? `${theirs.name}<${theirs.extent}` : "none"})`,
      );
    else if (s.domain.filter((v) => v.extent > 1).length < 2) fail(si, `a prologue needs a loop inside its split loop`);
  });
}

/** A row kernel needs a reduction to share; a matmul needs its one contraction, untiled, over at least two domain loops. */
function checkForm(s: Section, fail: (rule: string) => void): void {
  const f = s.form!;
  switch (f.kind) {
    case "row":
      if (!s.exprs.some(isReduce)) fail(`a row kernel needs a reduction in the section`);
      // the tree reduction halves the thread count down to one
      if (f.threads !== undefined && !(Number.isSafeInteger(f.threads) && f.threads >= 2 && f.threads <= 1024 && (f.threads & (f.threads - 1)) === 0))
        fail(`a row kernel's threads must be a power of two from 2 to 1024, got ${f.threads}`);
      return;
    case "matmul":
      if (!MATMUL_FORMS.includes(f.form)) fail(`unknown matmul form '${String(f.form)}'`);
      if (s.dots?.length !== 1) fail(`a matmul needs exactly one dot fact, found ${s.dots?.length ?? 0}`);
      if (s.tile) fail(`a register-tiled section cannot also be a matmul`);
      if (s.domain.length < 2) fail(`a matmul needs at least two domain loops (rows and columns)`);
      if (f.params && MATMUL_PARAM_KEYS.some((key) => !Number.isSafeInteger(f.params![key]) || f.params![key] < 1))
        fail(`matmul parameters must be positive integers`);
      return;
    case "vector": {
      const inner = s.domain.at(-1);
      if (!Number.isSafeInteger(f.width) || f.width < 2) fail(`a vector width must be an integer of at least 2, got ${f.width}`);
      else if (!inner || inner.extent % f.width !== 0) fail(`a vector form needs an innermost domain loop whose extent is a multiple of ${f.width}`);
      return;
    }
    case "prologue":
      return; // checked with its kernel: checkPrologues
    case "attention":
      // The forward computes a softmax_sum; a backward section (a point per query or key row) plain reductions.
      if (!s.exprs.some(isReduceExpr)) fail(`an attention section needs a reduction (a softmax_sum in the forward)`);
      if (s.tile) fail(`an attention section is not register-tiled`);
      return;
    default:
      fail(`unknown section form '${String((f as { kind: unknown }).kind)}'`);
  }
}

function safeOperands(e: KExpr): number[] {
  try {
    return exprOperands(e);
  } catch {
    return [];
  }
}

function safeSet(f: () => Set<string>): Set<string> {
  try {
    return f();
  } catch {
    return new Set();
  }
}

function indexExprsOf(e: KExpr): IndexExpr[] {
  const ofPred = (p: IndexPred): IndexExpr[] => (p === false ? [] : p.map((c) => c.x));
  switch (e.op) {
    case "load":
      return [e.index, ...ofPred(e.valid)];
    case "index":
      return [e.index];
    case "valid":
      return ofPred(e.pred);
    case "rng":
      return [e.counter];
    default:
      return [];
  }
}

function indexVarNames(x: IndexExpr, into = new Set<string>()): Set<string> {
  for (const t of x.terms) {
    const a = t.atom;
    if (a.kind === "var") into.add(a.name);
    else if (a.kind === "div" || a.kind === "mod") indexVarNames(a.x, into);
  }
  return into;
}

/** Canonical form (sorted unique atoms, non-zero integer coefficients), variables in scope, data refs defined and i32. */
function checkIndex(
  x: IndexExpr,
  before: number,
  vars: ReadonlyMap<string, IndexVar>,
  dtypeOf: (id: number) => DType | undefined,
  fail: (rule: string) => void,
): void {
  if (!Number.isSafeInteger(x.constant)) fail(`index constant ${x.constant} is not an integer`);
  let prevKey: string | undefined;
  for (const t of x.terms) {
    const key = atomKey(t.atom);
    if (!Number.isSafeInteger(t.coef) || t.coef === 0) fail(`index term ${t.coef}*${key} needs a non-zero integer coefficient`);
    if (prevKey !== undefined && prevKey >= key) fail(`index terms are not in canonical order (${prevKey} before ${key})`);
    prevKey = key;
    checkAtom(t.atom, before, vars, dtypeOf, fail);
  }
}

function checkAtom(
  a: Atom,
  before: number,
  vars: ReadonlyMap<string, IndexVar>,
  dtypeOf: (id: number) => DType | undefined,
  fail: (rule: string) => void,
): void {
  switch (a.kind) {
    case "var": {
      const v = vars.get(a.name);
      if (!v) fail(`loop variable '${a.name}' is not defined (neither a domain variable nor a reduction's)`);
      else if (v.extent !== a.extent) fail(`loop variable '${a.name}' is used with extent ${a.extent} but declared with ${v.extent}`);
      return;
    }
    case "data":
      if (!Number.isInteger(a.ref) || a.ref < 0 || a.ref >= before) fail(`index reads %${a.ref}, which is not defined before it`);
      else if (dtypeOf(a.ref) !== "i32") fail(`index reads %${a.ref} of dtype ${dtypeOf(a.ref)}, expected i32`);
      if (!(a.lo <= a.hi)) fail(`data index %${a.ref} has an empty range [${a.lo}, ${a.hi}]`);
      return;
    case "div":
    case "mod":
      if (!Number.isSafeInteger(a.divisor) || a.divisor < 1) fail(`${a.kind} by ${a.divisor}: the divisor must be a positive integer`);
      checkIndex(a.x, before, vars, dtypeOf, fail);
      return;
  }
}

function checkInBounds(x: IndexExpr, shape: readonly number[], what: string, fail: (rule: string) => void): void {
  let lo: number;
  let hi: number;
  try {
    [lo, hi] = bounds(x);
  } catch {
    return;
  }
  const size = numel(shape);
  if (hi < lo) return; // an empty loop: nothing is accessed
  if (lo < 0 || hi >= size)
    fail(`${what}: index ranges over [${lo}, ${hi}], outside the buffer's ${size} element${size === 1 ? "" : "s"} [${shape.join(",")}]`);
}

/** Dtype rules of each expression kind (the graph IR's, at scalar level). */
function checkDtypes(p: KernelProgram, e: KExpr, dtypeOf: (id: number) => DType | undefined, fail: (rule: string) => void): void {
  const expect = (role: string, id: number, want: DType): void => {
    const got = dtypeOf(id);
    if (got !== want) fail(`${role} %${id} has dtype ${got}, expected ${want}`);
  };
  switch (e.op) {
    case "const":
      if (!isFloat(e.dtype) && !Number.isInteger(e.value)) fail(`${e.value} is not a valid ${e.dtype}`);
      if (e.dtype === "bool" && e.value !== 0 && e.value !== 1) fail(`a bool constant must be 0 or 1, got ${e.value}`);
      return;
    case "load": {
      const b = p.buffers[e.buffer];
      if (b && b.dtype !== e.dtype) fail(`loads ${e.dtype} from ${b.dtype} buffer b${e.buffer}`);
      return;
    }
    case "index":
      if (e.dtype !== "i32") fail(`an index value is i32, got ${e.dtype}`);
      return;
    case "valid":
      if (e.dtype !== "bool") fail(`a validity mask is bool, got ${e.dtype}`);
      return;
    case "rng":
      expect("seed", e.seed, "i32");
      if (e.dtype !== "f32") fail(`rng yields f32, got ${e.dtype}`);
      return;
    case "reduce_sum":
    case "reduce_max":
      expect("body", e.body, e.dtype);
      if (e.dtype === "bool") fail(`cannot reduce bool`);
      return;
    case "softmax_sum":
      expect("score", e.score, e.dtype);
      expect("value", e.value, e.dtype);
      if (e.dtype !== "f32") fail(`softmax_sum is f32, got ${e.dtype}`);
      return;
    case "softmax_max":
    case "softmax_norm":
      expect("score", e.score, e.dtype);
      if (e.dtype !== "f32") fail(`${e.op} is f32, got ${e.dtype}`);
      return;
    case "where":
      expect("cond", e.cond, "bool");
      expect("x", e.x, e.dtype);
      expect("y", e.y, e.dtype);
      return;
    case "cast":
      return;
    case "neg":
    case "exp2":
    case "log2":
    case "sin":
    case "sqrt":
    case "recip":
      expect("x", e.x, e.dtype);
      return;
    case "cmplt":
    case "cmpeq":
      if (e.dtype !== "bool") fail(`a comparison yields bool, got ${e.dtype}`);
      if (dtypeOf(e.x) !== dtypeOf(e.y)) fail(`operand dtypes differ: ${dtypeOf(e.x)} vs ${dtypeOf(e.y)}`);
      return;
    case "idiv":
    case "mod":
      if (e.dtype !== "i32") fail(`${e.op} works on i32, got ${e.dtype}`);
      expect("x", e.x, e.dtype);
      expect("y", e.y, e.dtype);
      return;
    case "add":
    case "mul":
    case "max":
      expect("x", e.x, e.dtype);
      expect("y", e.y, e.dtype);
      return;
    default:
      // An op this verifier does not know: the printer cannot spell it either.
      fail(`unknown expression op '${String((e as { op: unknown }).op)}'`);
  }
}
