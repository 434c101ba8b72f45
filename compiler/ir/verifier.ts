// The IR verifier: checks the invariants every pass must keep (SSA order, the input list,
// unique names, aliases, and each node's type against inferType). Each finding names the
// value as printed (`%3 = add %1, %2 : f32[4]`) and the rule it breaks; verifyOrThrow also
// names the pass that produced the graph.

import { KilnError, assertNever, type Diagnostic } from "../util/errors.ts";
import { dtypeInfo } from "./dtype.ts";
import { TypeRuleError, formatType, inferType, typesEqual } from "./infer.ts";
import { printNode, quoteName, valueNames } from "./printer.ts";
import type { Graph, Node, NodeSpec, TensorType, ValueId } from "./types.ts";
import { operands } from "./op-schema.ts";

/** At most this many findings are listed under a verifyOrThrow message. */
const MAX_LISTED = 20;

function statementText(n: Node, names: ReadonlyMap<ValueId, string>): string {
  try {
    return printNode(n, names);
  } catch {
    // An unknown op cannot be printed; still say which value it is.
    return `${names.get(n.id) ?? "%?"} = ${String((n as { op: unknown }).op)} …`;
  }
}

/** Runs inferType on a node as built; returns the broken rule, or undefined. */
function typeRuleViolation(n: Node, typeOf: (id: ValueId) => TensorType | undefined): string | undefined {
  const { id: _id, type, ...spec } = n;
  try {
    inferType(spec as NodeSpec, typeOf, type);
    return undefined;
  } catch (e) {
    if (!(e instanceof TypeRuleError)) throw e;
    return e.message.startsWith(`${n.op}: `) ? e.message.slice(n.op.length + 2) : e.message;
  }
}

/** Attribute rules inferType leaves open: a scalar attribute must fit the dtype it fills. */
function attributeViolation(n: Node): string | undefined {
  const fill =
    n.op === "const"
      ? { value: n.value, dtype: n.type.dtype, what: "value" }
      : n.op === "pad"
        ? { value: n.value, dtype: n.type.dtype, what: "pad value" }
        : undefined;
  if (!fill) return undefined;
  const info = dtypeInfo(fill.dtype);
  switch (info.kind) {
    case "bool":
      return fill.value !== 0 && fill.value !== 1 ? `${fill.what} ${fill.value} is not a bool (0 or 1)` : undefined;
    case "int":
      return fill.value < info.lowest || fill.value > info.highest ? `${fill.what} ${fill.value} is out of ${fill.dtype} range` : undefined;
    case "float":
      return undefined;
    default:
      return assertNever(info.kind, "dtype kind");
  }
}

function checkNodes(g: Graph, names: ReadonlyMap<ValueId, string>, report: (n: Node, rule: string) => void): void {
  const allTypes = new Map<ValueId, TensorType>();
  const seen = new Set<ValueId>();
  for (const n of g.nodes) if (!allTypes.has(n.id)) allTypes.set(n.id, n.type);
  const inputList = new Set(g.inputs);
  for (const n of g.nodes) {
    if (seen.has(n.id)) report(n, `id ${n.id} is defined twice (SSA: one definition per value)`);
    let operandsOk = true;
    for (const o of operands(n)) {
      if (!allTypes.has(o)) {
        report(n, `operand with id ${o} is not defined anywhere`);
        operandsOk = false;
      } else if (!seen.has(o)) {
        report(n, `uses ${names.get(o)} before its definition (nodes must be in topological order)`);
      }
    }
    if (n.op === "input" && !inputList.has(n.id)) report(n, `input node '${n.name}' is missing from the graph's input list`);
    if (operandsOk) {
      const violation = typeRuleViolation(n, (id) => allTypes.get(id));
      if (violation !== undefined) report(n, violation);
    }
    const badAttribute = attributeViolation(n);
    if (badAttribute !== undefined) report(n, badAttribute);
    seen.add(n.id);
  }
}

function checkInputs(g: Graph, report: (message: string) => void): Map<string, TensorType> {
  const byId = new Map(g.nodes.map((n) => [n.id, n]));
  const inputTypes = new Map<string, TensorType>();
  const listed = new Set<ValueId>();
  g.inputs.forEach((id, i) => {
    const n = byId.get(id);
    if (listed.has(id)) report(`input list: entry ${i} (id ${id}) is listed twice`);
    listed.add(id);
    if (!n) return report(`input list: entry ${i} (id ${id}) is not a node of the graph`);
    if (n.op !== "input") return report(`input list: entry ${i} is a '${n.op}' node, not an input`);
    if (inputTypes.has(n.name)) report(`input list: input name '${n.name}' is used twice`);
    inputTypes.set(n.name, n.type);
  });
  return inputTypes;
}

function checkOutputs(g: Graph, names: ReadonlyMap<ValueId, string>, inputTypes: ReadonlyMap<string, TensorType>, report: (message: string) => void): void {
  const types = new Map(g.nodes.map((n) => [n.id, n.type]));
  const outputNames = new Set<string>();
  const aliased = new Set<string>();
  for (const o of g.outputs) {
    const where = `return ${names.get(o.value) ?? `(id ${o.value})`} as ${quoteName(o.name)}`;
    if (outputNames.has(o.name)) report(`${where}: output name '${o.name}' is used twice`);
    outputNames.add(o.name);
    const type = types.get(o.value);
    if (!type) report(`${where}: the output value is not defined`);
    if (o.aliases === undefined) continue;
    const inputType = inputTypes.get(o.aliases);
    if (!inputType) report(`${where}: aliases '${o.aliases}', which is not an input`);
    else if (type && !typesEqual(type, inputType))
      report(`${where}: has type ${formatType(type)} but aliases input '${o.aliases}' of type ${formatType(inputType)}`);
    if (aliased.has(o.aliases)) report(`${where}: input '${o.aliases}' is aliased by two outputs`);
    aliased.add(o.aliases);
  }
}

/** Every broken invariant of `g`, in graph order; empty when the graph is valid. */
export function verifyGraph(g: Graph): Diagnostic[] {
  const names = valueNames(g);
  const found: Diagnostic[] = [];
  const reportNode = (n: Node, rule: string) =>
    found.push({ code: "ir-verify", message: `${statementText(n, names)}: ${rule}`, ...(n.loc ? { loc: n.loc } : {}) });
  const report = (message: string) => found.push({ code: "ir-verify", message });
  const inputTypes = checkInputs(g, report);
  checkNodes(g, names, reportNode);
  checkOutputs(g, names, inputTypes, report);
  return found;
}

/**
 * Throws a KilnError ("ir-verify") if `g` breaks an invariant. The message names the pass
 * that produced the graph and the first finding; the detail lists the rest.
 */
export function verifyOrThrow(g: Graph, passName?: string): void {
  const found = verifyGraph(g);
  const first = found[0];
  if (!first) return;
  const prefix = passName === undefined ? `graph @${quoteName(g.name)}` : `after pass '${passName}'`;
  const more = found.slice(1, MAX_LISTED + 1).map((d) => `  also: ${d.message}`);
  if (found.length > MAX_LISTED + 1) more.push(`  … and ${found.length - MAX_LISTED - 1} more`);
  throw new KilnError({ ...first, message: `${prefix}: ${first.message}`, ...(more.length ? { detail: more.join("\n") } : {}) });
}
