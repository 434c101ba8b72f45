// A GPT (decoder-only, pre-LN transformer) built from k.nn modules, for the transformer step
// case and the compile-time measure: token and position embeddings, `layers` blocks of causal
// self-attention (one qkv projection, scaledDotProductAttention with isCausal) and a 4×d GELU
// MLP, each behind a LayerNorm with a residual; a final LayerNorm and an untied head. The loss
// is the mean cross-entropy of next-token class indices.

import * as k from "kiln";

export interface GptConfig {
  readonly vocab: number;
  readonly context: number;
  readonly dModel: number;
  readonly heads: number;
  readonly layers: number;
  readonly batch: number;
}

/** GPT-2 small's shape (124M parameters), one sequence batch of 1 at context 256. */
export const GPT2_SMALL: GptConfig = { vocab: 50257, context: 256, dModel: 768, heads: 12, layers: 12, batch: 1 };

class CausalSelfAttention extends k.nn.Module {
  readonly qkv: k.nn.Linear;
  readonly proj: k.nn.Linear;
  constructor(readonly cfg: GptConfig) {
    super();
    this.qkv = k.nn.linear(cfg.dModel, 3 * cfg.dModel);
    this.proj = k.nn.linear(cfg.dModel, cfg.dModel);
  }
  forward(x: k.Tensor): k.Tensor {
    const [b, t, d] = x.shape as [number, number, number];
    const h = this.cfg.heads;
    const heads = (y: k.Tensor) => y.reshape([b, t, h, d / h]).transpose(1, 2);
    const qkv = this.qkv.call(x);
    const [q, kk, v] = qkv.chunk(3, -1).map(heads) as [k.Tensor, k.Tensor, k.Tensor];
    const y = k.nn.functional.scaledDotProductAttention(q, kk, v, { isCausal: true });
    return this.proj.call(y.transpose(1, 2).reshape([b, t, d]));
  }
}

export class Block extends k.nn.Module {
  readonly ln1: k.nn.LayerNorm;
  readonly attn: CausalSelfAttention;
  readonly ln2: k.nn.LayerNorm;
  readonly mlp: k.nn.Sequential;
  constructor(cfg: GptConfig) {
    super();
    this.ln1 = k.nn.layerNorm(cfg.dModel);
    this.attn = new CausalSelfAttention(cfg);
    this.ln2 = k.nn.layerNorm(cfg.dModel);
    this.mlp = k.nn.sequential(k.nn.linear(cfg.dModel, 4 * cfg.dModel), k.nn.gelu(), k.nn.linear(4 * cfg.dModel, cfg.dModel));
  }
  forward(x: k.Tensor): k.Tensor {
    const a = x.add(this.attn.call(this.ln1.call(x)));
    return a.add(this.mlp.call(this.ln2.call(a)));
  }
}

export class Gpt extends k.nn.Module {
  readonly tok: k.nn.Embedding;
  readonly pos: k.nn.Embedding;
  readonly blocks: Block[];
  readonly lnF: k.nn.LayerNorm;
  readonly head: k.nn.Linear;
  constructor(readonly cfg: GptConfig) {
    super();
    this.tok = k.nn.embedding(cfg.vocab, cfg.dModel);
    this.pos = k.nn.embedding(cfg.context, cfg.dModel);
    this.blocks = Array.from({ length: cfg.layers }, () => new Block(cfg));
    this.lnF = k.nn.layerNorm(cfg.dModel);
    this.head = k.nn.linear(cfg.dModel, cfg.vocab, { bias: false });
  }
  /** tokens: i32 [batch, context] → logits [batch·context, vocab]. */
  forward(tokens: k.Tensor): k.Tensor {
    const { batch, context, vocab } = this.cfg;
    let x = this.tok.call(tokens).add(this.pos.call(k.arange(context)));
    for (const block of this.blocks) x = block.call(x);
    return this.head.call(this.lnF.call(x)).reshape([batch * context, vocab]);
  }
}

/** One AdamW training step of a GPT of shape `cfg` on tokens x [batch, context] and next tokens y [batch·context]. */
export function gptTrainStep(cfg: GptConfig, lr = 3e-4): { readonly fn: ReturnType<typeof k.trainStep>; readonly specs: k.Specs } {
  const model = new Gpt(cfg);
  const fn = k.trainStep(model, (logits, y) => k.nn.functional.crossEntropy(logits, y), k.optim.adamW({ lr }));
  return { fn, specs: { x: k.i32([cfg.batch, cfg.context]), y: k.i32([cfg.batch * cfg.context]) } };
}
