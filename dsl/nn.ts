// k.nn: neural-network building blocks. `functional` holds the stateless ops; the losses
// are also here under their usual names (k.nn.crossEntropy). Module classes come later.

export * as functional from "./functional.ts";
export { crossEntropy, nllLoss, mseLoss, l1Loss, binaryCrossEntropyWithLogits } from "./functional.ts";

// Modules (PyTorch's torch.nn classes) and lowercase factories: k.nn.linear(784, 256).
export { Module, Parameter } from "./module.ts";
export { Linear, Conv2d, ConvTranspose2d, LayerNorm, Embedding } from "./layers.ts";
export type { Conv2dLayerOptions, ConvTranspose2dLayerOptions, LayerNormOptions } from "./layers.ts";
export { BatchNorm1d, BatchNorm2d } from "./layers-batchnorm.ts";
export type { BatchNormOptions } from "./layers-batchnorm.ts";
export { MultiheadAttention } from "./layers-attention.ts";
export type { MultiheadAttentionOptions, AttentionCallOptions } from "./layers-attention.ts";
export {
  ReLU,
  LeakyReLU,
  GELU,
  SiLU,
  Sigmoid,
  Tanh,
  Softplus,
  Softmax,
  LogSoftmax,
  Identity,
  Flatten,
  Dropout,
  MaxPool2d,
  AvgPool2d,
  Sequential,
} from "./layers-stateless.ts";
export {
  linear,
  conv2d,
  convTranspose2d,
  layerNorm,
  batchNorm1d,
  batchNorm2d,
  embedding,
  multiheadAttention,
  dropout,
  sequential,
  relu,
  leakyRelu,
  gelu,
  silu,
  sigmoid,
  tanh,
  softplus,
  softmax,
  logSoftmax,
  identity,
  flatten,
  maxPool2d,
  avgPool2d,
} from "./layer-factories.ts";
export * as init from "./init.ts";
