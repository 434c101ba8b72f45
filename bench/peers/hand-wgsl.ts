// A hand-written WGSL kernel as a webgpu "peer": the elementwise case's expression fused by
// hand over vec4s (64 threads a workgroup, one vec4 a thread), the bar issue 15 sets for
// Kiln's generated kernels. A step is what exe.run does: the inputs written to device buffers,
// one dispatch, the output copied to a staging buffer and read back. Its kernel time
// (stats.kernelMs, as Kiln's exe.profile reports it) is measured with the same clock as Kiln's
// profile: device timestamps where the adapter has `timestamp-query`, else one submission timed
// on the host. Other cases have no hand-written kernel and report "unavailable".

/// <reference types="@webgpu/types" />
import { ELEMENTWISE_COUNT } from "../cases/elementwise.ts";
import { f32Of, type CaseData } from "../cases/case.ts";
import type { PreparedStep, Runner } from "../runner.ts";

const THREADS = 64;

/** sigmoid(relu(x·2 + 1)·y) over vec4s; `columns` workgroups along x, the rest along y. */
export function handFusedElementwiseWgsl(count: number, columns: number): string {
  return `@group(0) @binding(0) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> y: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> o: array<vec4<f32>>;
@compute @workgroup_size(${THREADS})
fn main(@builtin(workgroup_id) w: vec3<u32>, @builtin(local_invocation_index) l: u32) {
  let i = (w.y * ${columns}u + w.x) * ${THREADS}u + l;
  if (i < ${count / 4}u) { o[i] = 1.0 / (1.0 + exp(-(max(x[i] * 2.0 + 1.0, vec4<f32>(0.0)) * y[i]))); }
}`;
}

export function handWgslRunner(): Runner {
  let device: GPUDevice | undefined;
  return {
    name: "hand-fused WGSL",
    peer: "a hand-written vec4 WGSL kernel (bench/peers/hand-wgsl.ts), elementwise case only",
    async init() {
      const gpu = (globalThis as { navigator?: { gpu?: GPU } }).navigator?.gpu;
      const adapter = await gpu?.requestAdapter();
      if (!adapter) throw new Error("unavailable: no WebGPU adapter (navigator.gpu is not installed or found none)");
      const timestamps = adapter.features.has("timestamp-query");
      device = await adapter.requestDevice({
        requiredFeatures: timestamps ? ["timestamp-query"] : [],
        requiredLimits: { maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize, maxBufferSize: adapter.limits.maxBufferSize },
      });
    },
    async prepare(benchCase, data) {
      if (benchCase.id !== "elementwise") throw new Error(`unavailable: no hand-written kernel for the ${benchCase.id} case`);
      return prepareElementwise(device!, data);
    },
    notes: () => [],
  };
}

function prepareElementwise(device: GPUDevice, data: CaseData): PreparedStep {
  const x = f32Of(data, "x") as Float32Array<ArrayBuffer>;
  const y = f32Of(data, "y") as Float32Array<ArrayBuffer>;
  const count = ELEMENTWISE_COUNT;
  const bytes = count * 4;
  const storage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC;
  const [bx, by, bo] = [0, 1, 2].map(() => device.createBuffer({ size: bytes, usage: storage })) as [GPUBuffer, GPUBuffer, GPUBuffer];
  const staging = device.createBuffer({ size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const groups = count / 4 / THREADS;
  const columns = Math.min(groups, device.limits.maxComputeWorkgroupsPerDimension);
  const rows = Math.ceil(groups / columns);
  const pipeline = device.createComputePipeline({
    layout: "auto",
    compute: { module: device.createShaderModule({ code: handFusedElementwiseWgsl(count, columns) }), entryPoint: "main" },
  });
  const bindGroup = device.createBindGroup({
    layout: pipeline.getBindGroupLayout(0),
    entries: [bx, by, bo].map((buffer, binding) => ({ binding, resource: { buffer } })),
  });
  const timestamps = device.features.has("timestamp-query");
  const queries = timestamps ? device.createQuerySet({ type: "timestamp", count: 2 }) : undefined;
  const resolve = timestamps ? device.createBuffer({ size: 16, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC }) : undefined;
  const stamps = timestamps ? device.createBuffer({ size: 16, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST }) : undefined;
  const encodeKernel = (encoder: GPUCommandEncoder, timed: boolean): void => {
    const pass = encoder.beginComputePass(
      timed && queries ? { timestampWrites: { querySet: queries, beginningOfPassWriteIndex: 0, endOfPassWriteIndex: 1 } } : {},
    );
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(columns, rows);
    pass.end();
  };
  const out = new Float32Array(count);
  let steps = 0;
  /** One kernel alone, inputs already on the device: Kiln's exe.profile clock. */
  const kernelOnce = async (): Promise<number> => {
    await device.queue.onSubmittedWorkDone();
    const started = performance.now();
    const encoder = device.createCommandEncoder();
    encodeKernel(encoder, true);
    if (queries && resolve && stamps) {
      encoder.resolveQuerySet(queries, 0, 2, resolve, 0);
      encoder.copyBufferToBuffer(resolve, 0, stamps, 0, 16);
    }
    device.queue.submit([encoder.finish()]);
    if (!stamps) {
      await device.queue.onSubmittedWorkDone();
      return performance.now() - started;
    }
    await stamps.mapAsync(GPUMapMode.READ);
    const [begin, end] = new BigUint64Array(stamps.getMappedRange().slice(0));
    stamps.unmap();
    return end! > begin! ? Number(end! - begin!) / 1e6 : 0;
  };
  return {
    async step() {
      device.queue.writeBuffer(bx, 0, x);
      device.queue.writeBuffer(by, 0, y);
      const encoder = device.createCommandEncoder();
      encodeKernel(encoder, false);
      encoder.copyBufferToBuffer(bo, 0, staging, 0, bytes);
      device.queue.submit([encoder.finish()]);
      await staging.mapAsync(GPUMapMode.READ);
      out.set(new Float32Array(staging.getMappedRange()));
      staging.unmap();
      // Copies for the first two (compared across runners), as Kiln's runner keeps its own.
      return steps++ < 2 ? out.slice() : out;
    },
    // The mean of three, as Kiln's runner asks exe.profile for three steps.
    async kernelMs() {
      let total = 0;
      for (let i = 0; i < 3; i++) total += await kernelOnce();
      return total / 3;
    },
    stats: () => undefined,
    dispose() {
      for (const b of [bx, by, bo, staging, resolve, stamps]) b?.destroy();
      queries?.destroy();
    },
  };
}
