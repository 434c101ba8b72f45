import { defaultClientConditions, defaultServerConditions } from "vite";
import { defineConfig } from "vitest/config";
import { tmpdir } from "node:os";
import path from "node:path";

// `import * as k from "kiln"` resolves to the sources (dsl/index.ts) through package.json's
// "kiln-source" export condition: in the test files, and (NODE_OPTIONS) in the programs tests
// spawn, such as `tsx examples/demo.ts`. Without it "kiln" means the built dist/.
const SOURCE_CONDITION = "kiln-source";
const nodeOptions = [process.env["NODE_OPTIONS"], `--conditions=${SOURCE_CONDITION}`].filter(Boolean).join(" ");

export default defineConfig({
  resolve: { conditions: [SOURCE_CONDITION, ...defaultClientConditions] },
  ssr: { resolve: { conditions: [SOURCE_CONDITION, ...defaultServerConditions] } },
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks",
    // A cache folder of the run's own (never created unless a test writes it): webgpu compiles
    // read no tuning a person's `kiln tune` left in ~/.cache/kiln (docs/tuning.md).
    env: { NODE_OPTIONS: nodeOptions, KILN_CACHE_DIR: path.join(tmpdir(), `kiln-test-cache-${process.pid}`) },
  },
});
