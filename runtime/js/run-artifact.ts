// Runs a "js" artifact: allocates one ArrayBuffer per memory slot (buffers sharing a slot
// get views on the same memory), compiles each kernel source once with `new Function`, and
// per run copies the inputs in, launches the kernels in order and copies the outputs out.
// `run` is synchronous from first copy to last, so concurrent callers cannot interleave: each
// run sees the memory the previous one left (JavaScript runs one call to completion).

import { artifactArray, artifactArrayFrom, artifactDTypeBytes, numel, type Artifact, type ArtifactBuffer, type ArtifactDType } from "../artifact/format.ts";
import { recordKernel } from "../artifact/profile.ts";
import { jsKernelRuntime } from "./helpers.ts";

import { IoCounter, outputArray, type IoCounters, type RunIo, type RuntimeData } from "../artifact/host-io.ts";
export type { RuntimeData };

export interface RuntimeTensor {
  readonly dtype: ArtifactDType;
  readonly shape: readonly number[];
  readonly data: RuntimeData;
}

type KernelFn = (bufs: readonly RuntimeData[], rt: typeof jsKernelRuntime) => void;

function view(memory: ArrayBuffer, b: ArtifactBuffer): RuntimeData {
  return artifactArray(b.dtype, memory, 0, numel(b.shape));
}

function copyOf(dtype: ArtifactDType, data: RuntimeData): RuntimeData {
  return artifactArrayFrom(dtype, data);
}

export class JsArtifactRunner {
  private readonly views: RuntimeData[];
  private readonly kernels: { readonly fn: KernelFn; readonly bufs: RuntimeData[] }[];

  constructor(readonly artifact: Artifact) {
    if (artifact.format !== "kiln-artifact" || artifact.version !== 1)
      throw new Error(`artifact ${artifact.name}: unsupported format ${artifact.format} v${artifact.version}`);
    if (artifact.target !== "js") throw new Error(`artifact ${artifact.name}: built for target '${artifact.target}', not 'js'`);
    const slots = artifact.memory.slotBytes.map((bytes) => new ArrayBuffer(Math.ceil(bytes / 4) * 4));
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

  /**
   * Runs every kernel; outputs land in `io.out`'s arrays where given (`readback`, `resident` are
   * not used here). With `io.profile`, the input copies, each kernel and the output copies are timed into it.
   */
  run(inputs: Readonly<Record<string, RuntimeTensor>>, runIo: Pick<RunIo, "out" | "profile"> = {}): Record<string, RuntimeTensor> {
    this.counter.reset();
    const profile = runIo.profile;
    if (profile) profile.clock = "host";
    let t0 = profile ? performance.now() : 0;
    for (const io of this.artifact.inputs) {
      const t = inputs[io.name];
      if (!t) throw new Error(`missing input '${io.name}'`);
      const target = this.views[io.buffer]!;
      if (t.data.length !== target.length) throw new Error(`input '${io.name}' has ${t.data.length} elements, expected ${target.length}`);
      target.set(t.data);
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
    for (const io of this.artifact.outputs) {
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
}
