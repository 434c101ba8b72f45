#!/usr/bin/env node
// The `kiln` command. Registers tsx so the CLI (TypeScript) and the user's model file load
// as they are, with no build step, then hands over to cli/main.ts.
import { register } from "tsx/esm/api";

register();
// `kiln dump model.ts | head` closes the pipe early: that is not an error.
process.stdout.on("error", (e) => {
  if (e.code === "EPIPE") process.exit(0);
  throw e;
});
const { main } = await import("../cli/main.ts");
process.exitCode = await main(process.argv.slice(2));
