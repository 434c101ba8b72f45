"""Sets Kiln's CUDA numbers (bench.ts) against PyTorch's (torch_ref.py) as ratios.
usage: python3 bench/cuda/report.py kiln.json torch.json"""

import json
import sys


def ratio(kiln, ref):
    return f"{kiln / ref:.2f}x the time" if isinstance(kiln, (int, float)) and isinstance(ref, (int, float)) and ref > 0 else "n/a"


def main():
    kiln = json.load(open(sys.argv[1]))
    torch = json.load(open(sys.argv[2]))
    ms = lambda v: f"{v:.3f} ms" if isinstance(v, (int, float)) else "n/a"
    rows = [
        ("matmul 4096^3 f32 vs cuBLAS (torch.matmul, no TF32)", kiln.get("matmul_f32_ms"), torch.get("matmul_f32_ms")),
        ("matmul 4096^3 f16 vs cuBLAS (Kiln: no f16 dtype yet)", kiln.get("matmul_f16_ms"), torch.get("matmul_f16_ms")),
        ("elementwise chain vs a device copy (bandwidth ceiling)", kiln.get("chain_ms"), torch.get("copy_ms")),
        ("elementwise chain vs PyTorch eager", kiln.get("chain_ms"), torch.get("chain_eager_ms")),
        ("elementwise chain vs torch.compile", kiln.get("chain_ms"), torch.get("chain_compile_ms")),
        ("MLP+AdamW step vs PyTorch eager", kiln.get("mlp_step_ms"), torch.get("mlp_eager_ms")),
        ("MLP+AdamW step vs torch.compile", kiln.get("mlp_step_ms"), torch.get("mlp_compile_ms")),
    ]
    print(f"device: {torch.get('device')}, torch {torch.get('torch')}")
    print(f"kiln matmul {kiln.get('matmul_f32_tflops', 0):.2f} TFLOP/s; chain {kiln.get('chain_gbps', 0):.0f} GB/s vs copy {torch.get('copy_gbps', 0):.0f} GB/s")
    for label, k, t in rows:
        print(f"{label:58s} kiln {ms(k):>12s}  ref {ms(t):>12s}  {ratio(k, t)}")
    for key in ("chain_compile_error", "mlp_compile_error"):
        if key in torch:
            print(f"note: {key}: {torch[key]}")


if __name__ == "__main__":
    main()
