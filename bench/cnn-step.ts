// The MNIST CNN train step of bench/cases/cnn.ts (batch 64, SGD lr 0.01) as a model file
// exporting one k.program, for bench/wasm-profile.ts (docs/wasm.md); parameters from seed 0.

import * as k from "kiln";
import { cnnSpecs, cnnTrainStep } from "./cases/cnn.ts";

k.manualSeed(0);
export const cnnStep = k.program(cnnTrainStep(), cnnSpecs(), { name: "cnnStep" });
