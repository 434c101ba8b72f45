// A small FileCheck (LLVM's test matcher) for pass tests: `CHECK`, `CHECK-NEXT`,
// `CHECK-SAME`, `CHECK-EMPTY`, `CHECK-NOT`, `CHECK-LABEL`; `[[NAME:regex]]` captures a value
// reused later as `[[NAME]]`; `{{regex}}` matches inline. Runs of spaces match any run of
// spaces and tabs. Patterns match within one line, scanning forward from the last match.

/** One directive read from the check text. */
interface Directive {
  readonly kind: "CHECK" | "CHECK-NEXT" | "CHECK-SAME" | "CHECK-EMPTY" | "CHECK-NOT" | "CHECK-LABEL";
  readonly pattern: string;
  /** 1-based line in the check text, and that line as written, for messages. */
  readonly line: number;
  readonly source: string;
}

export interface FileCheckResult {
  readonly ok: boolean;
  /** Empty when ok; otherwise the failing CHECK line, why, and the output region searched. */
  readonly message: string;
}

const DIRECTIVE = /\b(CHECK(?:-NEXT|-SAME|-EMPTY|-NOT|-LABEL)?):(.*)$/;
/** Output lines shown around a failure. */
const MAX_SHOWN = 40;

/** The CHECK directives of a test file, in order. */
export function readDirectives(checkText: string): Directive[] {
  const out: Directive[] = [];
  checkText.split("\n").forEach((source, i) => {
    const m = DIRECTIVE.exec(source);
    if (m) out.push({ kind: m[1] as Directive["kind"], pattern: m[2]!.trim(), line: i + 1, source: source.trim() });
  });
  return out;
}

/** The pass list of a `// RUN: simplify,fuse` line, or undefined when there is none. */
export function readRunLine(text: string): string[] | undefined {
  const m = /\bRUN:(.*)$/m.exec(text);
  return m
    ? m[1]!
        .split(",")
        .map((p) => p.trim())
        .filter((p) => p !== "")
    : undefined;
}

const escapeRegex = (s: string): string => s.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
const literal = (s: string): string =>
  s
    .split(/[ \t]+/)
    .map(escapeRegex)
    .join("[ \\t]+");

/** Compiles a pattern to a regex; `defined` names become named groups, uses read `vars`. */
function compile(d: Directive, vars: ReadonlyMap<string, string>): { regex: RegExp; defines: string[] } | { error: string } {
  let source = "";
  const defines: string[] = [];
  let rest = d.pattern;
  while (rest.length > 0) {
    const next = /\[\[|\{\{/.exec(rest);
    if (!next) {
      source += literal(rest);
      break;
    }
    source += literal(rest.slice(0, next.index));
    rest = rest.slice(next.index);
    const close = rest.startsWith("[[") ? "]]" : "}}";
    const end = rest.indexOf(close, 2);
    if (end < 0) return { error: `unterminated '${rest.slice(0, 2)}'` };
    const body = rest.slice(2, end);
    rest = rest.slice(end + 2);
    if (close === "}}") {
      source += `(?:${body})`;
      continue;
    }
    const m = /^([A-Za-z_][A-Za-z0-9_]*)(?::(.*))?$/s.exec(body);
    if (!m) return { error: `bad variable '[[${body}]]'` };
    const [, name, regex] = m as unknown as [string, string, string | undefined];
    if (regex !== undefined) {
      if (defines.includes(name)) return { error: `variable '${name}' defined twice in one line` };
      defines.push(name);
      source += `(?<${name}>${regex})`;
    } else if (defines.includes(name)) source += `\\k<${name}>`;
    else if (vars.has(name)) source += escapeRegex(vars.get(name)!);
    else return { error: `variable '${name}' is used before it is defined` };
  }
  try {
    return { regex: new RegExp(source), defines };
  } catch (e) {
    return { error: `invalid regex: ${(e as Error).message}` };
  }
}

interface Match {
  readonly line: number;
  readonly start: number;
  readonly end: number;
  readonly groups: Record<string, string>;
}

/** First match of `regex` at or after (line, col), on lines before `stopLine`. */
function search(lines: readonly string[], regex: RegExp, line: number, col: number, stopLine: number): Match | undefined {
  return searchBetween(lines, regex, line, col, stopLine, 0);
}

/** First match of `regex` starting at or after (fromLine, fromCol) and ending by (toLine, toCol). */
function searchBetween(lines: readonly string[], regex: RegExp, fromLine: number, fromCol: number, toLine: number, toCol: number): Match | undefined {
  for (let i = fromLine; i <= Math.min(toLine, lines.length - 1); i++) {
    const start = i === fromLine ? fromCol : 0;
    const end = i === toLine ? toCol : lines[i]!.length;
    if (end < start) continue;
    const m = regex.exec(lines[i]!.slice(start, end));
    if (m) return { line: i, start: start + m.index, end: start + m.index + m[0].length, groups: { ...(m.groups ?? {}) } };
  }
  return undefined;
}

function showRegion(lines: readonly string[], from: number, to: number, mark?: number): string {
  const last = Math.min(to, from + MAX_SHOWN);
  const shown = lines.slice(from, last).map((l, i) => `${from + i === mark ? ">" : " "}${String(from + i + 1).padStart(5)} | ${l}`);
  if (to > last) shown.push(`        … ${to - last} more line(s)`);
  return shown.length ? shown.join("\n") : "        (empty region)";
}

/**
 * Checks `output` against the CHECK lines of `checkText`. `message` names the failing
 * directive (with its line in the check text) and shows the output lines it searched.
 */
export function runFileCheck(checkText: string, output: string): FileCheckResult {
  const directives = readDirectives(checkText);
  if (directives.length === 0) return { ok: false, message: "no CHECK lines found" };
  const lines = output.replace(/\n$/, "").split("\n");
  const vars = new Map<string, string>();
  const fail = (d: Directive, why: string, from: number, to: number, mark?: number): FileCheckResult => {
    const bindings = [...vars].map(([k, v]) => `[[${k}]] = ${JSON.stringify(v)}`).join(", ");
    const region =
      from < to || mark !== undefined ? `\nsearched output lines ${from + 1}–${Math.max(from + 1, to)}:\n${showRegion(lines, from, to, mark)}` : "";
    return { ok: false, message: `check line ${d.line}: ${d.source}\n${why}${bindings ? `\nwith ${bindings}` : ""}${region}` };
  };

  // Labels first: each must match, in order; they cut the output into independent blocks.
  const labelMatches = new Map<Directive, Match>();
  let labelCursor = 0;
  for (const d of directives) {
    if (d.kind !== "CHECK-LABEL") continue;
    const c = compile(d, new Map());
    if ("error" in c) return fail(d, c.error, 0, 0);
    const m = search(lines, c.regex, labelCursor, 0, lines.length);
    if (!m) return fail(d, "label not found", labelCursor, lines.length);
    labelMatches.set(d, m);
    labelCursor = m.line + 1;
  }

  let line = 0;
  let col = 0;
  let blockEnd = lines.length;
  let pendingNots: Directive[] = [];
  /** CHECK-NOT patterns must not occur between the last match and (toLine, toCol). */
  const checkNots = (toLine: number, toCol: number): FileCheckResult | undefined => {
    for (const d of pendingNots) {
      const c = compile(d, vars);
      if ("error" in c) return fail(d, c.error, line, toLine);
      const m = searchBetween(lines, c.regex, line, col, toLine, toCol);
      if (m) return fail(d, `excluded pattern found on output line ${m.line + 1}`, line, Math.min(toLine + 1, lines.length), m.line);
    }
    pendingNots = [];
    return undefined;
  };

  for (let i = 0; i < directives.length; i++) {
    const d = directives[i]!;
    if (d.kind === "CHECK-NOT") {
      pendingNots.push(d);
      continue;
    }
    if (d.kind === "CHECK-LABEL") {
      const at = labelMatches.get(d)!;
      const notFailure = checkNots(at.line, at.start);
      if (notFailure) return notFailure;
      const nextLabel = directives.slice(i + 1).find((x) => x.kind === "CHECK-LABEL");
      blockEnd = nextLabel ? labelMatches.get(nextLabel)!.line : lines.length;
      [line, col] = [at.line, at.end];
      continue;
    }
    if (d.kind === "CHECK-EMPTY") {
      const target = i === 0 ? 0 : line + 1;
      if (lines[target] !== "" || target >= blockEnd) return fail(d, `expected an empty line on output line ${target + 1}`, target, target + 1, target);
      [line, col] = [target, 0];
      continue;
    }
    const c = compile(d, vars);
    if ("error" in c) return fail(d, c.error, line, blockEnd);
    let m: Match | undefined;
    if (d.kind === "CHECK-NEXT") {
      const target = i === 0 ? 0 : line + 1;
      m = target < blockEnd ? search(lines, c.regex, target, 0, target + 1) : undefined;
      if (!m) return fail(d, `expected a match on the next output line (${target + 1})`, line, Math.min(target + 1, lines.length), target);
    } else if (d.kind === "CHECK-SAME") {
      m = search(lines, c.regex, line, col, line + 1);
      if (!m) return fail(d, `expected a match on output line ${line + 1} after column ${col + 1}`, line, line + 1, line);
    } else {
      m = search(lines, c.regex, line, col, blockEnd);
      if (!m) return fail(d, "no match found", line, blockEnd);
    }
    const notFailure = checkNots(m.line, m.start);
    if (notFailure) return notFailure;
    for (const name of c.defines) vars.set(name, m.groups[name] ?? "");
    [line, col] = [m.line, m.end];
  }
  const notFailure = checkNots(blockEnd, 0);
  return notFailure ?? { ok: true, message: "" };
}
