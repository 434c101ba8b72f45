// Kernel program + its device layout → the "webgpu" artifact's kernels: one WGSL shader per
// dispatch of the layout (layout.ts, webgpu's `device-layout` stage after the memory plan:
// kernels binding too many buffers split into dispatches, small slots packed into one buffer),
// with its bindings and workgroup counts; every element is a u32 word on the device (bool too), f16/bf16 two
// to a word. Which template a
// section renders with (row kernel, matmul) is its kernel-IR `form` fact, set by webgpu's passes.

import type { KernelProgram, MatmulParams } from "../../compiler/kernel/kernel-ir.ts";
import type { KVectorMode } from "./dispatch.ts";
import type { WebGpuArtifactKernel } from "../../runtime/artifact/format.ts";
import type { DeviceLayout, Dispatch, WebGpuLimits } from "./layout.ts";
import { renderDispatch } from "./render-wgsl.ts";
import type { DispatchContext, ElementwiseShape, RenderedDispatch } from "./dispatch.ts";
import { matmulParamsOf } from "./matmul.ts";

export interface RenderedWebGpuProgram {
  readonly kernels: readonly WebGpuArtifactKernel[];
  /** Where each program buffer lives: GPU buffer (the artifact's slot) and byte offset in it. */
  readonly placement: {
    readonly slotOf: readonly number[];
    readonly offsetOf: readonly number[];
    readonly slotBytes: readonly number[];
    readonly peakBytes: number;
  };
}

/** How a program renders for its adapter kind. */
export interface WebGpuRenderOptions {
  /** Keep constant-trip loops rolled (DispatchContext's, for a CPU adapter). */
  readonly rolledLoops?: boolean;
  /** Give register matmuls with blocks larger than QUICK_MATMUL a quick variant (WebGpuArtifactKernel.quick, for a CPU adapter). */
  readonly quickStart?: boolean;
  /** f16 buffers as array<f16> (the adapter has `shader-f16`). */
  readonly shaderF16?: boolean;
  /** Whole-word stores of packed 16-bit tensors where a thread can take both halves (DispatchContext's; absent: false). */
  readonly pairHalves?: boolean;
  /** The most an elementwise dispatch's workgroups take (DispatchContext's; absent: 64 threads, one index each). */
  readonly elementwiseShape?: ElementwiseShape;
  /** Register matmuls read operands contiguous along k as vec4s (DispatchContext's, for a CPU adapter). */
  readonly kVectors?: KVectorMode;
  /** The device's fixed subgroup size (`subgroups` feature): what `form matmul subgroup` sections render for. */
  readonly subgroupSize?: number;
}

/**
 * A register matmul's quick variant: 2x4 outputs per thread, one k step at a time (no vec4
 * loads along k: `kVectors: "never"`). On lavapipe (MLP train step, its three matmuls) it compiles
 * in about half the CPU time of the 8x8 default (0.63-0.73 s against 1.30-1.37 s) and runs
 * about half as fast; against the 8x8 with vec4 k steps, a third (the forward matmul: 0.20
 * against 1.30-1.46 s). Each output is the same fma chain over k, so the bits are the same.
 */
export const QUICK_MATMUL: MatmulParams = { rows: 2, cols: 4, threads: 64, unroll: 1 };

/**
 * The dispatch's quick variant where its one section is a register or subgroup matmul larger
 * than QUICK_MATMUL, over the same bindings; else undefined. The quick variant is always a
 * register matmul: a subgroup matmul's outputs are the same fma chains over k too.
 */
function quickVariant(d: Dispatch, ctx: DispatchContext, full: RenderedDispatch): WebGpuArtifactKernel["quick"] {
  const s = d.sections.length === 1 ? d.sections[0]! : undefined;
  const form = s?.form;
  if (!s || form?.kind !== "matmul" || (form.form !== "registers" && form.form !== "subgroup")) return undefined;
  const p = matmulParamsOf(form.form, form.params);
  if (p.rows * p.cols <= QUICK_MATMUL.rows * QUICK_MATMUL.cols || p.unroll > 1) return undefined;
  // vec4 loads along k cost lavapipe's JIT about three scalar loads each: the quick variant steps k one at a time.
  const quick = renderDispatch(
    { ...d, sections: [{ ...s, form: { kind: "matmul", form: "registers", params: QUICK_MATMUL } }] },
    { ...ctx, kVectors: "never" },
  );
  const same = quick.bindings.length === full.bindings.length && quick.bindings.every((b, i) => b === full.bindings[i]);
  return same && !quick.symbolic && !full.symbolic ? { source: quick.source, workgroups: quick.workgroups } : undefined;
}

export function renderWebGpuProgram(program: KernelProgram, layout: DeviceLayout, limits: WebGpuLimits, opts: WebGpuRenderOptions = {}): RenderedWebGpuProgram {
  const ctx = {
    dtypeOf: (b: number) => program.buffers[b]!.dtype,
    nameOf: (b: number) => program.buffers[b]!.name,
    place: layout.place,
    packs: layout.packs,
    limits,
    buffers: program.buffers,
    gpuBufferBytes: layout.gpuBufferBytes,
    rolledLoops: opts.rolledLoops === true,
    kVectors: opts.kVectors ?? "never",
    shaderF16: opts.shaderF16 === true,
    pairHalves: opts.pairHalves === true,
    ...(opts.elementwiseShape ? { elementwiseShape: opts.elementwiseShape } : {}),
    ...(opts.subgroupSize !== undefined ? { subgroupSize: opts.subgroupSize } : {}),
  };
  const kernels = layout.dispatches.map((d): WebGpuArtifactKernel => {
    const r = renderDispatch(d, ctx);
    const written = new Set(d.sections.flatMap((s) => s.stores.map((st) => st.buffer)));
    const quick = opts.quickStart ? quickVariant(d, ctx, r) : undefined;
    return {
      name: r.name,
      source: r.source,
      params: d.buffers,
      reads: d.buffers.filter((b) => !written.has(b)),
      writes: [...written].sort((a, b) => a - b),
      bindings: r.bindings,
      workgroups: r.workgroups,
      ...(r.symbolic ? { symbolic: r.symbolic } : {}),
      ...(quick ? { quick } : {}),
    };
  });
  return {
    kernels,
    placement: {
      slotOf: layout.place.map((p) => p.gpuBuffer),
      offsetOf: layout.place.map((p) => p.offsetBytes),
      slotBytes: layout.gpuBufferBytes,
      peakBytes: layout.peakBytes,
    },
  };
}
