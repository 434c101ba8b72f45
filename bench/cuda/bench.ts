// Kiln's side of the CUDA benchmark (bench/gpu-check.sh): device time of the kernels alone
// (inputs already on the GPU) for a 4096³ f32 matmul, a fused elementwise chain and one
// MLP + AdamW training step (examples/mlp.ts). Prints one JSON object; bench/cuda/report.py
// sets it against PyTorch's numbers from torch_ref.py. Run: node --import tsx bench/cuda/bench.ts

import { HyperStore } from "../../dsl/hyper.ts";
import * as k from "kiln";
import { createCudaExecutor } from "../../targets/cuda.ts";
import type { HostTensor } from "../../compiler/ir/host-tensor.ts";
import { traceProgram } from "../../dsl/program.ts";
import * as mlp from "../../examples/mlp.ts";

const MATMUL = 4096;
const CHAIN_ELEMENTS = 1 << 26;

function uniform(count: number, seed: number): Float32Array {
  let state = seed >>> 0;
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    out[i] = (state >>> 8) / 16777216 - 0.5;
  }
  return out;
}

async function timeGraph(
  name: string,
  fn: (...xs: k.Tensor[]) => unknown,
  specs: readonly k.InputSpec[],
  iterations: number,
): Promise<{ ms: number; kernels: number }> {
  const traced = k.traceFunction(name, fn as never, specs);
  const exe = await createCudaExecutor(traced.graph);
  const inputs: Record<string, HostTensor> = {};
  traced.graph.inputs.forEach((id, i) => {
    const n = traced.graph.nodes[id]!;
    if (n.op === "input")
      inputs[n.name] = {
        dtype: "f32",
        shape: n.type.shape,
        data: uniform(
          n.type.shape.reduce((a, b) => a * b, 1),
          i + 1,
        ),
      };
  });
  await exe.run(inputs);
  return { ms: exe.timeKernels(iterations), kernels: exe.stats.kernels };
}

async function timeTrainStep(iterations: number): Promise<{ ms: number; kernels: number }> {
  const traced = traceProgram(mlp.trainStep, "trainStep");
  const exe = await createCudaExecutor(traced.graph);
  const inputs: Record<string, HostTensor> = {
    x: { dtype: "f32", shape: [mlp.BATCH, mlp.IN_FEATURES], data: uniform(mlp.BATCH * mlp.IN_FEATURES, 7) },
    y: { dtype: "i32", shape: [mlp.BATCH], data: Int32Array.from({ length: mlp.BATCH }, (_, i) => i % mlp.CLASSES) },
  };
  for (const [name, init] of traced.state) inputs[name] = init();
  Object.assign(inputs, new HyperStore(traced.hyper).inputs());
  await exe.run(inputs);
  return { ms: exe.timeKernels(iterations), kernels: exe.stats.kernels };
}

const matmul = await timeGraph("matmul", (a, b) => a!.matmul(b!), [k.f32([MATMUL, MATMUL]), k.f32([MATMUL, MATMUL])], 5);
const chain = await timeGraph("chain", (x) => x!.mul(1.5).add(0.5).relu().mul(x!), [k.f32([CHAIN_ELEMENTS])], 20);
const step = await timeTrainStep(50);
const result = {
  matmul_f32_ms: matmul.ms,
  matmul_f32_tflops: (2 * MATMUL ** 3) / (matmul.ms * 1e9),
  matmul_f16_ms: null, // the graph IR has no f16 dtype yet
  chain_ms: chain.ms,
  chain_gbps: (8 * CHAIN_ELEMENTS) / (chain.ms * 1e6),
  chain_kernels: chain.kernels,
  mlp_step_ms: step.ms,
  mlp_step_kernels: step.kernels,
};
console.log(JSON.stringify(result));
