// The index algebra: hand-derived simplifications (the rules a conv window or a reshape
// chain needs), then a seeded fuzzer that builds random expressions and checks the
// simplified form against direct integer evaluation at every point of the variables' ranges.

import { describe, expect, test } from "vitest";
import {
  addIndex,
  andPred,
  bounds,
  cond,
  constIndex,
  divIndex,
  evalIndex,
  evalPred,
  fromAtom,
  indexKey,
  indexVar,
  inRange,
  modIndex,
  mulIndex,
  substitute,
  unflattenIndex,
  flatIndex,
  simplifyUnderPred,
  digitExtents,
  ShiftedSubstitution,
  type IndexExpr,
  type IndexVar,
} from "../../compiler/kernel/index-expr.ts";
import { mulberry32 } from "../util/random-graph.ts";

const v = (name: string, extent: number): IndexExpr => fromAtom(indexVar(name, extent));
const c = constIndex;
const key = indexKey;

describe("simplification rules", () => {
  const a = v("a", 5);
  const e = v("e", 7);
  test("(a*W + e) mod W = e and (a*W + e) div W = a when 0 <= e < W", () => {
    const x = addIndex(mulIndex(a, 7), e);
    expect(key(modIndex(x, 7))).toBe("e");
    expect(key(divIndex(x, 7))).toBe("a");
  });

  test("terms combine and constants fold", () => {
    expect(key(addIndex(a, a, c(3), mulIndex(a, -2), c(-3)))).toBe("0");
    expect(key(mulIndex(addIndex(a, c(2)), 3))).toBe("3*a + 6");
  });

  test("a var of extent 1 is 0", () => {
    expect(key(addIndex(v("z", 1), c(4)))).toBe("4");
  });

  test("div then mod by the same divisor recombine: (x div W)*W + x mod W = x", () => {
    const x = v("x", 100);
    expect(key(addIndex(mulIndex(divIndex(x, 10), 10), modIndex(x, 10)))).toBe("x");
  });

  test("a flattened var split into three digits and recombined is the var: 9*(f div 9) + 3*((f div 3) mod 3) + f mod 3 = f", () => {
    const f = v("f", 288);
    const digits = addIndex(mulIndex(divIndex(f, 9), 9), mulIndex(modIndex(divIndex(f, 3), 3), 3), modIndex(f, 3));
    expect(indexKey(digits)).toBe("f");
    // the same with a scale and an offset, in the other order of terms
    const r = v("r", 3136);
    const scaled = addIndex(modIndex(r, 7), mulIndex(divIndex(r, 49), 98), mulIndex(modIndex(divIndex(r, 7), 7), 14), c(5));
    expect(indexKey(scaled)).toBe(indexKey(addIndex(mulIndex(modIndex(r, 7), 1), mulIndex(divIndex(r, 7), 14), c(5))));
    for (let x = 0; x < 3136; x += 13) expect(evalIndex(scaled, () => x)).toBe((x % 7) + 98 * Math.floor(x / 49) + 14 * (Math.floor(x / 7) % 7) + 5);
  });

  test("a padded window's wrap-around is affine where its mask holds (simplifyUnderPred), checked at every point", () => {
    const h = v("h", 14);
    const kh = v("kh", 3);
    // (h + kh + 13) mod 14 and (h + kh + 13) div 14, masked by 0 <= h + kh - 1 < 14
    const x = addIndex(h, kh, c(13));
    const index = addIndex(mulIndex(modIndex(x, 14), 14), mulIndex(divIndex(x, 14), 1000), kh);
    const pred = andPred(cond(addIndex(h, kh, c(-1)), "ge", 0), cond(addIndex(h, kh, c(-1)), "lt", 14));
    const simple = simplifyUnderPred(index, pred);
    expect(indexKey(simple)).toBe(indexKey(addIndex(mulIndex(addIndex(h, kh, c(-1)), 14), c(1000), kh)));
    for (let hv = 0; hv < 14; hv++)
      for (let kv = 0; kv < 3; kv++) {
        const env = (a: { kind: string; name?: string }): number => (a.name === "h" ? hv : kv);
        if (evalPred(pred, env)) expect(evalIndex(simple, env)).toBe(evalIndex(index, env));
      }
    // no mask: unchanged
    expect(simplifyUnderPred(index, [])).toBe(index);
  });

  test("digitExtents reads a flattened variable's mixed-radix digits from its div/mod uses", () => {
    const r = indexVar("r", 12544);
    const rx = fromAtom(r);
    const uses = [addIndex(mulIndex(modIndex(divIndex(rx, 14), 14), 14), modIndex(rx, 14), mulIndex(divIndex(rx, 196), 6272))];
    expect(digitExtents(r, uses)).toEqual([64, 14, 14]);
    expect(digitExtents(r, [rx])).toBeUndefined();
    expect(digitExtents(r, [addIndex(modIndex(rx, 7), divIndex(rx, 12))])).toBeUndefined(); // 7 and 12 do not nest
  });

  test("nested division composes; mod of a mod by a divisor collapses", () => {
    const x = v("x", 1000);
    expect(key(divIndex(divIndex(x, 4), 5))).toBe("(x div 20)");
    expect(key(modIndex(modIndex(x, 12), 4))).toBe("(x mod 4)");
  });

  test("a constant offset stays inside when the remainder is non-negative", () => {
    // (5 - o) div 2 for o in [0, 6): the remainder 5 - o is in [0, 5], so nothing moves out.
    const o = v("o", 6);
    expect(bounds(divIndex(addIndex(c(5), mulIndex(o, -1)), 2))).toEqual([0, 2]);
  });

  test("a div and a mod of one x by one divisor are bounded together: exactly the range over every x", () => {
    // block-contraction's overlapping last row block: 6 rows a block, 171 blocks over 1024 rows
    const b = v("b", 171);
    expect(bounds(addIndex(mulIndex(modIndex(b, 170), 6), mulIndex(divIndex(b, 170), 1018)))).toEqual([0, 1018]);
    for (let extent = 1; extent <= 23; extent += 2)
      for (const offset of [0, 3])
        for (let d = 1; d <= 7; d++)
          for (const [cq, cr] of [
            [6, 1],
            [1, 6],
            [-3, 2],
            [5, -4],
            [-2, -7],
          ] as const) {
            const x = addIndex(v("x", extent), c(offset));
            const e = addIndex(mulIndex(divIndex(x, d), cq), mulIndex(modIndex(x, d), cr));
            const values = Array.from({ length: extent }, (_, i) => cq * Math.floor((i + offset) / d) + cr * ((i + offset) % d));
            expect(bounds(e), `${key(e)} over x < ${extent}`).toEqual([Math.min(...values) + 0, Math.max(...values) + 0]);
          }
  });

  test("a common factor cancels: (4*x) div 8 = x div 2, (4*x) mod 8 = 4*(x mod 2)", () => {
    const x = v("x", 9);
    expect(key(divIndex(mulIndex(x, 4), 8))).toBe("(x div 2)");
    expect(key(modIndex(mulIndex(x, 4), 8))).toBe("4*(x mod 2)");
  });

  test("reshape round trip [6,4] -> flat -> [6,4] gives the variables back", () => {
    const idx = [v("i", 6), v("j", 4)];
    expect(unflattenIndex(flatIndex(idx, [6, 4]), [6, 4]).map(key)).toEqual(["i", "j"]);
    // [6,4] -> [3,8]: row = (4i + j) div 8 = i div 2, col = (4i + j) mod 8 = 4*(i mod 2) + j
    expect(unflattenIndex(flatIndex(idx, [6, 4]), [3, 8]).map(key)).toEqual(["(i div 2)", "4*(i mod 2) + j"]);
  });

  test("conditions fold with bounds", () => {
    const o = v("o", 4);
    expect(cond(o, "lt", 4)).toEqual([]);
    expect(cond(o, "ge", 4)).toBe(false);
    expect(inRange(addIndex(o, c(-1)), 3)).toHaveLength(1); // o - 1 >= 0 remains; o - 1 < 3 always holds
    expect(andPred(inRange(o, 4), false)).toBe(false);
  });

  test("substitution re-simplifies (register tiling: o := 4*t + u)", () => {
    const o = v("o", 8);
    const t = v("t", 2);
    const x = modIndex(o, 4);
    expect(key(substitute(x, new Map([["o", addIndex(mulIndex(t, 4), c(3))]])))).toBe("3");
  });
});

describe("fuzzing the simplifier against integer evaluation", () => {
  const vars: IndexVar[] = [indexVar("a", 3), indexVar("b", 5), indexVar("c", 4)];
  function randomExpr(rand: () => number, depth: number): IndexExpr {
    const r = rand();
    if (depth === 0 || r < 0.2) return rand() < 0.7 ? fromAtom(vars[Math.floor(rand() * vars.length)]!) : c(Math.floor(rand() * 11) - 5);
    const x = randomExpr(rand, depth - 1);
    if (r < 0.45) return addIndex(x, randomExpr(rand, depth - 1));
    if (r < 0.65) return mulIndex(x, Math.floor(rand() * 9) - 4);
    if (r < 0.83) return divIndex(x, 1 + Math.floor(rand() * 8));
    return modIndex(x, 1 + Math.floor(rand() * 8));
  }
  /** Reference semantics built alongside: the same tree evaluated with plain integers. */
  function randomPair(rand: () => number, depth: number): [IndexExpr, (env: number[]) => number] {
    const r = rand();
    if (depth === 0 || r < 0.2) {
      if (rand() < 0.7) {
        const i = Math.floor(rand() * vars.length);
        return [fromAtom(vars[i]!), (env) => env[i]!];
      }
      const k = Math.floor(rand() * 11) - 5;
      return [c(k), () => k];
    }
    const [x, fx] = randomPair(rand, depth - 1);
    if (r < 0.45) {
      const [y, fy] = randomPair(rand, depth - 1);
      return [addIndex(x, y), (env) => fx(env) + fy(env)];
    }
    if (r < 0.65) {
      const m = Math.floor(rand() * 9) - 4;
      return [mulIndex(x, m), (env) => fx(env) * m];
    }
    const d = 1 + Math.floor(rand() * 8);
    if (r < 0.83) return [divIndex(x, d), (env) => Math.floor(fx(env) / d)];
    return [modIndex(x, d), (env) => ((fx(env) % d) + d) % d];
  }

  test("1000 random expressions agree at every point, and stay within their bounds", () => {
    const rand = mulberry32(2024);
    for (let n = 0; n < 1000; n++) {
      const [expr, reference] = randomPair(rand, 4);
      const [lo, hi] = bounds(expr);
      for (let a = 0; a < 3; a++)
        for (let b = 0; b < 5; b++)
          for (let cc = 0; cc < 4; cc++) {
            const env = [a, b, cc];
            const got = evalIndex(expr, (atom) => (atom.kind === "var" ? env[vars.findIndex((x) => x.name === atom.name)]! : 0));
            if (got !== reference(env)) throw new Error(`expression #${n} ${key(expr)} at a=${a} b=${b} c=${cc}: ${got} vs ${reference(env)}`);
            expect(got >= lo && got <= hi).toBe(true);
          }
    }
  });

  test("a shifted substitution gives what substitute gives, for 500 random expressions at every offset (register block copies)", () => {
    // a := 4·(b mod 2) + 3·(b div 2) + r (a wide block's overlapping rows), c := 2·a' + 4·j + lane-like terms; r and j move.
    const rand = mulberry32(99);
    const rowBase = addIndex(mulIndex(modIndex(v("b", 5), 2), 4), mulIndex(divIndex(v("b", 5), 2), 3));
    const colBase = addIndex(mulIndex(v("a", 3), 8), v("l", 4));
    const mapAt = (r: number, j: number): Map<string, IndexExpr> =>
      new Map([
        ["a", addIndex(rowBase, c(r))],
        ["c", addIndex(colBase, c(4 * j))],
      ]);
    const shifted = new ShiftedSubstitution(mapAt(0, 0), ["a", "c"]);
    let fast = 0;
    for (let n = 0; n < 500; n++) {
      const e = randomExpr(rand, 4);
      for (let r = 0; r < 3; r++)
        for (let j = 0; j < 2; j++) {
          const map = mapAt(r, j);
          const got = shifted.apply(e, [r, 4 * j], map);
          expect(key(got), `#${n} ${key(e)} at r=${r} j=${j}`).toBe(key(substitute(e, map)));
          expect(got).toEqual(substitute(e, map));
          if (got !== substitute(e, map) && (r > 0 || j > 0) && got.terms === shifted.apply(e, [0, 0], mapAt(0, 0)).terms) fast++;
        }
    }
    expect(fast).toBeGreaterThan(0); // the shortcut was taken, not only the full substitution
  });

  test("predicates agree with evaluation", () => {
    const rand = mulberry32(7);
    for (let n = 0; n < 300; n++) {
      const [expr, reference] = randomPair(rand, 3);
      const bound = Math.floor(rand() * 10) - 3;
      const p = andPred(cond(expr, "ge", bound), cond(expr, "lt", bound + 3));
      for (let a = 0; a < 3; a++)
        for (let b = 0; b < 5; b++)
          for (let cc = 0; cc < 4; cc++) {
            const env = [a, b, cc];
            const want = reference(env) >= bound && reference(env) < bound + 3;
            expect(evalPred(p, (atom) => (atom.kind === "var" ? env[vars.findIndex((x) => x.name === atom.name)]! : 0))).toBe(want);
          }
    }
  });
});
