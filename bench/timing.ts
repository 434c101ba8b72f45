// Times one runner on one case: prepare (compile, upload weights) and the first step apart —
// together the cold start — then warm-up steps, then timed steps until `repeat` samples or the
// time budget is spent (at least one). Median and min of the samples are the step time.

import type { BenchCase, CaseData } from "./cases/case.ts";
import { errorMessage, type Runner } from "./runner.ts";

export interface TimingSettings {
  readonly warmup: number;
  readonly repeat: number;
  /** Stop sampling once this much time went into timed steps (one sample at least). */
  readonly budgetMs: number;
  /** When the first step alone took longer, it is the only sample — for runners whose first step is warm (quick runs). */
  readonly coldOnlyAboveMs?: number;
}

export interface Timed {
  readonly status: "ok";
  /** k.compile / peer setup (weights to the device, jit wrapper), before any step. */
  readonly prepareMs: number;
  /** The first step, which includes lazy compilation for jit-style peers and pipeline creation on GPUs. */
  readonly firstStepMs: number;
  readonly medianMs: number;
  readonly minMs: number;
  readonly samplesMs: readonly number[];
  /** True when the step time is the first step's (no warm samples were taken). */
  readonly coldOnly: boolean;
  /** The outputs of the first one or two steps, compared across runners (the second checks an update step). */
  readonly outputs: readonly Float32Array[];
  readonly stats?: Readonly<Record<string, number>>;
}
export interface NotTimed {
  readonly status: "failed" | "unavailable";
  readonly reason: string;
}
export type Timing = Timed | NotTimed;

const median = (values: readonly number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

export async function timeRunner(runner: Runner, benchCase: BenchCase, data: CaseData, settings: TimingSettings): Promise<Timing> {
  let prepared;
  const prepareStart = performance.now();
  try {
    prepared = await runner.prepare(benchCase, data);
  } catch (e) {
    const code = (e as { diag?: { code?: string } }).diag?.code;
    const reason = errorMessage(e);
    if (reason.startsWith("unavailable: ")) return { status: "unavailable", reason: reason.slice(13) };
    return code === "target-unavailable" ? { status: "unavailable", reason } : { status: "failed", reason: `prepare: ${reason}` };
  }
  try {
    const firstStart = performance.now();
    const prepareMs = firstStart - prepareStart;
    const first = await prepared.step();
    const firstStepMs = prepared.selfTimedMs?.() ?? performance.now() - firstStart;
    // The compared outputs are copied after the step's time is taken (a runner may refill one
    // array every step, as Kiln's `out: "reuse"` does): the copy is the harness's, not the step's.
    const outputs = [first.slice()];
    const samplesMs: number[] = [];
    /** One step; its output copied for the comparison (the first two) after `timed` has read the clock. */
    const step = async (timed?: () => void): Promise<void> => {
      const output = await prepared.step();
      timed?.();
      if (outputs.length < 2) outputs.push(output.slice());
    };
    const coldOnly = settings.coldOnlyAboveMs !== undefined && runner.firstStepIsWarm === true && firstStepMs > settings.coldOnlyAboveMs;
    if (coldOnly) samplesMs.push(firstStepMs);
    else {
      for (let i = 0; i < settings.warmup; i++) await step();
      let spentMs = 0;
      while (samplesMs.length < Math.max(1, settings.repeat) && (samplesMs.length === 0 || spentMs < settings.budgetMs)) {
        const start = performance.now();
        let end = 0;
        await step(() => {
          end = performance.now();
        });
        const elapsed = prepared.selfTimedMs?.() ?? end - start;
        samplesMs.push(elapsed);
        spentMs += elapsed;
      }
    }
    // The counters of the last timed step first: measuring the kernels runs the step again.
    const counted = prepared.stats?.();
    const kernelMs = await prepared.kernelMs?.();
    const afterKernels = prepared.afterKernelStats?.();
    const hostIo = await prepared.hostIo?.();
    const stats = { ...counted, ...(kernelMs !== undefined ? { kernelMs } : {}), ...afterKernels, ...hostIo };
    return {
      status: "ok",
      prepareMs,
      firstStepMs,
      medianMs: median(samplesMs),
      minMs: Math.min(...samplesMs),
      samplesMs,
      coldOnly,
      outputs,
      ...(Object.keys(stats).length > 0 ? { stats } : {}),
    };
  } catch (e) {
    return { status: "failed", reason: `step: ${errorMessage(e)}` };
  } finally {
    prepared.dispose();
  }
}
