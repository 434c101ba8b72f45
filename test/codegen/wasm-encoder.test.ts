// The wasm byte builder against hand-encoded bytes (LEB128 examples from the DWARF/wasm
// specs), a hand-assembled module that validates and runs, and the shapes that contraction
// blocking gives (block domains, reductions sharing one k loop, the packing kernel).

import { describe, expect, test } from "vitest";
import * as k from "kiln";
import { blockContractions } from "../../compiler/kernel/block-contraction.ts";
import { assembleModule, ByteWriter, I32, Op } from "../../codegen/wasm/encoder.ts";
import { FuncBuilder } from "../../codegen/wasm/func-builder.ts";
import { compileWasm } from "../../targets/wasm.ts";
import type { KernelProgram } from "../../compiler/kernel/kernel-ir.ts";

describe("ByteWriter", () => {
  test("unsigned LEB128", () => {
    const bytes = (v: number): number[] => Array.from(new ByteWriter().u32(v).toArray());
    expect(bytes(0)).toEqual([0]);
    expect(bytes(127)).toEqual([0x7f]);
    expect(bytes(128)).toEqual([0x80, 0x01]);
    expect(bytes(624485)).toEqual([0xe5, 0x8e, 0x26]);
    expect(bytes(0xffffffff)).toEqual([0xff, 0xff, 0xff, 0xff, 0x0f]);
  });

  test("signed LEB128", () => {
    const bytes = (v: number): number[] => Array.from(new ByteWriter().s32(v).toArray());
    expect(bytes(0)).toEqual([0]);
    expect(bytes(-1)).toEqual([0x7f]);
    expect(bytes(63)).toEqual([0x3f]);
    expect(bytes(64)).toEqual([0xc0, 0x00]);
    expect(bytes(-64)).toEqual([0x40]);
    expect(bytes(-123456)).toEqual([0xc0, 0xbb, 0x78]);
    expect(bytes(-2147483648)).toEqual([0x80, 0x80, 0x80, 0x80, 0x78]);
  });
});

test("an assembled module validates, imports the shared memory and runs: a loop summing i32s in memory", () => {
  // sum(n): s = 0; for (i = 0; i < n; i++) s += mem32[16 + 4i]
  const fb = new FuncBuilder(1);
  const i = fb.local(I32);
  const s = fb.local(I32);
  fb.i32(0).set(s);
  fb.i32(0);
  fb.forLoop(
    i,
    () => fb.get(0),
    1,
    () => {
      fb.get(s).get(i).i32(2).op(Op.i32Shl).mem(Op.i32Load, 2, 16).op(Op.i32Add).set(s);
    },
  );
  fb.get(s);
  const bytes = assembleModule({
    memoryPages: 1,
    maxPages: 1,
    imports: [],
    funcs: [{ type: { params: [I32], results: [I32] }, locals: fb.locals, body: fb.body, exportName: "sum" }],
    globals: [{ name: "answer", value: 42 }],
  });
  expect(WebAssembly.validate(bytes)).toBe(true);
  const memory = new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true });
  new Int32Array(memory.buffer, 16, 5).set([1, 2, 3, 4, 100]);
  const exports = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { memory } }).exports as {
    sum: (n: number) => number;
    answer: WebAssembly.Global;
  };
  expect(exports.sum(4)).toBe(10);
  expect(exports.sum(5)).toBe(110);
  expect(exports.answer.value).toBe(42);
});

function program(fn: (...xs: k.Tensor[]) => k.Tensor, specs: readonly k.InputSpec[]): KernelProgram {
  return compileWasm(k.traceFunction("p", fn as never, specs).graph, { block: false }).program;
}

const domainOf = (p: KernelProgram, kernel = 0): string[] => p.kernels[kernel]!.sections[0]!.domain.map((v) => `${v.name}<${v.extent}`);
const reduces = (p: KernelProgram, kernel = 0): number => p.kernels[kernel]!.sections[0]!.exprs.filter((e) => e.op === "reduce_sum").length;

describe("contraction blocking", () => {
  test("column form: 4 rows x 8 columns per block, a 4-wide lane axis last, column blocks outermost", () => {
    const p = blockContractions(program((a, b) => a.matmul(b).relu(), [k.f32([16, 40]), k.f32([40, 24])]));
    expect(domainOf(p)).toEqual(["o1b<3", "o0b<4", "o1l<4"]);
    expect(reduces(p)).toBe(4 * 2); // 4 rows x 2 vectors of columns
  });

  test("dot form for x @ Wᵀ: 4 x 2 scalar outputs sharing one k loop", () => {
    const p = blockContractions(program((x, w) => x.matmul(w.t()), [k.f32([12, 33]), k.f32([20, 33])]));
    expect(domainOf(p)).toEqual(["o1b<10", "o0b<3"]);
    expect(reduces(p)).toBe(4 * 2);
  });

  test("a right operand of 1 MB read by 128 rows or more is packed into panels, by the GEMM per column block (a prologue); smaller cases are not", () => {
    const packedByGemm = (p: ReturnType<typeof blockContractions>): void => {
      expect(p.kernels.map((kk) => kk.name)).toEqual([expect.stringMatching(/^k0_dot/)]);
      const [gemm, pack] = p.kernels[0]!.sections;
      expect(pack!.form).toEqual({ kind: "prologue", of: 0 });
      expect(pack!.domain[0]!.extent).toBe(gemm!.domain[0]!.extent); // iteration p of the GEMM packs panel p
      expect(p.buffers.at(-1)).toMatchObject({ shape: [64, 512, 8], kind: "temp" });
      expect(p.kernels[0]!.reads).toContain(p.buffers.length - 1);
      expect(p.kernels[0]!.writes).toContain(p.buffers.length - 1);
    };
    packedByGemm(blockContractions(program((a, b) => a.matmul(b), [k.f32([256, 512]), k.f32([512, 512])])));
    const small = blockContractions(program((a, b) => a.matmul(b), [k.f32([256, 64]), k.f32([64, 64])]));
    expect(small.kernels).toHaveLength(1);
    expect(small.kernels[0]!.sections).toHaveLength(1);
    packedByGemm(blockContractions(program((a, b) => a.matmul(b), [k.f32([128, 512]), k.f32([512, 512])])));
    const fewRows = blockContractions(program((a, b) => a.matmul(b), [k.f32([64, 512]), k.f32([512, 512])]));
    expect(fewRows.kernels).toHaveLength(1);
    expect(fewRows.kernels[0]!.sections).toHaveLength(1);
  });

  test("sections without a contraction (softmax rows) are left alone", () => {
    const before = program((x) => x.softmax(-1), [k.f32([6, 40])]);
    expect(blockContractions(before).kernels).toEqual(before.kernels);
  });
});

test("a program needing more than wasm32's 4 GiB is refused with a clear error", () => {
  const g = k.traceFunction("huge", ((x: k.Tensor) => x.mul(2)) as never, [k.f32([1 << 29, 2])]).graph;
  expect(() => compileWasm(g)).toThrow(/needs 8\.00 GiB of memory, more than the 4 GiB a wasm32 memory holds/);
});
