"""PyTorch as a peer of `npm run bench`: a child process that reads one JSON command per line
on stdin and answers one JSON line on stdout (bench/peers/torch.ts drives it). Each case is the
same math as bench/cases/*.ts on the same data (raw little-endian arrays written by the
harness); every step starts from the host arrays and ends with the result on the host, and
times itself (so the pipe is not in the step time). `--cold CASE DIR` instead measures a cold
start: this process's start to the first loss of that case, printed as JSON."""

import json
import math
import os
import sys
import time

STARTED = time.perf_counter()

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

DTYPES = {"f32": np.float32, "i32": np.int32}


def load(spec):
    return {name: np.fromfile(a["file"], dtype=DTYPES[a["dtype"]]).reshape(a["shape"]) for name, a in spec.items()}


def tensor(a):
    return torch.from_numpy(a)


class Block(torch.nn.Module):
    """The pre-LN block of bench/cases/gpt.ts: x + proj(attn(ln1(x))), then + mlp(ln2(.)); causal, one qkv projection."""

    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.ln1 = torch.nn.LayerNorm(d)
        self.qkv = torch.nn.Linear(d, 3 * d)
        self.proj = torch.nn.Linear(d, d)
        self.ln2 = torch.nn.LayerNorm(d)
        self.mlp = torch.nn.Sequential(torch.nn.Linear(d, 4 * d), torch.nn.GELU(), torch.nn.Linear(4 * d, d))

    def attn(self, x):
        b, t, d = x.shape
        h = self.heads
        q, k, v = (y.reshape(b, t, h, d // h).transpose(1, 2) for y in self.qkv(x).chunk(3, -1))
        scores = q @ k.transpose(-2, -1) / math.sqrt(d // h)
        mask = torch.ones(t, t, dtype=torch.bool).tril()
        scores = scores.masked_fill(~mask, float("-inf"))
        y = scores.softmax(-1) @ v
        return self.proj(y.transpose(1, 2).reshape(b, t, d))

    def forward(self, x):
        a = x + self.attn(self.ln1(x))
        return a + self.mlp(self.ln2(a))


def load_params(module, data, names):
    with torch.no_grad():
        params = dict(module.named_parameters())
        for ours, theirs in names.items():
            params[theirs].copy_(tensor(data[ours]).reshape(params[theirs].shape))


def prepare(case, data):
    """Returns step(): one step from host arrays to a host numpy array."""
    if case == "matmul":
        return lambda: (tensor(data["a"]) @ tensor(data["b"])).numpy()
    if case == "softmax":
        return lambda: torch.softmax(tensor(data["x"]), -1).numpy()
    if case == "elementwise":
        return lambda: torch.sigmoid(torch.relu(tensor(data["x"]) * 2 + 1) * tensor(data["y"])).numpy()
    if case in ("mlp", "cnn", "transformer"):
        if case == "mlp":
            sizes = [784, 512, 512, 10]
            layers = []
            for i in range(3):
                if i > 0:
                    layers.append(torch.nn.ReLU())
                layers.append(torch.nn.Linear(sizes[i], sizes[i + 1]))
            model = torch.nn.Sequential(*layers)
            load_params(model, data, {f"w{i}": f"{2 * i}.weight" for i in range(3)} | {f"b{i}": f"{2 * i}.bias" for i in range(3)})
            opt = torch.optim.SGD(model.parameters(), lr=0.01)
            loss_fn = lambda out, y: F.cross_entropy(out, y)  # noqa: E731
            x_shape = (128, 784)
        elif case == "cnn":
            model = torch.nn.Sequential(
                torch.nn.Conv2d(1, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                torch.nn.Conv2d(32, 64, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                torch.nn.Flatten(), torch.nn.Linear(64 * 7 * 7, 10),
            )
            load_params(model, data, {n: n for n in ["0.weight", "0.bias", "3.weight", "3.bias", "7.weight", "7.bias"]})
            opt = torch.optim.SGD(model.parameters(), lr=0.01)
            loss_fn = lambda out, y: F.cross_entropy(out, y)  # noqa: E731
            x_shape = (64, 1, 28, 28)
        else:
            model = Block(256, 4)
            names = {"ln1.weight": "ln1.weight", "ln1.bias": "ln1.bias", "attn.qkv.weight": "qkv.weight", "attn.qkv.bias": "qkv.bias",
                     "attn.proj.weight": "proj.weight", "attn.proj.bias": "proj.bias", "ln2.weight": "ln2.weight", "ln2.bias": "ln2.bias",
                     "mlp.0.weight": "mlp.0.weight", "mlp.0.bias": "mlp.0.bias", "mlp.2.weight": "mlp.2.weight", "mlp.2.bias": "mlp.2.bias"}
            load_params(model, data, names)
            opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
            loss_fn = F.mse_loss
            x_shape = (8, 128, 256)

        def step():
            x = tensor(data["x"]).reshape(x_shape)
            y = tensor(data["y"])
            y = y.long() if y.dtype == torch.int32 else y.reshape(x_shape)
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
            return np.array([loss.item()], dtype=np.float32)

        return step
    raise ValueError(f"unknown case {case}")


def blas():
    """The BLAS library this process loaded for a matmul (Debian's torch uses whatever libblas.so.3 points at)."""
    torch.ones(64, 64) @ torch.ones(64, 64)
    try:
        maps = open("/proc/self/maps").read()
    except OSError:
        return "unknown"
    lines = [line for line in maps.splitlines() if "blas" in line.lower() or "mkl" in line.lower()] + maps.splitlines()
    for name in ("openblas", "mkl", "blis", "libblas"):
        for line in lines:
            if name in line.lower():
                path = os.path.realpath(line.split()[-1])
                return ("reference BLAS " if name == "libblas" and "openblas" not in path else "") + path
    return "unknown"


def serve():
    step = None
    for line in sys.stdin:
        msg = json.loads(line)
        try:
            cmd = msg["cmd"]
            if cmd == "init":
                torch.set_num_threads(msg["threads"])
                reply = {"version": torch.__version__, "threads": torch.get_num_threads(), "blas": blas()}
            elif cmd == "prepare":
                t = time.perf_counter()
                step = prepare(msg["case"], load(msg["arrays"]))
                reply = {"ms": (time.perf_counter() - t) * 1000}
            elif cmd == "step":
                t = time.perf_counter()
                out = step()
                ms = (time.perf_counter() - t) * 1000
                if msg.get("out"):
                    np.ascontiguousarray(out, dtype=np.float32).tofile(msg["out"])
                reply = {"ms": ms}
            else:
                raise ValueError(f"unknown command {cmd}")
            print(json.dumps({"ok": True, **reply}), flush=True)
        except Exception as e:  # the harness reports it as this runner's failure
            print(json.dumps({"ok": False, "error": f"{type(e).__name__}: {e}"}), flush=True)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--cold":
        spec = json.load(open(os.path.join(sys.argv[3], "arrays.json")))
        torch.set_num_threads(os.cpu_count() or 1)
        loss = prepare(sys.argv[2], load(spec))()
        print(json.dumps({"ms": (time.perf_counter() - STARTED) * 1000, "loss": float(loss[0])}))
    else:
        serve()
