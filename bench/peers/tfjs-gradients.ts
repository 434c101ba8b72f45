// tfjs-core's Node bundle (its package "main") registers no gradients: the @tensorflow/tfjs
// bundle imports dist/register_all_gradients for it, and that ESM tree does not load in Node
// as published (extensionless and file-or-directory imports). So we bundle that one file with
// esbuild, once per tfjs-core version, and import it; the gradient table and the engine are
// process globals in tfjs, so the bundled copy registers into the same ones the bench uses.

import { existsSync, mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import * as path from "node:path";
import { pathToFileURL } from "node:url";
import { packageVersion } from "../env.ts";

let registered: Promise<void> | undefined;

export function registerTfjsGradients(cacheDir: string): Promise<void> {
  registered ??= bundleAndImport(cacheDir);
  return registered;
}

async function bundleAndImport(cacheDir: string): Promise<void> {
  const require = createRequire(import.meta.url);
  const entry = path.join(path.dirname(require.resolve("@tensorflow/tfjs-core/package.json")), "dist", "register_all_gradients.js");
  const bundle = path.join(cacheDir, `tfjs-core-${packageVersion("@tensorflow/tfjs-core")}-gradients.mjs`);
  if (!existsSync(bundle)) {
    mkdirSync(cacheDir, { recursive: true });
    const esbuild = await import("esbuild");
    await esbuild.build({ entryPoints: [entry], bundle: true, format: "esm", platform: "node", outfile: bundle, logLevel: "error" });
  }
  await import(pathToFileURL(bundle).href);
}
