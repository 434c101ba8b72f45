// exe.saveState / exe.loadState: an executable's whole state (parameters, buffers, and the
// optimizer's `opt.*` entries) as one safetensors checkpoint, and the rules for loading one
// back. A checkpoint into a program without an optimizer (training → predict) keeps the
// entries the program has; a weights-only file into a training program keeps the optimizer
// state it has. Every value is checked before any is used, so a load never half-happens.

import type { TensorType } from "../compiler/ir/types.ts";
import { KilnError } from "../compiler/util/errors.ts";
import type { HostTensor } from "../compiler/ir/host-tensor.ts";
import { toHostTensor, type HostInput } from "./host-data.ts";
import { strictOptions } from "./options.ts";
import { encode, write } from "./safetensors.ts";
import { convertStateValue, stateEntries, type StateSource } from "./state-source.ts";
import { OPTIMIZER_STATE_PREFIX } from "./train.ts";

export interface LoadStateOptions {
  /**
   * From a file: every state entry of the executable must be in it and every tensor of the file
   * must be state of it, apart from the optimizer's `opt.*` entries (all or none). Default true.
   */
  readonly strict?: boolean;
}

/** What exe.loadState takes: a checkpoint (path, bytes, or a read file), or some state values by name. */
export type LoadStateSource = StateSource | Readonly<Record<string, HostInput>>;

const owner = (what: string): string => (what.startsWith("model.") ? "model" : "executable");
const isOptimizerState = (name: string): boolean => name.startsWith(OPTIMIZER_STATE_PREFIX);
const isCheckpoint = (s: unknown): boolean =>
  typeof s === "string" ||
  s instanceof URL ||
  s instanceof Uint8Array ||
  s instanceof ArrayBuffer ||
  (typeof s === "object" && s !== null && (s as { tensors?: unknown }).tensors instanceof Map);

/** The checked values to replace, by state name. */
export function stateToLoad(
  source: LoadStateSource,
  stateTypes: ReadonlyMap<string, TensorType>,
  opts: LoadStateOptions = {},
  what = "exe.loadState",
): [string, HostTensor][] {
  const known = (): string => [...stateTypes.keys()].join(", ") || "none";
  strictOptions(what, opts, { strict: true });
  // (a string such as "no" was read as true)
  if (opts.strict !== undefined && typeof opts.strict !== "boolean")
    throw new KilnError({ code: "invalid-argument", message: `${what}: strict: expected true or false, got ${typeof opts.strict}` });
  const programHasOptimizer = [...stateTypes.keys()].some(isOptimizerState);
  if (!isCheckpoint(source)) {
    // Some values in memory: each must be state; the rest stays as it is. A program without an
    // optimizer takes a training program's state (`train.state()`) without its `opt.*` entries.
    const values = source instanceof Map ? [...(source as ReadonlyMap<string, HostInput>)] : Object.entries(source as Readonly<Record<string, HostInput>>);
    return values.flatMap(([name, v]): [string, HostTensor][] => {
      const type = stateTypes.get(name);
      if (!type && !programHasOptimizer && isOptimizerState(name)) return [];
      if (!type) throw new KilnError({ code: "invalid-argument", message: `${what}: '${name}' is not state of this ${owner(what)} (state: ${known()})` });
      return [[name, toHostTensor(name, v, type)]];
    });
  }
  const { values, file } = stateEntries(source as StateSource, what);
  const strict = opts.strict ?? true;
  const stateNames = [...stateTypes.keys()];
  const fileHasOptimizer = [...values.keys()].some(isOptimizerState);
  // Optimizer entries the program lacks are dropped (training checkpoint → predict program);
  // a weights-only file leaves the optimizer's state as it is; otherwise the file's optimizer
  // state must be exactly this optimizer's (another optimizer's, or part of it, is refused).
  const missing = stateNames.filter((n) => !values.has(n) && (fileHasOptimizer || !isOptimizerState(n)));
  const unexpected = [...values.keys()].filter((n) => !stateTypes.has(n) && (programHasOptimizer || !isOptimizerState(n)));
  const optimizerMismatch = programHasOptimizer && fileHasOptimizer && [...missing, ...unexpected].some(isOptimizerState);
  if (optimizerMismatch || (strict && (missing.length > 0 || unexpected.length > 0))) {
    const list = (names: string[]): string => `${names.slice(0, 6).join(", ")}${names.length > 6 ? `, … (${names.length})` : ""}`;
    const parts = [
      missing.length ? `missing ${list(missing)}` : "",
      unexpected.length ? `unexpected ${list(unexpected)}` : "",
      optimizerMismatch
        ? "(a checkpoint holds all of the optimizer's state or none: this one's is partial or another optimizer's)"
        : "(pass { strict: false } to load the entries that match)",
    ].filter(Boolean);
    throw new KilnError({ code: "invalid-argument", message: `${what}: ${file}: ${parts.join("; ")}` });
  }
  const out: [string, HostTensor][] = [];
  for (const [name, value] of values) {
    const type = stateTypes.get(name);
    if (!type) continue;
    out.push([name, { dtype: type.dtype, shape: [...type.shape], data: convertStateValue(name, value, type, what, file) }]);
  }
  return out;
}

const checkpointMetadata = (graphName: string): Record<string, string> => ({ format: "kiln-state", graph: graphName });

/**
 * Writes the state as a safetensors checkpoint (f32 values rounded to float32, as on the
 * devices), atomically; `extra` metadata (e.g. `kiln train`'s step) goes beside format and graph.
 */
export function writeCheckpoint(
  path: string,
  state: Readonly<Record<string, HostTensor>>,
  graphName: string,
  extra: Readonly<Record<string, string>> = {},
): void {
  write(path, state, { ...extra, ...checkpointMetadata(graphName) });
}

/** The checkpoint's bytes, for callers without a file system. */
export const checkpointBytes = (state: Readonly<Record<string, HostTensor>>, graphName: string): Uint8Array => encode(state, checkpointMetadata(graphName));
