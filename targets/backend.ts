// The Backend: everything Kiln knows about one target, in one value. The compile half
// (fusion options, kernel passes, memory rules, render; compiler/backend.ts) is what the
// driver (compiler/compile.ts) reads; this adds what the DSL, the CLI, the loader generator
// and the artifact writer read: availability, priority for "auto", option names, artifact
// files, and the runner, imported lazily so `import "kiln"` loads no GPU binding it does not use.
// targets/ is the one layer that imports both codegen/ and runtime/<target>.

import type { CompileBackend } from "../compiler/backend.ts";
import type { Compiled, DriverOptions } from "../compiler/compile.ts";
import type { CompileStats } from "../compiler/compile-stats.ts";
import type { Graph, TensorType } from "../compiler/ir/types.ts";
import type { HostTensor } from "../compiler/ir/host-tensor.ts";
import type { Artifact, ArtifactOf, ArtifactTarget } from "../runtime/artifact/format.ts";

import type { ExecutorProfiling, RunProfiler } from "./profile.ts";

export type { Artifact, CompileStats };
export type { ExecutorProfiling, KernelClock, KernelCost, KernelProfile, MachinePeaks, Profile, RunProfiler } from "./profile.ts";
import type { ArtifactRunner } from "../runtime/artifact/load.ts";
import type { IoCounters, IoTimes, ResidentValue, RuntimeData } from "../runtime/artifact/host-io.ts";

export type { IoCounters, IoTimes, ResidentValue };

/** A compiled graph, ready to run. Inputs and outputs are keyed by graph input/output names. */
export interface Executor {
  /**
   * Runs the graph. With `readback`, a target that keeps state on a device returns only the
   * named outputs; the others (updated parameters, optimizer state) stay where they are.
   */
  run(inputs: Readonly<Record<string, HostTensor>>, opts?: ExecutorRunOptions): Promise<Record<string, HostTensor>>;
  /**
   * Present on targets whose state lives on a device: reads the current device value of the
   * named inputs (the state, after in-place updates). k.compile then reads back only the
   * user's outputs each step and fetches the state on demand (exe.fetchState()).
   */
  readInputs?(names: readonly string[]): Promise<Record<string, HostTensor>>;
  /** The same, synchronously, where the device is host memory (wasm): exe.state() reads through it. */
  readInputsSync?(names: readonly string[]): Record<string, HostTensor>;
  /** Bytes the last run copied between the host and the device, and allocated (targets that count them). */
  readonly io?: IoCounters;
  /**
   * Present on targets that can leave an output on the device for a later run: a handle on
   * output `name` as the last run left it. Runs then accept handles in `resident`.
   */
  keep?(name: string): ResidentValue;
  /**
   * The SharedState this executor binds (given to the factory, and every state input of the
   * graph placed in its memory): executors binding one hand the state to each other with no
   * copy. Absent: the executor keeps its own copy, and the state moves through the host.
   */
  readonly sharedState?: SharedState;
  readonly stats?: ExecutorStats;
  /** Compile time by stage, from the first graph pass to the runner's creation (k.compile adds trace). */
  readonly compileStats?: CompileStats;
  /** The artifact it runs (absent for the reference interpreter): what exe.save() writes. */
  readonly artifact?: Artifact;
  /** Frees workers or device memory, where the target holds any. */
  close?(): Promise<void>;
  /** What exe.profile needs besides profiled runs; absent on a target that cannot profile (reference). */
  readonly profiling?: ExecutorProfiling;
}

export interface ExecutorRunOptions {
  /** Outputs to read back (default all); the others stay on the device. */
  readonly readback?: readonly string[];
  /** Caller arrays to fill with the named outputs instead of fresh ones (a target that ignores it is copied after). */
  readonly out?: Readonly<Record<string, RuntimeData>>;
  /** Inputs taken from values kept on the device (only for targets with `keep`). */
  readonly resident?: Readonly<Record<string, ResidentValue>>;
  /** Time this run into it (exe.profile); absent, a run reads no clock and makes no extra submissions. */
  readonly profile?: RunProfiler /** Time the run's parts into the executor's `io.times` (exe.run's `timeIo`), where the target does (wasm). */;
  readonly timeIo?: boolean;
}

/** Counters a target may report per run; each target fills the ones it knows. */
export interface ExecutorStats {
  /** Kernel launches per run. */
  readonly kernels?: number;
  readonly bytesRead?: number;
  readonly bytesWritten?: number;
  /** Bytes of device or host memory a run allocates. */
  readonly peakBytes?: number;
}

/** Options every target sees; targets read the fields they know. */
export interface TargetOptions {
  readonly [option: string]: unknown;
}

/**
 * One state several executors of a target share (k.compileModel's programs): a target that can
 * binds the state inputs of every executor it builds with it to the same device memory, which it
 * keeps in `memory` (WebGPU: a GPU buffer per state name; js: an array per name).
 */
export interface SharedState {
  /** The state inputs' names (parameters, buffers, optimizer state) across the programs. */
  readonly names: ReadonlySet<string>;
  /**
   * Their types, in declaration order: k.compileModel declares every program's state before it
   * compiles the first one, so a target can lay the whole state out once (wasm: fixed addresses).
   */
  readonly types: ReadonlyMap<string, TensorType>;
  /** Per-target storage, filled by the first executor that binds it. */
  readonly memory: Map<string, unknown>;
}

/** Builds an executor for `graph`; with `shared`, binding its state inputs to that memory where the target can. */
export type TargetFactory = (graph: Graph, opts: TargetOptions, shared?: SharedState) => Executor | Promise<Executor>;

/** The device a target runs on, on this machine (k.targetDevice). */
export interface TargetDevice {
  /** What the device calls itself (a WebGPU adapter's description, else its device, else its vendor). */
  readonly name: string;
  /** A CPU implementation of a GPU API (Mesa lavapipe, SwiftShader, a fallback adapter): "auto" skips it. */
  readonly software: boolean;
}

/** What the registry holds for any target, built in or registered by a user (registerTarget). */
export interface TargetEntry {
  readonly name: string;
  readonly description?: string;
  /** Higher wins when the caller asks for "auto". */
  readonly priority: number;
  /** Whether the target can run here (a GPU present, a toolchain installed); absent means always. */
  readonly available?: () => boolean | Promise<boolean>;
  /** Whether "auto" may pick it when available (a software GPU adapter: only by name); absent means yes. */
  readonly auto?: () => boolean | Promise<boolean>;
  /** The device it runs on here (k.targetDevice): for webgpu, the adapter; absent or undefined: none to describe. */
  readonly device?: () => Promise<TargetDevice | undefined>;
  /** Why an unavailable target cannot run here (named in the error when it is asked for). */
  readonly whyUnavailable?: () => string | undefined | Promise<string | undefined>;
  /** Another name for the best of several targets ("cpu"): resolvable by name, left out of availableTargets. */
  readonly alias?: boolean;
  /** The k.compile options this target reads (besides `target` and `name`); any other key is an error. */
  readonly options?: readonly string[];
  readonly factory: TargetFactory;
}

/** How a standalone artifact folder's loader builds its runner (compiler/loader-gen.ts writes it). */
export interface LoaderRuntime {
  /** The runtime modules it ships (repo paths; their own imports follow). */
  readonly modules: readonly string[];
  readonly imports: readonly { readonly names: readonly string[]; readonly from: string }[];
  /** Statements that end with `const runner = …` for `loaded` (a LoadedArtifact). */
  readonly createRunner: string;
}

/** The files of a target's artifact folder beyond the common ones. */
export interface ArtifactFiles {
  /** `kernels/<name>.<ext>`. */
  readonly kernelExtension: string;
  /** Absent: the folder ships no JS loader (cuda: a native host program instead). */
  readonly loader?: LoaderRuntime;
}

/** A built-in target: compiles through the driver and runs its artifacts. */
export interface Backend<T extends ArtifactTarget = ArtifactTarget, Options = never, L = unknown>
  extends TargetEntry,
    CompileBackend<Options, ArtifactOf<T>, L> {
  readonly name: T;
  /** Limits the renderer respects, where the target has any (WebGPU's storage-buffer count, …). */
  readonly limits?: Readonly<Record<string, number>>;
  readonly artifactFiles: ArtifactFiles;
  /**
   * Options this machine decides (WebGPU: the adapter's limits), so `kiln dump --target` and
   * `kiln compile` build what k.compile builds here. Absent: none.
   */
  machineOptions?(): Promise<Partial<Options>>;
  /** Compiles through the driver (compiler/compile.ts) with this backend. */
  compile(graph: Graph, opts?: Options & DriverOptions): Compiled<ArtifactOf<T>>;
  /** A runner for an artifact of this target (kiln run; the loader generator writes the same steps). */
  createRunner(artifact: ArtifactOf<T>): Promise<ArtifactRunner>;
}
