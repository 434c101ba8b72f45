// Canonical text form of the graph IR (grammar in docs/ir.md). The same graph always prints
// byte-identically: values are named by first definition (inputs by their name, the rest
// %0, %1, … in node order), so internal ids never leak into a dump, and parsing the text
// back (parser.ts) and printing again gives the same bytes.

import { assertNever, type SourceLoc } from "../util/errors.ts";
import { checkOptions } from "../util/options.ts";
import { formatType } from "./infer.ts";
import { opSchema, type AttrKind, type OpSchema } from "./op-schema.ts";
import { formatSymbolicShape, symbolicInfo, type SymbolicInfo } from "./symbolic.ts";
import type { Graph, GraphOutput, Node, ValueId } from "./types.ts";

export interface PrintOptions {
  /** Print `loc("file":line:col)` and `scope("path")` after nodes that carry them. Default true. */
  readonly locs?: boolean;
}

const printOptionKeys = ["locs"] as const satisfies readonly (keyof PrintOptions)[];

/** Column at which a statement's `loc(…)` starts when the statement is shorter. */
const LOC_COLUMN = 56;

/** Words the parser reads as keywords; a name spelled like one is quoted. */
const KEYWORDS = new Set(["graph", "return", "as", "aliases", "loc", "scope", "inf", "nan"]);
const PLAIN_NAME = /^[A-Za-z_][A-Za-z0-9_.]*$/;

/** A name as it appears after `%`, `@` or `as`: bare when it is a plain identifier, else a JSON string. */
export function quoteName(name: string): string {
  return PLAIN_NAME.test(name) && !KEYWORDS.has(name) ? name : JSON.stringify(name);
}

/** Shortest round-trip form of a number; `inf`, `-inf`, `nan`; `-0` keeps its sign. */
export function formatNumber(n: number): string {
  if (Number.isNaN(n)) return "nan";
  if (n === Infinity) return "inf";
  if (n === -Infinity) return "-inf";
  if (Object.is(n, -0)) return "-0";
  return String(n);
}

const formatList = (xs: readonly number[]): string => `[${xs.map(formatNumber).join(",")}]`;

export const formatLocation = (loc: SourceLoc): string => `loc(${JSON.stringify(loc.file)}:${loc.line}:${loc.col})`;
export const formatScope = (scope: string): string => `scope(${JSON.stringify(scope)})`;

/** ` loc(…) scope(…)` for a node that has them (empty when it has neither or they are not printed). */
function sourceSuffix(n: Node, opts: PrintOptions): string {
  if (opts.locs === false) return "";
  return `${n.loc ? ` ${formatLocation(n.loc)}` : ""}${n.scope !== undefined ? ` ${formatScope(n.scope)}` : ""}`;
}

/**
 * The printed name of every value of `g` (with `%`): inputs by name, other nodes numbered
 * in node order. Verifier messages and pass dumps use the same names.
 */
export function valueNames(g: Graph): Map<ValueId, string> {
  const names = new Map<ValueId, string>();
  const inputIds = new Set(g.inputs);
  for (const n of g.nodes) if (n.op === "input" && inputIds.has(n.id)) names.set(n.id, `%${quoteName(n.name)}`);
  let next = 0;
  for (const n of g.nodes) if (!names.has(n.id)) names.set(n.id, `%${next++}`);
  return names;
}

/** Name lookup that survives broken graphs (the verifier prints those too). */
const nameOf = (names: ReadonlyMap<ValueId, string>, id: ValueId): string => names.get(id) ?? `%<undefined ${id}>`;

function formatAttr(value: unknown, kind: AttrKind): string {
  switch (kind) {
    case "int":
    case "number":
      return formatNumber(value as number);
    case "ints":
      return formatList(value as readonly number[]);
    case "string":
      return JSON.stringify(value);
    default:
      return assertNever(kind, "attribute kind");
  }
}

/**
 * `op operands attributes` of a node, without result name or type, as its schema says:
 * positional operands (`add %a, %b`) or keyword ones (`rng seed=%s`), a literal
 * (`const 0.5`; `input "x"`, only reached for an input missing from g.inputs, which the
 * parser rejects), then `key=value` attributes in schema order.
 */
function formatOperation(n: Node, names: ReadonlyMap<ValueId, string>): string {
  const schema = opSchema(n.op) as OpSchema;
  const fields = n as unknown as Readonly<Record<string, unknown>>;
  const attrs = schema.attrs as Readonly<Record<string, AttrKind>>;
  const parts: string[] = [];
  if (schema.literal !== undefined) parts.push(formatAttr(fields[schema.literal], attrs[schema.literal]!));
  const operandNames = (schema.operands as readonly string[]).map((r) => [r, nameOf(names, fields[r] as ValueId)] as const);
  if (schema.operandStyle === "keyword") parts.push(...operandNames.map(([r, v]) => `${r}=${v}`));
  else if (operandNames.length > 0) parts.push(operandNames.map(([, v]) => v).join(", "));
  for (const [key, kind] of Object.entries(attrs)) if (key !== schema.literal) parts.push(`${key}=${formatAttr(fields[key], kind)}`);
  return [n.op, ...parts].join(" ");
}

function withLoc(text: string, n: Node, opts: PrintOptions): string {
  const suffix = sourceSuffix(n, opts);
  return suffix === "" ? text : `${text.padEnd(LOC_COLUMN - 2)} ${suffix}`;
}

/** One node as a statement, e.g. `%3 = add %1, %2 : f32[4]` (no indentation, no loc). */
export function printNode(n: Node, names: ReadonlyMap<ValueId, string>, sym?: SymbolicInfo): string {
  return `${nameOf(names, n.id)} = ${formatOperation(n, names)} : ${formatNodeType(n, sym)}`;
}

/** `f32[batch,784]`: the type with the graph's symbolic axes named (plain when there are none). */
function formatNodeType(n: Node, sym: SymbolicInfo | undefined): string {
  return sym ? `${n.type.dtype}${formatSymbolicShape(n.type.shape, sym.axes.get(n.id), sym.name)}` : formatType(n.type);
}

/** The symbolic analysis for printing: a graph that fails it (the verifier prints broken ones) prints plain shapes. */
function printableSymbols(g: Graph): SymbolicInfo | undefined {
  try {
    return symbolicInfo(g);
  } catch {
    return undefined;
  }
}

function formatOutput(o: GraphOutput, names: ReadonlyMap<ValueId, string>): string {
  const alias = o.aliases === undefined ? "" : ` aliases %${quoteName(o.aliases)}`;
  return `${nameOf(names, o.value)} as ${quoteName(o.name)}${alias}`;
}

export function printGraph(g: Graph, opts: PrintOptions = {}): string {
  checkOptions("printGraph", opts, printOptionKeys);
  const names = valueNames(g);
  const sym = printableSymbols(g);
  const byId = new Map(g.nodes.map((n) => [n.id, n]));
  const params = g.inputs.map((id) => {
    const n = byId.get(id);
    if (!n) return `${nameOf(names, id)}: <undefined>`;
    const max = n.op === "input" && n.dimMax !== undefined ? ` max(${n.dimMax})` : "";
    const param = `${nameOf(names, id)}: ${formatNodeType(n, sym)}${max}`;
    return `${param}${sourceSuffix(n, opts)}`;
  });
  const inputIds = new Set(g.inputs);
  const lines = [`graph @${quoteName(g.name)}(${params.join(", ")}) {`];
  for (const n of g.nodes) {
    if (n.op === "input" && inputIds.has(n.id)) continue;
    lines.push(withLoc(`  ${printNode(n, names, sym)}`, n, opts));
  }
  const outputs = g.outputs.map((o) => formatOutput(o, names)).join(", ");
  lines.push(outputs === "" ? "  return" : `  return ${outputs}`, "}");
  return `${lines.join("\n")}\n`;
}

/** Several graphs (every exported program of a model), separated by a blank line. */
export function printModule(graphs: readonly Graph[], opts: PrintOptions = {}): string {
  checkOptions("printModule", opts, printOptionKeys);
  return graphs.map((g) => printGraph(g, opts)).join("\n");
}
