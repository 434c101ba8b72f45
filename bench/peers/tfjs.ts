// TensorFlow.js as a peer, on its cpu, wasm or webgpu backend, in this process. Each case is
// the same math as Kiln's, written with tfjs ops; every step uploads its inputs from host
// arrays (tf.tensor), runs, and reads the output back (await data()), as exe.run does.

import { createRequire } from "node:module";
import * as path from "node:path";
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import { getThreadsCount, setWasmPaths } from "@tensorflow/tfjs-backend-wasm";
import { f32Of, i32Of, type BenchCase, type CaseData } from "../cases/case.ts";
import { CNN_BATCH, CNN_LR, CNN_PARAMS } from "../cases/cnn.ts";
import { TF_BATCH, TF_DIM, TF_HEADS, TF_LR, TF_PARAMS, TF_SEQ } from "../cases/transformer.ts";
import { MATMUL_N } from "../cases/matmul.ts";
import { MLP_BATCH, MLP_LAYERS, MLP_LR, MLP_SIZES, biasName, weightName } from "../cases/mlp.ts";
import { SOFTMAX_COLS, SOFTMAX_ROWS } from "../cases/softmax.ts";
import { unreachable, type PreparedStep, type Runner } from "../runner.ts";
import { packageVersion } from "../env.ts";
import { registerTfjsGradients } from "./tfjs-gradients.ts";

export type TfjsBackend = "cpu" | "wasm" | "webgpu";

const PACKAGE: Record<TfjsBackend, string> = {
  cpu: "@tensorflow/tfjs-backend-cpu",
  wasm: "@tensorflow/tfjs-backend-wasm",
  webgpu: "@tensorflow/tfjs-backend-webgpu",
};

/** The wasm backend fetches its .wasm binaries by path: point it at the package's dist folder. */
function locateWasmBinaries(): void {
  const require = createRequire(import.meta.url);
  setWasmPaths(path.join(path.dirname(require.resolve("@tensorflow/tfjs-backend-wasm/package.json")), "dist", path.sep));
}

/** `cacheDir` holds the bundled gradient registrations (see tfjs-gradients.ts). */
export function tfjsRunner(backend: TfjsBackend, cacheDir: string): Runner {
  const notes: string[] = [];
  return {
    name: `tfjs-${backend}`,
    firstStepIsWarm: backend === "cpu",
    peer: `${PACKAGE[backend]}@${packageVersion(PACKAGE[backend])} (tfjs-core@${packageVersion("@tensorflow/tfjs-core")})`,
    async init() {
      // Production mode, as a deployed app runs: no debug checks (and no "install tfjs-node" banner).
      tf.enableProdMode();
      await registerTfjsGradients(cacheDir);
      if (backend === "wasm") locateWasmBinaries();
      // Registers the backend; navigator.gpu must already be installed (bench/navigator-gpu.ts).
      if (backend === "webgpu") await import("@tensorflow/tfjs-backend-webgpu");
      if (!(await tf.setBackend(backend))) throw new Error(`tf.setBackend('${backend}') returned false`);
      await tf.ready();
      if (backend === "wasm") {
        const env = tf.env();
        notes.push(
          `tfjs-wasm: ${getThreadsCount()} thread(s), simd ${env.getBool("WASM_HAS_SIMD_SUPPORT")}, multithread support ${env.getBool("WASM_HAS_MULTITHREAD_SUPPORT")}`,
        );
      }
      notes.push(
        `tfjs-*: the mlp and cnn steps are optimizer.minimize (tf.train.sgd) over tf.variable weights, loss -mean(sum(oneHot(y)·logSoftmax(logits))); the cnn runs NHWC (tf.conv2d's layout; the weights transposed once, flattened back in PyTorch's NCHW order); the transformer step is tf.variableGrads of the MSE, then AdamW as torch.optim.AdamW computes it; prod mode`,
      );
    },
    async prepare(benchCase, data) {
      await tf.setBackend(backend);
      return prepareCase(benchCase, data);
    },
    notes: () => notes,
  };
}

/** Runs `compute` on fresh input tensors in a tidy scope and reads its result back. */
function hostStep(compute: () => tf.Tensor): PreparedStep {
  return {
    async step() {
      const out = tf.tidy(compute);
      const values = await out.data();
      out.dispose();
      return values instanceof Float32Array ? values : Float32Array.from(values as ArrayLike<number>);
    },
    dispose: () => undefined,
  };
}

async function prepareCase(benchCase: BenchCase, data: CaseData): Promise<PreparedStep> {
  switch (benchCase.id) {
    case "matmul": {
      const a = f32Of(data, "a");
      const b = f32Of(data, "b");
      return hostStep(() => tf.matMul(tf.tensor2d(a, [MATMUL_N, MATMUL_N]), tf.tensor2d(b, [MATMUL_N, MATMUL_N])));
    }
    case "softmax": {
      const x = f32Of(data, "x");
      return hostStep(() => tf.softmax(tf.tensor2d(x, [SOFTMAX_ROWS, SOFTMAX_COLS])));
    }
    case "elementwise": {
      const x = f32Of(data, "x");
      const y = f32Of(data, "y");
      return hostStep(() => tf.sigmoid(tf.mul(tf.relu(tf.add(tf.mul(tf.tensor1d(x), 2), 1)), tf.tensor1d(y))));
    }
    case "mlp":
      return prepareMlp(data);
    case "cnn":
      return prepareCnn(data);
    case "transformer":
      return prepareTransformer(data);
    default:
      return unreachable(benchCase.id);
  }
}

function prepareMlp(data: CaseData): PreparedStep {
  const weights: tf.Variable[] = [];
  const biases: tf.Variable[] = [];
  for (let i = 0; i < MLP_LAYERS; i++) {
    weights.push(tf.variable(tf.tensor2d(f32Of(data, weightName(i)), [MLP_SIZES[i + 1]!, MLP_SIZES[i]!])));
    biases.push(tf.variable(tf.tensor1d(f32Of(data, biasName(i)))));
  }
  const optimizer = tf.train.sgd(MLP_LR);
  const x = f32Of(data, "x");
  const y = i32Of(data, "y");
  const classes = MLP_SIZES[MLP_LAYERS]!;
  return {
    async step() {
      const xs = tf.tensor2d(x, [MLP_BATCH, MLP_SIZES[0]]);
      const ys = tf.tensor1d(y, "int32");
      const loss = optimizer.minimize(
        () => {
          let h: tf.Tensor = xs;
          for (let i = 0; i < MLP_LAYERS; i++) {
            h = tf.add(tf.matMul(h, weights[i]!, false, true), biases[i]!); // weights are [out, in]
            if (i < MLP_LAYERS - 1) h = tf.relu(h);
          }
          const logProbs = tf.logSoftmax(h);
          return tf.neg(tf.mean(tf.sum(tf.mul(tf.oneHot(ys, classes), logProbs), 1))) as tf.Scalar;
        },
        true,
        [...weights, ...biases],
      );
      if (!loss) throw new Error("optimizer.minimize returned no loss");
      const value = await loss.data();
      tf.dispose([xs, ys, loss]);
      return Float32Array.from(value as ArrayLike<number>);
    },
    dispose: () => {
      tf.dispose([...weights, ...biases]);
      optimizer.dispose();
    },
  };
}

/** Runs a loss step: `minimize` (SGD) or a custom update of `variableGrads`, then reads the loss back. */
async function readLoss(loss: tf.Scalar | null): Promise<Float32Array> {
  if (!loss) throw new Error("the step returned no loss");
  const value = await loss.data();
  loss.dispose();
  return Float32Array.from(value as ArrayLike<number>);
}

function prepareCnn(data: CaseData): PreparedStep {
  // PyTorch's [out, in, kH, kW] filters as tfjs's [kH, kW, in, out].
  const filter = (name: string): tf.Variable<tf.Rank.R4> => {
    const [o, i, kh, kw] = CNN_PARAMS[name] as [number, number, number, number];
    return tf.variable(tf.transpose(tf.tensor4d(f32Of(data, name), [o, i, kh, kw]), [2, 3, 1, 0]));
  };
  const w0 = filter("0.weight");
  const w3 = filter("3.weight");
  const b0 = tf.variable(tf.tensor1d(f32Of(data, "0.bias")));
  const b3 = tf.variable(tf.tensor1d(f32Of(data, "3.bias")));
  const w7 = tf.variable(tf.tensor2d(f32Of(data, "7.weight"), [10, 64 * 7 * 7]));
  const b7 = tf.variable(tf.tensor1d(f32Of(data, "7.bias")));
  const variables = [w0, b0, w3, b3, w7, b7];
  const optimizer = tf.train.sgd(CNN_LR);
  const x = f32Of(data, "x");
  const y = i32Of(data, "y");
  return {
    async step() {
      const images = tf.transpose(tf.tensor4d(x, [CNN_BATCH, 1, 28, 28]), [0, 2, 3, 1]) as tf.Tensor4D;
      const labels = tf.tensor1d(y, "int32");
      const loss = optimizer.minimize(
        () => {
          let h = tf.maxPool(tf.relu(tf.add(tf.conv2d(images, w0, 1, "same"), b0)) as tf.Tensor4D, 2, 2, "valid");
          h = tf.maxPool(tf.relu(tf.add(tf.conv2d(h, w3, 1, "same"), b3)) as tf.Tensor4D, 2, 2, "valid");
          const flat = tf.reshape(tf.transpose(h, [0, 3, 1, 2]), [CNN_BATCH, 64 * 7 * 7]); // PyTorch's NCHW flatten order
          const logits = tf.add(tf.matMul(flat, w7, false, true), b7);
          return tf.neg(tf.mean(tf.sum(tf.mul(tf.oneHot(labels, 10), tf.logSoftmax(logits)), 1))) as tf.Scalar;
        },
        true,
        variables,
      );
      tf.dispose([images, labels]);
      return readLoss(loss);
    },
    dispose: () => {
      tf.dispose(variables);
      optimizer.dispose();
    },
  };
}

// torch.optim.AdamW's defaults beside the case's lr and weight decay.
const BETA1 = 0.9;
const BETA2 = 0.999;
const ADAM_EPS = 1e-8;
const WEIGHT_DECAY = 0.01;

function prepareTransformer(data: CaseData): PreparedStep {
  const [b, t, d] = [TF_BATCH, TF_SEQ, TF_DIM];
  const headDim = d / TF_HEADS;
  const p: Record<string, tf.Variable> = Object.fromEntries(
    Object.entries(TF_PARAMS).map(([name, shape]) => [name, tf.variable(tf.tensor(f32Of(data, name), [...shape]), true, name)]),
  );
  const m: Record<string, tf.Variable> = Object.fromEntries(Object.entries(TF_PARAMS).map(([name, shape]) => [name, tf.variable(tf.zeros([...shape]), false)]));
  const v: Record<string, tf.Variable> = Object.fromEntries(Object.entries(TF_PARAMS).map(([name, shape]) => [name, tf.variable(tf.zeros([...shape]), false)]));
  // On 2-d rows: tfjs's batched-matmul gradient does not un-broadcast a 2-d weight.
  const linear = (x: tf.Tensor, name: string): tf.Tensor => {
    const weight = p[`${name}.weight`]!;
    const rows = tf.reshape(x, [-1, x.shape[x.shape.length - 1]!]);
    const out = tf.add(tf.matMul(rows, weight, false, true), p[`${name}.bias`]!);
    return tf.reshape(out, [...x.shape.slice(0, -1), weight.shape[0]!]);
  };
  const layerNorm = (x: tf.Tensor, name: string): tf.Tensor => {
    const { mean, variance } = tf.moments(x, -1, true);
    return tf.add(tf.mul(tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, 1e-5))), p[`${name}.weight`]!), p[`${name}.bias`]!);
  };
  // 0 on and below the diagonal, −∞ above it (torch-peer.py's masked_fill), added to the scores.
  const maskValues = new Float32Array(t * t);
  for (let i = 0; i < t; i++) for (let j = i + 1; j < t; j++) maskValues[i * t + j] = Number.NEGATIVE_INFINITY;
  const mask = tf.tensor2d(maskValues, [t, t]);
  const heads = (y: tf.Tensor): tf.Tensor => tf.transpose(tf.reshape(y, [b, t, TF_HEADS, headDim]), [0, 2, 1, 3]);
  const forward = (x: tf.Tensor): tf.Tensor => {
    const [q, k, val] = tf.split(linear(layerNorm(x, "ln1"), "attn.qkv"), 3, -1).map(heads) as [tf.Tensor, tf.Tensor, tf.Tensor];
    const scores = tf.add(tf.mul(tf.matMul(q, k, false, true), 1 / Math.sqrt(headDim)), mask);
    const attended = tf.reshape(tf.transpose(tf.matMul(tf.softmax(scores), val), [0, 2, 1, 3]), [b, t, d]);
    const a = tf.add(x, linear(attended, "attn.proj"));
    const hidden = linear(layerNorm(a, "ln2"), "mlp.0");
    const gelu = tf.mul(tf.mul(hidden, 0.5), tf.add(tf.erf(tf.mul(hidden, Math.SQRT1_2)), 1)); // exact GELU, as nn.GELU()
    return tf.add(a, linear(gelu, "mlp.2"));
  };
  const x = f32Of(data, "x");
  const y = f32Of(data, "y");
  let step = 0;
  return {
    async step() {
      step++;
      const input = tf.tensor3d(x, [b, t, d]);
      const target = tf.tensor3d(y, [b, t, d]);
      const { value, grads } = tf.variableGrads(() => tf.mean(tf.square(tf.sub(forward(input), target))) as tf.Scalar);
      const correction1 = 1 - BETA1 ** step;
      const correction2 = 1 - BETA2 ** step;
      // AdamW as PyTorch computes it: p ← p·(1 − lr·wd) − lr·m̂/(√v̂ + ε).
      tf.tidy(() => {
        for (const name of Object.keys(TF_PARAMS)) {
          const g = grads[name]!;
          m[name]!.assign(tf.add(tf.mul(m[name]!, BETA1), tf.mul(g, 1 - BETA1)));
          v[name]!.assign(tf.add(tf.mul(v[name]!, BETA2), tf.mul(tf.square(g), 1 - BETA2)));
          const update = tf.div(tf.div(m[name]!, correction1), tf.add(tf.sqrt(tf.div(v[name]!, correction2)), ADAM_EPS));
          p[name]!.assign(tf.sub(tf.mul(p[name]!, 1 - TF_LR * WEIGHT_DECAY), tf.mul(update, TF_LR)));
        }
      });
      tf.dispose([input, target, ...Object.values(grads)]);
      return readLoss(value);
    },
    dispose: () => {
      tf.dispose([...Object.values(p), ...Object.values(m), ...Object.values(v), mask]);
    },
  };
}
