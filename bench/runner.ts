// What the harness times: a runner (Kiln on a target, or a peer library on a backend) turns a
// case into a prepared step. `prepare` does the one-time work (compile, weights to the device);
// `step` runs once from host inputs to host outputs and resolves when the output is on the host.

import type { BenchCase, CaseData } from "./cases/case.ts";

export interface PreparedStep {
  /** Runs one step; resolves to the compared output (the result, or the loss) read back to the host. */
  step(): Promise<Float32Array>;
  dispose(): void;
  /** The last step's time as the runner measured it itself (a child process: the pipe is not part of the step), where it does. */
  selfTimedMs?(): number;
  /** Kiln: the kernels' share of a step (exe.profile), measured after the timed steps. */
  kernelMs?(): Promise<number | undefined>;
  /** Counters worth recording beside the time (Kiln: kernels per run, bytes moved), if any. */
  stats?(): Readonly<Record<string, number>> | undefined;
  /** Measures taken while kernelMs ran (Kiln: one copy of the step's I/O timed right after the kernels), read after it. */
  afterKernelStats?(): Readonly<Record<string, number>>;
  /** Kiln: exe.run's host part timed inside its own steps beside a plain copy of its I/O (bench/host-io.ts), after kernelMs. */
  hostIo?(): Promise<Readonly<Record<string, number>>>;
}

export interface Runner {
  /** Short label in tables, e.g. "kiln js", "tfjs-wasm", "jax-js webgpu". */
  readonly name: string;
  /** Package and version for the record, e.g. "@tensorflow/tfjs-backend-wasm@4.22.0"; absent for Kiln. */
  readonly peer?: string;
  /**
   * Whether the first step costs what later ones do (no lazy compile, no memory growth): only
   * then may a quick run take the first step as the sample (tfjs-cpu, Kiln's JS target).
   */
  readonly firstStepIsWarm?: boolean;
  /** One-time backend start (load wasm, open the adapter); a failure marks the runner failed for every case. */
  init(): Promise<void>;
  prepare(benchCase: BenchCase, data: CaseData): Promise<PreparedStep>;
  /** Notes printed under the table (thread count, what the peer runs); filled after init. */
  notes(): readonly string[];
}

export const errorMessage = (e: unknown): string => (e instanceof Error ? e.message.split("\n")[0]! : String(e));

/** Closes a switch over case ids: a new case is a type error in every runner until handled. */
export function unreachable(value: never): never {
  throw new Error(`unhandled case '${String(value)}'`);
}
