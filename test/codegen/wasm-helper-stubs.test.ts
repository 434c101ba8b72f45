// Every wasm kernel module keeps the helper functions' indices (idiv, imod, vexp2, vlog2, the
// half conversions), but carries code only for the helpers its sections call; the others are
// one `unreachable` each (codegen/wasm/render-program.ts), since V8 compiles a module's every
// function up front (runtime/wasm/engine.ts: --no-wasm-lazy-compilation). Read from the
// modules' code sections, and run against JavaScript's own Math.exp and floor division.

import { describe, expect, test } from "vitest";
import * as k from "kiln";
import { compileWasm } from "../../targets/wasm.ts";
import { HELPER_FUNCS, HOST_IMPORTS } from "../../codegen/wasm/module-helpers.ts";

/** The bodies of a module's defined functions (the code section, id 10), as bytes. */
function functionBodies(bytes: Uint8Array): Uint8Array[] {
  let at = 8;
  const leb = (): number => {
    let value = 0;
    let shift = 0;
    for (;;) {
      const b = bytes[at++]!;
      value |= (b & 0x7f) << shift;
      shift += 7;
      if ((b & 0x80) === 0) return value >>> 0;
    }
  };
  while (at < bytes.length) {
    const id = bytes[at++]!;
    const size = leb();
    const end = at + size;
    if (id === 10) {
      const bodies: Uint8Array[] = [];
      for (let n = leb(); n > 0; n--) {
        const len = leb();
        bodies.push(bytes.subarray(at, at + len));
        at += len;
      }
      return bodies;
    }
    at = end;
  }
  throw new Error("no code section");
}

const STUB = [0x00, 0x00, 0x0b]; // no locals, unreachable, end
const helperCount = Object.values(HELPER_FUNCS).filter((i) => i >= HOST_IMPORTS.length).length;

/** For each kernel: which defined helpers (by HELPER_FUNCS name) carry code. */
function helpersWithCode(fn: (...xs: k.Tensor[]) => k.Tensor, specs: readonly k.InputSpec[]): string[][] {
  const compiled = compileWasm(k.traceFunction("helpers", fn, specs).graph, {});
  return compiled.artifact.kernels.map((kern) => {
    const bodies = functionBodies(new Uint8Array(Buffer.from(kern.source, "base64")));
    expect(bodies.length).toBeGreaterThan(helperCount);
    return Object.entries(HELPER_FUNCS)
      .filter(([, index]) => index >= HOST_IMPORTS.length)
      .filter(([, index]) => {
        const body = [...bodies[index - HOST_IMPORTS.length]!];
        return body.length !== STUB.length || body.some((b, i) => b !== STUB[i]);
      })
      .map(([name]) => name);
  });
}

describe("wasm kernel modules carry only the helpers they call", () => {
  test("an add calls none: every helper is a stub", () => {
    expect(helpersWithCode((x, y) => x.add(y), [k.f32([64]), k.f32([64])])).toEqual([[]]);
  });

  test("exp keeps the vector exp2 and floor division the integer one; their results match JavaScript's", async () => {
    expect(helpersWithCode((x) => x.exp(), [k.f32([64])])).toEqual([["vexp2"]]);
    expect(helpersWithCode((a, b) => a.floorDivide(b), [k.i32([64]), k.i32([64])]).flat()).toContain("idiv");
    const xs = Array.from({ length: 64 }, (_, i) => (i - 32) / 8);
    const a = Array.from({ length: 64 }, (_, i) => i * 7 - 200);
    const b = Array.from({ length: 64 }, (_, i) => (i % 5) + 1 - (i % 2 === 0 ? 7 : 0));
    const exe = await k.compile((x: k.Tensor, p: k.Tensor, q: k.Tensor) => ({ e: x.exp(), d: p.floorDivide(q) }), [k.f32([64]), k.i32([64]), k.i32([64])], {
      target: "wasm",
      threads: 1,
    });
    const out = (await exe.run([xs, a, b])) as { e: { data: Float32Array }; d: { data: Int32Array } };
    xs.forEach((x, i) => expect(Math.abs(out.e.data[i]! - Math.exp(x)) / Math.exp(x)).toBeLessThan(1e-6));
    expect([...out.d.data]).toEqual(a.map((p, i) => Math.floor(p / b[i]!)));
    await exe.close?.();
  });
});
