// nn.BatchNorm1d / nn.BatchNorm2d with PyTorch's parameters, buffers and state-dict names:
// `weight`, `bias` (affine), `running_mean`, `running_var`, `num_batches_tracked`. In
// training mode a forward normalizes with the batch's mean and biased variance and, with
// track_running_stats, gives the buffers their new values as state updates of the traced
// program (outputs aliasing their inputs, as an optimizer's state): running ← (1 − m)·running
// + m·batch, with the batch's *unbiased* variance in running_var, m = momentum (0.1), or
// m = 1 / num_batches_tracked (a cumulative average) when momentum is null. In eval mode (or
// without tracked statistics) nothing is updated. num_batches_tracked is i32 here (PyTorch
// stores i64; a PyTorch checkpoint's I64 loads with every value range-checked).

import { formatShape } from "../compiler/util/shape.ts";
import { batchNorm } from "./functional/norm.ts";
import * as M from "./ops/movement.ts";
import { runCount } from "./ops/reduce.ts";
import { Module, Parameter } from "./module.ts";
import { strictOptions } from "./options.ts";
import { type Tensor, userError } from "./tensor.ts";
import { requireTrace } from "./trace.ts";

export interface BatchNormOptions {
  /** Added to the variance before its square root (default 1e-5). */
  readonly eps?: number;
  /** Weight of the new batch in the running statistics (default 0.1); null: a cumulative average. */
  readonly momentum?: number | null;
  /** Learnable per-channel weight (ones) and bias (zeros); default true. */
  readonly affine?: boolean;
  /** Keep running statistics and use them in eval mode (default true); false: batch statistics always. */
  readonly trackRunningStats?: boolean;
}

const batchNormKeys = { eps: true, momentum: true, affine: true, trackRunningStats: true } as const;

const channelParameter = (name: string, channels: number, value: number, requiresGrad = true): Parameter =>
  new Parameter(name, [channels], new Float64Array(channels).fill(value), "f32", requiresGrad);

/** Batch normalization over every dim but the channels (dim 1), for inputs of the given ranks. */
abstract class BatchNorm extends Module {
  readonly eps: number;
  readonly momentum: number | null;
  readonly weight: Parameter | undefined;
  readonly bias: Parameter | undefined;
  readonly runningMean: Parameter | undefined;
  readonly runningVar: Parameter | undefined;
  readonly numBatchesTracked: Parameter | undefined;

  constructor(
    readonly numFeatures: number,
    opts: BatchNormOptions,
    private readonly layer: string,
    private readonly ranks: readonly number[],
  ) {
    super();
    strictOptions(`k.nn.${layer}`, opts, batchNormKeys);
    if (!Number.isInteger(numFeatures) || numFeatures < 1)
      userError("invalid-argument", `${layer}: numFeatures must be a positive integer, got ${numFeatures}`);
    this.eps = opts.eps ?? 1e-5;
    if (!(typeof this.eps === "number" && this.eps >= 0)) userError("invalid-argument", `${layer}: eps must be a non-negative number`);
    this.momentum = opts.momentum === undefined ? 0.1 : opts.momentum;
    if (this.momentum !== null && !(typeof this.momentum === "number" && this.momentum >= 0 && this.momentum <= 1))
      userError("invalid-argument", `${layer}: momentum must be in [0, 1] or null, got ${JSON.stringify(opts.momentum)}`);
    const affine = opts.affine ?? true;
    this.weight = this.registerParameter("weight", affine ? channelParameter("weight", numFeatures, 1) : undefined);
    this.bias = this.registerParameter("bias", affine ? channelParameter("bias", numFeatures, 0) : undefined);
    if (opts.trackRunningStats ?? true) {
      this.runningMean = this.registerBuffer("running_mean", channelParameter("running_mean", numFeatures, 0, false));
      this.runningVar = this.registerBuffer("running_var", channelParameter("running_var", numFeatures, 1, false));
      this.numBatchesTracked = this.registerBuffer("num_batches_tracked", new Parameter("num_batches_tracked", [], [0], "i32", false));
    }
  }

  forward(x: Tensor): Tensor {
    if (!this.ranks.includes(x.ndim) || x.shape[1] !== this.numFeatures) {
      const want = this.ranks.map((r) => (r === 2 ? "[N, C]" : r === 3 ? "[N, C, L]" : "[N, C, H, W]")).join(" or ");
      return userError(
        "shape-mismatch",
        `shape mismatch in ${this.layer}(${this.numFeatures}): input ${formatShape(x.shape)} must be ${want} with C = ${this.numFeatures}`,
      );
    }
    const weight = this.weight?.tensor();
    const bias = this.bias?.tensor();
    const tracked = this.runningMean !== undefined;
    if (!this.training && tracked)
      return batchNorm(x, this.runningMean!.tensor(), this.runningVar!.tensor(), { weight: weight ?? null, bias: bias ?? null, eps: this.eps });
    if (!tracked) return batchNorm(x, null, null, { weight: weight ?? null, bias: bias ?? null, training: true, eps: this.eps });
    return this.trainingForward(x, weight, bias);
  }

  /** Batch statistics, with the running statistics' updates recorded as state updates of the trace. */
  private trainingForward(x: Tensor, weight: Tensor | undefined, bias: Tensor | undefined): Tensor {
    const axes = x.shape.map((_, i) => i).filter((i) => i !== 1);
    // Values per channel at run time: a tensor when the batch is symbolic (the actual batch, not its maximum).
    const count = runCount(x, axes, this.layer);
    if (typeof count === "number" && count < 2)
      return userError("invalid-argument", `${this.layer}: expected more than 1 value per channel when training, got input ${formatShape(x.shape)}`);
    const perChannel = (v: Tensor): Tensor =>
      M.reshape(
        v,
        x.shape.map((d, i) => (i === 1 ? d : 1)),
      );
    const mean = x.mean(axes, true);
    const centered = x.sub(mean);
    const variance = centered.square().mean(axes, true);
    let y = centered.mul(variance.add(this.eps).rsqrt());
    if (weight) y = y.mul(perChannel(weight));
    if (bias) y = y.add(perChannel(bias));

    const trace = requireTrace(this.layer);
    const channels = [this.numFeatures];
    const runningMean = this.runningMean!.tensor();
    const runningVar = this.runningVar!.tensor();
    const tracked = this.numBatchesTracked!.tensor();
    const nextTracked = tracked.add(1);
    // PyTorch's blend, (1 − m)·running + m·batch; m = 1 / num_batches_tracked for a cumulative average.
    const factor: Tensor | number = this.momentum ?? nextTracked.float().reciprocal();
    const keep: Tensor | number = typeof factor === "number" ? 1 - factor : factor.neg().add(1);
    const blend = (running: Tensor, batch: Tensor): Tensor => running.mul(keep).add(batch.mul(factor));
    trace.updateState(this.runningMean!.path, blend(runningMean, M.reshape(mean, channels)));
    const unbiased = typeof count === "number" ? count / (count - 1) : count.div(count.sub(1));
    trace.updateState(this.runningVar!.path, blend(runningVar, M.reshape(variance, channels).mul(unbiased)));
    trace.updateState(this.numBatchesTracked!.path, nextTracked);
    return y;
  }
}

/** PyTorch's BatchNorm1d: inputs [N, C] or [N, C, L]. */
export class BatchNorm1d extends BatchNorm {
  constructor(numFeatures: number, opts: BatchNormOptions = {}) {
    super(numFeatures, opts, "BatchNorm1d", [2, 3]);
  }
}

/** PyTorch's BatchNorm2d: inputs [N, C, H, W]. */
export class BatchNorm2d extends BatchNorm {
  constructor(numFeatures: number, opts: BatchNormOptions = {}) {
    super(numFeatures, opts, "BatchNorm2d", [4]);
  }
}
