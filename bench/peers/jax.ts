// jax-js as a peer, on its wasm or webgpu device, in this process. Each case is one jit-ed
// function (the MLP step is valueAndGrad + the SGD update inside one jit); every step builds
// its input arrays from host data and reads the output back (await data()), as exe.run does.
// jax-js counts references: every function consumes its array arguments, hence the .ref's.

import { defaultDevice, init, jit, lax, nn, numpy as np, tree, valueAndGrad, type Device } from "@jax-js/jax";
import { f32Of, i32Of, type BenchCase, type CaseData } from "../cases/case.ts";
import { CNN_BATCH, CNN_LR, CNN_PARAMS } from "../cases/cnn.ts";
import { TF_BATCH, TF_DIM, TF_HEADS, TF_LR, TF_PARAMS, TF_SEQ } from "../cases/transformer.ts";
import { MATMUL_N } from "../cases/matmul.ts";
import { MLP_BATCH, MLP_LAYERS, MLP_LR, MLP_SIZES, biasName, weightName } from "../cases/mlp.ts";
import { SOFTMAX_COLS, SOFTMAX_ROWS } from "../cases/softmax.ts";
import { packageVersion } from "../env.ts";
import { unreachable, type PreparedStep, type Runner } from "../runner.ts";

export type JaxDevice = "wasm" | "webgpu";

export function jaxRunner(device: JaxDevice): Runner {
  const notes: string[] = [];
  return {
    name: `jax-js-${device}`,
    peer: `@jax-js/jax@${packageVersion("@jax-js/jax")} (${device})`,
    async init() {
      const started = await init(device);
      if (!started.includes(device)) throw new Error(`jax-js could not start its ${device} device (started: ${started.join(", ") || "none"})`);
      defaultDevice(device);
      if (device === "wasm") {
        // jax-js spreads wasm work over Web Workers; Node has no global Worker, so it runs on one thread.
        notes.push(
          `jax-js-wasm: ${typeof (globalThis as { Worker?: unknown }).Worker === "undefined" ? "1 thread (Node has no Web Worker global)" : "worker pool"}`,
        );
      }
      notes.push(
        "jax-js-*: each case is one jit-ed function; the mlp and cnn steps are jit(valueAndGrad(loss), then p − lr·g), loss -mean(sum(oneHot(y)·logSoftmax(logits))); the cnn's convolutions lax.conv, its max-pools a max over a reshape; the transformer step jit(valueAndGrad(mse), then AdamW as torch.optim.AdamW computes it), attention written out (matmul, −∞ mask, softmax), LayerNorm nn.standardize",
      );
    },
    async prepare(benchCase, data) {
      defaultDevice(device);
      return prepareCase(benchCase, data, device);
    },
    notes: () => notes,
  };
}

type Arr = np.Array;

const f32Array = (values: Float32Array, shape: number[], device: Device): Arr => np.array(values, { shape, dtype: np.float32, device });

async function readBack(out: Arr): Promise<Float32Array> {
  const values = await out.data(); // data() also disposes `out`
  return values instanceof Float32Array ? values : Float32Array.from(values as ArrayLike<number>);
}

/** A jit-ed function of host inputs: each step uploads them, runs it and reads the result back. */
function jitStep(fn: (...args: Arr[]) => Arr, inputs: () => Arr[]): PreparedStep {
  const compiled = jit(fn);
  return {
    step: () => readBack(compiled(...inputs())),
    dispose: () => compiled.dispose(),
  };
}

function prepareCase(benchCase: BenchCase, data: CaseData, device: Device): PreparedStep {
  switch (benchCase.id) {
    case "matmul": {
      const a = f32Of(data, "a");
      const b = f32Of(data, "b");
      const shape = [MATMUL_N, MATMUL_N];
      return jitStep(
        (x, y) => np.matmul(x, y),
        () => [f32Array(a, shape, device), f32Array(b, shape, device)],
      );
    }
    case "softmax": {
      const x = f32Of(data, "x");
      return jitStep(
        (v) => nn.softmax(v, -1),
        () => [f32Array(x, [SOFTMAX_ROWS, SOFTMAX_COLS], device)],
      );
    }
    case "elementwise": {
      const x = f32Of(data, "x");
      const y = f32Of(data, "y");
      return jitStep(
        (u, v) => nn.sigmoid(nn.relu(u.mul(2).add(1)).mul(v)),
        () => [f32Array(x, [x.length], device), f32Array(y, [y.length], device)],
      );
    }
    case "mlp":
      return prepareMlp(data, device);
    case "cnn":
      return prepareCnn(data, device);
    case "transformer":
      return prepareTransformer(data, device);
    default:
      return unreachable(benchCase.id);
  }
}

type Params = Record<string, Arr>;

/** The case's parameters (PyTorch names and shapes) as device arrays. */
function loadParams(data: CaseData, shapes: Readonly<Record<string, readonly number[]>>, device: Device): Params {
  return Object.fromEntries(Object.entries(shapes).map(([name, shape]) => [name, f32Array(f32Of(data, name), [...shape], device)]));
}

/** nn.Linear with a [out, in] weight. */
const linear = (x: Arr, weight: Arr, bias: Arr): Arr => np.matmul(x, weight.transpose()).add(bias);

/** A 2×2, stride-2 max-pool of NCHW as a max over the two window axes of a reshape (exact; the sizes are even). */
function maxPool2(x: Arr): Arr {
  const [n, c, h, w] = x.shape as [number, number, number, number];
  return x.reshape([n, c, h / 2, 2, w / 2, 2]).max([3, 5]);
}

function cnnLoss(p: Params, x: Arr, labels: Arr): Arr {
  const conv = (h: Arr, layer: string): Arr => {
    const bias = p[`${layer}.bias`]!;
    return lax
      .conv(
        h,
        p[`${layer}.weight`]!,
        [1, 1],
        [
          [1, 1],
          [1, 1],
        ],
      )
      .add(bias.reshape([1, bias.shape[0]!, 1, 1]));
  };
  let h = maxPool2(nn.relu(conv(x, "0")));
  h = maxPool2(nn.relu(conv(h, "3")));
  const logits = linear(h.reshape([CNN_BATCH, 64 * 7 * 7]), p["7.weight"]!, p["7.bias"]!);
  return nn.logSoftmax(logits, -1).mul(nn.oneHot(labels, 10)).sum(-1).mean().neg();
}

function prepareCnn(data: CaseData, device: Device): PreparedStep {
  let params = loadParams(data, CNN_PARAMS, device);
  const trainStep = jit((p: Params, x: Arr, labels: Arr): [Arr, Params] => {
    const [loss, grads] = valueAndGrad(cnnLoss)(tree.ref(p), x, labels);
    return [loss, tree.map((value: Arr, grad: Arr) => value.sub(grad.mul(CNN_LR)), p, grads) as Params];
  });
  const x = f32Of(data, "x");
  const y = i32Of(data, "y");
  return {
    async step() {
      const [loss, next] = trainStep(params, f32Array(x, [CNN_BATCH, 1, 28, 28], device), np.array(y, { shape: [CNN_BATCH], dtype: np.int32, device }));
      params = next;
      return readBack(loss);
    },
    dispose: () => {
      tree.dispose(params);
      trainStep.dispose();
    },
  };
}

const layerNorm = (x: Arr, weight: Arr, bias: Arr): Arr => nn.standardize(x, -1, { epsilon: 1e-5 }).mul(weight).add(bias);

/**
 * bench/cases/gpt.ts's pre-LN Block: x + proj(attention(ln1 x)), then + mlp(ln2 ·) with an
 * exact GELU. Attention is written out as torch-peer.py's is (scores, −∞ above the diagonal,
 * softmax, · v): nn.dotProductAttention needs iterator helpers Node 20 lacks.
 */
function blockForward(p: Params, x: Arr, causalMask: Arr): Arr {
  const [b, t, d] = [TF_BATCH, TF_SEQ, TF_DIM];
  const headDim = d / TF_HEADS;
  const qkv = linear(layerNorm(x.ref, p["ln1.weight"]!, p["ln1.bias"]!), p["attn.qkv.weight"]!, p["attn.qkv.bias"]!);
  const [q, k, v] = np.split(qkv, 3, -1).map((y) => y.reshape([b, t, TF_HEADS, headDim]).transpose([0, 2, 1, 3])) as [Arr, Arr, Arr];
  const scores = np
    .matmul(q, k.transpose([0, 1, 3, 2]))
    .mul(1 / Math.sqrt(headDim))
    .add(causalMask);
  const attended = np.matmul(nn.softmax(scores, -1), v).transpose([0, 2, 1, 3]).reshape([b, t, d]);
  const a = x.add(linear(attended, p["attn.proj.weight"]!, p["attn.proj.bias"]!));
  const hidden = nn.gelu(linear(layerNorm(a.ref, p["ln2.weight"]!, p["ln2.bias"]!), p["mlp.0.weight"]!, p["mlp.0.bias"]!), { approximate: false });
  return a.add(linear(hidden, p["mlp.2.weight"]!, p["mlp.2.bias"]!));
}

function mseLoss(p: Params, x: Arr, target: Arr, causalMask: Arr): Arr {
  const diff = blockForward(p, x, causalMask).sub(target);
  return diff.ref.mul(diff).mean();
}

// torch.optim.AdamW's defaults beside the case's lr and weight decay.
const BETA1 = 0.9;
const BETA2 = 0.999;
const ADAM_EPS = 1e-8;
const WEIGHT_DECAY = 0.01;

function prepareTransformer(data: CaseData, device: Device): PreparedStep {
  let params = loadParams(data, TF_PARAMS, device);
  const zeros = (): Params => Object.fromEntries(Object.entries(TF_PARAMS).map(([name, shape]) => [name, np.zeros([...shape], { dtype: np.float32, device })]));
  let m = zeros();
  let v = zeros();
  // AdamW as PyTorch computes it: p ← p·(1 − lr·wd) − lr·m̂/(√v̂ + ε), m̂ = m/(1 − β1^t), v̂ = v/(1 − β2^t); the corrections come in as scalars.
  const trainStep = jit(
    (p: Params, mState: Params, vState: Params, x: Arr, target: Arr, mask: Arr, correction1: Arr, correction2: Arr): [Arr, Params, Params, Params] => {
      const [loss, grads] = valueAndGrad(mseLoss)(tree.ref(p), x, target, mask);
      const nextM: Params = {};
      const nextV: Params = {};
      const nextP: Params = {};
      for (const name of Object.keys(TF_PARAMS)) {
        const g = grads[name]!;
        nextM[name] = mState[name]!.mul(BETA1).add(g.ref.mul(1 - BETA1));
        nextV[name] = vState[name]!.mul(BETA2).add(g.ref.mul(g).mul(1 - BETA2));
        const step = nextM[name]!.ref.div(correction1.ref).div(np.sqrt(nextV[name]!.ref.div(correction2.ref)).add(ADAM_EPS));
        nextP[name] = p[name]!.mul(1 - TF_LR * WEIGHT_DECAY).sub(step.mul(TF_LR));
      }
      correction1.dispose();
      correction2.dispose();
      return [loss, nextP, nextM, nextV];
    },
  );
  const x = f32Of(data, "x");
  const y = f32Of(data, "y");
  const shape = [TF_BATCH, TF_SEQ, TF_DIM];
  // 0 on and below the diagonal, −∞ above it: added to the attention scores.
  const maskValues = new Float32Array(TF_SEQ * TF_SEQ);
  for (let i = 0; i < TF_SEQ; i++) for (let j = i + 1; j < TF_SEQ; j++) maskValues[i * TF_SEQ + j] = Number.NEGATIVE_INFINITY;
  let t = 0;
  return {
    async step() {
      t++;
      const c1 = np.array(new Float32Array([1 - BETA1 ** t]), { shape: [], dtype: np.float32, device });
      const c2 = np.array(new Float32Array([1 - BETA2 ** t]), { shape: [], dtype: np.float32, device });
      const [loss, nextP, nextM, nextV] = trainStep(
        params,
        m,
        v,
        f32Array(x, shape, device),
        f32Array(y, shape, device),
        f32Array(maskValues, [TF_SEQ, TF_SEQ], device),
        c1,
        c2,
      );
      params = nextP;
      m = nextM;
      v = nextV;
      return readBack(loss);
    },
    dispose: () => {
      tree.dispose([params, m, v]);
      trainStep.dispose();
    },
  };
}

type MlpParams = { w: Arr[]; b: Arr[] };

function mlpLoss(params: MlpParams, x: Arr, labels: Arr): Arr {
  let h = x;
  for (let i = 0; i < MLP_LAYERS; i++) {
    h = np.matmul(h, params.w[i]!.transpose()).add(params.b[i]!); // weights are [out, in]
    if (i < MLP_LAYERS - 1) h = nn.relu(h);
  }
  const oneHot = nn.oneHot(labels, MLP_SIZES[MLP_LAYERS]!);
  return nn.logSoftmax(h, -1).mul(oneHot).sum(-1).mean().neg();
}

function prepareMlp(data: CaseData, device: Device): PreparedStep {
  let params: MlpParams = { w: [], b: [] };
  for (let i = 0; i < MLP_LAYERS; i++) {
    params.w.push(f32Array(f32Of(data, weightName(i)), [MLP_SIZES[i + 1]!, MLP_SIZES[i]!], device));
    params.b.push(f32Array(f32Of(data, biasName(i)), [MLP_SIZES[i + 1]!], device));
  }
  const trainStep = jit((p: MlpParams, x: Arr, labels: Arr): [Arr, MlpParams] => {
    const [loss, grads] = valueAndGrad(mlpLoss)(tree.ref(p), x, labels);
    const updated = tree.map((value: Arr, grad: Arr) => value.sub(grad.mul(MLP_LR)), p, grads) as MlpParams;
    return [loss, updated];
  });
  const x = f32Of(data, "x");
  const y = i32Of(data, "y");
  return {
    async step() {
      const xs = f32Array(x, [MLP_BATCH, MLP_SIZES[0]], device);
      const labels = np.array(y, { shape: [MLP_BATCH], dtype: np.int32, device });
      const [loss, next] = trainStep(params, xs, labels);
      params = next;
      return readBack(loss);
    },
    dispose: () => {
      tree.dispose(params);
      trainStep.dispose();
    },
  };
}
