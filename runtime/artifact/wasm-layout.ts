// Where everything lives in the wasm target's one shared linear memory: a control block for
// the worker pool at address 0, then the memory plan's slots, each 64-byte aligned (a cache
// line, and a v128 access never straddles two). Codegen bakes these addresses into the
// kernels; the runtime copies tensors in and out at the same addresses.

export const CONTROL_BYTES = 256;
const SLOT_ALIGN = 64;
export const PAGE_BYTES = 65536;

export interface MemoryLayout {
  /** Byte address of each memory slot. */
  readonly slotOffsets: readonly number[];
  readonly totalBytes: number;
  readonly pages: number;
}

export function layoutMemory(slotBytes: readonly number[]): MemoryLayout {
  const slotOffsets: number[] = [];
  let at = CONTROL_BYTES;
  for (const bytes of slotBytes) {
    at = Math.ceil(at / SLOT_ALIGN) * SLOT_ALIGN;
    slotOffsets.push(at);
    at += bytes;
  }
  // Slack past the end: a v128 load near a buffer's end may read up to 12 bytes beyond it.
  const totalBytes = at + SLOT_ALIGN;
  return { slotOffsets, totalBytes, pages: Math.max(1, Math.ceil(totalBytes / PAGE_BYTES)) };
}
