// The public API: `import * as k from "kiln"`.
export { Tensor } from "./tensor.ts";
export type { Scalar, TensorLike, Dims } from "./tensor.ts";
export { f32, i32, bool, traceFunction } from "./trace.ts";
export type { InputSpec, Specs, TensorTree } from "./trace.ts";
export { KilnError } from "../compiler/util/errors.ts";
export * as nn from "./nn.ts";
export { compile } from "./compile.ts";
export type { CompileOptions, Executable, RunInputs, RunOptions } from "./compile.ts";
export { program, isProgram } from "./program.ts";
export type { Program } from "./program.ts";
export { registerTarget, registeredTargets, availableTargets } from "./targets.ts";
export type { Executor, TargetFactory, TargetOptions } from "./targets.ts";
export type { HostInput, HostOutput } from "./host-data.ts";
export { printGraph, printModule } from "../compiler/ir/printer.ts";
export { grad, valueAndGrad, vjp } from "./grad.ts";
export type { GradOptions } from "./grad.ts";
