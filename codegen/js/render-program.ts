// Kernel program → the "js" artifact's kernels: each kernel rendered as the body of
// `function (bufs, rt)` (render-js.ts), with the buffers it binds, reads and writes.

import type { KernelProgram } from "../../compiler/kernel/kernel-ir.ts";
import type { ArtifactKernel } from "../../runtime/artifact/format.ts";
import { renderJsKernel } from "./render-js.ts";

export function renderJsProgram(program: KernelProgram): ArtifactKernel[] {
  return program.kernels.map((k) => {
    const r = renderJsKernel(k, program.buffers);
    return { name: r.name, source: r.source, params: r.params, reads: k.reads, writes: k.writes };
  });
}
