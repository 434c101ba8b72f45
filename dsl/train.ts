// k.trainStep: one training step as one graph. Parameters and optimizer state are state
// inputs; the step runs the model and loss, appends the backward pass (k.valueAndGrad over
// the parameter tensors), optionally clips gradients by global norm, applies the optimizer,
// and gives every parameter and state tensor its new value as an output aliasing its input.
// The optimizer's hyperparameters and the clipping norm come from the `hyper` input
// (dsl/hyper.ts), which the executable fills from its current settings.

import { isFloat } from "../compiler/ir/dtype.ts";
import type { TensorType } from "../compiler/ir/types.ts";
import { bug, KilnError } from "../compiler/util/errors.ts";
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
  strictOptions("trainStep", opts, { clipGradNorm: true });
  if (!(model instanceof Module)) throw new KilnError({ code: "invalid-argument", message: "k.trainStep: the first argument must be a module (k.nn.*)" });
  if (typeof lossFn !== "function")
    throw new KilnError({ code: "invalid-argument", message: "k.trainStep: the second argument must be a loss function (output, ...targets) => scalar" });
  if (typeof optimizer !== "object" || optimizer === null || typeof optimizer.update !== "function")
    throw new KilnError({ code: "invalid-argument", message: "k.trainStep: the third argument must be an optimizer (k.optim.sgd/adam/adamW)" });
  const maxNorm = opts.clipGradNorm;
  if (maxNorm !== undefined && !(maxNorm > 0))
    throw new KilnError({ code: "invalid-argument", message: `k.trainStep: clipGradNorm must be a positive number, got ${maxNorm}` });
  // Named `trainStep`, with parameters x and y, so graphs and their inputs read well in dumps.
  const step: TrainStepFn = function trainStep(x, y, ...more) {
    requireTrace("k.trainStep");
    const [input, targets] = splitInputs(x, y, more);
    return { loss: emitTrainStep(model, lossFn, optimizer, input, targets, maxNorm) };
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

function emitTrainStep(model: Module, lossFn: LossFn, optimizer: Optimizer, input: Tensor, targets: readonly Tensor[], maxNorm: number | undefined): Tensor {
  const trace = requireTrace("k.trainStep");
  const named = trainableParameters(model);
  if (named.length === 0) return userError("invalid-argument", "k.trainStep: the model has no trainable parameters");
  const values = named.map(([, p]) => p.tensor());
  const lossOf = (...ps: Tensor[]): Tensor => {
    const bound = Object.fromEntries(named.map(([name], i) => [name, ps[i]!]));
    const loss = functionalCall(model, bound, () => lossFn(model.call(input), ...targets));
    if (!(loss instanceof Tensor) || !isFloat(loss.dtype) || loss.ndim !== 0)
      return userError(
        "invalid-argument",
        `k.trainStep: the loss function must return a scalar f32 tensor, got ${loss instanceof Tensor ? formatType(loss.type) : typeof loss}`,
      );
    return loss;
  };
  const [loss, rawGrads] = valueAndGrad(lossOf, { argnums: named.map((_, i) => i) })(...values);
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
  const updated = optimizer.update(
    named.map(([name], i) => ({ name, value: values[i]!, grad: grads[i]! })),
    optimizerSlots(trace),
    hyper,
  );
  if (updated.length !== named.length) bug(`optimizer '${optimizer.kind}' returned ${updated.length} values for ${named.length} parameters`);
  named.forEach(([, p], i) => trace.updateState(p.path, checkedUpdate(p.path, p.type, updated[i]!)));
  return loss;
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
