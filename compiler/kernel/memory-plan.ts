// Memory planning over an abstract schedule: a list of steps (kernel launches), each
// reading and writing named buffers. Temporaries whose lifetimes do not overlap share a
// slot (greedy best fit, deterministic); inputs and outputs live for the whole run; an
// output that updates an input (a parameter, optimizer state) reuses the input's storage
// when nothing reads the old value after the update is written, else it gets its own
// buffer and a copy at the end, which the plan reports. Slots are laid out in one arena
// at 256-byte offsets (WebGPU's default minStorageBufferOffsetAlignment).
// The planner knows nothing of fusion: the fusion/schedule stage builds the steps. It
// assumes the step that writes an in-place update may read the input it replaces (each
// element read before it is written, as in an elementwise optimizer update); a kernel that
// reads the input at other indices while writing the update must not be planned in place.

import { bug } from "../util/errors.ts";

export type BufferKey = string;

/** One kernel launch: the buffers it reads and writes. */
export interface PlanStep {
  readonly reads: readonly BufferKey[];
  readonly writes: readonly BufferKey[];
}

export interface PlanBuffer {
  readonly key: BufferKey;
  readonly bytes: number;
  readonly kind: "input" | "output" | "temp";
  /** For an output: the input it replaces (updated in place when the schedule allows). */
  readonly aliasOf?: BufferKey;
}

/** An aliased output that could not be written in place: write it aside, copy it over the input after the run. */
export interface CopyBack {
  readonly output: BufferKey;
  readonly input: BufferKey;
  /** Why: the first step that reads the input's old value after the output is written. */
  readonly readAfterWriteStep: number;
}

export interface MemoryPlan {
  /** Slot of every buffer; an in-place output shares its input's slot. */
  readonly slot: ReadonlyMap<BufferKey, number>;
  /** Bytes of each slot (the largest buffer it holds). */
  readonly slotBytes: readonly number[];
  /** Arena offset of each slot, 256-byte aligned. */
  readonly offsets: readonly number[];
  /** Arena offset of every buffer (its slot's offset). */
  readonly bufferOffset: ReadonlyMap<BufferKey, number>;
  /** Arena size with this plan: what the executable allocates (exe.stats.peakBytes). */
  readonly peakBytes: number;
  /** Arena size if every buffer had its own slot (no reuse, no in-place updates). */
  readonly totalBytes: number;
  /** The most bytes live at any one step: a lower bound no slot assignment can beat. */
  readonly maxLiveBytes: number;
  /** Outputs updated in place (sharing their input's slot). */
  readonly inPlace: readonly BufferKey[];
  /** Aliased outputs that need a copy back to their input after the run. */
  readonly copies: readonly CopyBack[];
  /** Temporaries placed in a slot an earlier temporary used. */
  readonly reusedTemps: number;
}

export const ARENA_ALIGNMENT_BYTES = 256;

const alignUp = (n: number, alignment: number): number => Math.ceil(n / alignment) * alignment;

/** [first step, last step] during which a buffer must hold its value. */
interface Lifetime {
  readonly start: number;
  readonly end: number;
}

function checkSchedule(steps: readonly PlanStep[], buffers: readonly PlanBuffer[]): Map<BufferKey, PlanBuffer> {
  const byKey = new Map<BufferKey, PlanBuffer>();
  for (const b of buffers) {
    if (byKey.has(b.key)) bug(`memory-plan: buffer ${b.key} listed twice`);
    if (!Number.isInteger(b.bytes) || b.bytes < 0) bug(`memory-plan: buffer ${b.key} has size ${b.bytes}`);
    byKey.set(b.key, b);
  }
  for (const b of buffers) {
    if (b.aliasOf === undefined) continue;
    if (b.kind !== "output") bug(`memory-plan: only outputs may alias an input (${b.key})`);
    const target = byKey.get(b.aliasOf);
    if (target?.kind !== "input") bug(`memory-plan: ${b.key} aliases ${b.aliasOf}, which is not an input`);
    if (target.bytes !== b.bytes) bug(`memory-plan: ${b.key} (${b.bytes} B) aliases ${b.aliasOf} (${target.bytes} B)`);
  }
  const written = new Set<BufferKey>();
  steps.forEach((s, i) => {
    for (const key of s.reads) {
      const b = byKey.get(key) ?? bug(`memory-plan: step ${i} reads unknown buffer ${key}`);
      // (a step may read what it writes itself: a wasm GEMM reads the panels its prologue packs)
      if (b.kind !== "input" && !written.has(key) && !s.writes.includes(key)) bug(`memory-plan: step ${i} reads ${key} before any step writes it`);
    }
    for (const key of s.writes) {
      const b = byKey.get(key) ?? bug(`memory-plan: step ${i} writes unknown buffer ${key}`);
      if (b.kind === "input") bug(`memory-plan: step ${i} writes input ${key} (updates go to an output that aliases it)`);
      written.add(key);
    }
  });
  return byKey;
}

/** Per buffer: the first step writing it and every step reading it, in one scan of the schedule. */
interface Accesses {
  readonly firstWrite: ReadonlyMap<BufferKey, number>;
  readonly readSteps: ReadonlyMap<BufferKey, readonly number[]>;
}

function scanAccesses(steps: readonly PlanStep[]): Accesses {
  const firstWrite = new Map<BufferKey, number>();
  const readSteps = new Map<BufferKey, number[]>();
  steps.forEach((s, i) => {
    for (const key of s.writes) if (!firstWrite.has(key)) firstWrite.set(key, i);
    for (const key of s.reads) {
      const list = readSteps.get(key) ?? [];
      if (list.at(-1) !== i) list.push(i);
      readSteps.set(key, list);
    }
  });
  return { firstWrite, readSteps };
}

const lastRead = (a: Accesses, key: BufferKey): number => a.readSteps.get(key)?.at(-1) ?? -1;

/** First step after `from` that reads `key`, or -1. */
const readAfter = (a: Accesses, key: BufferKey, from: number): number => a.readSteps.get(key)?.find((i) => i > from) ?? -1;

/** Assigns slots and arena offsets; see the module comment. */
export function planMemory(steps: readonly PlanStep[], buffers: readonly PlanBuffer[], alignmentBytes: number = ARENA_ALIGNMENT_BYTES): MemoryPlan {
  const byKey = checkSchedule(steps, buffers);
  const accesses = scanAccesses(steps);
  const slot = new Map<BufferKey, number>();
  const slotBytes: number[] = [];
  const newSlot = (key: BufferKey, bytes: number): number => {
    slotBytes.push(bytes);
    slot.set(key, slotBytes.length - 1);
    return slotBytes.length - 1;
  };
  const lastStep = Math.max(steps.length - 1, 0);
  const lifetimes = new Map<BufferKey, Lifetime>();

  // Inputs and outputs hold their values for the whole run.
  for (const b of buffers) if (b.kind === "input") newSlot(b.key, b.bytes);
  const inPlace: BufferKey[] = [];
  const copies: CopyBack[] = [];
  const temps: PlanBuffer[] = [];
  for (const b of buffers) {
    if (b.kind !== "output") continue;
    if (b.aliasOf === undefined) {
      newSlot(b.key, b.bytes);
      continue;
    }
    const written = accesses.firstWrite.get(b.key) ?? -1;
    const conflict = written < 0 ? -1 : readAfter(accesses, b.aliasOf, written);
    if (conflict < 0) {
      slot.set(b.key, slot.get(b.aliasOf)!);
      inPlace.push(b.key);
    } else {
      // Written aside from its first write to the end, then copied over the input.
      copies.push({ output: b.key, input: b.aliasOf, readAfterWriteStep: conflict });
      lifetimes.set(b.key, { start: written, end: lastStep });
      temps.push(b);
    }
  }
  for (const b of buffers) {
    if (b.kind !== "temp") continue;
    const start = accesses.firstWrite.get(b.key);
    if (start === undefined) continue; // never written, never read: needs no storage
    lifetimes.set(b.key, { start, end: Math.max(start, lastRead(accesses, b.key)) });
    temps.push(b);
  }

  const reusedTemps = assignTempSlots(temps, lifetimes, slot, slotBytes);
  const offsets: number[] = [];
  let arena = 0;
  for (const bytes of slotBytes) {
    offsets.push(arena);
    arena = alignUp(arena + bytes, alignmentBytes);
  }
  const bufferOffset = new Map([...slot].map(([key, s]) => [key, offsets[s]!] as const));
  const totalBytes = buffers.reduce((sum, b) => sum + alignUp(b.bytes, alignmentBytes), 0);
  return {
    slot,
    slotBytes,
    offsets,
    bufferOffset,
    peakBytes: arena,
    totalBytes,
    maxLiveBytes: maxLive(steps.length, buffers, byKey, lifetimes, new Set(inPlace)),
    inPlace,
    copies,
    reusedTemps,
  };
}

/**
 * Greedy best fit in order of first write (ties: buffer order): a temp takes the smallest
 * free slot that holds it, else the largest free slot (grown to fit), else a new slot. A
 * slot is free at step s when its last holder's last read is before s.
 */
function assignTempSlots(temps: readonly PlanBuffer[], lifetimes: ReadonlyMap<BufferKey, Lifetime>, slot: Map<BufferKey, number>, slotBytes: number[]): number {
  const ordered = temps.map((b, i) => ({ b, i, life: lifetimes.get(b.key)! })).sort((p, q) => p.life.start - q.life.start || p.i - q.i);
  const tempSlots: { slot: number; busyUntil: number }[] = [];
  let reused = 0;
  for (const { b, life } of ordered) {
    const free = tempSlots.filter((t) => t.busyUntil < life.start);
    const fits = free.filter((t) => slotBytes[t.slot]! >= b.bytes);
    const bySize = (p: { slot: number }, q: { slot: number }) => slotBytes[p.slot]! - slotBytes[q.slot]! || p.slot - q.slot;
    const chosen = fits.length > 0 ? fits.sort(bySize)[0] : free.sort(bySize).at(-1);
    if (chosen) {
      slotBytes[chosen.slot] = Math.max(slotBytes[chosen.slot]!, b.bytes);
      chosen.busyUntil = life.end;
      slot.set(b.key, chosen.slot);
      reused++;
    } else {
      slotBytes.push(b.bytes);
      slot.set(b.key, slotBytes.length - 1);
      tempSlots.push({ slot: slotBytes.length - 1, busyUntil: life.end });
    }
  }
  return reused;
}

function maxLive(
  stepCount: number,
  buffers: readonly PlanBuffer[],
  byKey: ReadonlyMap<BufferKey, PlanBuffer>,
  lifetimes: ReadonlyMap<BufferKey, Lifetime>,
  inPlace: ReadonlySet<BufferKey>,
): number {
  let always = 0;
  for (const b of buffers) if (b.kind === "input" || (b.kind === "output" && !lifetimes.has(b.key) && !inPlace.has(b.key))) always += b.bytes;
  // Sweep over steps: a lifetime adds its bytes at its start and removes them after its end.
  const delta = new Array<number>(stepCount + 1).fill(0);
  for (const [key, life] of lifetimes) {
    const bytes = byKey.get(key)!.bytes;
    delta[life.start]! += bytes;
    delta[life.end + 1]! -= bytes;
  }
  let peak = always;
  let live = always;
  for (let s = 0; s < stepCount; s++) {
    live += delta[s]!;
    peak = Math.max(peak, live);
  }
  return peak;
}
