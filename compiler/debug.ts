// Debug logging for the compiler: one level, from the KILN_DEBUG environment variable or
// an explicit `debug` option (docs/debugging.md tables the levels). Library code never
// calls console.* directly; it calls log(level, …), which writes to stderr when enabled.

/** The levels of docs/debugging.md: 1 compile summary, 2 kernel sources, 3 each pass's graph, 4 every rewrite. */
export type DebugLevel = 0 | 1 | 2 | 3 | 4;

let override: number | undefined;

function envLevel(): number {
  const raw = typeof process !== "undefined" ? process.env["KILN_DEBUG"] : undefined;
  if (raw === undefined || raw === "") return 0;
  const n = Number.parseInt(raw, 10);
  return Number.isFinite(n) && n > 0 ? n : 0;
}

/** The active level: an explicit setDebugLevel() wins over KILN_DEBUG. */
export function debugLevel(): number {
  return override ?? envLevel();
}

/**
 * Sets the level for the code that follows (the pipeline sets it from `opts.debug` and
 * restores the previous value afterwards); undefined returns control to KILN_DEBUG.
 * Returns the previous override so callers can restore it.
 */
export function setDebugLevel(level: number | undefined): number | undefined {
  const previous = override;
  override = level;
  return previous;
}

/** Where log lines go; tests swap it to capture output. */
export type LogSink = (line: string) => void;
let sink: LogSink = (line) => process.stderr.write(`${line}\n`);

export function setLogSink(next: LogSink): LogSink {
  const previous = sink;
  sink = next;
  return previous;
}

/**
 * A progress line of long work (WebGPU pipeline creation past a second): written to the log
 * sink whatever the level, since a user waiting on it should not sit in silence.
 */
export function progressLine(text: string): void {
  sink(`kiln: ${text}`);
}

/** Logs when the active level is at least `level`. Arguments are formatted lazily: a function is called only when logging. */
export function log(level: number, ...parts: readonly unknown[]): void {
  if (debugLevel() < level) return;
  const text = parts.map((p) => (typeof p === "function" ? String((p as () => unknown)()) : typeof p === "string" ? p : JSON.stringify(p))).join(" ");
  sink(`[kiln:${level}] ${text}`);
}

/** True when `level` would log: guard expensive work (printing a graph) with it. */
export function logs(level: number): boolean {
  return debugLevel() >= level;
}
