// The public API: `import * as k from "kiln"`.
export { Tensor } from "./tensor.ts";
export type { Scalar, TensorLike, Dims } from "./tensor.ts";
export { f32, f16, bf16, i32, bool, traceFunction } from "./trace.ts";
export type { InputSpec, Specs, TensorTree } from "./trace.ts";
// torch.* functions: the same ops as the Tensor methods, called as k.cat(...), k.where(...).
export {
  add,
  sub,
  mul,
  div,
  neg,
  exp,
  log,
  sqrt,
  rsqrt,
  abs,
  pow,
  reciprocal,
  sin,
  cos,
  erf,
  isnan,
  isinf,
  cast,
  maximum,
  minimum,
  clamp,
  where,
  lt,
  le,
  gt,
  ge,
  eq,
  ne,
  logicalNot,
  logicalAnd,
  logicalOr,
  logicalXor,
  maskedFill,
  floorDivide,
  remainder,
  floor,
  ceil,
  trunc,
  round,
  relu,
  leakyRelu,
  gelu,
  silu,
  sigmoid,
  tanh,
  softplus,
} from "./ops/elementwise.ts";
export {
  sum,
  mean,
  maxOf as max,
  minOf as min,
  amax,
  amin,
  any,
  all,
  varianceOf as var,
  stdOf as std,
  logsumexp,
  argmax,
  argmin,
  cumsum,
  softmax,
  logSoftmax,
} from "./ops/reduce.ts";
export {
  reshape,
  permute,
  transpose,
  flatten,
  squeeze,
  unsqueeze,
  broadcastTo,
  narrow,
  flip,
  pad,
  split,
  chunk,
  cat,
  stack,
  gather,
  indexSelect,
  tril,
  triu,
} from "./ops/movement.ts";
export { matmul } from "./ops/linalg.ts";
export { einsum } from "./ops/einsum.ts";
export { topk, sort, argsort } from "./ops/select.ts";
export type { TopkOptions, SortOptions } from "./ops/select.ts";
export { multinomial, categorical } from "./ops/sampling.ts";
export type { MultinomialOptions, CategoricalOptions } from "./ops/sampling.ts";
export { zeros, ones, full, arange, scalar, zerosLike, onesLike, fullLike } from "./ops/creation.ts";
export type { SliceSpec } from "./ops/movement.ts";
export type { VarOptions, VarArg, ValuesIndices } from "./ops/reduce.ts";
export type { KeepdimArg } from "./options.ts";
export { KilnError } from "../compiler/util/errors.ts";
export * as nn from "./nn.ts";
export * as data from "./data.ts";
export { lossCurveSvg } from "./loss-curve.ts";
export type { LossCurveOptions } from "./loss-curve.ts";
export { training, isTraining } from "./training.ts";
export type { Training, TrainingContext, TrainingSetup } from "./training.ts";
export { compile } from "./compile.ts";
export type { CompileOptions, Executable, HostTree, OutArrays, ProfileOptions, RunInputs, RunOptions } from "./compile.ts";
export type { IoCounters, IoTimes } from "../targets/backend.ts";
export { compileModel } from "./model.ts";
export type { CompileModelOptions, Model, ModelBase, ModelProgram, ModelRun, ProgramMode } from "./model.ts";
export { program, isProgram } from "./program.ts";
export type { Program } from "./program.ts";
export { registerTarget, registeredTargets, availableTargets, targetDevice } from "./targets.ts";
export type { CompileStats, Executor, ExecutorStats, TargetDevice, TargetFactory, TargetOptions } from "./targets.ts";
export { formatProfile } from "../targets/profile.ts";
export type { FormatProfileOptions, KernelClock, KernelCost, KernelProfile, MachinePeaks, Profile } from "../targets/profile.ts";
export { dumpStages } from "./dump.ts";
export type { DumpStagesOptions } from "./dump.ts";
export type { HostInput, HostOutput } from "./host-data.ts";
export { DeviceValue } from "./device-value.ts";
export { printGraph, printModule } from "../compiler/ir/printer.ts";
export { grad, valueAndGrad, vjp } from "./grad.ts";
export type { GradOptions, Grads } from "./grad.ts";
export * as optim from "./optim.ts";
export type { Optimizer } from "./optim.ts";
export type { HyperSettings, HyperGroupSettings, HyperValue } from "./hyper.ts";
export { trainStep, clipGradNorm } from "./train.ts";
export type { TrainStepOptions, TrainStepFn, LossFn } from "./train.ts";
export { manualSeed } from "./init.ts";
export { functionalCall } from "./module.ts";
export * as safetensors from "./safetensors.ts";
export type { SafetensorsFile } from "./safetensors.ts";
export type { StateSource, StateValue } from "./state-source.ts";
export type { LoadStateOptions, LoadStateSource } from "./checkpoint.ts";
