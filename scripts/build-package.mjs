// `npm run build` (and `prepack`): compiles the library to ESM .js + .d.ts in dist/ (tsc,
// tsconfig.build.json; `.ts` import specifiers become `.js`), then copies beside them what
// the built code reads at run time: runtime/**/*.ts, which artifact folders ship as source
// next to their transpiled .js, and the CUDA runtime's C++ sources.
import { spawnSync } from "node:child_process";
import { cpSync, rmSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const dist = path.join(root, "dist");

rmSync(dist, { recursive: true, force: true });
const tsc = spawnSync(process.execPath, [path.join(root, "node_modules/typescript/bin/tsc"), "-p", path.join(root, "tsconfig.build.json")], { stdio: "inherit" });
if (tsc.status !== 0) process.exit(tsc.status ?? 1);

const shipped = (src) => !/(^|\/)(build|node_modules)(\/|$)/.test(path.relative(root, src).replaceAll("\\", "/")) && !src.endsWith(".d.ts");
cpSync(path.join(root, "runtime"), path.join(dist, "runtime"), {
  recursive: true,
  filter: (src) => shipped(src) && (!/\.[a-z]+$/.test(src) || /\.(ts|h|cc|cpp|gyp)$/.test(src)),
});
