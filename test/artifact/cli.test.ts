// `kiln compile` and `kiln run`, in-process through the CLI's main(): compile a model file's
// program into a folder, run the folder on a safetensors input written here by hand, and
// compare the printed loss with the same step run by k.compile on the interpreter.

import { cpSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, test } from "vitest";
import * as k from "kiln";
import { bufferIO } from "../../cli/io.ts";
import { main } from "../../cli/main.ts";
import { decodeSafetensors, encodeSafetensors } from "../../runtime/artifact/safetensors.ts";
import { trainStep } from "./fixtures/tiny-model.ts";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const model = "test/artifact/fixtures/tiny-model.ts";

async function kiln(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const io = bufferIO("", root);
  const code = await main(args, io);
  return { code, stdout: io.stdout, stderr: io.stderr };
}

const x = Float32Array.of(0.5, -1, 2, 0.25, -0.5, 1.5, 0, 1);
const y = Int32Array.of(2, 0);
let dir: string;
let inputFile: string;

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), "kiln-cli-artifact-"));
  inputFile = path.join(dir, "inputs.safetensors");
  writeFileSync(inputFile, encodeSafetensors({ x: { dtype: "f32", shape: [2, 4], data: x }, y: { dtype: "i32", shape: [2], data: y } }));
});

/** Losses of `steps` training steps on the interpreter, from the program's initial state. */
async function referenceLosses(steps: number): Promise<number[]> {
  const exe = await k.compile(trainStep, undefined, { target: "reference" });
  const losses: number[] = [];
  for (let i = 0; i < steps; i++) losses.push(((await exe.run({ x, y })) as { loss: k.HostOutput }).loss.data[0]!);
  return losses;
}

describe("kiln compile / kiln run", () => {
  test("compile writes the folder; run prints the loss of each step count like the interpreter", async () => {
    const out = path.join(dir, "tiny");
    const compiled = await kiln("compile", model, "--entry", "trainStep", "--target", "js", "--out", out);
    expect(compiled.stderr).toBe("");
    expect(compiled.code).toBe(0);
    expect(compiled.stdout).toMatch(/^wrote .*tiny: trainStep for js, \d+ kernel\(s\), 2 input\(s\), \d+ state tensor\(s\) in weights\.safetensors/);
    const manifest = JSON.parse(readFileSync(path.join(out, "manifest.json"), "utf8")) as { name: string; target: string };
    expect(manifest).toMatchObject({ name: "trainStep", target: "js" });

    const expected = await referenceLosses(2);
    const run = await kiln("run", out, "--input", inputFile, "--steps", "2", "--output", path.join(dir, "out.safetensors"));
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    const printed = Number(/^loss: f32\[\] \[(\S+)\]$/m.exec(run.stdout)![1]);
    expect(Math.abs(printed - expected[1]!) / expected[1]!).toBeLessThan(1e-5); // printed with 6 significant digits
    const written = decodeSafetensors(readFileSync(path.join(dir, "out.safetensors")), "out.safetensors").tensors;
    expect(written["loss"]!.data[0]).toBeCloseTo(expected[1]!, 5);
    expect(written["opt.step"]!.data[0]).toBe(2);
  });

  test("run refuses a corrupted folder (exit 1, the file named) and inputs that do not fit", async () => {
    const out = path.join(dir, "tiny-bad");
    expect((await kiln("compile", model, "--entry", "trainStep", "--out", out)).code).toBe(0);
    const broken = path.join(dir, "tiny-broken");
    cpSync(out, broken, { recursive: true });
    writeFileSync(path.join(broken, "graph.kir"), "graph @other() {}\n");
    const run = await kiln("run", broken, "--input", inputFile);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/^error: graph\.kir: sha256 mismatch \(manifest says [0-9a-f]{64}, file has [0-9a-f]{64}\)\n$/);

    const wrongShape = path.join(dir, "wrong.safetensors");
    writeFileSync(wrongShape, encodeSafetensors({ x: { dtype: "f32", shape: [8], data: x }, y: { dtype: "i32", shape: [2], data: y } }));
    const mismatch = await kiln("run", out, "--input", wrongShape);
    expect(mismatch.code).toBe(1);
    expect(mismatch.stderr).toBe(`error: ${wrongShape}: tensor 'x' is f32[8], the artifact expects f32[2,4]\n`);
    const missing = await kiln("run", out);
    expect(missing.stderr).toBe("error: trainStep needs input(s) x: f32[2,4], y: i32[2]: pass them with --input <file.safetensors>\n");
  });

  test("usage errors: no --out, a file with several programs and no --entry", async () => {
    const noOut = await kiln("compile", model, "--entry", "trainStep");
    expect(noOut.code).toBe(2);
    expect(noOut.stderr).toMatch(/^kiln compile: missing --out <dir>\n/);
    const several = await kiln("compile", model, "--out", path.join(dir, "x"));
    expect(several.code).toBe(1);
    expect(several.stderr).toBe(`error: '${model}' exports 2 programs (scaleSum, trainStep): pick one with --entry\n`);
    const notAFolder = await kiln("run", path.join(dir, "nowhere"));
    expect(notAFolder.code).toBe(1);
    expect(notAFolder.stderr).toMatch(/^error: manifest\.json: missing \(is '.*nowhere' an artifact folder\?\)\n$/);
  });
});
