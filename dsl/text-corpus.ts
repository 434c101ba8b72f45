// k.data.charCorpus: a character-level text corpus for next-character prediction — its
// vocabulary (the sorted distinct characters), encode/decode, a train/validation split (the
// last fraction of the text, contiguous, as nanoGPT's), the unigram entropy a model must beat,
// and seeded random windows of T+1 characters cut into inputs and targets, by step number.
// k.data.prideAndPrejudice() is the corpus Kiln carries (data/README.md: source and licence).

import { KilnError } from "../compiler/util/errors.ts";
import { rngUniform } from "../compiler/util/threefry.ts";
import { strictOptions } from "./options.ts";

export interface CharCorpusOptions {
  /** The fraction of the text, taken from its end, held out for validation (default 0.1). */
  readonly valFraction?: number;
}

export interface CharWindowsOptions {
  /** Windows per batch (required). */
  readonly batchSize?: number;
  /** Characters per window, T (required): x is chars i..i+T-1, y is chars i+1..i+T. */
  readonly blockSize?: number;
  /** The seed of the window starts (default 0). */
  readonly seed?: number;
}

/** One batch of windows: ids as i32, row-major [batchSize, blockSize]. (A type, not an interface, so it is a RunInputs record.) */
export type CharBatch = { readonly x: Int32Array; readonly y: Int32Array };

const fail = (message: string): never => {
  throw new KilnError({ code: "invalid-argument", message: `k.data.charCorpus: ${message}` });
};

/** The windows of one split: `at(step)` draws batch `step`'s starts from threefry(seed, step). */
export class CharWindows {
  constructor(
    private readonly ids: Int32Array,
    readonly batchSize: number,
    readonly blockSize: number,
    readonly seed: number,
  ) {}

  at(step: number): CharBatch {
    if (!Number.isInteger(step) || step < 0) fail(`windows.at: the step must be a non-negative integer, got ${step}`);
    const { batchSize: b, blockSize: t } = this;
    const starts = rngUniform(this.seed, step, b);
    const x = new Int32Array(b * t);
    const y = new Int32Array(b * t);
    for (let r = 0; r < b; r++) {
      const start = Math.floor(starts[r]! * (this.ids.length - t));
      x.set(this.ids.subarray(start, start + t), r * t);
      y.set(this.ids.subarray(start + 1, start + t + 1), r * t);
    }
    return { x, y };
  }
}

export class CharCorpus {
  /** The distinct characters, sorted by code point; a character's id is its index. */
  readonly vocab: readonly string[];
  readonly train: Int32Array;
  readonly val: Int32Array;
  private readonly ids: ReadonlyMap<string, number>;

  constructor(text: string, opts?: CharCorpusOptions) {
    const { valFraction = 0.1 } = strictOptions<CharCorpusOptions>("k.data.charCorpus", opts, { valFraction: true });
    if (typeof text !== "string" || text.length < 2) fail("expects a text of at least two characters");
    if (!(valFraction >= 0 && valFraction < 1)) fail(`valFraction must be in [0, 1), got ${valFraction}`);
    const chars = Array.from(text); // code points, so a character outside the BMP is one id
    this.vocab = [...new Set(chars)].sort((a, b) => a.codePointAt(0)! - b.codePointAt(0)!);
    this.ids = new Map(this.vocab.map((c, i) => [c, i]));
    const all = Int32Array.from(chars, (c) => this.ids.get(c)!);
    const split = Math.round(all.length * (1 - valFraction));
    this.train = all.subarray(0, split);
    this.val = all.subarray(split);
  }

  get vocabSize(): number {
    return this.vocab.length;
  }

  encode(text: string): Int32Array {
    return Int32Array.from(Array.from(text), (c) => {
      const id = this.ids.get(c);
      if (id === undefined) fail(`encode: ${JSON.stringify(c)} is not in the vocabulary`);
      return id!;
    });
  }

  decode(ids: ArrayLike<number>): string {
    let out = "";
    for (let i = 0; i < ids.length; i++) {
      const c = this.vocab[ids[i]!];
      if (c === undefined) fail(`decode: id ${ids[i]} is outside the vocabulary of ${this.vocab.length}`);
      out += c;
    }
    return out;
  }

  /**
   * The entropy in nats of the character frequencies of a split (default train): the loss of
   * the best model that ignores context, a bar a trained language model must clear well.
   */
  unigramEntropy(split: "train" | "val" = "train"): number {
    const ids = split === "train" ? this.train : this.val;
    const counts = new Float64Array(this.vocab.length);
    for (const id of ids) counts[id]!++;
    let entropy = 0;
    for (const count of counts) if (count > 0) entropy -= (count / ids.length) * Math.log(count / ids.length);
    return entropy;
  }

  /** Random windows of a split for next-character prediction, by step: `windows("train", { batchSize: 32, blockSize: 64 }).at(step)`. */
  windows(split: "train" | "val", opts: CharWindowsOptions): CharWindows {
    const {
      batchSize,
      blockSize,
      seed = 0,
    } = strictOptions<CharWindowsOptions>("k.data.charCorpus windows", opts, { batchSize: true, blockSize: true, seed: true });
    if (split !== "train" && split !== "val") fail(`windows: split must be "train" or "val", got ${JSON.stringify(split)}`);
    const ids = split === "train" ? this.train : this.val;
    if (batchSize === undefined || !Number.isInteger(batchSize) || batchSize < 1)
      fail(`windows: batchSize must be a positive integer, got ${String(batchSize)}`);
    if (blockSize === undefined || !Number.isInteger(blockSize) || blockSize < 1)
      fail(`windows: blockSize must be a positive integer, got ${String(blockSize)}`);
    if (ids.length < blockSize! + 1) fail(`windows: the ${split} split has ${ids.length} characters, fewer than blockSize + 1 = ${blockSize! + 1}`);
    if (!Number.isInteger(seed) || seed < 0 || seed > 4294967295) fail(`windows: seed must be a 32-bit unsigned integer, got ${seed}`);
    return new CharWindows(ids, batchSize!, blockSize!, seed);
  }
}

/** A character-level corpus of `text`: vocabulary, encode/decode, train/val split, windows. */
export function charCorpus(text: string, opts?: CharCorpusOptions): CharCorpus {
  return new CharCorpus(text, opts);
}

let cachedText: string | undefined;

/**
 * Jane Austen's *Pride and Prejudice* (1813; public domain), 684,768 characters, 75 distinct:
 * the Project Gutenberg text as Debian's r-cran-janeaustenr package (MIT) ships it, carried
 * gzip-compressed in Kiln's data/ folder (data/README.md). Node only; nothing is downloaded.
 */
export function prideAndPrejudice(): string {
  if (cachedText !== undefined) return cachedText;
  const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
  const fs = proc?.getBuiltinModule?.("node:fs") as { existsSync(p: URL): boolean; readFileSync(p: URL): Uint8Array } | undefined;
  const zlib = proc?.getBuiltinModule?.("node:zlib") as { gunzipSync(b: Uint8Array): Uint8Array } | undefined;
  if (!fs || !zlib) throw new KilnError({ code: "unsupported", message: "k.data.prideAndPrejudice: reading the corpus file needs Node" });
  // data/ beside dsl/ in a checkout, two levels up from the built dist/dsl/.
  const file = ["../data/pride-and-prejudice.txt.gz", "../../data/pride-and-prejudice.txt.gz"]
    .map((p) => new URL(p, import.meta.url))
    .find((u) => fs.existsSync(u));
  if (!file) throw new KilnError({ code: "unsupported", message: "k.data.prideAndPrejudice: data/pride-and-prejudice.txt.gz is missing from Kiln's install" });
  cachedText = new TextDecoder().decode(zlib.gunzipSync(fs.readFileSync(file)));
  return cachedText;
}
