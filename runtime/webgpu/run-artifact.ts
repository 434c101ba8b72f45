/// <reference types="@webgpu/types" />
// Runs a "webgpu" artifact on a device: one GPU buffer per memory slot, pipelines compiled
// once (cached per device by WGSL source), bind groups built once. A run writes the inputs
// that changed, encodes every dispatch and the copies into one command buffer with the
// readback, submits once and maps one staging buffer. State stays resident: an input whose
// data is the very array this runner returned for the output updating it (or, when that output
// was not read back, the array passed last run) is not uploaded again. Runs and input reads
// are serialized per runner (they share the staging buffer and the resident-state bookkeeping):
// concurrent calls queue, each sees the state the previous one left, and a failed call does not
// block the ones behind it.

import { numel, type Artifact, type ArtifactDType, type ArtifactIO } from "../artifact/format.ts";

import {
  IoCounter,
  checkResident,
  outputArray,
  type IoCounters,
  type ResidentOwner,
  type ResidentValue,
  type RunIo,
  type RuntimeData,
} from "../artifact/host-io.ts";
export type { RuntimeData };

export interface RuntimeTensor {
  readonly dtype: ArtifactDType;
  readonly shape: readonly number[];
  readonly data: RuntimeData;
}

/** Outputs to read back (default: all; the others stay on the device only), `out` arrays to fill, inputs from kept values on the same device. */
export type WebGpuRunOptions = RunIo;

const ELEMENT_BYTES = 4;

/** GPU buffers created and destroyed by runners in this process (leak checks: live = created - destroyed). */
const bufferCounts = { created: 0, destroyed: 0 };

export function webGpuBufferCounts(): { readonly created: number; readonly destroyed: number; readonly live: number } {
  return { ...bufferCounts, live: bufferCounts.created - bufferCounts.destroyed };
}

function createBuffer(device: GPUDevice, descriptor: GPUBufferDescriptor): GPUBuffer {
  const buffer = device.createBuffer(descriptor);
  bufferCounts.created++;
  return buffer;
}

function destroyBuffer(buffer: GPUBuffer): void {
  buffer.destroy();
  bufferCounts.destroyed++;
}

const pipelineCache = new WeakMap<GPUDevice, Map<string, Promise<GPUComputePipeline>>>();

function pipelineFor(device: GPUDevice, name: string, source: string): Promise<GPUComputePipeline> {
  let cache = pipelineCache.get(device);
  if (!cache) pipelineCache.set(device, (cache = new Map()));
  let p = cache.get(source);
  if (!p) {
    p = compilePipeline(device, name, source);
    cache.set(source, p);
  }
  return p;
}

// Created inside a validation error scope, so a kernel that does not compile is named, with
// the compiler's messages and its source.
async function compilePipeline(device: GPUDevice, name: string, source: string): Promise<GPUComputePipeline> {
  device.pushErrorScope("validation");
  const module = device.createShaderModule({ code: source, label: name });
  const pipeline = device.createComputePipeline({ layout: "auto", compute: { module, entryPoint: "main" }, label: name });
  const error = await device.popErrorScope();
  if (error) {
    const info = await module.getCompilationInfo();
    const messages = info.messages.map((m) => `${m.lineNum}:${m.linePos} ${m.type}: ${m.message}`).join("\n");
    throw new Error(`webgpu: kernel ${name} does not compile: ${error.message}\n${messages}\n${source}`);
  }
  return pipeline;
}

interface Launch {
  readonly name: string;
  readonly pipeline: GPUComputePipeline;
  readonly bindGroup: GPUBindGroup;
  readonly workgroups: readonly [number, number, number];
}

export class WebGpuArtifactRunner implements ResidentOwner {
  private readonly counter = new IoCounter();
  private readonly released = new WeakSet<ResidentValue>();
  private runs = 0;
  /** Buffers made for this run only (kept values copied aside), destroyed when it ends. */
  private readonly scratch: GPUBuffer[] = [];
  private readonly slots: GPUBuffer[];
  private launches: Launch[] = [];
  private staging: GPUBuffer | undefined;
  /** Per state input: the data array last returned for the output that updates it (already on the device). */
  private readonly resident = new Map<string, RuntimeData>();
  private readonly aliasOutput = new Map<string, ArtifactIO>();
  /** Bounce buffer for copy-backs within one slot (WebGPU forbids a buffer copying to itself). */
  private readonly copyScratch: GPUBuffer | undefined;
  /** Settles when the last queued run or read has (never rejects). */
  private tail: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly device: GPUDevice,
    readonly artifact: Artifact,
  ) {
    if (artifact.format !== "kiln-artifact" || artifact.version !== 1)
      throw new Error(`artifact ${artifact.name}: unsupported format ${artifact.format} v${artifact.version}`);
    if (artifact.target !== "webgpu") throw new Error(`artifact ${artifact.name}: built for target '${artifact.target}', not 'webgpu'`);
    const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
    this.slots = artifact.memory.slotBytes.map((bytes, i) =>
      createBuffer(device, { size: Math.max(ELEMENT_BYTES, Math.ceil(bytes / 4) * 4), usage, label: `${artifact.name}/slot${i}` }),
    );
    for (const o of artifact.outputs) if (o.aliases !== undefined) this.aliasOutput.set(o.aliases, o);
    let scratchBytes = 0;
    for (const c of artifact.memory.copies) {
      const from = this.placeOf(c.output);
      if (from.gpu === this.placeOf(c.input).gpu) scratchBytes = Math.max(scratchBytes, from.bytes);
    }
    this.copyScratch =
      scratchBytes > 0
        ? createBuffer(device, { size: scratchBytes, usage: GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST, label: `${artifact.name}/copy-back` })
        : undefined;
  }

  /** Kept values may move between runners on one device. */
  get residence(): object {
    return this.device;
  }

  get name(): string {
    return `the webgpu runner of ${this.artifact.name}`;
  }

  /** Runs completed: a kept value of an earlier run is stale. */
  get generation(): number {
    return this.runs;
  }

  /** What the last run copied between the host and the device, and allocated. */
  get io(): IoCounters {
    return this.counter.snapshot();
  }

  /** A handle on output `name` as the last run left it on the device (see ResidentValue for how long it stays valid). */
  keep(name: string): ResidentValue {
    const o = this.artifact.outputs.find((x) => x.name === name);
    if (!o) throw new Error(`keep: '${name}' is not an output of ${this.artifact.name}`);
    return { owner: this, output: name, buffer: o.buffer, dtype: o.dtype, shape: [...o.shape], generation: this.runs };
  }

  isReleased(value: ResidentValue): boolean {
    return this.released.has(value);
  }

  release(value: ResidentValue): void {
    this.released.add(value);
  }

  readResident(value: ResidentValue, into?: RuntimeData): Promise<RuntimeData> {
    const output = this.artifact.outputs.find((o) => o.name === value.output)!;
    checkResident(value, output, this.device);
    return this.serialized(async () => {
      checkResident(value, output, this.device);
      const p = this.placeOf(value.buffer);
      const count = numel(value.shape);
      const data = into ?? new (value.dtype === "f32" ? Float32Array : value.dtype === "i32" ? Int32Array : Uint8Array)(count);
      if (p.bytes === 0) return data;
      const staging = createBuffer(this.device, {
        size: p.bytes,
        usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
        label: `${this.artifact.name}/read-kept`,
      });
      try {
        const encoder = this.device.createCommandEncoder();
        encoder.copyBufferToBuffer(p.gpu, p.offset, staging, 0, p.bytes);
        this.device.queue.submit([encoder.finish()]);
        await staging.mapAsync(GPUMapMode.READ, 0, p.bytes);
        copyFromDevice(value.dtype, staging.getMappedRange(0, p.bytes), 0, data);
        staging.unmap();
      } finally {
        destroyBuffer(staging);
      }
      return data;
    });
  }

  static async create(device: GPUDevice, artifact: Artifact): Promise<WebGpuArtifactRunner> {
    const runner = new WebGpuArtifactRunner(device, artifact);
    const launches = await Promise.all(
      artifact.kernels.map(async (k) => {
        if (!k.workgroups || !k.bindings) throw new Error(`artifact ${artifact.name}: kernel ${k.name} has no workgroups or bindings`);
        const pipeline = await pipelineFor(device, k.name, k.source);
        const bindGroup = device.createBindGroup({
          layout: pipeline.getBindGroupLayout(0),
          entries: k.bindings.map((slot, binding) => ({ binding, resource: { buffer: runner.slots[slot]! } })),
        });
        return { name: k.name, pipeline, bindGroup, workgroups: k.workgroups };
      }),
    );
    runner.launches = launches.filter((l) => l.workgroups[0] > 0);
    return runner;
  }

  placeOf(buffer: number): { gpu: GPUBuffer; offset: number; bytes: number } {
    const b = this.artifact.buffers[buffer]!;
    return { gpu: this.slots[b.slot]!, offset: b.offset ?? 0, bytes: numel(b.shape) * ELEMENT_BYTES };
  }

  private serialized<T>(work: () => Promise<T>): Promise<T> {
    const result = this.tail.then(work);
    this.tail = result.catch(() => undefined);
    return result;
  }

  /**
   * Runs every kernel once. Concurrent calls run one after another, in call order; a queued
   * call reads `inputs` when its turn comes, so the caller must not change them before it settles.
   */
  run(inputs: Readonly<Record<string, RuntimeTensor>>, opts: WebGpuRunOptions = {}): Promise<Record<string, RuntimeTensor>> {
    return this.serialized(() => this.runNow(inputs, opts));
  }

  private async runNow(inputs: Readonly<Record<string, RuntimeTensor>>, opts: WebGpuRunOptions): Promise<Record<string, RuntimeTensor>> {
    this.counter.reset();
    try {
      return await this.runChecked(inputs, opts);
    } finally {
      this.runs++;
      for (const b of this.scratch.splice(0)) destroyBuffer(b);
    }
  }

  private async runChecked(inputs: Readonly<Record<string, RuntimeTensor>>, opts: WebGpuRunOptions): Promise<Record<string, RuntimeTensor>> {
    const { device } = this;
    // A run the device refuses (an invalid copy, a binding over a limit) must fail, not return
    // whatever the staging buffer held: its validation errors land in a scope of its own. No
    // await between push and pop, so no other runner's work shares the scope.
    device.pushErrorScope("validation");
    let submitted: { readonly wanted: readonly ArtifactIO[]; readonly stagingBytes: number; readonly stagingOffset: ReadonlyMap<string, number> };
    let validation!: Promise<GPUError | null>;
    try {
      submitted = this.submit(inputs, opts);
    } finally {
      validation = device.popErrorScope();
    }
    const { wanted, stagingBytes, stagingOffset } = submitted;
    let mapped: ArrayBuffer | undefined;
    let failure: unknown;
    try {
      if (stagingBytes > 0) {
        await this.staging!.mapAsync(GPUMapMode.READ, 0, stagingBytes);
        mapped = this.staging!.getMappedRange(0, stagingBytes);
      } else await device.queue.onSubmittedWorkDone();
    } catch (e) {
      failure = e;
    }
    const refused = await validation;
    if (refused || failure !== undefined) {
      if (mapped) this.staging!.unmap();
      if (refused) throw new Error(`webgpu: ${this.artifact.name}: the device refused the run: ${refused.message}`);
      throw failure;
    }

    // Each output is copied once, from the mapped staging range into its array (the caller's `out`, else a fresh one).
    const out: Record<string, RuntimeTensor> = {};
    try {
      for (const o of wanted) {
        const buffer = this.artifact.buffers[o.buffer]!;
        if (buffer.kind === "input") {
          // An output that is an input passes the caller's data through.
          const given = this.artifact.inputs.find((i) => i.buffer === o.buffer)!;
          out[o.name] = { dtype: o.dtype, shape: [...o.shape], data: inputs[given.name]!.data.slice() };
          continue;
        }
        const data = outputArray(o, opts.out, this.counter);
        copyFromDevice(o.dtype, mapped ?? new ArrayBuffer(0), stagingOffset.get(o.name)!, data);
        this.counter.bytesOut += numel(o.shape) * ELEMENT_BYTES;
        out[o.name] = { dtype: o.dtype, shape: [...o.shape], data };
      }
    } finally {
      if (mapped) this.staging!.unmap();
    }
    // The device now holds each state output in its input's place (in place, or by the copy-back).
    for (const [input, o] of this.aliasOutput) {
      const t = out[o.name];
      if (this.artifact.buffers[o.buffer]!.kind === "input") this.resident.delete(input);
      // Not read back: the caller's array now stands for the updated value on the device.
      else {
        const stand = t?.data ?? inputs[input]?.data;
        if (stand) this.resident.set(input, stand);
        else this.resident.delete(input);
      }
    }
    return out;
  }

  /** Writes the inputs that changed, encodes the dispatches, readback and copy-backs, and submits (no await). */
  private submit(
    inputs: Readonly<Record<string, RuntimeTensor>>,
    opts: WebGpuRunOptions,
  ): { readonly wanted: readonly ArtifactIO[]; readonly stagingBytes: number; readonly stagingOffset: ReadonlyMap<string, number> } {
    const { device } = this;
    const fromKept = this.residentCopies(opts.resident ?? {});
    for (const io of this.artifact.inputs) {
      if (opts.resident?.[io.name] !== undefined) continue;
      const t = inputs[io.name];
      if (!t) throw new Error(`missing input '${io.name}'`);
      if (t.data.length !== numel(io.shape)) throw new Error(`input '${io.name}' has ${t.data.length} elements, expected ${numel(io.shape)}`);
      if (this.resident.get(io.name) === t.data) continue;
      this.resident.delete(io.name);
      const p = this.placeOf(io.buffer);
      if (p.bytes > 0) device.queue.writeBuffer(p.gpu, p.offset, toDevice(io.dtype, t.data) as Float32Array<ArrayBuffer>);
      this.counter.bytesIn += p.bytes;
    }
    const encoder = device.createCommandEncoder();
    fromKept(encoder);
    if (this.launches.length > 0) {
      const pass = encoder.beginComputePass();
      for (const l of this.launches) {
        pass.setPipeline(l.pipeline);
        pass.setBindGroup(0, l.bindGroup);
        pass.dispatchWorkgroups(l.workgroups[0], l.workgroups[1], l.workgroups[2]);
      }
      pass.end();
    }
    // Read back before the copy-backs: an aliased output written aside is read from its own buffer.
    const wanted = this.artifact.outputs.filter((o) => opts.readback === undefined || opts.readback.includes(o.name));
    const fromDevice = wanted.filter((o) => this.artifact.buffers[o.buffer]!.kind !== "input");
    let stagingBytes = 0;
    const stagingOffset = new Map<string, number>();
    for (const o of fromDevice) {
      stagingOffset.set(o.name, stagingBytes);
      stagingBytes += numel(o.shape) * ELEMENT_BYTES;
    }
    if (stagingBytes > 0 && (!this.staging || this.staging.size < stagingBytes)) {
      if (this.staging) destroyBuffer(this.staging);
      this.staging = createBuffer(device, {
        size: stagingBytes,
        usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
        label: `${this.artifact.name}/readback`,
      });
    }
    for (const o of fromDevice) {
      const p = this.placeOf(o.buffer);
      if (p.bytes > 0) encoder.copyBufferToBuffer(p.gpu, p.offset, this.staging!, stagingOffset.get(o.name)!, p.bytes);
    }
    for (const c of this.artifact.memory.copies) {
      const from = this.placeOf(c.output);
      const to = this.placeOf(c.input);
      if (from.bytes === 0) continue;
      if (from.gpu !== to.gpu) encoder.copyBufferToBuffer(from.gpu, from.offset, to.gpu, to.offset, from.bytes);
      else {
        // Two tensors packed into one slot: bounce through the scratch buffer.
        encoder.copyBufferToBuffer(from.gpu, from.offset, this.copyScratch!, 0, from.bytes);
        encoder.copyBufferToBuffer(this.copyScratch!, 0, to.gpu, to.offset, from.bytes);
      }
    }
    device.queue.submit([encoder.finish()]);
    return { wanted, stagingBytes, stagingOffset };
  }

  /**
   * Inputs taken from kept values on this device: each is copied, buffer to buffer, at the
   * start of the run's command buffer. A source that this run's uploads would overwrite first
   * (or that shares a GPU buffer with its destination) goes through a scratch buffer, copied
   * aside in a submit of its own before the uploads. Returns what encodes the copies.
   */
  private residentCopies(resident: NonNullable<RunIo["resident"]>): (encoder: GPUCommandEncoder) => void {
    const moves: { from: { gpu: GPUBuffer; offset: number; bytes: number }; to: { gpu: GPUBuffer; offset: number; bytes: number }; aside?: GPUBuffer }[] = [];
    const uploads = this.artifact.inputs.filter((i) => resident[i.name] === undefined).map((i) => this.placeOf(i.buffer));
    const overlaps = (a: { gpu: GPUBuffer; offset: number; bytes: number }, b: { gpu: GPUBuffer; offset: number; bytes: number }): boolean =>
      a.gpu === b.gpu && a.offset < b.offset + b.bytes && b.offset < a.offset + a.bytes;
    for (const [name, value] of Object.entries(resident)) {
      const io = this.artifact.inputs.find((i) => i.name === name);
      if (!io) throw new Error(`'${name}' is not an input of ${this.artifact.name}`);
      checkResident(value, io, this.device);
      const from = (value.owner as WebGpuArtifactRunner).placeOf(value.buffer);
      const to = this.placeOf(io.buffer);
      this.resident.delete(name);
      if (from.bytes === 0 || (from.gpu === to.gpu && from.offset === to.offset)) continue;
      const staged = from.gpu === to.gpu || uploads.some((u) => overlaps(u, from)) || moves.some((m) => overlaps(m.to, from));
      moves.push({
        from,
        to,
        ...(staged ? { aside: createBuffer(this.device, { size: from.bytes, usage: GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST }) } : {}),
      });
      this.counter.bytesOnDevice += from.bytes;
    }
    const aside = moves.filter((m) => m.aside);
    if (aside.length > 0) {
      const encoder = this.device.createCommandEncoder();
      for (const m of aside) encoder.copyBufferToBuffer(m.from.gpu, m.from.offset, m.aside!, 0, m.from.bytes);
      this.device.queue.submit([encoder.finish()]);
    }
    return (encoder) => {
      for (const m of moves) encoder.copyBufferToBuffer(m.aside ?? m.from.gpu, m.aside ? 0 : m.from.offset, m.to.gpu, m.to.offset, m.from.bytes);
      // Scratch buffers are destroyed when the run has finished.
      for (const m of aside) this.scratch.push(m.aside!);
    };
  }

  /**
   * Reads the device's current value of the named inputs: after a run, an input that an
   * output updates holds the new value (written in place or copied back), so this is how the
   * state (parameters, optimizer state) comes back to the host without a per-step readback.
   */
  readInputs(names: readonly string[]): Promise<Record<string, RuntimeTensor>> {
    return this.serialized(() => this.readInputsNow(names));
  }

  private async readInputsNow(names: readonly string[]): Promise<Record<string, RuntimeTensor>> {
    const ios = names.map((n) => this.artifact.inputs.find((i) => i.name === n) ?? fail(`readInputs: '${n}' is not an input of ${this.artifact.name}`));
    let bytes = 0;
    const offsets = ios.map((io) => {
      const at = bytes;
      bytes += numel(io.shape) * ELEMENT_BYTES;
      return at;
    });
    const out: Record<string, RuntimeTensor> = {};
    if (bytes === 0) {
      for (const io of ios) out[io.name] = { dtype: io.dtype, shape: [...io.shape], data: fromDeviceWords(io.dtype, new ArrayBuffer(0), 0, 0) };
      return out;
    }
    const staging = createBuffer(this.device, {
      size: bytes,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
      label: `${this.artifact.name}/read-inputs`,
    });
    let mapped: ArrayBuffer;
    try {
      const encoder = this.device.createCommandEncoder();
      ios.forEach((io, i) => {
        const p = this.placeOf(io.buffer);
        if (p.bytes > 0) encoder.copyBufferToBuffer(p.gpu, p.offset, staging, offsets[i]!, p.bytes);
      });
      this.device.queue.submit([encoder.finish()]);
      await staging.mapAsync(GPUMapMode.READ, 0, bytes);
      mapped = staging.getMappedRange(0, bytes).slice(0);
      staging.unmap();
    } finally {
      destroyBuffer(staging);
    }
    ios.forEach((io, i) => {
      out[io.name] = { dtype: io.dtype, shape: [...io.shape], data: fromDeviceWords(io.dtype, mapped, offsets[i]!, numel(io.shape)) };
    });
    return out;
  }

  /** GPU buffers this runner holds now (one per memory slot, the readback buffer once a run made it, a copy-back bounce buffer where needed). */
  get liveBuffers(): number {
    return this.slots.length + (this.staging ? 1 : 0) + (this.copyScratch ? 1 : 0);
  }

  /** Frees the device memory; the runner cannot run afterwards. */
  destroy(): void {
    for (const b of this.slots) destroyBuffer(b);
    if (this.staging) destroyBuffer(this.staging);
    this.staging = undefined;
    if (this.copyScratch) destroyBuffer(this.copyScratch);
  }
}

function toDevice(dtype: ArtifactDType, data: RuntimeData): Float32Array | Int32Array | Uint32Array {
  switch (dtype) {
    case "f32":
      return data instanceof Float32Array ? data : Float32Array.from(data);
    case "i32":
      return data instanceof Int32Array ? data : Int32Array.from(data);
    case "bool":
      return Uint32Array.from(data, (v) => (v !== 0 ? 1 : 0));
  }
}

/** Copies `into.length` elements of `dtype` stored as device words at `offset` of `memory` into `into`. */
function copyFromDevice(dtype: ArtifactDType, memory: ArrayBuffer, offset: number, into: RuntimeData): void {
  const count = into.length;
  switch (dtype) {
    case "f32":
      into.set(new Float32Array(memory, offset, count));
      return;
    case "i32":
      into.set(new Int32Array(memory, offset, count));
      return;
    case "bool": {
      const words = new Uint32Array(memory, offset, count);
      for (let i = 0; i < count; i++) into[i] = words[i] !== 0 ? 1 : 0;
      return;
    }
  }
}

function fromDeviceWords(dtype: ArtifactDType, memory: ArrayBuffer, offset: number, count: number): RuntimeData {
  switch (dtype) {
    case "f32":
      return new Float32Array(memory.slice(offset, offset + count * ELEMENT_BYTES));
    case "i32":
      return new Int32Array(memory.slice(offset, offset + count * ELEMENT_BYTES));
    case "bool":
      return Uint8Array.from(new Uint32Array(memory, offset, count), (v) => (v !== 0 ? 1 : 0));
  }
}

function fail(message: string): never {
  throw new Error(message);
}
