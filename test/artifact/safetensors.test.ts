// runtime/artifact/safetensors.ts: the byte layout written by hand from the format's spec
// (8-byte LE header length, JSON header padded with spaces to 8 bytes, LE data), round
// trips of every dtype, and malformed files refused with the file named.

import { describe, expect, test } from "vitest";
import { ArtifactInvalidError } from "../../runtime/artifact/manifest.ts";
import { decodeSafetensors, encodeSafetensors } from "../../runtime/artifact/safetensors.ts";

/** A safetensors file assembled by hand: header text, then the given data bytes. */
function handMade(headerJson: string, data: readonly number[]): Uint8Array {
  const padded = headerJson + " ".repeat((8 - (headerJson.length % 8)) % 8);
  const out = new Uint8Array(8 + padded.length + data.length);
  new DataView(out.buffer).setUint32(0, padded.length, true); // high 32 bits stay 0
  out.set(new TextEncoder().encode(padded), 8);
  out.set(data, 8 + padded.length);
  return out;
}

describe("encodeSafetensors", () => {
  test("lays out header and data exactly as the spec says, tensors in name order", () => {
    const file = encodeSafetensors({
      w: { dtype: "f32", shape: [2], data: Float32Array.of(1.5, -2) },
      b: { dtype: "i32", shape: [], data: Int32Array.of(-1) },
      m: { dtype: "bool", shape: [3], data: Uint8Array.of(1, 0, 1) },
    });
    // 1.5f = 0x3fc00000, -2f = 0xc0000000 (little-endian bytes); -1 = 0xffffffff.
    const expected = handMade(
      '{"b":{"dtype":"I32","shape":[],"data_offsets":[0,4]},"m":{"dtype":"BOOL","shape":[3],"data_offsets":[4,7]},"w":{"dtype":"F32","shape":[2],"data_offsets":[7,15]}}',
      [0xff, 0xff, 0xff, 0xff, 1, 0, 1, 0x00, 0x00, 0xc0, 0x3f, 0x00, 0x00, 0x00, 0xc0],
    );
    expect(Array.from(file)).toEqual(Array.from(expected));
    expect((file.length - 15 - 8) % 8).toBe(0);
  });

  test("writes f32 from Float64Array rounded to float32, and metadata under __metadata__", () => {
    const file = encodeSafetensors({ x: { dtype: "f32", shape: [1], data: Float64Array.of(0.1) } }, { graph: "g" });
    const { tensors, metadata } = decodeSafetensors(file, "t.safetensors");
    expect(tensors["x"]!.data[0]).toBe(Math.fround(0.1));
    expect(metadata).toEqual({ graph: "g" });
  });
});

describe("decodeSafetensors", () => {
  test("reads a hand-made file, including a tensor with zero elements", () => {
    const file = handMade('{"a":{"dtype":"F32","shape":[1,2],"data_offsets":[0,8]},"e":{"dtype":"I32","shape":[0],"data_offsets":[8,8]}}', [0, 0, 0x80, 0x3f, 0, 0, 0x40, 0xc0]);
    const { tensors } = decodeSafetensors(file, "x.safetensors");
    expect(tensors["a"]).toEqual({ dtype: "f32", shape: [1, 2], data: Float32Array.of(1, -3) });
    expect(tensors["e"]!.data.length).toBe(0);
  });

  test("copies data out of a Node Buffer that views a larger pool", () => {
    const file = encodeSafetensors({ v: { dtype: "i32", shape: [3], data: Int32Array.of(7, 8, 9) } });
    const pool = Buffer.alloc(file.length + 16, 0xaa);
    pool.set(file, 16);
    expect(Array.from(decodeSafetensors(pool.subarray(16), "p.safetensors").tensors["v"]!.data)).toEqual([7, 8, 9]);
  });

  const cases: [string, Uint8Array, RegExp][] = [
    ["too short", Uint8Array.of(1, 2, 3), /^w\.safetensors: not a safetensors file/],
    ["header length past the end", handMade("{}", []).map((b, i) => (i === 0 ? 200 : b)), /^w\.safetensors: header length 200 does not fit/],
    ["header not JSON", handMade("{nope", []), /^w\.safetensors: header is not JSON/],
    ["unknown dtype", handMade('{"a":{"dtype":"F16","shape":[1],"data_offsets":[0,2]}}', [0, 0]), /tensor 'a': dtype "F16" is not one of F32, I32, BOOL/],
    ["offsets outside the data", handMade('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', [0, 0]), /tensor 'a': data_offsets \[0, 4\] lie outside the 2 data bytes/],
    ["size not matching the shape", handMade('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}', [0, 0, 0, 0]), /tensor 'a': 4 bytes for f32\[2\], which needs 8/],
  ];
  test.each(cases)("refuses a file with %s, naming the file", (_, bytes, message) => {
    expect(() => decodeSafetensors(bytes, "w.safetensors")).toThrow(ArtifactInvalidError);
    expect(() => decodeSafetensors(bytes, "w.safetensors")).toThrow(message);
  });
});
