// The import rule of docs/architecture.md ("Module boundaries"), checked by `npm run lint:imports`.
// LAYERS below is the table itself: a layer may import only the paths listed for it (plus npm
// packages); every other edge into Kiln's own folders is an error named after the layer.
// Known violations of today live in .dependency-cruiser-known-violations.json: they are
// reported as warnings, every new one fails. Remove an entry when you fix it (`npm run
// lint:imports:baseline` rewrites the file from what is left; never use it to admit a new one).

// Kiln's own source folders: an edge into one of these must be allowed by the table.
const KILN = "^(compiler|codegen|runtime|dsl|cli|targets|examples|bench|bin)/";

// Path patterns shared by several rows.
const util = "^compiler/util/";
const ir = "^compiler/ir/";
const debug = "^compiler/debug\\.ts$";
// The pass interface in its own module (issue 10, item 6: breaks passes <-> pipeline.ts).
const passType = "^compiler/(passes/)?pass\\.ts$";
const kernel = "^compiler/kernel/";
// The fusion plan: data the fuse pass writes and lowering reads (breaks fuse <-> lower).
const fusionPlan = "^compiler/kernel/fusion-plan\\.ts$";
const autodiff = "^compiler/passes/autodiff/";
// Index algebra (symbolic index expressions, movement ops as index maps): fusion decides by the
// indices at which a group reads a value, with the same maps lowering uses. Leaves of kernel/.
const indexMath = "^compiler/kernel/(index-expr|movement-index)\\.ts$";
const driver = "^compiler/compile\\.ts$";
// The artifact format: its types, and the wasm memory layout whose addresses codegen bakes into
// kernels and the runtime uses to place tensors (one definition, read by both).
const artifactFormat = "^runtime/artifact/(format|wasm-layout)\\.ts$";
// f16/bf16 rounding (a leaf with no imports): the interpreter, constant folding, every codegen's
// constants and the runtimes round 16-bit floats by one definition, as they share the format's.
const halfBits = "^runtime/artifact/half\\.ts$";
// What dsl/ sees of targets/: the registry, the Backend and Executor types, the artifact
// folder writer that exe.save() calls (imported lazily: it is Node-only), the backends by name
// that k.dumpStages compiles with (imported lazily: every target's renderer), and the profile
// builder exe.profile calls (targets/profile.ts: kernel costs from the kernel IR, the table).
const targetsRegistry = "^targets/(index|registry|backend|backends|artifact-folder|profile)\\.ts$";
// The safetensors format (a leaf of runtime/artifact): k.safetensors, loadStateDict and checkpoints read and write it.
const safetensorsFormat = "^runtime/artifact/(safetensors|safetensors-dtypes|strict-json|invalid)\\.ts$";

/**
 * One row per layer: `from` (a path pattern) may import `may` (path patterns). A row may use
 * `$1` in `may` for the folder captured by `from` (codegen/<language> imports its own folder).
 */
const LAYERS = [
  { name: "compiler-util", from: "^compiler/util/", may: [util] },
  { name: "compiler-ir", from: "^compiler/ir/", may: [ir, util, halfBits] },
  { name: "compiler-debug", from: debug, may: [util, ir] },
  { name: "compiler-passes", from: "^compiler/passes/", may: ["^compiler/passes/", ir, util, debug, passType, fusionPlan, indexMath, halfBits] },
  { name: "compiler-kernel", from: "^compiler/kernel/", may: [kernel, ir, util, debug, passType, halfBits] },
  // The driver and the other files at compiler/'s top (pipeline, artifact assembly) run the
  // levels in order; the driver sees backends through the Backend interface (types only,
  // checked by `driver-sees-backend-types-only`).
  // Assembling an artifact writes its format (runtime/artifact is a leaf: manifest, safetensors, hash).
  { name: "compiler-driver", from: "^compiler/[^/]+\\.ts$", may: ["^compiler/", "^targets/backend\\.ts$", "^runtime/artifact/"] },
  // codegen renders kernel IR: its own language folder, the shared C-like base and helpers,
  // kernel IR, IR types (dtype tables), util, and the artifact format it fills in.
  { name: "codegen", from: "^codegen/([^/]+)/", may: ["^codegen/$1/", "^codegen/render/", "^codegen/[^/]+\\.ts$", kernel, ir, util, artifactFormat, halfBits] },
  { name: "codegen-shared", from: "^codegen/[^/]+\\.ts$", may: ["^codegen/render/", "^codegen/[^/]+\\.ts$", kernel, ir, util, artifactFormat, halfBits] },
  // targets/<target> puts a backend together: the driver and its kernel passes, a renderer,
  // a runner. It is the one layer that sees both codegen and runtime/<target>.
  { name: "targets", from: "^targets/", may: ["^targets/", "^compiler/", "^codegen/", "^runtime/"] },
  { name: "dsl", from: "^dsl/", may: ["^dsl/", ir, util, driver, autodiff, passType, targetsRegistry, safetensorsFormat, halfBits] },
  { name: "runtime-artifact", from: "^runtime/artifact/", may: ["^runtime/artifact/"] },
  { name: "runtime-target", from: "^runtime/([^/]+)/", may: ["^runtime/$1/", "^runtime/artifact/"] },
  { name: "cli", from: "^cli/", may: ["^cli/", "^dsl/", "^targets/", "^compiler/", "^runtime/"] },
  { name: "bin", from: "^bin/", may: ["^cli/", "^dist/"] },
  // Examples are what users copy: they use only the package (`import * as k from "kiln"`).
  { name: "examples", from: "^examples/", may: ["^examples/", "^dsl/index\\.ts$"] },
  // Benchmarks time single stages too, so they may reach internals (STYLE's table says public
  // entry points only; docs/architecture.md explains the difference).
  { name: "bench", from: "^bench/", may: ["^bench/", "^(compiler|codegen|runtime|dsl|cli|targets|examples)/"] },
];

const layerRules = LAYERS.map(({ name, from, may }) => ({
  name: `layer-${name}`,
  comment: `${name} may import only: ${may.join(", ")} (docs/architecture.md, Module boundaries)`,
  severity: "error",
  // Files at compiler/'s top are matched by the driver row only, not by a folder row.
  from: { path: from },
  to: { path: KILN, pathNot: may },
}));

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    ...layerRules,
    {
      name: "no-circular",
      comment: "import cycles hide the layering (docs/architecture.md); break them with a types module",
      severity: "error",
      from: { path: KILN },
      to: { circular: true },
    },
    {
      name: "compiler-no-node-io",
      comment: "compiler/ and codegen/ run in a browser too: no Node built-ins (the dump sink is injected); I/O lives in cli/, targets/ or runtime/",
      severity: "error",
      from: { path: "^(compiler|codegen)/" },
      to: { dependencyTypes: ["core"] },
    },
    {
      name: "runtime-never-imports-compiler",
      comment: "the runtime loads artifacts without the compiler: copy a ten-line helper rather than add an edge",
      severity: "error",
      from: { path: "^runtime/" },
      to: { path: "^(compiler|codegen|dsl|cli|targets)/" },
    },
    {
      name: "driver-sees-backend-types-only",
      comment: "compiler/compile.ts knows backends through the Backend interface, never a target's code",
      severity: "error",
      from: { path: "^compiler/" },
      to: { path: "^targets/", dependencyTypesNot: ["type-only"] },
    },
    {
      name: "not-to-unresolvable",
      comment: "an import that does not resolve is a typo or a missing package",
      severity: "error",
      from: { path: KILN },
      // @webgpu/types ships declarations only (it has no entry a resolver can follow).
      to: { couldNotResolve: true, pathNot: "^@webgpu/types$" },
    },
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    // test/ may reach internals and is not checked; scripts/ are build helpers.
    exclude: { path: "(^|/)(node_modules|dist|out|generated)/|^(test|scripts|docs)/|^[^/]+\\.(c|m)?[jt]s$" },
    // `import type` edges count: a type-only cycle or layer breach is still a design edge.
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    enhancedResolveOptions: {
      exportsFields: ["exports"],
      // kiln-source: the repo's own `import "kiln"` resolves to dsl/index.ts (package.json exports).
      conditionNames: ["kiln-source", "import", "node", "default"],
      extensions: [".ts", ".js", ".d.ts"],
    },
    reporterOptions: {
      text: { highlightFocused: true },
    },
  },
};
