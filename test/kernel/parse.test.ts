// The kernel IR text form: print → parse gives an equal program and prints the same bytes,
// over the lowered forms (each one verified) of random graphs, every op, tiled and
// wasm-blocked contractions;
// malformed text is a KilnError at file:line:col with a caret under the offending token.

import { describe, expect, test } from "vitest";
import { parseGraph } from "../../compiler/ir/parser.ts";
import type { Graph } from "../../compiler/ir/types.ts";
import type { KernelProgram } from "../../compiler/kernel/kernel-ir.ts";
import { lowerProgram } from "../../compiler/kernel/lower.ts";
import { isKernelIrText, parseKernelModule, parseKernelProgram } from "../../compiler/kernel/parser.ts";
import { printKernelProgram } from "../../compiler/kernel/print.ts";
import { verifyKernelFindings } from "../../compiler/kernel/verify.ts";
import { planFusion } from "../../compiler/passes/fuse.ts";
import { simplify } from "../../compiler/passes/simplify.ts";
import { runPasses } from "../../compiler/pipeline.ts";
import { KilnError } from "../../compiler/util/errors.ts";
import { blockContractions } from "../../compiler/kernel/block-contraction.ts";
import { everyOpGraph, randomGraph } from "../util/random-graph.ts";

function lowered(g: Graph, tile = true): KernelProgram {
  const simplified = runPasses(g, [simplify]).graph;
  return lowerProgram(simplified, planFusion(simplified), { tile });
}

function expectRoundTrip(p: KernelProgram): void {
  // Everything lowering and the kernel passes make is valid kernel IR.
  expect(verifyKernelFindings(p)).toEqual([]);
  const text = printKernelProgram(p);
  const parsed = parseKernelProgram(text, "rt.kir");
  expect(parsed).toStrictEqual(p);
  expect(printKernelProgram(parsed)).toBe(text);
}

const matmul = parseGraph(`graph @mm(%x: f32[8,6], %w: f32[6,16], %bias: f32[16]) {
  %y = dot %x, %w : f32[8,16]
  %b = reshape %bias : f32[1,16]
  %be = expand %b : f32[8,16]
  %out = add %y, %be : f32[8,16]
  return %out as out
}`);

describe("kernel IR round trip", () => {
  test.each(Array.from({ length: 40 }, (_, i) => i))("random graph seed %i (tiled, and untiled then wasm-blocked)", (seed) => {
    expectRoundTrip(lowered(randomGraph(seed)));
    expectRoundTrip(blockContractions(lowered(randomGraph(seed), false)));
  });

  test("every op", () => {
    expectRoundTrip(lowered(everyOpGraph()));
  });

  test("a register-tiled matmul and its wasm-blocked form", () => {
    const tiled = lowered(matmul);
    expect(tiled.kernels[0]!.sections[0]!.tile).toBeDefined();
    expectRoundTrip(tiled);
    const blocked = blockContractions(lowered(matmul, false));
    expect(verifyKernelFindings(blocked)).toEqual([]);
    expectRoundTrip(blocked);
  });

  test("a section's form fact (webgpu's template choice) prints and parses back", () => {
    const p = lowered(matmul, false);
    const forms = [
      [{ kind: "row" }, "form row"],
      [{ kind: "row", threads: 128 }, "form row threads=128"],
      [{ kind: "matmul", form: "registers" }, "form matmul registers"],
      [{ kind: "matmul", form: "workgroup" }, "form matmul workgroup"],
      [{ kind: "matmul", form: "registers", params: { rows: 8, cols: 4, threads: 64, unroll: 2 } }, "form matmul registers rows=8 cols=4 threads=64 unroll=2"],
      [{ kind: "vector", width: 4 }, "form vector width=4"],
    ] as const;
    for (const [form, line] of forms) {
      const marked = { ...p, kernels: p.kernels.map((k) => ({ ...k, sections: k.sections.map((sec) => ({ ...sec, form })) })) };
      const text = printKernelProgram(marked);
      expect(text).toContain(`\n    ${line}\n`);
      expectRoundTrip(marked);
    }
  });

  test("two programs in one module; names needing quotes", () => {
    const p = lowered(matmul);
    const odd = { ...p, name: "has space", kernels: p.kernels.map((k) => ({ ...k, name: "kernel" })) };
    const text = printKernelProgram(p) + "\n" + printKernelProgram(odd);
    expect(text).toContain('program @"has space"');
    expect(text).toContain('kernel "kernel" reads(');
    expect(parseKernelModule(text)).toStrictEqual([p, odd]);
    expect(isKernelIrText(`// RUN: tile\n\n${text}`)).toBe(true);
    expect(isKernelIrText("graph @g() {\n  return\n}\n")).toBe(false);
  });
});

function parseError(text: string): KilnError {
  try {
    parseKernelProgram(text, "bad.kir");
  } catch (e) {
    if (e instanceof KilnError) return e;
    throw e;
  }
  throw new Error("expected a parse error");
}

const header = `program @p
  buffer b0 input f32[4] "x"
  buffer b1 output f32[4] "y"
  input "x" = b0
  output "y" = b1
kernel k0 reads(b0) writes(b1)
  section 0 domain [o0<4]
`;

describe("kernel IR parse errors", () => {
  test.each([
    ["an undefined loop variable", `    %0 = load f32 b0[o9]\n`, "undefined loop variable 'o9' (not in the domain or a reduction of this section)", 8, 22],
    ["a forward reference", `    %0 = exp2 f32 %1\n`, "%1 is not defined before this use", 8, 19],
    ["out-of-order numbering", `    %1 = const f32 1\n`, "expected %0 (expressions are numbered in order), found %1", 8, 5],
    ["an unknown dtype", `    %0 = const f64 1\n`, "unknown dtype 'f64'", 8, 16],
    ["an unknown op", `    %0 = frob f32 %0\n`, "unknown expression op 'frob'", 8, 10],
    ["an undeclared buffer", `    %0 = load f32 b7[o0]\n`, "buffer b7 is not declared", 8, 19],
    ["a wrong operand count", `    %0 = load f32 b0[o0]\n    %1 = add f32 %0\n`, "add takes 2 operands, got 1", 9, 10],
    ["a syntax error", `    %0 = load f32 b0[o0 +]\n`, "but found ']'", 8, 26],
    ["an unknown form", `    form frob\n`, "unknown section form 'frob' (known: row, matmul, vector, attention, prologue)", 8, 10],
    [
      "matmul parameters in part",
      `    form matmul registers rows=8\n`,
      "'form matmul' parameters come all together: missing 'cols=', 'threads=', 'unroll='",
      8,
      27,
    ],
    ["an unknown matmul parameter", `    form matmul registers size=8\n`, "'form matmul' takes 'rows=', 'cols=', 'threads=', 'unroll=', found 'size='", 8, 27],
    ["a vector form without its width", `    form vector\n`, "'form vector' needs 'width=N'", 8, 10],
    ["a prologue without its section", `    form prologue\n`, "'form prologue' needs 'of=N'", 8, 10],
    ["a prologue with another parameter", `    form prologue of=0 width=4\n`, "'form prologue' takes 'of=' only, found 'width='", 8, 24],
    ["a parameter given twice", `    form vector width=4 width=4\n`, "'width' is given twice", 8, 25],
    ["a parameter below 1", `    form vector width=0\n`, "'width' must be at least 1, got 0", 8, 23],
    ["a matmul form without its variant", `    form matmul\n`, "'form matmul' needs 'registers', 'workgroup', 'subgroup'", 8, 10],
    ["a row form with a variant", `    form row registers\n`, "'form row' takes nothing after it, found 'registers'", 8, 14],
    ["two forms", `    form row\n    form row\n`, "a section has at most one 'form'", 9, 5],
    ["a softmax_sum without its value", `    %0 = load f32 b0[o0]\n    %1 = softmax_sum f32 [r0<4] %0\n`, "softmax_sum takes a score and a value", 9, 10],
  ])("%s", (_what, body, message, line, col) => {
    const e = parseError(header + body);
    expect(e.code).toBe("ir-parse");
    expect(e.message).toContain(message);
    expect(e.diag.loc).toEqual({ file: "bad.kir", line, col });
    expect(e.message).toContain(`bad.kir:${line}:${col}`);
    // The caret sits under the column.
    const caret = e.message.split("\n").at(-1)!;
    expect(caret.indexOf("^") - caret.indexOf("|") - 2).toBe(col - 1);
  });
});
