// The named kernel passes backends pick from (compiler/backend.ts `kernelPasses`). Each wraps
// one kernel-IR transform of compiler/kernel/ and runs in the driver's pass loop, which
// verifies, times and dumps it (`NN-tile.kir`) like a graph pass.

import type { KernelPass } from "./backend.ts";
import { blockContractions } from "./kernel/block-contraction.ts";
import { tileProgram } from "./kernel/tile.ts";

/** Register tiling of contractions (sections with a `dot` fact; compiler/kernel/tile.ts): up to 4x4 outputs per iteration. */
export const tilePass: KernelPass = { name: "tile", run: (program) => tileProgram(program) };

/** Register blocking of contractions with a 4-wide SIMD lane axis (compiler/kernel/block-contraction.ts). */
export const blockContractionPass: KernelPass = {
  name: "block-contraction",
  run: (program) => blockContractions(program),
};
