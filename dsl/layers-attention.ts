// nn.MultiheadAttention with PyTorch's parameters, names and semantics: one packed input
// projection `in_proj_weight` [3E, E] + `in_proj_bias` (or q/k/v_proj_weight when kdim or vdim
// differ from E), the output projection `out_proj` (a Linear), sequence-first inputs unless
// batchFirst, bool masks where true means "may NOT attend" (PyTorch's MHA convention, the
// opposite of scaledDotProductAttention's), dropout on the attention weights in training only.
// A PyTorch state_dict loads as it is (test/fixtures/torch/make-attention.py checks the outputs).

import { isBool } from "../compiler/ir/dtype.ts";
import { formatShape } from "../compiler/util/shape.ts";
import { linear } from "./functional/conv.ts";
import { iota } from "./functional/prims.ts";
import { dropout } from "./functional/sparse.ts";
import { xavierUniform_, zeros_ } from "./init.ts";
import { Linear } from "./layers.ts";
import { Module, Parameter } from "./module.ts";
import { strictOptions } from "./options.ts";
import { type Tensor, userError } from "./tensor.ts";

export interface MultiheadAttentionOptions {
  /** Dropout on the attention weights, in training mode only (default 0). */
  readonly dropout?: number;
  /** Biases in the input and output projections (default true). */
  readonly bias?: boolean;
  /** Inputs and output are [batch, seq, feature] (default false: [seq, batch, feature], as PyTorch). */
  readonly batchFirst?: boolean;
  /** Feature size of the keys (default embedDim); with vdim ≠ embedDim the projections are separate. */
  readonly kdim?: number;
  /** Feature size of the values (default embedDim). */
  readonly vdim?: number;
}

export interface AttentionCallOptions {
  /**
   * [L, S] or [batch·numHeads, L, S]: bool, true where a query may NOT attend to a key
   * (PyTorch's MHA convention); f32, added to the scores.
   */
  readonly attnMask?: Tensor;
  /** [batch, S] (or [S] unbatched): bool, true for keys to ignore (padding); f32, added to the scores. */
  readonly keyPaddingMask?: Tensor;
  /** Query i attends to keys j ≤ i (instead of attnMask). */
  readonly isCausal?: boolean;
  /** Average the returned weights over the heads (default true), else [batch, numHeads, L, S]. */
  readonly averageAttnWeights?: boolean;
}

const emptyParameter = (name: string, shape: readonly number[]): Parameter => Parameter.zeros(name, shape);

function positive(value: unknown, name: string): number {
  if (!Number.isInteger(value) || (value as number) < 1) userError("invalid-argument", `MultiheadAttention: ${name} must be a positive integer, got ${value}`);
  return value as number;
}

/** torch.nn.MultiheadAttention: multi-head scaled dot-product attention between projected query, key and value. */
export class MultiheadAttention extends Module {
  readonly headDim: number;
  readonly dropout: number;
  readonly batchFirst: boolean;
  readonly kdim: number;
  readonly vdim: number;
  /** [3E, E]: the query, key and value projections stacked (absent when kdim or vdim ≠ E). */
  readonly inProjWeight: Parameter | undefined;
  readonly qProjWeight: Parameter | undefined;
  readonly kProjWeight: Parameter | undefined;
  readonly vProjWeight: Parameter | undefined;
  readonly inProjBias: Parameter | undefined;
  readonly outProj: Linear;

  constructor(
    readonly embedDim: number,
    readonly numHeads: number,
    opts: MultiheadAttentionOptions = {},
  ) {
    super();
    const {
      dropout: p = 0,
      bias = true,
      batchFirst = false,
      kdim,
      vdim,
    } = strictOptions("k.nn.MultiheadAttention", opts, {
      dropout: true,
      bias: true,
      batchFirst: true,
      kdim: true,
      vdim: true,
    });
    positive(embedDim, "embedDim");
    positive(numHeads, "numHeads");
    if (embedDim % numHeads !== 0) userError("invalid-argument", `MultiheadAttention: embedDim ${embedDim} must be divisible by numHeads ${numHeads}`);
    if (!(typeof p === "number" && p >= 0 && p <= 1)) userError("invalid-argument", `MultiheadAttention: dropout must be in [0, 1], got ${JSON.stringify(p)}`);
    this.headDim = embedDim / numHeads;
    this.dropout = p;
    this.batchFirst = batchFirst;
    this.kdim = kdim === undefined ? embedDim : positive(kdim, "kdim");
    this.vdim = vdim === undefined ? embedDim : positive(vdim, "vdim");
    // PyTorch's _reset_parameters: xavier_uniform_ projections, zero biases; out_proj's weight keeps Linear's init.
    if (this.kdim === embedDim && this.vdim === embedDim) {
      this.inProjWeight = this.registerParameter("in_proj_weight", xavierUniform_(emptyParameter("in_proj_weight", [3 * embedDim, embedDim])));
    } else {
      this.qProjWeight = this.registerParameter("q_proj_weight", xavierUniform_(emptyParameter("q_proj_weight", [embedDim, embedDim])));
      this.kProjWeight = this.registerParameter("k_proj_weight", xavierUniform_(emptyParameter("k_proj_weight", [embedDim, this.kdim])));
      this.vProjWeight = this.registerParameter("v_proj_weight", xavierUniform_(emptyParameter("v_proj_weight", [embedDim, this.vdim])));
    }
    this.inProjBias = this.registerParameter("in_proj_bias", bias ? zeros_(emptyParameter("in_proj_bias", [3 * embedDim])) : undefined);
    this.outProj = this.registerModule("out_proj", new Linear(embedDim, embedDim, { bias }));
    if (this.outProj.bias) zeros_(this.outProj.bias);
  }

  /** Self-attention when key and value are left out (key defaults to query, value to key); the attention output only. */
  forward(query: Tensor, key?: Tensor, value?: Tensor, attnMask?: Tensor, keyPaddingMask?: Tensor): Tensor {
    return this.attend(query, key ?? query, value ?? key ?? query, { ...(attnMask ? { attnMask } : {}), ...(keyPaddingMask ? { keyPaddingMask } : {}) }).output;
  }

  /**
   * PyTorch's `mha(query, key, value, key_padding_mask, need_weights=True, attn_mask, average_attn_weights, is_causal)`:
   * the output ([L, N, E], or [N, L, E] with batchFirst; [L, E] unbatched) and the attention
   * weights ([N, L, S] averaged over heads, or [N, numHeads, L, S]). Unused weights cost nothing.
   */
  attention(query: Tensor, key: Tensor = query, value: Tensor = key, opts: AttentionCallOptions = {}): { output: Tensor; weights: Tensor } {
    strictOptions("MultiheadAttention.attention", opts, { attnMask: true, keyPaddingMask: true, isCausal: true, averageAttnWeights: true });
    return this.inScope(() => this.attend(query, key, value, opts));
  }

  private attend(query: Tensor, key: Tensor, value: Tensor, opts: AttentionCallOptions): { output: Tensor; weights: Tensor } {
    const where = "MultiheadAttention";
    const E = this.embedDim;
    const H = this.numHeads;
    const D = this.headDim;
    const unbatched = query.ndim === 2;
    const rank = unbatched ? 2 : 3;
    for (const [role, t, features] of [
      ["query", query, E],
      ["key", key, this.kdim],
      ["value", value, this.vdim],
    ] as const)
      if (t.ndim !== rank || t.shape[rank - 1] !== features)
        return userError(
          "shape-mismatch",
          `shape mismatch in ${where}: ${role} must be ${unbatched ? "[seq" : this.batchFirst ? "[batch, seq" : "[seq, batch"}, ${features}], got ${formatShape(t.shape)}`,
        );
    // To [N, seq, features].
    const batched = (t: Tensor): Tensor => (unbatched ? t.unsqueeze(0) : this.batchFirst ? t : t.transpose(0, 1));
    const [q0, k0, v0] = [batched(query), batched(key), batched(value)];
    const N = q0.shape[0]!;
    const L = q0.shape[1]!;
    const S = k0.shape[1]!;
    if (k0.shape[0] !== N || v0.shape[0] !== N || v0.shape[1] !== S)
      return userError(
        "shape-mismatch",
        `shape mismatch in ${where}: query ${formatShape(query.shape)}, key ${formatShape(key.shape)} and value ${formatShape(value.shape)} disagree in batch or key length`,
      );
    const weightOf = (i: number, separate: Parameter | undefined): Tensor => (separate ? separate.tensor() : this.inProjWeight!.tensor().narrow(0, i * E, E));
    const biasOf = (i: number): Tensor | undefined => this.inProjBias?.tensor().narrow(0, i * E, E);
    // [N, seq, E] → [N, H, seq, D].
    const heads = (t: Tensor, seq: number): Tensor => t.reshape([N, seq, H, D]).permute([0, 2, 1, 3]);
    const q = heads(linear(q0, weightOf(0, this.qProjWeight), biasOf(0)), L);
    const k = heads(linear(k0, weightOf(1, this.kProjWeight), biasOf(1)), S);
    const v = heads(linear(v0, weightOf(2, this.vProjWeight), biasOf(2)), S);
    let scores = q.matmul(k.transpose(-2, -1)).mul(1 / Math.sqrt(D));
    if (opts.isCausal && opts.attnMask) return userError("invalid-argument", `${where}: give attnMask or isCausal, not both`);
    if (opts.isCausal)
      scores = iota(scores, [L, S], 0)
        .ge(iota(scores, [L, S], 1))
        .where(scores, -Infinity);
    if (opts.attnMask) {
      const m = opts.attnMask;
      const ok = (m.ndim === 2 && m.shape[0] === L && m.shape[1] === S) || (m.ndim === 3 && m.shape[0] === N * H && m.shape[1] === L && m.shape[2] === S);
      if (!ok)
        return userError("shape-mismatch", `shape mismatch in ${where}: attnMask must be [${L}, ${S}] or [${N * H}, ${L}, ${S}], got ${formatShape(m.shape)}`);
      scores = masked(scores, m.ndim === 3 ? m.reshape([N, H, L, S]) : m);
    }
    if (opts.keyPaddingMask) {
      const m = opts.keyPaddingMask;
      const want = unbatched ? [S] : [N, S];
      if (m.ndim !== want.length || m.shape.some((d, i) => d !== want[i]))
        return userError("shape-mismatch", `shape mismatch in ${where}: keyPaddingMask must be ${formatShape(want)}, got ${formatShape(m.shape)}`);
      scores = masked(scores, m.reshape([N, 1, 1, S]));
    }
    const probs = scores.softmax(-1);
    const attended = this.dropout > 0 ? dropout(probs, this.dropout, this.training) : probs;
    const merged = attended.matmul(v).permute([0, 2, 1, 3]).reshape([N, L, E]);
    const out = this.outProj.call(merged);
    const output = unbatched ? out.squeeze(0) : this.batchFirst ? out : out.transpose(0, 1);
    const perHead = opts.averageAttnWeights === false;
    // PyTorch returns the weights after dropout (the ones that multiplied v).
    const weights = perHead ? attended : attended.mean(1);
    return { output, weights: unbatched ? weights.squeeze(0) : weights };
  }
}

/** PyTorch's MHA mask: bool true → −inf (may not attend), float → added. */
function masked(scores: Tensor, mask: Tensor): Tensor {
  return isBool(mask.dtype) ? mask.where(-Infinity, scores) : scores.add(mask);
}
