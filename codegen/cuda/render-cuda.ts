// CUDA codegen: renders a kernel-IR kernel as one `extern "C" __global__` function. Each
// section's outer domain loops (all of them, or those above a hoisted row reduction: the
// render base's parallelDepthOf) are flattened onto the grid with a grid-stride loop; deeper
// loops run inside the thread. A section whose points each reduce many elements (softmax
// rows, a loss, a sum of everything) gives each point a warp: lanes split the point-level
// reductions, combine them with shuffles, then split the row's own loop to store it. Under a
// symbolic batch, every loop that steps its rows (rowBounds: grid-stride points, in-thread and
// warp-split reductions, the shared tiles' k loop) stops at the run's rows read from the size
// buffer, so the symbolic-rows pass drops the row masks (docs/training.md, "A symbolic batch").

import { sectionSourceNote } from "../../compiler/kernel/print.ts";
import { reduceElements, scheduleSection, type ScheduleItem } from "../../compiler/kernel/schedule.ts";
import { indexVars, type IndexVar } from "../../compiler/kernel/index-expr.ts";
import { exprOwnVars, type BufferDecl, type ExprId, type KExpr, type Kernel, type Section } from "../../compiler/kernel/kernel-ir.ts";
import { assertNever, bug } from "../../compiler/util/errors.ts";
import { needsHalfRounding, roundsAfterReduce } from "../../compiler/kernel/half-rounding.ts";
import { parallelDepthOf, renderIndex, renderPred, renderSectionBody, type BufferAccess } from "../render/base.ts";
import { cudaCLike, cudaDialect as d } from "./dialect.ts";
import { rowBounds, sizeBuffer, symbolicBound } from "../../compiler/kernel/symbolic-bound.ts";
import { planSharedTile, SHARED_TILE, type SharedTilePlan } from "./shared-tile.ts";
import { MMA_K, MMA_M, MMA_N, planMma, type MmaPlan } from "./mma-tile.ts";

/**
 * How a section's reductions run: a thread per point, a warp per point, 16x16-thread blocks
 * staging a contraction's operands in shared memory, or (picked by "auto" only) a warp per
 * 16x8 tile of a 16-bit contraction on tensor cores (mma-tile.ts).
 */
export type ReductionStrategy = "serial" | "warp" | "shared" | "mma";

export interface CudaRenderOptions {
  /** "auto" (default) picks per section: warps for few points with long reductions, shared-memory blocks for large contractions. */
  readonly reduction?: "auto" | ReductionStrategy;
  /** Buffers that may share memory with another parameter of the kernel: no __restrict__. */
  readonly mayAlias?: ReadonlySet<number>;
  /** Prefix for the kernel's symbol (tests put many programs into one module). */
  readonly symbolPrefix?: string;
}

import type { CudaLaunch } from "../../runtime/artifact/format.ts";
export type { CudaLaunch };

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
  const paramDecl = (id: number): string => {
    const b = buffers[id] ?? bug(`cuda: kernel ${kernel.name} binds unknown buffer ${id}`);
    const readOnly = !kernel.writes.includes(id);
    const restrict = opts.mayAlias?.has(id) ? "" : " __restrict__";
    return `${readOnly ? "const " : ""}${d.storageTypeName(b.dtype)}*${restrict} b${id}`;
  };
  const header = (): string =>
    `// ${kernel.name}: ${params.map((id) => `b${id} = ${buffers[id]!.name} ${buffers[id]!.dtype}[${buffers[id]!.shape.join(",")}]`).join(", ")}`;
  const lines: string[] = [header(), `extern "C" __global__ void __launch_bounds__(${CUDA_BLOCK_SIZE}) ${name}(${params.map(paramDecl).join(", ")}) {`];
  const strategies: ReductionStrategy[] = [];
  let maxThreads = 1;
  // A symbolic batch: sections whose points lead with it stop at the run's rows (b<size>[0]).
  const size = sizeBuffer(buffers);
  const shrunk: [number, number][] = [];
  let allShrunk = kernel.sections.length > 0;
  let readsSize = false;
  kernel.sections.forEach((s, i) => {
    const items = scheduleSection(s);
    const depth = parallelDepthOf(s, items);
    // An attention (softmax_sum's online softmax) runs a thread per row: its key loop is serial.
    const attention = s.form?.kind === "attention";
    const auto = !attention && (opts.reduction === undefined || opts.reduction === "auto");
    let strategy: ReductionStrategy = attention ? "serial" : auto ? pickStrategy(s, items, depth) : (opts.reduction as ReductionStrategy);
    // Tensor cores first: a 16-bit contraction with f32 accumulation whose shape fits (auto only).
    const mma = auto || strategy === "mma" ? planMma(s, items, depth) : undefined;
    const plan = !mma && ((auto && strategy === "serial") || strategy === "shared") ? planSharedTile(s, items, depth) : undefined;
    if ((strategy === "shared" && !plan) || (strategy === "mma" && !mma)) strategy = "serial"; // forced, but the section does not fit the pattern
    if (plan) strategy = "shared";
    if (mma) strategy = "mma";
    strategies.push(strategy);
    const points = product(s.domain.slice(0, depth));
    const mmaTiles = mma ? (mma.rowVar.extent / MMA_M) * (mma.colVar.extent / MMA_N) : 0;
    maxThreads = Math.max(
      maxThreads,
      strategy === "warp" ? points * WARP : strategy === "shared" ? sharedBlocks(s) * CUDA_BLOCK_SIZE : strategy === "mma" ? mmaTiles * WARP : points,
    );
    const bound = strategy !== "shared" && strategy !== "mma" && depth >= 1 ? symbolicBound(s, buffers) : undefined;
    let limit: string | undefined;
    if (bound) {
      const per = points / bound.extent;
      limit = `((${bound.extent} * b${bound.size.id}[0] + ${bound.max - 1}) / ${bound.max})${per === 1 ? "" : ` * ${per}`}`;
      shrunk.push([bound.extent, per * (strategy === "warp" ? WARP : 1)]);
    } else allShrunk = false;
    // Every loop that steps the batch's rows (domain and reduction loops, the shared tile's k
    // loop) stops at ceil(extent × n / max): `lim_<var>`, computed when the section starts.
    const limits = new Map<string, number>(size ? rowBounds(s, buffers).vars : []);
    if (limit || limits.size > 0) readsSize = true;
    new SectionWriter(s, strategy, depth, lines, plan, limit, limits, size, mma).write(items, i);
  });
  lines.push("}");
  const blocks = Math.min(MAX_BLOCKS, Math.max(1, Math.ceil(maxThreads / CUDA_BLOCK_SIZE)));
  const symbolic = allShrunk && size ? { size: size.id, max: size.dimMax!, sections: shrunk, perWorkgroup: CUDA_BLOCK_SIZE } : undefined;
  const launch: CudaLaunch = { grid: [blocks, 1, 1], block: [CUDA_BLOCK_SIZE, 1, 1], sharedBytes: 0, ...(symbolic ? { symbolic } : {}) };
  if (readsSize && !params.includes(size!.id)) {
    // The size buffer joins the parameters: re-render the signature with it.
    params.push(size!.id);
    params.sort((a, b) => a - b);
    lines[1] = `extern "C" __global__ void __launch_bounds__(${CUDA_BLOCK_SIZE}) ${name}(${params.map(paramDecl).join(", ")}) {`;
    lines[0] = header();
  }
  return { name, source: lines.join("\n") + "\n", params, launch, strategies };
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
  const longest = Math.max(0, ...pointReduces(items, threadBound).map(reduceElements));
  return longest >= WARP_MIN_REDUCE && product(s.domain.slice(0, depth)) < WARP_MAX_OUTPUTS ? "warp" : "serial";
}

/** Buffers are parameters `b<id>`; bool is a byte in memory. */
const cudaBufferAccess: BufferAccess = {
  load: (buffer, index, t) => d.loadValue(`b${buffer}[${index}]`, t),
  store: (buffer, index, value, t) => `b${buffer}[${index}] = ${d.storeValue(value, t)};`,
};

/** Blocks of 16x16 register tiles covering a section's domain (outer loops times the tile grid). */
function sharedBlocks(s: Section): number {
  const n = s.domain.length;
  const outer = product(s.domain.slice(0, n - 2));
  return outer * Math.ceil(s.domain[n - 2]!.extent / SHARED_TILE) * Math.ceil(s.domain[n - 1]!.extent / SHARED_TILE);
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
    private readonly plan?: SharedTilePlan,
    /** The points loop's bound at run time (a symbolic batch's rows), else the domain's points. */
    private readonly limit?: string,
    /** Loops that stop at a symbolic batch's rows (rowBounds), with their extents. */
    private readonly rowLimits: ReadonlyMap<string, number> = new Map(),
    private readonly size?: BufferDecl,
    private readonly mma?: MmaPlan,
  ) {
    this.threadBound = new Set(s.domain.slice(0, depth).map((v) => v.name));
    this.limits = new Map([...rowLimits.keys()].map((v) => [v, `lim_${v}`]));
  }

  /** `lim_<var>` per row-bounded loop, as the loops spell their bound. */
  private readonly limits: ReadonlyMap<string, string>;

  /** The bound of loop `v`: its run-time limit, or its extent. */
  private bound(v: IndexVar): string | number {
    return this.limits.get(v.name) ?? v.extent;
  }

  /** Where the section's limits are declared (declareLimits), once its body is written. */
  private limitsAt: { readonly line: number; readonly indent: string } | undefined;

  /** Marks the section's start: `declaredLimits` puts the limits there. */
  private declareLimits(indent: string): void {
    this.limitsAt = { line: this.lines.length, indent };
  }

  /** `const int lim_<v> = ceil(extent × n / max);` for each row-bounded loop the body uses, at the section's start. */
  private declaredLimits(): void {
    const size = this.size;
    const at = this.limitsAt;
    if (!size || !at) return;
    const body = this.lines.slice(at.line).join("\n");
    const decls = [...this.rowLimits]
      .filter(([v]) => new RegExp(`\\blim_${v}\\b`).test(body))
      .map(([v, extent]) => `${at.indent}const int lim_${v} = (int)(((long long)${extent} * b${size.id}[0] + ${size.dimMax! - 1}) / ${size.dimMax});`);
    this.lines.splice(at.line, 0, ...decls);
  }

  /** `if (v >= lim_v) continue;` for thread-bound row-bounded variables the points loop does not stop (their rows are padding). */
  private skipPadding(indent: string): void {
    for (const v of this.s.domain.slice(0, this.depth))
      if (this.limits.has(v.name) && this.usedVars.has(v.name) && !(this.limit && v === this.s.domain[0]))
        this.lines.push(`${indent}if (${v.name} >= lim_${v.name}) continue;`);
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
    if (this.plan) return this.writeShared(items, index, this.plan);
    if (this.mma) return this.writeMma(items, index, this.mma);
    const pointVars = s.domain.slice(0, this.depth);
    const points = product(pointVars);
    const wide = points * WARP >= 2 ** 31;
    const flat = wide ? "long long" : "int";
    const tileNote = s.tile ? `, register tile ${s.tile.rows}x${s.tile.cols}` : "";
    const domainNote = s.domain.map((v, i) => `${v.name}<${v.extent}${i < this.depth ? "" : " (in thread)"}`).join(", ") || "scalar";
    const thread = `${wide ? "(long long)" : ""}blockIdx.x * blockDim.x + threadIdx.x`;
    const stride = `${wide ? "(long long)" : ""}gridDim.x * blockDim.x`;
    const source = sectionSourceNote(s);
    this.lines.push(
      `  { // section ${index}: ${domainNote}${tileNote}; ${this.strategy === "warp" ? "a warp per point" : "a thread per point"}${source ? `; ${source}` : ""}`,
    );
    this.declareLimits("    ");
    if (this.strategy === "warp") {
      this.lines.push(`    const int lane = threadIdx.x & ${WARP - 1};`);
      this.lines.push(`    for (${flat} p = (${thread}) / ${WARP}; p < ${this.limit ?? points}; p += (${stride}) / ${WARP}) {`);
    } else {
      this.lines.push(`    for (${flat} p = ${thread}; p < ${this.limit ?? points}; p += ${stride}) {`);
    }
    this.defineFlatVars(pointVars, "p", "      ");
    this.skipPadding("      ");
    // A thread per point is plain C: the shared renderer base writes it; warps need the walker below.
    if (this.strategy === "serial") this.lines.push(...renderSectionBody(s, items, this.depth, cudaCLike, cudaBufferAccess, "      ", this.limits));
    else this.items(items, "      ", { laneSplit: false, inReduce: false });
    this.lines.push("    }", "  }");
    this.declaredLimits();
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
          this.lines.push(
            split
              ? `${indent}for (int ${v.name} = lane; ${v.name} < ${this.bound(v)}; ${v.name} += ${WARP}) {`
              : `${indent}for (int ${v.name} = 0; ${v.name} < ${this.bound(v)}; ${v.name}++) {`,
          );
          this.items(item.body, indent + "  ", { ...place, laneSplit: place.laneSplit || split });
          this.lines.push(`${indent}}`);
          break;
        }
        case "reduce":
          if (this.mma?.item === item) this.lines.push(`${indent}const float t${this.mma.reduce} = acc[j];`);
          else if (this.plan?.item === item) this.sharedReduce(item, indent, this.plan);
          else this.reduce(item, indent, place);
          break;
        case "store": {
          const b = `b${item.buffer}[${renderIndex(item.index, cudaCLike)}]`;
          const dtype = s.exprs[item.value]!.dtype;
          // Every lane holds the point's values; one stores them (in a lane-split loop, each its own).
          const guard = warp && !place.laneSplit ? "if (lane == 0) " : this.plan ? "if (inside) " : "";
          this.lines.push(`${indent}${guard}${b} = ${d.storeValue(`t${item.value}`, dtype)};`);
          break;
        }
        default:
          assertNever(item, "schedule item");
      }
    }
  }

  /** A grid-stride loop over blocks of 16x16 register tiles; out-of-range threads compute on row/column 0 and do not store. */
  private writeShared(items: readonly ScheduleItem[], index: number, plan: SharedTilePlan): void {
    const s = this.s;
    const n = s.domain.length;
    const rowVar = s.domain[n - 2]!;
    const colVar = s.domain[n - 1]!;
    const blockRows = Math.ceil(rowVar.extent / SHARED_TILE);
    const blockCols = Math.ceil(colVar.extent / SHARED_TILE);
    const tileNote = s.tile ? `, register tile ${s.tile.rows}x${s.tile.cols}` : "";
    const source = sectionSourceNote(s);
    this.lines.push(
      `  { // section ${index}: ${s.domain.map((v) => `${v.name}<${v.extent}`).join(", ")}${tileNote}; ${SHARED_TILE}x${SHARED_TILE}-thread blocks, operands staged in shared memory${source ? `; ${source}` : ""}`,
    );
    for (const id of [...plan.rowLoads, ...plan.colLoads])
      this.lines.push(`    __shared__ ${d.typeName(s.exprs[id]!.dtype)} s${id}[${SHARED_TILE}][${SHARED_TILE + 1}];`);
    this.lines.push(`    const int tx = threadIdx.x % ${SHARED_TILE};`, `    const int ty = threadIdx.x / ${SHARED_TILE};`);
    this.declareLimits("    ");
    // Rows of a symbolic batch (the outermost blocks when the tile's rows are the section's first loop): only the run's.
    const blockLimit =
      n === 2 && this.limits.has(rowVar.name) ? `((lim_${rowVar.name} + ${SHARED_TILE - 1}) / ${SHARED_TILE}) * ${blockCols}` : sharedBlocks(s);
    this.lines.push(`    for (int bt = blockIdx.x; bt < ${blockLimit}; bt += gridDim.x) {`);
    this.lines.push(
      `      const int rowRaw = ((bt / ${blockCols}) % ${blockRows}) * ${SHARED_TILE} + ty;`,
      `      const int colRaw = (bt % ${blockCols}) * ${SHARED_TILE} + tx;`,
    );
    this.lines.push(`      const bool inside = rowRaw < ${rowVar.extent} && colRaw < ${colVar.extent};`);
    this.lines.push(`      const int ${rowVar.name} = inside ? rowRaw : 0;`, `      const int ${colVar.name} = inside ? colRaw : 0;`);
    this.defineFlatVars(s.domain.slice(0, n - 2), `(bt / ${blockRows * blockCols})`, "      ");
    this.items(items, "      ", { laneSplit: false, inReduce: false });
    this.lines.push("    }", "  }");
    this.declaredLimits();
  }

  /**
   * A grid-stride loop over 16x8 output tiles, a warp each: per 16 steps of k the lanes load
   * their A and B fragment elements (each side's expressions rendered at the element's row, k
   * and column), one kiln_mma_* step accumulates in f32, then each lane runs the section's
   * other items (epilogue, stores) at its 4 outputs with the reduction's value from `acc`.
   */
  private writeMma(items: readonly ScheduleItem[], index: number, plan: MmaPlan): void {
    const s = this.s;
    const { rowVar, colVar, kVar } = plan;
    const colTiles = colVar.extent / MMA_N;
    const tiles = (rowVar.extent / MMA_M) * colTiles;
    const source = sectionSourceNote(s);
    this.lines.push(
      `  { // section ${index}: ${rowVar.name}<${rowVar.extent}, ${colVar.name}<${colVar.extent}, ${kVar.name}<${kVar.extent}; a warp per ${MMA_M}x${MMA_N} tile, mma.sync m16n8k16 (${plan.format} operands, f32 accumulate)${source ? `; ${source}` : ""}`,
      `    const int lane = threadIdx.x & ${WARP - 1};`,
      `    for (int wt = (blockIdx.x * blockDim.x + threadIdx.x) / ${WARP}; wt < ${tiles}; wt += (gridDim.x * blockDim.x) / ${WARP}) {`,
      `      const int m0 = (wt / ${colTiles}) * ${MMA_M};`,
      `      const int n0 = (wt % ${colTiles}) * ${MMA_N};`,
      "      float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};",
      `      for (int k0 = 0; k0 < ${kVar.extent}; k0 += ${MMA_K}) {`,
      "        unsigned short ha[8], hb[4];",
    );
    const bits = plan.format === "f16" ? "kiln_h16_bits" : "kiln_b16_bits";
    const fragment = (side: MmaPlan["lhs"], count: number, slot: string, row: [IndexVar, string], col: [IndexVar, string]): void => {
      this.lines.push(`        for (int j = 0; j < ${count}; j++) {`);
      this.lines.push(`          const int ${row[0].name} = ${row[1]};`, `          const int ${col[0].name} = ${col[1]};`);
      for (const id of side.ids) this.lines.push(`          const ${d.typeName(s.exprs[id]!.dtype)} t${id} = ${this.expr(s.exprs[id]!)};`);
      this.lines.push(`          ${slot}[j] = ${bits}(t${side.value});`, "        }");
    };
    fragment(plan.lhs, 8, "ha", [rowVar, "m0 + (lane >> 2) + ((j >> 1) & 1) * 8"], [kVar, "k0 + (lane & 3) * 2 + (j & 1) + (j >> 2) * 8"]);
    fragment(plan.rhs, 4, "hb", [kVar, "k0 + (lane & 3) * 2 + (j & 1) + (j >> 1) * 8"], [colVar, "n0 + (lane >> 2)"]);
    this.lines.push(
      "        const unsigned fa[4] = {ha[0] | ((unsigned)ha[1] << 16), ha[2] | ((unsigned)ha[3] << 16), ha[4] | ((unsigned)ha[5] << 16), ha[6] | ((unsigned)ha[7] << 16)};",
      "        const unsigned fb[2] = {hb[0] | ((unsigned)hb[1] << 16), hb[2] | ((unsigned)hb[3] << 16)};",
      `        kiln_mma_${plan.format}(acc, fa, fb);`,
      "      }",
      "      for (int j = 0; j < 4; j++) {",
      `        const int ${rowVar.name} = m0 + (lane >> 2) + (j >> 1) * 8;`,
      `        const int ${colVar.name} = n0 + (lane & 3) * 2 + (j & 1);`,
    );
    this.items(items, "        ", { laneSplit: true, inReduce: false });
    this.lines.push("      }", "    }", "  }");
  }

  /** The blocked reduction loop: stage a chunk of every operand load, then run the chunk from shared memory. */
  private sharedReduce(item: Extract<ScheduleItem, { kind: "reduce" }>, indent: string, plan: SharedTilePlan): void {
    const s = this.s;
    const T = SHARED_TILE;
    const n = s.domain.length;
    const rowVar = s.domain[n - 2]!;
    const colVar = s.domain[n - 1]!;
    const kVar = item.vars[0]!;
    const blockCols = Math.ceil(colVar.extent / T);
    const blockRows = Math.ceil(rowVar.extent / T);
    const accs = item.reduces.map((r) => ({ id: r, e: s.exprs[r]! }));
    for (const { id, e } of accs)
      if (e.op === "reduce_sum" || e.op === "reduce_max") this.lines.push(`${indent}${d.typeName(e.dtype)} t${id} = ${d.reduceIdentity(e.op, e.dtype)};`);
    const i2 = indent + "  ";
    const i3 = i2 + "  ";
    const kLimit = this.bound(kVar); // a symbolic batch's rows (uniform over the block: every thread reaches each __syncthreads)
    this.lines.push(`${indent}for (int k0 = 0; k0 < ${kLimit}; k0 += ${T}) {`);
    // Row operands: thread (r, kk) = (threadIdx / T, threadIdx % T); column operands: (kk, c), coalesced along c.
    const stage = (ids: readonly ExprId[], staged: IndexVar, kIndex: string, position: string, slot: string, baseOf: string): void => {
      if (ids.length === 0) return;
      this.lines.push(`${i2}{`);
      this.lines.push(`${i3}const int ${kVar.name} = k0 + ${kIndex};`);
      this.lines.push(`${i3}const int ${staged.name} = ${baseOf} * ${T} + ${position};`);
      this.lines.push(`${i3}const bool staged = ${kVar.name} < ${kLimit} && ${staged.name} < ${staged.extent};`);
      for (const id of ids) {
        const e = s.exprs[id]!;
        this.lines.push(`${i3}s${id}${slot} = staged ? ${this.expr(e)} : ${d.literal(0, e.dtype)};`);
      }
      this.lines.push(`${i2}}`);
    };
    stage(
      plan.rowLoads,
      rowVar,
      `threadIdx.x % ${T}`,
      `threadIdx.x / ${T}`,
      `[threadIdx.x % ${T}][threadIdx.x / ${T}]`,
      `((bt / ${blockCols}) % ${blockRows})`,
    );
    stage(plan.colLoads, colVar, `threadIdx.x / ${T}`, `threadIdx.x % ${T}`, `[threadIdx.x / ${T}][threadIdx.x % ${T}]`, `(bt % ${blockCols})`);
    this.lines.push(`${i2}__syncthreads();`);
    this.lines.push(`${i2}const int chunk = ${kLimit} - k0 < ${T} ? ${kLimit} - k0 : ${T};`);
    this.lines.push(`${i2}for (int kk = 0; kk < chunk; kk++) {`);
    const rowStaged = new Set(plan.rowLoads);
    const colStaged = new Set(plan.colLoads);
    for (const bodyItem of item.body) {
      if (bodyItem.kind !== "expr") return bug("cuda: shared tile body holds a non-expression");
      const e = s.exprs[bodyItem.id]!;
      const value = rowStaged.has(bodyItem.id) ? `s${bodyItem.id}[kk][ty]` : colStaged.has(bodyItem.id) ? `s${bodyItem.id}[kk][tx]` : this.expr(e);
      this.lines.push(`${i3}const ${d.typeName(e.dtype)} t${bodyItem.id} = ${value};`);
    }
    for (const { id, e } of accs)
      if (e.op === "reduce_sum" || e.op === "reduce_max") this.lines.push(`${i3}${d.reduceStep(e.op, `t${id}`, `t${e.body}`, e.dtype)}`);
    this.lines.push(`${i2}}`, `${i2}__syncthreads();`, `${indent}}`);
    this.roundSums(item.reduces, indent);
  }

  /** A 16-bit sum accumulates in float and is rounded to its format once, after its loop (compiler/kernel/half-rounding.ts). */
  private roundSums(ids: readonly ExprId[], indent: string): void {
    for (const id of ids) {
      const e = this.s.exprs[id]!;
      if (roundsAfterReduce(e)) this.lines.push(`${indent}t${id} = ${cudaCLike.roundHalf(`t${id}`, e.dtype)};`);
    }
  }

  private reduce(item: Extract<ScheduleItem, { kind: "reduce" }>, indent: string, place: Place): void {
    const s = this.s;
    const acrossWarp = this.strategy === "warp" && !place.laneSplit && !place.inReduce;
    const accs = item.reduces.map((r) => {
      const e = s.exprs[r]!;
      if (e.op !== "reduce_sum" && e.op !== "reduce_max") return bug(`cuda: ${e.op} in a warp or shared reduce item (only the serial strategy renders it)`);
      return { id: r, e };
    });
    for (const { id, e } of accs) this.lines.push(`${indent}${d.typeName(e.dtype)} t${id} = ${d.reduceIdentity(e.op, e.dtype)};`);
    const vars = item.vars.filter((v) => v.extent !== 1);
    let inner = indent;
    if (acrossWarp) {
      const counter = `q${this.reduceCount++}`;
      // The lanes split the flattened loops: a row-bounded first one stops the counter, a later one skips its padding.
      const first = vars[0];
      const total = first && this.limits.has(first.name) ? `lim_${first.name} * ${product(vars.slice(1))}` : product(vars);
      this.lines.push(`${indent}for (int ${counter} = lane; ${counter} < ${total}; ${counter} += ${WARP}) {`);
      inner = indent + "  ";
      for (const v of vars.slice(1)) if (this.limits.has(v.name)) this.usedVars.add(v.name);
      this.defineFlatVars(vars, counter, inner);
      for (const v of vars.slice(1)) if (this.limits.has(v.name)) this.lines.push(`${inner}if (${v.name} >= lim_${v.name}) continue;`);
    } else {
      for (const v of vars) {
        this.lines.push(`${inner}for (int ${v.name} = 0; ${v.name} < ${this.bound(v)}; ${v.name}++) {`);
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
    this.roundSums(item.reduces, indent);
  }

  /** An expression's value; a 16-bit result is rounded to its format, as the interpreter rounds each op. */
  private expr(e: KExpr): string {
    const value = this.exprF32(e);
    return needsHalfRounding(e, this.s.exprs) ? cudaCLike.roundHalf(value, e.dtype) : value;
  }

  private exprF32(e: KExpr): string {
    const s = this.s;
    const t = (id: ExprId): string => `t${id}`;
    const dtypeOf = (id: ExprId) => s.exprs[id]!.dtype;
    switch (e.op) {
      case "const":
        return d.literal(e.value, e.dtype);
      case "load": {
        if (e.valid === false) return d.literal(0, e.dtype);
        const load = d.loadValue(`b${e.buffer}[${renderIndex(e.index, cudaCLike)}]`, e.dtype);
        return e.valid.length === 0 ? load : d.select(renderPred(e.valid, cudaCLike), load, d.literal(0, e.dtype));
      }
      case "index":
        return renderIndex(e.index, cudaCLike);
      case "valid":
        return `(${renderPred(e.pred, cudaCLike)})`;
      case "rng":
        return d.rng(t(e.seed), e.stream, renderIndex(e.counter, cudaCLike));
      case "reduce_sum":
      case "reduce_max":
      case "softmax_sum":
      case "softmax_max":
      case "softmax_norm":
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
