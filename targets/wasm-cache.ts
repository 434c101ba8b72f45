// The wasm executor's side of the persistent compile cache (compile-cache.ts, on with
// KILN_COMPILE_CACHE=1 or =<folder>): which compiles may use it, and the Compiled a cached artifact
// stands in for — its other parts (graph, fusion plan, kernel program, memory plan, and the
// kernels' portable twins) come from a real compile, run only when something reads them
// (exe.profile's costs, exe.save, kiln dump).

import type { Compiled } from "../compiler/compile.ts";
import { debugLevel } from "../compiler/debug.ts";
import { printGraph } from "../compiler/ir/printer.ts";
import type { Graph } from "../compiler/ir/types.ts";
import type { ArtifactKernel, WasmArtifact } from "../runtime/artifact/format.ts";

/** A compile's look-up in the cache: the artifact when it hit, and how to store or reject one. */
export interface WasmCacheUse {
  readonly artifact: WasmArtifact | undefined;
  /** Milliseconds the look-up took (key, read, parse): the "compile-cache" stage of a hit. */
  readonly lookupMs: number;
  store(artifact: WasmArtifact): void;
  /** Warns that the entry read is not usable (the engine refused it), naming why. */
  reject(why: string): void;
}

/** Options that make a compile's output something else than an artifact to cache (dumps, timings, verification, hand-made passes). */
const UNCACHEABLE = ["dumpAfter", "dumpAll", "dump", "timePasses", "debug", "raw", "autodiff", "graphPasses", "verify"];
/** Options that only the runner reads. */
const RUN_ONLY = new Set(["threads", "minParallelWork"]);

/** The options as the key's JSON, or undefined when this compile does not use the cache. */
function keyOptions(opts: object, codegen: object): unknown {
  const record = opts as Record<string, unknown>;
  if (UNCACHEABLE.some((name) => record[name] !== undefined && record[name] !== false) || debugLevel() > 0) return undefined;
  const picked: Record<string, unknown> = {};
  for (const name of Object.keys(record).sort()) {
    if (RUN_ONLY.has(name) || record[name] === undefined) continue;
    if (typeof record[name] === "function") return undefined;
    picked[name] = record[name];
  }
  return { options: picked, codegen };
}

/** Looks `graph` up when KILN_COMPILE_CACHE names a folder and the options allow it; else undefined. */
export async function openWasmCache(graph: Graph, opts: object, codegen: () => object): Promise<WasmCacheUse | undefined> {
  const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env;
  if (!env?.["KILN_COMPILE_CACHE"]) return undefined;
  const options = keyOptions(opts, codegen());
  if (options === undefined) return undefined;
  const started = performance.now();
  const cache = await import("./compile-cache.ts");
  const dir = await cache.compileCacheDir();
  if (dir === undefined) return undefined;
  const key = cache.cacheKey("wasm", options, printGraph(graph));
  const hit = cache.readEntry(dir, "wasm", key);
  return {
    artifact: hit?.artifact as WasmArtifact | undefined,
    lookupMs: performance.now() - started,
    store: (artifact) => cache.writeEntry(dir, "wasm", key, artifact),
    reject: (why) => {
      if (hit) cache.rejectEntry(hit.file, why);
    },
  };
}

/** The Compiled of a cache hit: `artifact` now, everything else from `recompile` when first read. */
export function compiledFromCache(artifact: WasmArtifact, recompile: () => Compiled<WasmArtifact>, lookupMs: number): Compiled<WasmArtifact> {
  let full: Compiled<WasmArtifact> | undefined;
  const fresh = (): Compiled<WasmArtifact> => (full ??= recompile());
  const kernels = artifact.kernels.map(
    (k, i): ArtifactKernel =>
      Object.defineProperty({ ...k }, "portableSource", { get: () => fresh().artifact.kernels[i]?.portableSource, enumerable: true, configurable: true }),
  );
  return {
    get graph() {
      return fresh().graph;
    },
    get plan() {
      return fresh().plan;
    },
    get program() {
      return fresh().program;
    },
    get memory() {
      return fresh().memory;
    },
    get layout() {
      return fresh().layout;
    },
    artifact: { ...artifact, kernels },
    dumps: [],
    timings: [{ pass: "compile-cache", ms: lookupMs }],
    facts: new Map(),
  };
}
