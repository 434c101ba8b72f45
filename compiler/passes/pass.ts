// The contract between a pass and the loop that runs it (compiler/pipeline.ts): a pass maps
// one IR value to a new one and records decisions in `ctx.facts`; the loop, never the pass,
// verifies, times and dumps. Kept apart from the loop so passes import no pipeline (no cycle).

import type { Graph } from "../ir/types.ts";

/** Where dump files go. The compiler never touches a file system: the CLI or a test injects one. */
export interface DumpSink {
  write(name: string, text: string): void;
}

export interface PipelineOptions {
  /** Verify the input and the IR after every pass; a failure names the pass. */
  readonly verify?: boolean;
  /** Pass names whose output (and extra files) to dump; "input" dumps the input. */
  readonly dumpAfter?: readonly string[];
  /** Dump the input and the output of every pass. */
  readonly dumpAll?: boolean;
  /** Also hand every dump file to this sink as it is made (e.g. one writing a folder). */
  readonly dump?: DumpSink;
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
   * Adds an extra dump file for the running pass (`03-fuse.groups.txt`, a kernel source).
   * Ignored unless the pass is selected for dumping.
   */
  dump(fileName: string, text: string): void;
  readonly timings: readonly PassTiming[];
}

/** A pass over IR of type `T` (the graph IR by default; kernel passes use `KernelPass`). */
export interface Pass<T = Graph> {
  readonly name: string;
  run(ir: T, ctx: PassContext): T;
}
