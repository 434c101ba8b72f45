// The state a module or executable loads, from wherever it comes — a safetensors path, file
// bytes, a file k.safetensors.read returned, a Map or a record of tensors — turned into values
// checked against the types the module or executable holds (dtype conversions included).

import type { TensorType } from "../compiler/ir/types.ts";
import { KilnError } from "../compiler/util/errors.ts";
import { toHostData, type HostData } from "../compiler/ir/host-tensor.ts";
import { formatShape, numel, shapesEqual } from "../compiler/util/shape.ts";
import { ArtifactInvalidError } from "../runtime/artifact/invalid.ts";
import {
  convertTensor,
  quoteName,
  readSafetensors,
  SafetensorsWriteError,
  type SafeTensor,
  type SafetensorsContents,
} from "../runtime/artifact/safetensors.ts";
import { DTYPE_INFO } from "../runtime/artifact/safetensors-dtypes.ts";

/** A file on disk (Node), or its bytes. */
export type FileSource = string | URL | Uint8Array | ArrayBuffer;

interface NodeFs {
  readFileSync(path: string | URL): Uint8Array;
  writeFileSync(path: string, data: Uint8Array): void;
  renameSync(from: string, to: string): void;
  rmSync(path: string, opts: { force: boolean }): void;
}

/** node:fs without a static import, so browser bundles of Kiln stay free of it. */
export function nodeFs(what: string): NodeFs {
  const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
  const fs = proc?.getBuiltinModule?.("node:fs") as NodeFs | undefined;
  if (!fs) throw new KilnError({ code: "unsupported", message: `${what}: reading or writing a path needs Node (pass the file's bytes instead)` });
  return fs;
}

export const rewrapRuntimeError = (e: unknown): unknown =>
  e instanceof ArtifactInvalidError
    ? new KilnError({ code: "artifact-invalid", message: e.message })
    : e instanceof SafetensorsWriteError
      ? new KilnError({ code: "invalid-argument", message: e.message })
      : e;

export function readBytes(source: FileSource, what: string): { bytes: Uint8Array; file: string } {
  if (source instanceof Uint8Array) return { bytes: source, file: "<bytes>" };
  if (source instanceof ArrayBuffer) return { bytes: new Uint8Array(source), file: "<bytes>" };
  if (typeof source !== "string" && !(source instanceof URL))
    throw new KilnError({
      code: "invalid-argument",
      message: `${what}: expected a path, a URL or the file's bytes (Uint8Array), got ${source === null ? "null" : typeof source}`,
    });
  const file = String(source);
  try {
    return { bytes: nodeFs(what).readFileSync(source), file };
  } catch (e) {
    if (e instanceof KilnError) throw e;
    const code = (e as { code?: string }).code;
    throw new KilnError({ code: "invalid-argument", message: `${what}: cannot read '${file}': ${code === "ENOENT" ? "no such file" : (e as Error).message}` });
  }
}

/** One value of a state dict: `dtype` optional (a file's tensors carry theirs). */
export interface StateValue {
  readonly dtype?: string;
  readonly shape: readonly number[];
  readonly data: ArrayLike<number> | ArrayLike<bigint>;
}

/** What loadStateDict and exe.loadState take: a safetensors file (path, bytes, or read) or tensors by name. */
export type StateSource =
  | FileSource
  | (SafetensorsContents & { readonly file: string })
  | ReadonlyMap<string, StateValue>
  | Readonly<Record<string, StateValue>>;

export interface StateEntries {
  readonly values: ReadonlyMap<string, StateValue>;
  /** The file they came from; undefined for in-memory values. */
  readonly file?: string;
}

const isFileSource = (s: unknown): s is FileSource => typeof s === "string" || s instanceof URL || s instanceof Uint8Array || s instanceof ArrayBuffer;

export function stateEntries(source: StateSource, what: string): StateEntries {
  if (isFileSource(source)) {
    const { bytes, file } = readBytes(source, what);
    try {
      return { values: readSafetensors(bytes, file).tensors, file };
    } catch (e) {
      throw rewrapRuntimeError(e);
    }
  }
  if (source instanceof Map) return { values: source as ReadonlyMap<string, StateValue> };
  if (typeof source !== "object" || source === null)
    throw new KilnError({
      code: "invalid-argument",
      message: `${what}: expected a safetensors path or bytes, a Map or a record of tensors, got ${source === null ? "null" : typeof source}`,
    });
  const read = source as Partial<SafetensorsContents & { file: string }>;
  if (read.tensors instanceof Map && typeof read.file === "string") return { values: read.tensors, file: read.file };
  return { values: new Map(Object.entries(source as Readonly<Record<string, StateValue>>)) };
}

/**
 * `value` as data for a tensor of `type`: the shape must match; a file's dtype converts
 * (floats → f32, integers → i32 with every value checked, BOOL → bool); anything lossy throws
 * naming the tensor. Returns the canonical host storage (f32 keeps a Float64Array as given).
 */
export function convertStateValue(name: string, value: StateValue, type: TensorType, what: string, file?: string): HostData {
  const where = file === undefined ? `${what}: '${name}'` : `${what}: ${file}: tensor ${quoteName(name)}`;
  if (typeof value !== "object" || value === null || !Array.isArray(value.shape) || value.data === undefined)
    throw new KilnError({ code: "invalid-argument", message: `${where} is not a tensor { shape, data }` });
  const owner = what === "loadStateDict" ? "the module" : "the executable";
  if (!shapesEqual(value.shape, type.shape))
    throw new KilnError({ code: "shape-mismatch", message: `${where} has shape ${formatShape(value.shape)}, ${owner} expects ${formatShape(type.shape)}` });
  if (value.data.length !== numel(type.shape))
    throw new KilnError({ code: "shape-mismatch", message: `${where} has ${value.data.length} values for shape ${formatShape(type.shape)}` });
  const fileDtype = value.dtype !== undefined && value.dtype in DTYPE_INFO ? value.dtype : undefined;
  const typed = ArrayBuffer.isView(value.data);
  if (fileDtype !== undefined && typed && !(value.dtype === type.dtype && !(value.data instanceof BigInt64Array || value.data instanceof BigUint64Array))) {
    try {
      return convertTensor(value as SafeTensor, type.dtype, name, file ?? what) as HostData;
    } catch (e) {
      if (e instanceof ArtifactInvalidError) throw new KilnError({ code: "dtype-mismatch", message: `${what}: ${e.message}` });
      throw e;
    }
  }
  return toHostData(type.dtype, value.data as ArrayLike<number>, where);
}
