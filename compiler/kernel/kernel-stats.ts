// What one kernel costs, counted from its kernel IR: the elements it stores, the arithmetic it
// does and the bytes of the buffers it binds. The viewer (cli/view-data.ts) shows these beside
// each kernel, and a profile divides them by measured time. Counted per output element, as
// lowering writes the loop nest: an expression runs once per element of the section's domain,
// times the extent of every reduction loop it depends on (a contraction of [M,K]·[K,N] counts
// M·N·K multiplies and M·N·K adds, 2·M·N·K FLOPs). Loads, constants, casts, index arithmetic and
// random bits are not FLOPs; comparisons, selects, max and each reduction step are.

import { assertNever } from "../util/errors.ts";
import { exprOperands, exprOwnVars, type Kernel, type Section } from "./kernel-ir.ts";

export interface KernelCost {
  /** Output elements stored (each section's domain size times its stores). */
  readonly elements: number;
  /** Arithmetic operations (see the module comment). */
  readonly flops: number;
  /** Bytes of the buffers the kernel reads and writes (whole buffers, as bound). */
  readonly bytesRead: number;
  readonly bytesWritten: number;
}

const product = (xs: readonly number[]): number => xs.reduce((a, b) => a * b, 1);

/** The arithmetic of one section: each counted expression's evaluations (see the module comment). */
export function sectionFlops(s: Section): number {
  const domainSize = product(s.domain.map((v) => v.extent));
  // Reduction loop extents by variable name (a body comes before its reduce in expression order).
  const extent = new Map<string, number>();
  for (const e of s.exprs) if (e.op === "reduce_sum" || e.op === "reduce_max") for (const v of e.vars) extent.set(v.name, v.extent);
  const vars: Set<string>[] = [];
  let flops = 0;
  s.exprs.forEach((e, id) => {
    const own = exprOwnVars(e);
    for (const operand of exprOperands(e)) for (const v of vars[operand] ?? []) own.add(v);
    const reduceVars = (): number => product([...own].map((v) => extent.get(v) ?? 1));
    switch (e.op) {
      case "reduce_sum":
      case "reduce_max":
        // one accumulation per evaluation of the body, which varies over the reduce's own loop
        flops += domainSize * product([...vars[e.body]!].map((v) => extent.get(v) ?? 1));
        for (const v of e.vars) own.delete(v.name);
        break;
      case "const":
      case "load":
      case "index":
      case "valid":
      case "cast":
      case "rng":
        break;
      case "where":
      case "neg":
      case "exp2":
      case "log2":
      case "sin":
      case "sqrt":
      case "recip":
      case "add":
      case "mul":
      case "max":
      case "cmplt":
      case "cmpeq":
      case "idiv":
      case "mod":
        flops += domainSize * reduceVars();
        break;
      default:
        assertNever(e, "kernel expr");
    }
    vars[id] = own;
  });
  return flops;
}

/** Elements, FLOPs and bytes of `k`; `bufferBytes` gives a buffer's size in bytes. */
export function kernelCost(k: Kernel, bufferBytes: (buffer: number) => number): KernelCost {
  let elements = 0;
  let flops = 0;
  for (const s of k.sections) {
    elements += product(s.domain.map((v) => v.extent)) * s.stores.length;
    flops += sectionFlops(s);
  }
  const sum = (ids: readonly number[]): number => ids.reduce((a, id) => a + bufferBytes(id), 0);
  return { elements, flops, bytesRead: sum(k.reads), bytesWritten: sum(k.writes) };
}
