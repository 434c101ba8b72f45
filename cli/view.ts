// `kiln view <model.ts> --entry E --target T --out page.html`: one self-contained HTML page of a
// compile (docs/inspecting.md). Runs the one compile driver for T with every stage dumped,
// recording the graph after each graph pass, and hands graphs, fusion plan, kernel program,
// artifact and dumps to cli/view-data.ts; cli/view-page.ts writes the page. With --profile N it
// also runs the program N steps under exe.profile and overlays the measured time per kernel.

import { mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import type { Pass } from "../compiler/passes/pass.ts";
import { graphPasses } from "../compiler/pipeline.ts";
import type { Graph } from "../compiler/ir/types.ts";
import type { Compiled } from "../compiler/compile.ts";
import { traceProgram, type Program } from "../dsl/program.ts";
import type { Artifact } from "../runtime/artifact/format.ts";
import { backendOf } from "../targets/backends.ts";
import { resolveTarget } from "../targets/registry.ts";
import { expectPositionals, parseCommandArgs, UsageError } from "./args.ts";
import type { Command } from "./command.ts";
import { resolveFrom, type CliIO } from "./io.ts";
import { loadPrograms, selectOne } from "./load-programs.ts";
import { buildViewData, type ViewData, type ViewProfile } from "./view-data.ts";
import { renderViewPage } from "./view-page.ts";
import { profileForView } from "./view-profile.ts";
import { wasmTexts } from "./wasm-text.ts";

const usage = "kiln view <model.ts> [--entry <name>] [--target <name>] [--out <page.html>] [--profile <steps>]";

export const viewCommand: Command = {
  name: "view",
  summary: "write one self-contained HTML page showing every compile stage of a program",
  usage,
  help: `Imports <model.ts>, compiles the k.program named by --entry for --target through the
whole driver, and writes one HTML file that needs no server and no network: the graph after
every graph pass (what each pass changed in orange), folded by module path (blocks.0.attn is
one box; click to open it), fused kernels coloured on the graph, and for each kernel its kernel
IR, the generated source for the target, elements, FLOPs, bytes, arithmetic intensity and launch
shape; every node and kernel links to its source line and module; search by value name, op,
parameter or kernel name. The other stages' dumps (fusion groups, kernel IR after each kernel
pass, memory plan) are in its 'stages' tab. See docs/inspecting.md.

  --entry <name>      the exported program to show (optional when the file exports one)
  --target <name>     js, wasm, webgpu, cuda or auto (default: auto, what k.compile picks here)
  --out <page.html>   the file to write (default: out/<model>-<entry>-<target>.html)
  --profile <steps>   also run <steps> steps under exe.profile (as kiln profile does) and show the
                      measured time per kernel on the graph and in a table sorted by time

Exit codes: 0 ok; 1 the model cannot be loaded, traced or compiled for the target; 2 bad
command line.`,
  flags: {
    entry: { type: "string", short: "e" },
    target: { type: "string", short: "t", default: "auto" },
    out: { type: "string", short: "o" },
    profile: { type: "string" },
  },
  async run(argv: readonly string[], io: CliIO): Promise<void> {
    const args = parseCommandArgs(argv, this.flags, usage);
    const [file] = expectPositionals(args, ["model.ts"], usage);
    const profileSteps = args.flags.profile === undefined ? undefined : Number(args.flags.profile);
    if (profileSteps !== undefined && !(Number.isInteger(profileSteps) && profileSteps > 0))
      throw new UsageError(`--profile needs a positive whole number of steps, got '${args.flags.profile}'`, usage);
    const { name, program } = selectOne(await loadPrograms(io.cwd, file!), args.flags.entry as string | undefined, file!);
    // A named target needs no device to compile for (as in `kiln dump --target`); only "auto" asks the machine.
    const asked = args.flags.target as string;
    const target = asked === "auto" ? (await resolveTarget("auto")).name : asked;
    const started = performance.now();
    const { graphs, compiled } = await compileForView(program, name, target);
    let profile: ViewProfile | undefined;
    if (profileSteps !== undefined) profile = await profileForView(program, name, target, profileSteps);
    const built = buildViewData({
      title: `${path.basename(file!)} ${name}`,
      target,
      graphs,
      compiled,
      readSource: (f) => readSource(io.cwd, f),
      ...(profile ? { profile } : {}),
    });
    const data = built.sourceKind === "wasm" ? await withWasmText(built) : built;
    const html = renderViewPage(data);
    const out = (args.flags.out as string | undefined) ?? path.join("out", `${path.basename(file!).replace(/\.[cm]?[jt]sx?$/, "")}-${name}-${target}.html`);
    const absolute = resolveFrom(io.cwd, out);
    mkdirSync(path.dirname(absolute), { recursive: true });
    writeFileSync(absolute, html);
    io.out(
      `wrote ${out}: ${name} for ${target}, ${graphs.at(-1)!.graph.nodes.length} nodes, ${data.kernels.length} kernels${profile ? `, profiled over ${profile.steps} steps` : ""}, ${(html.length / 1024).toFixed(0)} KiB (${(performance.now() - started).toFixed(0)} ms)\n`,
    );
  },
};

/**
 * The page's wasm kernels as text (wabt's disassembly) instead of base64, when every module
 * disassembles; a module that does not keeps the data as it was (the page then shows its size).
 */
export async function withWasmText(data: ViewData): Promise<ViewData> {
  const texts = await wasmTexts(data.sources);
  if (texts.some((t) => t === undefined)) return data;
  return { ...data, sources: texts as string[], sourceKind: "wat" };
}

/** Traces `program` and compiles it for `target` through the driver with every stage dumped, keeping the graph after each graph pass. */
export async function compileForView(
  program: Program,
  name: string,
  target: string,
): Promise<{ graph: Graph; graphs: { stage: string; graph: Graph }[]; compiled: Compiled<Artifact> }> {
  const graph = traceProgram(program, name).graph;
  const backend = backendOf(target);
  const graphs: { stage: string; graph: Graph }[] = [{ stage: "input", graph }];
  const recording: Pass[] = graphPasses.map((p) => ({
    name: p.name,
    run(g, ctx) {
      const out = p.run(g, ctx);
      graphs.push({ stage: p.name, graph: out });
      return out;
    },
  }));
  const compiled = backend.compile(graph, { ...(await backend.machineOptions?.()), dumpAll: true, locs: true, graphPasses: recording });
  return { graph, graphs, compiled };
}

/** A source file a loc names, relative to the working directory (where the model was loaded from); undefined when unreadable or large. */
function readSource(cwd: string, file: string): string | undefined {
  try {
    const absolute = resolveFrom(cwd, file);
    if (statSync(absolute).size > 512 * 1024) return undefined;
    return readFileSync(absolute, "utf8");
  } catch {
    return undefined;
  }
}
