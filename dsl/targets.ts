// The DSL's view of the target registry (targets/registry.ts): k.compile resolves targets
// and checks their option keys there, and kiln's public API re-exports registerTarget and
// the Executor types from here.

export {
  availableTargets,
  prepareTarget,
  registerTarget,
  registeredTargets,
  resolveTarget,
  targetDevice,
  targetOptionKeys,
  targetsReadingOption,
} from "../targets/registry.ts";
export type {
  Artifact,
  CompileStats,
  Executor,
  ExecutorRunOptions,
  ExecutorStats,
  SharedState,
  TargetDevice,
  TargetEntry as TargetInfo,
  TargetFactory,
  TargetOptions,
} from "../targets/backend.ts";
