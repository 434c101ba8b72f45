// The pass manager: runs an ordered list of passes over one IR level and, around each one (the
// loop, never the pass), verifies, dumps and times. The same loop runs graph passes here and
// kernel passes in the driver (compiler/compile.ts), numbering every stage of a compile in one
// sequence (`00-input.kir`, `01-simplify.kir`, …, `05-lower.kir`, …); dumps are printed
// canonically, so two dump folders diff cleanly, and handed to an injected sink (the compiler
// writes no files). Passes record their decisions as data in `ctx.facts` for tests and dumps.

import { log, logs, setDebugLevel } from "./debug.ts";
import { printGraph } from "./ir/printer.ts";
import { verifyOrThrow } from "./ir/verifier.ts";
import type { Graph } from "./ir/types.ts";
import { cse } from "./passes/cse.ts";
import { dce } from "./passes/dce.ts";
import { simplify } from "./passes/simplify.ts";
import { fuse } from "./passes/fuse.ts";
import type { FusionPlan } from "./kernel/fusion-plan.ts";
import { lowerProgram } from "./kernel/lower.ts";
import { printKernelProgram } from "./kernel/print.ts";
import type { DumpFile, Pass, PassContext, PassTiming, PipelineOptions } from "./passes/pass.ts";
import { KilnError } from "./util/errors.ts";

export type { DumpFile, DumpSink, Pass, PassContext, PassTiming, PipelineOptions } from "./passes/pass.ts";

export interface PipelineResult {
  readonly graph: Graph;
  readonly facts: ReadonlyMap<string, unknown>;
  /** Dump files in pipeline order (also handed to `opts.dump` when given). */
  readonly dumps: readonly DumpFile[];
  readonly timings: readonly PassTiming[];
}

/**
 * The graph passes of a compile (compiler/compile.ts runs these, then its own stages). CSE and
 * DCE run inside simplify's rewrite engine; as passes of their own they can still be named.
 */
export const graphPasses: readonly Pass[] = [simplify];

/** `fuse` as the graph-only pipeline runs it: when dumped, its groups and the lowered kernel IR (`NN-fuse.kernels.kir`). */
const fuseAndShowKernels: Pass = {
  name: fuse.name,
  run(g, ctx) {
    const out = fuse.run(g, ctx);
    const plan = ctx.facts.get("fusion") as FusionPlan | undefined;
    if (ctx.dumping && plan) ctx.dump(`${ctx.step}-fuse.kernels.kir`, printKernelProgram(lowerProgram(g, plan)));
    return out;
  },
};

/** The graph-only pipeline `kiln dump` runs without --target: the graph passes, then `fuse` (its groups and kernel IR as dumps). */
export const defaultPasses: readonly Pass[] = [...graphPasses, fuseAndShowKernels];

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
  if (!pass)
    throw new KilnError({
      code: "usage",
      message: `unknown pass '${name}' (known: ${knownPasses()
        .map((p) => p.name)
        .join(", ")})`,
    });
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

/** How the loop handles one IR level: print it for dumps, verify it, describe its size in logs. */
export interface IrLevel<T> {
  readonly print: (ir: T) => string;
  /** Throws a KilnError naming `passName` when `ir` breaks an invariant. */
  readonly verify: (ir: T, passName?: string) => void;
  readonly size: (ir: T) => string;
  /** Dump file extension, with the dot (".kir"). */
  readonly extension: string;
}

/**
 * One compile's dump, verify and timing state, shared by every level run through it (graph
 * passes, then the driver's stages and kernel passes), so files are numbered in one sequence.
 */
export interface PassRun {
  readonly options: PipelineOptions;
  readonly facts: Map<string, unknown>;
  readonly timings: PassTiming[];
  readonly dumps: DumpFile[];
  /** The next stage's number (00 is the input). */
  nextStep: number;
  wantsDump(stageName: string): boolean;
  emit(name: string, text: string): void;
}

/** Starts a run; `stageNames` are what --dump-after may name (an unknown name is a usage error). */
export function startPassRun(opts: PipelineOptions, stageNames: readonly string[]): PassRun {
  const dumpAfter = (opts.dumpAfter ?? []).map((n) => passAliases[n] ?? n);
  const valid = new Set(["input", ...stageNames]);
  for (const name of dumpAfter)
    if (!valid.has(name))
      throw new KilnError({ code: "usage", message: `--dump-after: no pass named '${name}' in this pipeline (passes: input, ${stageNames.join(", ")})` });
  const dumps: DumpFile[] = [];
  return {
    options: opts,
    facts: new Map(),
    timings: [],
    dumps,
    nextStep: 1,
    wantsDump: (name) => opts.dumpAll === true || dumpAfter.includes(name),
    emit(name, text) {
      dumps.push({ name, text });
      opts.dump?.write(name, text);
    },
  };
}

/** Runs `f` with the run's debug level (opts.debug overrides KILN_DEBUG), restoring it after. */
export function withDebugLevel<T>(opts: PipelineOptions, f: () => T): T {
  const previousLevel = opts.debug === undefined ? undefined : setDebugLevel(opts.debug);
  try {
    return f();
  } finally {
    if (opts.debug !== undefined) setDebugLevel(previousLevel);
  }
}

/**
 * Runs one named stage: gives it a step number and a context, times it, and when it is
 * selected for dumping lets it add files (`ctx.dump`). The graph and kernel pass loops and
 * the driver's own stages (fuse, lower, memory-plan, render) all go through here.
 */
export function runStage<T>(run: PassRun, name: string, body: (ctx: PassContext) => T): { readonly result: T; readonly step: string; readonly ms: number } {
  const step = pad2(run.nextStep++);
  const dumping = run.wantsDump(name);
  const ctx: PassContext = {
    options: run.options,
    facts: run.facts,
    step,
    dumping,
    timings: run.timings,
    dump: (fileName, text) => {
      if (dumping) run.emit(fileName, text);
    },
  };
  const started = performance.now();
  const result = body(ctx);
  const ms = performance.now() - started;
  run.timings.push({ pass: name, ms });
  return { result, step, ms };
}

/**
 * The pass loop of one IR level: runs `passes` over `ir` in order and, around each one (the
 * loop, never the pass), verifies, dumps (`NN-<pass><ext>`) and times; see the module comment.
 */
export function runLevel<T>(run: PassRun, ir: T, passes: readonly Pass<T>[], level: IrLevel<T>): T {
  let current = ir;
  for (const pass of passes) {
    const before = current;
    const { result, step, ms } = runStage(run, pass.name, (ctx) => pass.run(before, ctx));
    current = result;
    if (run.options.verify) verifyOrFail(level, current, pass.name, () => level.print(before), step, run);
    if (run.wantsDump(pass.name)) run.emit(`${step}-${pass.name}${level.extension}`, level.print(current));
    if (logs(3)) log(3, `after ${pass.name}:\n${level.print(current)}`);
    const timeLevel = run.options.timePasses ? 0 : 2;
    if (logs(timeLevel)) log(timeLevel, `pass ${pass.name}: ${ms.toFixed(2)} ms, ${level.size(before)} -> ${level.size(current)}`);
  }
  return current;
}

/** Verifies a pass's output; on failure dumps a reproducer (the pass's input) before rethrowing. */
function verifyOrFail<T>(level: IrLevel<T>, ir: T, passName: string, inputText: () => string, step: string, run: PassRun): void {
  try {
    level.verify(ir, passName);
  } catch (e) {
    run.emit(
      `${step}-${passName}.reproducer${level.extension}`,
      `// RUN: ${passName}\n// the input on which pass '${passName}' produced invalid IR\n${inputText()}`,
    );
    throw e;
  }
}

/** The graph level of the loop. */
export function graphLevel(opts: PipelineOptions): IrLevel<Graph> {
  return {
    print: (g) => printGraph(g, { locs: opts.locs !== false }),
    verify: (g, passName) => verifyOrThrow(g, passName),
    size: (g) => `${g.nodes.length} nodes`,
    extension: ".kir",
  };
}

/** Verifies and dumps the input graph (`00-input.kir`) of a run. */
export function startGraph(run: PassRun, g: Graph): void {
  if (run.options.verify) verifyOrThrow(g);
  if (run.wantsDump("input")) run.emit("00-input.kir", graphLevel(run.options).print(g));
}

/** Runs `passes` over `g` in order; see the module comment. */
export function runPasses(g: Graph, passes: readonly Pass[], opts: PipelineOptions = {}): PipelineResult {
  const run = startPassRun(
    opts,
    passes.map((p) => p.name),
  );
  return withDebugLevel(opts, () => {
    startGraph(run, g);
    const graph = runLevel(run, g, passes, graphLevel(opts));
    return { graph, facts: run.facts, dumps: run.dumps, timings: run.timings };
  });
}

export interface DumpProgramOptions {
  /** Pass names after which to dump (--after). */
  readonly after?: readonly string[];
  /** Dump the input and every pass (--all). */
  readonly all?: boolean;
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
export function dumpProgram(graphs: Graph | readonly Graph[], opts: DumpProgramOptions = {}): { text: string; files: DumpFile[]; timings: PassTiming[] } {
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
  const selected = opts.all === true || (opts.after?.length ?? 0) > 0;
  const text = selected
    ? files.map((f) => `// ---- ${f.name} ----\n${f.text}`).join("\n")
    : results.map((r) => printGraph(r.graph, { locs: opts.locs !== false })).join("\n");
  // Several graphs: each pass's time is summed over them, in pass order.
  const timings: PassTiming[] = [];
  for (const t of results.flatMap((r) => r.timings)) {
    const i = timings.findIndex((s) => s.pass === t.pass);
    if (i < 0) timings.push({ pass: t.pass, ms: t.ms });
    else timings[i] = { pass: t.pass, ms: timings[i]!.ms + t.ms };
  }
  return { text, files, timings };
}

/** Joins per-graph dumps: same-named files become one (for .kir, a module: graphs separated by a blank line). */
export function mergeDumps(perGraph: readonly (readonly DumpFile[])[]): DumpFile[] {
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
