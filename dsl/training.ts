// k.training: a model file's training setup as data — the compiled step, the batch of each
// step and its hyperparameters, how many steps, what to evaluate and when — which `kiln train <file>` (or
// k.runTraining from a script) runs. The batch is a function of the step number, and the
// dropout seed of step s is s, so a run resumed from a checkpoint at step s sees exactly
// what the uninterrupted run saw from step s on.

import { KilnError } from "../compiler/util/errors.ts";
import type { Executable, RunInputs } from "./compile.ts";
import type { HyperSettings } from "./hyper.ts";
import { captureUserLoc } from "./loc.ts";
import { strictOptions } from "./options.ts";
import { Module } from "./module.ts";
import { isProgram, type Program } from "./program.ts";
import { locPart } from "./trace.ts";

/** What `evaluate` and `finish` are given: the trained step and the extra programs, each holding the trained weights. */
export interface TrainingContext {
  /** Steps taken so far. */
  readonly step: number;
  /** The target everything runs on ("auto" resolved). */
  readonly target: string;
  /** The compiled training step (its state: parameters and optimizer state). */
  readonly train: Executable;
  /** `programs`, compiled once on the same target; the trained parameters are loaded into them before each call. */
  readonly programs: Readonly<Record<string, Executable>>;
}

export interface TrainingSetup {
  /** Names the run: checkpoints go to `out/<name>/` by default. */
  readonly name: string;
  /**
   * The module the programs use. With it, the runner compiles them with k.compileModel: one
   * state for all, the step traced in train mode and the other programs in eval mode (dropout
   * off). Without it, each is compiled alone and given the trained parameters by name.
   */
  readonly module?: Module;
  /** The training step: a k.program (usually of k.trainStep) whose result holds a scalar `loss`. */
  readonly train: Program;
  /** The inputs of step `step` (0-based). A function of the step, so a resumed run sees the same batches. */
  readonly batch: (step: number) => RunInputs;
  /**
   * The hyperparameters of step `step` (`{ lr: schedule(step) }`), fed as exe.run's `hyper`
   * option: a function of the step, so a resumed run recomputes them (they are not state).
   */
  readonly hyper?: (step: number) => HyperSettings;
  /** Steps to run (`kiln train --steps` overrides). */
  readonly steps: number;
  /** Steps per epoch, for the progress display and the default evaluation period. */
  readonly stepsPerEpoch?: number;
  /**
   * Programs that read the trained weights (predict, an eval loss, a sampler). They are traced
   * from the same module as `train`, so their parameters carry the same state names; the
   * runner compiles them once and loads the trained values into them before `evaluate` and `finish`.
   */
  readonly programs?: Readonly<Record<string, Program>>;
  /** Metrics after every `evalEvery` steps and at the end (`{ accuracy: 0.987 }`, `{ valLoss: 1.52 }`). */
  readonly evaluate?: (ctx: TrainingContext) => Promise<Readonly<Record<string, number>>>;
  /** Steps between evaluations (default: stepsPerEpoch, else only at the end). */
  readonly evalEvery?: number;
  /** Steps between checkpoints (default: evalEvery); the last step always writes one. */
  readonly checkpointEvery?: number;
  /** Text to show at the end of the run, e.g. samples from a language model. */
  readonly finish?: (ctx: TrainingContext) => Promise<string>;
}

/** A checked, frozen training setup that `kiln train` recognizes among a file's exports. */
export interface Training extends TrainingSetup {
  readonly kind: "kiln-training";
}

const setupKeys = {
  name: true,
  module: true,
  train: true,
  batch: true,
  hyper: true,
  steps: true,
  stepsPerEpoch: true,
  programs: true,
  evaluate: true,
  evalEvery: true,
  checkpointEvery: true,
  finish: true,
} as const satisfies { readonly [K in keyof Required<TrainingSetup>]-?: true };

/**
 * Declares a training setup for `kiln train`: `export const training = k.training({ name: "cnn",
 * train: k.program(k.trainStep(net, loss, opt), specs), batch: (step) => ..., steps: 2000 })`.
 */
export function training(setup: TrainingSetup): Training {
  const loc = captureUserLoc();
  const fail = (message: string): never => {
    throw new KilnError({ code: "invalid-argument", message: `k.training: ${message}`, ...locPart(loc) });
  };
  strictOptions<TrainingSetup>("k.training", setup, setupKeys);
  if (typeof setup.name !== "string" || !/^[\w.-]+$/.test(setup.name)) fail(`name must be a word usable as a folder name, got ${JSON.stringify(setup.name)}`);
  if (!isProgram(setup.train)) fail("train must be a k.program (e.g. k.program(k.trainStep(net, loss, opt), specs))");
  if (typeof setup.batch !== "function") fail("batch must be a function of the step number returning the step's inputs");
  const positive = (what: string, n: number | undefined): void => {
    if (n !== undefined && (!Number.isInteger(n) || n < 1)) fail(`${what} must be a positive integer, got ${String(n)}`);
  };
  if (setup.steps === undefined) fail("steps is required");
  positive("steps", setup.steps);
  positive("stepsPerEpoch", setup.stepsPerEpoch);
  positive("evalEvery", setup.evalEvery);
  positive("checkpointEvery", setup.checkpointEvery);
  if (setup.module !== undefined && !(setup.module instanceof Module)) fail("module must be a k.nn module");
  for (const [name, p] of Object.entries(setup.programs ?? {})) {
    if (!isProgram(p)) fail(`programs.${name} is not a k.program`);
    if (name === "train") fail("programs.train: the name is the training step's");
  }
  if (setup.hyper !== undefined && typeof setup.hyper !== "function") fail("hyper must be a function of the step number returning { lr, … }");
  if (setup.evaluate !== undefined && typeof setup.evaluate !== "function") fail("evaluate must be an async function of the context");
  if (setup.finish !== undefined && typeof setup.finish !== "function") fail("finish must be an async function of the context");
  return Object.freeze({ ...setup, kind: "kiln-training" as const });
}

/** Duck-typed, as isProgram: a setup made by another copy of the module still counts. */
export function isTraining(x: unknown): x is Training {
  return typeof x === "object" && x !== null && (x as { kind?: unknown }).kind === "kiln-training";
}
