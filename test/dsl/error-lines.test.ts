// biome-ignore-all format: each case keeps thisLine() and the failing call on one source line, which is what it checks
// Errors a user's call makes outside tracing — a run's inputs and options, an optimizer's or a
// layer's arguments, a compile option of the wrong type — end with the caller's file:line:col
// like trace errors do (test/dsl/errors.test.ts), and a compile option's value of the wrong type
// is refused by name instead of being read as truthy or ignored.

import { describe, expect, test } from "vitest";
import * as k from "kiln";
import { atLineChecker, thisLine, kilnErrorOf } from "../util/kiln-error.ts";

const expectAtLine = atLineChecker(import.meta.url);

describe("exe.run's errors at the call name the caller's line", async () => {
  const exe = await k.compile((x: k.Tensor) => ({ y: x.mul(2) }), [k.f32([2, 3])], { target: "js" });

  test("an input of the wrong length", async () => {
    const [line, err] = [thisLine(), await kilnErrorOf(() => exe.run([[1, 2, 3]]))];
    expect(err.message).toMatch(/^input 'x': expected 6 values for f32\[2,3\]/);
    expectAtLine(err, line);
  });

  test("keep naming no output", async () => {
    const [line, err] = [thisLine(), await kilnErrorOf(() => exe.run([[1, 2, 3, 4, 5, 6]], { keep: ["z"] }))];
    expect(err.message).toMatch(/keep: 'z' is not an output/);
    expectAtLine(err, line);
  });

  test("out of the wrong type", async () => {
    const [line, err] = [thisLine(), await kilnErrorOf(() => exe.run([[1, 2, 3, 4, 5, 6]], { out: 5 as never }))];
    expect(err.message).toMatch(/out: expected a typed array/);
    expectAtLine(err, line);
  });

  test("exe.save given no folder path", async () => {
    const [line, err] = [thisLine(), await kilnErrorOf(() => exe.save(5 as never))];
    expect(err.message).toMatch(/^exe\.save: expected a folder path \(a non-empty string\), got number/);
    expectAtLine(err, line);
    const [line2, err2] = [thisLine(), await kilnErrorOf(() => exe.save(""))];
    expect(err2.message).toMatch(/got an empty string/);
    expectAtLine(err2, line2);
  });

  test("exe.profile's inputs", async () => {
    const [line, err] = [thisLine(), await kilnErrorOf(() => exe.profile([[1]]))];
    expect(err.message).toMatch(/expected 6 values/);
    expectAtLine(err, line);
  });
});

describe("optimizer and layer arguments name the caller's line", () => {
  test("sgd's lr", async () => {
    const [line, err] = [thisLine(), await kilnErrorOf(() => k.optim.sgd({ lr: -1 }))];
    expect(err.message).toMatch(/^sgd: lr must be a non-negative number, got -1 at /);
    expectAtLine(err, line);
  });

  test("adam's betas", async () => {
    const [line, err] = [thisLine(), await kilnErrorOf(() => k.optim.adam({ betas: [2, 0.9] }))];
    expect(err.message).toMatch(/betas must be in \[0, 1\)/);
    expectAtLine(err, line);
  });

  test("a dropout's p", async () => {
    const [line, err] = [thisLine(), await kilnErrorOf(() => k.nn.dropout(2))];
    expect(err.message).toMatch(/^Dropout: p must be in \[0, 1\], got 2 at /);
    expectAtLine(err, line);
  });

  test("a conv layer's groups", async () => {
    const [line, err] = [thisLine(), await kilnErrorOf(() => k.nn.conv2d(4, 4, 3, { groups: 3 }))];
    expect(err.message).toMatch(/must be divisible by groups 3 at /);
    expectAtLine(err, line);
  });

  test("k.trainStep's arguments", async () => {
    const [line, err] = [thisLine(), await kilnErrorOf(() => k.trainStep(k.nn.linear(2, 2), (o) => o.sum(), k.optim.sgd({ lr: 0.1 }), { clipGradNorm: -1 }))];
    expect(err.message).toMatch(/^k\.trainStep: clipGradNorm must be a positive number, got -1 at /);
    expectAtLine(err, line);
  });

  test("k.data.batches' batchSize", async () => {
    const [line, err] = [thisLine(), await kilnErrorOf(() => k.data.batches({ x: new Float32Array(6) }, { batchSize: 0 }))];
    expect(err.message).toMatch(/^k\.data\.batches: batchSize must be a positive integer, got 0 at /);
    expectAtLine(err, line);
  });

  test("a linear layer's size", async () => {
    const [line, err] = [thisLine(), await kilnErrorOf(() => k.nn.linear(0, 3))];
    expect(err.message).toMatch(/^Linear: inFeatures must be a positive integer, got 0 at /);
    expectAtLine(err, line);
  });
});

describe("k.compile refuses an option value of the wrong type", () => {
  const f = (x: k.Tensor) => x.mul(2);
  for (const [key, value, want] of [
    ["checkNumerics", "yes", "a boolean"],
    ["fuseAttention", "yes", "a boolean"],
    ["verify", 1, "a boolean"],
    ["name", 5, "a string"],
  ] as const) {
    test(`${key}: ${JSON.stringify(value)}`, async () => {
      const [line, err] = [thisLine(), await kilnErrorOf(() => k.compile(f, [k.f32([2])], { target: "js", [key]: value } as never))];
      expect(err.message).toMatch(new RegExp(`^k.compile: option ${key} must be ${want}, got ${JSON.stringify(value)} at `));
      expectAtLine(err, line);
    });
  }

  test("undefined stays the default", async () => {
    const exe = await k.compile(f, [k.f32([2])], { target: "js", checkNumerics: undefined, fuseAttention: undefined, name: undefined });
    expect(Array.from(((await exe.run([[1, 2]])) as { data: Float32Array }).data)).toEqual([2, 4]);
  });
});

describe("k.compile's arguments name the caller's line", () => {
  test("no function", async () => {
    const [line, err] = [thisLine(), await kilnErrorOf(() => k.compile(5 as never, [k.f32([2])], { target: "js" }))];
    expect(err.message).toMatch(/^k.compile: expected a function or a k.program, got number at /);
    expectAtLine(err, line);
  });

  test("no specs", async () => {
    const [line, err] = [thisLine(), await kilnErrorOf(() => k.compile((x: k.Tensor) => x, undefined, { target: "js" }))];
    expect(err.message).toMatch(/^k.compile: input specs are missing/);
    expectAtLine(err, line);
  });
});

describe("k.compileModel's checks name the caller's line", () => {
  test("a first argument that is no module", async () => {
    const [line, err] = [thisLine(), await kilnErrorOf(() => k.compileModel({} as never, { f: (x: k.Tensor) => x }, [k.f32([2])] as never, { target: "js" }))];
    expect(err.message).toMatch(/^k.compileModel: the first argument must be the module/);
    expectAtLine(err, line);
  });

  test("an option value of the wrong type", async () => {
    const [line, err] = [thisLine(), await kilnErrorOf(() => k.compileModel(k.nn.linear(2, 2), { f: (x: k.Tensor) => x }, [k.f32([2])] as never, { target: "js", checkNumerics: 1 as never }))];
    expect(err.message).toMatch(/^k.compileModel: option checkNumerics must be a boolean, got 1 at /);
    expectAtLine(err, line);
  });
});

describe("an operand that is neither a tensor, a number nor a boolean is refused, not read as NaN or a number", () => {
  const trace = (fn: (x: k.Tensor) => unknown) => () => k.traceFunction("t", fn as never, [k.f32([3])]);
  for (const [what, value, shown] of [
    ["a string", "3", '"3"'],
    ["null", null, "null"],
    ["undefined", undefined, "undefined"],
    ["an object", { a: 1 }, "an object"],
    ["an array", [1, 2, 3], "an array"],
  ] as const) {
    test(`x.add(${what})`, async () => {
      const [line, err] = [thisLine(), await kilnErrorOf(trace((x) => x.add(value as never)))];
      expect(err.message).toMatch(new RegExp(`^add: operand must be a tensor, a number or a boolean, got ${shown.replace(/[[\]{}()"]/g, "\\$&")} at `));
      expectAtLine(err, line);
    });
  }

  test("the other elementwise entry points: mul, lt, maximum, pow, where, logicalAnd", async () => {
    for (const fn of [
      (x: k.Tensor) => x.mul("2" as never),
      (x: k.Tensor) => x.lt(null as never),
      (x: k.Tensor) => k.maximum(x, "1" as never),
      (x: k.Tensor) => x.pow("2" as never),
      (x: k.Tensor) => k.where(x.gt(0), x, "0" as never),
      (x: k.Tensor) => x.gt(0).logicalAnd({} as never),
    ])
      expect((await kilnErrorOf(trace(fn))).message).toMatch(/operand must be a tensor, a number or a boolean/);
  });

  test("numbers, booleans, NaN and ±Infinity stay operands", async () => {
    const exe = await k.compile((x: k.Tensor) => k.where(x.gt(2), x.add(true).mul(2).add(Number.NaN), Infinity).maximum(-Infinity), [k.f32([3])], { target: "js" });
    expect(Array.from(((await exe.run([[1, 2, 3]])) as { data: Float32Array }).data)).toEqual([Infinity, Infinity, Number.NaN]) // 1 + true, · 2, + NaN where x > 2, else ∞;
  });
});

describe("a tensor argument given something else is named, not a TypeError from inside Kiln", () => {
  const F = k.nn.functional;
  const lin = k.nn.linear(3, 2);
  const trace = (fn: (x: k.Tensor, w: k.Tensor) => unknown) => () => k.traceFunction("t", fn as never, [k.f32([2, 3]), k.f32([2, 3])]);
  for (const [name, fn, want] of [
    ["x.matmul(object)", (x: k.Tensor) => x.matmul({ x } as never), /^matmul: other must be a tensor, got an object at /],
    ["k.matmul(object, w)", (x: k.Tensor, w: k.Tensor) => k.matmul({ x } as never, w), /^matmul: input must be a tensor, got an object at /],
    ["F.linear(object, w)", (x: k.Tensor, w: k.Tensor) => F.linear({ x } as never, w), /^linear: input must be a tensor, got an object at /],
    ["a Linear layer called on a record", (x: k.Tensor) => lin.call({ x } as never), /^linear: input must be a tensor, got an object at /],
    ["F.conv2d(undefined, w)", (_x: k.Tensor, w: k.Tensor) => F.conv2d(undefined as never, w), /^conv2d: input must be a tensor, got undefined at /],
    ["F.layerNorm(array)", () => F.layerNorm([1, 2, 3] as never, 3), /^layerNorm: input must be a tensor, got an array at /],
    ["F.crossEntropy(x, object)", (x: k.Tensor) => F.crossEntropy(x, {} as never), /^crossEntropy: target must be a tensor, got an object at /],
  ] as const) {
    test(name, async () => {
      const err = await kilnErrorOf(trace(fn as never));
      expect(err.message).toMatch(want);
      expect(err.message).toMatch(/ at test\/dsl\/error-lines\.test\.ts:\d+:\d+$/);
    });
  }
});

describe("run, profile and loadState refuse a non-boolean flag instead of reading it as true or false", async () => {
  const net = k.nn.sequential(k.nn.linear(3, 2));
  const exe = await k.compile(k.trainStep(net, (o, y) => k.nn.mseLoss(o, y!), k.optim.sgd({ lr: 0.1 })), { x: k.f32([2, 3]), y: k.f32([2, 2]) }, { target: "js" });
  const inputs = { x: new Float32Array(6), y: new Float32Array(4) };

  test("exe.run's skipNonFinite", async () => {
    const [line, err] = [thisLine(), await kilnErrorOf(() => exe.run(inputs, { skipNonFinite: "yes" as never }))];
    expect(err.message).toMatch(/^exe\.run: skipNonFinite: expected true or false, got string at /);
    expectAtLine(err, line);
  });

  test("exe.profile's peaks", async () => {
    const [line, err] = [thisLine(), await kilnErrorOf(() => exe.profile(inputs, { peaks: "no" as never }))];
    expect(err.message).toMatch(/^exe\.profile: peaks: expected true or false, got string at /);
    expectAtLine(err, line);
  });

  test("exe.loadState's strict", async () => {
    const err = await kilnErrorOf(() => exe.loadState({ "0.weight": new Float32Array(6) }, { strict: "no" as never }));
    expect(err.message).toMatch(/^exe\.loadState: strict: expected true or false, got string/);
  });
});

describe("loadState and setHyper name the caller's line", async () => {
  const net = k.nn.sequential(k.nn.linear(3, 2));
  const exe = await k.compile(k.trainStep(net, (o, y) => k.nn.mseLoss(o, y!), k.optim.sgd({ lr: 0.1 })), { x: k.f32([2, 3]), y: k.f32([2, 2]) }, { target: "js" });

  test("exe.loadState with an entry of the wrong length", async () => {
    const [line, err] = [thisLine(), await kilnErrorOf(() => exe.loadState({ "0.weight": new Float32Array(5) }))];
    expect(err.message).toMatch(/expected 6 values for f32\[2,3\]/);
    expectAtLine(err, line);
  });

  test("exe.loadState with an unknown entry", async () => {
    const [line, err] = [thisLine(), await kilnErrorOf(() => exe.loadState({ "0.weigh": new Float32Array(6) }))];
    expect(err.message).toMatch(/^exe\.loadState: '0\.weigh' is not state of this executable/);
    expectAtLine(err, line);
  });

  test("exe.setHyper with a bad value", async () => {
    const [line, err] = [thisLine(), await kilnErrorOf(() => exe.setHyper({ lr: "x" as never }))];
    expect(err.message).toMatch(/^exe\.setHyper: hyper\.lr must be a number, got "x" at /);
    expectAtLine(err, line);
  });

  test("model.loadState", async () => {
    const model = await k.compileModel(net, { predict: (x: k.Tensor) => net.call(x) }, { x: k.f32([2, 3]) }, { target: "js" });
    const [line, err] = [thisLine(), await kilnErrorOf(() => model.loadState({ "0.weigh": new Float32Array(6) }))];
    expect(err.message).toMatch(/^model\.loadState: '0\.weigh' is not state/);
    expectAtLine(err, line);
  });
});
