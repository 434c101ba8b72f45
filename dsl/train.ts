// k.trainStep: one training step as one graph. Parameters and optimizer state are state
// inputs; the step runs the model and loss, appends the backward pass (k.valueAndGrad over
// the parameter tensors), optionally clips gradients by global norm, applies the optimizer,
// and gives every parameter and state tensor its new value as an output aliasing its input.
// The optimizer's hyperparameters and the clipping norm come from the `hyper` input
// (dsl/hyper.ts), which the executable fills from its current settings.

import { isFloat } from "../compiler/ir/dtype.ts";
import type { TensorType } from "../compiler/ir/types.ts";
import { bug } from "../compiler/util/errors.ts";
import { allocHostData } from "../compiler/ir/host-tensor.ts";
import { formatType } from "../compiler/ir/infer.ts";
import { valueAndGrad } from "./grad.ts";
import { functionalCall, Module, type Parameter } from "./module.ts";
import type { GroupHyper, Optimizer, StateSlots } from "./optim.ts";
import { HYPER_INPUT, hyperPath, type HyperDecl } from "./hyper.ts";
import { strictOptions } from "./options.ts";
import { Tensor, userError } from "./tensor.ts";
import { requireTrace, type Trace } from "./trace.ts";

export interface TrainStepOptions {
  /**
   * Rescale gradients so their global L2 norm is at most this (torch.nn.utils.clip_grad_norm_).
   * A runtime hyperparameter (`hyper: { clipGradNorm }`) when given; absent, the step has no clipping.
   */
  readonly clipGradNorm?: number;
  /**
   * Mixed precision: the model runs in this 16-bit dtype (its input and a 16-bit copy of every
   * float parameter; activations and matmul inputs 16-bit, matmuls accumulating in f32), the
   * loss is computed on the output cast to f32, and gradients reach the f32 master parameters
   * through the casts. Absent: everything in the parameters' dtype.
   */
  readonly mixed?: "f16" | "bf16";
  /**
   * Loss scaling under `mixed` (torch.cuda.amp.GradScaler): "dynamic" (the default for f16) keeps
   * a scale as state (`amp.scale`, `amp.growth_tracker`): the loss is multiplied by it, the
   * gradients divided; a step whose gradients hold an inf or NaN changes no parameter or
   * optimizer state and multiplies the scale by `backoffFactor`; `growthInterval` steps in a row
   * without one multiply it by `growthFactor`. A number: a fixed scale. Absent with bf16: no scaling.
   */
  readonly lossScale?: "dynamic" | number | DynamicLossScale;
}

/** GradScaler's settings (its defaults). */
export interface DynamicLossScale {
  readonly initScale?: number;
  readonly growthFactor?: number;
  readonly backoffFactor?: number;
  readonly growthInterval?: number;
}

/** State names of the dynamic loss scale. */
export const LOSS_SCALE_STATE = "amp.scale";
export const GROWTH_TRACKER_STATE = "amp.growth_tracker";

const SCALER_DEFAULTS: Required<DynamicLossScale> = { initScale: 2 ** 16, growthFactor: 2, backoffFactor: 0.5, growthInterval: 2000 };

type LossScaling = { readonly kind: "none" } | { readonly kind: "fixed"; readonly scale: number } | ({ readonly kind: "dynamic" } & Required<DynamicLossScale>);

function lossScaling(opts: TrainStepOptions): LossScaling {
  const bad = (why: string): never => userError("invalid-argument", `k.trainStep: ${why}`);
  if (opts.mixed !== undefined && opts.mixed !== "f16" && opts.mixed !== "bf16") bad(`mixed must be "f16" or "bf16", got ${JSON.stringify(opts.mixed)}`);
  const given = opts.lossScale ?? (opts.mixed === "f16" ? "dynamic" : undefined);
  if (given === undefined) return { kind: "none" };
  if (opts.mixed === undefined) bad('lossScale needs mixed ("f16" or "bf16")');
  if (typeof given === "number")
    return given > 0 && Number.isFinite(given) ? { kind: "fixed", scale: given } : bad(`lossScale must be a positive number, got ${given}`);
  const settings = {
    ...SCALER_DEFAULTS,
    ...(given === "dynamic"
      ? {}
      : strictOptions<DynamicLossScale>("lossScale", given, { initScale: true, growthFactor: true, backoffFactor: true, growthInterval: true })),
  };
  if (given !== "dynamic" && (typeof given !== "object" || given === null))
    bad(`lossScale must be "dynamic", a number or { initScale, growthFactor, backoffFactor, growthInterval }`);
  if (
    !(settings.initScale > 0) ||
    !(settings.growthFactor >= 1) ||
    !(settings.backoffFactor > 0 && settings.backoffFactor < 1) ||
    !(Number.isInteger(settings.growthInterval) && settings.growthInterval >= 1)
  )
    bad(`lossScale: initScale > 0, growthFactor ≥ 1, 0 < backoffFactor < 1 and an integer growthInterval ≥ 1, got ${JSON.stringify(settings)}`);
  return { kind: "dynamic", ...settings };
}

/** The loss of the model's output against the remaining inputs (targets); a scalar f32 tensor. */
export type LossFn = (output: Tensor, ...targets: Tensor[]) => Tensor;

/** A step takes (x, ...targets) positionally or one record whose `x` (else first) entry is the model input. */
export type TrainStepFn = (x: Tensor | Readonly<Record<string, Tensor>>, y?: Tensor, ...more: Tensor[]) => { loss: Tensor };

/** Optimizer state inputs are named `opt.<key>`: `opt.step`, `opt.0.weight.exp_avg`. */
export const OPTIMIZER_STATE_PREFIX = "opt.";

/** The functions trainStep made: k.compileModel traces them in training mode. */
const trainSteps = new WeakSet<object>();

/** Whether `fn` is a step k.trainStep made (k.compileModel traces it in training mode, the others in eval mode). */
export const isTrainStep = (fn: unknown): boolean => typeof fn === "function" && trainSteps.has(fn);

/**
 * Returns a function to trace (k.compile / k.program) that runs one step of training `model`
 * and returns `{ loss }`; parameters and optimizer state stay in the executable across runs.
 */
export function trainStep(model: Module, lossFn: LossFn, optimizer: Optimizer, opts: TrainStepOptions = {}): TrainStepFn {
  strictOptions("trainStep", opts, { clipGradNorm: true, mixed: true, lossScale: true });
  if (!(model instanceof Module)) userError("invalid-argument", "k.trainStep: the first argument must be a module (k.nn.*)");
  if (typeof lossFn !== "function") userError("invalid-argument", "k.trainStep: the second argument must be a loss function (output, ...targets) => scalar");
  if (typeof optimizer !== "object" || optimizer === null || typeof optimizer.update !== "function")
    userError("invalid-argument", "k.trainStep: the third argument must be an optimizer (k.optim.sgd/adam/adamW)");
  const maxNorm = opts.clipGradNorm;
  if (maxNorm !== undefined && !(maxNorm > 0)) userError("invalid-argument", `k.trainStep: clipGradNorm must be a positive number, got ${maxNorm}`);
  const scaling = lossScaling(opts);
  const precision: Precision = { mixed: opts.mixed, scaling };
  // Named `trainStep`, with parameters x and y, so graphs and their inputs read well in dumps.
  const step: TrainStepFn = function trainStep(x, y, ...more) {
    requireTrace("k.trainStep");
    const [input, targets] = splitInputs(x, y, more);
    return { loss: emitTrainStep(model, lossFn, optimizer, input, targets, maxNorm, precision) };
  };
  trainSteps.add(step);
  return step;
}

function splitInputs(x: Tensor | Readonly<Record<string, Tensor>>, y: Tensor | undefined, more: readonly Tensor[]): [Tensor, Tensor[]] {
  if (x instanceof Tensor) return [x, y === undefined ? [...more] : [y, ...more]];
  if (typeof x !== "object" || x === null) return userError("invalid-argument", "k.trainStep: expected tensors (x, ...targets) or one record of tensors");
  const keys = Object.keys(x);
  const inputKey = "x" in x ? "x" : keys[0];
  if (inputKey === undefined) return userError("invalid-argument", "k.trainStep: the input record is empty");
  const all = keys.map((k) => x[k]);
  if (!all.every((t) => t instanceof Tensor)) return userError("invalid-argument", "k.trainStep: every input in the record must be a tensor");
  return [x[inputKey]!, keys.filter((k) => k !== inputKey).map((k) => x[k]!)];
}

/** Trainable parameters by dotted name; a parameter shared under two names is trained once. */
function trainableParameters(model: Module): [string, Parameter][] {
  const seen = new Set<Parameter>();
  return model.namedParameters().filter(([, p]) => {
    if (!p.requiresGrad || !isFloat(p.dtype) || seen.has(p)) return false;
    seen.add(p);
    return true;
  });
}

interface Precision {
  readonly mixed: "f16" | "bf16" | undefined;
  readonly scaling: LossScaling;
}

function emitTrainStep(
  model: Module,
  lossFn: LossFn,
  optimizer: Optimizer,
  input: Tensor,
  targets: readonly Tensor[],
  maxNorm: number | undefined,
  precision: Precision,
): Tensor {
  const trace = requireTrace("k.trainStep");
  const named = trainableParameters(model);
  if (named.length === 0) return userError("invalid-argument", "k.trainStep: the model has no trainable parameters");
  const values = named.map(([, p]) => p.tensor());
  const { mixed, scaling } = precision;
  // Under mixed precision the model sees 16-bit copies of its input and float parameters (buffers
  // such as running statistics stay as they are); the loss takes the output back in f32.
  const low = (t: Tensor): Tensor => (mixed !== undefined && isFloat(t.dtype) ? t.cast(mixed) : t);
  const modelInput = low(input);
  const scale: Tensor | number =
    scaling.kind === "dynamic"
      ? trace.stateInput(LOSS_SCALE_STATE, { dtype: "f32", shape: [] }, () => ({ dtype: "f32", shape: [], data: Float64Array.of(scaling.initScale) }))
      : scaling.kind === "fixed"
        ? scaling.scale
        : 1;
  const lossOf = (...ps: Tensor[]): readonly [Tensor, Tensor] => {
    const bound = Object.fromEntries(named.map(([name], i) => [name, low(ps[i]!)]));
    const loss = functionalCall(model, bound, () => {
      const out = model.call(modelInput);
      return lossFn(mixed !== undefined && out instanceof Tensor && isFloat(out.dtype) ? out.cast("f32") : out, ...targets);
    });
    if (!(loss instanceof Tensor) || !isFloat(loss.dtype) || loss.ndim !== 0)
      return userError(
        "invalid-argument",
        `k.trainStep: the loss function must return a scalar f32 tensor, got ${loss instanceof Tensor ? formatType(loss.type) : typeof loss}`,
      );
    // The gradient is taken of the scaled loss (the first value); the step returns the loss itself.
    return [scale === 1 ? loss : loss.mul(scale), loss];
  };
  const [[, loss], scaledGrads] = valueAndGrad(lossOf, { argnums: named.map((_, i) => i), hasAux: true })(...values);
  const rawGrads = scale === 1 ? scaledGrads : scaledGrads.map((g) => g.mul(typeof scale === "number" ? 1 / scale : scale.reciprocal()));
  // An inf or NaN anywhere in the gradients (x − x is NaN exactly for inf and NaN): the dynamic scale skips the step.
  const foundInf = scaling.kind === "dynamic" ? scaledGrads.map((g) => g.sub(g).ne(0).any()).reduce((a, b) => a.logicalOr(b)) : undefined;
  const clipDecl: HyperDecl[] =
    maxNorm === undefined
      ? []
      : [
          {
            key: "clipGradNorm",
            value: maxNorm,
            check: (v) => (typeof v === "number" && v > 0 ? undefined : "be a positive number"),
            feeds: [{ name: "clipGradNorm", of: (v) => v as number }],
          },
        ];
  const hyper = hyperInputs(trace, [...clipDecl, ...optimizer.hyperparameters(named.map(([name]) => name))]);
  const grads = maxNorm === undefined ? rawGrads : clipGradNorm(rawGrads, hyper(undefined)("clipGradNorm")[0]!).grads;
  // Parameters' outputs come first in the dump: claim their slots now, fill them after the update.
  named.forEach(([, p], i) => trace.updateState(p.path, values[i]!));
  // A skipped step keeps every parameter and optimizer state value it read.
  const keep = (old: Tensor, value: Tensor): Tensor => (foundInf === undefined ? value : foundInf.where(old, value));
  const updated = optimizer.update(
    named.map(([name], i) => ({ name, value: values[i]!, grad: grads[i]! })),
    skippable(optimizerSlots(trace), keep),
    hyper,
  );
  if (updated.length !== named.length) bug(`optimizer '${optimizer.kind}' returned ${updated.length} values for ${named.length} parameters`);
  named.forEach(([, p], i) => trace.updateState(p.path, checkedUpdate(p.path, p.type, keep(values[i]!, updated[i]!))));
  if (scaling.kind === "dynamic" && foundInf !== undefined && scale instanceof Tensor) updateLossScale(trace, scaling, scale, foundInf);
  return loss;
}

/** Slots whose `set` goes through `keep(old, new)` (a skipped step keeps the old value). */
function skippable(slots: StateSlots, keep: (old: Tensor, value: Tensor) => Tensor): StateSlots {
  const read = new Map<string, Tensor>();
  return {
    get: (key, type) => {
      const t = slots.get(key, type);
      read.set(key, t);
      return t;
    },
    set: (key, value) => slots.set(key, read.has(key) ? keep(read.get(key)!, value) : value),
  };
}

/**
 * GradScaler's update (torch._amp_update_scale_): on an inf/NaN, scale × backoffFactor and the
 * tracker back to 0; else the tracker counts the step, and at growthInterval the scale ×
 * growthFactor (kept only if finite) and the tracker back to 0.
 */
function updateLossScale(trace: Trace, s: Required<DynamicLossScale>, scale: Tensor, foundInf: Tensor): void {
  const tracker = trace.stateInput(GROWTH_TRACKER_STATE, { dtype: "i32", shape: [] }, () => ({ dtype: "i32", shape: [], data: Int32Array.of(0) }));
  const successful = tracker.add(1);
  const grow = successful.eq(s.growthInterval);
  const grown = scale.mul(s.growthFactor);
  const grownOrKept = grow.logicalAnd(grown.sub(grown).eq(0)).where(grown, scale);
  trace.updateState(LOSS_SCALE_STATE, foundInf.where(scale.mul(s.backoffFactor), grownOrKept));
  trace.updateState(GROWTH_TRACKER_STATE, foundInf.logicalOr(grow).where(0, successful));
}

/**
 * The `hyper` input (f32[n], one element per scalar the declarations feed) and, per group, each
 * hyperparameter's scalars sliced from it; a group that does not set a key reads the default group's.
 */
function hyperInputs(trace: Trace, decls: readonly HyperDecl[]): (group: string | undefined) => GroupHyper {
  if (trace.hyper.length > 0) return userError("invalid-argument", "k.trainStep: a traced program holds one training step");
  const count = decls.reduce((n, d) => n + d.feeds.length, 0);
  const scalars = new Map<string, Tensor[]>();
  // An optimizer without runtime hyperparameters (a custom one) gets no `hyper` input.
  if (count === 0) return (group) => (key) => bug(`trainStep: no hyperparameter '${hyperPath(group, key)}'`);
  const vector = new Tensor(trace, trace.builder.input(HYPER_INPUT, { dtype: "f32", shape: [count] }));
  let offset = 0;
  for (const d of decls)
    scalars.set(
      hyperPath(d.group, d.key),
      d.feeds.map(() => vector.narrow(0, offset++, 1).reshape([])),
    );
  trace.hyper = decls;
  return (group) => (key) => scalars.get(hyperPath(group, key)) ?? scalars.get(key) ?? bug(`trainStep: no hyperparameter '${hyperPath(group, key)}'`);
}

function optimizerSlots(trace: Trace): StateSlots {
  return {
    get: (key, type) =>
      trace.stateInput(OPTIMIZER_STATE_PREFIX + key, type, () => ({
        dtype: type.dtype,
        shape: type.shape,
        data: allocHostData(
          type.dtype,
          type.shape.reduce((a, b) => a * b, 1),
        ),
      })),
    set: (key, value) => {
      const name = OPTIMIZER_STATE_PREFIX + key;
      const slot = trace.state.get(name);
      if (!slot) bug(`optimizer state '${name}' is set before it is read`);
      trace.updateState(name, checkedUpdate(name, slot.tensor.type, value));
    },
  };
}

function checkedUpdate(name: string, type: TensorType, value: Tensor): Tensor {
  if (value.dtype !== type.dtype || value.shape.join() !== type.shape.join())
    bug(`new value of '${name}' is ${formatType(value.type)}, its state is ${formatType(type)}`);
  return value;
}

/**
 * torch.nn.utils.clip_grad_norm_ in the graph: total = √Σ‖g‖², every gradient scaled by
 * min(1, maxNorm / (total + 1e-6)). Returns the scaled gradients and the total norm.
 */
export function clipGradNorm(grads: readonly Tensor[], maxNorm: number | Tensor): { grads: Tensor[]; totalNorm: Tensor } {
  if (grads.length === 0) return userError("invalid-argument", "clipGradNorm: no gradients given");
  const total = grads
    .map((g) => g.square().sum())
    .reduce((a, b) => a.add(b))
    .sqrt();
  const coef = total.add(1e-6).reciprocal().mul(maxNorm).minimum(1);
  return { grads: grads.map((g) => g.mul(coef)), totalNorm: total };
}
