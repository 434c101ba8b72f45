// The op schema covers the Op union (at the type level and at run time, against a graph
// built by hand with one node of every op), lists each node's operands exactly, and its
// roles agree with the op lists of types.ts.

import { describe, expect, test } from "vitest";
import { printNode, valueNames } from "../../compiler/ir/printer.ts";
import { OPS, OP_SCHEMA, isOp, operands, opRole, remapOperands, roleView, type OpRole } from "../../compiler/ir/op-schema.ts";
import { BINARY_OPS, MOVEMENT_OPS, REDUCE_OPS, UNARY_OPS, type Node, type Op, type ValueId } from "../../compiler/ir/types.ts";
import { everyOpGraph } from "../util/random-graph.ts";

type Equal<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
// Type-level: the schema's keys are exactly the Op union.
const keysAreOps: Equal<keyof typeof OP_SCHEMA, Op> = true;

describe("op schema", () => {
  const g = everyOpGraph();
  const defined = new Set<number>(g.nodes.map((n) => n.id));

  test("covers every op of the Op union, and every op of a hand-built graph of each op", () => {
    expect(keysAreOps).toBe(true);
    const seen = new Set(g.nodes.map((n) => n.op));
    expect([...seen].sort()).toEqual([...OPS].sort());
    expect(OPS.every(isOp)).toBe(true);
    expect(isOp("matmul")).toBe(false);
    expect(isOp("constructor")).toBe(false);
  });

  test("operands(n) lists exactly the fields that name a defined value (besides id)", () => {
    for (const n of g.nodes) {
      const fields = Object.entries(n).filter(([k]) => !["id", "type", "loc", "op"].includes(k));
      // Every numeric field naming a value is an operand; attributes are lists, or numbers
      // that the printer shows as numbers (checked by the printed text below).
      const ops = operands(n);
      for (const id of ops) expect(defined.has(id)).toBe(true);
      const printed = printNode(n, valueNames(g));
      const names = valueNames(g);
      for (const id of ops) expect(printed).toContain(names.get(id)!);
      expect(ops.length).toBe((printed.match(/%[A-Za-z0-9_."]+/g) ?? []).length - 1); // minus the result name
      expect(fields.length).toBeGreaterThanOrEqual(ops.length);
    }
  });

  test("remapOperands maps operands and nothing else", () => {
    for (const n of g.nodes) {
      const shifted = remapOperands(n, (id) => (id + 1000) as ValueId) as unknown as Record<string, unknown>;
      const original = n as unknown as Record<string, unknown>;
      const changed = Object.keys(shifted).filter((k) => shifted[k] !== original[k]);
      const roles = OP_SCHEMA[n.op].operands as readonly string[];
      expect(changed.sort()).toEqual([...roles].sort());
      for (const r of roles) expect(shifted[r]).toBe((original[r] as number) + 1000);
      expect("id" in shifted || "type" in shifted).toBe(false);
    }
  });

  test("roles agree with the op lists in types.ts", () => {
    const byRole = (role: OpRole) => OPS.filter((op) => opRole(op) === role).sort();
    expect(byRole("elementwise")).toEqual([...UNARY_OPS, ...BINARY_OPS, "cast", "where"].sort());
    expect(byRole("reduce")).toEqual([...REDUCE_OPS].sort());
    expect(byRole("movement")).toEqual([...MOVEMENT_OPS].sort());
    expect(byRole("contraction")).toEqual(["dot"]);
    expect(byRole("gather")).toEqual(["gather"]);
    expect(byRole("source")).toEqual(["const", "input", "iota", "rng"]);
  });

  test("roleView narrows a node to its role's node types", () => {
    const describe = (n: Node): string => {
      const v = roleView(n);
      switch (v.role) {
        case "reduce":
          return `reduce over ${v.node.axes.join(",")}`;
        case "contraction":
          return `dot ${v.node.lhs},${v.node.rhs}`;
        case "gather":
          return `gather axis ${v.node.axis}`;
        case "movement":
        case "elementwise":
        case "source":
          return v.role;
      }
    };
    const reduce = g.nodes.find((n) => n.op === "reduce_sum")!;
    expect(describe(reduce)).toBe("reduce over 1");
    expect(describe(g.nodes.find((n) => n.op === "gather")!)).toBe("gather axis 1");
  });
});
