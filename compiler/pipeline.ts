// The pass manager: runs an ordered list of Graph → Graph passes and, around each one (the
// loop, never the pass), verifies, dumps and times. Dumps are numbered in pipeline order
// (`00-input.kir`, `01-simplify.kir`, …) and printed canonically, so two dump folders diff
// cleanly. Passes record their decisions as data in `ctx.facts` for tests and dumps to read.

import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { log, logs, setDebugLevel } from "./debug.ts";
import { printGraph } from "./ir/printer.ts";
import { verifyOrThrow } from "./ir/verifier.ts";
import type { Graph } from "./ir/types.ts";
import { cse } from "./passes/cse.ts";
import { dce } from "./passes/dce.ts";
import { simplify } from "./passes/simplify.ts";
import { fuse } from "./passes/fuse.ts";
import { KilnError } from "./util/errors.ts";

export interface PipelineOptions {
  /** Verify the input and the graph after every pass; a failure names the pass. */
  readonly verify?: boolean;
  /** Pass names whose output graph (and extra files) to dump; "input" dumps the input. */
  readonly dumpAfter?: readonly string[];
  /** Dump the input and the output of every pass. */
  readonly dumpAll?: boolean;
  /** Also write the dump files into this folder (created if missing). */
  readonly dumpDir?: string;
  /** Log per-pass times at debug level 0 (they are always recorded in the result). */
  readonly timePasses?: boolean;
  /** Debug level for this run (overrides KILN_DEBUG); see docs/debugging.md. */
  readonly debug?: number;
  /** Print source locations in graph dumps (default true). */
  readonly locs?: boolean;
}

export interface DumpFile {
  readonly name: string;
  readonly text: string;
}

export interface PassTiming {
  readonly pass: string;
  readonly ms: number;
}

export interface PassContext {
  readonly options: PipelineOptions;
  /** Decisions passes record as data, keyed by pass or topic (e.g. "fusion" → the plan). */
  readonly facts: Map<string, unknown>;
  /** Two-digit position of the running pass ("03"): a prefix for extra dump file names. */
  readonly step: string;
  /** True when the running pass's output is being dumped: skip building dump text otherwise. */
  readonly dumping: boolean;
  /**
   * Adds an extra dump file for the running pass (kernel IR `03-fuse.kernels.kir`, a kernel
   * source `k7_dot_add_max.js`). Ignored unless the pass is selected for dumping.
   */
  dump(fileName: string, text: string): void;
  readonly timings: readonly PassTiming[];
}

export interface Pass {
  readonly name: string;
  run(g: Graph, ctx: PassContext): Graph;
}

export interface PipelineResult {
  readonly graph: Graph;
  readonly facts: ReadonlyMap<string, unknown>;
  /** Dump files in pipeline order (also written to dumpDir when given). */
  readonly dumps: readonly DumpFile[];
  readonly timings: readonly PassTiming[];
}

/** The default pipeline, in order. Later stages append here (e.g. `fuse`). */
export const defaultPasses: readonly Pass[] = [simplify, fuse];

/** Passes that can be named (in --after, in a `.kir` RUN line) without being in the default list. */
const extraPasses: readonly Pass[] = [cse, dce];

export function knownPasses(): Pass[] {
  const byName = new Map<string, Pass>();
  for (const p of [...defaultPasses, ...extraPasses]) if (!byName.has(p.name)) byName.set(p.name, p);
  return [...byName.values()];
}

/** Other spellings people reach for (`--after fusion`). */
const passAliases: Readonly<Record<string, string>> = { fusion: "fuse" };

export function passByName(name: string): Pass {
  const canonical = passAliases[name] ?? name;
  const pass = knownPasses().find((p) => p.name === canonical);
  if (!pass) throw new KilnError({ code: "usage", message: `unknown pass '${name}' (known: ${knownPasses().map((p) => p.name).join(", ")})` });
  return pass;
}

/** Parses a comma-separated pass list ("simplify,fuse") into passes. */
export function passesFromList(list: string): Pass[] {
  return list
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "")
    .map(passByName);
}

const pad2 = (i: number): string => String(i).padStart(2, "0");

function checkDumpNames(names: readonly string[], passes: readonly Pass[]): void {
  const valid = new Set(["input", ...passes.map((p) => p.name)]);
  for (const name of names) {
    if (!valid.has(name)) throw new KilnError({ code: "usage", message: `--dump-after: no pass named '${name}' in this pipeline (passes: input, ${passes.map((p) => p.name).join(", ")})` });
  }
}

/** Runs `passes` over `g` in order; see the module comment. */
export function runPasses(g: Graph, passes: readonly Pass[], opts: PipelineOptions = {}): PipelineResult {
  const dumpAfter = (opts.dumpAfter ?? []).map((n) => passAliases[n] ?? n);
  checkDumpNames(dumpAfter, passes);
  const wantsDump = (name: string): boolean => opts.dumpAll === true || dumpAfter.includes(name);
  const print = (graph: Graph): string => printGraph(graph, { locs: opts.locs !== false });
  const previousLevel = opts.debug === undefined ? undefined : setDebugLevel(opts.debug);
  const facts = new Map<string, unknown>();
  const timings: PassTiming[] = [];
  const dumps: DumpFile[] = [];
  if (opts.dumpDir !== undefined) mkdirSync(opts.dumpDir, { recursive: true });
  const emit = (name: string, text: string): void => {
    dumps.push({ name, text });
    if (opts.dumpDir !== undefined) writeFileSync(join(opts.dumpDir, name), text);
  };
  try {
    if (opts.verify) verifyOrThrow(g);
    if (wantsDump("input")) emit("00-input.kir", print(g));
    let graph = g;
    for (const [i, pass] of passes.entries()) {
      const step = pad2(i + 1);
      const dumping = wantsDump(pass.name);
      const ctx: PassContext = {
        options: opts,
        facts,
        step,
        dumping,
        timings,
        dump: (fileName, text) => {
          if (dumping) emit(fileName, text);
        },
      };
      const started = performance.now();
      const before = graph;
      graph = pass.run(before, ctx);
      const ms = performance.now() - started;
      timings.push({ pass: pass.name, ms });
      if (opts.verify) verifyOrFail(graph, pass.name, print(before), step, emit);
      if (dumping) emit(`${step}-${pass.name}.kir`, print(graph));
      if (logs(3)) log(3, `after ${pass.name}:\n${print(graph)}`);
      log(opts.timePasses ? 0 : 2, `pass ${pass.name}: ${ms.toFixed(2)} ms, ${before.nodes.length} -> ${graph.nodes.length} nodes`);
    }
    return { graph, facts, dumps, timings };
  } finally {
    if (opts.debug !== undefined) setDebugLevel(previousLevel);
  }
}

/** Verifies a pass's output; on failure dumps a reproducer (the pass's input) before rethrowing. */
function verifyOrFail(graph: Graph, passName: string, inputText: string, step: string, emit: (name: string, text: string) => void): void {
  try {
    verifyOrThrow(graph, passName);
  } catch (e) {
    emit(`${step}-${passName}.reproducer.kir`, `// RUN: ${passName}\n// the input on which pass '${passName}' produced an invalid graph\n${inputText}`);
    throw e;
  }
}

export interface DumpProgramOptions {
  /** Pass names after which to dump (--after). */
  readonly after?: readonly string[];
  /** Dump the input and every pass (--all). */
  readonly all?: boolean;
  readonly dumpDir?: string;
  readonly verify?: boolean;
  /** Print source locations (default true; --no-locs). */
  readonly locs?: boolean;
  /** The pipeline to run; the default pipeline when omitted. */
  readonly passes?: readonly Pass[];
}

/**
 * What `kiln dump` prints for one graph or a module of graphs (every program a model
 * exports). With neither `after` nor `all`: the graphs after the whole pipeline. Otherwise
 * the selected dump files, each under a `// ---- <file> ----` header; a `.kir` file holds
 * that stage of every graph (files of the same name from several graphs are joined).
 */
export function dumpProgram(graphs: Graph | readonly Graph[], opts: DumpProgramOptions = {}): { text: string; files: DumpFile[] } {
  const list: readonly Graph[] = Array.isArray(graphs) ? graphs : [graphs as Graph];
  const passes = opts.passes ?? defaultPasses;
  const results = list.map((g) =>
    runPasses(g, passes, {
      ...(opts.after ? { dumpAfter: opts.after } : {}),
      ...(opts.all ? { dumpAll: true } : {}),
      ...(opts.verify ? { verify: true } : {}),
      ...(opts.locs === false ? { locs: false } : {}),
    }),
  );
  const files = mergeDumps(results.map((r) => r.dumps));
  if (opts.dumpDir !== undefined) {
    mkdirSync(opts.dumpDir, { recursive: true });
    for (const f of files) writeFileSync(join(opts.dumpDir, f.name), f.text);
  }
  const selected = opts.all === true || (opts.after?.length ?? 0) > 0;
  const text = selected
    ? files.map((f) => `// ---- ${f.name} ----\n${f.text}`).join("\n")
    : results.map((r) => printGraph(r.graph, { locs: opts.locs !== false })).join("\n");
  return { text, files };
}

/** Joins per-graph dumps: same-named files become one (for .kir, a module: graphs separated by a blank line). */
function mergeDumps(perGraph: readonly (readonly DumpFile[])[]): DumpFile[] {
  const order: string[] = [];
  const texts = new Map<string, string[]>();
  for (const dumps of perGraph) {
    for (const d of dumps) {
      if (!texts.has(d.name)) {
        order.push(d.name);
        texts.set(d.name, []);
      }
      texts.get(d.name)!.push(d.text);
    }
  }
  return order.map((name) => ({ name, text: texts.get(name)!.join("\n") }));
}
