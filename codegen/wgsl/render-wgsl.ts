// One dispatch → a WGSL compute shader: storage bindings per GPU buffer (a pack is read and
// written through u32 words with bitcasts), a flat thread index folded over up to three
// workgroup dimensions (adapters cap each at maxComputeWorkgroupsPerDimension), and each
// section's body from the C-like renderer base, guarded by its own thread count.

import { sectionSourceNote } from "../../compiler/kernel/print.ts";
import { bug } from "../../compiler/util/errors.ts";
import { parallelDepthOf, renderSectionBody, scheduleSection } from "../render/base.ts";
import type { Section } from "../../compiler/kernel/kernel-ir.ts";
import type { ScheduleItem } from "../../compiler/kernel/schedule.ts";
import {
  dispatchBindings,
  f16Bindings,
  foldWorkgroups,
  opaqueZero,
  vectorBindable,
  symbolicDispatch,
  elementwiseShapeFor,
  PLAIN_SHAPE,
  type DispatchContext,
  type RenderedDispatch,
} from "./dispatch.ts";
import { loopBound, wgslDialectFor, wgslHelpersFor } from "./dialect.ts";
import type { Dispatch } from "./layout.ts";
import {
  matchContraction,
  matmulPairs,
  matmulParamsOf,
  matmulVectors,
  renderRegisterMatmul,
  renderSubgroupMatmul,
  renderTiledMatmul,
  subgroupMatmulVectors,
} from "./matmul.ts";
import { renderRowKernel } from "./row-reduce.ts";
import { exclusiveStores, PAIR_START, pairPlan, renderPairedBody, wholeWordPlans } from "./pair.ts";
import { renderVectorBody, VECTOR_WIDTH, vectorPlan, type VectorPlan } from "./vector.ts";
import { symbolicBound } from "../../compiler/kernel/symbolic-bound.ts";
import { limitDecls, limitName, readRows, rowLimitVars, rowsSizeOf } from "./row-limits.ts";

/**
 * A section's vector plan where its `form vector` fact asks for one and the dispatch can bind
 * its buffers as vec4 and its batch is not symbolic along the vectorized loop; else undefined
 * (one element per thread, as without the fact).
 */
function vectorPlanFor(s: Section, d: Dispatch, ctx: DispatchContext): VectorPlan | undefined {
  if (s.form?.kind !== "vector" || s.form.width !== VECTOR_WIDTH) return undefined;
  const plan = vectorPlan(s, s.form.width);
  if (!plan || !vectorBindable(d, ctx, plan.buffers)) return undefined;
  if (s.domain.length === 1 && ctx.buffers && symbolicBound(s, ctx.buffers)) return undefined;
  // A loop that stops at a symbolic batch's rows is bounded by the scalar renderer only.
  if (rowLimitVars(s, ctx.buffers).size > 0) return undefined;
  return plan;
}

/** Whether a schedule item is or holds a reduction loop. */
const hasReduce = (item: ScheduleItem): boolean => item.kind === "reduce" || (item.kind === "loop" && item.body.some(hasReduce));

/**
 * A section alone in its dispatch renders in the form its kernel-IR `form` fact names (chosen
 * by webgpu's `matmul-form` and `row-kernels` passes); any other dispatch, one thread per output.
 * A shader binding array<f16> (ctx.shaderF16) opens with `enable f16;` after its name line.
 */
export function renderDispatch(d: Dispatch, ctx: DispatchContext): RenderedDispatch {
  const r = renderDispatchForm(d, ctx);
  return r.source.includes("array<f16>") ? { ...r, source: r.source.replace(/^(\/\/[^\n]*\n)/, "$1enable f16;\n") } : r;
}

function renderDispatchForm(d: Dispatch, ctx: DispatchContext): RenderedDispatch {
  const only = d.sections.length === 1 ? d.sections[0]! : undefined;
  const form = only?.form;
  if (only && form?.kind === "matmul") {
    const contraction = matchContraction(only) ?? bug(`wgsl ${d.name}: 'form matmul' on a section whose dot fact is not a matmul this renderer handles`);
    const params = matmulParamsOf(form.form, form.params);
    const rolled = ctx.rolledLoops === true;
    // Whole-word 16-bit stores from pairs of neighbouring columns (the register and subgroup forms).
    const f16Gpu = f16Bindings(d, ctx);
    const paired = ctx.pairHalves === true ? matmulPairs(d, contraction, params, ctx, (b) => !f16Gpu.has(ctx.place[b]!.gpuBuffer)) : new Set<number>();
    if (form.form === "workgroup") return renderTiledMatmul(d, contraction, dispatchBindings(d, ctx), ctx.limits, params, rolled, ctx.buffers);
    if (form.form === "subgroup") {
      const size = ctx.subgroupSize ?? bug(`wgsl ${d.name}: 'form matmul subgroup' needs the device's subgroup size (a device with the 'subgroups' feature)`);
      // the subgroup form takes k vec4s at any k in "auto" (K_VECTORS_MIN_K was measured on the registers form)
      const wanted = subgroupMatmulVectors(only, contraction, params, (ctx.kVectors ?? "never") !== "never");
      const vectors = Object.values(wanted).every((b) => vectorBindable(d, ctx, [b])) ? wanted : {};
      const vectorGpu = new Set(Object.values(vectors).map((b) => ctx.place[b]!.gpuBuffer));
      return renderSubgroupMatmul(d, contraction, dispatchBindings(d, ctx, vectorGpu, paired), ctx.limits, params, size, vectors, rolled, ctx.buffers, paired);
    }
    // vec4 operands where their buffers can be bound so (and not both the same GPU buffer read two ways).
    const wanted = matmulVectors(only, contraction, params, ctx.kVectors);
    const kept = Object.fromEntries(Object.entries(wanted).filter(([, b]) => vectorBindable(d, ctx, [b])));
    // the k-vector pair goes together: both operands along k, or neither
    const vectors =
      kept["kLhs"] !== undefined && kept["kRhs"] !== undefined
        ? kept
        : { ...(kept["lhs"] !== undefined ? { lhs: kept["lhs"] } : {}), ...(kept["rhs"] !== undefined ? { rhs: kept["rhs"] } : {}) };
    const vectorGpu = new Set(Object.values(vectors).map((b) => ctx.place[b]!.gpuBuffer));
    return renderRegisterMatmul(d, contraction, dispatchBindings(d, ctx, vectorGpu, paired), ctx.limits, params, vectors, rolled, ctx.buffers, paired);
  }
  if (only && form?.kind === "row") return renderRowKernel(d, dispatchBindings(d, ctx), ctx.limits, ctx.buffers, form.threads, ctx.rolledLoops === true);
  const plans = d.sections.map((s) => vectorPlanFor(s, d, ctx));
  const vectorGpu = new Set(plans.flatMap((p) => [...(p?.buffers ?? [])].map((b) => ctx.place[b]!.gpuBuffer)));
  // Sections storing packed 16-bit tensors contiguously: two outputs a thread, whole-word stores (pair.ts).
  const schedules = d.sections.map((s) => scheduleSection(s));
  const f16Gpu = f16Bindings(d, ctx);
  // and sections whose thread stores whole rows from serial loops: plain read-modify-writes of words no other thread touches.
  const halfBound = (b: number): boolean => !f16Gpu.has(ctx.place[b]!.gpuBuffer);
  const on = (i: number): boolean => !plans[i] && ctx.pairHalves === true;
  const { pairs, exclusive } = wholeWordPlans(
    d,
    d.sections.map((s, i) => (on(i) ? pairPlan(s, parallelDepthOf(s, schedules[i]!), d, ctx, halfBound) : undefined)),
    d.sections.map((s, i) => (on(i) ? exclusiveStores(s, parallelDepthOf(s, schedules[i]!), d, ctx, halfBound) : new Set<number>())),
  );
  const paired = new Set(pairs.flatMap((p) => [...(p?.buffers ?? [])]));
  const { gpuBuffers, decls, access } = dispatchBindings(d, ctx, vectorGpu, paired, exclusive);

  const dialect = wgslDialectFor(ctx.rolledLoops === true);
  const body: string[] = [];
  let threads = 0;
  let loopFree = true;
  const shrinkable: [Section, number, number][] = [];
  d.sections.forEach((s, i) => {
    const items = schedules[i]!;
    const depth = parallelDepthOf(s, items);
    loopFree &&= depth === s.domain.length && !items.some(hasReduce);
    const plan = plans[i];
    const pair = pairs[i];
    const width = plan?.width ?? 1;
    // A vector section's innermost variable steps by the width: each thread takes `width` elements; a paired one's, by 2 (the last pair may be one).
    const parallel = s.domain
      .slice(0, depth)
      .map((v, at) =>
        plan && at === depth - 1 ? { ...v, extent: v.extent / width } : pair && at === depth - 1 ? { ...v, extent: Math.ceil(v.extent / 2) } : v,
      );
    const count = parallel.reduce((a, v) => a * v.extent, 1);
    if (s.domain.some((v) => v.extent === 0)) return; // an empty tensor: nothing to store
    threads = Math.max(threads, count);
    shrinkable.push([s, depth, count]);
    const source = sectionSourceNote(s);
    const note = s.tile
      ? `, ${s.tile.rows}x${s.tile.cols} register tile`
      : plan
        ? `, ${width} elements per thread (vec${width})`
        : pair
          ? `, 2 elements per thread (whole 16-bit words: ${[...pair.buffers].map(ctx.nameOf).join(", ")})`
          : "";
    body.push(`  if (tid < ${count}) { // section ${i}${note}${source ? ` ${source}` : ""}`);
    let stride = count;
    parallel.forEach((v, at) => {
      stride /= v.extent;
      const q = stride === 1 ? "tid" : `tid / ${stride}`;
      const value = v.extent === 1 ? "0" : stride * v.extent === count ? q : `${q} % ${v.extent}`;
      const scaled = (by: number): string => `${by} * ${value === "0" ? "0" : `(${value})`}`;
      if (pair && at === depth - 1) body.push(`    let ${PAIR_START}: i32 = ${scaled(2)};`);
      else body.push(`    let ${v.name}: i32 = ${plan && at === depth - 1 ? scaled(width) : value};`);
    });
    // The serial loops that step the batch's rows stop at the run's rows (the thread-bound ones are the dispatch's).
    const bounded = rowLimitVars(s, ctx.buffers);
    const limits = new Map([...bounded.keys()].map((v) => [v, limitName(v)]));
    const sectionBody = plan
      ? renderVectorBody(s, items, plan, access, "    ")
      : pair
        ? renderPairedBody(s, items, pair, dialect, access, "    ", limits)
        : renderSectionBody(s, items, depth, dialect, access, "    ", limits);
    const size = ctx.buffers ? rowsSizeOf([s], ctx.buffers) : undefined;
    if (size) body.push(...limitDecls(bounded, size.dimMax!, sectionBody.join("\n"), "    "));
    body.push(...sectionBody);
    body.push("  }");
  });
  // Elementwise dispatches take the adapter kind's shape (several indices a thread on a CPU adapter); the rest, one each.
  const shape = loopFree ? elementwiseShapeFor(threads, ctx.elementwiseShape ?? PLAIN_SHAPE) : PLAIN_SHAPE;
  const perWorkgroup = shape.threads * shape.perThread;
  const workgroups = foldWorkgroups(Math.ceil(threads / perWorkgroup), d.name, ctx.limits.maxComputeWorkgroupsPerDimension);
  const [nx, ny] = workgroups;
  const first = `((wid.z * ${Math.max(ny, 1)}u + wid.y) * ${Math.max(nx, 1)}u + wid.x) * ${perWorkgroup}u + lid`;
  const inner = body.join("\n");
  // Several indices a thread: a loop around every section's guarded body (rolled on a CPU adapter, as every constant-trip loop there).
  const bodyText =
    shape.perThread === 1
      ? inner
      : [
          `  let kiln_first = i32(${first});`,
          `  for (var kiln_k = 0; kiln_k < ${loopBound(shape.perThread, ctx.rolledLoops === true)}; kiln_k++) { // ${shape.perThread} indices per thread, ${shape.threads} apart`,
          `    let tid = kiln_first + kiln_k * ${shape.threads};`,
          ...body.map((line) => `  ${line}`),
          "  }",
        ].join("\n");
  const size = rowsSizeOf(d.sections, ctx.buffers);
  const rows = size ? readRows(size, access, false, bodyText) : undefined;
  const source = [
    `// ${d.name}`,
    ...decls,
    ...wgslHelpersFor(bodyText),
    "",
    `@compute @workgroup_size(${shape.threads})`,
    "fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {",
    ...(shape.perThread === 1 ? [`  let tid = i32(${first});`] : []),
    ...opaqueZero(bodyText, gpuBuffers),
    ...(rows?.lines ?? []),
    bodyText,
    "}",
    "",
  ].join("\n");
  const symbolic = symbolicDispatch(shrinkable, ctx.buffers, perWorkgroup);
  return { name: d.name, source, bindings: gpuBuffers, workgroups, ...(symbolic ? { symbolic } : {}) };
}
