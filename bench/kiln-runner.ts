// Kiln as a runner: k.compile on a registered target (js, wasm, webgpu, cpu…), the case's
// setup (shared initial weights), then exe.run from host inputs per step. A target that is
// not registered, or cannot run on this machine, fails init with a message saying which.

import * as k from "kiln";
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
      return {
        step: async () => program.output(await exe.run(inputs)),
        dispose: () => undefined,
        stats: () => {
          const stats = exe.stats;
          if (!stats) return undefined;
          return Object.fromEntries(Object.entries(stats).filter((entry): entry is [string, number] => typeof entry[1] === "number"));
        },
      };
    },
    notes: () => notes,
  };
}
