// Runs a "wasm" artifact: one shared WebAssembly.Memory holds every buffer at the addresses
// of runtime/artifact/wasm-layout.ts, so parameters and optimizer state stay resident between runs
// (an aliased output is updated in place where the plan allows). Each run copies the inputs
// in, launches every kernel section in order — split across the worker pool when it is big
// enough — and copies the outputs out. With threads = 1 (a browser page's main thread, and
// any caller's choice) there is no pool: a plain, unshared memory and no node: imports (the
// pool and node:os load by dynamic import only for threads > 1). A browser runs threads only
// inside a worker of a cross-origin-isolated page (a main thread may not Atomics.wait).
// `run` (write, execute, read) is synchronous — the pool's launches block on Atomics.wait — so
// concurrent callers cannot interleave: each run sees the memory the previous one left. A
// caller splitting a run into write/execute/read across awaits must serialize those itself.

import {
  artifactArray,
  artifactArrayFrom,
  asStorage,
  artifactDTypeBytes,
  numel,
  type Artifact,
  type ArtifactBuffer,
  type ArtifactIO,
  checkArtifactVersion,
} from "../artifact/format.ts";
import { hostMath } from "./host-math.ts";
import { artifactLayout, PAGE_BYTES, POOL_CONTROL_BYTES, SHARED_POOLS } from "../artifact/wasm-layout.ts";
import type { WorkerPool } from "./pool.ts";
import { recordKernel, type RunProfiler } from "../artifact/profile.ts";
import {
  HOST_RESIDENCE,
  IoCounter,
  checkResident,
  inputFill,
  inputsNamed,
  outputArray,
  type IoCounters,
  type ResidentOwner,
  type ResidentValue,
  type RunIo,
} from "../artifact/host-io.ts";
import { refuseUnknownOptions } from "../artifact/options.ts";
import { prepareWasmEngine } from "./engine.ts";
import { PREFAULT_CHUNK_BYTES, prefaultShared, touchedArrayBuffer, touchPages } from "./prefault.ts";

import type { RuntimeData, RuntimeTensor } from "../artifact/host-io.ts";
export type { RuntimeData, RuntimeTensor };

export interface WasmRunOptions {
  /**
   * Threads per launch, the caller included. Default: the available parallelism on Node and in
   * a worker of a cross-origin-isolated page (the only browser context where more than 1 works), else 1.
   */
  readonly threads?: number;
  /** Sections with less work than this run on the calling thread only (default 32768). */
  readonly minParallelWork?: number;
}

const wasmRunOptionKeys = Object.keys({ threads: true, minParallelWork: true } satisfies Record<keyof WasmRunOptions, true>);

type SectionFn = (lo: number, hi: number, tid: number) => void;
interface Launch {
  readonly kernel: number;
  readonly section: number;
  readonly fn: SectionFn;
  readonly extent: number;
  readonly work: number;
  /** The symbolic dimension's maximum when the split loop follows it (the run's rows only are split). */
  readonly max?: number;
  /** The size buffer's address (with `max`). */
  readonly sizeAt?: number;
  /**
   * Chunks split at multiples of this (the kernel's `g<j>`, 4 where the split loop is itself
   * a vector loop): each iteration then takes the vector or scalar path the same in every
   * split, so results do not depend on the threads (nor on whether the workers are up yet).
   */
  readonly grain: number;
}

/**
 * The one memory the wasm programs of a k.compileModel share: made by the first runner that
 * binds it, grown to the largest program (the programs' kernels import it with the wasm32
 * maximum); every program's artifact has the state entries at the same addresses
 * (memory.slotOffsets, from wasm-layout.ts's state region), so switching programs copies nothing.
 */
export interface WasmSharedMemory {
  /** The state entries' names. */
  readonly names: ReadonlySet<string>;
  /** Per state entry: the host array whose values the memory holds (not copied in again), for every runner binding it. */
  readonly resident: Map<string, RuntimeData>;
  memory?: WebAssembly.Memory;
  /** Worker pools started on it: each takes the next control block. */
  pools: number;
}

/** 64 KiB pages in wasm32's 4 GiB: a shared model memory's maximum (it grows as programs join). */
const WASM32_MAX_PAGES = 65536;

/** What the launches of a runner did: deterministic counts for tests and benchmarks. */
export interface WasmLaunchStats {
  /** Section launches. */
  readonly launches: number;
  /** Iterations of the split loops, summed over launches (fewer at a small symbolic batch). */
  readonly iterations: number;
}

/** Node's Buffer where there is one (no import: this runtime also runs in browsers). */
const NodeBuffer = (globalThis as { Buffer?: { from(s: string, enc: "base64"): Uint8Array } }).Buffer;

export function decodeBase64(s: string): Uint8Array<ArrayBuffer> {
  if (NodeBuffer) {
    const b = NodeBuffer.from(s, "base64");
    return new Uint8Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer);
  }
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

const isNode = (): boolean => typeof globalThis.process?.versions?.node === "string";

/** A browser context that may block on Atomics.wait and share memory with Web Workers. */
const isIsolatedWorker = (): boolean =>
  globalThis.crossOriginIsolated === true &&
  typeof Worker !== "undefined" &&
  typeof (globalThis as { WorkerGlobalScope?: unknown }).WorkerGlobalScope !== "undefined";

async function defaultThreads(): Promise<number> {
  if (isNode()) return (await import("node:os")).availableParallelism();
  return isIsolatedWorker() ? Math.max(1, globalThis.navigator?.hardwareConcurrency ?? 1) : 1;
}

/** Threads a runner made with `opts` will use (the caller included). */
export async function runnerThreads(opts: WasmRunOptions = {}): Promise<number> {
  refuseUnknownOptions("wasm runner", opts, wasmRunOptionKeys);
  if (opts.threads !== undefined && !(Number.isInteger(opts.threads) && opts.threads >= 1))
    throw new Error(`wasm runner: threads must be a whole number ≥ 1, got ${opts.threads}`);
  if (opts.minParallelWork !== undefined && !(typeof opts.minParallelWork === "number" && opts.minParallelWork >= 0))
    throw new Error(`wasm runner: minParallelWork must be a number ≥ 0, got ${String(opts.minParallelWork)}`);
  return opts.threads ?? (await defaultThreads());
}

/**
 * Boots the worker threads a runner made with `opts` will take, before its artifact exists:
 * called as a compile starts, their start (tens of ms each on Node) overlaps the compile.
 * `stopPrestartedThreads` ends them if the compile fails.
 */
export async function prestartThreads(opts: WasmRunOptions = {}): Promise<void> {
  const threads = await runnerThreads(opts);
  if (threads > 1 && (isNode() || isIsolatedWorker())) await (await import("./pool.ts")).prestartWorkers(threads - 1);
}

/**
 * Kernel modules whose compile started before their runner existed: k.compile's wasm executor
 * hands each module over as the renderer builds it, so the first kernels compile while the main
 * thread renders the later ones, instead of after the whole artifact (the wait between
 * k.compile's render and its first run). On Node they go to the prestarted worker
 * (`workerCompile`: pool.ts's idleWorkerCompile says why V8's own async compile does not
 * overlap the render); else, or when the worker fails, to WebAssembly.compile. `start` takes
 * them by source; only modules over a shared memory (a runner with worker threads) are used as built.
 */
export class EarlyModules {
  private readonly modules = new Map<string, EarlyModule>();
  private early: EarlyMemory | undefined;

  constructor(
    private readonly workerCompile?: (bytes: Uint8Array, claim?: Int32Array) => Promise<WebAssembly.Module | undefined>,
    private readonly workerPrefaults: readonly WorkerPrefault[] = [],
  ) {}

  /** An EarlyModules that compiles (and maps pages) on the prestarted worker where there is one (prestartThreads first). */
  static async create(): Promise<EarlyModules> {
    if (!isNode()) return new EarlyModules();
    const pool = await import("./pool.ts");
    return new EarlyModules(pool.idleWorkerCompile(), pool.idleWorkerPrefaults());
  }

  /** What the renderer calls (codegen/wasm/render-program.ts, RenderSink). */
  readonly sink = {
    memory: (pages: number, bytes: number): void => this.reserveMemory(pages, bytes),
    module: (source: string, bytes: Uint8Array<ArrayBuffer>): void => this.add(source, bytes),
  };

  /**
   * The kernels' memory, made before the first kernel renders: the prestarted workers map its
   * first EARLY_PREFAULT_BYTES of the `bytes` used (prefault.ts) while this thread renders (they
   * are idle until the first module arrives; the pages are the process's, so the runner finds
   * them mapped), instead of this thread mapping them in the runner's making. Only with a
   * worker to do it; the runner takes it when its layout has the same pages (takeMemory).
   */
  reserveMemory(pages: number, bytes: number): void {
    if (this.early || this.workerPrefaults.length === 0) return;
    const memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
    const buffer = memory.buffer;
    if (!(buffer instanceof SharedArrayBuffer)) return;
    const control = new SharedArrayBuffer(8);
    const to = Math.min(bytes, EARLY_PREFAULT_BYTES);
    for (const prefault of this.workerPrefaults) prefault(buffer, 0, to, control);
    this.early = { memory, pages, bytes, to, control };
  }

  /** The memory reserveMemory made, once, if the runner's layout is the render's (`pages`, `bytes`): with the bytes [0, to) whose mapping its control block shares. */
  takeMemory(pages: number, bytes: number): EarlyMemory | undefined {
    const early = this.early;
    this.early = undefined;
    return early?.pages === pages && early.bytes === bytes ? early : undefined;
  }

  add(source: string, bytes: Uint8Array<ArrayBuffer>): void {
    if (this.modules.has(source)) return;
    prepareWasmEngine();
    if (this.workerCompile) {
      // The module's claim word: 1 once the worker starts compiling it, 2 once this thread does (steal).
      const claim = new Int32Array(new SharedArrayBuffer(4));
      const compiled = this.workerCompile(bytes, claim).then(
        (m) => m ?? Promise.reject(new Error("wasm: a stolen module's compile was awaited")),
        // The worker refused it or went away: the engine's own compile decides (and reports a
        // module it refuses), unless this thread took it meanwhile.
        () => (Atomics.compareExchange(claim, 0, 0, 2) === 2 ? Promise.reject(new Error("wasm: stolen")) : WebAssembly.compile(bytes)),
      );
      compiled.catch(() => undefined);
      this.modules.set(source, { bytes, claim, compiled, on: "worker" });
      return;
    }
    const compiled = WebAssembly.compile(bytes);
    // A module this engine refuses (relaxed SIMD it lacks) is compiled again, and refused again, by `start`, which falls back to the portable twin.
    compiled.catch(() => undefined);
    this.modules.set(source, { bytes, compiled, on: "engine" });
  }

  /**
   * Compiles on this thread, now, the modules the worker has not started (their claim still
   * 0), last first, until one the worker has: the runner's start calls it before it waits for
   * them, so this thread, which would otherwise wait idle, compiles the queue's tail while the
   * worker compiles its head (the render can end several modules ahead of the worker, and a
   * worker that lost its core to other processes need not be waited for). Returns how many.
   */
  steal(): number {
    let stolen = 0;
    for (const m of [...this.modules.values()].reverse()) {
      if (m.claim === undefined || m.on !== "worker") continue;
      if (Atomics.compareExchange(m.claim, 0, 0, 2) !== 0) break;
      let compiled: Promise<WebAssembly.Module>;
      try {
        compiled = Promise.resolve(new WebAssembly.Module(m.bytes));
      } catch (e) {
        compiled = Promise.reject(e);
        compiled.catch(() => undefined);
      }
      m.compiled = compiled;
      m.on = "caller";
      stolen++;
    }
    return stolen;
  }

  take(source: string): Promise<WebAssembly.Module> | undefined {
    return this.modules.get(source)?.compiled;
  }

  /** Where `source` compiled: on the worker, on this thread at the runner's start (steal), or by the engine's async compile. */
  compiledWhere(source: string): "worker" | "caller" | "engine" | undefined {
    return this.modules.get(source)?.on;
  }
}

/** A module EarlyModules was handed: its bytes, its claim word (with a worker), its compile and where it runs. */
interface EarlyModule {
  readonly bytes: Uint8Array<ArrayBuffer>;
  readonly claim?: Int32Array;
  compiled: Promise<WebAssembly.Module>;
  on: "worker" | "caller" | "engine";
}

type WorkerPrefault = (memory: SharedArrayBuffer, from: number, to: number, control: SharedArrayBuffer) => void;

/** A kernels' memory made as the render began, whose bytes [0, to) the workers were given to map, sharing `control` (prefault.ts's prefaultShared). */
interface EarlyMemory {
  readonly memory: WebAssembly.Memory;
  readonly pages: number;
  readonly bytes: number;
  readonly to: number;
  readonly control: SharedArrayBuffer;
}

/**
 * The most bytes of a memory EarlyModules has the workers map before the modules come: a
 * worker takes its compile messages after the pages it was given (~0.5 ms a MiB here), so a
 * large memory's rest waits for the runner, which maps it with them as before.
 */
export const EARLY_PREFAULT_BYTES = 16 << 20;

export async function stopPrestartedThreads(): Promise<void> {
  await (await import("./pool.ts")).stopIdleWorkers();
}

/**
 * A copy of wasm module `bytes` whose imported memories are declared unshared (limits flag
 * 0x03 → 0x01, same size): the kernels import a shared memory for the worker pool, which a
 * browser page that is not cross-origin isolated cannot create. Other sections are untouched.
 */
export function unshareMemoryImports(bytes: Uint8Array<ArrayBuffer>): Uint8Array<ArrayBuffer> {
  const out = bytes.slice();
  let at = 8; // magic and version
  const leb = (): number => {
    let value = 0;
    for (let shift = 0; ; shift += 7) {
      const byte = out[at++];
      if (byte === undefined) throw new Error("truncated wasm module");
      value += (byte & 0x7f) * 2 ** shift;
      if ((byte & 0x80) === 0) return value;
    }
  };
  const skipLimits = (): number => {
    const flag = out[at]!;
    at++;
    leb();
    if (flag & 1) leb();
    return flag;
  };
  while (at < out.length) {
    const id = out[at++]!;
    const size = leb();
    const end = at + size;
    if (id === 2) {
      for (let n = leb(); n > 0; n--) {
        for (let name = 0; name < 2; name++) {
          const length = leb(); // module name, then field name (`at += leb()` would read `at` first)
          at += length;
        }
        const kind = out[at++];
        if (kind === 0) leb();
        else if (kind === 1) {
          at++; // reference type
          skipLimits();
        } else if (kind === 2) {
          const flagAt = at;
          if (skipLimits() === 0x03) out[flagAt] = 0x01;
        } else if (kind === 3) at += 2;
        else throw new Error(`wasm import kind ${kind} is not understood`);
      }
      return out;
    }
    at = end;
  }
  return out;
}

export class WasmArtifactRunner implements ResidentOwner {
  readonly residence = HOST_RESIDENCE;
  private readonly memory: WebAssembly.Memory;
  /** Per state input: the host array whose values its buffer already holds (not copied in again); the model's map when it shares one memory. */
  private readonly residentState: Map<string, RuntimeData>;
  /** Whether the state inputs live in a WasmSharedMemory (the same addresses for every program of the model). */
  readonly sharesState: boolean;
  /**
   * Inputs that are state (set by a caller that never changes a state array it passed): an
   * upload stands for their value until another array is passed, even when no output updates
   * them (a predict program's parameters are written once, not every run).
   */
  stateInputs: ReadonlySet<string> | undefined;
  private readonly aliasOutput = new Map<string, ArtifactIO>();
  /** Per state update: its input, and whether memory holds it in the input's place after a run (its buffer is not the input's own). Made once: a run's tail walks it. */
  private readonly aliasEntries: readonly { readonly input: string; readonly output: ArtifactIO; readonly inPlace: boolean }[];
  /** Per input (artifact order): whether it is a state input whose update memory holds in its place (an `aliasEntries` entry with `inPlace`). */
  private readonly inPlaceInput: readonly boolean[];
  /** Whether every state update is in place (no entry's tail deletes). */
  private readonly allInPlace: boolean;
  /** The state updates' output names: a run that read none back may skip the tail's walk. */
  private readonly aliasOutputNames: ReadonlySet<string>;
  /** In-place state inputs whose passed array memory stands for after the last `write` (see `run`'s tail). */
  private standing = 0;
  /** Outputs that are an input's buffer, with that input's name: a run returns the caller's data for them. */
  private readonly passThroughs: readonly { readonly output: ArtifactIO; readonly input: string }[];
  private readonly released = new WeakSet<ResidentValue>();
  private readonly counter = new IoCounter();
  private runs = 0;
  private launchCount = 0;
  /** Views of the size buffers, on `sizeViewsOf` (a shared model memory may grow, which detaches an unshared one's buffer). */
  private sizeViews: Record<number, Int32Array> = {};
  private sizeViewsOf: ArrayBufferLike | undefined;
  private iterationCount = 0;
  private readonly launches: readonly Launch[];
  private readonly minParallelWork: number;
  private readonly addressOf: readonly number[];
  /** Kernel modules this runner took from an EarlyModules (compiled while the artifact rendered), not compiled by `start`. */
  precompiledModules = 0;
  /** Of those, the modules the prestarted worker compiled (or was to compile, and failed: EarlyModules). */
  workerCompiledModules = 0;
  /** Of those, the modules this thread compiled as the runner started, the worker not having begun them (EarlyModules.steal). */
  callerCompiledModules = 0;
  /** Bytes whose pages were mapped as the runner was made: the memory's fresh bytes and the first run's output arrays (prefault.ts). */
  prefaultedBytes = 0;
  /** Of the memory's bytes, those the prestarted workers were given to map while the artifact rendered (EarlyModules.reserveMemory): its memory was made then. */
  renderPrefaultBytes = 0;
  /** Per output: the fresh array, pages mapped, that the first run returns it in (unless `out` gives one); dropped after the first read. */
  readonly spares = new Map<string, RuntimeData>();

  private constructor(
    readonly artifact: Artifact,
    memory: WebAssembly.Memory,
    launches: readonly Launch[],
    addressOf: readonly number[],
    private readonly pool: WorkerPool | undefined,
    opts: WasmRunOptions,
    shared: WasmSharedMemory | undefined,
  ) {
    this.memory = memory;
    this.sharesState = shared !== undefined;
    this.residentState = shared?.resident ?? new Map();
    if (shared) this.stateInputs = shared.names;
    this.launches = launches;
    this.addressOf = addressOf;
    this.minParallelWork = opts.minParallelWork ?? 32768;
    for (const o of artifact.outputs) if (o.aliases !== undefined) this.aliasOutput.set(o.aliases, o);
    this.aliasEntries = [...this.aliasOutput].map(([input, output]) => ({ input, output, inPlace: artifact.buffers[output.buffer]!.kind !== "input" }));
    const inPlaceNames = new Set(this.aliasEntries.filter((e) => e.inPlace).map((e) => e.input));
    this.inPlaceInput = artifact.inputs.map((i) => inPlaceNames.has(i.name));
    this.allInPlace = this.aliasEntries.every((e) => e.inPlace) && this.inPlaceInput.filter((b) => b).length === this.aliasEntries.length;
    this.aliasOutputNames = new Set(this.aliasEntries.map((e) => e.output.name));
    this.passThroughs = artifact.outputs.flatMap((output) => {
      const input = artifact.buffers[output.buffer]!.kind === "input" ? artifact.inputs.find((i) => i.buffer === output.buffer) : undefined;
      return input ? [{ output, input: input.name }] : [];
    });
  }

  get name(): string {
    return `the wasm runner of ${this.artifact.name}`;
  }

  /**
   * With `shared` (k.compileModel's programs), an artifact that records its slots' addresses
   * runs in the model's one memory (see WasmSharedMemory); otherwise in a memory of its own.
   * Returns once the worker threads are ready (`start` does not wait for them).
   */
  static async create(artifact: Artifact, opts: WasmRunOptions = {}, sharedMemory?: WasmSharedMemory): Promise<WasmArtifactRunner> {
    const runner = await WasmArtifactRunner.start(artifact, opts, sharedMemory);
    await runner.whenThreadsReady();
    return runner;
  }

  /**
   * `create` without waiting for the worker threads: runs launch on the calling thread alone
   * until they are ready (activeThreads), with the same results (a split loop's iterations are
   * independent). k.compile's executors start this way: a Node worker takes tens of ms to boot.
   */
  static async start(artifact: Artifact, opts: WasmRunOptions = {}, sharedMemory?: WasmSharedMemory, early?: EarlyModules): Promise<WasmArtifactRunner> {
    checkArtifactVersion(artifact);
    if (artifact.target !== "wasm") throw new Error(`artifact ${artifact.name}: built for target '${artifact.target}', not 'wasm'`);
    const threads = await runnerThreads(opts);
    if (threads > 1 && !isNode() && !isIsolatedWorker())
      throw new Error(`artifact ${artifact.name}: ${threads} wasm threads need Node, or a Web Worker in a cross-origin-isolated page; run with threads: 1`);
    const shared = threads > 1;
    const layout = artifactLayout(artifact.memory);
    const model = sharedModelMemory(artifact, shared, sharedMemory);
    let memory: WebAssembly.Memory;
    /** Where the bytes this runner brought to the memory start (a shared model memory's earlier bytes were mapped by the runner that grew it). */
    let grownFrom = 0;
    // The memory made as the render began, its first bytes being mapped by the workers (EarlyModules.reserveMemory).
    const earlyMemory = shared && !model ? early?.takeMemory(layout.pages, layout.totalBytes) : undefined;
    if (earlyMemory) memory = earlyMemory.memory;
    else if (model) {
      const fresh = model.memory === undefined;
      memory = model.memory ??= new WebAssembly.Memory({ initial: layout.pages, maximum: WASM32_MAX_PAGES, shared });
      const pages = memory.buffer.byteLength / PAGE_BYTES;
      if (!fresh) grownFrom = pages * PAGE_BYTES;
      if (pages < layout.pages) memory.grow(layout.pages - pages);
    } else memory = new WebAssembly.Memory({ initial: layout.pages, maximum: layout.pages, shared });
    const addressOf = artifact.buffers.map((b: ArtifactBuffer) => {
      const at = layout.slotOffsets[b.slot];
      if (at === undefined || numel(b.shape) * artifactDTypeBytes(b.dtype) > artifact.memory.slotBytes[b.slot]!)
        throw new Error(`artifact ${artifact.name}: buffer ${b.name} does not fit slot ${b.slot}`);
      return at;
    });
    prepareWasmEngine();
    // All modules compile at once, off the main thread where the engine can (V8 compiles an
    // async module's functions on background threads): a cold start waits for the slowest.
    const compile = (source: string): Promise<WebAssembly.Module> => {
      const bytes = decodeBase64(source);
      const ready = shared ? bytes : unshareMemoryImports(bytes);
      return WebAssembly.compile(ready);
    };
    let precompiled = 0;
    let onWorker = 0;
    let onCaller = 0;
    // The modules the worker has not got to yet are this thread's to compile (it would wait for them).
    if (shared) early?.steal();
    const modules = await Promise.all(
      artifact.kernels.map(async (k) => {
        try {
          try {
            const started = shared ? early?.take(k.source) : undefined;
            if (started) precompiled++;
            const where = started ? early?.compiledWhere(k.source) : undefined;
            if (where === "worker") onWorker++;
            if (where === "caller") onCaller++;
            return await (started ?? compile(k.source));
          } catch (e) {
            // Built with relaxed SIMD that this engine lacks: the portable twin. Read only here
            // (an in-process artifact builds it when first read: asking first doubled the render).
            const portable = k.portableSource;
            if (portable === undefined) throw e;
            return await compile(portable);
          }
        } catch (e) {
          throw new Error(`artifact ${artifact.name}: kernel ${k.name} is not a valid wasm module: ${(e as Error).message}`);
        }
      }),
    );
    // The pages the plan needs get mapped now, not in the first run: the memory's fresh bytes
    // and the first run's output arrays (prefault.ts). Not under a symbolic batch (a module
    // exports the size buffer's address `z`): its buffers are sized for the largest batch, of
    // which a run may touch a few rows, and mapping the maximum would cost what no run needs.
    const symbolic = modules.some((m) => WebAssembly.Module.exports(m).some((e) => e.name === "z"));
    const spares = symbolic ? [] : spareOutputs(artifact);
    let prefaultFrom = grownFrom;
    const buffer = memory.buffer;
    if (earlyMemory && !symbolic && buffer instanceof SharedArrayBuffer) {
      // The workers' share is done (they mapped it during the render) or nearly: this thread takes the chunks left.
      prefaultShared(buffer, 0, earlyMemory.to, earlyMemory.control);
      prefaultFrom = earlyMemory.to;
    }
    const arrays = symbolic ? [] : await prefault(memory, prefaultFrom, layout.totalBytes, spares, shared);
    const rt = hostMath();
    const launches: Launch[] = [];
    modules.forEach((m, kernel) => {
      const exports = new WebAssembly.Instance(m, { env: { memory }, rt: { ...rt } }).exports as Record<string, unknown>;
      const count = (exports["n"] as WebAssembly.Global).value as number;
      const global = (name: string): number | undefined => (exports[name] as WebAssembly.Global | undefined)?.value as number | undefined;
      for (let section = 0; section < count; section++) {
        const max = global(`m${section}`);
        launches.push({
          kernel,
          section,
          fn: exports[`s${section}`] as SectionFn,
          extent: global(`x${section}`)!,
          work: global(`w${section}`)!,
          grain: global(`g${section}`) ?? 1,
          ...(max !== undefined ? { max, sizeAt: global("z")! } : {}),
        });
      }
    });
    const ctlAt = model && shared ? model.pools++ * POOL_CONTROL_BYTES : 0;
    // Not waited for: runs go on the calling thread alone until the workers are ready (pool.ts).
    const names = artifact.kernels.map((k) => k.name);
    const pool = shared ? await (await import("./pool.ts")).WorkerPool.start(memory, modules, threads, ctlAt, names) : undefined;
    const runner = new WasmArtifactRunner(artifact, memory, launches, addressOf, pool, opts, model);
    runner.precompiledModules = precompiled;
    runner.prefaultedBytes = symbolic ? 0 : Math.max(0, layout.totalBytes - grownFrom) + arrays.reduce((a, b) => a + b.byteLength, 0);
    spares.forEach((o, i) => runner.spares.set(o.name, artifactArray(o.dtype, arrays[i]!, 0, numel(o.shape))));
    runner.workerCompiledModules = onWorker;
    runner.callerCompiledModules = onCaller;
    runner.renderPrefaultBytes = earlyMemory && !symbolic ? earlyMemory.to : 0;
    return runner;
  }

  /** Bytes of the one memory every buffer lives in: fixed at creation (its maximum is its initial size), or a model's shared memory (grown to its largest program). */
  get memoryBytes(): number {
    return this.memory.buffer.byteLength;
  }

  /** Threads per launch once the pool's workers are ready (see activeThreads); 1 when they failed to start. */
  get threads(): number {
    return this.pool && this.pool.threadsFailure === undefined ? this.pool.threads : 1;
  }

  /**
   * Threads a launch uses now: 1 until the pool's workers are ready, and for good when one failed
   * to start (`threadsFailure`). Throws the pool's WasmThreadError once a worker died after it was ready.
   */
  get activeThreads(): number {
    return this.pool?.ready ? this.pool.threads : 1;
  }

  /** Why the worker threads could not start (runs are the calling thread's alone, with one KILN_WASM_THREADS warning); undefined otherwise. */
  get threadsFailure(): string | undefined {
    return this.pool?.threadsFailure;
  }

  /** Test hook: ends worker thread `index` (1-based) as a crash would (see WorkerPool.killWorker). */
  async killWorker(index: number, quietly: boolean): Promise<void> {
    await this.pool?.killWorker(index, quietly);
  }

  /** Test hook: in the next split launch a worker claims a chunk and never finishes it (see WorkerPool.stallWorkers). */
  stallWorkers(): void {
    this.pool?.stallWorkers();
  }

  /** Resolves when the worker threads are ready, or failed to start (at once without a pool). */
  async whenThreadsReady(): Promise<void> {
    await this.pool?.whenReady();
  }

  private bufferView(id: number): RuntimeData {
    const b = this.artifact.buffers[id]!;
    const n = numel(b.shape);
    const at = this.addressOf[id]!;
    const buf = this.memory.buffer;
    return artifactArray(b.dtype, buf, at, n);
  }

  /** Runs completed: a kept value of an earlier run is stale. */
  get generation(): number {
    return this.runs;
  }

  /** What the last run copied between the host and the memory, and allocated. */
  get io(): IoCounters {
    return this.counter.snapshot();
  }

  /**
   * Copies inputs in (all of them, or those named, so later runs may pass only what changed).
   * A state input whose array is the one this runner returned for its update (or passed last
   * run, when the update was not read back) is already in memory and is not copied again;
   * `io.resident` inputs are copied from another run's kept output, first (host inputs may overwrite their source).
   */
  write(
    inputs: Readonly<Record<string, RuntimeTensor>>,
    { partial = false, resident }: { readonly partial?: boolean; readonly resident?: RunIo["resident"] } = {},
  ): void {
    if (resident) this.writeResident(resident);
    const inputsOf = this.artifact.inputs;
    let standing = 0;
    for (let i = 0; i < inputsOf.length; i++) {
      const io = inputsOf[i]!;
      if (resident?.[io.name] !== undefined) continue;
      const t = inputs[io.name];
      if (!t) {
        if (partial) continue;
        throw new Error(`missing input '${io.name}'`);
      }
      if (this.residentState.get(io.name) === t.data) {
        if (this.inPlaceInput[i]) standing++;
        continue;
      }
      if (this.stateInputs?.has(io.name)) {
        this.residentState.set(io.name, t.data);
        if (this.inPlaceInput[i]) standing++;
      } else this.residentState.delete(io.name);
      // A symbolic batch's run rows go straight into the buffer's leading rows (inputFill).
      const target = this.bufferView(io.buffer).subarray(0, inputFill(io, t));
      target.set(asStorage(io.dtype, t.data));
      this.counter.bytesIn += target.byteLength;
    }
    this.standing = standing;
  }

  private writeResident(resident: NonNullable<RunIo["resident"]>): void {
    const sources: [ArtifactIO, RuntimeData][] = [];
    for (const [name, value] of Object.entries(resident)) {
      const io = this.artifact.inputs.find((i) => i.name === name);
      if (!io) throw new Error(`'${name}' is not an input of ${this.artifact.name}`);
      checkResident(value, io, HOST_RESIDENCE);
      sources.push([io, value.owner.view!(value)]);
    }
    // A source in this memory that another input's write would overwrite is taken aside first.
    const range = (id: number): [number, number] => [this.addressOf[id]!, this.addressOf[id]! + this.bufferView(id).byteLength];
    const written = this.artifact.inputs.map((i) => range(i.buffer));
    const staged = sources.map(([io, src]): [ArtifactIO, RuntimeData] => {
      if (src.buffer !== this.memory.buffer) return [io, src];
      const [lo, hi] = [src.byteOffset, src.byteOffset + src.byteLength];
      const own = range(io.buffer);
      const clobbered = written.some(([a, b]) => a < hi && lo < b && !(a === own[0] && b === own[1]));
      return [io, clobbered ? src.slice() : src];
    });
    for (const [io, src] of staged) {
      const target = this.bufferView(io.buffer);
      if (src.buffer === target.buffer && src.byteOffset === target.byteOffset) continue;
      target.set(src);
      this.counter.bytesOnDevice += target.byteLength;
      this.residentState.delete(io.name);
    }
  }

  /**
   * Launches every kernel once over what memory holds now. With `profile`, each section's launch
   * is timed on the calling thread, which returns only when every worker has finished its
   * chunk: a kernel's time is its wall time across threads (sections of a kernel summed, one call).
   * An array instead accumulates each launch's (section's) time at its index in `launchNames()`.
   */
  execute(profile?: RunProfiler | number[]): void {
    if (!profile) for (const l of this.launches) this.launch(l);
    else if (Array.isArray(profile))
      this.launches.forEach((l, i) => {
        const t0 = performance.now();
        this.launch(l);
        profile[i] = (profile[i] ?? 0) + performance.now() - t0;
      });
    else {
      profile.clock = "host";
      profile.threads = this.activeThreads;
      const busy = (profile.threadBusyMs ??= []);
      const threadMs: number[] = [];
      for (const l of this.launches) {
        const t0 = performance.now();
        const split = this.launch(l, threadMs);
        const ms = performance.now() - t0;
        recordKernel(profile, l.kernel, ms, l.section === 0 ? 1 : 0);
        busy[l.kernel] = (busy[l.kernel] ?? 0) + (split ? threadMs.reduce((a, b) => a + b, 0) : ms);
      }
    }
    // State updates the plan could not make in place go back to their inputs' buffers.
    for (const c of this.artifact.memory.copies) {
      const from = this.bufferView(c.output);
      this.bufferView(c.input).set(from);
      this.counter.bytesOnDevice += from.byteLength;
    }
  }

  /** Section launches and split-loop iterations since the runner was made (see WasmLaunchStats). */
  get launchStats(): WasmLaunchStats {
    return { launches: this.launchCount, iterations: this.iterationCount };
  }

  /**
   * Runs one section, split across the pool when it is big enough (then true; `threadMs` gets
   * each thread's time). A section whose split loop follows a symbolic batch runs (and splits)
   * only the iterations the run's size needs: ceil(extent × size / max).
   */
  private launch(l: Launch, threadMs?: number[]): boolean {
    let extent = l.extent;
    if (l.max !== undefined) {
      // One view serves every run while the memory does not grow (only a shared model memory does, as programs join).
      const buffer = this.memory.buffer;
      if (this.sizeViewsOf !== buffer) {
        this.sizeViews = {};
        this.sizeViewsOf = buffer;
      }
      const view = (this.sizeViews[l.sizeAt!] ??= new Int32Array(buffer, l.sizeAt!, 1));
      const n = view[0]!;
      extent = Math.min(l.extent, Math.max(0, Math.ceil((l.extent * n) / l.max)));
    }
    this.launchCount++;
    this.iterationCount += extent;
    // Until the workers are ready (pool.ts), the calling thread runs every iteration itself.
    const pool = this.pool?.ready ? this.pool : undefined;
    if (pool && extent > 1 && (l.work * extent) / l.extent >= this.minParallelWork) {
      const grain = Math.max(l.grain, extent >= 16 * pool.threads ? 4 : 1);
      pool.launch(l.kernel, l.section, extent, grain, (lo, hi) => l.fn(lo, hi, 0), threadMs);
      return true;
    }
    l.fn(0, extent, 0);
    return false;
  }

  /** "kernel name / section" of each launch, in `execute` order. */
  launchNames(): string[] {
    return this.launches.map((l) => `${this.artifact.kernels[l.kernel]!.name}/s${l.section}`);
  }

  /** Copies the outputs out (those in `readback`, default all), each into its `out` array when given, else a fresh one. */
  read(io: Pick<RunIo, "readback" | "out"> = {}): Record<string, RuntimeTensor> {
    const out: Record<string, RuntimeTensor> = {};
    for (const o of this.artifact.outputs) {
      if (io.readback !== undefined && !io.readback.includes(o.name)) continue;
      const spare = io.out?.[o.name] === undefined ? this.spares.get(o.name) : undefined;
      if (spare) this.counter.bytesAllocated += spare.byteLength;
      const data = spare ?? outputArray(o, io.out, this.counter);
      const from = this.bufferView(o.buffer);
      data.set(from);
      this.counter.bytesOut += from.byteLength;
      out[o.name] = { dtype: o.dtype, shape: [...o.shape], data };
    }
    this.spares.clear();
    return out;
  }

  /**
   * Writes the inputs, runs every kernel, reads the outputs; with `io.profile`, times each of
   * those into it, with `io.timeIo` into the counters' `times` (no clock is read otherwise).
   */
  run(inputs: Readonly<Record<string, RuntimeTensor>>, io: RunIo = {}): Record<string, RuntimeTensor> {
    this.counter.reset();
    let out: Record<string, RuntimeTensor>;
    const profile = io.profile;
    const timed = profile !== undefined || io.timeIo === true;
    try {
      const t0 = timed ? performance.now() : 0;
      this.write(inputs, io.resident ? { resident: io.resident } : {});
      const t1 = timed ? performance.now() : 0;
      this.execute(profile);
      const t2 = timed ? performance.now() : 0;
      out = this.read(io);
      const t3 = timed ? performance.now() : 0;
      if (profile) {
        profile.inputMs += t1 - t0;
        profile.readbackMs += t3 - t2;
      }
      if (io.timeIo === true) this.counter.times = { writeMs: t1 - t0, executeMs: t2 - t1, readMs: t3 - t2 };
    } catch (e) {
      this.residentState.clear();
      throw e;
    } finally {
      this.runs++;
    }
    // An output that is an input passes the caller's data through (its slot may hold an in-place update by now).
    for (const { output: o, input } of this.passThroughs) {
      if (out[o.name] === undefined) continue;
      const src = inputs[input]?.data;
      if (src) out[o.name] = { dtype: o.dtype, shape: [...o.shape], data: artifactArrayFrom(o.dtype, src) };
    }
    // Memory now holds each state update in its input's place: the array standing for it next run
    // is the one returned for the update, or, when that was not read back, the one passed in.
    // When no update was read back and `write` left every in-place state input's passed array
    // standing, that is already so (every run of a training step after the first).
    let readUpdate = false;
    for (const name in out) if (this.aliasOutputNames.has(name)) readUpdate = true;
    if (!readUpdate && this.allInPlace && this.standing === this.aliasEntries.length) return out;
    for (const { input, output, inPlace } of this.aliasEntries) {
      const stand = out[output.name]?.data ?? inputs[input]?.data;
      if (stand && inPlace) {
        if (this.residentState.get(input) !== stand) this.residentState.set(input, stand);
      } else this.residentState.delete(input);
    }
    return out;
  }

  /** The device's current value of the named inputs (the state after in-place updates), copied out. */
  readInputs(names: readonly string[]): Record<string, RuntimeTensor> {
    const out: Record<string, RuntimeTensor> = {};
    for (const io of inputsNamed(this.artifact, names)) {
      const data = this.bufferView(io.buffer).slice();
      this.counter.bytesOut += data.byteLength;
      out[io.name] = { dtype: io.dtype, shape: [...io.shape], data };
    }
    return out;
  }

  /** A handle on output `name` as the last run left it in memory (see ResidentValue for how long it stays valid). */
  keep(name: string): ResidentValue {
    const o = this.artifact.outputs.find((x) => x.name === name);
    if (!o) throw new Error(`keep: '${name}' is not an output of ${this.artifact.name}`);
    return { owner: this, output: name, buffer: o.buffer, dtype: o.dtype, shape: [...o.shape], generation: this.runs };
  }

  /** A view of a kept value in this memory (checked: not stale, not released). */
  view(value: ResidentValue): RuntimeData {
    checkResident(value, this.artifact.outputs.find((o) => o.name === value.output)!, HOST_RESIDENCE);
    return this.bufferView(value.buffer);
  }

  readResident(value: ResidentValue, into?: RuntimeData): RuntimeData {
    const from = this.view(value);
    if (!into) return from.slice();
    into.set(from);
    return into;
  }

  isReleased(value: ResidentValue): boolean {
    return this.released.has(value);
  }

  release(value: ResidentValue): void {
    this.released.add(value);
  }

  async close(): Promise<void> {
    await this.pool?.close();
  }
}

/**
 * The outputs a first run returns in fresh arrays, which a runner makes (and maps) when it is
 * made: every output but the state updates (read back only when asked; they alias an input)
 * and pass-throughs of an input (the caller's data).
 */
function spareOutputs(artifact: Artifact): ArtifactIO[] {
  return artifact.outputs.filter((o) => o.aliases === undefined && artifact.buffers[o.buffer]!.kind !== "input");
}

/**
 * Maps the memory's bytes [from, to) (fresh: zeros) and returns fresh ArrayBuffers of the
 * `spares`' sizes, every page mapped (prefault.ts). Over a shared memory on Node the idle
 * prestarted workers take chunks of the memory while this thread makes the arrays.
 */
async function prefault(memory: WebAssembly.Memory, from: number, to: number, spares: readonly ArtifactIO[], shared: boolean): Promise<ArrayBuffer[]> {
  const sizes = spares.map((o) => numel(o.shape) * artifactDTypeBytes(o.dtype));
  const buffer = memory.buffer;
  if (!shared || !(buffer instanceof SharedArrayBuffer)) {
    touchPages(new Uint8Array(buffer), from, to);
    return sizes.map(touchedArrayBuffer);
  }
  // A few fresh MiB are not worth a message to a worker (the calling thread maps them in a millisecond or two).
  const helpers = isNode() && to - from >= 4 * PREFAULT_CHUNK_BYTES ? (await import("./pool.ts")).idleWorkerPrefaults() : [];
  const control = new SharedArrayBuffer(8);
  for (const h of helpers) h(buffer, from, to, control);
  const arrays = sizes.map(touchedArrayBuffer);
  prefaultShared(buffer, from, to, control);
  return arrays;
}

/** The model memory `artifact` runs in: when it records its slots' addresses, and a pool control block is free (threads) and the memory's sharing matches. */
function sharedModelMemory(artifact: Artifact, threads: boolean, model: WasmSharedMemory | undefined): WasmSharedMemory | undefined {
  if (!model || artifact.memory.slotOffsets === undefined) return undefined;
  if (threads && model.pools >= SHARED_POOLS) return undefined;
  const isShared = (m: WebAssembly.Memory): boolean => typeof SharedArrayBuffer !== "undefined" && m.buffer instanceof SharedArrayBuffer;
  if (model.memory && isShared(model.memory) !== threads) return undefined;
  return model;
}
