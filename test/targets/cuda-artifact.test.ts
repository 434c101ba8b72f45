// The standalone CUDA artifact: `writeCudaArtifact` writes the folder; build.sh (nvcc only)
// builds the host program; without a driver it fails cleanly; it checks every file's sha256
// (its SHA-256 against Node's crypto), finds its files in its own folder, reads --input as
// safetensors (refusing the whole malformed corpus) and, with a fake libcuda.so.1 that runs
// the kernels on the CPU (test/util/nvcc.ts), trains for two steps — directly and through
// `kiln run` — matching the interpreter stepping the same graph twice.

import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, test } from "vitest";
import * as k from "kiln";
import { compileCuda } from "../../targets/cuda.ts";
import { writeCudaArtifact } from "../../targets/cuda-standalone.ts";
import { interpret } from "../../compiler/ir/interpret.ts";
import type { HostTensor } from "../../compiler/ir/host-tensor.ts";
import { decodeSafetensors, encodeSafetensors, readSafetensors } from "../../runtime/artifact/safetensors.ts";
import { decodeHalf, encodeHalf } from "../../runtime/artifact/half.ts";
import { MALFORMED_DIR } from "../fixtures/safetensors/make-corpus.ts";
import { buildEmulatedKernelLibrary, buildFakeDriver, findNvcc, hasCxx } from "../util/nvcc.ts";
import { dslInputs } from "./cuda-cases.ts";
import { rememberHyper } from "./op-cases.ts";
import { HyperStore } from "../../dsl/hyper.ts";

const F = k.nn.functional;
const nvcc = findNvcc();
const root = resolve(fileURLToPath(import.meta.url), "../../..");
const kilnBin = join(root, "bin/kiln.js");

function smallTrainStep() {
  const net = k.nn.sequential(k.nn.linear(12, 16), k.nn.relu(), k.nn.linear(16, 4));
  const step = k.trainStep(net, (logits, y) => F.crossEntropy(logits, y!), k.optim.adam({ lr: 1e-2 }));
  const traced = k.traceFunction("mlp_step", step as never, { x: k.f32([8, 12]), y: k.i32([8]) });
  rememberHyper(traced);
  // The hyperparameters travel as the state entry `hyper`, as `kiln compile --target cuda` writes them.
  const state = { ...Object.fromEntries([...traced.state].map(([n, init]) => [n, init()])), ...new HyperStore(traced.hyper).inputs() };
  return { traced, state };
}

describe("standalone cuda artifact", () => {
  const { traced, state } = smallTrainStep();
  const dir = mkdtempSync(join(tmpdir(), "kiln-cuda-artifact-"));
  const written = writeCudaArtifact(dir, { graph: traced.graph, state, nvcc: nvcc ?? false });

  test("the folder holds the manifest, module, weights, host program and build script", () => {
    for (const f of ["manifest.json", "kernels.cu", "weights.safetensors", "main.cpp", "cuda-driver.h", "build.sh", "graph.kir"])
      expect(written.files).toContain(f);
    const manifest = JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8")) as {
      target: string;
      kernels: { name: string; launch: { block: number[] } }[];
      files: Record<string, string>;
    };
    expect(manifest.target).toBe("cuda");
    expect(manifest.kernels.length).toBe(written.kernels);
    for (const kernel of manifest.kernels) expect(kernel.launch.block).toEqual([256, 1, 1]);
    expect(Object.keys(manifest.files)).toContain("kernels.cu");
    // Weights: every state input, with the traced initial values, bit for bit in f32.
    const weights = decodeSafetensors(readFileSync(join(dir, "weights.safetensors")), "weights.safetensors").tensors;
    expect(Object.keys(weights).sort()).toEqual(Object.keys(state).sort());
    for (const [name, t] of Object.entries(state)) expect(Array.from(weights[name]!.data)).toEqual(Array.from(Float32Array.from(t.data as ArrayLike<number>)));
  });

  test.runIf(spawnSync("sh", ["-c", "ldconfig -p | grep -q libcuda.so.1"]).status !== 0)(
    "kiln run without a CUDA driver fails in one line, before building anything",
    () => {
      const bare = mkdtempSync(join(tmpdir(), "kiln-cuda-bare-"));
      writeCudaArtifact(bare, { graph: traced.graph, state, nvcc: false });
      const r = spawnSync(process.execPath, [kilnBin, "run", bare, "--steps", "1"], { encoding: "utf8", env: { ...process.env, LD_LIBRARY_PATH: "" } });
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(/^error: mlp_step needs input\(s\) x: f32\[8,12\], y: i32\[8\]/);
      const input = join(bare, "..", `${bare.split("/").pop()}-in.safetensors`);
      const user = dslInputs(traced.graph);
      writeFileSync(
        input,
        encodeSafetensors({ x: { dtype: "f32", shape: [8, 12], data: user["x"]!.data }, y: { dtype: "i32", shape: [8], data: user["y"]!.data } }),
      );
      const refused = spawnSync(process.execPath, [kilnBin, "run", bare, "--input", input], { encoding: "utf8", env: { ...process.env, LD_LIBRARY_PATH: "" } });
      expect(refused.status).toBe(1);
      expect(refused.stderr).toMatch(
        /^error: this artifact is for cuda and CUDA cannot run here: no CUDA driver \(libcuda\.so\.1 is not installed; [^\n]*\)\n$/,
      );
      expect(existsSync(join(bare, "run"))).toBe(false);
    },
    60_000,
  );

  describe.runIf(nvcc !== undefined && hasCxx())("built with nvcc", () => {
    test("build.sh builds ./run; without a driver it exits 1 and says why", () => {
      execFileSync("./build.sh", { cwd: dir, stdio: "pipe", env: { ...process.env, NVCC: nvcc! } });
      expect(existsSync(join(dir, "run"))).toBe(true);
      const ptx = readFileSync(join(dir, "kernels.ptx"), "utf8");
      expect(ptx.match(/^\.visible \.entry /gm)?.length).toBe(written.kernels);
      if (spawnSync("sh", ["-c", "ldconfig -p | grep -q libcuda.so.1"]).status === 0) return; // a real driver: the GPU check runs it
      const r = spawnSync(join(dir, "run"), [], { cwd: dir, encoding: "utf8", env: { ...process.env, LD_LIBRARY_PATH: "" } });
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(/^error: no CUDA driver \(libcuda\.so\.1 not found/);
    }, 120_000);

    const ensureBuilt = (): void => {
      if (!existsSync(join(dir, "run"))) execFileSync("./build.sh", { cwd: dir, stdio: "pipe", env: { ...process.env, NVCC: nvcc! } });
    };
    const run = (folder: string, args: string[], env: NodeJS.ProcessEnv = {}) =>
      spawnSync(join(folder, "run"), args, { cwd: tmpdir(), encoding: "utf8", env: { ...process.env, LD_LIBRARY_PATH: "", ...env } });

    test("its SHA-256 equals Node's on inputs around the 64-byte block boundaries", () => {
      ensureBuilt();
      const scratch = mkdtempSync(join(tmpdir(), "kiln-sha-"));
      for (const length of [0, 1, 3, 55, 56, 63, 64, 65, 119, 120, 1000, 100_003]) {
        const bytes = Uint8Array.from({ length }, (_, i) => (i * 131 + length) & 0xff);
        writeFileSync(join(scratch, "f"), bytes);
        expect(run(dir, ["--sha256", join(scratch, "f")]).stdout.trim(), `length ${length}`).toBe(createHash("sha256").update(bytes).digest("hex"));
      }
    }, 120_000);

    test("--check-only: finds its folder from anywhere, and refuses a file whose sha256 differs", () => {
      ensureBuilt();
      const ok = run(dir, ["--check-only"]);
      expect(ok.stderr).toBe("");
      expect(ok.stdout).toMatch(/^ok: mlp_step: \d+ file\(s\) match their sha256, \d+ input\(s\) ready \(synthetic user inputs\)$/m);
      const copy = mkdtempSync(join(tmpdir(), "kiln-cuda-tampered-"));
      cpSync(dir, copy, { recursive: true });
      const weights = readFileSync(join(copy, "weights.safetensors"));
      weights[weights.length - 1] = weights[weights.length - 1]! ^ 1;
      writeFileSync(join(copy, "weights.safetensors"), weights);
      const refused = run(copy, ["--check-only"]);
      expect(refused.status).toBe(1);
      expect(refused.stderr).toMatch(
        new RegExp(`^error: ${copy}/weights\\.safetensors: sha256 mismatch \\(manifest says [0-9a-f]{64}, file has [0-9a-f]{64}\\)\\n$`),
      );
    }, 120_000);

    test("--check-only refuses a manifest whose schemaVersion it does not read, naming the file; 1 still reads (cuda's layout did not change)", () => {
      ensureBuilt();
      const copy = mkdtempSync(join(tmpdir(), "kiln-cuda-schema-"));
      cpSync(dir, copy, { recursive: true });
      const manifestPath = join(copy, "manifest.json");
      const manifest = JSON.parse(readFileSync(manifestPath, "utf8")) as Record<string, unknown>;
      const cases: [unknown, string | undefined][] = [
        [3, "3"],
        [2.5, "not an integer"],
        ["2", "not a number"],
        [undefined, "missing"],
        [1, undefined],
      ];
      for (const [version, shown] of cases) {
        writeFileSync(manifestPath, JSON.stringify({ ...manifest, schemaVersion: version }));
        const r = run(copy, ["--check-only"]);
        if (shown === undefined) {
          expect(r.stderr, `schemaVersion ${version}`).toBe("");
          expect(r.status).toBe(0);
        } else {
          expect(r.status, `schemaVersion ${version}`).toBe(1);
          expect(r.stderr).toBe(`error: ${manifestPath}: schemaVersion is ${shown}, this host program reads schemaVersion 2 (or 1)\n`);
        }
      }
    }, 120_000);

    test("--input refuses every file of the malformed safetensors corpus in one line naming it", () => {
      ensureBuilt();
      const files = readdirSync(MALFORMED_DIR).filter((f) => f.endsWith(".safetensors"));
      expect(files.length).toBeGreaterThanOrEqual(60);
      for (const f of files) {
        const r = run(dir, ["--check-only", "--input", join(MALFORMED_DIR, f)]);
        expect(r.status, f).toBe(1);
        expect(r.stderr.startsWith(`error: ${join(MALFORMED_DIR, f)}: `), `${f}: ${r.stderr}`).toBe(true);
        expect(r.stderr.trimEnd().includes("\n"), f).toBe(false);
      }
      const labels = join(mkdtempSync(join(tmpdir(), "kiln-labels-")), "in.safetensors");
      const user = dslInputs(traced.graph);
      writeFileSync(
        labels,
        encodeSafetensors({
          x: { dtype: "f32", shape: [8, 12], data: user["x"]!.data },
          y: { dtype: "i64", shape: [8], data: [0, 1, 2, 3, 2 ** 31, 1, 2, 3] },
        }),
      );
      expect(run(dir, ["--check-only", "--input", labels]).stderr).toBe(`error: ${labels}: tensor "y": I64 element 4 is 2147483648, outside i32's range\n`);
    }, 120_000);

    /** The oracle: the interpreter, stepping twice and feeding the state outputs back. */
    const interpretTwoSteps = (user: Record<string, HostTensor>) => {
      let stateNow: Record<string, HostTensor> = { ...state };
      const losses: number[] = [];
      for (let step = 0; step < 2; step++) {
        const out = interpret(traced.graph, { x: user["x"]!, y: user["y"]!, ...stateNow });
        losses.push(out[traced.graph.outputs[0]!.name]!.data[0]!);
        const next: Record<string, HostTensor> = { ...stateNow };
        for (const o of traced.graph.outputs) if (o.aliases !== undefined) next[o.aliases] = out[o.name]!;
        stateNow = next;
      }
      return { losses, stateNow };
    };
    const expectState = (written: Record<string, { data: ArrayLike<number> }>, want: Record<string, HostTensor>) => {
      for (const o of traced.graph.outputs) {
        if (o.aliases === undefined) continue;
        const got = written[o.aliases]!.data;
        const expected = want[o.aliases]!.data;
        for (let j = 0; j < expected.length; j++) expect(Math.abs(got[j]! - expected[j]!), o.aliases).toBeLessThanOrEqual(1e-5 + 1e-4 * Math.abs(expected[j]!));
      }
    };

    test("with a fake driver (kernels emulated on the CPU) two training steps on safetensors inputs (I64 labels) match the interpreter", () => {
      ensureBuilt();
      const library = buildEmulatedKernelLibrary([compileCuda(traced.graph).artifact]);
      const user = dslInputs(traced.graph);
      const scratch = mkdtempSync(join(tmpdir(), "kiln-cuda-io-"));
      // x as BF16 and y as I64, as PyTorch might hand them over; the host program converts both.
      const file = encodeSafetensors({
        x: { dtype: "bf16", shape: [8, 12], data: user["x"]!.data },
        y: { dtype: "i64", shape: [8], data: Array.from(user["y"]!.data) },
      });
      writeFileSync(join(scratch, "in.safetensors"), file);
      const r = run(dir, ["--steps", "2", "--input", join(scratch, "in.safetensors"), "--output", join(scratch, "out.safetensors")], {
        LD_LIBRARY_PATH: buildFakeDriver(),
        KILN_FAKE_CUDA_KERNELS: library,
      });
      expect(r.stderr).toBe("");
      expect(r.status).toBe(0);
      // The oracle sees x rounded to bf16 exactly as the TypeScript reader (tested on hand-made bytes) widens it.
      const xRounded = readSafetensors(file, "in").tensors.get("x")!;
      expect(Array.from(xRounded.data as Float32Array)).not.toEqual(Array.from(Float32Array.from(user["x"]!.data)));
      const { losses, stateNow } = interpretTwoSteps({ ...user, x: { dtype: "f32", shape: [8, 12], data: Float64Array.from(xRounded.data as Float32Array) } });
      const printed = [...r.stdout.matchAll(/^step (\d): \S+ f32\[\]: (\S+)$/gm)].map((m) => Number(m[2]));
      expect(printed.length).toBe(2);
      printed.forEach((v, i) => expect(Math.abs(v - losses[i]!)).toBeLessThan(1e-4 * Math.max(1, Math.abs(losses[i]!))));
      expectState(decodeSafetensors(readFileSync(join(scratch, "out.safetensors")), "out").tensors, stateNow);
    }, 180_000);

    test("--profile prints one row per kernel with one call per step (CUDA events; the fake driver's clock)", () => {
      ensureBuilt();
      const artifact = compileCuda(traced.graph).artifact;
      const library = buildEmulatedKernelLibrary([artifact]);
      const r = run(dir, ["--steps", "3", "--profile"], { LD_LIBRARY_PATH: buildFakeDriver(), KILN_FAKE_CUDA_KERNELS: library });
      expect(r.stderr).toBe("");
      expect(r.status).toBe(0);
      const lines = r.stdout.split("\n");
      const at = lines.findIndex((l) => l.startsWith("profile (CUDA events around each launch), 3 step(s): kernels "));
      expect(at).toBeGreaterThan(0);
      expect(lines[at + 1]).toMatch(/^kernel +calls +total ms +mean ms +% kernels$/);
      const rows = lines.slice(at + 2, at + 2 + artifact.kernels.length).map((l) => l.trim().split(/\s+/));
      expect(rows.map((cells) => cells[0])).toEqual(artifact.kernels.map((kk) => kk.name));
      for (const cells of rows) expect(cells[1]).toBe("3");
    }, 180_000);

    test("kiln run runs the folder through its host program (no addon here) and matches the interpreter", () => {
      ensureBuilt();
      const library = buildEmulatedKernelLibrary([compileCuda(traced.graph).artifact]);
      const user = dslInputs(traced.graph);
      const scratch = mkdtempSync(join(tmpdir(), "kiln-cuda-cli-"));
      const file = encodeSafetensors({ x: { dtype: "f16", shape: [8, 12], data: user["x"]!.data }, y: { dtype: "i32", shape: [8], data: user["y"]!.data } });
      writeFileSync(join(scratch, "in.safetensors"), file);
      const r = spawnSync(
        process.execPath,
        [kilnBin, "run", dir, "--input", join(scratch, "in.safetensors"), "--output", join(scratch, "out.safetensors"), "--steps", "2"],
        {
          cwd: scratch,
          encoding: "utf8",
          env: { ...process.env, LD_LIBRARY_PATH: buildFakeDriver(), KILN_FAKE_CUDA_KERNELS: library },
        },
      );
      expect(r.stderr).toBe("");
      expect(r.status).toBe(0);
      expect(r.stdout).toMatch(/^mlp_step \(cuda\): 2 run\(s\) in/);
      const xRounded = readSafetensors(file, "in").tensors.get("x")!.data as Float32Array;
      const { losses, stateNow } = interpretTwoSteps({ ...user, x: { dtype: "f32", shape: [8, 12], data: Float64Array.from(xRounded) } });
      const written = decodeSafetensors(readFileSync(join(scratch, "out.safetensors")), "out").tensors;
      const lossName = traced.graph.outputs[0]!.name;
      expect(Math.abs(written[lossName]!.data[0]! - losses[1]!)).toBeLessThan(1e-4 * Math.max(1, Math.abs(losses[1]!)));
      expectState(written, stateNow);
    }, 180_000);

    test("16-bit inputs, outputs and state (f16, bf16; 2 bytes each) run through the host program as the interpreter steps them", () => {
      ensureBuilt();
      // w (f16) and b (bf16) are state updated every step; x (f16) a user input; y (f16) and s (f32) user outputs.
      const traced16 = k.traceFunction(
        "half_step",
        (({ w, b, x }: { w: k.Tensor; b: k.Tensor; x: k.Tensor }) => ({
          y: x.mul(w),
          xs: x.mul(1),
          s: x.mul(w).cast("f32").sum(),
          w_next: w.sub(x.mul(0.25)),
          b_next: b.mul(0.5).add(1),
        })) as never,
        { w: k.f16([5]), b: k.bf16([3]), x: k.f16([5]) },
      );
      const graph = { ...traced16.graph, outputs: traced16.graph.outputs.map((o) => (o.name.endsWith("_next") ? { ...o, aliases: o.name.slice(0, 1) } : o)) };
      const state16: { w: HostTensor; b: HostTensor } = {
        w: { dtype: "f16", shape: [5], data: Float64Array.from([0.1, -0.3, 1.5, 1000.7, -2e-5]) },
        b: { dtype: "bf16", shape: [3], data: Float64Array.from([3.3, -1.7, 250.1]) },
      };
      const folder = mkdtempSync(join(tmpdir(), "kiln-cuda-half-"));
      writeCudaArtifact(folder, { graph, state: state16, nvcc: false });
      // The fake driver finds the kernels in KILN_FAKE_CUDA_KERNELS; the host program only reads some kernels.ptx.
      writeFileSync(join(folder, "kernels.ptx"), "// no PTX: the fake driver runs the emulated kernels\n");
      const library = buildEmulatedKernelLibrary([compileCuda(graph).artifact]);
      const scratch = mkdtempSync(join(tmpdir(), "kiln-cuda-half-io-"));
      const x = [0.7, -0.2, 3.1, 0.001, 200];
      writeFileSync(join(scratch, "in.safetensors"), encodeSafetensors({ x: { dtype: "f16", shape: [5], data: x } }));
      // The built ./run of the first folder runs this one (--dir): the host program is the same file.
      const r = run(dir, ["--dir", folder, "--steps", "2", "--input", join(scratch, "in.safetensors"), "--output", join(scratch, "out.safetensors")], {
        LD_LIBRARY_PATH: buildFakeDriver(),
        KILN_FAKE_CUDA_KERNELS: library,
      });
      expect(r.stderr).toBe("");
      expect(r.status).toBe(0);
      // The oracle: the interpreter (16-bit rounding per op, runtime/artifact/half.ts) stepping twice.
      let stateNow = { ...state16 };
      let out: Record<string, HostTensor> = {};
      const xIn: HostTensor = { dtype: "f16", shape: [5], data: Float64Array.from(x) };
      for (let step = 0; step < 2; step++) {
        out = interpret(graph, { ...stateNow, x: xIn });
        stateNow = { w: out["w_next"]!, b: out["b_next"]! };
      }
      // The file holds F16/BF16 (2 bytes an element) for 16-bit tensors, F32 for s.
      const file = readSafetensors(readFileSync(join(scratch, "out.safetensors")), "out").tensors;
      expect(Object.fromEntries([...file].map(([n, t]) => [n, t.dtype]))).toEqual({ y: "f16", xs: "f16", s: "f32", w: "f16", b: "bf16" });
      const written16 = decodeSafetensors(readFileSync(join(scratch, "out.safetensors")), "out").tensors;
      const decoded = (t: { dtype: string; data: ArrayLike<number> }): number[] =>
        t.dtype === "f16" || t.dtype === "bf16" ? Array.from(decodeHalf(t.dtype, t.data as Uint16Array)) : Array.from(t.data);
      const want: Record<string, HostTensor> = { y: out["y"]!, s: out["s"]!, w: stateNow.w, b: stateNow.b };
      for (const [name, t] of Object.entries(want)) {
        const got = decoded(written16[name]!);
        expect(got.length, name).toBe(t.data.length);
        // One unit in the last place of the format (a fused chain rounds once where the interpreter rounds per op).
        const ulp = t.dtype === "bf16" ? 2 ** -7 : t.dtype === "f16" ? 2 ** -10 : 1e-6;
        got.forEach((v, j) => expect(Math.abs(v - t.data[j]!), `${name}[${j}]`).toBeLessThanOrEqual(ulp * Math.abs(t.data[j]!) + 1e-7));
      }
      // Printed as values, not bit patterns: step 2's s and the final y.
      const printedS = [...r.stdout.matchAll(/^step (\d): s f32\[\]: (\S+)$/gm)].map((m) => Number(m[2]));
      expect(printedS.length).toBe(2);
      expect(Math.abs(printedS[1]! - out["s"]!.data[0]!)).toBeLessThanOrEqual(1e-5 * Math.abs(out["s"]!.data[0]!));
      const printedY = r.stdout
        .match(/^y f16\[5\]: (.*)$/m)![1]!
        .trim()
        .split(" ")
        .map(Number);
      printedY.forEach((v, j) => expect(Math.abs(v - out["y"]!.data[j]!), `y[${j}]`).toBeLessThanOrEqual(2 ** -10 * Math.abs(out["y"]!.data[j]!) + 1e-7));
      expect(decoded(written16["xs"]!)).toEqual(Array.from(decodeHalf("f16", encodeHalf("f16", x))));

      // Without --input, x is synthetic (docs/cuda.md): f32 steps of 2^-23 in [-1, 1) from the
      // documented generator (salted with x's place among the manifest's inputs), rounded to nearest even
      // into f16 by the host program — here by half.ts: xs (= x · 1) holds them bit for bit.
      const synthetic = run(dir, ["--dir", folder, "--output", join(scratch, "synthetic.safetensors")], {
        LD_LIBRARY_PATH: buildFakeDriver(),
        KILN_FAKE_CUDA_KERNELS: library,
      });
      expect(synthetic.stderr).toBe("");
      const salt = (JSON.parse(readFileSync(join(folder, "manifest.json"), "utf8")) as { inputs: { name: string }[] }).inputs.findIndex((i) => i.name === "x");
      expect(salt).toBe(2);
      let lcg = (0x9e3779b9 ^ salt) >>> 0;
      const f32 = Array.from({ length: 5 }, () => {
        lcg = (Math.imul(lcg, 1664525) + 1013904223) >>> 0;
        return ((lcg >>> 8) / 16777216) * 2 - 1;
      });
      expect(f32.some((v) => decodeHalf("f16", encodeHalf("f16", [v]))[0] !== v)).toBe(true); // some need rounding
      const xs = readSafetensors(readFileSync(join(scratch, "synthetic.safetensors")), "synthetic").tensors.get("xs")!;
      expect(Array.from(encodeHalf("f16", xs.data as Float32Array))).toEqual(Array.from(encodeHalf("f16", f32)));
    }, 180_000);
  });
});
