// WebGPU autotuning, the pure half: what a tuned choice is keyed by (the adapter, and a hash of
// the section it renders), the default choice per adapter kind, the bounded candidate list per
// kernel template, and the `tune` kernel pass that writes the chosen template parameters into
// each section's `form` fact (compiler/kernel/form-params.ts). The search that times candidates
// is targets/webgpu-tune-search.ts; the cache file, targets/webgpu-tune-cache.ts (docs/tuning.md).
//
// Defaults are per adapter kind, not tuned on lavapipe alone: a CPU adapter (lavapipe) gets the
// barrier-free register matmul that measured best there; a hardware GPU gets workgroup-memory
// tiles (64x64 per workgroup, 4x4 per thread, the classic SGEMM tiling that does well on
// discrete GPUs), an integrated one the same with half the k step (less workgroup memory).

import type { KernelPass } from "../compiler/backend.ts";
import {
  MATMUL_FORMS,
  MATMUL_PARAM_KEYS,
  type KernelProgram,
  type MatmulForm,
  type MatmulParams,
  type Section,
  type SectionForm,
} from "../compiler/kernel/kernel-ir.ts";
import { assertNever } from "../compiler/util/errors.ts";
import { formatVarDecl, printDot, printExpr, printForm, printStore } from "../compiler/kernel/print.ts";
import { sha256Hex } from "../runtime/artifact/hash.ts";
import { ROW_THREADS_DEFAULT } from "../codegen/wgsl/row-reduce.ts";
import { matchContraction, SUBGROUP_MATMUL_DEFAULTS } from "../codegen/wgsl/matmul.ts";
import { PLAIN_SHAPE, type ElementwiseShape } from "../codegen/wgsl/dispatch.ts";
import type { WebGpuTuning } from "../runtime/artifact/format.ts";

/** What a compile does about tuning: search what the cache lacks (true), read the cache ("cache"), or neither (false). */
export type TuneMode = boolean | "cache";

/** The adapter kinds that get their own defaults and candidates. */
export type AdapterKind = "cpu" | "integrated" | "discrete";

/** Bumped when a renderer change makes cached timings stale: it is part of every key. */
export const TUNE_KEY_VERSION = 2;

/** An adapter as the tuner sees it (runtime/webgpu/device.ts's description). */
export interface TuneAdapter {
  readonly vendor: string;
  readonly architecture: string;
  readonly device: string;
  readonly description: string;
  readonly software: boolean;
}

/**
 * What a compile knows about the adapter it tunes for: its kind (which defaults apply), its
 * text (recorded in the artifact), and the tuned forms (section key → the form to render it
 * with) from the cache or a search. A compile without one: a CPU adapter's defaults, nothing tuned.
 */
export interface TuningContext {
  readonly kind: AdapterKind;
  readonly adapter?: string;
  readonly forms?: ReadonlyMap<string, SectionForm>;
}

const INTEGRATED_PATTERN = /intel|apple|qualcomm|adreno|mali|powervr|integrated|\bigpu\b/i;

/** cpu for a software adapter; integrated for the vendors that ship mostly integrated GPUs; else discrete. */
export function adapterKindOf(a: TuneAdapter): AdapterKind {
  if (a.software) return "cpu";
  return INTEGRATED_PATTERN.test([a.vendor, a.architecture, a.device, a.description].join(" ")) ? "integrated" : "discrete";
}

/** The text an adapter is known by in a cache file and its name. */
export const adapterText = (a: TuneAdapter): string => [a.vendor, a.architecture, a.device, a.description].join(" | ");

/**
 * The mode a compile runs with: KILN_TUNE=0|off turns tuning off whatever the options say;
 * KILN_TUNE=1|search and KILN_TUNE=cache set it where the options do not; default "cache".
 */
export function tuneModeOf(option: TuneMode | undefined, env: string | undefined): TuneMode {
  const e = env?.trim().toLowerCase();
  if (e === "0" || e === "off" || e === "false") return false;
  if (option !== undefined) return option;
  if (e === "1" || e === "search" || e === "true") return true;
  return "cache";
}

/**
 * A section's tuning key: its form's kind and a hash of what it computes — domain, expressions,
 * stores, dot facts, buffers renumbered by first use — without its form's variant and params,
 * its source locations or scopes, so the same kernel in another model or position shares it.
 */
export function sectionKey(s: Section): string {
  const lines = [
    `v${TUNE_KEY_VERSION}`,
    `domain [${s.domain.map(formatVarDecl).join(", ")}]`,
    ...s.exprs.map((e, i) => `%${i} = ${printExpr(e)}`),
    ...s.stores.map(printStore),
    ...(s.dots ?? []).map(printDot),
  ];
  const renumbered = new Map<string, string>();
  const text = lines.join("\n").replace(/\bb(\d+)\b/g, (m) => {
    if (!renumbered.has(m)) renumbered.set(m, `b${renumbered.size}`);
    return renumbered.get(m)!;
  });
  return `${s.form?.kind ?? "plain"}:${sha256Hex(text).slice(0, 24)}`;
}

/** Whether an adapter kind's shaders keep constant-trip loops rolled (codegen/wgsl/dialect.ts's OPAQUE_ZERO): a CPU adapter's, whose JIT time grows with each unrolled copy. */
export const rolledLoopsFor = (kind: AdapterKind): boolean => kind === "cpu";

/**
 * The most an elementwise dispatch's workgroups take per adapter kind. A CPU adapter pays for
 * every workgroup (lavapipe: about 1 µs of a core each, as much as the math of 64 vec4s of
 * sigmoid(relu(x·2+1)·y)), so it takes 256 invocations of 4 indices each (1024 a workgroup,
 * 16x fewer workgroups); 256x8 and 256x16 measured slower there, 256x2 and 128x1 in between
 * (docs/kernels.md). A hardware GPU keeps 64 invocations of one index each.
 */
export const defaultElementwiseShape = (kind: AdapterKind): ElementwiseShape => (kind === "cpu" ? { threads: 256, perThread: 4 } : PLAIN_SHAPE);

/**
 * The matmul variant an adapter kind renders by default: workgroup tiles on a GPU; on a CPU
 * adapter register blocks, their lhs rows shared by subgroup broadcasts where the device has
 * subgroups of one fixed size (`subgroupSize`; lavapipe: 1024³ in 150-170 ms of CPU against 280-300).
 */
export const defaultMatmulForm = (kind: AdapterKind, subgroupSize?: number): MatmulForm =>
  kind !== "cpu" ? "workgroup" : subgroupSize !== undefined ? "subgroup" : "registers";

const mm = (rows: number, cols: number, threads: number, unroll: number): MatmulParams => ({ rows, cols, threads, unroll });

/**
 * Per adapter kind: each matmul variant's params and a row kernel's threads; undefined: the
 * renderer's own default (codegen/wgsl, tuned on lavapipe: the CPU adapter's choice).
 */
const DEFAULTS: {
  readonly [K in AdapterKind]: { readonly [F in MatmulForm]?: MatmulParams } & { readonly rowThreads?: number };
} = {
  cpu: {},
  integrated: { registers: mm(4, 4, 64, 4), workgroup: mm(4, 4, 256, 8), rowThreads: 64 },
  discrete: { registers: mm(4, 4, 64, 4), workgroup: mm(4, 4, 256, 16), rowThreads: 128 },
};

/** The form with the adapter kind's default params (none where the renderer's default is the kind's). */
export function defaultFormFor(kind: AdapterKind, f: SectionForm): SectionForm {
  const d = DEFAULTS[kind];
  switch (f.kind) {
    case "matmul": {
      const params = d[f.form];
      return params ? { kind: "matmul", form: f.form, params } : { kind: "matmul", form: f.form };
    }
    case "row":
      return d.rowThreads !== undefined ? { kind: "row", threads: d.rowThreads } : { kind: "row" };
    case "vector":
    case "attention":
    case "prologue":
      return f;
    default:
      return assertNever(f, "section form");
  }
}

/** What a device allows a workgroup (GPUSupportedLimits names). */
export interface WorkgroupLimits {
  readonly maxComputeInvocationsPerWorkgroup: number;
  readonly maxComputeWorkgroupSizeX: number;
  readonly maxComputeWorkgroupStorageSize: number;
}

/** WebGPU's guaranteed minimums. */
export const defaultWorkgroupLimits: WorkgroupLimits = {
  maxComputeInvocationsPerWorkgroup: 256,
  maxComputeWorkgroupSizeX: 256,
  maxComputeWorkgroupStorageSize: 16384,
};

const registers = (rows: number, cols: number, threads: number, unroll: number): SectionForm => ({
  kind: "matmul",
  form: "registers",
  params: mm(rows, cols, threads, unroll),
});
const subgroup = (rows: number, cols: number, threads: number, unroll: number): SectionForm => ({
  kind: "matmul",
  form: "subgroup",
  params: mm(rows, cols, threads, unroll),
});
const workgroup = (rows: number, cols: number, threads: number, unroll: number): SectionForm => ({
  kind: "matmul",
  form: "workgroup",
  params: mm(rows, cols, threads, unroll),
});

/** The search space per form kind: a short list (a search compiles every one of them). */
const CANDIDATES: { readonly matmul: readonly SectionForm[]; readonly row: readonly SectionForm[] } = {
  // Mostly k unrolled by 1: lavapipe compiles an unrolled-by-4 register matmul several times
  // slower (the search pays that once per candidate), though one such won 1.74x on the MLP step.
  matmul: [
    registers(8, 8, 64, 1),
    registers(4, 8, 64, 1),
    registers(8, 4, 64, 1),
    registers(4, 4, 64, 1),
    registers(8, 8, 32, 1),
    registers(4, 4, 128, 1),
    registers(4, 8, 64, 4),
    registers(8, 8, 64, 4),
    workgroup(4, 4, 256, 16),
    workgroup(4, 4, 256, 8),
    workgroup(2, 2, 256, 16),
    workgroup(4, 4, 64, 16),
    // Only where the device has subgroups of one size dividing rows and threads (candidatesFor).
    subgroup(16, 8, 64, 1),
    subgroup(8, 8, 64, 1),
    subgroup(32, 4, 64, 1),
    subgroup(16, 8, 32, 1),
    subgroup(16, 4, 32, 1),
  ],
  row: [32, 64, 128, 256].map((threads): SectionForm => ({ kind: "row", threads })),
};

/** Why a form is not one the renderers take (a cache entry's check), or undefined. */
export function checkTunedForm(f: SectionForm): string | undefined {
  switch (f.kind) {
    case "row":
      return f.threads === undefined || (Number.isSafeInteger(f.threads) && f.threads >= 2 && f.threads <= 1024 && (f.threads & (f.threads - 1)) === 0)
        ? undefined
        : `threads=${f.threads}: a row kernel's threads are a power of two from 2 to 1024`;
    case "matmul": {
      const p = f.params;
      if (!p) return undefined;
      if (![p.rows, p.cols, p.threads, p.unroll].every((v) => Number.isSafeInteger(v) && v >= 1 && v <= 1024))
        return `matmul params must be integers from 1 to 1024`;
      const side = Math.round(Math.sqrt(p.threads));
      if (f.form === "workgroup" && side * side !== p.threads) return `threads=${p.threads}: the workgroup form needs a square thread count`;
      return undefined;
    }
    case "vector":
      return "a vector form is not tuned";
    case "attention":
      return "an attention form is not tuned";
    case "prologue":
      return "a prologue (wasm only) is not tuned";
    default:
      return assertNever(f, "section form");
  }
}

/** Threads per workgroup and workgroup-memory bytes a form asks for. */
function workgroupNeeds(f: SectionForm): { readonly threads: number; readonly sharedBytes: number } {
  if (f.kind === "row") return { threads: f.threads ?? ROW_THREADS_DEFAULT, sharedBytes: 8 * (f.threads ?? ROW_THREADS_DEFAULT) };
  if (f.kind !== "matmul" || !f.params) return { threads: 0, sharedBytes: 0 };
  const { rows, cols, threads, unroll } = f.params;
  // workgroup form: a side×side grid of threads stages (rows·side)×unroll and unroll×(cols·side) f32 tiles
  return { threads, sharedBytes: f.form === "workgroup" ? 4 * unroll * Math.sqrt(threads) * (rows + cols) : 0 };
}

/**
 * The candidates for a section's form on this device: the adapter kind's default first, then
 * the list for its kind, within the device's workgroup limits; only the forced matmul variant
 * when the caller chose one (`matmulForm`).
 */
export function candidatesFor(kind: AdapterKind, f: SectionForm, limits: WorkgroupLimits, forced?: MatmulForm, subgroupSize?: number): SectionForm[] {
  if (f.kind === "vector" || f.kind === "attention" || f.kind === "prologue") return [];
  const byDefault = defaultFormFor(kind, f.kind === "matmul" && !forced ? { kind: "matmul", form: defaultMatmulForm(kind, subgroupSize) } : f);
  // a row's default threads said explicitly, so the list's equal entry is not timed twice
  const first = byDefault.kind === "row" && byDefault.threads === undefined ? { kind: "row" as const, threads: ROW_THREADS_DEFAULT } : byDefault;
  const fits = (c: SectionForm): boolean => {
    const { threads, sharedBytes } = workgroupNeeds(c);
    return (
      threads <= limits.maxComputeInvocationsPerWorkgroup && threads <= limits.maxComputeWorkgroupSizeX && sharedBytes <= limits.maxComputeWorkgroupStorageSize
    );
  };
  const subgroupOk = (c: SectionForm): boolean =>
    c.kind !== "matmul" ||
    c.form !== "subgroup" ||
    (subgroupSize !== undefined &&
      (c.params ?? { rows: 16, threads: 64 }).rows % subgroupSize === 0 &&
      (c.params ?? { rows: 16, threads: 64 }).threads % subgroupSize === 0);
  const matches = (c: SectionForm): boolean => c.kind === f.kind && subgroupOk(c) && (!forced || (c.kind === "matmul" && c.form === forced));
  const seen = new Set<string>();
  return [first, ...CANDIDATES[f.kind]].filter((c) => {
    const text = printForm(c);
    if (seen.has(text) || !matches(c) || !fits(c)) return false;
    seen.add(text);
    return true;
  });
}

/** The form kinds the tuner chooses params for. */
export const isTunable = (f: SectionForm | undefined): f is Extract<SectionForm, { kind: "matmul" | "row" }> => f?.kind === "matmul" || f?.kind === "row";

export interface TunePassOptions {
  readonly tuning: TuningContext;
  /** The device's fixed subgroup size: the subgroup matmul's default threads are a multiple of it. */
  readonly subgroupSize?: number;
  /** The caller's `matmulForm`: a tuned choice of the other variant is not used. */
  readonly forcedMatmulForm?: MatmulForm;
}

/** The tuned form for a section, where there is one that its form kind (and a forced matmul variant) allows. */
export function tunedFormOf(s: Section, opts: TunePassOptions): SectionForm | undefined {
  const f = s.form;
  const tuned = isTunable(f) ? opts.tuning.forms?.get(sectionKey(s)) : undefined;
  if (!f || !tuned || tuned.kind !== f.kind) return undefined;
  return !opts.forcedMatmulForm || (tuned.kind === "matmul" && tuned.form === opts.forcedMatmulForm) ? tuned : undefined;
}

/** The form a section renders with: its tuned choice, else its own params, else the kind's default. */
export function chosenForm(s: Section, opts: TunePassOptions): SectionForm | undefined {
  const f = s.form;
  if (!isTunable(f)) return f;
  const own = f.kind === "matmul" ? f.params !== undefined : f.threads !== undefined;
  const chosen = tunedFormOf(s, opts) ?? (own ? f : defaultFormFor(opts.tuning.kind, f));
  return chosen?.kind === "matmul" && chosen.form === "subgroup" && !chosen.params ? fittedSubgroupForm(s, opts.subgroupSize) : chosen;
}

/**
 * A subgroup matmul's default params fitted to its section: 16x8 per thread, and the fewest
 * whole subgroups of threads (at most 64) whose columns cover the section's, so a narrow
 * matmul (256 columns: 32 threads; 288: 40) leaves few lanes idle; then columns per thread
 * halved while half of them still cover the columns.
 */
function fittedSubgroupForm(s: Section, subgroupSize = 8): SectionForm {
  const { unroll } = SUBGROUP_MATMUL_DEFAULTS;
  // Rows and threads are multiples of the subgroup size (a power of two): subgroups of 32 or more
  // (a GPU's, where the caller asks for this form) take that many rows, with the block's outputs
  // kept at 16x8 by fewer columns.
  const rows = Math.max(SUBGROUP_MATMUL_DEFAULTS.rows, subgroupSize);
  const cols = Math.max(1, (SUBGROUP_MATMUL_DEFAULTS.rows * SUBGROUP_MATMUL_DEFAULTS.cols) / rows);
  const n = matchContraction(s)?.N ?? Number.POSITIVE_INFINITY;
  // the fewest whole subgroups of threads whose columns cover n (288 columns: 40 threads, not 64 with 224 idle)
  const most = Math.max(SUBGROUP_MATMUL_DEFAULTS.threads, subgroupSize);
  const threads = Math.min(most, Math.max(subgroupSize, Math.ceil(n / cols / subgroupSize) * subgroupSize));
  // and, at the fewest threads, columns per thread halved while half still cover them (9 columns: 8 threads of 2)
  let fitted = cols;
  while (fitted > 1 && (fitted / 2) * threads >= n) fitted /= 2;
  return { kind: "matmul", form: "subgroup", params: { rows, cols: fitted, threads, unroll } };
}

/** The artifact's record of the forms its matmul and row sections render with (those alone in a dispatch); undefined when there are none. */
export function tuningRecord(sections: Iterable<Section>, opts: TunePassOptions): WebGpuTuning | undefined {
  const choices: Record<string, { form: string; tuned: boolean }> = {};
  for (const s of sections) {
    if (!isTunable(s.form)) continue;
    const tuned = tunedFormOf(s, opts);
    choices[sectionKey(s)] = { form: printForm(s.form), tuned: tuned !== undefined && printForm(tuned) === printForm(s.form) };
  }
  if (Object.keys(choices).length === 0) return undefined;
  return { kind: opts.tuning.kind, ...(opts.tuning.adapter !== undefined ? { adapter: opts.tuning.adapter } : {}), choices };
}

/** `tune`: every matmul and row form gets its parameters, from the tuned forms where the section's key has one. */
export function tunePass(opts: TunePassOptions): KernelPass {
  const apply = (s: Section): Section => {
    const form = chosenForm(s, opts);
    return form === s.form || !form ? s : { ...s, form };
  };
  return {
    name: "tune",
    run: (program: KernelProgram) => ({ ...program, kernels: program.kernels.map((k) => ({ ...k, sections: k.sections.map(apply) })) }),
  };
}

/** Parses `form matmul registers rows=8 cols=8 threads=64 unroll=4` or `form row threads=64` (a cache entry); undefined when it is neither. */
export function parseFormText(text: string): SectionForm | undefined {
  const [head, kind, ...rest] = text.trim().split(/\s+/);
  if (head !== "form") return undefined;
  const variant = kind === "matmul" ? rest.shift() : undefined;
  const params = new Map<string, number>();
  for (const kv of rest) {
    const m = /^([a-z]+)=(\d+)$/.exec(kv);
    if (!m || params.has(m[1]!)) return undefined;
    params.set(m[1]!, Number(m[2]));
  }
  const only = (keys: readonly string[]): boolean => [...params.keys()].every((k) => keys.includes(k));
  if (kind === "row" && only(["threads"])) return params.has("threads") ? { kind: "row", threads: params.get("threads")! } : { kind: "row" };
  const form = MATMUL_FORMS.find((m) => m === variant);
  if (kind !== "matmul" || !form || !only(MATMUL_PARAM_KEYS)) return undefined;
  if (params.size === 0) return { kind: "matmul", form };
  if (params.size !== MATMUL_PARAM_KEYS.length) return undefined;
  return { kind: "matmul", form, params: mm(params.get("rows")!, params.get("cols")!, params.get("threads")!, params.get("unroll")!) };
}
