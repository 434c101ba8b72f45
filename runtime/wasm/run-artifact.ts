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

import { artifactArray, artifactArrayFrom, artifactDTypeBytes, numel, type Artifact, type ArtifactBuffer, type ArtifactDType } from "../artifact/format.ts";
import { hostMath } from "./host-math.ts";
import { layoutMemory } from "../artifact/wasm-layout.ts";
import type { WorkerPool } from "./pool.ts";

export type RuntimeData = Float32Array | Float64Array | Int32Array | Uint8Array;

export interface RuntimeTensor {
  readonly dtype: ArtifactDType;
  readonly shape: readonly number[];
  readonly data: RuntimeData;
}

export interface WasmRunOptions {
  /**
   * Threads per launch, the caller included. Default: the available parallelism on Node and in
   * a worker of a cross-origin-isolated page (the only browser context where more than 1 works), else 1.
   */
  readonly threads?: number;
  /** Sections with less work than this run on the calling thread only (default 32768). */
  readonly minParallelWork?: number;
}

type SectionFn = (lo: number, hi: number, tid: number) => void;
interface Launch {
  readonly kernel: number;
  readonly section: number;
  readonly fn: SectionFn;
  readonly extent: number;
  readonly work: number;
}

export function decodeBase64(s: string): Uint8Array<ArrayBuffer> {
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

export class WasmArtifactRunner {
  private readonly memory: WebAssembly.Memory;
  private readonly launches: readonly Launch[];
  private readonly minParallelWork: number;
  private readonly addressOf: readonly number[];

  private constructor(
    readonly artifact: Artifact,
    memory: WebAssembly.Memory,
    launches: readonly Launch[],
    addressOf: readonly number[],
    private readonly pool: WorkerPool | undefined,
    opts: WasmRunOptions,
  ) {
    this.memory = memory;
    this.launches = launches;
    this.addressOf = addressOf;
    this.minParallelWork = opts.minParallelWork ?? 32768;
  }

  static async create(artifact: Artifact, opts: WasmRunOptions = {}): Promise<WasmArtifactRunner> {
    if (artifact.format !== "kiln-artifact" || artifact.version !== 1)
      throw new Error(`artifact ${artifact.name}: unsupported format ${artifact.format} v${artifact.version}`);
    if (artifact.target !== "wasm") throw new Error(`artifact ${artifact.name}: built for target '${artifact.target}', not 'wasm'`);
    const threads = Math.max(1, Math.floor(opts.threads ?? (await defaultThreads())));
    if (threads > 1 && !isNode() && !isIsolatedWorker())
      throw new Error(`artifact ${artifact.name}: ${threads} wasm threads need Node, or a Web Worker in a cross-origin-isolated page; run with threads: 1`);
    const shared = threads > 1;
    const layout = layoutMemory(artifact.memory.slotBytes);
    const memory = new WebAssembly.Memory({ initial: layout.pages, maximum: layout.pages, shared });
    const addressOf = artifact.buffers.map((b: ArtifactBuffer) => {
      const at = layout.slotOffsets[b.slot];
      if (at === undefined || numel(b.shape) * artifactDTypeBytes(b.dtype) > artifact.memory.slotBytes[b.slot]!)
        throw new Error(`artifact ${artifact.name}: buffer ${b.name} does not fit slot ${b.slot}`);
      return at;
    });
    const modules = artifact.kernels.map((k) => {
      try {
        const bytes = decodeBase64(k.source);
        return new WebAssembly.Module(shared ? bytes : unshareMemoryImports(bytes));
      } catch (e) {
        throw new Error(`artifact ${artifact.name}: kernel ${k.name} is not a valid wasm module: ${(e as Error).message}`);
      }
    });
    const rt = hostMath();
    const launches: Launch[] = [];
    modules.forEach((m, kernel) => {
      const exports = new WebAssembly.Instance(m, { env: { memory }, rt: { ...rt } }).exports as Record<string, unknown>;
      const count = (exports["n"] as WebAssembly.Global).value as number;
      for (let section = 0; section < count; section++)
        launches.push({
          kernel,
          section,
          fn: exports[`s${section}`] as SectionFn,
          extent: (exports[`x${section}`] as WebAssembly.Global).value as number,
          work: (exports[`w${section}`] as WebAssembly.Global).value as number,
        });
    });
    const pool = shared ? await (await import("./pool.ts")).WorkerPool.create(memory, modules, threads) : undefined;
    return new WasmArtifactRunner(artifact, memory, launches, addressOf, pool, opts);
  }

  /** Bytes of the one memory every buffer lives in: fixed at creation (its maximum is its initial size). */
  get memoryBytes(): number {
    return this.memory.buffer.byteLength;
  }

  get threads(): number {
    return this.pool?.threads ?? 1;
  }

  private view(id: number): RuntimeData {
    const b = this.artifact.buffers[id]!;
    const n = numel(b.shape);
    const at = this.addressOf[id]!;
    const buf = this.memory.buffer;
    return artifactArray(b.dtype, buf, at, n);
  }

  /** Copies inputs in (all of them, or those named), so later runs may pass only what changed. */
  write(inputs: Readonly<Record<string, RuntimeTensor>>, { partial = false } = {}): void {
    for (const io of this.artifact.inputs) {
      const t = inputs[io.name];
      if (!t) {
        if (partial) continue;
        throw new Error(`missing input '${io.name}'`);
      }
      const target = this.view(io.buffer);
      if (t.data.length !== target.length) throw new Error(`input '${io.name}' has ${t.data.length} elements, expected ${target.length}`);
      target.set(t.data);
    }
  }

  /** Launches every kernel once over what memory holds now; `profileMs[i]` accumulates launch i's time. */
  execute(profileMs?: number[]): void {
    this.launches.forEach((l, i) => {
      const t0 = profileMs ? performance.now() : 0;
      if (this.pool && l.extent > 1 && l.work >= this.minParallelWork) {
        const grain = l.extent >= 16 * this.pool.threads ? 4 : 1;
        this.pool.launch(l.kernel, l.section, l.extent, grain, (lo, hi) => l.fn(lo, hi, 0));
      } else l.fn(0, l.extent, 0);
      if (profileMs) profileMs[i] = (profileMs[i] ?? 0) + performance.now() - t0;
    });
  }

  /** "kernel name / section" of each launch, in `execute` order. */
  launchNames(): string[] {
    return this.launches.map((l) => `${this.artifact.kernels[l.kernel]!.name}/s${l.section}`);
  }

  read(): Record<string, RuntimeTensor> {
    const out: Record<string, RuntimeTensor> = {};
    for (const io of this.artifact.outputs) out[io.name] = { dtype: io.dtype, shape: [...io.shape], data: this.view(io.buffer).slice() };
    return out;
  }

  run(inputs: Readonly<Record<string, RuntimeTensor>>): Record<string, RuntimeTensor> {
    this.write(inputs);
    this.execute();
    const out = this.read();
    // An output that is an input passes the caller's data through (its slot may hold an in-place update by now).
    for (const io of this.artifact.outputs) {
      const passThrough = this.artifact.buffers[io.buffer]!.kind === "input" ? this.artifact.inputs.find((i) => i.buffer === io.buffer) : undefined;
      if (passThrough) {
        const src = inputs[passThrough.name]!.data;
        out[io.name] = { dtype: io.dtype, shape: [...io.shape], data: artifactArrayFrom(io.dtype, src) };
      }
    }
    return out;
  }

  async close(): Promise<void> {
    await this.pool?.close();
  }
}
