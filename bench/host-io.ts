// exe.run's host part measured inside its own steps (issue 14: exe.run costs at most 1.5× a
// plain copy of its I/O beyond the kernels). Each sample is one exe.run with `timeIo` (the
// wasm runner times its input write, kernels and output read on the calling thread) whose
// wall time the bench takes around it, then one plain copy of the step's I/O bytes timed right
// after, between two arrays nothing else touches: the copy meets what the step left in the
// caches, as the next step's own copies do. "Beyond the kernels" is the step's wall time minus
// its own kernel time, so no two medians of different runs are subtracted.

import type { IoTimes } from "kiln";

/** One step: its wall time, the runner's parts of it, and the plain copy timed right after it. */
export interface IoSample extends IoTimes {
  readonly stepMs: number;
  readonly copyMs: number;
}

/** Medians over the samples (each part's median on its own, so the parts need not add up to `beyondMs`). */
export interface IoSummary {
  readonly samples: number;
  /** exe.run's wall time minus the kernels of the same step. */
  readonly beyondMs: number;
  readonly writeMs: number;
  readonly readMs: number;
  /** What is neither the copies nor the kernels: checks, scheduling, building the result. */
  readonly restMs: number;
  readonly copyMs: number;
  /** Median over the samples of beyondMs / copyMs, each step against the copy after it. */
  readonly beyondOverCopy: number;
  /** The same for the runner's copies alone, (write + read) / copy: how near memcpy the copying itself runs. */
  readonly copiesOverCopy: number;
  /**
   * The least beyondMs over the least copy: on a loaded machine a descheduled thread only ever
   * adds time, so each minimum is the least disturbed reading of its own (they may come from different steps).
   */
  readonly bestOverBest: number;
}

export interface IoSampling {
  /** At least this many samples, and at most `max`, within `budgetMs` once `min` are taken. */
  readonly min: number;
  readonly max: number;
  readonly budgetMs: number;
}

export const IO_SAMPLING: IoSampling = { min: 3, max: 21, budgetMs: 2000 };

export function medianOf(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/**
 * Samples `step` (one run, timed with `now` around it), reads the runner's parts of it with
 * `parts` after the clock (undefined where the target does not time them: then no samples),
 * then times `copy` (one plain copy, ms).
 */
export async function sampleHostIo(
  step: () => Promise<unknown>,
  parts: () => IoTimes | undefined,
  copy: () => number,
  now: () => number,
  sampling: IoSampling = IO_SAMPLING,
): Promise<IoSample[]> {
  const samples: IoSample[] = [];
  const start = now();
  while (samples.length < sampling.max && (samples.length < sampling.min || now() - start < sampling.budgetMs)) {
    const t0 = now();
    await step();
    const stepMs = now() - t0;
    const times = parts();
    if (!times) return [];
    samples.push({ stepMs, writeMs: times.writeMs, executeMs: times.executeMs, readMs: times.readMs, copyMs: copy() });
  }
  return samples;
}

export function summarizeHostIo(samples: readonly IoSample[]): IoSummary | undefined {
  if (samples.length === 0) return undefined;
  const beyond = samples.map((s) => s.stepMs - s.executeMs);
  return {
    samples: samples.length,
    beyondMs: medianOf(beyond),
    writeMs: medianOf(samples.map((s) => s.writeMs)),
    readMs: medianOf(samples.map((s) => s.readMs)),
    restMs: medianOf(samples.map((s) => s.stepMs - s.executeMs - s.writeMs - s.readMs)),
    copyMs: medianOf(samples.map((s) => s.copyMs)),
    beyondOverCopy: medianOf(samples.map((s, i) => beyond[i]! / Math.max(s.copyMs, 1e-9))),
    copiesOverCopy: medianOf(samples.map((s) => (s.writeMs + s.readMs) / Math.max(s.copyMs, 1e-9))),
    bestOverBest: Math.min(...beyond) / Math.max(Math.min(...samples.map((s) => s.copyMs)), 1e-9),
  };
}

/** The summary as the numeric stats a timing record carries (bench/timing.ts), keys prefixed `io`. */
export function hostIoStats(summary: IoSummary | undefined): Record<string, number> {
  if (!summary) return {};
  return {
    ioSamples: summary.samples,
    ioBeyondMs: summary.beyondMs,
    ioWriteMs: summary.writeMs,
    ioReadMs: summary.readMs,
    ioRestMs: summary.restMs,
    ioCopyMs: summary.copyMs,
    ioBeyondOverCopy: summary.beyondOverCopy,
    ioCopiesOverCopy: summary.copiesOverCopy,
    ioBestOverBest: summary.bestOverBest,
  };
}
