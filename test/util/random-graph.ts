// Seeded generator of random well-typed graphs mixing every primitive, for round-trip tests
// and differential fuzzing against the float64 interpreter. Tensors stay small (≤ 256
// elements) and values stay tame: each value carries a magnitude bound, large ones are
// squashed (sin, mod) before ops that grow them, exp2 sees bounded inputs, log2/sqrt/recip
// see values ≥ 0.5, idiv/mod see divisors ≥ 1, gather indices are reduced into range.

import { GraphBuilder } from "../../compiler/ir/graph.ts";
import type { Graph, GraphOutput, NodeSpec, TensorType, ValueId } from "../../compiler/ir/types.ts";
import type { DType } from "../../compiler/ir/dtype.ts";
import type { HostTensor } from "../../compiler/ir/host-tensor.ts";
import { numel, range, type Shape } from "../../compiler/util/shape.ts";

/** mulberry32: a tiny seeded PRNG returning floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `n` f32-exact values uniform in [-scale, scale) from mulberry32(seed). */
export function randomF32(n: number, seed: number, scale = 1): number[] {
  const r = mulberry32(seed);
  return Array.from({ length: n }, () => Math.fround((r() * 2 - 1) * scale));
}

export interface RandomGraphOptions {
  /** Random ops to add (each may add a few helper nodes). Default 14. */
  readonly steps?: number;
  /** Largest tensor, in elements. Default 256. */
  readonly maxElements?: number;
}

/** f32 inputs from randomInputs lie in [-2, 2]; i32 inputs in [-5, 5]. */
const F32_INPUT_BOUND = 2;
const I32_INPUT_BOUND = 5;
/** Above these magnitudes a value is squashed before an op that could grow it further. */
const F32_TAME = 64;
const I32_TAME = 1000;

interface Value {
  readonly id: ValueId;
  readonly type: TensorType;
  /** An upper bound on |element| (1 for bool). */
  readonly bound: number;
}

class Generator {
  readonly b: GraphBuilder;
  readonly pool: Value[] = [];
  readonly inputs: { readonly name: string; readonly value: Value }[] = [];
  private seedInput: Value | undefined;

  constructor(
    readonly rand: () => number,
    readonly maxElements: number,
    name: string,
  ) {
    this.b = new GraphBuilder(name);
  }

  int(lo: number, hi: number): number {
    return lo + Math.floor(this.rand() * (hi - lo + 1));
  }
  chance(p: number): boolean {
    return this.rand() < p;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.rand() * xs.length)]!;
  }

  add(spec: NodeSpec, bound: number, declared?: TensorType): Value {
    const id = this.b.add(spec, declared);
    const value = { id, type: this.b.typeOf(id), bound };
    this.pool.push(value);
    return value;
  }

  randomShape(maxRank = 3): number[] {
    for (;;) {
      const shape = range(this.int(0, maxRank)).map(() => this.int(1, 5));
      if (numel(shape) <= this.maxElements) return shape;
    }
  }

  input(name: string, type: TensorType): Value {
    const bound = type.dtype === "f32" ? F32_INPUT_BOUND : type.dtype === "i32" ? I32_INPUT_BOUND : 1;
    const value = { id: this.b.input(name, type), type, bound };
    this.pool.push(value);
    this.inputs.push({ name, value });
    return value;
  }

  /** The rng seed input; kept out of the pool, since its value is any 31-bit integer. */
  seed(): Value {
    if (!this.seedInput) {
      this.seedInput = this.input("seed", { dtype: "i32", shape: [] });
      this.pool.pop();
    }
    return this.seedInput;
  }

  constant(dtype: DType, shape: Shape, value: number): Value {
    return this.add({ op: "const", value }, Math.abs(value), { dtype, shape });
  }

  randomScalar(dtype: DType): number {
    if (dtype === "bool") return this.int(0, 1);
    if (dtype === "i32") return this.int(-4, 6);
    return Math.round((this.rand() * 4 - 2) * 8) / 8;
  }

  /** A pool value passing `filter`, squashed first if it is large. */
  operand(filter: (v: Value) => boolean = () => true): Value | undefined {
    const candidates = this.pool.filter(filter);
    if (candidates.length === 0) return undefined;
    return this.tame(this.pick(candidates));
  }

  tame(v: Value): Value {
    if (v.type.dtype === "f32" && v.bound > F32_TAME) return this.add({ op: "sin", x: v.id }, 1);
    if (v.type.dtype === "i32" && v.bound > I32_TAME) {
      const m = this.constant("i32", v.type.shape, 97);
      return this.add({ op: "mod", x: v.id, y: m.id }, 97);
    }
    return v;
  }

  /** A value of exactly `type`, reusing the pool where it can (reshape, broadcast, cast). */
  materialize(type: TensorType): Value {
    const { dtype, shape } = type;
    const same = this.pool.filter((v) => v.type.dtype === dtype && sameShape(v.type.shape, shape));
    if (same.length > 0 && this.chance(0.7)) return this.tame(this.pick(same));
    const sameCount = this.pool.filter((v) => v.type.dtype === dtype && numel(v.type.shape) === numel(shape));
    if (sameCount.length > 0 && this.chance(0.6)) {
      const v = this.tame(this.pick(sameCount));
      return this.add({ op: "reshape", x: v.id }, v.bound, type);
    }
    if (this.chance(0.3)) return this.constant(dtype, shape, this.randomScalar(dtype));
    // Collapse any value to one element, then broadcast it: always possible.
    let v = this.tame(this.pick(this.pool));
    if (v.type.dtype === "bool") v = this.add({ op: "cast", x: v.id }, 1, { dtype: "i32", shape: v.type.shape });
    if (v.type.shape.length > 0) v = this.add({ op: "reduce_max", x: v.id, axes: range(v.type.shape.length) }, v.bound);
    const ones = shape.map(() => 1);
    v = this.add({ op: "reshape", x: v.id }, v.bound, { dtype: v.type.dtype, shape: ones });
    if (v.type.dtype !== dtype) v = this.add({ op: "cast", x: v.id }, dtype === "bool" ? 1 : v.bound, { dtype, shape: ones });
    return shape.every((d) => d === 1) ? v : this.add({ op: "expand", x: v.id }, v.bound, type);
  }

  /** A value ≥ 0.5 everywhere with x's shape: max(x, -x) + 0.5. */
  positive(x: Value): Value {
    const negated = this.add({ op: "neg", x: x.id }, x.bound);
    const abs = this.add({ op: "max", x: x.id, y: negated.id }, x.bound);
    const half = this.constant("f32", x.type.shape, 0.5);
    return this.add({ op: "add", x: abs.id, y: half.id }, x.bound + 0.5);
  }
}

const sameShape = (a: Shape, b: Shape): boolean => a.length === b.length && a.every((d, i) => d === b[i]);
const isNumeric = (v: Value): boolean => v.type.dtype !== "bool";
const isF32 = (v: Value): boolean => v.type.dtype === "f32";

type Step = (g: Generator) => void;

const unaryStep: Step = (g) => {
  const x = g.operand(isF32);
  if (!x) return;
  const op = g.pick(["neg", "exp2", "log2", "sin", "sqrt", "recip"] as const);
  if (op === "neg") g.add({ op, x: x.id }, x.bound);
  else if (op === "sin") g.add({ op, x: x.id }, 1);
  else if (op === "exp2") {
    const small = x.bound > 8 ? g.add({ op: "sin", x: x.id }, 1) : x;
    g.add({ op, x: small.id }, 2 ** small.bound);
  } else {
    const p = g.positive(x);
    const bound = op === "recip" ? 2 : op === "sqrt" ? Math.sqrt(p.bound) : Math.max(1, Math.log2(p.bound));
    g.add({ op, x: p.id }, bound);
  }
};

const binaryStep: Step = (g) => {
  const op = g.pick(["add", "mul", "max", "cmplt", "cmpeq", "idiv", "mod"] as const);
  const integer = op === "idiv" || op === "mod";
  const x = g.operand(integer ? (v) => v.type.dtype === "i32" : op === "cmpeq" ? (v) => !isF32(v) : () => true);
  if (!x) return;
  let y = g.materialize(x.type);
  if (integer) {
    // Divisor ≥ 1: the interpreter refuses division by zero, and floor division is then tame.
    const one = g.constant("i32", x.type.shape, 1);
    y = g.add({ op: "max", x: y.id, y: one.id }, Math.max(y.bound, 1));
  }
  const bound =
    op === "add"
      ? x.bound + y.bound
      : op === "mul"
        ? x.bound * y.bound
        : op === "max"
          ? Math.max(x.bound, y.bound)
          : op === "idiv"
            ? x.bound
            : op === "mod"
              ? y.bound
              : 1;
  g.add({ op, x: x.id, y: y.id }, bound);
};

const whereStep: Step = (g) => {
  const x = g.operand();
  if (!x) return;
  const cond = g.materialize({ dtype: "bool", shape: x.type.shape });
  const y = g.materialize(x.type);
  g.add({ op: "where", cond: cond.id, x: x.id, y: y.id }, Math.max(x.bound, y.bound));
};

const castStep: Step = (g) => {
  const x = g.operand();
  if (!x) return;
  const dtype = g.pick((["f32", "i32", "bool"] as const).filter((d) => d !== x.type.dtype));
  g.add({ op: "cast", x: x.id }, dtype === "bool" ? 1 : x.bound, { dtype, shape: x.type.shape });
};

const reduceStep: Step = (g) => {
  const x = g.operand((v) => isNumeric(v) && v.type.shape.length > 0);
  if (!x) return;
  const axes = range(x.type.shape.length).filter(() => g.chance(0.5));
  const op = g.pick(["reduce_sum", "reduce_max"] as const);
  const count = numel(axes.map((a) => x.type.shape[a]!));
  g.add({ op, x: x.id, axes }, op === "reduce_sum" ? x.bound * count : x.bound);
};

const movementStep: Step = (g) => {
  const x = g.operand();
  if (!x) return;
  const shape = x.type.shape;
  const rank = shape.length;
  switch (g.pick(["reshape", "permute", "expand", "pad", "slice", "flip"] as const)) {
    case "reshape": {
      const target = factorize(g, numel(shape));
      g.add({ op: "reshape", x: x.id }, x.bound, { dtype: x.type.dtype, shape: target });
      return;
    }
    case "permute": {
      const perm = range(rank);
      for (let i = rank - 1; i > 0; i--) {
        const j = g.int(0, i);
        [perm[i], perm[j]] = [perm[j]!, perm[i]!];
      }
      g.add({ op: "permute", x: x.id, perm }, x.bound);
      return;
    }
    case "expand": {
      const target = shape.map((d) => (d === 1 ? g.int(1, 4) : d));
      if (numel(target) > g.maxElements) return;
      g.add({ op: "expand", x: x.id }, x.bound, { dtype: x.type.dtype, shape: target });
      return;
    }
    case "pad": {
      const low = shape.map(() => g.int(0, 2));
      const high = shape.map(() => g.int(0, 2));
      if (numel(shape.map((d, i) => d + low[i]! + high[i]!)) > g.maxElements) return;
      const value = g.randomScalar(x.type.dtype);
      g.add({ op: "pad", x: x.id, low, high, value }, Math.max(x.bound, Math.abs(value)));
      return;
    }
    case "slice": {
      const start = shape.map((d) => g.int(0, d - 1));
      const stop = shape.map((d, i) => g.int(start[i]! + 1, d));
      const step = shape.map(() => g.int(1, 3));
      g.add({ op: "slice", x: x.id, start, stop, step }, x.bound);
      return;
    }
    case "flip":
      g.add({ op: "flip", x: x.id, axes: range(rank).filter(() => g.chance(0.5)) }, x.bound);
      return;
  }
};

/** A random shape with `count` elements (rank 0–4). */
function factorize(g: Generator, count: number): number[] {
  const dims: number[] = [];
  let rest = count;
  while (rest > 1 && dims.length < 3) {
    const divisors = range(rest + 1).filter((d) => d >= 1 && rest % d === 0);
    const d = g.pick(divisors);
    dims.push(d);
    rest /= d;
  }
  if (rest > 1) dims.push(rest);
  if (g.chance(0.3)) dims.splice(g.int(0, dims.length), 0, 1);
  return dims;
}

const dotStep: Step = (g) => {
  const lhs = g.operand((v) => isNumeric(v) && v.type.shape.length >= 2);
  if (!lhs) return;
  const shape = lhs.type.shape;
  const k = shape.at(-1)!;
  const n = g.int(1, 4);
  const rhsShape = [...shape.slice(0, -2), k, n];
  if (numel(rhsShape) > g.maxElements || numel([...shape.slice(0, -1), n]) > g.maxElements) return;
  const rhs = g.materialize({ dtype: lhs.type.dtype, shape: rhsShape });
  g.add({ op: "dot", lhs: lhs.id, rhs: rhs.id }, lhs.bound * rhs.bound * k);
};

const gatherStep: Step = (g) => {
  const x = g.operand((v) => v.type.shape.length > 0);
  if (!x) return;
  const axis = g.int(0, x.type.shape.length - 1);
  const indexShape = x.type.shape.map((d, i) => (i === axis ? g.int(1, 4) : d));
  if (numel(indexShape) > g.maxElements) return;
  // Indices into range: mod(max(raw, 0), size).
  const raw = g.materialize({ dtype: "i32", shape: indexShape });
  const zero = g.constant("i32", indexShape, 0);
  const nonNegative = g.add({ op: "max", x: raw.id, y: zero.id }, raw.bound);
  const size = g.constant("i32", indexShape, x.type.shape[axis]!);
  const index = g.add({ op: "mod", x: nonNegative.id, y: size.id }, size.bound);
  g.add({ op: "gather", x: x.id, index: index.id, axis }, x.bound);
};

const sourceStep: Step = (g) => {
  const shape = g.randomShape();
  switch (g.pick(["const", "iota", "rng"] as const)) {
    case "const": {
      const dtype = g.pick(["f32", "f32", "i32", "bool"] as const);
      g.constant(dtype, shape, g.randomScalar(dtype));
      return;
    }
    case "iota":
      if (shape.length === 0) return;
      g.add({ op: "iota", axis: g.int(0, shape.length - 1) }, Math.max(...shape), { dtype: "i32", shape });
      return;
    case "rng":
      g.add({ op: "rng", seed: g.seed().id, stream: g.int(0, 3) }, 1, { dtype: "f32", shape });
      return;
  }
};

const STEPS: readonly (readonly [Step, number])[] = [
  [unaryStep, 3],
  [binaryStep, 4],
  [whereStep, 1],
  [castStep, 1],
  [reduceStep, 2],
  [movementStep, 4],
  [dotStep, 1],
  [gatherStep, 1],
  [sourceStep, 1],
];

function pickStep(g: Generator): Step {
  const total = STEPS.reduce((s, [, w]) => s + w, 0);
  let r = g.rand() * total;
  for (const [step, weight] of STEPS) if ((r -= weight) < 0) return step;
  return STEPS[0]![0];
}

/** A random, well-typed graph; the same seed gives the same graph. */
export function randomGraph(seed: number, opts: RandomGraphOptions = {}): Graph {
  const g = new Generator(mulberry32(seed), opts.maxElements ?? 256, `random_${seed}`);
  const inputCount = g.int(1, 3);
  for (let i = 0; i < inputCount; i++) {
    const dtype = g.pick(["f32", "f32", "f32", "i32", "bool"] as const);
    g.input(`${g.pick(["x", "w", "in"])}${i}`, { dtype, shape: g.randomShape() });
  }
  for (let i = 0; i < (opts.steps ?? 14); i++) pickStep(g)(g);
  const inputIds = new Set(g.inputs.map((i) => i.value.id));
  const created = g.pool.filter((v) => !inputIds.has(v.id));
  const outputs: GraphOutput[] = [{ name: "out", value: (created.at(-1) ?? g.pool.at(-1)!).id }];
  for (const v of created.slice(0, -1)) if (g.chance(0.15)) outputs.push({ name: `aux${outputs.length}`, value: v.id });
  // Sometimes an output updates an input in place, like a parameter in a training step.
  const params = g.inputs.filter((i) => i.name !== "seed");
  const update = created.filter((v) => params.some((p) => sameType(p.value.type, v.type))).at(-1);
  if (update && g.chance(0.4)) {
    const param = params.find((p) => sameType(p.value.type, update.type))!;
    outputs.push({ name: `new_${param.name}`, value: update.id, aliases: param.name });
  }
  return g.b.build(outputs);
}

const sameType = (a: TensorType, b: TensorType): boolean => a.dtype === b.dtype && sameShape(a.shape, b.shape);

/**
 * Input data for `g` from a seed: f32 uniform in [-2, 2], i32 integers in [-5, 5], bool 0/1,
 * an i32[] input named "seed" any 31-bit integer. Storage as the interpreter expects.
 */
export function randomInputs(g: Graph, seed: number): Record<string, HostTensor> {
  const rand = mulberry32(seed ^ 0x5eed);
  const inputs: Record<string, HostTensor> = {};
  for (const n of g.nodes) {
    if (n.op !== "input") continue;
    const { dtype, shape } = n.type;
    const count = numel(shape);
    const data =
      dtype === "f32"
        ? Float64Array.from({ length: count }, () => rand() * 2 * F32_INPUT_BOUND - F32_INPUT_BOUND)
        : dtype === "i32"
          ? Int32Array.from({ length: count }, () =>
              n.name === "seed" && shape.length === 0 ? Math.floor(rand() * 2 ** 31) : Math.floor(rand() * (2 * I32_INPUT_BOUND + 1)) - I32_INPUT_BOUND,
            )
          : Uint8Array.from({ length: count }, () => (rand() < 0.5 ? 1 : 0));
    inputs[n.name] = { dtype, shape, data };
  }
  return inputs;
}

/** One node of every op, built by hand: `%x` f32[2,3], `%seed` i32[]. Printed form in test/ir/printer.test.ts. */
export function everyOpGraph(): Graph {
  const f32 = (...shape: number[]) => ({ dtype: "f32" as const, shape });
  const i32 = (...shape: number[]) => ({ dtype: "i32" as const, shape });
  const b = new GraphBuilder("every_op");
  const x = b.input("x", f32(2, 3));
  const seed = b.input("seed", i32());
  const c = b.add({ op: "const", value: 0.5 }, f32(2, 3));
  const io = b.add({ op: "iota", axis: 1 }, i32(2, 3));
  const r = b.add({ op: "rng", seed, stream: 3 }, f32(2, 3));
  let u = x;
  for (const op of ["neg", "exp2", "log2", "sin", "sqrt", "recip"] as const) u = b.add({ op, x: u });
  const cast = b.add({ op: "cast", x: io }, f32(2, 3));
  let s = b.add({ op: "add", x: u, y: c });
  for (const op of ["mul", "max"] as const) s = b.add({ op, x: s, y: r });
  const lt = b.add({ op: "cmplt", x: s, y: cast });
  const eq = b.add({ op: "cmpeq", x: io, y: io });
  const dv = b.add({ op: "idiv", x: io, y: io });
  const md = b.add({ op: "mod", x: dv, y: io });
  const w = b.add({ op: "where", cond: lt, x: s, y: x });
  const rs = b.add({ op: "reduce_sum", x: w, axes: [1] });
  const rm = b.add({ op: "reduce_max", x: md, axes: [0, 1] });
  const re = b.add({ op: "reshape", x: rs }, f32(1, 2));
  const pe = b.add({ op: "permute", x: w, perm: [1, 0] });
  const ex = b.add({ op: "expand", x: re }, f32(3, 2));
  const pd = b.add({ op: "pad", x: pe, low: [0, 1], high: [2, 0], value: -Infinity });
  const sl = b.add({ op: "slice", x: pd, start: [1, 0], stop: [5, 3], step: [2, 1] });
  const fl = b.add({ op: "flip", x: sl, axes: [0, 1] });
  const dt = b.add({ op: "dot", lhs: x, rhs: ex });
  const gi = b.add({ op: "const", value: 1 }, i32(2, 2));
  const ga = b.add({ op: "gather", x: dt, index: gi, axis: 1 });
  return b.build([
    { name: "gathered", value: ga },
    { name: "flipped", value: fl },
    { name: "max", value: rm },
    { name: "eq", value: eq },
    { name: "x", value: x, aliases: "x" },
  ]);
}
