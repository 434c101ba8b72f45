// The op suite over f16 and bf16 (test/targets/op-cases.ts describeHalfOpSuite): every case
// with f32 inputs, those inputs made 16-bit, each target against the interpreter's per-op
// rounding, within tolerances from the format's epsilon (HALF_TOLERANCE), plus the cases that
// must match bit for bit. The default run covers the op groups; KILN_FULL=1 adds gradients,
// larger shapes and models (wasm: the elementwise and linear-algebra groups by default). wasm
// runs split across two threads (every section split).

import { afterAll } from "vitest";
import type { Graph } from "../../compiler/ir/types.ts";
import { formatFusionPlan } from "../../compiler/passes/fuse.ts";
import { WasmArtifactRunner } from "../../runtime/wasm/run-artifact.ts";
import { compileWasm } from "../../targets/wasm.ts";
import { FULL } from "../util/full.ts";
import { caseGroups, describeHalfOpSuite, HALF_GROUPS, type TestTarget } from "./op-cases.ts";
import { jsTestTarget } from "./test-targets.ts";

const groups = FULL ? caseGroups : HALF_GROUPS;

const runners: WasmArtifactRunner[] = [];
afterAll(async () => {
  await Promise.all(runners.map((r) => r.close()));
});
const wasmTarget: TestTarget = {
  name: "wasm",
  label: "wasm target (2 threads)",
  compile: (g: Graph, opts) => {
    const compiled = compileWasm(g, opts);
    return {
      run: async (inputs) => {
        const runner = await WasmArtifactRunner.create(compiled.artifact, { threads: 2, minParallelWork: 0 });
        runners.push(runner);
        return runner.run(inputs);
      },
      explain: () => formatFusionPlan(compiled.graph, compiled.plan),
    };
  },
};

for (const dtype of ["f16", "bf16"] as const) {
  describeHalfOpSuite(jsTestTarget, dtype, groups);
  // wasm compiles a module per case: the default run keeps the elementwise and linear-algebra groups.
  describeHalfOpSuite(wasmTarget, dtype, FULL ? caseGroups : ["elementwise", "linear algebra"]);
}
