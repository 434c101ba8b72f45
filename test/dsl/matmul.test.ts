// matmul vs. a triple loop written here, over PyTorch's cases: 2-D, batched with broadcast
// batch dims, and 1-D operands on either side (prepended/appended dim, then removed).

import { describe, expect, test } from "vitest";
import * as k from "kiln";
import { expectClose, runRef } from "../util/ref.ts";
import { numel } from "../../compiler/util/shape.ts";

const fill = (shape: readonly number[], seed: number): number[] => Array.from({ length: numel(shape) }, (_, i) => Math.round(Math.sin(i * 0.9 + seed) * 8) / 4);

/**
 * PyTorch matmul by definition: promote 1-D operands, broadcast batch dims, triple loop per
 * batch, then drop the promoted dims. Returns the output shape and row-major values.
 */
function matmulLoop(a: number[], aShape: number[], b: number[], bShape: number[]): { shape: number[]; values: number[] } {
  const as = aShape.length === 1 ? [1, aShape[0]!] : aShape;
  const bs = bShape.length === 1 ? [bShape[0]!, 1] : bShape;
  const [m, kk] = as.slice(-2) as [number, number];
  const n = bs[bs.length - 1]!;
  const aBatch = as.slice(0, -2);
  const bBatch = bs.slice(0, -2);
  const rank = Math.max(aBatch.length, bBatch.length);
  const dimAt = (batch: number[], i: number) => batch[batch.length - rank + i] ?? 1;
  const batch = Array.from({ length: rank }, (_, i) => Math.max(dimAt(aBatch, i), dimAt(bBatch, i)));
  const offsetIn = (own: number[], bIdx: number[]) => {
    let off = 0;
    for (let i = 0; i < rank; i++) {
      const d = dimAt(own, i);
      off = off * d + (d === 1 ? 0 : bIdx[i]!);
    }
    return off;
  };
  const values: number[] = [];
  for (let flat = 0; flat < numel(batch); flat++) {
    const bIdx: number[] = [];
    let rest = flat;
    for (let i = rank - 1; i >= 0; i--) {
      bIdx[i] = rest % batch[i]!;
      rest = Math.floor(rest / batch[i]!);
    }
    const aOff = offsetIn(aBatch, bIdx) * m * kk;
    const bOff = offsetIn(bBatch, bIdx) * kk * n;
    for (let i = 0; i < m; i++)
      for (let j = 0; j < n; j++) {
        let acc = 0;
        for (let p = 0; p < kk; p++) acc += a[aOff + i * kk + p]! * b[bOff + p * n + j]!;
        values.push(acc);
      }
  }
  const shape = [...batch, ...(aShape.length === 1 ? [] : [m]), ...(bShape.length === 1 ? [] : [n])];
  return { shape, values };
}

describe("matmul vs triple loop", () => {
  test.each([
    [
      [3, 4],
      [4, 5],
    ],
    [
      [1, 7],
      [7, 1],
    ],
    [
      [2, 3, 4],
      [2, 4, 5],
    ],
    [
      [2, 1, 3, 4],
      [3, 4, 2],
    ],
    [
      [4, 3],
      [2, 3, 5],
    ],
    [
      [2, 3, 4],
      [4, 5],
    ],
    [[4], [4]],
    [[4], [4, 3]],
    [[3, 4], [4]],
    [[4], [2, 4, 3]],
    [[2, 3, 4], [4]],
  ])("%j @ %j", (aShape, bShape) => {
    const a = fill(aShape, 1);
    const b = fill(bShape, 2);
    const ref = matmulLoop(a, aShape, b, bShape);
    const r = runRef((x: k.Tensor, y: k.Tensor) => x.matmul(y), [k.f32(aShape), k.f32(bShape)], [a, b]);
    expect(r.shape).toEqual(ref.shape);
    expectClose(r.values, ref.values, 1e-12);
  });

  test("mm, bmm and k.matmul are the same op; i32 stays i32; i32 @ f32 promotes", () => {
    const a = [1, 2, 3, 4, 5, 6];
    const b = [1, 0, -1, 2, 3, 1];
    const ref = matmulLoop(a, [2, 3], b, [3, 2]).values;
    expectClose(runRef((x: k.Tensor, y: k.Tensor) => x.mm(y), [k.f32([2, 3]), k.f32([3, 2])], [a, b]).values, ref);
    expectClose(runRef((x: k.Tensor, y: k.Tensor) => k.matmul(x, y), [k.f32([2, 3]), k.f32([3, 2])], [a, b]).values, ref);
    expectClose(runRef((x: k.Tensor, y: k.Tensor) => x.bmm(y), [k.f32([1, 2, 3]), k.f32([1, 3, 2])], [a, b]).values, ref);
    const ints = runRef((x: k.Tensor, y: k.Tensor) => x.matmul(y), [k.i32([2, 3]), k.i32([3, 2])], [a, b]);
    expect(ints.outputs[0]!.dtype).toBe("i32");
    expect(ints.values).toEqual(ref);
    const mixed = runRef((x: k.Tensor, y: k.Tensor) => x.matmul(y), [k.i32([2, 3]), k.f32([3, 2])], [a, b]);
    expect(mixed.outputs[0]!.dtype).toBe("f32");
  });
});
