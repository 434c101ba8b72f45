// The js target on the shared op table (test/targets/op-cases.ts: ops, composites, gradients,
// larger shapes, models), each case compared with the float64 interpreter, plus the js-only
// checks through k.compile and the ties test's exact counts.

import { describe, expect, test } from "vitest";
import * as k from "kiln";
import { compileJs } from "../../targets/js.ts";
import { JsArtifactRunner } from "../../runtime/js/run-artifact.ts";
import { caseInputs, describeOpSuite, expectAdamTrajectoryMatchesReference, maxTies } from "./op-cases.ts";
import { jsTestTarget } from "./test-targets.ts";

describeOpSuite(jsTestTarget);

describe("js target: models", () => {
  test("three Adam steps with gradient clipping follow the reference trajectory (state kept between runs)", () => expectAdamTrajectoryMatchesReference("js"));

  test("max's tie test: every row of the recomputed exp finds its stored max exactly once", () => {
    const g = k.traceFunction("ties", maxTies as never, [k.f32([6, 9])]).graph;
    const c = compileJs(g);
    expect(c.artifact.stats.kernels).toBeGreaterThan(0);
    const counts = new JsArtifactRunner(c.artifact).run(caseInputs(g, {}))["1"]!.data;
    expect(Array.from(counts)).toEqual([1, 1, 1, 1, 1, 1]);
  });

  test("k.compile with target js runs and reports stats", async () => {
    const exe = await k.compile((x: k.Tensor, w: k.Tensor) => x.matmul(w).relu(), [k.f32([2, 3]), k.f32([3, 2])], { target: "js" });
    const out = (await exe.run([
      [1, 2, 3, 4, 5, 6],
      [1, -1, 0, 2, -1, 0.5],
    ])) as { data: ArrayLike<number> };
    // [1,2,3]·[1,0,-1] = -2 → 0, [1,2,3]·[-1,2,0.5] = 4.5; [4,5,6]·[1,0,-1] = -2 → 0, [4,5,6]·[-1,2,0.5] = 9
    expect(Array.from(out.data)).toEqual([0, 4.5, 0, 9]);
    expect(exe.stats).toMatchObject({ kernels: 1, bytesRead: 48, bytesWritten: 16 });
  });
});
