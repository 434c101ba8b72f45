// k.nn: neural-network building blocks. `functional` holds the stateless ops; the losses
// are also here under their usual names (k.nn.crossEntropy). Module classes come later.

export * as functional from "./functional.ts";
export { crossEntropy, nllLoss, mseLoss, l1Loss, binaryCrossEntropyWithLogits } from "./functional.ts";
