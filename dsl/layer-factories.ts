// Lowercase factories for the nn modules (k.nn.linear(784, 256), k.nn.relu(), …), so a model
// reads as one expression: k.nn.sequential(k.nn.linear(784, 256), k.nn.relu(), k.nn.linear(256, 10)).

import type { AvgPool2dOptions, MaxPool2dOptions } from "./functional/pool.ts";
import type { IntPair } from "./functional/prims.ts";
import type { GeluOptions, LeakyReluOptions, SoftplusOptions } from "./ops/elementwise.ts";
import {
  Conv2d,
  ConvTranspose2d,
  Embedding,
  LayerNorm,
  Linear,
  type Conv2dLayerOptions,
  type ConvTranspose2dLayerOptions,
  type LayerNormOptions,
} from "./layers.ts";
import {
  AvgPool2d,
  Dropout,
  Flatten,
  GELU,
  Identity,
  LeakyReLU,
  LogSoftmax,
  MaxPool2d,
  ReLU,
  Sequential,
  SiLU,
  Sigmoid,
  Softmax,
  Softplus,
  Tanh,
} from "./layers-stateless.ts";
import { BatchNorm1d, BatchNorm2d, type BatchNormOptions } from "./layers-batchnorm.ts";
import type { Module } from "./module.ts";
import { MultiheadAttention, type MultiheadAttentionOptions } from "./layers-attention.ts";

export const linear = (inFeatures: number, outFeatures: number, opts?: { readonly bias?: boolean }): Linear => new Linear(inFeatures, outFeatures, opts);
export const conv2d = (inChannels: number, outChannels: number, kernelSize: IntPair, opts?: Conv2dLayerOptions): Conv2d =>
  new Conv2d(inChannels, outChannels, kernelSize, opts);
export const convTranspose2d = (inChannels: number, outChannels: number, kernelSize: IntPair, opts?: ConvTranspose2dLayerOptions): ConvTranspose2d =>
  new ConvTranspose2d(inChannels, outChannels, kernelSize, opts);
export const layerNorm = (normalizedShape: number | readonly number[], opts?: LayerNormOptions): LayerNorm => new LayerNorm(normalizedShape, opts);
export const batchNorm1d = (numFeatures: number, opts?: BatchNormOptions): BatchNorm1d => new BatchNorm1d(numFeatures, opts);
export const batchNorm2d = (numFeatures: number, opts?: BatchNormOptions): BatchNorm2d => new BatchNorm2d(numFeatures, opts);
export const embedding = (numEmbeddings: number, embeddingDim: number): Embedding => new Embedding(numEmbeddings, embeddingDim);
export const multiheadAttention = (embedDim: number, numHeads: number, opts?: MultiheadAttentionOptions): MultiheadAttention =>
  new MultiheadAttention(embedDim, numHeads, opts);
export const dropout = (p?: number | { readonly p?: number }): Dropout => new Dropout(p);
export const sequential = (...layers: Module[]): Sequential => new Sequential(...layers);
export const relu = (): ReLU => new ReLU();
export const leakyRelu = (negativeSlope?: number | LeakyReluOptions): LeakyReLU => new LeakyReLU(negativeSlope);
export const gelu = (approximate?: "none" | "tanh" | GeluOptions): GELU => new GELU(approximate);
export const silu = (): SiLU => new SiLU();
export const sigmoid = (): Sigmoid => new Sigmoid();
export const tanh = (): Tanh => new Tanh();
export const softplus = (beta?: number | SoftplusOptions, threshold?: number): Softplus => new Softplus(beta, threshold);
export const softmax = (dim: number): Softmax => new Softmax(dim);
export const logSoftmax = (dim: number): LogSoftmax => new LogSoftmax(dim);
export const identity = (): Identity => new Identity();
export const flatten = (startDim?: number, endDim?: number): Flatten => new Flatten(startDim, endDim);
export const maxPool2d = (kernelSize: IntPair, opts?: MaxPool2dOptions): MaxPool2d => new MaxPool2d(kernelSize, opts);
export const avgPool2d = (kernelSize: IntPair, opts?: AvgPool2dOptions): AvgPool2d => new AvgPool2d(kernelSize, opts);
