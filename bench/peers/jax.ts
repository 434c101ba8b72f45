// jax-js as a peer, on its wasm or webgpu device, in this process. Each case is one jit-ed
// function (the MLP step is valueAndGrad + the SGD update inside one jit); every step builds
// its input arrays from host data and reads the output back (await data()), as exe.run does.
// jax-js counts references: every function consumes its array arguments, hence the .ref's.

import { defaultDevice, init, jit, nn, numpy as np, tree, valueAndGrad, type Device } from "@jax-js/jax";
import { f32Of, i32Of, type BenchCase, type CaseData } from "../cases/case.ts";
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
        "jax-js-*: each case is one jit-ed function; the mlp step is jit(valueAndGrad(loss), then p − lr·g), loss -mean(sum(oneHot(y)·logSoftmax(logits)))",
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
    case "transformer":
      throw new Error(`unavailable: the ${benchCase.id} case is not written for this peer`);
    default:
      return unreachable(benchCase.id);
  }
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
