// The kiln CLI: spawned as a user runs it (exit codes, streams, the dump | check pipe) and
// in-process through main() for the cases that only need its output. Expected IR lines are
// written by hand from the fixture models in test/cli/fixtures/.

import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, test } from "vitest";
import { main } from "../../cli/main.ts";
import { bufferIO } from "../../cli/io.ts";
import { parseModule } from "../../compiler/ir/parser.ts";
import { printModule } from "../../compiler/ir/printer.ts";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const fixture = (name: string) => `test/cli/fixtures/${name}`;

interface Spawned {
  code: number | null;
  stdout: string;
  stderr: string;
}

function kiln(args: readonly string[], stdin = ""): Promise<Spawned> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["bin/kiln.js", ...args], { cwd: root, stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(stdin);
  });
}

async function inProcess(args: readonly string[], stdin = "") {
  const io = bufferIO(stdin, root);
  const code = await main(args, io);
  return { code, stdout: io.stdout, stderr: io.stderr };
}

// Spawning costs about a second each (tsx start-up): few cases, run side by side.
describe.concurrent("kiln (spawned)", () => {
  test("dump examples/mlp.ts | check - succeeds", async () => {
    const dump = await kiln(["dump", "examples/mlp.ts"]);
    expect(dump.stderr).toBe("");
    expect(dump.code).toBe(0);
    expect(dump.stdout).toMatch(/^graph @forward\(%x: f32\[128,784\] loc\("examples\/mlp\.ts":\d+:\d+\), %w1: f32\[256,784\]/);
    expect(dump.stdout).toMatch(/= dot %x, %\d+ : f32\[128,256\]/);
    expect(dump.stdout).toMatch(/= dot %\d+, %\d+ : f32\[128,10\]/);
    // forward, then trainStep (forward, backward and the AdamW update in one graph).
    expect(dump.stdout).toMatch(/return %\d+ as out\n}\n\ngraph @trainStep\(%x: f32\[128,784\]/);
    expect(dump.stdout).toMatch(/ as loss, .* aliases %opt\.step.*\n}\n$/);
    const check = await kiln(["check", "-"], dump.stdout);
    expect(check).toEqual({ code: 0, stdout: "ok: 2 graph(s)\n", stderr: "" });
  });

  test("compile --time and dump --target --time print each stage, its ms and share to stderr", async () => {
    const stageLine = (name: string) => new RegExp(`^${name} +\\d+\\.\\d{2} +\\d+\\.\\d%$`, "m");
    const out = mkdtempSync(path.join(os.tmpdir(), "kiln-time-"));
    const [compiled, dumped] = await Promise.all([
      kiln(["compile", fixture("two-programs.ts"), "--entry", "scale", "--target", "js", "--out", out, "--time"]),
      kiln(["dump", fixture("two-programs.ts"), "--entry", "scale", "--target", "js", "--time"]),
    ]);
    expect(compiled.code).toBe(0);
    expect(dumped.code).toBe(0);
    // The stages as the driver runs them for js, written here by hand; compile adds the runner's creation.
    const driverStages = ["trace", "simplify", "fuse", "lower", "tile", "memory-plan", "render"];
    for (const [r, stages] of [
      [compiled, [...driverStages, "runner"]],
      [dumped, driverStages],
    ] as const) {
      expect(r.stderr).toMatch(/^stage +ms +%\n/);
      for (const name of [...stages, "total"]) expect(r.stderr).toMatch(stageLine(name));
      const names = r.stderr
        .trim()
        .split("\n")
        .slice(1)
        .map((l) => l.split(/ +/)[0]);
      expect(names).toEqual([...stages, "total"]);
    }
    expect(dumped.stdout).toMatch(/^program @scale\n/);
  });

  test("dump --all writes kernel IR that `kiln check` parses back and verifies", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "kiln-kir-"));
    const dump = await kiln(["dump", "examples/mlp.ts", "--entry", "trainStep", "--all", "--dump-dir", dir]);
    expect(dump.code).toBe(0);
    const kernelFiles = readdirSync(dir)
      .filter((f) => f.endsWith(".kir") && readFileSync(path.join(dir, f), "utf8").startsWith("program @"))
      .sort();
    expect(kernelFiles.length).toBeGreaterThan(0);
    const first = path.join(dir, kernelFiles[0]!);
    const check = await kiln(["check", first]);
    expect(check).toEqual({ code: 0, stdout: "ok: 1 kernel program(s)\n", stderr: "" });
    // A broken kernel statement: the verifier names the kernel, section and statement.
    const broken = readFileSync(first, "utf8").replace(/(%\d+ = )exp2 f32/, "$1exp2 i32");
    const bad = await kiln(["check", "-"], broken);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^error: kernel IR of @trainStep: kernel \S+, section \d+, '%\d+ = exp2 i32 %\d+': x %\d+ has dtype f32, expected i32/);
  });

  test("a corrupted IR line is reported at line:col with a caret, exit 1", async () => {
    const dump = await inProcess(["dump", fixture("two-programs.ts"), "--entry", "scale", "--no-locs", "--after", "input"]);
    const lines = dump.stdout.split("\n");
    // Line 6 is `  %3 = mul %x, %2 : f32[3]`; drop the comma so the parser stops at `%2` (col 15).
    expect(lines[5]).toBe("  %3 = mul %x, %2 : f32[3]");
    lines[5] = "  %3 = mul %x %2 : f32[3]";
    const check = await kiln(["check", "-"], lines.join("\n"));
    expect(check.code).toBe(1);
    expect(check.stdout).toBe("");
    expect(check.stderr).toMatch(/^error: .* at <stdin>:6:15\n/);
    expect(check.stderr).toContain("  %3 = mul %x %2 : f32[3]\n");
    expect(check.stderr).toMatch(/\n\s+\| {15}\^/); // caret under column 15
  });

  test("a usage error exits 2 with the usage line on stderr", async () => {
    const r = await kiln(["check"]);
    expect(r).toEqual({ code: 2, stdout: "", stderr: "kiln check: missing <file>\nusage: kiln check <file.kir | ->\n" });
  });

  test("a user error (shape mismatch in the model) exits 1 and names the model's line", async () => {
    const r = await kiln(["dump", fixture("shape-error.ts")]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toBe("error: shape mismatch in matmul: [2,3] @ [4,5] (inner dims 3 ≠ 4) at test/cli/fixtures/shape-error.ts:4:65\n");
  });
});

describe("kiln (in process)", () => {
  test("dump --after input prints every program as traced, sorted by export name", async () => {
    const r = await inProcess(["dump", fixture("two-programs.ts"), "--no-locs", "--after", "input"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(
      [
        "// ---- 00-input.kir ----",
        "graph @pair(%a: i32[2,2], %b: i32[2,2]) {",
        "  %0 = add %a, %b : i32[2,2]",
        "  %1 = mul %a, %b : i32[2,2]",
        "  return %0 as sum, %1 as prod",
        "}",
        "",
        "graph @scale(%x: f32[3]) {",
        "  %0 = const 2 : f32[]",
        "  %1 = reshape %0 : f32[1]",
        "  %2 = expand %1 : f32[3]",
        "  %3 = mul %x, %2 : f32[3]",
        "  return %3 as out",
        "}",
        "",
      ].join("\n"),
    );
  });

  test("--entry selects one program; locations point at the model file", async () => {
    const r = await inProcess(["dump", fixture("two-programs.ts"), "--entry", "scale", "--after", "input"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('graph @scale(%x: f32[3] loc("test/cli/fixtures/two-programs.ts":4:24)) {\n');
    expect(r.stdout).toMatch(/%3 = mul %x, %2 : f32\[3\] +loc\("test\/cli\/fixtures\/two-programs\.ts":4:51\)/);
    expect(r.stdout).not.toContain("@pair");
  });

  test("dump --time without --target times trace and the graph pipeline, summed over the programs", async () => {
    const r = await inProcess(["dump", fixture("two-programs.ts"), "--time"]);
    expect(r.code).toBe(0);
    expect(
      r.stderr
        .trim()
        .split("\n")
        .map((l) => l.split(/ +/)[0]),
    ).toEqual(["stage", "trace", "simplify", "fuse", "total"]);
    expect(r.stdout).toMatch(/^graph @pair\(/);
    expect(r.stdout).toMatch(/^graph @scale\(/m);
  });

  test("plain dump prints the graphs after the pipeline: one module, no headers", async () => {
    const r = await inProcess(["dump", fixture("two-programs.ts"), "--verify"]);
    expect(r.code).toBe(0);
    expect(r.stdout).not.toContain("// ----");
    expect(parseModule(r.stdout, "dump.kir").map((g) => g.name)).toEqual(["pair", "scale"]);
  });

  test("--all --dump-dir writes numbered files, one module per stage", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "kiln-dump-"));
    const r = await inProcess(["dump", fixture("two-programs.ts"), "--all", "--dump-dir", dir]);
    expect(r.code).toBe(0);
    const files = readdirSync(dir).sort();
    expect(files[0]).toBe("00-input.kir");
    expect(files).toContain("01-simplify.kir");
    for (const f of files) expect(r.stdout).toContain(`// ---- ${f} ----\n`);
    expect(parseModule(readFileSync(path.join(dir, "00-input.kir"), "utf8")).map((g) => g.name)).toEqual(["pair", "scale"]);
  });

  test("dump output parses back and prints byte-identically", async () => {
    const r = await inProcess(["dump", fixture("two-programs.ts")]);
    expect(printModule(parseModule(r.stdout, "dump.kir"))).toBe(r.stdout);
  });

  test.each(["js", "wasm", "webgpu", "cuda"])("dump --target %s --all: every kernel IR stage parses back and verifies with check", async (target) => {
    const dir = mkdtempSync(path.join(os.tmpdir(), `kiln-kir-${target}-`));
    const dump = await inProcess(["dump", "examples/mlp.ts", "--entry", "trainStep", "--target", target, "--all", "--dump-dir", dir]);
    expect(dump.code, dump.stderr).toBe(0);
    const kernelStages = readdirSync(dir).filter((f) => f.endsWith(".kir") && readFileSync(path.join(dir, f), "utf8").startsWith("program @"));
    // lowering, then the target's kernel passes (tile on js and cuda, block-contraction on wasm)
    expect(kernelStages.some((f) => /^\d\d-lower\.kir$/.test(f))).toBe(true);
    for (const f of kernelStages) expect(await inProcess(["check", path.join(dir, f)])).toEqual({ code: 0, stdout: "ok: 1 kernel program(s)\n", stderr: "" });
  });

  test("check counts graphs from a file", async () => {
    const r = await inProcess(["check", "test/cli/fixtures/two-graphs.kir"]);
    expect(r).toEqual({ code: 0, stdout: "ok: 2 graph(s)\n", stderr: "" });
  });

  test("check reports a verifier error (wrong declared type) at its line", async () => {
    const text = "graph @g(%x: f32[2]) {\n  %0 = neg %x : f32[3]\n  return %0 as out\n}\n";
    const r = await inProcess(["check", "-"], text);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error: .*<stdin>:2:\d+/);
  });

  test.each([
    [["dump", fixture("missing.ts")], 1, "error: cannot read 'test/cli/fixtures/missing.ts': no such file\n"],
    [["check", "nope.kir"], 1, "error: cannot read 'nope.kir': no such file\n"],
    [["dump", fixture("no-programs.ts")], 1, /exports no k\.program/],
    [["dump", fixture("two-programs.ts"), "--entry", "nope"], 1, "error: 'test/cli/fixtures/two-programs.ts' has no program 'nope' (programs: pair, scale)\n"],
    [["dump"], 2, /^kiln dump: missing <model\.ts>\nusage: kiln dump <model\.ts> \[--entry <name>\]/],
    [["check", "a.kir", "b.kir"], 2, /unexpected argument 'b\.kir'/],
    [["dump", "x.ts", "--after", "nosuchpass"], 2, /kiln dump: unknown pass 'nosuchpass'/],
    [["dump", "--bogus", "x.ts"], 2, /^kiln dump: unknown option '--bogus'\nusage: kiln dump /],
    [["dump", "x.ts", "--entry"], 2, /argument missing/],
    [["frobnicate"], 2, /unknown command 'frobnicate' \(commands: dump, check\b.*\)/],
    [[], 2, /^usage: kiln <command>/],
  ] as const)("%j exits %i", async (args, code, stderr) => {
    const r = await inProcess(args);
    expect(r.code).toBe(code);
    expect(r.stdout).toBe("");
    if (typeof stderr === "string") expect(r.stderr).toBe(stderr);
    else expect(r.stderr).toMatch(stderr);
  });

  test("dump --help prints the usage and options", async () => {
    const r = await inProcess(["dump", "x.ts", "--help"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^usage: kiln dump <model\.ts> \[--entry <name>\].*\[--no-locs\] \[--time\] \[--fuse-attention\]\n\n/);
    expect(r.stdout).toContain("--entry <name>");
    expect(r.stdout).toContain("--time ");
  });

  test("--help lists the commands; --version prints the package version", async () => {
    const help = await inProcess(["--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/commands:\n {2}dump +print the graph IR.*\n {2}check +parse and verify/);
    const helpCheck = await inProcess(["help", "check"]);
    expect(helpCheck.stdout).toMatch(/^usage: kiln check <file\.kir \| ->\n/);
    expect((await inProcess(["help", "nope"])).code).toBe(2);
    const version = await inProcess(["--version"]);
    expect(version.stdout).toMatch(/^kiln \d+\.\d+\.\d+\n$/);
  });
});
