// A strict JSON reader for untrusted headers (safetensors): RFC 8259 grammar, objects as Maps
// (so a key named `__proto__` is an ordinary key), duplicate keys refused (JSON.parse keeps
// the last one silently), nesting bounded, and numbers limited to safe integers — a
// safetensors header holds no other numbers, and a fraction where an offset belongs is an
// error, not a rounding. Work and memory stay proportional to the text actually given.

export type JsonValue = null | boolean | number | string | readonly JsonValue[] | JsonObject;
export type JsonObject = ReadonlyMap<string, JsonValue>;

export const isJsonObject = (v: JsonValue | undefined): v is JsonObject => v instanceof Map;

/** A syntax error: `offset` is the character index in the text. */
export class JsonSyntaxError extends Error {
  constructor(
    readonly why: string,
    readonly offset: number,
  ) {
    super(`${why} at offset ${offset}`);
    this.name = "JsonSyntaxError";
  }
}

const MAX_DEPTH = 16;
const ESCAPES: Readonly<Record<string, string>> = { '"': '"', "\\": "\\", "/": "/", b: "\b", f: "\f", n: "\n", r: "\r", t: "\t" };
const NUMBER = /-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/y;

/** Parses `text` as exactly one JSON value, optionally surrounded by whitespace. */
export function parseStrictJson(text: string): JsonValue {
  let at = 0;
  const fail = (why: string, where = at): never => {
    throw new JsonSyntaxError(why, where);
  };
  const skipSpace = (): void => {
    while (at < text.length) {
      const c = text.charCodeAt(at);
      if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) break;
      at++;
    }
  };
  const describe = (): string => (at >= text.length ? "end of header" : JSON.stringify(text[at]));
  const expectChar = (c: string): void => {
    if (text[at] !== c) fail(`expected '${c}', found ${describe()}`);
    at++;
  };

  const parseString = (): string => {
    const start = at;
    at++; // the opening quote
    let out = "";
    let runStart = at;
    for (;;) {
      if (at >= text.length) fail("unterminated string", start);
      const c = text.charCodeAt(at);
      if (c === 0x22) break;
      if (c < 0x20) fail("control character in a string (it must be escaped)");
      if (c !== 0x5c) {
        at++;
        continue;
      }
      out += text.slice(runStart, at);
      const e = text[at + 1];
      if (e === "u") {
        const hex = text.slice(at + 2, at + 6);
        if (!/^[0-9a-fA-F]{4}$/.test(hex)) fail("bad \\u escape");
        out += String.fromCharCode(parseInt(hex, 16));
        at += 6;
      } else {
        const replacement = e === undefined ? undefined : ESCAPES[e];
        if (replacement === undefined) fail(`bad escape '\\${e ?? ""}'`);
        out += replacement;
        at += 2;
      }
      runStart = at;
    }
    out += text.slice(runStart, at);
    at++; // the closing quote
    return out;
  };

  const parseNumber = (): number => {
    NUMBER.lastIndex = at;
    const match = NUMBER.exec(text);
    if (!match) return fail(`unexpected ${describe()}`);
    if (match[1] !== undefined || match[2] !== undefined) fail(`number ${match[0]} is not an integer (a safetensors header holds only integers)`);
    const value = Number(match[0]);
    if (!Number.isSafeInteger(value)) fail(`integer ${match[0]} is too large to be exact (over 2^53)`);
    at += match[0].length;
    return value;
  };

  const parseValue = (depth: number): JsonValue => {
    if (depth > MAX_DEPTH) fail(`nested deeper than ${MAX_DEPTH} levels`);
    skipSpace();
    const c = text[at];
    if (c === "{") {
      at++;
      const object = new Map<string, JsonValue>();
      skipSpace();
      if (text[at] === "}") {
        at++;
        return object;
      }
      for (;;) {
        skipSpace();
        if (text[at] !== '"') fail(`expected a key string, found ${describe()}`);
        const keyAt = at;
        const key = parseString();
        if (object.has(key)) fail(`duplicate key ${JSON.stringify(key.length > 64 ? `${key.slice(0, 64)}…` : key)}`, keyAt);
        skipSpace();
        expectChar(":");
        object.set(key, parseValue(depth + 1));
        skipSpace();
        if (text[at] === ",") {
          at++;
          continue;
        }
        expectChar("}");
        return object;
      }
    }
    if (c === "[") {
      at++;
      const items: JsonValue[] = [];
      skipSpace();
      if (text[at] === "]") {
        at++;
        return items;
      }
      for (;;) {
        items.push(parseValue(depth + 1));
        skipSpace();
        if (text[at] === ",") {
          at++;
          continue;
        }
        expectChar("]");
        return items;
      }
    }
    if (c === '"') return parseString();
    for (const [word, value] of [
      ["true", true],
      ["false", false],
      ["null", null],
    ] as const) {
      if (text.startsWith(word, at)) {
        at += word.length;
        return value;
      }
    }
    return parseNumber();
  };

  const value = parseValue(0);
  skipSpace();
  if (at < text.length) fail(`unexpected ${describe()} after the JSON value`);
  return value;
}
