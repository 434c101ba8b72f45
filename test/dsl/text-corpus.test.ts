// k.data.charCorpus and k.data.prideAndPrejudice: vocabulary, encode/decode, the split, the
// unigram entropy against values worked out by hand (and, for the novel, by a Python one-liner:
// collections.Counter over the text), and the windows' inputs and targets against the text.

import { describe, expect, test } from "vitest";
import * as k from "kiln";

describe("k.data.charCorpus", () => {
  test("the vocabulary is the sorted distinct characters; encode and decode invert each other", () => {
    const corpus = k.data.charCorpus("hello, world", { valFraction: 0 });
    expect(corpus.vocab).toEqual([" ", ",", "d", "e", "h", "l", "o", "r", "w"]);
    expect(corpus.vocabSize).toBe(9);
    expect(Array.from(corpus.encode("hold"))).toEqual([4, 6, 5, 2]);
    expect(corpus.decode([8, 6, 7, 5, 2])).toBe("world");
    expect(() => corpus.encode("x")).toThrow('k.data.charCorpus: encode: "x" is not in the vocabulary');
    expect(() => corpus.decode([9])).toThrow("decode: id 9 is outside the vocabulary of 9");
  });

  test("validation is the last fraction of the text", () => {
    const corpus = k.data.charCorpus("abcdefghij", { valFraction: 0.2 });
    expect(corpus.decode(corpus.train)).toBe("abcdefgh");
    expect(corpus.decode(corpus.val)).toBe("ij");
    expect(k.data.charCorpus("abcdefghij").val.length).toBe(1); // default 0.1
    expect(() => k.data.charCorpus("abc", { valFraction: 1 })).toThrow("valFraction must be in [0, 1), got 1");
    expect(() => k.data.charCorpus("abc", { valFraktion: 0.1 } as never)).toThrow(/unknown option 'valFraktion'/);
  });

  test("unigram entropy in nats: ln 2 for two equally common characters, -Σ p ln p otherwise", () => {
    expect(k.data.charCorpus("abab", { valFraction: 0 }).unigramEntropy()).toBeCloseTo(Math.LN2, 12);
    const skewed = -(0.75 * Math.log(0.75) + 0.25 * Math.log(0.25));
    expect(k.data.charCorpus("aaabaaab", { valFraction: 0.5 }).unigramEntropy("train")).toBeCloseTo(skewed, 12);
    expect(k.data.charCorpus("aaabcccc", { valFraction: 0.5 }).unigramEntropy("val")).toBe(0);
  });

  test("windows: y is x shifted by one character, both cut from the split; the same step gives the same batch", () => {
    const text = "the quick brown fox jumps over the lazy dog, again and again";
    const corpus = k.data.charCorpus(text, { valFraction: 0.25 });
    const trainText = corpus.decode(corpus.train);
    const windows = corpus.windows("train", { batchSize: 4, blockSize: 8, seed: 5 });
    const starts = new Set<number>();
    for (let step = 0; step < 5; step++) {
      const { x, y } = windows.at(step);
      expect(x.length).toBe(32);
      for (let r = 0; r < 4; r++) {
        const input = corpus.decode(x.subarray(r * 8, r * 8 + 8));
        const target = corpus.decode(y.subarray(r * 8, r * 8 + 8));
        const start = trainText.indexOf(input + target.at(-1));
        expect(start, `step ${step} row ${r}: ${JSON.stringify(input)}`).toBeGreaterThanOrEqual(0);
        expect(target).toBe(trainText.slice(start + 1, start + 9));
        starts.add(start);
      }
    }
    expect(starts.size).toBeGreaterThan(5); // the starts vary
    expect(windows.at(3)).toEqual(windows.at(3));
    expect(corpus.windows("train", { batchSize: 4, blockSize: 8, seed: 6 }).at(3)).not.toEqual(windows.at(3));
    expect(() => corpus.windows("val", { batchSize: 2, blockSize: 20 })).toThrow(/the val split has 15 characters, fewer than blockSize \+ 1 = 21/);
    expect(() => corpus.windows("train", { batchSize: 2 })).toThrow("windows: blockSize must be a positive integer, got undefined");
  });
});

describe("k.data.prideAndPrejudice", () => {
  test("the carried novel: 684,768 characters, 75 distinct, unigram entropy 3.0924 nats", () => {
    const text = k.data.prideAndPrejudice();
    expect(text.length).toBe(684768);
    expect(text.startsWith("PRIDE AND PREJUDICE\n\nBy Jane Austen")).toBe(true);
    expect(text).toContain("It is a truth universally acknowledged, that a single man in possession\nof a good fortune, must be in want of a wife.");
    const corpus = k.data.charCorpus(text, { valFraction: 0 });
    expect(corpus.vocabSize).toBe(75);
    expect(corpus.unigramEntropy()).toBeCloseTo(3.0924172763453353, 9);
  });
});
