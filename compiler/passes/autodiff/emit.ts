// The builder-backed values the backward rules compute with: each method adds one
// primitive to the target GraphBuilder (stamped with the location of the forward node being
// differentiated), so a backward graph is made of primitives and can be differentiated again.
// Methods skip no-op nodes (reshape/expand to the same shape, empty reductions).

import type { GraphBuilder } from "../../ir/graph.ts";
import type { NodeSpec, TensorType, ValueId } from "../../ir/types.ts";
import type { DType } from "../../ir/dtype.ts";
import type { SourceLoc } from "../../util/errors.ts";
import { shapesEqual, type Shape } from "../../util/shape.ts";

export class Emitter {
  /** Location given to every node added next: the forward node whose rule is running. */
  loc: SourceLoc | undefined;
  /** Module scope given to every node added next (the forward node's). */
  scope: string | undefined;

  constructor(readonly builder: GraphBuilder) {}

  value(id: ValueId): Val {
    return new Val(this, id);
  }

  add(spec: NodeSpec, declared?: TensorType): Val {
    const withLoc = { ...spec, ...(this.loc ? { loc: this.loc } : {}), ...(this.scope !== undefined ? { scope: this.scope } : {}) } as NodeSpec;
    return this.value(this.builder.add(withLoc, declared));
  }

  /** A tensor of `type` filled with `value`. */
  full(value: number, type: TensorType): Val {
    return this.add({ op: "const", value }, type);
  }

  iota(shape: Shape, axis: number): Val {
    return this.add({ op: "iota", axis }, { dtype: "i32", shape });
  }
}

export class Val {
  constructor(
    readonly em: Emitter,
    readonly id: ValueId,
  ) {}

  get type(): TensorType {
    return this.em.builder.typeOf(this.id);
  }
  get shape(): Shape {
    return this.type.shape;
  }
  get dtype(): DType {
    return this.type.dtype;
  }

  private operand(y: Val | number): Val {
    return typeof y === "number" ? this.em.full(y, this.type) : y;
  }
  private binary(op: "add" | "mul" | "max" | "cmplt" | "cmpeq", y: Val | number): Val {
    return this.em.add({ op, x: this.id, y: this.operand(y).id });
  }

  add(y: Val | number): Val {
    return this.binary("add", y);
  }
  mul(y: Val | number): Val {
    return this.binary("mul", y);
  }
  sub(y: Val | number): Val {
    return this.add(this.operand(y).neg());
  }
  cmplt(y: Val | number): Val {
    return this.binary("cmplt", y);
  }
  cmpeq(y: Val | number): Val {
    return this.binary("cmpeq", y);
  }
  neg(): Val {
    return this.em.add({ op: "neg", x: this.id });
  }
  recip(): Val {
    return this.em.add({ op: "recip", x: this.id });
  }
  sin(): Val {
    return this.em.add({ op: "sin", x: this.id });
  }

  zerosLike(): Val {
    return this.em.full(0, this.type);
  }

  /** `this` is a bool condition: x where true, else y. */
  where(x: Val, y: Val): Val {
    return this.em.add({ op: "where", cond: this.id, x: x.id, y: y.id });
  }

  cast(dtype: DType): Val {
    if (dtype === this.dtype) return this;
    return this.em.add({ op: "cast", x: this.id }, { dtype, shape: this.shape });
  }

  reshape(shape: Shape): Val {
    if (shapesEqual(shape, this.shape)) return this;
    return this.em.add({ op: "reshape", x: this.id }, { dtype: this.dtype, shape });
  }

  expand(shape: Shape): Val {
    if (shapesEqual(shape, this.shape)) return this;
    return this.em.add({ op: "expand", x: this.id }, { dtype: this.dtype, shape });
  }

  permute(perm: readonly number[]): Val {
    if (perm.every((p, i) => p === i)) return this;
    return this.em.add({ op: "permute", x: this.id, perm });
  }

  /** Sum over `axes` (sorted, unique), keeping them as size 1. */
  reduceSum(axes: readonly number[]): Val {
    if (axes.length === 0) return this;
    return this.em.add({ op: "reduce_sum", x: this.id, axes });
  }

  pad(low: readonly number[], high: readonly number[]): Val {
    if ([...low, ...high].every((p) => p === 0)) return this;
    return this.em.add({ op: "pad", x: this.id, low, high, value: 0 });
  }

  slice(start: readonly number[], stop: readonly number[], step: readonly number[] = start.map(() => 1)): Val {
    const whole = this.shape.every((d, i) => start[i] === 0 && stop[i] === d && step[i] === 1);
    if (whole) return this;
    return this.em.add({ op: "slice", x: this.id, start, stop, step });
  }

  flip(axes: readonly number[]): Val {
    if (axes.length === 0) return this;
    return this.em.add({ op: "flip", x: this.id, axes });
  }

  dot(rhs: Val): Val {
    return this.em.add({ op: "dot", lhs: this.id, rhs: rhs.id });
  }

  /** Swaps the last two axes (a matrix transpose over batch dims). */
  transposeLast(): Val {
    const r = this.shape.length;
    const perm = this.shape.map((_, i) => (i === r - 2 ? r - 1 : i === r - 1 ? r - 2 : i));
    return this.permute(perm);
  }
}
