// `kiln train` on test/cli/fixtures/tiny-train.ts (a dropout MLP, 5 steps an epoch): on every
// target here, 10 steps then --resume to 20 gives the 20-step run's state byte for byte and its
// losses, and those losses follow the float64 reference interpreter's; the plain and TTY
// progress, checkpoints, the loss curve, and the errors for a bad command or checkpoint.

import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, test } from "vitest";
import * as k from "kiln";
import { bufferIO } from "../../cli/io.ts";
import { main } from "../../cli/main.ts";
import { LOSSES_KEY, STEP_KEY } from "../../cli/train-loop.ts";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const fixture = "test/cli/fixtures/tiny-train.ts";
const fixtureArgs = [fixture, "-e", "training"];
const targets = await k.availableTargets();
const scratch = (): string => mkdtempSync(path.join(os.tmpdir(), "kiln-train-"));

async function train(args: readonly string[], tty = false): Promise<{ code: number; stdout: string; stderr: string }> {
  const buffer = bufferIO("", root);
  const io = tty ? Object.create(buffer, { isTTY: { value: true } }) : buffer;
  const code = await main(["train", ...args], io);
  return { code, stdout: buffer.stdout, stderr: buffer.stderr };
}

function checkpoint(file: string): { tensors: Map<string, Uint8Array>; step: string | undefined; losses: number[] } {
  const read = k.safetensors.read(file);
  const tensors = new Map([...read.tensors].map(([name, t]) => [name, new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength)]));
  return { tensors, step: read.metadata[STEP_KEY], losses: JSON.parse(read.metadata[LOSSES_KEY] ?? "[]") as number[] };
}

describe("kiln train: 10 + 10 steps equal 20 steps", () => {
  const referenceLosses = (async () => {
    const dir = scratch();
    const run = await train([fixture, "-e", "training", "--target", "reference", "--out", dir]);
    expect(run.code, run.stderr).toBe(0);
    return checkpoint(path.join(dir, "ckpt-20.safetensors")).losses;
  })();

  test.each(targets)("%s", async (target) => {
    const whole = scratch();
    const split = scratch();
    const straight = await train([fixture, "-e", "training", "--target", target, "--out", whole]);
    expect(straight.code, straight.stderr).toBe(0);
    const first = await train([fixture, "-e", "training", "--target", target, "--out", split, "--steps", "10"]);
    expect(first.code, first.stderr).toBe(0);
    const resumed = await train([fixture, "-e", "training", "--target", target, "--out", split, "--resume", path.join(split, "ckpt-10.safetensors")]);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stdout).toContain("resumed from ckpt-10.safetensors at step 10");

    const a = checkpoint(path.join(whole, "ckpt-20.safetensors"));
    const b = checkpoint(path.join(split, "ckpt-20.safetensors"));
    expect(b.step).toBe("20");
    expect([...b.tensors.keys()]).toEqual([...a.tensors.keys()]);
    expect([...a.tensors.keys()]).toContain("opt.step");
    for (const [name, bytes] of a.tensors) expect(Buffer.from(b.tensors.get(name)!).equals(Buffer.from(bytes)), name).toBe(true);
    expect(b.losses).toEqual(a.losses);
    expect(a.losses).toHaveLength(20);

    // Independent of the resume logic: the same 20 losses as the float64 interpreter.
    const reference = await referenceLosses;
    a.losses.forEach((loss, i) => expect(Math.abs(loss - reference[i]!), `step ${i + 1}`).toBeLessThan(1e-4));
  });
});

test("without a module: programs compiled apart get the trained parameters copied, and resume is as exact (js)", async () => {
  const [whole, split] = [scratch(), scratch()];
  const args = [fixture, "-e", "apart", "--target", "js"];
  const straight = await train([...args, "--out", whole]);
  expect(straight.code, straight.stderr).toBe(0);
  expect((await train([...args, "--out", split, "--steps", "10"])).code).toBe(0);
  expect((await train([...args, "--out", split, "--resume", path.join(split, "ckpt-10.safetensors")])).code).toBe(0);
  const [a, b] = [checkpoint(path.join(whole, "ckpt-20.safetensors")), checkpoint(path.join(split, "ckpt-20.safetensors"))];
  for (const [name, bytes] of a.tensors) expect(Buffer.from(b.tensors.get(name)!).equals(Buffer.from(bytes)), name).toBe(true);
  // The evaluation saw trained weights: the accuracy moved off the first epoch's.
  expect(straight.stdout).toMatch(/epoch 4\/4 step 20\/20: accuracy \d+\.\d\d%/);
});

test("hyper(step) reaches the step: with lr 0 the parameters stay as initialized while opt.step counts", async () => {
  const dir = scratch();
  const run = await train([fixture, "-e", "still", "--target", "js", "--out", dir, "--steps", "3"]);
  expect(run.code, run.stderr).toBe(0);
  const saved = k.safetensors.read(path.join(dir, "ckpt-3.safetensors")).tensors;
  const { net } = await import("./fixtures/tiny-train.ts");
  for (const [name, initial] of Object.entries(net.stateDict()))
    expect(Array.from(saved.get(name)!.data as Float32Array), name).toEqual(Array.from(Float32Array.from(initial.data)));
  expect(Array.from(saved.get("opt.step")!.data as Int32Array)).toEqual([3]);
});

describe("kiln train: output", () => {
  test("plain lines off a TTY: epochs, evaluation per epoch, checkpoints, the closing text, a loss curve", async () => {
    const dir = scratch();
    const run = await train([...fixtureArgs, "--target", "js", "--out", dir, "--log-every", "5"]);
    expect(run.code, run.stderr).toBe(0);
    const lines = run.stdout.split("\n");
    expect(lines[0]).toMatch(/^tiny: compiled for js in [\d.]+ s \(\d+ kernels per step\); 20 steps$/);
    expect(lines.filter((l) => /^epoch \d\/4 step \d+\/20: loss [\d.]+, [\d.]+ steps\/s, ETA [\d:?]+, js$/.test(l)).map((l) => l.split(":")[0])).toEqual([
      "epoch 1/4 step 5/20",
      "epoch 2/4 step 10/20",
      "epoch 3/4 step 15/20",
      "epoch 4/4 step 20/20",
    ]);
    expect(lines.filter((l) => / accuracy \d+\.\d\d%$/.test(l))).toHaveLength(4);
    expect(run.stdout).toContain("finished after 20 steps\n");
    expect(run.stdout).not.toContain("\r");
    for (const step of [5, 10, 15, 20]) expect(existsSync(path.join(dir, `ckpt-${step}.safetensors`)), `ckpt-${step}`).toBe(true);
    const svg = readFileSync(path.join(dir, "loss-curve.svg"), "utf8");
    expect(/<path d="([^"]*)" fill="none" stroke="#bbb"/.exec(svg)![1]!.match(/[ML]/g)).toHaveLength(20);
  });

  test("a TTY gets one redrawn bar with epoch, step, loss, steps/s, ETA and target", async () => {
    const run = await train([...fixtureArgs, "--target", "js", "--out", scratch(), "--steps", "5"], true);
    expect(run.code, run.stderr).toBe(0);
    const redraw = "\r\x1b[2K"; // carriage return, then erase the line
    expect(run.stdout.startsWith(redraw)).toBe(false);
    expect(run.stdout.split(redraw).some((part) => /^epoch 1\/1 step 5\/5 \[#{24}\] loss [\d.]+, [\d.]+ steps\/s, ETA 0:00, js/.test(part))).toBe(true);
    expect(run.stdout).toContain(`${redraw}epoch 1/1 step 5/5: accuracy`);
  });
});

describe("kiln train: errors", () => {
  test("a checkpoint of another model is refused whole, naming the entries", async () => {
    const dir = scratch();
    const file = path.join(dir, "other.safetensors");
    k.safetensors.write(file, { "0.weight": { dtype: "f32", shape: [2, 2], data: new Float32Array(4) } }, { [STEP_KEY]: "3" });
    const run = await train([...fixtureArgs, "--target", "js", "--out", dir, "--resume", file]);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/^error: model\.loadState: .*other\.safetensors: missing .*0\.bias/m);
  });

  test("a safetensors file without a step is not a kiln train checkpoint", async () => {
    const dir = scratch();
    const file = path.join(dir, "weights.safetensors");
    k.safetensors.write(file, { w: { dtype: "f32", shape: [1], data: new Float32Array(1) } });
    const run = await train([...fixtureArgs, "--target", "js", "--out", dir, "--resume", file]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`is not a kiln train checkpoint (its metadata has no ${STEP_KEY})`);
  });

  test("a file without k.training, and a bad --steps", async () => {
    const none = await train(["test/cli/fixtures/two-programs.ts"]);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain("'test/cli/fixtures/two-programs.ts' exports no k.training");
    const steps = await train([...fixtureArgs, "--steps", "ten"]);
    const several = await train([fixture]);
    expect(several.code).toBe(1);
    expect(several.stderr).toContain("exports several k.training values (apart, still, training): pick one with --entry");
    expect(steps.code).toBe(2);
    expect(steps.stderr).toContain("--steps must be a positive integer, got 'ten'");
  });

  test("k.training refuses an unknown key and a setup without steps, naming them", () => {
    const train = k.program((x: k.Tensor) => x.sum(), [k.f32([2])]);
    const batch = () => [new Float32Array(2)];
    expect(() => k.training({ name: "t", train, batch, steps: 3, stepz: 3 } as never)).toThrow(/k\.training: unknown option 'stepz'/);
    expect(() => k.training({ name: "t", train, batch } as never)).toThrow("k.training: steps is required");
    expect(() => k.training({ name: "a/b", train, batch, steps: 1 })).toThrow(/name must be a word usable as a folder name/);
  });

  test("kiln --help lists train", async () => {
    const io = bufferIO("", root);
    expect(await main(["--help"], io)).toBe(0);
    expect(io.stdout).toMatch(/^ {2}train +run the training setup/m);
  });
});
