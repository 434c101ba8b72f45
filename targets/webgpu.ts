// The "webgpu" target: WGSL (codegen/wgsl) on a WebGPU adapter (runtime/webgpu): navigator.gpu
// in a browser, Dawn in Node. Compiles for the adapter's limits (lowered through the `limits`
// option; tests force small ones to exercise splitting, packing and dispatch folding); without
// an adapter, rendering uses WebGPU's guaranteed minimums (webGpuDefaultLimits).

import { compileWith, type Compiled, type DriverOptions } from "../compiler/compile.ts";
import type { WebGpuArtifactRunner } from "../runtime/webgpu/run-artifact.ts";
import type { FuseOptions } from "../compiler/kernel/fusion-plan.ts";
import type { MatmulForm, MatmulParams } from "../compiler/kernel/kernel-ir.ts";
import type { Graph } from "../compiler/ir/types.ts";
import { tilePass } from "../compiler/kernel-passes.ts";
import { bug, KilnError } from "../compiler/util/errors.ts";
import type { HostTensor } from "../compiler/ir/host-tensor.ts";
import type { ArtifactStats, WebGpuArtifact } from "../runtime/artifact/format.ts";
import type { WebGpuAdapterDescription } from "../runtime/webgpu/device.ts";
import type { PipelineProgress, WebGpuRunnerOptions, WebGpuRunOptions, WebGpuSharedState } from "../runtime/webgpu/run-artifact.ts";
import { progressLine } from "../compiler/debug.ts";
import { deviceElementBytes, formatDeviceLayout, planDeviceLayout, webGpuDefaultLimits, type DeviceLayout, type WebGpuLimits } from "../codegen/wgsl/layout.ts";
import { renderWebGpuProgram } from "../codegen/wgsl/render-program.ts";
import type { Backend, Executor, SharedState } from "./backend.ts";
import { matmulFormPass, rowKernelsPass, vectorFormPass, type TiledMatmulMode } from "./webgpu-passes.ts";
import {
  adapterKindOf,
  adapterText,
  defaultMatmulForm,
  rolledLoopsFor,
  defaultElementwiseShape,
  tuneModeOf,
  tunePass,
  tuningRecord,
  type AdapterKind,
  type TuneMode,
  type TunePassOptions,
  type TuningContext,
} from "./webgpu-tune.ts";
import type { TuneCache } from "./webgpu-tune-cache.ts";
import type { SearchResult } from "./webgpu-tune-search.ts";
import { compileTimed } from "../compiler/compile-stats.ts";
import { cachedPeaks } from "./peaks.ts";
import { executorProfiling } from "./profile.ts";
import type { ElementwiseShape, KVectorMode } from "../codegen/wgsl/dispatch.ts";
import { checkOptions } from "../compiler/util/options.ts";
import { driverOptionsOf, fuseOptionsOf, type OptionKeys } from "./options.ts";
import { webGpuInfo, webGpuOptionKeys } from "./deferred-targets.ts";

export interface WebGpuOptions extends FuseOptions {
  /**
   * Register-tile contractions in the kernel IR (default false here: a 4x4 tile copies every
   * epilogue 16 times, and lavapipe's JIT time grows with shader size far more than runs gain).
   */
  readonly tile?: boolean;
  /** Limits to compile for (default WebGPU's guaranteed minimums). */
  readonly limits?: WebGpuLimits;
  /** The `matmul-form` pass: which contractions get a matmul kernel: "auto" (large ones), "always", "never". */
  readonly tiledMatmul?: TiledMatmulMode;
  /** The `matmul-form` pass: how a chosen contraction renders: "registers" (default, 8x8 per thread) or "workgroup" tiles. */
  readonly matmulForm?: MatmulForm;
  /** The `matmul-form` pass: outputs per thread, threads per workgroup, k unrolling (default: the form's; recorded in the `form matmul` fact). */
  readonly matmulParams?: MatmulParams;
  /** The `row-kernels` pass: one workgroup per row for long row-level reductions (default true). */
  readonly rowKernels?: boolean;
  /** The `vector-form` pass: elementwise sections run 4 consecutive elements per thread with vec4 loads and stores (default true). */
  readonly vectorize?: boolean;
  /**
   * The most an elementwise dispatch's workgroups take: invocations per workgroup (a power of
   * two from 64 to 256) and flat indices per invocation (default per adapter kind: 256 and 4 on a
   * CPU adapter, 64 and 1 on a hardware GPU; targets/webgpu-tune.ts's defaultElementwiseShape).
   */
  readonly elementwiseShape?: ElementwiseShape;
  /**
   * Register matmuls whose operands are both contiguous along k (a linear's x·Wᵀ) read each as
   * vec4s, 4 k steps at a time, the fmas still in k order: "auto" (the default on a CPU adapter:
   * from k = 1024, codegen/wgsl/matmul.ts's K_VECTORS_MIN_K), "always", "never" (the default elsewhere).
   */
  readonly kVectors?: KVectorMode;
  /**
   * Pipeline creation taking longer than `progressAfterMs` (default 1000) reports its progress
   * (pipelines done / total, elapsed): by default as a line on stderr (compiler/debug.ts's
   * progressLine) at most once a second; a function receives every report instead; false: none.
   */
  readonly progress?: ((p: PipelineProgress) => void) | false;
  readonly progressAfterMs?: number;
  /**
   * Autotuning (docs/tuning.md): "cache" (default) renders each matmul and row kernel with the
   * form the adapter's tuning cache holds for it, else the adapter kind's default; true also
   * searches the kernels the cache lacks (timing a bounded list of candidates) and saves the
   * winners; false uses the defaults only. KILN_TUNE=0 turns it off whatever this says.
   */
  readonly tune?: TuneMode;
  /**
   * Tiered start, for a CPU adapter (default true there; ignored for a hardware adapter):
   * register matmuls also carry a quick variant (a 2x4 block, about a third of the 8x8's compile
   * on lavapipe) that the first run uses; from the second run on every kernel runs its tuned
   * source. The same bits either way (docs/webgpu.md, "Tiered start").
   */
  readonly quickStart?: boolean;
  /** The adapter's kind and tuned forms (set by k.compile from the device and the cache; tests set it directly). */
  readonly tuning?: TuningContext;
  /**
   * Bind f16 tensors as array<f16> with `enable f16;` (2-byte stores, no atomics; the same bytes
   * and bit-exact results as packed u32 words). Needs the device's `shader-f16` feature: k.compile
   * sets it from the device where the adapter has it; default false (codegen/wgsl/dispatch.ts).
   */
  readonly shaderF16?: boolean;
  /**
   * Packed 16-bit tensors (bf16, f16 without shaderF16) that a section stores contiguously take
   * two outputs a thread and store whole u32 words, no atomics (default true; false: every
   * 16-bit store an atomicAnd/atomicOr on its half, for comparisons; codegen/wgsl/pair.ts).
   */
  readonly pairHalves?: boolean;
  /**
   * The device's fixed subgroup size where it has the `subgroups` feature (k.compile sets it
   * from the device): a CPU adapter's matmuls then default to the subgroup form (lhs rows
   * shared by subgroupBroadcast; docs/webgpu.md). Default: none, no subgroup operations.
   */
  readonly subgroupSize?: number;
}

export type WebGpuCompileOptions = WebGpuOptions & DriverOptions;
export type WebGpuCompiled = Compiled<WebGpuArtifact>;

export const webGpuBackend: Backend<"webgpu", WebGpuOptions, DeviceLayout> = {
  ...webGpuInfo,
  options: webGpuOptionKeys satisfies OptionKeys<WebGpuTargetOptions>,
  limits: { ...webGpuDefaultLimits },
  kernelExtension: "wgsl",
  // One u32 word per element (bool too: WGSL has no bool storage), but f16/bf16 two to a word.
  memory: { elementBytes: deviceElementBytes },
  fuseOptions: fuseOptionsOf,
  // The matmul and row-kernel choices are kernel passes (targets/webgpu-passes.ts) that record a
  // `form` fact render reads; matmul-form first, so a matmul section is never a row kernel.
  // `tune` then gives every form its parameters: the tuned choice for the section, else the
  // adapter kind's default (targets/webgpu-tune.ts).
  kernelPasses: (opts) => [
    ...(opts.tile === true ? [tilePass] : []),
    matmulFormPass({
      ...(opts.tiledMatmul ? { tiledMatmul: opts.tiledMatmul } : {}),
      matmulForm: opts.matmulForm ?? defaultMatmulForm((opts.tuning ?? NO_TUNING).kind, opts.subgroupSize),
      ...(opts.matmulParams ? { matmulParams: opts.matmulParams } : {}),
    }),
    rowKernelsPass({ ...(opts.rowKernels !== undefined ? { rowKernels: opts.rowKernels } : {}) }),
    vectorFormPass({ ...(opts.vectorize !== undefined ? { vectorize: opts.vectorize } : {}) }),
    tunePass(tunePassOptions(opts)),
  ],
  // Under a symbolic batch every loop over its rows stops at the run's rows (codegen/wgsl/row-limits.ts), so the masks go.
  boundsRows: true,
  // Splitting and packing for the device's limits need the memory plan's slots (two tensors in
  // one slot bind once): a stage after it (codegen/wgsl/layout.ts), dumped as NN-device-layout.txt.
  // A section the matmul-form pass made a matmul leaves its fused kernel for a dispatch of its own.
  layout: {
    name: "device-layout",
    run: (program, memory, opts) => planDeviceLayout(program, memory, opts.limits ?? webGpuDefaultLimits, { ownDispatch: (s) => s.form?.kind === "matmul" }),
    format: formatDeviceLayout,
  },
  render: (program, _memory, opts, layout) => {
    const placed = layout ?? bug("webgpu render: no device layout");
    // A CPU adapter's JIT pays for every unrolled loop copy: its loops stay rolled (codegen/wgsl/dialect.ts's OPAQUE_ZERO).
    const kind = (opts.tuning ?? NO_TUNING).kind;
    const cpu = rolledLoopsFor(kind);
    if (opts.elementwiseShape) checkElementwiseShape(opts.elementwiseShape);
    checkSubgroupOptions(opts);
    const r = renderWebGpuProgram(program, placed, opts.limits ?? webGpuDefaultLimits, {
      rolledLoops: cpu,
      elementwiseShape: opts.elementwiseShape ?? defaultElementwiseShape(kind),
      kVectors: opts.kVectors ?? (cpu ? "auto" : "never"),
      quickStart: cpu && opts.quickStart !== false,
      shaderF16: opts.shaderF16 === true,
      pairHalves: opts.pairHalves !== false,
      ...(opts.subgroupSize !== undefined ? { subgroupSize: opts.subgroupSize } : {}),
    });
    // a form renders where its section is alone in a dispatch (the search times exactly those)
    const formed = placed.dispatches.flatMap((d) => (d.sections.length === 1 ? d.sections : []));
    const tuning = tuningRecord(formed, tunePassOptions(opts));
    return { kernels: r.kernels, placement: r.placement, extras: tuning ? { tuning } : {} };
  },
  artifactFiles: {
    kernelExtension: "wgsl",
    loader: {
      modules: ["runtime/webgpu/run-artifact.ts", "runtime/webgpu/device.ts"],
      imports: [
        { names: ["WebGpuArtifactRunner"], from: "./runtime/webgpu/run-artifact.js" },
        { names: ["acquireWebGpu"], from: "./runtime/webgpu/device.js" },
      ],
      createRunner: [
        "const gpu = await acquireWebGpu();",
        'if (!gpu) throw new Error(`${loaded.manifest.name}: no WebGPU adapter here (navigator.gpu in a browser, the "webgpu" package in Node)`);',
        "const runner = await WebGpuArtifactRunner.create(gpu.device, loaded.artifact);",
      ].join("\n"),
    },
  },
  // Without an adapter, WebGPU's guaranteed minimums (rendering needs no device).
  machineOptions: async () => {
    const gpu = await (await import("../runtime/webgpu/device.ts")).acquireWebGpu();
    if (!gpu) return {};
    const tuning = await tuningFor(gpu.adapter, tuneModeOf(undefined, envTune()));
    return {
      limits: effectiveLimits(gpu.limits),
      tuning: tuning.context,
      shaderF16: gpu.shaderF16,
      ...(gpu.subgroupSize !== undefined ? { subgroupSize: gpu.subgroupSize } : {}),
    };
  },
  compile: (graph, opts = {}) => compileWebGpu(graph, opts),
  createRunner: async (artifact) => {
    const gpu = await (await import("../runtime/webgpu/device.ts")).acquireWebGpu();
    if (!gpu) throw new KilnError({ code: "target-unavailable", message: "this artifact is for webgpu and this machine has no WebGPU adapter" });
    return (await import("../runtime/webgpu/run-artifact.ts")).WebGpuArtifactRunner.create(gpu.device, artifact, {
      ...runnerOptions({}),
      quietWait: gpu.adapter.software,
    });
  },
  factory: (graph, opts, shared) => createWebGpuExecutor(graph, opts as WebGpuTargetOptions, shared),
};

/** A caller's elementwiseShape: threads a power of two from 1 to 256 (WebGPU's guaranteed workgroup size), perThread a positive integer. */
function checkElementwiseShape(shape: ElementwiseShape): void {
  const { threads, perThread } = shape;
  if (Number.isSafeInteger(threads) && threads >= 1 && threads <= 256 && (threads & (threads - 1)) === 0 && Number.isSafeInteger(perThread) && perThread >= 1)
    return;
  throw new KilnError({
    code: "invalid-argument",
    message: `webgpu option elementwiseShape { threads: ${threads}, perThread: ${perThread} }: threads must be a power of two from 1 to 256, perThread a positive integer`,
  });
}

/**
 * subgroupSize a power of two from 4 to 128 (WebGPU's subgroup sizes); `matmulForm: "subgroup"`
 * only with a subgroup size, and its matmulParams' rows and threads multiples of it (each lane
 * loads rows for the others' broadcasts); kVectors one of its three modes.
 */
function checkSubgroupOptions(opts: WebGpuOptions): void {
  const fail = (message: string): never => {
    throw new KilnError({ code: "invalid-argument", message: `webgpu option ${message}` });
  };
  const size = opts.subgroupSize;
  if (size !== undefined && !(Number.isSafeInteger(size) && size >= 4 && size <= 128 && (size & (size - 1)) === 0))
    fail(`subgroupSize ${size}: must be a power of two from 4 to 128 (the device's fixed subgroup size)`);
  if (opts.kVectors !== undefined && opts.kVectors !== "auto" && opts.kVectors !== "always" && opts.kVectors !== "never")
    fail(`kVectors '${String(opts.kVectors)}': must be "auto", "always" or "never"`);
  if (opts.matmulForm !== "subgroup") return;
  if (size === undefined) fail(`matmulForm "subgroup": needs a device with subgroups of one fixed size (subgroupSize), and none is known`);
  const p = opts.matmulParams;
  if (p && (p.rows % size! !== 0 || p.threads % size! !== 0))
    fail(`matmulParams { rows: ${p.rows}, threads: ${p.threads} } with matmulForm "subgroup": rows and threads must be multiples of the subgroup size ${size}`);
}

export function compileWebGpu(graph: Graph, opts: WebGpuCompileOptions = {}): WebGpuCompiled {
  return compileWith(graph, webGpuBackend, opts, driverOptionsOf(opts));
}

export interface WebGpuExecutor extends Executor {
  readonly stats: ArtifactStats;
  run(inputs: Readonly<Record<string, HostTensor>>, opts?: WebGpuRunOptions): Promise<Record<string, HostTensor>>;
  /** The device's current value of the named inputs (the state after in-place updates). */
  readInputs(names: readonly string[]): Promise<Record<string, HostTensor>>;
  readonly compiled: WebGpuCompiled;
  readonly artifact: WebGpuArtifact;
  readonly adapter: WebGpuAdapterDescription;
  readonly runner: WebGpuArtifactRunner;
  /** How this compile tuned: its mode, the adapter kind, the cache file and its entry count, what it searched. */
  readonly tuning: {
    readonly mode: TuneMode;
    readonly kind: AdapterKind;
    readonly file: string | undefined;
    readonly fromCache: number;
    readonly searched: readonly SearchResult[];
  };
}

const NO_TUNING: TuningContext = { kind: "cpu" };

const tunePassOptions = (opts: WebGpuOptions): TunePassOptions => ({
  tuning: opts.tuning ?? NO_TUNING,
  ...(opts.matmulForm ? { forcedMatmulForm: opts.matmulForm } : {}),
  ...(opts.subgroupSize !== undefined ? { subgroupSize: opts.subgroupSize } : {}),
});

const envTune = (): string | undefined => (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.["KILN_TUNE"];

/** The adapter's tuning context under `mode`: its kind, and the cache's forms unless tuning is off. */
async function tuningFor(adapter: WebGpuAdapterDescription, mode: TuneMode): Promise<{ context: TuningContext; readonly cache?: TuneCache }> {
  const base: TuningContext = { kind: adapterKindOf(adapter), adapter: adapterText(adapter) };
  if (mode === false) return { context: base };
  const { loadTuneCache, tuningOf } = await import("./webgpu-tune-cache.ts");
  const cache = await loadTuneCache(adapter);
  return { context: tuningOf(cache), cache };
}

/** The device's limits, lowered by any the caller passes (never raised above the device's). */
export function effectiveLimits(device: GPUSupportedLimits, lower: Partial<WebGpuLimits> = {}): WebGpuLimits {
  const keys = ["maxStorageBuffersPerShaderStage", "maxComputeWorkgroupsPerDimension", "maxStorageBufferBindingSize", "maxBufferSize"] as const;
  checkOptions("webgpu option limits", lower, keys);
  for (const key of keys) {
    const v = lower[key];
    if (v !== undefined && !(Number.isSafeInteger(v) && v >= 1))
      throw new KilnError({ code: "invalid-argument", message: `webgpu option limits.${key}: must be a whole number ≥ 1, got ${String(v)}` });
  }
  const pick = (name: keyof WebGpuLimits): number => Math.min(device[name], lower[name] ?? Infinity);
  return {
    maxStorageBuffersPerShaderStage: pick("maxStorageBuffersPerShaderStage"),
    maxComputeWorkgroupsPerDimension: pick("maxComputeWorkgroupsPerDimension"),
    maxStorageBufferBindingSize: pick("maxStorageBufferBindingSize"),
    maxBufferSize: pick("maxBufferSize"),
  };
}

/** k.compile's options for webgpu: `limits` may lower some of the adapter's. */
export type WebGpuTargetOptions = Omit<WebGpuCompileOptions, "limits"> & { readonly limits?: Partial<WebGpuLimits> };

/**
 * With `shared` (k.compileModel's programs), the state inputs bind one GPU buffer per state
 * entry, kept in `shared.memory` and bound by every executor of the model: handing the state
 * from one program to another copies nothing.
 */
export async function createWebGpuExecutor(graph: Graph, opts: WebGpuTargetOptions = {}, shared?: SharedState): Promise<WebGpuExecutor> {
  const { acquireWebGpu } = await import("../runtime/webgpu/device.ts");
  const gpu = await acquireWebGpu();
  if (!gpu) throw new KilnError({ code: "target-unavailable", message: "target 'webgpu': no WebGPU adapter on this machine" });
  const limits = effectiveLimits(gpu.limits, opts.limits);
  if (opts.shaderF16 === true && !gpu.shaderF16)
    throw new KilnError({ code: "unsupported", message: "target 'webgpu': shaderF16 asked for, but this device has no 'shader-f16' feature" });
  opts = {
    ...opts,
    shaderF16: opts.shaderF16 ?? gpu.shaderF16,
    ...(gpu.subgroupSize !== undefined ? { subgroupSize: opts.subgroupSize ?? gpu.subgroupSize } : {}),
  };
  const mode = tuneModeOf(opts.tune, envTune());
  const tuning = await tuningFor(gpu.adapter, mode);
  let searched: readonly SearchResult[] = [];
  if (mode === true && tuning.cache) {
    const { searchForms } = await import("./webgpu-tune-search.ts");
    const first = compileWebGpu(graph, { ...opts, limits, tuning: tuning.context });
    searched = await searchForms(first, gpu.device, tuning.cache, {
      limits,
      workgroupLimits: gpu.limits,
      ...(opts.matmulForm ? { forcedMatmulForm: opts.matmulForm } : {}),
      ...(opts.subgroupSize !== undefined ? { subgroupSize: opts.subgroupSize } : {}),
    });
    if (searched.length > 0) {
      const { saveTuneCache, tuningOf } = await import("./webgpu-tune-cache.ts");
      await saveTuneCache(tuning.cache);
      tuning.context = tuningOf(tuning.cache);
    }
  }
  const { compiled, runner, compileStats } = await compileTimed(
    () => compileWebGpu(graph, { ...opts, limits, tuning: tuning.context }),
    async (c) =>
      (await import("../runtime/webgpu/run-artifact.ts")).WebGpuArtifactRunner.create(gpu.device, c.artifact, {
        ...runnerOptions(opts),
        // On a CPU adapter the device's work shares the cores with Dawn's polling loop: sleep through most of it.
        quietWait: gpu.adapter.software,
        ...(shared ? { shared: sharedBuffers(shared, gpu.device) } : {}),
      }),
  );
  return {
    ...(shared && runner.sharesState ? { sharedState: shared } : {}),
    compiled,
    compileStats,
    artifact: compiled.artifact,
    adapter: gpu.adapter,
    runner,
    tuning: { mode, kind: tuning.context.kind, file: tuning.cache?.file, fromCache: tuning.cache?.entries.size ?? 0, searched },
    stats: compiled.artifact.stats,
    run: async (inputs, runOpts) => (await runner.run(inputs, runOpts)) as Record<string, HostTensor>,
    readInputs: async (names) => (await runner.readInputs(names)) as Record<string, HostTensor>,
    get io() {
      return runner.io;
    },
    keep: (name) => runner.keep(name),
    profiling: executorProfiling(gpu.adapter.description || gpu.adapter.device || gpu.adapter.vendor || "WebGPU adapter", compiled, () =>
      cachedPeaks("webgpu", async () => (await import("../runtime/webgpu/peaks.ts")).measureWebGpuPeaks(gpu.device)),
    ),
  };
}

/** The runner's progress options from k.compile's: by default, throttled lines on the diagnostic channel (stderr). */
export function runnerOptions(opts: Pick<WebGpuOptions, "progress" | "progressAfterMs">): WebGpuRunnerOptions {
  const after = opts.progressAfterMs !== undefined ? { progressAfterMs: opts.progressAfterMs } : {};
  if (opts.progress === false) return after;
  return { ...after, progress: opts.progress ?? throttledProgress(progressLine) };
}

/** A progress reporter writing formatPipelineProgress lines: at most one a second, and the last. */
export function throttledProgress(write: (line: string) => void): (p: PipelineProgress) => void {
  let printedAt = -Infinity;
  return (p) => {
    if (p.done < p.total && p.elapsedMs - printedAt < 1000) return;
    printedAt = p.elapsedMs;
    write(formatPipelineProgress(p));
  };
}

/** "webgpu pipelines 3/8, 1.4 s" */
export const formatPipelineProgress = (p: PipelineProgress): string =>
  `webgpu pipelines ${p.done}/${p.total}, ${(p.elapsedMs / 1000).toFixed(1)} s${p.done === p.total ? " (done)" : ""}`;

/** The GPU buffers of a shared state on `device`, made on first use. */
function sharedBuffers(shared: SharedState, device: GPUDevice): WebGpuSharedState {
  let buffers = shared.memory.get("webgpu") as WebGpuSharedState | undefined;
  if (!buffers || buffers.device !== device) {
    buffers = { device, names: shared.names, buffers: new Map(), resident: new Map() };
    shared.memory.set("webgpu", buffers);
  }
  return buffers;
}
