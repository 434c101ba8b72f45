// Loads a standalone artifact folder — from a path or file: URL in Node, over http(s) in a
// browser — and refuses it unless every listed file matches its sha256 and the schema is
// one this loader reads. createModel wraps a target runner into run(userInputs) that keeps
// the state (weights, optimizer state) between runs, as k.compile's executables do.

import { artifactArrayFrom, artifactHalf, numel, type Artifact, type ArtifactDType } from "./format.ts";
import { sha256Hex } from "./hash.ts";
import { ArtifactInvalidError, artifactOf, MANIFEST_FILE, parseManifest, type Manifest } from "./manifest.ts";
import { decodeSafetensors, type NamedTensor, type TensorData } from "./safetensors.ts";

export type { NamedTensor, TensorData } from "./safetensors.ts";

/** Reads one file of the folder by its relative path; undefined when it does not exist. */
export type ReadFile = (relativePath: string) => Promise<Uint8Array | undefined>;

const isNode = (): boolean => typeof (globalThis as { process?: { versions?: { node?: string } } }).process?.versions?.node === "string";

// Module names in variables: a browser bundle must not try to include them, and the loader
// type-checks in a project without @types/node.
const NODE_FS = "node:fs/promises";
const NODE_URL = "node:url";
interface NodeFs {
  readFile(path: string): Promise<Uint8Array>;
}
interface NodeUrl {
  fileURLToPath(url: string): string;
}

/** A reader for a folder: a path or file: URL reads the disk (Node), anything else is fetched. */
export function folderReader(location: string | URL): ReadFile {
  const text = String(location);
  const base = text.endsWith("/") ? text : `${text}/`;
  const onDisk = isNode() && (text.startsWith("file:") || !/^[a-z][a-z0-9+.-]*:/i.test(text));
  if (onDisk) {
    return async (relativePath) => {
      const fs = (await import(NODE_FS)) as NodeFs;
      const { fileURLToPath } = (await import(NODE_URL)) as NodeUrl;
      const dir = base.startsWith("file:") ? fileURLToPath(base) : base;
      try {
        return new Uint8Array(await fs.readFile(dir + relativePath));
      } catch (e) {
        if ((e as { code?: string }).code === "ENOENT") return undefined;
        throw e;
      }
    };
  }
  return async (relativePath) => {
    const response = await fetch(new URL(relativePath, new URL(base, (globalThis as { location?: { href: string } }).location?.href)));
    if (response.status === 404) return undefined;
    if (!response.ok) throw new ArtifactInvalidError(relativePath, `fetch failed with HTTP ${response.status}`);
    return new Uint8Array(await response.arrayBuffer());
  };
}

export interface LoadedArtifact {
  readonly manifest: Manifest;
  readonly artifact: Artifact;
  /** Initial values of the state inputs (from weights.safetensors). */
  readonly state: Record<string, NamedTensor>;
}

/** Reads and checks a folder: schemaVersion, each file's sha256, and the weights against the state inputs. */
export async function loadArtifact(location: string | URL | ReadFile): Promise<LoadedArtifact> {
  const read = typeof location === "function" ? location : folderReader(location);
  const manifestBytes = await read(MANIFEST_FILE);
  if (!manifestBytes) throw new ArtifactInvalidError(MANIFEST_FILE, `missing (is '${String(location)}' an artifact folder?)`);
  const manifest = parseManifest(new TextDecoder().decode(manifestBytes));
  const contents = new Map<string, Uint8Array>();
  await Promise.all(
    Object.entries(manifest.files).map(async ([file, expected]) => {
      const bytes = await read(file);
      if (!bytes) throw new ArtifactInvalidError(file, "missing (listed in manifest.json files)");
      const actual = sha256Hex(bytes);
      if (actual !== expected) throw new ArtifactInvalidError(file, `sha256 mismatch (manifest says ${expected}, file has ${actual})`);
      contents.set(file, bytes);
    }),
  );
  const decoder = new TextDecoder();
  const artifact = artifactOf(
    manifest,
    manifest.kernels.map((k) => decoder.decode(contents.get(k.file)!)),
  );
  const state: Record<string, NamedTensor> = {};
  const stateInputs = manifest.inputs.filter((i) => i.role === "state");
  if (stateInputs.length > 0) {
    if (manifest.weights === undefined)
      throw new ArtifactInvalidError(MANIFEST_FILE, `weights is missing but inputs ${stateInputs.map((i) => i.name).join(", ")} are state`);
    const weights = decodeSafetensors(contents.get(manifest.weights)!, manifest.weights).tensors;
    for (const io of stateInputs) {
      const t = weights[io.name];
      if (!t) throw new ArtifactInvalidError(manifest.weights, `no tensor '${io.name}' (a state input of the graph)`);
      if (t.dtype !== io.dtype || t.shape.length !== io.shape.length || t.shape.some((d, i) => d !== io.shape[i]))
        throw new ArtifactInvalidError(
          manifest.weights,
          `tensor '${io.name}' is ${t.dtype}[${t.shape.join(",")}], the graph expects ${io.dtype}[${io.shape.join(",")}]`,
        );
      state[io.name] = t;
    }
  }
  return { manifest, artifact, state };
}

/** What a target's runtime offers: runs every graph input to every graph output. */
export interface ArtifactRunner {
  run(inputs: Readonly<Record<string, NamedTensor>>): Promise<Record<string, NamedTensor>> | Record<string, NamedTensor>;
  /** Frees device memory (webgpu) or worker threads (wasm), where the runner holds any. */
  destroy?(): void;
  close?(): Promise<void>;
}

/** A user input: the typed array alone, or a tensor whose dtype and shape are checked. */
export type InputValue = TensorData | NamedTensor;

export interface Model {
  readonly manifest: Manifest;
  /** Runs on the user inputs; returns the user outputs. State outputs replace the state. */
  run(inputs: Readonly<Record<string, InputValue>>): Promise<Record<string, NamedTensor>>;
  /** A copy of the current state (parameters, optimizer state) by input name. */
  state(): Record<string, NamedTensor>;
  /** Replaces some state entries; each must match its input's dtype and shape. */
  loadState(values: Readonly<Record<string, NamedTensor>>): void;
  /** Releases what the runtime holds (GPU buffers, worker threads); the model cannot run afterwards. */
  close(): Promise<void>;
}

const dataKind: Readonly<Record<ArtifactDType, string>> = {
  f32: "Float32Array",
  f16: "Uint16Array of f16 bits, or Float32Array",
  bf16: "Uint16Array of bf16 bits, or Float32Array",
  i32: "Int32Array",
  bool: "Uint8Array",
};

function checkedInput(name: string, value: InputValue | undefined, dtype: ArtifactDType, shape: readonly number[]): NamedTensor {
  if (value === undefined) throw new Error(`run: missing input '${name}' (${dtype}[${shape.join(",")}])`);
  const tensor: NamedTensor = ArrayBuffer.isView(value) ? { dtype, shape, data: value } : value;
  if (tensor.dtype !== dtype) throw new Error(`run: input '${name}' is ${tensor.dtype}, expected ${dtype}`);
  if (tensor.shape.length !== shape.length || tensor.shape.some((d, i) => d !== shape[i]))
    throw new Error(`run: input '${name}' has shape [${tensor.shape.join(",")}], expected [${shape.join(",")}]`);
  if (tensor.data.length !== numel(shape))
    throw new Error(`run: input '${name}' has ${tensor.data.length} elements, expected ${numel(shape)} (${dataKind[dtype]})`);
  // A 16-bit float given as values (not bit patterns) is rounded to its format here.
  if (artifactHalf(dtype) !== undefined && !(tensor.data instanceof Uint16Array)) return { ...tensor, data: artifactArrayFrom(dtype, tensor.data) };
  return tensor;
}

/** Rows of the symbolic leading axis an input gives (from its shape, or its flat length); 1..max. */
function symbolicRows(name: string, value: InputValue | undefined, shape: readonly number[], scale: number, symbol: string, max: number): number {
  if (value === undefined) throw new Error(`run: missing input '${name}' ([${symbol},${shape.slice(1).join(",")}])`);
  const per = numel(shape.slice(1)) * scale;
  const rows = ArrayBuffer.isView(value) ? value.length / per : value.shape[0]! / scale;
  if (!Number.isInteger(rows))
    throw new Error(
      `run: input '${name}': ${ArrayBuffer.isView(value) ? `${value.length} values` : `shape [${value.shape.join(",")}]`} is not whole rows of symbolic dimension '${symbol}'`,
    );
  if (rows > max) throw new Error(`run: input '${name}': symbolic dimension '${symbol}' is ${rows}, above its maximum ${max}`);
  if (rows < 1) throw new Error(`run: input '${name}': symbolic dimension '${symbol}' must be at least 1, got ${rows}`);
  return rows;
}

export function createModel(loaded: LoadedArtifact, runner: ArtifactRunner): Model {
  const { manifest } = loaded;
  const state = new Map(Object.entries(loaded.state));
  const userInputs = manifest.inputs.filter((i) => i.role === "user");
  const seedInputs = manifest.inputs.filter((i) => i.role === "seed");
  const sizeInput = manifest.inputs.find((i) => i.role === "size");
  let runCount = 0;
  return {
    manifest,
    async run(inputs) {
      const known = new Set([...userInputs, ...seedInputs].map((i) => i.name));
      const unknown = Object.keys(inputs).filter((n) => !known.has(n));
      if (unknown.length > 0) throw new Error(`run: unknown input(s) ${unknown.join(", ")} (inputs: ${[...known].join(", ")})`);
      const bound: Record<string, NamedTensor> = Object.fromEntries(state);
      // A symbolic leading axis: any rows up to the max, the same count on every input that has it (the runner fills its buffer's leading rows).
      let size: { n: number; from: string } | undefined;
      for (const io of userInputs) {
        if (!io.symbolic || !sizeInput) {
          bound[io.name] = checkedInput(io.name, inputs[io.name], io.dtype, io.shape);
          continue;
        }
        const { name: symbol, scale } = io.symbolic;
        const n = symbolicRows(io.name, inputs[io.name], io.shape, scale, symbol, sizeInput.max!);
        if (size && size.n !== n)
          throw new Error(`run: inputs disagree on symbolic dimension '${symbol}': '${size.from}' has ${size.n}, '${io.name}' has ${n}`);
        size ??= { n, from: io.name };
        // The run's rows only: the runner copies them into its buffer's leading rows (inputFill).
        bound[io.name] = checkedInput(io.name, inputs[io.name], io.dtype, [n * scale, ...io.shape.slice(1)]);
      }
      if (sizeInput) bound[sizeInput.name] = { dtype: "i32", shape: [], data: Int32Array.of(size?.n ?? sizeInput.max!) };
      // Like k.compile: the seed counts runs unless given, so dropout masks differ per step yet replay per process.
      for (const io of seedInputs)
        bound[io.name] =
          inputs[io.name] !== undefined ? checkedInput(io.name, inputs[io.name], "i32", []) : { dtype: "i32", shape: [], data: Int32Array.of(runCount) };
      runCount++;
      const results = await runner.run(bound);
      const out: Record<string, NamedTensor> = {};
      for (const o of manifest.outputs) {
        const value = results[o.name];
        if (!value) throw new Error(`run: the runtime returned no output '${o.name}'`);
        if (o.role === "state") state.set(o.aliases!, value);
        else if (o.symbolic && sizeInput) {
          const rows = o.symbolic.scale * Number(bound[sizeInput.name]!.data[0]);
          const per = numel(o.shape.slice(1));
          out[o.name] = { dtype: value.dtype, shape: [rows, ...o.shape.slice(1)], data: value.data.subarray(0, rows * per) };
        } else out[o.name] = value;
      }
      return out;
    },
    state: () => Object.fromEntries([...state].map(([name, t]) => [name, { dtype: t.dtype, shape: [...t.shape], data: t.data.slice() }])),
    loadState(values) {
      const checked = Object.entries(values).map(([name, t]) => {
        const io = manifest.inputs.find((i) => i.name === name && i.role === "state");
        if (!io) throw new Error(`loadState: '${name}' is not state of this model`);
        return [name, checkedInput(name, t, io.dtype, io.shape)] as const;
      });
      for (const [name, t] of checked) state.set(name, t);
    },
    async close() {
      runner.destroy?.();
      await runner.close?.();
    },
  };
}
