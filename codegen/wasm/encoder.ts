// A small WebAssembly binary builder: LEB128 byte writing, the opcodes the wasm backend
// emits (core + the 128-bit SIMD subset), and a module assembler (types, imports of one
// shared memory and host functions, functions, exports, globals). No dependencies.

export const I32 = 0x7f;
export const F32 = 0x7d;
export const F64 = 0x7c;
export const V128 = 0x7b;
export type ValType = typeof I32 | typeof F32 | typeof F64 | typeof V128;

/** Core opcodes (one byte). */
export const Op = {
  unreachable: 0x00,
  block: 0x02,
  loop: 0x03,
  if: 0x04,
  else: 0x05,
  end: 0x0b,
  br: 0x0c,
  brIf: 0x0d,
  return: 0x0f,
  call: 0x10,
  drop: 0x1a,
  select: 0x1b,
  localGet: 0x20,
  localSet: 0x21,
  localTee: 0x22,
  i32Load: 0x28,
  f32Load: 0x2a,
  i32Load8u: 0x2d,
  i32Load16u: 0x2f,
  i32Store: 0x36,
  f32Store: 0x38,
  i32Store8: 0x3a,
  i32Store16: 0x3b,
  i32Const: 0x41,
  f32Const: 0x43,
  i32Eqz: 0x45,
  i32Eq: 0x46,
  i32Ne: 0x47,
  i32LtS: 0x48,
  i32LtU: 0x49,
  i32GtS: 0x4a,
  i32GtU: 0x4b,
  i32LeS: 0x4c,
  i32GeS: 0x4e,
  i32GeU: 0x4f,
  f32Eq: 0x5b,
  f32Ne: 0x5c,
  f32Lt: 0x5d,
  f32Gt: 0x5e,
  i32Add: 0x6a,
  i32Sub: 0x6b,
  i32Mul: 0x6c,
  i32DivS: 0x6d,
  i32RemS: 0x6f,
  i32And: 0x71,
  i32Or: 0x72,
  i32Xor: 0x73,
  i32Shl: 0x74,
  i32ShrS: 0x75,
  i32ShrU: 0x76,
  i32Rotl: 0x77,
  f32Abs: 0x8b,
  f32Neg: 0x8c,
  f32Nearest: 0x90,
  f32Sqrt: 0x91,
  f32Add: 0x92,
  f32Sub: 0x93,
  f32Mul: 0x94,
  f32Div: 0x95,
  f32Max: 0x97,
  i32TruncF32S: 0xa8,
  f32ConvertI32S: 0xb2,
  f32ConvertI32U: 0xb3,
  f32DemoteF64: 0xb6,
  f64PromoteF32: 0xbb,
  i32ReinterpretF32: 0xbc,
  f32ReinterpretI32: 0xbe,
} as const;

/** SIMD opcodes (prefix 0xfd, LEB128 sub-opcode). */
export const Simd = {
  v128Load: 0x00,
  v128Load32Splat: 0x09,
  v128Store: 0x0b,
  v128Const: 0x0c,
  i8x16Shuffle: 0x0d,
  i32x4Splat: 0x11,
  f32x4Splat: 0x13,
  i32x4ExtractLane: 0x1b,
  i32x4ReplaceLane: 0x1c,
  f32x4ExtractLane: 0x1f,
  f32x4ReplaceLane: 0x20,
  i32x4Eq: 0x37,
  i32x4Ne: 0x38,
  i32x4LtS: 0x39,
  f32x4Eq: 0x41,
  f32x4Ne: 0x42,
  f32x4Lt: 0x43,
  f32x4Gt: 0x44,
  v128Not: 0x4d,
  v128And: 0x4e,
  v128AndNot: 0x4f,
  v128Or: 0x50,
  v128Xor: 0x51,
  v128Bitselect: 0x52,
  v128AnyTrue: 0x53,
  f32x4Nearest: 0x6a,
  i32x4Neg: 0xa1,
  i32x4Shl: 0xab,
  i32x4ShrS: 0xac,
  i32x4ShrU: 0xad,
  i32x4Add: 0xae,
  i32x4Sub: 0xb1,
  i32x4Mul: 0xb5,
  i32x4MaxS: 0xb8,
  f32x4Abs: 0xe0,
  f32x4Neg: 0xe1,
  f32x4Sqrt: 0xe3,
  f32x4Add: 0xe4,
  f32x4Sub: 0xe5,
  f32x4Mul: 0xe6,
  f32x4Div: 0xe7,
  f32x4Min: 0xe8,
  f32x4Max: 0xe9,
  f32x4Pmin: 0xea,
  f32x4Pmax: 0xeb,
  i32x4TruncSatF32x4S: 0xf8,
  f32x4ConvertI32x4S: 0xfa,
  f32x4ConvertI32x4U: 0xfb,
  /** Relaxed SIMD: a·b + c, fused or not as the engine picks (validates only where relaxed SIMD is on). */
  f32x4RelaxedMadd: 0x105,
} as const;

/** i32.trunc_sat_f32_s: prefix 0xfc, sub-opcode 0 (saturating, NaN → 0). */
export const TRUNC_SAT_F32_S = 0;

// Little-endian bytes of one f32 (wasm's byte order; every engine Kiln targets is little-endian, as the wasm runtime's typed-array views already assume).
const F32_SCRATCH = new Float32Array(1);
const F32_SCRATCH_BYTES = new Uint8Array(F32_SCRATCH.buffer);

/** Bytes appended to a growable Uint8Array (a module of a big kernel is megabytes: no per-byte JS array). */
export class ByteWriter {
  private buf: Uint8Array;
  private n = 0;

  /** `capacity`: the bytes it holds before it first grows (a writer whose size is known ahead copies nothing). */
  constructor(capacity = 64) {
    this.buf = new Uint8Array(capacity);
  }

  get length(): number {
    return this.n;
  }

  private room(extra: number): Uint8Array {
    if (this.n + extra > this.buf.length) {
      const grown = new Uint8Array(Math.max(this.buf.length * 2, this.n + extra));
      grown.set(this.buf.subarray(0, this.n));
      this.buf = grown;
    }
    return this.buf;
  }

  u8(b: number): this {
    // The common case without a call: most of a module is written a byte at a time.
    if (this.n < this.buf.length) this.buf[this.n++] = b & 0xff;
    else this.room(1)[this.n++] = b & 0xff;
    return this;
  }

  raw(bs: ArrayLike<number>): this {
    const buf = this.room(bs.length);
    if (bs instanceof Uint8Array) buf.set(bs, this.n);
    else for (let i = 0; i < bs.length; i++) buf[this.n + i] = bs[i]! & 0xff;
    this.n += bs.length;
    return this;
  }

  u32(v: number): this {
    let x = v >>> 0;
    do {
      let b = x & 0x7f;
      x >>>= 7;
      if (x !== 0) b |= 0x80;
      this.u8(b);
    } while (x !== 0);
    return this;
  }

  s32(v: number): this {
    let x = v | 0;
    for (;;) {
      const b = x & 0x7f;
      x >>= 7;
      const done = (x === 0 && (b & 0x40) === 0) || (x === -1 && (b & 0x40) !== 0);
      this.u8(done ? b : b | 0x80);
      if (done) return this;
    }
  }

  f32(v: number): this {
    const buf = this.room(4);
    F32_SCRATCH[0] = v;
    buf.set(F32_SCRATCH_BYTES, this.n); // a typed-array view, not a DataView per constant
    this.n += 4;
    return this;
  }

  name(s: string): this {
    // Kiln's names (exports, imports, globals) are ASCII: their bytes are their char codes.
    let ascii = true;
    for (let i = 0; i < s.length && ascii; i++) ascii = s.charCodeAt(i) < 0x80;
    if (!ascii) {
      const enc = new TextEncoder().encode(s);
      return this.u32(enc.length).raw(enc);
    }
    this.u32(s.length);
    const buf = this.room(s.length);
    for (let i = 0; i < s.length; i++) buf[this.n + i] = s.charCodeAt(i);
    this.n += s.length;
    return this;
  }

  /** Appends `content` as a wasm section: its id, its byte length, its bytes. */
  section(id: number, content: ByteWriter): this {
    return this.u8(id).u32(content.length).raw(content.toBytes());
  }

  /** A length-prefixed vector of already-encoded items. */
  vec(items: readonly ByteWriter[]): this {
    this.u32(items.length);
    for (const it of items) this.raw(it.toBytes());
    return this;
  }

  /** Empties the writer, keeping its buffer for the next bytes. */
  reset(): this {
    this.n = 0;
    return this;
  }

  /** A copy of the bytes written. */
  toArray(): Uint8Array<ArrayBuffer> {
    return this.buf.slice(0, this.n);
  }

  /** The bytes written, as a view (valid until the next write). */
  toBytes(): Uint8Array {
    return this.buf.subarray(0, this.n);
  }
}

export interface FuncType {
  readonly params: readonly ValType[];
  readonly results: readonly ValType[];
}

export interface ImportedFunc {
  readonly module: string;
  readonly name: string;
  readonly type: FuncType;
}

export interface DefinedFunc {
  readonly type: FuncType;
  /** Extra locals (after the parameters), in index order. */
  readonly locals: readonly ValType[];
  /** The body's instructions, without the final `end`. */
  readonly body: ByteWriter;
  readonly exportName?: string;
}

export interface ExportedGlobal {
  readonly name: string;
  readonly value: number;
}

export interface ModuleSpec {
  /** Minimum pages of the imported shared memory `env.memory` (maximum in `maxPages`). */
  readonly memoryPages: number;
  readonly maxPages: number;
  readonly imports: readonly ImportedFunc[];
  readonly funcs: readonly DefinedFunc[];
  readonly globals: readonly ExportedGlobal[];
  /**
   * Text kept in a custom section named `kiln.source` (engines ignore it; read it back with
   * WebAssembly.Module.customSections): the module's comment, e.g. the user lines it computes.
   */
  readonly comment?: string;
}

const typeKey = (t: FuncType): string => `${t.params.join(",")}>${t.results.join(",")}`;

/** Assembles a module; function indices: imports first (in order), then `funcs`. */
export function assembleModule(spec: ModuleSpec): Uint8Array<ArrayBuffer> {
  const types: FuncType[] = [];
  const typeIndex = new Map<string, number>();
  const typeOf = (t: FuncType): number => {
    const key = typeKey(t);
    let idx = typeIndex.get(key);
    if (idx === undefined) {
      idx = types.length;
      types.push(t);
      typeIndex.set(key, idx);
    }
    return idx;
  };
  for (const f of spec.imports) typeOf(f.type);
  for (const f of spec.funcs) typeOf(f.type);

  // Every section is written into one scratch writer, then copied behind its id and length:
  // no writer per item (a big program assembles hundreds of modules). Both start at about the
  // module's size (the code is most of it), so neither grows and copies as it fills.
  let codeBytes = 0;
  let largest = 64;
  for (const f of spec.funcs) {
    const bytes = f.body.length + 2 * f.locals.length + 8;
    codeBytes += bytes;
    largest = Math.max(largest, bytes);
  }
  const room = codeBytes + 64 * (spec.imports.length + spec.funcs.length + spec.globals.length) + 2 * (spec.comment?.length ?? 0) + 64;
  const out = new ByteWriter(room + 64).raw([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]);
  const content = new ByteWriter(room);
  const flush = (id: number): void => {
    out.section(id, content);
    content.reset();
  };
  content.u32(types.length);
  for (const t of types) content.u8(0x60).u32(t.params.length).raw(t.params).u32(t.results.length).raw(t.results);
  flush(1);
  content.u32(spec.imports.length + 1);
  for (const f of spec.imports) content.name(f.module).name(f.name).u8(0x00).u32(typeOf(f.type));
  // Shared memory: limits flag 0x03 (min and max present, shared).
  content.name("env").name("memory").u8(0x02).u8(0x03).u32(spec.memoryPages).u32(spec.maxPages);
  flush(2);
  content.u32(spec.funcs.length);
  for (const f of spec.funcs) content.u32(typeOf(f.type));
  flush(3);
  if (spec.globals.length > 0) {
    content.u32(spec.globals.length);
    for (const g of spec.globals) content.u8(I32).u8(0x00).u8(Op.i32Const).s32(g.value).u8(Op.end);
    flush(6);
  }
  const exportedFuncs = spec.funcs.filter((f) => f.exportName !== undefined).length;
  content.u32(exportedFuncs + spec.globals.length);
  spec.funcs.forEach((f, i) => {
    if (f.exportName !== undefined)
      content
        .name(f.exportName)
        .u8(0x00)
        .u32(spec.imports.length + i);
  });
  spec.globals.forEach((g, i) => content.name(g.name).u8(0x03).u32(i));
  flush(7);
  content.u32(spec.funcs.length);
  const fn = new ByteWriter(largest);
  for (const f of spec.funcs) {
    // Locals run-length encoded by type.
    const runs: [number, ValType][] = [];
    for (const t of f.locals) {
      const last = runs[runs.length - 1];
      if (last && last[1] === t) last[0]++;
      else runs.push([1, t]);
    }
    fn.reset();
    fn.u32(runs.length);
    for (const [count, t] of runs) fn.u32(count).u8(t);
    fn.raw(f.body.toBytes()).u8(Op.end);
    content.u32(fn.length).raw(fn.toBytes());
  }
  flush(10);
  if (spec.comment !== undefined) {
    content.name("kiln.source").raw(new TextEncoder().encode(spec.comment));
    flush(0);
  }
  return out.toArray();
}
