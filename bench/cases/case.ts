// What a benchmark case is: one workload (matmul, MLP step, softmax, elementwise chain) with
// seeded host data, the work it does per step (for GFLOP/s or GB/s), and the Kiln program.
// Peers implement the same math in bench/peers/*; every step is host data in → host data out.

import type * as k from "kiln";

export type CaseId = "matmul" | "mlp" | "softmax" | "elementwise" | "cnn" | "transformer";
export const CASE_IDS: readonly CaseId[] = ["matmul", "mlp", "softmax", "elementwise", "cnn", "transformer"];

/** Named host arrays a case feeds every runner (the same values for Kiln and each peer). */
export type CaseData = Readonly<Record<string, Float32Array | Int32Array>>;

/** The throughput a case reports: compute-bound cases in GFLOP/s, memory-bound ones in GB/s. */
export type Throughput = { readonly unit: "GFLOP/s"; readonly flopsPerStep: number } | { readonly unit: "GB/s"; readonly bytesPerStep: number };

export interface KilnProgram {
  readonly fn: (...args: never[]) => unknown;
  readonly specs: k.Specs;
  /** Called once after compile (e.g. to load the shared initial weights into state). */
  readonly setup?: (exe: k.Executable, data: CaseData) => void;
  readonly inputs: (data: CaseData) => k.RunInputs;
  /** The output compared across runners (the matmul result, the loss…), as f32. */
  readonly output: (result: unknown) => Float32Array;
}

export interface BenchCase {
  readonly id: CaseId;
  /** One line saying exactly what runs, e.g. "matmul 1024×1024×1024 f32". */
  readonly title: string;
  readonly throughput: Throughput;
  readonly makeData: () => CaseData;
  /** Builds the Kiln program fresh (a new module per compile, so state starts from `setup`). */
  readonly kiln: () => KilnProgram;
}

/** mulberry32: a small seeded PRNG so every run (and every runner) sees the same inputs. */
export function seededUniform(seed: number, count: number, low: number, high: number): Float32Array {
  let state = seed >>> 0;
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = low + (high - low) * (((t ^ (t >>> 14)) >>> 0) / 4294967296);
  }
  return out;
}

/** The single f32 output of a run (exe.run returns { shape, dtype, data } for one tensor). */
export function singleOutput(result: unknown): Float32Array {
  const data = (result as { data?: unknown }).data;
  if (!(data instanceof Float32Array)) throw new Error(`expected one f32 output, got ${typeof result}`);
  return data;
}

export function dataOf<T extends Float32Array | Int32Array>(data: CaseData, name: string, kind: new (n: number) => T): T {
  const value = data[name];
  if (!(value instanceof kind)) throw new Error(`case data '${name}' is missing or not a ${kind.name}`);
  return value;
}
export const f32Of = (data: CaseData, name: string): Float32Array => dataOf(data, name, Float32Array);
export const i32Of = (data: CaseData, name: string): Int32Array => dataOf(data, name, Int32Array);
