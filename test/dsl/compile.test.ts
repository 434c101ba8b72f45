// k.compile end to end on the reference target: input structures (array / record), output
// structures (nested), every host data form, input validation, seeds. Expected values come
// from loops written here, never from Kiln.

import { describe, expect, expectTypeOf, test } from "vitest";
import * as k from "kiln";
import { currentTrace } from "../../dsl/trace.ts";
import type { HostOutput } from "../../dsl/host-data.ts";

function expectAllClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol = 1e-5): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) expect(Math.abs(actual[i]! - expected[i]!)).toBeLessThanOrEqual(tol * (1 + Math.abs(expected[i]!)));
}

/** y[i][o] = sum_j x[i][j] * w[o][j] + b[o], as plain loops. */
function linearByLoops(x: number[], w: number[], b: number[], batch: number, inF: number, outF: number): number[] {
  const y: number[] = [];
  for (let i = 0; i < batch; i++)
    for (let o = 0; o < outF; o++) {
      let acc = b[o]!;
      for (let j = 0; j < inF; j++) acc += x[i * inF + j]! * w[o * inF + j]!;
      y.push(acc);
    }
  return y;
}

const seq = (n: number, f: (i: number) => number): number[] => Array.from({ length: n }, (_, i) => f(i));

describe("k.compile", () => {
  test("positional specs: a linear layer matches an explicit loop", async () => {
    const linear = (x: k.Tensor, w: k.Tensor, b: k.Tensor) => x.matmul(w.t()).add(b);
    const exe = await k.compile(linear, [k.f32([3, 4]), k.f32([5, 4]), k.f32([5])], { target: "reference" });
    expect(exe.target).toBe("reference");
    const x = seq(12, (i) => (i % 5) - 2.5);
    const w = seq(20, (i) => Math.sin(i));
    const b = seq(5, (i) => i * 0.25);
    const y = (await exe.run([x, Float32Array.from(w), new Float64Array(b)])) as HostOutput;
    expect(y.shape).toEqual([3, 5]);
    expect(y.dtype).toBe("f32");
    // number[] f32 data is rounded to float32 on the way in, so compare against rounded inputs.
    const f = (a: number[]) => Array.from(Float32Array.from(a));
    expectAllClose(y.data, linearByLoops(f(x), f(w), b, 3, 4, 5));
  });

  test("the default target is auto: the best one that runs here, not the float64 interpreter", async () => {
    const plain = await k.compile((x: k.Tensor) => x.mul(2), [k.f32([2])]);
    const auto = await k.compile((x: k.Tensor) => x.mul(2), [k.f32([2])], { target: "auto" });
    expect(plain.target).toBe(auto.target);
    // js runs everywhere and ranks above the interpreter, so auto never picks "reference".
    expect(plain.target).not.toBe("reference");
    expect(Array.from(((await plain.run([[1.5, -2]])) as HostOutput).data)).toEqual([3, -4]);
  });

  test("graph inputs take the parameter names", async () => {
    const exe = await k.compile((x: k.Tensor, weight: k.Tensor) => x.mul(weight), [k.f32([2]), k.f32([2])]);
    const names = exe.graph.nodes.filter((n) => n.op === "input").map((n) => (n.op === "input" ? n.name : ""));
    expect(names).toEqual(["x", "weight"]);
  });

  test("record specs and nested outputs keep their structure", async () => {
    const fn = ({ a, b }: { a: k.Tensor; b: k.Tensor }) => ({ total: a.add(b), parts: [a.mul(b), { neg: a.neg(), count: b.gt(0).int().sum() }] });
    const exe = await k.compile(fn, { a: k.f32([2, 2]), b: k.f32([2, 2]) });
    const a = [1, -2, 3, 0.5];
    const b = [4, 5, -6, 0];
    const out = (await exe.run({ a, b: { shape: [2, 2], dtype: "f32", data: b } })) as {
      total: HostOutput;
      parts: [HostOutput, { neg: HostOutput; count: HostOutput }];
    };
    expect(Object.keys(out)).toEqual(["total", "parts"]);
    expect(Array.from(out.total.data)).toEqual(a.map((v, i) => v + b[i]!));
    expect(Array.from(out.parts[0].data)).toEqual(a.map((v, i) => v * b[i]!));
    expect(Array.from(out.parts[1].neg.data)).toEqual(a.map((v) => -v));
    expect(out.parts[1].count).toMatchObject({ shape: [], dtype: "i32" });
    expect(out.parts[1].count.data).toBeInstanceOf(Int32Array);
    expect(Array.from(out.parts[1].count.data)).toEqual([2]); // 4 and 5 are > 0
  });

  test("i32 and bool inputs in every accepted form", async () => {
    const fn = (idx: k.Tensor, mask: k.Tensor) => ({ picked: mask.where(idx, idx.neg()), anyTrue: mask.logicalNot() });
    const exe = await k.compile(fn, [k.i32([4]), k.bool([4])]);
    const expected = [7, -8, 9, -10];
    for (const [idx, mask] of [
      [Int32Array.of(7, 8, 9, 10), Uint8Array.of(1, 0, 1, 0)],
      [
        [7, 8, 9, 10],
        [true, false, true, false],
      ],
      [
        { shape: [4], dtype: "i32", data: [7, 8, 9, 10] },
        { shape: [4], data: [1, 0, 1, 0] },
      ],
    ] as const) {
      const out = (await exe.run([idx, mask] as unknown as k.RunInputs)) as { picked: HostOutput; anyTrue: HostOutput };
      expect(out.picked.dtype).toBe("i32");
      expect(Array.from(out.picked.data)).toEqual(expected);
      expect(out.anyTrue.dtype).toBe("bool");
      expect(out.anyTrue.data).toBeInstanceOf(Uint8Array);
      expect(Array.from(out.anyTrue.data)).toEqual([0, 1, 0, 1]);
    }
  });

  test("run's result is typed after the function's return structure", async () => {
    const exe = await k.compile((x: k.Tensor) => ({ same: x, pair: [x.neg(), x.abs()] as const }), [k.f32([1])]);
    const out = await exe.run([[-2]]);
    expectTypeOf(out.same).toEqualTypeOf<k.HostOutput>();
    expectTypeOf(out.pair[1]).toEqualTypeOf<k.HostOutput>();
    expect(Array.from(out.pair[1].data)).toEqual([2]);
    const untyped = await k.compile(((x: k.Tensor) => x) as (...args: never[]) => unknown, [k.f32([1])]);
    expectTypeOf(await untyped.run([[1]])).toEqualTypeOf<unknown>();
  });

  test("a lone tensor output comes back as one { shape, dtype, data }", async () => {
    const exe = await k.compile((x: k.Tensor) => x.sum(1), [k.f32([2, 3])]);
    const out = (await exe.run([[1, 2, 3, 4, 5, 6]])) as HostOutput;
    expect(out.shape).toEqual([2]);
    expect(Array.from(out.data)).toEqual([6, 15]);
  });

  test("a k.program compiles without repeating its specs, under its own name", async () => {
    const double = k.program((x: k.Tensor) => x.mul(2), [k.i32([3])], { name: "double" });
    expect(k.isProgram(double)).toBe(true);
    const exe = await k.compile(double);
    expect(exe.graph.name).toBe("double");
    expect(Array.from(((await exe.run([[1, 2, -3]])) as HostOutput).data)).toEqual([2, 4, -6]);
  });

  test("random ops get the seed from run options, else a per-run counter", async () => {
    // Stand-in for a random op: read the graph's seed input directly and add it to x.
    const addSeed = (x: k.Tensor) => x.add(new k.Tensor(currentTrace()!, currentTrace()!.seed()));
    const exe = await k.compile(addSeed, [k.i32([2])]);
    const run = async (opts?: k.RunOptions) => Array.from(((await exe.run([[10, 20]], opts)) as HostOutput).data);
    expect(await run()).toEqual([10, 20]);
    expect(await run()).toEqual([11, 21]);
    expect(await run({ seed: 100 })).toEqual([110, 120]);
    await expect(run({ seed: 1.5 })).rejects.toThrow(/seed must be an int32/);
  });
});

describe("executable state", () => {
  // An accumulator written against the trace's state API directly: total += x each run.
  const accumulate = (x: k.Tensor) => {
    const trace = currentTrace()!;
    const total = trace.stateInput("total", { dtype: "f32", shape: [2] }, () => ({ dtype: "f32", shape: [2], data: Float64Array.of(10, 20) }));
    const next = total.add(x);
    trace.updateState("total", next);
    return { next };
  };

  test("aliased outputs update the state after each run; state() is a snapshot", async () => {
    const exe = await k.compile(accumulate, [k.f32([2])]);
    const before = exe.state();
    expect(Array.from(before["total"]!.data)).toEqual([10, 20]);
    const first = (await exe.run([[1, 2]])) as { next: HostOutput };
    expect(Object.keys(first)).toEqual(["next"]); // state updates are not user outputs
    expect(Array.from(first.next.data)).toEqual([11, 22]);
    await exe.run([[1, 2]]);
    expect(Array.from(exe.state()["total"]!.data)).toEqual([12, 24]);
    expect(Array.from(before["total"]!.data)).toEqual([10, 20]);
  });

  test("loadState replaces values, checked, all or nothing", async () => {
    const exe = await k.compile(accumulate, [k.f32([2])]);
    exe.loadState({ total: [100, 200] });
    expect(Array.from(((await exe.run([[1, 1]])) as { next: HostOutput }).next.data)).toEqual([101, 201]);
    expect(() => exe.loadState({ total: [0, 0], bogus: [1] })).toThrow(/exe.loadState: 'bogus' is not state of this executable \(state: total\)/);
    expect(() => exe.loadState({ total: [1, 2, 3] })).toThrow(/input 'total': expected 2 values/);
    expect(Array.from(exe.state()["total"]!.data)).toEqual([101, 201]);
  });
});

describe("target registry", () => {
  // Registrations last for this test file's process only (vitest isolates files).
  test("auto skips unavailable targets and takes the highest priority; factories see the graph", async () => {
    const seen: string[] = [];
    k.registerTarget("test-offline", () => Promise.reject(new Error("never built")), { priority: 100, available: () => false });
    k.registerTarget(
      "test-echo",
      (graph) => {
        seen.push(graph.name);
        return { run: async (inputs) => ({ out: inputs["x"]! }) };
      },
      { priority: 50 },
    );
    expect(k.registeredTargets()).toEqual(expect.arrayContaining(["reference", "test-offline", "test-echo"]));
    expect((await k.availableTargets())[0]).toBe("test-echo");
    expect(await k.availableTargets()).not.toContain("test-offline");
    const exe = await k.compile(
      function identity(x: k.Tensor) {
        return x;
      },
      [k.f32([2])],
      { target: "auto" },
    );
    expect(exe.target).toBe("test-echo");
    expect(seen).toEqual(["identity"]);
    expect(Array.from(((await exe.run([[3, 4]])) as HostOutput).data)).toEqual([3, 4]);
    await expect(k.compile((x: k.Tensor) => x, [k.f32([2])], { target: "test-offline" })).rejects.toThrow(
      /target 'test-offline' is registered but cannot run on this machine/,
    );
  });

  test("a target named like an Object property is an unknown target, not a crash in the registry's lookups (k.compile prepares a deferred target before tracing)", async () => {
    for (const name of ["constructor", "toString", "__proto__"])
      await expect(k.compile((x: k.Tensor) => x, [k.f32([2])], { target: name })).rejects.toThrow(new RegExp(`unknown target '${name}'`));
  });
});

describe("k.compile errors", () => {
  const fn = (x: k.Tensor, y: k.Tensor) => x.add(y);
  const compiled = () => k.compile(fn, [k.f32([2, 3]), k.i32([3])]);

  test.each([
    [
      "too few values",
      [
        [1, 2, 3],
        [1, 2, 3],
      ],
      /input 'x': expected 6 values for f32\[2,3\] \(flat, row-major\), got 3/,
    ],
    ["wrong shape", [{ shape: [3, 2], data: new Float32Array(6) }, [1, 2, 3]], /input 'x': shape mismatch: expected \[2,3\], got \[3,2\]/],
    ["wrong dtype", [new Float32Array(6), { shape: [3], dtype: "f32", data: [1, 2, 3] }], /input 'y': dtype mismatch: expected i32, got f32/],
    ["float data for i32", [new Float32Array(6), new Float32Array(3)], /input 'y': i32 data must be Int32Array or number\[\] of integers, got Float32Array/],
    ["fractional i32", [new Float32Array(6), [1, 2.5, 3]], /input 'y': element 1 \(2.5\) is not an int32/],
    ["missing input", [new Float32Array(6)], /expected 2 input\(s\) \(x, y\), got 1/],
    ["record for positional", { x: new Float32Array(6), y: [1, 2, 3] }, /takes positional inputs/],
    ["not data", [new Float32Array(6), "abc"], /input 'y': expected Int32Array or number\[\] of integers or \{ shape, dtype, data \}, got string/],
  ])("%s", async (_, inputs, message) => {
    const exe = await compiled();
    const err = await exe.run(inputs as k.RunInputs).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(k.KilnError);
    expect((err as Error).message).toMatch(message);
  });

  test("record inputs: missing and unknown names", async () => {
    const exe = await k.compile(({ a }: { a: k.Tensor }) => a.neg(), { a: k.f32([1]) });
    await expect(exe.run({})).rejects.toThrow(/input 'a': missing data \(expected f32\[1\]\)/);
    await expect(exe.run({ a: [1], b: [2] })).rejects.toThrow(/unknown input\(s\) 'b' \(expected a\)/);
    await expect(exe.run([[1]])).rejects.toThrow(/takes a record of inputs \{ a \}/);
  });

  test("unknown target lists the registered ones", async () => {
    await expect(k.compile(fn, [k.f32([1]), k.f32([1])], { target: "tpu" })).rejects.toThrow(/unknown target 'tpu' \(available: auto, reference/);
  });

  test("auto picks an available target; a registered target is used by name", async () => {
    const exe = await k.compile(fn, [k.f32([1]), k.f32([1])], { target: "auto" });
    expect(k.registeredTargets()).toContain(exe.target);
    expect(await k.availableTargets()).toContain(exe.target);
  });

  test("missing or malformed specs", async () => {
    await expect(k.compile(fn)).rejects.toThrow(/input specs are missing/);
    await expect(k.compile(fn, [k.f32([1]), [1] as unknown as k.InputSpec])).rejects.toThrow(/spec '1' is not an input spec/);
    expect(() => k.program(fn, { x: 3 } as unknown as k.Specs)).toThrow(/k.program: spec 'x' is not an input spec/);
  });
});
