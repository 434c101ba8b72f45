// k.nn.functional: PyTorch's composite NN ops, each written once in terms of the IR's
// primitives (see functional/*.ts), so autodiff and fusion only ever see primitives.

export { linear, conv2d, convTranspose2d } from "./functional/conv.ts";
export type { Conv2dOptions, ConvTranspose2dOptions } from "./functional/conv.ts";
export { maxPool2d, avgPool2d } from "./functional/pool.ts";
export type { MaxPool2dOptions, AvgPool2dOptions } from "./functional/pool.ts";
export { softmax, logSoftmax, layerNorm, groupNorm, batchNorm } from "./functional/norm.ts";
export type { BatchNormOptions } from "./functional/norm.ts";
export { crossEntropy, nllLoss, mseLoss, l1Loss, binaryCrossEntropyWithLogits } from "./functional/loss.ts";
export type { Reduction, CrossEntropyOptions, NllLossOptions, BceWithLogitsOptions } from "./functional/loss.ts";
export { embedding, dropout } from "./functional/sparse.ts";
export { pad } from "./functional/pad.ts";
export type { PadMode, PadOptions } from "./functional/pad.ts";
export type { IntPair } from "./functional/prims.ts";
export { scaledDotProductAttention, oneHot } from "./functional/attention.ts";
export type { AttentionOptions } from "./functional/attention.ts";
// Activations, as torch.nn.functional spells them: the same functions as the Tensor methods.
export { relu, leakyRelu, gelu, silu, sigmoid, tanh, softplus } from "./ops/elementwise.ts";
