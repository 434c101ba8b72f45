// Memory planning of a kernel program: the one planner every target uses, parameterised by
// the target's memory rules (bytes per element, arena alignment). It builds the launch
// schedule for compiler/kernel/memory-plan.ts from the kernels' reads and writes, with the
// aliasing rule every target shares: an output that updates an input (a parameter, optimizer
// state) may share its storage only when each kernel writing it reads the input at the
// store's own index (read, then written, by the same iteration); otherwise the plan sees a
// read after the write and writes the update aside, with a copy back after the run.

import type { DType } from "../ir/dtype.ts";
import { numel } from "../util/shape.ts";
import { indexKey } from "./index-expr.ts";
import type { Kernel, KernelProgram } from "./kernel-ir.ts";
import { ARENA_ALIGNMENT_BYTES, planMemory, type MemoryPlan, type PlanBuffer, type PlanStep } from "./memory-plan.ts";

/** What a target tells the planner about its memory. */
export interface MemoryRules {
  /** Bytes one element of `dtype` takes in this target's buffers (WebGPU stores bool as u32). */
  readonly elementBytes: (dtype: DType) => number;
  /** Arena alignment of each slot (default 256: WebGPU's minStorageBufferOffsetAlignment). */
  readonly alignmentBytes?: number;
}

export interface ProgramMemory {
  readonly rules: MemoryRules;
  /** Memory slot of each program buffer, by buffer id. */
  readonly slotOf: readonly number[];
  /** Bytes of each slot. */
  readonly slotBytes: readonly number[];
  /** Aliased outputs written aside: copy output → input (buffer ids) after the run. */
  readonly copies: readonly { readonly output: number; readonly input: number }[];
  /** Bytes of each program buffer under these rules. */
  readonly bufferBytes: readonly number[];
  /** The planner's full result (lifetimes, reuse counts) for dumps and tests. */
  readonly plan: MemoryPlan;
}

export function planProgramMemory(program: KernelProgram, rules: MemoryRules): ProgramMemory {
  const bufferBytes = program.buffers.map((b) => numel(b.shape) * rules.elementBytes(b.dtype));
  const inputByName = new Map(program.inputs.map((i) => [i.name, i.buffer]));
  const aliasOf = new Map<number, number>();
  for (const o of program.outputs) {
    const input = o.aliases === undefined ? undefined : inputByName.get(o.aliases);
    if (input !== undefined && program.buffers[o.buffer]!.kind === "output" && bufferBytes[input] === bufferBytes[o.buffer]) aliasOf.set(o.buffer, input);
  }
  const steps: PlanStep[] = [];
  // A kernel's aliased outputs from its own writes (not every alias per kernel: a training step has hundreds of both), in the outputs' order.
  const aliasRank = new Map([...aliasOf.keys()].map((out, i) => [out, i]));
  for (const k of program.kernels) {
    steps.push({ reads: k.reads.map(String), writes: k.writes.map(String) });
    const unsafe = k.writes
      .filter((out) => aliasOf.has(out))
      .sort((a, b) => aliasRank.get(a)! - aliasRank.get(b)!)
      .map((out): [number, number] => [out, aliasOf.get(out)!])
      .filter(([out, input]) => k.reads.includes(input) && !readsOnlyAtStoreIndex(k, input, out));
    if (unsafe.length > 0) steps.push({ reads: unsafe.map(([, input]) => String(input)), writes: [] });
  }
  const planBuffers: PlanBuffer[] = program.buffers.map((b) => ({
    key: String(b.id),
    bytes: bufferBytes[b.id]!,
    kind: b.kind,
    ...(aliasOf.has(b.id) ? { aliasOf: String(aliasOf.get(b.id)) } : {}),
  }));
  const plan = planMemory(steps, planBuffers, rules.alignmentBytes ?? ARENA_ALIGNMENT_BYTES);
  return {
    rules,
    slotOf: program.buffers.map((b) => plan.slot.get(String(b.id)) ?? 0),
    slotBytes: plan.slotBytes,
    copies: plan.copies.map((c) => ({ output: Number(c.output), input: Number(c.input) })),
    bufferBytes,
    plan,
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

/** The plan as text for `NN-memory-plan.txt`: one line per buffer, then the totals. */
export function formatProgramMemory(program: KernelProgram, memory: ProgramMemory): string {
  const lines = [
    `memory @${program.name}: ${memory.slotBytes.length} slots, peak ${memory.plan.peakBytes} B (${memory.plan.totalBytes} B without reuse), ${memory.plan.reusedTemps} temps reuse a slot`,
  ];
  memory.slotBytes.forEach((bytes, slot) => {
    const held = program.buffers.filter((b) => memory.slotOf[b.id] === slot).map((b) => `b${b.id} ${b.name} (${b.kind}, ${memory.bufferBytes[b.id]} B)`);
    lines.push(`  slot ${slot} [${bytes} B]: ${held.join(", ")}`);
  });
  for (const c of memory.copies) lines.push(`  copy b${c.output} -> b${c.input} after the run (the input is read after its update is written)`);
  return `${lines.join("\n")}\n`;
}
