// Parameter initialization (k.nn.init) with PyTorch's defaults, drawn on the host from the
// threefry counter-based generator: k.manualSeed(seed) resets a global (seed, stream) pair and
// every draw takes the next stream, so one seed gives the same weights on every target.

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
  return rngUniform(generator.seed, generator.stream++, count);
}

/** `count` values in [low, high). */
export function uniformValues(count: number, low: number, high: number): Float64Array {
  const u = nextUniform(count);
  for (let i = 0; i < count; i++) u[i] = low + (high - low) * u[i]!;
  return u;
}

/**
 * `count` values of N(mean, std²) by Box–Muller over one stream of 2·count uniforms (the
 * cosine half of each pair; 1 - u keeps the logarithm's argument in (0, 1]).
 */
export function normalValues(count: number, mean: number, std: number): Float64Array {
  const u = nextUniform(2 * count);
  const out = new Float64Array(count);
  for (let i = 0; i < count; i++) {
    const radius = Math.sqrt(-2 * Math.log(1 - u[2 * i]!));
    out[i] = mean + std * radius * Math.cos(2 * Math.PI * u[2 * i + 1]!);
  }
  return out;
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

function fill(p: Parameter, values: ArrayLike<number>): Parameter {
  if (!isFloat(p.dtype)) throw new KilnError({ code: "invalid-argument", message: `cannot initialize '${p.path}': it is ${p.dtype}, not f32` });
  p.data = values instanceof Float64Array ? values : new Float64Array(values); // the generators' arrays are fresh: taken, not copied
  return p;
}

const count = (p: Parameter): number => p.shape.reduce((a, b) => a * b, 1);

export const uniform_ = (p: Parameter, low = 0, high = 1): Parameter => fill(p, uniformValues(count(p), low, high));
export const normal_ = (p: Parameter, mean = 0, std = 1): Parameter => fill(p, normalValues(count(p), mean, std));
export const constant_ = (p: Parameter, value: number): Parameter => fill(p, new Float64Array(count(p)).fill(value));
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
