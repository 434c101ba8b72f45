// A model file's export, traced, with deterministic inputs: what the wasm probes
// (bench/wasm-profile.ts, bench/wasm-ab.ts) time. Labels are i % 10, floats 0.1·sin(i).

import path from "node:path";
import { pathToFileURL } from "node:url";
import { traceProgram, type Program } from "../dsl/program.ts";
import { nodeOf } from "../compiler/ir/graph.ts";
import type { HostTensor } from "../compiler/ir/host-tensor.ts";
import type { Graph } from "../compiler/ir/types.ts";

/** The graph of `entry`, a program exported by the model file `file`. */
export async function tracedExport(file: string, entry: string): Promise<Graph> {
  const mod = (await import(pathToFileURL(path.resolve(file)).href)) as Record<string, Program>;
  return traceProgram(mod[entry]!, entry).graph;
}

/** One host tensor per input of `g`: i32 inputs i % 10, the rest 0.1·sin(i). */
export function probeInputs(g: Graph): Record<string, HostTensor> {
  const inputs: Record<string, HostTensor> = {};
  for (const id of g.inputs) {
    const n = nodeOf(g, id);
    if (n.op !== "input") continue;
    const size = n.type.shape.reduce((a, b) => a * b, 1);
    const data =
      n.type.dtype === "i32" ? Int32Array.from({ length: size }, (_, i) => i % 10) : Float32Array.from({ length: size }, (_, i) => Math.sin(i) * 0.1);
    inputs[n.name] = { dtype: n.type.dtype, shape: n.type.shape, data } as HostTensor;
  }
  return inputs;
}
