// The public safetensors API: k.safetensors.read/write/encode, module.loadStateDict from
// PyTorch's files (test/fixtures/torch, written by PyTorch 1.13 through a hand-written encoder,
// with PyTorch's own forward outputs as the oracle), and exe.saveState/loadState checkpoints:
// resume equals never stopping, training checkpoints load into predict programs, and no load
// ever half-happens.

import { existsSync, mkdtempSync, readdirSync, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { beforeEach, describe, expect, test } from "vitest";
import * as k from "kiln";

const here = path.dirname(fileURLToPath(import.meta.url));
const torchDir = path.join(here, "../fixtures/torch");
const corpusDir = path.join(here, "../fixtures/safetensors");
const expected = JSON.parse(readFileSync(path.join(torchDir, "expected.json"), "utf8")) as {
  x: number[];
  outputs: Record<string, number[]>;
} & Record<string, Record<string, number[]>>;

const mlp = () => k.nn.sequential(k.nn.linear(4, 3), k.nn.relu(), k.nn.linear(3, 2));
let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), "kiln-st-"));
});

describe("k.safetensors", () => {
  test("is read, write and encode", () => {
    expect(Object.keys(k.safetensors).sort()).toEqual(["encode", "read", "write"]);
  });

  test("read takes a path or bytes and keeps each tensor's own dtype", () => {
    const file = k.safetensors.read(path.join(torchDir, "mlp-bf16.safetensors"));
    expect(file.file).toBe(path.join(torchDir, "mlp-bf16.safetensors"));
    expect([...file.tensors.keys()]).toEqual(["0.weight", "0.bias", "2.weight", "2.bias"]);
    expect(file.tensors.get("0.weight")!.dtype).toBe("bf16");
    expect(Array.from(file.tensors.get("0.weight")!.data as Float32Array)).toEqual(expected["weights-bf16"]!["0.weight"]);
    expect({ ...file.metadata }).toEqual({ format: "pt" });
    const labels = k.safetensors.read(readFileSync(path.join(torchDir, "labels-i64.safetensors")));
    expect(labels.file).toBe("<bytes>");
    expect(Array.from(labels.tensors.get("y")!.data as BigInt64Array)).toEqual([2n, 0n, 1n]);
  });

  test("a malformed file or a missing one is a KilnError in one line naming it", () => {
    const bad = path.join(corpusDir, "malformed/duplicate-tensor.safetensors");
    expect(() => k.safetensors.read(bad)).toThrow(k.KilnError);
    expect(() => k.safetensors.read(bad)).toThrow(`${bad}: header is not strict JSON: duplicate key "a"`);
    expect(() => k.safetensors.read(path.join(dir, "nope.safetensors"))).toThrow(
      `k.safetensors.read: cannot read '${path.join(dir, "nope.safetensors")}': no such file`,
    );
  });

  test("write replaces a file through a renamed temporary; a refused write leaves the old file", () => {
    const file = path.join(dir, "t.safetensors");
    k.safetensors.write(file, { a: { dtype: "f16", shape: [2], data: [1, -2] } }, { note: "x" });
    expect(Array.from(readFileSync(file).subarray(-4))).toEqual([0x00, 0x3c, 0x00, 0xc0]); // 1 = 0x3c00, -2 = 0xc000
    const before = readFileSync(file);
    expect(() => k.safetensors.write(file, { a: { dtype: "i8", shape: [1], data: [1000] } })).toThrow(k.KilnError);
    expect(Buffer.compare(readFileSync(file), before)).toBe(0);
    expect(() => k.safetensors.write(path.join(dir, "no/such/dir/t.safetensors"), { a: { dtype: "f32", shape: [], data: [1] } })).toThrow(/cannot write/);
    expect(readdirSync(dir)).toEqual(["t.safetensors"]);
    expect(k.safetensors.read(file).metadata["note"]).toBe("x");
    expect(Buffer.compare(k.safetensors.encode({ a: { dtype: "f16", shape: [2], data: [1, -2] } }, { note: "x" }), before)).toBe(0);
  });
});

describe("module.loadStateDict from PyTorch's files", () => {
  test.each(["f32", "f16", "bf16", "f64"])("%s weights: the forward pass matches PyTorch's", async (suffix) => {
    const net = mlp();
    net.loadStateDict(path.join(torchDir, `mlp-${suffix}.safetensors`));
    expect(Array.from(net.stateDict()["0.weight"]!.data)).toEqual(expected[`weights-${suffix}`]!["0.weight"]); // F64 rounds to f32, as PyTorch's .float() did
    const exe = await k.compile((x: k.Tensor) => net.call(x), [k.f32([2, 4])], { target: "js" });
    const out = (await exe.run([Float32Array.from(expected.x)])) as k.HostOutput;
    const want = expected.outputs[suffix]!;
    Array.from(out.data).forEach((v, i) => expect(Math.abs(v - want[i]!)).toBeLessThan(1e-6));
  });

  test("takes the bytes or a file k.safetensors.read returned", () => {
    const a = mlp();
    a.loadStateDict(readFileSync(path.join(torchDir, "mlp-f16.safetensors")));
    const b = mlp();
    b.loadStateDict(k.safetensors.read(path.join(torchDir, "mlp-f16.safetensors")));
    expect(Array.from(b.stateDict()["2.bias"]!.data)).toEqual(Array.from(a.stateDict()["2.bias"]!.data));
    expect(Array.from(a.stateDict()["2.bias"]!.data)).toEqual(expected["weights-f16"]!["2.bias"]);
  });

  test("a file that does not fit is refused before anything is assigned", () => {
    const net = mlp();
    const before = net.stateDict();
    const file = path.join(dir, "wrong.safetensors");
    // Three tensors fit, the last one (in name order, after 0.*) has the wrong shape.
    const state = k.safetensors.read(path.join(torchDir, "mlp-f32.safetensors")).tensors;
    k.safetensors.write(file, new Map([...state].map(([n, t]) => [n, n === "2.weight" ? { dtype: "f32" as const, shape: [2, 2], data: [1, 2, 3, 4] } : t])));
    expect(() => net.loadStateDict(file)).toThrow(`loadStateDict: ${file}: tensor "2.weight" has shape [2,2], the module expects [2,3]`);
    for (const [name, t] of Object.entries(net.stateDict())) expect(Array.from(t.data), name).toEqual(Array.from(before[name]!.data));
    expect(() => net.loadStateDict(path.join(torchDir, "labels-i64.safetensors"))).toThrow(
      /missing key\(s\): 0\.weight, 0\.bias, 2\.weight, 2\.bias; unexpected key\(s\): y/,
    );
  });

  test("integers that f32 cannot hold exactly are refused, naming the tensor and the value", () => {
    const layer = k.nn.linear(1, 1);
    const big = path.join(dir, "big.safetensors");
    k.safetensors.write(big, { weight: { dtype: "i64", shape: [1, 1], data: [2n ** 40n + 1n] }, bias: { dtype: "i64", shape: [1], data: [3n] } });
    expect(() => layer.loadStateDict(big)).toThrow(`tensor "weight": I64 element 0 is 1099511627777, which f32 cannot hold exactly`);
    k.safetensors.write(big, { weight: { dtype: "i64", shape: [1, 1], data: [-7n] }, bias: { dtype: "i64", shape: [1], data: [3n] } });
    layer.loadStateDict(big);
    expect(Array.from(layer.stateDict()["weight"]!.data)).toEqual([-7]);
  });
});

describe("exe.saveState / exe.loadState", () => {
  const batch = { x: Float32Array.of(0.5, -1, 2, 0.25, -0.5, 1.5, 0, 1), y: Int32Array.of(2, 0) };
  const trainer = async (net: k.nn.Module) =>
    k.compile(
      k.trainStep(net, (logits, y) => k.nn.functional.crossEntropy(logits, y!), k.optim.adam({ lr: 0.05 })),
      { x: k.f32([2, 4]), y: k.i32([2]) },
      { target: "js" },
    );
  const lossOf = async (exe: k.Executable) => ((await exe.run(batch)) as { loss: k.HostOutput }).loss.data[0]!;

  test("resuming from a checkpoint continues exactly where training stopped, optimizer state included", async () => {
    k.manualSeed(3);
    const a = await trainer(k.nn.sequential(k.nn.linear(4, 3)));
    for (let i = 0; i < 3; i++) await lossOf(a);
    const file = path.join(dir, "ckpt.safetensors");
    await a.saveState(file);
    const saved = k.safetensors.read(file);
    expect([...saved.tensors.keys()].sort()).toEqual(Object.keys(a.state()).sort());
    expect(Array.from(saved.tensors.get("opt.step")!.data as Int32Array)).toEqual([3]);
    expect({ ...saved.metadata }).toEqual({ format: "kiln-state", graph: a.graph.name });
    const continued = [await lossOf(a), await lossOf(a)];

    k.manualSeed(99); // other initial weights: only the checkpoint can make b equal a
    const b = await trainer(k.nn.sequential(k.nn.linear(4, 3)));
    b.loadState(file);
    expect(Array.from(b.state()["opt.step"]!.data)).toEqual([3]);
    const resumed = [await lossOf(b), await lossOf(b)];
    resumed.forEach((v, i) => expect(Math.abs(v - continued[i]!)).toBeLessThan(1e-6 * Math.max(1, Math.abs(continued[i]!))));
  });

  test("a training checkpoint loads into a predict program (its parameters only)", async () => {
    k.manualSeed(4);
    const net = k.nn.sequential(k.nn.linear(4, 3));
    const train = await trainer(net);
    await lossOf(train);
    const file = path.join(dir, "ckpt.safetensors");
    await train.saveState(file);
    const predict = await k.compile((x: k.Tensor) => net.call(x), [k.f32([2, 4])], { target: "js" });
    expect(Object.keys(predict.state()).sort()).toEqual(["0.bias", "0.weight"]);
    predict.loadState(file);
    const trained = train.state();
    for (const name of ["0.weight", "0.bias"])
      expect(Array.from(predict.state()[name]!.data), name).toEqual(Array.from(Float32Array.from(trained[name]!.data)));
  });

  test("weights alone load into a training program, which keeps its optimizer state", async () => {
    k.manualSeed(5);
    const exe = await trainer(k.nn.sequential(k.nn.linear(4, 3)));
    await lossOf(exe);
    const weights = path.join(dir, "weights.safetensors");
    k.safetensors.write(weights, {
      "0.weight": { dtype: "f16", shape: [3, 4], data: new Array(12).fill(0.5) },
      "0.bias": { dtype: "bf16", shape: [3], data: [1, 2, 3] },
    });
    exe.loadState(weights);
    expect(Array.from(exe.state()["0.bias"]!.data)).toEqual([1, 2, 3]);
    expect(Array.from(exe.state()["opt.step"]!.data)).toEqual([1]);
  });

  test("never half-loads: a bad checkpoint leaves every value as it was", async () => {
    k.manualSeed(6);
    const exe = await trainer(k.nn.sequential(k.nn.linear(4, 3)));
    await lossOf(exe);
    const before = exe.state();
    const file = path.join(dir, "ckpt.safetensors");
    await exe.saveState(file);
    const tensors = new Map(k.safetensors.read(file).tensors);
    const rewrite = (change: (m: Map<string, k.safetensors.SafeTensor>) => void): string => {
      const m = new Map(tensors);
      change(m);
      const out = path.join(dir, `bad-${m.size}-${Math.random().toString(36).slice(2)}.safetensors`);
      k.safetensors.write(out, m);
      return out;
    };
    const wrongShape = rewrite((m) => m.set("0.weight", { dtype: "f32", shape: [4, 3], data: new Float32Array(12) }));
    expect(() => exe.loadState(wrongShape)).toThrow(/tensor "0\.weight" has shape \[4,3\], the executable expects \[3,4\]/);
    const someOptimizer = rewrite((m) => m.delete([...m.keys()].find((n) => n.startsWith("opt.") && n !== "opt.step")!));
    expect(() => exe.loadState(someOptimizer)).toThrow(/missing opt\..*all of the optimizer's state or none/);
    const extra = rewrite((m) => m.set("1.weight", { dtype: "f32", shape: [1], data: Float32Array.of(1) }));
    expect(() => exe.loadState(extra)).toThrow(/unexpected 1\.weight; \(pass \{ strict: false \}/);
    const lossy = rewrite((m) => m.set("opt.step", { dtype: "i64", shape: [], data: BigInt64Array.of(2n ** 33n) }));
    expect(() => exe.loadState(lossy)).toThrow(`tensor "opt.step": I64 element 0 is 8589934592, outside i32's range`);
    expect(() => exe.loadState(path.join(corpusDir, "malformed/overlap.safetensors"))).toThrow("overlaps tensor");
    expect(() => exe.loadState(file, { strcit: true } as never)).toThrow("exe.loadState: unknown option 'strcit' (accepted: strict) — did you mean 'strict'?");
    for (const [name, t] of Object.entries(exe.state())) expect(Array.from(t.data), name).toEqual(Array.from(before[name]!.data));
    exe.loadState(extra, { strict: false });
    expect(existsSync(file)).toBe(true);
  });

  test("kiln run and the runtime read PyTorch's I64 labels as i32, refusing values out of range", async () => {
    const { decodeSafetensors } = await import("../../runtime/artifact/safetensors.ts");
    expect(Array.from(decodeSafetensors(readFileSync(path.join(torchDir, "labels-i64.safetensors")), "l").tensors["y"]!.data)).toEqual([2, 0, 1]);
    expect(() => decodeSafetensors(readFileSync(path.join(torchDir, "labels-i64-too-large.safetensors")), "labels-i64-too-large.safetensors")).toThrow(
      `labels-i64-too-large.safetensors: tensor "y": I64 element 1 is 2147483648, outside i32's range`,
    );
  });
});
