// k.optim: SGD, Adam and AdamW as graph ops. An optimizer is a description plus an `update`
// that, inside a trace, turns (parameter, gradient) pairs into new parameter values, reading
// and writing its state (momentum buffers, moments, the step count) through state slots that
// k.trainStep makes graph state inputs and aliased outputs. Formulas follow torch.optim.

import { KilnError } from "../compiler/util/errors.ts";
import type { TensorType } from "../compiler/ir/types.ts";
import { strictOptions } from "./options.ts";
import type { Tensor } from "./tensor.ts";

/** One trainable parameter in a step: its dotted name, current value and gradient. */
export interface ParamGrad {
  readonly name: string;
  readonly value: Tensor;
  readonly grad: Tensor;
}

/** Optimizer state in the graph: `get` reads a state input (zeros at first), `set` gives its next value. */
export interface StateSlots {
  get(key: string, type: TensorType): Tensor;
  set(key: string, value: Tensor): void;
}

export interface Optimizer {
  readonly kind: "sgd" | "adam" | "adamw";
  /** Emits one step: returns the new value of each parameter, in order, and updates its state via `state`. */
  update(params: readonly ParamGrad[], state: StateSlots): Tensor[];
}

export interface SgdOptions {
  /** Default 1e-3, as torch.optim.SGD. */
  readonly lr?: number;
  readonly momentum?: number;
  readonly dampening?: number;
  readonly weightDecay?: number;
  readonly nesterov?: boolean;
}

export interface AdamOptions {
  readonly lr?: number;
  readonly betas?: readonly [number, number];
  readonly eps?: number;
  readonly weightDecay?: number;
  readonly amsgrad?: boolean;
}

const STEP: TensorType = { dtype: "i32", shape: [] };

function check(ok: boolean, message: string): void {
  if (!ok) throw new KilnError({ code: "invalid-argument", message });
}
const nonNegative = (x: number): boolean => Number.isFinite(x) && x >= 0;

/** Counts steps in the i32 state `step` and returns the new count as f32 (1 on the first step). */
function nextStep(state: StateSlots): Tensor {
  const t = state.get("step", STEP).add(1);
  state.set("step", t);
  return t.float();
}

/**
 * 1/k! for k = 1..15: the Taylor terms of expm1 below EXPM1_SERIES_BELOW, enough for float64
 * (the reference interpreter; x¹⁶/16! < 1e-17·|x| there). f32 would need nine; the rest cost
 * a few scalar flops per step (the scheduler hoists them out of every element loop).
 */
const INVERSE_FACTORIALS = Array.from({ length: 15 }, (_, i) => Array.from({ length: i + 1 }, (_, j) => j + 1).reduce((a, b) => a / b, 1));
/** Where exp(x) − 1 stops cancelling: |exp(x) − 1| ≥ 0.39, so exp's own rounding stays relative. */
const EXPM1_SERIES_BELOW = 0.5;

/**
 * eˣ − 1 without cancellation near 0, from primitives every target has: the Taylor series
 * (Horner) for |x| < 0.5, exp(x) − 1 beyond. In f32, 1 − exp(t·ln β) at β = 0.999, t = 1 keeps only the bits of exp(x) below
 * 1 − 0.001: up to 3e-5 relative off, and 5e-5 with WebGPU's exp (torch computes it in float64).
 */
function expm1(x: Tensor): Tensor {
  // The series runs on x clamped to its range, so the branch not taken stays finite (a NaN finder sees every node).
  const near = x.clamp(-EXPM1_SERIES_BELOW, EXPM1_SERIES_BELOW);
  let series = near.mul(INVERSE_FACTORIALS[INVERSE_FACTORIALS.length - 1]!);
  for (let k = INVERSE_FACTORIALS.length - 2; k >= 0; k--) series = near.mul(series.add(INVERSE_FACTORIALS[k]!));
  return x.abs().lt(EXPM1_SERIES_BELOW).where(series, x.exp().sub(1));
}

/**
 * torch.optim.SGD: g ← g + wd·p; with momentum, buf ← g on the first step, then
 * momentum·buf + (1 − dampening)·g, and g ← g + momentum·buf (nesterov) or buf; p ← p − lr·g.
 */
export function sgd(opts: SgdOptions = {}): Optimizer {
  const {
    lr = 1e-3,
    momentum = 0,
    dampening = 0,
    weightDecay = 0,
    nesterov = false,
  } = strictOptions("k.optim.sgd", opts, { lr: true, momentum: true, dampening: true, weightDecay: true, nesterov: true });
  check(nonNegative(lr), `sgd: lr must be a non-negative number, got ${lr}`);
  check(nonNegative(momentum), `sgd: momentum must be non-negative, got ${momentum}`);
  check(nonNegative(weightDecay), `sgd: weightDecay must be non-negative, got ${weightDecay}`);
  check(Number.isFinite(dampening), `sgd: dampening must be a number, got ${dampening}`);
  check(!nesterov || (momentum > 0 && dampening === 0), "sgd: nesterov momentum needs momentum > 0 and dampening 0");
  return {
    kind: "sgd",
    update(params, state) {
      // Only a damped buffer differs on the first step (buf = g, not (1 − dampening)·g).
      const first = momentum !== 0 && dampening !== 0 ? nextStep(state).eq(1) : undefined;
      return params.map(({ name, value, grad }) => {
        let g = weightDecay !== 0 ? grad.add(value.mul(weightDecay)) : grad;
        if (momentum !== 0) {
          const key = `${name}.momentum_buffer`;
          const old = state.get(key, value.type);
          const decayed = old.mul(momentum).add(g.mul(1 - dampening));
          const buf = first ? first.where(g, decayed) : decayed;
          state.set(key, buf);
          g = nesterov ? g.add(buf.mul(momentum)) : buf;
        }
        return value.sub(g.mul(lr));
      });
    },
  };
}

function adamFamily(kind: "adam" | "adamw", opts: AdamOptions, defaultDecay: number): Optimizer {
  const where = kind === "adam" ? "k.optim.adam" : "k.optim.adamW";
  const {
    lr = 1e-3,
    betas = [0.9, 0.999],
    eps = 1e-8,
    weightDecay = defaultDecay,
    amsgrad = false,
  } = strictOptions(where, opts, { lr: true, betas: true, eps: true, weightDecay: true, amsgrad: true });
  const [beta1, beta2] = betas;
  check(nonNegative(lr), `${kind}: lr must be a non-negative number, got ${lr}`);
  check(nonNegative(eps), `${kind}: eps must be non-negative, got ${eps}`);
  check(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1, `${kind}: betas must be in [0, 1), got [${beta1}, ${beta2}]`);
  check(nonNegative(weightDecay), `${kind}: weightDecay must be non-negative, got ${weightDecay}`);
  return {
    kind,
    update(params, state) {
      const t = nextStep(state);
      // 1 − βᵗ = −expm1(t·ln β): t is a graph value, so the power is too (β = 0 gives 1 − 0).
      const correction = (beta: number): Tensor => (beta === 0 ? t.mul(0).add(1) : expm1(t.mul(Math.log(beta))).neg());
      const stepSize = correction(beta1).reciprocal().mul(lr);
      const sqrtCorrection2 = correction(beta2).sqrt();
      return params.map(({ name, value, grad }) => {
        let p = value;
        let g = grad;
        if (weightDecay !== 0) {
          // p − (lr·wd)·p, not p·(1 − lr·wd): 1 − 1e-4 in f32 keeps the decay to 3e-4 relative.
          if (kind === "adamw") p = p.sub(p.mul(lr * weightDecay));
          else g = g.add(p.mul(weightDecay));
        }
        const m = state
          .get(`${name}.exp_avg`, value.type)
          .mul(beta1)
          .add(g.mul(1 - beta1));
        const v = state
          .get(`${name}.exp_avg_sq`, value.type)
          .mul(beta2)
          .add(g.square().mul(1 - beta2));
        state.set(`${name}.exp_avg`, m);
        state.set(`${name}.exp_avg_sq`, v);
        let second = v;
        if (amsgrad) {
          second = state.get(`${name}.max_exp_avg_sq`, value.type).maximum(v);
          state.set(`${name}.max_exp_avg_sq`, second);
        }
        const denom = second.sqrt().div(sqrtCorrection2).add(eps);
        return p.sub(m.div(denom).mul(stepSize));
      });
    },
  };
}

/** torch.optim.Adam: L2 weight decay added to the gradient, then the bias-corrected step m̂/(√v̂ + eps). */
export const adam = (opts: AdamOptions = {}): Optimizer => adamFamily("adam", opts, 0);

/** torch.optim.AdamW: decoupled decay p ← p·(1 − lr·wd) before the Adam step; weightDecay defaults to 0.01. */
export const adamW = (opts: AdamOptions = {}): Optimizer => adamFamily("adamw", opts, 1e-2);
