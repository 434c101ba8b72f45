/// <reference types="@webgpu/types" />
// Times one compute shader on zero-filled buffers: the autotuner's measurement
// (targets/webgpu-tune-search.ts). The pipeline is created asynchronously and dispatched once
// untimed (a driver may compile at first dispatch, as lavapipe does); then each repetition is
// one compute pass, timed with timestamp queries where the device has `timestamp-query`, else
// by the wall clock around a submission. Zeros are safe inputs: no kernel branches on data in a
// way that leaves its bounds (gathers clamp), and timing does not depend on the values.

export interface TimedShader {
  readonly label: string;
  readonly source: string;
  /** Bytes of the buffer bound at each @binding (0, 1, …). */
  readonly bindingBytes: readonly number[];
  readonly workgroups: readonly [number, number, number];
}

export interface ShaderTiming {
  /** Median ms per dispatch. */
  readonly ms: number;
  /** Pipeline creation and the first dispatch, ms. */
  readonly compileMs: number;
  readonly clock: "device-timestamps" | "host";
}

/** Repeats until `budgetMs` of measured time or `maxReps`, at least `minReps`. */
export interface TimingOptions {
  readonly minReps?: number;
  readonly maxReps?: number;
  readonly budgetMs?: number;
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

export async function timeShader(device: GPUDevice, shader: TimedShader, opts: TimingOptions = {}): Promise<ShaderTiming> {
  const minReps = opts.minReps ?? 3;
  const maxReps = opts.maxReps ?? 15;
  const budgetMs = opts.budgetMs ?? 200;
  const buffers = shader.bindingBytes.map((bytes, i) =>
    device.createBuffer({ size: Math.max(16, Math.ceil(bytes / 4) * 4), usage: GPUBufferUsage.STORAGE, label: `${shader.label}/b${i}` }),
  );
  try {
    const started = performance.now();
    device.pushErrorScope("validation");
    const module = device.createShaderModule({ code: shader.source, label: shader.label });
    const pipeline = await device.createComputePipelineAsync({ layout: "auto", compute: { module, entryPoint: "main" }, label: shader.label });
    const bindGroup = device.createBindGroup({
      layout: pipeline.getBindGroupLayout(0),
      entries: buffers.map((buffer, binding) => ({ binding, resource: { buffer } })),
    });
    const error = await device.popErrorScope();
    if (error) throw new Error(`webgpu tuning: candidate ${shader.label} does not compile: ${error.message}`);
    const [x, y, z] = shader.workgroups;
    const submit = (pass: GPUComputePassDescriptor = {}): GPUCommandEncoder => {
      const encoder = device.createCommandEncoder();
      const p = encoder.beginComputePass(pass);
      p.setPipeline(pipeline);
      p.setBindGroup(0, bindGroup);
      p.dispatchWorkgroups(x, y, z);
      p.end();
      return encoder;
    };
    device.queue.submit([submit().finish()]);
    await device.queue.onSubmittedWorkDone();
    const compileMs = performance.now() - started;

    const samples: number[] = [];
    const timestamps = device.features.has("timestamp-query");
    const querySet = timestamps ? device.createQuerySet({ type: "timestamp", count: 2 }) : undefined;
    const resolve = timestamps ? device.createBuffer({ size: 16, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC }) : undefined;
    const read = timestamps ? device.createBuffer({ size: 16, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST }) : undefined;
    try {
      let spent = 0;
      while (samples.length < maxReps && (samples.length < minReps || spent < budgetMs)) {
        const t0 = performance.now();
        if (querySet && resolve && read) {
          const encoder = submit({ timestampWrites: { querySet, beginningOfPassWriteIndex: 0, endOfPassWriteIndex: 1 } });
          encoder.resolveQuerySet(querySet, 0, 2, resolve, 0);
          encoder.copyBufferToBuffer(resolve, 0, read, 0, 16);
          device.queue.submit([encoder.finish()]);
          await read.mapAsync(GPUMapMode.READ);
          const [begin, end] = new BigUint64Array(read.getMappedRange().slice(0));
          read.unmap();
          samples.push(Number(end! - begin!) / 1e6);
        } else {
          device.queue.submit([submit().finish()]);
          await device.queue.onSubmittedWorkDone();
          samples.push(performance.now() - t0);
        }
        spent += performance.now() - t0;
      }
    } finally {
      querySet?.destroy();
      resolve?.destroy();
      read?.destroy();
    }
    return { ms: median(samples), compileMs, clock: timestamps ? "device-timestamps" : "host" };
  } finally {
    for (const b of buffers) b.destroy();
  }
}
