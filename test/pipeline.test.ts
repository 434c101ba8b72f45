// The pass manager: dumps (numbered, canonical, selectable by pass), verification after
// each pass naming the culprit, timings, facts, pass lookup, and dumpProgram for the CLI.

import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, test } from "vitest";
import { setLogSink } from "../compiler/debug.ts";
import { printGraph, printModule } from "../compiler/ir/printer.ts";
import { verifyGraph } from "../compiler/ir/verifier.ts";
import type { Graph, Node } from "../compiler/ir/types.ts";
import { simplify } from "../compiler/passes/simplify.ts";
import { defaultPasses, dumpProgram, passByName, passesFromList, runPasses, type Pass } from "../compiler/pipeline.ts";

// The loop's mechanics (numbering, dumps, verify) are tested over one fixed pass, so the tests
// do not change when the default pipeline grows.
const mechanicsPasses: readonly Pass[] = [simplify];
import { KilnError } from "../compiler/util/errors.ts";
import { folderDumpSink } from "../dsl/dump-folder.ts";
import * as k from "../dsl/index.ts";
import { traceFunction } from "../dsl/trace.ts";
import type { Tensor } from "../dsl/tensor.ts";

const model = (): Graph => traceFunction("model", (x: Tensor) => x.mul(1).add(0).neg().neg().softmax(-1), [k.f32([2, 5])]).graph;

/** A pass that records what it saw and emits an extra dump file, like the fusion pass will. */
const emitsKernel: Pass = {
  name: "emit",
  run(g, ctx) {
    ctx.facts.set("emit", { nodes: g.nodes.length });
    ctx.dump(`k0_${g.name}.js`, `// kernel for ${g.name}\n`);
    return g;
  },
};

/** A broken pass: gives the output node a wrong type. */
const breaksTypes: Pass = {
  name: "break",
  run(g) {
    const out = g.outputs[0]!.value;
    const nodes = g.nodes.map((n): Node => (n.id === out ? { ...n, type: { dtype: "i32", shape: [7] } } : n));
    return { ...g, nodes };
  },
};

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), "kiln-dump-"));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe("runPasses", () => {
  test("the default pipeline simplifies and verifies", () => {
    const g = model();
    const { graph } = runPasses(g, defaultPasses, { verify: true });
    expect(verifyGraph(graph)).toEqual([]);
    expect(graph.nodes.length).toBeLessThan(g.nodes.length);
    expect(graph.nodes.some((n) => n.op === "neg")).toBe(true); // softmax's own max-subtraction
  });

  test("--dump-all numbers the input and every pass, in order, with canonical text", () => {
    const g = model();
    const { graph, dumps } = runPasses(g, [...mechanicsPasses, emitsKernel], { dumpAll: true });
    expect(dumps.map((d) => d.name)).toEqual(["00-input.kir", "01-simplify.kir", "k0_model.js", "02-emit.kir"]);
    expect(dumps[0]!.text).toBe(printGraph(g));
    expect(dumps[3]!.text).toBe(printGraph(graph));
  });

  test("--dump-after picks passes by name; extra files come only with their pass", () => {
    const after = runPasses(model(), [...mechanicsPasses, emitsKernel], { dumpAfter: ["simplify"] });
    expect(after.dumps.map((d) => d.name)).toEqual(["01-simplify.kir"]);
    const none = runPasses(model(), [...mechanicsPasses, emitsKernel]);
    expect(none.dumps).toEqual([]);
  });

  test("two runs dump byte-identical files", () => {
    const a = runPasses(model(), mechanicsPasses, { dumpAll: true });
    const b = runPasses(model(), mechanicsPasses, { dumpAll: true });
    expect(b.dumps).toEqual(a.dumps);
  });

  test("--dump-dir writes the same files to disk", () => {
    const dir = tempDir();
    const { dumps } = runPasses(model(), [...mechanicsPasses, emitsKernel], { dumpAll: true, dump: folderDumpSink(join(dir, "nested")) });
    expect(readdirSync(join(dir, "nested")).sort()).toEqual(dumps.map((d) => d.name).sort());
    for (const d of dumps) expect(readFileSync(join(dir, "nested", d.name), "utf8")).toBe(d.text);
  });

  test("--verify names the pass that broke the graph and leaves a reproducer", () => {
    const dir = tempDir();
    const run = () => runPasses(model(), [...mechanicsPasses, breaksTypes], { verify: true, dump: folderDumpSink(dir) });
    expect(run).toThrow(KilnError);
    expect(run).toThrow(/after pass 'break'/);
    expect(readdirSync(dir)).toContain("02-break.reproducer.kir");
    expect(readFileSync(join(dir, "02-break.reproducer.kir"), "utf8")).toMatch(/^\/\/ RUN: break\n/);
  });

  test("without --verify a broken pass goes unnoticed by the loop", () => {
    expect(() => runPasses(model(), [breaksTypes])).not.toThrow();
  });

  test("records timings for every pass and facts from passes", () => {
    const { timings, facts } = runPasses(model(), [...mechanicsPasses, emitsKernel]);
    expect(timings.map((t) => t.pass)).toEqual(["simplify", "emit"]);
    for (const t of timings) expect(t.ms).toBeGreaterThanOrEqual(0);
    const simplifyFacts = facts.get("simplify") as { nodesBefore: number; nodesAfter: number; fired: Record<string, number> };
    expect(simplifyFacts.nodesAfter).toBeLessThan(simplifyFacts.nodesBefore);
    expect(simplifyFacts.fired["drop-double-negation"]).toBe(1);
    expect(facts.get("emit")).toEqual({ nodes: simplifyFacts.nodesAfter });
  });

  test("an unknown --dump-after name is a usage error listing the passes", () => {
    expect(() => runPasses(model(), defaultPasses, { dumpAfter: ["nosuchpass"] })).toThrow(/no pass named 'nosuchpass'.*simplify/);
  });

  test("debug level 4 logs every rewrite through log(), and the level is restored", () => {
    const lines: string[] = [];
    const previous = setLogSink((line) => lines.push(line));
    try {
      runPasses(model(), defaultPasses, { debug: 4 });
      expect(lines.some((l) => /rewrite drop-double-negation/.test(l))).toBe(true);
      lines.length = 0;
      runPasses(model(), defaultPasses, { debug: 0 });
      expect(lines).toEqual([]);
    } finally {
      setLogSink(previous);
    }
  });
});

describe("pass lookup", () => {
  test("finds passes by name and lists the known ones when it cannot", () => {
    expect(passByName("simplify").name).toBe("simplify");
    expect(passesFromList("simplify, cse,dce").map((p) => p.name)).toEqual(["simplify", "cse", "dce"]);
    expect(() => passByName("nope")).toThrow(/unknown pass 'nope' \(known: simplify/);
  });
});

describe("dumpProgram", () => {
  test("without flags prints the final graph", () => {
    const g = model();
    const { text, files } = dumpProgram(g);
    expect(files).toEqual([]);
    expect(text).toBe(printGraph(runPasses(g, defaultPasses).graph));
  });

  test("--all prints every dump under a header", () => {
    const { text, files } = dumpProgram(model(), { all: true, verify: true });
    expect(files.map((f) => f.name)).toEqual(["00-input.kir", "01-simplify.kir", "02-fuse.groups.txt", "02-fuse.kernels.kir", "02-fuse.kir"]);
    expect(text).toBe(files.map((f) => `// ---- ${f.name} ----\n${f.text}`).join("\n"));
  });

  test("a module of graphs dumps each stage of every graph into one file, written to --dump-dir", () => {
    const second = traceFunction("second", (x: Tensor) => x.add(0).exp(), [k.f32([3])]).graph;
    const dir = tempDir();
    const { text, files } = dumpProgram([model(), second], { after: ["simplify"], locs: false });
    const sink = folderDumpSink(dir);
    for (const f of files) sink.write(f.name, f.text);
    expect(files.map((f) => f.name)).toEqual(["01-simplify.kir"]);
    const expected = printModule(
      [model(), second].map((g) => runPasses(g, defaultPasses).graph),
      { locs: false },
    );
    expect(files[0]!.text).toBe(expected);
    expect(text).toBe(`// ---- 01-simplify.kir ----\n${expected}`);
    expect(readFileSync(join(dir, "01-simplify.kir"), "utf8")).toBe(expected);
    expect(text).not.toMatch(/loc\(/);
  });
});
