// Index arithmetic in wasm: an IndexExpr (sum of coef*atom + constant) as i32 on the stack.
// Division and modulo are floor operations by a positive constant; when the dividend is
// known non-negative they are a plain div/rem (a shift or mask for powers of two).

import { bounds, type Atom, type IndexExpr, type IndexPred } from "../../compiler/kernel/index-expr.ts";
import { Op } from "./encoder.ts";
import type { FuncBuilder } from "./func-builder.ts";

/** How to push the value of a loop variable or a data atom (a gather index expression). */
export interface IndexEnv {
  pushVar(name: string): void;
  pushData(ref: number): void;
  /**
   * Where a loop keeps a running byte address for `index` (bytes per element `bytes`): pushes
   * it and returns the memarg offset still to add; undefined to compute the address.
   */
  address?(index: IndexExpr, bytes: number): number | undefined;
}

const isPow2 = (c: number): boolean => c > 0 && (c & (c - 1)) === 0;

export function emitIndex(fb: FuncBuilder, e: IndexExpr, env: IndexEnv): void {
  let first = true;
  for (const t of e.terms) {
    emitAtom(fb, t.atom, env);
    if (t.coef !== 1) {
      if (t.coef > 0 && isPow2(t.coef)) fb.i32(Math.log2(t.coef)).op(Op.i32Shl);
      else fb.i32(t.coef).op(Op.i32Mul);
    }
    if (!first) fb.op(Op.i32Add);
    first = false;
  }
  if (first) fb.i32(e.constant);
  else if (e.constant !== 0) fb.i32(e.constant).op(Op.i32Add);
}

function emitAtom(fb: FuncBuilder, a: Atom, env: IndexEnv): void {
  switch (a.kind) {
    case "var":
      return env.pushVar(a.name);
    case "data":
      return env.pushData(a.ref);
    case "div": {
      const c = a.divisor;
      emitIndex(fb, a.x, env);
      if (bounds(a.x)[0] >= 0) {
        if (isPow2(c)) fb.i32(Math.log2(c)).op(Op.i32ShrU);
        else fb.i32(c).op(Op.i32DivS);
        return;
      }
      if (isPow2(c)) {
        fb.i32(Math.log2(c)).op(Op.i32ShrS); // an arithmetic shift floors
        return;
      }
      // floor(x / c) = trunc((x - (x < 0 ? c - 1 : 0)) / c)
      const t = scratch(fb);
      fb.tee(t)
        .get(t)
        .i32(31)
        .op(Op.i32ShrS)
        .i32(c - 1)
        .op(Op.i32And)
        .op(Op.i32Sub)
        .i32(c)
        .op(Op.i32DivS);
      return;
    }
    case "mod": {
      const c = a.divisor;
      emitIndex(fb, a.x, env);
      if (isPow2(c)) {
        fb.i32(c - 1).op(Op.i32And); // two's complement: the mask is the floor modulo
        return;
      }
      fb.i32(c).op(Op.i32RemS);
      if (bounds(a.x)[0] >= 0) return;
      // r + (r < 0 ? c : 0)
      const t = scratch(fb);
      fb.tee(t).get(t).i32(31).op(Op.i32ShrS).i32(c).op(Op.i32And).op(Op.i32Add);
      return;
    }
  }
}

/** A fresh i32 temporary (each use gets its own: nested atoms may be live at once). */
function scratch(fb: FuncBuilder): number {
  return fb.local(0x7f);
}

/** Pushes 1 when every condition holds, else 0. */
export function emitPred(fb: FuncBuilder, p: IndexPred, env: IndexEnv): void {
  if (p === false) {
    fb.i32(0);
    return;
  }
  if (p.length === 0) {
    fb.i32(1);
    return;
  }
  p.forEach((c, i) => {
    emitIndex(fb, c.x, env);
    fb.i32(c.bound).op(c.op === "lt" ? Op.i32LtS : Op.i32GeS);
    if (i > 0) fb.op(Op.i32And);
  });
}
