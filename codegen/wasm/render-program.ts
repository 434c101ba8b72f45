// Kernel program → the "wasm" artifact's kernels: one WebAssembly module per kernel (base64
// in the kernel's `source`), each exporting a function per section, `s<j>(lo, hi, tid)`, and
// globals `x<j>` (iterations of the loop threads split), `w<j>` (rough work) and, under a
// symbolic batch, `z` (the size buffer's address) and `m<j>` (the maximum, on sections whose
// split loop follows the batch), and `g<j>` (4, on sections whose split loop is itself a
// vector loop: threads' chunks start at multiples of it). Buffer
// addresses follow the driver's memory plan laid out by runtime/artifact/wasm-layout.ts.

import type { BufferDecl, Kernel, KernelProgram, Section } from "../../compiler/kernel/kernel-ir.ts";
import { rowBounds, sizeBuffer } from "../../compiler/kernel/symbolic-bound.ts";
import type { ArtifactKernel } from "../../runtime/artifact/format.ts";
import { bug, KilnError } from "../../compiler/util/errors.ts";
import { artifactLayout, layoutMemory, pinnedSlots, type WasmStateRegion } from "../../runtime/artifact/wasm-layout.ts";
import { assembleModule, ByteWriter, Op, type DefinedFunc, type ExportedGlobal } from "./encoder.ts";
import { sectionSourceNote } from "../../compiler/kernel/print.ts";
import { sectionShape, type SectionShape } from "../../compiler/kernel/section-key.ts";
import type { BufferPlace, Relocation } from "./func-builder.ts";
import { emitSection, type RowLimits, type SectionFunc, type SectionOptions } from "./emit-section.ts";
import { FIRST_SECTION_FUNC, HELPER_COUNT, HELPER_FUNCS, HOST_IMPORTS, helperFunc, helperType } from "./module-helpers.ts";

export interface WasmBuildOptions extends SectionOptions {
  /**
   * The model's state region (k.compileModel's programs share one memory): the state inputs
   * at its addresses, the other slots after it, and the imported memory's maximum the whole
   * wasm32 range (the model's memory grows to its largest program).
   */
  readonly stateRegion?: WasmStateRegion;
}

/** 64 KiB pages in a wasm32 memory's 4 GiB. */
const WASM32_MAX_PAGES = 65536;

/**
 * Renders every kernel as a wasm module whose addresses follow the memory plan's slots
 * (wasm-layout.ts); with a state region, also the slots' addresses (the artifact records them).
 * `shareSections` (default true) renders each distinct section once (SectionCache); false
 * renders every one afresh, which gives the same bytes (a test compares them).
 */
export function renderWasmProgram(
  program: KernelProgram,
  memory: { readonly slotOf: readonly number[]; readonly slotBytes: readonly number[] },
  opts: WasmBuildOptions = {},
  shareSections = true,
  sink?: RenderSink,
): { readonly kernels: ArtifactKernel[]; readonly slotOffsets?: readonly number[] } {
  const region = opts.stateRegion;
  const pinned = region
    ? pinnedSlots(
        region,
        program.inputs.map((io) => ({ name: io.name, slot: memory.slotOf[io.buffer]!, bytes: memory.slotBytes[memory.slotOf[io.buffer]!]! })),
        `wasm target: ${program.name}`,
      )
    : undefined;
  const planned = layoutMemory(memory.slotBytes, pinned);
  // The runtime sizes memory from the recorded addresses: the kernels ask for the same pages.
  const layout = pinned ? artifactLayout({ slotBytes: memory.slotBytes, slotOffsets: planned.slotOffsets }) : planned;
  if (layout.pages > WASM32_MAX_PAGES)
    throw new KilnError({
      code: "unsupported",
      message: `wasm target: ${program.name} needs ${(layout.totalBytes / 2 ** 30).toFixed(2)} GiB of memory, more than the 4 GiB a wasm32 memory holds (try a smaller batch, or the js target)`,
    });
  // The kernels' own memory (not a model's: that one is the model's runner's) is known now;
  // under a symbolic batch it is sized for the largest batch, which no run may touch whole.
  if (!region && !sizeBuffer(program.buffers)) sink?.memory?.(layout.pages, layout.totalBytes);
  const places = program.buffers.map((b): BufferPlace => ({ id: b.id, base: layout.slotOffsets[memory.slotOf[b.id]!] ?? 0, dtype: b.dtype }));
  const place = (id: number): BufferPlace => places[id]!;
  const shared = shareSections ? new SectionCache() : undefined;
  let portableShared: SectionCache | undefined;
  const kernels = program.kernels.map((k) => {
    const maxPages = region ? WASM32_MAX_PAGES : layout.pages;
    const bytes = buildKernelModule(k, place, layout.pages, opts, program.buffers, maxPages, shared);
    const kernel: ArtifactKernel = { name: k.name, source: encodeBase64(bytes), params: [], reads: k.reads, writes: k.writes };
    sink?.module?.(kernel.source, bytes);
    if (!opts.fma) return kernel;
    // Relaxed SIMD in it? Then also the portable module, for engines without relaxed SIMD —
    // built when first read (saving the artifact, or a runtime that cannot validate the relaxed
    // one), not at every compile: it doubled the render of an engine that never needs it.
    let portable: string | null | undefined;
    const portableSource = (): string | undefined => {
      if (portable === undefined) {
        if (shareSections) portableShared ??= new SectionCache();
        const built = buildKernelModule(k, place, layout.pages, { ...opts, fma: false }, program.buffers, maxPages, portableShared);
        portable = sameBytes(bytes, built) ? null : encodeBase64(built);
      }
      return portable ?? undefined;
    };
    return Object.defineProperty(kernel, "portableSource", { get: portableSource, enumerable: true });
  });
  return region ? { kernels, slotOffsets: layout.slotOffsets } : { kernels };
}

/**
 * Where renderWasmProgram hands what it builds as it builds it (k.compile's executor starts
 * the engine's work on each while the next kernels render: runtime/wasm/run-artifact.ts,
 * EarlyModules).
 */
export interface RenderSink {
  /**
   * Once, before the first kernel renders, when the kernels import a memory of their own of
   * `pages` pages (initial and maximum) of which the plan uses `bytes`, its buffers not sized
   * for a symbolic batch's largest.
   */
  memory?(pages: number, bytes: number): void;
  /** Each kernel's module (base64 and bytes) as soon as it is built. */
  module?(source: string, bytes: Uint8Array<ArrayBuffer>): void;
}

export function buildKernelModule(
  k: Kernel,
  place: (id: number) => BufferPlace,
  pages: number,
  opts: WasmBuildOptions = {},
  buffers: readonly BufferDecl[] = [],
  maxPages = pages,
  shared?: SectionCache,
): Uint8Array<ArrayBuffer> {
  // A symbolic batch: loops that step its rows stop at the run's rows (rowBounds,
  // compiler/kernel/symbolic-bound.ts). The function bounds inner ones itself; for the split
  // loop, `z` is the size buffer's address and `m<j>` the maximum: the runner then splits
  // ceil(x<j> × size / m<j>) iterations instead of x<j>.
  const size = sizeBuffer(buffers);
  const bounds = k.sections.map((s) => (size ? rowBounds(s, buffers).vars : new Map<string, number>()));
  // Launched sections are exported as s0…s(n−1); a `form prologue` section (after them) is a
  // function its section calls per split iteration (emit-section.ts), not exported.
  const launched = k.sections.filter((s) => s.form?.kind !== "prologue").length;
  const prologueOf = new Map<number, number>();
  k.sections.forEach((s, j) => {
    if (s.form?.kind === "prologue") prologueOf.set(s.form.of, j);
    else if (j >= launched) bug(`wasm: kernel ${k.name}'s launched section ${j} follows a prologue`);
  });
  const sections = k.sections.map((s, j) => {
    const rows = size ? { sizeAt: place(size.id).base, max: size.dimMax!, vars: bounds[j]! } : undefined;
    const pj = prologueOf.get(j);
    const prologue = pj === undefined ? undefined : FIRST_SECTION_FUNC + pj;
    const f = shared ? shared.emit(s, place, `s${j}`, opts, rows, prologue) : emitSection(s, place, HELPER_FUNCS, `s${j}`, opts, rows, prologue);
    if (j < launched) return f;
    const { exportName: _exported, ...func } = f.func;
    return { ...f, func };
  });
  const globals: ExportedGlobal[] = [{ name: "n", value: launched }];
  const work = (j: number): number => sections[j]!.work + (prologueOf.has(j) ? sections[prologueOf.get(j)!]!.work : 0);
  sections.forEach((s, j) => j < launched && globals.push({ name: `x${j}`, value: s.splitExtent }, { name: `w${j}`, value: Math.min(work(j), 2 ** 31 - 1) }));
  sections.forEach((s, j) => j < launched && s.splitGrain > 1 && globals.push({ name: `g${j}`, value: s.splitGrain }));
  if (size) {
    globals.push({ name: "z", value: place(size.id).base });
    k.sections.forEach((s, j) => {
      if (j >= launched) return;
      const split = s.domain.find((v) => v.extent > 1);
      if (split && bounds[j]!.has(split.name)) globals.push({ name: `m${j}`, value: size.dimMax! });
    });
  }
  if (FIRST_SECTION_FUNC !== HOST_IMPORTS.length + HELPER_COUNT) throw new Error("wasm: helper function indices out of date");
  // The kernel's name and each section's source lines and scopes, as the other targets' comments give them.
  const comment = [k.name, ...k.sections.map((s, j) => `section ${j}: ${sectionSourceNote(s)}`)].join("\n");
  // Helpers no section calls keep their index as a one-instruction stub: V8 compiles a module's
  // functions up front (runtime/wasm/engine.ts), and 8 helpers in every module were most of an
  // MLP step's functions.
  const called = new Set(sections.flatMap((s) => [...s.calls]));
  const helpers = Array.from({ length: HELPER_COUNT }, (_, i) => (called.has(HOST_IMPORTS.length + i) ? helperFunc(i) : helperStub(i)));
  return assembleModule({
    memoryPages: pages,
    maxPages,
    imports: HOST_IMPORTS,
    funcs: [...helpers, ...sections.map((s) => s.func)],
    globals,
    comment,
  });
}

/** Helper `i`'s type with an `unreachable` body: its index stays, its code goes (one object per helper: assembleModule only reads it). */
const stubs: DefinedFunc[] = [];
function helperStub(i: number): DefinedFunc {
  return (stubs[i] ??= { type: helperType(i), locals: [], body: new ByteWriter(1).u8(Op.unreachable) });
}

/**
 * Sections rendered once per structure (compiler/kernel/section-key.ts): a section whose key
 * was seen takes the first one's function with its buffer bases re-written (the relocations
 * FuncBuilder.memAt recorded), not a fresh walk of the schedule and emitters. The key adds to
 * the structure what emitting reads of the buffers besides their bases: their dtypes, which of
 * them share an address (planRowReuse), the options and the row limits.
 */
export class SectionCache {
  private readonly entries = new Map<string, { readonly func: SectionFunc; readonly buffers: readonly number[] }>();
  /**
   * Sections are keyed (sectionShape prints the whole section) only once a second one could
   * match: the first of each domain, size, options, row limits and prologue waits here unkeyed
   * (most sections of a small model are unique, and a key costs about what emitting does).
   */
  private readonly unkeyed = new Map<string, { readonly s: Section; readonly place: (id: number) => BufferPlace; readonly func: SectionFunc }>();
  private readonly keyedRough = new Set<string>();
  /** Sections emitted and sections re-based (tests read them). */
  emitted = 0;
  rebased = 0;

  emit(s: Section, place: (id: number) => BufferPlace, name: string, opts: SectionOptions, rows: RowLimits | undefined, prologue?: number): SectionFunc {
    const rowKey = rows ? `${rows.sizeAt} ${rows.max} ${[...rows.vars].join(";")}` : "";
    const tail = `${opts.simd !== false} ${opts.fma === true}\n${rowKey}\n${prologue ?? ""}`;
    // Sections with equal keys have equal domains, as many expressions and stores, and equal tails.
    const rough = `${s.domain.map((v) => `${v.name}<${v.extent}`).join(",")} ${s.exprs.length} ${s.stores.length}\n${tail}`;
    const first = this.unkeyed.get(rough);
    if (first === undefined && !this.keyedRough.has(rough)) {
      const func = emitSection(s, place, HELPER_FUNCS, name, opts, rows, prologue);
      this.unkeyed.set(rough, { s, place, func });
      this.emitted++;
      return func;
    }
    if (first !== undefined) {
      const firstShape = sectionShape(first.s);
      this.entries.set(sectionKey(firstShape, first.place, tail), { func: first.func, buffers: firstShape.buffers });
      this.unkeyed.delete(rough);
      this.keyedRough.add(rough);
    }
    const shape = sectionShape(s);
    const places = shape.buffers.map(place);
    const key = sectionKey(shape, place, tail);
    const seen = this.entries.get(key);
    if (!seen) {
      const func = emitSection(s, place, HELPER_FUNCS, name, opts, rows, prologue);
      this.entries.set(key, { func, buffers: shape.buffers });
      this.emitted++;
      return func;
    }
    this.rebased++;
    const localOf = new Map(seen.buffers.map((id, i) => [id, i]));
    const relocations: Relocation[] = [];
    const from = seen.func.func.body.toBytes();
    // A re-based address takes at most 5 bytes as it may have taken 1: room for that, no growing.
    const body = new ByteWriter(from.length + 4 * seen.func.relocations.length + 16);
    let copied = 0;
    for (const r of seen.func.relocations) {
      const target = places[localOf.get(r.buffer) ?? bug(`wasm: relocation of buffer ${r.buffer} outside its section`)]!;
      body.raw(from.subarray(copied, r.at));
      const at = body.length;
      body.u32(target.base + r.addend);
      relocations.push({ at, end: body.length, buffer: target.id, addend: r.addend });
      copied = r.end;
    }
    body.raw(from.subarray(copied));
    return { ...seen.func, func: { ...seen.func.func, body, exportName: name }, relocations };
  }
}

/** A section's cache key: its structure, its buffers' dtypes and which of them share an address, and `tail` (options, row limits, prologue). */
function sectionKey(shape: SectionShape, place: (id: number) => BufferPlace, tail: string): string {
  const firstAt = new Map<number, number>();
  const aliases = shape.buffers.map((id, i) => {
    const p = place(id);
    const first = firstAt.get(p.base);
    if (first === undefined) firstAt.set(p.base, i);
    return first === undefined ? p.dtype : `${p.dtype}=${first}`;
  });
  return `${shape.key}\n${aliases.join(",")}\n${tail}`;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** Base64 without Node's Buffer (the compiler also runs in browsers). */
/** Node's Buffer where there is one (no import: the compiler also runs in browsers). */
const NodeBuffer = (globalThis as { Buffer?: { from(b: ArrayBufferLike, offset: number, length: number): { toString(enc: "base64"): string } } }).Buffer;

function encodeBase64(bytes: Uint8Array): string {
  if (NodeBuffer) return NodeBuffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64");
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}
