// The safetensors file format (huggingface/safetensors): an 8-byte little-endian header
// length, a JSON header { name: { dtype, shape, data_offsets: [begin, end] } } padded with
// spaces to 8 bytes, then the raw little-endian tensor bytes. Kiln stores F32, I32 and BOOL.

import type { ArtifactDType } from "./format.ts";
import { ArtifactInvalidError } from "./manifest.ts";

export type TensorData = Float32Array | Float64Array | Int32Array | Uint8Array;

export interface NamedTensor {
  readonly dtype: ArtifactDType;
  readonly shape: readonly number[];
  readonly data: TensorData;
}

const FILE_DTYPE = { f32: "F32", i32: "I32", bool: "BOOL" } as const satisfies Record<ArtifactDType, string>;
const FROM_FILE_DTYPE: Readonly<Record<string, ArtifactDType>> = { F32: "f32", I32: "i32", BOOL: "bool" };
const ELEMENT_BYTES: Readonly<Record<ArtifactDType, number>> = { f32: 4, i32: 4, bool: 1 };
/** Header size cap, as the reference implementation has: a corrupt length must not allocate gigabytes. */
const MAX_HEADER_BYTES = 100_000_000;

const numel = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

function tensorBytes(name: string, t: NamedTensor): Uint8Array {
  const count = numel(t.shape);
  if (t.data.length !== count) throw new Error(`safetensors: tensor '${name}' has ${t.data.length} elements, its shape [${t.shape.join(",")}] needs ${count}`);
  const bytes = new Uint8Array(count * ELEMENT_BYTES[t.dtype]);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < count; i++) {
    const v = t.data[i]!;
    if (t.dtype === "f32") view.setFloat32(4 * i, v, true);
    else if (t.dtype === "i32") view.setInt32(4 * i, v, true);
    else bytes[i] = v !== 0 ? 1 : 0;
  }
  return bytes;
}

/** Encodes tensors (in name order, so equal inputs give byte-identical files); `metadata` goes to `__metadata__`. */
export function encodeSafetensors(tensors: Readonly<Record<string, NamedTensor>>, metadata?: Readonly<Record<string, string>>): Uint8Array {
  const names = Object.keys(tensors).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) header["__metadata__"] = metadata;
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const name of names) {
    const t = tensors[name]!;
    const bytes = tensorBytes(name, t);
    header[name] = { dtype: FILE_DTYPE[t.dtype], shape: [...t.shape], data_offsets: [offset, offset + bytes.length] };
    chunks.push(bytes);
    offset += bytes.length;
  }
  let headerText = JSON.stringify(header);
  headerText += " ".repeat((8 - (new TextEncoder().encode(headerText).length % 8)) % 8);
  const headerBytes = new TextEncoder().encode(headerText);
  const out = new Uint8Array(8 + headerBytes.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  let at = 8 + headerBytes.length;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

export interface DecodedSafetensors {
  readonly tensors: Record<string, NamedTensor>;
  readonly metadata: Record<string, string>;
}

/**
 * Decodes a safetensors file: f32 → Float32Array, i32 → Int32Array, bool → Uint8Array (copies,
 * so they do not pin the file's buffer). Anything malformed is an ArtifactInvalidError naming `fileName`.
 */
export function decodeSafetensors(bytes: Uint8Array, fileName: string): DecodedSafetensors {
  const invalid = (why: string): ArtifactInvalidError => new ArtifactInvalidError(fileName, why);
  if (bytes.length < 8) throw invalid(`not a safetensors file (${bytes.length} bytes, shorter than the 8-byte header length)`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = Number(view.getBigUint64(0, true));
  if (headerLength > MAX_HEADER_BYTES || 8 + headerLength > bytes.length) throw invalid(`header length ${headerLength} does not fit in the file (${bytes.length} bytes)`);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, 8 + headerLength)));
  } catch (e) {
    throw invalid(`header is not JSON (${(e as Error).message})`);
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) throw invalid("header is not a JSON object");
  const dataStart = 8 + headerLength;
  const dataBytes = bytes.length - dataStart;
  const tensors: Record<string, NamedTensor> = {};
  let metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(header as Record<string, unknown>)) {
    if (name === "__metadata__") {
      metadata = entry as Record<string, string>;
      continue;
    }
    const e = entry as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    const dtype = typeof e.dtype === "string" ? FROM_FILE_DTYPE[e.dtype] : undefined;
    if (dtype === undefined) throw invalid(`tensor '${name}': dtype ${JSON.stringify(e.dtype)} is not one of F32, I32, BOOL`);
    if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isInteger(d) && d >= 0)) throw invalid(`tensor '${name}': shape ${JSON.stringify(e.shape)} is not a list of sizes`);
    const offsets = e.data_offsets;
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isInteger(o))) throw invalid(`tensor '${name}': data_offsets ${JSON.stringify(offsets)} is not [begin, end]`);
    const [begin, end] = offsets as [number, number];
    const shape = e.shape as number[];
    const expected = numel(shape) * ELEMENT_BYTES[dtype];
    if (begin < 0 || end < begin || end > dataBytes) throw invalid(`tensor '${name}': data_offsets [${begin}, ${end}] lie outside the ${dataBytes} data bytes`);
    if (end - begin !== expected) throw invalid(`tensor '${name}': ${end - begin} bytes for ${dtype}[${shape.join(",")}], which needs ${expected}`);
    tensors[name] = { dtype, shape, data: readData(dtype, bytes.subarray(dataStart + begin, dataStart + end)) };
  }
  return { tensors, metadata };
}

function readData(dtype: ArtifactDType, raw: Uint8Array): TensorData {
  // Not raw.slice(): on a Node Buffer that is a view, not a copy.
  const copy = new Uint8Array(raw.length);
  copy.set(raw);
  const view = new DataView(copy.buffer);
  switch (dtype) {
    case "f32":
      return Float32Array.from({ length: copy.length / 4 }, (_, i) => view.getFloat32(4 * i, true));
    case "i32":
      return Int32Array.from({ length: copy.length / 4 }, (_, i) => view.getInt32(4 * i, true));
    case "bool":
      return copy;
  }
}
