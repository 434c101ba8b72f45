// `kiln tune <model.ts> --entry <name>`: compile one exported k.program for webgpu with
// autotuning's search (`tune: true`): every matmul and row kernel the adapter's tuning cache
// lacks is timed over its candidate forms and the winner saved, so later compiles of any model
// with those kernels (k.compile, `kiln run`, `kiln train`) use it without searching. Prints one
// row per tuned section: its key, the chosen form, its time and the adapter kind's default's
// (docs/tuning.md).

import { compile } from "../dsl/compile.ts";
import type { WebGpuArtifact } from "../runtime/artifact/format.ts";
import { acquireWebGpu } from "../runtime/webgpu/device.ts";
import { throttledProgress } from "../targets/webgpu.ts";
import { importTuning, loadTuneCache, saveTuneCache } from "../targets/webgpu-tune-cache.ts";
import { loadArtifact } from "../runtime/artifact/load.ts";
import type { WebGpuAdapterDescription } from "../runtime/webgpu/device.ts";
import { KilnError } from "../compiler/util/errors.ts";
import { expectPositionals, parseCommandArgs } from "./args.ts";
import type { Command } from "./command.ts";
import { resolveFrom, type CliIO } from "./io.ts";
import { loadPrograms, selectOne } from "./load-programs.ts";

const usage = "kiln tune <model.ts> [--entry <name>] | kiln tune --import <artifact folder>";

export const tuneCommand: Command = {
  name: "tune",
  summary: "autotune a program's WebGPU matmul and row kernels on this adapter and cache the choices",
  usage,
  help: `Imports <model.ts>, compiles the k.program named by --entry (optional when the file
exports only one) for webgpu with tune: true: each matmul and row kernel that this adapter's
tuning cache lacks is rendered in each candidate form, timed, and the fastest is saved to the
cache (KILN_CACHE_DIR, else ~/.cache/kiln; tune/<adapter>.json). Later compiles read the cache
without searching. Prints one row per section of the program: its key, the form it now renders
with, whether this run searched it, its time and the default's. Delete the cache file to
search again. KILN_TUNE=0 turns tuning off (nothing is searched). See docs/tuning.md.

  --entry <name>       the exported program to tune
  --import <folder>    instead: add a webgpu artifact's searched choices (its manifest's
                       tuning, made on this same adapter) to the cache

Exit codes: 0 ok; 1 no WebGPU adapter, or the model cannot be loaded or compiled; 2 bad command line.`,
  flags: { entry: { type: "string", short: "e" }, import: { type: "string" } },
  async run(argv: readonly string[], io: CliIO): Promise<void> {
    const args = parseCommandArgs(argv, this.flags, usage);
    const gpu = await acquireWebGpu();
    const from = args.flags.import as string | undefined;
    if (from !== undefined) {
      expectPositionals(args, [], usage);
      if (!gpu) throw new KilnError({ code: "target-unavailable", message: "kiln tune: no WebGPU adapter on this machine" });
      return importInto(resolveFrom(io.cwd, from), from, gpu.adapter, io);
    }
    const [file] = expectPositionals(args, ["model.ts"], usage);
    if (!gpu) throw new KilnError({ code: "target-unavailable", message: "kiln tune: no WebGPU adapter on this machine" });
    const { name, program } = selectOne(await loadPrograms(io.cwd, file!), args.flags.entry as string | undefined, file!);
    const before = await loadTuneCache(gpu.adapter);
    const known = new Set(before.entries.keys());
    const started = performance.now();
    const exe = await compile(program, undefined, {
      target: "webgpu",
      name,
      tune: true,
      progress: throttledProgress((line) => io.err(`kiln: ${line}\n`)),
    });
    try {
      const after = await loadTuneCache(gpu.adapter);
      const choices = (exe.artifact as WebGpuArtifact).tuning?.choices ?? {};
      const rows = Object.entries(choices).map(([key, c]) => {
        const e = after.entries.get(key);
        const ms = (v: number | undefined): string => (v === undefined ? "-" : v.toFixed(3));
        const speedup = e?.ms && e.defaultMs ? `${(e.defaultMs / e.ms).toFixed(2)}x` : "-";
        return [key, c.form, known.has(key) ? "cached" : e ? "searched" : "default", ms(e?.ms), ms(e?.defaultMs), speedup];
      });
      const header = ["section", "form", "from", "ms", "default ms", "gain"];
      const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
      const line = (cells: readonly string[]): string =>
        `${cells
          .map((c, i) => c.padEnd(widths[i]!))
          .join("  ")
          .trimEnd()}\n`;
      io.out(`${gpu.adapter.description || gpu.adapter.device} (${after.kind}): ${after.file ?? "no cache file (no file system)"}\n`);
      io.out(line(header));
      for (const r of rows) io.out(line(r));
      io.out(
        `${rows.length} sections, ${rows.filter((r) => r[2] === "searched").length} searched, in ${((performance.now() - started) / 1000).toFixed(1)} s\n`,
      );
    } finally {
      await exe.close();
    }
  },
};

async function importInto(dir: string, shown: string, adapter: WebGpuAdapterDescription, io: CliIO): Promise<void> {
  const { artifact } = await loadArtifact(dir);
  if (artifact.target !== "webgpu" || !artifact.tuning)
    throw new KilnError({ code: "invalid-argument", message: `${shown} is not a webgpu artifact with tuning choices (its manifest has no 'tuning')` });
  const cache = await loadTuneCache(adapter);
  const added = importTuning(cache, artifact.tuning, shown);
  await saveTuneCache(cache);
  io.out(`imported ${added} tuned choices from ${shown} into ${cache.file ?? "the process's memory"}\n`);
}
