// The machine's peaks a profile compares kernel rates with, measured once per process and
// target (cached here): memory bandwidth from one large copy, arithmetic from a loop of
// independent multiply-adds. Host targets: a 32 MiB typed-array copy on the calling thread;
// FLOPs from a wasm SIMD loop (wasm: one thread's rate times the pool's threads, since the
// pool splits every big kernel across them) or a scalar JavaScript loop (js runs on one
// thread). WebGPU: runtime/webgpu/peaks.ts on the device. CUDA: a device copy timed by
// events (FLOP/s not measured). Peaks are for reading a profile, never for asserting.

import { assembleModule, ByteWriter, F32, I32, Op, Simd, V128 } from "../codegen/wasm/encoder.ts";
import type { CudaDevice } from "../runtime/cuda/index.ts";
import type { MachinePeaks } from "./profile.ts";

const cache = new Map<string, Promise<MachinePeaks>>();

/** `measure()` once per process for `key`. */
export function cachedPeaks(key: string, measure: () => Promise<MachinePeaks>): Promise<MachinePeaks> {
  let p = cache.get(key);
  if (!p) {
    p = measure();
    cache.set(key, p);
  }
  return p;
}

const COPY_FLOATS = 8 * 1024 * 1024;

/** The shortest of three timed calls of `run` on the host clock, ms (the caller warms it up first). */
function bestOfThreeMs(run: () => unknown): number {
  let best = Infinity;
  for (let round = 0; round < 3; round++) {
    const started = performance.now();
    run();
    best = Math.min(best, performance.now() - started);
  }
  return best;
}

/** Host memory bandwidth (read + write) from a 32 MiB copy on this thread, best of 3, GB/s. */
export function hostCopyGbps(): number {
  const a = new Float32Array(COPY_FLOATS).fill(1);
  const b = new Float32Array(COPY_FLOATS);
  b.set(a); // untimed first copy
  return (2 * a.byteLength) / bestOfThreeMs(() => b.set(a)) / 1e6;
}

/** One thread's f32 rate in a scalar JavaScript loop of 8 independent multiply-add chains, GFLOP/s. */
export function jsLoopGflops(): number {
  const iterations = 2_000_000;
  const loop = (n: number): number => {
    let a = 1;
    let b = 2;
    let c = 3;
    let d = 4;
    let e = 5;
    let f = 6;
    let g = 7;
    let h = 8;
    for (let i = 0; i < n; i++) {
      a = a * 0.9999 + 0.0001;
      b = b * 0.9999 + 0.0001;
      c = c * 0.9999 + 0.0001;
      d = d * 0.9999 + 0.0001;
      e = e * 0.9999 + 0.0001;
      f = f * 0.9999 + 0.0001;
      g = g * 0.9999 + 0.0001;
      h = h * 0.9999 + 0.0001;
    }
    return a + b + c + d + e + f + g + h;
  };
  loop(iterations / 10);
  const best = bestOfThreeMs(() => loop(iterations));
  return (iterations * 16) / best / 1e6;
}

const ACCUMULATORS = 8;

/** The wasm SIMD loop: `run(n)` does n iterations of 8 independent f32x4 multiply-add chains (64 FLOPs each). */
function simdLoopModule(): Uint8Array<ArrayBuffer> {
  const body = new ByteWriter();
  const simd = (op: number): ByteWriter => body.u8(0xfd).u32(op);
  const m = ACCUMULATORS + 1;
  const c = ACCUMULATORS + 2;
  const splat = (value: number, local: number): void => {
    body.u8(Op.f32Const).f32(value);
    simd(Simd.f32x4Splat);
    body.u8(Op.localSet).u32(local);
  };
  splat(0.9999, m);
  splat(0.0001, c);
  for (let i = 1; i <= ACCUMULATORS; i++) splat(i, i);
  body.u8(Op.block).u8(0x40).u8(Op.loop).u8(0x40);
  for (let i = 1; i <= ACCUMULATORS; i++) {
    body.u8(Op.localGet).u32(i).u8(Op.localGet).u32(m);
    simd(Simd.f32x4Mul);
    body.u8(Op.localGet).u32(c);
    simd(Simd.f32x4Add);
    body.u8(Op.localSet).u32(i);
  }
  body.u8(Op.localGet).u32(0).u8(Op.i32Const).s32(1).u8(Op.i32Sub).u8(Op.localTee).u32(0).u8(Op.brIf).u32(0);
  body.u8(Op.end).u8(Op.end);
  body.u8(Op.localGet).u32(1);
  for (let i = 2; i <= ACCUMULATORS; i++) {
    body.u8(Op.localGet).u32(i);
    simd(Simd.f32x4Add);
  }
  simd(Simd.f32x4ExtractLane).u8(0);
  return assembleModule({
    memoryPages: 1,
    maxPages: 1,
    imports: [],
    funcs: [{ type: { params: [I32], results: [F32] }, locals: new Array(ACCUMULATORS + 2).fill(V128), body, exportName: "run" }],
    globals: [],
  });
}

/** One thread's f32 rate in a wasm SIMD loop of independent multiply-adds, GFLOP/s. */
export function wasmSimdGflops(): number {
  const memory = new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true });
  const instance = new WebAssembly.Instance(new WebAssembly.Module(simdLoopModule()), { env: { memory } });
  const run = instance.exports["run"] as (n: number) => number;
  const iterations = 1_000_000;
  run(iterations / 10);
  const best = bestOfThreeMs(() => run(iterations));
  return (iterations * ACCUMULATORS * 4 * 2) / best / 1e6;
}

export function jsPeaks(): Promise<MachinePeaks> {
  return cachedPeaks("js", async () => ({
    gflops: jsLoopGflops(),
    gbps: hostCopyGbps(),
    how: "host, 1 thread: 32 MiB typed-array copy (read + write); scalar JS loop of 8 multiply-add chains",
  }));
}

export function wasmPeaks(threads: number): Promise<MachinePeaks> {
  return cachedPeaks(`wasm/${threads}`, async () => ({
    gflops: wasmSimdGflops() * threads,
    gbps: hostCopyGbps(),
    how: `host: 32 MiB typed-array copy on 1 thread (read + write); wasm SIMD loop of 8 f32x4 multiply-add chains, 1 thread's rate x ${threads} thread(s)`,
  }));
}

const CUDA_COPY_BYTES = 256 * 1024 * 1024;

/** The GPU's memory bandwidth from a 256 MiB device-to-device copy, best of 3 (FLOPs not measured on CUDA yet). */
export function cudaCopyPeaks(device: CudaDevice): MachinePeaks {
  const { addon } = device;
  const src = addon.alloc(CUDA_COPY_BYTES);
  const dst = addon.alloc(CUDA_COPY_BYTES);
  try {
    const start = addon.eventCreate();
    const end = addon.eventCreate();
    let best = Infinity;
    for (let round = 0; round < 4; round++) {
      addon.eventRecord(start);
      addon.copy(dst, src, CUDA_COPY_BYTES);
      addon.eventRecord(end);
      const ms = addon.eventElapsed(start, end);
      if (round > 0) best = Math.min(best, ms);
    }
    addon.eventDestroy(start);
    addon.eventDestroy(end);
    return {
      gbps: (2 * CUDA_COPY_BYTES) / best / 1e6,
      how: "device: 256 MiB device-to-device copy (read + write) timed by CUDA events, best of 3; FLOP/s not measured",
    };
  } finally {
    addon.free(src);
    addon.free(dst);
  }
}
