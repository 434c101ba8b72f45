// The built library as a classic script with a V8 code cache (issue 14: cold start), for
// scripts/build-package.mjs. V8 compiles a function's bytecode the first time it runs; a cold
// `import "kiln"` and first k.compile paid that for ~1400 of Kiln's functions (~40 ms of the
// MLP's ~180 ms on the 2-core VM), and Node 20 has no `module.enableCompileCache`. A
// `vm.Script` takes the code cache V8 writes after a representative run (`createCachedData`
// then holds every function compiled so far, not only the top level), as Python ships .pyc
// files. So after the chunks are folded into dist/dsl/index.js:
//   dist/dsl/index.esm.js    the library as the ES module esbuild wrote (browsers: package.json's
//                         "browser" condition and map; Node under --enable-source-maps, which
//                         maps modules' frames and not vm scripts');
//   dist/dsl/library.js   the same text as one function expression, `(function (__kilnMeta_,
//                         __kImp) { … return { exports } })`: `import.meta` → `__kilnMeta_`
//                         and `import(` → `__kImp(` (the same lengths, so lines and columns
//                         hold: index.esm.js.map maps it too);
//   dist/dsl/library.cache  V8's code cache of library.js after a cpu compile and run of a
//                         small training step (writeLibraryCodeCache, scripts/library-code-cache.mjs,
//                         shipped as dist/dsl/write-library-cache.js);
//   dist/dsl/index.js     the entry: compiles library.js through vm.Script with the cache,
//                         calls it with its own import.meta and import(), re-exports its exports.
// V8 rejects a cache made by another V8 version or under other V8 flags (script.cachedDataRejected):
// the entry then compiles library.js from source, as an ES module would be. KILN_LIBRARY_CACHE=0
// turns the cache off (the bench reports the cold start with and without it).
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import * as acorn from "acorn";

const here = path.dirname(fileURLToPath(import.meta.url));
/** What `import.meta` and `import(` become in library.js: names of the same length, so no column moves. */
const META = "__kilnMeta_";
const IMPORT = "__kImp";

/**
 * Splits the folded dist/dsl/index.js into index.esm.js, library.js (+ maps) and the entry.
 * The module must have no static imports (Kiln reaches Node's built-ins through
 * process.getBuiltinModule or import()) and no top-level await; its exports are copied once,
 * so none may be reassigned (inlineStartupChunks checks the folded chunks' exports the same way).
 */
export function splitLibrary(dslDir) {
  const entry = path.join(dslDir, "index.js");
  const text = readFileSync(entry, "utf8");
  for (const name of [META, IMPORT]) if (text.includes(name)) throw new Error(`build: dsl/index.js already uses ${name}`);
  const comments = [];
  const ast = acorn.parse(text, { ecmaVersion: "latest", sourceType: "module", onComment: comments });
  const edits = [];
  // Non-ASCII characters in comments become "?" (one UTF-16 unit each, so no column moves):
  // a source of ASCII only is a one-byte string in V8 and reads as latin1 (import ~1 ms less
  // than decoding UTF-8 into a two-byte string of twice the size).
  for (const c of comments) {
    const s = text.slice(c.start, c.end);
    if (/[\u0080-\uffff]/.test(s)) edits.push([c.start, c.end, s.replace(/[\u0080-\uffff]/g, "?")]);
  }
  const exportNames = [];
  for (const node of ast.body) {
    if (node.type === "ImportDeclaration") throw new Error(`build: dsl/index.js has a static import of ${node.source.value}; library.js is a script`);
    if (node.type === "ExportNamedDeclaration" && !node.declaration && !node.source) {
      const parts = node.specifiers.map((s) => {
        exportNames.push(s.exported.name);
        return `${JSON.stringify(s.exported.name)}: ${s.local.name}`;
      });
      edits.push([node.start, node.end, `return { ${parts.join(", ")} };`]);
    } else if (node.type.startsWith("Export")) throw new Error(`build: dsl/index.js has an export form library.js cannot return (${node.type})`);
  }
  if (exportNames.length === 0) throw new Error("build: dsl/index.js exports nothing");
  const walk = (n, inFunction) => {
    if (n.type === "ImportExpression") edits.push([n.start, n.start + "import".length, IMPORT]);
    else if (n.type === "MetaProperty" && n.meta.name === "import") edits.push([n.start, n.end, META]);
    else if ((n.type === "AwaitExpression" || (n.type === "ForOfStatement" && n.await)) && !inFunction)
      throw new Error("build: dsl/index.js has a top-level await; library.js is a plain function");
    const fn = inFunction || /Function/.test(n.type);
    for (const v of Object.values(n)) {
      if (Array.isArray(v)) for (const c of v) c && typeof c.type === "string" && walk(c, fn);
      else if (v && typeof v.type === "string") walk(v, fn);
    }
  };
  walk(ast, false);
  for (const node of ast.body)
    if (node.type === "ExportNamedDeclaration") for (const s of node.specifiers) assertNotReassigned(text, s.local.name, "dsl/index.js");
  edits.sort((a, b) => b[0] - a[0]);
  let body = text;
  for (const [from, to, by] of edits) body = body.slice(0, from) + by + body.slice(to);
  body = body.replace(/\n\/\/# sourceMappingURL=\S+\s*$/, "\n");

  // index.esm.js: the module as it was (and its map).
  renameSync(`${entry}.map`, path.join(dslDir, "index.esm.js.map"));
  writeFileSync(path.join(dslDir, "index.esm.js"), text.replace(/\/\/# sourceMappingURL=index\.js\.map(\s*)$/, "//# sourceMappingURL=index.esm.js.map$1"));
  // library.js: the function's head on index.esm.js's first line (esbuild's helpers), so every line
  // keeps its number and every other line its columns: index.esm.js.map serves both.
  const library = `(function (${META}, ${IMPORT}) {"use strict";${body}})\n//# sourceMappingURL=index.esm.js.map\n`;
  writeFileSync(path.join(dslDir, "library.js"), library);
  const ascii = !/[\u0080-\uffff]/.test(library);
  writeFileSync(entry, entrySource(exportNames, createHash("sha256").update(library).digest("hex").slice(0, 16), ascii ? "latin1" : "utf8"));
  writeFileSync(`${entry}.map`, JSON.stringify({ version: 3, file: "index.js", sources: [], names: [], mappings: "" }));
}

/**
 * Throws when `text` declares `local` with var or let and assigns it again: an importer
 * holding a copy of the export (a folded chunk's shim, the entry's re-export of library.js)
 * would go stale.
 */
export function assertNotReassigned(text, local, file) {
  const name = local.replace(/\$/g, "\\$");
  const declared = new RegExp(`(?:^|\\n)\\s*(?:var|let)\\s+${name}\\b`).test(text);
  if (!declared) return;
  // Assignments to it, its declaration's initializer not counted.
  const assigned = [
    ...text.matchAll(
      new RegExp(
        `(var |let |const )?(?:^|(?<=[^.\\w$]))${name}\\s*(?:[-+*/%&|^]|\\*\\*|<<|>>>?|\\?\\?|&&|\\|\\|)?=(?!=)|(?:\\+\\+|--)${name}\\b|\\b${name}(?:\\+\\+|--)`,
        "g",
      ),
    ),
  ].filter((m) => m[1] === undefined).length;
  if (assigned > 0) throw new Error(`build: ${file} exports ${local}, which it reassigns: a copy of the export would go stale`);
}

function entrySource(exportNames, buildId, encoding) {
  return `// Kiln's entry (scripts/library-script.mjs): the library is ./library.js, compiled through
// vm.Script with V8's code cache ./library.cache where it was made for this build in this
// place (KILN_LIBRARY_CACHE=0: never), or ./index.esm.js under --enable-source-maps (Node 20 maps
// the frames of modules, not of vm scripts). No top-level await: require("kiln") works.
const proc = globalThis.process;
const vm = proc?.getBuiltinModule?.("node:vm");
const fs = proc?.getBuiltinModule?.("node:fs");
const state = { codeCache: "none" };
let lib;
if (vm && fs && !proc.sourceMapsEnabled) {
  const url = new URL("./library.js", import.meta.url);
  let cachedData;
  if (proc.env?.KILN_LIBRARY_CACHE === "0") state.codeCache = "off";
  else {
    let bytes;
    try {
      bytes = fs.readFileSync(new URL("./library.cache", import.meta.url));
    } catch {}
    if (bytes) {
      const head = \`kiln-library-cache ${buildId} \${url.href}\`;
      const end = bytes.indexOf(10);
      if (end >= head.length && bytes.toString("latin1", 0, end).trimEnd() === head) cachedData = bytes.subarray(end + 1);
      else state.codeCache = "elsewhere";
    }
  }
  const script = new vm.Script(fs.readFileSync(url, "${encoding}"), { filename: url.href, cachedData });
  if (cachedData) state.codeCache = script.cachedDataRejected ? "rejected" : "accepted";
  lib = script.runInThisContext()(import.meta, (specifier) => import(specifier));
} else {
  // Synchronously (require of an ES module, Node 20.19+), not with a top-level await: that
  // would make the entry an async module, which require("kiln") refuses.
  const mod = proc?.getBuiltinModule?.("node:module");
  if (!mod) throw new Error('kiln: dist/dsl/index.js is for Node 20.19 or newer; a browser bundle takes dist/dsl/index.esm.js (the "browser" condition)');
  state.codeCache = "module";
  lib = mod.createRequire(import.meta.url)("./index.esm.js");
}
// How the library loaded: "accepted" (the code cache), "rejected" (another V8 or other flags),
// "elsewhere" (a cache made for another build or place), "none", "off", "module" (index.esm.js).
globalThis[Symbol.for("kiln.library")] = state;
${exportNames.map((n, i) => `const __e${i} = lib[${JSON.stringify(n)}];`).join("\n")}
export { ${exportNames.map((n, i) => `__e${i} as ${n}`).join(", ")} };
`;
}

/**
 * Writes library.cache beside library.js (scripts/library-code-cache.mjs, in fresh processes,
 * checking that V8 takes it) and ships that script as dsl/write-library-cache.js, for a
 * package installed elsewhere. Where V8 does not take the cache (a V8 flag the writer does not
 * put back, say), the build warns and dist/ has none: the entry then compiles from source.
 */
export function writeLibraryCodeCache(dslDir, withCache) {
  rmSync(path.join(dslDir, "library.cache"), { force: true });
  const writer = path.join(dslDir, "write-library-cache.js");
  writeFileSync(writer, readFileSync(path.join(here, "library-code-cache.mjs")));
  if (!withCache) return false;
  const written = spawnSync(process.execPath, [writer], { encoding: "utf8", timeout: 180_000 });
  if (written.status !== 0) console.warn(`build: ${written.stderr.trim() || `the library code cache writer exited with ${written.status}`}`);
  return written.status === 0;
}
