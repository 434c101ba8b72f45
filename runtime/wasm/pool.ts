// A pool of worker_threads sharing the wasm target's memory. Every worker instantiates the
// same kernel modules on the same shared WebAssembly.Memory; a launch splits a section's
// outer loop into one contiguous chunk per thread, the calling thread taking chunk 0.
// Synchronization is a control block of i32 words at address 0 (Atomics.wait/notify), not
// messages: a launch costs a few microseconds, which keeps small kernels worth splitting.
// (Node only: a browser main thread may not Atomics.wait; there a dedicated worker drives.)

import { Worker } from "node:worker_threads";
import { HOST_MATH_SOURCE } from "./host-math.ts";

/** Control words: generation, kernel, section, extent, threads, done, grain, quit, failed. */
const GEN = 0;
const KERNEL = 1;
const SECTION = 2;
const EXTENT = 3;
const THREADS = 4;
const DONE = 5;
const GRAIN = 6;
const QUIT = 7;
const FAILED = 8;

const WORKER_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
const { memory, modules, index } = workerData;
const rt = ${HOST_MATH_SOURCE};
const ctl = new Int32Array(memory.buffer, 0, 16);
const fns = modules.map((m) => {
  const inst = new WebAssembly.Instance(m, { env: { memory }, rt });
  const n = inst.exports.n.value;
  return Array.from({ length: n }, (_, j) => inst.exports["s" + j]);
});
let gen = Atomics.load(ctl, ${GEN}); // read before "ready": the first launch may follow at once
parentPort.postMessage("ready");
for (;;) {
  Atomics.wait(ctl, ${GEN}, gen);
  gen = Atomics.load(ctl, ${GEN});
  if (Atomics.load(ctl, ${QUIT}) === 1) break;
  const threads = ctl[${THREADS}];
  if (index < threads) {
    const extent = ctl[${EXTENT}], grain = ctl[${GRAIN}];
    const chunk = Math.ceil(Math.ceil(extent / threads) / grain) * grain;
    const lo = Math.min(extent, index * chunk), hi = Math.min(extent, lo + chunk);
    try {
      if (lo < hi) fns[ctl[${KERNEL}]][ctl[${SECTION}]](lo, hi, index);
    } catch (e) {
      Atomics.store(ctl, ${FAILED}, 1);
    }
  }
  if (Atomics.add(ctl, ${DONE}, 1) + 1 === ${"${WORKERS}"}) Atomics.notify(ctl, ${DONE});
}
`;

export class WorkerPool {
  private readonly ctl: Int32Array;
  private closed = false;

  private constructor(
    private readonly workers: readonly Worker[],
    memory: WebAssembly.Memory,
  ) {
    this.ctl = new Int32Array(memory.buffer, 0, 16);
  }

  /** Starts `threads - 1` workers (the caller is thread 0) and waits until each has instantiated the modules. */
  static async create(memory: WebAssembly.Memory, modules: readonly WebAssembly.Module[], threads: number): Promise<WorkerPool> {
    const source = WORKER_SOURCE.replace("${WORKERS}", String(threads - 1));
    const workers: Worker[] = [];
    const ready: Promise<void>[] = [];
    for (let i = 1; i < threads; i++) {
      const w = new Worker(source, { eval: true, workerData: { memory, modules, index: i } });
      ready.push(
        new Promise((resolve, reject) => {
          w.once("message", () => resolve());
          w.once("error", reject);
        }),
      );
      workers.push(w);
    }
    await Promise.all(ready);
    for (const w of workers) w.unref();
    return new WorkerPool(workers, memory);
  }

  get threads(): number {
    return this.workers.length + 1;
  }

  /** Runs section `section` of kernel `kernel` over [0, extent) on every thread; returns when all are done. */
  launch(kernel: number, section: number, extent: number, grain: number, own: (lo: number, hi: number) => void): void {
    const ctl = this.ctl;
    const threads = this.threads;
    ctl[KERNEL] = kernel;
    ctl[SECTION] = section;
    ctl[EXTENT] = extent;
    ctl[THREADS] = threads;
    ctl[GRAIN] = grain;
    Atomics.store(ctl, DONE, 0);
    Atomics.add(ctl, GEN, 1);
    Atomics.notify(ctl, GEN);
    const chunk = Math.ceil(Math.ceil(extent / threads) / grain) * grain;
    let workerFailed = false;
    try {
      own(0, Math.min(extent, chunk));
    } finally {
      // Every worker finishes this launch before the caller sees a result or an error, and
      // the failure flag is cleared either way (the next launch starts clean).
      const workers = this.workers.length;
      for (;;) {
        const done = Atomics.load(ctl, DONE);
        if (done >= workers) break;
        Atomics.wait(ctl, DONE, done);
      }
      workerFailed = Atomics.exchange(ctl, FAILED, 0) !== 0;
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
