// biome-ignore-all format: each case keeps thisLine() and the failing call on one source line, which is what it checks
// User errors from the op surface: each is a KilnError whose message names the op and the
// shapes (or the bad dim) and ends with the test's own file:line:col, never a Kiln frame.
// Line numbers come from V8's stack for the same source line, not from Kiln's capture.

import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, test } from "vitest";
import * as k from "kiln";
import { KilnError } from "../../compiler/util/errors.ts";
import { atLineChecker, thisLine } from "../util/kiln-error.ts";

const FILE = "test/dsl/errors.test.ts";
const sourceLines = readFileSync(fileURLToPath(import.meta.url), "utf8").split("\n");
const expectAtLine = atLineChecker(import.meta.url);

/** Traces `fn` on inputs of the given f32 shapes and returns the KilnError it throws. */
function traceError(shapes: number[][], fn: (...xs: k.Tensor[]) => unknown): KilnError {
  try {
    k.traceFunction("t", fn as (...a: never[]) => unknown, shapes.map((s) => k.f32(s)));
  } catch (e) {
    if (e instanceof KilnError) return e;
    throw e;
  }
  throw new Error("expected a KilnError");
}

describe("shape mismatches name the op, both shapes and the user's line", () => {
  test("add [2,3] + [4,3]", () => {
    const [line, err] = [thisLine(), traceError([[2, 3], [4, 3]], (a, b) => a.add(b))];
    expect(err.code).toBe("shape-mismatch");
    expect(err.message).toMatch(/^shape mismatch in add: cannot broadcast \[2,3\] and \[4,3\] at /);
    expectAtLine(err, line);
  });

  test("the column points at the call on that line", () => {
    const [line, err] = [thisLine(), traceError([[2, 3], [4, 3]], (a, b) => a.mul(b))];
    const col = Number(/:(\d+)$/.exec(err.message)![1]);
    expect(sourceLines[line - 1]!.slice(col - 1).startsWith("mul(b)")).toBe(true);
  });

  test("matmul [128,784] @ [512,10]", () => {
    const [line, err] = [thisLine(), traceError([[128, 784], [512, 10]], (x, w) => x.matmul(w))];
    expect(err.code).toBe("shape-mismatch");
    expect(err.message).toMatch(/^shape mismatch in matmul: \[128,784\] @ \[512,10\] \(inner dims 784 ≠ 512\) at /);
    expectAtLine(err, line);
  });

  test("matmul batch dims that do not broadcast", () => {
    const [line, err] = [thisLine(), traceError([[2, 3, 4], [3, 4, 5]], (x, w) => k.matmul(x, w))];
    expect(err.message).toMatch(/^shape mismatch in matmul: batch dims of \[2,3,4\] and \[3,4,5\] do not broadcast/);
    expectAtLine(err, line);
  });

  test.each([
    ["sub", (a: k.Tensor, b: k.Tensor) => a.sub(b)],
    ["div", (a: k.Tensor, b: k.Tensor) => a.div(b)],
    ["maximum", (a: k.Tensor, b: k.Tensor) => k.maximum(a, b)],
    ["lt", (a: k.Tensor, b: k.Tensor) => a.lt(b)],
    ["ge", (a: k.Tensor, b: k.Tensor) => a.ge(b)],
    ["where", (a: k.Tensor, b: k.Tensor) => k.where(a.gt(0), a, b)],
  ])("%s names itself, not the primitive", (name, fn) => {
    const err = traceError([[3], [4]], fn);
    expect(err.message).toMatch(new RegExp(`^shape mismatch in ${name}: cannot broadcast .*\\[3\\].*\\[4\\]`));
  });

  test("a composite op's error still points at the user's line", () => {
    const helper = (t: k.Tensor) => t.reshape(5, 5);
    const [line, err] = [thisLine(), traceError([[2, 3]], (a) => helper(a).softmax(0))];
    expect(err.message).toMatch(/^shape mismatch in reshape: cannot reshape \[2,3\] \(6 elements\) to \[5,5\]/);
    expectAtLine(err, line - 1); // the frame that called reshape is `helper`, on the line above
  });

  test("cat, stack, split, gather", () => {
    const [line, err] = [thisLine(), traceError([[2, 3], [2, 4]], (a, b) => k.cat([a, b], 0))];
    expect(err.message).toMatch(/^shape mismatch in cat: \[2,3\], \[2,4\] differ outside dim 0/);
    expectAtLine(err, line);
    expect(traceError([[2, 3], [3, 2]], (a, b) => k.stack([a, b])).message).toMatch(/^shape mismatch in stack: .*\[2,3\], \[3,2\]/);
    expect(traceError([[2, 5]], (a) => a.split([2, 2], 1)).message).toMatch(/^shape mismatch in split: sizes \[2,2\] must sum to dim 1 of size 5/);
    expect(traceError([[2, 3], [2, 3]], (a, i) => a.gather(1, i)).code).toBe("dtype-mismatch");
  });
});

test("a fractional alpha for integer operands is refused, not truncated", () => {
  const err = (() => {
    try {
      k.traceFunction("t", (a: k.Tensor) => a.add(a, 0.5), [k.i32([2])]);
    } catch (e) {
      return e as KilnError;
    }
    throw new Error("expected a KilnError");
  })();
  expect(err.code).toBe("dtype-mismatch");
  expect(err.message).toMatch(/^add: alpha 0.5 must be an integer for i32 operands at /);
});

describe("invalid dims name the dim", () => {
  test.each([
    ["sum", (a: k.Tensor) => a.sum(2), /^sum: dim 2 out of range for a 2-d tensor at /],
    ["softmax", (a: k.Tensor) => a.softmax(-3), /^softmax: dim -3 out of range for a 2-d tensor at /],
    ["transpose", (a: k.Tensor) => a.transpose(0, 5), /^transpose: dim 5 out of range/],
    ["argmax", (a: k.Tensor) => a.argmax(7), /^argmax: dim 7 out of range/],
    ["cumsum", (a: k.Tensor) => a.cumsum(2), /^cumsum: dim 2 out of range/],
    ["repeated dim", (a: k.Tensor) => a.mean([1, -1]), /^mean: dim \[1,-1\] repeats an axis/],
    ["slice index", (a: k.Tensor) => a.slice(0, 3), /^slice: index 3 out of range for dim 1 of size 3/],
    ["slice step", (a: k.Tensor) => a.slice([null, null, -1]), /^slice: step must be a positive integer, got -1 for dim 0/],
    ["pad list", (a: k.Tensor) => a.pad([1, 1, 1]), /^pad: expects an even number of amounts/],
    ["narrow", (a: k.Tensor) => a.narrow(1, 2, 2), /^narrow: start 2 and length 2 do not fit dim 1 of size 3/],
    ["unsqueeze", (a: k.Tensor) => a.unsqueeze(3), /^unsqueeze: dim 3 out of range for a 2-d tensor \(expected -3 to 2\)/],
    ["tril rank", (a: k.Tensor) => a.sum(0).tril(), /^tril: expects a tensor with at least 2 dims, got \[3\]/],
  ])("%s", (_name, fn, pattern) => {
    const err = traceError([[2, 3]], fn);
    expect(err).toBeInstanceOf(KilnError);
    expect(err.message).toMatch(pattern);
    expect(err.message).toMatch(new RegExp(` at ${FILE.replace(/[./]/g, "\\$&")}:\\d+:\\d+$`));
  });
});
