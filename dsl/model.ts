// k.compileModel: several programs (a train step, an eval loss, predict…) compiled from one
// module for one target, sharing ONE state store: parameters, buffers (BatchNorm's running
// statistics) and optimizer state live once, on the device where the target keeps them there,
// and every program binds them. After `await model.train(batch)` steps, `model.predict(x)` runs
// on the trained weights with no copy where the target shares device memory between programs
// (js, webgpu, wasm: one memory with the state at the same addresses in every program), or one
// hand-over through the host when the other program runs (cuda).
//
// Train/eval mode is a property of each program, fixed when it is traced: a k.trainStep is
// traced in training mode (dropout on, BatchNorm on batch statistics, updating its running
// ones), every other program in eval mode, whatever the module's own `training` flags say;
// they are restored afterwards. `modes` overrides it per program.

import { KilnError } from "../compiler/util/errors.ts";
import type { HostTensor } from "../compiler/ir/host-tensor.ts";
import { checkpointBytes, stateToLoad, writeCheckpoint, type LoadStateOptions, type LoadStateSource } from "./checkpoint.ts";
import { captureUserLoc } from "./loc.ts";
import {
  atCaller,
  checkOptionTypes,
  declareState,
  executableOf,
  resolveProgram,
  type CompileOptions,
  type Executable,
  type HostTree,
  type RunInputs,
  type RunOptions,
} from "./compile.ts";
import { Module } from "./module.ts";
import { isProgram, type Program, type TracedFn } from "./program.ts";
import { StateStore } from "./state-store.ts";
import { prepareTarget, resolveTarget, targetOptionKeys } from "./targets.ts";
import { isInputSpec, parameterNames, traceFunction, type InputSpec, type Specs } from "./trace.ts";
import { isTrainStep } from "./train.ts";
import { checkOptions } from "../compiler/util/options.ts";

/** A program of a model: a function to trace (or a k.program, which carries its own specs). */
export type ModelProgram = TracedFn | Program;

/** "train": dropout on, BatchNorm on batch statistics updating its running ones; "eval": neither. */
export type ProgramMode = "train" | "eval";

export interface CompileModelOptions extends CompileOptions {
  /**
   * Each program's mode, by program name. Default: a k.trainStep is traced in "train" mode,
   * every other program in "eval" mode, whatever `module.train()/eval()` was last called.
   */
  readonly modes?: Readonly<Record<string, ProgramMode>>;
}

/** Runs one program of the model on its inputs (a record or array in the structure of its specs). */
export type ModelRun<P> = (inputs: RunInputs, opts?: RunOptions) => Promise<HostTree<ReturnType<FnOf<P>>>>;

type FnOf<P> = P extends Program<infer G> ? G : P extends TracedFn ? P : never;

export interface ModelBase<P extends Readonly<Record<string, ModelProgram>>> {
  readonly module: Module;
  /** The target every program runs on ("auto" resolved). */
  readonly target: string;
  /** The executable of each program; their state()/loadState() see their own entries of the shared store. */
  readonly programs: { readonly [K in keyof P]: Executable<HostTree<ReturnType<FnOf<P[K]>>>> };
  /** The mode each program was traced in. */
  readonly modes: { readonly [K in keyof P]: ProgramMode };
  /** Every state entry of the model by name (parameters, buffers, `opt.*`): copies; see fetchState for device targets. */
  state(): Record<string, HostTensor>;
  /** The state, read from the device first where a run left newer values there; after the runs queued before it. */
  fetchState(): Promise<Record<string, HostTensor>>;
  /**
   * Replaces state values, all checked before any is used (never half-loaded): some values by
   * name, or a safetensors checkpoint (see LoadStateOptions for which entries it must hold).
   */
  loadState(source: LoadStateSource, opts?: LoadStateOptions): void;
  /** Writes the whole state (every program's parameters, buffers and the optimizer's `opt.*`) as one safetensors checkpoint. */
  saveState(path: string): Promise<void>;
  /** The checkpoint's bytes (for callers without a file system). */
  stateBytes(): Promise<Uint8Array>;
  /** Frees workers or device memory the programs hold. */
  close(): Promise<void>;
}

/** A compiled model: its programs are methods (`model.train(batch)`, `model.predict({ x })`). */
export type Model<P extends Readonly<Record<string, ModelProgram>>> = ModelBase<P> & { readonly [K in keyof P]: ModelRun<P[K]> };

const reservedNames = new Set(["module", "target", "programs", "modes", "state", "fetchState", "loadState", "saveState", "stateBytes", "close", "then"]);

/**
 * Compiles `programs` (by name) from `module` for one target, sharing one state. `specs` is
 * either one record (or array) of input specs for every program, or a record of specs by
 * program name. With one shared record, a k.trainStep takes the whole record (`x` is the
 * model input, the rest are targets); a function whose parameter names are all keys of it
 * (`(x) => net.call(x)`) takes those inputs; any other function takes the whole record.
 */
export async function compileModel<P extends Readonly<Record<string, ModelProgram>>>(
  module: Module,
  programs: P,
  specs?: Specs | Readonly<Record<string, Specs>>,
  opts: CompileModelOptions = {},
): Promise<Model<P>> {
  const what = "k.compileModel";
  const callerLoc = captureUserLoc();
  // The checks below name the caller's line, as k.compile's do.
  const fail = (message: string): unknown => atCaller(usage(message), callerLoc);
  if (!(module instanceof Module)) throw fail("the first argument must be the module the programs use (k.nn.*)");
  if (typeof programs !== "object" || programs === null || Array.isArray(programs))
    throw fail("the second argument must be a record of programs, e.g. { train: k.trainStep(net, loss, opt), predict: (x) => net.call(x) }");
  const names = Object.keys(programs);
  if (names.length === 0) throw fail("no programs given");
  for (const name of names) {
    if (reservedNames.has(name)) throw fail(`a program may not be named '${name}' (a property of the model)`);
    const p = programs[name];
    if (typeof p !== "function" && !isProgram(p)) throw fail(`program '${name}' must be a function or a k.program, got ${typeof p}`);
  }
  const { modes: modeOption, ...compileOpts } = opts;
  const requested = compileOpts.target ?? "auto";
  checkOptions(what, compileOpts, ["target", "name", "checkNumerics", ...targetOptionKeys(requested)], callerLoc);
  checkOptionTypes(what, compileOpts, callerLoc);
  if (compileOpts.name !== undefined) throw fail("`name` does not apply: each program's graph is named after its key");
  for (const key of Object.keys(modeOption ?? {})) {
    if (!names.includes(key)) throw fail(`modes: '${key}' is not a program (programs: ${names.join(", ")})`);
    if (modeOption![key] !== "train" && modeOption![key] !== "eval")
      throw fail(`modes.${key} must be "train" or "eval", got ${JSON.stringify(modeOption![key])}`);
  }
  // A deferred target's code loads while its device opens and the programs are traced, as in k.compile (targets/registry.ts).
  prepareTarget(requested, compileOpts as Readonly<Record<string, unknown>>);
  const target = await resolveTarget(requested).catch((e: unknown) => {
    throw atCaller(e, callerLoc);
  });
  const store = new StateStore(target.name, { shareDevice: true });
  const perProgram = specsPerProgram(specs, names);
  const executables: Record<string, Executable> = {};
  const modes: Record<string, ProgramMode> = {};
  // Every program is traced and its state declared before the first compiles: a target then
  // lays the whole state out once (wasm: the same addresses in every program's memory).
  const traces: { name: string; traced: ReturnType<typeof traceFunction>; specs: Specs; traceMs: number }[] = [];
  for (const name of names) {
    const program = programs[name]!;
    const fn = isProgram(program) ? program.fn : program;
    const mode: ProgramMode = modeOption?.[name] ?? (isTrainStep(fn) ? "train" : "eval");
    modes[name] = mode;
    const own = perProgram ? perProgram[name] : specs;
    const resolved = resolveProgram(`${what} (program '${name}')`, program, own === undefined ? undefined : (own as Specs), name);
    const call = perProgram || isProgram(program) ? { fn: resolved.fn, specs: resolved.specs } : bindSharedSpecs(resolved.fn, resolved.specs, name);
    const started = performance.now();
    const traced = withMode(module, mode, () => traceFunction(name, call.fn, call.specs, resolved.inputLoc));
    const traceMs = performance.now() - started;
    declareState(traced, store);
    traces.push({ name, traced, specs: call.specs, traceMs });
  }
  for (const { name, traced, specs, traceMs } of traces)
    executables[name] = await executableOf(traced, specs, target, compileOpts, store, { started: performance.now() - traceMs, traceMs }).catch((e: unknown) => {
      throw atCaller(e, callerLoc);
    });
  const stateNames = (): string[] => [...store.types.keys()];
  const fetchState = (): Promise<Record<string, HostTensor>> =>
    store.serialized(async () => {
      await store.pull();
      return store.snapshot(stateNames(), "model.state()");
    });
  const model: Record<string, unknown> = {
    module,
    target: target.name,
    programs: executables,
    modes,
    state: () => store.snapshot(stateNames(), "model.state()"),
    fetchState,
    loadState(source: LoadStateSource, loadOpts?: LoadStateOptions) {
      let values: (readonly [string, HostTensor])[];
      try {
        values = stateToLoad(source, store.types, loadOpts, "model.loadState").map(([n, t]) => [n, { ...t, data: t.data.slice() }] as const);
      } catch (e) {
        throw atCaller(e, captureUserLoc());
      }
      if (!store.busy) store.replace(values);
      else void store.serialized(async () => store.replace(values));
    },
    async saveState(path: string) {
      writeCheckpoint(path, await fetchState(), modelName(module));
    },
    async stateBytes() {
      return checkpointBytes(await fetchState(), modelName(module));
    },
    async close() {
      await store.serialized(async () => undefined);
      for (const exe of Object.values(executables)) await exe.close?.();
    },
  };
  for (const name of names) model[name] = (inputs: RunInputs, runOpts?: RunOptions) => executables[name]!.run(inputs, runOpts);
  return model as unknown as Model<P>;
}

const usage = (message: string): KilnError => new KilnError({ code: "invalid-argument", message: `k.compileModel: ${message}` });

const modelName = (module: Module): string => module.constructor.name || "model";

/** Specs by program name when every key of `specs` names a program and holds specs; undefined for one shared set. */
function specsPerProgram(specs: unknown, names: readonly string[]): Readonly<Record<string, Specs>> | undefined {
  if (typeof specs !== "object" || specs === null || Array.isArray(specs)) return undefined;
  const entries = Object.entries(specs);
  if (entries.length === 0 || entries.some(([, v]) => isInputSpec(v))) return undefined;
  const unknown = entries.find(([k]) => !names.includes(k));
  if (unknown) throw usage(`specs: '${unknown[0]}' is neither an input spec nor a program (programs: ${names.join(", ")})`);
  return specs as Readonly<Record<string, Specs>>;
}

/** A program's view of one shared record of specs (see compileModel). */
function bindSharedSpecs(fn: TracedFn, specs: Specs, name: string): { fn: TracedFn; specs: Specs } {
  if (Array.isArray(specs) || isTrainStep(fn) || fn.length === 0) return { fn, specs };
  const record = specs as Readonly<Record<string, InputSpec>>;
  const params = parameterNames(fn, fn.length);
  if (!params.every((p) => p in record)) return { fn, specs };
  const picked = Object.fromEntries(params.map((p) => [p, record[p]!]));
  const call = (inputs: Readonly<Record<string, unknown>>): unknown => (fn as (...a: unknown[]) => unknown)(...params.map((p) => inputs[p]));
  Object.defineProperty(call, "name", { value: name });
  return { fn: call as TracedFn, specs: picked };
}

/** Runs `body` with every module under `root` in `mode`, then puts each module's own flag back. */
function withMode<T>(root: Module, mode: ProgramMode, body: () => T): T {
  const saved: [Module, boolean][] = [];
  const visit = (m: Module): void => {
    saved.push([m, m.training]);
    for (const [, child] of m.namedChildren()) visit(child);
  };
  visit(root);
  root.train(mode === "train");
  try {
    return body();
  } finally {
    for (const [m, training] of saved) m.training = training;
  }
}
