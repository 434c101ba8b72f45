// Finds the user's source line for a traced op: the first stack frame outside Kiln's own
// dsl/ and compiler/ folders. Errors and IR nodes carry it, so a shape mismatch names the
// line the person wrote, not a frame deep inside a composite op.

import type { SourceLoc } from "../compiler/util/errors.ts";

// Works on URLs, not node:path, so the DSL also runs in a browser bundle (where frames are
// http:// URLs). Kiln's own folders, as URL prefixes: "<root>/dsl/" …
const kilnRoot = new URL("../", import.meta.url).href;
const internalPrefixes = ["dsl", "compiler", "codegen", "targets", "runtime", "cli", "bin"].map((d) => `${kilnRoot}${d}/`);

const framePattern = /\(?((?:[a-z][a-z+.-]*:\/\/)?[^()\s]+?):(\d+):(\d+)\)?\s*$/i;

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
/** Location capture costs a stack walk per op; tracing a huge generated graph can turn it off. */
export function setLocCapture(on: boolean): void {
  enabled = on;
}

export function captureUserLoc(): SourceLoc | undefined {
  if (!enabled) return undefined;
  const saved = Error.stackTraceLimit;
  Error.stackTraceLimit = 64;
  const stack = new Error().stack ?? "";
  Error.stackTraceLimit = saved;
  for (const line of stack.split("\n").slice(1)) {
    const m = framePattern.exec(line.trim());
    if (!m) continue;
    const url = frameUrl(m[1]!);
    if (url === undefined || isInternal(url)) continue;
    return { file: displayName(url), line: Number(m[2]), col: Number(m[3]) };
  }
  return undefined;
}
