// Results as a table on stdout and as JSON under out/bench/. Ratios are peer time over
// Kiln's (median step), so > 1 means Kiln is faster; "rel diff" is the largest difference of a
// runner's output from Kiln's over the first two steps, relative to Kiln's largest magnitude.

import { mkdirSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import type { BenchCase } from "./cases/case.ts";
import type { HostRecord } from "./env.ts";
import { formatHostCores, hostCoresVerdict, type HostCoresProbe } from "./host-cores.ts";
import type { AdapterRecord } from "./navigator-gpu.ts";
import type { Timing, TimingSettings } from "./timing.ts";

export interface RowResult {
  readonly runner: string;
  readonly peer?: string;
  readonly timing: Timing;
  /** Median step of this row over the baseline's (the first row, Kiln); absent when either did not run. */
  readonly ratio?: number;
  /** GFLOP/s or GB/s at the median step. */
  readonly throughput?: number;
  readonly relDiff?: number;
}

export interface CaseResult {
  readonly benchCase: BenchCase;
  readonly rows: readonly RowResult[];
}

export interface BenchRecord {
  readonly target: string;
  readonly host: HostRecord;
  /** The two-thread probe (bench/host-cores.ts) at the start, between cases and at the end; absent for --target js. */
  readonly hostCores?: { readonly probes: readonly HostCoresProbe[]; readonly verdict: string };
  readonly adapter?: AdapterRecord | { readonly error: string };
  readonly peers: Readonly<Record<string, string>>;
  readonly settings: TimingSettings & { readonly quick: boolean };
  readonly cases: readonly CaseResult[];
  readonly notes: readonly string[];
}

/** Fills ratio, throughput and output agreement for a case's rows; the first row is the baseline. */
export function compareRows(benchCase: BenchCase, rows: readonly { runner: string; peer?: string; timing: Timing }[]): RowResult[] {
  const baseline = rows[0]?.timing.status === "ok" ? rows[0].timing : undefined;
  const reference = baseline ?? rows.map((r) => r.timing).find((t) => t.status === "ok");
  return rows.map((row) => {
    const t = row.timing;
    if (t.status !== "ok") return row;
    const work = benchCase.throughput.unit === "GFLOP/s" ? benchCase.throughput.flopsPerStep : benchCase.throughput.bytesPerStep;
    return {
      ...row,
      throughput: work / (t.medianMs * 1e6),
      ...(baseline ? { ratio: t.medianMs / baseline.medianMs } : {}),
      ...(reference && reference.status === "ok" && reference !== t ? { relDiff: worstDifference(t.outputs, reference.outputs) } : {}),
    };
  });
}

/** The worst relative difference over the steps both runners recorded. */
function worstDifference(outputs: readonly Float32Array[], reference: readonly Float32Array[]): number {
  let worst = 0;
  for (let i = 0; i < Math.min(outputs.length, reference.length); i++) worst = Math.max(worst, relativeDifference(outputs[i]!, reference[i]!));
  return worst;
}

function relativeDifference(values: Float32Array, reference: Float32Array): number {
  if (values.length !== reference.length) return Number.POSITIVE_INFINITY;
  let scale = 0;
  let worst = 0;
  for (let i = 0; i < values.length; i++) {
    scale = Math.max(scale, Math.abs(reference[i]!));
    const diff = Math.abs(values[i]! - reference[i]!);
    if (!(diff <= worst)) worst = diff; // NaN counts as the worst difference
  }
  return worst / Math.max(scale, 1e-30);
}

const ms = (value: number): string => (value >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1) : value.toFixed(2));

export function formatHeader(record: Omit<BenchRecord, "cases" | "notes">): string {
  const h = record.host;
  const lines = [
    `kiln bench --target ${record.target}${record.settings.quick ? " (quick)" : ""}  ${h.date}`,
    `commit ${h.commit}${h.dirty ? " (uncommitted changes)" : ""}, node ${h.node}, ${h.platform}`,
    `cpu ${h.cpu}, ${h.cores} cores, ${h.memoryGiB} GiB, load average ${h.loadAverage} at start`,
  ];
  if (record.hostCores) lines.push(formatHostCores(record.hostCores.probes));
  if (record.adapter) {
    const a = record.adapter;
    lines.push(
      "error" in a
        ? `webgpu adapter: none (${a.error})`
        : `webgpu adapter: ${[a.vendor, a.architecture, a.device].filter((s) => s).join(" / ")}; driver: ${a.description || "?"} (Dawn ${a.dawnFlags.join(" ")})`,
    );
  }
  lines.push(
    `peers: ${Object.entries(record.peers)
      .map(([name, version]) => `${name} ${version}`)
      .join("; ")}`,
  );
  const s = record.settings;
  lines.push(
    `timing: ${s.warmup} warm-up step(s), median/min of up to ${s.repeat} steps within ${s.budgetMs / 1000} s per runner; every step is host arrays in → host arrays out`,
  );
  return lines.join("\n");
}

export function formatCase(result: CaseResult): string {
  const unit = result.benchCase.throughput.unit;
  const header = ["runner", "prepare ms", "1st step ms", "median ms", "min ms", unit, "peer/kiln", "rel diff"];
  const body = result.rows.map((row) => {
    const t = row.timing;
    if (t.status !== "ok") return [row.runner, `${t.status}: ${t.reason}`];
    return [
      row.runner,
      ms(t.prepareMs),
      ms(t.firstStepMs),
      ms(t.medianMs) + (t.coldOnly ? "*" : ""),
      ms(t.minMs),
      row.throughput === undefined ? "" : row.throughput.toFixed(row.throughput >= 10 ? 1 : 3),
      row.ratio === undefined ? "—" : `${row.ratio.toFixed(2)}×`,
      row.relDiff === undefined ? "" : row.relDiff.toExponential(1),
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...body.filter((r) => r.length === header.length).map((r) => r[i]!.length)));
  const line = (cells: readonly string[]): string =>
    cells.length === header.length
      ? cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ")
      : `${cells[0]!.padEnd(widths[0]!)}  ${cells[1]}`;
  return [`\n${result.benchCase.title}`, line(header), ...body.map(line), ...result.rows.slice(0, 1).flatMap(statsLine)].join("\n");
}

/** Kiln's executor counters (kernels, bytes) under the table, when the target reports them. */
function statsLine(row: RowResult): string[] {
  const stats = row.timing.status === "ok" ? row.timing.stats : undefined;
  if (!stats) return [];
  const megabytes = (bytes: number | undefined): string => (bytes === undefined ? "?" : `${(bytes / 1e6).toFixed(1)} MB`);
  const parts = [
    ...(stats["kernels"] !== undefined ? [`${stats["kernels"]} kernel(s) per step`] : []),
    ...(stats["bytesRead"] !== undefined || stats["bytesWritten"] !== undefined
      ? [`${megabytes(stats["bytesRead"])} read, ${megabytes(stats["bytesWritten"])} written`]
      : []),
    ...(stats["peakBytes"] !== undefined ? [`peak ${megabytes(stats["peakBytes"])}`] : []),
  ];
  const lines = parts.length > 0 ? [`  ${row.runner}: ${parts.join(", ")}`] : [];
  const t = row.timing.status === "ok" ? row.timing : undefined;
  if (t && stats["bytesIn"] !== undefined) {
    const io = `host I/O per step: ${megabytes(stats["bytesIn"])} in, ${megabytes(stats["bytesOut"])} out, ${megabytes(stats["bytesAllocated"])} allocated; one plain copy of it ${ms(stats["copyMs"] ?? 0)} ms`;
    const kernel = stats["kernelMs"];
    lines.push(
      kernel === undefined
        ? `  ${io}`
        : `  kernels only ${ms(kernel)} ms, through exe.run ${ms(t.medianMs)} ms: ${overheadText(t.medianMs - kernel, stats["copyMs"] ?? 0, stats["copyAfterKernelsMs"])}; ${withinText(t.medianMs, kernel, stats["copyMs"] ?? 0)}; ${io}`,
    );
    lines.push(`  ${sameStepText(stats)}`);
  }
  return lines;
}

/**
 * exe.run's time beyond its kernels measured inside the same steps (bench/host-io.ts: the
 * step's wall time minus the kernels the runner timed in it), in units of one plain copy of
 * its I/O timed right after each step; "n/a" where the target does not time a run's parts.
 */
export function sameStepText(stats: Readonly<Record<string, number>>): string {
  const label = "exe.run beyond its kernels, within each step";
  const beyond = stats["ioBeyondMs"];
  const copy = stats["ioCopyMs"];
  if (beyond === undefined || copy === undefined) return `${label}: n/a (this target does not time a run's parts; exe.run's \`timeIo\` is wasm's)`;
  const parts = `${ms(beyond)} ms (write ${ms(stats["ioWriteMs"] ?? 0)}, read ${ms(stats["ioReadMs"] ?? 0)}, rest ${ms(stats["ioRestMs"] ?? 0)})`;
  const head = `${label} (median of ${stats["ioSamples"] ?? "?"}): ${parts}`;
  if (copy < 0.1) return `${head}; one copy of its I/O takes ${ms(copy)} ms, too little to compare with`;
  const copies = stats["ioCopiesOverCopy"];
  return (
    `${head} = ${(stats["ioBeyondOverCopy"] ?? beyond / copy).toFixed(2)}× one copy of its I/O made right after each step (${ms(copy)} ms) (aim ≤ 1.5×)` +
    (copies === undefined ? "" : `; its write + read alone ${copies.toFixed(2)}×`) +
    (stats["ioBestOverBest"] === undefined ? "" : `; least step over least copy ${stats["ioBestOverBest"].toFixed(2)}×`)
  );
}

/**
 * exe.run's time beyond its kernels in units of one plain copy of its I/O, from two medians:
 * the older, noisier form of sameStepText's measure (on a 21 ms matmul step whose median moves
 * by 1–3 ms between runs it read 0.63–4.47×), kept for targets that do not time a run's parts.
 * The two times come from different runs, so a difference at or below zero is timing noise,
 * and a ratio to a copy under 0.1 ms says nothing: those read as milliseconds instead. With
 * `copyAfterKernelsMs` (the same copy timed right after the kernels ran, as exe.run's copies
 * are: I/O that fits the L3 is cached in the warm-array copy, not after a big kernel) both
 * ratios are given.
 */
export function overheadText(overheadMs: number, copyMs: number, copyAfterKernelsMs?: number): string {
  const label = "median exe.run − median kernels (different runs)";
  if (overheadMs <= 0) return `${label} ≤ 0 (within timing noise)`;
  if (copyMs < 0.1) return `${label} = ${ms(overheadMs)} ms (the I/O is too small to compare with a copy)`;
  const warm = (overheadMs / copyMs).toFixed(2);
  if (copyAfterKernelsMs === undefined || copyAfterKernelsMs <= 0) return `${label} = ${warm}× one copy`;
  const after = (overheadMs / copyAfterKernelsMs).toFixed(2);
  return `${label} = ${warm}× one copy between warm arrays, ${after}× one copy made right after the kernels (${ms(copyAfterKernelsMs)} ms)`;
}

/**
 * exe.run against the kernels plus one plain copy of its I/O (issue 15's aim for WebGPU, the
 * looser form of issue 14's: a run may cost half again what the kernels and a copy do).
 */
export function withinText(runMs: number, kernelMs: number, copyMs: number): string {
  return `exe.run / (kernels + one copy) = ${(runMs / (kernelMs + copyMs)).toFixed(2)}× (issue 15's aim ≤ 1.5×)`;
}

export function formatFooter(record: BenchRecord): string {
  const coldOnly = record.cases.some((c) => c.rows.some((r) => r.timing.status === "ok" && r.timing.coldOnly));
  const lines = [
    "",
    "peer/kiln: median step of the row over Kiln's (> 1: Kiln is faster). rel diff: max |out − kiln| / max |kiln| over the first two steps (one for * rows).",
    ...(coldOnly ? ["*: quick run, the first (cold) step was the only sample."] : []),
    ...(record.cases.some((c) => c.rows.some((r) => r.runner.endsWith("1 thread")))
      ? ["kiln …, 1 thread: the same target on one thread; its peer/kiln is the speed-up all cores give."]
      : []),
    ...record.notes,
    ...(record.hostCores ? [formatHostCores(record.hostCores.probes)] : []),
  ];
  return lines.join("\n");
}

/** The record's two-thread probes with their verdict, for the JSON and the footer. */
export function hostCoresRecord(probes: readonly HostCoresProbe[]): NonNullable<BenchRecord["hostCores"]> {
  return { probes, verdict: hostCoresVerdict(probes) };
}

/** Writes the record to out/bench/<target>-<date>.json and returns the path. */
export function writeRecord(record: BenchRecord, outDir: string): string {
  mkdirSync(outDir, { recursive: true });
  const stamp = record.host.date.replace(/[:.]/g, "-");
  const file = path.join(outDir, `${record.target}-${stamp}.json`);
  const cases = record.cases.map((c) => ({
    id: c.benchCase.id,
    title: c.benchCase.title,
    unit: c.benchCase.throughput.unit,
    rows: c.rows.map((r) => {
      const { outputs: _outputs, ...timing } = r.timing.status === "ok" ? r.timing : { ...r.timing, outputs: undefined };
      return { runner: r.runner, peer: r.peer, ...timing, ratioPeerOverKiln: r.ratio, throughput: r.throughput, relDiffVsKiln: r.relDiff };
    }),
  }));
  writeFileSync(file, JSON.stringify({ ...record, cases }, null, 2) + "\n");
  return file;
}
