// Tokens of the kernel IR text form (docs/kernel-ir.md). Keywords fall back to identifiers
// when more identifier characters follow (`domains` is a name); buffers (`b3`), loop
// variables (`o0`, `r1`), dtypes and op names are identifiers the parser decodes. Each token
// carries the label its error messages quote.

import { Lexer, createToken, type TokenType } from "chevrotain";
// The graph IR lexer installs the Object.groupBy polyfill chevrotain needs on Node 20.
import "../ir/lexer.ts";

const identifierPattern = /[A-Za-z_][A-Za-z0-9_.]*/;
const quotedPattern = /"(?:[^"\\\n]|\\.)*"/;

export const Identifier = createToken({ name: "Identifier", pattern: identifierPattern, label: "an identifier" });

const keyword = (word: string): TokenType => createToken({ name: `Kw_${word}`, pattern: new RegExp(word), longer_alt: Identifier, label: `'${word}'` });

export const Program = keyword("program");
export const Buffer = keyword("buffer");
export const Input = keyword("input");
export const Output = keyword("output");
export const Temp = keyword("temp");
export const Aliases = keyword("aliases");
export const Kernel = keyword("kernel");
export const Reads = keyword("reads");
export const Writes = keyword("writes");
export const Section = keyword("section");
export const Domain = keyword("domain");
export const Tile = keyword("tile");
export const Store = keyword("store");
export const Dot = keyword("dot");
export const Form = keyword("form");
export const If = keyword("if");
export const True = keyword("true");
export const False = keyword("false");
export const Loc = keyword("loc");
export const Scope = keyword("scope");
export const Data = keyword("data");
export const Div = keyword("div");
/** Also the name of the `mod` op: the parser accepts it where an op name goes. */
export const Mod = keyword("mod");

export const NumberLiteral = createToken({
  name: "NumberLiteral",
  pattern: /-?(?:inf|nan|(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)/,
  longer_alt: Identifier,
  label: "a number",
});
export const ValueRef = createToken({ name: "ValueRef", pattern: /%\d+/, label: "an expression like %3" });
export const ProgramName = createToken({
  name: "ProgramName",
  pattern: new RegExp(`@(?:${identifierPattern.source}|${quotedPattern.source})`),
  label: "a program name",
});
export const StringLiteral = createToken({ name: "StringLiteral", pattern: quotedPattern, label: "a string" });

const punctuation = (name: string, text: string): TokenType =>
  createToken({ name, pattern: new RegExp(text.replace(/[[\](){}*+]/g, "\\$&")), label: `'${text}'` });

export const Comma = punctuation("Comma", ",");
export const Colon = punctuation("Colon", ":");
export const GreaterEq = punctuation("GreaterEq", ">=");
export const Equals = punctuation("Equals", "=");
export const Less = punctuation("Less", "<");
export const AndAnd = punctuation("AndAnd", "&&");
export const Star = punctuation("Star", "*");
export const Plus = punctuation("Plus", "+");
export const LParen = punctuation("LParen", "(");
export const RParen = punctuation("RParen", ")");
export const LBracket = punctuation("LBracket", "[");
export const RBracket = punctuation("RBracket", "]");

const Whitespace = createToken({ name: "Whitespace", pattern: /[ \t\r\n]+/, group: Lexer.SKIPPED });
/** `// …` to end of line: RUN and CHECK lines of .kir test files live here. */
const LineComment = createToken({ name: "LineComment", pattern: /\/\/[^\n]*/, group: Lexer.SKIPPED });

export const KERNEL_TOKENS: readonly TokenType[] = [
  Whitespace,
  LineComment,
  Program,
  Buffer,
  Input,
  Output,
  Temp,
  Aliases,
  Kernel,
  Reads,
  Writes,
  Section,
  Domain,
  Tile,
  Store,
  Dot,
  Form,
  If,
  True,
  False,
  Loc,
  Scope,
  Data,
  Div,
  Mod,
  NumberLiteral,
  Identifier,
  ValueRef,
  ProgramName,
  StringLiteral,
  Comma,
  Colon,
  GreaterEq,
  Equals,
  Less,
  AndAnd,
  Star,
  Plus,
  LParen,
  RParen,
  LBracket,
  RBracket,
];

let lexer: Lexer | undefined;

/** The shared lexer, built on first use. */
export function kernelLexer(): Lexer {
  lexer ??= new Lexer([...KERNEL_TOKENS], { positionTracking: "full", ensureOptimizations: false });
  return lexer;
}
