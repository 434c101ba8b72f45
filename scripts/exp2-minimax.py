#!/usr/bin/env python3
# The coefficients of the wasm target's exp2 polynomial (codegen/wasm/module-helpers.ts,
# EXP2_POLY): a degree-6 polynomial p with p(f) ≈ 2^f on |f| ≤ 1/2, fitted for the least
# maximum relative error by Lawson's iteration (iteratively reweighted least squares) on
# 4000 Chebyshev points, then checked in f32 Horner arithmetic (mul + add, and fused).
# Run: python3 scripts/exp2-minimax.py (numpy).
import numpy as np

DEGREE = 6
x = np.cos(np.linspace(0, np.pi, 4000)) * 0.5
f = 2.0**x
w = np.ones_like(x)
for _ in range(300):
    a = np.vander(x, DEGREE + 1, increasing=True) / f[:, None]
    sw = np.sqrt(w)
    c, *_ = np.linalg.lstsq(a * sw[:, None], sw, rcond=None)
    err = np.abs(a @ c - 1)
    w = w * err
    w /= w.sum()
print("coefficients:", [float(v) for v in c])
print(f"max relative error: {err.max():.3g}")

xs = np.linspace(-0.5, 0.5, 400001).astype(np.float32)
cf = c.astype(np.float32)
ref = 2.0 ** xs.astype(np.float64)
ulp = np.spacing(ref.astype(np.float32)).astype(np.float64)
for fused in (False, True):
    p = np.full_like(xs, cf[-1])
    for k in range(DEGREE - 1, -1, -1):
        p = (p.astype(np.float64) * xs + cf[k]).astype(np.float32) if fused else ((p * xs).astype(np.float32) + cf[k]).astype(np.float32)
    print(f"f32 Horner ({'fused' if fused else 'mul + add'}): max {(np.abs(p - ref) / ulp).max():.3f} ulp")
