// Kiln's V8 tier-up budget for its own compile (compiler/util/js-tiering.ts): set in Node
// unless the process names the flag itself or opts out, never outside Node.
import { describe, expect, it } from "vitest";
import { COMPILE_INTERRUPT_BUDGET, jsTieringFlag } from "../../compiler/util/js-tiering.ts";

const node = { getBuiltinModule: (_id: string): unknown => ({}), env: {}, execArgv: [] };

describe("js tiering", () => {
  it("raises V8's interrupt budget to 4 × Node 20's default of 66 KiB in a plain Node process", () => {
    expect(jsTieringFlag(node)).toBe("--interrupt-budget=270336");
    expect(COMPILE_INTERRUPT_BUDGET).toBe(270336);
  });

  it("leaves the budget alone where the process sets it (node flag or NODE_OPTIONS, either spelling) or opts out", () => {
    expect(jsTieringFlag({ ...node, execArgv: ["--interrupt-budget=1000"] })).toBeUndefined();
    expect(jsTieringFlag({ ...node, execArgv: ["--interrupt_budget", "1000"] })).toBeUndefined();
    expect(jsTieringFlag({ ...node, env: { NODE_OPTIONS: "--max-old-space-size=4096 --interrupt-budget=1000" } })).toBeUndefined();
    expect(jsTieringFlag({ ...node, env: { KILN_JS_TIERING: "default" } })).toBeUndefined();
    // Other flags do not count as deciding.
    expect(jsTieringFlag({ ...node, execArgv: ["--no-liftoff"], env: { NODE_OPTIONS: "--conditions=kiln-source" } })).toBe("--interrupt-budget=270336");
  });

  it("sets nothing outside Node (no process, or one without getBuiltinModule, as in a browser bundle)", () => {
    expect(jsTieringFlag(undefined)).toBeUndefined();
    expect(jsTieringFlag({ env: {}, execArgv: [] })).toBeUndefined();
  });
});
