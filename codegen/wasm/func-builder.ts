// One WebAssembly function body under construction: typed locals allocated on demand and
// thin helpers over the instruction bytes (constants, locals, structured control flow,
// memory access with the buffer's base address in the memarg offset). Every memarg offset
// that holds a buffer's base is recorded as a relocation, so a body rendered once can be
// re-based onto other buffers (render-program.ts shares the bodies of identical sections).

import { dtypeInfo, type DType, type DTypeInfo } from "../../compiler/ir/dtype.ts";
import { bug } from "../../compiler/util/errors.ts";
import { ByteWriter, F32, I32, Op, Simd, V128, type ValType } from "./encoder.ts";

/** A memarg offset in a body that holds buffer `buffer`'s base + `addend`, as LEB128 at bytes [at, end). */
export interface Relocation {
  readonly at: number;
  readonly end: number;
  readonly buffer: number;
  readonly addend: number;
}

/** Where a buffer's element 0 sits in the shared memory. */
export interface BufferPlace {
  /** The program's buffer id (what a relocation names). */
  readonly id: number;
  /** Byte address of element 0 in the shared memory. */
  readonly base: number;
  readonly dtype: DType;
}

export class FuncBuilder {
  readonly body = new ByteWriter();
  readonly locals: ValType[] = [];
  readonly relocations: Relocation[] = [];
  /** The functions this body calls (a module carries the helpers its sections call, the others as stubs). */
  readonly calls = new Set<number>();

  constructor(readonly paramCount: number) {}

  local(type: ValType): number {
    this.locals.push(type);
    return this.paramCount + this.locals.length - 1;
  }

  op(code: number): this {
    this.body.u8(code);
    return this;
  }

  simd(code: number): this {
    this.body.u8(0xfd).u32(code);
    return this;
  }

  simdLane(code: number, lane: number): this {
    this.body.u8(0xfd).u32(code).u8(lane);
    return this;
  }

  i32(v: number): this {
    this.body.u8(Op.i32Const).s32(v);
    return this;
  }

  f32(v: number): this {
    this.body.u8(Op.f32Const).f32(v);
    return this;
  }

  v128Zero(): this {
    this.simd(Simd.v128Const);
    for (let i = 0; i < 16; i++) this.body.u8(0);
    return this;
  }

  /** i8x16.shuffle of the two vectors on the stack: byte i of the result is byte lanes[i] of a ‖ b. */
  shuffle(lanes: readonly number[]): this {
    if (lanes.length !== 16 || lanes.some((l) => !Number.isInteger(l) || l < 0 || l > 31))
      bug(`wasm: i8x16.shuffle needs 16 byte indices in [0, 32), got ${lanes.join(",")}`);
    this.simd(Simd.i8x16Shuffle);
    for (const l of lanes) this.body.u8(l);
    return this;
  }

  v128I32(lanes: readonly [number, number, number, number]): this {
    this.simd(Simd.v128Const);
    const view = new DataView(new ArrayBuffer(16));
    lanes.forEach((v, i) => view.setInt32(i * 4, v, true));
    for (let i = 0; i < 16; i++) this.body.u8(view.getUint8(i));
    return this;
  }

  get(l: number): this {
    this.body.u8(Op.localGet).u32(l);
    return this;
  }

  set(l: number): this {
    this.body.u8(Op.localSet).u32(l);
    return this;
  }

  tee(l: number): this {
    this.body.u8(Op.localTee).u32(l);
    return this;
  }

  /** `block`/`loop`/`if` with an optional single result type. */
  open(code: typeof Op.block | typeof Op.loop | typeof Op.if, result?: ValType): this {
    this.body.u8(code).u8(result ?? 0x40);
    return this;
  }

  end(): this {
    return this.op(Op.end);
  }

  br(depth: number): this {
    this.body.u8(Op.br).u32(depth);
    return this;
  }

  brIf(depth: number): this {
    this.body.u8(Op.brIf).u32(depth);
    return this;
  }

  call(fn: number): this {
    this.calls.add(fn);
    this.body.u8(Op.call).u32(fn);
    return this;
  }

  /** Memory access at an absolute constant byte offset (no buffer's: see memAt). */
  mem(code: number, alignLog2: number, offset: number): this {
    this.body.u8(code).u32(alignLog2).u32(offset);
    return this;
  }

  /** Memory access in buffer `place`: the memarg offset is its base + `offset` bytes (a relocation). */
  memAt(code: number, alignLog2: number, place: BufferPlace, offset: number): this {
    this.body.u8(code).u32(alignLog2);
    return this.relocated(place, offset);
  }

  simdMemAt(code: number, alignLog2: number, place: BufferPlace, offset: number): this {
    this.simd(code);
    this.body.u32(alignLog2);
    return this.relocated(place, offset);
  }

  private relocated(place: BufferPlace, addend: number): this {
    const at = this.body.length;
    this.body.u32(place.base + addend);
    this.relocations.push({ at, end: this.body.length, buffer: place.id, addend });
    return this;
  }

  /** for (v = <init>; v + span <= <limit>; v += step) { body }, with init already on the stack. */
  forLoop(v: number, pushLimit: () => void, step: number, body: () => void, span = 1): void {
    this.set(v);
    this.open(Op.block).open(Op.loop);
    this.get(v);
    pushLimit();
    if (span > 1) this.i32(span - 1).op(Op.i32Sub);
    this.op(Op.i32GeS).brIf(1);
    body();
    this.get(v).i32(step).op(Op.i32Add).set(v);
    this.br(0).end().end();
  }
}

const WASM_VAL_TYPES = { f32: F32, i32: I32 } as const satisfies Record<DTypeInfo["wasm"]["value"], ValType>;
/** The WebAssembly value type a dtype takes in locals and on the stack (bool is an i32 0/1). */
export const valTypeOf = (dtype: DType): ValType => WASM_VAL_TYPES[dtypeInfo(dtype).wasm.value];
export { F32, I32, V128 };
