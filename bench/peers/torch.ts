// PyTorch as a peer, in a child Python process (bench/peers/torch-peer.py) fed the same case
// data through raw files; it runs where `python3 -c "import torch"` works (or $KILN_PYTHON, or
// Debian's /usr/bin/python3), else it is marked unavailable. Steps time themselves in Python,
// so the pipe to the child is not part of the step. Debian's python3-torch calls the reference
// BLAS unless libopenblas0-pthread is installed: the note says which library it loaded.

import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from "node:child_process";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { createInterface } from "node:readline";
import type { BenchCase, CaseData } from "../cases/case.ts";
import type { PreparedStep, Runner } from "../runner.ts";

const SCRIPT = path.join(path.dirname(new URL(import.meta.url).pathname), "torch-peer.py");

/** The first Python here that imports torch, or undefined. */
export function torchPython(): string | undefined {
  const candidates = [process.env["KILN_PYTHON"], "python3", "/usr/bin/python3"].filter((c): c is string => c !== undefined && c !== "");
  return candidates.find((py) => spawnSync(py, ["-c", "import torch"], { stdio: "ignore", timeout: 60000 }).status === 0);
}

/** Writes the case's arrays as raw little-endian files in `dir`; returns their description for the child. */
export function writeCaseArrays(data: CaseData, dir: string): Record<string, { file: string; dtype: string; shape: number[] }> {
  mkdirSync(dir, { recursive: true });
  const arrays: Record<string, { file: string; dtype: string; shape: number[] }> = {};
  for (const [name, array] of Object.entries(data)) {
    const file = path.join(dir, `${name}.bin`);
    writeFileSync(file, new Uint8Array(array.buffer, array.byteOffset, array.byteLength));
    arrays[name] = { file, dtype: array instanceof Int32Array ? "i32" : "f32", shape: [array.length] };
  }
  writeFileSync(path.join(dir, "arrays.json"), JSON.stringify(arrays));
  return arrays;
}

/** Shapes the child reshapes the flat arrays to, per case (the rest stay flat or are reshaped by the step). */
const SHAPES: Readonly<Record<string, Readonly<Record<string, readonly number[]>>>> = {
  matmul: { a: [1024, 1024], b: [1024, 1024] },
  softmax: { x: [4096, 1024] },
};

export function torchRunner(cacheDir: string, threads = os.availableParallelism()): Runner {
  const notes: string[] = [];
  let child: ChildProcessWithoutNullStreams | undefined;
  let replies: AsyncIterator<string> | undefined;
  const ask = async (msg: object): Promise<Record<string, unknown>> => {
    if (!child || !replies) throw new Error("the torch child is not running");
    child.stdin.write(`${JSON.stringify(msg)}\n`);
    const line = await replies.next();
    if (line.done) throw new Error("the torch child exited");
    const reply = JSON.parse(line.value) as Record<string, unknown>;
    if (reply["ok"] !== true) throw new Error(String(reply["error"]));
    return reply;
  };
  let version = "torch";
  return {
    name: "pytorch",
    get peer() {
      return version;
    },
    async init() {
      const python = torchPython();
      if (!python) throw new Error("unavailable: no python3 here imports torch (set KILN_PYTHON to one that does)");
      child = spawn(python, [SCRIPT], { stdio: ["pipe", "pipe", "pipe"] });
      child.stderr.on("data", () => undefined);
      child.unref();
      (child.stdin as unknown as { unref?: () => void }).unref?.();
      replies = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
      const info = await ask({ cmd: "init", threads });
      version = `torch@${String(info["version"])} (${python})`;
      notes.push(`pytorch: ${String(info["threads"])} thread(s), BLAS ${String(info["blas"])}; each step times itself in the child process`);
    },
    async prepare(benchCase: BenchCase, data: CaseData): Promise<PreparedStep> {
      const dir = path.join(cacheDir, "torch", benchCase.id);
      const arrays = writeCaseArrays(data, dir);
      for (const [name, shape] of Object.entries(SHAPES[benchCase.id] ?? {})) if (arrays[name]) arrays[name].shape = [...shape];
      await ask({ cmd: "prepare", case: benchCase.id, arrays });
      let lastMs = 0;
      let stepCount = 0;
      const outFile = path.join(dir, "out.bin");
      return {
        async step() {
          // Only the first two outputs are compared: later steps write none.
          const write = stepCount++ < 2;
          const reply = await ask({ cmd: "step", ...(write ? { out: outFile } : {}) });
          lastMs = reply["ms"] as number;
          if (!write) return new Float32Array(0);
          const bytes = readFileSync(outFile);
          return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
        },
        selfTimedMs: () => lastMs,
        dispose: () => rmSync(dir, { recursive: true, force: true }),
      };
    },
    notes: () => notes,
  };
}
