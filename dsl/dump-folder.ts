// A dump sink that writes each dump file into a folder (created on first write; names with
// `/`, such as `07-render/k0_add.js`, get their subfolder). The compiler only ever sees the
// `DumpSink` interface, so it stays free of node:fs and runs in a browser.

import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import type { DumpSink } from "../compiler/passes/pass.ts";

export function folderDumpSink(dir: string): DumpSink {
  return {
    write(name, text) {
      const file = path.join(dir, name);
      mkdirSync(path.dirname(file), { recursive: true });
      writeFileSync(file, text);
    },
  };
}
