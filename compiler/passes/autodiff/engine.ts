// Reverse-mode autodiff over the graph IR. `emitBackward` walks a forward region backwards
// from seeded cotangents, applies vjpRules per node and adds cotangents where a value has
// several uses; `gradGraph` / `vjpGraph` wrap it as Graph → Graph passes. Only f32 values on
// a path from a wrt value to a seeded value get cotangents; the rest is left to DCE.

import { GraphBuilder, nodeOf } from "../../ir/graph.ts";
import { formatType } from "../../ir/infer.ts";
import type { Graph, GraphOutput, Node, ValueId } from "../../ir/types.ts";
import { operands } from "../../ir/op-schema.ts";
import { isFloat } from "../../ir/dtype.ts";
import { KilnError, bug } from "../../util/errors.ts";
import type { Pass } from "../pass.ts";
import { Emitter, type Val } from "./emit.ts";
import { vjpRules, type VjpContext, type VjpRule } from "./rules.ts";
import { detachedSoftmaxShifts } from "./softmax-shift.ts";

export interface BackwardRequest {
  /** Forward nodes in topological order: the region being differentiated. */
  readonly region: readonly Node[];
  /** Cotangent (a target value) of each seeded forward value. */
  readonly seeds: ReadonlyMap<ValueId, ValueId>;
  /** Forward values to differentiate with respect to (region nodes or values it reads). */
  readonly wrt: readonly ValueId[];
  /** Where a forward value lives in the target builder. */
  readonly primal: (id: ValueId) => ValueId;
}

/**
 * Adds the backward computation of `req` to `em`'s builder and returns the cotangent of each
 * wrt value (undefined when no path leads from it to a seed: its gradient is zero).
 */
export function emitBackward(em: Emitter, req: BackwardRequest): (Val | undefined)[] {
  const active = activeValues(req);
  const cotangents = new Map<ValueId, Val>();
  const accumulate = (id: ValueId, cot: Val): void => {
    const prev = cotangents.get(id);
    cotangents.set(id, prev ? prev.add(cot) : cot);
  };
  for (const [id, cot] of req.seeds) if (active.has(id)) accumulate(id, em.value(cot));

  const regionNodes = new Map(req.region.map((n) => [n.id, n]));
  const def = (id: ValueId): Node | undefined => regionNodes.get(id);
  for (let i = req.region.length - 1; i >= 0; i--) {
    const n = req.region[i]!;
    const g = cotangents.get(n.id);
    if (!g || !active.has(n.id)) continue;
    em.loc = n.loc;
    em.scope = n.scope;
    const rule = vjpRules[n.op] as VjpRule<typeof n.op>;
    const ctx: VjpContext<typeof n.op> = { n, out: em.value(req.primal(n.id)), at: (id) => em.value(req.primal(id)), def };
    const operandCots = rule(g, ctx);
    const ids = operands(n);
    if (operandCots.length !== ids.length) bug(`autodiff: rule for ${n.op} gave ${operandCots.length} cotangents for ${ids.length} operands`);
    ids.forEach((id, k) => {
      const cot = operandCots[k];
      if (cot && active.has(id)) accumulate(id, cot());
    });
  }
  em.loc = undefined;
  em.scope = undefined;
  return req.wrt.map((id) => cotangents.get(id));
}

/**
 * f32 values reachable from a wrt value (through region nodes) that also reach a seed, less
 * the softmax shifts whose cotangent is zero (./softmax-shift.ts).
 */
function activeValues(req: BackwardRequest): Set<ValueId> {
  const detached = detachedSoftmaxShifts(req.region, req.seeds);
  const fromWrt = new Set<ValueId>(req.wrt);
  for (const n of req.region) {
    if (isFloat(n.type.dtype) && operands(n).some((id) => fromWrt.has(id))) fromWrt.add(n.id);
  }
  const toSeed = new Set<ValueId>(req.seeds.keys());
  for (let i = req.region.length - 1; i >= 0; i--) {
    const n = req.region[i]!;
    if (toSeed.has(n.id)) for (const id of operands(n)) toSeed.add(id);
  }
  return new Set([...fromWrt].filter((id) => toSeed.has(id) && !detached.has(id)));
}

export interface VjpGraphOptions {
  /** Outputs whose cotangents are given, each as a new input `cot.<name>` of the output's type. */
  readonly of: readonly string[];
  /** Input names to differentiate with respect to; each adds an output `grad.<name>`. */
  readonly wrt: readonly string[];
  /** Keep the original outputs (before the gradients). */
  readonly keepOutputs?: boolean;
}

export interface GradGraphOptions {
  /** A scalar f32 output. */
  readonly of: string;
  readonly wrt: readonly string[];
  readonly keepOutputs?: boolean;
}

/** Gradient of the scalar output `of` with respect to inputs `wrt`: outputs `grad.<input>`. */
export function gradGraph(g: Graph, opts: GradGraphOptions): Graph {
  const out = findOutput(g, opts.of, "grad");
  const type = nodeOf(g, out.value).type;
  if (!isFloat(type.dtype) || type.shape.length !== 0)
    throw new KilnError({ code: "invalid-argument", message: `grad: output '${opts.of}' must be a scalar f32, got ${formatType(type)}` });
  return differentiate(g, opts.wrt, opts.keepOutputs ?? false, "grad", (em) => new Map([[out.value, em.full(1, type).id]]));
}

/** gradGraph as a named pipeline pass (its options fixed up front: which output, which inputs). */
export function autodiffPass(opts: GradGraphOptions): Pass {
  return { name: "autodiff", run: (g) => gradGraph(g, opts) };
}

/** Vector-Jacobian product: cotangents for outputs `of` come in as inputs `cot.<name>`. */
export function vjpGraph(g: Graph, opts: VjpGraphOptions): Graph {
  const outs = opts.of.map((name) => findOutput(g, name, "vjp"));
  return differentiate(g, opts.wrt, opts.keepOutputs ?? false, "vjp", (em) => {
    const seeds = new Map<ValueId, ValueId>();
    for (const o of outs) {
      const type = nodeOf(g, o.value).type;
      if (!isFloat(type.dtype))
        throw new KilnError({ code: "invalid-argument", message: `vjp: output '${o.name}' is ${formatType(type)}; only f32 outputs take a cotangent` });
      const cot = em.builder.input(`cot.${o.name}`, type);
      const prev = seeds.get(o.value);
      seeds.set(o.value, prev === undefined ? cot : em.value(prev).add(em.value(cot)).id);
    }
    return seeds;
  });
}

function findOutput(g: Graph, name: string, what: string): GraphOutput {
  const out = g.outputs.find((o) => o.name === name);
  if (!out)
    throw new KilnError({
      code: "invalid-argument",
      message: `${what}: graph '${g.name}' has no output '${name}' (outputs: ${g.outputs.map((o) => o.name).join(", ")})`,
    });
  return out;
}

function differentiate(g: Graph, wrt: readonly string[], keepOutputs: boolean, what: string, seedsFor: (em: Emitter) => Map<ValueId, ValueId>): Graph {
  const inputByName = new Map(g.inputs.map((id) => [(nodeOf(g, id) as { name: string }).name, id]));
  const wrtIds = wrt.map((name) => {
    const id = inputByName.get(name);
    if (id === undefined) throw new KilnError({ code: "invalid-argument", message: `${what}: graph '${g.name}' has no input '${name}'` });
    const type = nodeOf(g, id).type;
    if (!isFloat(type.dtype))
      throw new KilnError({ code: "invalid-argument", message: `${what}: input '${name}' is ${formatType(type)}; only f32 inputs have gradients` });
    return id;
  });
  const builder = new GraphBuilder(g.name);
  const copied = new Map<ValueId, ValueId>();
  const primal = (id: ValueId): ValueId => copied.get(id) ?? bug(`autodiff: value ${id} was not copied`);
  for (const n of g.nodes) copied.set(n.id, builder.copy(n, primal));
  const em = new Emitter(builder);
  const seeds = seedsFor(em);
  const grads = emitBackward(em, { region: g.nodes, seeds, wrt: wrtIds, primal });
  const gradOutputs = wrtIds.map((id, i) => {
    const value = grads[i] ?? em.full(0, nodeOf(g, id).type);
    return { name: `grad.${wrt[i]!}`, value: value.id };
  });
  const kept = keepOutputs ? g.outputs.map((o) => ({ ...o, value: primal(o.value) })) : [];
  return builder.build([...kept, ...gradOutputs]);
}
