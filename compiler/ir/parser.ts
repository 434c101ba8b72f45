// Parser of the IR text form (docs/ir.md): chevrotain turns text into a token tree, then
// each statement is rebuilt through GraphBuilder, so every node passes inferType and its
// declared `: type` must equal the rule's. Every error is a KilnError "ir-parse" at the
// offending token's file:line:col with a caret excerpt of that line.

import { EmbeddedActionsParser, EOF, type IRecognitionException, type IToken, type Lexer, type TokenType } from "chevrotain";
import { KilnError, assertNever, type SourceLoc } from "../util/errors.ts";
import { GraphBuilder } from "./graph.ts";
import { formatSymbolicShape, symbolicInfo, type SymbolicInfo } from "./symbolic.ts";
import { TypeRuleError, formatType, inferType, typesEqual } from "./infer.ts";
import * as T from "./lexer.ts";
import { isOp, opSchema, type AttrKind, type OpSchema } from "./op-schema.ts";
import type { Graph, GraphOutput, NodeSpec, TensorType, ValueId } from "./types.ts";
import { DTYPES, type DType } from "./dtype.ts";

// ---- token tree: what the grammar produces; decoding happens in the build step ----

interface TypeSyntax {
  readonly dtype: IToken;
  readonly dims: readonly DimSyntax[];
}
/** A dimension: `784`, or a symbolic one `batch` / `16*batch` (a scale token and the symbol's name). */
interface DimSyntax {
  readonly size?: IToken;
  readonly symbol?: IToken;
}
interface LocSyntax {
  readonly file: IToken;
  readonly line: IToken;
  readonly col: IToken;
}
type AttrSyntax = { readonly name: IToken; readonly value: IToken } | { readonly name: IToken; readonly list: readonly IToken[]; readonly open: IToken };
interface ParamSyntax {
  readonly name: IToken;
  readonly type: TypeSyntax;
  /** `max(256)` after the type of a size input. */
  readonly max?: { readonly keyword: IToken; readonly n: IToken };
  readonly loc?: LocSyntax;
  readonly scopeName?: IToken;
}
interface StatementSyntax {
  readonly result: IToken;
  readonly op: IToken;
  readonly args: readonly IToken[];
  readonly attrs: readonly AttrSyntax[];
  readonly type: TypeSyntax;
  readonly loc?: LocSyntax;
  readonly scopeName?: IToken;
}
interface OutputSyntax {
  readonly value: IToken;
  readonly name: IToken;
  readonly aliases?: IToken;
}
interface GraphSyntax {
  readonly name: IToken;
  readonly params: readonly ParamSyntax[];
  readonly statements: readonly StatementSyntax[];
  readonly outputs: readonly OutputSyntax[];
}

const describeToken = (t: IToken): string => (t.tokenType === EOF ? "end of input" : `'${t.image}'`);
const labelOf = (t: TokenType): string => t.LABEL ?? t.name;
const firstTokens = (paths: TokenType[][]): string[] => [...new Set(paths.map((p) => (p[0] ? labelOf(p[0]) : "end of input")))];
const oneOf = (labels: string[]): string => (labels.length <= 1 ? (labels[0] ?? "something else") : `${labels.slice(0, -1).join(", ")} or ${labels.at(-1)}`);

/**
 * Chevrotain's error messages in Kiln's words ("expected X but found Y"), shared by the graph
 * and kernel IR parsers. `topLevel` says what may start where parsing stopped early;
 * `expectedLabel` may reword the expected token of a mismatch in a given rule.
 */
export function irErrorMessages(topLevel: string, expectedLabel: (expected: TokenType, ruleName: string) => string = labelOf) {
  return {
    buildMismatchTokenMessage: (o: { expected: TokenType; actual: IToken; ruleName: string }) =>
      `expected ${expectedLabel(o.expected, o.ruleName)} but found ${describeToken(o.actual)}`,
    buildNotAllInputParsedMessage: (o: { firstRedundant: IToken }) => `expected ${topLevel} or end of input but found ${describeToken(o.firstRedundant)}`,
    buildNoViableAltMessage: (o: { expectedPathsPerAlt: TokenType[][][]; actual: IToken[] }) =>
      `expected ${oneOf(firstTokens(o.expectedPathsPerAlt.flat()))} but found ${describeToken(o.actual[0]!)}`,
    buildEarlyExitMessage: (o: { expectedIterationPaths: TokenType[][]; actual: IToken[] }) =>
      `expected ${oneOf(firstTokens(o.expectedIterationPaths))} but found ${describeToken(o.actual[0]!)}`,
  };
}

// After a statement's operands, a ',' or an attribute could also have come: say so.
const errorMessages = irErrorMessages("'graph'", (expected, ruleName) =>
  ruleName === "statement" && expected === T.Colon ? "',', an attribute or ':'" : labelOf(expected),
);

class IrGrammar extends EmbeddedActionsParser {
  constructor() {
    super([...T.ALL_TOKENS], { errorMessageProvider: errorMessages, maxLookahead: 2 });
    this.performSelfAnalysis();
  }

  readonly module = this.RULE("module", (): GraphSyntax[] => {
    const graphs: GraphSyntax[] = [];
    this.MANY(() => graphs.push(this.SUBRULE(this.graph)));
    return graphs;
  });

  private readonly graph = this.RULE("graph", (): GraphSyntax => {
    this.CONSUME(T.Graph);
    const name = this.CONSUME(T.GraphName);
    this.CONSUME(T.LParen);
    const params: ParamSyntax[] = [];
    this.MANY_SEP({ SEP: T.Comma, DEF: () => params.push(this.SUBRULE(this.param)) });
    this.CONSUME(T.RParen);
    this.CONSUME(T.LBrace);
    const statements: StatementSyntax[] = [];
    this.MANY1(() => statements.push(this.SUBRULE(this.statement)));
    this.CONSUME(T.Return);
    const outputs: OutputSyntax[] = [];
    this.MANY_SEP1({ SEP: T.Comma, DEF: () => outputs.push(this.SUBRULE(this.output)) });
    this.CONSUME(T.RBrace);
    return { name, params, statements, outputs };
  });

  private readonly param = this.RULE("param", (): ParamSyntax => {
    const name = this.CONSUME(T.ValueName);
    this.CONSUME(T.Colon);
    const type = this.SUBRULE(this.type);
    const max = this.OPTION2(() => {
      const keyword = this.CONSUME(T.Identifier);
      this.CONSUME(T.LParen);
      const n = this.CONSUME(T.NumberLiteral);
      this.CONSUME(T.RParen);
      return { keyword, n };
    });
    const loc = this.OPTION(() => this.SUBRULE(this.loc));
    const scopeName = this.OPTION1(() => this.SUBRULE(this.scope));
    return { name, type, ...(max ? { max } : {}), ...(loc ? { loc } : {}), ...(scopeName ? { scopeName } : {}) };
  });

  private readonly statement = this.RULE("statement", (): StatementSyntax => {
    const result = this.CONSUME(T.ValueName);
    this.CONSUME(T.Equals);
    const op = this.CONSUME(T.Identifier);
    const args: IToken[] = [];
    this.MANY_SEP({
      SEP: T.Comma,
      DEF: () => args.push(this.OR([{ ALT: () => this.CONSUME1(T.ValueName) }, { ALT: () => this.CONSUME(T.NumberLiteral) }])),
    });
    const attrs: AttrSyntax[] = [];
    this.MANY(() => attrs.push(this.SUBRULE(this.attribute)));
    this.CONSUME(T.Colon);
    const type = this.SUBRULE(this.type);
    const loc = this.OPTION(() => this.SUBRULE(this.loc));
    const scopeName = this.OPTION1(() => this.SUBRULE(this.scope));
    return { result, op, args, attrs, type, ...(loc ? { loc } : {}), ...(scopeName ? { scopeName } : {}) };
  });

  private readonly attribute = this.RULE("attribute", (): AttrSyntax => {
    const name = this.CONSUME(T.Identifier);
    this.CONSUME(T.Equals);
    return this.OR([
      { ALT: () => ({ name, value: this.CONSUME(T.NumberLiteral) }) },
      { ALT: () => ({ name, value: this.CONSUME(T.ValueName) }) },
      { ALT: () => ({ name, open: this.LA(1), list: this.SUBRULE(this.numberList) }) },
    ]);
  });

  private readonly numberList = this.RULE("numberList", (): IToken[] => {
    const items: IToken[] = [];
    this.CONSUME(T.LBracket);
    this.MANY_SEP({ SEP: T.Comma, DEF: () => items.push(this.CONSUME(T.NumberLiteral)) });
    this.CONSUME(T.RBracket);
    return items;
  });

  private readonly type = this.RULE("type", (): TypeSyntax => {
    const dtype = this.CONSUME(T.Identifier);
    const dims: DimSyntax[] = [];
    this.CONSUME(T.LBracket);
    this.MANY_SEP({
      SEP: T.Comma,
      DEF: () =>
        dims.push(
          this.OR([
            { ALT: () => ({ symbol: this.CONSUME2(T.Identifier) }) },
            {
              ALT: () => {
                const size = this.CONSUME(T.NumberLiteral);
                const symbol = this.OPTION(() => {
                  this.CONSUME(T.Star);
                  return this.CONSUME3(T.Identifier);
                });
                return symbol ? { size, symbol } : { size };
              },
            },
          ]),
        ),
    });
    this.CONSUME(T.RBracket);
    return { dtype, dims };
  });

  /** `scope("blocks.0.attn")`: the module path a node was traced in. */
  private readonly scope = this.RULE("scope", (): IToken => {
    this.CONSUME(T.Scope);
    this.CONSUME(T.LParen);
    const path = this.CONSUME(T.StringLiteral);
    this.CONSUME(T.RParen);
    return path;
  });

  private readonly loc = this.RULE("loc", (): LocSyntax => {
    this.CONSUME(T.Loc);
    this.CONSUME(T.LParen);
    const file = this.CONSUME(T.StringLiteral);
    this.CONSUME(T.Colon);
    const line = this.CONSUME(T.NumberLiteral);
    this.CONSUME1(T.Colon);
    const col = this.CONSUME1(T.NumberLiteral);
    this.CONSUME(T.RParen);
    return { file, line, col };
  });

  private readonly output = this.RULE("output", (): OutputSyntax => {
    const value = this.CONSUME(T.ValueName);
    this.CONSUME(T.As);
    const name = this.OR([{ ALT: () => this.CONSUME(T.Identifier) }, { ALT: () => this.CONSUME(T.StringLiteral) }]);
    const aliases = this.OPTION(() => {
      this.CONSUME(T.Aliases);
      return this.CONSUME1(T.ValueName);
    });
    return { value, name, ...(aliases ? { aliases } : {}) };
  });
}

let grammar: IrGrammar | undefined;

// ---- errors with a caret excerpt ----

/** Raises a parse error at a 1-based line and column of `text`. */
export function failAt(text: string, file: string, line: number, col: number, message: string): never {
  const source = text.split("\n")[line - 1]?.replace(/\r$/, "") ?? "";
  const gutter = String(line);
  const detail = `  ${gutter} | ${source}\n  ${" ".repeat(gutter.length)} | ${" ".repeat(Math.max(0, col - 1))}^`;
  throw new KilnError({ code: "ir-parse", message, loc: { file, line, col }, detail });
}

/** The text being parsed and the file name its errors carry (shared with the kernel IR parser). */
export interface ParseContext {
  readonly text: string;
  readonly file: string;
}
type Context = ParseContext;

export function failAtToken(ctx: ParseContext, t: IToken, message: string): never {
  if (t.tokenType !== EOF && t.startLine !== undefined && t.startColumn !== undefined && t.startLine > 0)
    failAt(ctx.text, ctx.file, t.startLine, t.startColumn, message);
  // End of input: point just past the last non-blank character.
  const lines = ctx.text.trimEnd().split("\n");
  return failAt(ctx.text, ctx.file, lines.length, (lines.at(-1) ?? "").length + 1, message);
}

/**
 * Lexes `ctx.text`, runs `rule` of `parser` over the tokens and throws the first lexing or
 * parsing error at its line and column (the graph and kernel IR parsers both read text this way).
 */
export function parseTokens<R>(ctx: ParseContext, lexer: Lexer, parser: EmbeddedActionsParser, rule: () => R): R {
  const lexed = lexer.tokenize(ctx.text);
  const lexError = lexed.errors[0];
  if (lexError) failAt(ctx.text, ctx.file, lexError.line ?? 1, lexError.column ?? 1, `unexpected character '${ctx.text[lexError.offset]}'`);
  parser.input = lexed.tokens;
  const result = rule();
  const parseError: IRecognitionException | undefined = parser.errors[0];
  if (parseError) failAtToken(ctx, parseError.token, parseError.message);
  return result;
}

function syntaxTree(ctx: Context): GraphSyntax[] {
  const parser = (grammar ??= new IrGrammar());
  return parseTokens(ctx, T.irLexer(), parser, () => parser.module());
}

// ---- decoding tokens ----

function decodeName(ctx: Context, t: IToken): string {
  try {
    return T.unquoteName(t.image);
  } catch {
    return failAtToken(ctx, t, `invalid escape in quoted name ${t.image}`);
  }
}

function decodeInteger(ctx: Context, t: IToken, what: string): number {
  const n = T.numberValue(t.image);
  if (!Number.isSafeInteger(n)) failAtToken(ctx, t, `${what} must be an integer, got ${t.image}`);
  return n;
}

/** The graph's symbol (from its size input's `max(N)`), which symbolic dims name. */
interface SymbolDecl {
  readonly name: string;
  readonly max: number;
}

/** A type and, where a dim names the symbol, its axes (`scale` × the symbol). */
function decodeType(ctx: Context, s: TypeSyntax, sym: SymbolDecl | undefined): TensorType & { symbolic: { axis: number; scale: number }[] } {
  const dtype = s.dtype.image as DType;
  if (!DTYPES.includes(dtype)) failAtToken(ctx, s.dtype, `unknown dtype '${s.dtype.image}' (expected ${DTYPES.join(", ")})`);
  const symbolic: { axis: number; scale: number }[] = [];
  const shape = s.dims.map((d, axis) => {
    const scale = d.size ? decodeInteger(ctx, d.size, "a dimension") : 1;
    if (d.size && scale < 0) failAtToken(ctx, d.size, `a dimension must be non-negative, got ${d.size.image}`);
    if (!d.symbol) return scale;
    if (!sym || d.symbol.image !== sym.name)
      failAtToken(ctx, d.symbol, `unknown symbolic dimension '${d.symbol.image}' (declare it as an input '%${d.symbol.image}: i32[] max(N)')`);
    if (scale < 1) failAtToken(ctx, d.size!, `the scale of a symbolic dimension must be positive, got ${scale}`);
    symbolic.push({ axis, scale });
    return scale * sym!.max;
  });
  return { dtype, shape, symbolic };
}

/** `loc` and `scope` of a statement or input, as NodeSpec fields. */
function decodeSource(ctx: Context, s: { readonly loc?: LocSyntax; readonly scopeName?: IToken }): { loc?: SourceLoc; scope?: string } {
  return { ...decodeLoc(ctx, s.loc), ...(s.scopeName ? { scope: decodeName(ctx, s.scopeName) } : {}) };
}

function decodeLoc(ctx: Context, s: LocSyntax | undefined): { loc?: SourceLoc } {
  if (!s) return {};
  const file = decodeName(ctx, s.file);
  return { loc: { file, line: decodeInteger(ctx, s.line, "a line"), col: decodeInteger(ctx, s.col, "a column") } };
}

// ---- op signatures (op-schema.ts): operands by role, attributes by kind ----

/** How an attribute is read: as the schema's kind, or `value` for a keyword operand (`seed=%s`). */
type AttrReading = AttrKind | "value";

/** The builder plus the text-name → value map of one graph being parsed. */
interface Scope {
  readonly builder: GraphBuilder;
  readonly values: Map<string, ValueId>;
  readonly symbol?: SymbolDecl;
  /** The written type of every value, to check symbolic dims against the analysis. */
  readonly typeTokens: Map<ValueId, TypeSyntax>;
}

/** Numbered names (`%3`) and named ones (`%x`, `%"3"`) live apart: `%3` ≠ `%"3"`. */
const scopeKey = (ctx: Context, t: IToken): string => (/^%\d+$/.test(t.image) ? `#${t.image.slice(1)}` : `$${decodeName(ctx, t)}`);

function lookup(ctx: Context, scope: Scope, t: IToken): ValueId {
  return scope.values.get(scopeKey(ctx, t)) ?? failAtToken(ctx, t, `undefined value ${t.image}`);
}

function define(ctx: Context, scope: Scope, t: IToken, id: ValueId): void {
  const key = scopeKey(ctx, t);
  if (scope.values.has(key)) failAtToken(ctx, t, `value ${t.image} is already defined`);
  scope.values.set(key, id);
}

function decodeAttr(ctx: Context, scope: Scope, a: AttrSyntax, kind: AttrReading): unknown {
  const name = a.name.image;
  if (kind === "ints") {
    if (!("list" in a)) return failAtToken(ctx, a.value, `attribute '${name}' must be a list of integers like [0,1], got ${a.value.image}`);
    return a.list.map((t) => decodeInteger(ctx, t, `'${name}' entries`));
  }
  if ("list" in a) return failAtToken(ctx, a.open, `attribute '${name}' must be ${kind === "value" ? "a value name" : "a number"}, not a list`);
  const isValue = a.value.tokenType === T.ValueName;
  if (kind === "value")
    return isValue ? lookup(ctx, scope, a.value) : failAtToken(ctx, a.value, `attribute '${name}' must be a value name, got ${a.value.image}`);
  if (isValue) return failAtToken(ctx, a.value, `attribute '${name}' must be a number, got ${a.value.image}`);
  switch (kind) {
    case "int":
      return decodeInteger(ctx, a.value, `attribute '${name}'`);
    case "number":
      return T.numberValue(a.value.image);
    case "string":
      // Only `input "name"` has a string, and inputs are declared in the header.
      return failAtToken(ctx, a.value, `attribute '${name}' cannot be written as key=value`);
    default:
      return assertNever(kind, "attribute kind");
  }
}

/** Turns one statement into a NodeSpec, checking operand count and attributes against the op's signature. */
function nodeSpec(ctx: Context, scope: Scope, s: StatementSyntax): NodeSpec {
  const op = s.op.image;
  if (op === "input") failAtToken(ctx, s.op, `inputs are declared in the graph header, not as statements`);
  if (!isOp(op)) return failAtToken(ctx, s.op, `unknown op '${op}'`);
  const sig = opSchema(op) as OpSchema;
  const spec: Record<string, unknown> = { op };
  const operandRoles = sig.operands as readonly string[];
  const keywordOperands = sig.operandStyle === "keyword";
  const positional = sig.literal !== undefined ? 1 : keywordOperands ? 0 : operandRoles.length;
  if (s.args.length !== positional) {
    const at = s.args[positional] ?? s.args.at(-1) ?? s.op;
    failAtToken(ctx, at, `${op} takes ${positional} ${sig.literal !== undefined ? "number" : `operand${positional === 1 ? "" : "s"}`}, got ${s.args.length}`);
  }
  s.args.forEach((t, i) => {
    if (sig.literal !== undefined) {
      if (t.tokenType !== T.NumberLiteral) failAtToken(ctx, t, `${op} takes a number, got ${t.image}`);
      spec[sig.literal] = T.numberValue(t.image);
    } else {
      if (t.tokenType !== T.ValueName) failAtToken(ctx, t, `${op} operands must be values, got ${t.image}`);
      spec[operandRoles[i]!] = lookup(ctx, scope, t);
    }
  });
  const expected: Record<string, AttrReading> = {};
  if (keywordOperands) for (const r of operandRoles) expected[r] = "value";
  for (const [key, kind] of Object.entries(sig.attrs as Readonly<Record<string, AttrKind>>)) if (key !== sig.literal) expected[key] = kind;
  for (const a of s.attrs) {
    const name = a.name.image;
    const kind = Object.hasOwn(expected, name) ? expected[name] : undefined;
    if (!kind)
      failAtToken(ctx, a.name, `${op} has no attribute '${name}'${Object.keys(expected).length ? ` (expected ${Object.keys(expected).join(", ")})` : ""}`);
    if (Object.hasOwn(spec, name)) failAtToken(ctx, a.name, `attribute '${name}' given twice`);
    spec[name] = decodeAttr(ctx, scope, a, kind!);
  }
  const missing = Object.keys(expected).filter((k) => !Object.hasOwn(spec, k));
  if (missing.length) failAtToken(ctx, s.op, `${op} needs attribute${missing.length > 1 ? "s" : ""} ${missing.map((m) => `'${m}'`).join(", ")}`);
  return spec as unknown as NodeSpec;
}

function addStatement(ctx: Context, scope: Scope, s: StatementSyntax): void {
  const spec = { ...nodeSpec(ctx, scope, s), ...decodeSource(ctx, s) } as NodeSpec;
  const { symbolic: _, ...declared } = decodeType(ctx, s.type, scope.symbol);
  const b = scope.builder;
  try {
    inferType(spec, (id) => (b.has(id) ? b.typeOf(id) : undefined), declared);
  } catch (e) {
    if (!(e instanceof TypeRuleError)) throw e;
    // A complaint about the declared result points at the type, anything else at the op.
    const aboutResult = /declared|result must|cannot (reshape|expand)|must not change/.test(e.message);
    failAtToken(ctx, aboutResult ? s.type.dtype : s.op, e.message);
  }
  const id = b.add(spec, declared);
  define(ctx, scope, s.result, id);
  scope.typeTokens.set(id, s.type);
}

function buildGraph(ctx: Context, g: GraphSyntax): Graph {
  const sizeParams = g.params.filter((p) => p.max !== undefined);
  for (const p of sizeParams) if (p.max && p.max.keyword.image !== "max") failAtToken(ctx, p.max.keyword, `expected 'max(N)' after an input's type`);
  if (sizeParams.length > 1) failAtToken(ctx, sizeParams[1]!.name, `one symbolic dimension per graph`);
  const symbol = sizeParams[0] ? { name: decodeName(ctx, sizeParams[0].name), max: decodeInteger(ctx, sizeParams[0].max!.n, "a max") } : undefined;
  const scope: Scope = { builder: new GraphBuilder(decodeName(ctx, g.name)), values: new Map(), ...(symbol ? { symbol } : {}), typeTokens: new Map() };
  const inputTypes = new Map<string, TensorType>();
  for (const p of g.params) {
    const name = decodeName(ctx, p.name);
    if (/^%\d+$/.test(p.name.image)) failAtToken(ctx, p.name, `an input needs a name, not a number: write %"${name}" for an input named '${name}'`);
    if (inputTypes.has(name)) failAtToken(ctx, p.name, `duplicate input name '${name}'`);
    const { symbolic, ...type } = decodeType(ctx, p.type, symbol);
    if (symbolic.length > 1) failAtToken(ctx, p.type.dtype, `input '${name}': at most one symbolic axis`);
    inputTypes.set(name, type);
    const marks = { ...(symbolic[0] ? { symbolic: symbolic[0] } : {}), ...(p.max ? { dimMax: symbol!.max } : {}) };
    const id = scope.builder.add({ op: "input", name, ...marks, ...decodeSource(ctx, p) }, type);
    define(ctx, scope, p.name, id);
    scope.typeTokens.set(id, p.type);
  }
  for (const s of g.statements) addStatement(ctx, scope, s);
  const outputs: GraphOutput[] = [];
  const outputNames = new Set<string>();
  for (const o of g.outputs) {
    const value = lookup(ctx, scope, o.value);
    const name = decodeName(ctx, o.name);
    if (outputNames.has(name)) failAtToken(ctx, o.name, `duplicate output name '${name}'`);
    outputNames.add(name);
    if (!o.aliases) {
      outputs.push({ name, value });
      continue;
    }
    const aliased = decodeName(ctx, o.aliases);
    const inputType = /^%\d+$/.test(o.aliases.image) ? undefined : inputTypes.get(aliased);
    if (!inputType) failAtToken(ctx, o.aliases, `aliases must name an input, got ${o.aliases.image}`);
    const outType = scope.builder.typeOf(value);
    if (!typesEqual(inputType!, outType))
      failAtToken(ctx, o.aliases, `output '${name}' has type ${formatType(outType)} but aliases ${o.aliases.image} of type ${formatType(inputType!)}`);
    outputs.push({ name, value, aliases: aliased });
  }
  const graph = scope.builder.build(outputs);
  checkSymbolicDims(ctx, graph, scope);
  return graph;
}

/** Every written type names the symbol exactly where the analysis finds it (so print → parse → print is the identity). */
function checkSymbolicDims(ctx: Context, graph: Graph, scope: Scope): void {
  let info: SymbolicInfo | undefined;
  try {
    info = symbolicInfo(graph);
  } catch (e) {
    if (!(e instanceof KilnError)) throw e;
    const where = graph.nodes.find((n) => n.loc === e.diag.loc && e.diag.loc !== undefined);
    const token = where ? scope.typeTokens.get(where.id) : scope.typeTokens.values().next().value;
    return failAtToken(ctx, token?.dtype ?? ({ image: "", startLine: 1, startColumn: 1 } as IToken), e.diag.message);
  }
  for (const [id, t] of scope.typeTokens) {
    const written = t.dims.map((d) => (d.symbol ? (d.size ? `${d.size.image}*${d.symbol.image}` : d.symbol.image) : d.size!.image)).join(",");
    const states = info?.axes.get(id);
    const node = graph.nodes.find((n) => n.id === id)!;
    const expected = info ? formatSymbolicShape(node.type.shape, states, info.name).slice(1, -1) : node.type.shape.join(",");
    if (written.replace(/\s/g, "") !== expected)
      failAtToken(ctx, t.dtype, `type [${written}] does not match the symbolic dimensions the graph gives this value: [${expected}]`);
  }
}

/** Parses every graph in `text` (a module: the dump of several exported programs). */
export function parseModule(text: string, file = "<input>"): Graph[] {
  const ctx: Context = { text, file };
  const seen = new Set<string>();
  return syntaxTree(ctx).map((g) => {
    const graph = buildGraph(ctx, g);
    if (seen.has(graph.name)) failAtToken(ctx, g.name, `graph ${g.name.image} is already defined`);
    seen.add(graph.name);
    return graph;
  });
}

/** Parses text holding exactly one graph. */
export function parseGraph(text: string, file = "<input>"): Graph {
  const graphs = parseModule(text, file);
  if (graphs.length !== 1)
    throw new KilnError({ code: "ir-parse", message: `expected exactly one graph, found ${graphs.length}`, loc: { file, line: 1, col: 1 } });
  return graphs[0]!;
}
