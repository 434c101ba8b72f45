// The CUDA runtime without a GPU: the addon builds offline (npm run build:cuda) and loads;
// asking for target "cuda" fails with the reason while every other target still works; and
// the cuda target's device tests (cuda-gpu.test.ts, cuda-model.test.ts) pass over a fake
// libcuda.so.1 that runs the generated kernels on the CPU — the addon's whole path (driver
// binding, modules, memory, launches, copies) exercised for real.

import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, test } from "vitest";
import * as k from "kiln";
import { cudaUnavailableReason } from "../../runtime/cuda/index.ts";
import { FULL } from "../util/full.ts";
import { buildEmulatingNvcc, buildFakeDriver, hasCxx } from "../util/nvcc.ts";

const root = fileURLToPath(new URL("../..", import.meta.url));
const addon = `${root}runtime/cuda/build/Release/kiln_cuda.node`;
const hasNodeHeaders = [
  resolve(process.execPath, "../../include/node/node_api.h"),
  "/usr/include/node/node_api.h",
  `${root}.tools/node-headers/include/node/node_api.h`,
].some((f) => existsSync(f));
const realDriver = spawnSync("sh", ["-c", "ldconfig -p 2>/dev/null | grep -q libcuda.so.1"]).status === 0;

describe.runIf(hasCxx() && hasNodeHeaders)("cuda runtime without a GPU", () => {
  test("npm run build:cuda builds the addon offline", () => {
    if (!existsSync(addon)) {
      const r = spawnSync("bash", ["scripts/build-cuda-addon.sh"], { cwd: root, encoding: "utf8" });
      if (r.status !== 0) throw new Error(`build-cuda-addon.sh failed:\n${r.stdout}\n${r.stderr}`);
    }
    expect(existsSync(addon)).toBe(true);
  }, 180_000);

  test.runIf(!realDriver)("target 'cuda' is refused with the reason; other targets still run", async () => {
    expect(cudaUnavailableReason()).toMatch(/^no CUDA driver \(libcuda\.so\.1 not found/);
    expect(await k.availableTargets()).not.toContain("cuda");
    const f = (x: k.Tensor) => x.mul(2).sum();
    await expect(k.compile(f, [k.f32([3])], { target: "cuda" })).rejects.toMatchObject({
      code: "target-unavailable",
      message: expect.stringMatching(/^target 'cuda' is registered but cannot run on this machine: no CUDA driver \(libcuda\.so\.1 not found/),
    });
    const exe = await k.compile(f, [k.f32([3])], { target: "js" });
    expect(Array.from(((await exe.run([[1, 2, 3]])) as { data: ArrayLike<number> }).data)).toEqual([12]);
  });

  test("the device tests pass over a fake libcuda.so.1 (kernels emulated on the CPU)", () => {
    // cuda-gpu.test.ts names one prebuilt library of its kernels; cuda-model.test.ts (k.compileModel,
    // `kiln train --resume`) makes its kernels at run time, which the emulating nvcc compiles.
    const r = spawnSync("npx", ["vitest", "run", "--reporter=verbose", "test/targets/cuda-gpu.test.ts", "test/targets/cuda-model.test.ts"], {
      cwd: root,
      encoding: "utf8",
      env: { ...process.env, KILN_FAKE_CUDA: "1", KILN_CUDA_FUZZ_SEEDS: FULL ? "20" : "3", LD_LIBRARY_PATH: buildFakeDriver(), NVCC: buildEmulatingNvcc() },
    });
    const output = `${r.stdout}\n${r.stderr}`;
    if (r.status !== 0) throw new Error(`cuda-gpu.test.ts and cuda-model.test.ts over the fake driver failed:\n${output.slice(-6000)}`);
    expect(output).toMatch(/Tests\s+.*6 passed/);
    expect(output).toContain("a fake driver (CPU emulation)");
    expect(output).toContain("kiln train: 10 + 10 steps equal 20 steps, byte for byte");
  }, 400_000);
});
