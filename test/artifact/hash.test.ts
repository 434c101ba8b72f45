// runtime/artifact/hash.ts: SHA-256 against FIPS 180-4's published vectors and against
// Node's crypto (an independent implementation) at every padding boundary.

import { createHash } from "node:crypto";
import { describe, expect, test } from "vitest";
import { sha256Hex } from "../../runtime/artifact/hash.ts";

const nodeSha256 = (bytes: Uint8Array): string => createHash("sha256").update(bytes).digest("hex");

describe("sha256Hex", () => {
  test("FIPS 180-4 examples: '', 'abc' and the two-block message", () => {
    expect(sha256Hex("")).toBe("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    expect(sha256Hex("abc")).toBe("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    expect(sha256Hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")).toBe("248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  });

  test("matches node:crypto at every length around the 56- and 64-byte padding edges", () => {
    for (let length = 0; length <= 200; length++) {
      const bytes = Uint8Array.from({ length }, (_, i) => (i * 131 + length) & 0xff);
      expect(sha256Hex(bytes), `length ${length}`).toBe(nodeSha256(bytes));
    }
  });

  test("matches node:crypto on 1 MB, on a subarray view, and hashes strings as UTF-8", () => {
    const big = Uint8Array.from({ length: 1 << 20 }, (_, i) => (i * 2654435761) >>> 24);
    expect(sha256Hex(big)).toBe(nodeSha256(big));
    const view = big.subarray(1000, 5000);
    expect(sha256Hex(view)).toBe(nodeSha256(view));
    expect(sha256Hex("héllo ∑")).toBe(createHash("sha256").update("héllo ∑", "utf8").digest("hex"));
  });
});
