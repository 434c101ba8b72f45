// A pool of worker_threads sharing the wasm target's memory. Every worker instantiates the
// same kernel modules on the same shared WebAssembly.Memory; a launch splits a section's
// outer loop into chunks (about CHUNKS_PER_THREAD per thread): thread t runs chunk t first
// (the calling thread chunk 0), then every thread claims the next from a shared counter until
// none is left, so a thread the OS deschedules on a busy machine holds up one chunk, not a
// whole share of the launch.
// Synchronization is a control block of i32 words at address 0 (Atomics.wait/notify), not
// messages (pools sharing one model memory each have their own block, wasm-layout.ts): a launch costs a few microseconds, which keeps small kernels worth splitting.
// Node uses worker_threads (imported dynamically); a browser uses Web Workers, which needs a
// cross-origin-isolated page and a caller that is itself a worker (a page's main thread may
// not Atomics.wait).

import { HOST_MATH_SOURCE } from "./host-math.ts";
import { WASM_ENGINE_FLAGS } from "./engine.ts";

/** Control words: generation, kernel, section, extent, threads, done, (6 unused), quit, failed. */
const GEN = 0;
const KERNEL = 1;
const SECTION = 2;
const EXTENT = 3;
const THREADS = 4;
const DONE = 5;
const QUIT = 7;
const FAILED = 8;
/** 1 while a profiled launch runs: each thread writes its chunks' milliseconds into the busy array. */
const PROFILE = 9;
/** The start of the next unclaimed chunk (Atomics.add claims one), and the chunk length. */
const NEXT = 10;
const CHUNK = 11;
/**
 * Chunks per thread: enough that a thread stalled by other processes leaves little for the
 * rest to wait on, few enough that a claim (one atomic add) and a call stay negligible.
 */
const CHUNKS_PER_THREAD = 8;

/** The loop every worker runs, as a function of its start message; `ready` reports instantiation. */
const WORKER_BODY = `(({ memory, modules, index, busy, ctlAt }, ready) => {
const rt = ${HOST_MATH_SOURCE};
const ctl = new Int32Array(memory.buffer, ctlAt, 16);
const busyMs = new Float64Array(busy);
const fns = modules.map((m) => {
  const inst = new WebAssembly.Instance(m, { env: { memory }, rt });
  const n = inst.exports.n.value;
  return Array.from({ length: n }, (_, j) => inst.exports["s" + j]);
});
let gen = Atomics.load(ctl, ${GEN}); // read before "ready": the first launch may follow at once
ready();
for (;;) {
  Atomics.wait(ctl, ${GEN}, gen);
  gen = Atomics.load(ctl, ${GEN});
  if (Atomics.load(ctl, ${QUIT}) === 1) break;
  const threads = ctl[${THREADS}];
  if (index < threads) {
    const extent = ctl[${EXTENT}], chunk = ctl[${CHUNK}];
    const fn = fns[ctl[${KERNEL}]][ctl[${SECTION}]];
    const timed = ctl[${PROFILE}] === 1;
    const t0 = timed ? performance.now() : 0;
    try {
      for (let lo = index * chunk; lo < extent; lo = Atomics.add(ctl, ${NEXT}, chunk)) fn(lo, Math.min(extent, lo + chunk), index);
    } catch (e) {
      Atomics.store(ctl, ${FAILED}, 1);
    }
    if (timed) busyMs[index] = performance.now() - t0;
  }
  if (Atomics.add(ctl, ${DONE}, 1) + 1 === ${"${WORKERS}"}) Atomics.notify(ctl, ${DONE});
}
})`;

// V8 flags are process-wide and the main thread set them (engine.ts) before compiling; setting
// them here too keeps a worker right in hosts where flags are per isolate.
const NODE_WORKER_SOURCE = `const { parentPort, workerData } = require("node:worker_threads");
try { for (const f of ${JSON.stringify(WASM_ENGINE_FLAGS)}) if (f !== "--no-liftoff" || process.env.KILN_WASM_LIFTOFF !== "1") require("node:v8").setFlagsFromString(f); } catch {}
${WORKER_BODY}(workerData, () => parentPort.postMessage("ready"));`;

const WEB_WORKER_SOURCE = `self.onmessage = (e) => ${WORKER_BODY}(e.data, () => self.postMessage("ready"));`;

/** One started worker, whichever API made it. */
interface PoolWorker {
  readonly ready: Promise<void>;
  // biome-ignore lint/suspicious/noConfusingVoidType: Node's Worker returns a promise, the browser's returns nothing
  terminate(): Promise<unknown> | void;
}

const isNode = (): boolean => typeof globalThis.process?.versions?.node === "string";

async function startWorkers(
  memory: WebAssembly.Memory,
  modules: readonly WebAssembly.Module[],
  threads: number,
  busy: SharedArrayBuffer,
  ctlAt: number,
): Promise<PoolWorker[]> {
  const workers = String(threads - 1);
  const started: PoolWorker[] = [];
  if (isNode()) {
    const { Worker } = await import("node:worker_threads");
    const source = NODE_WORKER_SOURCE.replace("${WORKERS}", workers);
    for (let i = 1; i < threads; i++) {
      const w = new Worker(source, { eval: true, workerData: { memory, modules, index: i, busy, ctlAt } });
      const ready = new Promise<void>((resolve, reject) => {
        w.once("message", () => resolve());
        w.once("error", reject);
      });
      started.push({ ready: ready.then(() => void w.unref()), terminate: () => w.terminate() });
    }
    return started;
  }
  if (typeof Worker === "undefined" || globalThis.crossOriginIsolated !== true)
    throw new Error(`${threads} wasm threads need Node's worker_threads or a cross-origin-isolated page's Web Workers; run with threads: 1`);
  const url = URL.createObjectURL(new Blob([WEB_WORKER_SOURCE.replace("${WORKERS}", workers)], { type: "text/javascript" }));
  for (let i = 1; i < threads; i++) {
    const w = new Worker(url);
    const ready = new Promise<void>((resolve, reject) => {
      w.onmessage = () => resolve();
      w.onerror = (e) => reject(new Error(`wasm worker ${i} failed to start: ${e.message}`));
    });
    w.postMessage({ memory, modules, index: i, busy, ctlAt });
    started.push({ ready, terminate: () => w.terminate() });
  }
  return started;
}

export class WorkerPool {
  private readonly ctl: Int32Array;
  private closed = false;
  /** Each thread's milliseconds in the last profiled launch (thread 0: the caller). */
  private readonly busyMs: Float64Array;

  private constructor(
    private readonly workers: readonly PoolWorker[],
    memory: WebAssembly.Memory,
    busy: SharedArrayBuffer,
    ctlAt: number,
  ) {
    this.ctl = new Int32Array(memory.buffer, ctlAt, 16);
    this.busyMs = new Float64Array(busy);
  }

  /**
   * Starts `threads - 1` workers (the caller is thread 0) and waits until each has instantiated
   * the modules; the pool's control block is at byte `ctlAt` (default 0).
   */
  static async create(memory: WebAssembly.Memory, modules: readonly WebAssembly.Module[], threads: number, ctlAt = 0): Promise<WorkerPool> {
    const busy = new SharedArrayBuffer(8 * threads);
    const workers = await startWorkers(memory, modules, threads, busy, ctlAt);
    await Promise.all(workers.map((w) => w.ready));
    return new WorkerPool(workers, memory, busy, ctlAt);
  }

  get threads(): number {
    return this.workers.length + 1;
  }

  /**
   * Runs section `section` of kernel `kernel` over [0, extent) on every thread; returns when all
   * are done. With `threadMs` (exe.profile), every thread times its own chunk into it (index:
   * thread, 0 the caller); without, no thread reads a clock.
   */
  launch(kernel: number, section: number, extent: number, grain: number, own: (lo: number, hi: number) => void, threadMs?: number[]): void {
    const ctl = this.ctl;
    const threads = this.threads;
    if (threadMs) ctl[PROFILE] = 1;
    ctl[KERNEL] = kernel;
    ctl[SECTION] = section;
    ctl[EXTENT] = extent;
    ctl[THREADS] = threads;
    const chunk = Math.ceil(Math.ceil(extent / (threads * CHUNKS_PER_THREAD)) / grain) * grain;
    ctl[CHUNK] = chunk;
    Atomics.store(ctl, NEXT, threads * chunk);
    Atomics.store(ctl, DONE, 0);
    Atomics.add(ctl, GEN, 1);
    Atomics.notify(ctl, GEN);
    let workerFailed = false;
    const t0 = threadMs ? performance.now() : 0;
    try {
      for (let lo = 0; lo < extent; lo = Atomics.add(ctl, NEXT, chunk)) own(lo, Math.min(extent, lo + chunk));
    } finally {
      if (threadMs) this.busyMs[0] = performance.now() - t0;
      // Every worker finishes this launch before the caller sees a result or an error, and
      // the failure flag is cleared either way (the next launch starts clean).
      const workers = this.workers.length;
      for (;;) {
        const done = Atomics.load(ctl, DONE);
        if (done >= workers) break;
        Atomics.wait(ctl, DONE, done);
      }
      workerFailed = Atomics.exchange(ctl, FAILED, 0) !== 0;
      if (threadMs) {
        ctl[PROFILE] = 0;
        for (let t = 0; t < threads; t++) threadMs[t] = this.busyMs[t]!;
      }
    }
    if (workerFailed) throw new Error(`wasm kernel ${kernel}, section ${section}: a worker thread trapped`);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    Atomics.store(this.ctl, QUIT, 1);
    Atomics.add(this.ctl, GEN, 1);
    Atomics.notify(this.ctl, GEN);
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
