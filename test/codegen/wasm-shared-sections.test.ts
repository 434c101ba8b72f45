// The wasm renderer's section sharing (SectionCache, codegen/wasm/render-program.ts): a section
// whose structure was rendered before is re-based onto its own buffers instead of emitted
// again. Checked against the renderer without sharing, which must give the same bytes for
// every module, and counted: the layers of a small GPT training step share their sections.
// The block-contraction pass shares its register blocks the same way: the same program text.

import { describe, expect, test } from "vitest";
import * as k from "kiln";
import { compileWasm } from "../../targets/wasm.ts";
import { renderWasmProgram, SectionCache } from "../../codegen/wasm/render-program.ts";
import { emitSection } from "../../codegen/wasm/emit-section.ts";
import { HELPER_FUNCS } from "../../codegen/wasm/module-helpers.ts";
import type { BufferPlace } from "../../codegen/wasm/func-builder.ts";
import { gptTrainStep } from "../../bench/cases/gpt.ts";
import { lowerProgram } from "../../compiler/kernel/lower.ts";
import { blockContractions } from "../../compiler/kernel/block-contraction.ts";
import { printKernelProgram } from "../../compiler/kernel/print.ts";

const cfg = { vocab: 40, context: 8, dModel: 16, heads: 2, layers: 3, batch: 2 };
const { fn, specs } = gptTrainStep(cfg);
const compiled = compileWasm(k.traceFunction("tiny_gpt_step", fn, specs).graph, {});
const { program, memory } = compiled;

describe("wasm: sections rendered once per structure", () => {
  test.each([
    ["simd", {}],
    ["relaxed simd", { fma: true }],
    ["scalar", { simd: false }],
  ] as const)("every module is byte-identical to the unshared render (%s)", (_, opts) => {
    const shared = renderWasmProgram(program, memory, opts);
    const fresh = renderWasmProgram(program, memory, opts, false);
    expect(shared.kernels.length).toBe(program.kernels.length);
    shared.kernels.forEach((kern, i) => {
      expect(kern.source, kern.name).toBe(fresh.kernels[i]!.source);
      expect(kern.portableSource, kern.name).toBe(fresh.kernels[i]!.portableSource);
    });
  });

  test("each layer's sections after the first are re-based, not emitted", () => {
    // Bases far apart and all distinct (LEB128 lengths differ between layers), dtypes as declared.
    const places = program.buffers.map((b): BufferPlace => ({ id: b.id, base: 64 + b.id * 40_000, dtype: b.dtype }));
    const place = (id: number): BufferPlace => places[id]!;
    const cache = new SectionCache();
    let sections = 0;
    for (const kern of program.kernels)
      kern.sections.forEach((s, j) => {
        sections++;
        const got = cache.emit(s, place, `s${j}`, {}, undefined);
        const want = emitSection(s, place, HELPER_FUNCS, `s${j}`, {});
        expect([...got.func.body.toBytes()]).toEqual([...want.func.body.toBytes()]);
        expect(got.func.locals).toEqual(want.func.locals);
        expect(got.relocations).toEqual(want.relocations);
        expect([got.splitExtent, got.work]).toEqual([want.splitExtent, want.work]);
      });
    expect(cache.emitted + cache.rebased).toBe(sections);
    // Three identical blocks: at least the middle one's forward and backward sections repeat
    // another block's (the first and last also border the embedding and the head).
    const perBlock = program.kernels.filter((kern) => kern.sections.some((s) => s.scopes?.some((sc) => sc.startsWith("blocks.1")))).length;
    expect(perBlock).toBeGreaterThan(5);
    expect(cache.rebased).toBeGreaterThanOrEqual(perBlock);
  });
});

test("block-contraction: blocks shared across identical sections give the same program as blocking each afresh", () => {
  const lowered = lowerProgram(compiled.graph, compiled.plan, { tile: false });
  const shared = printKernelProgram(blockContractions(lowered));
  expect(shared).toBe(printKernelProgram(blockContractions(lowered, false)));
  // Register blocks were made, and more than one section per structure: their block variables (`o1b`) are in several kernels.
  expect(shared.match(/section \d+ domain \[[^\]]*o\db</g)?.length ?? 0).toBeGreaterThan(cfg.layers);
});
