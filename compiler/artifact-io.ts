// Pieces of an artifact every target fills the same way: the input/output table (names,
// types, buffers, aliases) and the traffic counters of exe.stats.

import type { KernelProgram } from "./kernel/kernel-ir.ts";
import type { Artifact } from "../runtime/artifact/format.ts";

/** The artifact's `inputs` and `outputs`, read off the kernel program's buffers. */
export function artifactIO(program: KernelProgram): Pick<Artifact, "inputs" | "outputs"> {
  const io = (name: string, buffer: number, aliases?: string) => {
    const b = program.buffers[buffer]!;
    return { name, dtype: b.dtype, shape: b.shape, buffer, ...(aliases !== undefined ? { aliases } : {}) };
  };
  return {
    inputs: program.inputs.map((i) => io(i.name, i.buffer)),
    outputs: program.outputs.map((o) => io(o.name, o.buffer, o.aliases)),
  };
}

/** Bytes read and written by one run: each kernel's reads and writes, counted per launch. */
export function trafficBytes(
  kernels: readonly { readonly reads: readonly number[]; readonly writes: readonly number[] }[],
  bytesOf: (buffer: number) => number,
): { bytesRead: number; bytesWritten: number } {
  let bytesRead = 0;
  let bytesWritten = 0;
  for (const k of kernels) {
    for (const id of k.reads) bytesRead += bytesOf(id);
    for (const id of k.writes) bytesWritten += bytesOf(id);
  }
  return { bytesRead, bytesWritten };
}
