// `kiln tune`: in-process through main(), on a row kernel (its 4 candidates compile in well
// under a second on lavapipe): the first run searches and writes the cache, the second finds
// it cached; an artifact's choices import into another cache. What the search measures is tested in test/targets/webgpu-tune.test.ts.

import { existsSync, mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { main } from "../../cli/main.ts";
import { bufferIO } from "../../cli/io.ts";
import { webGpuTestEnv } from "../util/webgpu-env.ts";
import * as k from "kiln";
import { buildArtifactFolder } from "../../targets/artifact-folder.ts";
import { writeFolderAtomically } from "../../runtime/artifact/write-folder.ts";

const env = await webGpuTestEnv();
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

async function kiln(args: readonly string[]) {
  const io = bufferIO("", root);
  const code = await main(args, io);
  return { code, stdout: io.stdout, stderr: io.stderr };
}

describe.skipIf(!env.available)("kiln tune", () => {
  const saved = process.env["KILN_CACHE_DIR"];
  const dir = mkdtempSync(path.join(os.tmpdir(), "kiln-cli-tune-"));
  beforeAll(() => void (process.env["KILN_CACHE_DIR"] = dir));
  afterAll(() => void (process.env["KILN_CACHE_DIR"] = saved));

  test("searches what the cache lacks, saves it, and finds it cached the next time", async () => {
    const first = await kiln(["tune", "test/cli/fixtures/tiny-tune.ts"]);
    expect(first.stderr).toBe("");
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(/^row:[0-9a-f]{24} +form row threads=\d+ +searched +\d/m);
    expect(first.stdout).toContain("1 sections, 1 searched");
    const file = first.stdout.split("\n")[0]!.split(": ").at(-1)!;
    expect(file.startsWith(dir) && existsSync(file)).toBe(true);
    const second = await kiln(["tune", "test/cli/fixtures/tiny-tune.ts"]);
    expect(second.stdout).toMatch(/^row:[0-9a-f]{24} +form row threads=\d+ +cached/m);
    expect(second.stdout).toContain("1 sections, 0 searched");
  });

  test("--import adds a saved artifact's searched choices to another cache; a compile then finds them", async () => {
    // An artifact compiled with the cache the test above filled: its manifest says the row kernel was tuned.
    const exe = await k.compile((x: k.Tensor) => x.softmax(-1), [k.f32([24, 200])], { target: "webgpu", progress: false });
    const folder = path.join(dir, "artifact");
    writeFolderAtomically(
      folder,
      buildArtifactFolder({
        artifact: exe.artifact!,
        graph: k.traceFunction("rows", (x: k.Tensor) => x.softmax(-1), [k.f32([24, 200])]).graph,
        withoutLoader: true,
      }).files,
    );
    process.env["KILN_CACHE_DIR"] = mkdtempSync(path.join(os.tmpdir(), "kiln-cli-tune-import-"));
    const imported = await kiln(["tune", "--import", folder]);
    expect(imported.stderr).toBe("");
    expect(imported.stdout).toMatch(/^imported 1 tuned choices from /);
    const after = await kiln(["tune", "test/cli/fixtures/tiny-tune.ts"]);
    expect(after.stdout).toMatch(/^row:[0-9a-f]{24} +form row threads=\d+ +cached/m);
    expect(after.stdout).toContain("1 sections, 0 searched");
    const notAnArtifact = await kiln(["tune", "--import", dir]);
    expect(notAnArtifact.code).toBe(1);
  });
});
