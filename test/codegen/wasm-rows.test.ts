// Row reductions on the wasm target (region B: unrolled vector accumulators, a one-vector
// loop, a scalar remainder) vs explicit loops in the test: row sums, row max (NaN
// propagates), softmax rows, at widths that reach every one of those loops. At widths that
// are a multiple of 4 softmax evaluates exp once per element (the row sum's loop stores
// each value into the output row, the output loop scales it): checked against the formula on
// one thread and with rows split across two, and by counting the exp2 polynomial's rounding
// constant in the module.

import { afterAll, describe, expect, test } from "vitest";
import * as k from "kiln";
import { compileWasm, createWasmExecutor, type WasmExecutor } from "../../targets/wasm.ts";
import { decodeBase64 } from "../../runtime/wasm/run-artifact.ts";

const executors: WasmExecutor[] = [];
afterAll(async () => {
  await Promise.all(executors.map((e) => e.close()));
});

async function runRows(
  fn: (x: k.Tensor) => k.Tensor,
  rows: number,
  cols: number,
  data: Float32Array,
  threads = 1,
  relaxedSimd?: boolean,
): Promise<ArrayLike<number>> {
  const g = k.traceFunction("rows", fn as never, [k.f32([rows, cols])]).graph;
  const exe = await createWasmExecutor(g, { threads, minParallelWork: 0, ...(relaxedSimd === undefined ? {} : { relaxedSimd }) });
  executors.push(exe);
  const input = exe.compiled.artifact.buffers.find((b) => b.kind === "input")!.name;
  const out = await exe.run({ [input]: { dtype: "f32", shape: [rows, cols], data } });
  return Object.values(out)[0]!.data as ArrayLike<number>;
}

const sample = (rows: number, cols: number): Float32Array => Float32Array.from({ length: rows * cols }, (_, i) => Math.sin(i * 0.37) * 3 + (i % 7) * 0.25);

/** `got` is softmax over each row of x (rows×cols), by the formula with the row max subtracted. */
function expectSoftmaxRows(got: ArrayLike<number>, x: Float32Array, rows: number, cols: number): void {
  for (let r = 0; r < rows; r++) {
    let m = -Infinity;
    for (let c = 0; c < cols; c++) m = Math.max(m, x[r * cols + c]!);
    let s = 0;
    for (let c = 0; c < cols; c++) s += Math.exp(x[r * cols + c]! - m);
    for (let c = 0; c < cols; c++) expect(got[r * cols + c]).toBeCloseTo(Math.exp(x[r * cols + c]! - m) / s, 6);
  }
}

describe("wasm row reductions", () => {
  // 13 = 8 (two accumulators) + 4 + 1; 37 = 16·2 (four accumulators) + 4 + 1; 70 = 16·4 + 4 + 2
  for (const cols of [13, 37, 70]) {
    const rows = 5;
    const x = sample(rows, cols);
    test(`row sum, ${rows}×${cols}`, async () => {
      const got = await runRows((t) => t.sum(-1), rows, cols, x);
      for (let r = 0; r < rows; r++) {
        let s = 0;
        for (let c = 0; c < cols; c++) s += x[r * cols + c]!;
        expect(got[r]).toBeCloseTo(s, 4);
      }
    });
    test(`row max, ${rows}×${cols}, NaN propagates`, async () => {
      const xn = x.slice();
      xn[2 * cols + cols - 1] = NaN; // last element of row 2: lands in the scalar remainder
      xn[3 * cols + 5] = NaN; // inside the vector loop of row 3
      const got = await runRows((t) => t.amax(-1), rows, cols, xn);
      for (let r = 0; r < rows; r++) {
        let m = -Infinity;
        for (let c = 0; c < cols; c++) m = Number.isNaN(xn[r * cols + c]!) || Number.isNaN(m) ? NaN : Math.max(m, xn[r * cols + c]!);
        if (Number.isNaN(m)) expect(got[r]).toBeNaN();
        else expect(got[r]).toBe(m);
      }
    });
    test(`softmax rows, ${rows}×${cols}, exp2's Horner steps fused (relaxed SIMD) and not`, async () => {
      expectSoftmaxRows(await runRows((t) => t.softmax(-1), rows, cols, x), x, rows, cols);
      expectSoftmaxRows(await runRows((t) => t.softmax(-1), rows, cols, x, 1, false), x, rows, cols);
    });
  }

  // The vector row max runs on the f32 bits mapped to ordered integers, NaNs collected apart:
  // exact against Math.max (which orders −0 below +0 and propagates NaN) for every special value,
  // in the unrolled loop (lanes 0-31), the one-vector loop (32-35) and the scalar remainder (36).
  test("row max, 12×37, bit-exact: ±0, ±inf, NaN of either sign, subnormals, in every loop", async () => {
    const cols = 37;
    // a NaN with its sign bit set (x86's default NaN), written as bits: a JS NaN stored into a Float32Array may lose its sign
    const negNaN = 0xffc00000 | 0;
    const NEG_NAN = -7777;
    const rowsOf: number[][] = [
      Array(cols).fill(-0),
      Array.from({ length: cols }, (_, c) => (c === 20 ? 0 : -0)),
      Array.from({ length: cols }, (_, c) => (c === 33 ? 0 : -0)),
      Array.from({ length: cols }, (_, c) => (c === 36 ? 0 : -0)),
      Array.from({ length: cols }, (_, c) => (c % 5 === 0 ? 0 : -1e-40 * (c + 1))),
      Array(cols).fill(-Infinity),
      Array.from({ length: cols }, (_, c) => (c === 7 ? Infinity : -c)),
      Array.from({ length: cols }, (_, c) => (c === 9 ? NEG_NAN : c)),
      Array.from({ length: cols }, (_, c) => (c === 34 ? NEG_NAN : -c)),
      Array.from({ length: cols }, (_, c) => (c === 36 ? Number.NaN : -c)),
      Array.from({ length: cols }, (_, c) => -3e38 + c * 1e30),
      Array.from({ length: cols }, (_, c) => 1e-45 * (c % 3) - 2e-45),
    ];
    const x = Float32Array.from(rowsOf.flat());
    const bits = new Int32Array(x.buffer);
    x.forEach((v, i) => {
      if (v === NEG_NAN) bits[i] = negNaN;
    });
    expect(bits[7 * cols + 9]).toBe(negNaN);
    const got = await runRows((t) => t.amax(-1), rowsOf.length, cols, x);
    rowsOf.forEach((_, r) => {
      let m = -Infinity;
      for (let c = 0; c < cols; c++) m = Math.max(m, x[r * cols + c]!);
      if (Number.isNaN(m)) expect(got[r]).toBeNaN();
      else expect(Object.is(got[r], m), `row ${r}: got ${got[r]}, want ${m}`).toBe(true);
    });
  });

  // 36 = 16·2 + 4 (four accumulators, then the one-vector loop); 64 = 16·4
  for (const cols of [36, 64]) {
    const rows = 6;
    const x = sample(rows, cols);
    for (const threads of [1, 2])
      test(`softmax rows, ${rows}×${cols}, exp once per element, ${threads} thread(s)`, async () => {
        expectSoftmaxRows(await runRows((t) => t.softmax(-1), rows, cols, x, threads), x, rows, cols);
      });
    test(`softmax, ${rows}×${cols}: the output loop has no exp2 polynomial of its own (width ${cols + 1} has)`, () => {
      const exp2Count = (width: number): number => {
        const g = k.traceFunction("rows", ((t: k.Tensor) => t.softmax(-1)) as never, [k.f32([rows, width])]).graph;
        const bytes = decodeBase64(compileWasm(g).artifact.kernels[0]!.source);
        let n = 0; // f32 1.5·2²³ (0x4b400000, little-endian), the polynomial's round-to-nearest constant
        for (let i = 0; i + 3 < bytes.length; i++) if (bytes[i] === 0 && bytes[i + 1] === 0 && bytes[i + 2] === 0x40 && bytes[i + 3] === 0x4b) n++;
        return n;
      };
      // the row sum's copies (unrolled, one-vector and scalar loops) are in both; the output
      // loop's vector exp2 only where the width is not a multiple of 4
      const reused = exp2Count(cols);
      expect(reused).toBeGreaterThan(0);
      expect(exp2Count(cols + 1)).toBeGreaterThan(reused);
    });
  }
});
