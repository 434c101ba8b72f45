// Counts what a training loop holds, from outside the runtime: every WebAssembly.Memory
// created (and its size), every GPU buffer alive on a device (createBuffer/destroy wrapped),
// the runners' own GPU buffer counter, and the JS heap after a full GC (V8's gc, exposed at
// run time). Also the training loop both measure (leakWorkload). Used by bench/leaks.ts and
// test/targets/leaks.test.ts.

import { setFlagsFromString } from "node:v8";
import * as k from "kiln";
import { runInNewContext } from "node:vm";
import { webGpuBufferCounts } from "../runtime/webgpu/run-artifact.ts";

export interface Resources {
  /** JS heap in use after a full GC. */
  readonly heapBytes: number;
  /** WebAssembly.Memory objects created since the probe was installed. */
  readonly memories: number;
  /** Their bytes now (a memory that grew shows here). */
  readonly wasmBytes: number;
  /** GPU buffers alive on the probed device, whoever created them. */
  readonly gpuLive: number;
  /** GPU buffers alive by the WebGPU runners' own count. */
  readonly runnerGpuLive: number;
}

export interface LeakProbe {
  sample(): Promise<Resources>;
  /** Puts back WebAssembly.Memory and the device's createBuffer. */
  uninstall(): void;
}

export function installLeakProbe(device: GPUDevice | undefined): LeakProbe {
  setFlagsFromString("--expose-gc");
  const gc = runInNewContext("gc") as () => void;
  const memories: WebAssembly.Memory[] = [];
  const OriginalMemory = WebAssembly.Memory;
  // A Proxy, not a subclass: the objects made are plain memories (the worker pool posts them).
  WebAssembly.Memory = new Proxy(OriginalMemory, {
    construct(target, args: [WebAssembly.MemoryDescriptor]) {
      const m = Reflect.construct(target, args) as WebAssembly.Memory;
      memories.push(m);
      return m;
    },
  });
  let gpuLive = 0;
  const create = device?.createBuffer;
  if (device && create) {
    device.createBuffer = function (this: GPUDevice, descriptor: GPUBufferDescriptor): GPUBuffer {
      const buffer = create.call(this, descriptor);
      gpuLive++;
      const destroy = buffer.destroy;
      let destroyed = false;
      buffer.destroy = function (this: GPUBuffer) {
        if (!destroyed) gpuLive--;
        destroyed = true;
        return destroy.call(this);
      };
      return buffer;
    };
  }
  return {
    async sample() {
      gc();
      await new Promise((r) => setTimeout(r, 0));
      gc();
      return {
        heapBytes: process.memoryUsage().heapUsed,
        memories: memories.length,
        wasmBytes: memories.reduce((a, m) => a + m.buffer.byteLength, 0),
        gpuLive,
        runnerGpuLive: webGpuBufferCounts().live,
      };
    },
    uninstall() {
      WebAssembly.Memory = OriginalMemory;
      if (device && create) device.createBuffer = create;
    },
  };
}

/** Steps per round of leakWorkload: 45 plain, 4 guarded (the third on a NaN batch), 1 state read. */
export const LEAK_ROUND = 50;

/**
 * A small Adam training step on `target` and `step(i)`, the i-th step of a loop that mixes
 * plain runs, skipNonFinite runs (one NaN batch per round: one skipped step) and a state read.
 */
export async function leakWorkload(target: string): Promise<{ readonly exe: k.Executable; step(i: number): Promise<void> }> {
  k.manualSeed(1);
  const model = k.nn.sequential(k.nn.linear(8, 16), k.nn.relu(), k.nn.linear(16, 4));
  const trainStep = k.trainStep(model, (o, y) => k.nn.functional.crossEntropy(o, y), k.optim.adam({ lr: 1e-3 }));
  const exe = await k.compile(trainStep, { x: k.f32([16, 8]), y: k.i32([16]) }, { target });
  const x = Float32Array.from({ length: 128 }, (_, i) => Math.sin(i));
  const bad = x.slice();
  bad[3] = Number.NaN;
  const y = Int32Array.from({ length: 16 }, (_, i) => i % 4);
  const step = async (i: number): Promise<void> => {
    const phase = i % LEAK_ROUND;
    if (phase < 45) await exe.run({ x, y });
    else if (phase < 49) await exe.run({ x: phase === 47 ? bad : x, y }, { skipNonFinite: true });
    else await exe.fetchState();
  };
  return { exe, step };
}
