// The vector form of an elementwise section (`form vector width=4`, set by webgpu's
// `vector-form` pass): each thread computes 4 consecutive elements of the innermost domain
// loop with vec4 loads, arithmetic and stores. On lavapipe (CPU SIMD across invocations) a
// quarter of the invocations is what counts; on hardware GPUs it is 16-byte memory accesses.
// vectorPlan decides whether a section can (the pass asks it, and the renderer again with the
// buffers' placement known); renderVectorBody writes the body. An expression is a vector when
// it depends on the innermost variable, else a scalar splatted where a vector needs it.

import { indexVars, type IndexExpr } from "../../compiler/kernel/index-expr.ts";
import { exprOperands, exprOwnVars, isReduceExpr, type ExprId, type KExpr, type Section } from "../../compiler/kernel/kernel-ir.ts";
import type { ScheduleItem } from "../../compiler/kernel/schedule.ts";
import type { DType } from "../../compiler/ir/dtype.ts";
import { assertNever, bug } from "../../compiler/util/errors.ts";
import { exprName, renderExprList, renderIndex, renderPred, type BufferAccess } from "../render/base.ts";
import { wgslConstant, wgslDialect } from "./dialect.ts";

/** The one vector width the WGSL renderer writes (vec4<f32>: 16-byte loads and stores). */
export const VECTOR_WIDTH = 4;

export interface VectorPlan {
  readonly width: number;
  /** Expressions computed as vec4 (they depend on the innermost domain variable). */
  readonly vector: ReadonlySet<ExprId>;
  /** Buffers loaded or stored as vec4 (their bindings must be declared array<vec4<f32>>). */
  readonly buffers: ReadonlySet<number>;
}

/** Vector loads/stores through vec4-declared bindings; the index is the flat element index (a multiple of the width). */
export interface VectorAccess extends BufferAccess {
  loadVector(buffer: number, index: string): string;
  storeVector(buffer: number, index: string, value: string): string;
}

const VECTOR_DTYPES: ReadonlySet<DType> = new Set<DType>(["f32", "bool"]);

/**
 * Whether `index` reads `width` consecutive, aligned elements as `v` steps by `width` (v a
 * multiple of width): v appears once with coefficient 1, outside any div/mod or gather, and
 * every other term and the constant are multiples of width.
 */
export function isContiguous(index: IndexExpr, v: string, width: number, vector: ReadonlySet<ExprId>): boolean {
  if (index.constant % width !== 0) return false;
  let seen = false;
  for (const t of index.terms) {
    const a = t.atom;
    if (a.kind === "var" && a.name === v) {
      if (t.coef !== 1 || seen) return false;
      seen = true;
      continue;
    }
    if (t.coef % width !== 0) return false;
    if ((a.kind === "div" || a.kind === "mod") && indexVars(a.x).has(v)) return false;
    if (a.kind === "data" && vector.has(a.ref)) return false;
  }
  return seen;
}

const isReduce = (e: KExpr): boolean => isReduceExpr(e);

/** The section's vector plan at `width`, or undefined where it cannot run `width` elements per thread. */
export function vectorPlan(s: Section, width: number): VectorPlan | undefined {
  const inner = s.domain.at(-1);
  if (!inner || s.tile || inner.extent < width || inner.extent % width !== 0) return undefined;
  if (s.exprs.some(isReduce)) return undefined;
  const v = inner.name;
  const vector = new Set<ExprId>();
  const buffers = new Set<number>();
  for (const [id, e] of s.exprs.entries()) {
    const fromOperand = exprOperands(e).some((o) => vector.has(o));
    if (!fromOperand && !exprOwnVars(e).has(v)) continue;
    if (!VECTOR_DTYPES.has(e.dtype)) return undefined;
    switch (e.op) {
      case "load":
        if (fromOperand || e.dtype !== "f32" || !isContiguous(e.index, v, width, vector)) return undefined;
        if (e.valid !== false && e.valid.some((c) => indexVars(c.x).has(v))) return undefined;
        buffers.add(e.buffer);
        break;
      case "const":
      case "index":
      case "valid":
      case "rng":
      case "idiv":
      case "mod":
      case "reduce_sum":
      case "reduce_max":
      case "softmax_sum":
      case "softmax_max":
      case "softmax_norm":
        return undefined;
      case "cast":
        if (!VECTOR_DTYPES.has(s.exprs[e.x]!.dtype)) return undefined;
        break;
      case "add":
      case "mul":
      case "max":
      case "cmplt":
      case "cmpeq":
        if (!VECTOR_DTYPES.has(s.exprs[e.x]!.dtype)) return undefined;
        break;
      case "where":
      case "neg":
      case "exp2":
      case "log2":
      case "sin":
      case "sqrt":
      case "recip":
        break;
      default:
        return assertNever(e, "kernel expr");
    }
    vector.add(id);
  }
  for (const st of s.stores) {
    if (s.exprs[st.value]!.dtype !== "f32" || !isContiguous(st.index, v, width, vector)) return undefined;
    buffers.add(st.buffer);
  }
  return { width, vector, buffers };
}

const vecType = (t: DType): string => (t === "bool" ? "vec4<bool>" : t === "f32" ? "vec4<f32>" : bug(`wgsl vector: no vec4 of ${t}`));

/** One vector expression (its operands already declared, scalars splatted). */
function vectorExpr(s: Section, id: ExprId, plan: VectorPlan, access: VectorAccess, ind: string, lines: string[]): void {
  const e = s.exprs[id]!;
  const name = exprName(id);
  const vt = vecType(e.dtype);
  const op = (x: ExprId): string => (plan.vector.has(x) ? exprName(x) : `${vecType(s.exprs[x]!.dtype)}(${exprName(x)})`);
  const emit = (value: string): void => void lines.push(`${ind}let ${name}: ${vt} = ${value};`);
  const zero = `vec4<f32>(${wgslConstant(0, "f32")})`;
  switch (e.op) {
    case "load": {
      const load = access.loadVector(e.buffer, renderIndex(e.index, wgslDialect));
      if (e.valid === false) return emit(zero);
      if (e.valid.length === 0) return emit(load);
      lines.push(`${ind}var ${name}: ${vt} = ${zero};`, `${ind}if (${renderPred(e.valid, wgslDialect)}) { ${name} = ${load}; }`);
      return;
    }
    case "neg":
      return emit(`-${op(e.x)}`);
    case "exp2":
    case "sin":
      return emit(`${e.op}(${op(e.x)})`);
    case "log2":
      return emit(`kiln_log2v(${op(e.x)})`);
    case "sqrt":
      return emit(`kiln_sqrtv(${op(e.x)})`);
    case "recip":
      return emit(`1.0f / ${op(e.x)}`);
    case "cast": {
      const from = s.exprs[e.x]!.dtype;
      if (from === e.dtype) return emit(op(e.x));
      if (from === "bool") return emit(`select(${zero}, vec4<f32>(1.0f), ${op(e.x)})`);
      return emit(`(${op(e.x)} != ${zero})`);
    }
    case "where":
      return emit(`select(${op(e.y)}, ${op(e.x)}, ${op(e.cond)})`);
    case "add":
    case "mul":
    case "max":
    case "cmplt":
    case "cmpeq": {
      const [x, y] = [op(e.x), op(e.y)];
      if (s.exprs[e.x]!.dtype === "bool") {
        const logical = { add: `(${x} | ${y})`, mul: `(${x} & ${y})`, max: `(${x} | ${y})`, cmplt: `(!${x} & ${y})`, cmpeq: `(${x} == ${y})` } as const;
        return emit(logical[e.op]);
      }
      const arithmetic = { add: `(${x} + ${y})`, mul: `(${x} * ${y})`, max: `kiln_maxv(${x}, ${y})`, cmplt: `(${x} < ${y})`, cmpeq: `(${x} == ${y})` } as const;
      return emit(arithmetic[e.op]);
    }
    default:
      return bug(`wgsl vector: '${e.op}' is not vectorized (vectorPlan admits it)`);
  }
}

/** The section's body with the innermost domain variable a multiple of the width (bound by the caller). */
export function renderVectorBody(s: Section, items: readonly ScheduleItem[], plan: VectorPlan, access: VectorAccess, indent: string): string[] {
  const lines: string[] = [];
  const walk = (list: readonly ScheduleItem[]): void => {
    for (const item of list) {
      switch (item.kind) {
        case "loop":
          walk(item.body);
          break;
        case "expr":
          if (plan.vector.has(item.id)) vectorExpr(s, item.id, plan, access, indent, lines);
          else lines.push(...renderExprList(s, [item.id], wgslDialect, access, indent));
          break;
        case "store": {
          const value = plan.vector.has(item.value) ? exprName(item.value) : `vec4<f32>(${exprName(item.value)})`;
          lines.push(`${indent}${access.storeVector(item.buffer, renderIndex(item.index, wgslDialect), value)}`);
          break;
        }
        case "reduce":
          return bug("wgsl vector: a reduction in a vector section");
        default:
          assertNever(item, "schedule item");
      }
    }
  };
  walk(items);
  return lines;
}
