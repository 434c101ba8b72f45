// What a runner records when it is asked to profile a run: per-kernel times in launch order
// and the host's own work (copying inputs in, reading outputs back), added into a collector the
// caller passes. Runners look at it only when one is passed: a run without a collector takes no
// timestamps, makes no extra submissions and creates no query sets. The compiler's side (FLOP
// and byte counts, source lines, the table) is targets/profile.ts.

/**
 * How kernel times were taken:
 * - `device-timestamps`: WebGPU timestamp queries around each dispatch (device time);
 * - `host-per-submission`: WebGPU without timestamp queries: one submission per kernel, timed
 *   on the host until the device reports it done (includes the submission's own overhead);
 * - `host`: host timers around each launch (js; wasm, whose launch returns when every thread is done);
 * - `cuda-events`: CUDA events recorded around each launch on the stream.
 */
export type KernelClock = "device-timestamps" | "host-per-submission" | "host" | "cuda-events";

/** A run's timings, accumulated over the runs it is passed to (one per profiled step). */
export interface RunProfiler {
  /** Set by the runner. */
  clock: KernelClock | undefined;
  /** Milliseconds per artifact kernel (index in `artifact.kernels`), summed over runs. */
  readonly kernelMs: number[];
  /** Launches per artifact kernel, summed over runs. */
  readonly kernelCalls: number[];
  /** Copying inputs to the device or the runner's memory, summed over runs. */
  inputMs: number;
  /** Reading outputs back (and, on a device, waiting for the run to finish), summed over runs. */
  readbackMs: number;
  /**
   * wasm: threads per launch, and per kernel the milliseconds its threads spent computing,
   * summed over threads and runs (a launch too small to split counts the calling thread only).
   */
  threads?: number;
  threadBusyMs?: number[];
}

export function newRunProfiler(kernels: number): RunProfiler {
  return { clock: undefined, kernelMs: new Array<number>(kernels).fill(0), kernelCalls: new Array<number>(kernels).fill(0), inputMs: 0, readbackMs: 0 };
}

/** Adds `ms` to kernel `kernel`, and `calls` launches (0 for a second section of one launch). */
export function recordKernel(p: RunProfiler, kernel: number, ms: number, calls = 1): void {
  p.kernelMs[kernel] = (p.kernelMs[kernel] ?? 0) + ms;
  p.kernelCalls[kernel] = (p.kernelCalls[kernel] ?? 0) + calls;
}
