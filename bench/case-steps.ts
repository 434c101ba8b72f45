// The matmul, MLP and transformer train steps of bench/cases (as the peers' harness builds
// them) as a model file exporting k.programs, for bench/wasm-profile.ts and bench/wasm-ab.ts;
// parameters from seed 0 (the CNN step is bench/cnn-step.ts).

import * as k from "kiln";
import { matmulCase } from "./cases/matmul.ts";
import { mlpCase } from "./cases/mlp.ts";
import { transformerCase } from "./cases/transformer.ts";

k.manualSeed(0);
const mm = matmulCase.kiln();
export const matmul = k.program(mm.fn, mm.specs, { name: "matmul" });
const mlp = mlpCase.kiln();
export const mlpStep = k.program(mlp.fn, mlp.specs, { name: "mlpStep" });
const tf = transformerCase.kiln();
export const transformerStep = k.program(tf.fn, tf.specs, { name: "transformerStep" });
