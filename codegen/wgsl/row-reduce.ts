// Row kernels with one workgroup per row: where a section's reductions sit at the row level
// (softmax, layerNorm, a long sum), the threads of a workgroup (`form row threads=T`, default 64) share each row: every
// row-level reduction runs strided over the threads and finishes with a tree reduction in
// workgroup memory (its result broadcast to all threads), and every loop over the row's
// elements is strided too. Deeper loops stay serial inside a thread. A row-level store (one
// value per row) is thread 0's alone, so an in-place update reads its old value first. Which
// sections run so is the `row-kernels` pass's choice (targets/webgpu-passes.ts: a `form row`
// fact); this renders it.

import type { DType } from "../../compiler/ir/dtype.ts";
import type { IndexVar } from "../../compiler/kernel/index-expr.ts";
import { bug } from "../../compiler/util/errors.ts";
import type { BufferDecl, ExprId, Section } from "../../compiler/kernel/kernel-ir.ts";
import type { ScheduleItem } from "../../compiler/kernel/schedule.ts";
import { exprName, parallelDepthOf, renderSectionBody, scheduleSection, type CLikeDialect } from "../render/base.ts";
import { OPAQUE_ZERO, wgslDialectFor, wgslHelpersFor } from "./dialect.ts";
import { sectionSourceNote } from "../../compiler/kernel/print.ts";
import type { WebGpuLimits } from "./layout.ts";
import { foldWorkgroups, opaqueZero, symbolicDispatch, type DispatchBindings, type RenderedDispatch } from "./dispatch.ts";
import { limitDecls, limitName, readRows, rowLimitVars, rowsSizeOf } from "./row-limits.ts";

/** Threads per row where the `form row` fact names none. */
export const ROW_THREADS_DEFAULT = 64;
/** The workgroup array a row reduction of each dtype goes through; bool rows are not row kernels. */
// 16-bit rows take the plain form, which rounds each op and the sum (compiler/kernel/half-rounding.ts).
const ROW_SHARED: { readonly [D in DType]: string | undefined } = { f32: "rowF32", f16: undefined, bf16: undefined, i32: "rowI32", bool: undefined };
const extentOf = (vars: readonly IndexVar[]): number => vars.reduce((a, v) => a * v.extent, 1);

/** Whether a row kernel can share a reduction of this dtype through workgroup memory (bool cannot). */
export const rowReducible = (dtype: DType): boolean => ROW_SHARED[dtype] !== undefined;

/** The items inside the thread-bound loops (the row's body). */
export function rowLevelItems(items: readonly ScheduleItem[], depth: number): ScheduleItem[] {
  let list: readonly ScheduleItem[] = items;
  const out: ScheduleItem[] = [];
  for (let level = 0; ; level++) {
    const next = level < depth ? list.find((it) => it.kind === "loop") : undefined;
    out.push(...list.filter((it) => it !== next));
    if (!next || next.kind !== "loop") return out;
    list = next.body;
  }
}

export function renderRowKernel(
  d: { readonly name: string; readonly sections: readonly Section[] },
  b: DispatchBindings,
  limits: WebGpuLimits,
  buffers?: readonly BufferDecl[],
  rowThreads = ROW_THREADS_DEFAULT,
  rolled = false,
): RenderedDispatch {
  const s = d.sections[0]!;
  // threads per row (a power of two: the tree reduction halves it)
  const ROW_THREADS = rowThreads;
  const dialect = wgslDialectFor(rolled);
  const items = scheduleSection(s);
  const depth = parallelDepthOf(s, items);
  const parallel = s.domain.slice(0, depth);
  const rows = extentOf(parallel);
  // Reductions over a symbolic batch's rows stop at the run's rows (row-limits.ts; n is uniform across the workgroup).
  const bounded = rowLimitVars(s, buffers);
  const limitNames = new Map([...bounded.keys()].map((v) => [v, limitName(v)]));
  const render = (list: readonly ScheduleItem[], indent: string): string[] => renderSectionBody(s, list, depth, dialect, b.access, indent, limitNames);
  const body: string[] = [];
  let stride = rows;
  for (const v of parallel) {
    stride /= v.extent;
    const q = stride === 1 ? "row" : `row / ${stride}`;
    body.push(`  let ${v.name}: i32 = ${v.extent === 1 ? "0" : stride * v.extent === rows ? q : `${q} % ${v.extent}`};`);
  }
  const ind = "  ";
  // A one-long loop is no loop: its body (stores included) sits at the row level.
  const flat = (list: readonly ScheduleItem[]): ScheduleItem[] => list.flatMap((it) => (it.kind === "loop" && it.v.extent === 1 ? flat(it.body) : [it]));
  const rowItems = flat(rowLevelItems(items, depth));
  for (const [i, item] of rowItems.entries()) {
    if (item.kind === "loop") {
      // A loop over the row's elements: each thread takes every 64th.
      body.push(
        `${ind}for (var ${item.v.name}: i32 = lid; ${item.v.name} < ${item.v.extent}; ${item.v.name} += ${ROW_THREADS}) {`,
        ...render(item.body, ind + "  "),
        `${ind}}`,
      );
    } else if (item.kind === "reduce") {
      body.push(...cooperativeReduce(s, item, render, ind, ROW_THREADS, dialect, rolled, bounded));
    } else if (item.kind === "store") {
      // A row-level store (one value per row): thread 0 alone writes it. Were every thread to
      // store, an output the memory plan places over an input it reads at the same index
      // (AdamW's exp_avg and parameter updated in place) would be written by one thread before
      // another has read the old value, and the last writer's doubled update would win.
      if (rowItems[i - 1]?.kind !== "store") body.push(`${ind}if (lid == 0) {`);
      body.push(...render([item], ind + "  "));
      if (rowItems[i + 1]?.kind !== "store") body.push(`${ind}}`);
    } else body.push(...render([item], ind));
  }
  const workgroups = foldWorkgroups(rows, d.name, limits.maxComputeWorkgroupsPerDimension);
  const [nx, ny] = workgroups;
  const size = rowsSizeOf([s], buffers);
  const limitLines = size ? limitDecls(bounded, size.dimMax!, body.join("\n"), "  ") : [];
  const reading = size ? readRows(size, b.access, true, body.join("\n") + limitLines.join("\n")) : undefined;
  const bodyText = [...(reading?.lines ?? []), ...limitLines, ...body].join("\n");
  const source = [
    `// ${d.name}: one workgroup of ${ROW_THREADS} threads per row (${rows} rows)`,
    ...(sectionSourceNote(s) ? [`// from ${sectionSourceNote(s)}`] : []),
    ...b.decls,
    `var<workgroup> rowF32: array<f32, ${ROW_THREADS}>;`,
    `var<workgroup> rowI32: array<i32, ${ROW_THREADS}>;`,
    ...(reading?.decls ?? []),
    ...wgslHelpersFor(bodyText),
    "",
    `@compute @workgroup_size(${ROW_THREADS})`,
    "fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lidu: u32) {",
    `  let row = i32((wid.z * ${Math.max(ny, 1)}u + wid.y) * ${Math.max(nx, 1)}u + wid.x);`,
    // Uniform per workgroup, so the barriers below stay in uniform control flow.
    `  if (row >= ${rows}) { return; }`,
    "  let lid = i32(lidu);",
    ...opaqueZero(bodyText, b.gpuBuffers),
    bodyText,
    "}",
    "",
  ].join("\n");
  // One workgroup per row: a batch-led row index shrinks to the run's rows.
  const symbolic = symbolicDispatch([[s, depth, rows]], buffers, 1);
  return { name: d.name, source, bindings: b.gpuBuffers, workgroups, ...(symbolic ? { symbolic } : {}) };
}

type ReduceItem = Extract<ScheduleItem, { kind: "reduce" }>;

/**
 * A sum whose only summand is another sum over its own loop (the outer levels of a blocked
 * sum, compiler/kernel/block-sum.ts): the two loops as one, summing the inner body directly.
 * The outer level alone is at most 32 long, too few to keep the workgroup's threads busy.
 */
function mergedLevels(
  s: Section,
  item: ReduceItem,
): { readonly vars: readonly IndexVar[]; readonly body: readonly ScheduleItem[]; readonly summand: ExprId } | undefined {
  const [only] = item.body;
  if (item.reduces.length !== 1 || item.body.length !== 1 || only?.kind !== "reduce" || only.reduces.length !== 1) return undefined;
  const outer = s.exprs[item.reduces[0]!]!;
  const inner = s.exprs[only.reduces[0]!]!;
  if (outer.op !== "reduce_sum" || inner.op !== "reduce_sum" || outer.body !== only.reduces[0]) return undefined;
  return { vars: [...item.vars, ...only.vars], body: only.body, summand: inner.body };
}

function cooperativeReduce(
  s: Section,
  item: ReduceItem,
  render: (list: readonly ScheduleItem[], indent: string) => string[],
  ind: string,
  ROW_THREADS: number,
  d: CLikeDialect,
  rolled: boolean,
  bounded: ReadonlyMap<string, number>,
): string[] {
  const lines: string[] = [];
  const merged = mergedLevels(s, item);
  const vars = (merged?.vars ?? item.vars).filter((v) => v.extent !== 1);
  const extent = extentOf(vars);
  for (const r of item.reduces) {
    const e = s.exprs[r]!;
    lines.push(`${ind}${d.declareVar(exprName(r), e.dtype, d.reduceInit(e.op as "reduce_sum", e.dtype))}`);
  }
  const loopVar = `q_${exprName(item.reduces[0]!)}`;
  // A bounded outermost variable shortens the flattened loop; a bounded inner one skips its padding steps.
  const [outer] = vars;
  const end = outer && bounded.has(outer.name) ? `${limitName(outer.name)}${extent === outer.extent ? "" : ` * ${extent / outer.extent}`}` : `${extent}`;
  const guards = vars.filter((v) => v !== outer && bounded.has(v.name)).map((v) => `${v.name} < ${limitName(v.name)}`);
  lines.push(`${ind}for (var ${loopVar}: i32 = lid; ${loopVar} < ${end}; ${loopVar} += ${ROW_THREADS}) {`);
  let stride = extent;
  for (const v of vars) {
    stride /= v.extent;
    lines.push(`${ind}  let ${v.name}: i32 = ${stride === 1 ? loopVar : `${loopVar} / ${stride}`}${stride * v.extent === extent ? "" : ` % ${v.extent}`};`);
  }
  const inner = guards.length > 0 ? `${ind}    ` : `${ind}  `;
  if (guards.length > 0) lines.push(`${ind}  if (${guards.join(" && ")}) {`);
  lines.push(...render(merged?.body ?? item.body, inner));
  const stepOf = (r: ExprId): "add" | "max" => (s.exprs[r]!.op === "reduce_sum" ? "add" : "max");
  for (const r of item.reduces) {
    const e = s.exprs[r]! as { body: ExprId; dtype: DType };
    lines.push(`${inner}${exprName(r)} = ${d.binary(stepOf(r), exprName(r), exprName(merged?.summand ?? e.body), e.dtype)};`);
  }
  if (guards.length > 0) lines.push(`${ind}  }`);
  lines.push(`${ind}}`);
  // Tree reduction of the 64 partials, one reduction at a time through workgroup memory.
  for (const r of item.reduces) {
    const t = s.exprs[r]!.dtype;
    const shared = ROW_SHARED[t] ?? bug(`wgsl row kernel: no workgroup array for ${t}`);
    lines.push(
      `${ind}${shared}[lid] = ${exprName(r)};`,
      `${ind}workgroupBarrier();`,
      `${ind}for (var half: i32 = ${ROW_THREADS / 2}; half > ${rolled ? OPAQUE_ZERO : "0"}; half = half / 2) {`,
      `${ind}  if (lid < half) { ${shared}[lid] = ${d.binary(stepOf(r), `${shared}[lid]`, `${shared}[lid + half]`, t)}; }`,
      `${ind}  workgroupBarrier();`,
      `${ind}}`,
      `${ind}${exprName(r)} = ${shared}[0];`,
      // Everyone has read slot 0 before the next reduction overwrites it.
      `${ind}workgroupBarrier();`,
    );
  }
  return lines;
}
