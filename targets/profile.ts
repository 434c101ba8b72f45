// Per-kernel profiles (exe.profile, `kiln profile`): the type a profile is reported in, the
// compiler's side of it (each artifact kernel's arithmetic, bytes, source lines, module paths
// and the graph inputs it touches, from the kernel IR), and the table the CLI prints. The
// runtime's side — timing runs into a RunProfiler — is runtime/artifact/profile.ts; the
// machine's peaks are targets/peaks.ts. Times are wall or device times for reading, never
// for asserting; the counts (flops, bytes, calls) are exact.

import type { Artifact } from "../runtime/artifact/format.ts";
import type { KernelClock, RunProfiler } from "../runtime/artifact/profile.ts";
import type { Compiled } from "../compiler/compile.ts";
import { kernelOps } from "../compiler/kernel/kernel-cost.ts";
import type { Section } from "../compiler/kernel/kernel-ir.ts";
import type { SourceLoc } from "../compiler/util/errors.ts";
import { checkOptions } from "../compiler/util/options.ts";

export type { KernelClock, RunProfiler };
export { newRunProfiler } from "../runtime/artifact/profile.ts";

/** What one launch of an artifact kernel does: fixed at compile time. */
export interface KernelCost {
  /** The artifact's kernel (on webgpu a dispatch: a kernel split for device limits is `<kernel>_part<i>`). */
  readonly name: string;
  /** The kernel IR kernel it renders (`kiln dump`'s .kir files, `kiln view`). */
  readonly kernel: string;
  /** Arithmetic operations per launch (compiler/kernel/kernel-cost.ts: a matmul is 2·M·K·N). */
  readonly flops: number;
  /** Bytes of the buffers it reads and writes, each counted once per launch (as exe.stats counts them). */
  readonly bytesRead: number;
  readonly bytesWritten: number;
  /** The user's source lines it was lowered from (distinct, in graph order). */
  readonly locs: readonly SourceLoc[];
  /** Module paths (`blocks.0.attn`) of what it computes. */
  readonly scopes: readonly string[];
  /** Graph inputs it reads or updates in place (data, parameters, optimizer state). */
  readonly inputs: readonly string[];
}

/** The machine's measured peaks a kernel's rates are compared with (targets/peaks.ts). */
export interface MachinePeaks {
  /** Arithmetic peak in GFLOP/s; absent where not measured. */
  readonly gflops?: number;
  /** Memory bandwidth in GB/s (10^9 bytes), read + write; absent where not measured. */
  readonly gbps?: number;
  /** How they were measured, for the reader ("64 MiB device copy; vec4 FMA loop, 4096 workgroups"). */
  readonly how: string;
}

/** One kernel's share of a profile. */
export interface KernelProfile extends KernelCost {
  /** Launch order (index in the artifact's kernels). */
  readonly index: number;
  /** Launches over the profiled steps (one per step). */
  readonly calls: number;
  readonly totalMs: number;
  readonly meanMs: number;
  /** Fraction of the mean step's wall time (0..1). */
  readonly stepShare: number;
  /** Achieved rates: flops / mean time, (bytesRead + bytesWritten) / mean time. */
  readonly gflops: number;
  readonly gbps: number;
  /** Those rates as fractions of the machine's peaks, where measured. */
  readonly flopsOfPeak?: number;
  readonly bandwidthOfPeak?: number;
  /** The executable's state (parameters, optimizer state) among `inputs`. */
  readonly params: readonly string[];
  /**
   * wasm: the share (0..1) of the threads' time during this kernel that they spent computing
   * (each thread times its own chunk); the rest is waiting for the slowest chunk, or idle
   * threads while a launch too small to split runs on the calling thread alone.
   */
  readonly threadUse?: number;
}

/** What exe.profile returns. Per-step values are means over the profiled steps. */
export interface Profile {
  readonly target: string;
  /** The device it ran on (a WebGPU adapter's description, "wasm, 2 threads", …). */
  readonly device: string;
  readonly steps: number;
  /** How kernel times were taken (see KernelClock). */
  readonly clock: KernelClock;
  /** Wall time of a step, from exe.profile's call into the runtime to its outputs on the host. */
  readonly stepMs: number;
  /** The kernels' time per step, summed. */
  readonly kernelMs: number;
  /** Host-side time per step: inputs copied in, outputs read back, and the rest (scheduling, launch overhead, waits). */
  readonly host: { readonly inputMs: number; readonly readbackMs: number; readonly otherMs: number };
  readonly peaks?: MachinePeaks;
  /** wasm: threads per launch (see KernelProfile.threadUse). */
  readonly threads?: number;
  /** Every kernel of the program, in launch order. */
  readonly kernels: readonly KernelProfile[];
}

/** An executor's side of a profile: fixed at compile time, except the peaks (measured on first use). */
export interface ExecutorProfiling {
  /** What the device calls itself ("llvmpipe …", "wasm SIMD, 2 thread(s)"). */
  readonly device: string;
  /** One per artifact kernel, in launch order (computed on first read). */
  readonly costs: readonly KernelCost[];
  /** The machine's measured peaks (once per process), or undefined where none are measured. */
  peaks(): Promise<MachinePeaks | undefined>;
}

/** An executor's profiling side; the costs are computed when first read, so an executable never profiled pays nothing. */
export function executorProfiling(
  device: string,
  compiled: Pick<Compiled<Artifact>, "program" | "memory" | "artifact" | "layout">,
  peaks: () => Promise<MachinePeaks | undefined>,
): ExecutorProfiling {
  let costs: readonly KernelCost[] | undefined;
  return {
    device,
    get costs() {
      return (costs ??= kernelCosts(compiled));
    },
    peaks,
  };
}

/** Each artifact kernel's cost, from the compile that built it. */
export function kernelCosts(compiled: Pick<Compiled<Artifact>, "program" | "memory" | "artifact" | "layout">): KernelCost[] {
  const { program, memory, artifact } = compiled;
  const dispatches = new Map<string, readonly Section[]>();
  const layout = compiled.layout as { readonly dispatches?: readonly { readonly name: string; readonly sections: readonly Section[] }[] } | undefined;
  for (const d of layout?.dispatches ?? []) dispatches.set(d.name, d.sections);
  const kernelOf = new Map<Section, string>();
  for (const k of program.kernels) for (const s of k.sections) kernelOf.set(s, k.name);
  const byName = new Map(program.kernels.map((k) => [k.name, k]));
  const inputOfBuffer = new Map<number, string>();
  for (const i of program.inputs) inputOfBuffer.set(i.buffer, i.name);
  for (const o of program.outputs) if (o.aliases !== undefined && !inputOfBuffer.has(o.buffer)) inputOfBuffer.set(o.buffer, o.aliases);
  const sameLength = artifact.kernels.length === program.kernels.length;
  return artifact.kernels.map((ak, i) => {
    // A webgpu dispatch by its layout; else the kernel of that name, or (a prefixed CUDA symbol) at that index.
    const sections = dispatches.get(ak.name) ?? byName.get(ak.name)?.sections ?? (sameLength ? program.kernels[i]!.sections : []);
    const bytes = (ids: readonly number[]): number => ids.reduce((sum, id) => sum + (memory.bufferBytes[id] ?? 0), 0);
    const locs = new Map<string, SourceLoc>();
    const scopes = new Set<string>();
    for (const s of sections) {
      for (const l of s.locs ?? []) if (!locs.has(`${l.file}:${l.line}`)) locs.set(`${l.file}:${l.line}`, l);
      for (const sc of s.scopes ?? []) scopes.add(sc);
    }
    const inputs = new Set<string>();
    for (const id of [...ak.reads, ...ak.writes]) {
      const name = inputOfBuffer.get(id);
      if (name !== undefined) inputs.add(name);
    }
    return {
      name: ak.name,
      kernel: (sections[0] && kernelOf.get(sections[0])) ?? ak.name,
      flops: kernelOps({ sections }),
      bytesRead: bytes(ak.reads),
      bytesWritten: bytes(ak.writes),
      locs: [...locs.values()],
      scopes: [...scopes],
      inputs: [...inputs],
    };
  });
}

export interface ProfileParts {
  readonly target: string;
  readonly device: string;
  readonly steps: number;
  readonly profiler: RunProfiler;
  /** Wall time of all the profiled steps together. */
  readonly wallMs: number;
  readonly costs: readonly KernelCost[];
  readonly peaks?: MachinePeaks | undefined;
  /** Which inputs are the executable's state (parameters, optimizer state). */
  readonly isParam?: (input: string) => boolean;
}

/** A profile from timed runs and the kernels' costs. */
export function buildProfile(parts: ProfileParts): Profile {
  const { profiler: p, steps, peaks } = parts;
  const stepMs = parts.wallMs / steps;
  const kernelMs = p.kernelMs.reduce((a, b) => a + b, 0) / steps;
  const inputMs = p.inputMs / steps;
  const readbackMs = p.readbackMs / steps;
  const kernels = parts.costs.map((c, index): KernelProfile => {
    const totalMs = p.kernelMs[index] ?? 0;
    const calls = p.kernelCalls[index] ?? 0;
    const meanMs = calls > 0 ? totalMs / calls : 0;
    const gflops = meanMs > 0 ? c.flops / meanMs / 1e6 : 0;
    const gbps = meanMs > 0 ? (c.bytesRead + c.bytesWritten) / meanMs / 1e6 : 0;
    return {
      ...c,
      index,
      calls,
      totalMs,
      meanMs,
      stepShare: stepMs > 0 ? totalMs / steps / stepMs : 0,
      gflops,
      gbps,
      ...(peaks?.gflops ? { flopsOfPeak: gflops / peaks.gflops } : {}),
      ...(peaks?.gbps ? { bandwidthOfPeak: gbps / peaks.gbps } : {}),
      params: c.inputs.filter((n) => parts.isParam?.(n) ?? false),
      ...(p.threads !== undefined && p.threadBusyMs && totalMs > 0 ? { threadUse: Math.min(1, (p.threadBusyMs[index] ?? 0) / (totalMs * p.threads)) } : {}),
    };
  });
  return {
    target: parts.target,
    device: parts.device,
    steps,
    clock: p.clock ?? "host",
    stepMs,
    kernelMs,
    host: { inputMs, readbackMs, otherMs: Math.max(0, stepMs - kernelMs - inputMs - readbackMs) },
    ...(peaks ? { peaks } : {}),
    ...(p.threads !== undefined ? { threads: p.threads } : {}),
    kernels,
  };
}

const CLOCK_LABEL: { readonly [C in KernelClock]: string } = {
  "device-timestamps": "device timestamps (timestamp-query)",
  "host-per-submission": "host timer, one submission per kernel (no timestamp-query: includes each submission's overhead)",
  host: "host timer around each launch",
  "cuda-events": "CUDA events around each launch",
};

export interface FormatProfileOptions {
  /** Row order: by total time, longest first (default), or launch order. */
  readonly sort?: "time" | "launch";
  /** At most this many kernel rows (default all); the rest are summed in one line. */
  readonly top?: number;
}

/** The table `kiln profile` prints. */
export function formatProfile(profile: Profile, opts: FormatProfileOptions = {}): string {
  checkOptions("k.formatProfile", opts, ["sort", "top"]);
  const rows = [...profile.kernels];
  if ((opts.sort ?? "time") === "time") rows.sort((a, b) => b.totalMs - a.totalMs || a.index - b.index);
  const shown = opts.top !== undefined ? rows.slice(0, opts.top) : rows;
  const rest = rows.slice(shown.length);
  const pct = (x: number): string => `${(100 * x).toFixed(1)} %`;
  const ofPeak = (x: number | undefined): string => (x === undefined ? "" : ` (${(100 * x).toFixed(0)}%)`);
  const nameWidth = Math.min(36, Math.max(6, ...shown.map((k) => k.name.length)));
  // A long name keeps its end too: the parts of a split kernel differ only there (k5_dot…_part1).
  const cut = (s: string, w: number): string => (s.length <= w ? s : `${s.slice(0, w - 9)}…${s.slice(-8)}`);
  const header = [
    "kernel".padEnd(nameWidth),
    "calls".padStart(6),
    "total ms".padStart(10),
    "% step".padStart(8),
    "GFLOP/s".padStart(14),
    "GB/s".padStart(13),
    "  source",
  ];
  const lines = [header.join("  ")];
  for (const k of shown)
    lines.push(
      [
        cut(k.name, nameWidth).padEnd(nameWidth),
        String(k.calls).padStart(6),
        k.totalMs.toFixed(2).padStart(10),
        pct(k.stepShare).padStart(8),
        `${k.gflops.toFixed(2)}${ofPeak(k.flopsOfPeak)}`.padStart(14),
        `${k.gbps.toFixed(2)}${ofPeak(k.bandwidthOfPeak)}`.padStart(13),
        `  ${sourceOf(k)}`,
      ].join("  "),
    );
  if (rest.length > 0) {
    const ms = rest.reduce((a, k) => a + k.totalMs, 0);
    lines.push(
      `${cut(`(${rest.length} more)`, nameWidth).padEnd(nameWidth)}  ${"".padStart(6)}  ${ms.toFixed(2).padStart(10)}  ${pct(ms / profile.steps / (profile.stepMs || 1)).padStart(8)}`,
    );
  }
  const ms = (x: number): string => `${x.toFixed(3)} ms`;
  const { host } = profile;
  const peaks = profile.peaks
    ? `peaks (measured once per process; rates above show their share in parentheses): ${profile.peaks.gflops !== undefined ? `${profile.peaks.gflops.toFixed(1)} GFLOP/s` : "FLOP/s not measured"}, ${profile.peaks.gbps !== undefined ? `${profile.peaks.gbps.toFixed(1)} GB/s` : "bandwidth not measured"} — ${profile.peaks.how}`
    : "peaks: not measured";
  return [
    `${profile.target} on ${profile.device}: ${profile.steps} step(s), ${ms(profile.stepMs)} per step; kernels ${ms(profile.kernelMs)} (${pct(profile.stepMs > 0 ? profile.kernelMs / profile.stepMs : 0)})`,
    `kernel times: ${CLOCK_LABEL[profile.clock]}`,
    `host per step: inputs in ${ms(host.inputMs)}, readback ${ms(host.readbackMs)}, other (scheduling, launches, waits) ${ms(host.otherMs)}`,
    ...(profile.threads !== undefined ? [threadLine(profile)] : []),
    peaks,
    "",
    ...lines,
    "",
  ].join("\n");
}

/** "threads: 2, computing 71.3 % of their time in kernels (longest kernels: k0 64 %, k5 88 %)" */
function threadLine(p: Profile): string {
  const total = p.kernels.reduce((a, k) => a + k.totalMs, 0);
  const used = p.kernels.reduce((a, k) => a + (k.threadUse ?? 0) * k.totalMs, 0);
  const longest = [...p.kernels].sort((a, b) => b.totalMs - a.totalMs).slice(0, 3);
  const each = longest.map((k) => `${k.name.split("_")[0]} ${((k.threadUse ?? 0) * 100).toFixed(0)} %`).join(", ");
  return `threads: ${p.threads}, computing ${total > 0 ? ((100 * used) / total).toFixed(1) : "0.0"} % of their time in kernels (longest kernels: ${each})`;
}

function sourceOf(k: KernelProfile): string {
  // Kernels with no user line (a gradient, an optimizer update) name the modules they compute.
  const files = k.locs.length > 0 ? k.locs.slice(0, 3).map((l) => `${l.file.split(/[\\/]/).pop()}:${l.line}`) : k.scopes.slice(0, 3).map((sc) => `[${sc}]`);
  const more = (k.locs.length > 0 ? k.locs.length : k.scopes.length) > 3 ? " …" : "";
  const params = k.params.length > 0 ? ` (${k.params.slice(0, 4).join(", ")}${k.params.length > 4 ? ", …" : ""})` : "";
  return `${files.join(" ")}${more}${params}`.trim();
}
