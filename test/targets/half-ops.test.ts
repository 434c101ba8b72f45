// The op suite over f16 and bf16 (test/targets/op-cases.ts describeHalfOpSuite): every case
// with f32 inputs, those inputs made 16-bit, each target against the interpreter's per-op
// rounding, within tolerances from the format's epsilon (HALF_TOLERANCE). The default run
// covers the op groups; KILN_FULL=1 adds gradients, larger shapes and models.

import { describeHalfOpSuite, caseGroups, HALF_GROUPS } from "./op-cases.ts";
import { jsTestTarget } from "./test-targets.ts";
import { FULL } from "../util/full.ts";

const groups = FULL ? caseGroups : HALF_GROUPS;
describeHalfOpSuite(jsTestTarget, "f16", groups);
describeHalfOpSuite(jsTestTarget, "bf16", groups);
