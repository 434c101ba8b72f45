// Sampling on the graph's seed (the `rng` primitive, see random.ts): torch.multinomial and
// categorical sampling from logits. With replacement: the inverse CDF, u·total against the
// running sum of the weights. Without replacement: the Gumbel-top-k trick (log w + Gumbel
// noise, the k largest), which draws the same distribution as picking one at a time and
// renormalizing. One seed gives the same samples on every target, up to f32 rounding at a
// CDF boundary.

import { formatShape } from "../../compiler/util/shape.ts";
import { strictOptions } from "../options.ts";
import { uniform } from "../random.ts";
import { type Tensor, dimIndex, userError } from "../tensor.ts";
import * as E from "./elementwise.ts";
import * as M from "./movement.ts";
import * as R from "./reduce.ts";
import { topk } from "./select.ts";

export interface MultinomialOptions {
  /** Draw with replacement (default false, as PyTorch). */
  readonly replacement?: boolean;
}

/**
 * torch.multinomial(input, numSamples, replacement=False): `input` [C] or [N, C] holds
 * non-negative weights (need not sum to 1); returns i32 category indices [numSamples] or
 * [N, numSamples]. Without replacement numSamples must be at most C (a row with fewer
 * non-zero weights gives zero-weight categories for the rest, where PyTorch raises).
 */
export function multinomial(input: Tensor, numSamples: number, opts?: MultinomialOptions): Tensor {
  const { replacement = false } = strictOptions<MultinomialOptions>("multinomial", opts, { replacement: true });
  if (input.ndim !== 1 && input.ndim !== 2)
    return userError("shape-mismatch", `shape mismatch in multinomial: input must be [C] or [N, C], got ${formatShape(input.shape)}`);
  const classes = input.shape[input.ndim - 1]!;
  if (!Number.isInteger(numSamples) || numSamples < 1)
    return userError("invalid-argument", `multinomial: numSamples must be a positive integer, got ${numSamples}`);
  if (classes === 0) return userError("invalid-argument", "multinomial: input has no categories");
  if (typeof replacement !== "boolean") return userError("invalid-argument", `multinomial: replacement must be a boolean, got ${JSON.stringify(replacement)}`);
  if (!replacement && numSamples > classes)
    return userError("invalid-argument", `multinomial: cannot draw ${numSamples} samples from ${classes} categories without replacement`);
  const rows = input.ndim === 1 ? M.unsqueeze(E.toFloat(input), 0) : E.toFloat(input);
  const n = rows.shape[0]!;
  const out = replacement ? inverseCdf(rows, numSamples) : topk(E.add(E.log(rows), gumbel(rows, [n, classes])), numSamples, { dim: 1 }).indices;
  return input.ndim === 1 ? M.reshape(out, [numSamples]) : out;
}

/** rows [N, C] of weights -> [N, S] samples: the number of CDF entries (all but the last) at or below u·total. */
function inverseCdf(rows: Tensor, samples: number): Tensor {
  const [n, classes] = [rows.shape[0]!, rows.shape[1]!];
  const cdf = R.cumsum(rows, 1);
  const total = M.narrow(cdf, 1, classes - 1, 1); // [N, 1]
  const threshold = E.mul(uniform(rows.trace, [n, samples]), total); // [N, S]
  // Excluding the last entry caps the index at C - 1 and skips trailing zero weights.
  const inner = M.narrow(cdf, 1, 0, classes - 1); // [N, C-1]
  if (classes === 1) return E.mul(E.cast(threshold, "i32"), 0);
  const below = E.le(M.unsqueeze(inner, 1), M.unsqueeze(threshold, 2)); // [N, S, C-1]
  return R.sum(below, 2); // bool sums are i32 counts
}

/** Gumbel(0, 1) noise -log(-log u) of `shape`; u = 0 gives -inf (never picked). */
function gumbel(like: Tensor, shape: readonly number[]): Tensor {
  return E.neg(E.log(E.neg(E.log(uniform(like.trace, shape)))));
}

export interface CategoricalOptions {
  /** The dim holding the categories (default -1). */
  readonly dim?: number;
}

/**
 * jax.random.categorical: one sample per row of unnormalized log-probabilities, the argmax of
 * logits + Gumbel noise. The category dim is dropped; the result is i32.
 */
export function categorical(logits: Tensor, opts?: CategoricalOptions): Tensor {
  const { dim = -1 } = strictOptions<CategoricalOptions>("categorical", opts, { dim: true });
  const axis = dimIndex(logits, dim, "categorical");
  if (logits.shape[axis] === 0) return userError("invalid-argument", `categorical: dim ${dim} of ${logits.toString()} has no categories`);
  const x = E.toFloat(logits);
  return R.argmax(E.add(x, gumbel(x, x.shape)), axis);
}
