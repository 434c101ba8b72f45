// Runs a "js" artifact: allocates one ArrayBuffer per memory slot (buffers sharing a slot
// get views on the same memory), compiles each kernel source once with `new Function`, and
// per run copies the inputs in, launches the kernels in order and copies the outputs out.
// `run` is synchronous from first copy to last, so concurrent callers cannot interleave: each
// run sees the memory the previous one left (JavaScript runs one call to completion).
// With a JsSharedState (the programs of one k.compileModel), every state input lives in an
// array the runners share: its value stays there between runs and programs, uploaded only
// when the caller passes another array than the one standing for it, read back on demand.

import {
  artifactArray,
  artifactArrayFrom,
  asStorage,
  artifactDTypeBytes,
  numel,
  type Artifact,
  type ArtifactBuffer,
  type ArtifactDType,
  checkArtifactVersion,
} from "../artifact/format.ts";
import { recordKernel } from "../artifact/profile.ts";
import { jsKernelRuntime } from "./helpers.ts";

import { IoCounter, inputFill, inputsNamed, outputArray, type IoCounters, type RunIo, type RuntimeData, type RuntimeTensor } from "../artifact/host-io.ts";
export type { RuntimeData, RuntimeTensor };

type KernelFn = (bufs: readonly RuntimeData[], rt: typeof jsKernelRuntime) => void;

function view(memory: ArrayBuffer, b: ArtifactBuffer): RuntimeData {
  return artifactArray(b.dtype, memory, 0, numel(b.shape));
}

function copyOf(dtype: ArtifactDType, data: RuntimeData): RuntimeData {
  return artifactArrayFrom(dtype, data);
}

/** State several js runners share: one ArrayBuffer per state input, and the host array standing for its current value. */
export interface JsSharedState {
  /** Names of the state inputs (parameters, buffers, optimizer state). */
  readonly names: ReadonlySet<string>;
  readonly memory: Map<string, ArrayBuffer>;
  readonly resident: Map<string, RuntimeData>;
}

export class JsArtifactRunner {
  private readonly views: RuntimeData[];
  private readonly kernels: { readonly fn: KernelFn; readonly bufs: RuntimeData[] }[];
  /** Set when every state input lives in the shared state's memory. */
  private readonly shared: JsSharedState | undefined;

  constructor(
    readonly artifact: Artifact,
    shared?: JsSharedState,
  ) {
    checkArtifactVersion(artifact);
    if (artifact.target !== "js") throw new Error(`artifact ${artifact.name}: built for target '${artifact.target}', not 'js'`);
    const sharedSlots = shared ? stateSlots(artifact, shared.names) : undefined;
    this.shared = sharedSlots ? shared : undefined;
    const slots = artifact.memory.slotBytes.map((bytes, i) => {
      const size = Math.ceil(bytes / 4) * 4;
      const name = sharedSlots?.get(i);
      if (name === undefined) return new ArrayBuffer(size);
      let memory = shared!.memory.get(name);
      if (!memory) shared!.memory.set(name, (memory = new ArrayBuffer(size)));
      return memory;
    });
    this.views = artifact.buffers.map((b) => {
      const memory = slots[b.slot];
      if (!memory || memory.byteLength < numel(b.shape) * artifactDTypeBytes(b.dtype))
        throw new Error(`artifact ${artifact.name}: buffer ${b.name} does not fit slot ${b.slot}`);
      return view(memory, b);
    });
    this.kernels = artifact.kernels.map((k) => {
      let fn: KernelFn;
      try {
        fn = new Function("bufs", "rt", k.source) as KernelFn;
      } catch (e) {
        throw new Error(`artifact ${artifact.name}: kernel ${k.name} does not compile: ${(e as Error).message}`);
      }
      return { fn, bufs: k.params.map((id) => this.views[id]!) };
    });
  }

  private readonly counter = new IoCounter();

  /** What the last run copied between the caller's arrays and the runner's memory, and allocated. */
  get io(): IoCounters {
    return this.counter.snapshot();
  }

  /** Whether the state inputs live in the shared state's memory (JsSharedState). */
  get sharesState(): boolean {
    return this.shared !== undefined;
  }

  /**
   * Runs every kernel; outputs land in `io.out`'s arrays where given (`resident` is not used
   * here). With shared state, only the outputs in `readback` (default all) are copied out, and
   * an input passed as the array standing for the shared value is not copied in. With
   * `io.profile`, the input copies, each kernel and the output copies are timed into it.
   */
  run(inputs: Readonly<Record<string, RuntimeTensor>>, runIo: Pick<RunIo, "out" | "readback" | "profile"> = {}): Record<string, RuntimeTensor> {
    this.counter.reset();
    const shared = this.shared;
    const profile = runIo.profile;
    if (profile) profile.clock = "host";
    let t0 = profile ? performance.now() : 0;
    for (const io of this.artifact.inputs) {
      const t = inputs[io.name];
      if (!t) throw new Error(`missing input '${io.name}'`);
      // A symbolic batch's run rows go straight into the buffer's leading rows (inputFill).
      const target = this.views[io.buffer]!.subarray(0, inputFill(io, t));
      if (shared?.names.has(io.name)) {
        if (shared.resident.get(io.name) === t.data) continue;
        shared.resident.set(io.name, t.data);
      }
      target.set(asStorage(io.dtype, t.data));
      this.counter.bytesIn += target.byteLength;
    }
    if (profile) {
      const t1 = performance.now();
      profile.inputMs += t1 - t0;
      t0 = t1;
      this.kernels.forEach((k, i) => {
        k.fn(k.bufs, jsKernelRuntime);
        const t = performance.now();
        recordKernel(profile, i, t - t0);
        t0 = t;
      });
    } else for (const k of this.kernels) k.fn(k.bufs, jsKernelRuntime);
    const out: Record<string, RuntimeTensor> = {};
    if (shared) {
      // Updates written aside go over their input now: the shared memory holds the new state.
      for (const c of this.artifact.memory.copies) {
        this.views[c.input]!.set(this.views[c.output]!);
        this.counter.bytesOnDevice += this.views[c.input]!.byteLength;
      }
      for (const io of this.artifact.outputs) if (io.aliases !== undefined) shared.resident.set(io.aliases, inputs[io.aliases]!.data);
    }
    for (const io of this.artifact.outputs) {
      if (shared && runIo.readback !== undefined && !runIo.readback.includes(io.name)) continue;
      // An output that is an input passes the caller's data through (its slot may hold an in-place update by now).
      const passThrough = this.artifact.buffers[io.buffer]!.kind === "input" ? this.artifact.inputs.find((i) => i.buffer === io.buffer) : undefined;
      const src = passThrough ? copyOf(io.dtype, inputs[passThrough.name]!.data) : this.views[io.buffer]!;
      const data = outputArray(io, runIo.out, this.counter);
      data.set(src);
      this.counter.bytesOut += data.byteLength;
      out[io.name] = { dtype: io.dtype, shape: [...io.shape], data };
    }
    if (profile) profile.readbackMs += performance.now() - t0;
    return out;
  }

  /** The current value of the named inputs (with shared state: the state after the runs so far). */
  readInputs(names: readonly string[]): Record<string, RuntimeTensor> {
    const out: Record<string, RuntimeTensor> = {};
    for (const io of inputsNamed(this.artifact, names)) out[io.name] = { dtype: io.dtype, shape: [...io.shape], data: this.views[io.buffer]!.slice() };
    return out;
  }
}

/**
 * Slot → state name when every state input has a slot of its own (holding nothing but it and
 * the output updating it in place); undefined otherwise (the runner then keeps its own memory).
 */
function stateSlots(artifact: Artifact, names: ReadonlySet<string>): Map<number, string> | undefined {
  const slots = new Map<number, string>();
  for (const io of artifact.inputs) {
    if (!names.has(io.name)) continue;
    const own = artifact.buffers[io.buffer]!;
    const inPlace = artifact.outputs.find((o) => o.aliases === io.name)?.buffer;
    if (!artifact.buffers.every((b, id) => b.slot !== own.slot || id === io.buffer || id === inPlace)) return undefined;
    slots.set(own.slot, io.name);
  }
  return slots;
}
