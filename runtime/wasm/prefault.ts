// Pre-faulting: a wasm runner maps the pages of its memory, and of the first run's fresh output
// arrays, when it is made, so that its first run costs what later ones do. A new
// WebAssembly.Memory, like a new ArrayBuffer, is reserved but not backed: the OS maps each page
// at its first write, which on the 2-core VM of issue 14 costs ~2 µs a 4 KiB page (~0.5 ms a
// MiB): a 16M-element chain's first run paid ~130 ms of faults on 256 MiB (its inputs written,
// its output computed, then copied out). The buffer plan is known when the runner is made, so
// exactly the bytes it needs are touched there (a small program's few MiB cost a millisecond
// or two; a symbolic batch's program, sized for its largest batch, gets nothing: run-artifact.ts). Over a shared memory an idle worker of the pool (runtime/wasm/pool.ts) takes chunks
// of the memory from a shared counter while the calling thread makes the arrays and takes
// chunks too; the caller never waits for a worker that has not started (it takes every chunk
// left), and the workers' touches are atomic no-op writes (`Atomics.compareExchange(b, i, 0, 0)`:
// x86's lock cmpxchg writes even when it changes nothing, so a page faults once; `Atomics.or(…, 0)`
// loads first and faulted twice, ~1.8× the CPU), harmless even if one came after a run had begun.

/** The stride of a touch: the smallest page size of the platforms wasm runs on. */
export const TOUCH_STRIDE = 4096;

/** Bytes of a shared memory taken per claim (256 pages: about half a millisecond of faults here). */
export const PREFAULT_CHUNK_BYTES = 1 << 20;

/** Control words of a shared pre-fault: the next chunk to claim, chunks finished. */
const NEXT = 0;
const DONE = 1;

/**
 * Writes a zero at each TOUCH_STRIDE-aligned byte of [from, to) of `bytes`, which hold zeros
 * there and which no other thread uses yet (a fresh memory or array): the pages get mapped.
 */
export function touchPages(bytes: Uint8Array, from: number, to: number): void {
  const end = Math.min(to, bytes.length);
  for (let at = Math.ceil(from / TOUCH_STRIDE) * TOUCH_STRIDE; at < end; at += TOUCH_STRIDE) bytes[at] = 0;
}

/** A fresh ArrayBuffer of `bytes` with every page mapped. */
export function touchedArrayBuffer(bytes: number): ArrayBuffer {
  const b = new ArrayBuffer(bytes);
  touchPages(new Uint8Array(b), 0, bytes);
  return b;
}

/**
 * The chunk loop of a shared pre-fault, as source for the pool's workers (they import nothing):
 * `(bytes: Uint8Array over the shared memory, from, to, ctl: Int32Array) => void`.
 */
export const SHARED_TOUCH_SOURCE = `(bytes, from, to, ctl) => {
  const chunks = Math.ceil((to - from) / ${PREFAULT_CHUNK_BYTES});
  for (;;) {
    const c = Atomics.add(ctl, ${NEXT}, 1);
    if (c >= chunks) return;
    const end = Math.min(to, from + (c + 1) * ${PREFAULT_CHUNK_BYTES});
    for (let at = from + c * ${PREFAULT_CHUNK_BYTES}; at < end; at += ${TOUCH_STRIDE}) Atomics.compareExchange(bytes, at, 0, 0);
    Atomics.add(ctl, ${DONE}, 1);
    Atomics.notify(ctl, ${DONE});
  }
}`;

/** SHARED_TOUCH_SOURCE's loop on the calling thread (the same steps: test/runtime/wasm-prefault.test.ts runs both). */
export function sharedTouch(bytes: Uint8Array, from: number, to: number, ctl: Int32Array): void {
  const chunks = Math.ceil((to - from) / PREFAULT_CHUNK_BYTES);
  for (;;) {
    const c = Atomics.add(ctl, NEXT, 1);
    if (c >= chunks) return;
    const end = Math.min(to, from + (c + 1) * PREFAULT_CHUNK_BYTES);
    for (let at = from + c * PREFAULT_CHUNK_BYTES; at < end; at += TOUCH_STRIDE) Atomics.compareExchange(bytes, at, 0, 0);
    Atomics.add(ctl, DONE, 1);
    Atomics.notify(ctl, DONE);
  }
}

/** How long the caller waits for a worker's chunk in progress before going on without it (touching is only a hint). */
const HELPER_PATIENCE_MS = 200;

/**
 * Maps the pages of shared memory `buffer`'s bytes [from, to) (from a multiple of TOUCH_STRIDE),
 * taking chunks from `control` (8 bytes, zeros, that helper threads given the same range take
 * chunks from too, as they get to it). Returns when every chunk is done, or once a helper's chunk
 * in progress is long overdue.
 */
export function prefaultShared(buffer: SharedArrayBuffer, from: number, to: number, control: SharedArrayBuffer): void {
  if (to <= from) return;
  const ctl = new Int32Array(control);
  sharedTouch(new Uint8Array(buffer), from, to, ctl);
  const chunks = Math.ceil((to - from) / PREFAULT_CHUNK_BYTES);
  let done = Atomics.load(ctl, DONE);
  while (done < chunks) {
    if (Atomics.wait(ctl, DONE, done, HELPER_PATIENCE_MS) === "timed-out") return;
    done = Atomics.load(ctl, DONE);
  }
}
