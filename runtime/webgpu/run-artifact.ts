/// <reference types="@webgpu/types" />
// Runs a "webgpu" artifact on a device: one GPU buffer per memory slot, pipelines compiled
// once (cached per device by WGSL source), bind groups built once. A run writes the inputs
// that changed, encodes every dispatch and the copies into one command buffer with the
// readback, submits once and maps one staging buffer. An output larger than a readback chunk
// (8 MiB) comes back through a few chunk-sized staging buffers in turn instead: while the host
// copies one chunk out, the device copies the next ones in, so the readback costs about one
// host copy rather than a device copy and then a host copy of the whole output, and no staging
// buffer of the output's size is made. The staging buffers and the `out` arrays are kept, so
// a run allocates nothing once they exist (webGpuBufferCounts counts the GPU buffers made).
// Uploads go through queue.writeBuffer: on a device whose memory the host sees (integrated
// GPUs, lavapipe), Dawn writes a slot that no command is using straight into its memory. State stays resident: an input whose
// data is the very array this runner returned for the output updating it (or, when that output
// was not read back, the array passed last run) is not uploaded again. Runs and input reads
// are serialized per runner (they share the staging buffer and the resident-state bookkeeping):
// concurrent calls queue, each sees the state the previous one left, and a failed call does not
// block the ones behind it.

import { neededWorkgroups } from "../artifact/symbolic-dispatch.ts";
import {
  artifactArray,
  artifactArrayFrom,
  numel,
  type Artifact,
  type ArtifactDType,
  type ArtifactIO,
  type SymbolicDispatch,
  type WebGpuArtifactKernel,
  checkArtifactVersion,
} from "../artifact/format.ts";
import { recordKernel, type RunProfiler } from "../artifact/profile.ts";
import { refuseUnknownOptions } from "../artifact/options.ts";
import { QuietWait, waitInOrder } from "./quiet-wait.ts";

import {
  IoCounter,
  checkResident,
  inputFill,
  inputsNamed,
  outputArray,
  type IoCounters,
  type ResidentOwner,
  type ResidentValue,
  type RunIo,
  type RuntimeData,
  type RuntimeTensor,
} from "../artifact/host-io.ts";
export type { RuntimeData, RuntimeTensor };

/** Outputs to read back (default: all; the others stay on the device only), `out` arrays to fill, inputs from kept values on the same device. */
export type WebGpuRunOptions = RunIo;

interface Submitted {
  readonly wanted: readonly ArtifactIO[];
  readonly stagingBytes: number;
  readonly stagingOffset: ReadonlyMap<string, number>;
  /** Large outputs' chunks, read through the chunk staging buffers in turn (the first ones copied by the run's own commands). */
  readonly chunks: readonly ReadbackChunk[];
  /** The maps of the first chunks' staging buffers, started once the commands copying them are submitted (startChunkMaps). */
  readonly chunkMaps: Promise<void>[];
  /** The copy-backs, when they must follow the last chunk's copy (more chunks than staging buffers). */
  readonly afterChunks?: (encoder: GPUCommandEncoder) => void;
}

/** `bytes` of output `output` from byte `fromOffset` of GPU buffer `from`: its elements `at` to `at + count`. */
interface ReadbackChunk {
  readonly output: ArtifactIO;
  readonly from: GPUBuffer;
  readonly fromOffset: number;
  readonly at: number;
  readonly count: number;
  readonly bytes: number;
}

/** Outputs larger than this come back in chunks of this size (WebGpuRunnerOptions.readbackChunkBytes). */
const READBACK_CHUNK_BYTES = 8 << 20;
/** Chunk staging buffers: the chunks in flight at once. */
const READBACK_CHUNK_BUFFERS = 3;

const ELEMENT_BYTES = 4;

/** GPU buffers created and destroyed by runners in this process (leak checks: live = created - destroyed). */
const bufferCounts = { created: 0, destroyed: 0 };

export function webGpuBufferCounts(): { readonly created: number; readonly destroyed: number; readonly live: number } {
  return { ...bufferCounts, live: bufferCounts.created - bufferCounts.destroyed };
}

function createBuffer(device: GPUDevice, descriptor: GPUBufferDescriptor): GPUBuffer {
  const buffer = device.createBuffer(descriptor);
  bufferCounts.created++;
  return buffer;
}

function destroyBuffer(buffer: GPUBuffer): void {
  buffer.destroy();
  bufferCounts.destroyed++;
}

const pipelineCache = new WeakMap<GPUDevice, Map<string, Promise<GPUComputePipeline>>>();

/**
 * The pipeline cache's key for a shader: its source without `//` comments (kernel names,
 * buffer names, source lines) and blank lines, its buffer variables (`gN`, N the GPU buffer)
 * renumbered in order of first use (their declarations, in binding order), so identical
 * kernels over other buffers, at other places of a program or in another program, share one
 * pipeline and the driver compiles them once. Bind groups bind by binding index, not by name.
 */
export function pipelineKey(source: string): string {
  const renamed = new Map<string, string>();
  return source
    .replace(/\/\/[^\n]*/g, "")
    .replace(/[ \t]+\n/g, "\n")
    .replace(/\n{2,}/g, "\n")
    .replace(/\bg\d+\b/g, (name) => {
      if (!renamed.has(name)) renamed.set(name, `g${renamed.size}`);
      return renamed.get(name)!;
    });
}

function pipelineFor(device: GPUDevice, name: string, source: string): Promise<GPUComputePipeline> {
  let cache = pipelineCache.get(device);
  if (!cache) pipelineCache.set(device, (cache = new Map()));
  const key = pipelineKey(source);
  let p = cache.get(key);
  if (!p) {
    p = compilePipeline(device, name, source);
    // A kernel that failed to compile is not kept: the next runner asks again and fails the same way.
    p.catch(() => cache.delete(key));
    cache.set(key, p);
  }
  return p;
}

/**
 * Pipelines created in this process: through createComputePipelineAsync, or (a quiet runner's
 * first pipelines, createPipelineNow) createComputePipeline. Tests check which path a runner took.
 */
const pipelineCounts = { async: 0, sync: 0 };

export function webGpuPipelineCounts(): { readonly async: number; readonly sync: number } {
  return { ...pipelineCounts };
}

/**
 * Creates a pipeline on the calling thread, now (createComputePipeline), and caches it as
 * pipelineFor does; `checked` settles once the device has validated it (rejecting, as
 * compilePipeline does, with the compiler's messages when the kernel does not compile). For a
 * CPU adapter in Node (the runner's quietWait): a pending createComputePipelineAsync keeps
 * Dawn's polling loop spinning on this thread, and on lavapipe creation is only WGSL -> NIR (the
 * JIT runs at the first dispatch), so creating here, each pipeline's warm-up submitted at once,
 * keeps one core on creation and the other on the previous pipeline's compile, with no loop.
 */
function createPipelineNow(
  device: GPUDevice,
  name: string,
  source: string,
): { readonly pipeline: GPUComputePipeline; readonly checked: Promise<GPUComputePipeline> } {
  let cache = pipelineCache.get(device);
  if (!cache) pipelineCache.set(device, (cache = new Map()));
  const key = pipelineKey(source);
  device.pushErrorScope("validation");
  const module = device.createShaderModule({ code: source, label: name });
  const pipeline = device.createComputePipeline({ layout: "auto", compute: { module, entryPoint: "main" }, label: name });
  const scope = device.popErrorScope();
  pipelineCounts.sync++;
  const checked = scope.then(async (error) => {
    if (!error) return pipeline;
    const info = await module.getCompilationInfo();
    const messages = info.messages.map((m) => `${m.lineNum}:${m.linePos} ${m.type}: ${m.message}`).join("\n");
    throw new Error(`webgpu: kernel ${name} does not compile: ${error.message}\n${messages}\n${source}`);
  });
  checked.catch(() => cache.delete(key));
  cache.set(key, checked);
  return { pipeline, checked };
}

// Created asynchronously (the driver compiles while other pipelines are created and the caller
// waits), inside a validation error scope for the shader module, so a kernel that does not
// compile is named, with the compiler's messages and its source.
async function compilePipeline(device: GPUDevice, name: string, source: string): Promise<GPUComputePipeline> {
  device.pushErrorScope("validation");
  const module = device.createShaderModule({ code: source, label: name });
  const moduleError = device.popErrorScope();
  pipelineCounts.async++;
  let pipeline: GPUComputePipeline | undefined;
  let failure: string | undefined;
  try {
    pipeline = await device.createComputePipelineAsync({ layout: "auto", compute: { module, entryPoint: "main" }, label: name });
  } catch (e) {
    failure = (e as Error).message;
  }
  const error = await moduleError;
  if (error || failure !== undefined || !pipeline) {
    const info = await module.getCompilationInfo();
    const messages = info.messages.map((m) => `${m.lineNum}:${m.linePos} ${m.type}: ${m.message}`).join("\n");
    throw new Error(`webgpu: kernel ${name} does not compile: ${error?.message ?? failure}\n${messages}\n${source}`);
  }
  return pipeline;
}

/** Pipeline creation so far: reported to `WebGpuRunnerOptions.progress`. */
export interface PipelineProgress {
  /** Pipelines ready to run (created and, where warmed, dispatched once). */
  readonly done: number;
  readonly total: number;
  readonly elapsedMs: number;
}

export interface WebGpuRunnerOptions {
  /** State buffers shared with other runners on the device (k.compileModel's programs): bound where the layout allows (see `sharesState`). */
  readonly shared?: WebGpuSharedState;
  /**
   * Called each time a pipeline becomes ready once creation has taken longer than
   * `progressAfterMs` (default 1000), and once at the end if it was called before: a progress
   * line for long compiles (the CLI prints it on stderr). Never called for a quick creation.
   */
  readonly progress?: (p: PipelineProgress) => void;
  readonly progressAfterMs?: number;
  /**
   * Dispatch each new pipeline once (one workgroup) while creating the runner (default true):
   * drivers that compile a shader at its first dispatch (Mesa's lavapipe JIT-compiles there)
   * then do so here, so the first run costs what later ones do and the compile time shows as
   * compile time (exe.compileStats' runner stage), not as the first step's.
   */
  readonly warmUp?: boolean;
  /**
   * Outputs larger than this many bytes are read back in chunks of this size through a few
   * staging buffers of this size (default 8 MiB; a multiple of 4): the device copies the next
   * chunks while the host copies one out.
   */
  readonly readbackChunkBytes?: number;
  /**
   * Sleep on a timer through most of a run's expected device time before asking for its
   * readback (default false; k.compile turns it on for a software adapter): Dawn's Node
   * binding busy-polls while a map is pending, which on a CPU adapter takes a core from the
   * kernels (see quiet-wait.ts). The warm-up dispatches (`warmUp`) are then waited for the same
   * way, each through a 4-byte probe of its own (waitInOrder): on lavapipe they are the JIT
   * compile, and the polling loop would take a core from it for all that time; and the
   * runner's pipelines are created on this thread (createPipelineNow), since a pending
   * createComputePipelineAsync spins the same loop.
   */
  readonly quietWait?: boolean;
}

const webGpuRunnerOptionKeys = Object.keys({
  shared: true,
  progress: true,
  progressAfterMs: true,
  warmUp: true,
  readbackChunkBytes: true,
  quietWait: true,
} satisfies Record<keyof WebGpuRunnerOptions, true>);

interface Launch {
  /** Index in the artifact's kernels. */
  readonly index: number;
  readonly name: string;
  readonly pipeline: GPUComputePipeline;
  readonly bindGroup: GPUBindGroup;
  readonly workgroups: readonly [number, number, number];
  /** Under a symbolic batch: how the dispatch shrinks with the run's size. */
  readonly symbolic?: SymbolicDispatch;
  /** Runs the kernel's quick variant (WebGpuArtifactKernel.quick): until its tuned pipeline is swapped in, or for good if that failed. */
  readonly quick?: boolean;
  /** Running the kernel's quick variant: the tuned source and workgroups, swapped in once created. */
  readonly tuned?: { readonly source: string; readonly workgroups: readonly [number, number, number]; readonly bindings: readonly number[] };
}

/** The warm-up dispatches a runner made while being created (WebGpuRunnerOptions.warmUp). */
export interface WebGpuWarmUpStats {
  /** One per pipeline new to the device. */
  readonly dispatches: number;
  /** Waited for without Dawn's polling loop (WebGpuRunnerOptions.quietWait): each through a probe of its own, mapped in order. */
  readonly quiet: boolean;
  /** Quiet: maps asked for too early (the driver was still compiling) and cancelled. */
  readonly cancelledMaps: number;
}

/** What a runner dispatched: deterministic counts for tests and benchmarks. */
export interface WebGpuDispatchStats {
  readonly dispatches: number;
  /** Workgroups dispatched, summed (fewer at a small symbolic batch). */
  readonly workgroups: number;
  /** Dispatches that ran a kernel's quick variant (tiered start: the first run only). */
  readonly quickDispatches: number;
}

/**
 * The workgroup counts of a dispatch for a run of size `n`: the threads its sections need at
 * n, folded with the compiled x and y counts kept (the shader's flat index bakes them in), so
 * every needed thread keeps its index and the bounds checks stay the maximum's.
 */
export function shrunkWorkgroups(full: readonly [number, number, number], sym: SymbolicDispatch, n: number): [number, number, number] {
  const w = neededWorkgroups(sym, n);
  const [nx, ny, nz] = full;
  if (w >= nx * ny * nz) return [nx, ny, nz];
  if (w <= nx) return [w, w > 0 ? 1 : 0, w > 0 ? 1 : 0];
  if (w <= nx * ny) return [nx, Math.ceil(w / nx), 1];
  return [nx, ny, Math.ceil(w / (nx * ny))];
}

/**
 * State several runners on one device share (the programs of one model): one GPU buffer per
 * state input, bound by every runner whose layout gives that input a buffer of its own, and
 * per name the host array standing for the buffer's current value (so no runner uploads it again).
 */
export interface WebGpuSharedState {
  readonly device: GPUDevice;
  /** Names of the state inputs (parameters, buffers, optimizer state). */
  readonly names: ReadonlySet<string>;
  readonly buffers: Map<string, GPUBuffer>;
  readonly resident: Map<string, RuntimeData>;
}

/**
 * A kernel rendered for subgroups (codegen/wgsl/matmul.ts's subgroup form: `enable subgroups;`
 * and a `// requires subgroups of size N` line) needs the device's `subgroups` feature and, where
 * the device says its subgroup sizes, exactly that size: its broadcasts assume N lanes.
 */
function checkSubgroups(device: GPUDevice, artifact: Artifact): void {
  for (const k of artifact.kernels) {
    const m = /\/\/ requires subgroups of size (\d+)\n/.exec(k.source);
    if (!m) continue;
    if (!device.features.has("subgroups" as GPUFeatureName))
      throw new Error(
        `artifact ${artifact.name}: kernel ${k.name} uses subgroup operations (compiled for a device with subgroups), and this device has no 'subgroups' feature`,
      );
    const info = (device as { adapterInfo?: { subgroupMinSize?: number; subgroupMaxSize?: number } }).adapterInfo;
    const size = Number(m[1]);
    if (info?.subgroupMinSize !== undefined && (info.subgroupMinSize !== size || info.subgroupMaxSize !== size))
      throw new Error(
        `artifact ${artifact.name}: kernel ${k.name} was compiled for subgroups of ${size} lanes, and this device's are ${info.subgroupMinSize}-${info.subgroupMaxSize} (recompile on this device)`,
      );
  }
}

export class WebGpuArtifactRunner implements ResidentOwner {
  private readonly counter = new IoCounter();
  private readonly released = new WeakSet<ResidentValue>();
  private runs = 0;
  /** Buffers made for this run only (kept values copied aside), destroyed when it ends. */
  private readonly scratch: GPUBuffer[] = [];
  private readonly slots: GPUBuffer[];
  private launches: Launch[] = [];
  private dispatchCount = 0;
  private quickDispatchCount = 0;
  private workgroupCount = 0;
  /** Buffers some dispatch reads its symbolic size from, and the value each run wrote there. */
  private get sizeInputs(): ReadonlySet<number> {
    return (this.sizeBuffers ??= new Set(this.launches.flatMap((l) => (l.symbolic ? [l.symbolic.size] : []))));
  }
  private sizeBuffers: Set<number> | undefined;
  private readonly symbolicSize = new Map<number, number>();
  private staging: GPUBuffer | undefined;
  private readbackChunkBytes = READBACK_CHUNK_BYTES;
  /** The chunk staging buffers (MAP_READ, readbackChunkBytes each), made by the first run that reads an output in chunks. */
  private chunkStaging: GPUBuffer[] = [];
  /** Per state input: the data array last returned for the output that updates it (already on the device); shared with the runners binding the same state. */
  private readonly resident: Map<string, RuntimeData>;
  /** Slots that are another owner's GPU buffer (shared state): not destroyed with this runner. */
  private readonly borrowed = new Set<number>();
  /** Whether every state input of the artifact is bound to the shared state's buffer. */
  readonly sharesState: boolean;
  private readonly sharedNames: ReadonlySet<string> | undefined;
  private readonly aliasOutput = new Map<string, ArtifactIO>();
  /** Bounce buffer for copy-backs within one slot (WebGPU forbids a buffer copying to itself). */
  private readonly copyScratch: GPUBuffer | undefined;
  /** The timestamp query set and its buffers: made by the first profiled run on a device with `timestamp-query`, never otherwise. */
  private queries: { readonly set: GPUQuerySet; readonly resolve: GPUBuffer; readonly read: GPUBuffer } | undefined;
  /** Settles when the last queued run or read has (never rejects). */
  private tail: Promise<unknown> = Promise.resolve();
  /** How long a run's submission takes, slept through before its readback is mapped (WebGpuRunnerOptions.quietWait). */
  private runWait = new QuietWait(false);
  /** The same for a profiled run's kernels, so the polling does not slow the kernels it times. */
  private profileWait = new QuietWait(false);
  /** With quietWait: a 4-byte MAP_READ buffer each run's commands write last (what runWait maps), and when they were submitted. */
  private probe: GPUBuffer | undefined;
  private submittedAt = 0;
  private warmUps: WebGpuWarmUpStats = { dispatches: 0, quiet: false, cancelledMaps: 0 };

  private constructor(
    private readonly device: GPUDevice,
    readonly artifact: Artifact,
    shared?: WebGpuSharedState,
  ) {
    checkArtifactVersion(artifact);
    if (artifact.target !== "webgpu") throw new Error(`artifact ${artifact.name}: built for target '${artifact.target}', not 'webgpu'`);
    const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
    for (const o of artifact.outputs) if (o.aliases !== undefined) this.aliasOutput.set(o.aliases, o);
    const sharedSlots = shared && shared.device === device ? this.sharedSlots(shared) : undefined;
    this.sharesState = sharedSlots !== undefined;
    this.sharedNames = sharedSlots ? shared!.names : undefined;
    this.resident = sharedSlots ? shared!.resident : new Map();
    const fresh: GPUBuffer[] = [];
    this.slots = artifact.memory.slotBytes.map((bytes, i) => {
      const size = Math.max(ELEMENT_BYTES, Math.ceil(bytes / 4) * 4);
      const name = sharedSlots?.get(i);
      if (name === undefined) {
        const buffer = createBuffer(device, { size, usage, label: `${artifact.name}/slot${i}` });
        fresh.push(buffer);
        return buffer;
      }
      let buffer = shared!.buffers.get(name);
      if (!buffer || buffer.size < size) {
        // The first runner to bind a state entry makes its buffer (a later one needing more is not expected: one tensor per slot).
        if (buffer) throw new Error(`artifact ${artifact.name}: shared state '${name}' needs ${size} bytes, its buffer has ${buffer.size}`);
        buffer = createBuffer(device, { size, usage, label: `state/${name}` });
        shared!.buffers.set(name, buffer);
        fresh.push(buffer);
      }
      this.borrowed.add(i);
      return buffer;
    });
    // The slots the host writes get their first contents from the host, whole: Dawn (Vulkan,
    // measured on lavapipe) writes a buffer in place only if no command initialized it first
    // (a warm-up dispatch, a lazy clear); else every later writeBuffer goes through a fresh
    // staging allocation (the 16M elementwise run's two 64 MB inputs: ~150 ms each, then ~10).
    const inputSlots = new Set(artifact.inputs.map((io) => this.slots[artifact.buffers[io.buffer]!.slot]!));
    const written = fresh.filter((b) => inputSlots.has(b));
    if (written.length > 0) {
      const zeros = new Uint8Array(Math.max(...written.map((b) => b.size)));
      for (const b of written) device.queue.writeBuffer(b, 0, zeros, 0, b.size);
    }
    let scratchBytes = 0;
    for (const c of artifact.memory.copies) {
      const from = this.placeOf(c.output);
      if (from.gpu === this.placeOf(c.input).gpu) scratchBytes = Math.max(scratchBytes, from.bytes);
    }
    this.copyScratch =
      scratchBytes > 0
        ? createBuffer(device, { size: scratchBytes, usage: GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST, label: `${artifact.name}/copy-back` })
        : undefined;
  }

  /**
   * Slot → state name for a shared state: every state input must have a slot of its own (at
   * offset 0, holding nothing but it and the output updating it in place); else undefined and
   * this runner keeps private copies (the state moves through the host between runners).
   */
  private sharedSlots(shared: WebGpuSharedState): Map<number, string> | undefined {
    const slots = new Map<number, string>();
    for (const io of this.artifact.inputs) {
      if (!shared.names.has(io.name)) continue;
      const own = this.artifact.buffers[io.buffer]!;
      const inPlace = this.aliasOutput.get(io.name)?.buffer;
      const alone = this.artifact.buffers.every((b, id) => b.slot !== own.slot || id === io.buffer || (id === inPlace && (b.offset ?? 0) === 0));
      if ((own.offset ?? 0) !== 0 || !alone) return undefined;
      slots.set(own.slot, io.name);
    }
    return slots;
  }

  /** Kept values may move between runners on one device. */
  get residence(): object {
    return this.device;
  }

  get name(): string {
    return `the webgpu runner of ${this.artifact.name}`;
  }

  /** Runs completed: a kept value of an earlier run is stale. */
  get generation(): number {
    return this.runs;
  }

  /** What the last run copied between the host and the device, and allocated. */
  get io(): IoCounters {
    return this.counter.snapshot();
  }

  /** A handle on output `name` as the last run left it on the device (see ResidentValue for how long it stays valid). */
  keep(name: string): ResidentValue {
    const o = this.artifact.outputs.find((x) => x.name === name);
    if (!o) throw new Error(`keep: '${name}' is not an output of ${this.artifact.name}`);
    return { owner: this, output: name, buffer: o.buffer, dtype: o.dtype, shape: [...o.shape], generation: this.runs };
  }

  isReleased(value: ResidentValue): boolean {
    return this.released.has(value);
  }

  release(value: ResidentValue): void {
    this.released.add(value);
  }

  readResident(value: ResidentValue, into?: RuntimeData): Promise<RuntimeData> {
    const output = this.artifact.outputs.find((o) => o.name === value.output)!;
    checkResident(value, output, this.device);
    return this.serialized(async () => {
      checkResident(value, output, this.device);
      const p = this.placeOf(value.buffer);
      const count = numel(value.shape);
      const data = into ?? artifactArray(value.dtype, count);
      if (p.bytes === 0) return data;
      const staging = createBuffer(this.device, {
        size: p.bytes,
        usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
        label: `${this.artifact.name}/read-kept`,
      });
      try {
        const encoder = this.device.createCommandEncoder();
        encoder.copyBufferToBuffer(p.gpu, p.offset, staging, 0, p.bytes);
        this.device.queue.submit([encoder.finish()]);
        await staging.mapAsync(GPUMapMode.READ, 0, p.bytes);
        copyFromDevice(value.dtype, staging.getMappedRange(0, p.bytes), 0, data);
        staging.unmap();
      } finally {
        destroyBuffer(staging);
      }
      return data;
    });
  }

  /**
   * Creates every pipeline at once (createComputePipelineAsync: the driver compiles them in
   * parallel where it can; with quietWait one after another on this thread, createPipelineNow),
   * warms each new one with a one-workgroup dispatch as soon as it exists (see
   * WebGpuRunnerOptions.warmUp), and reports progress while that takes long.
   */
  static async create(device: GPUDevice, artifact: Artifact, opts: WebGpuRunnerOptions = {}): Promise<WebGpuArtifactRunner> {
    refuseUnknownOptions("webgpu runner", opts, webGpuRunnerOptionKeys);
    const f16 = artifact.kernels.find((k) => k.source.includes("\nenable f16;"));
    if (f16 && !device.features.has("shader-f16"))
      throw new Error(`artifact ${artifact.name}: kernel ${f16.name} uses f16 storage (compiled with shaderF16), and this device has no 'shader-f16' feature`);
    checkSubgroups(device, artifact);
    const runner = new WebGpuArtifactRunner(device, artifact, opts.shared);
    if (opts.readbackChunkBytes !== undefined) {
      if (!Number.isInteger(opts.readbackChunkBytes) || opts.readbackChunkBytes < 4 || opts.readbackChunkBytes % 4 !== 0)
        throw new Error(`webgpu runner: readbackChunkBytes must be a positive multiple of 4, got ${opts.readbackChunkBytes}`);
      runner.readbackChunkBytes = opts.readbackChunkBytes;
    }
    if (opts.quietWait === true) {
      runner.runWait = new QuietWait(true);
      runner.profileWait = new QuietWait(true);
      if (runner.slots.length > 0)
        runner.probe = createBuffer(device, { size: ELEMENT_BYTES, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST, label: `${artifact.name}/probe` });
    }
    const started = performance.now();
    const after = opts.progressAfterMs ?? 1000;
    const total = artifact.kernels.length;
    let done = 0;
    let reported = false;
    const ready = (): void => {
      done++;
      if (!opts.progress) return;
      const elapsedMs = performance.now() - started;
      if (elapsedMs < after && !(reported && done === total)) return;
      reported = true;
      opts.progress({ done, total, elapsedMs });
    };
    const cache = pipelineCache.get(device);
    const fresh = new Set(
      artifact.kernels.flatMap((k) => [k.source, (k as WebGpuArtifactKernel).quick?.source ?? k.source].map(pipelineKey)).filter((key) => !cache?.has(key)),
    );
    // Warm-up dispatches, one submission per new pipeline, each as soon as its pipeline is made
    // (a driver that compiles at first dispatch starts on it while the others are still being
    // created; its queue compiles them one after another). Before any run the slots hold nothing
    // a run has not yet to upload or compute. With quietWait each submission also copies 4 bytes
    // into a probe of its own, waited for in order without Dawn's polling loop (waitInOrder):
    // onSubmittedWorkDone would keep a core busy polling through the whole compile.
    const warmUp = opts.warmUp ?? true;
    const quiet = opts.quietWait === true && typeof setImmediate === "function" && runner.slots.length > 0;
    runner.tuneOnDemand = quiet;
    const warmed = new Set<string>();
    const pending: Promise<void>[] = [];
    const probes: GPUBuffer[] = [];
    const warm = (l: {
      readonly name: string;
      readonly source: string;
      readonly pipeline: GPUComputePipeline;
      readonly bindGroup: GPUBindGroup;
      readonly workgroups: readonly number[];
    }): void => {
      const key = pipelineKey(l.source);
      if (!warmUp || !fresh.has(key) || warmed.has(key) || !(l.workgroups[0]! > 0)) {
        ready();
        return;
      }
      warmed.add(key);
      const encoder = device.createCommandEncoder();
      const pass = encoder.beginComputePass();
      pass.setPipeline(l.pipeline);
      pass.setBindGroup(0, l.bindGroup);
      pass.dispatchWorkgroups(1, 1, 1);
      pass.end();
      if (quiet) {
        const probe = createBuffer(device, {
          size: ELEMENT_BYTES,
          usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
          label: `${artifact.name}/warm-up ${l.name}`,
        });
        encoder.copyBufferToBuffer(runner.slots[0]!, 0, probe, 0, ELEMENT_BYTES);
        probes.push(probe);
      }
      device.queue.submit([encoder.finish()]);
      if (!quiet) pending.push(device.queue.onSubmittedWorkDone().then(ready));
    };
    let launches: Launch[];
    try {
      launches = await Promise.all(
        artifact.kernels.map(async (k, index) => {
          if (!k.workgroups || !k.bindings) throw new Error(`artifact ${artifact.name}: kernel ${k.name} has no workgroups or bindings`);
          // A kernel with a quick variant starts with it (unless its tuned pipeline is made already); the tuned one follows between runs.
          const quickOf = (k as WebGpuArtifactKernel).quick;
          const quick = quickOf && !cache?.has(pipelineKey(k.source)) ? quickOf : undefined;
          const source = quick?.source ?? k.source;
          const workgroups = quick?.workgroups ?? k.workgroups;
          let pipeline: GPUComputePipeline;
          let bindGroup: GPUBindGroup;
          if (quiet && !pipelineCache.get(device)?.has(pipelineKey(source))) {
            // Created and its warm-up submitted before the next kernel's creation starts (createPipelineNow).
            const made = createPipelineNow(device, k.name, source);
            // An invalid pipeline's bind group and dispatch fail too: `checked` names the cause.
            device.pushErrorScope("validation");
            bindGroup = runner.bindGroupFor(made.pipeline, k.bindings);
            warm({ name: k.name, source, pipeline: made.pipeline, bindGroup, workgroups });
            void device.popErrorScope();
            pipeline = await made.checked;
          } else {
            pipeline = await pipelineFor(device, k.name, source);
            bindGroup = runner.bindGroupFor(pipeline, k.bindings);
            warm({ name: k.name, source, pipeline, bindGroup, workgroups });
          }
          const launch: Launch = {
            index,
            name: k.name,
            pipeline,
            bindGroup,
            workgroups,
            ...(k.symbolic ? { symbolic: k.symbolic } : {}),
            ...(quick ? { quick: true, tuned: { source: k.source, workgroups: k.workgroups, bindings: k.bindings } } : {}),
          };
          return launch;
        }),
      );
      await Promise.all(pending);
      const cancelledMaps = probes.length > 0 ? await waitInOrder(probes, ELEMENT_BYTES, ready) : 0;
      runner.warmUps = { dispatches: warmed.size, quiet: probes.length > 0, cancelledMaps };
    } finally {
      for (const p of probes) destroyBuffer(p);
    }
    runner.launches = launches.filter((l) => l.workgroups[0] > 0);
    return runner;
  }

  private bindGroupFor(pipeline: GPUComputePipeline, bindings: readonly number[]): GPUBindGroup {
    return this.device.createBindGroup({
      layout: pipeline.getBindGroupLayout(0),
      entries: bindings.map((slot, binding) => ({ binding, resource: { buffer: this.slots[slot]! } })),
    });
  }

  /** What create's warm-up did (deterministic counts for tests). */
  get warmUpStats(): WebGpuWarmUpStats {
    return this.warmUps;
  }

  /** Kernels still running their quick variant (tiered start: see WebGpuArtifactKernel.quick). */
  get quickKernels(): number {
    return this.launches.filter((l) => l.quick).length;
  }

  /** The tuned pipelines of the kernels still quick, being created (started by the first run's end); settles once each has been swapped in or has failed. */
  private tuning: Promise<void> | undefined;
  /** Tuned sources that did not compile: thrown by the next run (once), the kernel keeps its quick variant. */
  private tuningFailures: Error[] = [];
  private destroyed = false;
  /**
   * A CPU adapter's runner (quietWait): the tuned pipelines are created on this thread when the
   * second run starts (createPipelineNow), not in Dawn's threads as the first run ends. On
   * lavapipe creation is cheap (the JIT compiles at the first dispatch, in that run either way),
   * and a process that exits after one run then leaves no creation in flight: one that did
   * (process.exit while Dawn's threads compiled) intermittently printed a SPIR-V validation
   * dump ("error: SPIRV line …: Operand … cannot be a type") on its stdout as it exited.
   */
  private tuneOnDemand = false;

  /**
   * Tiered start, second tier: creates the tuned pipeline of every kernel still quick, all at
   * once (createComputePipelineAsync; on this thread with tuneOnDemand), and swaps each in as it
   * is created. Started when the first run has ended (with tuneOnDemand: when the second starts);
   * the next run waits for it, so from the second run on every launch runs its
   * tuned kernel. No warm-up dispatch: a driver compiling at first dispatch (lavapipe, on its one
   * queue thread) compiles them in that run, exactly as a warm-up queued ahead of it would make
   * the run wait; a driver compiling at creation does it here, in parallel.
   */
  private startTuning(): Promise<void> {
    if (this.tuning) return this.tuning;
    const quick = this.launches.filter((l) => l.tuned);
    if (quick.length === 0 || this.destroyed) return Promise.resolve();
    const { device } = this;
    this.tuning = Promise.all(
      quick.map(async (l) => {
        const tuned = l.tuned!;
        let pipeline: GPUComputePipeline;
        try {
          pipeline =
            this.tuneOnDemand && !pipelineCache.get(device)?.has(pipelineKey(tuned.source))
              ? await createPipelineNow(device, l.name, tuned.source).checked
              : await pipelineFor(device, l.name, tuned.source);
        } catch (e) {
          // The quick variant stays (it computes the same bits); the failure is thrown by the next run.
          const { tuned: _dropped, ...rest } = l;
          this.launches[this.launches.indexOf(l)] = rest;
          this.tuningFailures.push(e as Error);
          return;
        }
        if (this.destroyed) return;
        const { tuned: _tuned, quick: _quick, ...rest } = l;
        this.launches[this.launches.indexOf(l)] = { ...rest, pipeline, bindGroup: this.bindGroupFor(pipeline, tuned.bindings), workgroups: tuned.workgroups };
      }),
    ).then(() => undefined);
    return this.tuning;
  }

  /** Resolves when every kernel runs its tuned source (creating the tuned pipelines now if no run has started it). */
  async whenTuned(): Promise<void> {
    await this.startTuning();
  }

  placeOf(buffer: number): { gpu: GPUBuffer; offset: number; bytes: number } {
    const b = this.artifact.buffers[buffer]!;
    return { gpu: this.slots[b.slot]!, offset: b.offset ?? 0, bytes: deviceBytes(b.dtype, numel(b.shape)) };
  }

  private serialized<T>(work: () => Promise<T>): Promise<T> {
    const result = this.tail.then(work);
    this.tail = result.catch(() => undefined);
    return result;
  }

  /**
   * Runs every kernel once. Concurrent calls run one after another, in call order; a queued
   * call reads `inputs` when its turn comes, so the caller must not change them before it settles.
   */
  run(inputs: Readonly<Record<string, RuntimeTensor>>, opts: WebGpuRunOptions = {}): Promise<Record<string, RuntimeTensor>> {
    return this.serialized(() => this.runNow(inputs, opts));
  }

  private async runNow(inputs: Readonly<Record<string, RuntimeTensor>>, opts: WebGpuRunOptions): Promise<Record<string, RuntimeTensor>> {
    this.counter.reset();
    // Tiered start: a run after the first waits for the tuned pipelines (all swapped in, or failed: a failure is this run's error, once).
    if (this.tuneOnDemand && this.runs > 0 && this.launches.some((l) => l.tuned)) void this.startTuning();
    if (this.tuning) await this.tuning;
    const failed = this.tuningFailures.shift();
    if (failed) {
      this.tuningFailures = [];
      throw failed;
    }
    try {
      return await this.runChecked(inputs, opts);
    } finally {
      this.runs++;
      for (const b of this.scratch.splice(0)) destroyBuffer(b);
      if (!this.tuneOnDemand && this.launches.some((l) => l.tuned)) void this.startTuning();
    }
  }

  private async runChecked(inputs: Readonly<Record<string, RuntimeTensor>>, opts: WebGpuRunOptions): Promise<Record<string, RuntimeTensor>> {
    const { device } = this;
    // A run the device refuses (an invalid copy, a binding over a limit) must fail, not return
    // whatever the staging buffer held: its validation errors land in a scope of its own. No
    // await between push and pop, so no other runner's work shares the scope.
    // (A profiled run awaits between its submissions: its scope may catch another runner's errors too.)
    device.pushErrorScope("validation");
    let submitted: Submitted;
    let validation!: Promise<GPUError | null>;
    try {
      submitted = opts.profile ? await this.submitProfiled(inputs, opts, opts.profile) : this.submit(inputs, opts);
    } finally {
      validation = device.popErrorScope();
    }
    const readStarted = opts.profile ? performance.now() : 0;
    const { wanted, stagingBytes, stagingOffset, chunks } = submitted;
    let failure: unknown;
    // Quietly: no map is asked for (so Dawn does not poll) until the work is about done.
    if (!opts.profile) {
      if (this.probe)
        try {
          await this.runWait.map(this.probe, ELEMENT_BYTES, this.submittedAt);
          this.probe.unmap();
        } catch (e) {
          failure = e;
        }
      startChunkMaps(this.chunkStaging, submitted);
    }
    const reading = new ChunkReader(device, this.chunkStaging, submitted);
    let mapped: ArrayBuffer | undefined;
    try {
      if (failure !== undefined) {
        // The probe failed: the readback is not read (abandoned below).
      } else if (stagingBytes > 0) {
        await this.staging!.mapAsync(GPUMapMode.READ, 0, stagingBytes);
        mapped = this.staging!.getMappedRange(0, stagingBytes);
      } else if (chunks.length === 0) await device.queue.onSubmittedWorkDone();
    } catch (e) {
      failure = e;
    }
    const refused = await validation;
    if (refused || failure !== undefined) {
      if (mapped) this.staging!.unmap();
      await reading.abandon();
      if (refused) throw new Error(`webgpu: ${this.artifact.name}: the device refused the run: ${refused.message}`);
      throw failure;
    }

    // Each output is copied once, from the mapped staging range or its chunks into its array (the caller's `out`, else a fresh one).
    const out: Record<string, RuntimeTensor> = {};
    const chunked = new Map<string, RuntimeData>();
    try {
      for (const o of wanted) {
        const buffer = this.artifact.buffers[o.buffer]!;
        if (buffer.kind === "input") {
          // An output that is an input passes the caller's data through.
          const given = this.artifact.inputs.find((i) => i.buffer === o.buffer)!;
          out[o.name] = { dtype: o.dtype, shape: [...o.shape], data: inputs[given.name]!.data.slice() };
          continue;
        }
        const data = outputArray(o, opts.out, this.counter);
        const at = stagingOffset.get(o.name);
        if (at !== undefined) copyFromDevice(o.dtype, mapped ?? new ArrayBuffer(0), at, data);
        else chunked.set(o.name, data);
        this.counter.bytesOut += deviceBytes(o.dtype, numel(o.shape));
        out[o.name] = { dtype: o.dtype, shape: [...o.shape], data };
      }
    } finally {
      if (mapped) this.staging!.unmap();
    }
    try {
      await reading.read(chunked);
    } finally {
      await reading.abandon();
    }
    const chunkRefused = await reading.refused();
    if (chunkRefused) throw new Error(`webgpu: ${this.artifact.name}: the device refused the run's readback: ${chunkRefused.message}`);
    if (opts.profile) opts.profile.readbackMs += performance.now() - readStarted;
    // The device now holds each state output in its input's place (in place, or by the copy-back).
    for (const [input, o] of this.aliasOutput) {
      const t = out[o.name];
      if (this.artifact.buffers[o.buffer]!.kind === "input") this.resident.delete(input);
      // Not read back: the caller's array now stands for the updated value on the device.
      else {
        const stand = t?.data ?? inputs[input]?.data;
        if (stand) this.resident.set(input, stand);
        else this.resident.delete(input);
      }
    }
    return out;
  }

  /** Writes the inputs that changed, encodes the dispatches, readback and copy-backs, and submits once (no await). */
  private submit(inputs: Readonly<Record<string, RuntimeTensor>>, opts: WebGpuRunOptions): Submitted {
    const { device } = this;
    const fromKept = this.residentCopies(opts.resident ?? {});
    this.writeInputs(inputs, opts);
    const encoder = device.createCommandEncoder();
    fromKept(encoder);
    if (this.launches.length > 0) {
      const pass = encoder.beginComputePass();
      for (const l of this.launches) {
        pass.setPipeline(l.pipeline);
        pass.setBindGroup(0, l.bindGroup);
        pass.dispatchWorkgroups(...this.groupsOf(l));
      }
      pass.end();
    }
    const submitted = this.encodeReadback(encoder, opts);
    // The probe is written last: runChecked waits for it quietly before mapping the readback.
    if (this.probe) encoder.copyBufferToBuffer(this.slots[0]!, 0, this.probe, 0, ELEMENT_BYTES);
    device.queue.submit([encoder.finish()]);
    // Only a quiet runner reads the clock on a plain run (test/targets/profile-off.test.ts).
    if (this.probe) this.submittedAt = performance.now();
    // The chunks' maps start once the probe maps (runChecked).
    return submitted;
  }

  /**
   * The profiled run: the inputs' upload awaited and timed, then the kernels — each in a
   * compute pass of its own with timestamp writes where the device has `timestamp-query`, else
   * each in a submission of its own timed on the host — then the readback, submitted apart.
   */
  private async submitProfiled(inputs: Readonly<Record<string, RuntimeTensor>>, opts: WebGpuRunOptions, profile: RunProfiler): Promise<Submitted> {
    const { device } = this;
    let t0 = performance.now();
    const fromKept = this.residentCopies(opts.resident ?? {});
    this.writeInputs(inputs, opts);
    const upload = device.createCommandEncoder();
    fromKept(upload);
    device.queue.submit([upload.finish()]);
    await device.queue.onSubmittedWorkDone();
    let t1 = performance.now();
    profile.inputMs += t1 - t0;
    if (device.features.has("timestamp-query")) {
      profile.clock = "device-timestamps";
      const count = 2 * this.launches.length;
      const q = (this.queries ??= {
        set: device.createQuerySet({ type: "timestamp", count: Math.max(2, count), label: `${this.artifact.name}/profile` }),
        resolve: createBuffer(device, { size: 8 * Math.max(2, count), usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC }),
        read: createBuffer(device, { size: 8 * Math.max(2, count), usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST }),
      });
      const encoder = device.createCommandEncoder();
      this.launches.forEach((l, i) => {
        const pass = encoder.beginComputePass({ timestampWrites: { querySet: q.set, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 } });
        pass.setPipeline(l.pipeline);
        pass.setBindGroup(0, l.bindGroup);
        pass.dispatchWorkgroups(...this.groupsOf(l));
        pass.end();
      });
      if (count > 0) {
        encoder.resolveQuerySet(q.set, 0, count, q.resolve, 0);
        encoder.copyBufferToBuffer(q.resolve, 0, q.read, 0, 8 * count);
      }
      device.queue.submit([encoder.finish()]);
      const submittedAt = performance.now();
      if (count > 0) {
        // Sleeping too long costs wall time only: the timestamps time the kernels on the device.
        this.profileWait.seed(this.runWait.expectedMs);
        await this.profileWait.map(q.read, 8 * count, submittedAt);
        const stamps = new BigUint64Array(q.read.getMappedRange(0, 8 * count).slice(0));
        q.read.unmap();
        this.launches.forEach((l, i) => {
          const begin = stamps[2 * i]!;
          const end = stamps[2 * i + 1]!;
          recordKernel(profile, l.index, end > begin ? Number(end - begin) / 1e6 : 0);
        });
      }
    } else {
      profile.clock = "host-per-submission";
      for (const l of this.launches) {
        const started = performance.now();
        const encoder = device.createCommandEncoder();
        const pass = encoder.beginComputePass();
        pass.setPipeline(l.pipeline);
        pass.setBindGroup(0, l.bindGroup);
        pass.dispatchWorkgroups(...this.groupsOf(l));
        pass.end();
        device.queue.submit([encoder.finish()]);
        await device.queue.onSubmittedWorkDone();
        recordKernel(profile, l.index, performance.now() - started);
      }
    }
    t0 = performance.now();
    const encoder = device.createCommandEncoder();
    const submitted = this.encodeReadback(encoder, opts);
    device.queue.submit([encoder.finish()]);
    startChunkMaps(this.chunkStaging, submitted);
    t1 = performance.now();
    profile.readbackMs += t1 - t0;
    return submitted;
  }

  /** Dispatches and workgroups since the runner was made (see WebGpuDispatchStats). */
  get dispatchStats(): WebGpuDispatchStats {
    return { dispatches: this.dispatchCount, workgroups: this.workgroupCount, quickDispatches: this.quickDispatchCount };
  }

  /** A launch's workgroup counts for this run (fewer under a small symbolic batch), counted. */
  private groupsOf(l: Launch): readonly [number, number, number] {
    const n = l.symbolic ? this.symbolicSize.get(l.symbolic.size) : undefined;
    const g = l.symbolic && n !== undefined ? shrunkWorkgroups(l.workgroups, l.symbolic, n) : l.workgroups;
    this.dispatchCount++;
    if (l.quick) this.quickDispatchCount++;
    this.workgroupCount += g[0] * g[1] * g[2];
    return g;
  }

  /** Uploads the inputs that changed (not those taken from kept values). */
  private writeInputs(inputs: Readonly<Record<string, RuntimeTensor>>, opts: WebGpuRunOptions): void {
    const { device } = this;
    for (const io of this.artifact.inputs) {
      // A size taken from a kept value is not known on the host: that run dispatches in full.
      if (opts.resident?.[io.name] !== undefined) {
        this.symbolicSize.delete(io.buffer);
        continue;
      }
      const t = inputs[io.name];
      if (!t) throw new Error(`missing input '${io.name}'`);
      const count = inputFill(io, t);
      if (this.sizeInputs.has(io.buffer)) this.symbolicSize.set(io.buffer, Number(t.data[0]));
      if (this.resident.get(io.name) === t.data) continue;
      // A shared state entry holds what was written until a run updates it: the array stands for it.
      if (this.sharedNames?.has(io.name)) this.resident.set(io.name, t.data);
      else this.resident.delete(io.name);
      const p = this.placeOf(io.buffer);
      // A symbolic batch's run rows fill the buffer's leading rows only (inputFill).
      const bytes = count === numel(io.shape) ? p.bytes : deviceBytes(io.dtype, count);
      if (bytes > 0) device.queue.writeBuffer(p.gpu, p.offset, toDevice(io.dtype, t.data) as Float32Array<ArrayBuffer>);
      this.counter.bytesIn += bytes;
    }
  }

  /** Encodes the outputs' copies into the staging buffer, then the copy-backs of aliased outputs. */
  private encodeReadback(encoder: GPUCommandEncoder, opts: WebGpuRunOptions): Submitted {
    const { device } = this;
    // Read back before the copy-backs: an aliased output written aside is read from its own buffer.
    const wanted = this.artifact.outputs.filter((o) => opts.readback === undefined || opts.readback.includes(o.name));
    const fromDevice = wanted.filter((o) => this.artifact.buffers[o.buffer]!.kind !== "input");
    let stagingBytes = 0;
    const stagingOffset = new Map<string, number>();
    const chunks: ReadbackChunk[] = [];
    const chunkBytes = this.readbackChunkBytes;
    for (const o of fromDevice) {
      const bytes = deviceBytes(o.dtype, numel(o.shape));
      if (bytes <= chunkBytes) {
        stagingOffset.set(o.name, stagingBytes);
        stagingBytes += bytes;
        continue;
      }
      // Chunks start at multiples of chunkBytes (a multiple of 4: whole words, so an even number of 16-bit elements).
      const p = this.placeOf(o.buffer);
      const per = elementDeviceBytes(o.dtype);
      const count = numel(o.shape);
      for (let done = 0; done < bytes; done += chunkBytes) {
        const at = done / per;
        chunks.push({
          output: o,
          from: p.gpu,
          fromOffset: p.offset + done,
          at,
          count: Math.min(chunkBytes / per, count - at),
          bytes: Math.min(chunkBytes, bytes - done),
        });
      }
    }
    while (chunks.length > 0 && this.chunkStaging.length < READBACK_CHUNK_BUFFERS)
      this.chunkStaging.push(
        createBuffer(device, {
          size: chunkBytes,
          usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
          label: `${this.artifact.name}/readback-chunk${this.chunkStaging.length}`,
        }),
      );
    if (stagingBytes > 0 && (!this.staging || this.staging.size < stagingBytes)) {
      if (this.staging) destroyBuffer(this.staging);
      this.staging = createBuffer(device, {
        size: stagingBytes,
        usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
        label: `${this.artifact.name}/readback`,
      });
    }
    for (const o of fromDevice) {
      const p = this.placeOf(o.buffer);
      const at = stagingOffset.get(o.name);
      if (p.bytes > 0 && at !== undefined) encoder.copyBufferToBuffer(p.gpu, p.offset, this.staging!, at, p.bytes);
    }
    chunks.slice(0, READBACK_CHUNK_BUFFERS).forEach((c, i) => encoder.copyBufferToBuffer(c.from, c.fromOffset, this.chunkStaging[i]!, 0, c.bytes));
    const copyBacks = (e: GPUCommandEncoder): void => {
      for (const c of this.artifact.memory.copies) {
        const from = this.placeOf(c.output);
        const to = this.placeOf(c.input);
        if (from.bytes === 0) continue;
        if (from.gpu !== to.gpu) e.copyBufferToBuffer(from.gpu, from.offset, to.gpu, to.offset, from.bytes);
        else {
          // Two tensors packed into one slot: bounce through the scratch buffer.
          e.copyBufferToBuffer(from.gpu, from.offset, this.copyScratch!, 0, from.bytes);
          e.copyBufferToBuffer(this.copyScratch!, 0, to.gpu, to.offset, from.bytes);
        }
      }
    };
    // The copy-backs follow every readback copy (as they always have): after the last chunk's when it is copied later.
    if (chunks.length <= READBACK_CHUNK_BUFFERS || this.artifact.memory.copies.length === 0) {
      copyBacks(encoder);
      return { wanted, stagingBytes, stagingOffset, chunks, chunkMaps: [] };
    }
    return { wanted, stagingBytes, stagingOffset, chunks, chunkMaps: [], afterChunks: copyBacks };
  }

  /**
   * Inputs taken from kept values on this device: each is copied, buffer to buffer, at the
   * start of the run's command buffer. A source that this run's uploads would overwrite first
   * (or that shares a GPU buffer with its destination) goes through a scratch buffer, copied
   * aside in a submit of its own before the uploads. Returns what encodes the copies.
   */
  private residentCopies(resident: NonNullable<RunIo["resident"]>): (encoder: GPUCommandEncoder) => void {
    const moves: { from: { gpu: GPUBuffer; offset: number; bytes: number }; to: { gpu: GPUBuffer; offset: number; bytes: number }; aside?: GPUBuffer }[] = [];
    const uploads = this.artifact.inputs.filter((i) => resident[i.name] === undefined).map((i) => this.placeOf(i.buffer));
    const overlaps = (a: { gpu: GPUBuffer; offset: number; bytes: number }, b: { gpu: GPUBuffer; offset: number; bytes: number }): boolean =>
      a.gpu === b.gpu && a.offset < b.offset + b.bytes && b.offset < a.offset + a.bytes;
    for (const [name, value] of Object.entries(resident)) {
      const io = this.artifact.inputs.find((i) => i.name === name);
      if (!io) throw new Error(`'${name}' is not an input of ${this.artifact.name}`);
      checkResident(value, io, this.device);
      const from = (value.owner as WebGpuArtifactRunner).placeOf(value.buffer);
      const to = this.placeOf(io.buffer);
      this.resident.delete(name);
      if (from.bytes === 0 || (from.gpu === to.gpu && from.offset === to.offset)) continue;
      const staged = from.gpu === to.gpu || uploads.some((u) => overlaps(u, from)) || moves.some((m) => overlaps(m.to, from));
      moves.push({
        from,
        to,
        ...(staged ? { aside: createBuffer(this.device, { size: from.bytes, usage: GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST }) } : {}),
      });
      this.counter.bytesOnDevice += from.bytes;
    }
    const aside = moves.filter((m) => m.aside);
    if (aside.length > 0) {
      const encoder = this.device.createCommandEncoder();
      for (const m of aside) encoder.copyBufferToBuffer(m.from.gpu, m.from.offset, m.aside!, 0, m.from.bytes);
      this.device.queue.submit([encoder.finish()]);
    }
    return (encoder) => {
      for (const m of moves) encoder.copyBufferToBuffer(m.aside ?? m.from.gpu, m.aside ? 0 : m.from.offset, m.to.gpu, m.to.offset, m.from.bytes);
      // Scratch buffers are destroyed when the run has finished.
      for (const m of aside) this.scratch.push(m.aside!);
    };
  }

  /**
   * Reads the device's current value of the named inputs: after a run, an input that an
   * output updates holds the new value (written in place or copied back), so this is how the
   * state (parameters, optimizer state) comes back to the host without a per-step readback.
   */
  readInputs(names: readonly string[]): Promise<Record<string, RuntimeTensor>> {
    return this.serialized(() => this.readInputsNow(names));
  }

  private async readInputsNow(names: readonly string[]): Promise<Record<string, RuntimeTensor>> {
    const ios = inputsNamed(this.artifact, names);
    let bytes = 0;
    const offsets = ios.map((io) => {
      const at = bytes;
      bytes += deviceBytes(io.dtype, numel(io.shape));
      return at;
    });
    const out: Record<string, RuntimeTensor> = {};
    if (bytes === 0) {
      for (const io of ios) out[io.name] = { dtype: io.dtype, shape: [...io.shape], data: fromDeviceWords(io.dtype, new ArrayBuffer(0), 0, 0) };
      return out;
    }
    const staging = createBuffer(this.device, {
      size: bytes,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
      label: `${this.artifact.name}/read-inputs`,
    });
    let mapped: ArrayBuffer;
    try {
      const encoder = this.device.createCommandEncoder();
      ios.forEach((io, i) => {
        const p = this.placeOf(io.buffer);
        if (p.bytes > 0) encoder.copyBufferToBuffer(p.gpu, p.offset, staging, offsets[i]!, p.bytes);
      });
      this.device.queue.submit([encoder.finish()]);
      await staging.mapAsync(GPUMapMode.READ, 0, bytes);
      mapped = staging.getMappedRange(0, bytes).slice(0);
      staging.unmap();
    } finally {
      destroyBuffer(staging);
    }
    ios.forEach((io, i) => {
      out[io.name] = { dtype: io.dtype, shape: [...io.shape], data: fromDeviceWords(io.dtype, mapped, offsets[i]!, numel(io.shape)) };
    });
    return out;
  }

  /** GPU buffers this runner holds now (one per memory slot, the readback buffer once a run made it, a copy-back bounce buffer where needed). */
  get liveBuffers(): number {
    return this.slots.length + (this.staging ? 1 : 0) + this.chunkStaging.length + (this.copyScratch ? 1 : 0) + (this.queries ? 2 : 0) + (this.probe ? 1 : 0);
  }

  /** Frees the device memory; the runner cannot run afterwards. */
  destroy(): void {
    this.destroyed = true;
    this.slots.forEach((b, i) => {
      if (!this.borrowed.has(i)) destroyBuffer(b);
    });
    if (this.staging) destroyBuffer(this.staging);
    this.staging = undefined;
    for (const b of this.chunkStaging.splice(0)) destroyBuffer(b);
    if (this.copyScratch) destroyBuffer(this.copyScratch);
    if (this.probe) destroyBuffer(this.probe);
    this.probe = undefined;
    if (this.queries) {
      this.queries.set.destroy();
      destroyBuffer(this.queries.resolve);
      destroyBuffer(this.queries.read);
      this.queries = undefined;
    }
  }
}

function toDevice(dtype: ArtifactDType, data: RuntimeData): Float32Array | Int32Array | Uint32Array {
  switch (dtype) {
    case "f32":
      return data instanceof Float32Array ? data : Float32Array.from(data);
    case "i32":
      return data instanceof Int32Array ? data : Int32Array.from(data);
    case "bool":
      return Uint32Array.from(data, (v) => (v !== 0 ? 1 : 0));
    case "f16":
    case "bf16": {
      // Two 16-bit patterns per word, element 2i in the low half (a Float32Array or Float64Array given is rounded first).
      const bits = data instanceof Uint16Array ? data : (artifactArrayFrom(dtype, data) as Uint16Array);
      if (bits.length % 2 === 0) return new Uint32Array(bits.buffer.slice(bits.byteOffset, bits.byteOffset + bits.byteLength));
      const words = new Uint16Array(bits.length + 1);
      words.set(bits);
      return new Uint32Array(words.buffer);
    }
  }
}

/** Bytes `count` elements of `dtype` take on the device: a u32 word each, f16/bf16 two to a word (codegen/wgsl/layout.ts). */
function deviceBytes(dtype: ArtifactDType, count: number): number {
  return dtype === "f16" || dtype === "bf16" ? Math.ceil(count / 2) * 4 : count * ELEMENT_BYTES;
}

/** Bytes one element of `dtype` takes within device words (2 for the packed 16-bit types). */
function elementDeviceBytes(dtype: ArtifactDType): number {
  return dtype === "f16" || dtype === "bf16" ? 2 : ELEMENT_BYTES;
}

/** Maps the staging buffers of the chunks the submitted commands copy (the first ones). */
function startChunkMaps(staging: readonly GPUBuffer[], submitted: Submitted): void {
  submitted.chunks.slice(0, READBACK_CHUNK_BUFFERS).forEach((c, i) => submitted.chunkMaps.push(staging[i]!.mapAsync(GPUMapMode.READ, 0, c.bytes)));
}

/**
 * Reads a run's output chunks through the chunk staging buffers in turn: waits for chunk i's
 * map, copies it out, unmaps its buffer and has the device copy chunk i + (number of buffers)
 * into it (its own submission, with the copy-backs after the last), so the device copies ahead
 * while the host copies. `abandon` leaves every staging buffer unmapped and the copy-backs
 * submitted whatever happened, so the next run finds them as it expects.
 */
class ChunkReader {
  private readonly pending: Promise<void>[];
  private issued: number;
  private readonly errors: Promise<GPUError | null>[] = [];

  constructor(
    private readonly device: GPUDevice,
    private readonly staging: readonly GPUBuffer[],
    private readonly submitted: Submitted,
  ) {
    this.pending = [...submitted.chunkMaps];
    this.issued = this.pending.length;
  }

  async read(arrays: ReadonlyMap<string, RuntimeData>): Promise<void> {
    const { chunks } = this.submitted;
    for (let i = 0; i < chunks.length; i++) {
      const c = chunks[i]!;
      const buffer = this.staging[i % this.staging.length]!;
      await this.pending[i];
      copyFromDevice(c.output.dtype, buffer.getMappedRange(0, c.bytes), 0, arrays.get(c.output.name)!, c.at, c.count);
      buffer.unmap();
      if (this.issued < chunks.length) this.issue();
    }
  }

  private issue(): void {
    const { chunks, afterChunks } = this.submitted;
    const j = this.issued++;
    const c = chunks[j]!;
    const buffer = this.staging[j % this.staging.length]!;
    this.device.pushErrorScope("validation");
    const encoder = this.device.createCommandEncoder();
    encoder.copyBufferToBuffer(c.from, c.fromOffset, buffer, 0, c.bytes);
    if (j === chunks.length - 1) afterChunks?.(encoder);
    this.device.queue.submit([encoder.finish()]);
    this.errors.push(this.device.popErrorScope());
    this.pending[j] = buffer.mapAsync(GPUMapMode.READ, 0, c.bytes);
  }

  /** Settles what is in flight and unmaps; submits the copy-backs if the last chunk was never copied. */
  async abandon(): Promise<void> {
    const { chunks, afterChunks } = this.submitted;
    if (afterChunks && this.issued < chunks.length) {
      this.issued = chunks.length;
      const encoder = this.device.createCommandEncoder();
      afterChunks(encoder);
      this.device.queue.submit([encoder.finish()]);
    }
    await Promise.allSettled(this.pending);
    for (const b of this.staging) if (b.mapState === "mapped") b.unmap();
  }

  async refused(): Promise<GPUError | null> {
    for (const e of await Promise.all(this.errors)) if (e) return e;
    return null;
  }
}

/** Copies `count` elements of `dtype` stored as device words at byte `offset` of `memory` into `into` from element `at`. */
function copyFromDevice(dtype: ArtifactDType, memory: ArrayBuffer, offset: number, into: RuntimeData, at = 0, count = into.length): void {
  switch (dtype) {
    case "f32":
      into.set(new Float32Array(memory, offset, count), at);
      return;
    case "i32":
      into.set(new Int32Array(memory, offset, count), at);
      return;
    case "bool": {
      const words = new Uint32Array(memory, offset, count);
      for (let i = 0; i < count; i++) into[at + i] = words[i] !== 0 ? 1 : 0;
      return;
    }
    case "f16":
    case "bf16":
      into.set(new Uint16Array(memory, offset, count), at);
      return;
  }
}

function fromDeviceWords(dtype: ArtifactDType, memory: ArrayBuffer, offset: number, count: number): RuntimeData {
  switch (dtype) {
    case "f32":
      return new Float32Array(memory.slice(offset, offset + count * ELEMENT_BYTES));
    case "i32":
      return new Int32Array(memory.slice(offset, offset + count * ELEMENT_BYTES));
    case "bool":
      return Uint8Array.from(new Uint32Array(memory, offset, count), (v) => (v !== 0 ? 1 : 0));
    case "f16":
    case "bf16":
      return new Uint16Array(memory.slice(offset, offset + count * 2));
  }
}
