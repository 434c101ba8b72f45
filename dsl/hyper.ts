// Runtime hyperparameters: optimizer settings (lr, betas, eps, weight decay, momentum,
// dampening, the clipping norm) that a compiled step reads from one f32 input vector, `hyper`,
// instead of constants, so a schedule or the user changes them between runs without a
// recompile. A declaration names the user's key, its parameter group, its default, its check,
// and the scalars it feeds: the value and what the step derives from it, computed in float64 on
// the host (1 − β and ln β for Adam: in f32, 1 − β at β = 0.999 would be 1.3e-5 off).
// One vector, not one input per scalar: a kernel reading five of them binds one buffer
// (WebGPU allows as few as 8 per shader stage). Values are sticky: set once (exe.run's
// `hyper`, exe.setHyper) they stay for later runs.

import { KilnError } from "../compiler/util/errors.ts";
import type { HostTensor } from "../compiler/ir/host-tensor.ts";
import { unknownOptionMessage } from "../compiler/util/options.ts";

/** A hyperparameter's value: a number, or a pair (Adam's betas). */
export type HyperValue = number | readonly [number, number];

/** Settings for one parameter group: `{ lr: 1e-3, weightDecay: 0 }`. */
export type HyperGroupSettings = { readonly [key: string]: HyperValue };

/**
 * Hyperparameters as exe.run's `hyper` option takes them and exe.hyper() gives them: the
 * default group's (and the step's, e.g. `clipGradNorm`) at the top, a named group's under its
 * name: `{ lr: 3e-4, betas: [0.9, 0.95], noDecay: { weightDecay: 0 } }`.
 */
export type HyperSettings = { readonly [key: string]: HyperValue | HyperGroupSettings };

/** One element of the `hyper` input: its value `of` the setting (float64; a target rounds it to f32 on the way in). */
export interface HyperFeed {
  readonly name: string;
  readonly of: (value: HyperValue) => number;
}

export interface HyperDecl {
  /** The user's key: `lr`, `betas`, `weightDecay`… */
  readonly key: string;
  /** The parameter group that owns it; undefined: the default group, or the step itself (`clipGradNorm`). */
  readonly group?: string | undefined;
  /** The value it has until set. */
  readonly value: HyperValue;
  /** Why a value is refused (completing "`key` must …"), or undefined when it is accepted. */
  readonly check: (value: HyperValue) => string | undefined;
  readonly feeds: readonly HyperFeed[];
}

/** The graph input holding every hyperparameter's scalars, in declaration order: f32[n]. */
export const HYPER_INPUT = "hyper";

/** `lr` in the default group, `noDecay.lr` in group noDecay. */
export const hyperPath = (group: string | undefined, key: string): string => (group === undefined ? key : `${group}.${key}`);

/** A value as errors show it: `0.1`, `[0.9, 1]`. */
export function formatHyper(value: unknown): string {
  return Array.isArray(value)
    ? `[${value.map((v) => formatHyper(v)).join(", ")}]`
    : typeof value === "number"
      ? String(value)
      : (JSON.stringify(value) ?? String(value));
}

/** Every hyperparameter some step may have: one a step lacks was compiled out, which the error says. */
const KNOWN_KEYS = ["lr", "betas", "eps", "weightDecay", "momentum", "dampening", "clipGradNorm"];

const isNumber = (v: unknown): v is number => typeof v === "number";
const isPair = (v: unknown): v is readonly [number, number] => Array.isArray(v) && v.length === 2 && v.every(isNumber);
const isGroupSettings = (v: unknown): v is HyperGroupSettings => typeof v === "object" && v !== null && !Array.isArray(v);

const invalid = (message: string): KilnError => new KilnError({ code: "invalid-argument", message });

/**
 * The current hyperparameters of one compiled step: starts at the declared defaults; `set`
 * checks every key and value before changing any, so a bad setting leaves them as they were.
 */
export class HyperStore {
  private readonly values = new Map<string, HyperValue>();
  private readonly decls: ReadonlyMap<string, HyperDecl>;
  /** The `hyper` input for the current values, made once per change (`set` clears it): runs share its array, which nothing writes. */
  private input: Record<string, HostTensor> | undefined;

  /** `ordered`: the declarations in the order of the `hyper` input's elements. */
  constructor(private readonly ordered: readonly HyperDecl[]) {
    this.decls = new Map(ordered.map((d) => [hyperPath(d.group, d.key), d]));
    for (const [path, d] of this.decls) this.values.set(path, d.value);
  }

  get size(): number {
    return this.decls.size;
  }

  /** The current values, nested by group as `set` takes them. */
  current(): HyperSettings {
    const out: Record<string, HyperValue | Record<string, HyperValue>> = {};
    for (const [path, d] of this.decls) {
      const value = this.values.get(path)!;
      const copy = isPair(value) ? ([value[0], value[1]] as const) : value;
      if (d.group === undefined) out[d.key] = copy;
      else ((out[d.group] ??= {}) as Record<string, HyperValue>)[d.key] = copy;
    }
    return out;
  }

  /** Checks `settings` whole, then applies them; errors name the key as the user wrote it, under `where`. */
  set(settings: HyperSettings, where: string): void {
    if (!isGroupSettings(settings))
      throw invalid(`${where}: hyper must be an object such as { lr: 0.01 }, got ${Array.isArray(settings) ? "an array" : typeof settings}`);
    if (this.decls.size === 0 && Object.keys(settings).length > 0)
      throw invalid(`${where}: this program has no hyperparameters (only a k.trainStep has: lr, weightDecay, …)`);
    const topLevel = [...new Set([...this.decls.values()].map((d) => d.group ?? d.key))];
    const changes: [string, HyperValue][] = [];
    for (const [key, value] of Object.entries(settings)) {
      if (!topLevel.includes(key)) {
        const compiledOut = KNOWN_KEYS.includes(key)
          ? ` ('${key}' is no input of this step: its optimizer has none, was built with it at 0 (momentum, dampening), or k.trainStep had no clipGradNorm)`
          : "";
        throw invalid(unknownOptionMessage(`${where}: hyper`, key, topLevel, "hyperparameter or group") + compiledOut);
      }
      const decl = this.decls.get(key);
      if (decl && decl.group === undefined) {
        changes.push([key, this.checked(decl, value, where)]);
        continue;
      }
      // A group name: its own keys (the ones it set at construction; the rest follow the default group).
      const own = [...this.decls.values()].filter((d) => d.group === key).map((d) => d.key);
      if (!isGroupSettings(value)) throw invalid(`${where}: hyper.${key} is a parameter group: give it an object such as { ${own[0]}: … }`);
      for (const [groupKey, groupValue] of Object.entries(value)) {
        const groupDecl = this.decls.get(hyperPath(key, groupKey));
        if (!groupDecl) {
          const shared = this.decls.has(groupKey)
            ? ` ('${groupKey}' of this group follows the default group's: give the group its own ${groupKey} when building the optimizer to set it apart)`
            : "";
          throw invalid(unknownOptionMessage(`${where}: hyper.${key}`, groupKey, own, "hyperparameter") + shared);
        }
        changes.push([hyperPath(key, groupKey), this.checked(groupDecl, groupValue, where)]);
      }
    }
    for (const [path, value] of changes) this.values.set(path, value);
    this.input = undefined;
  }

  /**
   * The `hyper` input for the current values (none when nothing is declared). Float64 data: the
   * reference interpreter computes with the values as given, as it did with constants; a
   * target rounds them to f32.
   */
  inputs(): Readonly<Record<string, HostTensor>> {
    if (this.input) return this.input;
    if (this.ordered.length === 0) return (this.input = {});
    const data = this.ordered.flatMap((d) => d.feeds.map((feed) => feed.of(this.values.get(hyperPath(d.group, d.key))!)));
    this.input = { [HYPER_INPUT]: { dtype: "f32", shape: [data.length], data: Float64Array.from(data) } };
    return this.input;
  }

  private checked(decl: HyperDecl, value: unknown, where: string): HyperValue {
    const path = hyperPath(decl.group, decl.key);
    const shaped = isPair(decl.value) ? isPair(value) : isNumber(value);
    const why = shaped ? decl.check(value as HyperValue) : isPair(decl.value) ? "be a pair of numbers" : "be a number";
    if (why !== undefined) throw invalid(`${where}: hyper.${path} must ${why}, got ${formatHyper(value)}`);
    return isPair(value) ? [value[0], value[1]] : (value as number);
  }
}
