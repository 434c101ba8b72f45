import { defaultClientConditions, defaultServerConditions } from "vite";
import { defineConfig } from "vitest/config";
import { tmpdir } from "node:os";
import path from "node:path";

// `import * as k from "kiln"` resolves to the sources (dsl/index.ts) through package.json's
// "kiln-source" export condition: in the test files, and (NODE_OPTIONS) in the programs tests
// spawn, such as `tsx examples/demo.ts`. Without it "kiln" means the built dist/.
const SOURCE_CONDITION = "kiln-source";
const SHARED = [
  "test/{ir,kernel,passes,codegen,util,dsl}/**/*.test.ts",
  // The js, wasm and emulated-cuda suites (no WebGPU device, no spawned CLI, no leak counts).
  "test/targets/{js-ops,half-ops,js-fuzz,wasm-ops,wasm-fuzz,attention-fused,attention-backward,wasm-shared-state,cuda-emulate,cuda-numerics}.test.ts",
];
// Files among those that change process-wide registries (k.registerTarget): a fresh module graph each.
const STATEFUL = ["test/dsl/compile.test.ts", "test/dsl/options-coverage.test.ts"];
const nodeOptions = [process.env["NODE_OPTIONS"], `--conditions=${SOURCE_CONDITION}`].filter(Boolean).join(" ");

export default defineConfig({
  resolve: { conditions: [SOURCE_CONDITION, ...defaultClientConditions] },
  ssr: { resolve: { conditions: [SOURCE_CONDITION, ...defaultServerConditions] } },
  test: {
    // Projects of one run. "shared": test files that only compile and run graphs in this process
    // (no registry, env, cwd, spawned CLI or browser state to leak) share each worker's module
    // graph (isolate: false): vite's transform of the compiler then happens once per worker, not
    // once per file (it was half of their CPU time on 2 cores). "isolated" and "stateful": every
    // other file, each in a fresh module graph. A file that starts changing process-wide state
    // (a registered target, a global setting it does not restore) goes into STATEFUL.
    projects: [
      { extends: true, test: { name: "shared", include: SHARED, exclude: STATEFUL, isolate: false } },
      { extends: true, test: { name: "stateful", include: STATEFUL } },
      { extends: true, test: { name: "isolated", include: ["test/**/*.test.ts"], exclude: SHARED } },
    ],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks",
    // A cache folder of the run's own (never created unless a test writes it): webgpu compiles
    // read no tuning a person's `kiln tune` left in ~/.cache/kiln (docs/tuning.md).
    env: { NODE_OPTIONS: nodeOptions, KILN_CACHE_DIR: path.join(tmpdir(), `kiln-test-cache-${process.pid}`) },
  },
});
