"""PyTorch's side of the CUDA benchmark (bench/gpu-check.sh): cuBLAS matmul 4096^3 in f32 (no
TF32) and f16, a device copy as the practical memory-bandwidth ceiling, the same elementwise
chain as bench/cuda/bench.ts (eager and torch.compile), and one MLP + AdamW step on the same
784-256-10 network (eager and torch.compile). Device time with CUDA events; prints JSON."""

import json
import sys

import torch
import torch.nn.functional as F

MATMUL = 4096
CHAIN = 1 << 26


def cuda_ms(fn, iterations):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(iterations):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / iterations


def main():
    dev = torch.device("cuda")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    out = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__}

    a, b = torch.rand(MATMUL, MATMUL, device=dev), torch.rand(MATMUL, MATMUL, device=dev)
    out["matmul_f32_ms"] = cuda_ms(lambda: a @ b, 10)
    ah, bh = a.half(), b.half()
    out["matmul_f16_ms"] = cuda_ms(lambda: ah @ bh, 20)

    x = torch.rand(CHAIN, device=dev)
    y = torch.empty_like(x)
    out["copy_ms"] = cuda_ms(lambda: y.copy_(x), 20)
    out["copy_gbps"] = 8 * CHAIN / (out["copy_ms"] * 1e6)
    chain = lambda t: (t * 1.5 + 0.5).relu() * t
    out["chain_eager_ms"] = cuda_ms(lambda: chain(x), 20)
    try:
        compiled_chain = torch.compile(chain)
        out["chain_compile_ms"] = cuda_ms(lambda: compiled_chain(x), 20)
    except Exception as e:  # torch.compile needs a working Triton
        out["chain_compile_error"] = str(e)[:200]

    def mlp_step_ms(compiled):
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10)).to(dev)
        model = torch.compile(net) if compiled else net
        opt = torch.optim.AdamW(net.parameters(), lr=1e-3, fused=True)
        xb = torch.randn(128, 784, device=dev)
        yb = torch.arange(128, device=dev) % 10

        def step():
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(xb), yb).backward()
            opt.step()

        return cuda_ms(step, 50)

    out["mlp_eager_ms"] = mlp_step_ms(False)
    try:
        out["mlp_compile_ms"] = mlp_step_ms(True)
    except Exception as e:
        out["mlp_compile_error"] = str(e)[:200]
    json.dump(out, sys.stdout)
    print()


if __name__ == "__main__":
    main()
