// A persistent compile cache for the wasm target (JAX's persistent compilation cache, for a
// cold start): with KILN_COMPILE_CACHE=1 (or =<folder>), a compile stores its artifact in the folder
// under a key, and a later process compiling the same graph with the same options on the same
// build of Kiln and the same engine features reads it back instead of running the passes and
// the renderer. Off unless the variable is set (Node only; imported lazily).
// The key is a SHA-256 of: this file's format version, the build (what identifies the code of
// this Kiln: dist/'s content-hashed chunk names and its entry files, or every source file's
// size and mtime in a checkout), the target, the compile options and the graph's canonical text
// (source locations included: kernels carry them in their comments). An entry holds its key and
// build again; one that does not parse, names another key or build, or whose modules the
// engine refuses is ignored with a warning naming the file and why (process.emitWarning, code
// KILN_COMPILE_CACHE), and the compile runs and replaces it. Writes go to a temporary file
// renamed into place, so a reader never sees half an entry.

import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import type { Artifact, ArtifactKernel } from "../runtime/artifact/format.ts";
import { tuneCacheDir } from "./webgpu-tune-cache.ts";

// node:crypto without an import: browser bundles (package.json's "browser" map) have no such module.
const { createHash } = process.getBuiltinModule("node:crypto");

const FORMAT = "kiln-compile-cache";
const VERSION = 1;
/** Folders of a checkout whose sources make up the compiler and its targets. */
const SOURCE_DIRS = ["compiler", "codegen", "targets", "runtime", "dsl"];

interface CacheEntry {
  readonly format: typeof FORMAT;
  readonly version: typeof VERSION;
  readonly key: string;
  readonly build: string;
  readonly artifact: Artifact;
}

/**
 * The cache folder: KILN_COMPILE_CACHE=1 (or on, true) is <Kiln's cache dir>/compile (the
 * tuning cache's dir: KILN_CACHE_DIR, else $XDG_CACHE_HOME/kiln, else ~/.cache/kiln); another
 * value is a folder; unset, empty, 0, off or false: undefined (the cache is off).
 */
export async function compileCacheDir(): Promise<string | undefined> {
  const value = process.env["KILN_COMPILE_CACHE"]?.trim() ?? "";
  if (["", "0", "off", "false"].includes(value.toLowerCase())) return undefined;
  if (["1", "on", "true"].includes(value.toLowerCase())) {
    const root = await tuneCacheDir();
    return root === undefined ? undefined : path.join(root, "compile");
  }
  return path.resolve(value);
}

let build: string | undefined;

/** What identifies this build of Kiln's code (see the module comment). */
export function buildId(): string {
  if (build !== undefined) return build;
  const here = fileURLToPath(import.meta.url);
  const hash = createHash("sha256");
  const chunks = path.dirname(here);
  if (path.basename(chunks) === "chunks" && path.basename(path.dirname(chunks)) === "dist") {
    // esbuild names a chunk by a hash of its content, which names the chunks it imports.
    for (const name of readdirSync(chunks).sort()) if (name.endsWith(".js")) hash.update(`${name}\n`);
    const dist = path.dirname(chunks);
    for (const entry of ["dsl/index.js", "cli/main.js"]) {
      const file = path.join(dist, entry);
      if (existsSync(file)) hash.update(readFileSync(file));
    }
  } else {
    const root = path.dirname(path.dirname(here));
    const walk = (dir: string): void => {
      for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
        const full = path.join(dir, e.name);
        if (e.isDirectory()) walk(full);
        else if (e.name.endsWith(".ts")) {
          const s = statSync(full);
          hash.update(`${path.relative(root, full)} ${s.size} ${s.mtimeMs}\n`);
        }
      }
    };
    for (const dir of SOURCE_DIRS) if (existsSync(path.join(root, dir))) walk(path.join(root, dir));
  }
  build = hash.digest("hex");
  return build;
}

/** The cache key of a compile: `options` must be plain JSON data (the caller checks). */
export function cacheKey(target: string, options: unknown, graphText: string): string {
  return createHash("sha256")
    .update(`${FORMAT} ${VERSION}\n${buildId()}\n${target}\n${JSON.stringify(options)}\n`)
    .update(graphText)
    .digest("hex");
}

const entryFile = (dir: string, target: string, key: string): string => path.join(dir, `${target}-${key.slice(0, 40)}.json`);

/** Warns that the entry `file` is not used, and why. */
export function rejectEntry(file: string, why: string): void {
  process.emitWarning(`kiln compile cache: ignoring ${file}: ${why}; compiling afresh`, { code: "KILN_COMPILE_CACHE" });
}

function entryProblem(entry: Partial<CacheEntry> | null, target: string, key: string): string | undefined {
  if (typeof entry !== "object" || entry === null || entry.format !== FORMAT) return `not a ${FORMAT} entry`;
  if (entry.version !== VERSION) return `format version ${String(entry.version)}, this Kiln reads ${VERSION}`;
  if (entry.key !== key) return "its key is another compile's";
  if (entry.build !== buildId()) return "it was written by another build of Kiln (stale)";
  const a = entry.artifact as Partial<Artifact> | undefined;
  if (!a || a.format !== "kiln-artifact" || a.target !== target || !Array.isArray(a.kernels)) return `its artifact is not a ${target} artifact`;
  if (!a.kernels.every((k: Partial<ArtifactKernel>) => typeof k.name === "string" && typeof k.source === "string")) return "a kernel has no source";
  return undefined;
}

/** The entry's artifact and file, or undefined (a miss, or an entry rejected with a warning). */
export function readEntry(dir: string, target: string, key: string): { readonly artifact: Artifact; readonly file: string } | undefined {
  const file = entryFile(dir, target, key);
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    return undefined;
  }
  let entry: Partial<CacheEntry> | null;
  try {
    entry = JSON.parse(text) as Partial<CacheEntry> | null;
  } catch (e) {
    rejectEntry(file, `it is not valid JSON (${(e as Error).message})`);
    return undefined;
  }
  const problem = entryProblem(entry, target, key);
  if (problem) {
    rejectEntry(file, problem);
    return undefined;
  }
  return { artifact: entry!.artifact!, file };
}

/** A kernel's own fields but its portable twin (an in-process artifact builds that when read: the cache never asks). */
function storedKernel(k: ArtifactKernel): ArtifactKernel {
  const out: Record<string, unknown> = {};
  for (const name of Object.keys(k)) if (name !== "portableSource") out[name] = k[name as keyof ArtifactKernel];
  return out as unknown as ArtifactKernel;
}

/** Stores `artifact` under `key`; a failure to write is a warning, never a failed compile. */
export function writeEntry(dir: string, target: string, key: string, artifact: Artifact): void {
  const file = entryFile(dir, target, key);
  const tmp = `${file}.${process.pid}-${Math.random().toString(36).slice(2, 10)}.tmp`;
  const entry: CacheEntry = {
    format: FORMAT,
    version: VERSION,
    key,
    build: buildId(),
    artifact: { ...artifact, kernels: artifact.kernels.map(storedKernel) } as Artifact,
  };
  try {
    mkdirSync(dir, { recursive: true });
    writeFileSync(tmp, JSON.stringify(entry));
    renameSync(tmp, file);
  } catch (e) {
    rmSync(tmp, { force: true });
    process.emitWarning(`kiln compile cache: could not write ${file}: ${(e as Error).message}`, { code: "KILN_COMPILE_CACHE" });
  }
}
