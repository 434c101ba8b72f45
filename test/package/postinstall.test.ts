// package.json's `postinstall` (scripts/postinstall.mjs, which writes the library's V8 code cache
// where npm installed the package) must never fail or slow down an install it has no business in.
// Each case copies the script into a scratch package whose dist/dsl/write-library-cache.js is a
// stand-in that leaves a marker file (or fails loudly), runs it as npm would (cwd: the package
// root), and checks the exit status, what it printed and what it wrote. That the real writer runs
// under `npm rebuild kiln` and an installed tarball then takes its cache: test/package/pack.test.ts.

import { spawnSync } from "node:child_process";
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, expect, test } from "vitest";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const scratch = mkdtempSync(path.join(os.tmpdir(), "kiln-postinstall-"));
// Readable by everyone: the not-writable case runs as user nobody when the tests run as root.
chmodSync(scratch, 0o755);
afterAll(() => {
  for (const dir of readdirSync(scratch, { recursive: true, withFileTypes: true }))
    if (dir.isDirectory()) chmodSync(path.join(dir.parentPath, dir.name), 0o755);
  rmSync(scratch, { recursive: true, force: true });
});

/** The stand-in writer: leaves `ran` beside itself (or fails with `failure`, a long stderr). */
const writer = (failure?: string): string =>
  failure === undefined
    ? 'import { writeFileSync } from "node:fs";\nwriteFileSync(new URL("./ran", import.meta.url), "");\n'
    : `process.stderr.write(${JSON.stringify(`${"some noise\n".repeat(20)}${failure}\n`)});\nprocess.exit(3);\n`;

/** A package folder holding the postinstall script and, unless `built` is false, a dist/dsl/ with the stand-in writer. */
function makePackage(name: string, opts: { built?: boolean; checkout?: boolean; failure?: string } = {}): string {
  const pkg = path.join(scratch, name);
  mkdirSync(path.join(pkg, "scripts"), { recursive: true });
  cpSync(path.join(root, "scripts", "postinstall.mjs"), path.join(pkg, "scripts", "postinstall.mjs"));
  writeFileSync(path.join(pkg, "package.json"), JSON.stringify({ name: "kiln", type: "module", scripts: { postinstall: "node scripts/postinstall.mjs" } }));
  if (opts.built !== false) {
    mkdirSync(path.join(pkg, "dist", "dsl"), { recursive: true });
    writeFileSync(path.join(pkg, "dist", "dsl", "library.js"), "(function () { return {}; })\n");
    writeFileSync(path.join(pkg, "dist", "dsl", "write-library-cache.js"), writer(opts.failure));
  }
  if (opts.checkout) {
    mkdirSync(path.join(pkg, "dsl"));
    writeFileSync(path.join(pkg, "dsl", "index.ts"), "export {};\n");
  }
  return pkg;
}

/** Every file under `dir`, relative. */
const files = (dir: string): string[] =>
  readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile())
    .map((d) => path.relative(dir, path.join(d.parentPath, d.name)))
    .sort();

function postinstall(pkg: string, env: Record<string, string> = {}, asUser?: number): { status: number | null; output: string } {
  const args = [path.join(pkg, "scripts", "postinstall.mjs")];
  const r =
    asUser === undefined
      ? spawnSync(process.execPath, args, { cwd: pkg, encoding: "utf8", env: { ...process.env, NODE_OPTIONS: "", ...env } })
      : spawnSync("setpriv", [`--reuid=${asUser}`, `--regid=${asUser}`, "--clear-groups", process.execPath, ...args], {
          cwd: pkg,
          encoding: "utf8",
          env: { ...process.env, NODE_OPTIONS: "", ...env },
        });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

test("in a built package it runs dist/dsl/write-library-cache.js, silently (the stand-in's marker appears)", () => {
  const pkg = makePackage("built");
  expect(postinstall(pkg)).toEqual({ status: 0, output: "" });
  expect(existsSync(path.join(pkg, "dist", "dsl", "ran"))).toBe(true);
});

test("without dist/ (a checkout before the build, `npm ci` in the repository) it exits 0 and writes nothing", () => {
  const pkg = makePackage("unbuilt", { built: false });
  const before = files(pkg);
  expect(postinstall(pkg)).toEqual({ status: 0, output: "" });
  expect(files(pkg)).toEqual(before);
});

test("in a checkout of the repository (dsl/index.ts beside it) it leaves a built dist/ alone", () => {
  const pkg = makePackage("checkout", { checkout: true });
  const before = files(pkg);
  expect(postinstall(pkg)).toEqual({ status: 0, output: "" });
  expect(files(pkg)).toEqual(before);
});

test("KILN_LIBRARY_CACHE=0 skips it", () => {
  const pkg = makePackage("off");
  const before = files(pkg);
  expect(postinstall(pkg, { KILN_LIBRARY_CACHE: "0" })).toEqual({ status: 0, output: "" });
  expect(files(pkg)).toEqual(before);
});

test("where dist/dsl is not writable it writes nothing and says so in one line", () => {
  const pkg = makePackage("read-only");
  const before = files(pkg);
  chmodSync(path.join(pkg, "dist", "dsl"), 0o555);
  // Root writes anywhere: the tests then run it as user nobody (65534), for whom dist/dsl is read-only.
  const r = postinstall(pkg, {}, process.getuid?.() === 0 ? 65534 : undefined);
  expect(r.status).toBe(0);
  expect(r.output).toMatch(/^kiln: no library code cache: .*dist\/dsl is not writable.*\n$/);
  expect(files(pkg)).toEqual(before);
});

test("a writer that fails costs the install nothing: exit status 0 and one short line", () => {
  const pkg = makePackage("failing", { failure: `kiln: no library code cache in /x: V8 rejects the cache written (${"x".repeat(300)})` });
  const r = postinstall(pkg);
  expect(r.status).toBe(0);
  expect(r.output.split("\n")).toHaveLength(2); // one line and its newline
  expect(r.output).toMatch(/^kiln: no library code cache in \/x: V8 rejects/);
  expect(r.output.length).toBeLessThanOrEqual(200);
  // A stand-in that cannot even start (a syntax error) is the same.
  const broken = makePackage("broken");
  writeFileSync(path.join(broken, "dist", "dsl", "write-library-cache.js"), "this is not javascript (\n");
  const b = postinstall(broken);
  expect(b.status).toBe(0);
  expect(b.output.split("\n")).toHaveLength(2);
  expect(b.output).toMatch(/^kiln: no library code cache \(/);
});
