// Placement of a section's expressions into a loop tree, shared by every target: each
// expression is computed in the shallowest loop where all its variables are bound (loop-
// invariant code motion), so a row's max and sum run once per row, a bias load once per
// column tile. Reductions that share their loop variables (the copies a register tile makes)
// share one loop: one pass over k feeds every accumulator of the tile.

import { bug } from "../util/errors.ts";
import type { IndexExpr, IndexVar } from "./index-expr.ts";
import { exprOperands, exprOwnVars, isReduceExpr, reduceBodies, type ExprId, type Section } from "./kernel-ir.ts";

export type ScheduleItem =
  | { readonly kind: "expr"; readonly id: ExprId }
  /** One loop over `vars` accumulating every reduction in `reduces` (declared before the loop). */
  | { readonly kind: "reduce"; readonly vars: readonly IndexVar[]; readonly reduces: readonly ExprId[]; readonly body: readonly ScheduleItem[] }
  | { readonly kind: "loop"; readonly v: IndexVar; readonly body: readonly ScheduleItem[] }
  | { readonly kind: "store"; readonly buffer: number; readonly index: IndexExpr; readonly value: ExprId };

interface Scope {
  readonly id: number;
  readonly depth: number;
  readonly parent: Scope | undefined;
}

/** Builds the loop tree of a section: domain loops outermost, then reductions where they are needed. */
export function scheduleSection(s: Section): ScheduleItem[] {
  const exprs = s.exprs;
  const scopes: Scope[] = [];
  const newScope = (parent: Scope | undefined): Scope => {
    const sc = { id: scopes.length, depth: parent ? parent.depth + 1 : 0, parent };
    scopes.push(sc);
    return sc;
  };
  const root = newScope(undefined);
  const varScope = new Map<string, Scope>();
  const domainScopes: Scope[] = [];
  let cur = root;
  for (const v of s.domain) {
    cur = newScope(cur);
    domainScopes.push(cur);
    varScope.set(v.name, cur);
  }
  const innermost = cur;

  // Only what a store needs is scheduled (lowering may leave dead expressions, e.g. a gather
  // index whose data atom simplified away).
  const live = new Array<boolean>(exprs.length).fill(false);
  for (const st of s.stores) live[st.value] = true;
  // Each expression's operands, listed once (the passes below read them four times).
  const operands = exprs.map(exprOperands);
  for (let id = exprs.length - 1; id >= 0; id--) if (live[id]) for (const o of operands[id]!) live[o] = true;

  // Free variables of every expression (a reduction's own vars excluded).
  const free: Set<string>[] = [];
  exprs.forEach((e, id) => {
    const vs = exprOwnVars(e);
    for (const o of operands[id]!) for (const v of free[o] ?? bug(`schedule: operand ${o} of ${id}`)) vs.add(v);
    if (isReduceExpr(e)) for (const v of e.vars) vs.delete(v.name);
    free[id] = vs;
  });

  // Reductions grouped by their loop variables: one loop per group.
  const groupKey = (id: ExprId): string => {
    const e = exprs[id]!;
    return isReduceExpr(e) ? e.vars.map((v) => `${v.name}<${v.extent}`).join(",") : bug("schedule: not a reduce");
  };
  const groups = new Map<string, ExprId[]>();
  const groupOfVar = new Map<string, string>();
  exprs.forEach((e, id) => {
    if (!live[id] || !isReduceExpr(e)) return;
    const key = groupKey(id);
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key)!.push(id);
    for (const v of e.vars) groupOfVar.set(v.name, key);
  });
  const placement = new Map<string, Scope>();
  const loopScope = new Map<string, Scope>();
  const deepest = (vars: Iterable<string>): Scope => {
    let best = root;
    for (const v of vars) {
      const sc = scopeOfVar(v);
      if (sc.depth > best.depth) best = sc;
    }
    return best;
  };
  function scopeOfVar(name: string): Scope {
    const known = varScope.get(name);
    if (known) return known;
    const key = groupOfVar.get(name) ?? bug(`schedule: variable ${name} is not bound`);
    const members = groups.get(key)!;
    const outer = new Set<string>();
    for (const id of members) for (const v of free[id]!) outer.add(v);
    const at = deepest(outer);
    placement.set(key, at);
    const loop = newScope(at);
    loopScope.set(key, loop);
    const e = exprs[members[0]!]!;
    if (isReduceExpr(e)) for (const v of e.vars) varScope.set(v.name, loop);
    return loop;
  }
  const placeOf: Scope[] = [];
  exprs.forEach((e, id) => {
    if (!live[id]) return;
    if (isReduceExpr(e)) {
      const key = groupKey(id);
      scopeOfVar(e.vars[0]!.name);
      placeOf[id] = placement.get(key)!;
    } else placeOf[id] = deepest(free[id]!);
  });

  // Items per scope, each with its dependencies among items of the same scope.
  interface Item {
    readonly order: number;
    readonly item: () => ScheduleItem;
    readonly deps: Set<ExprId>;
    readonly provides: readonly ExprId[];
  }
  const itemsOf = new Map<number, Item[]>();
  const addItem = (sc: Scope, it: Item): void => {
    if (!itemsOf.has(sc.id)) itemsOf.set(sc.id, []);
    itemsOf.get(sc.id)!.push(it);
  };
  // Each reduction loop's dependencies: the operands of everything placed inside it (or below
  // it), gathered in one pass up each expression's enclosing loops (not a pass over every
  // expression per loop: a register-blocked section has hundreds of both).
  const groupOfLoop = new Map<Scope, string>();
  for (const [key, loop] of loopScope) groupOfLoop.set(loop, key);
  const insideDeps = new Map<string, Set<ExprId>>();
  exprs.forEach((_inner, innerId) => {
    if (!live[innerId]) return;
    for (let x: Scope | undefined = placeOf[innerId]; x; x = x.parent) {
      const key = groupOfLoop.get(x);
      if (key === undefined) continue;
      let deps = insideDeps.get(key);
      if (!deps) insideDeps.set(key, (deps = new Set()));
      for (const o of operands[innerId]!) deps.add(o);
    }
  });
  const emittedGroups = new Set<string>();
  exprs.forEach((e, id) => {
    if (!live[id]) return;
    const sc = placeOf[id]!;
    if (isReduceExpr(e)) {
      const key = groupKey(id);
      if (emittedGroups.has(key)) return;
      emittedGroups.add(key);
      const members = groups.get(key)!;
      const loop = loopScope.get(key)!;
      // Dependencies: operands of anything placed inside the loop (or below it) that live in this scope, and the bodies.
      const deps = new Set<ExprId>(insideDeps.get(key));
      for (const m of members) {
        const me = exprs[m]!;
        if (isReduceExpr(me)) for (const b of reduceBodies(me)) deps.add(b);
      }
      addItem(sc, {
        order: id,
        deps,
        provides: members,
        item: () => ({ kind: "reduce", vars: (e as { vars: readonly IndexVar[] }).vars, reduces: members, body: build(loop) }),
      });
    } else {
      addItem(sc, { order: id, deps: new Set(operands[id]), provides: [id], item: () => ({ kind: "expr", id }) });
    }
  });

  function build(sc: Scope): ScheduleItem[] {
    const items = [...(itemsOf.get(sc.id) ?? [])];
    const providerOf = new Map<ExprId, Item>();
    for (const it of items) for (const p of it.provides) providerOf.set(p, it);
    const out: ScheduleItem[] = [];
    const done = new Set<Item>();
    const visiting = new Set<Item>();
    const visit = (it: Item): void => {
      if (done.has(it)) return;
      if (visiting.has(it)) bug("schedule: cyclic placement");
      visiting.add(it);
      for (const d of it.deps.size > 1 ? [...it.deps].sort((a, b) => a - b) : it.deps) {
        const p = providerOf.get(d);
        if (p && p !== it) visit(p);
      }
      visiting.delete(it);
      done.add(it);
      out.push(it.item());
    };
    for (const it of items.sort((a, b) => a.order - b.order)) visit(it);
    const depthIndex = domainScopes.indexOf(sc);
    if (depthIndex >= 0 || sc === root) {
      const next = sc === root ? domainScopes[0] : domainScopes[depthIndex + 1];
      if (next) out.push({ kind: "loop", v: s.domain[domainScopes.indexOf(next)]!, body: build(next) });
    }
    if (sc === innermost) for (const st of s.stores) out.push({ kind: "store", buffer: st.buffer, index: st.index, value: st.value });
    return out;
  }
  return build(root);
}

/**
 * Elements one reduce item folds: its own loop's trips times those of the longest reduction
 * nested in it (a blocked sum, compiler/kernel/block-sum.ts, is a nest of short loops).
 */
export function reduceElements(item: Extract<ScheduleItem, { kind: "reduce" }>): number {
  const own = item.vars.reduce((a, v) => a * v.extent, 1);
  return own * item.body.reduce((m, it) => Math.max(m, it.kind === "reduce" ? reduceElements(it) : 1), 1);
}
