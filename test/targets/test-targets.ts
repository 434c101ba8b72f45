// The targets the op suite and the fuzzer compile for, as TestTarget values: compile a graph,
// run it on host inputs, explain it (fusion plan and kernel sources) when a comparison fails.

import { compileJs } from "../../targets/js.ts";
import { compileWebGpu, type WebGpuCompileOptions, type WebGpuCompiled } from "../../targets/webgpu.ts";
import { formatFusionPlan } from "../../compiler/passes/fuse.ts";
import type { WebGpuContext } from "../../runtime/webgpu/device.ts";
import { JsArtifactRunner } from "../../runtime/js/run-artifact.ts";
import { WebGpuArtifactRunner } from "../../runtime/webgpu/run-artifact.ts";
import type { TestTarget } from "./op-cases.ts";

export const jsTestTarget: TestTarget = {
  name: "js",
  compile: (g, opts) => {
    const compiled = compileJs(g, opts);
    return {
      run: (inputs) => new JsArtifactRunner(compiled.artifact).run(inputs),
      explain: () => `${formatFusionPlan(compiled.graph, compiled.plan)}\n${compiled.artifact.kernels.map((kk) => kk.source).join("\n")}`,
    };
  },
};

/**
 * `context` is read when a case compiles, so a suite that skips (no adapter) never calls it.
 * `extra` adds compile options (its `limits` replace the device's); `check` sees each compile.
 */
export function webGpuTestTarget(
  context: () => WebGpuContext,
  extra: (device: WebGpuContext) => Partial<WebGpuCompileOptions> = () => ({}),
  label?: string,
  check?: (compiled: WebGpuCompiled) => void,
): TestTarget {
  return {
    name: "webgpu",
    ...(label !== undefined ? { label } : {}),
    compile: (g, opts) => {
      const device = context();
      const compiled = compileWebGpu(g, { ...opts, limits: device.limits, ...extra(device) });
      check?.(compiled);
      return {
        run: async (inputs) => {
          const runner = await WebGpuArtifactRunner.create(device.device, compiled.artifact);
          try {
            return await runner.run(inputs);
          } finally {
            runner.destroy();
          }
        },
        explain: () => `${formatFusionPlan(compiled.graph, compiled.plan)}\n${compiled.artifact.kernels.map((kk) => kk.source).join("\n")}`,
      };
    },
  };
}
