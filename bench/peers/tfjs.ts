// TensorFlow.js as a peer, on its cpu, wasm or webgpu backend, in this process. Each case is
// the same math as Kiln's, written with tfjs ops; every step uploads its inputs from host
// arrays (tf.tensor), runs, and reads the output back (await data()), as exe.run does.

import { createRequire } from "node:module";
import * as path from "node:path";
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import { getThreadsCount, setWasmPaths } from "@tensorflow/tfjs-backend-wasm";
import { f32Of, i32Of, type BenchCase, type CaseData } from "../cases/case.ts";
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
        `tfjs-*: the mlp step is optimizer.minimize (tf.train.sgd) over tf.variable weights, loss -mean(sum(oneHot(y)·logSoftmax(logits))); prod mode`,
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
    case "transformer":
      throw new Error(`unavailable: the ${benchCase.id} case is not written for this peer`);
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
