// The tuning cache: one JSON file per adapter, <cache dir>/tune/<hash of the adapter>.json, the
// cache dir being KILN_CACHE_DIR, else $XDG_CACHE_HOME/kiln, else ~/.cache/kiln. It maps section
// keys (targets/webgpu-tune.ts: the section's form kind and a hash of what it computes) to the
// chosen form with its parameters and the timings that chose it. A file that does not parse,
// or holds an entry that is not a renderable form, is refused with a KilnError naming the file
// and the entry; writes go to a temporary sibling renamed into place. Without Node's fs (a
// browser) there is no file: searches keep their results in memory for the process.

import type { SectionForm } from "../compiler/kernel/kernel-ir.ts";
import { printForm } from "../compiler/kernel/print.ts";
import { KilnError } from "../compiler/util/errors.ts";
import { sha256Hex } from "../runtime/artifact/hash.ts";
import type { WebGpuTuning } from "../runtime/artifact/format.ts";
import { adapterKindOf, adapterText, checkTunedForm, parseFormText, type AdapterKind, type TuneAdapter, type TuningContext } from "./webgpu-tune.ts";

export const TUNE_CACHE_FORMAT = "kiln-tune";
export const TUNE_CACHE_VERSION = 1;

export interface TuneEntry {
  readonly form: SectionForm;
  /** Median ms per dispatch of the chosen form, and of the adapter kind's default, when searched. */
  readonly ms?: number;
  readonly defaultMs?: number;
  /** How many candidates the search timed. */
  readonly candidates?: number;
}

export interface TuneCache {
  /** The file it was read from and is written to; undefined without a file system. */
  readonly file: string | undefined;
  readonly adapter: string;
  readonly kind: AdapterKind;
  readonly entries: Map<string, TuneEntry>;
}

// Node's modules by names in variables: a browser bundle of kiln (esbuild, Vite) must not try
// to resolve them; in a browser these functions return before importing (no file, no cache dir).
const NODE_FS = "node:fs/promises";
const NODE_PATH = "node:path";
const NODE_OS = "node:os";
const nodeFs = () => import(NODE_FS) as Promise<typeof import("node:fs/promises")>;
const nodePath = () => import(NODE_PATH) as Promise<typeof import("node:path")>;
const nodeOs = () => import(NODE_OS) as Promise<typeof import("node:os")>;

const nodeProcess = (): { env: Record<string, string | undefined> } | undefined => {
  const proc = (globalThis as { process?: { versions?: { node?: string }; env: Record<string, string | undefined> } }).process;
  return proc?.versions?.node ? proc : undefined;
};

/** KILN_CACHE_DIR, else $XDG_CACHE_HOME/kiln, else ~/.cache/kiln; undefined outside Node. */
export async function tuneCacheDir(): Promise<string | undefined> {
  const proc = nodeProcess();
  if (!proc) return undefined;
  const path = await nodePath();
  if (proc.env["KILN_CACHE_DIR"]) return path.resolve(proc.env["KILN_CACHE_DIR"]);
  if (proc.env["XDG_CACHE_HOME"]) return path.join(proc.env["XDG_CACHE_HOME"], "kiln");
  const { homedir } = await nodeOs();
  return path.join(homedir(), ".cache", "kiln");
}

/** <dir>/tune/<first 16 hex digits of sha256(adapter text)>.json */
export const tuneCacheFile = (dir: string, adapter: TuneAdapter): string => `${dir}/tune/${sha256Hex(adapterText(adapter)).slice(0, 16)}.json`;

const corrupt = (file: string, why: string): KilnError =>
  new KilnError({ code: "invalid-argument", message: `tuning cache ${file}: ${why} (delete the file to start over, or set KILN_TUNE=0)` });

/** The cache's entries from the file's text; a KilnError naming `file` for anything malformed. */
export function parseTuneCache(text: string, file: string, adapter: TuneAdapter): Map<string, TuneEntry> {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw corrupt(file, `not JSON (${(e as Error).message})`);
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw corrupt(file, "not a JSON object");
  const c = raw as Record<string, unknown>;
  if (c["format"] !== TUNE_CACHE_FORMAT) throw corrupt(file, `format is ${JSON.stringify(c["format"])}, expected "${TUNE_CACHE_FORMAT}"`);
  if (c["version"] !== TUNE_CACHE_VERSION) throw corrupt(file, `version is ${JSON.stringify(c["version"])}, this Kiln reads version ${TUNE_CACHE_VERSION}`);
  if (c["adapter"] !== adapterText(adapter))
    throw corrupt(file, `it is for adapter ${JSON.stringify(c["adapter"])}, not ${JSON.stringify(adapterText(adapter))}`);
  const entries = c["entries"];
  if (typeof entries !== "object" || entries === null || Array.isArray(entries)) throw corrupt(file, "entries is missing or not an object");
  const out = new Map<string, TuneEntry>();
  for (const [key, value] of Object.entries(entries as Record<string, unknown>)) {
    const where = `entries["${key}"]`;
    if (!/^(matmul|row):[0-9a-f]{24}$/.test(key)) throw corrupt(file, `${where}: not a section key (kind:hash)`);
    const e = value as Record<string, unknown> | null;
    if (typeof e !== "object" || e === null) throw corrupt(file, `${where} is not an object`);
    const form = typeof e["form"] === "string" ? parseFormText(e["form"]) : undefined;
    if (!form) throw corrupt(file, `${where}.form ${JSON.stringify(e["form"])} is not a form ('form matmul registers rows=8 cols=8 threads=64 unroll=4')`);
    if (form.kind !== key.split(":")[0]) throw corrupt(file, `${where}.form is a ${form.kind} form for a ${key.split(":")[0]} key`);
    const wrong = checkTunedForm(form);
    if (wrong) throw corrupt(file, `${where}.form: ${wrong}`);
    for (const field of ["ms", "defaultMs", "candidates"] as const)
      if (e[field] !== undefined && (typeof e[field] !== "number" || !Number.isFinite(e[field]) || e[field] < 0))
        throw corrupt(file, `${where}.${field} is not a non-negative number`);
    out.set(key, {
      form,
      ...(e["ms"] !== undefined ? { ms: e["ms"] as number } : {}),
      ...(e["defaultMs"] !== undefined ? { defaultMs: e["defaultMs"] as number } : {}),
      ...(e["candidates"] !== undefined ? { candidates: e["candidates"] as number } : {}),
    });
  }
  return out;
}

/** The cache for `adapter`: its file's entries, none when the file does not exist. */
export async function loadTuneCache(adapter: TuneAdapter, dir?: string): Promise<TuneCache> {
  const base = { adapter: adapterText(adapter), kind: adapterKindOf(adapter), entries: new Map<string, TuneEntry>() };
  const root = dir ?? (await tuneCacheDir());
  if (root === undefined) return { ...base, file: undefined };
  const file = tuneCacheFile(root, adapter);
  const { readFile } = await nodeFs();
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (e) {
    if ((e as { code?: string }).code === "ENOENT") return { ...base, file };
    throw corrupt(file, `cannot be read (${(e as Error).message})`);
  }
  return { ...base, file, entries: parseTuneCache(text, file, adapter) };
}

/** The file's text: entries sorted by key, so the file diffs cleanly. */
export function formatTuneCache(cache: TuneCache): string {
  const entries: Record<string, unknown> = {};
  for (const key of [...cache.entries.keys()].sort()) {
    const e = cache.entries.get(key)!;
    entries[key] = { form: printForm(e.form), ...(e.ms !== undefined ? { ms: e.ms, defaultMs: e.defaultMs, candidates: e.candidates } : {}) };
  }
  return `${JSON.stringify({ format: TUNE_CACHE_FORMAT, version: TUNE_CACHE_VERSION, adapter: cache.adapter, kind: cache.kind, entries }, null, 2)}\n`;
}

/** Writes the cache to its file (nothing without one): a temporary sibling renamed into place. */
export async function saveTuneCache(cache: TuneCache): Promise<void> {
  if (!cache.file) return;
  const fs = await nodeFs();
  const path = await nodePath();
  await fs.mkdir(path.dirname(cache.file), { recursive: true });
  const temporary = `${cache.file}.tmp-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  await fs.writeFile(temporary, formatTuneCache(cache));
  await fs.rename(temporary, cache.file);
}

/** The tuning context the `tune` pass reads: the cache's adapter, kind and forms. */
export const tuningOf = (cache: TuneCache): TuningContext => ({
  kind: cache.kind,
  adapter: cache.adapter,
  forms: new Map([...cache.entries].map(([k, e]) => [k, e.form])),
});

/**
 * Adds an artifact's searched choices (its manifest's `tuning`) to the cache, for a later
 * compile on the same adapter to use without searching; returns how many it added. An
 * artifact tuned for another adapter is refused: its timings say nothing about this one.
 */
export function importTuning(cache: TuneCache, tuning: WebGpuTuning, from: string): number {
  if (tuning.adapter !== cache.adapter)
    throw new KilnError({
      code: "invalid-argument",
      message: `${from} was tuned for adapter ${JSON.stringify(tuning.adapter ?? "none")}, not this one (${JSON.stringify(cache.adapter)}): nothing imported`,
    });
  let added = 0;
  for (const [key, choice] of Object.entries(tuning.choices)) {
    if (!choice.tuned) continue;
    const form = parseFormText(choice.form);
    const wrong = form ? checkTunedForm(form) : "not a form";
    if (!form || wrong)
      throw new KilnError({ code: "invalid-argument", message: `${from}: tuning.choices["${key}"].form ${JSON.stringify(choice.form)}: ${wrong}` });
    cache.entries.set(key, { form });
    added++;
  }
  return added;
}
