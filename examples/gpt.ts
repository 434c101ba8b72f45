// A decoder-only, character-level transformer (GPT) trained on Pride and Prejudice: token and
// position embeddings, pre-LN blocks of causal multi-head self-attention and a GELU MLP, a
// final LayerNorm and a head tied to the token embedding; GPT-2's init (N(0, 0.02), residual
// projections scaled by 1/√(2·layers)); AdamW (no decay for biases and norms) with warmup, a
// cosine schedule and gradient clipping. `kiln train` evaluates
// the validation loss (printed beside the corpus's unigram entropy, the loss of a model that
// ignores context) and ends with samples drawn on the graph with a temperature and top-k.
// `npx kiln train examples/gpt.ts --steps 2000`; docs/training.md has the numbers measured.

import * as k from "kiln";

export const CONTEXT = 64; // T: characters a prediction sees
export const WIDTH = 128;
export const HEADS = 4;
export const LAYERS = 4;
export const BATCH = 16;
export const STEPS = 2000;
export const LR = 2e-3;
export const EVAL_BATCHES = 8;
export const TEMPERATURE = 0.8;
export const TOP_K = 10;
export const SAMPLE_CHARS = 400;

export const corpus = k.data.charCorpus(k.data.prideAndPrejudice(), { valFraction: 0.1 });
const VOCAB = corpus.vocabSize;

class CausalSelfAttention extends k.nn.Module {
  qkv = k.nn.linear(WIDTH, 3 * WIDTH);
  proj = k.nn.linear(WIDTH, WIDTH);
  forward(x: k.Tensor): k.Tensor {
    const [b, t] = [x.shape[0]!, x.shape[1]!];
    const heads = (u: k.Tensor): k.Tensor => u.reshape([b, t, HEADS, WIDTH / HEADS]).transpose(1, 2);
    const [q, key, v] = this.qkv.call(x).chunk(3, -1) as [k.Tensor, k.Tensor, k.Tensor];
    const y = k.nn.functional.scaledDotProductAttention(heads(q), heads(key), heads(v), { isCausal: true });
    return this.proj.call(y.transpose(1, 2).reshape([b, t, WIDTH]));
  }
}

class Block extends k.nn.Module {
  ln1 = k.nn.layerNorm(WIDTH);
  attn = new CausalSelfAttention();
  ln2 = k.nn.layerNorm(WIDTH);
  mlp = k.nn.sequential(k.nn.linear(WIDTH, 4 * WIDTH), k.nn.gelu(), k.nn.linear(4 * WIDTH, WIDTH));
  forward(x: k.Tensor): k.Tensor {
    const h = x.add(this.attn.call(this.ln1.call(x)));
    return h.add(this.mlp.call(this.ln2.call(h)));
  }
}

export class Gpt extends k.nn.Module {
  wte = k.nn.embedding(VOCAB, WIDTH);
  wpe = new k.nn.Parameter("wpe", [CONTEXT, WIDTH], new Float64Array(CONTEXT * WIDTH));
  blocks = Array.from({ length: LAYERS }, () => new Block());
  lnF = k.nn.layerNorm(WIDTH);
  head = k.nn.linear(WIDTH, VOCAB, { bias: false });
  constructor() {
    super();
    this.head.weight = this.wte.weight; // weight tying, as GPT-2
    for (const [name, p] of this.namedParameters()) {
      if (name.endsWith(".bias")) k.nn.init.zeros_(p);
      else if (name.startsWith("ln") || name.includes(".ln"))
        continue; // LayerNorm: 1 and 0
      else k.nn.init.normal_(p, 0, name.endsWith("proj.weight") || name.endsWith("mlp.2.weight") ? 0.02 / Math.sqrt(2 * LAYERS) : 0.02);
    }
  }
  forward(ids: k.Tensor): k.Tensor {
    let x = this.wte.call(ids).add(this.wpe.tensor());
    for (const block of this.blocks) x = block.call(x);
    return this.head.call(this.lnF.call(x));
  }
}

k.manualSeed(0);
export const net = new Gpt();

/** Mean next-character cross-entropy over a [B, T] batch, in nats. */
const nextCharLoss = (logits: k.Tensor, targets: k.Tensor): k.Tensor => k.nn.functional.crossEntropy(logits.reshape([-1, VOCAB]), targets.reshape([-1]));

const windowSpecs = { x: k.i32([BATCH, CONTEXT]), y: k.i32([BATCH, CONTEXT]) };
/** AdamW with weight decay on the matrices only: biases, LayerNorms and the position table form the `noDecay` group. */
const optimizer = k.optim.adamW(
  { lr: LR, betas: [0.9, 0.99], weightDecay: 0.1 },
  {
    groups: [{ name: "noDecay", params: (name) => name.endsWith(".bias") || name.startsWith("ln") || name.includes(".ln") || name === "wpe", weightDecay: 0 }],
  },
);
/** Linear warmup over 100 steps, then a cosine down to LR/10 at the last step. */
export const schedule = k.optim.schedule.cosine({ lr: LR, total: STEPS, warmup: 100, min: LR / 10 });
export const trainStep = k.program(k.trainStep(net, nextCharLoss, optimizer, { clipGradNorm: 1 }), windowSpecs, { name: "trainStep" });
export const evalLoss = k.program(({ x, y }: { x: k.Tensor; y: k.Tensor }) => nextCharLoss(net.call(x), y), windowSpecs, { name: "evalLoss" });

/**
 * The next character after a window of CONTEXT ids, drawn on the graph: the last position's
 * logits over the temperature, all but the TOP_K largest set to -∞, then a categorical draw
 * (Gumbel-max on the run's seed).
 */
export const sampleNext = k.program(
  (window: k.Tensor) => {
    const logits = net
      .call(window)
      .narrow(1, CONTEXT - 1, 1)
      .reshape([1, VOCAB])
      .div(TEMPERATURE);
    const kth = logits.topk(TOP_K).values.narrow(1, TOP_K - 1, 1);
    return k.categorical(logits.maskedFill(logits.lt(kth), Number.NEGATIVE_INFINITY));
  },
  [k.i32([1, CONTEXT])],
  { name: "sampleNext" },
);

const trainWindows = corpus.windows("train", { batchSize: BATCH, blockSize: CONTEXT, seed: 1 });
const valWindows = corpus.windows("val", { batchSize: BATCH, blockSize: CONTEXT, seed: 2 });

/** Mean loss over the same EVAL_BATCHES validation batches every time. */
async function validationLoss(exe: k.Executable): Promise<number> {
  let sum = 0;
  for (let i = 0; i < EVAL_BATCHES; i++) sum += ((await exe.run(valWindows.at(i))) as k.HostOutput).data[0]!;
  return sum / EVAL_BATCHES;
}

/** `count` characters after `prompt` (at least CONTEXT characters of the corpus), one run of sampleNext each, seeds 0, 1, …. */
export async function sample(exe: k.Executable, prompt: string, count: number): Promise<string> {
  const ids = Array.from(corpus.encode(prompt));
  for (let i = 0; i < count; i++) {
    const next = (await exe.run([ids.slice(-CONTEXT)], { seed: i })) as k.HostOutput;
    ids.push(next.data[0]!);
  }
  return corpus.decode(ids.slice(-count));
}

export const training = k.training({
  name: "gpt",
  module: net,
  train: trainStep,
  batch: (step) => trainWindows.at(step),
  hyper: (step) => ({ lr: schedule(step) }),
  steps: STEPS,
  evalEvery: 250,
  programs: { evalLoss, sampleNext },
  evaluate: async ({ programs }) => ({ valLoss: await validationLoss(programs["evalLoss"]!) }),
  finish: async ({ programs }) => {
    const prompt = corpus.decode(corpus.val.subarray(0, CONTEXT));
    const text = await sample(programs["sampleNext"]!, prompt, SAMPLE_CHARS);
    return [
      `unigram entropy of the training text: ${corpus.unigramEntropy().toFixed(3)} nats/char (a model that ignores context)`,
      `validation loss now: ${(await validationLoss(programs["evalLoss"]!)).toFixed(3)} nats/char`,
      `sample (temperature ${TEMPERATURE}, top-${TOP_K}) after the prompt ${JSON.stringify(prompt)}:`,
      text,
    ].join("\n");
  },
});
