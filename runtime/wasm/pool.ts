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
// Starting a worker costs tens of milliseconds (a Node worker boots a whole environment), so
// a pool is usable before its workers are: `WorkerPool.start` returns at once, `ready` turns
// true when every worker has instantiated the modules, and the runner launches on the calling
// thread alone until then (each iteration of a split loop computes the same values on any
// thread, so results do not depend on it). `prestartWorkers` boots workers before the modules
// exist (while the compiler runs); a pool takes those first.

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
 * Workers that have instantiated the modules: the caller reads it at each launch, so a pool
 * joins the first launch after its workers are up, with no wait for their "ready" messages
 * (the event loop does not turn inside a run, nor between a compile and its first run).
 */
const READY = 12;
/**
 * Chunks per thread: enough that a thread stalled by other processes leaves little for the
 * rest to wait on, few enough that a claim (one atomic add) and a call stay negligible.
 */
const CHUNKS_PER_THREAD = 8;

/** What a worker needs to join a pool: its first (and only) message. */
interface StartData {
  readonly memory: WebAssembly.Memory;
  readonly modules: readonly WebAssembly.Module[];
  readonly index: number;
  /** Workers in the pool (the caller not counted): the last to finish a launch wakes the caller. */
  readonly workers: number;
  readonly busy: SharedArrayBuffer;
  readonly ctlAt: number;
}

/** The loop every worker runs, as a function of its start message; `ready` reports instantiation. */
const WORKER_BODY = `(({ memory, modules, index, workers, busy, ctlAt }, ready) => {
const rt = ${HOST_MATH_SOURCE};
const ctl = new Int32Array(memory.buffer, ctlAt, 16);
const busyMs = new Float64Array(busy);
const fns = modules.map((m) => {
  const inst = new WebAssembly.Instance(m, { env: { memory }, rt });
  const n = inst.exports.n.value;
  return Array.from({ length: n }, (_, j) => inst.exports["s" + j]);
});
let gen = Atomics.load(ctl, ${GEN}); // read before "ready": the first launch may follow at once
Atomics.add(ctl, ${READY}, 1);
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
  if (Atomics.add(ctl, ${DONE}, 1) + 1 === workers) Atomics.notify(ctl, ${DONE});
}
})`;

// V8 flags are process-wide and the main thread set them (engine.ts) before compiling; setting
// them here too keeps a worker right in hosts where flags are per isolate.
const NODE_WORKER_SOURCE = `const { parentPort } = require("node:worker_threads");
try { for (const f of ${JSON.stringify(WASM_ENGINE_FLAGS)}) if (f !== "--no-liftoff" || process.env.KILN_WASM_LIFTOFF !== "1") require("node:v8").setFlagsFromString(f); } catch {}
parentPort.once("message", (data) => ${WORKER_BODY}(data, () => parentPort.postMessage("ready")));`;

const WEB_WORKER_SOURCE = `self.onmessage = (e) => ${WORKER_BODY}(e.data, () => self.postMessage("ready"));`;

/** One started worker, whichever API made it, waiting for its start message. */
interface PoolWorker {
  /** Sends the start message; resolves when the worker has instantiated the modules. */
  join(data: StartData): Promise<void>;
  // biome-ignore lint/suspicious/noConfusingVoidType: Node's Worker returns a promise, the browser's returns nothing
  terminate(): Promise<unknown> | void;
}

const isNode = (): boolean => typeof globalThis.process?.versions?.node === "string";

type NodeWorkerClass = typeof import("node:worker_threads").Worker;
let nodeWorkerClass: NodeWorkerClass | undefined;

async function spawnWorker(label: number): Promise<PoolWorker> {
  if (isNode()) {
    nodeWorkerClass ??= (await import("node:worker_threads")).Worker;
    const w = new nodeWorkerClass(NODE_WORKER_SOURCE, { eval: true });
    // Idle (prestarted) workers never keep the process alive; a joining one does until it is ready.
    w.unref();
    let failure: Error | undefined;
    let stopping = false;
    w.once("error", (e) => {
      failure = e;
    });
    return {
      join: (data) => {
        if (failure) return Promise.reject(failure);
        w.ref();
        const ready = new Promise<void>((resolve, reject) => {
          w.once("message", () => resolve());
          w.once("error", reject);
          w.once("exit", (code) => reject(new Error(`wasm worker ${label} exited (code ${code}) before it was ready`)));
        });
        w.postMessage(data);
        return ready.finally(() => {
          if (!stopping) w.unref();
        });
      },
      // Held until it has exited (and never let go by a join that settles meanwhile): an unref'd
      // worker's exit does not keep the event loop alive, so a terminate() awaited last (a
      // model's close at the end of a script) was left pending and Node exited under it (code
      // 13, an unsettled top-level await), running nothing after the close.
      terminate: () => {
        stopping = true;
        w.ref();
        return w.terminate();
      },
    };
  }
  if (typeof Worker === "undefined" || globalThis.crossOriginIsolated !== true)
    throw new Error("wasm threads need Node's worker_threads or a cross-origin-isolated page's Web Workers; run with threads: 1");
  const url = URL.createObjectURL(new Blob([WEB_WORKER_SOURCE], { type: "text/javascript" }));
  const w = new Worker(url);
  return {
    join: (data) => {
      const ready = new Promise<void>((resolve, reject) => {
        w.onmessage = () => resolve();
        w.onerror = (e) => reject(new Error(`wasm worker ${label} failed to start: ${e.message}`));
      });
      w.postMessage(data);
      return ready;
    },
    terminate: () => w.terminate(),
  };
}

/** Workers booted ahead of a pool (prestartWorkers), taken first by the next pool. */
const idle: PoolWorker[] = [];

/**
 * Boots `count` workers (beyond those already idle) before their pool exists, so their start
 * overlaps the compile: the wasm target calls it as a compile for more than one thread begins.
 * Idle workers never keep the process alive.
 */
export async function prestartWorkers(count: number): Promise<void> {
  while (idle.length < count) idle.push(await spawnWorker(idle.length + 1));
}

/** Workers booted by prestartWorkers and not yet taken by a pool. */
export const idleWorkerCount = (): number => idle.length;

/** Terminates the idle workers (a compile that failed after prestartWorkers). */
export async function stopIdleWorkers(): Promise<void> {
  await Promise.all(idle.splice(0).map((w) => w.terminate()));
}

export class WorkerPool {
  private readonly ctl: Int32Array;
  private closed = false;
  private isReady = false;
  private failure: Error | undefined;
  private readonly whenJoined: Promise<void>;
  /** Each thread's milliseconds in the last profiled launch (thread 0: the caller). */
  private readonly busyMs: Float64Array;

  private constructor(
    private readonly workers: readonly PoolWorker[],
    memory: WebAssembly.Memory,
    modules: readonly WebAssembly.Module[],
    busy: SharedArrayBuffer,
    ctlAt: number,
  ) {
    this.ctl = new Int32Array(memory.buffer, ctlAt, 16);
    this.busyMs = new Float64Array(busy);
    Atomics.store(this.ctl, READY, 0);
    const joined = workers.map((w, i) => w.join({ memory, modules, index: i + 1, workers: workers.length, busy, ctlAt }));
    this.whenJoined = Promise.all(joined).then(
      () => {
        this.isReady = true;
      },
      (e: unknown) => {
        this.failure = e instanceof Error ? e : new Error(String(e));
      },
    );
  }

  /**
   * Starts `threads - 1` workers (the caller is thread 0; prestarted ones first) on the
   * pool's control block at byte `ctlAt` (default 0), and returns without waiting for them:
   * launch only once `ready` (whenReady waits for it).
   */
  static async start(memory: WebAssembly.Memory, modules: readonly WebAssembly.Module[], threads: number, ctlAt = 0): Promise<WorkerPool> {
    const busy = new SharedArrayBuffer(8 * threads);
    const workers = idle.splice(0, threads - 1);
    while (workers.length < threads - 1) workers.push(await spawnWorker(workers.length + 1));
    return new WorkerPool(workers, memory, modules, busy, ctlAt);
  }

  /** `start`, then waits until every worker is ready. */
  static async create(memory: WebAssembly.Memory, modules: readonly WebAssembly.Module[], threads: number, ctlAt = 0): Promise<WorkerPool> {
    const pool = await WorkerPool.start(memory, modules, threads, ctlAt);
    await pool.whenReady();
    return pool;
  }

  /** Whether every worker has instantiated the modules (launch needs it); throws if one failed to start. */
  get ready(): boolean {
    if (this.failure) throw new Error(`wasm worker threads failed to start: ${this.failure.message}`);
    if (!this.isReady && !this.closed && Atomics.load(this.ctl, READY) === this.workers.length) this.isReady = true;
    return this.isReady;
  }

  /** Resolves when `ready`; rejects when a worker failed to start. */
  async whenReady(): Promise<void> {
    await this.whenJoined;
    if (this.failure) throw new Error(`wasm worker threads failed to start: ${this.failure.message}`);
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
