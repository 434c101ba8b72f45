// The artifact format: everything a runtime needs to run a compiled graph, as plain JSON-able
// data — buffers and their memory slots, kernels (sources) in launch order, inputs and
// outputs. `k.compile` builds this in memory and `kiln compile` writes the same object to
// disk; runtimes import only this module (never compiler/).

import { encodeHalf, type HalfDType } from "./half.ts";

/**
 * The element types an artifact stores. The compiler's dtype table (compiler/ir/dtype.ts)
 * declares the same names; the runtime keeps its own small table because it never imports
 * compiler/, and test/ir/dtype.test.ts holds the two equal.
 */
export type ArtifactDType = "f32" | "f16" | "bf16" | "i32" | "bool";

export interface ArtifactBuffer {
  readonly id: number;
  readonly name: string;
  readonly dtype: ArtifactDType;
  readonly shape: readonly number[];
  readonly kind: "input" | "output" | "temp";
  /** Memory slot (buffers with disjoint lifetimes share one); bytes of each slot in `memory.slotBytes`. */
  readonly slot: number;
  /** Byte offset inside the slot (GPU targets pack several tensors into one buffer); default 0. */
  readonly offset?: number;
}

export interface ArtifactKernel {
  readonly name: string;
  /** Target source: for "js", the body of `function (bufs, rt)`. */
  readonly source: string;
  /** Buffer ids bound to the kernel, in the order the source expects them. */
  readonly params: readonly number[];
  readonly reads: readonly number[];
  readonly writes: readonly number[];
  /** GPU targets: the memory slot bound at each binding index, and the workgroup counts (x, y, z). */
  readonly bindings?: readonly number[];
  readonly workgroups?: readonly [number, number, number];
  /**
   * wasm: the same module without relaxed-SIMD instructions, present only when `source` has
   * some; a runner whose engine does not validate `source` compiles this one instead.
   */
  readonly portableSource?: string;
  /**
   * webgpu, under a symbolic batch: the dispatch's threads follow the batch, so a run of size n
   * dispatches only the workgroups its rows need (see SymbolicDispatch).
   */
  readonly symbolic?: SymbolicDispatch;
}

/**
 * A dispatch whose flat thread (or row) index leads with the symbolic batch: per section,
 * `[extent, per]` — the extent of its outermost variable (which steps whole batch rows) and the
 * threads per step of it. A run of size n needs max over sections of ceil(extent × n / max) × per
 * threads, `perWorkgroup` to a workgroup; the shader's bounds checks stay those of the maximum.
 */
export interface SymbolicDispatch {
  /** The size buffer (its input holds n). */
  readonly size: number;
  readonly max: number;
  readonly sections: readonly (readonly [number, number])[];
  readonly perWorkgroup: number;
}

export interface ArtifactIO {
  readonly name: string;
  readonly dtype: ArtifactDType;
  readonly shape: readonly number[];
  readonly buffer: number;
  /** For an output: the input it updates (a parameter or optimizer state). */
  readonly aliases?: string;
}

export interface ArtifactStats {
  /** Kernel launches per run. */
  readonly kernels: number;
  /** Bytes each kernel reads/writes, summed (each bound buffer counted once per kernel). */
  readonly bytesRead: number;
  readonly bytesWritten: number;
  /** Bytes of memory the run allocates (all slots). */
  readonly peakBytes: number;
}

/** The targets that build artifacts (the reference interpreter builds none). */
export type ArtifactTarget = "js" | "wasm" | "webgpu" | "cuda";
export const ARTIFACT_TARGETS: readonly ArtifactTarget[] = ["js", "wasm", "webgpu", "cuda"];

interface ArtifactCommon {
  readonly format: "kiln-artifact";
  /** ARTIFACT_VERSION when built; a version-1 object may still run (versionProblem says which). */
  readonly version: number;
  readonly name: string;
  readonly inputs: readonly ArtifactIO[];
  readonly outputs: readonly ArtifactIO[];
  readonly buffers: readonly ArtifactBuffer[];
  readonly memory: {
    readonly slotBytes: readonly number[];
    /** Aliased outputs that could not be updated in place: copy output → input after a run. */
    readonly copies: readonly { readonly output: number; readonly input: number }[];
    /**
     * wasm programs of a k.compileModel: the address of each slot, the state entries at the
     * model's addresses (wasm-layout.ts's state region). Absent: wasm-layout.ts lays them out.
     */
    readonly slotOffsets?: readonly number[];
  };
  readonly stats: ArtifactStats;
}

/** "js": each kernel's source is the body of `function (bufs, rt)`. */
export interface JsArtifact extends ArtifactCommon {
  readonly target: "js";
  readonly kernels: readonly ArtifactKernel[];
}

/** "wasm": each kernel's source is a WebAssembly module, base64; addresses follow wasm-layout.ts. */
export interface WasmArtifact extends ArtifactCommon {
  readonly target: "wasm";
  readonly kernels: readonly ArtifactKernel[];
}

export interface WebGpuArtifactKernel extends ArtifactKernel {
  readonly bindings: readonly number[];
  readonly workgroups: readonly [number, number, number];
  /**
   * A variant that a CPU adapter's JIT compiles faster and that computes the same bits (a
   * register matmul with a smaller block: each output is the same fma chain over k), over the
   * same bindings: the runner starts with it and swaps `source` in once that has compiled, in
   * the background between runs (docs/webgpu.md, "tiered start").
   */
  readonly quick?: { readonly source: string; readonly workgroups: readonly [number, number, number] };
}

/**
 * The template choices a webgpu artifact's kernels were rendered with (docs/tuning.md): per
 * section key (its form kind and a hash of what it computes), the form with its parameters
 * (`form matmul registers bm=8 bn=8 wg=64`) and whether an autotuning search chose it (else the
 * adapter kind's default). The kernels' WGSL already has them; this says what they are and for
 * which adapter, so a later process can reuse them without searching.
 */
export interface WebGpuTuning {
  /** The adapter the choices were made for ("vendor | architecture | device | description"); absent: compiled without one. */
  readonly adapter?: string;
  readonly kind: "cpu" | "integrated" | "discrete";
  readonly choices: Readonly<Record<string, { readonly form: string; readonly tuned: boolean }>>;
}

/** "webgpu": one WGSL shader per dispatch; slots are GPU buffers, `offset` places a tensor in a packed one. */
export interface WebGpuArtifact extends ArtifactCommon {
  readonly target: "webgpu";
  readonly kernels: readonly WebGpuArtifactKernel[];
  /** The kernels' template choices, where any kernel has a form (matmul, row). */
  readonly tuning?: WebGpuTuning;
}

/** A CUDA launch shape. */
export interface CudaLaunch {
  readonly grid: readonly [number, number, number];
  readonly block: readonly [number, number, number];
  readonly sharedBytes: number;
  /**
   * Under a symbolic batch, when every section's points lead with it: the runner launches
   * only the blocks the run's rows need (the kernel's grid-stride loops also stop at them).
   */
  readonly symbolic?: SymbolicDispatch;
}

export interface CudaArtifactKernel extends ArtifactKernel {
  readonly launch: CudaLaunch;
}

/** "cuda": CUDA C kernels and their launch shapes, plus the whole module nvcc or NVRTC compiles. */
export interface CudaArtifact extends ArtifactCommon {
  readonly target: "cuda";
  readonly kernels: readonly CudaArtifactKernel[];
  /** The whole CUDA module: prelude, then every kernel in launch order. */
  readonly cudaSource: string;
}

/** A compiled graph for one target: a union keyed by `target`. */
export type Artifact = JsArtifact | WasmArtifact | WebGpuArtifact | CudaArtifact;

/** The artifact of one target. */
export type ArtifactOf<T extends ArtifactTarget> = Extract<Artifact, { readonly target: T }>;

export const ARTIFACT_FORMAT = "kiln-artifact";
/**
 * Version 2: webgpu f16/bf16 tensors are packed two to a u32 word (2 bytes an element;
 * codegen/wgsl/layout.ts). Version 1 gave each its own word (4 bytes) and differs in nothing
 * else, so a version-1 artifact still runs unless it is webgpu with a 16-bit buffer.
 */
export const ARTIFACT_VERSION = 2;

/**
 * Why an artifact of `version` (named `field`: "version" in memory, "schemaVersion" in a
 * manifest, whose `current` is MANIFEST_SCHEMA_VERSION) cannot be read here, or undefined when
 * it can: the current version, or version 1 unless it is webgpu and holds an f16/bf16 buffer.
 */
export function versionProblem(field: string, version: unknown, current: number, target: unknown, buffers: readonly unknown[]): string | undefined {
  if (version === current) return undefined;
  const mismatch = `${field} is ${JSON.stringify(version)}, this loader reads ${field} ${current}`;
  if (version !== 1) return mismatch;
  const isHalf = (b: unknown): b is { readonly name?: unknown; readonly dtype: "f16" | "bf16" } =>
    typeof b === "object" && b !== null && ((b as { dtype?: unknown }).dtype === "f16" || (b as { dtype?: unknown }).dtype === "bf16");
  const half = target === "webgpu" ? buffers.find(isHalf) : undefined;
  if (half === undefined) return undefined;
  return `${mismatch}: a webgpu artifact of ${field} 1 holds each f16/bf16 element in 4 bytes (2 since ${field} 2), and buffer '${String(half.name)}' is ${half.dtype}; compile it again`;
}

/** Throws (a plain Error: the runtime cannot import KilnError) unless a runtime can run `artifact` as built. */
export function checkArtifactVersion(artifact: Artifact): void {
  if (artifact.format !== ARTIFACT_FORMAT) throw new Error(`artifact ${artifact.name}: unsupported format ${String(artifact.format)}`);
  const problem = versionProblem("version", artifact.version, ARTIFACT_VERSION, artifact.target, artifact.buffers);
  if (problem) throw new Error(`artifact ${artifact.name}: ${problem}`);
}

/** Per artifact dtype: bytes per element and the typed array a runtime holds it in. */
export const ARTIFACT_DTYPES = {
  f32: { bytes: 4, array: Float32Array },
  // 16-bit floats: the runtime holds their bit patterns (runtime/artifact/half.ts converts).
  f16: { bytes: 2, array: Uint16Array, half: "f16" },
  bf16: { bytes: 2, array: Uint16Array, half: "bf16" },
  i32: { bytes: 4, array: Int32Array },
  bool: { bytes: 1, array: Uint8Array },
} as const satisfies {
  readonly [D in ArtifactDType]: { readonly bytes: number; readonly array: { readonly BYTES_PER_ELEMENT: number }; readonly half?: HalfDType };
};

/** The 16-bit float format of an artifact dtype (its storage is a Uint16Array of bit patterns), else undefined. */
export const artifactHalf = (d: ArtifactDType): HalfDType | undefined => (ARTIFACT_DTYPES[d] as { readonly half?: HalfDType }).half;

/** A runtime's array of an artifact dtype. */
export type ArtifactArray = Float32Array | Uint16Array | Int32Array | Uint8Array;

export const artifactDTypeBytes = (d: ArtifactDType): number => ARTIFACT_DTYPES[d].bytes;

/** A fresh zeroed array of `d`'s storage type, or a view over `buffer` at `byteOffset`. */
export function artifactArray(d: ArtifactDType, length: number): ArtifactArray;
export function artifactArray(d: ArtifactDType, buffer: ArrayBufferLike, byteOffset: number, length: number): ArtifactArray;
export function artifactArray(d: ArtifactDType, a: number | ArrayBufferLike, byteOffset?: number, length?: number): ArtifactArray {
  const Storage = ARTIFACT_DTYPES[d].array;
  // a union of constructors loses their generic buffer parameter; a SharedArrayBuffer works the same
  return typeof a === "number" ? new Storage(a) : new Storage(a as ArrayBuffer, byteOffset, length);
}

/**
 * Copies `data` into a fresh array of `d`'s storage type. For a 16-bit float, a Uint16Array is
 * taken as bit patterns (copied); any other array as values, rounded to the format.
 */
export function artifactArrayFrom(d: ArtifactDType, data: ArrayLike<number>): ArtifactArray {
  const half = artifactHalf(d);
  if (half !== undefined && !(data instanceof Uint16Array)) return encodeHalf(half, data);
  return ARTIFACT_DTYPES[d].array.from(data);
}

/**
 * Input data as a runner copies it into memory: a 16-bit float given as values (a Float32Array,
 * Float64Array…) becomes its rounded bit patterns; anything else is returned as it is (a typed
 * array `set` converts the other dtypes).
 */
export function asStorage<T extends ArrayLike<number>>(d: ArtifactDType, data: T): T | Uint16Array {
  const half = artifactHalf(d);
  return half !== undefined && !(data instanceof Uint16Array) ? encodeHalf(half, data) : data;
}

/** Elements of a tensor of this shape (the runtime's copy of compiler/util/shape.ts's numel). */
export const numel = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);
