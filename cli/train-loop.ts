// The loop behind `kiln train`: compiles a k.training setup's step and its extra programs
// once (one k.compileModel sharing the state when the setup names its module), runs steps
// start..steps feeding step s the batch `batch(s)`, the hyperparameters `hyper(s)` and the
// seed s, evaluates and checkpoints on schedule, and reports each event to a callback (the command
// draws them). A checkpoint holds the whole state plus the step and the losses so far in
// its metadata, so `resume` continues bit-exactly: same batches, same seeds, same state.

import { mkdirSync } from "node:fs";
import path from "node:path";
import { writeCheckpoint } from "../dsl/checkpoint.ts";
import type { HostTensor } from "../compiler/ir/host-tensor.ts";
import type { LoadStateSource } from "../dsl/checkpoint.ts";
import { compile, type Executable } from "../dsl/compile.ts";
import { compileModel } from "../dsl/model.ts";
import { KilnError } from "../compiler/util/errors.ts";
import type { HostOutput } from "../dsl/host-data.ts";
import { read as readSafetensors } from "../dsl/safetensors.ts";
import type { Training, TrainingContext } from "../dsl/training.ts";

export interface TrainingRunOptions {
  /** Target name (default "auto"). */
  readonly target?: string;
  /** Total steps, counted from 0 (default: the setup's). */
  readonly steps?: number;
  /** Folder for checkpoints (default: out/<name> under cwd). */
  readonly outDir: string;
  /** A checkpoint written by an earlier run to continue from. */
  readonly resume?: string;
  readonly onEvent?: (event: TrainingEvent) => void;
}

export type TrainingEvent =
  | { readonly kind: "compiled"; readonly target: string; readonly ms: number; readonly kernels: number | undefined }
  | { readonly kind: "resumed"; readonly step: number; readonly file: string }
  | { readonly kind: "step"; readonly step: number; readonly loss: number; readonly stepsPerSecond: number }
  | { readonly kind: "eval"; readonly step: number; readonly metrics: Readonly<Record<string, number>> }
  | { readonly kind: "checkpoint"; readonly step: number; readonly file: string }
  | { readonly kind: "finish"; readonly text: string };

export interface TrainingRunResult {
  readonly target: string;
  /** The loss of every step from 0, including those before a resume (read from the checkpoint). */
  readonly losses: readonly number[];
  readonly evals: readonly { readonly step: number; readonly metrics: Readonly<Record<string, number>> }[];
  readonly checkpoints: readonly string[];
  readonly train: Executable;
  readonly finishText?: string;
}

/** Metadata keys of a `kiln train` checkpoint, beside exe.saveState's format and graph. */
export const STEP_KEY = "kiln.train.step";
export const LOSSES_KEY = "kiln.train.losses";

export const checkpointName = (step: number): string => `ckpt-${step}.safetensors`;

export async function runTraining(setup: Training, opts: TrainingRunOptions): Promise<TrainingRunResult> {
  const emit = opts.onEvent ?? (() => {});
  const totalSteps = opts.steps ?? setup.steps;
  if (!Number.isInteger(totalSteps) || totalSteps < 1) throw new KilnError({ code: "usage", message: `--steps must be a positive integer, got ${totalSteps}` });
  const started = performance.now();
  const run = await compileRun(setup, opts.target ?? "auto");
  const { train, programs } = run;
  emit({ kind: "compiled", target: train.target, ms: performance.now() - started, kernels: train.stats?.kernels });

  let step = 0;
  const losses: number[] = [];
  if (opts.resume !== undefined) {
    const file = readSafetensors(opts.resume);
    const saved = file.metadata[STEP_KEY];
    if (saved === undefined || !/^\d+$/.test(saved))
      throw new KilnError({ code: "invalid-argument", message: `--resume: ${opts.resume} is not a kiln train checkpoint (its metadata has no ${STEP_KEY})` });
    step = Number(saved);
    if (step > totalSteps)
      throw new KilnError({ code: "invalid-argument", message: `--resume: ${opts.resume} is at step ${step}, past the ${totalSteps} steps asked for` });
    run.loadState(file); // all entries checked first: another model's checkpoint is refused whole
    // The reference interpreter keeps f32 state in float64, and its checkpoints do too (F64):
    // put those values back unrounded, or the resumed run would drift from the straight one.
    const wide = [...file.tensors].filter(([, t]) => t.dtype === "f64" && t.data instanceof Float64Array);
    if (wide.length > 0) run.loadState(Object.fromEntries(wide.map(([name, t]) => [name, { shape: t.shape, data: t.data as Float64Array }])));
    losses.push(...(JSON.parse(file.metadata[LOSSES_KEY] ?? "[]") as number[]).slice(0, step));
    emit({ kind: "resumed", step, file: opts.resume });
  }

  const evalEvery = setup.evalEvery ?? setup.stepsPerEpoch;
  const checkpointEvery = setup.checkpointEvery ?? evalEvery;
  const evals: { step: number; metrics: Readonly<Record<string, number>> }[] = [];
  const checkpoints: string[] = [];
  const context = async (): Promise<TrainingContext> => {
    await run.syncPrograms();
    return { step, target: train.target, train, programs };
  };
  const checkpoint = async (): Promise<void> => {
    mkdirSync(opts.outDir, { recursive: true });
    const file = path.join(opts.outDir, checkpointName(step));
    const state = Object.entries(await run.fetchState()).map(([name, t]) => [
      name,
      t.dtype === "f32" && t.data instanceof Float64Array ? { ...t, dtype: "f64" } : t,
    ]);
    writeCheckpoint(file, Object.fromEntries(state), train.graph.name, { [STEP_KEY]: String(step), [LOSSES_KEY]: JSON.stringify(losses) });
    checkpoints.push(file);
    emit({ kind: "checkpoint", step, file });
  };

  // Steps per second over the last few steps, so a slow evaluation does not skew the ETA for long.
  const recent: number[] = [];
  while (step < totalSteps) {
    const inputs = setup.batch(step);
    const out = (await train.run(inputs, setup.hyper ? { seed: step, hyper: setup.hyper(step) } : { seed: step })) as unknown;
    losses.push(lossOf(out));
    step++;
    recent.push(performance.now());
    if (recent.length > 20) recent.shift();
    const stepsPerSecond = recent.length > 1 ? ((recent.length - 1) * 1000) / (recent.at(-1)! - recent[0]!) : 0;
    emit({ kind: "step", step, loss: losses.at(-1)!, stepsPerSecond });
    const last = step === totalSteps;
    if (setup.evaluate && (last || (evalEvery !== undefined && step % evalEvery === 0))) {
      const metrics = await setup.evaluate(await context());
      evals.push({ step, metrics });
      emit({ kind: "eval", step, metrics });
      recent.length = 0;
    }
    if (last || (checkpointEvery !== undefined && step % checkpointEvery === 0)) await checkpoint();
  }
  const finishText = setup.finish ? await setup.finish(await context()) : undefined;
  if (finishText !== undefined) emit({ kind: "finish", text: finishText });
  return { target: train.target, losses, evals, checkpoints, train, ...(finishText !== undefined ? { finishText } : {}) };
}

interface CompiledRun {
  readonly train: Executable;
  readonly programs: Readonly<Record<string, Executable>>;
  fetchState(): Promise<Record<string, HostTensor>>;
  loadState(source: LoadStateSource): void;
  /** Gives the programs the trained parameters (nothing to do when they share the step's state). */
  syncPrograms(): Promise<void>;
}

/**
 * With `module`, one k.compileModel: every program binds the same state, and each is traced in
 * its own mode (the step in train mode, the others in eval: dropout off). Without, separate
 * compiles, the trained parameters copied into the programs by name before they are used.
 */
async function compileRun(setup: Training, target: string): Promise<CompiledRun> {
  if (setup.module !== undefined) {
    const model = await compileModel(setup.module, { ...setup.programs, train: setup.train }, undefined, { target });
    const { train, ...programs } = model.programs as Record<string, Executable>;
    return {
      train: train!,
      programs,
      fetchState: () => model.fetchState(),
      loadState: (source) => model.loadState(source),
      syncPrograms: async () => {},
    };
  }
  const train = await compile(setup.train, undefined, { target, name: "train" });
  const programs: Record<string, Executable> = {};
  for (const [name, program] of Object.entries(setup.programs ?? {})) programs[name] = await compile(program, undefined, { target: train.target, name });
  const stateNames = Object.fromEntries(Object.entries(programs).map(([name, exe]) => [name, Object.keys(exe.state())]));
  return {
    train,
    programs,
    fetchState: () => train.fetchState(),
    loadState: (source) => train.loadState(source),
    syncPrograms: async () => {
      const state = await train.fetchState();
      for (const [name, exe] of Object.entries(programs)) {
        const names = stateNames[name]!.filter((n) => n in state);
        if (names.length > 0) exe.loadState(Object.fromEntries(names.map((n) => [n, state[n]!])));
      }
    },
  };
}

/** The scalar loss of a step's result: the result itself, or its `loss` entry. */
function lossOf(out: unknown): number {
  const isOutput = (x: unknown): x is HostOutput => typeof x === "object" && x !== null && "data" in x && "shape" in x;
  const loss = isOutput(out) ? out : (out as { loss?: unknown } | null)?.loss;
  if (!isOutput(loss) || loss.data.length !== 1)
    throw new KilnError({
      code: "invalid-argument",
      message: "kiln train: the train program must return a scalar loss or a record with a scalar `loss` (k.trainStep does)",
    });
  return Number(loss.data[0]);
}
