#!/usr/bin/env node
// The `kiln` command. Installed from the package, it runs the built CLI (dist/cli/main.js)
// with plain Node; a model file written in TypeScript is loaded through tsx by the CLI.
// In a checkout of the repository (cli/main.ts beside this folder) it runs the sources
// through tsx, with `import "kiln"` resolved to them (the kiln-source condition).
import { existsSync } from "node:fs";
import { register as registerHooks } from "node:module";

// `kiln dump model.ts | head` closes the pipe early: that is not an error.
process.stdout.on("error", (e) => {
  if (e.code === "EPIPE") process.exit(0);
  throw e;
});

const fromSource = existsSync(new URL("../cli/main.ts", import.meta.url));
if (fromSource) {
  const { register } = await import("tsx/esm/api");
  register();
  globalThis[Symbol.for("kiln.tsx-registered")] = true;
  registerHooks("data:text/javascript,export const resolve = (s, c, next) => next(s, { ...c, conditions: [...new Set([...c.conditions, 'kiln-source'])] });");
}
const { main } = await import(fromSource ? "../cli/main.ts" : "../dist/cli/main.js");
process.exitCode = await main(process.argv.slice(2));
