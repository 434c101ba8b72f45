// Parameter initialization (k.nn.init) with PyTorch's defaults, drawn on the host from the
// threefry counter-based generator: k.manualSeed(seed) resets a global (seed, stream) pair and
// every draw takes the next stream, so one seed gives the same weights on every target.
// An init takes its stream when called and draws the values when they are first read
// (Parameter.drawLater): counter-based values do not depend on when they are computed, and a
// model whose weights are then loaded (exe.loadState, loadStateDict) never draws them — the
// draw was most of building an MLP at a cold start (issue 14).

import { isFloat } from "../compiler/ir/dtype.ts";
import { KilnError } from "../compiler/util/errors.ts";
import { formatShape } from "../compiler/util/shape.ts";
import { rngUniform } from "../compiler/util/threefry.ts";
import type { Parameter } from "./module.ts";

const generator = { seed: 0, stream: 0 };

/** torch.manual_seed: the next parameters are drawn from `seed`, starting again at stream 0. */
export function manualSeed(seed: number): void {
  if (!Number.isInteger(seed) || seed < -2147483648 || seed > 4294967295)
    throw new KilnError({ code: "invalid-argument", message: `manualSeed: seed must be a 32-bit integer, got ${seed}` });
  generator.seed = seed >>> 0;
  generator.stream = 0;
}

/** `count` uniform values in [0, 1) from the next stream of the global generator. */
export function nextUniform(count: number): Float64Array {
  return laterUniform(count)();
}

/** Takes the global generator's next stream now; the returned function draws its `count` uniform values. */
function laterUniform(count: number): () => Float64Array {
  const { seed } = generator;
  const stream = generator.stream++;
  return () => rngUniform(seed, stream, count);
}

/** `count` values in [low, high). */
export function uniformValues(count: number, low: number, high: number): Float64Array {
  return laterUniformValues(count, low, high)();
}

function laterUniformValues(count: number, low: number, high: number): () => Float64Array {
  const draw = laterUniform(count);
  return () => {
    const u = draw();
    for (let i = 0; i < count; i++) u[i] = low + (high - low) * u[i]!;
    return u;
  };
}

/**
 * `count` values of N(mean, std²) by Box–Muller over one stream of 2·count uniforms (the
 * cosine half of each pair; 1 - u keeps the logarithm's argument in (0, 1]).
 */
export function normalValues(count: number, mean: number, std: number): Float64Array {
  return laterNormalValues(count, mean, std)();
}

function laterNormalValues(count: number, mean: number, std: number): () => Float64Array {
  const draw = laterUniform(2 * count);
  return () => {
    const u = draw();
    const out = new Float64Array(count);
    for (let i = 0; i < count; i++) {
      const radius = Math.sqrt(-2 * Math.log(1 - u[2 * i]!));
      out[i] = mean + std * radius * Math.cos(2 * Math.PI * u[2 * i + 1]!);
    }
    return out;
  };
}

/**
 * torch.nn.init._calculate_fan_in_and_fan_out: dim 1 × receptive field is fan_in, dim 0 ×
 * receptive field is fan_out (a ConvTranspose2d weight [in, out/g, kH, kW] gets out/g·kH·kW).
 */
export function fanInAndFanOut(shape: readonly number[]): { fanIn: number; fanOut: number } {
  if (shape.length < 2)
    throw new KilnError({ code: "invalid-argument", message: `fan in and fan out need a tensor with at least 2 dims, got ${formatShape(shape)}` });
  const receptive = shape.slice(2).reduce((a, b) => a * b, 1);
  return { fanIn: shape[1]! * receptive, fanOut: shape[0]! * receptive };
}

/** Gives `p` the values `draw` returns (a fresh array, taken, not copied), drawn when first read. */
function fill(p: Parameter, draw: () => Float64Array): Parameter {
  if (!isFloat(p.dtype)) throw new KilnError({ code: "invalid-argument", message: `cannot initialize '${p.path}': it is ${p.dtype}, not f32` });
  p.drawLater(draw);
  return p;
}

const count = (p: Parameter): number => p.shape.reduce((a, b) => a * b, 1);

export const uniform_ = (p: Parameter, low = 0, high = 1): Parameter => fill(p, laterUniformValues(count(p), low, high));
export const normal_ = (p: Parameter, mean = 0, std = 1): Parameter => fill(p, laterNormalValues(count(p), mean, std));
export const constant_ = (p: Parameter, value: number): Parameter => fill(p, () => new Float64Array(count(p)).fill(value));
export const zeros_ = (p: Parameter): Parameter => constant_(p, 0);
export const ones_ = (p: Parameter): Parameter => constant_(p, 1);

/**
 * kaiming_uniform_ with leaky-ReLU slope `a` and fan_in mode: bound = gain·sqrt(3/fan_in),
 * gain = sqrt(2/(1+a²)). PyTorch's Linear/Conv default a = sqrt(5) gives bound 1/sqrt(fan_in).
 */
export function kaimingUniform_(p: Parameter, a = 0): Parameter {
  const { fanIn } = fanInAndFanOut(p.shape);
  const gain = Math.sqrt(2 / (1 + a * a));
  const bound = fanIn > 0 ? gain * Math.sqrt(3 / fanIn) : 0;
  return uniform_(p, -bound, bound);
}

/** xavier_uniform_: bound = gain·sqrt(6/(fan_in + fan_out)). */
export function xavierUniform_(p: Parameter, gain = 1): Parameter {
  const { fanIn, fanOut } = fanInAndFanOut(p.shape);
  const bound = gain * Math.sqrt(6 / (fanIn + fanOut));
  return uniform_(p, -bound, bound);
}

/** The bias init PyTorch's Linear/Conv layers use: U(-1/sqrt(fan_in), 1/sqrt(fan_in)). */
export function biasUniform_(bias: Parameter, fanIn: number): Parameter {
  const bound = fanIn > 0 ? 1 / Math.sqrt(fanIn) : 0;
  return uniform_(bias, -bound, bound);
}
