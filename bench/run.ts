// `npm run bench -- --target <js|wasm|webgpu|cpu> [--only matmul,mlp,softmax,elementwise]
// [--repeat N] [--quick] [--out DIR] [--symbolic [--cpu]]`: Kiln on one target beside its peers, in this process,
// case by case; prints a table per case and writes the record as JSON. Not a test: nothing
// here asserts a time (STYLE.md, "Benchmarks are not tests").

import * as os from "node:os";
import * as path from "node:path";
import { parseArgs } from "node:util";
import { benchSymbolicBatch } from "./symbolic-batch.ts";
import { BENCH_CASES } from "./cases/all-cases.ts";
import { CASE_IDS, type CaseId } from "./cases/case.ts";
import { hostRecord } from "./env.ts";
import { probeHostCores, type HostCoresProbe } from "./host-cores.ts";
import { kilnRunner } from "./kiln-runner.ts";
import { installNavigatorGpu, type AdapterRecord } from "./navigator-gpu.ts";
import { handWgslRunner } from "./peers/hand-wgsl.ts";
import { jaxRunner } from "./peers/jax.ts";
import { tfjsRunner } from "./peers/tfjs.ts";
import { torchRunner } from "./peers/torch.ts";
import { coldStarts } from "./cold-starts.ts";
import { compareRows, formatCase, formatFooter, formatHeader, hostCoresRecord, writeRecord, type BenchRecord, type CaseResult } from "./report.ts";
import { errorMessage, type Runner } from "./runner.ts";
import { timeRunner, type Timing, type TimingSettings } from "./timing.ts";

const TARGETS = ["js", "wasm", "webgpu", "cpu"] as const;
type BenchTarget = (typeof TARGETS)[number];

const USAGE = `usage: npm run bench -- --target <${TARGETS.join("|")}> [--only ${[...CASE_IDS, "cold"].join(",")}] [--peers NAME,…] [--repeat N] [--quick] [--out DIR] [--symbolic [--cpu]]`;

/** Kiln first (the baseline of every ratio), then the peers the issues name for the target. */
function runnersFor(target: BenchTarget, cacheDir: string): Runner[] {
  switch (target) {
    case "js":
      return [kilnRunner("js"), tfjsRunner("cpu", cacheDir), tfjsRunner("wasm", cacheDir)];
    case "wasm":
    case "cpu": {
      // Thread scaling: the same target on one thread; its peer/kiln is the speed-up from all cores.
      const single = kilnRunner(target, { label: `kiln ${target}, 1 thread`, compileOptions: { threads: 1 } });
      return [
        kilnRunner(target, { label: `kiln ${target}, ${os.availableParallelism()} threads`, compileOptions: { threads: os.availableParallelism() } }),
        single,
        tfjsRunner("wasm", cacheDir),
        jaxRunner("wasm"),
        tfjsRunner("cpu", cacheDir),
        torchRunner(cacheDir),
      ];
    }
    case "webgpu":
      return [kilnRunner("webgpu"), tfjsRunner("webgpu", cacheDir), jaxRunner("webgpu"), handWgslRunner()];
    default: {
      const never: never = target;
      throw new Error(`unknown target ${String(never)}`);
    }
  }
}

interface CommandLine {
  readonly target: BenchTarget;
  readonly cases: CaseId[];
  /** Whether to measure cold starts (fresh processes: start → first loss). */
  readonly cold: boolean;
  /** Peer runner names to keep (Kiln always runs); undefined keeps all. */
  readonly peers?: readonly string[];
  readonly settings: TimingSettings;
  readonly quick: boolean;
  readonly outDir: string;
  /** `--symbolic`: only the symbolic-batch cost comparison (bench/symbolic-batch.ts). */
  readonly symbolic: boolean;
  /** `--cpu` (with --symbolic): one thread, timed by process CPU time. */
  readonly cpu: boolean;
}

function parseCommandLine(): CommandLine {
  const { values } = parseArgs({
    options: {
      target: { type: "string", default: "js" },
      only: { type: "string" },
      peers: { type: "string" },
      repeat: { type: "string" },
      quick: { type: "boolean", default: false },
      out: { type: "string", default: "out/bench" },
      help: { type: "boolean", default: false },
      symbolic: { type: "boolean", default: false },
      cpu: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const target = values.target as BenchTarget;
  if (!TARGETS.includes(target)) throw new Error(`unknown target '${values.target}'\n${USAGE}`);
  const only = values.only === undefined ? [...CASE_IDS, "cold"] : values.only.split(",").map((s) => s.trim());
  const cold = only.includes("cold");
  const cases = only.filter((c) => c !== "cold");
  const unknown = cases.filter((c) => !CASE_IDS.includes(c as CaseId));
  if (unknown.length > 0) throw new Error(`unknown case(s) ${unknown.join(", ")} (cases: ${CASE_IDS.join(", ")})`);
  const quick = values.quick === true;
  const repeat = values.repeat === undefined ? (quick ? 3 : 10) : Number(values.repeat);
  if (!Number.isInteger(repeat) || repeat < 1) throw new Error(`--repeat must be a positive integer, got '${values.repeat}'`);
  // Quick: the first step serves as warm-up and sampling stops after 3 s; a runner whose first
  // step is warm (tfjs-cpu, Kiln js) and took over 4 s is not run again (tfjs-cpu's matmul takes
  // ~15 s here). Others — wasm memory growth, lazy jit, GPU pipelines — always get a warm sample.
  const settings: TimingSettings = quick ? { warmup: 0, repeat, budgetMs: 3000, coldOnlyAboveMs: 4000 } : { warmup: 1, repeat, budgetMs: 20000 };
  const peers = values.peers?.split(",").map((s) => s.trim());
  return {
    target,
    cases: cases as CaseId[],
    cold,
    ...(peers ? { peers } : {}),
    settings,
    quick,
    outDir: path.resolve(values.out),
    symbolic: values.symbolic === true,
    cpu: values.cpu === true,
  };
}

async function main(): Promise<void> {
  const { target, cases, cold, peers: keptPeers, settings, quick, outDir, symbolic, cpu } = parseCommandLine();
  if (symbolic) return benchSymbolicBatch(target, settings.repeat, cpu);
  let adapter: AdapterRecord | { error: string } | undefined;
  if (target === "webgpu") {
    // Before any runner starts, so Kiln and the peers share one navigator.gpu.
    adapter = await installNavigatorGpu().catch((e: unknown) => ({ error: errorMessage(e) }));
  }
  const allRunners = runnersFor(target, path.join(outDir, ".cache"));
  const peerNames = allRunners.filter((r) => r.peer).map((r) => r.name);
  const unknownPeers = (keptPeers ?? []).filter((name) => !peerNames.includes(name));
  if (unknownPeers.length > 0) throw new Error(`unknown peer(s) ${unknownPeers.join(", ")} for --target ${target} (peers: ${peerNames.join(", ")})`);
  const runners = allRunners.filter((r) => !r.peer || keptPeers === undefined || keptPeers.includes(r.name));
  const initErrors = new Map<Runner, Timing>();
  for (const runner of runners) {
    try {
      await runner.init();
    } catch (e) {
      const reason = errorMessage(e);
      initErrors.set(
        runner,
        reason.startsWith("unavailable: ") ? { status: "unavailable", reason: reason.slice(13) } : { status: "failed", reason: `init: ${reason}` },
      );
    }
  }
  const peers = Object.fromEntries(runners.flatMap((r) => (r.peer ? [[r.name, r.peer]] : [])));
  const host = hostRecord();
  // Whether two threads get two full cores (docs/benchmarks.md, Environment notes): ~0.2 s a probe.
  const probeCores = target !== "js" && os.availableParallelism() >= 2;
  const coreProbes: HostCoresProbe[] = [];
  // A probe that fails (its worker cannot start) is said once on stderr; the cases still run.
  const probe = async (at: string): Promise<void> => {
    try {
      coreProbes.push(await probeHostCores(at));
    } catch (e) {
      console.error(`bench: the two-thread host probe failed (${at}): ${e instanceof Error ? e.message : String(e)}`);
    }
  };
  if (probeCores) await probe("start");
  // What the header and the record both say; the probes so far go with each.
  const runInfo = { target, host, ...(adapter ? { adapter } : {}), peers, settings: { ...settings, quick } };
  const hostCoresSoFar = () => (probeCores ? { hostCores: hostCoresRecord(coreProbes) } : {});
  console.log(formatHeader({ ...runInfo, ...hostCoresSoFar() }));

  const results: CaseResult[] = [];
  for (const id of cases) {
    const benchCase = BENCH_CASES[id];
    const data = benchCase.makeData();
    const rows = [];
    for (const runner of runners) {
      const timing = initErrors.get(runner) ?? (await timeRunner(runner, benchCase, data, settings));
      rows.push({ runner: runner.name, ...(runner.peer ? { peer: runner.peer } : {}), timing });
    }
    const result = { benchCase, rows: compareRows(benchCase, rows) };
    results.push(result);
    console.log(formatCase(result));
    if (probeCores) await probe(id === cases.at(-1) ? "end" : `after ${id}`);
  }
  if (probeCores && cases.length === 0) await probe("end");
  const record: BenchRecord = {
    ...runInfo,
    ...hostCoresSoFar(),
    cases: results,
    notes: [...new Set(runners.flatMap((r) => r.notes()))],
  };
  if (cold) console.log(coldStarts(target, path.join(outDir, ".cache", "cold"), keptPeers));
  console.log(aimsLine(target, results));
  console.log(formatFooter(record));
  console.log(`\nwrote ${path.relative(process.cwd(), writeRecord(record, outDir))}`);
  // Dawn and worker pools keep handles open; the run is over.
  process.exit(0);
}

/** The ratios issue 14's (wasm, cpu) or 15's (webgpu) aims name (peer time / Kiln time, > 1: Kiln faster), from this run's medians. */
function aimsLine(target: BenchTarget, results: readonly CaseResult[]): string {
  const median = (id: CaseId, runner: (name: string) => boolean): number | undefined => {
    const row = results.find((r) => r.benchCase.id === id)?.rows.find((r) => runner(r.runner));
    return row?.timing.status === "ok" ? row.timing.medianMs : undefined;
  };
  /** A row's kernel-only time (Kiln: exe.profile; the hand-written kernel: its own dispatch); row 0 is Kiln. */
  const kernels = (id: CaseId, runner?: string): number | undefined => {
    const rows = results.find((r) => r.benchCase.id === id)?.rows;
    const row = runner === undefined ? rows?.[0] : rows?.find((r) => r.runner === runner);
    return row?.timing.status === "ok" ? row.timing.stats?.["kernelMs"] : undefined;
  };
  const kiln = (id: CaseId) => results.find((r) => r.benchCase.id === id)?.rows[0]?.timing;
  const ratio = (label: string, peer: number | undefined, ours: number | undefined, aim: string): string =>
    `  ${label}: ${peer !== undefined && ours !== undefined ? `${(peer / ours).toFixed(2)}×` : "—"} (aim ${aim})`;
  const ok = (id: CaseId) => {
    const t = kiln(id);
    return t?.status === "ok" ? t.medianMs : undefined;
  };
  if (target === "webgpu") return webGpuAims(results, median, kernels, ok, ratio);
  if (target !== "cpu" && target !== "wasm") return "";
  return [
    "\naims (issue 14), peer/kiln on this run (kernel-only where the aim says kernels):",
    ratio(
      "MLP step vs jax-js wasm",
      median("mlp", (n) => n === "jax-js-wasm"),
      ok("mlp"),
      "≥ 3×",
    ),
    ratio(
      "MLP step vs PyTorch",
      median("mlp", (n) => n === "pytorch"),
      ok("mlp"),
      "≥ 0.77×, i.e. within 1.3×",
    ),
    ratio(
      "CNN step vs PyTorch",
      median("cnn", (n) => n === "pytorch"),
      ok("cnn"),
      "≥ 0.77×",
    ),
    ratio(
      "transformer step vs PyTorch",
      median("transformer", (n) => n === "pytorch"),
      ok("transformer"),
      "≥ 0.77×",
    ),
    ratio(
      "transformer step vs jax-js wasm",
      median("transformer", (n) => n === "jax-js-wasm"),
      ok("transformer"),
      "≥ 1.5×",
    ),
    ratio(
      "elementwise kernels vs tfjs-wasm",
      median("elementwise", (n) => n === "tfjs-wasm"),
      kernels("elementwise"),
      "≥ 3×",
    ),
    ratio(
      "softmax kernels vs tfjs-wasm",
      median("softmax", (n) => n === "tfjs-wasm"),
      kernels("softmax"),
      "≥ 1.5×",
    ),
    `  matmul 1024³: ${ok("matmul") !== undefined ? `${((2 * 1024 ** 3) / (ok("matmul")! * 1e6)).toFixed(1)} GFLOP/s` : "—"} (aim ≥ 90)`,
    `  exe.run beyond its kernels within each step, in plain copies of its I/O (aim ≤ 1.5×): ${sameStepRatios(results)}`,
  ].join("\n");
}

/**
 * Each case's same-step I/O ratio (bench/host-io.ts) from Kiln's row, median per step and the
 * least step over the least copy (the steadier one on a loaded machine); "n/a" without samples,
 * ms where the copy is under 0.1 ms.
 */
function sameStepRatios(results: readonly CaseResult[]): string {
  return results
    .map((r) => {
      const t = r.rows[0]?.timing;
      const stats = t?.status === "ok" ? t.stats : undefined;
      const beyond = stats?.["ioBeyondMs"];
      const copy = stats?.["ioCopyMs"];
      const ratio = stats?.["ioBeyondOverCopy"];
      const least = stats?.["ioBestOverBest"];
      if (beyond === undefined || copy === undefined || ratio === undefined) return `${r.benchCase.id} n/a`;
      if (copy < 0.1) return `${r.benchCase.id} ${beyond.toFixed(2)} ms (copy ${copy.toFixed(3)} ms)`;
      return `${r.benchCase.id} ${ratio.toFixed(2)}×${least === undefined ? "" : ` (least ${least.toFixed(2)}×)`}`;
    })
    .join(", ");
}

type Median = (id: CaseId, runner: (name: string) => boolean) => number | undefined;
type Ratio = (label: string, peer: number | undefined, ours: number | undefined, aim: string) => string;

/** A ratio line with the two times it divides (peer, then Kiln). */
const withTimes = (line: string, peer: number | undefined, ours: number | undefined): string =>
  peer !== undefined && ours !== undefined ? `${line}: ${peer.toFixed(1)} / ${ours.toFixed(1)} ms` : line;

/** Issue 15's aims on this run (one adapter for every row): peer/kiln, kernel-only where the aim says kernels. */
function webGpuAims(
  results: readonly CaseResult[],
  median: Median,
  kernels: (id: CaseId, runner?: string) => number | undefined,
  ok: (id: CaseId) => number | undefined,
  ratio: Ratio,
): string {
  const has = (id: CaseId): boolean => results.some((r) => r.benchCase.id === id);
  const best = (id: CaseId): number | undefined => {
    const times = [median(id, (n) => n === "tfjs-webgpu"), median(id, (n) => n.startsWith("jax-js"))].filter((t): t is number => t !== undefined);
    return times.length > 0 ? Math.min(...times) : undefined;
  };
  const lines = [
    ...(has("mlp")
      ? [
          ratio(
            "MLP step vs tfjs-webgpu",
            median("mlp", (n) => n === "tfjs-webgpu"),
            ok("mlp"),
            "≥ 4×",
          ),
        ]
      : []),
    ...(has("mlp")
      ? [
          ratio(
            "MLP step vs jax-js webgpu",
            median("mlp", (n) => n.startsWith("jax-js")),
            ok("mlp"),
            "≥ 4×",
          ),
        ]
      : []),
    ...(has("cnn")
      ? [
          ratio(
            "CNN step vs jax-js webgpu",
            median("cnn", (n) => n.startsWith("jax-js")),
            ok("cnn"),
            "≥ 2×",
          ),
        ]
      : []),
    ...(has("transformer")
      ? [
          ratio(
            "transformer step vs jax-js webgpu",
            median("transformer", (n) => n.startsWith("jax-js")),
            ok("transformer"),
            "≥ 4×",
          ),
        ]
      : []),
    ...(has("matmul")
      ? [
          ratio(
            "matmul 1024³ vs tfjs-webgpu",
            median("matmul", (n) => n === "tfjs-webgpu"),
            ok("matmul"),
            "≥ 3×",
          ),
        ]
      : []),
    ...(has("elementwise")
      ? [
          withTimes(
            ratio("elementwise kernels vs the hand-fused vec4 WGSL kernel", kernels("elementwise", "hand-fused WGSL"), kernels("elementwise"), "≥ 1×"),
            kernels("elementwise", "hand-fused WGSL"),
            kernels("elementwise"),
          ),
        ]
      : []),
    ...(has("softmax")
      ? [
          withTimes(ratio("softmax kernels vs the best peer", best("softmax"), kernels("softmax"), "≥ 1.5×"), best("softmax"), kernels("softmax")),
          withTimes(ratio("softmax through exe.run vs the best peer", best("softmax"), ok("softmax"), "≥ 1.5×"), best("softmax"), ok("softmax")),
        ]
      : []),
  ];
  return lines.length > 0 ? ["\naims (issue 15), peer/kiln on this run (kernel-only where the aim says kernels):", ...lines].join("\n") : "";
}

// A peer's stray async failure (a worker, a device-lost promise) must not end the whole run.
process.on("unhandledRejection", (e: unknown) => console.error(`bench: a runner left an unhandled rejection: ${errorMessage(e)}`));

main().catch((e: unknown) => {
  console.error(`bench: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});
