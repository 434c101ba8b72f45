// The standalone CUDA artifact: `writeCudaArtifact` writes the folder; build.sh (nvcc only)
// builds the host program; without a driver it fails cleanly; with a fake libcuda.so.1 that
// runs the kernels on the CPU (test/util/nvcc.ts) it trains for two steps and its loss and
// parameters match the interpreter stepping the same graph twice.

import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import * as k from "kiln";
import { compileCuda } from "../../codegen/cuda/compile.ts";
import { writeCudaArtifact } from "../../codegen/cuda/standalone.ts";
import { interpret } from "../../compiler/ir/interpret.ts";
import type { HostTensor } from "../../compiler/util/host-tensor.ts";
import { decodeSafetensors } from "../../runtime/artifact/safetensors.ts";
import { buildEmulatedKernelLibrary, buildFakeDriver, findNvcc, hasCxx } from "../util/nvcc.ts";
import { dslInputs } from "./cuda-cases.ts";

const F = k.nn.functional;
const nvcc = findNvcc();

function smallTrainStep() {
  const net = k.nn.sequential(k.nn.linear(12, 16), k.nn.relu(), k.nn.linear(16, 4));
  const step = k.trainStep(net, (logits, y) => F.crossEntropy(logits, y!), k.optim.adam({ lr: 1e-2 }));
  const traced = k.traceFunction("mlp_step", step as never, { x: k.f32([8, 12]), y: k.i32([8]) });
  const state = Object.fromEntries([...traced.state].map(([n, init]) => [n, init()]));
  return { traced, state };
}

describe("standalone cuda artifact", () => {
  const { traced, state } = smallTrainStep();
  const dir = mkdtempSync(join(tmpdir(), "kiln-cuda-artifact-"));
  const written = writeCudaArtifact(dir, { graph: traced.graph, state, nvcc: nvcc ?? false });

  test("the folder holds the manifest, module, weights, host program and build script", () => {
    for (const f of ["manifest.json", "kernels.cu", "weights.safetensors", "main.cpp", "cuda-driver.h", "build.sh", "graph.kir"]) expect(written.files).toContain(f);
    const manifest = JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8")) as { target: string; kernels: { name: string; launch: { block: number[] } }[]; files: Record<string, string> };
    expect(manifest.target).toBe("cuda");
    expect(manifest.kernels.length).toBe(written.kernels);
    for (const kernel of manifest.kernels) expect(kernel.launch.block).toEqual([256, 1, 1]);
    expect(Object.keys(manifest.files)).toContain("kernels.cu");
    // Weights: every state input, with the traced initial values, bit for bit in f32.
    const weights = decodeSafetensors(readFileSync(join(dir, "weights.safetensors")), "weights.safetensors").tensors;
    expect(Object.keys(weights).sort()).toEqual(Object.keys(state).sort());
    for (const [name, t] of Object.entries(state)) expect(Array.from(weights[name]!.data)).toEqual(Array.from(Float32Array.from(t.data as ArrayLike<number>)));
  });

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

    test("with a fake driver (kernels emulated on the CPU) two training steps match the interpreter", () => {
      if (!existsSync(join(dir, "run"))) execFileSync("./build.sh", { cwd: dir, stdio: "pipe", env: { ...process.env, NVCC: nvcc! } });
      const library = buildEmulatedKernelLibrary([compileCuda(traced.graph).artifact]);
      const user = dslInputs(traced.graph);
      writeFileSync(join(dir, "x.bin"), Float32Array.from(user["x"]!.data as ArrayLike<number>));
      writeFileSync(join(dir, "y.bin"), Int32Array.from(user["y"]!.data as ArrayLike<number>));
      const outDir = mkdtempSync(join(tmpdir(), "kiln-cuda-out-"));
      const r = spawnSync(join(dir, "run"), ["--steps", "2", "--input", "x=x.bin", "--input", "y=y.bin", "--out", outDir], {
        cwd: dir,
        encoding: "utf8",
        env: { ...process.env, LD_LIBRARY_PATH: buildFakeDriver(), KILN_FAKE_CUDA_KERNELS: library },
      });
      expect(r.stderr).toBe("");
      expect(r.status).toBe(0);
      // The oracle: the interpreter, stepping twice and feeding the state outputs back.
      let stateNow: Record<string, HostTensor> = { ...state };
      const losses: number[] = [];
      for (let step = 0; step < 2; step++) {
        const out = interpret(traced.graph, { x: user["x"]!, y: user["y"]!, ...stateNow });
        const userOutput = traced.graph.outputs[0]!;
        losses.push(out[userOutput.name]!.data[0]!);
        const next: Record<string, HostTensor> = { ...stateNow };
        for (const o of traced.graph.outputs) if (o.aliases !== undefined) next[o.aliases] = out[o.name]!;
        stateNow = next;
      }
      const printed = [...r.stdout.matchAll(/^step (\d): \S+ f32\[\]: (\S+)$/gm)].map((m) => Number(m[2]));
      expect(printed.length).toBe(2);
      printed.forEach((v, i) => expect(Math.abs(v - losses[i]!)).toBeLessThan(1e-4 * Math.max(1, Math.abs(losses[i]!))));
      for (const o of traced.graph.outputs) {
        if (o.aliases === undefined) continue;
        const raw = readFileSync(join(outDir, `${o.name}.bin`));
        const want = stateNow[o.aliases]!;
        const got = want.dtype === "f32" ? new Float32Array(raw.buffer, raw.byteOffset, raw.length / 4) : new Int32Array(raw.buffer, raw.byteOffset, raw.length / 4);
        for (let j = 0; j < want.data.length; j++) expect(Math.abs(got[j]! - want.data[j]!)).toBeLessThanOrEqual(1e-5 + 1e-4 * Math.abs(want.data[j]!));
      }
    }, 180_000);
  });
});
