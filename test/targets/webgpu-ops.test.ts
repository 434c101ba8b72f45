// The webgpu target on the shared op table (test/targets/op-cases.ts: ops, composites,
// gradients, larger shapes, models), each case compared with the float64 interpreter. Without
// an adapter the suite skips with one notice; KILN_REQUIRE_WEBGPU=1 makes that a failure (test/util/webgpu-env.ts).

import { describe, test } from "vitest";
import { webGpuTestEnv } from "../util/webgpu-env.ts";
import { describeOpSuite, expectAdamTrajectoryMatchesReference } from "./op-cases.ts";
import { webGpuTestTarget } from "./test-targets.ts";

const env = await webGpuTestEnv();
// Generous timeouts: lavapipe JIT-compiles each new shader on first use (seconds on 2 busy cores).
const TIMEOUT_MS = 180_000;

describeOpSuite(
  webGpuTestTarget(() => env.context!),
  { skip: !env.available, timeoutMs: TIMEOUT_MS },
);

describe.skipIf(!env.available)("webgpu target: models", () => {
  test(
    "three Adam steps with gradient clipping follow the reference trajectory (state kept between runs)",
    () => expectAdamTrajectoryMatchesReference("webgpu"),
    TIMEOUT_MS,
  );
});
