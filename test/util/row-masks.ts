// Counts the symbolic-batch row masks a kernel program still holds (the symbolic-rows tests
// assert that the pass dropped them where the loops stop at the run's rows instead).

import type { KernelProgram } from "../../compiler/kernel/kernel-ir.ts";
import { sizeBuffer } from "../../compiler/kernel/symbolic-bound.ts";

/** Row masks left in the program: comparisons of an index with the size (times a scale). */
export function rowMasks(p: KernelProgram): number {
  const size = sizeBuffer(p.buffers)!;
  let n = 0;
  for (const s of p.kernels.flatMap((kk) => kk.sections)) {
    const isSize = (id: number): boolean => {
      const e = s.exprs[id]!;
      return (e.op === "load" && e.buffer === size.id) || (e.op === "mul" && (isSize(e.x) || isSize(e.y)));
    };
    n += s.exprs.filter((e) => e.op === "cmplt" && s.exprs[e.x]!.op === "index" && isSize(e.y)).length;
  }
  return n;
}
