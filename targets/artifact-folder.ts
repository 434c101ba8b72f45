// Turns an in-memory Artifact (what k.compile built) into the files of a standalone artifact
// folder — manifest.json, kernel sources, weights.safetensors, the graph IR, a typed loader
// and the target's runtime as plain ES modules — and writes them. The folder runs without Kiln.

import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { Artifact } from "../runtime/artifact/format.ts";
import { sha256Hex } from "../runtime/artifact/hash.ts";
import { kernelFileNames, MANIFEST_FILE, manifestOf, WEIGHTS_FILE, type Manifest, type ManifestExtras } from "../runtime/artifact/manifest.ts";
import { symbolicInfo } from "../compiler/ir/symbolic.ts";
import { nodeOf } from "../compiler/ir/graph.ts";
import { encodeSafetensors, type NamedTensor } from "../runtime/artifact/safetensors.ts";
import { writeFolderAtomically, type WriteFolderOptions } from "../runtime/artifact/write-folder.ts";
import { printGraph } from "../compiler/ir/printer.ts";
import type { Graph, ValueId } from "../compiler/ir/types.ts";
import { KilnError } from "../compiler/util/errors.ts";
import type { LoaderRuntime } from "./backend.ts";
import { generateLoaderSource, rewriteTsSpecifiers, transpileToModule } from "./loader-gen.ts";
import { backendOf } from "./backends.ts";

export const GRAPH_FILE = "graph.kir";

export interface ArtifactFolderInput {
  readonly artifact: Artifact;
  /** The traced graph (before passes): its canonical text is hashed into the manifest and saved as graph.kir. */
  readonly graph: Graph;
  /** Initial values of the state inputs (exe.state()): parameters and optimizer state. */
  readonly state?: Readonly<Record<string, NamedTensor>>;
  /** Skip the loader and runtime files (manifest, kernels, weights only). Default: only for targets without a JS runtime (cuda). */
  readonly withoutLoader?: boolean;
}

export interface ArtifactFolder {
  readonly manifest: Manifest;
  /** Every file by relative path, manifest.json included. */
  readonly files: ReadonlyMap<string, Uint8Array>;
}

// The folder whose runtime/ holds the runtime's TypeScript sources: the checkout, or, when this
// runs from the built package (dist/targets/), the package root above dist/.
// A function, not a constant: nothing Node-only runs when this module is merely imported (a browser bundle).
function repoRoot(): string {
  const compiledFrom = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
  return path.basename(compiledFrom) === "dist" ? path.dirname(compiledFrom) : compiledFrom;
}
const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text);

export function graphHashOf(graph: Graph): string {
  return sha256Hex(printGraph(graph));
}

/** The folder's files, built in memory; the manifest lists the sha256 of all but itself. */
export function buildArtifactFolder(input: ArtifactFolderInput): ArtifactFolder {
  const { artifact } = input;
  const graphText = printGraph(input.graph);
  const stateNames = artifact.inputs.map((i) => i.name).filter((n) => input.state?.[n] !== undefined);
  const files = new Map<string, Uint8Array>();
  const { kernelExtension, loader } = backendOf(artifact.target).artifactFiles;
  const kernelFiles = kernelFileNames(kernelExtension, artifact.kernels);
  artifact.kernels.forEach((k, i) => files.set(kernelFiles[i]!, utf8(k.source)));
  if (stateNames.length > 0) {
    const state = Object.fromEntries(stateNames.map((n) => [n, input.state![n]!]));
    files.set(WEIGHTS_FILE, encodeSafetensors(state, { graph: artifact.name }));
  }
  files.set(GRAPH_FILE, utf8(graphText));
  const hashOf = new Map<string, string>(); // each file hashed once, though `hashes` runs twice
  const hashes = (): Record<string, string> =>
    Object.fromEntries(
      [...files]
        .sort(([a], [b]) => (a < b ? -1 : 1))
        .map(([name, bytes]) => {
          if (!hashOf.has(name)) hashOf.set(name, sha256Hex(bytes));
          return [name, hashOf.get(name)!];
        }),
    );
  const graphHash = sha256Hex(graphText);
  const symbol = symbolOfGraph(input.graph);
  let manifest = manifestOf(artifact, { graphHash, stateNames, kernelFiles, files: hashes(), ...(symbol ? { symbol } : {}) });
  if (input.withoutLoader !== true && loader !== undefined) {
    for (const [name, text] of runtimeFiles(artifact.target, loader)) files.set(name, utf8(text));
    const loaderSource = generateLoaderSource(manifest, loader);
    files.set("index.ts", utf8(loaderSource));
    files.set("index.js", utf8(transpileToModule(loaderSource, "index.ts")));
    files.set(
      "package.json",
      utf8(`${JSON.stringify({ name: safePackageName(artifact.name), private: true, type: "module", main: "index.js", types: "index.ts" }, null, 2)}\n`),
    );
    manifest = { ...manifest, files: hashes() };
  }
  files.set(MANIFEST_FILE, utf8(manifestText(manifest)));
  return { manifest, files };
}

/** Writes the folder atomically (runtime/artifact/write-folder.ts): a temporary sibling renamed into place. */
export function writeArtifactFolder(dir: string, input: ArtifactFolderInput): ArtifactFolder {
  const folder = buildArtifactFolder(input);
  writeFolderOrExplain(dir, folder.files);
  return folder;
}

/** writeFolderAtomically with its errors as one KilnError naming the folder. */
export function writeFolderOrExplain(dir: string, files: ReadonlyMap<string, Uint8Array>, opts: WriteFolderOptions = {}): void {
  try {
    writeFolderAtomically(dir, files, opts);
  } catch (e) {
    throw new KilnError({ code: "invalid-argument", message: `cannot write the artifact to '${dir}': ${(e as Error).message}` });
  }
}

// Transpiling is the slow part of a save; the runtime's sources do not change within a process.
const runtimeFilesCache = new Map<string, ReadonlyMap<string, string>>();

/** The target's runtime modules and everything they import, as .ts (imports → .js) and transpiled .js. */
function runtimeFiles(target: string, loader: LoaderRuntime): ReadonlyMap<string, string> {
  const cached = runtimeFilesCache.get(target);
  if (cached) return cached;
  const out = new Map<string, string>();
  const pending = [...loader.modules, "runtime/artifact/load.ts"];
  const seen = new Set<string>();
  while (pending.length > 0) {
    const module = pending.pop()!;
    if (seen.has(module)) continue;
    seen.add(module);
    if (!module.startsWith("runtime/"))
      throw new KilnError({ code: "unsupported", message: `runtime module ${module} is outside runtime/: the artifact cannot ship it` });
    const source = readFileSync(path.join(repoRoot(), module), "utf8");
    for (const match of source.matchAll(/(?:from|import)\s*\(?\s*["'](\.{1,2}\/[^"']+\.ts)["']/g))
      pending.push(path.posix.normalize(path.posix.join(path.posix.dirname(module), match[1]!)));
    out.set(module, rewriteTsSpecifiers(source));
    out.set(module.replace(/\.ts$/, ".js"), transpileToModule(source, module));
  }
  runtimeFilesCache.set(target, out);
  return out;
}

/** Indented JSON with number lists (shapes, params) on one line, so the manifest reads and diffs well. */
function manifestText(manifest: Manifest): string {
  return `${JSON.stringify(manifest, null, 2).replace(/\[\s*(-?\d[\d\s,.-]*?)\s*\]/g, (_, items: string) => `[${items.split(/,\s*/).join(", ")}]`)}\n`;
}

const safePackageName = (name: string): string => `kiln-artifact-${name.toLowerCase().replace(/[^a-z0-9-]+/g, "-")}`.replace(/-+$/, "");

/** The manifest's record of a symbolic dimension: which inputs and outputs lead with it, at what scale. */
function symbolOfGraph(g: Graph): ManifestExtras["symbol"] {
  const info = symbolicInfo(g);
  if (!info) return undefined;
  const lead = (id: ValueId): number | undefined => {
    const s = info.axes.get(id)?.[0];
    return typeof s === "number" ? s : undefined;
  };
  const axes: Record<string, number> = {};
  for (const id of g.inputs) {
    const n = nodeOf(g, id);
    const scale = lead(id);
    if (n.op === "input" && scale !== undefined) axes[n.name] = scale;
  }
  const outputs: Record<string, number> = {};
  for (const o of g.outputs) {
    const scale = lead(o.value);
    if (scale !== undefined) outputs[o.name] = scale;
  }
  return { name: info.name, max: info.max, axes, outputs };
}
