// The FileCheck matcher: each directive passing and failing on small hand-written outputs,
// captures reused later, label blocks, and failure messages that name the CHECK line and
// show the region searched.

import { describe, expect, test } from "vitest";
import { readRunLine, runFileCheck } from "./filecheck.ts";

const OUTPUT = `graph @linear_relu(%x: f32[2,3], %w: f32[3,4]) {
  %0 = dot %x, %w : f32[2,4]
  %1 = const 0 : f32[2,4]
  %2 = max %0, %1 : f32[2,4]
  return %2 as y
}

graph @other(%a: f32[2]) {
  %0 = neg %a : f32[2]
  return %0 as b
}
`;

const ok = (checks: string) => runFileCheck(checks, OUTPUT);

describe("runFileCheck passes", () => {
  test("CHECK finds patterns in order, spaces match any run of blanks", () => {
    expect(ok("// CHECK: dot %x,   %w\n// CHECK: max\n// CHECK: return")).toEqual({ ok: true, message: "" });
  });

  test("CHECK-NEXT and CHECK-SAME", () => {
    expect(ok("CHECK: %0 = dot\nCHECK-NEXT: %1 = const\nCHECK-SAME: f32[2,4]\nCHECK-NEXT: max").ok).toBe(true);
  });

  test("captures are reused later, including within one line", () => {
    const checks = ["CHECK: [[D:%[0-9]+]] = dot", "CHECK: [[C:%[0-9]+]] = const", "CHECK: max [[D]], [[C]]", "CHECK: return [[R:%[0-9]+]]"].join("\n");
    expect(ok(checks).ok).toBe(true);
    expect(runFileCheck("CHECK: [[V:%[a-z]+]] = add [[V]]", "  %t = add %t").ok).toBe(true);
    expect(runFileCheck("CHECK: [[V:%[a-z]+]] = add [[V]]", "  %t = add %u").ok).toBe(false);
  });

  test("inline {{regex}}", () => {
    expect(ok("CHECK: %{{[0-9]}} = max").ok).toBe(true);
    expect(ok("CHECK: %{{[a-z]}} = max").ok).toBe(false);
  });

  test("CHECK-NOT between matches and at the end", () => {
    expect(ok("CHECK: dot\nCHECK-NOT: neg\nCHECK: return").ok).toBe(true);
    expect(ok("CHECK-LABEL: @linear_relu\nCHECK-NOT: neg\nCHECK-LABEL: @other\nCHECK: neg").ok).toBe(true);
  });

  test("CHECK-LABEL confines checks to its block", () => {
    // 'neg' is in @other, not in @linear_relu: confined to the first block it must fail.
    expect(ok("CHECK-LABEL: @linear_relu\nCHECK: neg\nCHECK-LABEL: @other").ok).toBe(false);
    expect(ok("CHECK-LABEL: @linear_relu\nCHECK: max\nCHECK-LABEL: @other\nCHECK-NEXT: neg").ok).toBe(true);
  });

  test("CHECK-EMPTY", () => {
    expect(ok("CHECK: }\nCHECK-EMPTY:\nCHECK-NEXT: graph @other").ok).toBe(true);
    expect(ok("CHECK: return %2\nCHECK-EMPTY:").ok).toBe(false);
  });

  test("regex metacharacters in plain text are literal", () => {
    expect(runFileCheck("CHECK: f32[2,4] (a+b)", "x : f32[2,4] (a+b)").ok).toBe(true);
    expect(runFileCheck("CHECK: f32[2.4]", "x : f32[2,4]").ok).toBe(false);
  });
});

describe("runFileCheck failures name the CHECK line and the region", () => {
  test("a missing pattern", () => {
    const r = ok("// CHECK: dot\n// CHECK: reduce_sum");
    expect(r.ok).toBe(false);
    const lines = r.message.split("\n");
    expect(lines[0]).toBe("check line 2: // CHECK: reduce_sum");
    expect(lines[1]).toBe("no match found");
    // Searched from the dot line (output line 2) to the end.
    expect(lines[2]).toBe("searched output lines 2–11:");
    expect(r.message).toContain("    2 |   %0 = dot %x, %w : f32[2,4]");
    expect(r.message).toContain("   11 | }");
  });

  test("CHECK-NEXT on the wrong line marks the line it looked at", () => {
    const r = ok("CHECK: dot\nCHECK-NEXT: max");
    expect(r.message.split("\n").slice(0, 2)).toEqual(["check line 2: CHECK-NEXT: max", "expected a match on the next output line (3)"]);
    expect(r.message).toContain(">    3 |   %1 = const 0 : f32[2,4]");
  });

  test("CHECK-NOT reports where the excluded text is, and the bindings so far", () => {
    const r = ok("CHECK: [[D:%[0-9]+]] = dot\nCHECK-NOT: const\nCHECK: return");
    expect(r.message.split("\n").slice(0, 3)).toEqual(["check line 2: CHECK-NOT: const", "excluded pattern found on output line 3", 'with [[D]] = "%0"']);
    expect(r.message).toContain(">    3 |   %1 = const 0 : f32[2,4]");
  });

  test("a label that is missing, an undefined variable, a bad regex, no checks", () => {
    expect(ok("CHECK-LABEL: @nope").message.split("\n").slice(0, 2)).toEqual(["check line 1: CHECK-LABEL: @nope", "label not found"]);
    expect(ok("CHECK: [[K]]").message.split("\n")[1]).toBe("variable 'K' is used before it is defined");
    expect(ok("CHECK: {{(}}").message.split("\n")[1]).toMatch(/^invalid regex/);
    expect(ok("nothing to see")).toEqual({ ok: false, message: "no CHECK lines found" });
  });
});

describe("readRunLine", () => {
  test("reads the pass list", () => {
    expect(readRunLine("// RUN: simplify, fuse\n// CHECK: x")).toEqual(["simplify", "fuse"]);
    expect(readRunLine("// CHECK: x")).toBeUndefined();
  });
});
