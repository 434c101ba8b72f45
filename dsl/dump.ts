// k.dumpStages: from a program, what `kiln dump --target T --all --dump-dir D` writes. Compiles
// a graph (e.g. `exe.graph`) for a target through the one compile driver, with the options
// k.compile would use on this machine, and writes every stage into a folder: the traced graph,
// the graph after each pass, the fusion groups, the kernel IR after lowering and after each
// kernel pass, the memory plan and the rendered kernels. Node only (it writes files); the
// folder writer (and the backends) are imported on call, so `import "kiln"` in a browser never loads node:fs.

import type { Graph } from "../compiler/ir/types.ts";
import { strictOptions } from "./options.ts";
import { resolveTarget } from "./targets.ts";
import { atCaller } from "./compile.ts";
import { captureUserLoc } from "./loc.ts";

export interface DumpStagesOptions {
  /** The target to compile for: js, wasm, webgpu, cuda, or "auto" (the one k.compile picks here). */
  readonly target: string;
  /** The folder the numbered stage files go into (created as needed). */
  readonly dir: string;
  /** Print source locations, `loc("model.ts":31:12)` (default true). */
  readonly locs?: boolean;
  /** Verify the IR after every stage; a failure names the stage. */
  readonly verify?: boolean;
}

/** Writes every compile stage of `graph` for `opts.target` into `opts.dir`; resolves to the file names written, in order. */
export async function dumpStages(graph: Graph, opts: DumpStagesOptions): Promise<string[]> {
  const callerLoc = captureUserLoc();
  const { target, dir, locs, verify } = strictOptions<DumpStagesOptions>("k.dumpStages", opts, { target: true, dir: true, locs: true, verify: true });
  // The backends by name import every target's renderer: loaded here, not at `import "kiln"`.
  const { backendOf } = await import("../targets/backends.ts");
  // A backend named outright (js, wasm, webgpu, cuda) compiles here whether or not its runtime
  // runs on this machine (cuda without the addon), as `kiln dump --target` does; "auto", "cpu"
  // and other names resolve as k.compile resolves them, and their errors name the caller's line.
  let backend: ReturnType<typeof backendOf>;
  try {
    backend = backendOf(target);
  } catch {
    try {
      backend = backendOf((await resolveTarget(target)).name);
    } catch (e) {
      throw atCaller(e, callerLoc);
    }
  }
  const compiled = backend.compile(graph, {
    ...(await backend.machineOptions?.()),
    dumpAll: true,
    ...(verify === true ? { verify: true } : {}),
    locs: locs !== false,
  });
  const { folderDumpSink } = await import("./dump-folder.ts");
  const sink = folderDumpSink(dir);
  for (const f of compiled.dumps) sink.write(f.name, f.text);
  return compiled.dumps.map((f) => f.name);
}
