// Tiled matmul for a contraction section (a section whose `dot` fact names a reduce_sum over
// one k of lhs(row, k) * rhs(k, col), with any elementwise epilogue): a 256-thread workgroup owns a 64x64 output tile, stages
// 64x16 and 16x64 operand tiles in workgroup memory (each operand element read from storage
// once per tile instead of once per output), and each thread accumulates a 4x4 register block.
// The operand expressions (transposes, pads, casts) are rendered as the IR gives them. The
// default form (renderRegisterMatmul) drops the workgroup tiles for 8x8 register blocks.
// Which sections render so, and in which form, is the `matmul-form` pass's choice
// (targets/webgpu-passes.ts: a `form matmul …` fact); this renders it.

import { sectionSourceNote } from "../../compiler/kernel/print.ts";
import { exprOperands, exprOwnVars, type ExprId, type KExpr, type Section } from "../../compiler/kernel/kernel-ir.ts";
import type { IndexExpr, IndexVar } from "../../compiler/kernel/index-expr.ts";
import { exprName, renderExprList, renderIndex } from "../render/base.ts";
import { wgslDialect, wgslHelpersFor } from "./dialect.ts";
import type { WebGpuLimits } from "./layout.ts";
import { foldWorkgroups, type DispatchBindings, type RenderedDispatch } from "./dispatch.ts";

const TILE = 64;
const TILE_K = 16;
const THREADS_PER_SIDE = 16;
const BLOCK = TILE / THREADS_PER_SIDE; // 4x4 outputs per thread

export interface Contraction {
  readonly reduce: ExprId;
  readonly k: IndexVar;
  readonly row: IndexVar;
  readonly col: IndexVar;
  readonly batch: readonly IndexVar[];
  /** Expression ids of each operand's subtree (row-side and col-side). */
  readonly lhs: { readonly value: ExprId; readonly ids: ReadonlySet<ExprId> };
  readonly rhs: { readonly value: ExprId; readonly ids: ReadonlySet<ExprId> };
  /** Live expressions after the reduction (the epilogue), reduction excluded. */
  readonly epilogue: ReadonlySet<ExprId>;
}

function closure(s: Section, root: ExprId, stopAt?: ExprId): Set<ExprId> {
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

const varsOf = (s: Section, ids: Iterable<ExprId>): Set<string> => {
  const vs = new Set<string>();
  for (const id of ids) for (const v of exprOwnVars(s.exprs[id]!)) vs.add(v);
  return vs;
};

const isReduce = (e: KExpr): boolean => e.op === "reduce_sum" || e.op === "reduce_max";

/**
 * The section's contraction (its `dot` fact, recorded by lowering), when it is the section's
 * only live reduction, an f32 sum over one k, with a row-side and a col-side operand.
 */
export function matchContraction(s: Section): Contraction | undefined {
  if (s.domain.length < 2 || s.tile || s.dots?.length !== 1) return undefined;
  const dot = s.dots[0]!;
  const live = new Set<ExprId>();
  for (const st of s.stores) for (const id of closure(s, st.value)) live.add(id);
  const reduces = [...live].filter((id) => isReduce(s.exprs[id]!));
  if (reduces.length !== 1 || reduces[0] !== dot.reduce) return undefined;
  const reduce = dot.reduce;
  const r = s.exprs[reduce]!;
  if (r.op !== "reduce_sum" || r.dtype !== "f32" || r.vars.length !== 1) return undefined;
  const row = s.domain.at(-2)!;
  const col = s.domain.at(-1)!;
  let x = { value: dot.lhs, ids: closure(s, dot.lhs) };
  let y = { value: dot.rhs, ids: closure(s, dot.rhs) };
  // A transposed product (the dot's output permuted in the group) has its sides swapped.
  if (varsOf(s, x.ids).has(col.name)) [x, y] = [y, x];
  if (varsOf(s, x.ids).has(col.name) || varsOf(s, y.ids).has(row.name)) return undefined;
  if ([...x.ids, ...y.ids].some((id) => isReduce(s.exprs[id]!))) return undefined;
  const epilogue = new Set<ExprId>();
  for (const st of s.stores) for (const id of closure(s, st.value, reduce)) epilogue.add(id);
  if ([...epilogue].some((id) => isReduce(s.exprs[id]!))) return undefined;
  return { reduce, k: r.vars[0]!, row, col, batch: s.domain.slice(0, -2), lhs: x, rhs: y, epilogue };
}

export function renderTiledMatmul(
  d: { readonly name: string; readonly sections: readonly Section[] },
  c: Contraction,
  b: DispatchBindings,
  limits: WebGpuLimits,
): RenderedDispatch {
  const s = d.sections[0]!;
  const M = c.row.extent;
  const N = c.col.extent;
  const K = c.k.extent;
  const tilesM = Math.ceil(M / TILE);
  const tilesN = Math.ceil(N / TILE);
  const batchCount = c.batch.reduce((a, v) => a * v.extent, 1);
  const total = batchCount * tilesM * tilesN;
  const workgroups = foldWorkgroups(total, d.name, limits.maxComputeWorkgroupsPerDimension);
  const [nx, ny] = workgroups;
  const render = (ids: Iterable<ExprId>, indent: string): string[] => renderExprList(s, ids, wgslDialect, b.access, indent);

  const body: string[] = [];
  let stride = batchCount;
  for (const v of c.batch) {
    stride /= v.extent;
    body.push(`  let ${v.name}: i32 = (batch / ${stride}) % ${v.extent};`);
  }
  body.push(
    `  let ty = lid / ${THREADS_PER_SIDE};`,
    `  let tx = lid % ${THREADS_PER_SIDE};`,
    `  var acc: array<f32, ${BLOCK * BLOCK}>;`,
    `  for (var k0: i32 = 0; k0 < ${K}; k0 += ${TILE_K}) {`,
    `    for (var l: i32 = lid; l < ${TILE * TILE_K}; l += ${THREADS_PER_SIDE * THREADS_PER_SIDE}) {`,
    `      {`,
    `        let ${c.row.name}: i32 = tileRow + l / ${TILE_K};`,
    `        let ${c.k.name}: i32 = k0 + l % ${TILE_K};`,
    `        var v: f32 = 0.0f;`,
    `        if (${c.row.name} < ${M} && ${c.k.name} < ${K}) {`,
    ...render(c.lhs.ids, "          "),
    `          v = ${exprName(c.lhs.value)};`,
    `        }`,
    `        tileA[l] = v;`,
    `      }`,
    `      {`,
    `        let ${c.k.name}: i32 = k0 + l / ${TILE};`,
    `        let ${c.col.name}: i32 = tileCol + l % ${TILE};`,
    `        var v: f32 = 0.0f;`,
    `        if (${c.k.name} < ${K} && ${c.col.name} < ${N}) {`,
    ...render(c.rhs.ids, "          "),
    `          v = ${exprName(c.rhs.value)};`,
    `        }`,
    `        tileB[l] = v;`,
    `      }`,
    `    }`,
    `    workgroupBarrier();`,
    `    for (var kk: i32 = 0; kk < ${TILE_K}; kk++) {`,
  );
  for (let i = 0; i < BLOCK; i++) body.push(`      let a${i} = tileA[(ty + ${i * THREADS_PER_SIDE}) * ${TILE_K} + kk];`);
  for (let j = 0; j < BLOCK; j++) body.push(`      let b${j} = tileB[kk * ${TILE} + tx + ${j * THREADS_PER_SIDE}];`);
  for (let i = 0; i < BLOCK; i++) for (let j = 0; j < BLOCK; j++) body.push(`      acc[${i * BLOCK + j}] = fma(a${i}, b${j}, acc[${i * BLOCK + j}]);`);
  body.push(
    `    }`,
    `    workgroupBarrier();`,
    `  }`,
    `  for (var i: i32 = 0; i < ${BLOCK}; i++) {`,
    `    for (var j: i32 = 0; j < ${BLOCK}; j++) {`,
    `      let ${c.row.name}: i32 = tileRow + ty + ${THREADS_PER_SIDE} * i;`,
    `      let ${c.col.name}: i32 = tileCol + tx + ${THREADS_PER_SIDE} * j;`,
    `      if (${c.row.name} < ${M} && ${c.col.name} < ${N}) {`,
    `        let ${exprName(c.reduce)}: f32 = acc[i * ${BLOCK} + j];`,
    ...render(c.epilogue, "        "),
    ...s.stores.map((st) => `        ${b.access.store(st.buffer, renderStoreIndex(st.index), exprName(st.value), s.exprs[st.value]!.dtype)}`),
    `      }`,
    `    }`,
    `  }`,
  );
  const bodyText = body.join("\n");
  const source = [
    `// ${d.name}: tiled matmul, ${TILE}x${TILE} outputs per workgroup, ${BLOCK}x${BLOCK} per thread, k step ${TILE_K}`,
    ...sourceComment(s),
    ...b.decls,
    `var<workgroup> tileA: array<f32, ${TILE * TILE_K}>;`,
    `var<workgroup> tileB: array<f32, ${TILE_K * TILE}>;`,
    ...wgslHelpersFor(bodyText),
    "",
    `@compute @workgroup_size(${THREADS_PER_SIDE * THREADS_PER_SIDE})`,
    "fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lidu: u32) {",
    `  let wg = i32((wid.z * ${Math.max(ny, 1)}u + wid.y) * ${Math.max(nx, 1)}u + wid.x);`,
    // Uniform per workgroup (workgroup_id), so the barriers below stay in uniform control flow.
    `  if (wg >= ${total}) { return; }`,
    "  let lid = i32(lidu);",
    `  let tileCol = (wg % ${tilesN}) * ${TILE};`,
    `  let tileRow = ((wg / ${tilesN}) % ${tilesM}) * ${TILE};`,
    `  let batch = wg / ${tilesN * tilesM};`,
    bodyText,
    "}",
    "",
  ].join("\n");
  return { name: d.name, source, bindings: b.gpuBuffers, workgroups };
}

/** `// from loc(…) scope(…)` under a kernel's header line, when the section knows its source. */
export const sourceComment = (s: Section): string[] => {
  const note = sectionSourceNote(s);
  return note ? [`// from ${note}`] : [];
};

const renderStoreIndex = (index: IndexExpr): string => renderIndex(index, wgslDialect);

/** How a chosen contraction is rendered: register blocks only (default) or workgroup tiles. */
export type { MatmulForm } from "../../compiler/kernel/kernel-ir.ts";

const REG_M = 8;
const REG_N = 8;
const REG_THREADS = 64;

/**
 * The barrier-free form: each thread accumulates an 8x8 block straight from storage, with no
 * workgroup memory and no barriers (on lavapipe a barrier switches coroutines per SIMD group,
 * and CPU caches do the staging). A thread's rows are consecutive, its columns strided by
 * N/8, so neighbouring threads read neighbouring rhs elements and share the lhs ones.
 * 1024³ on lavapipe (2 busy cores): 1.0 s, against 5.2 s for the workgroup tiles.
 */
export function renderRegisterMatmul(
  d: { readonly name: string; readonly sections: readonly Section[] },
  c: Contraction,
  b: DispatchBindings,
  limits: WebGpuLimits,
): RenderedDispatch {
  const s = d.sections[0]!;
  const M = c.row.extent;
  const N = c.col.extent;
  const K = c.k.extent;
  const blocksM = Math.ceil(M / REG_M);
  const blocksN = Math.ceil(N / REG_N);
  const batchCount = c.batch.reduce((a, v) => a * v.extent, 1);
  const threads = batchCount * blocksM * blocksN;
  const workgroups = foldWorkgroups(Math.ceil(threads / REG_THREADS), d.name, limits.maxComputeWorkgroupsPerDimension);
  const [nx, ny] = workgroups;
  const render = (ids: Iterable<ExprId>, indent: string): string[] => renderExprList(s, ids, wgslDialect, b.access, indent);
  const body: string[] = [];
  let stride = batchCount;
  for (const v of c.batch) {
    stride /= v.extent;
    body.push(`  let ${v.name}: i32 = (batch / ${stride}) % ${v.extent};`);
  }
  // Scalar accumulators: an array indexed at run time (the epilogue loop) would live in memory.
  const accs = Array.from({ length: REG_M * REG_N }, (_, i) => `acc${i}`);
  body.push(...accs.map((a) => `  var ${a}: f32 = 0.0f;`), `  for (var ${c.k.name}: i32 = 0; ${c.k.name} < ${K}; ${c.k.name}++) {`);
  for (let i = 0; i < REG_M; i++) {
    body.push(...guardedOperand(`a${i}`, c.row.name, `row0 + ${i}`, M % REG_M === 0 ? undefined : M, render(c.lhs.ids, "        "), exprName(c.lhs.value)));
  }
  for (let j = 0; j < REG_N; j++) {
    body.push(
      ...guardedOperand(`b${j}`, c.col.name, `col0 + ${j * blocksN}`, N % REG_N === 0 ? undefined : N, render(c.rhs.ids, "        "), exprName(c.rhs.value)),
    );
  }
  for (let i = 0; i < REG_M; i++) for (let j = 0; j < REG_N; j++) body.push(`    acc${i * REG_N + j} = fma(a${i}, b${j}, acc${i * REG_N + j});`);
  body.push(
    `  }`,
    `  let acc = array<f32, ${REG_M * REG_N}>(${accs.join(", ")});`,
    `  for (var i: i32 = 0; i < ${REG_M}; i++) {`,
    `    for (var j: i32 = 0; j < ${REG_N}; j++) {`,
    `      let ${c.row.name}: i32 = row0 + i;`,
    `      let ${c.col.name}: i32 = col0 + j * ${blocksN};`,
    `      if (${c.row.name} < ${M} && ${c.col.name} < ${N}) {`,
    `        let ${exprName(c.reduce)}: f32 = acc[i * ${REG_N} + j];`,
    ...render(c.epilogue, "        "),
    ...s.stores.map((st) => `        ${b.access.store(st.buffer, renderStoreIndex(st.index), exprName(st.value), s.exprs[st.value]!.dtype)}`),
    `      }`,
    `    }`,
    `  }`,
  );
  const bodyText = body.join("\n");
  const source = [
    `// ${d.name}: register-blocked matmul, ${REG_M}x${REG_N} outputs per thread (columns ${blocksN} apart), no workgroup memory`,
    ...sourceComment(s),
    ...b.decls,
    ...wgslHelpersFor(bodyText),
    "",
    `@compute @workgroup_size(${REG_THREADS})`,
    "fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {",
    `  let tid = i32(((wid.z * ${Math.max(ny, 1)}u + wid.y) * ${Math.max(nx, 1)}u + wid.x) * ${REG_THREADS}u + lid);`,
    `  if (tid >= ${threads}) { return; }`,
    `  let col0 = tid % ${blocksN};`,
    `  let row0 = ((tid / ${blocksN}) % ${blocksM}) * ${REG_M};`,
    `  let batch = tid / ${blocksN * blocksM};`,
    bodyText,
    "}",
    "",
  ].join("\n");
  return { name: d.name, source, bindings: b.gpuBuffers, workgroups };
}

/** `var name = operand` with the index variable bound; guarded by `< bound` unless every index is in range. */
function guardedOperand(name: string, indexVar: string, index: string, bound: number | undefined, lines: readonly string[], value: string): string[] {
  if (bound === undefined) return [`    var ${name}: f32;`, `    {`, `      let ${indexVar}: i32 = ${index};`, ...lines, `      ${name} = ${value};`, `    }`];
  return [
    `    var ${name}: f32 = 0.0f;`,
    `    {`,
    `      let ${indexVar}: i32 = ${index};`,
    `      if (${indexVar} < ${bound}) {`,
    ...lines,
    `        ${name} = ${value};`,
    `      }`,
    `    }`,
  ];
}
