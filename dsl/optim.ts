// k.optim: SGD, Adam and AdamW as graph ops. An optimizer is a description plus an `update`
// that, inside a trace, turns (parameter, gradient) pairs into new parameter values, reading
// and writing its state (momentum buffers, moments, the step count) through state slots that
// k.trainStep makes graph state inputs and aliased outputs. Formulas follow torch.optim.
// Hyperparameters (lr, betas, eps, weight decay, momentum, dampening) are runtime inputs of the
// step (dsl/hyper.ts), per parameter group; what changes the graph's shape (amsgrad, nesterov,
// whether there is momentum or dampening at all) is fixed at construction.

import { KilnError } from "../compiler/util/errors.ts";
import type { TensorType } from "../compiler/ir/types.ts";
import { checkOptions, suggestOption } from "../compiler/util/options.ts";
import { formatHyper, type HyperDecl, type HyperFeed, type HyperValue } from "./hyper.ts";
import { captureUserLoc } from "./loc.ts";
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

/**
 * The runtime hyperparameter tensors of one parameter group: `lr`, `weightDecay`, … (each an
 * f32 scalar, or several for a value the host derives from, e.g. betas). A group that did not
 * set a key gets the default group's tensors.
 */
export type GroupHyper = (key: string) => readonly Tensor[];

export interface Optimizer {
  readonly kind: "sgd" | "adam" | "adamw";
  /**
   * Its runtime hyperparameters for a step over parameters with these names: the default
   * group's, then each group's own. Throws when a group matches no parameter.
   */
  hyperparameters(paramNames: readonly string[]): HyperDecl[];
  /**
   * Emits one step: returns the new value of each parameter, in order, and updates its state
   * via `state`; `hyper(group)` gives a group's hyperparameter tensors (undefined: the default group).
   */
  update(params: readonly ParamGrad[], state: StateSlots, hyper: (group: string | undefined) => GroupHyper): Tensor[];
}

/** Which parameters a group holds: a test of the dotted name (`(n) => n.endsWith(".bias")`) or the names. */
export type ParamSelector = ((name: string) => boolean) | readonly string[];

export interface SgdOptions {
  /** Default 1e-3, as torch.optim.SGD. */
  readonly lr?: number;
  /** 0 (the default) compiles the step without momentum buffers: it cannot be set at run time then. */
  readonly momentum?: number;
  /** 0 (the default) compiles the dampening out: it cannot be set at run time then. */
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

/** A parameter group: the parameters it holds, its name in exe.run's `hyper` (default `group<i>`), its own hyperparameters. */
interface GroupBase {
  readonly params: ParamSelector;
  readonly name?: string;
}
export interface SgdGroup extends GroupBase {
  readonly lr?: number;
  readonly momentum?: number;
  readonly dampening?: number;
  readonly weightDecay?: number;
}
export interface AdamGroup extends GroupBase {
  readonly lr?: number;
  readonly betas?: readonly [number, number];
  readonly eps?: number;
  readonly weightDecay?: number;
}

export interface OptimizerGroupOptions<G> {
  /**
   * Parameter groups with their own hyperparameters (torch.optim's param_groups): a parameter
   * joins the first group whose `params` holds it; the rest form the default group, which
   * the first argument configures. A group inherits every hyperparameter it does not set from
   * the default group, at run time too (setting `lr` moves every group without its own lr).
   */
  readonly groups?: readonly G[];
}

const STEP: TensorType = { dtype: "i32", shape: [] };

function check(ok: boolean, message: string): void {
  if (ok) return;
  const loc = captureUserLoc();
  throw new KilnError({ code: "invalid-argument", message, ...(loc ? { loc } : {}) });
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

/** A hyperparameter's check (completing "`key` must …") and the scalars of the `hyper` input it feeds. */
interface HyperSpec {
  readonly check: (v: HyperValue) => string | undefined;
  readonly feeds: readonly HyperFeed[];
}

const numberSpec = (key: string, why: string, ok: (v: number) => boolean): HyperSpec => ({
  check: (v) => (typeof v === "number" && ok(v) ? undefined : why),
  feeds: [{ name: key, of: (v) => v as number }],
});
const lrSpec = numberSpec("lr", "be a non-negative number", nonNegative);
const weightDecaySpec = numberSpec("weightDecay", "be non-negative", nonNegative);
/** ln β for the bias correction 1 − βᵗ = −expm1(t·ln β); β = 0 gives −1e4 (βᵗ = 0, and no −Inf for the NaN finder to trip on). */
const logOf = (beta: number): number => (beta > 0 ? Math.log(beta) : -1e4);
const betasSpec: HyperSpec = {
  check: (v) => (Array.isArray(v) && v.every((b) => typeof b === "number" && b >= 0 && b < 1) ? undefined : "be in [0, 1)"),
  feeds: [0, 1].flatMap((i) => [
    { name: `beta${i + 1}`, of: (v: HyperValue) => (v as readonly number[])[i]! },
    { name: `oneMinusBeta${i + 1}`, of: (v: HyperValue) => 1 - (v as readonly number[])[i]! },
    { name: `logBeta${i + 1}`, of: (v: HyperValue) => logOf((v as readonly number[])[i]!) },
  ]),
};
const sgdSpecs: Readonly<Record<string, HyperSpec>> = {
  lr: lrSpec,
  momentum: numberSpec("momentum", "be non-negative", nonNegative),
  // The step multiplies by 1 − dampening, computed on the host in float64.
  dampening: {
    check: (v) => (typeof v === "number" && Number.isFinite(v) ? undefined : "be a number"),
    feeds: [{ name: "oneMinusDampening", of: (v) => 1 - (v as number) }],
  },
  weightDecay: weightDecaySpec,
};
const adamSpecs: Readonly<Record<string, HyperSpec>> = {
  lr: lrSpec,
  betas: betasSpec,
  eps: numberSpec("eps", "be non-negative", nonNegative),
  weightDecay: weightDecaySpec,
};

interface ResolvedGroup {
  readonly name: string;
  readonly params: ParamSelector;
  /** The hyperparameters it sets itself. */
  readonly own: Readonly<Record<string, HyperValue>>;
}

const RESERVED_GROUP_NAMES = ["clipGradNorm"];

/** Checks the groups option (keys, selectors, names, values) at construction. */
function resolveGroups(
  where: string,
  kind: string,
  groups: unknown,
  groupKeys: readonly string[],
  specs: Readonly<Record<string, HyperSpec>>,
): ResolvedGroup[] {
  if (groups === undefined) return [];
  check(Array.isArray(groups), `${kind}: groups must be an array of { params, … }, got ${typeof groups}`);
  const names = new Set<string>();
  return (groups as readonly Record<string, unknown>[]).map((group, i) => {
    checkOptions(`${where} (group ${i})`, group, ["params", "name", ...groupKeys], captureUserLoc());
    const { params, name = `group${i}`, ...own } = group as { params?: unknown; name?: unknown } & Record<string, unknown>;
    check(
      typeof params === "function" || (Array.isArray(params) && params.every((p) => typeof p === "string")),
      `${kind}: group ${i} needs params: a test of the parameter name ((name) => boolean) or a list of names`,
    );
    check(typeof name === "string" && /^[A-Za-z_$][\w$]*$/.test(name), `${kind}: group ${i}'s name must be an identifier, got ${JSON.stringify(name)}`);
    const groupName = name as string;
    check(!(groupName in specs) && !RESERVED_GROUP_NAMES.includes(groupName), `${kind}: group name '${groupName}' is a hyperparameter's name; pick another`);
    check(!names.has(groupName), `${kind}: two groups are named '${groupName}'`);
    names.add(groupName);
    for (const [key, value] of Object.entries(own)) {
      const why = specs[key]!.check(value as HyperValue);
      check(why === undefined, `${kind}: group '${groupName}': ${key} must ${why}, got ${formatHyper(value)}`);
    }
    return { name: groupName, params: params as ParamSelector, own: own as Record<string, HyperValue> };
  });
}

/** Each parameter's group name (undefined: the default group); a listed name that is no parameter, or a group that holds none, is an error. */
function assignGroups(kind: string, groups: readonly ResolvedGroup[], paramNames: readonly string[]): (string | undefined)[] {
  for (const g of groups)
    if (Array.isArray(g.params))
      for (const listed of g.params as readonly string[])
        if (!paramNames.includes(listed)) {
          const near = suggestOption(listed, paramNames);
          throw new KilnError({
            code: "invalid-argument",
            message: `${kind}: group '${g.name}' lists '${listed}', which is not a trainable parameter${near ? ` — did you mean '${near}'?` : ` (parameters: ${paramNames.slice(0, 8).join(", ")}${paramNames.length > 8 ? ", …" : ""})`}`,
          });
        }
  const holds = (g: ResolvedGroup, name: string): boolean => (typeof g.params === "function" ? g.params(name) === true : g.params.includes(name));
  const assigned = paramNames.map((name) => groups.find((g) => holds(g, name))?.name);
  for (const g of groups)
    if (!assigned.includes(g.name))
      throw new KilnError({
        code: "invalid-argument",
        message: `${kind}: group '${g.name}' holds no parameter (an earlier group took them, or its params match none of: ${paramNames.slice(0, 8).join(", ")}${paramNames.length > 8 ? ", …" : ""})`,
      });
  return assigned;
}

/** The default group's runtime hyperparameters, then each group's own. */
function declarations(
  defaults: Readonly<Record<string, HyperValue>>,
  groups: readonly ResolvedGroup[],
  specs: Readonly<Record<string, HyperSpec>>,
): HyperDecl[] {
  const decl = (key: string, group: string | undefined, value: HyperValue): HyperDecl => ({ key, group, value, ...specs[key]! });
  return [
    ...Object.entries(defaults).map(([key, value]) => decl(key, undefined, value)),
    ...groups.flatMap((g) => Object.entries(g.own).flatMap(([key, value]) => (key in defaults ? [decl(key, g.name, value)] : []))),
  ];
}

function checkDefaults(kind: string, defaults: Readonly<Record<string, HyperValue>>, specs: Readonly<Record<string, HyperSpec>>): void {
  for (const [key, value] of Object.entries(defaults)) {
    const why = specs[key]!.check(value);
    check(why === undefined, `${kind}: ${key} must ${why}, got ${formatHyper(value)}`);
  }
}

/**
 * torch.optim.SGD: g ← g + wd·p; with momentum, buf ← g on the first step, then
 * momentum·buf + (1 − dampening)·g, and g ← g + momentum·buf (nesterov) or buf; p ← p − lr·g.
 * lr and weightDecay are runtime hyperparameters; momentum and dampening too when some group
 * has them nonzero at construction (else they are compiled out).
 */
export function sgd(opts: SgdOptions = {}, groupOpts: OptimizerGroupOptions<SgdGroup> = {}): Optimizer {
  const {
    lr = 1e-3,
    momentum = 0,
    dampening = 0,
    weightDecay = 0,
    nesterov = false,
  } = strictOptions("k.optim.sgd", opts, { lr: true, momentum: true, dampening: true, weightDecay: true, nesterov: true });
  const { groups: rawGroups } = strictOptions("k.optim.sgd", groupOpts, { groups: true });
  checkDefaults("sgd", { lr, momentum, dampening, weightDecay }, sgdSpecs);
  const groups = resolveGroups("k.optim.sgd", "sgd", rawGroups, ["lr", "momentum", "dampening", "weightDecay"], sgdSpecs);
  const own = (g: ResolvedGroup, key: string, fallback: number): number => (g.own[key] as number | undefined) ?? fallback;
  const effective = [{ momentum, dampening }, ...groups.map((g) => ({ momentum: own(g, "momentum", momentum), dampening: own(g, "dampening", dampening) }))];
  for (const e of effective) check(!nesterov || (e.momentum > 0 && e.dampening === 0), "sgd: nesterov momentum needs momentum > 0 and dampening 0");
  const hasMomentum = effective.some((e) => e.momentum !== 0);
  const hasDampening = hasMomentum && effective.some((e) => e.dampening !== 0);
  const defaults: Record<string, HyperValue> = { lr, weightDecay, ...(hasMomentum ? { momentum } : {}), ...(hasDampening ? { dampening } : {}) };
  return {
    kind: "sgd",
    hyperparameters(paramNames) {
      assignGroups("sgd", groups, paramNames);
      return declarations(defaults, groups, sgdSpecs);
    },
    update(params, state, hyper) {
      const groupOf = assignGroups(
        "sgd",
        groups,
        params.map((p) => p.name),
      );
      // Only a damped buffer differs on the first step (buf = g, not (1 − dampening)·g).
      const first = hasDampening ? nextStep(state).eq(1) : undefined;
      return params.map(({ name, value, grad }, i) => {
        const h = hyper(groupOf[i]);
        let g = grad.add(value.mul(h("weightDecay")[0]!));
        if (hasMomentum) {
          const momentumNow = h("momentum")[0]!;
          const key = `${name}.momentum_buffer`;
          const old = state.get(key, value.type);
          const decayed = old.mul(momentumNow).add(hasDampening ? g.mul(h("dampening")[0]!) : g);
          const buf = first ? first.where(g, decayed) : decayed;
          state.set(key, buf);
          // Momentum 0 (a group's, or set at run time) is plain SGD, as in torch, whatever the dampening.
          g = nesterov ? g.add(buf.mul(momentumNow)) : hasDampening ? momentumNow.gt(0).where(buf, g) : buf;
        }
        return value.sub(g.mul(h("lr")[0]!));
      });
    },
  };
}

function adamFamily(kind: "adam" | "adamw", opts: AdamOptions, groupOpts: OptimizerGroupOptions<AdamGroup>, defaultDecay: number): Optimizer {
  const where = kind === "adam" ? "k.optim.adam" : "k.optim.adamW";
  const {
    lr = 1e-3,
    betas = [0.9, 0.999],
    eps = 1e-8,
    weightDecay = defaultDecay,
    amsgrad = false,
  } = strictOptions(where, opts, { lr: true, betas: true, eps: true, weightDecay: true, amsgrad: true });
  const { groups: rawGroups } = strictOptions(where, groupOpts, { groups: true });
  const defaults: Record<string, HyperValue> = { lr, betas, eps, weightDecay };
  checkDefaults(kind, defaults, adamSpecs);
  const groups = resolveGroups(where, kind, rawGroups, ["lr", "betas", "eps", "weightDecay"], adamSpecs);
  return {
    kind,
    hyperparameters(paramNames) {
      assignGroups(kind, groups, paramNames);
      return declarations(defaults, groups, adamSpecs);
    },
    update(params, state, hyper) {
      const groupOf = assignGroups(
        kind,
        groups,
        params.map((p) => p.name),
      );
      const t = nextStep(state);
      // 1 − βᵗ = −expm1(t·ln β): t is a graph value, so the power is too (ln β comes from the host).
      const correction = (logBeta: Tensor): Tensor => expm1(t.mul(logBeta)).neg();
      // Per group: its step size lr/(1 − β1ᵗ) and √(1 − β2ᵗ), scalars (the scheduler hoists them out of every element loop).
      const perGroup = new Map<string | undefined, { stepSize: Tensor; sqrtCorrection2: Tensor }>();
      const scalarsOf = (group: string | undefined) => {
        let found = perGroup.get(group);
        if (!found) {
          const h = hyper(group);
          const b = h("betas");
          found = { stepSize: correction(b[2]!).reciprocal().mul(h("lr")[0]!), sqrtCorrection2: correction(b[5]!).sqrt() };
          perGroup.set(group, found);
        }
        return found;
      };
      return params.map(({ name, value, grad }, i) => {
        const h = hyper(groupOf[i]);
        const [lrNow, weightDecayNow, epsNow] = [h("lr")[0]!, h("weightDecay")[0]!, h("eps")[0]!];
        const [beta1, oneMinusBeta1, , beta2, oneMinusBeta2] = h("betas");
        const { stepSize, sqrtCorrection2 } = scalarsOf(groupOf[i]);
        let p = value;
        let g = grad;
        // p − (lr·wd)·p, not p·(1 − lr·wd): 1 − 1e-4 in f32 keeps the decay to 3e-4 relative.
        if (kind === "adamw") p = p.sub(p.mul(lrNow.mul(weightDecayNow)));
        else g = g.add(p.mul(weightDecayNow));
        const m = state.get(`${name}.exp_avg`, value.type).mul(beta1!).add(g.mul(oneMinusBeta1!));
        const v = state.get(`${name}.exp_avg_sq`, value.type).mul(beta2!).add(g.square().mul(oneMinusBeta2!));
        state.set(`${name}.exp_avg`, m);
        state.set(`${name}.exp_avg_sq`, v);
        let second = v;
        if (amsgrad) {
          second = state.get(`${name}.max_exp_avg_sq`, value.type).maximum(v);
          state.set(`${name}.max_exp_avg_sq`, second);
        }
        const denom = second.sqrt().div(sqrtCorrection2).add(epsNow);
        return p.sub(m.div(denom).mul(stepSize));
      });
    },
  };
}

/** torch.optim.Adam: L2 weight decay added to the gradient, then the bias-corrected step m̂/(√v̂ + eps). */
export const adam = (opts: AdamOptions = {}, groupOpts: OptimizerGroupOptions<AdamGroup> = {}): Optimizer => adamFamily("adam", opts, groupOpts, 0);

/** torch.optim.AdamW: decoupled decay p ← p·(1 − lr·wd) before the Adam step; weightDecay defaults to 0.01. */
export const adamW = (opts: AdamOptions = {}, groupOpts: OptimizerGroupOptions<AdamGroup> = {}): Optimizer => adamFamily("adamw", opts, groupOpts, 1e-2);
export * as schedule from "./schedule.ts";
