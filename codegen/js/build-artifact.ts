// Kernel program → "js" artifact: renders every kernel, plans memory over the launch
// sequence (compiler/passes/memory-plan.ts) and computes the traffic counters of exe.stats.

import { indexKey } from "../../compiler/kernel/index-expr.ts";
import type { Kernel, KernelProgram } from "../../compiler/kernel/kernel-ir.ts";
import { planMemory, type PlanBuffer, type PlanStep } from "../../compiler/passes/memory-plan.ts";
import { numel } from "../../compiler/util/shape.ts";
import { artifactDTypeBytes, type Artifact, type ArtifactKernel } from "../../runtime/artifact/format.ts";
import { renderJsKernel } from "./render-js.ts";
import { artifactIO, trafficBytes } from "../artifact-io.ts";

export function buildJsArtifact(program: KernelProgram): Artifact {
  const kernels: ArtifactKernel[] = program.kernels.map((k) => {
    const r = renderJsKernel(k, program.buffers);
    return { name: r.name, source: r.source, params: r.params, reads: k.reads, writes: k.writes };
  });
  const bytesOf = (id: number): number => {
    const b = program.buffers[id]!;
    return numel(b.shape) * artifactDTypeBytes(b.dtype);
  };
  const inputByName = new Map(program.inputs.map((i) => [i.name, i.buffer]));
  const aliasOf = new Map<number, number>();
  for (const o of program.outputs) {
    const input = o.aliases === undefined ? undefined : inputByName.get(o.aliases);
    if (input !== undefined && program.buffers[o.buffer]!.kind === "output" && bytesOf(input) === bytesOf(o.buffer)) aliasOf.set(o.buffer, input);
  }
  const steps: PlanStep[] = [];
  for (const k of program.kernels) {
    steps.push({ reads: k.reads.map(String), writes: k.writes.map(String) });
    // An in-place update is safe inside one kernel only where each element is read, then written, by the same iteration.
    const unsafe = [...aliasOf].filter(([out, input]) => k.writes.includes(out) && k.reads.includes(input) && !readsOnlyAtStoreIndex(k, input, out));
    if (unsafe.length > 0) steps.push({ reads: unsafe.map(([, input]) => String(input)), writes: [] });
  }
  const planBuffers: PlanBuffer[] = program.buffers.map((b) => ({
    key: String(b.id),
    bytes: bytesOf(b.id),
    kind: b.kind,
    ...(aliasOf.has(b.id) ? { aliasOf: String(aliasOf.get(b.id)) } : {}),
  }));
  const plan = planMemory(steps, planBuffers);
  const { bytesRead, bytesWritten } = trafficBytes(program.kernels, bytesOf);
  return {
    format: "kiln-artifact",
    version: 1,
    name: program.name,
    target: "js",
    ...artifactIO(program),
    buffers: program.buffers.map((b) => ({ id: b.id, name: b.name, dtype: b.dtype, shape: b.shape, kind: b.kind, slot: plan.slot.get(String(b.id)) ?? 0 })),
    kernels,
    memory: {
      slotBytes: plan.slotBytes,
      copies: plan.copies.map((c) => ({ output: Number(c.output), input: Number(c.input) })),
    },
    stats: { kernels: kernels.length, bytesRead, bytesWritten, peakBytes: plan.peakBytes },
  };
}

/** True when `input` is loaded only in the sections storing `output`, at the store's own indices. */
function readsOnlyAtStoreIndex(k: Kernel, input: number, output: number): boolean {
  for (const s of k.sections) {
    const storeKeys = new Set(s.stores.filter((st) => st.buffer === output).map((st) => indexKey(st.index)));
    for (const e of s.exprs) if (e.op === "load" && e.buffer === input && !storeKeys.has(indexKey(e.index))) return false;
  }
  return true;
}
