// The standalone CUDA artifact: the shared artifact folder (manifest.json, kernels/*.cu,
// weights.safetensors, graph.kir; compiler/emit-artifact.ts) plus kernels.cu (the whole
// module), kernels.ptx (when nvcc is here), the C++ host program (runtime/cuda/standalone/
// main.cpp with the driver declarations it shares with the addon) and build.sh, which needs
// only nvcc: `./build.sh && ./run` runs the graph natively, without Node or Kiln.

import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { buildArtifactFolder, writeFolderOrExplain } from "./artifact-folder.ts";
import type { Graph } from "../compiler/ir/types.ts";
import { KilnError } from "../compiler/util/errors.ts";
import { sha256Hex } from "../runtime/artifact/hash.ts";
import { MANIFEST_FILE } from "../runtime/artifact/manifest.ts";
import type { NamedTensor } from "../runtime/artifact/safetensors.ts";
import { compileCuda, type CudaCompileOptions } from "./cuda.ts";

/** The PTX in the folder targets this architecture; the driver JIT-compiles it for newer GPUs. */
export const STANDALONE_PTX_ARCH = "sm_80";

// runtime/cuda's C++ sources: in the checkout, or at the package root when this runs from dist/targets/.
const packageRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const runtimeDir = path.join(path.basename(packageRoot) === "dist" ? path.dirname(packageRoot) : packageRoot, "runtime/cuda");

const BUILD_SH = `#!/usr/bin/env bash
# Builds this Kiln CUDA artifact with nvcc alone: kernels.cu -> kernels.ptx (for ARCH, default
# ${STANDALONE_PTX_ARCH}; the driver JIT-compiles PTX for newer GPUs) and main.cpp -> ./run. The host
# program dlopens libcuda.so.1 at run time, so it links without the driver or its stub library.
set -euo pipefail
cd "$(dirname "$0")"
NVCC="\${NVCC:-nvcc}"
ARCH="\${ARCH:-${STANDALONE_PTX_ARCH}}"
"$NVCC" -ptx -arch="$ARCH" kernels.cu -o kernels.ptx
"$NVCC" -O2 -std=c++17 -o run main.cpp -ldl
echo "built ./run (kernels for $ARCH); run it with ./run [--input FILE.safetensors] [--output FILE.safetensors] [--steps N] [--check-only]"
`;

export interface CudaArtifactInput {
  readonly graph: Graph;
  /** Initial values of the state inputs (parameters, optimizer state). */
  readonly state?: Readonly<Record<string, NamedTensor>>;
  readonly options?: CudaCompileOptions;
  /** nvcc for kernels.ptx; default: found on PATH or in /usr/local. Without one build.sh makes it. */
  readonly nvcc?: string | false;
}

export interface WrittenCudaArtifact {
  readonly dir: string;
  readonly files: readonly string[];
  readonly kernels: number;
  /** Whether kernels.ptx was written now (else build.sh writes it). */
  readonly ptx: boolean;
}

function findNvcc(): string | undefined {
  for (const c of [process.env["NVCC"], "/usr/local/cuda/bin/nvcc", "/usr/local/bin/nvcc"]) if (c && existsSync(c)) return c;
  const r = spawnSync("sh", ["-c", "command -v nvcc"], { encoding: "utf8" });
  return r.status === 0 && r.stdout.trim() ? r.stdout.trim() : undefined;
}

/** kernels.ptx, compiled in a scratch folder (the artifact folder appears only whole). */
function ptxOf(nvcc: string, source: string, name: string, dir: string): Uint8Array {
  mkdirSync(path.dirname(path.resolve(dir)), { recursive: true });
  const scratch = mkdtempSync(`${path.resolve(dir)}.kiln-ptx-`);
  try {
    writeFileSync(path.join(scratch, "kernels.cu"), source);
    const r = spawnSync(nvcc, ["-ptx", `-arch=${STANDALONE_PTX_ARCH}`, "kernels.cu", "-o", "kernels.ptx"], { cwd: scratch, encoding: "utf8" });
    if (r.status !== 0) throw new KilnError({ code: "unsupported", message: `nvcc -ptx failed on the generated kernels of '${name}':\n${r.stderr}` });
    return readFileSync(path.join(scratch, "kernels.ptx"));
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

export function writeCudaArtifact(dir: string, input: CudaArtifactInput): WrittenCudaArtifact {
  const { artifact } = compileCuda(input.graph, input.options);
  const folder = buildArtifactFolder({ artifact, graph: input.graph, ...(input.state ? { state: input.state } : {}), withoutLoader: true });
  const files = new Map(folder.files);
  const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text);
  files.set("kernels.cu", utf8(artifact.cudaSource));
  files.set("main.cpp", readFileSync(path.join(runtimeDir, "standalone/main.cpp")));
  files.set("cuda-driver.h", readFileSync(path.join(runtimeDir, "addon/cuda-driver.h")));
  files.set("build.sh", utf8(BUILD_SH));
  const nvcc = input.nvcc === false ? undefined : (input.nvcc ?? findNvcc());
  if (nvcc) files.set("kernels.ptx", ptxOf(nvcc, artifact.cudaSource, artifact.name, dir));
  // The manifest lists the sha256 of every other file, these included.
  const hashes = Object.fromEntries(
    [...files]
      .filter(([name]) => name !== MANIFEST_FILE)
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([name, bytes]) => [name, sha256Hex(bytes)]),
  );
  files.set(MANIFEST_FILE, utf8(`${JSON.stringify({ ...folder.manifest, files: hashes }, null, 2)}\n`));
  writeFolderOrExplain(dir, files, { executable: ["build.sh"] });
  return { dir, files: [...files.keys()].sort(), kernels: artifact.kernels.length, ptx: nvcc !== undefined };
}
