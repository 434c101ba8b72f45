// Whether the WebGPU tests run here: an adapter exists → run; none and KILN_REQUIRE_WEBGPU=1 →
// fail loudly (CI that installed lavapipe must not silently skip); none otherwise → skip, with
// one notice per test run. Tests call `await webGpuTestEnv()` and use `describe.skipIf(!env.available)`, `env.context`.

import { existsSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { interpret } from "../../compiler/ir/interpret.ts";
import type { Graph } from "../../compiler/ir/types.ts";
import type { HostTensor } from "../../compiler/ir/host-tensor.ts";
import type { Artifact } from "../../runtime/artifact/format.ts";
import { acquireWebGpu, type WebGpuContext } from "../../runtime/webgpu/device.ts";
import { WebGpuArtifactRunner } from "../../runtime/webgpu/run-artifact.ts";

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

/**
 * Runs `artifact` once on the test device and throws at the first output element off the
 * float64 interpreter by more than 1e-5 + 1e-4·|expected|. NaN matches NaN only where the
 * test says NaN is expected (`nanMatches`); the error lists the kernel sources.
 */
export async function expectArtifactMatchesInterpreter(
  context: WebGpuContext,
  g: Graph,
  artifact: Artifact,
  inputs: Record<string, HostTensor>,
  opts: { readonly nanMatches?: boolean } = {},
): Promise<void> {
  const want = interpret(g, inputs);
  const runner = await WebGpuArtifactRunner.create(context.device, artifact);
  const got = await runner.run(inputs);
  runner.destroy();
  for (const o of g.outputs) {
    const a = got[o.name]!.data;
    const e = want[o.name]!.data;
    if (a.length !== e.length) throw new Error(`${o.name}: webgpu gave ${a.length} values, the interpreter ${e.length}`);
    for (let j = 0; j < e.length; j++) {
      const ok = opts.nanMatches && Number.isNaN(e[j]!) ? Number.isNaN(a[j]!) : Math.abs(a[j]! - e[j]!) <= 1e-5 + 1e-4 * Math.abs(e[j]!);
      if (!ok) throw new Error(`${o.name}[${j}]: webgpu ${a[j]} vs interpreter ${e[j]}\n${artifact.kernels.map((kk) => kk.source).join("\n")}`);
    }
  }
}
