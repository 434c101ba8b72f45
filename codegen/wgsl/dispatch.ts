// What every WGSL shader form (plain sections, row kernels, tiled matmuls) shares about one
// dispatch: its storage bindings (one per GPU buffer; a pack read through u32 words with
// bitcasts), the rendered result, and folding a workgroup count over x, y, z. Kept apart from
// render-wgsl.ts so the forms import it without a cycle.

import { DTYPE_TABLE, halfOf, isBool, type DType } from "../../compiler/ir/dtype.ts";
import { OPAQUE_ZERO, wgslLoadHalf, wgslStoreHalf } from "./dialect.ts";
import { bug, KilnError } from "../../compiler/util/errors.ts";
import type { BufferDecl, Section } from "../../compiler/kernel/kernel-ir.ts";
import { symbolicBound } from "../../compiler/kernel/symbolic-bound.ts";
import type { SymbolicDispatch } from "../../runtime/artifact/format.ts";
import type { BufferAccess } from "../render/base.ts";
import type { VectorAccess } from "./vector.ts";
import { DEVICE_ELEMENT_BYTES, type BufferPlace, type Dispatch, type WebGpuLimits } from "./layout.ts";

type StorageElement = "f32" | "i32" | "u32";
const storageElement = (t: DType): StorageElement => DTYPE_TABLE[t].wgsl.storage;
const STORAGE_ZERO: Readonly<Record<StorageElement, string>> = { u32: "0u", i32: "0i", f32: "0.0f" };

export const WORKGROUP_SIZE = 64;

/**
 * How a dispatch of loop-free sections (elementwise: no reduction, no serial loop) spreads its
 * threads: `threads` invocations per workgroup, each taking `perThread` of the flat thread
 * indices, one workgroup's size apart (so a workgroup covers threads·perThread consecutive
 * ones and neighbouring invocations still touch neighbouring memory). The most a dispatch
 * uses: render takes less where the dispatch would get under ELEMENTWISE_MIN_WORKGROUPS.
 */
export interface ElementwiseShape {
  readonly threads: number;
  readonly perThread: number;
}

/** One index per invocation, WORKGROUP_SIZE a workgroup: every dispatch's shape before issue 15, a hardware GPU's default. */
export const PLAIN_SHAPE: ElementwiseShape = { threads: WORKGROUP_SIZE, perThread: 1 };

/** A shape is cut down (perThread, then threads) until its dispatch has at least this many workgroups, so every core of a CPU adapter has work. */
export const ELEMENTWISE_MIN_WORKGROUPS = 64;

/** The shape a dispatch of `count` thread indices renders with: `most`, or less where that leaves it too few workgroups. */
export function elementwiseShapeFor(count: number, most: ElementwiseShape): ElementwiseShape {
  let { threads, perThread } = most;
  const groups = (): number => Math.ceil(count / (threads * perThread));
  while (perThread > 1 && groups() < ELEMENTWISE_MIN_WORKGROUPS) perThread >>= 1;
  while (threads > WORKGROUP_SIZE && groups() < ELEMENTWISE_MIN_WORKGROUPS) threads >>= 1;
  return { threads, perThread };
}

export interface RenderedDispatch {
  readonly name: string;
  readonly source: string;
  /** GPU buffer bound at @binding(i). */
  readonly bindings: readonly number[];
  /** Workgroup counts (x, y, z); all zero when there is nothing to compute. */
  readonly workgroups: readonly [number, number, number];
  /** Under a symbolic batch, when every section's threads lead with it (the runner shrinks the dispatch). */
  readonly symbolic?: SymbolicDispatch;
}

/**
 * The dispatch's SymbolicDispatch when every section (each `[section, threads]`, threads
 * flattened with the outermost variable slowest) has a shrinkable outer variable among its
 * parallel ones (compiler/kernel/symbolic-bound.ts); undefined otherwise.
 */
export function symbolicDispatch(
  sections: readonly (readonly [Section, number, number])[],
  buffers: readonly BufferDecl[] | undefined,
  perWorkgroup: number,
): SymbolicDispatch | undefined {
  if (!buffers || sections.length === 0) return undefined;
  const rows: [number, number][] = [];
  let size: BufferDecl | undefined;
  for (const [s, depth, threads] of sections) {
    const b = symbolicBound(s, buffers);
    if (!b || depth < 1) return undefined;
    size = b.size;
    rows.push([b.extent, threads / b.extent]);
  }
  return { size: size!.id, max: size!.dimMax!, sections: rows, perWorkgroup };
}

/**
 * When a register matmul reads both operands as vec4s along k (MatmulVectors' kLhs/kRhs):
 * "auto" from K_VECTORS_MIN_K, "always" wherever they are contiguous along k, "never".
 */
export type KVectorMode = "auto" | "always" | "never";

export interface DispatchContext {
  readonly dtypeOf: (buffer: number) => DType;
  readonly nameOf: (buffer: number) => string;
  readonly place: readonly BufferPlace[];
  readonly packs: ReadonlySet<number>;
  readonly limits: WebGpuLimits;
  /** The program's buffers (a symbolic batch's size buffer and the buffers' symbolic axes). */
  readonly buffers?: readonly BufferDecl[];
  /** Bytes of each GPU buffer (vector bindings need a whole number of vec4s). */
  readonly gpuBufferBytes?: readonly number[];
  /**
   * Keep constant-trip loops rolled (dialect.ts's OPAQUE_ZERO): for a CPU adapter, whose JIT
   * time grows with every unrolled copy; a hardware GPU's compiler unrolls them cheaply and
   * keeps a matmul's accumulators in registers that way.
   */
  readonly rolledLoops?: boolean;
  /**
   * Register matmuls whose operands are both contiguous along k (a linear's x·Wᵀ) read them as
   * vec4s along k (matmul.ts's MatmulVectors, KVectorMode; absent: never): "auto" for a CPU adapter, where lavapipe then runs the
   * transformer's 1024x1024 x 1024x256ᵀ forward in 289 ms against 657 ms one k at a time.
   */
  readonly kVectors?: KVectorMode;
  /** The device has `shader-f16`: a GPU buffer holding only f16 tensors binds as array<f16> (`enable f16;`). */
  readonly shaderF16?: boolean;
  /**
   * Sections storing packed 16-bit tensors contiguously take two outputs a thread and store
   * whole words (codegen/wgsl/pair.ts); absent or false: every 16-bit store atomic on its half.
   */
  readonly pairHalves?: boolean;
  /** The most an elementwise dispatch's workgroups take (ElementwiseShape); absent: PLAIN_SHAPE. */
  readonly elementwiseShape?: ElementwiseShape;
  /** The device's one subgroup size, where it has the `subgroups` feature and a fixed size: what `form matmul subgroup` renders for. */
  readonly subgroupSize?: number;
}

export interface DispatchBindings {
  readonly gpuBuffers: readonly number[];
  readonly decls: readonly string[];
  readonly access: BufferAccess;
}

/** Whole-word stores of a packed 16-bit tensor (codegen/wgsl/pair.ts). */
export interface PairAccess extends VectorAccess {
  /**
   * Stores `word` (two 16-bit patterns, the low one element `index`'s, an even index) as
   * element index's word; `lone`: only its low half, the high half left as it is.
   */
  storeWord(buffer: number, index: string, word: string, lone: boolean): string;
}

/**
 * The GPU buffers bound as array<f16> (with ctx.shaderF16): no pack, only f16 tensors in the
 * dispatch. Every other 16-bit tensor goes through u32 words.
 */
export function f16Bindings(d: Dispatch, ctx: DispatchContext): ReadonlySet<number> {
  const f16Gpu = new Set<number>();
  if (ctx.shaderF16 !== true) return f16Gpu;
  for (const g of new Set(d.buffers.map((b) => ctx.place[b]!.gpuBuffer)))
    if (!ctx.packs.has(g) && d.buffers.every((b) => ctx.place[b]!.gpuBuffer !== g || ctx.dtypeOf(b) === "f16")) f16Gpu.add(g);
  return f16Gpu;
}

/**
 * Whether `buffers` can be bound as array<vec4<f32>>: each alone in an f32 GPU buffer (not a
 * pack, no other element type in this dispatch) of a whole number of vec4s, at a 16-byte offset.
 */
export function vectorBindable(d: Dispatch, ctx: DispatchContext, buffers: Iterable<number>): boolean {
  for (const b of buffers) {
    const p = ctx.place[b]!;
    if (ctx.packs.has(p.gpuBuffer) || p.offsetBytes % 16 !== 0) return false;
    if ((ctx.gpuBufferBytes?.[p.gpuBuffer] ?? 1) % 16 !== 0) return false;
    if (d.buffers.some((o) => ctx.place[o]!.gpuBuffer === p.gpuBuffer && storageElement(ctx.dtypeOf(o)) !== "f32")) return false;
  }
  return true;
}

/**
 * One storage binding per GPU buffer the dispatch touches: a typed array unless it is a pack
 * or mixes element types; `vectorGpu` (GPU buffers vectorBindable admitted) are array<vec4<f32>>,
 * read and written element-wise through `[i >> 2][i & 3]` and as vectors through access.loadVector.
 *
 * f16/bf16 tensors are packed two to a u32 word: element i is the low (even i) or high (odd i)
 * half of word i >> 1. Where one thread stores both halves of each word it writes (`paired`:
 * the tensors pair.ts's pairPlan admitted, whose stores go through access.storeWord), the word
 * is stored whole with a plain store. Elsewhere two threads storing the two halves of one word
 * would race on a plain read-modify-write, so a GPU buffer that a dispatch stores an unpaired
 * 16-bit tensor into is bound as array<atomic<u32>>: a 16-bit store clears its half with
 * atomicAnd and sets it with atomicOr (the two halves' operations touch disjoint bits, so any
 * interleaving leaves both values), and every other access to that buffer in the dispatch is
 * an atomicLoad or atomicStore (a paired word's too). `exclusive` tensors (a thread storing
 * whole rows whose words no other thread touches: pair.ts's exclusiveStores) store each half by
 * a plain read-modify-write of its word. With no other 16-bit store left, the binding is a
 * plain array<u32> and its loads plain.
 * With `ctx.shaderF16`, a GPU buffer that is no pack and holds only f16 tensors in the dispatch
 * binds as array<f16> instead (2-byte stores, no atomics; the same bytes): values still go
 * through kiln_h2f/kiln_f2h on their bit patterns (bitcasts), so results stay bit-exact.
 */
export function dispatchBindings(
  d: Dispatch,
  ctx: DispatchContext,
  vectorGpu: ReadonlySet<number> = new Set(),
  paired: ReadonlySet<number> = new Set(),
  exclusive: ReadonlySet<number> = new Set(),
): DispatchBindings & { readonly access: PairAccess } {
  const written = new Set(d.sections.flatMap((s) => s.stores.map((st) => st.buffer)));
  const gpuBuffers = [...new Set(d.buffers.map((b) => ctx.place[b]!.gpuBuffer))].sort((a, b) => a - b);
  const elementOfGpu = new Map<number, StorageElement>();
  const f16Gpu = f16Bindings(d, ctx);
  for (const g of gpuBuffers) {
    const held = d.buffers.filter((b) => ctx.place[b]!.gpuBuffer === g);
    const elems = new Set(held.map((b) => storageElement(ctx.dtypeOf(b))));
    elementOfGpu.set(g, ctx.packs.has(g) || elems.size !== 1 ? "u32" : [...elems][0]!);
  }
  const writable = new Set([...written].map((b) => ctx.place[b]!.gpuBuffer));
  const atomicGpu = new Set(
    [...written]
      .filter((b) => halfOf(ctx.dtypeOf(b)) !== undefined && !f16Gpu.has(ctx.place[b]!.gpuBuffer) && !paired.has(b) && !exclusive.has(b))
      .map((b) => ctx.place[b]!.gpuBuffer),
  );
  const arrayElement = (g: number): string =>
    vectorGpu.has(g) ? "vec4<f32>" : f16Gpu.has(g) ? "f16" : atomicGpu.has(g) ? "atomic<u32>" : elementOfGpu.get(g)!;
  const decls = gpuBuffers.map(
    (g, i) =>
      `@group(0) @binding(${i}) var<storage, ${writable.has(g) ? "read_write" : "read"}> g${g}: array<${arrayElement(g)}>; // ${d.buffers
        .filter((b) => ctx.place[b]!.gpuBuffer === g)
        .map(ctx.nameOf)
        .join(", ")}`,
  );
  const element = (buffer: number, index: string): { ref: string; elem: StorageElement; atomic: boolean } => {
    const p = ctx.place[buffer]!;
    const word = p.offsetBytes / DEVICE_ELEMENT_BYTES;
    const at = word === 0 ? index : `${word} + ${index}`;
    const ref = vectorGpu.has(p.gpuBuffer) ? `g${p.gpuBuffer}[(${at}) >> 2u][(${at}) & 3]` : `g${p.gpuBuffer}[${at}]`;
    return { ref, elem: elementOfGpu.get(p.gpuBuffer)!, atomic: atomicGpu.has(p.gpuBuffer) };
  };
  // A 16-bit element's word and the shift of its half (0 or 16).
  const halfWord = (buffer: number, index: string): { ref: string; shift: string; atomic: boolean } => {
    const { ref, atomic } = element(buffer, `(u32(${index}) >> 1u)`);
    return { ref, shift: `((u32(${index}) & 1u) << 4u)`, atomic };
  };
  const vector = (buffer: number, index: string): string => {
    const p = ctx.place[buffer]!;
    if (!vectorGpu.has(p.gpuBuffer)) bug(`wgsl ${d.name}: a vector access to b${buffer}, whose binding is not vec4`);
    const quad = p.offsetBytes / 16;
    return `g${p.gpuBuffer}[${quad === 0 ? "" : `${quad} + `}((${index}) >> 2u)]`;
  };
  const access: PairAccess = {
    loadVector: (buffer, index) => vector(buffer, index),
    storeVector: (buffer, index, value) => `${vector(buffer, index)} = ${value};`,
    load(buffer, index, t) {
      if (f16Gpu.has(ctx.place[buffer]!.gpuBuffer)) return wgslLoadHalf(`(bitcast<u32>(vec2<f16>(${element(buffer, index).ref}, 0.0h)) & 0xffffu)`, t);
      if (halfOf(t) !== undefined) {
        const { ref, shift, atomic } = halfWord(buffer, index);
        return wgslLoadHalf(`((${atomic ? `atomicLoad(&${ref})` : ref} >> ${shift}) & 0xffffu)`, t);
      }
      const { ref: plain, elem, atomic } = element(buffer, index);
      const ref = atomic ? `atomicLoad(&${plain})` : plain;
      if (isBool(t)) return `(${ref} != ${STORAGE_ZERO[elem]})`;
      return elem === t ? ref : `bitcast<${t}>(${ref})`;
    },
    store(buffer, index, value, t) {
      if (f16Gpu.has(ctx.place[buffer]!.gpuBuffer)) return `${element(buffer, index).ref} = bitcast<vec2<f16>>(${wgslStoreHalf(value, t)}).x;`;
      if (halfOf(t) !== undefined) {
        const { ref, shift, atomic } = halfWord(buffer, index);
        // A thread-exclusive word (pair.ts's exclusiveStores): a plain read-modify-write.
        if (!atomic && exclusive.has(buffer))
          return `{ let kiln_sh = ${shift}; ${ref} = (${ref} & ~(0xffffu << kiln_sh)) | (${wgslStoreHalf(value, t)} << kiln_sh); }`;
        if (!atomic) bug(`wgsl ${d.name}: a 16-bit store into b${buffer} through a plain binding (a paired tensor's stores are whole words)`);
        return `{ let kiln_sh = ${shift}; atomicAnd(&${ref}, ~(0xffffu << kiln_sh)); atomicOr(&${ref}, ${wgslStoreHalf(value, t)} << kiln_sh); }`;
      }
      const { ref, elem, atomic } = element(buffer, index);
      const bits = isBool(t) ? `select(0u, 1u, ${value})` : elem === t ? value : `bitcast<${elem}>(${value})`;
      return atomic ? `atomicStore(&${ref}, ${isBool(t) || elem === "u32" ? bits : `bitcast<u32>(${bits})`});` : `${ref} = ${bits};`;
    },
    storeWord(buffer, index, word, lone) {
      if (!paired.has(buffer)) bug(`wgsl ${d.name}: a whole-word store into b${buffer}, which is not paired`);
      const { ref, atomic } = halfWord(buffer, index);
      if (!lone) return atomic ? `atomicStore(&${ref}, ${word});` : `${ref} = ${word};`;
      return atomic ? `atomicAnd(&${ref}, 0xffff0000u); atomicOr(&${ref}, ${word});` : `${ref} = (${ref} & 0xffff0000u) | ${word};`;
    },
  };
  return { gpuBuffers, decls, access };
}

/**
 * The line declaring the opaque zero (dialect.ts's OPAQUE_ZERO) at the top of `main`, when
 * `body` uses it: 0 because a bound buffer has at least one element (a binding is never
 * empty), which the driver's compiler cannot know. Its first GPU buffer's length stands in.
 */
export function opaqueZero(body: string, gpuBuffers: readonly number[]): string[] {
  if (!body.includes(OPAQUE_ZERO)) return [];
  const first = gpuBuffers[0];
  return [`  let ${OPAQUE_ZERO}: i32 = ${first === undefined ? "0" : `i32(arrayLength(&g${first}) == 0u)`};`];
}

/** Spreads `count` workgroups over x, y, z so that none exceeds `maxPerDimension`. */
export function foldWorkgroups(count: number, kernel: string, maxPerDimension: number): [number, number, number] {
  if (count === 0) return [0, 0, 0];
  const x = Math.min(count, maxPerDimension);
  const y = Math.min(Math.ceil(count / x), maxPerDimension);
  const z = Math.ceil(count / (x * y));
  if (z > maxPerDimension)
    throw new KilnError({
      code: "unsupported",
      message: `kernel ${kernel} needs ${count} workgroups, more than ${maxPerDimension}³ (maxComputeWorkgroupsPerDimension)`,
    });
  return [x, y, z];
}
