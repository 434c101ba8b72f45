// nn modules without parameters: activations, Dropout, Flatten, Identity, pooling, and the
// Sequential container (children named "0", "1", … as in PyTorch). Each forwards to the
// Tensor method or k.nn.functional op of the same name.

import { avgPool2d, avgPool2dKeys, maxPool2d, maxPool2dKeys, type AvgPool2dOptions, type MaxPool2dOptions } from "./functional/pool.ts";
import type { GeluOptions, LeakyReluOptions, SoftplusOptions } from "./ops/elementwise.ts";
import { strictOptions } from "./options.ts";
import { dropout } from "./functional/sparse.ts";
import type { IntPair } from "./functional/prims.ts";
import { Module } from "./module.ts";
import { type Tensor, userError } from "./tensor.ts";

// Modules check their options when built, so the error names the line that built the model.
const leakyReluOptionsCheck = (v: unknown): void =>
  void (typeof v === "object" && strictOptions("k.nn.LeakyReLU", v as LeakyReluOptions, { negativeSlope: true }));
const geluOptionsCheck = (v: unknown): void => void (typeof v === "object" && strictOptions("k.nn.GELU", v as GeluOptions, { approximate: true }));
const softplusOptionsCheck = (v: unknown): void =>
  void (typeof v === "object" && strictOptions("k.nn.Softplus", v as SoftplusOptions, { beta: true, threshold: true }));

export class ReLU extends Module {
  forward(x: Tensor): Tensor {
    return x.relu();
  }
}
export class LeakyReLU extends Module {
  constructor(readonly negativeSlope: number | LeakyReluOptions = 0.01) {
    super();
    leakyReluOptionsCheck(negativeSlope);
  }
  forward(x: Tensor): Tensor {
    return x.leakyRelu(this.negativeSlope);
  }
}
export class GELU extends Module {
  constructor(readonly approximate: "none" | "tanh" | GeluOptions = "none") {
    super();
    geluOptionsCheck(approximate);
  }
  forward(x: Tensor): Tensor {
    return x.gelu(this.approximate);
  }
}
export class SiLU extends Module {
  forward(x: Tensor): Tensor {
    return x.silu();
  }
}
export class Sigmoid extends Module {
  forward(x: Tensor): Tensor {
    return x.sigmoid();
  }
}
export class Tanh extends Module {
  forward(x: Tensor): Tensor {
    return x.tanh();
  }
}
export class Softplus extends Module {
  constructor(
    readonly beta: number | SoftplusOptions = 1,
    readonly threshold = 20,
  ) {
    super();
    softplusOptionsCheck(beta);
  }
  forward(x: Tensor): Tensor {
    return x.softplus(this.beta, this.threshold);
  }
}
export class Softmax extends Module {
  constructor(readonly dim: number) {
    super();
  }
  forward(x: Tensor): Tensor {
    return x.softmax(this.dim);
  }
}
export class LogSoftmax extends Module {
  constructor(readonly dim: number) {
    super();
  }
  forward(x: Tensor): Tensor {
    return x.logSoftmax(this.dim);
  }
}
export class Identity extends Module {
  forward(x: Tensor): Tensor {
    return x;
  }
}
/** Flattens dims startDim..endDim (PyTorch's nn.Flatten keeps the batch dim: startDim 1). */
export class Flatten extends Module {
  constructor(
    readonly startDim = 1,
    readonly endDim = -1,
  ) {
    super();
  }
  forward(x: Tensor): Tensor {
    return x.flatten(this.startDim, this.endDim);
  }
}

/** Zeroes elements with probability p while training (scaling the rest by 1/(1-p)); identity after eval(). */
export class Dropout extends Module {
  readonly p: number;
  constructor(p: number | { readonly p?: number } = 0.5) {
    super();
    this.p = typeof p === "object" && p !== null ? (strictOptions("k.nn.Dropout", p, { p: true }).p ?? 0.5) : p;
    if (!(typeof this.p === "number" && this.p >= 0 && this.p <= 1))
      userError("invalid-argument", `Dropout: p must be in [0, 1], got ${JSON.stringify(this.p)}`);
  }
  forward(x: Tensor): Tensor {
    return dropout(x, this.p, this.training);
  }
}

export class MaxPool2d extends Module {
  constructor(
    readonly kernelSize: IntPair,
    readonly options: MaxPool2dOptions = {},
  ) {
    super();
    strictOptions("k.nn.MaxPool2d", options, maxPool2dKeys);
  }
  forward(x: Tensor): Tensor {
    return maxPool2d(x, this.kernelSize, this.options);
  }
}
export class AvgPool2d extends Module {
  constructor(
    readonly kernelSize: IntPair,
    readonly options: AvgPool2dOptions = {},
  ) {
    super();
    strictOptions("k.nn.AvgPool2d", options, avgPool2dKeys);
  }
  forward(x: Tensor): Tensor {
    return avgPool2d(x, this.kernelSize, this.options);
  }
}

/** Runs its modules in order, each on the previous one's output. */
export class Sequential extends Module {
  readonly layers: readonly Module[];
  constructor(...layers: Module[]) {
    super();
    layers.forEach((m, i) => {
      if (!(m instanceof Module)) userError("invalid-argument", `Sequential: argument ${i} is not a module`);
      this.registerModule(String(i), m);
    });
    this.layers = layers;
  }
  get length(): number {
    return this.layers.length;
  }
  at(index: number): Module {
    const m = this.layers.at(index);
    if (!m) userError("invalid-argument", `Sequential: index ${index} is out of range for ${this.layers.length} module(s)`);
    return m;
  }
  forward(x: Tensor): Tensor {
    return this.layers.reduce((h, m) => m.call(h), x);
  }
}
