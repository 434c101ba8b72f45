// `kiln train <file>`: runs the k.training setup a model file exports (cli/train-loop.ts),
// drawing progress as one redrawn line on a terminal and as plain lines otherwise, and
// leaves checkpoints and a loss-curve SVG in the run's folder.

import { writeFileSync } from "node:fs";
import path from "node:path";
import { assertNever, KilnError } from "../compiler/util/errors.ts";
import { lossCurveSvg } from "../dsl/loss-curve.ts";
import { isTraining, type Training } from "../dsl/training.ts";
import { parseCommandArgs, expectPositionals, UsageError } from "./args.ts";
import type { Command } from "./command.ts";
import { resolveFrom, type CliIO } from "./io.ts";
import { loadModelFile } from "./load-programs.ts";
import { runTraining, type TrainingEvent } from "./train-loop.ts";

const usage = "kiln train <model.ts> [--steps <n>] [--target <name>] [--out <dir>] [--resume <ckpt>]";

export const trainCommand: Command = {
  name: "train",
  summary: "run the training setup a model file exports (k.training): progress, evaluation, checkpoints",
  usage,
  help: [
    "Imports <model.ts>, takes its k.training export and runs it: each step's batch, periodic",
    "evaluation, checkpoints <out>/ckpt-<step>.safetensors (written atomically) and a loss curve",
    "<out>/loss-curve.svg. A terminal gets a progress bar; a pipe gets plain lines.",
    "",
    "options:",
    "  --steps <n>         total steps, counted from 0 (default: the setup's)",
    "  --target <name>     js, wasm (cpu), webgpu, cuda, reference, or auto (default)",
    "  --out <dir>         the run's folder (default out/<name>)",
    "  --resume <ckpt>     continue from a checkpoint of this setup: the same batches, seeds and",
    "                      state as the uninterrupted run, so 10 + 10 steps equal 20",
    "  --entry, -e <name>  the export to run when the file has several k.training values",
    "  --log-every <n>     steps between plain progress lines (default: about 20 lines a run)",
  ].join("\n"),
  flags: {
    steps: { type: "string" },
    target: { type: "string" },
    out: { type: "string" },
    resume: { type: "string" },
    entry: { type: "string", short: "e" },
    "log-every": { type: "string" },
  },
  async run(argv, io) {
    const args = parseCommandArgs(argv, this.flags, usage);
    const [file] = expectPositionals(args, ["model.ts"], usage);
    const count = (flag: string): number | undefined => {
      const text = args.flags[flag] as string | undefined;
      if (text === undefined) return undefined;
      if (!/^\d+$/.test(text) || Number(text) < 1) throw new UsageError(`--${flag} must be a positive integer, got '${text}'`, usage);
      return Number(text);
    };
    const steps = count("steps");
    const logEvery = count("log-every");
    const setup = selectTraining(await loadModelFile(io.cwd, file!), args.flags["entry"] as string | undefined, file!);
    const outDir = resolveFrom(io.cwd, (args.flags["out"] as string | undefined) ?? path.join("out", setup.name));
    const resume = args.flags["resume"] as string | undefined;
    const totalSteps = steps ?? setup.steps;
    const progress = new Progress(io, setup, totalSteps, logEvery ?? Math.max(1, Math.round(totalSteps / 20)));
    const result = await runTraining(setup, {
      outDir,
      ...(args.flags["target"] !== undefined ? { target: args.flags["target"] as string } : {}),
      ...(steps !== undefined ? { steps } : {}),
      ...(resume !== undefined ? { resume: resolveFrom(io.cwd, resume) } : {}),
      onEvent: (event) => progress.show(event),
    });
    progress.clear();
    const svg = path.join(outDir, "loss-curve.svg");
    writeFileSync(
      svg,
      lossCurveSvg(result.losses, {
        title: `${setup.name} on ${result.target}: training loss per step`,
        ...(setup.stepsPerEpoch !== undefined ? { stepsPerEpoch: setup.stepsPerEpoch } : {}),
      }),
    );
    io.out(`wrote ${path.relative(io.cwd, result.checkpoints.at(-1) ?? outDir)} and ${path.relative(io.cwd, svg)}\n`);
  },
};

function selectTraining(mod: Record<string, unknown>, entry: string | undefined, file: string): Training {
  const found = Object.entries(mod)
    .filter(([, v]) => isTraining(v))
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)) as [string, Training][];
  if (found.length === 0)
    throw new KilnError({
      code: "invalid-argument",
      message: `'${file}' exports no k.training (export one: export const training = k.training({ name, train, batch, steps }))`,
    });
  if (entry !== undefined) {
    const hit = found.find(([name]) => name === entry);
    if (!hit)
      throw new KilnError({ code: "invalid-argument", message: `'${file}' has no k.training '${entry}' (it has: ${found.map(([n]) => n).join(", ")})` });
    return hit[1];
  }
  if (found.length > 1)
    throw new KilnError({
      code: "invalid-argument",
      message: `'${file}' exports several k.training values (${found.map(([n]) => n).join(", ")}): pick one with --entry`,
    });
  return found[0]![1];
}

const formatMetric = (name: string, value: number): string =>
  /acc/i.test(name) && value >= 0 && value <= 1 ? `${name} ${(100 * value).toFixed(2)}%` : `${name} ${value.toFixed(4)}`;

/** m:ss or h:mm:ss. */
function duration(seconds: number): string {
  if (!Number.isFinite(seconds)) return "?";
  const s = Math.round(seconds);
  const clock = `${Math.floor((s % 3600) / 60)}:${String(s % 60).padStart(2, "0")}`;
  return s >= 3600 ? `${Math.floor(s / 3600)}:${clock.padStart(5, "0")}` : clock;
}

/** Draws training events: one redrawn bar on a TTY, a plain line every `logEvery` steps elsewhere. */
class Progress {
  private target = "?";
  private barShown = false;
  private lastDraw = 0;
  private lossSum = 0;
  private lossCount = 0;

  constructor(
    private readonly io: CliIO,
    private readonly setup: Training,
    private readonly totalSteps: number,
    private readonly logEvery: number,
  ) {}

  show(event: TrainingEvent): void {
    switch (event.kind) {
      case "compiled":
        this.target = event.target;
        this.line(
          `${this.setup.name}: compiled for ${event.target} in ${(event.ms / 1000).toFixed(1)} s${event.kernels !== undefined ? ` (${event.kernels} kernels per step)` : ""}; ${this.totalSteps} steps`,
        );
        return;
      case "resumed":
        this.line(`resumed from ${path.basename(event.file)} at step ${event.step}`);
        return;
      case "step":
        return this.step(event.step, event.loss, event.stepsPerSecond);
      case "eval":
        this.line(
          `${this.where(event.step)}: ${Object.entries(event.metrics)
            .map(([n, v]) => formatMetric(n, v))
            .join(", ")}`,
        );
        return;
      case "checkpoint":
        this.line(`checkpoint ${path.relative(this.io.cwd, event.file)}`);
        return;
      case "finish":
        this.line(event.text.trimEnd());
        return;
      default:
        return assertNever(event, "training event");
    }
  }

  clear(): void {
    if (this.barShown) this.io.out("\r\x1b[2K");
    this.barShown = false;
  }

  private where(step: number): string {
    const perEpoch = this.setup.stepsPerEpoch;
    const epochs =
      perEpoch === undefined
        ? ""
        : `epoch ${Math.min(Math.floor((step - 1) / perEpoch) + 1, Math.ceil(this.totalSteps / perEpoch))}/${Math.ceil(this.totalSteps / perEpoch)} `;
    return `${epochs}step ${step}/${this.totalSteps}`;
  }

  private step(step: number, loss: number, stepsPerSecond: number): void {
    this.lossSum += loss;
    this.lossCount++;
    const eta = stepsPerSecond > 0 ? duration((this.totalSteps - step) / stepsPerSecond) : "?";
    const mean = this.lossSum / this.lossCount;
    const stats = `loss ${mean.toFixed(4)}, ${stepsPerSecond.toFixed(1)} steps/s, ETA ${eta}, ${this.target}`;
    if (this.io.isTTY) {
      const now = performance.now();
      if (now - this.lastDraw < 100 && step !== this.totalSteps) return;
      this.lastDraw = now;
      const width = 24;
      const filled = Math.round((width * step) / this.totalSteps);
      this.io.out(`\r\x1b[2K${this.where(step)} [${"#".repeat(filled)}${".".repeat(width - filled)}] ${stats}`);
      this.barShown = true;
      this.lossSum = this.lossCount = 0;
    } else if (step % this.logEvery === 0 || step === this.totalSteps) {
      this.io.out(`${this.where(step)}: ${stats}\n`);
      this.lossSum = this.lossCount = 0;
    }
  }

  /** A line of its own: on a TTY the bar is cleared first and redrawn by the next step. */
  private line(text: string): void {
    this.clear();
    this.io.out(`${text}\n`);
  }
}
