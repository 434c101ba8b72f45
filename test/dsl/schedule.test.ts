// k.optim.schedule against torch.optim.lr_scheduler: test/fixtures/torch/make-schedulers.py
// records the learning rate PyTorch 1.13's optimizer holds before each step for StepLR,
// MultiStepLR, ExponentialLR, ConstantLR, LinearLR, CosineAnnealingLR (alone and after a
// LinearLR warmup) and OneCycleLR (cos, and linear three-phase; rate and momentum); each Kiln schedule must give
// the same sequence. PyTorch steps most of them in its recursive form, so they agree to rounding.

import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, test } from "vitest";
import * as k from "kiln";

const fixture = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../fixtures/torch/schedulers.json");
const { cases } = JSON.parse(readFileSync(fixture, "utf8")) as {
  cases: { torch: string; schedule: keyof typeof k.optim.schedule; options: Record<string, unknown>; lrs?: number[]; momentum?: number[] }[];
};

describe("k.optim.schedule follows torch.optim.lr_scheduler", () => {
  test("the fixture covers every schedule", () => {
    expect(new Set(cases.map((c) => c.schedule))).toEqual(new Set(["constant", "step", "multiStep", "exponential", "linear", "cosine", "oneCycle"]));
  });

  test.each(cases.map((c) => [c.torch, c] as const))("%s", (_name, c) => {
    const made = (k.optim.schedule[c.schedule] as (o: unknown) => k.optim.schedule.Schedule)(c.options);
    // A momentum case reads oneCycle's momentum cycle, the others the rate.
    const sched = c.momentum ? (made as k.optim.schedule.OneCycleSchedule).momentum : made;
    const want = c.momentum ?? c.lrs!;
    expect(want.length).toBeGreaterThan(5);
    want.forEach((w, t) => expect(Math.abs(sched(t) - w), `step ${t}: ${sched(t)} vs torch ${w}`).toBeLessThanOrEqual(1e-15 + 1e-12 * Math.abs(w)));
  });
});

describe("hand-derived values and edges", () => {
  test("without lr a schedule gives the factor; cosine stays at min past total; warmup starts at 0 by default", () => {
    const cosine = k.optim.schedule.cosine({ total: 4 });
    expect([0, 1, 2, 3, 4, 9].map(cosine)).toEqual([1, (1 + Math.cos(Math.PI / 4)) / 2, 0.5, (1 + Math.cos((3 * Math.PI) / 4)) / 2, 0, 0]);
    const warm = k.optim.schedule.cosine({ lr: 2, total: 6, warmup: 2, min: 0.5 });
    expect([0, 1, 2, 4, 6].map(warm)).toEqual([0, 1, 2, 0.5 + 1.5 * 0.5, 0.5]);
    expect([0, 5, 100].map(k.optim.schedule.constant({ lr: 0.3 }))).toEqual([0.3, 0.3, 0.3]);
  });

  test("bad options and steps are one-line errors naming them", () => {
    expect(() => k.optim.schedule.cosine({ total: 5, warmup: 5 })).toThrow(
      "k.optim.schedule.cosine: total must be a whole number of steps > warmup (5), got 5",
    );
    expect(() => k.optim.schedule.step({ stepSize: 0 })).toThrow("k.optim.schedule.step: stepSize must be a whole number > 0, got 0");
    expect(() => k.optim.schedule.multiStep({ milestones: [3, 2] })).toThrow("milestones must be increasing whole numbers, got [3,2]");
    expect(() => k.optim.schedule.exponential({ gamma: 0.9, warmup: 3 } as never)).toThrow(/unknown option 'warmup'/);
    expect(() => k.optim.schedule.cosine({ total: 5 })(-1)).toThrow("k.optim.schedule.cosine: the step must be a whole number ≥ 0, got -1");
    expect(() => k.optim.schedule.oneCycle({ maxLr: 0.1, total: 10 })(11)).toThrow("k.optim.schedule.oneCycle: step 11 is past the schedule's 10 steps");
  });
});
