// Checked indices: class ids and gather/indexSelect/embedding/oneHot indices that come from a
// graph input are range-checked by exe.run before the run. Each bad value is one line naming
// the input, the first bad position and value, the valid range, and the line that used it as
// an index; ignoreIndex (PyTorch's −100 by default) is let through, −1 is not unless named.

import { describe, expect, test } from "vitest";
import * as k from "kiln";
import { rejectedKilnError, thisLine } from "../util/kiln-error.ts";

const F = k.nn.functional;

const ZEROS = [0, 0, 0, 0, 0, 0];

describe("class ids (crossEntropy, nllLoss)", () => {
  test("a class id equal to C is refused before the run, naming input, position, value, range and line", async () => {
    let line = 0;
    const exe = await k.compile(
      (logits: k.Tensor, y: k.Tensor) => {
        line = thisLine() + 1;
        return k.nn.crossEntropy(logits, y);
      },
      [k.f32([2, 3]), k.i32([2])],
      { target: "reference" },
    );
    const e = await rejectedKilnError(exe.run([ZEROS, [0, 3]]));
    expect(e.message.split("\n")).toHaveLength(1);
    expect(e.message).toBe(
      `exe.run: input 'y' holds 3 at [1], but crossEntropy takes it as a class index in [0, 3) or ignoreIndex -100 at test/dsl/index-checks.test.ts:${line}:${e.diag.loc!.col}`,
    );
    expect(e.diag.loc).toMatchObject({ file: "test/dsl/index-checks.test.ts", line });
  });

  test("−1 is refused without ignoreIndex; PyTorch's default −100 and an explicit ignoreIndex pass", async () => {
    const plain = await k.compile((x: k.Tensor, y: k.Tensor) => k.nn.crossEntropy(x, y), [k.f32([2, 3]), k.i32([2])], { target: "reference" });
    await expect(plain.run([ZEROS, [-1, 0]])).rejects.toThrow(
      "exe.run: input 'y' holds -1 at [0], but crossEntropy takes it as a class index in [0, 3) or ignoreIndex -100",
    );
    // Zero logits: every kept row's loss is log 3; ignored rows drop out of the mean.
    const kept = (await plain.run([ZEROS, [-100, 2]])) as k.HostOutput;
    expect(kept.data[0]).toBeCloseTo(Math.log(3), 12);
    const ignoring = await k.compile((x: k.Tensor, y: k.Tensor) => k.nn.crossEntropy(x, y, { ignoreIndex: -1 }), [k.f32([2, 3]), k.i32([2])], {
      target: "reference",
    });
    expect(((await ignoring.run([ZEROS, [-1, 1]])) as k.HostOutput).data[0]).toBeCloseTo(Math.log(3), 12);
    await expect(ignoring.run([ZEROS, [-100, 1]])).rejects.toThrow("holds -100 at [0], but crossEntropy takes it as a class index in [0, 3) or ignoreIndex -1");
  });

  test("nllLoss over [N, C, d] names a 2-d position; a reshaped input is still checked", async () => {
    const exe = await k.compile((logp: k.Tensor, y: k.Tensor) => F.nllLoss(logp, y.reshape(2, 2)), [k.f32([2, 3, 2]), k.i32([4])], { target: "reference" });
    await expect(exe.run([new Array(12).fill(-1), [0, 1, 2, 5]])).rejects.toThrow(
      "exe.run: input 'y' holds 5 at [3], but nllLoss takes it as a class index in [0, 3) or ignoreIndex -100",
    );
    const grid = await k.compile((logp: k.Tensor, y: k.Tensor) => F.nllLoss(logp, y), [k.f32([2, 3, 2]), k.i32([2, 2])], { target: "reference" });
    await expect(grid.run([new Array(12).fill(-1), [0, 1, 7, 2]])).rejects.toThrow("holds 7 at [1, 0]");
  });

  test("a training step with record inputs names the label input", async () => {
    const exe = await k.compile(
      k.trainStep(k.nn.linear(2, 3), (out, y) => k.nn.crossEntropy(out, y), k.optim.sgd({ lr: 0.1 })),
      { x: k.f32([2, 2]), labels: k.i32([2]) },
      { target: "reference" },
    );
    const before = exe.state();
    await expect(exe.run({ x: [1, 2, 3, 4], labels: [1, 9] })).rejects.toThrow(
      "exe.run: input 'labels' holds 9 at [1], but crossEntropy takes it as a class index in [0, 3)",
    );
    // Nothing ran: the weights are as they were; a good batch then moves them.
    expect(exe.state()).toEqual(before);
    await exe.run({ x: [1, 2, 3, 4], labels: [1, 2] });
    expect(exe.state()["weight"]!.data).not.toEqual(before["weight"]!.data);
  });
});

describe("gather, indexSelect, embedding, oneHot", () => {
  test("embedding: a row past the table", async () => {
    const table = k.nn.embedding(4, 2);
    const exe = await k.compile((tokens: k.Tensor) => table.call(tokens), [k.i32([2, 3])], { target: "reference" });
    await expect(exe.run([[0, 1, 2, 3, 0, 4]])).rejects.toThrow(
      "exe.run: input 'tokens' holds 4 at [1, 2], but embedding takes it as a row of the weight in [0, 4)",
    );
    await exe.run([[0, 1, 2, 3, 0, 3]]);
  });

  test("gather and indexSelect: negative and too large", async () => {
    const gathered = await k.compile((x: k.Tensor, i: k.Tensor) => x.gather(1, i), [k.f32([2, 3]), k.i32([2, 2])], { target: "reference" });
    await expect(gathered.run([ZEROS, [0, 2, -1, 1]])).rejects.toThrow(
      "exe.run: input 'i' holds -1 at [1, 0], but gather takes it as a position along dim 1 in [0, 3)",
    );
    const selected = await k.compile((x: k.Tensor, i: k.Tensor) => x.indexSelect(0, i), [k.f32([2, 3]), k.i32([3])], { target: "reference" });
    await expect(selected.run([ZEROS, [1, 0, 2]])).rejects.toThrow(
      "exe.run: input 'i' holds 2 at [2], but indexSelect takes it as a position along dim 0 in [0, 2)",
    );
    const ok = (await selected.run([
      [1, 2, 3, 4, 5, 6],
      [1, 0, 1],
    ])) as k.HostOutput;
    expect(Array.from(ok.data)).toEqual([4, 5, 6, 1, 2, 3, 4, 5, 6]);
  });

  test("oneHot: a class id past numClasses", async () => {
    const exe = await k.compile((y: k.Tensor) => F.oneHot(y, 3), [k.i32([2])], { target: "reference" });
    await expect(exe.run([[2, 3]])).rejects.toThrow("exe.run: input 'y' holds 3 at [1], but oneHot takes it as a class index in [0, 3)");
  });
});
