// `kiln profile`: in-process through main(); a smoke test of the table and the JSON it writes
// on the js target (what it measures is exe.profile's, tested in test/targets/profile.test.ts).

import { mkdtempSync, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { expect, test } from "vitest";
import { main } from "../../cli/main.ts";
import { bufferIO } from "../../cli/io.ts";
import type { Profile } from "../../targets/profile.ts";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const fixture = "test/cli/fixtures/tiny-profile.ts";

async function kiln(args: readonly string[]) {
  const io = bufferIO("", root);
  const code = await main(args, io);
  return { code, stdout: io.stdout, stderr: io.stderr };
}

test("kiln profile prints one row per kernel with its calls, and writes the Profile as JSON", async () => {
  const json = path.join(mkdtempSync(path.join(os.tmpdir(), "kiln-profile-")), "step.json");
  const r = await kiln(["profile", fixture, "--entry", "step", "--target", "js", "--steps", "2", "--sort", "launch", "--no-peaks", "--json", json]);
  expect(r.stderr).toMatch(/^compiled step for js in \d+ ms \(runner \d+ ms\)\n$/);
  expect(r.code).toBe(0);
  const profile = JSON.parse(readFileSync(json, "utf8")) as Profile;
  expect(profile.target).toBe("js");
  expect(profile.steps).toBe(2);
  expect(profile.kernels.length).toBeGreaterThan(1);
  const lines = r.stdout.split("\n");
  expect(lines[0]).toMatch(/^js on JavaScript, 1 thread: 2 step\(s\), [\d.]+ ms per step; kernels [\d.]+ ms/);
  expect(lines[1]).toBe("kernel times: host timer around each launch");
  expect(lines[3]).toBe("peaks: not measured");
  const header = lines.findIndex((l) => /^kernel {2,}calls/.test(l));
  profile.kernels.forEach((k, i) => {
    const cells = lines[header + 1 + i]!.trim().split(/\s{2,}/);
    expect(cells[1], k.name).toBe("2");
  });
  expect(r.stdout).toContain(`wrote ${json}`);
});

test("kiln profile: positional inputs, --top, bad flags", async () => {
  const r = await kiln(["profile", fixture, "--entry", "forward", "--target", "js", "--steps", "1", "--top", "1", "--no-peaks"]);
  expect(r.code).toBe(0);
  expect(r.stdout).toMatch(/\n {0}kernel {2,}calls[^\n]*\n\S+ +1 +/);
  expect((await kiln(["profile", fixture, "--steps", "0"])).code).toBe(2);
  expect((await kiln(["profile", fixture, "--sort", "name"])).stderr).toMatch(/--sort must be 'time' or 'launch'/);
  const two = await kiln(["profile", fixture, "--target", "js"]);
  expect(two.code).toBe(1);
  expect(two.stderr).toMatch(/exports 2 programs \(forward, step\): pick one with --entry/);
});
