// Picking the driver's and the fusion options out of one target options object (k.compile
// passes the caller's options through to the target as one record).

import type { DriverOptions } from "../compiler/compile.ts";
import type { FuseOptions } from "../compiler/kernel/fusion-plan.ts";

/** The option names the driver reads (compiler/compile.ts); every target accepts them. */
export const DRIVER_OPTION_NAMES = ["verify", "dumpAfter", "dumpAll", "dump", "timePasses", "debug", "locs", "raw", "autodiff", "graphPasses"] as const;

/** Option names that exist on `T` (a list that names a missing option does not compile). */
export type OptionKeys<T> = readonly (keyof T & string)[];

export function driverOptionsOf(opts: DriverOptions): DriverOptions {
  const picked: Record<string, unknown> = {};
  for (const name of DRIVER_OPTION_NAMES) if (opts[name] !== undefined) picked[name] = opts[name];
  return picked as DriverOptions;
}

export function fuseOptionsOf(opts: FuseOptions): FuseOptions {
  return {
    ...(opts.horizontal !== undefined ? { horizontal: opts.horizontal } : {}),
    ...(opts.noFusion !== undefined ? { noFusion: opts.noFusion } : {}),
    ...(opts.maxBuffersPerKernel !== undefined ? { maxBuffersPerKernel: opts.maxBuffersPerKernel } : {}),
    ...(opts.fuseAttention !== undefined ? { fuseAttention: opts.fuseAttention } : {}),
    ...(opts.attentionUnrolledFeatures !== undefined ? { attentionUnrolledFeatures: opts.attentionUnrolledFeatures } : {}),
  };
}
