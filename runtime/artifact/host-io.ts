// What a run moves between the host and a runner's memory, shared by the js, wasm and webgpu
// runtimes: the per-run I/O options (outputs to read, caller arrays to fill, outputs to keep
// on the device, inputs taken from another run's kept output), the counters a runner keeps of
// the bytes it copied and allocated (what tests assert instead of times), and the handle to
// a value left in a runner's memory. Runtime-only: no compiler import.

import { ARTIFACT_DTYPES, artifactArray, type Artifact, type ArtifactDType, type ArtifactIO } from "./format.ts";
import { numel } from "./format.ts";
import type { RunProfiler } from "./profile.ts";
import type { NamedTensor, TensorData } from "./safetensors.ts";

/** The host array of a runtime tensor: safetensors.ts's TensorData, one array type per artifact dtype. */
export type RuntimeData = TensorData;

/** A tensor as a runtime takes and returns it: safetensors.ts's NamedTensor, what the artifact loader and the weights file hold too. */
export type RuntimeTensor = NamedTensor;

/**
 * A value a run left in its runner's memory (an output named in `keep`). Valid until that
 * runner's next run ends (the next run may still read it as an input) or `release()`: a
 * runner refuses a stale or released one, and one from a runner it cannot read from.
 */
export interface ResidentValue {
  /** The runner (one memory, one device) whose buffer holds it. */
  readonly owner: ResidentOwner;
  readonly output: string;
  readonly buffer: number;
  readonly dtype: ArtifactDType;
  readonly shape: readonly number[];
  /** The owner's run count when the value was written. */
  readonly generation: number;
}

/** What a runner that can keep values exposes to its handles. */
export interface ResidentOwner {
  /** Completed runs; a handle of an earlier generation is stale. */
  readonly generation: number;
  /** The platform memory it lives in: runners may exchange values when theirs match (WebGPU: the device). */
  readonly residence: object;
  readonly name: string;
  /** Host-memory runners (js, wasm): a view of the value, valid until the owner runs again. */
  view?(value: ResidentValue): RuntimeData;
  /** Copies the value to the host (into `into` when given). */
  readResident(value: ResidentValue, into?: RuntimeData): RuntimeData | Promise<RuntimeData>;
  /** Whether `release` was called on it. */
  isReleased(value: ResidentValue): boolean;
  release(value: ResidentValue): void;
}

/** The residence of runners whose memory is host memory (js, wasm): any of them reads another's values with one copy. */
export const HOST_RESIDENCE: object = Object.freeze({ kind: "host memory" });

/** Per-run I/O choices, the same for every runtime (each ignores what it cannot honour). */
export interface RunIo {
  /** Outputs to read back (default: all not kept). The others stay in the runner's memory only. */
  readonly readback?: readonly string[];
  /** Arrays to fill with the named outputs instead of fresh ones (right storage type and length). */
  readonly out?: Readonly<Record<string, RuntimeData>>;
  /** Inputs taken from values kept by an earlier run (this runner's or another on the same memory). */
  readonly resident?: Readonly<Record<string, ResidentValue>>;
  /** Time this run into it (exe.profile; runtime/artifact/profile.ts). Absent: the run reads no clock and submits no extra work. */
  readonly profile?: RunProfiler;
  /** Time this run's parts (inputs written, kernels, outputs read) into the counters' `times` (exe.run's `timeIo`; wasm). Off: no clock is read. */
  readonly timeIo?: boolean;
}

/** Wall time of one run's parts on the calling thread, where a runner times them (wasm, when asked). */
export interface IoTimes {
  /** Copying the inputs into the runner's memory. */
  readonly writeMs: number;
  /** Every kernel launch (threads included: a launch returns when all are done) and the state copy-backs. */
  readonly executeMs: number;
  /** Copying the outputs to host arrays. */
  readonly readMs: number;
}

/** Bytes the last run moved through the host. */
export interface IoCounters {
  /** Bytes copied from host arrays into the runner's memory (uploads; resident state skipped). */
  readonly bytesIn: number;
  /** Bytes copied from the runner's memory to host arrays. */
  readonly bytesOut: number;
  /** Bytes of host arrays the run allocated for its results (0 when every output went to `out`). */
  readonly bytesAllocated: number;
  /** Bytes copied inside the runner's memory (resident inputs, copy-backs of state updates). */
  readonly bytesOnDevice: number;
  /** The run's parts timed, when it was asked to (`timeIo`) on a runner that times them (wasm). */
  readonly times?: IoTimes;
}

export class IoCounter {
  bytesIn = 0;
  bytesOut = 0;
  bytesAllocated = 0;
  bytesOnDevice = 0;
  times: IoTimes | undefined = undefined;
  reset(): void {
    this.bytesIn = this.bytesOut = this.bytesAllocated = this.bytesOnDevice = 0;
    this.times = undefined;
  }
  snapshot(): IoCounters {
    const counts = { bytesIn: this.bytesIn, bytesOut: this.bytesOut, bytesAllocated: this.bytesAllocated, bytesOnDevice: this.bytesOnDevice };
    return this.times ? { ...counts, times: this.times } : counts;
  }
}

/** The array output `io` lands in: the caller's from `out` (checked), else a fresh one (counted). */
export function outputArray(io: ArtifactIO, out: Readonly<Record<string, RuntimeData>> | undefined, counter: IoCounter): RuntimeData {
  const given = out?.[io.name];
  const count = numel(io.shape);
  if (given !== undefined) {
    const Storage = ARTIFACT_DTYPES[io.dtype].array;
    if (!(given instanceof Storage) || given.length !== count)
      throw new Error(`out '${io.name}': expected a ${Storage.name} of ${count} elements, got ${given.constructor.name} of ${given.length}`);
    return given;
  }
  counter.bytesAllocated += count * ARTIFACT_DTYPES[io.dtype].bytes;
  return artifactArray(io.dtype, count);
}

/** Checks that `value` may be read by a runner on `residence` now; the message says why not. */
export function checkResident(value: ResidentValue, input: ArtifactIO, residence: object): void {
  const where = `input '${input.name}': the device value of output '${value.output}' (from ${value.owner.name})`;
  if (value.owner.residence !== residence) throw new Error(`${where} lives in another runner's memory or device and cannot be read here`);
  if (value.owner.isReleased(value)) throw new Error(`${where} was released`);
  if (value.generation !== value.owner.generation)
    throw new Error(`${where} is stale: ${value.owner.name} has run again since, and the output was overwritten (keep it again, or read() it first)`);
  if (value.dtype !== input.dtype || value.shape.length !== input.shape.length || value.shape.some((d, i) => d !== input.shape[i]))
    throw new Error(`${where} is ${value.dtype}[${value.shape.join(",")}], expected ${input.dtype}[${input.shape.join(",")}]`);
}

/** The inputs `names` asks readInputs for, in that order; a name that is no input of the artifact is an error naming it. */
export function inputsNamed(artifact: Pick<Artifact, "name" | "inputs">, names: readonly string[]): ArtifactIO[] {
  return names.map((name) => {
    const io = artifact.inputs.find((i) => i.name === name);
    if (!io) throw new Error(`readInputs: '${name}' is not an input of ${artifact.name}`);
    return io;
  });
}

/**
 * How many elements of input `io`'s buffer `t` fills: all of them, or, under a symbolic batch,
 * the leading rows of a run (`t.shape` is `[n, ...]` with n below the buffer's rows and the rest
 * equal): those are copied straight into the buffer's first rows, and the padding rows keep
 * whatever they held (the row masks and bounds keep them out of every result). Else an error.
 */
export function inputFill(io: ArtifactIO, t: RuntimeTensor): number {
  const full = numel(io.shape);
  if (t.data.length === full) return full;
  const rows = t.shape[0];
  const leading =
    rows !== undefined &&
    io.shape.length === t.shape.length &&
    rows < io.shape[0]! &&
    t.shape.every((d, i) => i === 0 || d === io.shape[i]) &&
    t.data.length === numel(t.shape);
  if (!leading) throw new Error(`input '${io.name}' has ${t.data.length} elements, expected ${full}`);
  return t.data.length;
}
