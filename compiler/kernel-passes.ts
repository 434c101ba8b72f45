// The named kernel passes backends pick from (compiler/backend.ts `kernelPasses`). Each wraps
// one kernel-IR transform of compiler/kernel/ and runs in the driver's pass loop, which
// verifies, times and dumps it (`NN-tile.kir`) like a graph pass.

import type { KernelPass } from "./backend.ts";
import { blockContractions } from "./kernel/block-contraction.ts";
import { tileProgram } from "./kernel/tile.ts";
import { unmaskRows, type MaskFact } from "./kernel/symbolic-rows.ts";

/** Register tiling of contractions (sections with a `dot` fact; compiler/kernel/tile.ts): up to 4x4 outputs per iteration. */
export const tilePass: KernelPass = { name: "tile", run: (program) => tileProgram(program) };

/** Register blocking of contractions with a 4-wide SIMD lane axis (compiler/kernel/block-contraction.ts). */
export const blockContractionPass: KernelPass = {
  name: "block-contraction",
  run: (program) => blockContractions(program),
};

/**
 * Under a symbolic batch, the row masks dropped when every reduction over the batch stops at
 * the run's rows (compiler/kernel/symbolic-rows.ts); for targets that bound those loops (js,
 * wasm, cuda). Needs mask-symbolic's fact that no value has two symbolic axes; without it, unchanged.
 */
export const symbolicRowsPass: KernelPass = {
  name: "symbolic-rows",
  run: (program, ctx) => ((ctx.facts.get("mask-symbolic") as MaskFact | undefined)?.oneAxis ? unmaskRows(program) : program),
};
