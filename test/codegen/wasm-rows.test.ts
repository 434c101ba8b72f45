// Row reductions on the wasm target (region B: unrolled vector accumulators, a one-vector
// loop, a scalar remainder) vs explicit loops in the test: row sums, row max (NaN
// propagates), softmax rows, at widths that reach every one of those loops.

import { afterAll, describe, expect, test } from "vitest";
import * as k from "kiln";
import { createWasmExecutor, type WasmExecutor } from "../../targets/wasm.ts";

const executors: WasmExecutor[] = [];
afterAll(async () => {
  await Promise.all(executors.map((e) => e.close()));
});

async function runRows(fn: (x: k.Tensor) => k.Tensor, rows: number, cols: number, data: Float32Array): Promise<ArrayLike<number>> {
  const g = k.traceFunction("rows", fn as never, [k.f32([rows, cols])]).graph;
  const exe = await createWasmExecutor(g, { threads: 1 });
  executors.push(exe);
  const input = exe.compiled.artifact.buffers.find((b) => b.kind === "input")!.name;
  const out = await exe.run({ [input]: { dtype: "f32", shape: [rows, cols], data } });
  return Object.values(out)[0]!.data as ArrayLike<number>;
}

const sample = (rows: number, cols: number): Float32Array => Float32Array.from({ length: rows * cols }, (_, i) => Math.sin(i * 0.37) * 3 + (i % 7) * 0.25);

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
    test(`softmax rows, ${rows}×${cols}`, async () => {
      const got = await runRows((t) => t.softmax(-1), rows, cols, x);
      for (let r = 0; r < rows; r++) {
        let m = -Infinity;
        for (let c = 0; c < cols; c++) m = Math.max(m, x[r * cols + c]!);
        let s = 0;
        for (let c = 0; c < cols; c++) s += Math.exp(x[r * cols + c]! - m);
        for (let c = 0; c < cols; c++) expect(got[r * cols + c]).toBeCloseTo(Math.exp(x[r * cols + c]! - m) / s, 6);
      }
    });
  }
});
