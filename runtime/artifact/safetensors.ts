// The safetensors file format (huggingface/safetensors): an 8-byte little-endian header
// length, a JSON header { name: { dtype, shape, data_offsets: [begin, end] }, __metadata__? }
// padded with spaces, then the raw little-endian tensor bytes. The reader trusts nothing: the
// header is bounded and strict JSON (duplicate keys refused), every entry has exactly the known
// fields, and the tensors cover the data section exactly once. It checks every claim against
// the bytes actually present before it allocates anything sized by one, and each rejection is
// one line naming the file. Tensors come back in a Map, so any name is an ordinary key.

import type { ArtifactDType } from "./format.ts";
import { ArtifactInvalidError } from "./invalid.ts";
import { encodeHalf, numberToBfloat16Bits, numberToHalfBits } from "./half.ts";
import { decodeElements, DTYPE_INFO, dtypeFromFileName, SAFETENSORS_DTYPES, type SafetensorsData, type SafetensorsDType } from "./safetensors-dtypes.ts";
import { isJsonObject, JsonSyntaxError, parseStrictJson, type JsonValue } from "./strict-json.ts";

export { SAFETENSORS_DTYPES, type SafetensorsData, type SafetensorsDType } from "./safetensors-dtypes.ts";

export type TensorData = Float32Array | Float64Array | Uint16Array | Int32Array | Uint8Array;

/** A tensor in one of the artifact dtypes (what the runtimes bind). */
export interface NamedTensor {
  readonly dtype: ArtifactDType;
  readonly shape: readonly number[];
  readonly data: TensorData;
}

/** A tensor as a safetensors file holds it, in any of the format's dtypes. */
export interface SafeTensor {
  readonly dtype: SafetensorsDType;
  readonly shape: readonly number[];
  readonly data: SafetensorsData;
}

export interface SafetensorsContents {
  /** In the order of their data in the file. */
  readonly tensors: ReadonlyMap<string, SafeTensor>;
  /** `__metadata__`: a null-prototype record of strings (empty when the file has none). */
  readonly metadata: Readonly<Record<string, string>>;
}

/** The reference implementation's cap: a corrupt length must not make a reader allocate gigabytes. */
export const MAX_HEADER_BYTES = 100_000_000;
const METADATA_KEY = "__metadata__";
const ENTRY_FIELDS = ["dtype", "shape", "data_offsets"] as const;

/** A name as an error message shows it: quoted, escaped onto one line, long names cut. */
export const quoteName = (name: string): string => JSON.stringify(name.length > 80 ? `${name.slice(0, 80)}…` : name);
const describeJson = (v: JsonValue | undefined): string =>
  v === undefined
    ? "missing"
    : isJsonObject(v)
      ? "an object"
      : Array.isArray(v)
        ? "a list"
        : v === null
          ? "null"
          : `${typeof v} ${JSON.stringify(v)}`.slice(0, 60);
const formatShape = (shape: readonly number[]): string => `[${shape.join(",")}]`;

interface Entry {
  readonly name: string;
  readonly dtype: SafetensorsDType;
  readonly shape: readonly number[];
  readonly begin: number;
  readonly end: number;
}

/** Reads and validates a whole safetensors file; anything malformed is an ArtifactInvalidError naming `fileName`. */
export function readSafetensors(bytes: Uint8Array, fileName: string): SafetensorsContents {
  const invalid = (why: string): ArtifactInvalidError => new ArtifactInvalidError(fileName, why);
  if (bytes.length < 8) throw invalid(`not a safetensors file: ${bytes.length} bytes, shorter than the 8-byte header length`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const claimed = view.getBigUint64(0, true);
  if (claimed > BigInt(MAX_HEADER_BYTES)) throw invalid(`header length ${claimed} is over the ${MAX_HEADER_BYTES}-byte limit`);
  const headerLength = Number(claimed);
  if (8 + headerLength > bytes.length) throw invalid(`header length ${headerLength} runs past the end of the file (${bytes.length} bytes)`);
  if (headerLength === 0) throw invalid("header is empty (length 0)");
  const headerBytes = bytes.subarray(8, 8 + headerLength);
  if (headerBytes[0] === 0xef && headerBytes[1] === 0xbb && headerBytes[2] === 0xbf) throw invalid("header starts with a UTF-8 byte-order mark");
  if (headerBytes[0] !== 0x7b) throw invalid(`header does not start with '{' (first byte 0x${headerBytes[0]!.toString(16).padStart(2, "0")})`);
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(headerBytes);
  } catch {
    throw invalid("header is not valid UTF-8");
  }
  let header: JsonValue;
  try {
    header = parseStrictJson(text);
  } catch (e) {
    if (e instanceof JsonSyntaxError) throw invalid(`header is not strict JSON: ${e.message}`);
    throw e;
  }
  if (!isJsonObject(header)) throw invalid(`header is ${describeJson(header)}, not a JSON object`);

  const dataStart = 8 + headerLength;
  const dataBytes = bytes.length - dataStart;
  const metadata: Record<string, string> = Object.create(null) as Record<string, string>;
  const entries: Entry[] = [];
  for (const [name, value] of header) {
    if (name === METADATA_KEY) {
      if (!isJsonObject(value)) throw invalid(`__metadata__ is ${describeJson(value)}, not an object of strings`);
      for (const [key, v] of value) {
        if (typeof v !== "string") throw invalid(`__metadata__[${quoteName(key)}] is ${describeJson(v)}, not a string`);
        metadata[key] = v;
      }
      continue;
    }
    entries.push(checkEntry(name, value, dataBytes, invalid));
  }
  checkCoverage(entries, dataBytes, invalid);
  const tensors = new Map<string, SafeTensor>();
  for (const e of entries) {
    const data = decodeElements(e.dtype, bytes.subarray(dataStart + e.begin, dataStart + e.end));
    if (e.dtype === "bool") {
      const bad = (data as Uint8Array).findIndex((b) => b > 1);
      if (bad >= 0) throw invalid(`tensor ${quoteName(e.name)}: BOOL element ${bad} is byte ${(data as Uint8Array)[bad]}, not 0 or 1`);
    }
    tensors.set(e.name, { dtype: e.dtype, shape: e.shape, data });
  }
  return { tensors, metadata };
}

function checkEntry(name: string, value: JsonValue, dataBytes: number, invalid: (why: string) => ArtifactInvalidError): Entry {
  const where = `tensor ${quoteName(name)}`;
  if (!isJsonObject(value)) throw invalid(`${where} is ${describeJson(value)}, not an object { dtype, shape, data_offsets }`);
  for (const key of value.keys())
    if (!(ENTRY_FIELDS as readonly string[]).includes(key))
      throw invalid(`${where} has an unknown field ${quoteName(key)} (fields: ${ENTRY_FIELDS.join(", ")})`);
  for (const key of ENTRY_FIELDS) if (!value.has(key)) throw invalid(`${where} has no ${key}`);
  const dtypeName = value.get("dtype");
  if (typeof dtypeName !== "string") throw invalid(`${where}: dtype is ${describeJson(dtypeName)}, not a string`);
  const dtype = dtypeFromFileName(dtypeName);
  if (dtype === undefined)
    throw invalid(`${where}: dtype ${quoteName(dtypeName)} is not one Kiln reads (${SAFETENSORS_DTYPES.map((d) => DTYPE_INFO[d].fileName).join(", ")})`);
  const shape = value.get("shape");
  if (!Array.isArray(shape)) throw invalid(`${where}: shape is ${describeJson(shape)}, not a list`);
  if (shape.length > 64) throw invalid(`${where}: shape has ${shape.length} dimensions (at most 64)`);
  let elements = 1;
  for (const d of shape as readonly JsonValue[]) {
    if (typeof d !== "number" || d < 0) throw invalid(`${where}: shape holds ${describeJson(d)}, not a size (a non-negative integer)`);
    // Overflow guard: a product past 2^53 would stop being exact, and no file that large is real.
    if (d !== 0 && elements > Number.MAX_SAFE_INTEGER / d) throw invalid(`${where}: shape [${shape.join(",")}] has more than 2^53 elements`);
    elements *= d;
  }
  const offsets = value.get("data_offsets");
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => typeof o === "number" && o >= 0))
    throw invalid(`${where}: data_offsets is ${describeJson(offsets as JsonValue)}, not [begin, end] of non-negative integers`);
  const [begin, end] = offsets as readonly number[] as [number, number];
  if (end < begin) throw invalid(`${where}: data_offsets [${begin}, ${end}] end before they begin`);
  if (end > dataBytes) throw invalid(`${where}: data_offsets [${begin}, ${end}] run past the ${dataBytes} data bytes`);
  const needed = elements * DTYPE_INFO[dtype].bytes;
  if (end - begin !== needed) throw invalid(`${where}: ${end - begin} bytes for ${dtypeName}${formatShape(shape as number[])}, which needs ${needed}`);
  return { name, dtype, shape: shape as number[], begin, end };
}

/** The tensors must tile the data section: sorted by offset, each begins where the previous ended. */
function checkCoverage(entries: Entry[], dataBytes: number, invalid: (why: string) => ArtifactInvalidError): void {
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let covered = 0;
  let previous: Entry | undefined;
  for (const e of entries) {
    if (e.begin > covered) throw invalid(`gap: data bytes [${covered}, ${e.begin}) belong to no tensor (before tensor ${quoteName(e.name)})`);
    if (e.begin < covered) {
      const other = quoteName(previous!.name);
      if (e.begin === previous!.begin && e.end === previous!.end)
        throw invalid(`tensors ${other} and ${quoteName(e.name)} alias the same bytes [${e.begin}, ${e.end})`);
      throw invalid(`tensor ${quoteName(e.name)} [${e.begin}, ${e.end}) overlaps tensor ${other} [${previous!.begin}, ${previous!.end})`);
    }
    covered = e.end;
    if (e.end > e.begin) previous = e;
  }
  if (covered !== dataBytes)
    throw invalid(`${dataBytes - covered} trailing byte(s) after the last tensor (data section is ${dataBytes} bytes, tensors cover ${covered})`);
}

/** Tensors to write: a Map or a record by name; data as numbers (or bigints for i64/u64). */
export type SafetensorsInput = ReadonlyMap<string, WritableTensor> | Readonly<Record<string, WritableTensor>>;
export interface WritableTensor {
  readonly dtype: SafetensorsDType;
  readonly shape: readonly number[];
  readonly data: ArrayLike<number> | ArrayLike<bigint>;
}

/** Thrown for a tensor the writer cannot encode; `tensor` names it. */
export class SafetensorsWriteError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SafetensorsWriteError";
  }
}

const INT_RANGE: Readonly<Partial<Record<SafetensorsDType, readonly [number, number]>>> = {
  i32: [-(2 ** 31), 2 ** 31 - 1],
  i16: [-(2 ** 15), 2 ** 15 - 1],
  i8: [-128, 127],
  u32: [0, 2 ** 32 - 1],
  u16: [0, 2 ** 16 - 1],
  u8: [0, 255],
  bool: [0, 1],
};

function tensorBytes(name: string, t: WritableTensor): Uint8Array {
  const fail = (why: string): never => {
    throw new SafetensorsWriteError(`safetensors: tensor ${quoteName(name)}: ${why}`);
  };
  const info = (DTYPE_INFO as Readonly<Record<string, (typeof DTYPE_INFO)[SafetensorsDType]>>)[t.dtype];
  if (info === undefined) fail(`dtype ${quoteName(String(t.dtype))} is not one of ${SAFETENSORS_DTYPES.join(", ")}`);
  if (!Array.isArray(t.shape) || !t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) fail(`shape [${t.shape.join(",")}] is not a list of sizes`);
  const count = t.shape.reduce((a, b) => a * b, 1);
  if (t.data.length !== count) fail(`${t.data.length} elements, its shape ${formatShape(t.shape)} needs ${count}`);
  const bytes = new Uint8Array(count * info!.bytes);
  const view = new DataView(bytes.buffer);
  const dtype = t.dtype;
  // A 16-bit float held as a Uint16Array is its bit patterns (what the runtimes hold): written as they are.
  const halfBits = (dtype === "f16" || dtype === "bf16") && t.data instanceof Uint16Array;
  for (let i = 0; i < count; i++) {
    const v = t.data[i]!;
    if (halfBits) {
      view.setUint16(2 * i, Number(v), true);
      continue;
    }
    if (dtype === "i64" || dtype === "u64") {
      if (typeof v === "number" && !Number.isSafeInteger(v)) fail(`element ${i} is ${v}, not an integer`);
      const big = BigInt(v);
      if (dtype === "i64" ? big !== BigInt.asIntN(64, big) : big !== BigInt.asUintN(64, big)) fail(`element ${i} is ${big}, outside ${dtype}'s range`);
      if (dtype === "i64") view.setBigInt64(8 * i, big, true);
      else view.setBigUint64(8 * i, big, true);
      continue;
    }
    const x = Number(v);
    const range = INT_RANGE[dtype];
    if (range && !(Number.isInteger(x) && x >= range[0] && x <= range[1]))
      fail(`element ${i} is ${String(v)}, not ${dtype === "bool" ? "0 or 1" : `an integer in ${dtype}'s range`}`);
    switch (dtype) {
      case "f64":
        view.setFloat64(8 * i, x, true);
        break;
      case "f32":
        view.setFloat32(4 * i, x, true);
        break;
      case "f16":
        view.setUint16(2 * i, numberToHalfBits(x), true);
        break;
      case "bf16":
        view.setUint16(2 * i, numberToBfloat16Bits(x), true);
        break;
      case "i32":
        view.setInt32(4 * i, x, true);
        break;
      case "i16":
        view.setInt16(2 * i, x, true);
        break;
      case "i8":
        view.setInt8(i, x);
        break;
      case "u32":
        view.setUint32(4 * i, x, true);
        break;
      case "u16":
        view.setUint16(2 * i, x, true);
        break;
      case "u8":
      case "bool":
        bytes[i] = x;
        break;
    }
  }
  return bytes;
}

/** Encodes tensors in name order (equal inputs give byte-identical files); `metadata` goes to `__metadata__`. */
export function encodeSafetensors(tensors: SafetensorsInput, metadata?: Readonly<Record<string, string>>): Uint8Array {
  const named: [string, WritableTensor][] =
    tensors instanceof Map ? [...(tensors as ReadonlyMap<string, WritableTensor>)] : Object.entries(tensors as Readonly<Record<string, WritableTensor>>);
  named.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  // Built as a Map and serialized by hand: a record would turn a tensor named "__proto__" into a prototype.
  const parts: string[] = [];
  if (metadata && Object.keys(metadata).length > 0) {
    for (const [key, v] of Object.entries(metadata))
      if (typeof v !== "string") throw new SafetensorsWriteError(`safetensors: metadata ${quoteName(key)} is ${typeof v}, not a string`);
    parts.push(
      `${JSON.stringify(METADATA_KEY)}:{${Object.entries(metadata)
        .map(([key, v]) => `${JSON.stringify(key)}:${JSON.stringify(v)}`)
        .join(",")}}`,
    );
  }
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const [name, t] of named) {
    if (name === METADATA_KEY) throw new SafetensorsWriteError(`safetensors: a tensor cannot be named ${METADATA_KEY} (the format reserves it)`);
    const data = tensorBytes(name, t);
    parts.push(
      `${JSON.stringify(name)}:{"dtype":"${DTYPE_INFO[t.dtype].fileName}","shape":[${t.shape.join(",")}],"data_offsets":[${offset},${offset + data.length}]}`,
    );
    chunks.push(data);
    offset += data.length;
  }
  let headerBytes = new TextEncoder().encode(`{${parts.join(",")}}`);
  const padding = (8 - (headerBytes.length % 8)) % 8;
  if (padding > 0) {
    const padded = new Uint8Array(headerBytes.length + padding).fill(0x20);
    padded.set(headerBytes);
    headerBytes = padded;
  }
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

/**
 * A file tensor's data as an artifact dtype: any float → f32 (F16/BF16 exactly, F64 rounded);
 * any float → f16/bf16 as bit patterns (the same format exactly, others rounded to nearest even),
 * any integer → i32 (every value must fit), BOOL → bool. A conversion that would lose integer
 * values, or turn floats into integers, throws naming the tensor and the first bad value.
 */
export function convertTensor(t: SafeTensor, to: ArtifactDType, name: string, fileName: string): TensorData {
  const invalid = (why: string): ArtifactInvalidError => new ArtifactInvalidError(fileName, `tensor ${quoteName(name)}: ${why}`);
  const from = DTYPE_INFO[t.dtype];
  const data = t.data;
  switch (to) {
    case "f16":
    case "bf16": {
      if (from.kind !== "float") throw invalid(`is ${from.fileName}, cannot load into ${to} (only float dtypes convert to 16-bit floats)`);
      return encodeHalf(to, data as Float32Array | Float64Array);
    }
    case "f32": {
      if (from.kind === "bool") throw invalid(`is BOOL, cannot load into f32`);
      if (data instanceof Float32Array) return data;
      if (from.kind === "float") return Float32Array.from(data as Float64Array);
      // Integers load into f32 only where every value is exact there (|v| ≤ 2^24 always is).
      const out = new Float32Array(data.length);
      for (let i = 0; i < data.length; i++) {
        const v = Number(data[i]!);
        out[i] = v;
        if (out[i] !== v || (typeof data[i] === "bigint" && BigInt(v) !== data[i]))
          throw invalid(`${from.fileName} element ${i} is ${String(data[i])}, which f32 cannot hold exactly`);
      }
      return out;
    }
    case "i32": {
      if (from.kind !== "int") throw invalid(`is ${from.fileName}, cannot load into i32 (only integer dtypes convert to i32)`);
      if (data instanceof Int32Array) return data;
      const out = new Int32Array(data.length);
      for (let i = 0; i < data.length; i++) {
        const v = data[i]!;
        if (v < -2147483648 || v > 2147483647) throw invalid(`${from.fileName} element ${i} is ${String(v)}, outside i32's range [-2147483648, 2147483647]`);
        out[i] = Number(v);
      }
      return out;
    }
    case "bool":
      if (t.dtype !== "bool") throw invalid(`is ${from.fileName}, cannot load into bool`);
      return data as Uint8Array;
  }
}

export interface DecodedSafetensors {
  readonly tensors: Record<string, NamedTensor>;
  readonly metadata: Readonly<Record<string, string>>;
}

const ARTIFACT_DTYPE_OF: Readonly<Record<"float" | "int" | "bool", ArtifactDType>> = { float: "f32", int: "i32", bool: "bool" };

/**
 * Reads a file (readSafetensors) into the artifact dtypes: F16/BF16 stay f16/bf16 (bit patterns), other floats → f32, integers → i32 (each
 * value checked), BOOL → bool. Tensors come in a null-prototype record.
 */
export function decodeSafetensors(bytes: Uint8Array, fileName: string): DecodedSafetensors {
  const contents = readSafetensors(bytes, fileName);
  const tensors: Record<string, NamedTensor> = Object.create(null) as Record<string, NamedTensor>;
  for (const [name, t] of contents.tensors) {
    // F16 and BF16 are artifact dtypes themselves: they stay 16-bit (bit patterns), as a 16-bit state or input needs.
    const dtype = t.dtype === "f16" || t.dtype === "bf16" ? t.dtype : ARTIFACT_DTYPE_OF[DTYPE_INFO[t.dtype].kind];
    tensors[name] = { dtype, shape: t.shape, data: convertTensor(t, dtype, name, fileName) };
  }
  return { tensors, metadata: contents.metadata };
}
