// The traced Tensor: a handle (trace, value id, type) whose methods record graph nodes, and
// the Trace it records into. Methods follow PyTorch names and semantics (broadcasting, negative
// dims, keepdim); each one lowers to the IR's primitives, so passes and autodiff never see a
// composite op. This module imports no op: the op methods are declared and installed by
// tensor-methods.ts, the ops live in ops/*.ts, and both build on the helpers below.

import { symbolicInfo } from "../compiler/ir/symbolic.ts";
import { GraphBuilder } from "../compiler/ir/graph.ts";
import type { HostTensor } from "../compiler/ir/host-tensor.ts";
import type { NodeSpec, TensorType, ValueId } from "../compiler/ir/types.ts";
import { dtypeKind, promoteDTypes, type DType } from "../compiler/ir/dtype.ts";
import { KilnError, type DiagCode } from "../compiler/util/errors.ts";
import { formatShape, normalizeAxis, type Shape } from "../compiler/util/shape.ts";
import { captureUserLoc } from "./loc.ts";
import type { IndexUse } from "./index-checks.ts";
import type { HyperDecl } from "./hyper.ts";

export type Scalar = number | boolean;
export type TensorLike = Tensor | Scalar;
export type Dims = number | readonly number[];

export class Tensor {
  constructor(
    readonly trace: Trace,
    readonly id: ValueId,
  ) {}

  get type(): TensorType {
    return this.trace.builder.typeOf(this.id);
  }
  get shape(): Shape {
    return this.type.shape;
  }
  get dtype(): DType {
    return this.type.dtype;
  }
  get ndim(): number {
    return this.shape.length;
  }
  /** Number of elements. */
  numel(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }
  size(dim?: number): number | Shape {
    return dim === undefined ? this.shape : this.shape[dimIndex(this, dim, "size")]!;
  }
  toString(): string {
    return `Tensor(${this.dtype}${formatShape(this.shape)})`;
  }
}

/** The graph being traced: a GraphBuilder plus what tracing records beside it (state, index uses, module scopes). Declared beside Tensor: each refers to the other. */
export class Trace {
  readonly builder: GraphBuilder;
  private rngStreams = 0;
  private seedValue: ValueId | undefined;

  constructor(name: string) {
    this.builder = new GraphBuilder(name);
  }

  /** The graph's symbolic dimension (a spec like `k.f32(["batch", 784])`): its name, max and size input. */
  symbol: { readonly name: string; readonly max: number; readonly size: ValueId } | undefined;

  /**
   * The symbolic axes of `t` (their scales; compiler/ir/symbolic.ts), by analysing the graph
   * traced so far; undefined when the graph has no symbol. Reductions ask it to divide by the run's size.
   */
  symbolicScales(t: Tensor): readonly (number | undefined)[] | undefined {
    if (!this.symbol) return undefined;
    const info = symbolicInfo(this.builder.build([]));
    return info?.axes.get(t.id)?.map((s) => (typeof s === "number" ? s : undefined));
  }

  /** A fresh stream number for each rng op in this graph (dropout layers get distinct masks). */
  nextRngStream(): number {
    return this.rngStreams++;
  }

  /** The graph's i32[] `seed` input, created on first use by any random op. */
  seed(): ValueId {
    if (this.seedValue === undefined) this.seedValue = this.builder.input("seed", { dtype: "i32", shape: [] });
    return this.seedValue;
  }

  /**
   * State: graph inputs whose values the executable owns across runs (module parameters,
   * optimizer state) instead of the caller passing them. `init` gives the first value.
   */
  readonly state = new Map<string, { readonly tensor: Tensor; readonly init: () => HostTensor }>();
  /** New values for state inputs: each becomes an output that aliases (updates in place) its input. */
  readonly stateUpdates = new Map<string, Tensor>();
  /** i32 tensors ops used as indices (class ids, gather rows), with their valid ranges: see index-checks.ts. */
  readonly indexUses: { readonly value: ValueId; readonly use: IndexUse }[] = [];
  /** Runtime hyperparameters (dsl/hyper.ts), in the order of the `hyper` input's elements; set by k.trainStep. */
  hyper: readonly HyperDecl[] = [];
  /** Per-trace overrides: a module parameter bound to a tensor (k.functionalCall, trainStep). */
  readonly bindings = new Map<object, Tensor>();

  /** The modules being called (Module.call), innermost last, with their dotted paths. */
  private readonly modules: { readonly module: object; readonly path: string }[] = [];

  /** The module path of the ops being traced (`blocks.0.attn`); undefined outside modules and in the root module. */
  scope(): string | undefined {
    const path = this.modules.at(-1)?.path;
    return path === undefined || path === "" ? undefined : path;
  }

  /**
   * Runs `body` as a call of `module`: its path is `childName(parent)` joined to the calling
   * module's path (PyTorch's named_modules names; the outermost module is the root, "").
   */
  inModule<T>(module: object, childName: (parent: object) => string | undefined, body: () => T): T {
    const parent = this.modules.at(-1);
    const name = parent ? childName(parent.module) : "";
    const path = parent === undefined ? "" : [parent.path, name ?? module.constructor.name].filter((p) => p !== "").join(".");
    this.modules.push({ module, path });
    try {
      return body();
    } finally {
      this.modules.pop();
    }
  }

  stateInput(name: string, type: TensorType, init: () => HostTensor): Tensor {
    const existing = this.state.get(name);
    if (existing) return existing.tensor;
    const tensor = new Tensor(this, this.builder.input(name, type));
    this.state.set(name, { tensor, init });
    return tensor;
  }

  updateState(name: string, value: Tensor): void {
    const s = this.state.get(name);
    if (!s) throw new KilnError({ code: "invalid-argument", message: `cannot update '${name}': it is not a state input of graph @${this.builder.name}` });
    if (value.trace !== this) throw new KilnError({ code: "invalid-argument", message: `new value of '${name}' comes from another traced function` });
    this.stateUpdates.set(name, value);
  }
}

// ---- helpers shared by the op modules ----

/** Throws a user diagnostic at the user's line. */
/** A tensor argument given something else (an object, undefined, an array) is named, not a TypeError from inside an op. */
export function requireTensor(value: unknown, role: string, op: string): asserts value is Tensor {
  if (value instanceof Tensor) return;
  const got =
    value === null
      ? "null"
      : Array.isArray(value)
        ? "an array"
        : typeof value === "object"
          ? "an object"
          : typeof value === "string"
            ? JSON.stringify(value)
            : String(value);
  userError("invalid-argument", `${op}: ${role} must be a tensor, got ${got}`);
}

export function userError(code: DiagCode, message: string): never {
  const loc = captureUserLoc();
  throw new KilnError({ code, message, ...(loc ? { loc } : {}) });
}

/** Records one primitive at the user's current line (and module path) and wraps the result. */
export function prim(trace: Trace, spec: NodeSpec, declared?: TensorType): Tensor {
  const loc = captureUserLoc();
  const scope = trace.scope();
  const withLoc = { ...spec, ...(loc ? { loc } : {}), ...(scope !== undefined ? { scope } : {}) } as NodeSpec;
  return new Tensor(trace, trace.builder.add(withLoc, declared));
}

export function dimIndex(x: Tensor | { ndim: number }, dim: number, op: string): number {
  const ndim = x.ndim;
  const a = normalizeAxis(dim, ndim);
  if (a === undefined) userError("invalid-argument", `${op}: dim ${dim} out of range for a ${ndim}-d tensor`);
  return a;
}

/** Normalizes `dim` (number, list or undefined = all) to sorted unique axes. */
export function dimList(x: Tensor, dim: Dims | undefined, op: string): number[] {
  if (dim === undefined) return [...Array(x.ndim).keys()];
  const list = typeof dim === "number" ? [dim] : [...dim];
  const axes = list.map((d) => dimIndex(x, d, op));
  if (new Set(axes).size !== axes.length) userError("invalid-argument", `${op}: dim [${list.join(",")}] repeats an axis`);
  return axes.sort((a, b) => a - b);
}

/** PyTorch-style promotion for two operands; a JS number adopts the tensor's kind unless it is fractional. */
export function resultDType(a: TensorLike, b: TensorLike): DType {
  const kindOf = (v: TensorLike): DType | undefined => (v instanceof Tensor ? v.dtype : undefined);
  const ka = kindOf(a);
  const kb = kindOf(b);
  const scalarKind = (v: Scalar): DType => (typeof v === "boolean" ? "bool" : Number.isInteger(v) ? "i32" : "f32");
  if (ka && kb) return promoteDTypes(ka, kb);
  const t = (ka ?? kb)!;
  const s = scalarKind((ka ? b : a) as Scalar);
  // A scalar only raises the category (int tensor + 0.5 -> f32; bool tensor + 1 -> i32; f16 tensor + 0.5 -> f16).
  const category = { bool: 0, int: 1, float: 2 } as const;
  return category[dtypeKind(s)] > category[dtypeKind(t)] ? s : t;
}
