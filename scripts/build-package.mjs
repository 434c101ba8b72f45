// `npm run build` (and `prepack`): compiles the library to ESM .js + .d.ts in dist/ (tsc,
// tsconfig.build.json; `.ts` import specifiers become `.js`). What the built code reads at run
// time stays where it is and ships at the package root ("files" in package.json): runtime/**/*.ts,
// which artifact folders carry as source, and the CUDA runtime's C++ sources. (Not inside dist/:
// a .ts beside a .d.ts is what TypeScript would pick when a user's project checks its types.)
import { spawnSync } from "node:child_process";
import { rmSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const dist = path.join(root, "dist");

rmSync(dist, { recursive: true, force: true });
const tsc = spawnSync(process.execPath, [path.join(root, "node_modules/typescript/bin/tsc"), "-p", path.join(root, "tsconfig.build.json")], {
  stdio: "inherit",
});
if (tsc.status !== 0) process.exit(tsc.status ?? 1);
