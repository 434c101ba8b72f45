// The public API: `import * as k from "kiln"`.
export { Tensor } from "./tensor.ts";
export type { Scalar, TensorLike, Dims } from "./tensor.ts";
export { f32, i32, bool, traceFunction } from "./trace.ts";
export type { InputSpec, Specs, TensorTree } from "./trace.ts";
export { KilnError } from "../compiler/util/errors.ts";
