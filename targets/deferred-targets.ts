// What the target registry knows of the targets a CPU program never runs — webgpu, cuda and the
// reference interpreter — before their code loads: name, description, priority, option keys
// and how to tell whether the machine has the device (each of those imports only the small
// runtime module it asks). Their code (the WGSL and CUDA renderers, the WebGPU passes and
// tuning, the interpreter: about a fifth of the library) is loaded by the registry on first use
// (targets/registry.ts, a dynamic import, so the built package puts it in chunks of its own), not
// at `import "kiln"`: a cold start on the cpu target parses none of it (issue 14). webgpu.ts and
// cuda.ts build their backends from these entries, so the two never disagree.

import type { TargetDevice } from "./backend.ts";
import { jsOptionKeys } from "./js.ts";

/** The keys the webgpu target reads (webgpu.ts checks them against WebGpuTargetOptions). */
export const webGpuOptionKeys = ["verify", "limits", "tiledMatmul", "progress", "progressAfterMs", "tune", "fuseAttention", "shaderF16", "quickStart"] as const;

/** The keys the cuda target reads: the js target's and its own (cuda.ts checks them against CudaCompileOptions). */
export const cudaOptionKeys = [...jsOptionKeys, "reduction", "symbolPrefix"] as const;

/** "none" without an adapter; "software" for a CPU adapter (used only when asked for by name). */
export async function webGpuAdapterKind(): Promise<"hardware" | "software" | "none"> {
  const gpu = await (await import("../runtime/webgpu/device.ts")).acquireWebGpu();
  return !gpu ? "none" : gpu.adapter.software ? "software" : "hardware";
}

/** Why the cuda target cannot run here, or undefined when it can. */
export async function cudaUnavailableReason(): Promise<string | undefined> {
  const runtime = await import("../runtime/cuda/index.ts");
  return runtime.cudaUnavailableReason();
}

/** The webgpu target's entry, less its factory. */
export const webGpuInfo = {
  name: "webgpu",
  description: "WGSL on a WebGPU adapter (navigator.gpu in a browser, Dawn in Node)",
  priority: 2,
  available: async (): Promise<boolean> => (await webGpuAdapterKind()) !== "none",
  // A software adapter (lavapipe, SwiftShader) runs only when asked for by name: the CPU backends beat it.
  auto: async (): Promise<boolean> => (await webGpuAdapterKind()) === "hardware",
  device: async (): Promise<TargetDevice | undefined> => {
    const gpu = await (await import("../runtime/webgpu/device.ts")).acquireWebGpu();
    if (!gpu) return undefined;
    const { description, device, vendor, software } = gpu.adapter;
    return { name: description || device || vendor || "unnamed WebGPU adapter", software };
  },
  options: webGpuOptionKeys,
} as const;

/** The cuda target's entry, less its factory. */
export const cudaInfo = {
  name: "cuda",
  description: "CUDA C on an NVIDIA GPU through the driver API (node-addon-api addon; build it with npm run build:cuda)",
  priority: 3,
  available: async (): Promise<boolean> => (await cudaUnavailableReason()) === undefined,
  whyUnavailable: (): Promise<string | undefined> => cudaUnavailableReason(),
  options: cudaOptionKeys,
} as const;

/** The reference target's entry, less its factory. */
export const referenceInfo = {
  name: "reference",
  description: "float64 interpreter of the graph IR: the oracle every target is compared against",
  priority: 0,
} as const;
