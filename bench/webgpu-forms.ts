// Before/after timings of the webgpu target's kernel forms in one process (a benchmark, never
// a test): each case compiles with a form off ("before") and on ("after"), plus, for the
// elementwise chain, a hand-fused vec4 WGSL kernel (for the matmul: two k unrollings); rounds
// interleave the variants and the medians of the kernels' time (exe.profile's clock: device timestamps where the adapter has
// them, else one submission per kernel timed on the host) are printed.
//   npx tsx --conditions=kiln-source bench/webgpu-forms.ts [rounds] [case-substring]

/// <reference types="@webgpu/types" />
import * as k from "kiln";
import { compileWebGpu, type WebGpuOptions } from "../targets/webgpu.ts";
import type { HostTensor } from "../compiler/ir/host-tensor.ts";
import { WebGpuArtifactRunner } from "../runtime/webgpu/run-artifact.ts";
import { newRunProfiler } from "../runtime/artifact/profile.ts";
import { webGpuTestEnv } from "../test/util/webgpu-env.ts";
import { TF_BATCH, TF_DIM, TF_SEQ, transformerCase } from "./cases/transformer.ts";

const env = await webGpuTestEnv();
if (!env.available) {
  console.log("webgpu-forms: no WebGPU adapter here");
  process.exit(0);
}
const device = env.context!.device;
const rounds = Number(process.argv[2] ?? 5);
const only = process.argv[3];
const EW = 16 * 1024 * 1024;

type Timed = { readonly name: string; readonly ms: () => Promise<number>; readonly destroy: () => void };

async function kilnVariant(name: string, fn: (...x: k.Tensor[]) => unknown, specs: k.InputSpec[], opts: WebGpuOptions): Promise<Timed> {
  const g = k.traceFunction("bench", fn as never, specs).graph;
  const { artifact } = compileWebGpu(g, { limits: env.context!.limits, ...opts });
  const runner = await WebGpuArtifactRunner.create(device, artifact);
  const inputs: Record<string, HostTensor> = {};
  for (const io of artifact.inputs) {
    const n = io.shape.reduce((a, b) => a * b, 1);
    inputs[io.name] = { dtype: "f32", shape: io.shape, data: Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.1)) };
  }
  return {
    name: `${name} (${artifact.kernels.length} kernel${artifact.kernels.length > 1 ? "s" : ""})`,
    ms: async () => {
      const profile = newRunProfiler(artifact.kernels.length);
      await runner.run(inputs, { readback: [], profile });
      return profile.kernelMs.reduce((a, b) => a + b, 0);
    },
    destroy: () => runner.destroy(),
  };
}

/** The elementwise case's expression, fused by hand over vec4s, 64 threads per workgroup. */
function handFusedVec4(): Timed {
  const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST;
  const [x, y, o] = [0, 1, 2].map(() => device.createBuffer({ size: EW * 4, usage }));
  device.queue.writeBuffer(
    x!,
    0,
    Float32Array.from({ length: EW }, (_, i) => Math.sin(i * 0.1)),
  );
  device.queue.writeBuffer(
    y!,
    0,
    Float32Array.from({ length: EW }, (_, i) => Math.cos(i * 0.1)),
  );
  const groups = EW / 4 / 64;
  const gx = Math.min(groups, 65535);
  const code = `
@group(0) @binding(0) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> y: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> o: array<vec4<f32>>;
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) w: vec3<u32>, @builtin(local_invocation_index) l: u32) {
  let i = (w.y * ${gx}u + w.x) * 64u + l;
  if (i < ${EW / 4}u) { o[i] = 1.0 / (1.0 + exp(-(max(x[i] * 2.0 + 1.0, vec4<f32>(0.0)) * y[i]))); }
}`;
  const pipeline = device.createComputePipeline({ layout: "auto", compute: { module: device.createShaderModule({ code }), entryPoint: "main" } });
  const bindGroup = device.createBindGroup({
    layout: pipeline.getBindGroupLayout(0),
    entries: [x!, y!, o!].map((buffer, binding) => ({ binding, resource: { buffer } })),
  });
  // Timed as Kiln's exe.profile times its kernels: device timestamps where the adapter has them, else the host around one submission.
  const queries = device.features.has("timestamp-query") ? device.createQuerySet({ type: "timestamp", count: 2 }) : undefined;
  const resolve = device.createBuffer({ size: 16, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
  const stamps = device.createBuffer({ size: 16, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  return {
    name: `hand-fused vec4 WGSL${queries ? "" : " (host clock)"}`,
    ms: async () => {
      await device.queue.onSubmittedWorkDone();
      const t0 = performance.now();
      const e = device.createCommandEncoder();
      const pass = e.beginComputePass(queries ? { timestampWrites: { querySet: queries, beginningOfPassWriteIndex: 0, endOfPassWriteIndex: 1 } } : {});
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, bindGroup);
      pass.dispatchWorkgroups(gx, Math.ceil(groups / gx));
      pass.end();
      if (queries) {
        e.resolveQuerySet(queries, 0, 2, resolve, 0);
        e.copyBufferToBuffer(resolve, 0, stamps, 0, 16);
      }
      device.queue.submit([e.finish()]);
      if (!queries) {
        await device.queue.onSubmittedWorkDone();
        return performance.now() - t0;
      }
      await stamps.mapAsync(GPUMapMode.READ);
      const [begin, end] = new BigUint64Array(stamps.getMappedRange().slice(0));
      stamps.unmap();
      return Number(end! - begin!) / 1e6;
    },
    destroy: () => [x, y, o, resolve, stamps].forEach((b) => b!.destroy()),
  };
}

const f = k.f32;
const cases: [string, () => Promise<Timed[]>][] = [
  [
    "elementwise sigmoid(relu(x*2+1)*y), 16M",
    async () => {
      const fn = (x: k.Tensor, y: k.Tensor) => x.mul(2).add(1).relu().mul(y).sigmoid();
      return [
        await kilnVariant("kiln, one element per thread", fn, [f([EW]), f([EW])], { vectorize: false }),
        await kilnVariant("kiln, vec4, 64 threads x 1 (before)", fn, [f([EW]), f([EW])], { elementwiseShape: { threads: 64, perThread: 1 } }),
        await kilnVariant("kiln, vec4 (default shape)", fn, [f([EW]), f([EW])], {}),
        handFusedVec4(),
      ];
    },
  ],
  [
    "16-bit elementwise sigmoid(relu(x*2+1)*y), 4M: atomic half stores against whole-word stores (pairHalves)",
    async () => {
      const fn = (x: k.Tensor, y: k.Tensor) => x.mul(2).add(1).relu().mul(y).sigmoid();
      const n = EW / 4;
      const variants: Timed[] = [await kilnVariant("kiln f32", fn, [f([n]), f([n])], {})];
      for (const [dtype, spec] of [
        ["f16", k.f16],
        ["bf16", k.bf16],
      ] as const)
        for (const pairHalves of [false, true])
          variants.push(
            await kilnVariant(`kiln ${dtype}, ${pairHalves ? "whole words" : "atomic halves (before)"}`, fn, [spec([n]), spec([n])], {
              pairHalves,
              shaderF16: false,
            }),
          );
      return variants;
    },
  ],
  [
    "bf16 linear relu(x·W + b), x [1024, 1024], W [1024, 1024]: atomic half stores against whole-word stores (pairHalves), subgroup and registers forms",
    async () => {
      const fn = (x: k.Tensor, w: k.Tensor, b: k.Tensor) => x.matmul(w).add(b).relu();
      const specs = [k.bf16([1024, 1024]), k.bf16([1024, 1024]), k.bf16([1024])];
      const sg = env.context!.subgroupSize;
      const variants: Timed[] = [];
      for (const form of sg !== undefined ? (["subgroup", "registers"] as const) : (["registers"] as const))
        for (const pairHalves of [false, true])
          variants.push(
            await kilnVariant(`kiln ${form}, ${pairHalves ? "whole words" : "atomic halves (before)"}`, fn, specs, {
              pairHalves,
              tiledMatmul: "always",
              matmulForm: form,
              ...(form === "subgroup" ? { subgroupSize: sg! } : {}),
            }),
          );
      return variants;
    },
  ],
  [
    "bias + relu over 4096x1024 (row-vector broadcast)",
    async () => {
      const fn = (x: k.Tensor, b: k.Tensor) => x.add(b).relu();
      return [
        await kilnVariant("kiln, one element per thread", fn, [f([4096, 1024]), f([1024])], { vectorize: false }),
        await kilnVariant("kiln, vec4, 64 threads x 1 (before)", fn, [f([4096, 1024]), f([1024])], { elementwiseShape: { threads: 64, perThread: 1 } }),
        await kilnVariant("kiln, vec4 (default shape)", fn, [f([4096, 1024]), f([1024])], {}),
      ];
    },
  ],
  [
    "matmul 1024³, registers form: k unrolled by 1 and 4 (4: vec4 lhs loads too)",
    async () => {
      const fn = (a: k.Tensor, b: k.Tensor) => a.matmul(b);
      const specs = [f([1024, 1024]), f([1024, 1024])];
      return Promise.all(
        [1, 4].map((unroll) =>
          kilnVariant(`kiln, unroll=${unroll}`, fn, specs, { tiledMatmul: "always", matmulParams: { rows: 8, cols: 8, threads: 64, unroll } }),
        ),
      );
    },
  ],
  [
    "linear x·Wᵀ, x [1024, 1024], W [256, 1024] (the transformer's mlp.2 forward): both operands read along k",
    async () => {
      const xwt = (x: k.Tensor, w: k.Tensor) => x.matmul(w.t());
      const xw = (x: k.Tensor, w: k.Tensor) => x.matmul(w);
      const specs = [f([1024, 1024]), f([256, 1024])];
      return [
        await kilnVariant("kiln x·Wᵀ, registers, k vec4 (CPU default)", xwt, specs, { tiledMatmul: "always" }),
        await kilnVariant("kiln x·Wᵀ, registers, one k at a time", xwt, specs, { tiledMatmul: "always", kVectors: "never" }),
        await kilnVariant("kiln x·Wᵀ, registers unroll=4", xwt, specs, {
          tiledMatmul: "always",
          kVectors: "never",
          matmulParams: { rows: 8, cols: 8, threads: 64, unroll: 4 },
        }),
        await kilnVariant("kiln x·Wᵀ, workgroup tiles", xwt, specs, { tiledMatmul: "always", matmulForm: "workgroup" }),
        await kilnVariant("kiln x·W (W [1024, 256]), registers", xw, [f([1024, 1024]), f([1024, 256])], { tiledMatmul: "always" }),
      ];
    },
  ],
  [
    "transformer block train step (bench/cases/transformer.ts), all kernels: x·Wᵀ one k at a time or as vec4s along k",
    async () => {
      const tf = transformerCase.kiln();
      const step = (x: k.Tensor, y: k.Tensor) => (tf.fn as (i: Record<string, k.Tensor>) => unknown)({ x, y });
      const specs = [f([TF_BATCH, TF_SEQ, TF_DIM]), f([TF_BATCH, TF_SEQ, TF_DIM])];
      return [
        await kilnVariant("kiln, kVectors never", step, specs, { kVectors: "never" }),
        await kilnVariant("kiln, kVectors auto (CPU default)", step, specs, {}),
        await kilnVariant("kiln, kVectors always", step, specs, { kVectors: "always" }),
      ];
    },
  ],
];

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
console.log(`webgpu-forms on ${env.context!.adapter.description}: median of ${rounds} interleaved rounds, kernel time`);
for (const [title, make] of cases) {
  if (only && !title.includes(only)) continue;
  const variants = await make();
  for (const v of variants) await v.ms(); // pipelines and first-run JIT
  const times = variants.map((): number[] => []);
  for (let r = 0; r < rounds; r++) for (const [i, v] of variants.entries()) times[i]!.push(await v.ms());
  console.log(title);
  for (const [i, v] of variants.entries()) console.log(`  ${v.name.padEnd(44)} ${median(times[i]!).toFixed(1).padStart(8)} ms`);
  for (const v of variants) v.destroy();
}
process.exit(0);
