// sort / argsort (torch.sort, torch.argsort): values and i32 indices along a dim, ascending or
// descending, stable (equal elements keep their order), NaN as the largest value, on the
// float64 interpreter against hand-sorted rows; gradients flow to where each value came from
// (finite differences). Every target runs the op-suite cases in test/targets/op-cases.ts.

import { describe, expect, test } from "vitest";
import * as k from "kiln";
import { gradcheck, uniform } from "../util/gradcheck.ts";

async function run(fn: (x: k.Tensor) => unknown, shape: number[], x: number[], dtype: "f32" | "i32" = "f32"): Promise<number[][]> {
  const exe = await k.compile(fn, [dtype === "f32" ? k.f32(shape) : k.i32(shape)], { target: "reference" });
  return ((await exe.run([x])) as k.HostOutput[]).map((o) => Array.from(o.data));
}

const ROWS = [3, 1, Number.NaN, 1, -2, 0, 0, 0, 5, -1, 2, Number.POSITIVE_INFINITY, 1, Number.NaN, Number.NaN];

describe("sort and argsort", () => {
  test("ascending along the last dim: NaN last, ties in their order", async () => {
    const [values, indices] = await run(
      (x) => {
        const s = x.sort();
        return [s.values, s.indices];
      },
      [3, 5],
      ROWS,
    );
    expect(values).toEqual([-2, 1, 1, 3, Number.NaN, -1, 0, 0, 0, 5, 1, 2, Number.POSITIVE_INFINITY, Number.NaN, Number.NaN]);
    expect(indices).toEqual([4, 1, 3, 0, 2, 4, 0, 1, 2, 3, 2, 0, 1, 3, 4]);
  });

  test("descending along dim 0 and as argsort(dim, true): NaN first, ties in their order", async () => {
    const [values, indices, order] = await run(
      (x) => {
        const s = x.sort({ dim: 0, descending: true });
        return [s.values, s.indices, k.argsort(x, -1, true)];
      },
      [3, 5],
      ROWS,
    );
    expect(values).toEqual([3, Number.POSITIVE_INFINITY, Number.NaN, Number.NaN, Number.NaN, 2, 1, 1, 5, -1, 0, 0, 0, 1, -2]);
    expect(indices).toEqual([0, 2, 0, 2, 2, 2, 0, 2, 1, 1, 1, 1, 1, 0, 0]);
    expect(order).toEqual([2, 0, 1, 3, 4, 3, 0, 1, 2, 4, 3, 4, 1, 0, 2]);
  });

  test("i32 with many ties is stable both ways", async () => {
    const [up, down] = await run((x) => [x.argsort(), x.argsort({ descending: true })], [8], [2, 1, 2, 0, 1, 2, 0, 1], "i32");
    expect(up).toEqual([3, 6, 1, 4, 7, 0, 2, 5]);
    expect(down).toEqual([0, 2, 5, 1, 4, 7, 3, 6]);
  });

  test("gradients reach the sorted elements (finite differences)", () => {
    gradcheck((x: k.Tensor) => x.sort(1, true).values.mul(k.arange(6).float()), [k.f32([3, 6])], [uniform(18, 5)]);
  });

  test("bad arguments are one-line errors", () => {
    const trace = (fn: (x: k.Tensor) => unknown) => () => k.traceFunction("t", fn, [k.f32([2, 3])]);
    expect(trace((x) => x.sort(2))).toThrow(/^sort: dim 2 out of range for a 2-d tensor/);
    expect(trace((x) => x.sort({ dims: 1 } as never))).toThrow(/sort: unknown option 'dims' .* did you mean 'dim'\?/);
    expect(trace((x) => x.argsort(0, "yes" as never))).toThrow(/^argsort: descending must be a boolean, got "yes"/);
  });
});
