// Tiled matmul for a contraction section (a section whose `dot` fact names a reduce_sum over
// one k of lhs(rows…, k) * rhs(k, cols…), with any elementwise epilogue). Rows and columns may
// each be several domain loops (a convolution's filter gradient: rows are (in channel, kh, kw),
// columns the out channel; its forward and input gradient are [pixels, k] matmuls): they are
// flattened, so a convolution runs as an implicit GEMM, its operands' pads and im2col index
// arithmetic rendered from the IR as they are (no copies). The workgroup form: a workgroup owns
// a square output tile, stages operand tiles in workgroup memory (each operand element read
// from storage once per tile instead of once per output), and each thread accumulates a
// register block. The default form (renderRegisterMatmul) drops the workgroup tiles for
// register blocks read straight from storage, with the k loop unrolled. Which sections render
// so, in which form and with which sizes, is the `matmul-form` pass's choice
// (targets/webgpu-passes.ts: a `form matmul … rows= cols= threads= unroll=` fact); this renders it.

import { sectionSourceNote } from "../../compiler/kernel/print.ts";
import { exprOwnVars, operandClosure, type BufferDecl, type ExprId, type KExpr, type Section } from "../../compiler/kernel/kernel-ir.ts";
import type { IndexExpr, IndexVar } from "../../compiler/kernel/index-expr.ts";
import { exprName, renderExprList, renderIndex, type BufferAccess } from "../render/base.ts";
import { isContiguous, VECTOR_WIDTH, type VectorAccess } from "./vector.ts";
import { loopBound, wgslDialect, wgslHelpersFor, wgslStoreHalf } from "./dialect.ts";
import type { Dispatch, WebGpuLimits } from "./layout.ts";
import { halfOf } from "../../compiler/ir/dtype.ts";
import type { MatmulForm, MatmulParams } from "../../compiler/kernel/kernel-ir.ts";
import { assertNever, bug } from "../../compiler/util/errors.ts";
import {
  foldWorkgroups,
  opaqueZero,
  type DispatchBindings,
  type DispatchContext,
  type KVectorMode,
  type PairAccess,
  type RenderedDispatch,
} from "./dispatch.ts";
import { pairableStore } from "./pair.ts";
import { limitExpr, limitName, readRows, rowLimitVars, rowsSizeOf } from "./row-limits.ts";
import { symbolicBound } from "../../compiler/kernel/symbolic-bound.ts";
import type { SymbolicDispatch } from "../../runtime/artifact/format.ts";

/** The workgroup form's defaults: 256 threads (16x16) of 4x4 outputs own a 64x64 tile, k steps of 16. */
export const WORKGROUP_MATMUL_DEFAULTS: MatmulParams = { rows: 4, cols: 4, threads: 256, unroll: 16 };
/**
 * The registers form's defaults: 8x8 outputs per thread, 64 threads, no k unrolling. On
 * lavapipe unrolling did not pay (1024³, medians of 5-7 in one process: unroll 2 and 4 with
 * vec4 lhs loads 1.0-1.2× and 1.0-2× slower than 1), and its JIT takes 13-26 s for a kernel
 * unrolled by 4 or 8 against about 1 s by 1 or 3; an adapter that prefers unrolling gets it
 * through the fact's `unroll=` (a multiple of 4 reads the lhs as vec4 along k).
 */
export const REGISTER_MATMUL_DEFAULTS: MatmulParams = { rows: 8, cols: 8, threads: 64, unroll: 1 };

/**
 * The subgroup form's defaults: a thread's block is 16 rows x 8 columns (its columns in two
 * vec4 groups), 64 threads share the workgroup's 16 rows, k steps of 1. On lavapipe (subgroups
 * of 8) 1024³ took 150-170 ms of CPU against 280-300 ms for the 8x8 register form; 8x8,
 * 16x4 and 32x4 blocks, k unrolled by 4 with vec4 lhs loads, and 32 threads were no faster.
 */
export const SUBGROUP_MATMUL_DEFAULTS: MatmulParams = { rows: 16, cols: 8, threads: 64, unroll: 1 };

/** The sizes a `form matmul` fact asks for, or its form's defaults. */
export function matmulParamsOf(form: MatmulForm, params: MatmulParams | undefined): MatmulParams {
  if (params) return params;
  switch (form) {
    case "workgroup":
      return WORKGROUP_MATMUL_DEFAULTS;
    case "registers":
      return REGISTER_MATMUL_DEFAULTS;
    case "subgroup":
      return SUBGROUP_MATMUL_DEFAULTS;
    default:
      return assertNever(form, "matmul form");
  }
}

export interface Contraction {
  readonly reduce: ExprId;
  readonly k: IndexVar;
  /** The row-side domain loops (read by lhs only), outermost first; flattened to M rows. */
  readonly rows: readonly IndexVar[];
  /** The column-side domain loops (read by rhs only), outermost first; flattened to N columns. */
  readonly cols: readonly IndexVar[];
  readonly M: number;
  readonly N: number;
  /** Domain loops read by both sides or by neither (batch dimensions, extent-1 loops). */
  readonly batch: readonly IndexVar[];
  /** Expression ids of each operand's subtree (row-side and col-side). */
  readonly lhs: { readonly value: ExprId; readonly ids: ReadonlySet<ExprId> };
  readonly rhs: { readonly value: ExprId; readonly ids: ReadonlySet<ExprId> };
  /** Live expressions after the reduction (the epilogue), reduction excluded. */
  readonly epilogue: ReadonlySet<ExprId>;
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
  for (const st of s.stores) for (const id of operandClosure(s, st.value)) live.add(id);
  const reduces = [...live].filter((id) => isReduce(s.exprs[id]!));
  if (reduces.length !== 1 || reduces[0] !== dot.reduce) return undefined;
  const reduce = dot.reduce;
  const r = s.exprs[reduce]!;
  if (r.op !== "reduce_sum" || r.dtype !== "f32" || r.vars.length !== 1) return undefined;
  let x = { value: dot.lhs, ids: operandClosure(s, dot.lhs) };
  let y = { value: dot.rhs, ids: operandClosure(s, dot.rhs) };
  if ([...x.ids, ...y.ids].some((id) => isReduce(s.exprs[id]!))) return undefined;
  // Each domain loop is a row (lhs only), a column (rhs only) or a batch loop (both, neither).
  const side = (vs: Set<string>) => s.domain.filter((v) => v.extent > 1 && vs.has(v.name));
  const [xVars, yVars] = [varsOf(s, x.ids), varsOf(s, y.ids)];
  let rows = side(xVars).filter((v) => !yVars.has(v.name));
  let cols = side(yVars).filter((v) => !xVars.has(v.name));
  if (rows.length === 0 || cols.length === 0) return undefined;
  // The side owning the innermost domain loop is the column side (neighbouring threads read
  // neighbouring rhs elements): a transposed product has its sides swapped.
  if (rows.includes(s.domain.at(-1)!) || (!cols.includes(s.domain.at(-1)!) && s.domain.indexOf(rows.at(-1)!) > s.domain.indexOf(cols.at(-1)!))) {
    [x, y] = [y, x];
    [rows, cols] = [cols, rows];
  }
  const sided = new Set([...rows, ...cols]);
  const epilogue = new Set<ExprId>();
  for (const st of s.stores) for (const id of operandClosure(s, st.value, reduce)) epilogue.add(id);
  if ([...epilogue].some((id) => isReduce(s.exprs[id]!))) return undefined;
  const size = (vs: readonly IndexVar[]) => vs.reduce((a, v) => a * v.extent, 1);
  return { reduce, k: r.vars[0]!, rows, cols, M: size(rows), N: size(cols), batch: s.domain.filter((v) => !sided.has(v)), lhs: x, rhs: y, epilogue };
}

/**
 * `let v: i32 = …;` for each of `vars` (outermost first) from their flat index `flat`, with
 * `suffix` appended to each name (a copy per register row); one variable takes `flat` itself.
 */
export function bindFlat(vars: readonly IndexVar[], flat: string, indent: string, suffix = ""): string[] {
  const total = vars.reduce((a, v) => a * v.extent, 1);
  let stride = total;
  return vars.map((v) => {
    stride /= v.extent;
    const q = stride === 1 ? `(${flat})` : `(${flat}) / ${stride}`;
    return `${indent}let ${v.name}${suffix}: i32 = ${stride * v.extent === total ? q : `${q} % ${v.extent}`};`;
  });
}

/** Binds `vars` from copies made by bindFlat with `suffix`. */
const bindCopies = (vars: readonly IndexVar[], suffix: string, indent: string): string[] =>
  vars.map((v) => `${indent}let ${v.name}: i32 = ${v.name}${suffix};`);

/**
 * "auto" reads operands along k as vec4s from this long a k. On lavapipe, in the transformer
 * step (kernel times, 9 interleaved rounds, loaded machine; min of each): the mlp.2 forward
 * (k = 1024, rows 4 KB apart) 492 -> 252 ms, but the k = 256 forwards 232 -> 263 ms (qkv) and
 * 247 -> 290 ms (mlp.0), and the k = 64 attention scores 15 -> 25 ms.
 */
export const K_VECTORS_MIN_K = 1024;

/** Which operands the registers form reads as vec4 (lhs: 4 k steps; rhs: 4 neighbouring columns), and the buffer each reads. */
export interface MatmulVectors {
  readonly lhs?: number;
  readonly rhs?: number;
  /**
   * Both operands read as vec4 along k (a linear's x·Wᵀ: rows and columns at a long stride, k
   * contiguous on both sides), 4 k steps per iteration: the buffers of the lhs and the rhs.
   */
  readonly kLhs?: number;
  readonly kRhs?: number;
}

/** The buffer of an operand that is one unmasked f32 load, contiguous and 4-aligned along `v`; else undefined. */
function vectorOperand(s: Section, side: Contraction["lhs"], v: string): number | undefined {
  const e = s.exprs[side.value]!;
  if (side.ids.size !== 1 || e.op !== "load" || e.dtype !== "f32" || e.valid === false || e.valid.length > 0) return undefined;
  return isContiguous(e.index, v, VECTOR_WIDTH, new Set()) ? e.buffer : undefined;
}

/**
 * The registers form's vec4 operands: the rhs when its columns are one loop, the thread's
 * columns come in whole groups of 4 (N a multiple of cols, cols of 4) and it is read along
 * them; the lhs when it is read along k and the k loop is unrolled by a multiple of 4 with
 * no row guard. The caller binds those buffers as vec4 where it can (vectorBindable).
 */
export function matmulVectors(s: Section, c: Contraction, p: MatmulParams, kVectors: KVectorMode = "never"): MatmulVectors {
  const rhs = c.cols.length === 1 && p.cols % VECTOR_WIDTH === 0 && c.N % p.cols === 0 ? vectorOperand(s, c.rhs, c.cols[0]!.name) : undefined;
  const wantsK = kVectors === "always" || (kVectors === "auto" && c.k.extent >= K_VECTORS_MIN_K);
  if (wantsK && rhs === undefined && c.k.extent % VECTOR_WIDTH === 0) {
    const kLhs = vectorOperand(s, c.lhs, c.k.name);
    const kRhs = vectorOperand(s, c.rhs, c.k.name);
    if (kLhs !== undefined && kRhs !== undefined) return { kLhs, kRhs };
  }
  const lhs = p.unroll % VECTOR_WIDTH === 0 && c.k.extent >= p.unroll && c.M % p.rows === 0 ? vectorOperand(s, c.lhs, c.k.name) : undefined;
  return { ...(lhs !== undefined ? { lhs } : {}), ...(rhs !== undefined ? { rhs } : {}) };
}

/** `let v = (batch / stride) % extent;` for the batch loops. */
function bindBatch(c: Contraction): string[] {
  const batchCount = c.batch.reduce((a, v) => a * v.extent, 1);
  let stride = batchCount;
  return c.batch.map((v) => {
    stride /= v.extent;
    return `  let ${v.name}: i32 = ${v.extent === 1 ? "0" : `(batch / ${stride}) % ${v.extent}`};`;
  });
}

export function renderTiledMatmul(
  d: { readonly name: string; readonly sections: readonly Section[] },
  c: Contraction,
  b: DispatchBindings,
  limits: WebGpuLimits,
  params: MatmulParams = WORKGROUP_MATMUL_DEFAULTS,
  rolled = false,
  buffers?: readonly BufferDecl[],
): RenderedDispatch {
  const s = d.sections[0]!;
  const { M, N } = c;
  // Under a symbolic batch a k loop over its rows stops at the run's rows: a bound uniform across the workgroup (the barriers stay uniform).
  const kRows = kRowLimit(s, c, buffers);
  const K = kRows ? limitName(c.k.name) : c.k.extent;
  const side = Math.round(Math.sqrt(params.threads));
  if (side * side !== params.threads) bug(`wgsl ${d.name}: the workgroup matmul needs a square thread count, got ${params.threads}`);
  const [tileM, tileN, tileK] = [params.rows * side, params.cols * side, params.unroll];
  const tilesM = Math.ceil(M / tileM);
  const tilesN = Math.ceil(N / tileN);
  const batchCount = c.batch.reduce((a, v) => a * v.extent, 1);
  const total = batchCount * tilesM * tilesN;
  const workgroups = foldWorkgroups(total, d.name, limits.maxComputeWorkgroupsPerDimension);
  const [nx, ny] = workgroups;
  const render = (ids: Iterable<ExprId>, indent: string): string[] => renderExprList(s, ids, wgslDialect, b.access, indent);

  const body: string[] = [...bindBatch(c)];
  body.push(
    `  let ty = lid / ${side};`,
    `  let tx = lid % ${side};`,
    `  var acc: array<f32, ${params.rows * params.cols}>;`,
    `  for (var k0: i32 = 0; k0 < ${typeof K === "number" ? loopBound(K, rolled) : K}; k0 += ${tileK}) {`,
    `    for (var l: i32 = lid; l < ${tileM * tileK}; l += ${params.threads}) {`,
    `      let row = tileRow + l / ${tileK};`,
    `      let ${c.k.name}: i32 = k0 + l % ${tileK};`,
    `      var v: f32 = 0.0f;`,
    `      if (row < ${M} && ${c.k.name} < ${K}) {`,
    ...bindFlat(c.rows, "row", "        "),
    ...render(c.lhs.ids, "        "),
    `        v = ${exprName(c.lhs.value)};`,
    `      }`,
    `      tileA[l] = v;`,
    `    }`,
    `    for (var l: i32 = lid; l < ${tileK * tileN}; l += ${params.threads}) {`,
    `      let ${c.k.name}: i32 = k0 + l / ${tileN};`,
    `      let col = tileCol + l % ${tileN};`,
    `      var v: f32 = 0.0f;`,
    `      if (${c.k.name} < ${K} && col < ${N}) {`,
    ...bindFlat(c.cols, "col", "        "),
    ...render(c.rhs.ids, "        "),
    `        v = ${exprName(c.rhs.value)};`,
    `      }`,
    `      tileB[l] = v;`,
    `    }`,
    `    workgroupBarrier();`,
    `    for (var kk: i32 = 0; kk < ${tileK}; kk++) {`,
  );
  for (let i = 0; i < params.rows; i++) body.push(`      let a${i} = tileA[(ty + ${i * side}) * ${tileK} + kk];`);
  for (let j = 0; j < params.cols; j++) body.push(`      let b${j} = tileB[kk * ${tileN} + tx + ${j * side}];`);
  for (let i = 0; i < params.rows; i++)
    for (let j = 0; j < params.cols; j++) body.push(`      acc[${i * params.cols + j}] = fma(a${i}, b${j}, acc[${i * params.cols + j}]);`);
  body.push(
    `    }`,
    `    workgroupBarrier();`,
    `  }`,
    `  for (var i: i32 = 0; i < ${loopBound(params.rows, rolled)}; i++) {`,
    `    for (var j: i32 = 0; j < ${loopBound(params.cols, rolled)}; j++) {`,
    `      let row = tileRow + ty + ${side} * i;`,
    `      let col = tileCol + tx + ${side} * j;`,
    `      if (row < ${M} && col < ${N}) {`,
    ...bindFlat(c.rows, "row", "        "),
    ...bindFlat(c.cols, "col", "        "),
    `        let ${exprName(c.reduce)}: f32 = acc[i * ${params.cols} + j];`,
    ...render(c.epilogue, "        "),
    ...s.stores.map((st) => `        ${b.access.store(st.buffer, renderStoreIndex(st.index), exprName(st.value), s.exprs[st.value]!.dtype)}`),
    `      }`,
    `    }`,
    `  }`,
  );
  const reading = kRows ? readRows(kRows.size, b.access, true, body.join("\n")) : undefined;
  const bodyText = [...(reading?.lines ?? []), ...(kRows ? [kRows.decl] : []), ...body].join("\n");
  const source = [
    `// ${d.name}: tiled matmul, ${tileM}x${tileN} outputs per workgroup, ${params.rows}x${params.cols} per thread, k step ${tileK}`,
    ...sourceComment(s),
    ...b.decls,
    ...(reading?.decls ?? []),
    `var<workgroup> tileA: array<f32, ${tileM * tileK}>;`,
    `var<workgroup> tileB: array<f32, ${tileK * tileN}>;`,
    ...wgslHelpersFor(bodyText),
    "",
    `@compute @workgroup_size(${params.threads})`,
    "fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lidu: u32) {",
    `  let wg = i32((wid.z * ${Math.max(ny, 1)}u + wid.y) * ${Math.max(nx, 1)}u + wid.x);`,
    // Uniform per workgroup (workgroup_id), so the barriers below stay in uniform control flow.
    `  if (wg >= ${total}) { return; }`,
    "  let lid = i32(lidu);",
    `  let tileCol = (wg % ${tilesN}) * ${tileN};`,
    `  let tileRow = ((wg / ${tilesN}) % ${tilesM}) * ${tileM};`,
    `  let batch = wg / ${tilesN * tilesM};`,
    ...opaqueZero(bodyText, b.gpuBuffers),
    bodyText,
    "}",
    "",
  ].join("\n");
  const symbolic = matmulSymbolic(s, c, buffers, tilesM, tilesN, 1);
  return { name: d.name, source, bindings: b.gpuBuffers, workgroups, ...(symbolic ? { symbolic } : {}) };
}

/** `// from loc(…) scope(…)` under a kernel's header line, when the section knows its source. */
export const sourceComment = (s: Section): string[] => {
  const note = sectionSourceNote(s);
  return note ? [`// from ${note}`] : [];
};

const renderStoreIndex = (index: IndexExpr): string => renderIndex(index, wgslDialect);

/** How a chosen contraction is rendered: register blocks only (default) or workgroup tiles. */
export type { MatmulForm } from "../../compiler/kernel/kernel-ir.ts";

/**
 * A register-blocked matmul's RM·RN scalar accumulators (an array indexed at run time would
 * live in memory) and its k loop's bounds: the whole unrolled steps (`unrolled`, `unrolledAtMax`
 * at the full extent) and the end (`kEnd`; under a symbolic batch both read from the run's rows,
 * their declarations pushed to `body` with the accumulators').
 */
function accumulatorsAndKBounds(
  body: string[],
  c: Contraction,
  params: MatmulParams,
  rolled: boolean,
  kRows: { readonly decl: string } | undefined,
): { accs: string[]; kv: string; unrolledAtMax: number; kEnd: string; unrolled: string } {
  const { rows: RM, cols: RN, unroll: U } = params;
  const K = c.k.extent;
  const accs = Array.from({ length: RM * RN }, (_, i) => `acc${i}`);
  body.push(...accs.map((a) => `  var ${a}: f32 = 0.0f;`));
  const kv = c.k.name;
  const unrolledAtMax = U > 1 ? K - (K % U) : 0;
  const kEnd = kRows ? limitName(kv) : loopBound(K, rolled);
  const unrolled = kRows ? (U > 1 ? "kiln_unrolled" : "0") : loopBound(unrolledAtMax, rolled);
  if (kRows) body.push(`  ${kRows.decl.trim()}`, ...(U > 1 ? [`  let kiln_unrolled: i32 = ${kEnd} - ${kEnd} % ${U};`] : []));
  return { accs, kv, unrolledAtMax, kEnd, unrolled };
}

/** `acc` plus the four lanes of vec4s `a` and `b` multiplied, one fma at a time in k order (the bits of four scalar k steps). */
const fma4 = (a: string, b: string, acc: string): string => ["x", "y", "z", "w"].reduce((e, l) => `fma(${a}.${l}, ${b}.${l}, ${e})`, acc);

/**
 * The flat column of a thread's j-th accumulator column in the register and subgroup forms: its
 * columns come in groups of `group` neighbours (4 with a vec4 rhs, 2 with whole-word 16-bit
 * stores, else 1), group g starting at column group·(first + g·stride), all offset by `base`.
 * A number `j` (unrolled code) folds the arithmetic; a string (a run-time j) writes it out.
 */
function threadColumn(j: number | string, group: number, base: string, first: string, stride: number): string {
  if (typeof j === "number") {
    if (group === 1) return `${base}${first} + ${j * stride}`;
    return `${base}${group} * (${first} + ${Math.floor(j / group) * stride})${j % group ? ` + ${j % group}` : ""}`;
  }
  if (group === 1) return `${base}${first} + ${j} * ${stride}`;
  return `${base}${group} * (${first} + (${j} / ${group}) * ${stride}) + ${j} % ${group}`;
}

/**
 * A register-blocked matmul's end: the accumulators into an array (a var when rolled: a let
 * array indexed at run time is copied at each access), then per output in range (`row0 + i`,
 * the column `colOf("j")`) the epilogue and the section's stores. With `paired` (matmulPairs:
 * columns 2j' and 2j' + 1 of a thread are neighbours from an even column, N even), j steps by
 * pairs: the epilogue runs once per column of the pair in a block of its own, the stores into
 * `paired` buffers gather the two 16-bit patterns and store their u32 word once.
 */
function accumulatorStores(
  s: Section,
  c: Contraction,
  b: DispatchBindings,
  accs: readonly string[],
  params: MatmulParams,
  rolled: boolean,
  colOf: (j: string) => string,
  paired: ReadonlySet<number> = new Set(),
): string[] {
  const { rows: RM, cols: RN } = params;
  const head = [`  ${rolled ? "var" : "let"} acc = array<f32, ${RM * RN}>(${accs.join(", ")});`, `  for (var i: i32 = 0; i < ${loopBound(RM, rolled)}; i++) {`];
  const output = (indent: string, access: BufferAccess): string[] => [
    ...bindFlat(c.rows, "row", indent),
    ...bindFlat(c.cols, "col", indent),
    `${indent}let ${exprName(c.reduce)}: f32 = acc[i * ${RN} + j];`,
    ...renderExprList(s, c.epilogue, wgslDialect, access, indent),
    ...s.stores.map((st) => `${indent}${access.store(st.buffer, renderStoreIndex(st.index), exprName(st.value), s.exprs[st.value]!.dtype)}`),
  ];
  if (paired.size === 0)
    return [
      ...head,
      `    for (var j: i32 = 0; j < ${loopBound(RN, rolled)}; j++) {`,
      `      let row = row0 + i;`,
      `      let col = ${colOf("j")};`,
      `      if (row < ${c.M} && col < ${c.N}) {`,
      ...output("        ", b.access),
      `      }`,
      `    }`,
      `  }`,
    ];
  const pairAccess = b.access as PairAccess;
  const stores = s.stores.filter((st) => paired.has(st.buffer));
  const word = (buffer: number): string => `kiln_w${buffer}`;
  const lane = (at: 0 | 1): string[] => {
    const access: BufferAccess = {
      ...b.access,
      store: (buffer, index, value, t) => {
        if (!paired.has(buffer)) return b.access.store(buffer, index, value, t);
        const bits = wgslStoreHalf(value, t);
        return at === 0 ? `${word(buffer)} = ${bits};` : `${word(buffer)} = ${word(buffer)} | (${bits} << 16u);`;
      },
    };
    return [
      `        {`,
      `          let j: i32 = kiln_j0${at === 0 ? "" : " + 1"};`,
      `          let col = ${colOf("j")};`,
      ...output("          ", access),
      `        }`,
    ];
  };
  return [
    ...head,
    `    for (var kiln_jj: i32 = 0; kiln_jj < ${loopBound(RN / 2, rolled)}; kiln_jj++) { // column pairs: whole 16-bit words`,
    `      let row = row0 + i;`,
    `      let kiln_j0 = 2 * kiln_jj;`,
    `      if (row < ${c.M} && ${colOf("kiln_j0")} < ${c.N}) {`,
    ...stores.map((st) => `        var ${word(st.buffer)}: u32 = 0u;`),
    ...lane(0),
    ...lane(1),
    `        {`,
    `          let col = ${colOf("kiln_j0")};`,
    ...bindFlat(c.cols, "col", "          "),
    ...bindFlat(c.rows, "row", "          "),
    ...stores.map((st) => `          ${pairAccess.storeWord(st.buffer, renderStoreIndex(st.index), word(st.buffer), false)}`),
    `        }`,
    `      }`,
    `    }`,
    `  }`,
  ];
}

/**
 * The 16-bit buffers a register or subgroup matmul stores in whole words, or an empty set:
 * its columns one loop of even extent, an even column count per thread, and every packed
 * 16-bit store (`halfBound`: through u32 words) pairable along the column variable (pair.ts's
 * pairableStore). The renderers then give each thread pairs of neighbouring columns from an
 * even one (a vec4 rhs's groups of 4 already are).
 */
export function matmulPairs(
  d: Dispatch,
  c: Contraction,
  params: MatmulParams,
  ctx: DispatchContext,
  halfBound: (buffer: number) => boolean,
): ReadonlySet<number> {
  const s = d.sections[0]!;
  const half = s.stores.filter((st) => halfOf(ctx.dtypeOf(st.buffer)) !== undefined && halfBound(st.buffer));
  if (half.length === 0 || c.cols.length !== 1 || c.N % 2 !== 0 || params.cols % 2 !== 0) return new Set();
  const col = c.cols[0]!.name;
  return half.every((st) => pairableStore(s, st, col, d, ctx, halfBound)) ? new Set(half.map((st) => st.buffer)) : new Set();
}

/**
 * The barrier-free form: each thread accumulates a rows x cols block straight from storage,
 * with no workgroup memory and no barriers (on lavapipe a barrier switches coroutines per SIMD
 * group, and CPU caches do the staging). A thread's rows are consecutive, its columns strided
 * by N/cols, so neighbouring threads read neighbouring rhs elements and share the lhs ones.
 * The k loop runs `unroll` steps per iteration (a remainder loop finishes K mod unroll), and
 * row and column variables of multi-loop sides (a convolution's) are computed once per thread.
 * 1024³ on lavapipe (2 busy cores): 1.0 s, against 5.2 s for the workgroup tiles.
 */
export function renderRegisterMatmul(
  d: { readonly name: string; readonly sections: readonly Section[] },
  c: Contraction,
  b: DispatchBindings,
  limits: WebGpuLimits,
  params: MatmulParams = REGISTER_MATMUL_DEFAULTS,
  vectors: MatmulVectors = {},
  rolled = false,
  buffers?: readonly BufferDecl[],
  paired: ReadonlySet<number> = new Set(),
): RenderedDispatch {
  const s = d.sections[0]!;
  const { M, N } = c;
  const K = c.k.extent;
  // Under a symbolic batch a k loop over its rows stops at the run's rows (whole unrolled steps, then the rest).
  const kRows = kRowLimit(s, c, buffers);
  const { rows: RM, cols: RN, threads: T, unroll: U } = params;
  const blocksM = Math.ceil(M / RM);
  const blocksN = Math.ceil(N / RN);
  const W = VECTOR_WIDTH;
  const access = b.access as VectorAccess;
  const batchCount = c.batch.reduce((a, v) => a * v.extent, 1);
  const threads = batchCount * blocksM * blocksN;
  const workgroups = foldWorkgroups(Math.ceil(threads / T), d.name, limits.maxComputeWorkgroupsPerDimension);
  const [nx, ny] = workgroups;
  const render = (ids: Iterable<ExprId>, indent: string): string[] => renderExprList(s, ids, wgslDialect, b.access, indent);
  const body: string[] = [...bindBatch(c)];
  // A multi-loop side's variables, once per register row/column (out of range past M or N: then unused).
  const rowAt = (i: number): string => `row0 + ${i}`;
  // With a vec4 rhs a thread's columns are RN/4 groups of 4 neighbours, the groups N/RN·4 apart.
  // With whole-word 16-bit stores (paired), pairs of neighbours from an even column, the pairs blocksN apart.
  const pairs = paired.size > 0 && vectors.rhs === undefined;
  const colAt = (j: number | string): string => threadColumn(j, vectors.rhs !== undefined ? W : pairs ? 2 : 1, "", "col0", blocksN);
  if (c.rows.length > 1) for (let i = 0; i < RM; i++) body.push(...bindFlat(c.rows, rowAt(i), "  ", `_${i}`));
  if (c.cols.length > 1) for (let j = 0; j < RN; j++) body.push(...bindFlat(c.cols, colAt(j), "  ", `_${j}`));
  const bindSide = (vars: readonly IndexVar[], flat: string, at: number, indent: string): string[] =>
    vars.length === 1 ? [`${indent}let ${vars[0]!.name}: i32 = ${flat};`] : bindCopies(vars, `_${at}`, indent);
  const lhsLines = render(c.lhs.ids, "        ");
  const rhsLines = render(c.rhs.ids, "        ");
  const vectorLoad = (side: Contraction["lhs"], binds: readonly string[]): string => {
    const e = s.exprs[side.value]!;
    if (e.op !== "load") return bug(`wgsl ${d.name}: a vec4 operand that is not a load`);
    return `{ ${binds.join(" ")} ${"@"} = ${access.loadVector(e.buffer, renderIndex(e.index, wgslDialect))}; }`;
  };
  /** The rhs of one k step as RN/4 vec4 loads (the k variable bound). */
  const rhsVectors = (): string[] =>
    Array.from(
      { length: RN / W },
      (_, g) => `    var bv${g}: vec4<f32>; ${vectorLoad(c.rhs, [`let ${c.cols[0]!.name}: i32 = ${colAt(g * W)};`]).replace("@", `bv${g}`)}`,
    );
  /** One k step (the k variable bound): RM lhs and RN rhs operands, RM x RN fmas; `lhsLane`: the lhs from vec4s loaded before. */
  const step = (indent: string, lhsLane?: number): string[] => {
    const group = lhsLane === undefined ? 0 : Math.floor(lhsLane / W);
    const lines: string[] = [];
    for (let i = 0; i < RM; i++)
      if (lhsLane !== undefined) lines.push(`    let a${i}: f32 = av${i}_${group}[${lhsLane % W}];`);
      else lines.push(...guardedOperand(`a${i}`, bindSide(c.rows, rowAt(i), i, ""), rowAt(i), M % RM === 0 ? undefined : M, lhsLines, exprName(c.lhs.value)));
    if (vectors.rhs !== undefined) {
      lines.push(...rhsVectors());
      for (let j = 0; j < RN; j++) lines.push(`    let b${j}: f32 = bv${Math.floor(j / W)}[${j % W}];`);
    } else
      for (let j = 0; j < RN; j++)
        lines.push(...guardedOperand(`b${j}`, bindSide(c.cols, colAt(j), j, ""), colAt(j), N % RN === 0 ? undefined : N, rhsLines, exprName(c.rhs.value)));
    for (let i = 0; i < RM; i++) for (let j = 0; j < RN; j++) lines.push(`    acc${i * RN + j} = fma(a${i}, b${j}, acc${i * RN + j});`);
    return lines.map((l) => indent + l);
  };
  const { accs, kv, unrolledAtMax, kEnd, unrolled } = accumulatorsAndKBounds(body, c, params, rolled, kRows);
  const kVec = vectors.kLhs !== undefined && vectors.kRhs !== undefined && !kRows;
  if (kVec) {
    // 4 k steps per iteration, each operand one vec4 along k; the fmas in k order (the bits of one step at a time).
    const kLoad = (name: string, side: Contraction["lhs"], binds: readonly string[], flat: string, bound: number | undefined): string[] => {
      const load = vectorLoad(side, binds).replace("@", name);
      return bound === undefined ? [`    var ${name}: vec4<f32>; ${load}`] : [`    var ${name}: vec4<f32> = vec4<f32>(0.0f); if (${flat} < ${bound}) ${load}`];
    };
    body.push(`  for (var k0: i32 = 0; k0 < ${loopBound(K, rolled)}; k0 += ${W}) {`, `    let ${kv}: i32 = k0;`);
    for (let i = 0; i < RM; i++) body.push(...kLoad(`av${i}`, c.lhs, bindSide(c.rows, rowAt(i), i, ""), rowAt(i), M % RM === 0 ? undefined : M));
    for (let j = 0; j < RN; j++) body.push(...kLoad(`bv${j}`, c.rhs, bindSide(c.cols, colAt(j), j, ""), colAt(j), N % RN === 0 ? undefined : N));
    for (let i = 0; i < RM; i++)
      for (let j = 0; j < RN; j++) {
        const a = `acc${i * RN + j}`;
        body.push(`    ${a} = ${fma4(`av${i}`, `bv${j}`, a)};`);
      }
    body.push(`  }`);
  } else if (unrolledAtMax > 0) {
    body.push(`  for (var k0: i32 = 0; k0 < ${unrolled}; k0 += ${U}) {`);
    for (let u = 0; u < U; u++) {
      // A vec4 lhs: each row's next 4 k values in one load, at every 4th step.
      if (vectors.lhs !== undefined && u % W === 0)
        for (let i = 0; i < RM; i++)
          body.push(
            `    var av${i}_${u / W}: vec4<f32>; ${vectorLoad(c.lhs, [`let ${kv}: i32 = k0 + ${u};`, ...bindSide(c.rows, rowAt(i), i, "")]).replace("@", `av${i}_${u / W}`)}`,
          );
      body.push(`    {`, `      let ${kv}: i32 = k0 + ${u};`, ...step("  ", vectors.lhs !== undefined ? u : undefined), `    }`);
    }
    body.push(`  }`);
  }
  if (!kVec && (kRows || unrolledAtMax < K))
    body.push(`  for (var ${kv}: i32 = ${kRows ? (unrolledAtMax > 0 ? unrolled : "0") : unrolledAtMax}; ${kv} < ${kEnd}; ${kv}++) {`, ...step(""), `  }`);
  body.push(...accumulatorStores(s, c, b, accs, params, rolled, colAt, paired));
  const reading = kRows ? readRows(kRows.size, b.access, false, body.join("\n")) : undefined;
  const bodyText = [...(reading?.lines ?? []), ...body].join("\n");
  const source = [
    `// ${d.name}: register-blocked matmul, ${RM}x${RN} outputs per thread (columns ${vectors.rhs !== undefined ? `in 4s, ${W * blocksN}` : pairs ? `in 2s, ${2 * blocksN}` : blocksN} apart), ${kVec ? "k in vec4 steps on both operands" : `k unrolled by ${U}`}${vectors.lhs !== undefined ? ", vec4 lhs" : ""}${vectors.rhs !== undefined ? ", vec4 rhs" : ""}, no workgroup memory`,
    ...sourceComment(s),
    ...b.decls,
    ...wgslHelpersFor(bodyText),
    "",
    `@compute @workgroup_size(${T})`,
    "fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {",
    `  let tid = i32(((wid.z * ${Math.max(ny, 1)}u + wid.y) * ${Math.max(nx, 1)}u + wid.x) * ${T}u + lid);`,
    `  if (tid >= ${threads}) { return; }`,
    `  let col0 = tid % ${blocksN};`,
    `  let row0 = ((tid / ${blocksN}) % ${blocksM}) * ${RM};`,
    `  let batch = tid / ${blocksN * blocksM};`,
    ...opaqueZero(bodyText, b.gpuBuffers),
    bodyText,
    "}",
    "",
  ].join("\n");
  const symbolic = matmulSymbolic(s, c, buffers, blocksM, blocksN, T);
  return { name: d.name, source, bindings: b.gpuBuffers, workgroups, ...(symbolic ? { symbolic } : {}) };
}

/** `var name = operand` with the side's variables bound; guarded by `flat < bound` unless every index is in range. */
function guardedOperand(name: string, binds: readonly string[], flat: string, bound: number | undefined, lines: readonly string[], value: string): string[] {
  const bind = binds.map((l) => `      ${l}`);
  if (bound === undefined) return [`    var ${name}: f32;`, `    {`, ...bind, ...lines, `      ${name} = ${value};`, `    }`];
  return [`    var ${name}: f32 = 0.0f;`, `    if (${flat} < ${bound}) {`, ...bind, ...lines, `      ${name} = ${value};`, `    }`];
}

/** The k loop's run-time bound where it steps a symbolic batch's rows (row-limits.ts): the size buffer and `let lim_k = …;`. */
function kRowLimit(s: Section, c: Contraction, buffers: readonly BufferDecl[] | undefined): { readonly size: BufferDecl; readonly decl: string } | undefined {
  const extent = rowLimitVars(s, buffers).get(c.k.name);
  const size = rowsSizeOf([s], buffers);
  if (extent === undefined || !size) return undefined;
  return { size, decl: `  let ${limitName(c.k.name)}: i32 = ${limitExpr(extent, size.dimMax!)};` };
}

/**
 * Under a symbolic batch, the matmul dispatch's SymbolicDispatch when its thread (or
 * workgroup) index leads with the batch: the outermost batch variable, or with no batch loop
 * a single row variable, steps whole batch rows (symbolicBound). The run then dispatches only
 * the blocks (`blocksM` of `blocksN` columns each, `perWorkgroup` to a workgroup) of its rows.
 */
function matmulSymbolic(
  s: Section,
  c: Contraction,
  buffers: readonly BufferDecl[] | undefined,
  blocksM: number,
  blocksN: number,
  perWorkgroup: number,
): SymbolicDispatch | undefined {
  const bound = buffers ? symbolicBound(s, buffers) : undefined;
  if (!bound) return undefined;
  const batchCount = c.batch.reduce((a, v) => a * v.extent, 1);
  const [lead] = c.batch.filter((v) => v.extent > 1);
  let step: readonly [number, number] | undefined;
  if (lead) step = lead.name === bound.v && c.batch[0] === lead ? [lead.extent, (batchCount / lead.extent) * blocksM * blocksN] : undefined;
  else if (c.rows.length === 1 && c.rows[0]!.name === bound.v) step = [blocksM, blocksN];
  return step ? { size: bound.size.id, max: bound.max, sections: [step], perWorkgroup } : undefined;
}

/** A subgroup matmul's source says the subgroup size it was rendered for: `// requires subgroups of size 8` (the runner checks the device's). */
export const SUBGROUP_SIZE_NOTE = "requires subgroups of size ";

/**
 * The subgroup form's vec4 operands: the rhs when its columns are one loop, N and the
 * thread's columns come in 4s, and it is read along them; else, with `kVectors`, both operands
 * when each is read contiguously along k and k is a multiple of 4 (a linear's x·Wᵀ).
 */
export function subgroupMatmulVectors(s: Section, c: Contraction, p: MatmulParams, kVectors = false): MatmulVectors {
  const rhs = c.cols.length === 1 && p.cols % VECTOR_WIDTH === 0 && c.N % VECTOR_WIDTH === 0 ? vectorOperand(s, c.rhs, c.cols[0]!.name) : undefined;
  if (rhs !== undefined) return { rhs };
  if (kVectors && c.k.extent % VECTOR_WIDTH === 0) {
    const kLhs = vectorOperand(s, c.lhs, c.k.name);
    const kRhs = vectorOperand(s, c.rhs, c.k.name);
    if (kLhs !== undefined && kRhs !== undefined) return { kLhs, kRhs };
  }
  return {};
}

/**
 * The subgroup form: register blocks like renderRegisterMatmul's, but every thread of a
 * workgroup shares the workgroup's `rows` rows, and the row-side operand of a k step is loaded
 * once per subgroup: lane l loads rows l, l + S, … (S the subgroup size) and
 * `subgroupBroadcast` hands each value to the other lanes. On a CPU adapter each storage load
 * is a per-lane loop with a bounds check (lavapipe: about 128 such lane loads per k step of an
 * 8x8 block), while a broadcast is one vector shuffle, so a 16x8 block costs 2 lhs loads
 * instead of 16. Columns: a thread's `cols` columns are `threads` apart (in vec4 groups where
 * the rhs is one contiguous load), so neighbouring lanes read neighbouring columns. Every lane
 * stays active through the k loop (a broadcast reads its source lane): rows or columns past
 * the end load zeros and skip their stores, and only a whole workgroup returns early.
 */
export function renderSubgroupMatmul(
  d: { readonly name: string; readonly sections: readonly Section[] },
  c: Contraction,
  b: DispatchBindings,
  limits: WebGpuLimits,
  params: MatmulParams,
  subgroupSize: number,
  vectors: MatmulVectors = {},
  rolled = false,
  buffers?: readonly BufferDecl[],
  paired: ReadonlySet<number> = new Set(),
): RenderedDispatch {
  const s = d.sections[0]!;
  const { M, N } = c;
  const K = c.k.extent;
  const S = subgroupSize;
  const { rows: RM, cols: RN, threads: T, unroll: U } = params;
  if (RM % S !== 0 || T % S !== 0)
    bug(`wgsl ${d.name}: the subgroup matmul needs rows and threads in multiples of the subgroup size ${S}, got rows=${RM} threads=${T}`);
  const kRows = kRowLimit(s, c, buffers);
  const W = VECTOR_WIDTH;
  const tileN = T * RN;
  const blocksM = Math.ceil(M / RM);
  const blocksN = Math.ceil(N / tileN);
  const batchCount = c.batch.reduce((a, v) => a * v.extent, 1);
  const total = batchCount * blocksM * blocksN;
  const workgroups = foldWorkgroups(total, d.name, limits.maxComputeWorkgroupsPerDimension);
  const [nx, ny] = workgroups;
  const access = b.access as VectorAccess;
  const render = (ids: Iterable<ExprId>, indent: string): string[] => renderExprList(s, ids, wgslDialect, b.access, indent);
  // Lane `lane`'s j-th lhs row, and the thread's j-th column (flat).
  const laneRow = (j: number): string => `row0 + ${j * S} + lane`;
  // With whole-word 16-bit stores (paired), pairs of neighbours from an even column, the pairs T apart.
  const pairs = paired.size > 0 && vectors.rhs === undefined;
  const colAt = (j: number | string): string => threadColumn(j, vectors.rhs !== undefined ? W : pairs ? 2 : 1, "col0 + ", "t", T);
  const body: string[] = [...bindBatch(c)];
  if (c.rows.length > 1) for (let j = 0; j < RM / S; j++) body.push(...bindFlat(c.rows, laneRow(j), "  ", `_${j}`));
  if (c.cols.length > 1) for (let j = 0; j < RN; j++) body.push(...bindFlat(c.cols, colAt(j), "  ", `_${j}`));
  const bindSide = (vars: readonly IndexVar[], flat: string, at: number): string[] =>
    vars.length === 1 ? [`let ${vars[0]!.name}: i32 = ${flat};`] : bindCopies(vars, `_${at}`, "");
  const lhsLines = render(c.lhs.ids, "        ");
  const rhsLines = render(c.rhs.ids, "        ");
  const rhsVector = (g: number): string[] => {
    const e = s.exprs[c.rhs.value]!;
    if (e.op !== "load") return bug(`wgsl ${d.name}: a vec4 operand that is not a load`);
    const col = colAt(g * W);
    const load = `{ let ${c.cols[0]!.name}: i32 = ${col}; bv${g} = ${access.loadVector(e.buffer, renderIndex(e.index, wgslDialect))}; }`;
    return N % tileN === 0 ? [`    var bv${g}: vec4<f32>; ${load}`] : [`    var bv${g}: vec4<f32>; if (${col} < ${N}) ${load}`];
  };
  /** One k step (the k variable bound): RM/S lhs loads shared by broadcast, RN rhs operands, RM x RN fmas. */
  const step = (indent: string): string[] => {
    const lines: string[] = [];
    for (let j = 0; j < RM / S; j++)
      lines.push(...guardedOperand(`al${j}`, bindSide(c.rows, laneRow(j), j), laneRow(j), M % RM === 0 ? undefined : M, lhsLines, exprName(c.lhs.value)));
    if (vectors.rhs !== undefined) {
      for (let g = 0; g < RN / W; g++) lines.push(...rhsVector(g));
      for (let j = 0; j < RN; j++) lines.push(`    let b${j}: f32 = bv${Math.floor(j / W)}[${j % W}];`);
    } else
      for (let j = 0; j < RN; j++)
        lines.push(...guardedOperand(`b${j}`, bindSide(c.cols, colAt(j), j), colAt(j), N % tileN === 0 ? undefined : N, rhsLines, exprName(c.rhs.value)));
    for (let i = 0; i < RM; i++) {
      lines.push(`    let a${i}: f32 = subgroupBroadcast(al${Math.floor(i / S)}, ${i % S}u);`);
      for (let j = 0; j < RN; j++) lines.push(`    acc${i * RN + j} = fma(a${i}, b${j}, acc${i * RN + j});`);
    }
    return lines.map((l) => indent + l);
  };
  const { accs, kv, unrolledAtMax, kEnd, unrolled } = accumulatorsAndKBounds(body, c, params, rolled, kRows);
  const kVec = vectors.kLhs !== undefined && vectors.kRhs !== undefined && !kRows;
  if (kVec) {
    // 4 k steps per iteration: each lane's lhs rows and each rhs column one vec4 along k, a row's vec4 broadcast whole; fmas in k order.
    const kLoad = (name: string, side: Contraction["lhs"], binds: readonly string[], flat: string, bound: number | undefined): string[] => {
      const e = s.exprs[side.value]!;
      if (e.op !== "load") return bug(`wgsl ${d.name}: a vec4 operand that is not a load`);
      const load = `{ ${binds.join(" ")} ${name} = ${access.loadVector(e.buffer, renderIndex(e.index, wgslDialect))}; }`;
      return bound === undefined ? [`    var ${name}: vec4<f32>; ${load}`] : [`    var ${name}: vec4<f32> = vec4<f32>(0.0f); if (${flat} < ${bound}) ${load}`];
    };
    body.push(`  for (var k0: i32 = 0; k0 < ${loopBound(K, rolled)}; k0 += ${W}) {`, `    let ${kv}: i32 = k0;`);
    for (let j = 0; j < RM / S; j++) body.push(...kLoad(`al${j}`, c.lhs, bindSide(c.rows, laneRow(j), j), laneRow(j), M % RM === 0 ? undefined : M));
    for (let j = 0; j < RN; j++) body.push(...kLoad(`bv${j}`, c.rhs, bindSide(c.cols, colAt(j), j), colAt(j), N % tileN === 0 ? undefined : N));
    for (let i = 0; i < RM; i++) {
      body.push(`    let a${i}: vec4<f32> = subgroupBroadcast(al${Math.floor(i / S)}, ${i % S}u);`);
      for (let j = 0; j < RN; j++) {
        const a = `acc${i * RN + j}`;
        body.push(`    ${a} = ${fma4(`a${i}`, `bv${j}`, a)};`);
      }
    }
    body.push(`  }`);
  } else if (unrolledAtMax > 0) {
    body.push(`  for (var k0: i32 = 0; k0 < ${unrolled}; k0 += ${U}) {`);
    for (let u = 0; u < U; u++) body.push(`    {`, `      let ${kv}: i32 = k0 + ${u};`, ...step("  "), `    }`);
    body.push(`  }`);
  }
  if (!kVec && (kRows || unrolledAtMax < K))
    body.push(`  for (var ${kv}: i32 = ${kRows ? (unrolledAtMax > 0 ? unrolled : "0") : unrolledAtMax}; ${kv} < ${kEnd}; ${kv}++) {`, ...step(""), `  }`);
  body.push(...accumulatorStores(s, c, b, accs, params, rolled, colAt, paired));
  const reading = kRows ? readRows(kRows.size, b.access, false, body.join("\n")) : undefined;
  const bodyText = [...(reading?.lines ?? []), ...body].join("\n");
  const source = [
    `// ${d.name}: subgroup matmul, ${RM}x${RN} outputs per thread (columns ${vectors.rhs !== undefined ? `in 4s, ${W * T}` : T} apart), ${RM}x${tileN} per workgroup, lhs rows shared by subgroupBroadcast over ${S} lanes, ${kVec ? "k in vec4 steps on both operands" : `k unrolled by ${U}`}${vectors.rhs !== undefined ? ", vec4 rhs" : ""}`,
    ...sourceComment(s),
    `// ${SUBGROUP_SIZE_NOTE}${S}`,
    "enable subgroups;",
    // A symbolic batch's k bound is read from storage: the same value in every lane, but not provably uniform.
    ...(kRows ? ["diagnostic(off, subgroup_uniformity);"] : []),
    ...b.decls,
    ...wgslHelpersFor(bodyText),
    "",
    `@compute @workgroup_size(${T})`,
    "fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32, @builtin(subgroup_invocation_id) sgid: u32) {",
    `  let wg = i32((wid.z * ${Math.max(ny, 1)}u + wid.y) * ${Math.max(nx, 1)}u + wid.x);`,
    // Uniform per workgroup: every lane of a subgroup stays active for the broadcasts.
    `  if (wg >= ${total}) { return; }`,
    "  let t = i32(lid);",
    "  let lane = i32(sgid);",
    `  let col0 = (wg % ${blocksN}) * ${tileN};`,
    `  let row0 = ((wg / ${blocksN}) % ${blocksM}) * ${RM};`,
    `  let batch = wg / ${blocksN * blocksM};`,
    ...opaqueZero(bodyText, b.gpuBuffers),
    bodyText,
    "}",
    "",
  ].join("\n");
  const symbolic = matmulSymbolic(s, c, buffers, blocksM, blocksN, 1);
  return { name: d.name, source, bindings: b.gpuBuffers, workgroups, ...(symbolic ? { symbolic } : {}) };
}
