// Diagnostics as data: every user-facing error carries a code, a lowercase message and,
// where one is known, the user's source location. A broken internal invariant is a bug(),
// not a diagnostic.

export interface SourceLoc {
  readonly file: string;
  readonly line: number;
  readonly col: number;
}

export type DiagCode =
  | "shape-mismatch"
  | "dtype-mismatch"
  | "invalid-argument"
  | "ir-parse"
  | "ir-verify"
  | "interp"
  | "artifact-invalid"
  | "unsupported"
  | "target-unavailable"
  | "usage";

export interface Diagnostic {
  readonly code: DiagCode;
  readonly message: string;
  readonly loc?: SourceLoc;
  /** Extra lines printed under the message (a caret excerpt, an IR line). */
  readonly detail?: string;
}

export function formatLoc(loc: SourceLoc): string {
  return `${loc.file}:${loc.line}:${loc.col}`;
}

export function formatDiagnostic(d: Diagnostic): string {
  const where = d.loc ? ` at ${formatLoc(d.loc)}` : "";
  const detail = d.detail ? `\n${d.detail}` : "";
  return `${d.message}${where}${detail}`;
}

export class KilnError extends Error {
  readonly diag: Diagnostic;
  constructor(diag: Diagnostic) {
    // A location may resolve lazily (the DSL's deferred stack locations): the error keeps plain values.
    const loc = diag.loc ? { file: diag.loc.file, line: diag.loc.line, col: diag.loc.col } : undefined;
    const plain: Diagnostic = loc ? { ...diag, loc } : diag;
    super(formatDiagnostic(plain));
    this.diag = plain;
    this.name = "KilnError";
  }
  get code(): DiagCode {
    return this.diag.code;
  }
}

/** An internal invariant broke: a Kiln bug, never the user's fault. */
export function bug(message: string): never {
  throw new Error(`kiln internal error: ${message}`);
}

export function assertNever(x: never, what = "value"): never {
  throw new Error(`kiln internal error: unexpected ${what}: ${JSON.stringify(x)}`);
}
