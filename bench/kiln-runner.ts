// Kiln as a runner: k.compile on a registered target (js, wasm, webgpu, cpu…), the case's
// setup (shared initial weights), then exe.run from host inputs per step. A target that is
// not registered, or cannot run on this machine, fails init with a message saying which.

import * as k from "kiln";
import { hostIoStats, medianOf, sampleHostIo, summarizeHostIo } from "./host-io.ts";
import type { PreparedStep, Runner } from "./runner.ts";

export interface KilnRunnerOptions {
  /** Table label; default "kiln <target>". */
  readonly label?: string;
  /** Extra compile options for the target (e.g. { threads: 1 } for the wasm scaling row). */
  readonly compileOptions?: Readonly<Record<string, unknown>>;
}

export function kilnRunner(target: string, opts: KilnRunnerOptions = {}): Runner {
  const notes: string[] = [];
  return {
    name: opts.label ?? `kiln ${target}`,
    // k.compile does the compiling; on the JS target the first run is then like the others.
    firstStepIsWarm: target === "js",
    async init() {
      if (!k.registeredTargets().includes(target))
        throw new Error(`unavailable: target '${target}' is not registered (registered: ${k.registeredTargets().join(", ")})`);
      // Availability is left to k.compile: a target may refuse "auto" on a software adapter yet run when named.
      if (opts.compileOptions) notes.push(`${opts.label ?? `kiln ${target}`}: compile options ${JSON.stringify(opts.compileOptions)}`);
    },
    async prepare(benchCase, data): Promise<PreparedStep> {
      const program = benchCase.kiln();
      const exe = await k.compile(program.fn, program.specs, { ...opts.compileOptions, target });
      program.setup?.(exe, data);
      const inputs = program.inputs(data);
      // Outputs land in the executable's own arrays (out: "reuse"), as a loop that reads each
      // result before the next step would run it; the harness copies the first two for the
      // comparison after timing the step (bench/timing.ts).
      // The I/O bytes of the last timed step (set by stats(), which the harness reads first) and
      // one copy of that many bytes timed right after each kernel sample: the cache state
      // exe.run's own copies meet (the warm-array copy of stats() can sit in the L3 the kernels evict).
      let ioBytes = 0;
      let copyAfterKernelsMs: number | undefined;
      const profiled = exe as unknown as { profile?: (inputs: k.RunInputs, opts: { steps: number; warmup: number }) => Promise<{ kernelMs: number }> };
      return {
        step: async () => program.output(await exe.run(inputs, { out: "reuse" })),
        // The kernels alone (exe.profile, where this build has it): the step minus host I/O and
        // scheduling. The median of single-step profiles (3 to 9 of them, about 2 s at most), not
        // one mean of 3: on a shared machine one launch whose worker was descheduled moved the
        // mean by a third (softmax kernels read 1.40× tfjs-wasm in one quiet run, 1.72× in the next).
        kernelMs: async () => {
          if (typeof profiled.profile !== "function") return undefined;
          const samples: number[] = [];
          const copies: number[] = [];
          const copy = ioBytes > 0 ? copyTimer(ioBytes) : undefined;
          const start = performance.now();
          while (samples.length < 9 && (samples.length < 3 || performance.now() - start < 2000)) {
            samples.push((await profiled.profile(inputs, { steps: 1, warmup: 0 })).kernelMs);
            if (copy) copies.push(copy());
          }
          if (copies.length > 0) copyAfterKernelsMs = medianOf(copies);
          return medianOf(samples);
        },
        afterKernelStats: (): Record<string, number> => (copyAfterKernelsMs === undefined ? {} : { copyAfterKernelsMs }),
        // exe.run's host part inside its own steps (bench/host-io.ts): steps with `timeIo`, each
        // followed by one plain copy of its I/O bytes. Targets that do not time a run's parts
        // (all but wasm/cpu) give no samples.
        hostIo: async () => {
          if (ioBytes === 0) return {};
          const copy = copyTimer(ioBytes);
          const samples = await sampleHostIo(
            async () => program.output(await exe.run(inputs, { out: "reuse", timeIo: true })),
            () => exe.ioStats?.times,
            copy,
            () => performance.now(),
          );
          return hostIoStats(summarizeHostIo(samples));
        },
        dispose: () => undefined,
        stats: () => {
          const io = exe.ioStats;
          ioBytes = io ? io.bytesIn + io.bytesOut : 0;
          const stats = {
            ...exe.stats,
            ...(io ? { bytesIn: io.bytesIn, bytesOut: io.bytesOut, bytesAllocated: io.bytesAllocated, copyMs: plainCopyMs(io.bytesIn + io.bytesOut) } : {}),
          };
          return Object.fromEntries(Object.entries(stats).filter((entry): entry is [string, number] => typeof entry[1] === "number"));
        },
      };
    },
    notes: () => notes,
  };
}

/** A timer of one plain copy of `bytes` between two arrays of its own (pages mapped), touched by nothing else between calls. */
function copyTimer(bytes: number): () => number {
  const count = Math.max(1, Math.ceil(bytes / 4));
  const from = new Float32Array(count).fill(1);
  const to = new Float32Array(count);
  to.set(from);
  return () => {
    const start = performance.now();
    to.set(from);
    return performance.now() - start;
  };
}

/** Median time of one plain copy of `bytes` between two warm arrays (5 copies back to back): what "one copy of the I/O" costs here. */
function plainCopyMs(bytes: number): number {
  const copy = copyTimer(bytes);
  return medianOf(Array.from({ length: 5 }, copy));
}
