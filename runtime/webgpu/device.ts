/// <reference types="@webgpu/types" />
// Finds a WebGPU adapter and opens one device per process: `navigator.gpu` in a browser, the
// `webgpu` package (Dawn over Vulkan) in Node. A software adapter (lavapipe, SwiftShader) is
// reported as such: "auto" target choice skips it, since the CPU backends beat it.

export interface WebGpuAdapterDescription {
  readonly vendor: string;
  readonly architecture: string;
  readonly device: string;
  readonly description: string;
  /** A CPU implementation (Mesa lavapipe/llvmpipe, SwiftShader, a fallback adapter). */
  readonly software: boolean;
}

export interface WebGpuContext {
  /** Held for the device's lifetime: Dawn frees its instance when this is collected. */
  readonly gpu: GPU;
  readonly device: GPUDevice;
  readonly adapter: WebGpuAdapterDescription;
  readonly limits: GPUSupportedLimits;
  /** The device was given `shader-f16` (the adapter has it): WGSL may `enable f16;`. */
  readonly shaderF16: boolean;
  /**
   * The device was given `subgroups` and the adapter runs every subgroup at this one size
   * (subgroupMinSize = subgroupMaxSize: lavapipe's 8 lanes of 256-bit AVX): WGSL may `enable
   * subgroups;` and rely on it. Undefined otherwise.
   */
  readonly subgroupSize?: number;
}

let context: Promise<WebGpuContext | undefined> | undefined;

/** The process-wide device, or undefined when this machine has no WebGPU adapter. */
export function acquireWebGpu(): Promise<WebGpuContext | undefined> {
  context ??= openDevice().catch(() => undefined);
  return context;
}

const SOFTWARE_PATTERN = /llvmpipe|lavapipe|swiftshader|software|microsoft basic render/i;

async function openDevice(): Promise<WebGpuContext | undefined> {
  const gpu = await gpuEntry();
  if (!gpu) return undefined;
  const adapter = await gpu.requestAdapter({ powerPreference: "high-performance" });
  if (!adapter) return undefined;
  const info = adapter.info;
  const text = [info.vendor, info.architecture, info.device, info.description].join(" ");
  const fallback =
    (adapter as { isFallbackAdapter?: boolean }).isFallbackAdapter === true || (info as { isFallbackAdapter?: boolean }).isFallbackAdapter === true;
  const l = adapter.limits;
  // Ask for the adapter's own limits: a device gets only WebGPU's minimums unless it asks.
  // `timestamp-query` where offered: exe.profile times kernels with it (a run that is not
  // profiled creates no query set, so having the feature costs nothing). `shader-f16` where
  // offered: f16 tensors then bind as array<f16> (codegen/wgsl/dispatch.ts).
  // `subgroups` where offered: the subgroup matmul form (codegen/wgsl/matmul.ts) broadcasts operands across a subgroup.
  const features = (["timestamp-query", "shader-f16", "subgroups"] as const).filter((f) => adapter.features.has(f));
  const device = await adapter.requestDevice({
    requiredFeatures: features,
    requiredLimits: {
      maxStorageBuffersPerShaderStage: l.maxStorageBuffersPerShaderStage,
      maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
      maxBufferSize: l.maxBufferSize,
      maxComputeWorkgroupsPerDimension: l.maxComputeWorkgroupsPerDimension,
    },
  });
  const sizes = info as { subgroupMinSize?: number; subgroupMaxSize?: number };
  const subgroupSize =
    device.features.has("subgroups") && sizes.subgroupMinSize !== undefined && sizes.subgroupMinSize === sizes.subgroupMaxSize && sizes.subgroupMinSize >= 2
      ? sizes.subgroupMinSize
      : undefined;
  return {
    gpu,
    device,
    limits: device.limits,
    shaderF16: device.features.has("shader-f16"),
    ...(subgroupSize !== undefined ? { subgroupSize } : {}),
    adapter: {
      vendor: info.vendor,
      architecture: info.architecture,
      device: info.device,
      description: info.description,
      software: fallback || SOFTWARE_PATTERN.test(text),
    },
  };
}

async function gpuEntry(): Promise<GPU | undefined> {
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  if (nav?.gpu) return nav.gpu;
  const proc = (globalThis as { process?: { versions?: { node?: string } } }).process;
  if (!proc?.versions?.node) return undefined;
  // Dawn's Vulkan loader wants XDG_RUNTIME_DIR to name an existing directory.
  const { mkdirSync } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  if (!process.env["XDG_RUNTIME_DIR"]) {
    const dir = `${tmpdir()}/kiln-xdg-runtime`;
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    process.env["XDG_RUNTIME_DIR"] = dir;
  }
  const dawn = (await import("webgpu")) as { create: (flags: string[]) => GPU; globals: Record<string, unknown> };
  // GPUBufferUsage, GPUMapMode… are globals in a browser; Dawn exports them.
  for (const [name, value] of Object.entries(dawn.globals)) if (!(name in globalThis)) Object.assign(globalThis, { [name]: value });
  return dawn.create(["backend=vulkan"]);
}
