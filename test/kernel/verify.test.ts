// The kernel IR verifier: a lowered program passes; each broken rule (undeclared buffer,
// operand out of order, dtype clash, undefined or escaping loop variable, out-of-bounds
// index, an output never written, a read before the write) is reported with the kernel,
// the section, the statement as printed and the pass that produced it.

import { describe, expect, test } from "vitest";
import { parseGraph } from "../../compiler/ir/parser.ts";
import { addIndex, constIndex, fromAtom, indexVar } from "../../compiler/kernel/index-expr.ts";
import type { KExpr, KernelProgram, Section } from "../../compiler/kernel/kernel-ir.ts";
import { lowerProgram } from "../../compiler/kernel/lower.ts";
import { parseKernelModule } from "../../compiler/kernel/parser.ts";
import { verifyKernelFindings, verifyKernelProgram } from "../../compiler/kernel/verify.ts";
import { planFusion } from "../../compiler/passes/fuse.ts";
import { KilnError } from "../../compiler/util/errors.ts";

/** relu(x @ w) + b: one kernel with a register-tiled contraction and an epilogue. */
function matmulProgram(): KernelProgram {
  const graph = parseGraph(`graph @mm(%x: f32[4,6], %w: f32[6,8], %bias: f32[4,8]) {
  %y = dot %x, %w : f32[4,8]
  %zero = const 0 : f32[4,8]
  %r = max %y, %zero : f32[4,8]
  %out = add %r, %bias : f32[4,8]
  return %out as out
}`);
  return lowerProgram(graph, planFusion(graph));
}

/** The program with section 0 of kernel 0 replaced. */
function withSection(p: KernelProgram, edit: (s: Section) => Section): KernelProgram {
  const k = p.kernels[0]!;
  return { ...p, kernels: [{ ...k, sections: [edit(k.sections[0]!), ...k.sections.slice(1)] }, ...p.kernels.slice(1)] };
}

const replaceExpr = (s: Section, at: number, e: KExpr): Section => ({ ...s, exprs: s.exprs.map((old, i) => (i === at ? e : old)) });

function errorOf(p: KernelProgram, pass?: string): KilnError {
  try {
    verifyKernelProgram(p, pass);
  } catch (e) {
    if (e instanceof KilnError) return e;
    throw e;
  }
  throw new Error("expected a verify error");
}

describe("verifyKernelProgram", () => {
  test("a lowered, tiled matmul with an epilogue verifies", () => {
    const p = matmulProgram();
    expect(p.kernels[0]!.sections[0]!.tile).toBeDefined();
    expect(verifyKernelFindings(p)).toEqual([]);
  });

  test("an operand used before its definition names the pass, kernel, section and statement", () => {
    const p = matmulProgram();
    const s = p.kernels[0]!.sections[0]!;
    const addAt = s.exprs.findIndex((e) => e.op === "add");
    const e = errorOf(
      withSection(p, (sec) => replaceExpr(sec, addAt, { op: "add", dtype: "f32", x: addAt + 1, y: 0 })),
      "tile",
    );
    expect(e.code).toBe("ir-verify");
    expect(e.message).toContain(`kernel IR after pass 'tile': kernel ${p.kernels[0]!.name}, section 0, '%${addAt} = add f32 %${addAt + 1}, %0'`);
    expect(e.message).toContain(`operand %${addAt + 1} is not defined before %${addAt}`);
  });

  test("a dtype clash between an operand and its use", () => {
    const p = matmulProgram();
    const s = p.kernels[0]!.sections[0]!;
    const loadAt = s.exprs.findIndex((e) => e.op === "load");
    const e = errorOf(withSection(p, (sec) => ({ ...sec, exprs: [...sec.exprs, { op: "exp2", dtype: "i32", x: loadAt }] })));
    expect(e.message).toMatch(/= exp2 i32 %\d+': x %\d+ has dtype f32, expected i32/);
  });

  test("a form fact the section cannot carry", () => {
    const p = matmulProgram();
    const noDot = errorOf(withSection(p, (sec) => ({ ...sec, dots: [], form: { kind: "matmul", form: "registers" } })));
    expect(noDot.message).toContain("'form matmul registers'");
    expect(noDot.message).toContain("a matmul needs exactly one dot fact, found 0");
    // matmulProgram is register-tiled: tiling and a matmul kernel exclude each other.
    expect(errorOf(withSection(p, (sec) => ({ ...sec, form: { kind: "matmul", form: "workgroup" } }))).message).toContain(
      "a register-tiled section cannot also be a matmul",
    );
    const noReduce = errorOf(
      withSection(p, (sec) => ({ ...sec, exprs: sec.exprs.filter((e) => e.op === "const"), stores: [], dots: [], form: { kind: "row" } })),
    );
    expect(noReduce.message).toContain("a row kernel needs a reduction in the section");
    const untiled = { ...p, kernels: p.kernels.map((k) => ({ ...k, sections: k.sections.map(({ tile: _, ...sec }) => sec) })) };
    const badParams = errorOf(
      withSection(untiled, (sec) => ({ ...sec, form: { kind: "matmul", form: "registers", params: { rows: 8, cols: 0, threads: 64, unroll: 4 } } })),
    );
    expect(badParams.message).toContain("matmul parameters must be positive integers");
    expect(errorOf(withSection(p, (sec) => ({ ...sec, form: { kind: "vector", width: 1 } }))).message).toContain(
      "a vector width must be an integer of at least 2, got 1",
    );
    expect(errorOf(withSection(p, (sec) => ({ ...sec, form: { kind: "vector", width: 7 } }))).message).toContain(
      "a vector form needs an innermost domain loop whose extent is a multiple of 7",
    );
    // form attention: a reduction to render (a softmax_sum in the forward, row sums in the
    // backward), no register tile, no dot facts.
    const attention = errorOf(withSection(p, (sec) => ({ ...sec, form: { kind: "attention" } }))).message;
    expect(attention).toContain("an attention section is not register-tiled");
    expect(attention).toContain("an attention section keeps no dot facts");
    const attentionNoReduce = errorOf(
      withSection(p, (sec) => ({ ...sec, exprs: sec.exprs.filter((e) => e.op === "const"), stores: [], dots: [], form: { kind: "attention" } })),
    ).message;
    expect(attentionNoReduce).toContain("an attention section needs a reduction");
  });

  test("a prologue section follows the launched ones, names one of them, and shares its split loop", () => {
    // section 0 reads b2, which its prologue fills one row (one iteration of o0) at a time
    const program = (prologueDomain: string, of: number, prologueFirst = false): KernelProgram => {
      const launched = `  section ${prologueFirst ? 1 : 0} domain [o0<4, o1<8]
    %0 = load f32 b2[8*o0 + o1]
    store b1[8*o0 + o1] = %0
`;
      const prologue = `  section ${prologueFirst ? 0 : 1} domain [${prologueDomain}]
    %0 = load f32 b0[8*p0 + p1]
    store b2[8*p0 + p1] = %0
    form prologue of=${of}
`;
      return parseKernelModule(
        `program @p
  buffer b0 input f32[32] "x"
  buffer b1 output f32[32] "y"
  buffer b2 temp f32[32] "t"
  input "x" = b0
  output "y" = b1
kernel k0 reads(b0, b2) writes(b1, b2)
${prologueFirst ? prologue + launched : launched + prologue}`,
        "p.kir",
      )[0]!;
    };
    verifyKernelProgram(program("p0<4, p1<8", 0));
    expect(errorOf(program("p0<4, p1<8", 1)).message).toContain("'of=1' must name a launched section of the kernel");
    expect(errorOf(program("p0<4, p1<8", 1, true)).message).toContain("a launched section cannot follow a prologue section (section 0)");
    expect(errorOf(program("p0<2, p1<8", 0)).message).toContain("its split loop (p0<2) must match section 0's (o0<4)");
  });

  test("a softmax_sum's score and value are f32", () => {
    const p = matmulProgram();
    const s = p.kernels[0]!.sections[0]!;
    const loadAt = s.exprs.findIndex((e) => e.op === "load");
    const vars = [{ kind: "var" as const, name: "r9", extent: 3 }];
    const e = errorOf(
      withSection(p, (sec) => ({
        ...sec,
        exprs: [...sec.exprs, { op: "const", dtype: "i32", value: 1 }, { op: "softmax_sum", dtype: "f32", vars, score: loadAt, value: sec.exprs.length }],
      })),
    );
    expect(e.message).toMatch(/softmax_sum f32 \[r9<3\] %\d+, %\d+': value %\d+ has dtype i32, expected f32/);
  });

  test("an undefined loop variable and a load outside its buffer", () => {
    const p = matmulProgram();
    const ghost = indexVar("q9", 3);
    const e1 = errorOf(
      withSection(p, (sec) => ({ ...sec, exprs: [...sec.exprs, { op: "load", dtype: "f32", buffer: 0, index: fromAtom(ghost), valid: [] }] })),
    );
    expect(e1.message).toContain("loop variable 'q9' is not defined (neither a domain variable nor a reduction's)");
    const o0 = p.kernels[0]!.sections[0]!.domain[0]!;
    const e2 = errorOf(
      withSection(p, (sec) => ({
        ...sec,
        exprs: [...sec.exprs, { op: "load", dtype: "f32", buffer: 0, index: addIndex(fromAtom(o0), constIndex(30)), valid: [] }],
      })),
    );
    // x is f32[4,6] (24 elements); o0 < 1 after the 4x4 tile, so o0 + 30 spans [30, 30].
    expect(e2.message).toContain("load from b0: index ranges over [30, 30], outside the buffer's 24 elements [4,6]");
  });

  test("a reduction variable that escapes to a store", () => {
    const p = matmulProgram();
    const s = p.kernels[0]!.sections[0]!;
    const r = s.exprs.find((e) => e.op === "reduce_sum");
    if (r?.op !== "reduce_sum") throw new Error("no reduction");
    const k = r.vars[0]!;
    const loadOfK = s.exprs.findIndex((e) => e.op === "load" && e.index.terms.some((t) => t.atom.kind === "var" && t.atom.name === k.name));
    const e = errorOf(withSection(p, (sec) => ({ ...sec, stores: [...sec.stores, { buffer: 3, index: constIndex(0), value: loadOfK }] })));
    expect(e.message).toContain(`uses loop variable '${k.name}' outside the reduction that binds it`);
  });

  test("a buffer never written, and a read before any write", () => {
    const p = matmulProgram();
    const extra = { id: p.buffers.length, name: "t99", dtype: "f32" as const, shape: [2], kind: "temp" as const };
    const e1 = errorOf({ ...p, buffers: [...p.buffers, extra] });
    expect(e1.message).toContain(`temp buffer b${extra.id} "t99" is never written by any kernel`);
    const reader = withSection({ ...p, buffers: [...p.buffers, extra] }, (sec) => ({
      ...sec,
      exprs: [...sec.exprs, { op: "load", dtype: "f32", buffer: extra.id, index: constIndex(0), valid: [] }],
    }));
    const k = reader.kernels[0]!;
    const e2 = errorOf({ ...reader, kernels: [{ ...k, reads: [...k.reads, extra.id] }] });
    expect(e2.message).toContain(`reads b${extra.id} "t99" before any earlier kernel writes it`);
  });

  test("a load from a buffer the kernel does not bind", () => {
    const p = matmulProgram();
    const k = p.kernels[0]!;
    const e = errorOf({ ...p, kernels: [{ ...k, reads: k.reads.filter((b) => b !== 0) }] });
    expect(e.message).toMatch(/load from b0, which kernel \S+ does not list in reads/);
  });
});
