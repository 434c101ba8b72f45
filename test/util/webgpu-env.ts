// Whether the WebGPU tests run here: an adapter exists → run; none and KILN_REQUIRE_WEBGPU=1 →
// fail loudly (CI that installed lavapipe must not silently skip); none otherwise → skip, with
// one notice per process. Tests use `webgpu.device` and `describe.skipIf(!webgpu.available)`.

import { acquireWebGpu, type WebGpuContext } from "../../runtime/webgpu/device.ts";

export interface WebGpuTestEnv {
  readonly available: boolean;
  readonly context: WebGpuContext | undefined;
}

let noticed = false;

export async function webGpuTestEnv(): Promise<WebGpuTestEnv> {
  const context = await acquireWebGpu();
  if (!context) {
    if (process.env["KILN_REQUIRE_WEBGPU"] === "1")
      throw new Error("KILN_REQUIRE_WEBGPU=1 but no WebGPU adapter was found (install lavapipe: ../shared/setup/webgpu-deps.sh, and set XDG_RUNTIME_DIR)");
    if (!noticed) {
      noticed = true;
      console.warn("webgpu: no adapter on this machine; WebGPU tests skipped (set KILN_REQUIRE_WEBGPU=1 to make this an error)");
    }
  }
  return { available: context !== undefined, context };
}
