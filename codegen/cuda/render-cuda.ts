// CUDA codegen: renders a kernel-IR kernel as one `extern "C" __global__` function. Each
// section's outer domain loops (all of them, or those above a hoisted row reduction: the
// render base's parallelDepthOf) are flattened onto the grid with a grid-stride loop; deeper
// loops run inside the thread. A section whose points each reduce many elements (softmax
// rows, a loss, a sum of everything) gives each point a warp: lanes split the point-level
// reductions, combine them with shuffles, then split the row's own loop to store it.

import { scheduleSection, type ScheduleItem } from "../../compiler/kernel/schedule.ts";
import { bounds, indexVars, type Atom, type IndexExpr, type IndexPred, type IndexVar } from "../../compiler/kernel/index-expr.ts";
import { exprOwnVars, type BufferDecl, type ExprId, type KExpr, type Kernel, type Section } from "../../compiler/kernel/kernel-ir.ts";
import { assertNever, bug } from "../../compiler/util/errors.ts";
import { parallelDepthOf } from "../render/base.ts";
import { cudaDialect as d } from "./dialect.ts";

/** How a section's reductions run: one thread per output, or one warp per output. */
export type ReductionStrategy = "serial" | "warp";

export interface CudaRenderOptions {
  /** "auto" (default) picks per section: warps for few outputs with long reductions. */
  readonly reduction?: "auto" | ReductionStrategy;
  /** Buffers that may share memory with another parameter of the kernel: no __restrict__. */
  readonly mayAlias?: ReadonlySet<number>;
  /** Prefix for the kernel's symbol (tests put many programs into one module). */
  readonly symbolPrefix?: string;
}

export interface CudaLaunch {
  readonly grid: readonly [number, number, number];
  readonly block: readonly [number, number, number];
  readonly sharedBytes: number;
}

export interface RenderedCudaKernel {
  /** The symbol cuModuleGetFunction looks up. */
  readonly name: string;
  readonly source: string;
  /** Buffer ids in parameter order. */
  readonly params: readonly number[];
  readonly launch: CudaLaunch;
  readonly strategies: readonly ReductionStrategy[];
}

export const CUDA_BLOCK_SIZE = 256;
const WARP = 32;
/** A warp per output pays when each output reduces at least this many elements… */
const WARP_MIN_REDUCE = 64;
/** …and there are too few outputs to fill the GPU with one thread each. */
const WARP_MAX_OUTPUTS = 65536;
/** Grid-stride loops cover the rest: more blocks than this only add scheduling cost. */
const MAX_BLOCKS = 1 << 20;

const product = (vars: readonly IndexVar[]): number => vars.reduce((acc, v) => acc * v.extent, 1);

export function renderCudaKernel(kernel: Kernel, buffers: readonly BufferDecl[], opts: CudaRenderOptions = {}): RenderedCudaKernel {
  const params = [...new Set([...kernel.reads, ...kernel.writes])].sort((a, b) => a - b);
  const name = `${opts.symbolPrefix ?? ""}${kernel.name}`.replace(/[^A-Za-z0-9_]/g, "_");
  const signature = params.map((id) => {
    const b = buffers[id] ?? bug(`cuda: kernel ${kernel.name} binds unknown buffer ${id}`);
    const readOnly = !kernel.writes.includes(id);
    const restrict = opts.mayAlias?.has(id) ? "" : " __restrict__";
    return `${readOnly ? "const " : ""}${d.storageTypeName(b.dtype)}*${restrict} b${id}`;
  });
  const lines: string[] = [
    `// ${kernel.name}: ${params.map((id) => `b${id} = ${buffers[id]!.name} ${buffers[id]!.dtype}[${buffers[id]!.shape.join(",")}]`).join(", ")}`,
    `extern "C" __global__ void __launch_bounds__(${CUDA_BLOCK_SIZE}) ${name}(${signature.join(", ")}) {`,
  ];
  const strategies: ReductionStrategy[] = [];
  let maxThreads = 1;
  kernel.sections.forEach((s, i) => {
    const items = scheduleSection(s);
    const depth = parallelDepthOf(s, items);
    const strategy = opts.reduction === undefined || opts.reduction === "auto" ? pickStrategy(s, items, depth) : opts.reduction;
    strategies.push(strategy);
    const points = product(s.domain.slice(0, depth));
    maxThreads = Math.max(maxThreads, strategy === "warp" ? points * WARP : points);
    new SectionWriter(s, strategy, depth, lines).write(items, i);
  });
  lines.push("}");
  const blocks = Math.min(MAX_BLOCKS, Math.max(1, Math.ceil(maxThreads / CUDA_BLOCK_SIZE)));
  return { name, source: lines.join("\n") + "\n", params, launch: { grid: [blocks, 1, 1], block: [CUDA_BLOCK_SIZE, 1, 1], sharedBytes: 0 }, strategies };
}

/** Reduce items at point level: not nested in another reduction or in a loop the thread runs. */
function pointReduces(items: readonly ScheduleItem[], threadBound: ReadonlySet<string>): Extract<ScheduleItem, { kind: "reduce" }>[] {
  const out: Extract<ScheduleItem, { kind: "reduce" }>[] = [];
  for (const item of items) {
    if (item.kind === "reduce") out.push(item);
    else if (item.kind === "loop" && (threadBound.has(item.v.name) || item.v.extent === 1)) out.push(...pointReduces(item.body, threadBound));
  }
  return out;
}

function pickStrategy(s: Section, items: readonly ScheduleItem[], depth: number): ReductionStrategy {
  const threadBound = new Set(s.domain.slice(0, depth).map((v) => v.name));
  const longest = Math.max(0, ...pointReduces(items, threadBound).map((r) => product(r.vars)));
  return longest >= WARP_MIN_REDUCE && product(s.domain.slice(0, depth)) < WARP_MAX_OUTPUTS ? "warp" : "serial";
}

/** Where an item is rendered: inside a lane-split row loop, inside a reduction's loop. */
interface Place {
  readonly laneSplit: boolean;
  readonly inReduce: boolean;
}

class SectionWriter {
  private reduceCount = 0;
  /** Loop variables some expression or store reads (others are never defined: nvcc warns). */
  private readonly usedVars = new Set<string>();
  private readonly threadBound: Set<string>;
  constructor(
    private readonly s: Section,
    private readonly strategy: ReductionStrategy,
    private readonly depth: number,
    private readonly lines: string[],
  ) {
    this.threadBound = new Set(s.domain.slice(0, depth).map((v) => v.name));
  }

  private collectUsedVars(items: readonly ScheduleItem[]): void {
    for (const item of items) {
      if (item.kind === "expr") for (const v of exprOwnVars(this.s.exprs[item.id]!)) this.usedVars.add(v);
      else if (item.kind === "store") indexVars(item.index, this.usedVars);
      else this.collectUsedVars(item.body);
    }
  }

  write(items: readonly ScheduleItem[], index: number): void {
    const s = this.s;
    this.collectUsedVars(items);
    const pointVars = s.domain.slice(0, this.depth);
    const points = product(pointVars);
    const wide = points * WARP >= 2 ** 31;
    const flat = wide ? "long long" : "int";
    const tileNote = s.tile ? `, register tile ${s.tile.rows}x${s.tile.cols}` : "";
    const domainNote = s.domain.map((v, i) => `${v.name}<${v.extent}${i < this.depth ? "" : " (in thread)"}`).join(", ") || "scalar";
    const thread = `${wide ? "(long long)" : ""}blockIdx.x * blockDim.x + threadIdx.x`;
    const stride = `${wide ? "(long long)" : ""}gridDim.x * blockDim.x`;
    this.lines.push(`  { // section ${index}: ${domainNote}${tileNote}; ${this.strategy === "warp" ? "a warp per point" : "a thread per point"}`);
    if (this.strategy === "warp") {
      this.lines.push(`    const int lane = threadIdx.x & ${WARP - 1};`);
      this.lines.push(`    for (${flat} p = (${thread}) / ${WARP}; p < ${points}; p += (${stride}) / ${WARP}) {`);
    } else {
      this.lines.push(`    for (${flat} p = ${thread}; p < ${points}; p += ${stride}) {`);
    }
    this.defineFlatVars(pointVars, "p", "      ");
    this.items(items, "      ", { laneSplit: false, inReduce: false });
    this.lines.push("    }", "  }");
  }

  /** `const int v = (flat / stride) % extent` for each variable, outermost first. */
  private defineFlatVars(vars: readonly IndexVar[], flat: string, indent: string): void {
    let stride = 1;
    const strides: number[] = [];
    for (let i = vars.length - 1; i >= 0; i--) {
      strides[i] = stride;
      stride *= vars[i]!.extent;
    }
    vars.forEach((v, i) => {
      if (v.extent === 1 || !this.usedVars.has(v.name)) return; // size 1: simplified away everywhere
      const quotient = strides[i] === 1 ? flat : `${flat} / ${strides[i]}`;
      const value = i === 0 ? quotient : `(${quotient}) % ${v.extent}`;
      this.lines.push(`${indent}const int ${v.name} = (int)(${value});`);
    });
  }

  private items(items: readonly ScheduleItem[], indent: string, place: Place): void {
    const s = this.s;
    const warp = this.strategy === "warp";
    for (const item of items) {
      switch (item.kind) {
        case "expr": {
          const e = s.exprs[item.id]!;
          this.lines.push(`${indent}const ${d.typeName(e.dtype)} t${item.id} = ${this.expr(e)};`);
          break;
        }
        case "loop": {
          const v = item.v;
          if (this.threadBound.has(v.name) || v.extent === 1) {
            // Bound by the flat point index (defined at the top of the section), or size 1.
            this.items(item.body, indent, place);
            break;
          }
          // A row loop inside the point: a warp's lanes share it, a lone thread walks it.
          const split = warp && !place.laneSplit && !place.inReduce;
          this.lines.push(split ? `${indent}for (int ${v.name} = lane; ${v.name} < ${v.extent}; ${v.name} += ${WARP}) {` : `${indent}for (int ${v.name} = 0; ${v.name} < ${v.extent}; ${v.name}++) {`);
          this.items(item.body, indent + "  ", { ...place, laneSplit: place.laneSplit || split });
          this.lines.push(`${indent}}`);
          break;
        }
        case "reduce":
          this.reduce(item, indent, place);
          break;
        case "store": {
          const b = `b${item.buffer}[${renderIndex(item.index)}]`;
          const dtype = s.exprs[item.value]!.dtype;
          // Every lane holds the point's values; one stores them (in a lane-split loop, each its own).
          const guard = warp && !place.laneSplit ? "if (lane == 0) " : "";
          this.lines.push(`${indent}${guard}${b} = ${d.storeValue(`t${item.value}`, dtype)};`);
          break;
        }
        default:
          assertNever(item, "schedule item");
      }
    }
  }

  private reduce(item: Extract<ScheduleItem, { kind: "reduce" }>, indent: string, place: Place): void {
    const s = this.s;
    const acrossWarp = this.strategy === "warp" && !place.laneSplit && !place.inReduce;
    const accs = item.reduces.map((r) => {
      const e = s.exprs[r]!;
      if (e.op !== "reduce_sum" && e.op !== "reduce_max") return bug("cuda: reduce item holds a non-reduction");
      return { id: r, e };
    });
    for (const { id, e } of accs) this.lines.push(`${indent}${d.typeName(e.dtype)} t${id} = ${d.reduceIdentity(e.op, e.dtype)};`);
    const vars = item.vars.filter((v) => v.extent !== 1);
    let inner = indent;
    if (acrossWarp) {
      const counter = `q${this.reduceCount++}`;
      this.lines.push(`${indent}for (int ${counter} = lane; ${counter} < ${product(vars)}; ${counter} += ${WARP}) {`);
      inner = indent + "  ";
      this.defineFlatVars(vars, counter, inner);
    } else {
      for (const v of vars) {
        this.lines.push(`${inner}for (int ${v.name} = 0; ${v.name} < ${v.extent}; ${v.name}++) {`);
        inner += "  ";
      }
    }
    this.items(item.body, inner, { ...place, inReduce: true });
    for (const { id, e } of accs) this.lines.push(`${inner}${d.reduceStep(e.op, `t${id}`, `t${e.body}`, e.dtype)}`);
    const loops = acrossWarp ? 1 : vars.length;
    for (let i = 0; i < loops; i++) {
      inner = inner.slice(2);
      this.lines.push(`${inner}}`);
    }
    if (acrossWarp) for (const { id, e } of accs) this.lines.push(`${indent}t${id} = ${d.warpReduce(e.op, `t${id}`, e.dtype)};`);
  }

  private expr(e: KExpr): string {
    const s = this.s;
    const t = (id: ExprId): string => `t${id}`;
    const dtypeOf = (id: ExprId) => s.exprs[id]!.dtype;
    switch (e.op) {
      case "const":
        return d.literal(e.value, e.dtype);
      case "load": {
        if (e.valid === false) return d.literal(0, e.dtype);
        const load = d.loadValue(`b${e.buffer}[${renderIndex(e.index)}]`, e.dtype);
        return e.valid.length === 0 ? load : d.select(renderPred(e.valid), load, d.literal(0, e.dtype));
      }
      case "index":
        return renderIndex(e.index);
      case "valid":
        return `(${renderPred(e.pred)})`;
      case "rng":
        return d.rng(t(e.seed), e.stream, renderIndex(e.counter));
      case "reduce_sum":
      case "reduce_max":
        return bug("cuda: a reduction outside its reduce item");
      case "neg":
      case "exp2":
      case "log2":
      case "sin":
      case "sqrt":
      case "recip":
        return d.unary[e.op](t(e.x));
      case "cast":
        return d.cast(t(e.x), dtypeOf(e.x), e.dtype);
      case "where":
        return d.select(t(e.cond), t(e.x), t(e.y));
      case "add":
      case "mul":
      case "max":
      case "cmplt":
      case "cmpeq":
      case "idiv":
      case "mod":
        return d.binary[e.op](t(e.x), t(e.y), dtypeOf(e.x));
      default:
        return assertNever(e, "kernel expr");
    }
  }
}

/** An index expression as C integer arithmetic (floor div/mod through helpers where the dividend may be negative). */
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
      const nonNegative = bounds(a.x)[0] >= 0;
      return nonNegative ? `((${renderIndex(a.x)}) / ${a.divisor})` : `kiln_idiv(${renderIndex(a.x)}, ${a.divisor})`;
    }
    case "mod": {
      const nonNegative = bounds(a.x)[0] >= 0;
      return nonNegative ? `((${renderIndex(a.x)}) % ${a.divisor})` : `kiln_imod(${renderIndex(a.x)}, ${a.divisor})`;
    }
    default:
      return assertNever(a, "index atom");
  }
}

function renderPred(p: IndexPred): string {
  if (p === false) return "false";
  if (p.length === 0) return "true";
  return p.map((c) => `${renderIndex(c.x)} ${c.op === "lt" ? "<" : ">="} ${c.bound}`).join(" && ");
}
