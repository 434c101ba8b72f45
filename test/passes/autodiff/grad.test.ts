// k.grad / k.valueAndGrad / k.vjp: JAX semantics checked against hand-derived derivatives,
// Hessian-vector products (analytic Hessians and finite differences of the gradient), grad of
// grad, closures over the caller's tensors, broadcasting, random ops and error messages.

import { describe, expect, test } from "vitest";
import * as k from "../../../dsl/index.ts";
import type { Tensor } from "../../../dsl/index.ts";
import type { HostTensor } from "../../../compiler/ir/host-tensor.ts";
import { expectClose, runRef } from "../../util/ref.ts";
import { gradcheck, uniform } from "../../util/gradcheck.ts";
import { verifyOrThrow } from "../../../compiler/ir/verifier.ts";

const seedInput = (value: number): Record<string, HostTensor> => ({ seed: { dtype: "i32", shape: [], data: Int32Array.of(value) } });

describe("k.grad", () => {
  test("d/dx sum(x^3) = 3x^2", () => {
    const x = [0.5, -1.5, 2, 0.25, -0.75, 1];
    const { values, shape } = runRef((t: Tensor) => k.grad((a: Tensor) => a.pow(3).sum())(t), [k.f32([2, 3])], [x]);
    expect(shape).toEqual([2, 3]);
    expectClose(
      values,
      x.map((v) => 3 * v * v),
    );
  });

  test("argnums picks arguments; valueAndGrad returns the value too", () => {
    const f = (a: Tensor, b: Tensor) => a.mul(b).sin().sum();
    const a = [0.3, -0.8, 1.1];
    const b = [1.5, 0.2, -0.6];
    const res = runRef(
      (x: Tensor, y: Tensor) => {
        const [value, grads] = k.valueAndGrad(f, { argnums: [0, 1] })(x, y);
        return [value, ...grads, k.grad(f, { argnums: 1 })(x, y)];
      },
      [k.f32([3]), k.f32([3])],
      [a, b],
    );
    const [value, ga, gb, gbOnly] = res.outputs.map((o) => Array.from(o.data));
    expectClose(value!, [a.reduce((s, v, i) => s + Math.sin(v * b[i]!), 0)]);
    expectClose(
      ga!,
      a.map((v, i) => Math.cos(v * b[i]!) * b[i]!),
    );
    expectClose(
      gb!,
      a.map((v, i) => Math.cos(v * b[i]!) * v),
    );
    expectClose(gbOnly!, gb!);
  });

  test("hasAux: the aux output rides along undifferentiated", () => {
    const x = [0.5, -1, 2];
    const f = (a: Tensor) => [a.square().sum(), { doubled: a.mul(2) }] as const;
    const res = runRef(
      (t: Tensor) => {
        const [grads, aux] = k.grad(f, { hasAux: true })(t);
        const [[value, aux2], gradList] = k.valueAndGrad(f, { hasAux: true, argnums: [0] })(t);
        return [grads, aux.doubled, value, aux2.doubled, gradList[0]!];
      },
      [k.f32([3])],
      [x],
    );
    const [g, doubled, value, doubled2, g2] = res.outputs.map((o) => Array.from(o.data));
    expectClose(
      g!,
      x.map((v) => 2 * v),
    );
    expectClose(
      doubled!,
      x.map((v) => 2 * v),
    );
    expectClose(value!, [x.reduce((s, v) => s + v * v, 0)]);
    expectClose(doubled2!, doubled!);
    expectClose(g2!, g!);
  });

  test("broadcast operands get gradients reduced to their own shapes", () => {
    const x = [1, 2, 3]; // [3,1]
    const y = [0.5, -1, 2, 4]; // [1,4]
    const res = runRef(
      (a: Tensor, b: Tensor) => k.grad((p: Tensor, q: Tensor) => p.mul(q).add(p).sum(), { argnums: [0, 1] })(a, b),
      [k.f32([3, 1]), k.f32([1, 4])],
      [x, y],
    );
    expect(res.outputs.map((o) => o.shape)).toEqual([
      [3, 1],
      [1, 4],
    ]);
    const ySum = y.reduce((s, v) => s + v, 0);
    const xSum = x.reduce((s, v) => s + v, 0);
    expectClose(
      res.outputs[0]!.data,
      x.map(() => ySum + 4),
    );
    expectClose(
      res.outputs[1]!.data,
      y.map(() => xSum),
    );
  });

  test("an argument the output does not depend on gets zeros", () => {
    const res = runRef(
      (a: Tensor, b: Tensor) => k.grad((p: Tensor, _q: Tensor) => p.sum(), { argnums: [1] })(a, b)[0]!,
      [k.f32([2]), k.f32([2, 2])],
      [
        [1, 2],
        [1, 2, 3, 4],
      ],
    );
    expect(res.shape).toEqual([2, 2]);
    expectClose(res.values, [0, 0, 0, 0]);
  });

  test("the identity on a scalar has gradient 1; a constant function has gradient 0", () => {
    const res = runRef((t: Tensor) => [k.grad((a: Tensor) => a)(t), k.grad((_a: Tensor) => k.scalar(2.5))(t)], [k.f32([])], [[0.7]]);
    expect(res.outputs.map((o) => Array.from(o.data))).toEqual([[1], [0]]);
  });

  test("f(x, x) differentiates each parameter separately", () => {
    const x = [0.5, -2, 1.5];
    const res = runRef((t: Tensor) => k.grad((a: Tensor, b: Tensor) => a.mul(b).mul(b).sum(), { argnums: [0, 1] })(t, t), [k.f32([3])], [x]);
    verifyOrThrow(res.graph);
    expectClose(
      res.outputs[0]!.data,
      x.map((v) => v * v),
    );
    expectClose(
      res.outputs[1]!.data,
      x.map((v) => 2 * v * v),
    );
  });

  test("captured tensors are constants, even when computed from the argument", () => {
    const x = [1, -2, 3];
    const res = runRef(
      (t: Tensor) => {
        const v = t.mul(2);
        return k.grad((y: Tensor) => y.mul(v).sum())(t);
      },
      [k.f32([3])],
      [x],
    );
    expectClose(
      res.values,
      x.map((v) => 2 * v),
    );
  });

  test("dropout's gradient uses the forward's mask (rng has no gradient)", () => {
    const x = uniform(20, 3, 0.5, 1.5);
    const res = runRef((t: Tensor) => k.valueAndGrad((a: Tensor) => k.nn.functional.dropout(a, 0.5).sum())(t), [k.f32([4, 5])], [x], seedInput(11));
    const value = res.outputs[0]!.data[0]!;
    const g = Array.from(res.outputs[1]!.data);
    expect(g.every((v) => v === 0 || v === 2)).toBe(true);
    expect(g.some((v) => v === 0) && g.some((v) => v === 2)).toBe(true);
    expect(g.reduce((s, v, i) => s + v * x[i]!, 0)).toBeCloseTo(value, 12);
  });
});

describe("grad of grad", () => {
  test("Hessian-vector product of sum(x^3): 6·x·v", () => {
    const x = [0.5, -1, 2, 1.5];
    const v = [1, 2, -1, 0.5];
    const f = (a: Tensor) => a.pow(3).sum();
    const res = runRef((t: Tensor, dir: Tensor) => k.grad((a: Tensor) => k.grad(f)(a).mul(dir).sum())(t), [k.f32([4]), k.f32([4])], [x, v]);
    verifyOrThrow(res.graph);
    expectClose(
      res.values,
      x.map((xi, i) => 6 * xi * v[i]!),
    );
  });

  test("Hessian-vector product of xᵀAx: (A + Aᵀ)v", () => {
    const n = 3;
    const A = [1, 2, -1, 0.5, 3, 2, -2, 1, 4];
    const x = [0.3, -0.7, 1.2];
    const v = [1, -1, 2];
    const quad = (a: Tensor, m: Tensor) => a.matmul(m.matmul(a));
    const res = runRef(
      (t: Tensor, m: Tensor, dir: Tensor) =>
        k.grad((a: Tensor) =>
          k
            .grad((b: Tensor) => quad(b, m))(a)
            .mul(dir)
            .sum(),
        )(t),
      [k.f32([n]), k.f32([n, n]), k.f32([n])],
      [x, A, v],
    );
    const expected = Array.from({ length: n }, (_, i) => {
      let s = 0;
      for (let j = 0; j < n; j++) s += (A[i * n + j]! + A[j * n + i]!) * v[j]!;
      return s;
    });
    expectClose(res.values, expected);
  });

  test("second derivatives of elementwise ops (hand-derived)", () => {
    const x = [0.4, 1.3, 2.2];
    const second = (f: (a: Tensor) => Tensor) =>
      runRef(
        (t: Tensor) =>
          k.grad((a: Tensor) =>
            k
              .grad((b: Tensor) => f(b).sum())(a)
              .sum(),
          )(t),
        [k.f32([3])],
        [x],
      ).values;
    expectClose(
      second((a) => a.sin()),
      x.map((v) => -Math.sin(v)),
      1e-12,
    );
    expectClose(
      second((a) => a.exp()),
      x.map((v) => Math.exp(v)),
      1e-12,
    );
    expectClose(
      second((a) => a.log()),
      x.map((v) => -1 / (v * v)),
      1e-12,
    );
    expectClose(
      second((a) => a.sqrt()),
      x.map((v) => -0.25 * v ** -1.5),
      1e-12,
    );
    expectClose(
      second((a) => a.reciprocal()),
      x.map((v) => 2 / v ** 3),
      1e-12,
    );
    expectClose(
      second((a) => a.sigmoid()),
      x.map((v) => {
        const s = 1 / (1 + Math.exp(-v));
        return s * (1 - s) * (1 - 2 * s);
      }),
      1e-12,
    );
  });

  test("gradients of gradients vs finite differences (full Hessian-vector products)", () => {
    const specs = [k.f32([2, 3]), k.f32([3, 2])];
    const data = [uniform(6, 21), uniform(6, 22)];
    gradcheck((a, w) => k.grad((b: Tensor) => b.matmul(w).tanh().softmax(-1).mul(b.matmul(w)).sum())(a), specs, data);
    gradcheck((a, w) => k.grad((p: Tensor, q: Tensor) => p.matmul(q).logsumexp(1).sum(), { argnums: [0, 1] })(a, w)[1]!, specs, data);
    gradcheck((a) => k.grad((b: Tensor) => b.amax(1).mul(b.sum(1)).sum())(a), [k.f32([2, 3])], [data[0]!]);
  });

  test("third derivative of x^4 at a point: 24x", () => {
    const d = (f: (a: Tensor) => Tensor) => (a: Tensor) => k.grad((b: Tensor) => f(b).sum())(a);
    const res = runRef((t: Tensor) => d(d(d((a) => a.pow(4))))(t), [k.f32([2])], [[0.5, -1.25]]);
    expectClose(res.values, [12, -30]);
  });
});

describe("k.vjp", () => {
  test("matmul: cotangent c gives c·Wᵀ and xᵀ·c", () => {
    const x = [1, 2, 3, 4, 5, 6]; // [2,3]
    const w = [0.5, -1, 2, 0, 1, 1]; // [3,2]
    const c = [1, -1, 0.5, 2]; // [2,2]
    const res = runRef(
      (a: Tensor, b: Tensor, ct: Tensor) => {
        const [out, back] = k.vjp((p: Tensor, q: Tensor) => p.matmul(q), a, b);
        return [out, ...back(ct)];
      },
      [k.f32([2, 3]), k.f32([3, 2]), k.f32([2, 2])],
      [x, w, c],
    );
    const [, gx, gw] = res.outputs.map((o) => Array.from(o.data));
    const expectGx = [0, 1].flatMap((i) => [0, 1, 2].map((j) => c[i * 2]! * w[j * 2]! + c[i * 2 + 1]! * w[j * 2 + 1]!));
    const expectGw = [0, 1, 2].flatMap((i) => [0, 1].map((j) => x[i]! * c[j]! + x[3 + i]! * c[2 + j]!));
    expectClose(gx!, expectGx);
    expectClose(gw!, expectGw);
  });

  test("several outputs: cotangents of each add up", () => {
    const x = [0.2, -0.4];
    const res = runRef(
      (a: Tensor, c1: Tensor, c2: Tensor) => {
        const [, back] = k.vjp((p: Tensor) => ({ s: p.sin(), sq: p.mul(p) }), a);
        return back({ s: c1, sq: c2 });
      },
      [k.f32([2]), k.f32([2]), k.f32([2])],
      [x, [1, 2], [3, 4]],
    );
    expectClose(
      res.values,
      x.map((v, i) => Math.cos(v) * [1, 2][i]! + 2 * v * [3, 4][i]!),
    );
  });
});

describe("errors", () => {
  const traceWith = (fn: (x: Tensor, i: Tensor) => unknown) => () => k.traceFunction("t", fn, [k.f32([3]), k.i32([3])]);

  test("a non-scalar output", () => {
    expect(traceWith((x) => k.grad((a: Tensor) => a.mul(2))(x))).toThrow(/grad: the function must return a scalar f32 tensor, got f32\[3\]/);
  });
  test("an integer argument", () => {
    expect(traceWith((_x, i) => k.grad((a: Tensor) => a.sum().float())(i))).toThrow(/grad: argument 0 is i32\[3\]; only f32 arguments have gradients/);
  });
  test("hasAux without a pair", () => {
    expect(traceWith((x) => k.grad((a: Tensor) => a.sum() as unknown as readonly [Tensor, Tensor], { hasAux: true })(x))).toThrow(
      /with hasAux the function must return \[scalar, aux\]/,
    );
  });
  test("argnums out of range", () => {
    expect(traceWith((x) => k.grad((a: Tensor) => a.sum(), { argnums: [1] })(x))).toThrow(/argnums entry 1 is out of range for 1 argument/);
  });
  test("a vjp cotangent of the wrong shape", () => {
    expect(traceWith((x) => k.vjp((a: Tensor) => a.mul(2), x)[1](x.sum()))).toThrow(/vjp: cotangent 'out' must be f32\[3\], got f32\[\]/);
  });
  test("errors point at the user's line", () => {
    try {
      traceWith((x) => k.grad((a: Tensor) => a.mul(2))(x))();
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(k.KilnError);
      expect((e as k.KilnError).diag.loc?.file).toMatch(/grad\.test\.ts$/);
    }
  });
});
