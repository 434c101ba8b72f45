// k.compile: trace a function (or a k.program) into a graph, hand it to a target, and wrap
// the target's Executor so callers pass host data in the shape of their specs (array or
// record) and get outputs back in the structure the function returned.

import { nodeOf } from "../compiler/ir/graph.ts";
import { leadingRows, symbolicInfo, typeAtSize, type SymbolicInfo } from "../compiler/ir/symbolic.ts";
import { formatShape, numel } from "../compiler/util/shape.ts";
import type { Graph, TensorType, ValueId } from "../compiler/ir/types.ts";
import { KilnError, type SourceLoc } from "../compiler/util/errors.ts";
import type { HostTensor } from "../compiler/ir/host-tensor.ts";
import { stateToLoad, writeCheckpoint, type LoadStateOptions, type LoadStateSource } from "./checkpoint.ts";
import { toHostOutput, toHostTensor, type HostArray, type HostInput, type HostOutput } from "./host-data.ts";
import { checkIndexInputs } from "./index-checks.ts";
import { checkSpecs, graphNameOf, isProgram, type Program, type TracedFn } from "./program.ts";
import { FINITE_OUTPUT, checkInputs, checkNumericsFromEnv, exposeValues, findFirstNonFinite, guardStateUpdates } from "./numerics.ts";
import {
  prepareTarget,
  resolveTarget,
  targetOptionKeys,
  targetsReadingOption,
  type Artifact,
  type Executor,
  type ExecutorStats,
  type TargetInfo,
  type TargetOptions,
} from "./targets.ts";
import type { IoCounters, ResidentValue } from "../targets/backend.ts";
import { DeviceValue } from "./device-value.ts";
import { checkOptions, unknownOptionMessage } from "../compiler/util/options.ts";
import type { CompileStats, ExecutorRunOptions, Profile, RunProfiler } from "../targets/backend.ts";
import { buildProfile, newRunProfiler } from "../targets/profile.ts";
import { HYPER_INPUT, HyperStore, type HyperSettings } from "./hyper.ts";
import { captureUserLoc } from "./loc.ts";
import { strictOptions, type KeyTable } from "./options.ts";
import type { Tensor } from "./tensor.ts";
import { StateStore } from "./state-store.ts";
import { locPart, traceFunction, type Specs, type TraceResult } from "./trace.ts";

export interface CompileOptions extends TargetOptions {
  /**
   * A registered target name, or "auto" (the default): the best target that runs here, as
   * availableTargets() ranks them (cuda, a hardware WebGPU adapter, wasm, js). "reference"
   * is the float64 interpreter: the oracle, about 5x slower than "cpu".
   */
  readonly target?: string;
  /** Graph name (default: the program's or function's name). */
  readonly name?: string;
  /**
   * The NaN/Inf finder (also on with KILN_DEBUG=nan): every run hands back each computed
   * value, and a run in which one is NaN or ±Inf fails with a KilnError naming the first
   * node, in program order, that produced one (op, source line, module, kernel, position), or
   * the input that already held it. The state is kept from being poisoned as with
   * `skipNonFinite`. Runs are slower (every value is written out and read back); off, a run
   * pays nothing. See docs/debugging.md.
   */
  readonly checkNumerics?: boolean;
}

export interface RunOptions {
  /**
   * Seed for random ops (dropout, k.rand…), fed to the graph's `seed` input. Default: a
   * counter per executable, 0 on the first run and one more each run, so repeated runs
   * differ (fresh dropout masks) yet a fresh process replays the same sequence.
   */
  readonly seed?: number;
  /**
   * Leave all the state (parameters, optimizer state, the step count) as it was when the
   * loss or any state update comes out NaN or ±Inf: the step is skipped on the device
   * itself, counted in `exe.skippedSteps`, and the outputs (the non-finite loss) are
   * returned as usual. One bad batch cannot poison the weights.
   */
  readonly skipNonFinite?: boolean;
  /**
   * Where outputs land instead of fresh arrays: a typed array (a function returning one
   * tensor), or arrays in the structure the function returns (a record or array of them; any
   * left out are allocated), each of the output's storage type and length (f32: Float32Array,
   * i32: Int32Array, bool: Uint8Array) and filled in place; or "reuse": arrays the executable
   * owns, allocated on the first such run and refilled by every later one (each result is valid
   * until the next "reuse" run). Without it every run allocates its outputs.
   */
  readonly out?: OutArrays | "reuse";
  /**
   * Outputs (by name: a record's key, an array's index, "out" for a lone tensor, "a.b" nested)
   * to leave on the device: the run returns a k.DeviceValue for each instead of host data, and
   * copies nothing back for it. It can feed a later run of this or another executable on the
   * same target (wasm, webgpu) as an input, or be read with `await value.read()`. It is valid
   * until this executable's next run has finished (that run may take it as an input) or until
   * `value.release()`; using it after is a KilnError.
   */
  readonly keep?: readonly string[];
  /**
   * Hyperparameters of a k.trainStep, set before this run and kept for the later ones (as
   * when a PyTorch user writes to `optimizer.param_groups`): `{ lr: 0.01 }`, a group's under
   * its name, `{ noDecay: { weightDecay: 0 } }`. Unknown keys and bad values are errors. See
   * exe.hyper() for the current values.
   */
  readonly hyper?: HyperSettings;
  /**
   * Time this run's parts — inputs copied in, kernels, outputs copied out — on the calling
   * thread, into `exe.ioStats.times` (wasm; other targets leave `times` out). Off by default:
   * a run reads no clock. For measuring the host I/O against the kernels within one step
   * (the benchmark's I/O line), not for asserting.
   */
  readonly timeIo?: boolean;
}

/** Caller arrays for `out`: one typed array, or arrays (or records) of them in the outputs' structure. */
export type OutArrays = HostArray | readonly (OutArrays | undefined)[] | { readonly [name: string]: OutArrays | undefined };

export interface ProfileOptions {
  /** Profiled steps (default 10): each is a full run, so a training step trains that many times. */
  readonly steps?: number;
  /** Unprofiled runs first (default 1), so one-time costs (first dispatch, caches) stay out of the profile. */
  readonly warmup?: number;
  /** Measure the machine's peaks (once per process and target) to rate each kernel against (default true). */
  readonly peaks?: boolean;
}

/** Inputs in the structure of the specs: an array for positional specs, a record for a record. */
export type RunInputs = readonly (HostInput | DeviceValue)[] | { readonly [name: string]: HostInput | DeviceValue };

/**
 * What `run` resolves to for a function returning `T`: the same structure with every Tensor
 * replaced by a HostOutput. (A function typed as returning `unknown` gives `unknown`.)
 */
export type HostTree<T> = unknown extends T
  ? unknown
  : T extends Tensor
    ? HostOutput
    : T extends readonly unknown[]
      ? { -readonly [K in keyof T]: HostTree<T[K]> }
      : T extends object
        ? { -readonly [K in keyof T]: HostTree<T[K]> }
        : never;

export interface Executable<Out = unknown> {
  readonly graph: Graph;
  /**
   * State the executable owns across runs (module parameters, optimizer state), by input
   * name. Outputs that alias a state input replace it after each run (in-place update).
   */
  state(): Record<string, HostTensor>;
  /**
   * The current state, read from the device first where the target keeps it there (WebGPU
   * reads back only the user's outputs each step, so `state()` can be behind until this runs).
   */
  fetchState(): Promise<Record<string, HostTensor>>;
  /**
   * Replaces state values, all checked before any is used: some values by name (checked
   * against the input types), or a safetensors checkpoint (a path, its bytes, or a read file;
   * see LoadStateOptions for which entries it must hold). A file's dtypes convert (F16 → f32…).
   * Checked at once; while runs are in progress it takes effect after them, in call order.
   */
  loadState(source: LoadStateSource, opts?: LoadStateOptions): void;
  /** Writes the whole state (parameters and the optimizer's `opt.*`) as a safetensors checkpoint, after the runs queued before it. */
  saveState(path: string): Promise<void>;
  /** The target that runs it ("auto" already resolved). */
  readonly target: string;
  /**
   * Resolves to the outputs in the structure the traced function returned; each is { shape,
   * dtype, data }, or a k.DeviceValue for an output named in `keep`. Inputs may be
   * k.DeviceValues kept by an earlier run on the same target.
   */
  run(inputs: RunInputs, opts?: RunOptions): Promise<Out>;
  readonly stats?: ExecutorStats | undefined;
  /**
   * Bytes the last run copied from host arrays in (`bytesIn`; state already on the device is
   * not copied again), out to host arrays (`bytesOut`), allocated for its results
   * (`bytesAllocated`: 0 when every output went to `out`) and copied inside the device
   * (`bytesOnDevice`), on targets that count them (wasm); undefined elsewhere.
   */
  readonly ioStats?: IoCounters | undefined;
  /**
   * Wall time of this compile by stage, in order: trace, each graph pass, fuse, lower, each
   * kernel pass, memory-plan, layout (webgpu: device-layout), render, runner (wasm module
   * compile, WebGPU pipeline creation, js function creation). For reading, not asserting.
   */
  readonly compileStats: CompileStats;
  /** The artifact the target built (undefined for the reference interpreter): what save() writes. */
  readonly artifact: Artifact | undefined;
  /** Writes a standalone artifact folder (manifest, kernels, the current state as weights, a typed loader). */
  save(dir: string): Promise<void>;
  /** Frees workers or device memory the target holds for it (wasm threads); it cannot run afterwards. */
  close(): Promise<void>;
  /**
   * The current hyperparameters of a k.trainStep (the defaults given to the optimizer and
   * trainStep, as changed by exe.setHyper / run's `hyper`): `{ lr, betas, eps, weightDecay,
   * clipGradNorm, <group>: { … } }`; `{}` for a program without any. They are not state: a
   * checkpoint leaves them out (a schedule is a function of the step, opt.step).
   */
  hyper(): HyperSettings;
  /** Sets hyperparameters for the runs called after it, as run's `hyper` option does. */
  setHyper(settings: HyperSettings): void;
  /** Runs whose update was skipped (`skipNonFinite`, or a failed checkNumerics run) because the loss or an update was not finite. */
  readonly skippedSteps: number;
  /**
   * Runs `steps` times on `inputs` (after `warmup` unprofiled runs), timing every kernel, and
   * reports per kernel: calls, time, share of the step, GFLOP/s and GB/s (against the machine's
   * measured peaks), the source lines and parameters it touches; host-side time apart. Each
   * step is a real run: the state advances as with `run`. See docs/profiling.md.
   */
  profile(inputs: RunInputs, opts?: ProfileOptions): Promise<Profile>;
}

const SEED_INPUT = "seed";

export async function compile<F extends TracedFn>(
  fnOrProgram: F | Program<F>,
  specs?: Specs,
  opts: CompileOptions = {},
): Promise<Executable<HostTree<ReturnType<F>>>> {
  const callerLoc = captureUserLoc();
  const requested = opts.target ?? "auto";
  checkCompileOptions(opts, requested);
  const { fn, name, specs: resolved, inputLoc } = resolveProgram("k.compile", fnOrProgram, specs, opts.name);
  // A deferred target's code and device load, and the wasm target's worker threads boot, while the program is traced (targets/registry.ts).
  prepareTarget(requested, opts as Readonly<Record<string, unknown>>);
  const started = performance.now();
  const traced = traceFunction(name, fn, resolved, inputLoc);
  const traceMs = performance.now() - started;
  const target = await resolveTarget(requested).catch((e: unknown) => {
    throw atCaller(e, callerLoc);
  });
  return executableOf<HostTree<ReturnType<F>>>(traced, resolved, target, opts, new StateStore(target.name), { started, traceMs }).catch((e: unknown) => {
    throw atCaller(e, callerLoc);
  });
}

/**
 * A KilnError that names no place (an unknown or unavailable target, a target refusing an
 * option's value) gets the line of the k.compile / k.compileModel call that led to it; anything
 * else passes through unchanged.
 */
export function atCaller(e: unknown, loc: SourceLoc | undefined): unknown {
  return e instanceof KilnError && e.diag.loc === undefined && loc !== undefined ? new KilnError({ ...e.diag, loc }) : e;
}

/** A function or k.program with its specs and graph name, checked. */
export function resolveProgram(
  what: string,
  fnOrProgram: TracedFn | Program,
  specs: Specs | undefined,
  nameOption: string | undefined,
): { fn: TracedFn; name: string; specs: Specs; inputLoc: SourceLoc | undefined } {
  let fn: TracedFn;
  let name: string;
  let inputLoc: SourceLoc | undefined;
  if (isProgram(fnOrProgram)) {
    fn = fnOrProgram.fn;
    specs ??= fnOrProgram.specs;
    inputLoc = fnOrProgram.loc;
    name = nameOption ?? fnOrProgram.name ?? graphNameOf(fn);
  } else if (typeof fnOrProgram === "function") {
    fn = fnOrProgram;
    name = nameOption ?? graphNameOf(fn);
  } else {
    throw new KilnError({
      code: "invalid-argument",
      message: `${what}: expected a function or a k.program, got ${typeof fnOrProgram}`,
      ...locPart(captureUserLoc()),
    });
  }
  if (specs === undefined)
    throw new KilnError({
      code: "invalid-argument",
      message: `${what}: input specs are missing (pass them as the second argument, e.g. [k.f32([4, 3])])`,
      ...locPart(captureUserLoc()),
    });
  checkSpecs(specs, what);
  return { fn, name, specs, inputLoc };
}

/** Declares the state entries of a traced program in `store` (checked against the entries other programs declared); returns their types. */
export function declareState(traced: TraceResult, store: StateStore): Map<string, TensorType> {
  const graph = traced.graph;
  const stateTypes = new Map(
    graph.inputs.map((id) => nodeOf(graph, id)).flatMap((n) => (n.op === "input" && traced.state.has(n.name) ? [[n.name, n.type] as const] : [])),
  );
  for (const [name, init] of traced.state) store.declare(name, stateTypes.get(name)!, init, graph.name);
  return stateTypes;
}

/**
 * The executable of a traced program whose state lives in `store`: k.compile gives each its
 * own; k.compileModel gives its programs one, so they run on the same parameters.
 */
export async function executableOf<Out>(
  traced: TraceResult,
  specs: Specs,
  target: TargetInfo,
  opts: CompileOptions,
  store: StateStore,
  timing: { readonly started: number; readonly traceMs: number },
): Promise<Executable<Out>> {
  const graph = traced.graph;
  const { checkNumerics: checkOption, ...targetOpts } = opts;
  const checkNumerics = checkOption ?? checkNumericsFromEnv();
  const stateTypes = declareState(traced, store);
  const stateNames = [...stateTypes.keys()];
  // Variants only when asked for: checkNumerics compiles a graph that also outputs every value
  // and guards the state updates; skipNonFinite compiles the guarded graph at its first use.
  const exposed = checkNumerics ? exposeValues(graph, traced.computedIndices) : undefined;
  const runGraph = exposed ? guardStateUpdates(exposed.graph, traced.userOutputCount) : graph;
  const factoryStarted = performance.now();
  const executor = await target.factory(runGraph, targetOpts, store.shared);
  const done = performance.now();
  // A target that does not time its stages (reference, a registered one) reports its factory as "runner".
  const compileStats: CompileStats = {
    totalMs: done - timing.started,
    stages: [{ name: "trace", ms: timing.traceMs }, ...(executor.compileStats?.stages ?? [{ name: "runner", ms: done - factoryStarted }])],
  };
  let guardedExecutor: Promise<Executor> | undefined;
  const guarded = (): Promise<Executor> =>
    (guardedExecutor ??= Promise.resolve(target.factory(guardStateUpdates(graph, traced.userOutputCount), targetOpts, store.shared)));
  const checkOutputNames = exposed ? exposed.checks.map((c) => c.output).filter((n) => !userOutputNamesOf(graph, traced.userOutputCount).includes(n)) : [];
  let skippedSteps = 0;
  const bindInputs = inputBinder(graph, specs);
  const symbol = symbolicInfo(graph);
  checkSymbolicOutputs(graph, symbol, traced.userOutputCount);
  const hyper = new HyperStore(traced.hyper);
  const userOutputs = graph.outputs.slice(0, traced.userOutputCount);
  const stateOutputs = graph.outputs.slice(traced.userOutputCount).filter((o) => o.aliases !== undefined);
  // Device-resident state: a target that can read its inputs back (WebGPU, wasm) gets only the
  // user's outputs read back per run; state names updated on the device since the host copy
  // was taken are stale in the store until fetchState() (or, where the device is host memory,
  // state()) reads them from the executor that wrote them (the normal one, or the guarded
  // variant of skipNonFinite).
  const userOutputNames = userOutputs.map((o) => o.name);
  let lastExec: Executor = executor;
  const snapshot = (): Record<string, HostTensor> => store.snapshot(stateNames);
  const fetchState = async (): Promise<Record<string, HostTensor>> => {
    await store.pull();
    return snapshot();
  };
  let runCount = 0;
  /** The arrays `out: "reuse"` runs fill, by output name (allocated by the first); passed to the target as it is. */
  const reused: Record<string, HostArray> = Object.create(null);
  // What every run needs of the graph, made once (exe.run's per-call path): the outputs' types,
  // the names read back without keep, the state updates' names.
  const userOutputTypes = userOutputs.map((o) => nodeOf(graph, o.value).type);
  const plainReadback: readonly string[] = [...userOutputNames, ...checkOutputNames];
  const guardedReadback: readonly string[] = [...plainReadback, FINITE_OUTPUT];
  const stateOutputNames = stateOutputs.map((o) => o.name);
  const inputTypes = new Map(graph.inputs.map((id) => nodeOf(graph, id)).flatMap((n) => (n.op === "input" ? [[n.name, n.type] as const] : [])));
  // Runs (and state reads) on one store form a queue: each starts when the previous one has
  // settled, so it sees the state that one left, whatever the caller's concurrency. A failed
  // step does not block the ones behind it. Other stores keep their own queues.
  const fetchStateInOrder = (): Promise<Record<string, HostTensor>> => store.serialized(fetchState);

  return {
    graph,
    target: target.name,
    compileStats,
    get stats() {
      return executor.stats;
    },
    get ioStats() {
      return lastExec.io;
    },
    get artifact() {
      return executor.artifact;
    },
    get skippedSteps() {
      return skippedSteps;
    },
    async close() {
      await executor.close?.();
      if (guardedExecutor) await (await guardedExecutor).close?.();
    },
    async save(dir: string) {
      if (typeof dir !== "string" || dir === "")
        throw new KilnError({
          code: "invalid-argument",
          message: `exe.save: expected a folder path (a non-empty string), got ${dir === "" ? "an empty string" : typeof dir}`,
          ...locPart(captureUserLoc()),
        });
      const artifact = executor.artifact;
      if (!artifact)
        throw new KilnError({
          code: "unsupported",
          message: `exe.save: target '${target.name}' builds no artifact (compile for js, wasm, webgpu or cuda to save one)`,
        });
      const { writeArtifactFolder } = await import("../targets/artifact-folder.ts");
      // A standalone artifact has no hyperparameter API: it keeps the current values as the state entry `hyper`.
      writeArtifactFolder(dir, { artifact, graph: runGraph, state: { ...(await fetchStateInOrder()), ...hyper.inputs() } });
    },
    // A snapshot: later runs replace state values, they never change what this returned.
    state: snapshot,
    fetchState: fetchStateInOrder,
    loadState(source, loadOpts) {
      // All or nothing: a bad entry leaves the state as it was. Checked now; applied in call
      // order: after the runs already started (else one finishing later would overwrite it).
      let values: (readonly [string, HostTensor])[];
      try {
        values = stateToLoad(source, stateTypes, loadOpts).map(([name, t]) => [name, { ...t, data: t.data.slice() }] as const);
      } catch (e) {
        throw atCaller(e, captureUserLoc());
      }
      if (!store.busy) store.replace(values);
      else void store.serialized(async () => store.replace(values));
    },
    hyper: () => hyper.current(),
    setHyper(settings) {
      try {
        hyper.set(settings, "exe.setHyper");
      } catch (e) {
        throw atCaller(e, captureUserLoc());
      }
    },
    async saveState(path: string) {
      writeCheckpoint(path, await fetchStateInOrder(), graph.name);
    },
    profile(inputs: RunInputs, profileOpts: ProfileOptions = {}): Promise<Profile> {
      let take: () => Record<string, HostTensor>;
      let steps: number;
      let warmup: number;
      const profiling = executor.profiling;
      try {
        strictOptions("exe.profile", profileOpts, profileOptionKeys);
        steps = countOption("steps", profileOpts.steps ?? 10, 1);
        warmup = countOption("warmup", profileOpts.warmup ?? 1, 0);
        if (profileOpts.peaks !== undefined && typeof profileOpts.peaks !== "boolean")
          throw new KilnError({ code: "invalid-argument", message: `exe.profile: peaks: expected true or false, got ${typeof profileOpts.peaks}` });
        if (!profiling) throw new KilnError({ code: "unsupported", message: `exe.profile: target '${target.name}' has no kernels to profile` });
        // Checked now (inputs kept on a device are not taken here: pass host data); copied per step.
        const noDevices: Record<string, DeviceValue> = {};
        checkIndexInputs(traced.indexChecks, bindInputs(inputs, runCount, stateTypes, noDevices, hyper));
        if (Object.keys(noDevices).length > 0) throw usage("exe.profile takes host arrays, not values kept on a device");
        take = () => {
          const user = { ...bindInputs(inputs, runCount++, stateTypes, {}, hyper), ...hyper.inputs() };
          for (const [name, t] of Object.entries(user)) user[name] = { ...t, data: t.data.slice() };
          return user;
        };
      } catch (e) {
        return Promise.reject(atCaller(e, captureUserLoc()));
      }
      return store.serialized(async () => {
        for (let i = 0; i < warmup; i++) await runNow(take(), {}, { keep: new Set() }, false);
        const profiler = newRunProfiler(profiling.costs.length);
        let wallMs = 0;
        for (let i = 0; i < steps; i++) {
          const user = take();
          const started = performance.now();
          await runNow(user, {}, { keep: new Set(), profile: profiler }, false);
          wallMs += performance.now() - started;
        }
        const peaks = profileOpts.peaks === false ? undefined : await profiling.peaks();
        const params = new Set<string>(stateNames);
        return buildProfile({
          target: target.name,
          device: profiling.device,
          steps,
          profiler,
          wallMs,
          costs: profiling.costs,
          peaks,
          isParam: (name) => params.has(name),
        });
      });
    },
    run(inputs: RunInputs, runOpts: RunOptions = {}): Promise<Out> {
      // Inputs are checked and taken at the call (a run that waits its turn copies them, so
      // the caller may refill its arrays at once); the seed follows call order; the state is
      // read when the run's turn comes, i.e. after the previous run updated it.
      let user: Record<string, HostTensor>;
      const devices: Record<string, DeviceValue> = {};
      let io: RunIo;
      try {
        strictOptions("exe.run", runOpts, runOptionKeys);
        const seed = runOpts.seed ?? runCount;
        if (runOpts.hyper !== undefined) hyper.set(runOpts.hyper, "exe.run");
        user = { ...bindInputs(inputs, seed, stateTypes, devices, hyper), ...hyper.inputs() };
        checkIndexInputs(traced.indexChecks, user);
        if (store.busy) for (const [name, t] of Object.entries(user)) user[name] = { ...t, data: t.data.slice() };
        io = runIoOf(runOpts);
        runCount++;
      } catch (e) {
        // Checked at the call: an error naming no place gets the caller's line (captured only on this path).
        return Promise.reject(atCaller(e, captureUserLoc()));
      }
      const skip = runOpts.skipNonFinite === true;
      return store.serialized(() => runNow(user, devices, io, skip));
    },
  };

  /** Checks `out` and `keep` against the outputs, at the call. */
  function runIoOf(runOpts: RunOptions): RunIo {
    checkRunFlags(runOpts);
    // The common choices, without keep or out arrays: shared objects (exe.run's per-call path).
    if (runOpts.keep === undefined && (runOpts.out === undefined || runOpts.out === "reuse"))
      return COMMON_IO[runOpts.out === "reuse" ? 1 : 0]![runOpts.timeIo === true ? 1 : 0]!;
    const keep = new Set<string>();
    for (const name of runOpts.keep ?? []) {
      if (!userOutputNames.includes(name)) throw usage(`keep: '${String(name)}' is not an output (outputs: ${userOutputNames.join(", ")})`);
      if (!executor.keep)
        throw new KilnError({
          code: "unsupported",
          message: `exe.run: keep: target '${target.name}' cannot leave values on a device (wasm and webgpu can); read the outputs instead`,
        });
      keep.add(name);
    }
    if (runOpts.keep !== undefined && checkNumerics)
      throw new KilnError({ code: "unsupported", message: "exe.run: keep does not combine with checkNumerics (every value is read back)" });
    const timing = runOpts.timeIo === true ? { timeIo: true as const } : {};
    if (runOpts.out === undefined) return { keep, ...timing };
    if (runOpts.out === "reuse") return { keep, reuse: true, ...timing };
    const out: Record<string, HostArray> = {};
    flattenOut(runOpts.out, "", out);
    for (const [name, array] of Object.entries(out)) {
      const o = userOutputs.find((u) => u.name === name);
      if (!o) throw usage(`out: '${name}' is not an output (outputs: ${userOutputNames.join(", ")})`);
      if (keep.has(name)) throw usage(`out: '${name}' is also kept on the device`);
      const type = nodeOf(graph, o.value).type;
      const Storage = type.dtype === "f32" ? Float32Array : type.dtype === "i32" ? Int32Array : Uint8Array;
      const count = type.shape.reduce((a, b) => a * b, 1);
      if (!(array instanceof Storage) || array.length !== count)
        throw usage(
          `out: '${name}' must be a ${Storage.name} of ${count} elements (${type.dtype}${formatShape(type.shape)}), got ${array.constructor.name} of ${array.length}`,
        );
    }
    return { keep, out, ...timing };
  }

  async function runNow(
    user: Readonly<Record<string, HostTensor>>,
    devices: Readonly<Record<string, DeviceValue>>,
    io: RunIo,
    skipNonFinite: boolean,
  ): Promise<Out> {
    const guardedRun = checkNumerics || (skipNonFinite && stateOutputs.length > 0);
    const exec = checkNumerics || !guardedRun ? executor : await guarded();
    // The state on the device of the executor that ran last comes to this one (through the host unless they share it).
    const handingOver = store.handOver(exec, stateNames);
    if (handingOver) await handingOver;
    lastExec = exec;
    const bound: Record<string, HostTensor> = { ...user };
    for (const n of stateNames) bound[n] = store.values.get(n)!;
    // Inputs kept on the device by an earlier run: checked now (a run in between makes them
    // stale); read from the device by a target that takes them, else through the host.
    let resident: Record<string, ResidentValue> | undefined;
    for (const name in devices) {
      const value = devices[name]!;
      value.checkInput(name, inputTypes.get(name)!, target.name);
      if (exec.keep && !checkNumerics) (resident ??= {})[name] = value.resident;
      else {
        const host = await value.read();
        bound[name] = { dtype: host.dtype, shape: host.shape, data: host.data };
      }
    }
    let infiniteInputs: ReadonlySet<string> = NO_KEEP;
    if (checkNumerics) {
      // State still on the device was written by guarded runs only: finite. The host's copy is checked.
      const checked = checkInputs(graph, Object.fromEntries(Object.entries(bound).filter(([name]) => !store.stale.has(name))));
      if (checked.error) throw checked.error;
      infiniteInputs = checked.infinite;
    }

    // On a device target the updated state stays there; the host arrays passed in this run
    // stand for it in the next one (the runtime skips their upload).
    const deviceState = exec.readInputs !== undefined && stateOutputs.length > 0;
    const readback =
      io.keep.size > 0
        ? [...userOutputNames.filter((n) => !io.keep.has(n)), ...checkOutputNames, ...(guardedRun ? [FINITE_OUTPUT] : [])]
        : guardedRun
          ? guardedReadback
          : plainReadback;
    const out = io.reuse ? reused : io.out;
    const runIo: { -readonly [K in keyof ExecutorRunOptions]: ExecutorRunOptions[K] } = {};
    if (deviceState) runIo.readback = readback;
    else if (io.keep.size > 0) runIo.readback = [...readback, ...stateOutputNames];
    if (out) runIo.out = out;
    if (resident) runIo.resident = resident;
    if (io.profile) runIo.profile = io.profile;
    if (io.timeIo) runIo.timeIo = true;
    const results = await exec.run(bound, runIo);
    // A guarded run wrote the old state back where the loss or an update was not finite.
    const kept = !guardedRun || results[FINITE_OUTPUT]?.data[0] !== 0;
    if (!kept) skippedSteps++;
    for (const o of stateOutputs) {
      if (deviceState) store.stale.set(o.aliases!, exec);
      else if (kept) store.values.set(o.aliases!, results[o.name]!);
    }
    if (exposed) {
      const error = findFirstNonFinite(graph, exposed.checks, symbol ? validRows(exposed.checks, results, user) : results, infiniteInputs, exec.artifact);
      if (error) throw error;
      if (!kept && !skipNonFinite)
        throw new KilnError({
          code: "invalid-argument",
          message: `checkNumerics: the loss or a state update holds ±Inf flowing from an infinite input or constant (${[...infiniteInputs].join(", ") || "a constant"}); the update was not applied`,
        });
    }
    const outputs = userOutputs.map((o, i): HostOutput | DeviceValue => {
      if (io.keep.has(o.name)) return new DeviceValue(exec.keep!(o.name), target.name, o.name, graph.name);
      const result = results[o.name];
      const lead = symbol?.axes.get(o.value)?.[0];
      if (typeof lead === "number") {
        // A symbolic leading axis: the run's rows of the maximum-size result (`out` and reuse do not apply).
        const rows = lead * Number(user[symbol!.name]!.data[0]);
        return toHostOutput(o.name, leadingRows(result!, rows), typeAtSize(nodeOf(graph, o.value).type, symbol!.axes.get(o.value), rows / lead));
      }
      const given = out?.[o.name];
      if (given && result && result.data !== given) given.set(result.data); // a target that does not fill `out` itself
      if (io.reuse && result) reused[o.name] = result.data;
      return toHostOutput(o.name, given && result ? { ...result, data: given } : result, userOutputTypes[i]!);
    });
    return traced.unflatten(outputs as readonly HostOutput[]) as Out;
  }

  /**
   * With a symbolic batch, checkNumerics looks at the run's rows only: the padding rows hold
   * whatever the zero (or stale) rows give (log 0 = -inf), which the masks keep out of every
   * result. A value with the batch on a later axis is not checked.
   */
  function validRows(
    checks: readonly { readonly output: string; readonly node: { readonly id: ValueId } }[],
    results: Readonly<Record<string, HostTensor | undefined>>,
    user: Readonly<Record<string, HostTensor>>,
  ): Record<string, HostTensor | undefined> {
    const cut: Record<string, HostTensor | undefined> = { ...results };
    const n = Number(user[symbol!.name]!.data[0]);
    for (const c of checks) {
      const states = symbol!.axes.get(c.node.id) ?? [];
      const t = results[c.output];
      if (!t || !states.some((st) => typeof st === "number")) continue;
      cut[c.output] =
        typeof states[0] === "number" && !states.slice(1).some((st) => typeof st === "number") ? leadingRows(t, (states[0] as number) * n) : undefined;
    }
    return cut;
  }
}

/** Outputs may carry the symbolic dimension only as their leading axis (exe.run returns its first rows). */
function checkSymbolicOutputs(graph: Graph, symbol: SymbolicInfo | undefined, count: number): void {
  if (!symbol) return;
  for (const o of graph.outputs.slice(0, count)) {
    const axis = (symbol.axes.get(o.value) ?? []).findIndex((s, i) => i > 0 && typeof s === "number");
    if (axis > 0)
      throw new KilnError({
        code: "unsupported",
        message: `output '${o.name}' has the symbolic dimension '${symbol.name}' at axis ${axis}: only a leading one is supported (permute it to the front)`,
      });
  }
}

/** k.compile's own options; the rest belong to the target (targetOptionKeys). */
const compileOptionKeys = ["target", "name", "checkNumerics"] as const;
const runOptionKeys: KeyTable<RunOptions> = { seed: true, skipNonFinite: true, out: true, keep: true, hyper: true, timeIo: true };
const profileOptionKeys: KeyTable<ProfileOptions> = { steps: true, warmup: true, peaks: true };

function countOption(name: string, value: unknown, min: number): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < min)
    throw new KilnError({ code: "invalid-argument", message: `exe.profile: ${name} must be an integer >= ${min}, got ${String(value)}` });
  return value;
}

/** A run's checked I/O choices. */
interface RunIo {
  readonly keep: ReadonlySet<string>;
  readonly out?: Readonly<Record<string, HostArray>>;
  readonly reuse?: true;
  /** exe.profile's collector: the run is timed into it. */
  readonly profile?: RunProfiler;
  /** exe.run's `timeIo`: the run's parts are timed into the executor's io counters. */
  readonly timeIo?: true;
}

/** exe.run's boolean options: a value of another type is refused, not read as true or false. */
function checkRunFlags(runOpts: RunOptions): void {
  if (runOpts.timeIo !== undefined && typeof runOpts.timeIo !== "boolean") throw usage(`timeIo: expected true or false, got ${typeof runOpts.timeIo}`);
  // (a string such as "yes" was read as false: the update applied anyway)
  if (runOpts.skipNonFinite !== undefined && typeof runOpts.skipNonFinite !== "boolean")
    throw usage(`skipNonFinite: expected true or false, got ${typeof runOpts.skipNonFinite}`);
}

const NO_KEEP: ReadonlySet<string> = new Set();
/** The RunIo of a run without keep or out arrays: [out undefined, "reuse"] × [timeIo off, on]. */
const COMMON_IO: readonly (readonly RunIo[])[] = [
  [{ keep: NO_KEEP }, { keep: NO_KEEP, timeIo: true }],
  [
    { keep: NO_KEEP, reuse: true },
    { keep: NO_KEEP, reuse: true, timeIo: true },
  ],
];

/** Flattens `out` into arrays by output name, named as flattenTree names outputs ("out" for a lone array). */
function flattenOut(tree: unknown, prefix: string, into: Record<string, HostArray>): void {
  if (ArrayBuffer.isView(tree)) {
    into[prefix === "" ? "out" : prefix] = tree as HostArray;
    return;
  }
  const join = (key: string): string => (prefix === "" ? key : `${prefix}.${key}`);
  if (Array.isArray(tree)) tree.forEach((t, i) => t !== undefined && flattenOut(t, join(String(i)), into));
  else if (typeof tree === "object" && tree !== null)
    for (const [key, t] of Object.entries(tree)) {
      if (t !== undefined) flattenOut(t, join(key), into);
    }
  else throw usage(`out: expected a typed array, arrays or records of them, or "reuse"; got ${tree === null ? "null" : typeof tree}`);
}

/** Options whose value is a boolean on every target that reads them: anything else would be read as truthy, or not at all. */
const BOOLEAN_OPTIONS: readonly string[] = ["checkNumerics", "verify", "fuseAttention", "shaderF16", "quickStart"];

/** Refuses a boolean option (or `name`) given a value of another type, by name (k.compile, k.compileModel). */
export function checkOptionTypes(where: string, opts: object, loc: SourceLoc | undefined): void {
  const values = opts as Readonly<Record<string, unknown>>;
  const badType = (key: string, want: string): never => {
    throw new KilnError({
      code: "invalid-argument",
      message: `${where}: option ${key} must be ${want}, got ${JSON.stringify(values[key]) ?? String(values[key])}`,
      ...locPart(loc),
    });
  };
  for (const key of BOOLEAN_OPTIONS) if (values[key] !== undefined && typeof values[key] !== "boolean") badType(key, "a boolean");
  if (values["name"] !== undefined && typeof values["name"] !== "string") badType("name", "a string");
}

function checkCompileOptions(opts: CompileOptions, target: string): void {
  if (typeof opts !== "object" || opts === null) return checkOptions("k.compile", opts, compileOptionKeys, captureUserLoc());
  const accepted = [...compileOptionKeys, ...targetOptionKeys(target)];
  const unknown = Object.keys(opts).find((key) => !accepted.includes(key));
  // Known keys: their values' types (a location is captured only for an error).
  if (unknown === undefined) {
    const values = opts as Readonly<Record<string, unknown>>;
    if (
      BOOLEAN_OPTIONS.some((key) => values[key] !== undefined && typeof values[key] !== "boolean") ||
      (values["name"] !== undefined && typeof values["name"] !== "string")
    )
      checkOptionTypes("k.compile", opts, captureUserLoc());
    return;
  }
  const elsewhere = targetsReadingOption(unknown, target);
  const note = elsewhere.length > 0 ? `; '${unknown}' is an option of target ${elsewhere.join(", ")}, not '${target}'` : "";
  throw new KilnError({
    code: "invalid-argument",
    message: unknownOptionMessage(`k.compile (target '${target}')`, unknown, accepted) + note,
    ...locPart(captureUserLoc()),
  });
}

/** Maps the caller's inputs (array or record, like the specs) to HostTensors keyed by graph input name. */
function inputBinder(
  graph: Graph,
  specs: Specs,
): (
  inputs: RunInputs,
  seed: number,
  state: ReadonlyMap<string, unknown>,
  devices: Record<string, DeviceValue>,
  hyper: HyperStore,
) => Record<string, HostTensor> {
  const graphInputs = graph.inputs.map((id) => {
    const node = nodeOf(graph, id);
    return { name: node.op === "input" ? node.name : "", type: node.type, symbolic: node.op === "input" ? node.symbolic : undefined };
  });
  const sym = symbolicInfo(graph);
  const positional = Array.isArray(specs);
  const userKeys = positional ? specs.map((_, i) => String(i)) : Object.keys(specs);
  // Traced inputs come first in spec order; a random op adds the `seed` input after them.
  const user = graphInputs.slice(0, userKeys.length);
  const extra = graphInputs.slice(userKeys.length);
  const userKeySet = new Set(userKeys);
  // The extra inputs a run fills (the seed): the state and the hyperparameters do not change
  // after the compile, so the list is made at the first run and kept (exe.run's per-call path).
  let filled: readonly (typeof extra)[number][] | undefined;

  return (inputs, seed, state, devices, hyper) => {
    if (typeof inputs !== "object" || inputs === null)
      throw usage(`expected the inputs as ${positional ? "an array" : "a record"}, got ${inputs === null ? "null" : typeof inputs}`);
    if (positional) {
      if (!Array.isArray(inputs)) throw usage(`this function takes positional inputs: pass an array of ${userKeys.length}, got a record`);
      if (inputs.length !== userKeys.length) throw usage(`expected ${userKeys.length} input(s) (${user.map((u) => u.name).join(", ")}), got ${inputs.length}`);
    } else {
      if (Array.isArray(inputs)) throw usage(`this function takes a record of inputs { ${userKeys.join(", ")} }, got an array`);
      let known = true;
      for (const key in inputs) if (Object.hasOwn(inputs, key) && !userKeySet.has(key)) known = false;
      const unknown = known ? [] : Object.keys(inputs).filter((k) => !userKeys.includes(k));
      if (unknown.length > 0) throw usage(`unknown input(s) ${unknown.map((k) => `'${k}'`).join(", ")} (expected ${userKeys.join(", ")})`);
    }
    const bound: Record<string, HostTensor> = {};
    // The symbolic dimension's size comes from the inputs that have it; they must agree and stay within its max.
    let size: { n: number; from: string } | undefined;
    user.forEach((u, i) => {
      const value = positional ? (inputs as readonly HostInput[])[i] : (inputs as Record<string, HostInput>)[userKeys[i]!];
      if (value instanceof DeviceValue) {
        if (sym && u.symbolic) throw usage(`input '${u.name}' has the symbolic dimension '${sym.name}': pass host data, not a device value`);
        value.checkInput(u.name, u.type, value.target);
        devices[u.name] = value;
        return;
      }
      if (!sym || !u.symbolic) {
        bound[u.name] = toHostTensor(u.name, value, u.type);
        return;
      }
      const n = symbolicSizeOf(u.name, value, u.type, u.symbolic.scale, sym.name, sym.max);
      if (size && size.n !== n) throw usage(`inputs disagree on symbolic dimension '${sym.name}': '${size.from}' has ${size.n}, '${u.name}' has ${n}`);
      size ??= { n, from: u.name };
      // The run's rows only: the runtimes copy them straight into the buffer's leading rows (no max-size host array per run).
      bound[u.name] = toHostTensor(u.name, value, typeAtSize(u.type, sym.axes.get(graph.inputs[i]!), n));
    });
    if (sym) bound[sym.name] = { dtype: "i32", shape: [], data: Int32Array.of(size?.n ?? sym.max) };
    filled ??= extra.filter((e) => !state.has(e.name) && e.name !== sym?.name && !(e.name === HYPER_INPUT && hyper.size > 0));
    for (const e of filled) bound[e.name] = extraInput(e.name, e.type, seed);
    return bound;
  };
}

/** The size of the symbolic leading axis `value` (flat data or { shape, data }) gives input `name`; 1..max. */
function symbolicSizeOf(name: string, value: unknown, type: TensorType, scale: number, symbol: string, max: number): number {
  const per = numel(type.shape.slice(1)) * scale;
  const shape =
    typeof value === "object" && value !== null && "shape" in value && Array.isArray((value as { shape: unknown }).shape)
      ? (value as { shape: number[] }).shape
      : undefined;
  const length = shape ? undefined : (value as { length?: unknown } | undefined)?.length;
  const rows = shape ? Number(shape[0]) / scale : typeof length === "number" && per > 0 ? length / per : undefined;
  if (rows === undefined || !Number.isInteger(rows))
    throw usage(
      `input '${name}': cannot tell the size of symbolic dimension '${symbol}' from ${shape ? `shape ${formatShape(shape)}` : `${String(length)} values`} (rows of ${per / scale} values${scale > 1 ? `, ${scale} per ${symbol}` : ""})`,
    );
  if (rows > max)
    throw usage(
      `input '${name}': symbolic dimension '${symbol}' is ${rows}, above its maximum ${max} (declare a larger one: k.f32(["${symbol}", …], { max: { ${symbol}: ${rows} } }))`,
    );
  if (rows < 1) throw usage(`input '${name}': symbolic dimension '${symbol}' must be at least 1, got ${rows}`);
  return rows;
}

function extraInput(name: string, type: TensorType, seed: number): HostTensor {
  if (name !== SEED_INPUT || type.dtype !== "i32" || type.shape.length !== 0)
    throw new KilnError({ code: "invalid-argument", message: `graph input '${name}' is not one of the specs and kiln does not know how to fill it` });
  if (!Number.isInteger(seed) || seed < -2147483648 || seed > 2147483647) throw usage(`seed must be an int32, got ${seed}`);
  return { dtype: "i32", shape: [], data: Int32Array.of(seed) };
}

const usage = (message: string): KilnError => new KilnError({ code: "invalid-argument", message: `exe.run: ${message}` });

const userOutputNamesOf = (graph: Graph, count: number): string[] => graph.outputs.slice(0, count).map((o) => o.name);
