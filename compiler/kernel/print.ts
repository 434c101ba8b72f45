// The canonical text form of the kernel IR, for dumps (`03-fuse.kernels.kir`) and tests:
// the same program prints byte-identically, expressions numbered per section as built.

import { indexKey, predKey } from "./index-expr.ts";
import type { KExpr, Kernel, KernelProgram, Section } from "./kernel-ir.ts";

export function printKernelProgram(p: KernelProgram): string {
  const lines = [`program @${p.name}`];
  for (const b of p.buffers) lines.push(`  buffer b${b.id} ${b.kind} ${b.dtype}[${b.shape.join(",")}] "${b.name}"`);
  for (const k of p.kernels) lines.push(printKernel(k));
  return lines.join("\n") + "\n";
}

export function printKernel(k: Kernel): string {
  const lines = [`kernel ${k.name} reads(${k.reads.map((b) => `b${b}`).join(", ")}) writes(${k.writes.map((b) => `b${b}`).join(", ")})`];
  k.sections.forEach((s, i) => lines.push(printSection(s, i)));
  return lines.join("\n");
}

function printSection(s: Section, index: number): string {
  const domain = s.domain.map((v) => `${v.name}<${v.extent}`).join(", ");
  const tile = s.tile ? ` tile ${s.tile.rows}x${s.tile.cols}` : "";
  const lines = [`  section ${index} domain [${domain}]${tile}`];
  s.exprs.forEach((e, id) => lines.push(`    %${id} = ${printExpr(e)}`));
  for (const st of s.stores) lines.push(`    store b${st.buffer}[${indexKey(st.index)}] = %${st.value}`);
  return lines.join("\n");
}

export function printExpr(e: KExpr): string {
  switch (e.op) {
    case "const":
      return `const ${e.dtype} ${Object.is(e.value, -0) ? "-0" : String(e.value)}`;
    case "load":
      return `load ${e.dtype} b${e.buffer}[${indexKey(e.index)}]${e.valid === false || e.valid.length > 0 ? ` if ${predKey(e.valid)}` : ""}`;
    case "index":
      return `index ${indexKey(e.index)}`;
    case "valid":
      return `valid ${predKey(e.pred)}`;
    case "rng":
      return `rng %${e.seed} stream=${e.stream} counter=${indexKey(e.counter)}`;
    case "reduce_sum":
    case "reduce_max":
      return `${e.op} ${e.dtype} [${e.vars.map((v) => `${v.name}<${v.extent}`).join(", ")}] %${e.body}`;
    case "where":
      return `where ${e.dtype} %${e.cond}, %${e.x}, %${e.y}`;
    case "cast":
    case "neg":
    case "exp2":
    case "log2":
    case "sin":
    case "sqrt":
    case "recip":
      return `${e.op} ${e.dtype} %${e.x}`;
    default:
      return `${e.op} ${e.dtype} %${e.x}, %${e.y}`;
  }
}
