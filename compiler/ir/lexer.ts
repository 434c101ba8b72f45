// Tokens of the IR text form (docs/ir.md). Keywords and `inf`/`nan` fall back to plain
// identifiers when followed by more identifier characters (`info` is a name). Each token
// carries a label the parser's error messages quote ("expected ',' but found ']'").

import { Lexer, createToken, type TokenType } from "chevrotain";

// chevrotain 13 calls Object.groupBy (Node 21+) while analysing a grammar; Node 20 lacks it.
const objectWithGroupBy = Object as unknown as { groupBy?: <T>(items: Iterable<T>, key: (item: T, i: number) => PropertyKey) => Record<PropertyKey, T[]> };
objectWithGroupBy.groupBy ??= <T>(items: Iterable<T>, key: (item: T, i: number) => PropertyKey) => {
  const groups = Object.create(null) as Record<PropertyKey, T[]>;
  let i = 0;
  for (const item of items) (groups[key(item, i++)] ??= []).push(item);
  return groups;
};

const identifierPattern = /[A-Za-z_][A-Za-z0-9_.]*/;
const quotedPattern = /"(?:[^"\\\n]|\\.)*"/;

export const Identifier = createToken({ name: "Identifier", pattern: identifierPattern, label: "an identifier" });

const keyword = (word: string): TokenType => createToken({ name: `Kw_${word}`, pattern: new RegExp(word), longer_alt: Identifier, label: `'${word}'` });

export const Graph = keyword("graph");
export const Return = keyword("return");
export const As = keyword("as");
export const Aliases = keyword("aliases");
export const Loc = keyword("loc");
export const Scope = keyword("scope");

/** Decimal numbers with optional fraction and exponent, and `inf`, `-inf`, `nan`. */
export const NumberLiteral = createToken({
  name: "NumberLiteral",
  pattern: /-?(?:inf|nan|(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)/,
  longer_alt: Identifier,
  label: "a number",
});

/** `%x`, `%0`, `%"any name"`. */
export const ValueName = createToken({
  name: "ValueName",
  pattern: new RegExp(`%(?:${identifierPattern.source}|\\d+|${quotedPattern.source})`),
  label: "a value name",
});
/** `@forward`, `@"any name"`. */
export const GraphName = createToken({
  name: "GraphName",
  pattern: new RegExp(`@(?:${identifierPattern.source}|${quotedPattern.source})`),
  label: "a graph name",
});
export const StringLiteral = createToken({ name: "StringLiteral", pattern: quotedPattern, label: "a string" });

const punctuation = (name: string, text: string): TokenType =>
  createToken({ name, pattern: new RegExp(text.replace(/[[\](){}*]/g, "\\$&")), label: `'${text}'` });

export const Comma = punctuation("Comma", ",");
export const Colon = punctuation("Colon", ":");
export const Equals = punctuation("Equals", "=");
export const LParen = punctuation("LParen", "(");
export const RParen = punctuation("RParen", ")");
export const LBrace = punctuation("LBrace", "{");
export const RBrace = punctuation("RBrace", "}");
export const LBracket = punctuation("LBracket", "[");
export const RBracket = punctuation("RBracket", "]");
/** `16*batch`: a symbolic dimension with a scale. */
export const Star = punctuation("Star", "*");

const Whitespace = createToken({ name: "Whitespace", pattern: /[ \t\r\n]+/, group: Lexer.SKIPPED });
/** `// …` to end of line: RUN and CHECK lines of .kir test files live here. */
const LineComment = createToken({ name: "LineComment", pattern: /\/\/[^\n]*/, group: Lexer.SKIPPED });

export const ALL_TOKENS: readonly TokenType[] = [
  Whitespace,
  LineComment,
  Graph,
  Return,
  As,
  Aliases,
  Loc,
  Scope,
  NumberLiteral,
  Identifier,
  ValueName,
  GraphName,
  StringLiteral,
  Comma,
  Colon,
  Equals,
  LParen,
  RParen,
  LBrace,
  RBrace,
  LBracket,
  RBracket,
  Star,
];

let lexer: Lexer | undefined;

/** The shared lexer, built on first use (building one analyses every pattern). */
export function irLexer(): Lexer {
  lexer ??= new Lexer([...ALL_TOKENS], { positionTracking: "full", ensureOptimizations: false });
  return lexer;
}

/** The text a `%name` / `@name` token denotes, with the sigil removed and quotes undone. */
export function unquoteName(image: string): string {
  const body = image.startsWith("%") || image.startsWith("@") ? image.slice(1) : image;
  return body.startsWith('"') ? (JSON.parse(body) as string) : body;
}

/** Value of a NumberLiteral token. */
export function numberValue(image: string): number {
  if (image === "inf") return Infinity;
  if (image === "-inf") return -Infinity;
  if (image === "nan" || image === "-nan") return NaN;
  return Number(image);
}
