// Writes V8's code cache of the built library (scripts/library-script.mjs says why). The build
// runs it on the dist/ it wrote, and ships it as dist/dsl/write-library-cache.js, so a package
// installed elsewhere can make its own (a cache names the folder it was made in):
//   node scripts/library-code-cache.mjs <dist/dsl>
//   node node_modules/kiln/dist/dsl/write-library-cache.js        (its own folder)
// It runs itself again with --write in a fresh process (no NODE_OPTIONS), which compiles
// library.js as the entry does (the same source, so V8's source check holds; the file name
// does not enter that check but stays in the cache: the entry checks the header), runs a small
// MLP training step and a transformer block's through it on the cpu target (compile, one run),
// so the functions a first compile runs have their bytecode, then writes
// script.createCachedData() to library.cache. Kiln sets V8 flags during a cpu compile
// (runtime/wasm/engine.ts, compiler/util/js-tiering.ts) and V8 stamps the cache with the flags
// in force: they go back to V8's defaults first, or every fresh process would reject it. Then a
// third process checks that V8 takes the cache; where it does not, the cache is removed and the
// exit status is 1 (the entry compiles library.js from source then, as without one).
import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { readFileSync, realpathSync, renameSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import v8 from "node:v8";
import vm from "node:vm";

/**
 * The first line of library.cache, padded with spaces to a multiple of 8 bytes (V8 copies
 * cache data that is not aligned): library.js's content hash and file URL. The entry
 * (scripts/library-script.mjs, entrySource) hands V8 the rest only when both are its own.
 */
function cacheHeader(buildId, libraryUrl) {
  const head = `kiln-library-cache ${buildId} ${libraryUrl}`;
  return `${head}${" ".repeat(7 - (head.length % 8))}\n`;
}

const writing = process.argv.includes("--write");
const dirArg = process.argv.slice(2).find((a) => a !== "--write");
// The real path: Node's ESM loader gives the entry its realpath's URL.
const dslDir = realpathSync(dirArg === undefined ? path.dirname(fileURLToPath(import.meta.url)) : path.resolve(dirArg));
const cacheFile = path.join(dslDir, "library.cache");
if (!writing) {
  rmSync(cacheFile, { force: true });
  const env = { ...process.env, NODE_OPTIONS: "" };
  delete env.KILN_COMPILE_CACHE;
  const written = spawnSync(process.execPath, [fileURLToPath(import.meta.url), "--write", dslDir], { encoding: "utf8", env, timeout: 120_000 });
  let problem;
  if (written.status !== 0) problem = `writing it failed: ${written.stderr.trim().split("\n").slice(-3).join(" ")}`;
  else {
    const check = spawnSync(
      process.execPath,
      [
        "-e",
        `const fs = require("node:fs"), vm = require("node:vm");
const bytes = fs.readFileSync(process.argv[2]);
const s = new vm.Script(fs.readFileSync(process.argv[1], "utf8"), { filename: "check", cachedData: bytes.subarray(bytes.indexOf(10) + 1) });
process.stdout.write(s.cachedDataRejected ? "rejected" : "accepted");`,
        path.join(dslDir, "library.js"),
        cacheFile,
      ],
      { encoding: "utf8", env },
    );
    if (check.stdout !== "accepted") problem = `V8 rejects the cache written (${check.stdout || check.stderr.trim()})`;
  }
  if (problem !== undefined) {
    rmSync(cacheFile, { force: true });
    process.stderr.write(`kiln: no library code cache in ${dslDir}: ${problem}\n`);
    process.exit(1);
  }
  process.exit(0);
}

const libraryUrl = pathToFileURL(path.join(dslDir, "library.js"));
const entryUrl = new URL("./index.js", libraryUrl);
const source = readFileSync(libraryUrl, "utf8");
const script = new vm.Script(source, { filename: libraryUrl.href });
const k = script.runInThisContext()({ url: entryUrl.href }, (specifier) => import(specifier.startsWith(".") ? new URL(specifier, entryUrl).href : specifier));

// What a first program typically runs: layers, a loss, an optimizer, a train step on cpu. Any
// function it does not reach still compiles lazily, from source, when first run.
const sizes = [784, 512, 512, 10];
const batch = 128;
const layers = [];
for (let i = 0; i + 1 < sizes.length; i++) {
  if (i > 0) layers.push(k.nn.relu());
  layers.push(k.nn.linear(sizes[i], sizes[i + 1]));
}
const net = k.nn.sequential(...layers);
const step = k.trainStep(net, (logits, y) => k.nn.crossEntropy(logits, y), k.optim.sgd({ lr: 0.01 }));
const exe = await k.compile(step, { x: k.f32([batch, sizes[0]]), y: k.i32([batch]) }, { target: "cpu" });
const state = {};
for (let i = 0; i + 1 < sizes.length; i++) {
  state[`${2 * i}.weight`] = new Float32Array(sizes[i] * sizes[i + 1]).fill(0.01);
  state[`${2 * i}.bias`] = new Float32Array(sizes[i + 1]);
}
exe.loadState(state);
const x = new Float32Array(batch * sizes[0]).fill(0.5);
const y = Int32Array.from({ length: batch }, (_, i) => i % sizes[sizes.length - 1]);
const out = await exe.run({ x, y });
if (!Number.isFinite(out.loss.data[0])) throw new Error("library code cache: the training step's loss is not finite");

{
  // A pre-LN transformer block (attention, layer norm, GELU, AdamW): their functions too. It
  // costs the MLP's cold start ~2 ms (a cache ~6 % larger to read) and saves the transformer
  // step's first compile ~15 ms (interleaved runs, issue 14.5; docs/benchmarks.md).
  const [b, t, d, h] = [2, 16, 32, 4];
  class Block extends k.nn.Module {
    constructor() {
      super();
      this.ln1 = k.nn.layerNorm(d);
      this.qkv = k.nn.linear(d, 3 * d);
      this.proj = k.nn.linear(d, d);
      this.ln2 = k.nn.layerNorm(d);
      this.mlp = k.nn.sequential(k.nn.linear(d, 4 * d), k.nn.gelu(), k.nn.linear(4 * d, d));
    }
    forward(x) {
      const heads = (y) => y.reshape([b, t, h, d / h]).transpose(1, 2);
      const [q, kk, v] = this.qkv.call(this.ln1.call(x)).chunk(3, -1).map(heads);
      const y = k.nn.functional.scaledDotProductAttention(q, kk, v, { isCausal: true });
      const a = x.add(this.proj.call(y.transpose(1, 2).reshape([b, t, d])));
      return a.add(this.mlp.call(this.ln2.call(a)));
    }
  }
  const block = new Block();
  const tstep = k.trainStep(block, (o, y) => k.nn.mseLoss(o, y), k.optim.adamW({ lr: 1e-3 }));
  const texe = await k.compile(tstep, { x: k.f32([b, t, d]), y: k.f32([b, t, d]) }, { target: "cpu" });
  const tout = await texe.run({ x: new Float32Array(b * t * d).fill(0.1), y: new Float32Array(b * t * d) });
  if (!Number.isFinite(tout.loss.data[0])) throw new Error("library code cache: the transformer step's loss is not finite");
}

// The flags a cpu compile may set (and one they imply: --no-liftoff implies
// --no-wasm-dynamic-tiering), back to V8's defaults as this node lists them.
const RESET = ["experimental-wasm-relaxed-simd", "liftoff", "wasm-dynamic-tiering", "wasm-lazy-compilation", "interrupt-budget"];
const options = execFileSync(process.execPath, ["--v8-options"], { encoding: "utf8" });
for (const flag of RESET) {
  const m = new RegExp(`\\n\\s+--${flag} \\(.*\\n\\s+type: \\w+\\s+default: (--\\S+)`).exec(options);
  if (m) v8.setFlagsFromString(m[1]);
}
const buildId = createHash("sha256").update(source).digest("hex").slice(0, 16);
// Written beside and renamed over: a process starting meanwhile reads the old file or the new, never half of one.
const partial = `${cacheFile}.${process.pid}.partial`;
writeFileSync(partial, Buffer.concat([Buffer.from(cacheHeader(buildId, libraryUrl.href), "latin1"), script.createCachedData()]));
renameSync(partial, cacheFile);
process.exit(0);
