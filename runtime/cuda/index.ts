// The CUDA runtime: loads the node-addon-api addon lazily (built by `npm run build:cuda`),
// turns a cuda artifact's module source into PTX (nvcc -ptx where present, else NVRTC in the
// addon), and runs the artifact: one device allocation per memory slot, kernels launched in
// order on one stream. Where the addon or the driver is missing, `openCuda` rejects with a
// message that says which and what to do; nothing else in Kiln is affected. A run is
// synchronous (upload, launches, synchronize, download), so concurrent callers cannot interleave.

import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { recordKernel, type RunProfiler } from "../artifact/profile.ts";
import type { NamedTensor } from "../artifact/safetensors.ts";
import {
  ARTIFACT_DTYPES,
  artifactArray,
  artifactArrayFrom,
  artifactDTypeBytes,
  type ArtifactArray,
  numel,
  type ArtifactDType,
  type CudaArtifact,
  type CudaLaunch,
} from "../artifact/format.ts";
import { neededWorkgroups } from "../artifact/symbolic-dispatch.ts";
import { IoCounter, inputFill, type IoCounters } from "../artifact/host-io.ts";

/** The addon's exports (runtime/cuda/addon/kiln-cuda.cc). */
export interface CudaAddon {
  init(): { name: string; major: number; minor: number };
  nvrtcCompile(source: string, fileName: string, arch: string): string;
  loadModule(ptx: string): number;
  getFunction(module: number, name: string): number;
  alloc(bytes: number): bigint;
  free(ptr: bigint): void;
  upload(ptr: bigint, data: ArrayBufferView): void;
  download(ptr: bigint, data: ArrayBufferView): void;
  copy(dst: bigint, src: bigint, bytes: number): void;
  launch(fn: number, grid: readonly number[], block: readonly number[], sharedBytes: number, args: readonly bigint[]): void;
  synchronize(): void;
  /** Events on the stream (exe.profile): a handle, record after the queued work, ms between two (waits for the second). */
  eventCreate(): number;
  eventRecord(event: number): void;
  eventElapsed(start: number, end: number): number;
  eventDestroy(event: number): void;
}

/** What the runtime runs: a cuda artifact (the compile driver with targets/cuda.ts makes them). */
export type CudaRunnableArtifact = CudaArtifact;

export interface CudaDevice {
  readonly addon: CudaAddon;
  readonly name: string;
  /** "sm_90" for compute capability 9.0. */
  readonly arch: string;
}

// A function, not a constant: nothing Node-only runs when this module is merely imported (a browser bundle).
// Two levels up is the checkout (from runtime/cuda/) or the package root (from the built dist/chunks/).
const addonPath = (): string => fileURLToPath(new URL("../../runtime/cuda/build/Release/kiln_cuda.node", import.meta.url));
let opened: CudaDevice | undefined;
const loadedModules = new Map<string, number>();

/** Loads the addon and initializes device 0; rejects with the reason CUDA cannot run here. */
export function openCuda(): CudaDevice {
  if (opened) return opened;
  const addonFile = addonPath();
  if (!existsSync(addonFile)) throw new Error(`the CUDA addon is not built (run 'npm run build:cuda'; expected ${addonFile})`);
  let addon: CudaAddon;
  try {
    addon = createRequire(import.meta.url)(addonFile) as CudaAddon;
  } catch (e) {
    throw new Error(`the CUDA addon does not load (${(e as Error).message}); rebuild it with 'npm run build:cuda'`);
  }
  const info = addon.init(); // throws "no CUDA driver (libcuda.so.1 not found: …)" without a driver
  opened = { addon, name: info.name, arch: `sm_${info.major}${info.minor}` };
  return opened;
}

/** Whether CUDA can run here (addon built, driver and a device present). Never throws. */
export function cudaAvailable(): boolean {
  return cudaUnavailableReason() === undefined;
}

export function cudaUnavailableReason(): string | undefined {
  try {
    openCuda();
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
}

function findNvcc(): string | undefined {
  for (const c of [process.env["NVCC"], "/usr/local/cuda/bin/nvcc", "/usr/local/bin/nvcc"]) if (c && existsSync(c)) return c;
  const r = spawnSync("sh", ["-c", "command -v nvcc"], { encoding: "utf8" });
  return r.status === 0 && r.stdout.trim() ? r.stdout.trim() : undefined;
}

/** CUDA C → PTX for `arch`: nvcc when present (the same compiler CI checks with), else NVRTC. */
export function compileToPtx(device: CudaDevice, source: string, name: string): string {
  const nvcc = findNvcc();
  if (!nvcc) return device.addon.nvrtcCompile(source, `${name}.cu`, device.arch);
  const dir = mkdtempSync(join(tmpdir(), "kiln-cuda-"));
  try {
    writeFileSync(join(dir, "kernels.cu"), source);
    const ptxFor = (arch: string) => spawnSync(nvcc, ["-ptx", `-arch=${arch}`, "kernels.cu", "-o", "kernels.ptx"], { cwd: dir, encoding: "utf8" });
    let r = ptxFor(device.arch);
    // A GPU newer than this nvcc: sm_80 PTX, which the driver JIT-compiles for any later GPU.
    if (r.status !== 0 && /arch|architecture/i.test(r.stderr)) r = ptxFor("sm_80");
    if (r.status !== 0) throw new Error(`nvcc -ptx failed for ${name}:\n${r.stderr}`);
    return readFileSync(join(dir, "kernels.ptx"), "utf8");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A tensor the CUDA runner takes and returns: the same shape as every runtime's (safetensors.ts's NamedTensor). */
export type CudaTensor = NamedTensor;

function storageOf(dtype: ArtifactDType, data: ArrayLike<number>): ArtifactArray {
  const Storage = ARTIFACT_DTYPES[dtype].array;
  return data instanceof Storage ? data : artifactArrayFrom(dtype, data);
}

/**
 * Device buffers several runners share, one per state entry (k.compileModel's programs): each
 * runner binds its state inputs' slots to them, so the state stays on the device across
 * programs and no run copies it.
 */
export interface CudaSharedState {
  /** The state entries' names. */
  readonly names: ReadonlySet<string>;
  /** The device buffer of each entry (allocated by the first runner that binds it) and its bytes. */
  readonly buffers: Map<string, { readonly ptr: bigint; readonly bytes: number }>;
  /** Per entry: the host array whose values its buffer holds (not uploaded again), for every runner binding it. */
  readonly resident: Map<string, ArrayLike<number>>;
}

const deviceBytes = (bytes: number): number => Math.max(4, Math.ceil(bytes / 4) * 4);

/**
 * Runs one cuda artifact on the device: memory stays allocated between runs. Inputs named in
 * `stateInputs` stay resident: an array passed again (or the one returned for its update, or
 * passed in a run whose update was not read back) is not uploaded again, and updates that the
 * plan could not make in place are copied back on the device (memory.copies), so a training
 * loop uploads only its batch. With a CudaSharedState, the state inputs are its buffers.
 */
export class CudaArtifactRunner {
  private readonly slots: bigint[];
  /** Slots that are shared state buffers (not freed with this runner). */
  private readonly borrowed = new Set<number>();
  private readonly functions: number[];
  /** kernels + 1 events, made by the first profiled run (none otherwise). */
  private events: number[] | undefined;
  private readonly counter = new IoCounter();
  /** Per state input: the host array whose values its slot holds; the shared state's map when bound to one. */
  private readonly resident: Map<string, ArrayLike<number>>;
  /** Inputs that are state (their uploads stand until another array is passed). */
  stateInputs: ReadonlySet<string> | undefined;
  /** Whether every state input is bound to the shared state's buffers. */
  readonly sharesState: boolean;

  constructor(
    readonly device: CudaDevice,
    readonly artifact: CudaRunnableArtifact,
    ptx = compileToPtx(device, artifact.cudaSource, artifact.name),
    shared?: CudaSharedState,
  ) {
    if (artifact.target !== "cuda") throw new Error(`artifact ${artifact.name}: built for target '${artifact.target}', not 'cuda'`);
    // Runners of one PTX share its module: the driver JIT-compiles PTX once per load.
    let module = loadedModules.get(ptx);
    if (module === undefined) loadedModules.set(ptx, (module = device.addon.loadModule(ptx)));
    this.functions = artifact.kernels.map((k) => device.addon.getFunction(module, k.name));
    // A state input's slot is its own (the memory plan gives every input one; its in-place update shares it).
    const stateSlot = new Map<number, string>();
    if (shared) for (const io of artifact.inputs) if (shared.names.has(io.name)) stateSlot.set(artifact.buffers[io.buffer]!.slot, io.name);
    this.slots = artifact.memory.slotBytes.map((bytes, slot) => {
      const name = stateSlot.get(slot);
      if (name === undefined || !shared) return device.addon.alloc(deviceBytes(bytes));
      let buffer = shared.buffers.get(name);
      if (!buffer) shared.buffers.set(name, (buffer = { ptr: device.addon.alloc(deviceBytes(bytes)), bytes }));
      if (buffer.bytes !== bytes) throw new Error(`artifact ${artifact.name}: shared state '${name}' needs ${bytes} bytes, its buffer has ${buffer.bytes}`);
      this.borrowed.add(slot);
      return buffer.ptr;
    });
    this.sharesState = shared !== undefined;
    this.resident = shared?.resident ?? new Map();
    if (shared) this.stateInputs = shared.names;
  }

  /** What the last run copied between the host and the device, and inside the device. */
  get io(): IoCounters {
    return this.counter.snapshot();
  }

  /**
   * Uploads the inputs, launches every kernel, downloads the outputs. With `profile`: the
   * uploads are awaited and host-timed, each kernel is timed by CUDA events recorded around it
   * on the stream (kernel i between events i and i+1), the downloads host-timed.
   */
  run(
    inputs: Readonly<Record<string, CudaTensor>>,
    opts: { readonly profile?: RunProfiler; readonly readback?: readonly string[] } = {},
  ): Record<string, CudaTensor> {
    this.counter.reset();
    try {
      return this.runNow(inputs, opts);
    } catch (e) {
      this.resident.clear();
      throw e;
    }
  }

  private runNow(
    inputs: Readonly<Record<string, CudaTensor>>,
    opts: { readonly profile?: RunProfiler; readonly readback?: readonly string[] },
  ): Record<string, CudaTensor> {
    const { addon } = this.device;
    const a = this.artifact;
    const profile = opts.profile;
    const t0 = profile ? performance.now() : 0;
    for (const io of a.inputs) {
      const t = inputs[io.name];
      if (!t) throw new Error(`missing input '${io.name}'`);
      inputFill(io, t); // all of it, or a symbolic batch's run rows (uploaded into the leading rows)
      if (this.resident.get(io.name) === t.data) continue;
      if (this.stateInputs?.has(io.name)) this.resident.set(io.name, t.data);
      else this.resident.delete(io.name);
      const data = storageOf(io.dtype, t.data);
      addon.upload(this.slots[a.buffers[io.buffer]!.slot]!, data);
      this.counter.bytesIn += data.byteLength;
    }
    // A symbolic batch: launches that follow it get only the blocks of the run's rows.
    const sizeOf = (id: number): number | undefined => {
      const io = a.inputs.find((i) => i.buffer === id);
      return io ? Number(inputs[io.name]!.data[0]) : undefined;
    };
    const gridOf = (launch: CudaLaunch): readonly number[] => {
      const n = launch.symbolic ? sizeOf(launch.symbolic.size) : undefined;
      if (!launch.symbolic || n === undefined) return launch.grid;
      return [Math.max(1, Math.min(launch.grid[0], neededWorkgroups(launch.symbolic, n))), 1, 1];
    };
    let events: readonly number[] = [];
    if (profile) {
      addon.synchronize();
      profile.inputMs += performance.now() - t0;
      profile.clock = "cuda-events";
      events = this.events ??= a.kernels.map(() => addon.eventCreate()).concat(addon.eventCreate());
      addon.eventRecord(events[0]!);
    }
    a.kernels.forEach((k, i) => {
      const args = k.params.map((id) => this.slots[a.buffers[id]!.slot]!);
      addon.launch(this.functions[i]!, gridOf(k.launch), k.launch.block, k.launch.sharedBytes, args);
      if (profile) addon.eventRecord(events[i + 1]!);
    });
    if (profile) a.kernels.forEach((_, i) => recordKernel(profile, i, addon.eventElapsed(events[i]!, events[i + 1]!)));
    const t2 = profile ? performance.now() : 0;
    const out: Record<string, CudaTensor> = {};
    for (const io of a.outputs) {
      if (opts.readback !== undefined && !opts.readback.includes(io.name)) continue;
      const b = a.buffers[io.buffer]!;
      // An output that is an input passes the caller's data through (its slot may hold an in-place update by now).
      const passThrough = b.kind === "input" ? a.inputs.find((i) => i.buffer === io.buffer) : undefined;
      if (passThrough) {
        out[io.name] = { dtype: io.dtype, shape: [...io.shape], data: storageOf(io.dtype, inputs[passThrough.name]!.data).slice() };
        continue;
      }
      const data = artifactArray(io.dtype, numel(io.shape));
      if (data.byteLength !== numel(b.shape) * artifactDTypeBytes(b.dtype)) throw new Error(`artifact ${a.name}: output ${io.name} does not match its buffer`);
      addon.download(this.slots[b.slot]!, data);
      this.counter.bytesOut += data.byteLength;
      out[io.name] = { dtype: io.dtype, shape: [...io.shape], data };
    }
    // State updates the plan could not make in place go back to their inputs' slots (after the reads above, which take them from their own).
    for (const c of a.memory.copies) {
      const from = a.buffers[c.output]!;
      const bytes = numel(from.shape) * artifactDTypeBytes(from.dtype);
      addon.copy(this.slots[a.buffers[c.input]!.slot]!, this.slots[from.slot]!, bytes);
      this.counter.bytesOnDevice += bytes;
    }
    // The device now holds each state update in its input's slot: the array standing for it next
    // run is the one returned for the update or, when that was not read back, the one passed in.
    for (const o of a.outputs) {
      if (o.aliases === undefined) continue;
      const stand = out[o.name]?.data ?? inputs[o.aliases]?.data;
      if (stand && a.buffers[o.buffer]!.kind !== "input") this.resident.set(o.aliases, stand);
      else this.resident.delete(o.aliases);
    }
    // Waiting for the kernels (before t2) is neither input nor readback: the profile's "other".
    if (profile) profile.readbackMs += performance.now() - t2;
    return out;
  }

  /** The device's current value of the named inputs (the state after in-place updates and copy-backs). */
  readInputs(names: readonly string[]): Record<string, CudaTensor> {
    const out: Record<string, CudaTensor> = {};
    for (const name of names) {
      const io = this.artifact.inputs.find((i) => i.name === name);
      if (!io) throw new Error(`'${name}' is not an input of ${this.artifact.name}`);
      const data = artifactArray(io.dtype, numel(io.shape));
      this.device.addon.download(this.slots[this.artifact.buffers[io.buffer]!.slot]!, data);
      this.counter.bytesOut += data.byteLength;
      out[name] = { dtype: io.dtype, shape: [...io.shape], data };
    }
    return out;
  }

  /** Time of `iterations` runs of the kernels alone (inputs already on the device), in ms each. */
  timeKernels(iterations: number): number {
    const { addon } = this.device;
    const a = this.artifact;
    const launchAll = (): void =>
      a.kernels.forEach((k, i) =>
        addon.launch(
          this.functions[i]!,
          k.launch.grid,
          k.launch.block,
          k.launch.sharedBytes,
          k.params.map((id) => this.slots[a.buffers[id]!.slot]!),
        ),
      );
    launchAll();
    addon.synchronize();
    const started = performance.now();
    for (let i = 0; i < iterations; i++) launchAll();
    addon.synchronize();
    return (performance.now() - started) / iterations;
  }

  dispose(): void {
    this.slots.forEach((s, slot) => {
      if (!this.borrowed.has(slot)) this.device.addon.free(s);
    });
    this.slots.length = 0;
    for (const e of this.events ?? []) this.device.addon.eventDestroy(e);
    this.events = undefined;
  }
}
