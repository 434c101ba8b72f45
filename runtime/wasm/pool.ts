// A pool of worker_threads sharing the wasm target's memory. Every worker instantiates the
// same kernel modules on the same shared WebAssembly.Memory; a launch splits a section's
// outer loop into chunks (about CHUNKS_PER_THREAD per thread), every one claimed from a shared
// counter tagged with the launch (none set aside for a thread), and the caller waits for the
// claimed chunks to finish, not for every worker to show up: a worker the OS has not run yet
// holds up nothing (the caller takes its chunks), and one descheduled inside a chunk holds up
// that chunk, not a whole share of the launch.
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
// A worker that fails to start leaves the pool on the calling thread (one warning, code
// KILN_WASM_THREADS). A worker that dies once ready (a crash, an exit, a terminate from
// outside) cannot be seen from a launch — the caller is blocked in Atomics.wait, so no 'exit'
// event arrives — so the caller waits in slices and gives up on a worker that has not finished
// a launch long after the caller finished its own chunks (WasmThreadError); the pool is then
// broken and every later launch throws the same error at once. An exit seen between runs
// breaks it the same way, with no wait.

import { HOST_MATH_SOURCE } from "./host-math.ts";
import { setBootGate, wasmEngineFlags, type EngineProcess } from "./engine.ts";
import { SHARED_TOUCH_SOURCE } from "./prefault.ts";

/** Control words: generation, kernel, section, extent, threads, done, (6 unused), quit, failed, and those below. */
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
/**
 * The next unclaimed chunk, tagged with its launch: (generation mod 2^TAG_BITS) << CHUNK_BITS |
 * chunk index; a thread claims one by compareExchange of the tag it read, so a worker waking
 * late never claims a chunk of a launch it did not read the parameters of. Then the chunk length.
 */
const NEXT = 10;
const CHUNK = 11;
/** Chunks in the launch (DONE counts those finished: the caller waits for claimed chunks, never for an idle worker). */
const CHUNKS = 14;
/** Test hook (WorkerPool.stallWorkers): 1 makes the next launch's first claim a worker's, which then never finishes it. */
const STALL = 15;
/**
 * Workers that have instantiated the modules: the caller reads it at each launch, so a pool
 * joins the first launch after its workers are up, with no wait for their "ready" messages
 * (the event loop does not turn inside a run, nor between a compile and its first run).
 */
const READY = 12;
/** Polls of GEN a worker makes after finishing a launch before it sleeps (launchTuning.spinPolls, set at each launch). */
const SPIN = 13;
/**
 * Chunks per thread: enough that a thread stalled by other processes leaves little for the
 * rest to wait on, few enough that a claim (one atomic add) and a call stay negligible.
 */
const CHUNKS_PER_THREAD = 8;
/** Bits of NEXT holding the chunk index (at most 2^CHUNK_BITS − 1 chunks a launch), and of the generation's tag above them. */
const CHUNK_BITS = 10;
const TAG_MASK = (1 << (31 - CHUNK_BITS)) - 1;

/** What a worker needs to join a pool: its first (and only) message. */
interface StartData {
  readonly memory: WebAssembly.Memory;
  readonly modules: readonly WebAssembly.Module[];
  readonly index: number;
  /** Workers in the pool (the caller not counted): the last to finish a launch wakes the caller. */
  readonly workers: number;
  readonly busy: SharedArrayBuffer;
  /** Per thread: the last launch generation it finished (the caller names a worker that never does). */
  readonly finished: SharedArrayBuffer;
  readonly ctlAt: number;
}

/**
 * A pool whose worker threads stopped responding: a launch cannot finish (a chunk a worker
 * claimed may never be computed), so this and every later launch of the pool throw it.
 * `code` matches KilnError's "target-unavailable" (the runtime does not import the compiler's error class).
 */
export class WasmThreadError extends Error {
  readonly code = "target-unavailable";
  constructor(message: string) {
    super(message);
    this.name = "WasmThreadError";
  }
}

/**
 * Internal knobs for tests: `stallMs`, how long the caller, done with its chunks, waits for a
 * worker that shows no progress before calling it dead — generous, since on
 * a loaded machine a descheduled thread can be seconds late; `workerSource`, a replacement for
 * the Node worker's source (a worker that cannot start).
 */
/**
 * How long threads poll before they sleep in Atomics.wait, in polls of a control word (~20 ns
 * each in Node 20's V8 here, so 1000 ≈ 20 µs): a worker after each launch (waiting for the
 * next), the caller once its own chunks are done (waiting for the workers). A futex sleep and
 * wake-up cost more than a launch's gap: the MLP step of bench/cases/mlp.ts on 2 threads went
 * 4.66 → 4.38 ms (kernels, median of 100 interleaved steps, the process under SCHED_FIFO so the
 * shared 2-core box's load stayed out) and its CPU 9.1 → 8.7 ms; 500 polls gained most of it,
 * 5000 little more. Bounded so that a loaded machine, where a poll only takes a core from
 * someone, loses little: under a load average of 16, 500 polls cost nothing measurable and
 * 2000 about 2 %. Read at each launch (bench/wasm-pool-ab.ts flips it to compare).
 * `chunksPerThread` likewise (KILN_AB_CHUNKS): 4, 8, 16 and 32 measured the same on the MLP step.
 */
export const launchTuning: { spinPolls: number; chunksPerThread: number } = { spinPolls: 1000, chunksPerThread: CHUNKS_PER_THREAD };

export const poolTestHooks: { stallMs: number; workerSource: string | undefined } = { stallMs: 30_000, workerSource: undefined };

/** The longest single Atomics.wait of a launch: the caller looks at the workers' progress at least this often. */
const WAIT_SLICE_MS = 100;

/** The loop every worker runs, as a function of its start message; `ready` reports instantiation. */
const WORKER_BODY = `(({ memory, modules, index, workers, busy, finished, ctlAt }, ready) => {
const rt = ${HOST_MATH_SOURCE};
const ctl = new Int32Array(memory.buffer, ctlAt, 16);
const busyMs = new Float64Array(busy);
const fin = new Int32Array(finished);
const fns = modules.map((m) => {
  const inst = new WebAssembly.Instance(m, { env: { memory }, rt });
  const n = inst.exports.n.value;
  return Array.from({ length: n }, (_, j) => inst.exports["s" + j]);
});
let gen = Atomics.load(ctl, ${GEN}); // read before "ready": the first launch may follow at once
Atomics.add(ctl, ${READY}, 1);
ready();
for (;;) {
  // A step's next launch follows within microseconds: polling a little first saves the sleep and wake-up.
  for (let i = ctl[${SPIN}]; i > 0 && Atomics.load(ctl, ${GEN}) === gen; i--);
  Atomics.wait(ctl, ${GEN}, gen);
  gen = Atomics.load(ctl, ${GEN});
  if (Atomics.load(ctl, ${QUIT}) === 1) break;
  // Chunks of the launch this generation names, while any is left: claimed with the launch's
  // tag, so a worker that slept through launches never takes a later one's chunk for this one's.
  // The parameters are read after a claim: the caller cannot start another launch before the
  // claimed chunk is done. (A worker that wakes after every chunk is taken does nothing.)
  const tag = (gen & ${TAG_MASK}) << ${CHUNK_BITS};
  let t0 = -1;
  for (;;) {
    const next = Atomics.load(ctl, ${NEXT});
    if ((next & ~${(1 << CHUNK_BITS) - 1}) !== tag || index >= ctl[${THREADS}]) break;
    const c = next & ${(1 << CHUNK_BITS) - 1};
    if (c >= Atomics.load(ctl, ${CHUNKS})) break;
    if (Atomics.compareExchange(ctl, ${NEXT}, next, next + 1) !== next) continue;
    while (Atomics.load(ctl, ${STALL}) === 1) Atomics.wait(ctl, ${STALL}, 1); // a test's stopped worker, holding its chunk
    const extent = ctl[${EXTENT}], chunk = ctl[${CHUNK}];
    const timed = ctl[${PROFILE}] === 1;
    if (timed && t0 < 0) t0 = performance.now();
    try {
      fns[ctl[${KERNEL}]][ctl[${SECTION}]](c * chunk, Math.min(extent, (c + 1) * chunk), index);
    } catch (e) {
      Atomics.store(ctl, ${FAILED}, 1);
    }
    if (timed) busyMs[index] = performance.now() - t0;
    if (Atomics.add(ctl, ${DONE}, 1) + 1 === ctl[${CHUNKS}]) Atomics.notify(ctl, ${DONE});
  }
  Atomics.store(fin, index, gen);
}
})`;

// V8 flags are process-wide and the main thread set them (engine.ts) before compiling; setting
// them here too keeps a worker right in hosts where flags are per isolate. Until its start
// message, an idle (prestarted) Node worker compiles the kernel modules it is sent
// ({ compile: bytes, id } → { compiled: id, module | error }): see compile in PoolWorker; and
// takes chunks of a pre-fault ({ prefault: memory's buffer, from, to, control }): see prefault in PoolWorker.
// A worker booted ahead of a compile (prestartWorkersNow) gets a boot gate in its workerData:
// only the last of them to boot sets the flags, the wasm ones and `flags` (engine.ts, bootGate).
const nodeWorkerSource = (): string => `const { parentPort, workerData } = require("node:worker_threads");
const setFlags = (flags) => { try { const v8 = require("node:v8"); for (const f of flags) v8.setFlagsFromString(f); } catch {} };
const boot = workerData && workerData.kilnBootGate;
if (!boot) setFlags(${JSON.stringify(wasmEngineFlags((globalThis as { process?: EngineProcess }).process))});
else if (Atomics.add(boot.words, 0, 1) + 1 === boot.workers) { setFlags(boot.flags); Atomics.store(boot.words, 1, 1); Atomics.notify(boot.words, 1); }
const touch = ${SHARED_TOUCH_SOURCE};
const onMessage = (data) => {
  if (data && data.compile !== undefined) {
    // Claimed by the caller already (it compiles what the worker has not begun): nothing to do.
    if (data.claim && Atomics.compareExchange(data.claim, 0, 0, 1) !== 0) { parentPort.postMessage({ compiled: data.id, skipped: true }); return; }
    let module, error;
    try { module = new WebAssembly.Module(data.compile); } catch (e) { error = String((e && e.message) || e); }
    parentPort.postMessage({ compiled: data.id, module, error });
    return;
  }
  if (data && data.prefault !== undefined) {
    touch(new Uint8Array(data.prefault), data.from, data.to, new Int32Array(data.control));
    return;
  }
  parentPort.off("message", onMessage);
  ${WORKER_BODY}(data, () => parentPort.postMessage("ready"));
};
parentPort.on("message", onMessage);`;

const WEB_WORKER_SOURCE = `self.onmessage = (e) => ${WORKER_BODY}(e.data, () => self.postMessage("ready"));`;

/** One started worker, whichever API made it, waiting for its start message. */
interface PoolWorker {
  /**
   * Sends the start message; resolves when the worker has instantiated the modules. `lost` is
   * called if the worker ends later without being terminated by the pool (seen between runs only).
   */
  join(data: StartData, lost: (why: string) => void): Promise<void>;
  /**
   * Test hook: ends the worker as a crash would: `quietly`, its pool is not told even between
   * runs (as a launch blocked in Atomics.wait cannot be).
   */
  kill(quietly: boolean): Promise<unknown>;
  // biome-ignore lint/suspicious/noConfusingVoidType: Node's Worker returns a promise, the browser's returns nothing
  terminate(): Promise<unknown> | void;
  /**
   * Node, before `join`: compiles a wasm module on the worker's thread (its event loop is
   * free, unlike the caller's while it renders: see idleWorkerCompile). Rejects when the
   * module is invalid or the worker fails or exits first. With `claim` (a word shared with the
   * caller, 0 at first), the worker sets it to 1 as it begins, and compiles nothing, resolving
   * undefined, when the caller claimed it first (run-artifact.ts, EarlyModules.steal).
   */
  compile?(bytes: Uint8Array, claim?: Int32Array): Promise<WebAssembly.Module | undefined>;
  /**
   * Node, before `join`: takes chunks of the pre-fault of `memory`'s bytes [from, to) whose
   * control block is `control` (prefault.ts's prefaultShared), when it gets to the message.
   */
  prefault?(memory: SharedArrayBuffer, from: number, to: number, control: SharedArrayBuffer): void;
}

const isNode = (): boolean => typeof globalThis.process?.versions?.node === "string";

type NodeWorkerClass = typeof import("node:worker_threads").Worker;
let nodeWorkerClass: NodeWorkerClass | undefined;

/** A prestarted batch's boot gate as its workers get it (see nodeWorkerSource). */
interface BootGate {
  readonly words: Int32Array;
  readonly workers: number;
  readonly flags: readonly string[];
}

async function spawnWorker(label: number): Promise<PoolWorker> {
  if (isNode()) {
    nodeWorkerClass ??= (await import("node:worker_threads")).Worker;
    return spawnNodeWorker(nodeWorkerClass, label, undefined);
  }
  return spawnWebWorker(label);
}

function spawnNodeWorker(workerClass: NodeWorkerClass, label: number, gate: BootGate | undefined): PoolWorker {
  // stdout/stderr: true: the worker prints nothing, and Node would otherwise pipe its output
  // into the caller's process.stdout and process.stderr, creating both streams now (a pipe's
  // loads node:net): ~2 ms of a cold start's main thread, paid inside k.compile.
  const w = new workerClass(poolTestHooks.workerSource ?? nodeWorkerSource(), {
    eval: true,
    stdout: true,
    stderr: true,
    ...(gate ? { workerData: { kilnBootGate: gate } } : {}),
  });
  let holds = 0;
  let failure: Error | undefined;
  let stopping = false;
  const hold = (): void => {
    if (holds++ === 0) w.ref();
  };
  const release = (): void => {
    if (--holds === 0 && !stopping) w.unref();
  };
  const compiles = new Map<number, { resolve: (m: WebAssembly.Module | undefined) => void; reject: (e: Error) => void }>();
  let nextCompile = 0;
  const answer = (id: number, settle: (c: { resolve: (m: WebAssembly.Module | undefined) => void; reject: (e: Error) => void }) => void): void => {
    const c = compiles.get(id);
    if (!c) return;
    compiles.delete(id);
    release();
    settle(c);
  };
  const failCompiles = (e: Error): void => {
    for (const id of [...compiles.keys()]) answer(id, (c) => c.reject(e));
  };
  w.on("message", (m: { compiled?: number; module?: WebAssembly.Module; error?: string; skipped?: boolean } | string) => {
    if (typeof m !== "object" || m.compiled === undefined) return;
    const { module, error, skipped } = m;
    answer(m.compiled, (c) => (skipped ? c.resolve(undefined) : module ? c.resolve(module) : c.reject(new Error(error ?? "no module"))));
  });
  w.once("error", (e) => {
    failure = e;
    failCompiles(e);
  });
  w.once("exit", (code) => failCompiles(new Error(`wasm worker ${label} exited (code ${code})`)));
  // Idle (prestarted) workers never keep the process alive; a joining one does until it is
  // ready, and one with compiles to answer until it has answered them (holds counts both).
  // After the "message" listener: adding one refs the worker's port again (Node 20), and a
  // program whose compile failed before any join (a shape error in the trace) never exited.
  w.unref();
  return {
    compile: (bytes, claim) => {
      if (failure) return Promise.reject(failure);
      const id = nextCompile++;
      hold();
      return new Promise<WebAssembly.Module | undefined>((resolve, reject) => {
        compiles.set(id, { resolve, reject });
        w.postMessage({ compile: bytes, id, ...(claim ? { claim } : {}) });
      });
    },
    // Nothing waits for an answer: the caller takes the chunks this worker does not get to.
    prefault: (memory, from, to, control) => {
      if (!failure) w.postMessage({ prefault: memory, from, to, control });
    },
    join: (data, lost) => {
      if (failure) return Promise.reject(failure);
      hold();
      let isReady = false;
      const ready = new Promise<void>((resolve, reject) => {
        const onReady = (m: unknown): void => {
          if (m !== "ready") return;
          w.off("message", onReady);
          isReady = true;
          resolve();
        };
        w.on("message", onReady);
        w.once("error", (e) => {
          if (isReady) failure = e;
          else reject(e);
        });
        w.once("exit", (code) => {
          if (!isReady) reject(new Error(`wasm worker ${label} exited (code ${code}) before it was ready`));
          else if (!stopping) lost(failure ? `threw ${failure.message}` : `exited (code ${code})`);
        });
      });
      w.postMessage(data);
      return ready.finally(release);
    },
    kill: (quietly) => {
      if (quietly) stopping = true;
      return w.terminate();
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

function spawnWebWorker(label: number): PoolWorker {
  if (typeof Worker === "undefined" || globalThis.crossOriginIsolated !== true)
    throw new Error("wasm threads need Node's worker_threads or a cross-origin-isolated page's Web Workers; run with threads: 1");
  const url = URL.createObjectURL(new Blob([WEB_WORKER_SOURCE], { type: "text/javascript" }));
  const w = new Worker(url);
  return {
    join: (data, lost) => {
      let isReady = false;
      const ready = new Promise<void>((resolve, reject) => {
        w.onmessage = () => {
          isReady = true;
          resolve();
        };
        w.onerror = (e) => {
          if (isReady) lost(`threw ${e.message}`);
          else reject(new Error(`wasm worker ${label} failed to start: ${e.message}`));
        };
      });
      w.postMessage(data);
      return ready;
    },
    kill: async () => w.terminate(),
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

/**
 * Boots the workers a runner of `threads` threads (default: every core) will take, now and
 * synchronously, for a k.compile about to trace (targets/registry.ts, prepareTarget): they boot
 * on the other cores while the program is traced. Node only (process.getBuiltinModule); a no-op
 * elsewhere or when workers are idle already (the compile's own prestartWorkers still runs).
 * The batch shares a boot gate (engine.ts): the last worker to boot sets the wasm flags and
 * `flags` (js-tiering's budget), so no flag changes while they boot on Node's code cache.
 * Returns the gate's words (tests wait on them), undefined when it started none.
 */
export function prestartWorkersNow(threads: number | undefined, flags: readonly string[]): Int32Array | undefined {
  const proc = globalThis.process as { getBuiltinModule?: (id: string) => unknown } | undefined;
  const workerThreads = proc?.getBuiltinModule?.("node:worker_threads") as typeof import("node:worker_threads") | undefined;
  const os = proc?.getBuiltinModule?.("node:os") as typeof import("node:os") | undefined;
  if (!workerThreads || !os || idle.length > 0 || poolTestHooks.workerSource !== undefined) return undefined;
  const count = (threads ?? os.availableParallelism()) - 1;
  if (count < 1) return undefined;
  nodeWorkerClass ??= workerThreads.Worker;
  const words = new Int32Array(new SharedArrayBuffer(8));
  const gate: BootGate = { words, workers: count, flags: [...wasmEngineFlags((globalThis as { process?: EngineProcess }).process), ...flags] };
  setBootGate(words);
  while (idle.length < count) idle.push(spawnNodeWorker(nodeWorkerClass, idle.length + 1, gate));
  return words;
}

/** Workers booted by prestartWorkers and not yet taken by a pool. */
export const idleWorkerCount = (): number => idle.length;

/**
 * The compile of an idle (prestarted) Node worker, or undefined when there is none. k.compile
 * hands it each kernel module as the renderer builds it: V8's async WebAssembly.compile runs
 * its steps as tasks of the calling thread's event loop, so modules handed to it while that
 * thread renders the rest began compiling only once the render was done (the MLP step's
 * k.compile then waited ~11 ms after its render, a transformer step's ~31 ms); the worker,
 * booted while the compiler traced and lowered, compiles each at once on its own thread, and
 * later joins the pool that runs them.
 */
export function idleWorkerCompile(): ((bytes: Uint8Array, claim?: Int32Array) => Promise<WebAssembly.Module | undefined>) | undefined {
  return idle.find((w) => w.compile)?.compile;
}

/**
 * The page-faulting of the idle (prestarted) Node workers (see PoolWorker.prefault): a runner
 * made over a shared memory splits its pre-fault with them (runtime/wasm/prefault.ts).
 */
export function idleWorkerPrefaults(): ((memory: SharedArrayBuffer, from: number, to: number, control: SharedArrayBuffer) => void)[] {
  return idle.flatMap((w) => (w.prefault ? [w.prefault] : []));
}

/** Terminates the idle workers (a compile that failed after prestartWorkers). */
export async function stopIdleWorkers(): Promise<void> {
  await Promise.all(idle.splice(0).map((w) => w.terminate()));
}

/** Warns (once per pool, Node's process warnings; a browser has none) that a pool runs on the calling thread alone. */
function warnThreadsUnavailable(message: string): void {
  const proc = globalThis.process as { emitWarning?: (m: string, o: { code: string }) => void } | undefined;
  proc?.emitWarning?.(message, { code: "KILN_WASM_THREADS" });
}

export class WorkerPool {
  private readonly ctl: Int32Array;
  private closed = false;
  private isReady = false;
  /** Why the workers could not start: launches then stay on the calling thread. */
  private startFailure: string | undefined;
  /** Set once a worker died after it was ready: every launch throws it. */
  private broken: WasmThreadError | undefined;
  private readonly whenJoined: Promise<void>;
  /** Each thread's milliseconds in the last profiled launch (thread 0: the caller). */
  private readonly busyMs: Float64Array;
  /** Per thread (index 0 unused): the last generation it finished. */
  private readonly finished: Int32Array;

  private constructor(
    private readonly workers: readonly PoolWorker[],
    memory: WebAssembly.Memory,
    modules: readonly WebAssembly.Module[],
    busy: SharedArrayBuffer,
    ctlAt: number,
    private readonly kernelNames: readonly string[],
    spawnFailure: unknown,
  ) {
    this.ctl = new Int32Array(memory.buffer, ctlAt, 16);
    this.busyMs = new Float64Array(busy);
    const finished = new SharedArrayBuffer(4 * (workers.length + 1));
    this.finished = new Int32Array(finished);
    Atomics.store(this.ctl, READY, 0);
    Atomics.store(this.ctl, STALL, 0);
    const lost = (index: number) => (why: string) => {
      this.broken ??= new WasmThreadError(
        `wasm worker thread ${index} of ${this.threads - 1} stopped: it ${why}; the pool cannot run, close this runner and make a new one`,
      );
    };
    const joined =
      spawnFailure === undefined
        ? workers.map((w, i) => w.join({ memory, modules, index: i + 1, workers: workers.length, busy, finished, ctlAt }, lost(i + 1)))
        : [Promise.reject(spawnFailure)];
    this.whenJoined = Promise.all(joined).then(
      () => {
        this.isReady = true;
      },
      async (e: unknown) => {
        // Runs go on without the workers (each split iteration computes the same values on the calling thread).
        this.startFailure = e instanceof Error ? e.message : String(e);
        // A pool closed while its workers were joining ends them on purpose (they see QUIT and
        // exit): nothing failed, and nothing runs on it any more.
        if (this.closed) return;
        warnThreadsUnavailable(`kiln wasm: worker threads failed to start (${this.startFailure}); running on the calling thread alone`);
        await this.close();
      },
    );
  }

  /**
   * Starts `threads - 1` workers (the caller is thread 0; prestarted ones first) on the
   * pool's control block at byte `ctlAt` (default 0), and returns without waiting for them:
   * launch only once `ready` (whenReady waits for it). `kernelNames` (by module) name a
   * launch's kernel in errors.
   */
  static async start(
    memory: WebAssembly.Memory,
    modules: readonly WebAssembly.Module[],
    threads: number,
    ctlAt = 0,
    kernelNames: readonly string[] = [],
  ): Promise<WorkerPool> {
    const busy = new SharedArrayBuffer(8 * threads);
    const workers = idle.splice(0, threads - 1);
    let spawnFailure: unknown;
    try {
      while (workers.length < threads - 1) workers.push(await spawnWorker(workers.length + 1));
    } catch (e) {
      spawnFailure = e instanceof Error ? e : new Error(String(e));
    }
    return new WorkerPool(workers, memory, modules, busy, ctlAt, kernelNames, spawnFailure);
  }

  /** `start`, then waits until every worker is ready (or failed to start: see `ready`). */
  static async create(memory: WebAssembly.Memory, modules: readonly WebAssembly.Module[], threads: number, ctlAt = 0): Promise<WorkerPool> {
    const pool = await WorkerPool.start(memory, modules, threads, ctlAt);
    await pool.whenReady();
    return pool;
  }

  /**
   * Whether every worker has instantiated the modules (launch needs it). False for good when
   * one failed to start (`threadsFailure` says why): runs stay on the calling thread. Throws
   * the pool's WasmThreadError once a worker died after it was ready.
   */
  get ready(): boolean {
    if (this.broken) throw this.broken;
    if (this.startFailure !== undefined) return false;
    if (!this.isReady && !this.closed && Atomics.load(this.ctl, READY) === this.workers.length) this.isReady = true;
    return this.isReady;
  }

  /** Why the worker threads could not start (then every launch is the caller's alone); undefined otherwise. */
  get threadsFailure(): string | undefined {
    return this.startFailure;
  }

  /** Resolves when `ready`, or when a worker failed to start (the pool then runs on the calling thread). */
  async whenReady(): Promise<void> {
    await this.whenJoined;
  }

  get threads(): number {
    return this.workers.length + 1;
  }

  /**
   * Test hook: ends worker `index` (1-based) as a crash would; `quietly`, without the pool seeing
   * it go (as a launch blocked in Atomics.wait cannot), else its 'exit' event breaks the pool.
   */
  async killWorker(index: number, quietly: boolean): Promise<void> {
    await this.workers[index - 1]!.kill(quietly);
  }

  /** Test hook: in the next launch a worker claims the first chunk and stops there, alive but never finishing it (a launch then stalls). */
  stallWorkers(): void {
    Atomics.store(this.ctl, STALL, 1);
  }

  /**
   * Runs section `section` of kernel `kernel` over [0, extent) on every thread; returns when all
   * are done. With `threadMs` (exe.profile), every thread times its own chunk into it (index:
   * thread, 0 the caller); without, no thread reads a clock. Throws WasmThreadError when a
   * worker does not finish (see waitForWorkers), and from then on at once.
   */
  launch(kernel: number, section: number, extent: number, grain: number, own: (lo: number, hi: number) => void, threadMs?: number[]): void {
    if (this.broken) throw this.broken;
    const ctl = this.ctl;
    const threads = this.threads;
    // No claim of the last launch's tag may succeed while this one's parameters are written: a
    // worker that found every chunk of it taken, then read this launch's larger CHUNKS, could
    // claim chunk `chunks` of the old tag and run it with the new parameters (a chunk computed
    // twice, and DONE counting one the caller never waits for). -1 matches no tag.
    Atomics.store(ctl, NEXT, -1);
    if (threadMs) ctl[PROFILE] = 1;
    ctl[KERNEL] = kernel;
    ctl[SECTION] = section;
    ctl[EXTENT] = extent;
    ctl[THREADS] = threads;
    let chunk = Math.ceil(Math.ceil(extent / (threads * launchTuning.chunksPerThread)) / grain) * grain;
    // (at most 2^CHUNK_BITS − 1 chunks: longer ones past that)
    chunk = Math.max(chunk, Math.ceil(Math.ceil(extent / ((1 << CHUNK_BITS) - 1)) / grain) * grain);
    const chunks = Math.ceil(extent / chunk);
    ctl[CHUNK] = chunk;
    // Atomic (ordered after NEXT = -1): a worker that reads this launch's CHUNKS then sees no
    // old tag in NEXT. A plain store may become visible before the earlier atomic one where
    // stores are not kept in order (arm64: stlr, then a plain str), reopening the race above.
    Atomics.store(ctl, CHUNKS, chunks);
    ctl[SPIN] = launchTuning.spinPolls;
    if (threadMs) this.busyMs.fill(0);
    Atomics.store(ctl, DONE, 0);
    // Every chunk is claimed from NEXT (none is set aside for a worker): a worker the OS has not
    // run yet holds nothing up, the caller takes its chunks. The new tag publishes the parameters above.
    const gen = (Atomics.load(ctl, GEN) + 1) | 0;
    const tag = (gen & TAG_MASK) << CHUNK_BITS;
    Atomics.store(ctl, NEXT, tag);
    Atomics.store(ctl, GEN, gen);
    Atomics.notify(ctl, GEN);
    let workerFailed = false;
    const t0 = threadMs ? performance.now() : 0;
    let ownDone = 0;
    // (a test's stalled worker claims first: stallWorkers)
    if (ctl[STALL] === 1) while (Atomics.load(ctl, NEXT) === tag) Atomics.wait(ctl, GEN, gen, 1);
    try {
      for (;;) {
        const next = Atomics.load(ctl, NEXT);
        const c = next - tag;
        if (c >= chunks) break;
        if (Atomics.compareExchange(ctl, NEXT, next, next + 1) !== next) continue;
        own(c * chunk, Math.min(extent, (c + 1) * chunk));
        ownDone++;
      }
    } catch (e) {
      // The chunks nobody claimed yet are taken off the counter and counted as done with the
      // caller's own (the launch fails): the wait below is for the workers' claimed chunks only.
      const left = chunks - (Atomics.exchange(ctl, NEXT, tag + chunks) - tag);
      Atomics.add(ctl, DONE, ownDone + 1 + Math.max(0, left));
      ownDone = 0;
      throw e;
    } finally {
      if (ownDone > 0) Atomics.add(ctl, DONE, ownDone);
      if (threadMs) this.busyMs[0] = performance.now() - t0;
      // Every claimed chunk is finished before the caller sees a result or an error, and the
      // failure flag is cleared either way (the next launch starts clean).
      this.waitForWorkers(kernel, section, gen, chunks);
      workerFailed = Atomics.exchange(ctl, FAILED, 0) !== 0;
      if (threadMs) {
        ctl[PROFILE] = 0;
        for (let t = 0; t < threads; t++) threadMs[t] = this.busyMs[t]!;
      }
    }
    if (workerFailed) throw new Error(`wasm ${this.kernelName(kernel)}, section ${section}: a worker thread trapped`);
  }

  private kernelName(kernel: number): string {
    const name = this.kernelNames[kernel];
    return name === undefined ? `kernel ${kernel}` : `kernel ${kernel} (${name})`;
  }

  /**
   * Waits for every worker to finish launch `gen`, in slices (a blocked caller never sees a
   * worker's 'exit' event): a worker that has not finished `stallMs` after the last sign of
   * progress (another worker finishing) is taken for dead — the pool breaks and the launch
   * throws, naming the thread and the kernel. The caller returns here only once every chunk is
   * claimed, so a live worker has at most its current chunk left (about 1/8 of its share):
   * seconds even for a huge launch on a busy machine, far inside the 30 s bound. No clock is
   * read unless a slice runs out (profiling off reads no clock; a launch costs microseconds).
   */
  private waitForWorkers(kernel: number, section: number, gen: number, chunks: number): void {
    const ctl = this.ctl;
    const workers = this.workers.length;
    let seen = Atomics.load(ctl, DONE);
    for (let i = launchTuning.spinPolls; i > 0 && seen < chunks; i--) seen = Atomics.load(ctl, DONE);
    while (seen < chunks) {
      if (Atomics.wait(ctl, DONE, seen, WAIT_SLICE_MS) === "timed-out") break;
      seen = Atomics.load(ctl, DONE);
    }
    if (seen >= chunks) return;
    let since = performance.now();
    const patience = poolTestHooks.stallMs;
    while (seen < chunks) {
      const left = since + patience - performance.now();
      if (left <= 0) {
        const late: number[] = [];
        for (let t = 1; t <= workers; t++) if (Atomics.load(this.finished, t) !== gen) late.push(t);
        const who = late.length === 1 ? `thread ${late[0]}` : `threads ${late.join(", ")}`;
        this.broken = new WasmThreadError(
          `wasm worker ${who} of ${workers} stopped responding: ${this.kernelName(kernel)}, section ${section} ` +
            `did not finish: no worker progressed for ${Math.round(patience)} ms (one crashed, ran out of memory or was terminated); ` +
            "the pool cannot run, close this runner and make a new one",
        );
        throw this.broken;
      }
      Atomics.wait(ctl, DONE, seen, Math.min(WAIT_SLICE_MS, left));
      const done = Atomics.load(ctl, DONE);
      if (done !== seen) {
        seen = done;
        since = performance.now();
      }
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    Atomics.store(this.ctl, QUIT, 1);
    Atomics.store(this.ctl, STALL, 0);
    Atomics.notify(this.ctl, STALL);
    Atomics.add(this.ctl, GEN, 1);
    Atomics.notify(this.ctl, GEN);
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
