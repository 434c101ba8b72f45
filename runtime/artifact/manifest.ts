// manifest.json of a standalone artifact folder: the in-memory Artifact with kernel sources
// moved out to files, plus what a loader checks before it trusts the folder (schemaVersion,
// the graph's hash, sha256 of every file) and which inputs are state kept in weights.safetensors.

import {
  ARTIFACT_DTYPES,
  ARTIFACT_FORMAT,
  ARTIFACT_TARGETS,
  ARTIFACT_VERSION,
  type Artifact,
  type ArtifactBuffer,
  type ArtifactDType,
  type ArtifactIO,
  type ArtifactKernel,
  type ArtifactStats,
  type WebGpuTuning,
  versionProblem,
} from "./format.ts";
import { ArtifactInvalidError } from "./invalid.ts";

export { ArtifactInvalidError };

export const MANIFEST_FILE = "manifest.json";
export const WEIGHTS_FILE = "weights.safetensors";
/**
 * Bumped whenever a loader of the previous version could misread the folder. 2: webgpu
 * f16/bf16 tensors take 2 bytes an element (ARTIFACT_VERSION 2); a folder of schemaVersion 1
 * still loads unless it is webgpu with a 16-bit buffer (versionProblem).
 */
export const MANIFEST_SCHEMA_VERSION = 2;

/**
 * user: passed to run(); state: kept by the model between runs (weights.safetensors); seed:
 * filled from a run counter when not given; size: a symbolic dimension's size, filled from the
 * rows of the inputs that have it (at most `max`).
 */
export type InputRole = "user" | "state" | "seed" | "size";

/** A leading axis of `scale` × the symbolic dimension `name` (docs/training.md, "A symbolic batch"): `shape` holds the maximum. */
export interface SymbolicAxis {
  readonly name: string;
  readonly scale: number;
}

export interface ManifestInput extends ArtifactIO {
  readonly role: InputRole;
  readonly symbolic?: SymbolicAxis;
  /** The largest size a run may give, on the size input. */
  readonly max?: number;
}

export interface ManifestOutput extends ArtifactIO {
  /** state: replaces the state input it aliases after a run; user: returned by run(). */
  readonly role: "user" | "state";
  /** A leading symbolic axis: run() returns the run's rows. */
  readonly symbolic?: SymbolicAxis;
}

export interface ManifestKernel extends Omit<ArtifactKernel, "source"> {
  /** The kernel source, relative to the folder (kernels/k0_dot.wgsl). */
  readonly file: string;
}

export interface Manifest {
  readonly schemaVersion: number;
  readonly format: typeof ARTIFACT_FORMAT;
  readonly name: string;
  readonly target: string;
  /** sha256 of the canonical text of the traced graph IR (printGraph), before any pass. */
  readonly graphHash: string;
  readonly inputs: readonly ManifestInput[];
  readonly outputs: readonly ManifestOutput[];
  readonly buffers: readonly ArtifactBuffer[];
  /** In launch order. */
  readonly kernels: readonly ManifestKernel[];
  readonly memory: Artifact["memory"];
  readonly stats: ArtifactStats;
  /** The state's initial values (parameters, optimizer state); absent when the graph has no state. */
  readonly weights?: string;
  /** sha256 (hex) of every other file of the folder that a loader reads, by relative path. */
  readonly files: Readonly<Record<string, string>>;
  /** webgpu: the template choices its kernels were rendered with (docs/tuning.md). */
  readonly tuning?: WebGpuTuning;
}

/**
 * kernels/<name>.<ext>, made unique with the launch index if two kernels share a name. The
 * extension is the target's (its Backend's `kernelExtension`; the manifest lists the names).
 */
export function kernelFileNames(extension: string, kernels: readonly { readonly name: string }[]): string[] {
  const seen = new Set<string>();
  return kernels.map((k, i) => {
    const safe = k.name.replace(/[^A-Za-z0-9_.-]/g, "_");
    const file = seen.has(safe) ? `kernels/${i}_${safe}.${extension}` : `kernels/${safe}.${extension}`;
    seen.add(safe);
    return file;
  });
}

export interface ManifestExtras {
  readonly graphHash: string;
  /** Names of the inputs whose values live in weights.safetensors. */
  readonly stateNames: readonly string[];
  readonly kernelFiles: readonly string[];
  readonly files: Readonly<Record<string, string>>;
  /** The graph's symbolic dimension: its name, max, and the scale of each input and output whose leading axis has it. */
  readonly symbol?: {
    readonly name: string;
    readonly max: number;
    readonly axes: Readonly<Record<string, number>>;
    readonly outputs: Readonly<Record<string, number>>;
  };
}

export const isSeedInput = (io: ArtifactIO): boolean => io.name === "seed" && io.dtype === "i32" && io.shape.length === 0;

export function manifestOf(artifact: Artifact, extras: ManifestExtras): Manifest {
  const state = new Set(extras.stateNames);
  return {
    schemaVersion: MANIFEST_SCHEMA_VERSION,
    format: ARTIFACT_FORMAT,
    name: artifact.name,
    target: artifact.target,
    graphHash: extras.graphHash,
    inputs: artifact.inputs.map((io): ManifestInput => {
      const sym = extras.symbol;
      if (sym && io.name === sym.name) return { ...io, role: "size", max: sym.max };
      const scale = sym?.axes[io.name];
      return { ...io, role: state.has(io.name) ? "state" : isSeedInput(io) ? "seed" : "user", ...(scale ? { symbolic: { name: sym!.name, scale } } : {}) };
    }),
    outputs: artifact.outputs.map((io): ManifestOutput => {
      const scale = extras.symbol?.outputs[io.name];
      return {
        ...io,
        role: io.aliases !== undefined && state.has(io.aliases) ? "state" : "user",
        ...(scale ? { symbolic: { name: extras.symbol!.name, scale } } : {}),
      };
    }),
    buffers: artifact.buffers,
    kernels: artifact.kernels.map(({ source: _source, ...rest }, i) => ({ ...rest, file: extras.kernelFiles[i]! })),
    memory: artifact.memory,
    stats: artifact.stats,
    ...(state.size > 0 ? { weights: WEIGHTS_FILE } : {}),
    files: extras.files,
    ...(artifact.target === "webgpu" && artifact.tuning ? { tuning: artifact.tuning } : {}),
  };
}

/**
 * The in-memory Artifact again, with kernel sources read from their files. Target-specific
 * fields travel in the manifest's kernel entries (bindings, workgroups, launch); parseManifest
 * has checked that `target` is one the format knows.
 */
export function artifactOf(manifest: Manifest, kernelSources: readonly string[]): Artifact {
  const strip = <T extends { role: unknown; symbolic?: unknown; max?: unknown }>({ role: _role, symbolic: _s, max: _m, ...io }: T) => io;
  return <Artifact>{
    format: ARTIFACT_FORMAT,
    version: ARTIFACT_VERSION,
    name: manifest.name,
    target: manifest.target,
    inputs: manifest.inputs.map(strip),
    outputs: manifest.outputs.map(strip),
    buffers: manifest.buffers,
    kernels: manifest.kernels.map(({ file: _file, ...k }, i) => ({ ...k, source: kernelSources[i]! })),
    memory: manifest.memory,
    stats: manifest.stats,
    ...(manifest.target === "webgpu" && manifest.tuning ? { tuning: manifest.tuning } : {}),
  };
}

const DTYPES = Object.keys(ARTIFACT_DTYPES) as ArtifactDType[];

/** Parses manifest.json and checks the fields a loader relies on; any problem names the field. */
export function parseManifest(text: string): Manifest {
  const invalid = (why: string): ArtifactInvalidError => new ArtifactInvalidError(MANIFEST_FILE, why);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw invalid(`not JSON (${(e as Error).message})`);
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw invalid("not a JSON object");
  const m = raw as Record<string, unknown>;
  if (m["schemaVersion"] !== MANIFEST_SCHEMA_VERSION && m["schemaVersion"] !== 1)
    throw invalid(`schemaVersion is ${JSON.stringify(m["schemaVersion"])}, this loader reads schemaVersion ${MANIFEST_SCHEMA_VERSION}`);
  if (m["format"] !== ARTIFACT_FORMAT) throw invalid(`format is ${JSON.stringify(m["format"])}, expected "${ARTIFACT_FORMAT}"`);
  for (const field of ["name", "target", "graphHash"] as const) if (typeof m[field] !== "string") throw invalid(`${field} is missing or not a string`);
  if (!(ARTIFACT_TARGETS as readonly unknown[]).includes(m["target"]))
    throw invalid(`target ${JSON.stringify(m["target"])} is not one of ${ARTIFACT_TARGETS.join(", ")}`);
  for (const field of ["inputs", "outputs", "buffers", "kernels"] as const) if (!Array.isArray(m[field])) throw invalid(`${field} is missing or not a list`);
  if (typeof m["files"] !== "object" || m["files"] === null) throw invalid("files is missing or not an object");
  for (const [file, hash] of Object.entries(m["files"] as Record<string, unknown>))
    if (typeof hash !== "string" || !/^[0-9a-f]{64}$/.test(hash)) throw invalid(`files["${file}"] is not a sha256 hex digest`);
  const buffers = m["buffers"] as unknown[];
  (["inputs", "outputs"] as const).forEach((field) =>
    (m[field] as unknown[]).forEach((entry, i) => {
      const io = entry as Partial<ManifestInput>;
      const where = `${field}[${i}]`;
      if (typeof io.name !== "string") throw invalid(`${where}.name is missing`);
      if (!DTYPES.includes(io.dtype as ArtifactDType)) throw invalid(`${where}.dtype ${JSON.stringify(io.dtype)} is not one of ${DTYPES.join(", ")}`);
      if (!Array.isArray(io.shape) || !io.shape.every((d) => Number.isInteger(d) && d >= 0)) throw invalid(`${where}.shape is not a list of sizes`);
      if (typeof io.buffer !== "number" || buffers[io.buffer] === undefined) throw invalid(`${where}.buffer ${JSON.stringify(io.buffer)} names no buffer`);
    }),
  );
  (m["kernels"] as unknown[]).forEach((entry, i) => {
    const k = entry as Partial<ManifestKernel>;
    if (typeof k.file !== "string") throw invalid(`kernels[${i}].file is missing`);
    if (!(k.file in (m["files"] as object))) throw invalid(`kernels[${i}].file '${k.file}' has no sha256 in files`);
    // A webgpu kernel's fast-compiling variant (WebGpuArtifactKernel.quick) travels in its entry.
    const quick = (entry as { quick?: unknown }).quick as { source?: unknown; workgroups?: unknown } | undefined;
    if (
      quick !== undefined &&
      (typeof quick !== "object" ||
        quick === null ||
        typeof quick.source !== "string" ||
        !Array.isArray(quick.workgroups) ||
        quick.workgroups.length !== 3 ||
        !quick.workgroups.every((w) => Number.isInteger(w) && w >= 0))
    )
      throw invalid(`kernels[${i}].quick is not { source: "…", workgroups: [x, y, z] }`);
  });
  if (m["weights"] !== undefined && (typeof m["weights"] !== "string" || !(m["weights"] in (m["files"] as object))))
    throw invalid(`weights ${JSON.stringify(m["weights"])} has no sha256 in files`);
  if (m["tuning"] !== undefined) checkTuning(m["tuning"], invalid);
  // Only now are buffers known to be a list: schemaVersion 1 is refused where its layout differs.
  const older = versionProblem("schemaVersion", m["schemaVersion"], MANIFEST_SCHEMA_VERSION, m["target"], buffers);
  if (older) throw invalid(older);
  return raw as Manifest;
}

/** A manifest's `tuning` (WebGpuTuning): its kind, adapter and every choice's fields. */
function checkTuning(t: unknown, invalid: (why: string) => Error): void {
  if (typeof t !== "object" || t === null || Array.isArray(t)) throw invalid("tuning is not an object");
  const r = t as Record<string, unknown>;
  if (!["cpu", "integrated", "discrete"].includes(r["kind"] as string))
    throw invalid(`tuning.kind ${JSON.stringify(r["kind"])} is not one of cpu, integrated, discrete`);
  if (r["adapter"] !== undefined && typeof r["adapter"] !== "string") throw invalid("tuning.adapter is not a string");
  const choices = r["choices"];
  if (typeof choices !== "object" || choices === null || Array.isArray(choices)) throw invalid("tuning.choices is missing or not an object");
  for (const [key, c] of Object.entries(choices as Record<string, unknown>)) {
    const e = c as Record<string, unknown> | null;
    if (typeof e !== "object" || e === null || typeof e["form"] !== "string" || !e["form"].startsWith("form ") || typeof e["tuned"] !== "boolean")
      throw invalid(`tuning.choices["${key}"] is not { form: "form …", tuned: true|false }`);
  }
}
