// WGSL codegen: literal spellings and helper selection (no device), then the IR semantics WGSL
// does not give directly, checked on the device against hand-derived values and the
// interpreter: NaN-propagating max, saturating f32 → i32, floor division and modulo, NaN for
// log2/sqrt of negatives, and threefry bit for bit (including a negative seed).

import { describe, expect, test } from "vitest";
import * as k from "kiln";
import { wgslConstant, wgslHelpersFor } from "../../codegen/wgsl/dialect.ts";
import { compileWebGpu } from "../../targets/webgpu.ts";
import { interpret } from "../../compiler/ir/interpret.ts";
import type { Graph } from "../../compiler/ir/types.ts";
import type { HostTensor } from "../../compiler/ir/host-tensor.ts";
import { rngValueAt } from "../../compiler/util/threefry.ts";
import { uniform } from "../../dsl/random.ts";
import { WebGpuArtifactRunner } from "../../runtime/webgpu/run-artifact.ts";
import { webGpuTestEnv } from "../util/webgpu-env.ts";

const env = await webGpuTestEnv();

describe("wgsl spellings", () => {
  test("f32 literals are exact f32 values; NaN and infinities come from bitcast helpers", () => {
    expect(wgslConstant(1, "f32")).toBe("1.0f");
    expect(wgslConstant(0.1, "f32")).toBe("0.10000000149011612f"); // Math.fround(0.1), exactly representable
    expect(wgslConstant(-0, "f32")).toBe("-0.0f");
    expect(Number(wgslConstant(1e-7, "f32").slice(0, -1))).toBe(Math.fround(1e-7)); // the literal is the f32 value itself
    expect(wgslConstant(NaN, "f32")).toBe("kiln_nan()");
    expect(wgslConstant(-Infinity, "f32")).toBe("-kiln_inf()");
    expect(wgslConstant(1e39, "f32")).toBe("kiln_inf()"); // beyond f32 range
  });

  test("i32 and bool literals; -2^31 is spelled without overflowing", () => {
    expect(wgslConstant(-5, "i32")).toBe("-5i");
    expect(wgslConstant(-2147483648, "i32")).toBe("i32(-2147483648)");
    expect(wgslConstant(1, "bool")).toBe("true");
  });

  test("a kernel gets only the helpers it calls, dependencies included", () => {
    const helpers = wgslHelpersFor("let t = kiln_maxf(a, b);").join("\n");
    expect(helpers).toMatch(/fn kiln_maxf/);
    expect(helpers).toMatch(/fn kiln_isnan/);
    expect(helpers).toMatch(/fn kiln_nan/);
    expect(helpers).not.toMatch(/fn kiln_rng|fn kiln_idiv/);
  });
});

async function runOnDevice(g: Graph, inputs: Record<string, HostTensor>): Promise<Record<string, HostTensor>> {
  const compiled = compileWebGpu(g, { verify: true, limits: env.context!.limits });
  const runner = await WebGpuArtifactRunner.create(env.context!.device, compiled.artifact);
  const out = await runner.run(inputs);
  runner.destroy();
  return out as Record<string, HostTensor>;
}

const trace = (fn: (...xs: k.Tensor[]) => unknown, specs: k.InputSpec[]) => k.traceFunction("t", fn as never, specs).graph;
const f32 = (data: number[]): HostTensor => ({ dtype: "f32", shape: [data.length], data: Float64Array.from(data) });
const i32 = (data: number[]): HostTensor => ({ dtype: "i32", shape: [data.length], data: Int32Array.from(data) });

describe.skipIf(!env.available)("wgsl semantics on the device", () => {
  test("max propagates NaN from either side (torch.maximum), relu of NaN is NaN", async () => {
    const g = trace((x, y) => [x.maximum(y), x.relu()], [k.f32([4]), k.f32([4])]);
    const out = await runOnDevice(g, { x: f32([NaN, 1, -2, NaN]), y: f32([0, NaN, -3, NaN]) });
    const [maxName, reluName] = g.outputs.map((o) => o.name);
    expect(Array.from(out[maxName!]!.data)).toEqual([NaN, NaN, -2, NaN]);
    expect(Array.from(out[reluName!]!.data)).toEqual([NaN, 1, 0, NaN]);
  });

  test("f32 → i32 truncates toward zero, saturates at ±2^31 and maps NaN to 0", async () => {
    const g = trace((x) => x.int(), [k.f32([7])]);
    const out = await runOnDevice(g, { x: f32([2.7, -2.7, 3e9, -3e9, NaN, 2147483520, -0.5]) });
    expect(Array.from(out[g.outputs[0]!.name]!.data)).toEqual([2, -2, 2147483647, -2147483648, 0, 2147483520, 0]);
  });

  test("i32 floor division and modulo follow the divisor's sign (Python, PyTorch)", async () => {
    const a = [7, -7, 7, -7, 0, -1, 2147483647, -2147483648];
    const b = [2, 2, -2, -2, 3, 5, 10, 7];
    const g = trace((x, y) => [x.floorDivide(y), x.remainder(y)], [k.i32([8]), k.i32([8])]);
    const out = await runOnDevice(g, { x: i32(a), y: i32(b) });
    const [q, r] = g.outputs.map((o) => Array.from(out[o.name]!.data));
    expect(q).toEqual(a.map((v, j) => Math.floor(v / b[j]!)));
    expect(r).toEqual(a.map((v, j) => v - Math.floor(v / b[j]!) * b[j]!));
  });

  test("log and sqrt of negatives are NaN, of zero -inf and 0", async () => {
    const g = trace((x) => [x.log(), x.sqrt()], [k.f32([3])]);
    const out = await runOnDevice(g, { x: f32([-1, 0, 4]) });
    const [log, sqrt] = g.outputs.map((o) => Array.from(out[o.name]!.data));
    expect(log!.slice(0, 2)).toEqual([NaN, -Infinity]);
    expect(log![2]).toBeCloseTo(Math.log(4), 5);
    expect(sqrt).toEqual([NaN, 0, 2]);
  });

  test("rng: threefry2x32 on the device equals compiler/util/threefry.ts bit for bit", async () => {
    const g = trace((x) => uniform(x.trace, [64, 64]).add(x.mul(0)), [k.f32([1])]);
    const rngNode = g.nodes.find((n) => n.op === "rng") as { stream: number } | undefined;
    for (const seed of [42, -7]) {
      const inputs = { x: f32([0]), seed: { dtype: "i32", shape: [], data: Int32Array.of(seed) } as HostTensor };
      const out = Array.from((await runOnDevice(g, inputs))[g.outputs[0]!.name]!.data);
      expect(out).toEqual(Array.from({ length: 4096 }, (_, j) => rngValueAt(seed, rngNode!.stream, j)));
      expect(out).toEqual(Array.from(interpret(g, inputs)[g.outputs[0]!.name]!.data));
    }
  });
});
