// Artifact folders are written atomically (runtime/artifact/write-folder.ts): a write that
// fails or is killed part way leaves the old folder whole (or none), never one that loads
// with some files new and some old; the manifest is written last; a folder of other files is
// never replaced.

import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, test } from "vitest";
import * as k from "kiln";
import { buildArtifactFolder } from "../../targets/artifact-folder.ts";
import { loadArtifact } from "../../runtime/artifact/load.ts";
import { writeFolderAtomically } from "../../runtime/artifact/write-folder.ts";
import { scaleSum, trainStep } from "./fixtures/tiny-model.ts";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
let exe: k.Executable;
let other: k.Executable;
beforeAll(async () => {
  exe = await k.compile(trainStep, undefined, { target: "js" });
  other = await k.compile(scaleSum, undefined, { target: "js" });
});

const snapshot = (dir: string): Record<string, string> => {
  const out: Record<string, string> = {};
  const walk = (sub: string): void => {
    for (const entry of readdirSync(path.join(dir, sub), { withFileTypes: true })) {
      const rel = path.join(sub, entry.name);
      if (entry.isDirectory()) walk(rel);
      else out[rel] = readFileSync(path.join(dir, rel)).toString("base64");
    }
  };
  walk("");
  return out;
};

const failingAfter =
  (count: number, written: string[] = []) =>
  (file: string, bytes: Uint8Array) => {
    if (written.length === count) throw new Error("disk full (simulated)");
    writeFileSync(file, bytes);
    written.push(path.basename(file));
  };

describe("writeFolderAtomically", () => {
  test("the manifest is the last file written", () => {
    const parent = mkdtempSync(path.join(os.tmpdir(), "kiln-atomic-"));
    const written: string[] = [];
    const { files } = buildArtifactFolder({ artifact: exe.artifact!, graph: exe.graph, state: exe.state() });
    writeFolderAtomically(path.join(parent, "a"), files, { writeFile: failingAfter(Infinity, written) });
    expect(written.length).toBe(files.size);
    expect(written.at(-1)).toBe("manifest.json");
    expect(readdirSync(parent)).toEqual(["a"]);
  });

  test("a first write that fails part way leaves no folder and no temporary one", () => {
    const parent = mkdtempSync(path.join(os.tmpdir(), "kiln-atomic-"));
    const { files } = buildArtifactFolder({ artifact: exe.artifact!, graph: exe.graph, state: exe.state() });
    expect(() => writeFolderAtomically(path.join(parent, "a"), files, { writeFile: failingAfter(3) })).toThrow("disk full (simulated)");
    expect(readdirSync(parent)).toEqual([]);
  });

  test("a replacement that fails part way leaves the old folder whole, and it still loads", async () => {
    const parent = mkdtempSync(path.join(os.tmpdir(), "kiln-atomic-"));
    const dir = path.join(parent, "model");
    await exe.save(dir);
    const before = snapshot(dir);
    const { files } = buildArtifactFolder({ artifact: other.artifact!, graph: other.graph });
    expect(() => writeFolderAtomically(dir, files, { writeFile: failingAfter(2) })).toThrow("disk full");
    expect(snapshot(dir)).toEqual(before);
    expect(readdirSync(parent)).toEqual(["model"]);
    expect((await loadArtifact(dir)).manifest.name).toBe(exe.artifact!.name);
  });

  test("a process killed mid-write leaves the old folder whole; its half-written sibling does not load", async () => {
    const parent = mkdtempSync(path.join(os.tmpdir(), "kiln-atomic-"));
    const dir = path.join(parent, "model");
    await exe.save(dir);
    const before = snapshot(dir);
    // A child writes the other artifact over it and dies (no cleanup runs) after three files.
    const script = path.join(parent, "crash.mts"); // .mts: an ES module outside any package.json
    writeFileSync(
      script,
      `import { writeFileSync } from "node:fs";
import * as k from ${JSON.stringify(path.join(root, "dsl/index.ts"))};
import { buildArtifactFolder } from ${JSON.stringify(path.join(root, "targets/artifact-folder.ts"))};
import { writeFolderAtomically } from ${JSON.stringify(path.join(root, "runtime/artifact/write-folder.ts"))};
import { scaleSum } from ${JSON.stringify(path.join(root, "test/artifact/fixtures/tiny-model.ts"))};
const exe = await k.compile(scaleSum, undefined, { target: "js" });
let n = 0;
writeFolderAtomically(${JSON.stringify(dir)}, buildArtifactFolder({ artifact: exe.artifact, graph: exe.graph }).files, {
  writeFile: (file, bytes) => { if (n++ === 3) process.kill(process.pid, "SIGKILL"); writeFileSync(file, bytes); },
});
`,
    );
    const r = spawnSync(process.execPath, ["--import", "tsx", script], { cwd: root, encoding: "utf8" });
    expect(r.signal).toBe("SIGKILL");
    expect(snapshot(dir)).toEqual(before);
    expect((await loadArtifact(dir)).manifest.name).toBe(exe.artifact!.name);
    const leftovers = readdirSync(parent).filter((f) => f.startsWith("model.kiln-tmp-"));
    expect(leftovers.length).toBe(1);
    await expect(loadArtifact(path.join(parent, leftovers[0]!))).rejects.toThrow(/^manifest\.json: missing/);
  }, 60_000);

  test("exe.save replaces an artifact folder whole and refuses a folder of other files", async () => {
    const parent = mkdtempSync(path.join(os.tmpdir(), "kiln-atomic-"));
    const dir = path.join(parent, "model");
    await exe.save(dir);
    writeFileSync(path.join(dir, "kernels", "stale.js"), "old");
    await other.save(dir);
    expect(Object.keys(snapshot(dir))).not.toContain(path.join("kernels", "stale.js"));
    expect((await loadArtifact(dir)).manifest.name).toBe(other.artifact!.name);
    expect(readdirSync(parent)).toEqual(["model"]);
    const notAnArtifact = path.join(parent, "photos");
    mkdirSync(notAnArtifact);
    writeFileSync(path.join(notAnArtifact, "cat.jpg"), "meow");
    await expect(exe.save(notAnArtifact)).rejects.toThrow(
      `cannot write the artifact to '${notAnArtifact}': ${notAnArtifact}: is not empty and holds no manifest.json`,
    );
    expect(readdirSync(notAnArtifact)).toEqual(["cat.jpg"]);
  });
});
