// Whether the WebGPU tests run here: an adapter exists → run; none and KILN_REQUIRE_WEBGPU=1 →
// fail loudly (CI that installed lavapipe must not silently skip); none otherwise → skip, with
// one notice per test run. Tests call `await webGpuTestEnv()` and use `describe.skipIf(!env.available)`, `env.context`.

import { existsSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { acquireWebGpu, type WebGpuContext } from "../../runtime/webgpu/device.ts";

export interface WebGpuTestEnv {
  readonly available: boolean;
  readonly context: WebGpuContext | undefined;
}

/** One notice per test run: vitest runs each file in its own child of the same parent process. */
function noticeOnce(message: string): void {
  const marker = join(tmpdir(), `kiln-webgpu-skip-notice-${process.ppid}`);
  if (existsSync(marker)) return;
  writeFileSync(marker, "");
  console.warn(message);
}

export async function webGpuTestEnv(): Promise<WebGpuTestEnv> {
  const context = await acquireWebGpu();
  if (!context) {
    if (process.env["KILN_REQUIRE_WEBGPU"] === "1")
      throw new Error("KILN_REQUIRE_WEBGPU=1 but no WebGPU adapter was found (install lavapipe: ../shared/setup/webgpu-deps.sh, and set XDG_RUNTIME_DIR)");
    noticeOnce("webgpu: no adapter on this machine; WebGPU tests skipped (set KILN_REQUIRE_WEBGPU=1 to make this an error)");
  }
  return { available: context !== undefined, context };
}
