// Finds the user's source line for a traced op: the first stack frame outside Kiln's own
// dsl/ and compiler/ folders. Errors and IR nodes carry it, so a shape mismatch names the
// line the person wrote, not a frame deep inside a composite op.

import type { SourceLoc } from "../compiler/util/errors.ts";

// Works on URLs, not node:path, so the DSL also runs in a browser bundle (where frames are
// http:// URLs). Kiln's own folders, as URL prefixes: "<root>/dsl/" … (in the built package
// <root> is dist/, and the bundler's shared code sits in dist/chunks/: scripts/build-package.mjs).
const kilnRoot = new URL("../", import.meta.url).href;
const internalPrefixes = ["dsl", "compiler", "codegen", "targets", "runtime", "cli", "bin", "chunks"].map((d) => `${kilnRoot}${d}/`);

/** A frame's file as a URL: ESM frames are file:// (or http://) URLs already, others absolute paths; undefined for node:internal, eval and the like. */
function frameUrl(file: string): string | undefined {
  if (/^[a-z][a-z+.-]*:\/\//i.test(file)) return file;
  if (file.startsWith("/")) return `file://${encodeURI(file)}`;
  if (/^[a-z]:[\\/]/i.test(file)) return `file:///${encodeURI(file.replaceAll("\\", "/"))}`;
  return undefined;
}

function isInternal(url: string): boolean {
  return internalPrefixes.some((d) => url.startsWith(d)) || url.includes("/node_modules/");
}

/** What an error shows: a path relative to the working directory when under it, else the absolute path (or the URL in a browser). */
function displayName(url: string): string {
  if (!url.startsWith("file://")) return url;
  let file = decodeURIComponent(new URL(url).pathname);
  if (/^\/[a-z]:\//i.test(file)) file = file.slice(1); // file:///C:/x → C:/x
  const proc = (globalThis as { process?: { cwd?: () => string } }).process;
  const cwd = proc?.cwd?.().replaceAll("\\", "/");
  if (cwd === undefined) return file;
  const prefix = cwd.endsWith("/") ? cwd : `${cwd}/`;
  return file.startsWith(prefix) ? file.slice(prefix.length) : file;
}

let enabled = true;
/** Location capture costs a short stack capture per op; tracing a huge generated graph can turn it off. */
export function setLocCapture(on: boolean): void {
  enabled = on;
}

/**
 * Frames captured per op: enough to get from the deepest composite op (a loss inside
 * trainStep's optimizer, a layer inside nested modules) out to the user's frame. The capture
 * is most of a traced op's cost, so it is kept short, and taken again in full in the rare case
 * that the user's frame lies deeper.
 */
const CAPTURE_FRAMES = 24;
const MAX_FRAMES = 64;

interface CallSiteLike {
  getFileName(): string | null | undefined;
  getLineNumber(): number | null;
  getColumnNumber(): number | null;
}

interface SourceMapEntry {
  readonly originalSource?: string;
  readonly originalLine?: number;
  readonly originalColumn?: number;
}
type FindSourceMap = (file: string) => { findEntry(line: number, col: number): SourceMapEntry | Record<string, never> } | undefined;

/** Node's source-map lookup (node:module, reached without an import so browsers load this file), else none. */
const findSourceMap: FindSourceMap | undefined = (() => {
  const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
  const mod = proc?.getBuiltinModule?.("node:module") as { findSourceMap?: FindSourceMap } | undefined;
  return mod?.findSourceMap;
})();

type PrepareStackTrace = (error: Error, sites: CallSiteLike[]) => unknown;
const ErrorWithHooks = Error as unknown as { prepareStackTrace?: PrepareStackTrace; captureStackTrace?: (target: object) => void };

/** Whether a frame's file (as V8 reports it) is the user's: not Kiln's, not a dependency's, not Node's. Cached per file. */
const userFile = new Map<string, boolean>();
function isUserFile(file: string): boolean {
  let user = userFile.get(file);
  if (user === undefined) {
    const url = frameUrl(file);
    user = url !== undefined && !isInternal(url);
    userFile.set(file, user);
  }
  return user;
}

/** A stack formatter that keeps V8's call sites as they are (one function for every capture). */
const rawSites: PrepareStackTrace = (_e, sites) => sites;

/** The nearest user frame among the current stack's first `frames` (raw call sites: nothing formatted, no source maps). */
function userSite(frames: number): {
  readonly site: CallSiteLike | undefined;
  /** The user frame's index in the captured stack (0: the innermost). */
  readonly depth: number;
  readonly truncated: boolean;
  readonly host: PrepareStackTrace | undefined;
} {
  const host = ErrorWithHooks.prepareStackTrace;
  const limit = Error.stackTraceLimit;
  const holder: { stack?: unknown } = {};
  let stack: unknown;
  ErrorWithHooks.prepareStackTrace = rawSites;
  Error.stackTraceLimit = frames;
  try {
    ErrorWithHooks.captureStackTrace?.(holder);
    stack = holder.stack; // formatted (by the override) on first read
  } finally {
    ErrorWithHooks.prepareStackTrace = host;
    Error.stackTraceLimit = limit;
  }
  const sites = Array.isArray(stack) ? (stack as CallSiteLike[]) : [];
  const depth = sites.findIndex((s) => {
    const file = s.getFileName();
    return typeof file === "string" && isUserFile(file);
  });
  return { site: depth >= 0 ? sites[depth] : undefined, depth, truncated: sites.length >= frames, host };
}

/** One resolved location per distinct generated position: many ops share a user line. */
const resolvedAt = new Map<string, SourceLoc>();
const framePattern = /\(?((?:[a-z][a-z+.-]*:\/\/)?[^()\s]+?):(\d+):(\d+)\)?\s*$/i;

/**
 * The user's position of one call site, cached by its generated position. The host's own
 * stack formatter (a test runner's or source-map-support's Error.prepareStackTrace) formats
 * this one frame where there is one, so positions agree with the stacks it prints; else
 * Node's source-map cache maps it; else (no maps) it is the position itself.
 */
function resolveSite(site: CallSiteLike, host: PrepareStackTrace | undefined): SourceLoc {
  const file = site.getFileName() ?? "";
  const line = site.getLineNumber() ?? 0;
  const col = site.getColumnNumber() ?? 0;
  const key = `${file}:${line}:${col}`;
  let loc = resolvedAt.get(key);
  if (loc) return loc;
  let mapped: { file: string; line: number; col: number } | undefined;
  if (host) {
    const text = host(new Error(), [site]);
    const frame = typeof text === "string" ? text.split("\n").find((l) => l.trimStart().startsWith("at ")) : undefined;
    const m = frame ? framePattern.exec(frame.trim()) : null;
    if (m) mapped = { file: m[1]!, line: Number(m[2]), col: Number(m[3]) };
  } else {
    const entry = findSourceMap?.(file)?.findEntry(line - 1, col - 1) as SourceMapEntry | undefined;
    if (entry?.originalLine !== undefined && entry.originalColumn !== undefined)
      mapped = { file: entry.originalSource ?? file, line: entry.originalLine + 1, col: entry.originalColumn + 1 };
  }
  const at = mapped ?? { file, line, col };
  loc = Object.freeze({ file: displayName(frameUrl(at.file) ?? at.file), line: at.line, col: at.col });
  resolvedAt.set(key, loc);
  return loc;
}

/**
 * A source location held as the user's raw call site and resolved (source-mapped, made
 * relative) on the first read of file/line/col: most locations of a big graph are never
 * printed, and those that are share a few lines.
 */
class DeferredLoc implements SourceLoc {
  private site: CallSiteLike | undefined;
  private loc: SourceLoc | undefined;
  constructor(
    site: CallSiteLike,
    private readonly host: PrepareStackTrace | undefined,
  ) {
    this.site = site;
  }
  get file(): string {
    return this.resolve().file;
  }
  get line(): number {
    return this.resolve().line;
  }
  get col(): number {
    return this.resolve().col;
  }
  toJSON(): SourceLoc {
    return { ...this.resolve() };
  }
  private resolve(): SourceLoc {
    if (!this.loc) {
      this.loc = resolveSite(this.site!, this.host);
      this.site = undefined;
    }
    return this.loc;
  }
}

/**
 * Frames the next capture takes first: the depth at which the last one found the user's
 * frame, plus a little. Consecutive ops of a model sit at about the same depth, and a
 * capture costs about its frame count (a GPT-2 step's trace: ~30 % less CPU); finding the
 * frame within fewer frames finds the same frame (the nearest one), and missing it falls
 * back to the full captures.
 */
let expectedFrames = CAPTURE_FRAMES;
const FRAME_SLACK = 2;

/** The location withOneLoc pinned for the ops its body traces (undefined: none pinned). */
let pinned: { readonly loc: SourceLoc | undefined } | undefined;

/**
 * Runs `body` with one stack capture for every op it traces: for Kiln's own helpers that make
 * several ops for one call and run no user code inside (a binary op and the reshape and expand
 * of its broadcasts), whose ops all have the same nearest user frame. A third of an MLP
 * training step's captures were such broadcasts (issue 14: cold start). Nested calls keep the
 * outer capture.
 */
export function withOneLoc<T>(body: () => T): T {
  if (pinned || !enabled) return body();
  pinned = { loc: captureUserLoc() };
  try {
    return body();
  } finally {
    pinned = undefined;
  }
}

/** The user's source location of the current call (the nearest frame outside Kiln), or undefined when no user code is on the stack. */
export function captureUserLoc(): SourceLoc | undefined {
  if (pinned) return pinned.loc;
  if (!enabled) return undefined;
  let found = userSite(expectedFrames);
  if (!found.site && found.truncated && expectedFrames < CAPTURE_FRAMES) found = userSite(CAPTURE_FRAMES);
  if (!found.site && found.truncated) found = userSite(MAX_FRAMES);
  expectedFrames = found.site ? Math.min(CAPTURE_FRAMES, found.depth + 1 + FRAME_SLACK) : CAPTURE_FRAMES;
  return found.site ? new DeferredLoc(found.site, found.host) : undefined;
}
