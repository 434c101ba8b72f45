// The V8 flags the wasm runtime sets (runtime/wasm/engine.ts's wasmEngineFlags): process-wide,
// so a process that names one of them itself (either polarity, node's arguments or
// NODE_OPTIONS) keeps its choice, e.g. `node --wasm-lazy-compilation` for its own big modules.
import { describe, expect, it } from "vitest";
import { wasmEngineFlags } from "../../runtime/wasm/engine.ts";

const ALL = ["--experimental-wasm-relaxed-simd", "--no-liftoff", "--no-wasm-lazy-compilation"];

describe("wasm engine flags", () => {
  it("all three in a plain process, and where other flags are given", () => {
    expect(wasmEngineFlags({ env: {}, execArgv: [] })).toEqual(ALL);
    expect(wasmEngineFlags({ env: { NODE_OPTIONS: "--max-old-space-size=4096" }, execArgv: ["--conditions=kiln-source"] })).toEqual(ALL);
    expect(wasmEngineFlags(undefined)).toEqual(ALL);
  });

  it("leaves alone a flag the process names, either polarity or spelling", () => {
    expect(wasmEngineFlags({ env: {}, execArgv: ["--wasm-lazy-compilation"] })).toEqual(["--experimental-wasm-relaxed-simd", "--no-liftoff"]);
    expect(wasmEngineFlags({ env: { NODE_OPTIONS: "--wasm_lazy_compilation --liftoff" } })).toEqual(["--experimental-wasm-relaxed-simd"]);
    expect(wasmEngineFlags({ env: {}, execArgv: ["--no-liftoff"] })).toEqual(["--experimental-wasm-relaxed-simd", "--no-wasm-lazy-compilation"]);
  });

  it("KILN_WASM_LIFTOFF=1 keeps the baseline tier", () => {
    expect(wasmEngineFlags({ env: { KILN_WASM_LIFTOFF: "1" }, execArgv: [] })).toEqual(["--experimental-wasm-relaxed-simd", "--no-wasm-lazy-compilation"]);
  });
});
