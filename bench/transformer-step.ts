// The pre-LN transformer block train step of bench/cases/transformer.ts (batch 8×128, d 256,
// 4 heads, MSE, AdamW) as a model file exporting one k.program, for bench/wasm-profile.ts and
// bench/wasm-ab.ts (docs/wasm.md); parameters from seed 0.

import * as k from "kiln";
import { transformerCase } from "./cases/transformer.ts";

k.manualSeed(0);
const { fn, specs } = transformerCase.kiln();
export const transformerStep = k.program(fn, specs, { name: "transformerStep" });
