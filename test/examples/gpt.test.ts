// examples/gpt.ts: the setup `kiln train` runs; a few AdamW steps on wasm start at the loss of
// a uniform guess (ln 75: GPT-2's small init) and fall, and the graph sampler continues a prompt
// with characters of the vocabulary; under KILN_FULL=1 the whole run through `kiln train`, whose
// validation loss must end well below the corpus's unigram entropy (issue 12 item 6).

import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, test } from "vitest";
import * as k from "kiln";
import { bufferIO } from "../../cli/io.ts";
import { main } from "../../cli/main.ts";
import { CONTEXT, corpus, net, sample, sampleNext, STEPS, trainStep, training } from "../../examples/gpt.ts";
import { FULL } from "../util/full.ts";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

describe("examples/gpt.ts", () => {
  test("the k.training export names its module, its steps and its programs", () => {
    expect(k.isTraining(training)).toBe(true);
    expect(training.name).toBe("gpt");
    expect(training.module).toBe(net);
    expect(training.steps).toBe(STEPS);
    expect(Object.keys(training.programs ?? {}).sort()).toEqual(["evalLoss", "sampleNext"]);
    // The head is tied to the token embedding: one parameter, listed once.
    const names = net.namedParameters().map(([n]) => n);
    expect(names).toContain("wte.weight");
    expect(names).not.toContain("head.weight");
  });

  test("8 steps on wasm: the loss starts at ln(vocab) and falls; the sampler continues a prompt", async () => {
    const model = await k.compileModel(net, { train: trainStep, sampleNext }, undefined, { target: "wasm" });
    const losses: number[] = [];
    for (let step = 0; step < 8; step++) losses.push(((await model.train(training.batch(step), { seed: step })) as { loss: k.HostOutput }).loss.data[0]!);
    expect(Math.abs(losses[0]! - Math.log(corpus.vocabSize))).toBeLessThan(0.15);
    expect(losses.at(-1)!).toBeLessThan(losses[0]! - 0.3);
    const prompt = corpus.decode(corpus.val.subarray(0, CONTEXT));
    const text = await sample(model.programs.sampleNext, prompt, 12);
    expect(text).toHaveLength(12);
    expect(await sample(model.programs.sampleNext, prompt, 12)).toBe(text); // seeds 0, 1, …: the same draw again
  });

  test.runIf(FULL)(
    "kiln train examples/gpt.ts: the validation loss ends well below the unigram entropy",
    async () => {
      const io = bufferIO("", root);
      const out = mkdtempSync(path.join(os.tmpdir(), "kiln-gpt-"));
      expect(await main(["train", "examples/gpt.ts", "--out", out], io), io.stderr).toBe(0);
      const valLosses = [...io.stdout.matchAll(/valLoss (\d+\.\d+)/g)].map((m) => Number(m[1]));
      const entropy = corpus.unigramEntropy();
      expect(valLosses.at(-1)).toBeLessThan(entropy - 1);
      expect(io.stdout).toContain("sample (temperature");
    },
    7_200_000,
  );
});
