// k.optim.schedule: learning-rate schedules as host functions of the step, fed to a compiled
// step through exe.run's `hyper` option (`{ hyper: { lr: sched(step) } }`), so changing the
// rate never recompiles. `sched(t)` is the rate of the step after t completed ones: PyTorch's
// `optimizer.param_groups[0]["lr"]` after t calls of `scheduler.step()`. The formulas are
// PyTorch's closed forms (StepLR, MultiStepLR, ExponentialLR, ConstantLR, LinearLR,
// CosineAnnealingLR, OneCycleLR); test/fixtures/torch/make-schedulers.py records PyTorch's
// values for the tests. `lr` is the base rate (PyTorch: the optimizer's initial lr); it
// defaults to 1, so a schedule without it gives the factor to multiply a rate by.

import { KilnError } from "../compiler/util/errors.ts";
import { strictOptions } from "./options.ts";
import { captureUserLoc } from "./loc.ts";

/** The learning rate for the step after `step` completed ones (0, 1, 2, …). */
export type Schedule = (step: number) => number;

function check(ok: boolean, message: string): void {
  if (ok) return;
  const loc = captureUserLoc();
  throw new KilnError({ code: "invalid-argument", message, ...(loc ? { loc } : {}) });
}
const positive = (x: unknown): x is number => typeof x === "number" && Number.isFinite(x) && x > 0;
const nonNegative = (x: unknown): x is number => typeof x === "number" && Number.isFinite(x) && x >= 0;
const isCount = (x: unknown): x is number => Number.isInteger(x) && (x as number) >= 0;

/** The schedule with its step checked: a count of completed steps. */
function schedule(name: string, at: (t: number) => number, last?: number): Schedule {
  return (step) => {
    check(isCount(step), `k.optim.schedule.${name}: the step must be a whole number ≥ 0, got ${step}`);
    check(last === undefined || step <= last, `k.optim.schedule.${name}: step ${step} is past the schedule's ${last} steps`);
    return at(step);
  };
}

const baseLr = (where: string, lr: unknown): number => {
  check(nonNegative(lr), `${where}: lr must be a non-negative number, got ${lr}`);
  return lr as number;
};

export interface ConstantScheduleOptions {
  /** The base rate (default 1). */
  readonly lr?: number;
  /** The rate is lr·factor for the first `total` steps, then lr (torch ConstantLR; default 1: constant). */
  readonly factor?: number;
  readonly total?: number;
}

/** torch.optim.lr_scheduler.ConstantLR: lr·factor while step < total, then lr. Without options: a constant rate. */
export function constant(opts: ConstantScheduleOptions = {}): Schedule {
  const where = "k.optim.schedule.constant";
  const { lr = 1, factor = 1, total = 0 } = strictOptions(where, opts, { lr: true, factor: true, total: true });
  const base = baseLr(where, lr);
  check(typeof factor === "number" && factor >= 0 && factor <= 1, `${where}: factor must be in [0, 1], got ${factor}`);
  check(isCount(total), `${where}: total must be a whole number of steps, got ${total}`);
  return schedule("constant", (t) => base * (t < total ? factor : 1));
}

export interface StepScheduleOptions {
  readonly lr?: number;
  /** Steps between decays. */
  readonly stepSize: number;
  /** Default 0.1. */
  readonly gamma?: number;
}

/** torch.optim.lr_scheduler.StepLR: lr·gamma^⌊step / stepSize⌋. */
export function step(opts: StepScheduleOptions): Schedule {
  const where = "k.optim.schedule.step";
  const { lr = 1, stepSize, gamma = 0.1 } = strictOptions(where, opts, { lr: true, stepSize: true, gamma: true });
  const base = baseLr(where, lr);
  check(Number.isInteger(stepSize) && stepSize > 0, `${where}: stepSize must be a whole number > 0, got ${stepSize}`);
  check(nonNegative(gamma), `${where}: gamma must be a non-negative number, got ${gamma}`);
  return schedule("step", (t) => base * gamma ** Math.floor(t / stepSize));
}

export interface MultiStepScheduleOptions {
  readonly lr?: number;
  /** Steps at which the rate is multiplied by gamma, increasing. */
  readonly milestones: readonly number[];
  /** Default 0.1. */
  readonly gamma?: number;
}

/** torch.optim.lr_scheduler.MultiStepLR: lr·gamma^(milestones ≤ step). */
export function multiStep(opts: MultiStepScheduleOptions): Schedule {
  const where = "k.optim.schedule.multiStep";
  const { lr = 1, milestones, gamma = 0.1 } = strictOptions(where, opts, { lr: true, milestones: true, gamma: true });
  const base = baseLr(where, lr);
  check(
    Array.isArray(milestones) && milestones.every((m, i) => isCount(m) && (i === 0 || m > milestones[i - 1]!)),
    `${where}: milestones must be increasing whole numbers, got ${JSON.stringify(milestones)}`,
  );
  check(nonNegative(gamma), `${where}: gamma must be a non-negative number, got ${gamma}`);
  return schedule("multiStep", (t) => base * gamma ** milestones.filter((m) => m <= t).length);
}

export interface ExponentialScheduleOptions {
  readonly lr?: number;
  /** The factor per step. */
  readonly gamma: number;
}

/** torch.optim.lr_scheduler.ExponentialLR: lr·gamma^step. */
export function exponential(opts: ExponentialScheduleOptions): Schedule {
  const where = "k.optim.schedule.exponential";
  const { lr = 1, gamma } = strictOptions(where, opts, { lr: true, gamma: true });
  const base = baseLr(where, lr);
  check(nonNegative(gamma), `${where}: gamma must be a non-negative number, got ${gamma}`);
  return schedule("exponential", (t) => base * gamma ** t);
}

export interface LinearScheduleOptions {
  readonly lr?: number;
  /** Factor of lr at step 0 (default 1/3, as torch LinearLR). */
  readonly start?: number;
  /** Factor of lr from step `total` on (default 1). */
  readonly end?: number;
  /** Steps from start to end. */
  readonly total: number;
}

/** torch.optim.lr_scheduler.LinearLR: lr·(start + (end − start)·min(step, total)/total); a warmup (start < end) or a decay. */
export function linear(opts: LinearScheduleOptions): Schedule {
  const where = "k.optim.schedule.linear";
  const { lr = 1, start = 1 / 3, end = 1, total } = strictOptions(where, opts, { lr: true, start: true, end: true, total: true });
  const base = baseLr(where, lr);
  check(nonNegative(start) && nonNegative(end), `${where}: start and end must be non-negative factors, got ${start} and ${end}`);
  check(Number.isInteger(total) && total > 0, `${where}: total must be a whole number of steps > 0, got ${total}`);
  return schedule("linear", (t) => base * (start + ((end - start) * Math.min(t, total)) / total));
}

export interface CosineScheduleOptions {
  /** The peak rate (default 1). */
  readonly lr?: number;
  /** Steps of the whole schedule, warmup included: the rate reaches `min` at step `total` and stays there. */
  readonly total: number;
  /** The final rate (torch's eta_min; default 0). */
  readonly min?: number;
  /** Steps of linear warmup before the cosine (default 0). */
  readonly warmup?: number;
  /** Factor of lr at step 0 of the warmup (default 0: lr·step/warmup). */
  readonly warmupStart?: number;
}

/**
 * torch.optim.lr_scheduler.CosineAnnealingLR (T_max = total − warmup, eta_min = min), after an
 * optional linear warmup from lr·warmupStart (torch: SequentialLR of LinearLR and the cosine):
 * min + (lr − min)·(1 + cos(π·s/(total − warmup)))/2 at s = step − warmup. Past `total` it
 * stays at min (torch's cosine would rise again).
 */
export function cosine(opts: CosineScheduleOptions): Schedule {
  const where = "k.optim.schedule.cosine";
  const {
    lr = 1,
    total,
    min = 0,
    warmup = 0,
    warmupStart = 0,
  } = strictOptions(where, opts, {
    lr: true,
    total: true,
    min: true,
    warmup: true,
    warmupStart: true,
  });
  const base = baseLr(where, lr);
  check(nonNegative(min) && min <= base, `${where}: min must be in [0, lr], got ${min}`);
  check(isCount(warmup), `${where}: warmup must be a whole number of steps, got ${warmup}`);
  check(Number.isInteger(total) && total > warmup, `${where}: total must be a whole number of steps > warmup (${warmup}), got ${total}`);
  check(typeof warmupStart === "number" && warmupStart >= 0 && warmupStart <= 1, `${where}: warmupStart must be in [0, 1], got ${warmupStart}`);
  const span = total - warmup;
  return schedule("cosine", (t) => {
    if (t < warmup) return base * (warmupStart + ((1 - warmupStart) * t) / warmup);
    const s = t - warmup;
    return s >= span ? min : min + ((base - min) * (1 + Math.cos((Math.PI * s) / span))) / 2;
  });
}

export interface OneCycleScheduleOptions {
  /** The peak rate (torch's max_lr). */
  readonly maxLr: number;
  /** Steps of the whole cycle (torch's total_steps); asking past it is an error, as in torch. */
  readonly total: number;
  /** Share of the steps spent rising (default 0.3). */
  readonly pctStart?: number;
  /** "cos" (default) or "linear". */
  readonly anneal?: "cos" | "linear";
  /** The start rate is maxLr/divFactor (default 25). */
  readonly divFactor?: number;
  /** The final rate is the start rate/finalDivFactor (default 1e4). */
  readonly finalDivFactor?: number;
  /** Rise, fall back to the start rate, then anneal to the final one (default false: rise, then anneal). */
  readonly threePhase?: boolean;
  /** `.momentum(step)` cycles from maxMomentum down to baseMomentum while the rate rises, and back (defaults 0.85, 0.95). */
  readonly baseMomentum?: number;
  readonly maxMomentum?: number;
}

/** A one-cycle rate schedule with its inverse momentum cycle (torch's cycle_momentum): feed it as `momentum` (SGD) or `betas[0]` (Adam). */
export type OneCycleSchedule = Schedule & { readonly momentum: Schedule };

/**
 * torch.optim.lr_scheduler.OneCycleLR: the rate, and with `.momentum` the momentum it cycles
 * the other way. Phases end at pctStart·total − 1, (three-phase: 2·pctStart·total − 2,)
 * total − 1; within one each value anneals from its start to its end value.
 */
export function oneCycle(opts: OneCycleScheduleOptions): OneCycleSchedule {
  const where = "k.optim.schedule.oneCycle";
  const {
    maxLr,
    total,
    pctStart = 0.3,
    anneal = "cos",
    divFactor = 25,
    finalDivFactor = 1e4,
    threePhase = false,
    baseMomentum = 0.85,
    maxMomentum = 0.95,
  } = strictOptions(where, opts, {
    maxLr: true,
    total: true,
    pctStart: true,
    anneal: true,
    divFactor: true,
    finalDivFactor: true,
    threePhase: true,
    baseMomentum: true,
    maxMomentum: true,
  });
  check(nonNegative(maxLr), `${where}: maxLr must be a non-negative number, got ${maxLr}`);
  check(Number.isInteger(total) && total > 0, `${where}: total must be a whole number of steps > 0, got ${total}`);
  check(typeof pctStart === "number" && pctStart >= 0 && pctStart <= 1, `${where}: pctStart must be in [0, 1], got ${pctStart}`);
  check(anneal === "cos" || anneal === "linear", `${where}: anneal must be "cos" or "linear", got ${JSON.stringify(anneal)}`);
  check(positive(divFactor) && positive(finalDivFactor), `${where}: divFactor and finalDivFactor must be positive, got ${divFactor} and ${finalDivFactor}`);
  check(
    nonNegative(baseMomentum) && nonNegative(maxMomentum),
    `${where}: baseMomentum and maxMomentum must be non-negative, got ${baseMomentum} and ${maxMomentum}`,
  );
  const initial = maxLr / divFactor;
  const final = initial / finalDivFactor;
  // Each phase: where it ends, and the rate and momentum at its start and end.
  type Phase = { readonly end: number; readonly lr: readonly [number, number]; readonly momentum: readonly [number, number] };
  const phases: readonly Phase[] = threePhase
    ? [
        { end: pctStart * total - 1, lr: [initial, maxLr], momentum: [maxMomentum, baseMomentum] },
        { end: 2 * pctStart * total - 2, lr: [maxLr, initial], momentum: [baseMomentum, maxMomentum] },
        { end: total - 1, lr: [initial, final], momentum: [maxMomentum, maxMomentum] },
      ]
    : [
        { end: pctStart * total - 1, lr: [initial, maxLr], momentum: [maxMomentum, baseMomentum] },
        { end: total - 1, lr: [maxLr, final], momentum: [baseMomentum, maxMomentum] },
      ];
  const annealed = (from: number, to: number, pct: number): number =>
    anneal === "cos" ? to + ((from - to) / 2) * (Math.cos(Math.PI * pct) + 1) : (to - from) * pct + from;
  const at = (value: (p: Phase) => readonly [number, number]) => (t: number) => {
    let start = 0;
    for (const [i, phase] of phases.entries()) {
      if (t <= phase.end || i === phases.length - 1) return annealed(...value(phase), (t - start) / (phase.end - start));
      start = phase.end;
    }
    return value(phases.at(-1)!)[1];
  };
  return Object.assign(
    schedule(
      "oneCycle",
      at((p) => p.lr),
      total,
    ),
    {
      momentum: schedule(
        "oneCycle",
        at((p) => p.momentum),
        total,
      ),
    },
  );
}
