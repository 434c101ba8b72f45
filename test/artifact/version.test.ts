// Artifact versions (runtime/artifact/format.ts ARTIFACT_VERSION, manifest.ts
// MANIFEST_SCHEMA_VERSION): since version 2 a webgpu f16/bf16 tensor takes 2 bytes an element,
// where version 1 gave each a 4-byte word. A version-1 folder or object is refused, naming the
// file (or artifact) and both versions, exactly where that layout differs — webgpu with a
// 16-bit buffer; any other version-1 artifact still loads and runs.

import { describe, expect, test } from "vitest";
import * as k from "kiln";
import { ARTIFACT_VERSION, type Artifact, checkArtifactVersion } from "../../runtime/artifact/format.ts";
import { decodeHalf } from "../../runtime/artifact/half.ts";
import { createModel, loadArtifact } from "../../runtime/artifact/load.ts";
import { MANIFEST_FILE, MANIFEST_SCHEMA_VERSION, type Manifest } from "../../runtime/artifact/manifest.ts";
import { JsArtifactRunner } from "../../runtime/js/run-artifact.ts";
import { buildArtifactFolder } from "../../targets/artifact-folder.ts";
import { compileWebGpu } from "../../targets/webgpu.ts";
import { compileJs } from "../../targets/js.ts";

/** The folder's files in memory, with manifest.json's schemaVersion replaced (manifest.json is not among the hashed files). */
function withSchemaVersion(files: ReadonlyMap<string, Uint8Array>, schemaVersion: unknown): (file: string) => Promise<Uint8Array | undefined> {
  const manifest = JSON.parse(new TextDecoder().decode(files.get(MANIFEST_FILE)!)) as Manifest;
  const edited = new Map(files).set(MANIFEST_FILE, new TextEncoder().encode(JSON.stringify({ ...manifest, schemaVersion })));
  return async (file) => edited.get(file);
}

/** A 16-bit output's values (the runtime returns bit patterns), else the data as numbers. */
const values = (t: { readonly dtype: string; readonly data: ArrayLike<number> }): number[] =>
  t.dtype === "f16" || t.dtype === "bf16" ? Array.from(decodeHalf(t.dtype, t.data)) : Array.from(t.data);

const refusal = async (promise: Promise<unknown>): Promise<Error> => {
  try {
    await promise;
  } catch (e) {
    return e as Error;
  }
  throw new Error("expected a refusal");
};

describe("artifact versions", () => {
  // x (f16) and s (bf16) are 16-bit webgpu buffers; the f32 twin has none.
  const half = k.traceFunction("halves", (({ x, s }: { x: k.Tensor; s: k.Tensor }) => ({ y: x.mul(2), t: s.add(1) })) as never, {
    x: k.f16([5]),
    s: k.bf16([3]),
  }).graph;
  const plain = k.traceFunction("plain", (({ x }: { x: k.Tensor }) => ({ y: x.mul(2) })) as never, { x: k.f32([5]) }).graph;

  test("the current versions are 2; a folder written now loads", async () => {
    expect([ARTIFACT_VERSION, MANIFEST_SCHEMA_VERSION]).toEqual([2, 2]);
    const folder = buildArtifactFolder({ artifact: compileWebGpu(half).artifact, graph: half, withoutLoader: true });
    expect(folder.manifest.schemaVersion).toBe(2);
    // The packed layout the bump is for: 5 f16 elements in 3 words, not 5.
    const x = folder.manifest.buffers.find((b) => b.name === "x")!;
    expect(folder.manifest.memory.slotBytes[x.slot]).toBe(12);
    const loaded = await loadArtifact(async (file) => folder.files.get(file));
    expect(loaded.artifact.version).toBe(2);
  });

  test("a webgpu folder of schemaVersion 1 with a 16-bit buffer is refused naming manifest.json, both versions and the buffer", async () => {
    const folder = buildArtifactFolder({ artifact: compileWebGpu(half).artifact, graph: half, withoutLoader: true });
    const e = await refusal(loadArtifact(withSchemaVersion(folder.files, 1)));
    expect(e.message).toBe(
      "manifest.json: schemaVersion is 1, this loader reads schemaVersion 2: a webgpu artifact of schemaVersion 1 holds each f16/bf16 element in 4 bytes (2 since schemaVersion 2), and buffer 'x' is f16; compile it again",
    );
    expect((e as { code?: string }).code).toBe("artifact-invalid");
    // A version from the future is refused too.
    expect((await refusal(loadArtifact(withSchemaVersion(folder.files, 3)))).message).toBe(
      "manifest.json: schemaVersion is 3, this loader reads schemaVersion 2",
    );
  });

  test("a schemaVersion 1 folder whose layout did not change (webgpu without 16-bit buffers, js with them) loads, and runs as before", async () => {
    const gpu = buildArtifactFolder({ artifact: compileWebGpu(plain).artifact, graph: plain, withoutLoader: true });
    expect((await loadArtifact(withSchemaVersion(gpu.files, 1))).manifest.schemaVersion).toBe(1);
    const js = buildArtifactFolder({ artifact: compileJs(half).artifact, graph: half, withoutLoader: true });
    const loaded = await loadArtifact(withSchemaVersion(js.files, 1));
    const model = createModel(loaded, new JsArtifactRunner(loaded.artifact));
    const out = await model.run({ x: Float32Array.of(0.5, -1.5, 3, 1000, 0.1), s: Float32Array.of(1, 2.5, -4) });
    // Hand-computed: 2x and s + 1, each exact in its format except 0.1 (f16 0.0999755859375, doubled).
    expect(values(out["y"]!)).toEqual([1, -3, 6, 2000, 0.199951171875]);
    expect(values(out["t"]!)).toEqual([2, 3.5, -3]);
  });

  test("in memory: a version-1 object runs unless webgpu holds 16-bit tensors; other versions are refused, naming the artifact", () => {
    const gpuHalf = compileWebGpu(half).artifact;
    expect(() => checkArtifactVersion({ ...gpuHalf, version: 1 })).toThrow(
      "artifact halves: version is 1, this loader reads version 2: a webgpu artifact of version 1 holds each f16/bf16 element in 4 bytes (2 since version 2), and buffer 'x' is f16; compile it again",
    );
    expect(() => checkArtifactVersion(gpuHalf)).not.toThrow();
    expect(() => checkArtifactVersion({ ...compileWebGpu(plain).artifact, version: 1 })).not.toThrow();
    const js = compileJs(plain).artifact;
    const out = new JsArtifactRunner({ ...js, version: 1 }).run({ x: { dtype: "f32", shape: [5], data: Float32Array.of(1, 2, 3, 4, 5) } });
    expect(Array.from(out["y"]!.data)).toEqual([2, 4, 6, 8, 10]);
    expect(() => new JsArtifactRunner({ ...js, version: 3 } as Artifact)).toThrow("artifact plain: version is 3, this loader reads version 2");
  });
});
