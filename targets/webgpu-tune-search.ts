// The autotuning search: for each section of a compiled webgpu program that renders in a form
// (matmul, row) and whose key the cache lacks, render its dispatch once per candidate form
// (targets/webgpu-tune.ts: a bounded list per form kind, within the device's workgroup limits),
// time each on zero-filled buffers of the dispatch's sizes (runtime/webgpu/time-dispatch.ts),
// and record the fastest in the cache. Identical sections (one key) are searched once. Runs
// only when asked (`tune: true`, KILN_TUNE=1, `kiln tune`), never by default.

import type { MatmulForm, SectionForm } from "../compiler/kernel/kernel-ir.ts";
import { printForm } from "../compiler/kernel/print.ts";
import type { DeviceLayout, WebGpuLimits } from "../codegen/wgsl/layout.ts";
import { renderDispatch } from "../codegen/wgsl/render-wgsl.ts";
import type { Compiled } from "../compiler/compile.ts";
import type { WebGpuArtifact } from "../runtime/artifact/format.ts";
import { timeShader, type TimingOptions } from "../runtime/webgpu/time-dispatch.ts";
import { pipelineKey } from "../runtime/webgpu/run-artifact.ts";
import type { TuneCache } from "./webgpu-tune-cache.ts";
import { candidatesFor, rolledLoopsFor, sectionKey, type WorkgroupLimits } from "./webgpu-tune.ts";

/** One section's search, for reports and `kiln tune`'s table. */
export interface SearchResult {
  readonly key: string;
  readonly kernel: string;
  readonly form: SectionForm;
  readonly ms: number;
  readonly defaultMs: number;
  readonly candidates: number;
  /** Pipeline creation and first dispatch of all candidates, ms. */
  readonly compileMs: number;
}

export interface SearchOptions {
  readonly limits: WebGpuLimits;
  readonly workgroupLimits: WorkgroupLimits;
  readonly forcedMatmulForm?: MatmulForm;
  /** The device's fixed subgroup size: subgroup matmul candidates render for it (none without). */
  readonly subgroupSize?: number;
  /** Search again even where the cache has the key. */
  readonly force?: boolean;
  readonly timing?: TimingOptions;
  /** Called after each candidate: progress for long searches. */
  readonly progress?: (p: { readonly kernel: string; readonly done: number; readonly total: number }) => void;
}

/** Sections searched in this process (tests count them: a loaded artifact or a cached compile searches none). */
const counts = { searches: 0, candidates: 0 };
export const webGpuTuneCounts = (): { readonly searches: number; readonly candidates: number } => ({ ...counts });

/** Searches the compiled program's formed sections that `cache` lacks, adding the winners to `cache.entries`. */
export async function searchForms(compiled: Compiled<WebGpuArtifact>, device: GPUDevice, cache: TuneCache, opts: SearchOptions): Promise<SearchResult[]> {
  const { program } = compiled;
  const layout = compiled.layout as DeviceLayout;
  const ctx = {
    dtypeOf: (b: number) => program.buffers[b]!.dtype,
    nameOf: (b: number) => program.buffers[b]!.name,
    place: layout.place,
    packs: layout.packs,
    limits: opts.limits,
    buffers: program.buffers,
    rolledLoops: rolledLoopsFor(cache.kind),
    ...(opts.subgroupSize !== undefined ? { subgroupSize: opts.subgroupSize } : {}),
  };
  const results: SearchResult[] = [];
  const done = new Set<string>();
  for (const d of layout.dispatches) {
    const s = d.sections.length === 1 ? d.sections[0]! : undefined;
    if (!s?.form) continue;
    const key = sectionKey(s);
    if (done.has(key) || (!opts.force && cache.entries.has(key))) continue;
    done.add(key);
    const candidates = candidatesFor(cache.kind, s.form, opts.workgroupLimits, opts.forcedMatmulForm, opts.subgroupSize);
    counts.searches++;
    let best: { form: SectionForm; ms: number } | undefined;
    let defaultMs = Number.NaN;
    let compileMs = 0;
    // Candidates that render the same shader (a parameter the renderer does not read) are timed once.
    const rendered = new Set<string>();
    let timed = 0;
    for (const [i, form] of candidates.entries()) {
      const r = renderDispatch({ ...d, sections: [{ ...s, form }] }, ctx);
      const key = pipelineKey(r.source);
      if (rendered.has(key)) continue;
      rendered.add(key);
      timed++;
      const bindingBytes = r.bindings.map((g) => layout.gpuBufferBytes[g]!);
      const t = await timeShader(device, { label: `${d.name} ${printForm(form)}`, source: r.source, bindingBytes, workgroups: r.workgroups }, opts.timing);
      counts.candidates++;
      compileMs += t.compileMs;
      if (i === 0) defaultMs = t.ms;
      if (!best || t.ms < best.ms) best = { form, ms: t.ms };
      opts.progress?.({ kernel: d.name, done: i + 1, total: candidates.length });
    }
    if (!best) continue;
    const round = (ms: number): number => Math.round(ms * 1e4) / 1e4;
    cache.entries.set(key, { form: best.form, ms: round(best.ms), defaultMs: round(defaultMs), candidates: timed });
    results.push({ key, kernel: d.name, form: best.form, ms: best.ms, defaultMs, candidates: timed, compileMs });
  }
  return results;
}
