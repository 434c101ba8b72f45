// k.safetensors: read and write safetensors files (PyTorch's and Hugging Face's weight
// format). Reading validates the whole file (runtime/artifact/safetensors.ts) and keeps each
// tensor's own dtype; writing goes through a temporary file renamed into place. Paths need Node.

import { KilnError } from "../compiler/util/errors.ts";
import { encodeSafetensors, readSafetensors, type SafetensorsContents, type SafetensorsInput } from "../runtime/artifact/safetensors.ts";
import { nodeFs, readBytes, rewrapRuntimeError, type FileSource } from "./state-source.ts";

export type { SafeTensor, SafetensorsData, SafetensorsDType, SafetensorsInput, WritableTensor } from "../runtime/artifact/safetensors.ts";
export type { FileSource } from "./state-source.ts";

/** A read file: tensors by name (a Map, so any name is safe), metadata as a null-prototype record. */
export interface SafetensorsFile extends SafetensorsContents {
  /** The path read, or "<bytes>". */
  readonly file: string;
}

/** Reads and validates a safetensors file; every dtype of the format keeps its own (F16/BF16 widened to a Float32Array, I64 in a BigInt64Array). */
export function read(source: FileSource): SafetensorsFile {
  const { bytes, file } = readBytes(source, "k.safetensors.read");
  try {
    return { file, ...readSafetensors(bytes, file) };
  } catch (e) {
    throw rewrapRuntimeError(e);
  }
}

/** The bytes of a safetensors file holding `tensors` (in name order) and `metadata`. */
export function encode(tensors: SafetensorsInput, metadata?: Readonly<Record<string, string>>): Uint8Array {
  try {
    return encodeSafetensors(tensors, metadata);
  } catch (e) {
    throw rewrapRuntimeError(e);
  }
}

/** Writes `tensors` to `path`: through a temporary sibling renamed into place, so a crash never leaves half a file. */
export function write(path: string, tensors: SafetensorsInput, metadata?: Readonly<Record<string, string>>): void {
  const bytes = encode(tensors, metadata);
  const fs = nodeFs("k.safetensors.write");
  const temporary = `${path}.tmp-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  try {
    fs.writeFileSync(temporary, bytes);
    fs.renameSync(temporary, path);
  } catch (e) {
    fs.rmSync(temporary, { force: true });
    throw new KilnError({ code: "invalid-argument", message: `k.safetensors.write: cannot write '${path}': ${(e as Error).message}` });
  }
}
