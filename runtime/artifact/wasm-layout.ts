// Where everything lives in the wasm target's one linear memory: a control block for the
// worker pool at address 0, then the memory plan's slots, each 64-byte aligned (a cache
// line, and a v128 access never straddles two). Codegen bakes these addresses into the
// kernels; the runtime copies tensors in and out at the same addresses.
//
// The programs of one k.compileModel share one memory: a state region right after the control
// block holds more control blocks (one per runner's worker pool) and every state entry of the
// model at the same address in every program (sharedStateRegion); each program's own slots
// (inputs that are not state, outputs, temporaries) follow the region. Programs run one at a
// time, so their own slots may overlap; the state never moves and no program switch copies it.

export const CONTROL_BYTES = 256;
const SLOT_ALIGN = 64;
export const PAGE_BYTES = 65536;
/** Bytes of one worker pool's control block (16 i32 words). */
export const POOL_CONTROL_BYTES = 64;
/** Worker pools that can share one model memory, each with its own control block (the first at address 0). */
export const SHARED_POOLS = 16;

export interface MemoryLayout {
  /** Byte address of each memory slot. */
  readonly slotOffsets: readonly number[];
  readonly totalBytes: number;
  readonly pages: number;
}

/**
 * The state entries' fixed addresses in a model's shared memory: the same for every program of
 * the model, computed from every entry's name and bytes in declaration order.
 */
export interface WasmStateRegion {
  /** Address of each state entry, by name. */
  readonly offsets: Readonly<Record<string, number>>;
  /** Bytes of each state entry, by name. */
  readonly bytes: Readonly<Record<string, number>>;
  /** First address after the region: where a program's own slots begin. */
  readonly end: number;
}

/** Lays out `entries` (name, bytes) after the control blocks of SHARED_POOLS pools. */
export function sharedStateRegion(entries: Iterable<readonly [string, number]>): WasmStateRegion {
  const offsets: Record<string, number> = {};
  const bytes: Record<string, number> = {};
  let at = Math.max(CONTROL_BYTES, SHARED_POOLS * POOL_CONTROL_BYTES);
  for (const [name, size] of entries) {
    at = Math.ceil(at / SLOT_ALIGN) * SLOT_ALIGN;
    offsets[name] = at;
    bytes[name] = size;
    at += size;
  }
  return { offsets, bytes, end: Math.ceil(at / SLOT_ALIGN) * SLOT_ALIGN };
}

/** Slots at fixed addresses (a model's state entries) and where the other slots start. */
export interface PinnedSlots {
  readonly at: ReadonlyMap<number, number>;
  readonly end: number;
}

export function layoutMemory(slotBytes: readonly number[], pinned?: PinnedSlots): MemoryLayout {
  const slotOffsets: number[] = [];
  let at = pinned ? Math.max(CONTROL_BYTES, pinned.end) : CONTROL_BYTES;
  slotBytes.forEach((bytes, slot) => {
    const fixed = pinned?.at.get(slot);
    if (fixed !== undefined) {
      slotOffsets.push(fixed);
      return;
    }
    at = Math.ceil(at / SLOT_ALIGN) * SLOT_ALIGN;
    slotOffsets.push(at);
    at += bytes;
  });
  // Slack past the end: a v128 load near a buffer's end may read up to 12 bytes beyond it.
  const totalBytes = at + SLOT_ALIGN;
  return { slotOffsets, totalBytes, pages: Math.max(1, Math.ceil(totalBytes / PAGE_BYTES)) };
}

/** The pinned slots of a program in a state region: each input named in it, at the region's address for it. */
export function pinnedSlots(
  region: WasmStateRegion,
  inputs: readonly { readonly name: string; readonly slot: number; readonly bytes: number }[],
  what: string,
): PinnedSlots {
  const at = new Map<number, number>();
  for (const io of inputs) {
    const offset = region.offsets[io.name];
    if (offset === undefined) continue;
    if (region.bytes[io.name] !== io.bytes)
      throw new Error(`${what}: state '${io.name}' has ${io.bytes} bytes here, ${region.bytes[io.name]} in the model's memory`);
    if (at.has(io.slot)) throw new Error(`${what}: state '${io.name}' shares slot ${io.slot} with another state entry`);
    at.set(io.slot, offset);
  }
  return { at, end: region.end };
}

/** The layout of an artifact's memory: its recorded slot addresses where it has them, else layoutMemory's. */
export function artifactLayout(memory: { readonly slotBytes: readonly number[]; readonly slotOffsets?: readonly number[] }): MemoryLayout {
  const fixed = memory.slotOffsets;
  if (fixed === undefined) return layoutMemory(memory.slotBytes);
  if (fixed.length !== memory.slotBytes.length) throw new Error(`memory: ${fixed.length} slot addresses for ${memory.slotBytes.length} slots`);
  const end = memory.slotBytes.reduce((top, bytes, slot) => Math.max(top, fixed[slot]! + bytes), CONTROL_BYTES);
  const totalBytes = end + SLOT_ALIGN;
  return { slotOffsets: fixed, totalBytes, pages: Math.max(1, Math.ceil(totalBytes / PAGE_BYTES)) };
}
