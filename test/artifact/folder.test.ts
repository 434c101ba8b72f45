// Standalone artifact folders end to end on the "js" target: exe.save writes them, the
// runtime loads them back (every file checked against the manifest), the loaded model trains
// exactly as the executable does, plain Node runs the folder's own index.js from outside the
// repo, and corrupted or mismatched folders are refused with the file named.

import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, test } from "vitest";
import * as k from "kiln";
import ts from "typescript";
import type { Artifact } from "../../runtime/artifact/format.ts";
import { buildArtifactFolder } from "../../targets/artifact-folder.ts";
import { printGraph } from "../../compiler/ir/printer.ts";
import { createModel, loadArtifact } from "../../runtime/artifact/load.ts";
import { ArtifactInvalidError, type Manifest } from "../../runtime/artifact/manifest.ts";
import { decodeSafetensors, encodeSafetensors } from "../../runtime/artifact/safetensors.ts";
import { JsArtifactRunner } from "../../runtime/js/run-artifact.ts";
import { scaleSum, trainStep } from "./fixtures/tiny-model.ts";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const sha256 = (bytes: Uint8Array | string): string => createHash("sha256").update(bytes).digest("hex");
const x = Float32Array.of(0.5, -1, 2, 0.25, -0.5, 1.5, 0, 1);
const y = Int32Array.of(2, 0);

let dir: string;
let exe: k.Executable;
let initialState: Record<string, k.HostOutput>;

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), "kiln-artifact-"));
  exe = await k.compile(trainStep, undefined, { target: "js" });
  initialState = exe.state() as Record<string, k.HostOutput>;
  await exe.save(dir);
});

const readManifest = (folder: string): Manifest => JSON.parse(readFileSync(path.join(folder, "manifest.json"), "utf8")) as Manifest;

describe("the folder exe.save writes", () => {
  test("manifest: schema version, graph hash of the traced IR, sha256 of every file", () => {
    const manifest = readManifest(dir);
    expect(manifest.schemaVersion).toBe(2);
    expect(manifest.target).toBe("js");
    expect(manifest.graphHash).toBe(sha256(printGraph(exe.graph)));
    expect(readFileSync(path.join(dir, "graph.kir"), "utf8")).toBe(printGraph(exe.graph));
    const listed = Object.keys(manifest.files);
    for (const required of ["weights.safetensors", "graph.kir", "index.ts", "index.js", "runtime/artifact/load.js", "runtime/js/run-artifact.js"])
      expect(listed).toContain(required);
    for (const file of listed) expect(manifest.files[file], file).toBe(sha256(readFileSync(path.join(dir, file))));
    expect(manifest.kernels.map((kernel) => kernel.file)).toEqual(exe.artifact!.kernels.map((kernel) => `kernels/${kernel.name}.js`));
    expect(manifest.inputs.map((i) => `${i.name}:${i.role}`)).toEqual(
      expect.arrayContaining(["x:user", "y:user", "0.weight:state", "0.bias:state", "opt.step:state"]),
    );
    expect(manifest.outputs.find((o) => o.name === "loss")!.role).toBe("user");
  });

  test("weights.safetensors holds the state exe.state() had, rounded to f32, and the hyperparameters", () => {
    const { tensors } = decodeSafetensors(readFileSync(path.join(dir, "weights.safetensors")), "weights.safetensors");
    expect(Object.keys(tensors).sort()).toEqual([...Object.keys(initialState), "hyper"].sort());
    // AdamW({ lr: 0.1 }): lr, then β1, 1 − β1, ln β1, β2, 1 − β2, ln β2 (the step's derived scalars), eps, weight decay.
    const hyper = [0.1, 0.9, 1 - 0.9, Math.log(0.9), 0.999, 1 - 0.999, Math.log(0.999), 1e-8, 0.01];
    expect(Array.from(tensors["hyper"]!.data)).toEqual(hyper.map(Math.fround));
    for (const [name, t] of Object.entries(initialState)) {
      expect(tensors[name]!.shape, name).toEqual(t.shape);
      expect(Array.from(tensors[name]!.data), name).toEqual(Array.from(t.data, (v) => (t.dtype === "f32" ? Math.fround(v) : v)));
    }
  });

  test("the loaded model trains step for step as the executable does", async () => {
    const loaded = await loadArtifact(dir);
    const model = createModel(loaded, new JsArtifactRunner(loaded.artifact));
    const fresh = await k.compile(trainStep, undefined, { target: "js" });
    fresh.loadState(initialState);
    for (let step = 0; step < 3; step++) {
      const fromFolder = await model.run({ x, y });
      const fromExe = (await fresh.run({ x, y })) as { loss: k.HostOutput };
      expect(fromFolder["loss"]!.data[0]).toBe(fromExe.loss.data[0]);
    }
    expect(Array.from(model.state()["0.weight"]!.data)).toEqual(Array.from(fresh.state()["0.weight"]!.data));
    expect(model.state()["opt.step"]!.data[0]).toBe(3);
  });

  test("the loss matches the float64 interpreter on the same state", async () => {
    const loaded = await loadArtifact(dir);
    const model = createModel(loaded, new JsArtifactRunner(loaded.artifact));
    const reference = await k.compile(trainStep, undefined, { target: "reference" });
    reference.loadState(initialState);
    const expected = ((await reference.run({ x, y })) as { loss: k.HostOutput }).loss.data[0]!;
    expect((await model.run({ x, y }))["loss"]!.data[0]).toBeCloseTo(expected, 5);
  });

  test("plain node runs the folder's index.js, copied away from the repo", () => {
    const away = mkdtempSync(path.join(os.tmpdir(), "kiln-away-"));
    cpSync(dir, path.join(away, "model"), { recursive: true });
    const script = path.join(away, "main.mjs");
    writeFileSync(
      script,
      `import { load, inputs, target } from "./model/index.js";
const model = await load();
const x = Float32Array.from([${Array.from(x).join(", ")}]);
const y = Int32Array.from([${Array.from(y).join(", ")}]);
const losses = [];
for (let i = 0; i < 2; i++) losses.push((await model.run({ x, y })).loss.data[0]);
await model.close();
console.log(JSON.stringify({ target, inputs, losses }));`,
    );
    const out = JSON.parse(execFileSync(process.execPath, [script], { cwd: away, encoding: "utf8" })) as { target: string; inputs: unknown; losses: number[] };
    expect(out.target).toBe("js");
    expect(out.inputs).toEqual({ x: { dtype: "f32", shape: [2, 4] }, y: { dtype: "i32", shape: [2] } });
    expect(out.losses.length).toBe(2);
    expect(out.losses[1]).toBeLessThan(out.losses[0]!); // a training step lowers the loss on its own batch
  });

  test("index.ts types run() with the model's input and output names, dtypes and shapes", () => {
    const folder = mkdtempSync(path.join(os.tmpdir(), "kiln-types-"));
    cpSync(dir, folder, { recursive: true });
    const consumer = path.join(folder, "consumer.ts");
    writeFileSync(
      consumer,
      `import { load, type Outputs } from "./index.js";
const model = await load();
const out: Outputs = await model.run({ x: new Float32Array(8), y: new Int32Array(2) });
const lossShape: readonly [] = out.loss.shape;
const weightShape: readonly [3, 4] = model.state()["0.weight"].shape;
// @ts-expect-error: 'z' is not an input
await model.run({ x: new Float32Array(8), y: new Int32Array(2), z: new Float32Array(1) });
// @ts-expect-error: y is i32
await model.run({ x: new Float32Array(8), y: new Float32Array(2) });
// @ts-expect-error: x as a tensor of another shape
await model.run({ x: { dtype: "f32", shape: [4, 2], data: new Float32Array(8) }, y: new Int32Array(2) });
export { lossShape, weightShape };
`,
    );
    const program = ts.createProgram([consumer], {
      strict: true,
      noEmit: true,
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      lib: ["lib.es2022.d.ts", "lib.dom.d.ts"],
      types: [],
      skipLibCheck: true,
    });
    const problems = ts.getPreEmitDiagnostics(program).map((d) => `${d.file?.fileName ?? ""}: ${ts.flattenDiagnosticMessageText(d.messageText, "\n")}`);
    expect(problems).toEqual([]);
  });

  test("a stateless program saves without weights and returns every output", async () => {
    const plain = await k.compile(scaleSum, undefined, { target: "js" });
    const folder = mkdtempSync(path.join(os.tmpdir(), "kiln-plain-"));
    await plain.save(folder);
    const loaded = await loadArtifact(folder);
    expect(loaded.manifest.weights).toBeUndefined();
    const model = createModel(loaded, new JsArtifactRunner(loaded.artifact));
    const a = Float32Array.of(1, 2, 3, 4, 5, 6);
    const b = Float32Array.of(1, 0, -1, 2, 2, 2);
    const out = await model.run({ a, b });
    expect(Array.from(out["total"]!.data)).toEqual([1 - 3, 8 + 10 + 12]);
    expect(Array.from(out["doubled"]!.data)).toEqual([2, 4, 6, 8, 10, 12]);
    await expect(model.run({ a })).rejects.toThrow("run: missing input 'b' (f32[2,3])");
    await expect(model.run({ a, b: Float32Array.of(1) })).rejects.toThrow("run: input 'b' has 1 elements, expected 6");
  });

  test("a target without a JS runtime gets manifest, kernels and weights only; a custom reader loads them", async () => {
    const artifact = { ...exe.artifact!, target: "cuda", cudaSource: "" } as Artifact;
    const folder = buildArtifactFolder({ artifact, graph: exe.graph, state: initialState });
    const names = [...folder.files.keys()].sort();
    expect(names).toEqual(["graph.kir", "manifest.json", ...artifact.kernels.map((kernel) => `kernels/${kernel.name}.cu`), "weights.safetensors"].sort());
    const loaded = await loadArtifact(async (file) => folder.files.get(file));
    expect(loaded.artifact.kernels.map((kernel) => kernel.source)).toEqual(artifact.kernels.map((kernel) => kernel.source));
    expect(loaded.artifact.target).toBe("cuda");
  });

  test("the reference target has no artifact to save", async () => {
    const ref = await k.compile(scaleSum, undefined, { target: "reference" });
    await expect(ref.save(mkdtempSync(path.join(os.tmpdir(), "kiln-ref-")))).rejects.toThrow("exe.save: target 'reference' builds no artifact");
    // every target that builds one is named (the message once named js and webgpu only)
    await expect(ref.save(mkdtempSync(path.join(os.tmpdir(), "kiln-ref-")))).rejects.toThrow("compile for js, wasm, webgpu or cuda to save one");
  });
});

const webgpu = (await k.availableTargets()).includes("webgpu");

// Inside the repo (out/ is git-ignored) so the shipped runtime finds the "webgpu" package (Dawn).
test.runIf(webgpu || process.env["KILN_REQUIRE_WEBGPU"] === "1")(
  "a webgpu folder runs in plain node through its own shipped runtime, like the js target",
  async () => {
    expect(webgpu, "KILN_REQUIRE_WEBGPU=1 but no WebGPU adapter").toBe(true);
    mkdirSync(path.join(root, "out"), { recursive: true });
    const folder = mkdtempSync(path.join(root, "out", "test-webgpu-artifact-"));
    try {
      const gpuExe = await k.compile(trainStep, undefined, { target: "webgpu" });
      gpuExe.loadState(initialState);
      await gpuExe.save(folder);
      expect(readManifest(folder).kernels.every((kernel) => kernel.file.endsWith(".wgsl"))).toBe(true);
      const script = path.join(folder, "main.mjs");
      writeFileSync(
        script,
        `import { load } from "./index.js";\nconst model = await load();\nconst losses = [];\nfor (let i = 0; i < 3; i++) losses.push((await model.run({ x: Float32Array.from([${Array.from(x).join(", ")}]), y: Int32Array.from([${Array.from(y).join(", ")}]) })).loss.data[0]);\nawait model.close();\nconsole.log(JSON.stringify(losses));`,
      );
      const losses = JSON.parse(execFileSync(process.execPath, [script], { encoding: "utf8" }).trim().split("\n").at(-1)!) as number[];
      const fresh = await k.compile(trainStep, undefined, { target: "js" });
      fresh.loadState(initialState);
      // Not bit-equal: the GPU's f32 sums run in another order (and lr 0.1 amplifies that over steps).
      for (const loss of losses) expect(Math.abs(loss - ((await fresh.run({ x, y })) as { loss: k.HostOutput }).loss.data[0]!)).toBeLessThan(1e-4 * (1 + loss));
    } finally {
      rmSync(folder, { recursive: true, force: true });
    }
  },
);

describe("a corrupted or mismatched folder is refused, naming the file", () => {
  const corrupted = (edit: (folder: string) => void): string => {
    const copy = mkdtempSync(path.join(os.tmpdir(), "kiln-corrupt-"));
    cpSync(dir, copy, { recursive: true });
    edit(copy);
    return copy;
  };
  const refusal = async (folder: string): Promise<ArtifactInvalidError> => {
    const error = await loadArtifact(folder).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ArtifactInvalidError);
    return error as ArtifactInvalidError;
  };

  test("one flipped byte in the weights", async () => {
    const folder = corrupted((f) => {
      const file = path.join(f, "weights.safetensors");
      const bytes = readFileSync(file);
      bytes[bytes.length - 1] = bytes[bytes.length - 1]! ^ 1;
      writeFileSync(file, bytes);
    });
    const e = await refusal(folder);
    expect(e.code).toBe("artifact-invalid");
    expect(e.message).toMatch(/^weights\.safetensors: sha256 mismatch \(manifest says [0-9a-f]{64}, file has [0-9a-f]{64}\)$/);
  });

  test("an edited kernel source", async () => {
    const kernel = readManifest(dir).kernels[0]!.file;
    const folder = corrupted((f) => writeFileSync(path.join(f, kernel), "/* edited */"));
    expect((await refusal(folder)).message).toMatch(new RegExp(`^${kernel.replace(/[.]/g, "\\.")}: sha256 mismatch`));
  });

  test("a missing file", async () => {
    const folder = corrupted((f) => rmSync(path.join(f, "graph.kir")));
    expect((await refusal(folder)).message).toBe("graph.kir: missing (listed in manifest.json files)");
  });

  test("an unknown schemaVersion, and a folder with no manifest", async () => {
    const folder = corrupted((f) => {
      const manifest = readManifest(f);
      writeFileSync(path.join(f, "manifest.json"), JSON.stringify({ ...manifest, schemaVersion: 99 }));
    });
    expect((await refusal(folder)).message).toBe("manifest.json: schemaVersion is 99, this loader reads schemaVersion 2");
    const empty = mkdtempSync(path.join(os.tmpdir(), "kiln-empty-"));
    expect((await refusal(empty)).message).toMatch(/^manifest\.json: missing \(is '.*' an artifact folder\?\)$/);
  });

  test("weights re-hashed but for another graph: the state does not fit the inputs", async () => {
    const folder = corrupted(() => {});
    // Rewrite weights without 0.bias and fix its hash, so only the content check can catch it.
    const { tensors } = decodeSafetensors(readFileSync(path.join(folder, "weights.safetensors")), "w");
    delete tensors["0.bias"];
    const bytes = encodeSafetensors(tensors);
    writeFileSync(path.join(folder, "weights.safetensors"), bytes);
    const manifest = readManifest(folder);
    writeFileSync(path.join(folder, "manifest.json"), JSON.stringify({ ...manifest, files: { ...manifest.files, "weights.safetensors": sha256(bytes) } }));
    expect((await refusal(folder)).message).toBe("weights.safetensors: no tensor '0.bias' (a state input of the graph)");
  });

  test("the generated loader refuses a manifest for another graph", async () => {
    const folder = corrupted((f) => {
      const manifest = readManifest(f);
      writeFileSync(path.join(f, "manifest.json"), JSON.stringify({ ...manifest, graphHash: "0".repeat(64) }));
    });
    const script = path.join(folder, "check.mjs");
    writeFileSync(script, `import { load } from "./index.js";\ntry { await load(); console.log("loaded"); } catch (e) { console.log(e.message); }`);
    expect(execFileSync(process.execPath, [script], { encoding: "utf8" }).trim()).toBe(
      `manifest.json: graphHash is ${"0".repeat(64)}, this loader was generated for ${readManifest(dir).graphHash}`,
    );
  });
});
