// The text form of Kiln's wasm kernels for people reading them (`kiln view`): the binary
// module, as the wasm target renders it (base64), disassembled by wabt into the WebAssembly
// text format. wabt is loaded on first use, so commands that never show wasm never pay for it.

interface WabtModule {
  generateNames(): void;
  applyNames(): void;
  toText(options: { foldExprs: boolean; inlineExport: boolean }): string;
  destroy(): void;
}
interface Wabt {
  readWasm(bytes: Uint8Array, features: Readonly<Record<string, boolean>>): WabtModule;
}

let wabt: Promise<Wabt> | undefined;

/** The features Kiln's kernels use: SIMD (relaxed where the engine has it), shared memory and atomics, bulk memory. */
const FEATURES = {
  readDebugNames: true,
  simd: true,
  relaxed_simd: true,
  threads: true,
  bulk_memory: true,
  mutable_globals: true,
  sat_float_to_int: true,
  sign_extension: true,
};

/**
 * Disassembles each base64 wasm module to the text format, in order, naming locals and types
 * where the binary has none; undefined for a module wabt cannot read (the page then says so).
 */
export async function wasmTexts(modules: readonly string[]): Promise<(string | undefined)[]> {
  wabt ??= import("wabt").then((m) => (m.default as unknown as () => Promise<Wabt>)());
  const w = await wabt;
  return modules.map((b64) => {
    let mod: WabtModule;
    try {
      mod = w.readWasm(new Uint8Array(Buffer.from(b64, "base64")), FEATURES);
    } catch {
      return undefined;
    }
    try {
      mod.generateNames();
      mod.applyNames();
      return mod.toText({ foldExprs: false, inlineExport: false });
    } finally {
      mod.destroy();
    }
  });
}
