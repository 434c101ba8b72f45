// WebGPU in Node for every runner at once: one `webgpu` (Dawn) GPU object installed as
// navigator.gpu, so Kiln's webgpu runtime, tfjs-backend-webgpu and jax-js all ask the same
// package for an adapter. Also reads the adapter's info for the record (device, driver).

import { existsSync, mkdirSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

export interface AdapterRecord {
  readonly vendor: string;
  readonly architecture: string;
  readonly device: string;
  /** Usually names the driver (e.g. "llvmpipe … Mesa 24.x" for lavapipe). */
  readonly description: string;
  readonly dawnFlags: readonly string[];
}

interface AdapterInfoLike {
  readonly vendor?: string;
  readonly architecture?: string;
  readonly device?: string;
  readonly description?: string;
}
interface GpuLike {
  requestAdapter(opts?: object): Promise<{ readonly info?: AdapterInfoLike } | null>;
}

/** Dawn's flags: Vulkan on Linux (a real GPU, or Mesa's lavapipe on a machine without one). */
const DAWN_FLAGS = process.platform === "linux" ? ["backend=vulkan"] : [];

let installed: Promise<AdapterRecord> | undefined;

/** Installs navigator.gpu (once) and returns the default adapter's info; rejects if there is none. */
export function installNavigatorGpu(): Promise<AdapterRecord> {
  installed ??= install();
  return installed;
}

async function install(): Promise<AdapterRecord> {
  // Dawn's Vulkan loader wants a runtime dir; CI containers often have none.
  const runtimeDir = process.env["XDG_RUNTIME_DIR"];
  if (runtimeDir === undefined || !existsSync(runtimeDir)) {
    const dir = path.join(os.tmpdir(), "xdg-runtime");
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    process.env["XDG_RUNTIME_DIR"] = dir;
  }
  const webgpu = (await import("webgpu")) as { create(flags: string[]): GpuLike; globals: object };
  Object.assign(globalThis, webgpu.globals);
  const gpu = webgpu.create([...DAWN_FLAGS]);
  const holder = globalThis as { navigator?: object };
  // Node 20 has no navigator; jax-js also reads navigator.userAgent (Node ≥ 21 defines it).
  const navigator = { gpu, hardwareConcurrency: os.availableParallelism(), userAgent: `Node.js/${process.version.slice(1)}` };
  if (holder.navigator === undefined) Object.defineProperty(globalThis, "navigator", { value: navigator, configurable: true, writable: true });
  else Object.defineProperty(holder.navigator, "gpu", { value: gpu, configurable: true });
  const adapter = await gpu.requestAdapter();
  if (!adapter) throw new Error("the webgpu package found no adapter (on Linux without a GPU, install lavapipe: ../shared/setup/webgpu-deps.sh)");
  const info = adapter.info ?? {};
  return {
    vendor: info.vendor ?? "",
    architecture: info.architecture ?? "",
    device: info.device ?? "",
    description: info.description ?? "",
    dawnFlags: DAWN_FLAGS,
  };
}
