/// <reference types="@webgpu/types" />
// The device's peaks, measured (exe.profile compares each kernel's rates with them): memory
// bandwidth from one large buffer-to-buffer copy, arithmetic from a kernel of independent vec4
// FMA chains across many workgroups, each timed on the host around one submission (best of 3).
// Measured when asked (once per process, by the caller's cache), never by a run.

const COPY_BYTES = 32 * 1024 * 1024;
const WORKGROUPS = 1024;
const WORKGROUP_SIZE = 64;
const ITERATIONS = 256;
const CHAINS = 4;

const FMA_KERNEL = `@group(0) @binding(0) var<storage, read_write> out: array<vec4<f32>>;
@compute @workgroup_size(${WORKGROUP_SIZE})
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  var a = vec4<f32>(f32(g.x) * 1e-6);
  var b = a + vec4<f32>(1.0);
  var c = a + vec4<f32>(2.0);
  var d = a + vec4<f32>(3.0);
  let m = vec4<f32>(0.9999);
  let k = vec4<f32>(0.0001);
  for (var i = 0u; i < ${ITERATIONS}u; i++) {
    a = fma(a, m, k);
    b = fma(b, m, k);
    c = fma(c, m, k);
    d = fma(d, m, k);
  }
  out[g.x] = a + b + c + d;
}`;

export interface DevicePeaks {
  readonly gflops: number;
  readonly gbps: number;
  readonly how: string;
}

export async function measureWebGpuPeaks(device: GPUDevice): Promise<DevicePeaks> {
  // Best of 3 after one warm-up (a driver may JIT-compile the shader at its first dispatch).
  const time = async (encode: (encoder: GPUCommandEncoder) => void): Promise<number> => {
    let best = Infinity;
    for (let round = 0; round < 4; round++) {
      const encoder = device.createCommandEncoder();
      encode(encoder);
      const started = performance.now();
      device.queue.submit([encoder.finish()]);
      await device.queue.onSubmittedWorkDone();
      if (round > 0) best = Math.min(best, performance.now() - started);
    }
    return best;
  };
  const src = device.createBuffer({ size: COPY_BYTES, usage: GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST });
  const dst = device.createBuffer({ size: COPY_BYTES, usage: GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC });
  const out = device.createBuffer({ size: WORKGROUPS * WORKGROUP_SIZE * 16, usage: GPUBufferUsage.STORAGE });
  try {
    const copyMs = await time((e) => e.copyBufferToBuffer(src, 0, dst, 0, COPY_BYTES));
    const module = device.createShaderModule({ code: FMA_KERNEL });
    const pipeline = await device.createComputePipelineAsync({ layout: "auto", compute: { module, entryPoint: "main" } });
    const bindGroup = device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer: out } }] });
    const fmaMs = await time((e) => {
      const pass = e.beginComputePass();
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, bindGroup);
      pass.dispatchWorkgroups(WORKGROUPS);
      pass.end();
    });
    const flops = WORKGROUPS * WORKGROUP_SIZE * ITERATIONS * CHAINS * 4 * 2;
    return {
      gflops: flops / fmaMs / 1e6,
      gbps: (2 * COPY_BYTES) / copyMs / 1e6,
      how: `device: ${COPY_BYTES >> 20} MiB buffer copy (read + write), vec4 FMA loop over ${WORKGROUPS}x${WORKGROUP_SIZE} threads; best of 3, host-timed around one submission`,
    };
  } finally {
    src.destroy();
    dst.destroy();
    out.destroy();
  }
}
