// Parser: well-formed text builds the expected graph; malformed text fails with a KilnError
// "ir-parse" whose message, file:line:col and caret excerpt point at the offending token.
// Expected positions are counted by hand from the inputs below.

import { describe, expect, test } from "vitest";
import { printGraph } from "../../compiler/ir/printer.ts";
import { parseGraph, parseModule } from "../../compiler/ir/parser.ts";
import { KilnError } from "../../compiler/util/errors.ts";

const GOOD = `graph @mlp(%x: f32[2,3], %w: f32[4,3]) {
  %0 = permute %w perm=[1,0] : f32[3,4]
  %1 = dot %x, %0 : f32[2,4]
  return %1 as logits
}
`;

function parseError(text: string, file = "model.kir"): KilnError {
  try {
    parseGraph(text, file);
  } catch (e) {
    if (e instanceof KilnError) return e;
    throw e;
  }
  throw new Error("expected a parse error");
}

/** 1-based column of the `nth` (0-based) occurrence of `needle` in `line`. */
function col(line: string, needle: string, nth = 0): number {
  let at = line.indexOf(needle);
  for (let i = 0; i < nth; i++) at = line.indexOf(needle, at + 1);
  if (at < 0) throw new Error(`'${needle}' not in '${line}'`);
  return at + 1;
}

/** GOOD with line `line` (1-based) replaced. */
const withLine = (line: number, replacement: string): string =>
  GOOD.split("\n")
    .map((l, i) => (i === line - 1 ? replacement : l))
    .join("\n");

describe("parseGraph builds graphs", () => {
  test("nodes, types, inputs and outputs", () => {
    const g = parseGraph(GOOD);
    expect(g.name).toBe("mlp");
    expect(g.nodes.map((n) => n.op)).toEqual(["input", "input", "permute", "dot"]);
    expect(g.nodes[2]).toMatchObject({ op: "permute", x: g.inputs[1], perm: [1, 0], type: { dtype: "f32", shape: [3, 4] } });
    expect(g.nodes[3]).toMatchObject({ op: "dot", lhs: g.inputs[0], rhs: g.nodes[2]!.id });
    expect(g.outputs).toEqual([{ name: "logits", value: g.nodes[3]!.id }]);
  });

  test("locations are kept on nodes and inputs", () => {
    const g = parseGraph(`graph @f(%x: f32[] loc("a.ts":1:2)) {\n  %0 = neg %x : f32[] loc("b.ts":30:4)\n  return %0 as y\n}`);
    expect(g.nodes[0]!.loc).toEqual({ file: "a.ts", line: 1, col: 2 });
    expect(g.nodes[1]!.loc).toEqual({ file: "b.ts", line: 30, col: 4 });
  });

  test("module scopes are kept on nodes and inputs, print after the location and round-trip", () => {
    const text = `graph @f(%x: f32[] loc("a.ts":1:2) scope("blocks.0")) {\n  %0 = neg %x : f32[]                                   loc("b.ts":30:4) scope("blocks.0.attn")\n  %1 = exp2 %0 : f32[]                                  scope("head")\n  return %1 as y\n}\n`;
    const g = parseGraph(text);
    expect(g.nodes.map((n) => n.scope)).toEqual(["blocks.0", "blocks.0.attn", "head"]);
    expect(g.nodes[2]!.loc).toBeUndefined();
    expect(printGraph(g)).toBe(text);
    expect(printGraph(g, { locs: false })).not.toContain("scope(");
  });

  test("statement results may have any unique name; quoted and bare names are the same", () => {
    const g = parseGraph(`graph @f(%"x": f32[2]) {\n  %sum = add %x, %"x" : f32[2]\n  %"two words" = neg %sum : f32[2]\n  return %"two words" as out\n}`);
    expect(g.nodes.map((n) => n.op)).toEqual(["input", "add", "neg"]);
  });

  test("a module may hold several graphs; parseGraph wants exactly one", () => {
    const two = `${GOOD}\n${GOOD.replace("@mlp", "@other")}`;
    expect(parseModule(two).map((g) => g.name)).toEqual(["mlp", "other"]);
    expect(parseModule("// nothing here\n")).toEqual([]);
    expect(() => parseGraph(two, "m.kir")).toThrow("expected exactly one graph, found 2 at m.kir:1:1");
  });
});

describe("parse errors point at the token", () => {
  test("a bad token, with the caret excerpt", () => {
    const e = parseError(withLine(3, "  %1 = dot %x ] %0 : f32[2,4]"));
    expect(e.code).toBe("ir-parse");
    expect(e.diag.loc).toEqual({ file: "model.kir", line: 3, col: 15 });
    expect(e.message).toBe("expected ',', an attribute or ':' but found ']' at model.kir:3:15\n  3 |   %1 = dot %x ] %0 : f32[2,4]\n    |               ^");
  });

  test("a missing comma inside a list", () => {
    const e = parseError(withLine(2, "  %0 = permute %w perm=[1 0] : f32[3,4]"));
    expect(e.message.split("\n")[0]).toBe(`expected ']' but found '0' at model.kir:2:${col("  %0 = permute %w perm=[1 0] : f32[3,4]", "0]")}`);
  });

  test("an unknown op", () => {
    const e = parseError(withLine(3, "  %1 = matmul %x, %0 : f32[2,4]"));
    expect(e.message).toBe("unknown op 'matmul' at model.kir:3:8\n  3 |   %1 = matmul %x, %0 : f32[2,4]\n    |        ^");
  });

  test("an undefined value", () => {
    const e = parseError(withLine(3, "  %1 = dot %x, %7 : f32[2,4]"));
    expect(e.message.split("\n")[0]).toBe(`undefined value %7 at model.kir:3:${col("  %1 = dot %x, %7 : f32[2,4]", "%7")}`);
    expect(e.diag.detail).toBe(`  3 |   %1 = dot %x, %7 : f32[2,4]\n    | ${" ".repeat(col("  %1 = dot %x, %7 : f32[2,4]", "%7") - 1)}^`);
  });

  test("a declared type that disagrees with the rule points at the type", () => {
    const e = parseError(withLine(3, "  %1 = dot %x, %0 : f32[4,2]"));
    expect(e.message.split("\n")[0]).toBe(
      `dot: declared type f32[4,2] but the rule gives f32[2,4] at model.kir:3:${col("  %1 = dot %x, %0 : f32[4,2]", "f32")}`,
    );
  });

  test("operands that break the type rule point at the op", () => {
    const e = parseError(withLine(3, "  %1 = dot %x, %w : f32[2,4]"));
    expect(e.message.split("\n")[0]).toBe("dot: contraction dims differ: [2,3] @ [4,3] at model.kir:3:8");
  });

  test("bad attributes: wrong kind, unknown, missing, twice, out of range", () => {
    const first = (line: string) => parseError(withLine(2, line)).message.split("\n")[0];
    expect(first("  %0 = permute %w perm=1 : f32[3,4]")).toBe("attribute 'perm' must be a list of integers like [0,1], got 1 at model.kir:2:24");
    expect(first("  %0 = permute %w perm=[1,0] axes=[0] : f32[3,4]")).toBe(
      `permute has no attribute 'axes' (expected perm) at model.kir:2:${col("  %0 = permute %w perm=[1,0] axes=[0] : f32[3,4]", "axes")}`,
    );
    expect(first("  %0 = permute %w : f32[3,4]")).toBe("permute needs attribute 'perm' at model.kir:2:8");
    expect(first("  %0 = permute %w perm=[1,0] perm=[1,0] : f32[3,4]")).toBe(
      `attribute 'perm' given twice at model.kir:2:${col("  %0 = permute %w perm=[1,0] perm=[1,0] : f32[3,4]", "perm=", 1)}`,
    );
    expect(first("  %0 = permute %w perm=[1.5,0] : f32[3,4]")).toBe("'perm' entries must be an integer, got 1.5 at model.kir:2:25");
    expect(first("  %0 = permute %w perm=[1,2] : f32[3,4]")).toBe("permute: [1,2] is not a permutation of rank 2 at model.kir:2:8");
  });

  test("wrong operand counts and kinds", () => {
    const first = (line: string) => parseError(withLine(3, line)).message.split("\n")[0];
    expect(first("  %1 = dot %x, %0, %0 : f32[2,4]")).toBe(`dot takes 2 operands, got 3 at model.kir:3:${col("  %1 = dot %x, %0, %0 : f32[2,4]", "%0 :")}`);
    expect(first("  %1 = dot %x : f32[2,4]")).toBe("dot takes 2 operands, got 1 at model.kir:3:12");
    expect(first("  %1 = dot %x, 3 : f32[2,4]")).toBe("dot operands must be values, got 3 at model.kir:3:16");
    expect(first("  %1 = const %x : f32[2,4]")).toBe("const takes a number, got %x at model.kir:3:14");
  });

  test("types: unknown dtype, negative or fractional dims", () => {
    const first = (text: string) => parseError(text).message.split("\n")[0];
    expect(first(GOOD.replace("%x: f32[2,3]", "%x: f64[2,3]"))).toBe("unknown dtype 'f64' (expected f32, f16, bf16, i32, bool) at model.kir:1:16");
    expect(first(GOOD.replace("%x: f32[2,3]", "%x: f32[-2,3]"))).toBe("a dimension must be non-negative, got -2 at model.kir:1:20");
    expect(first(GOOD.replace("%x: f32[2,3]", "%x: f32[2.5,3]"))).toBe("a dimension must be an integer, got 2.5 at model.kir:1:20");
  });

  test("names: redefinition, duplicates, numbered inputs, inputs as statements", () => {
    const first = (text: string) => parseError(text).message.split("\n")[0];
    expect(first(withLine(3, "  %0 = dot %x, %0 : f32[2,4]"))).toBe("value %0 is already defined at model.kir:3:3");
    expect(first(GOOD.replace("%w: f32[4,3]", "%x: f32[4,3]"))).toBe("duplicate input name 'x' at model.kir:1:26");
    expect(first(GOOD.replace("%w: f32[4,3]", "%1: f32[4,3]"))).toBe(
      `an input needs a name, not a number: write %"1" for an input named '1' at model.kir:1:26`,
    );
    expect(first(withLine(3, "  %1 = input : f32[2,4]"))).toBe("inputs are declared in the graph header, not as statements at model.kir:3:8");
    expect(first(withLine(4, "  return %1 as a, %0 as a"))).toBe(`duplicate output name 'a' at model.kir:4:${col("  return %1 as a, %0 as a", "as a", 1) + 3}`);
    expect(first(`${GOOD}\n${GOOD}`)).toBe("graph @mlp is already defined at model.kir:7:7");
  });

  test("aliases must name an input of the output's type", () => {
    const first = (line: string) => parseError(withLine(4, line)).message.split("\n")[0];
    expect(first("  return %1 as y aliases %0")).toBe(`aliases must name an input, got %0 at model.kir:4:${col("  return %1 as y aliases %0", "%0")}`);
    expect(first("  return %1 as y aliases %q")).toBe(`aliases must name an input, got %q at model.kir:4:${col("  return %1 as y aliases %q", "%q")}`);
    expect(first("  return %1 as y aliases %w")).toBe(
      `output 'y' has type f32[2,4] but aliases %w of type f32[4,3] at model.kir:4:${col("  return %1 as y aliases %w", "%w")}`,
    );
  });

  test("end of input and stray characters", () => {
    const cut = GOOD.slice(0, GOOD.indexOf("}"));
    // The caret sits just past the last character of the text.
    const last = "  return %1 as logits";
    expect(parseError(cut).message).toBe(
      `expected '}' but found end of input at model.kir:4:${last.length + 1}\n  4 | ${last}\n    | ${" ".repeat(last.length)}^`,
    );
    expect(parseError(withLine(2, "  %0 = permute %w perm=[1,0] : f32[3,4] ;")).message.split("\n")[0]).toBe(
      `unexpected character ';' at model.kir:2:${col("  %0 = permute %w perm=[1,0] : f32[3,4] ;", ";")}`,
    );
    expect(parseError(`${GOOD}}`).message.split("\n")[0]).toBe("expected 'graph' or end of input but found '}' at model.kir:6:1");
    expect(parseError(`graph mlp() {\n  return\n}`).message.split("\n")[0]).toBe("expected a graph name but found 'mlp' at model.kir:1:7");
  });

  test("a bad escape in a quoted name", () => {
    expect(parseError(GOOD.replace("%x: f32", '%"a\\q": f32')).message.split("\n")[0]).toBe(
      `invalid escape in quoted name %"a\\q" at model.kir:1:${col('graph @mlp(%"a\\q": f32[2,3]', '%"a')}`,
    );
  });
});
