// package.json's `postinstall`: writes V8's code cache of the installed library where npm put
// it, as pip compiles .pyc files at install time (scripts/library-script.mjs says what the
// cache is; a cache names the folder it was made in, so the tarball ships none and each
// install makes its own). It runs dist/dsl/write-library-cache.js (~2 s: a small cpu compile
// and run, then createCachedData), and never fails an install: whatever goes wrong, the exit
// status is 0, with at most one short line, and `import "kiln"` then compiles the library from
// source, as without a cache. It does nothing
//   - in a checkout of the repository (dsl/index.ts beside it: `npm ci` there, .ci/run;
//     `npm run build` writes a checkout's cache), or where dist/ is not built;
//   - under KILN_LIBRARY_CACHE=0 (which also turns the cache off at run time);
//   - where dist/dsl/ is not writable (a read-only install: nothing is written);
//   - on a Node without process.getBuiltinModule (older than the package's engines).
// `npm install --ignore-scripts` skips it too; `npm rebuild kiln` runs it again (after a Node
// upgrade, whose V8 rejects the old cache).
import { spawnSync } from "node:child_process";
import { accessSync, constants, existsSync, readdirSync, rmSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

/** One short line on stderr (npm shows it only with --foreground-scripts or when it logs verbosely). */
const note = (text) => {
  try {
    process.stderr.write(`kiln: ${text.replace(/\s+/g, " ").slice(0, 160)}\n`);
  } catch {}
};

function main() {
  if (process.env.KILN_LIBRARY_CACHE === "0") return;
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
  if (existsSync(path.join(root, "dsl", "index.ts"))) return;
  const dslDir = path.join(root, "dist", "dsl");
  const writer = path.join(dslDir, "write-library-cache.js");
  if (!existsSync(writer) || !existsSync(path.join(dslDir, "library.js"))) return;
  if (typeof process.getBuiltinModule !== "function") return;
  try {
    accessSync(dslDir, constants.W_OK);
  } catch {
    note(`no library code cache: ${dslDir} is not writable (import "kiln" compiles from source)`);
    return;
  }
  const written = spawnSync(process.execPath, [writer], {
    cwd: root,
    encoding: "utf8",
    stdio: ["ignore", "ignore", "pipe"],
    timeout: 180_000,
    killSignal: "SIGKILL",
    windowsHide: true,
  });
  if (written.status !== 0) {
    // The writer removes its cache when V8 would not take it; a killed one may leave a partial file.
    for (const f of readdirSync(dslDir)) if (/^library\.cache\.\d+\.partial$/.test(f)) rmSync(path.join(dslDir, f), { force: true });
    // The writer's own line says why ("kiln: no library code cache in …: …"); else an uncaught error's.
    const lines = (written.stderr ?? "").split("\n");
    const own = lines.find((l) => l.startsWith("kiln: "));
    if (!written.error && own) note(own.slice("kiln: ".length));
    else note(`no library code cache (${written.error?.message || lines.find((l) => /^\w*Error\b/.test(l)) || `exit status ${written.status}`})`);
  }
}

try {
  main();
} catch (e) {
  note(`no library code cache (${e?.message ?? e})`);
}
process.exit(0);
