// How many workgroups (WebGPU) or blocks (CUDA) a dispatch recorded as a SymbolicDispatch
// needs for a run of symbolic size n (docs/training.md, "A symbolic batch"): every section
// runs ceil(extent × n / max) steps of its outer variable, `per` threads each. Shared by the
// runners and the CUDA emulation.

import type { SymbolicDispatch } from "./format.ts";

/** Workgroups (or blocks) that cover every thread the run's rows need. */
export function neededWorkgroups(sym: SymbolicDispatch, n: number): number {
  const threads = Math.max(...sym.sections.map(([extent, per]) => Math.min(extent, Math.ceil((extent * n) / sym.max)) * per));
  return Math.ceil(threads / sym.perWorkgroup);
}
