// nn layers that own parameters: Linear, Conv2d, ConvTranspose2d, LayerNorm, Embedding.
// Shapes, parameter names and default initialization follow PyTorch, drawn from the seeded
// generator in init.ts; forward is the matching k.nn.functional op.

import { KilnError } from "../compiler/util/errors.ts";
import { captureUserLoc } from "./loc.ts";
import { formatShape } from "../compiler/util/shape.ts";
import { strictOptions } from "./options.ts";
import { conv2d, conv2dKeys, convTranspose2d, convTranspose2dKeys, linear, type Conv2dOptions, type ConvTranspose2dOptions } from "./functional/conv.ts";
import { layerNorm } from "./functional/norm.ts";
import { embedding } from "./functional/sparse.ts";
import { pair, type IntPair } from "./functional/prims.ts";
import { biasUniform_, fanInAndFanOut, kaimingUniform_, normal_, ones_, zeros_ } from "./init.ts";
import { Module, Parameter } from "./module.ts";
import { type Tensor, userError } from "./tensor.ts";

function positive(value: number, name: string, layer: string): number {
  if (Number.isInteger(value) && value >= 1) return value;
  const loc = captureUserLoc();
  throw new KilnError({ code: "invalid-argument", message: `${layer}: ${name} must be a positive integer, got ${value}`, ...(loc ? { loc } : {}) });
}

/**
 * An f32 parameter the layer's init fills: zeros until then, never allocated when the init's
 * draw or a loadState replaces them first (Parameter.zeros).
 */
const emptyParameter = (name: string, shape: readonly number[]): Parameter => Parameter.zeros(name, shape);

/** PyTorch's reset_parameters for Linear and the convolutions: kaiming_uniform(a=√5) weight, U(±1/√fan_in) bias. */
function defaultInit(weight: Parameter, bias: Parameter | undefined): void {
  kaimingUniform_(weight, Math.sqrt(5));
  if (bias) biasUniform_(bias, fanInAndFanOut(weight.shape).fanIn);
}

/** y = x Wᵀ + b with weight [out, in]. */
export class Linear extends Module {
  weight: Parameter;
  readonly bias: Parameter | undefined;
  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    opts: { readonly bias?: boolean } = {},
  ) {
    super();
    strictOptions("k.nn.Linear", opts, { bias: true });
    positive(inFeatures, "inFeatures", "Linear");
    positive(outFeatures, "outFeatures", "Linear");
    this.weight = this.registerParameter("weight", emptyParameter("weight", [outFeatures, inFeatures]))!;
    this.bias = this.registerParameter("bias", opts.bias === false ? undefined : emptyParameter("bias", [outFeatures]));
    defaultInit(this.weight, this.bias);
  }
  forward(x: Tensor): Tensor {
    return linear(x, this.weight.tensor(), this.bias?.tensor());
  }
}

export interface Conv2dLayerOptions extends Conv2dOptions {
  readonly bias?: boolean;
}

/** NCHW convolution with weight [out, in/groups, kH, kW]. */
export class Conv2d extends Module {
  weight: Parameter;
  readonly bias: Parameter | undefined;
  readonly options: Conv2dOptions;
  constructor(inChannels: number, outChannels: number, kernelSize: IntPair, opts: Conv2dLayerOptions = {}) {
    super();
    strictOptions<Conv2dLayerOptions>("k.nn.Conv2d", opts, { ...conv2dKeys, bias: true });
    const groups = opts.groups ?? 1;
    positive(inChannels, "inChannels", "Conv2d");
    positive(outChannels, "outChannels", "Conv2d");
    positive(groups, "groups", "Conv2d");
    if (inChannels % groups !== 0 || outChannels % groups !== 0)
      userError("invalid-argument", `Conv2d: inChannels ${inChannels} and outChannels ${outChannels} must be divisible by groups ${groups}`);
    const [kh, kw] = pair(kernelSize, "kernelSize", "Conv2d", 1);
    const { bias, ...options } = opts;
    this.options = options;
    this.weight = this.registerParameter("weight", emptyParameter("weight", [outChannels, inChannels / groups, kh, kw]))!;
    this.bias = this.registerParameter("bias", bias === false ? undefined : emptyParameter("bias", [outChannels]));
    defaultInit(this.weight, this.bias);
  }
  forward(x: Tensor): Tensor {
    return conv2d(x, this.weight.tensor(), this.bias?.tensor(), this.options);
  }
}

export interface ConvTranspose2dLayerOptions extends ConvTranspose2dOptions {
  readonly bias?: boolean;
}

/** Transposed convolution with weight [in, out/groups, kH, kW] (fan_in = out/groups·kH·kW, as PyTorch computes it). */
export class ConvTranspose2d extends Module {
  weight: Parameter;
  readonly bias: Parameter | undefined;
  readonly options: ConvTranspose2dOptions;
  constructor(inChannels: number, outChannels: number, kernelSize: IntPair, opts: ConvTranspose2dLayerOptions = {}) {
    super();
    strictOptions<ConvTranspose2dLayerOptions>("k.nn.ConvTranspose2d", opts, { ...convTranspose2dKeys, bias: true });
    const groups = opts.groups ?? 1;
    positive(inChannels, "inChannels", "ConvTranspose2d");
    positive(outChannels, "outChannels", "ConvTranspose2d");
    positive(groups, "groups", "ConvTranspose2d");
    if (inChannels % groups !== 0 || outChannels % groups !== 0)
      userError("invalid-argument", `ConvTranspose2d: inChannels ${inChannels} and outChannels ${outChannels} must be divisible by groups ${groups}`);
    const [kh, kw] = pair(kernelSize, "kernelSize", "ConvTranspose2d", 1);
    const { bias, ...options } = opts;
    this.options = options;
    this.weight = this.registerParameter("weight", emptyParameter("weight", [inChannels, outChannels / groups, kh, kw]))!;
    this.bias = this.registerParameter("bias", bias === false ? undefined : emptyParameter("bias", [outChannels]));
    defaultInit(this.weight, this.bias);
  }
  forward(x: Tensor): Tensor {
    return convTranspose2d(x, this.weight.tensor(), this.bias?.tensor(), this.options);
  }
}

export interface LayerNormOptions {
  readonly eps?: number;
  /** Learnable weight (ones) and bias (zeros); default true. */
  readonly elementwiseAffine?: boolean;
  /** With elementwiseAffine, whether to learn a bias too; default true. */
  readonly bias?: boolean;
}

/** Normalizes over the trailing `normalizedShape` dims; weight 1, bias 0. */
export class LayerNorm extends Module {
  readonly normalizedShape: readonly number[];
  readonly eps: number;
  readonly weight: Parameter | undefined;
  readonly bias: Parameter | undefined;
  constructor(normalizedShape: number | readonly number[], opts: LayerNormOptions = {}) {
    super();
    strictOptions("k.nn.LayerNorm", opts, { eps: true, elementwiseAffine: true, bias: true });
    const shape = typeof normalizedShape === "number" ? [normalizedShape] : [...normalizedShape];
    if (shape.length === 0 || !shape.every((d) => Number.isInteger(d) && d >= 1))
      userError("invalid-argument", `LayerNorm: normalizedShape must be positive integers, got ${formatShape(shape)}`);
    this.normalizedShape = shape;
    this.eps = opts.eps ?? 1e-5;
    const affine = opts.elementwiseAffine ?? true;
    this.weight = this.registerParameter("weight", affine ? ones_(emptyParameter("weight", shape)) : undefined);
    this.bias = this.registerParameter("bias", affine && opts.bias !== false ? zeros_(emptyParameter("bias", shape)) : undefined);
  }
  forward(x: Tensor): Tensor {
    return layerNorm(x, this.normalizedShape, this.weight?.tensor(), this.bias?.tensor(), this.eps);
  }
}

/** A [numEmbeddings, embeddingDim] table initialized N(0, 1); forward takes i32 indices. */
export class Embedding extends Module {
  weight: Parameter;
  constructor(
    readonly numEmbeddings: number,
    readonly embeddingDim: number,
  ) {
    super();
    positive(numEmbeddings, "numEmbeddings", "Embedding");
    positive(embeddingDim, "embeddingDim", "Embedding");
    this.weight = this.registerParameter("weight", normal_(emptyParameter("weight", [numEmbeddings, embeddingDim])))!;
  }
  forward(indices: Tensor): Tensor {
    return embedding(indices, this.weight.tensor());
  }
}
