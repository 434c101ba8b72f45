// The wasm target's contraction kernels (block-contraction's column, packed-column and dot
// forms, batched, with fused epilogues; conv2d forward and both gradients) against the
// float64 interpreter, with relaxed-SIMD FMA (f32x4.relaxed_madd) and without. The bound is
// derived, not tuned: a k-term f32 dot product in any summation order, each product rounded
// or fused, is within γ(k+1)·Σ|a·b| of the exact value, γ(n) = n·u / (1 − n·u), u = 2⁻²⁴.
// Inputs of small integers make every product and partial sum exact in f32, so there both
// paths must equal the interpreter bit for bit. Also: the artifact carries a portable twin
// of exactly the modules with relaxed_madd, and a runner whose engine rejects a module's
// relaxed form runs the twin.

import { afterAll, describe, expect, test } from "vitest";
import * as k from "kiln";
import { compileWasm } from "../../targets/wasm.ts";
import { interpret } from "../../compiler/ir/interpret.ts";
import type { Graph } from "../../compiler/ir/types.ts";
import { nodeOf } from "../../compiler/ir/graph.ts";
import type { HostTensor } from "../../compiler/ir/host-tensor.ts";
import { decodeBase64, WasmArtifactRunner } from "../../runtime/wasm/run-artifact.ts";
import { relaxedSimdAvailable } from "../../runtime/wasm/engine.ts";
import type { WasmArtifact } from "../../runtime/artifact/format.ts";
import { graphInputs } from "../util/graph-inputs.ts";
import { gemmChunkTestHooks, rowTailTestHooks, wideBlockTestHooks } from "../../compiler/kernel/block-contraction.ts";

const runners: WasmArtifactRunner[] = [];
afterAll(async () => {
  await Promise.all(runners.map((r) => r.close()));
});

const U = 2 ** -24;
const gamma = (n: number): number => (n * U) / (1 - n * U);

interface Form {
  readonly name: string;
  readonly fn: (...xs: k.Tensor[]) => k.Tensor;
  readonly specs: readonly k.InputSpec[];
  /** Length of the longest sum one output holds (the contraction's k, times taps for a conv). */
  readonly k: number;
  /**
   * Whether operands are packed, by kernels of their own (`pack<id>`) first or by a GEMM's
   * `form prologue` section (a column-panel pack run per column block): a deterministic check of the form taken.
   */
  readonly packs?: boolean;
  /** How many packs run as prologue sections inside their GEMM (compiler/kernel/panel-prologue.ts), where the form fixes it. */
  readonly prologues?: number;
  /**
   * Compile with these GEMM chunk limits (block-contraction's gemmChunkTestHooks: small shapes
   * reach the chunked forms) and expect this many chunk kernels (`<kernel>_c<i>`).
   */
  readonly chunked?: { readonly minBytes: number; readonly maxBytes: number; readonly chunks: number };
  /** How many pack kernels run first, where the form fixes it. */
  readonly packKernels?: number;
  /** How many chained chunks of later sections (`<kernel>_i<i>`, compiler/kernel/chunk-chain.ts) the chunked GEMM takes along. */
  readonly chained?: number;
  /**
   * Contractions in the GEMM's register block (the most any section holds): 12 for the wide
   * 6 × 8 block over packed panels, 8 for 4 × 8 (block-contraction.ts, wideRows).
   */
  readonly blockDots?: number;
}

const F = k.nn.functional;
const FORMS: readonly Form[] = [
  { name: "column form 20×36 @ 36×24", fn: (a, b) => a.matmul(b), specs: [k.f32([20, 36]), k.f32([36, 24])], k: 36 },
  { name: "packed column form 256×64 @ 64×4096 (1 MB right operand)", fn: (a, b) => a.matmul(b), specs: [k.f32([256, 64]), k.f32([64, 4096])], k: 64 },
  { name: "column form with an odd k, 12×37 @ 37×16 (running addresses along k)", fn: (a, b) => a.matmul(b), specs: [k.f32([12, 37]), k.f32([37, 16])], k: 37 },
  {
    name: "packed column form at 128 rows with a bias and relu epilogue, 128×64 @ 64×512 + bias",
    fn: (a, b, bias) => a.matmul(b).add(bias).relu(),
    specs: [k.f32([128, 64]), k.f32([64, 512]), k.f32([512])],
    k: 65,
    packs: true,
    // the right operand's panels are packed by the GEMM, one column block at a time
    prologues: 1,
    packKernels: 0,
  },
  { name: "dot form x @ Wᵀ 12×40 @ (10×40)ᵀ", fn: (a, b) => a.matmul(b.t()), specs: [k.f32([12, 40]), k.f32([10, 40])], k: 40, packs: false },
  {
    // x is read in place (already [m][k], row-major): one pack, of W's panels
    name: "dot form with its column operand packed into panels, the row operand in place: linear 64×64 @ (32×64)ᵀ + bias",
    fn: (a, b, bias) => a.matmul(b.t()).add(bias),
    specs: [k.f32([64, 64]), k.f32([32, 64]), k.f32([32])],
    k: 65,
    packs: true,
    // row blocks run outside column blocks here (the packed W is the smaller operand): each
    // panel is read by every row block, so it stays a kernel of its own
    packKernels: 1,
    prologues: 0,
  },
  {
    // x (32 rows) is at most half W's 256: the sides swap, x goes into 8-column panels (a kernel
    // of its own: every row block of W reads them) and W's rows are read in place; the output's
    // stores scatter across the lanes
    name: "linear with its sides swapped, the smaller x packed: 32×96 @ (256×96)ᵀ + bias, relu",
    fn: (a, b, bias) => a.matmul(b.t()).add(bias).relu(),
    specs: [k.f32([32, 96]), k.f32([256, 96]), k.f32([256])],
    k: 97,
    packs: true,
    packKernels: 1,
    prologues: 0,
  },
  {
    // W's 250 rows are no multiple of 4: 4-row blocks, the last moved back over 2 rows of the one
    // before (computed and stored twice, the same values), not 2-row blocks; and no 6-row blocks
    // (which the test limits allow) since the stores scatter across the lanes (a sum's first use
    // would be a lane extract, not emit-section's store-first)
    name: "linear with its sides swapped over 250 outputs, odd k: 4-row blocks, the last overlapping: 32×73 @ (250×73)ᵀ + bias, relu",
    fn: (a, b, bias) => a.matmul(b.t()).add(bias).relu(),
    specs: [k.f32([32, 73]), k.f32([250, 73]), k.f32([250])],
    k: 74,
    packs: true,
    blockDots: 8,
  },
  {
    // 10 rows: three 4-row blocks, the last overlapping 2 rows (2-row blocks before: 4 sums a step)
    name: "column form with 4-row blocks over 10 rows (the last overlapping 2), odd k: 10×37 @ 37×24 + 1",
    fn: (a, b) => a.matmul(b).add(1),
    specs: [k.f32([10, 37]), k.f32([37, 24])],
    k: 38,
    packs: false,
    blockDots: 8,
  },
  {
    // t = relu(a·w) is read only as gᵀ's 4-row panels by the second GEMM: the first GEMM stores
    // the panels itself (pack-in-producer.ts) and t is never written; x's panels are the second
    // GEMM's prologue. The bound's k counts both sums (t's error carries into the second).
    name: "a GEMM storing its output as the next GEMM's left-operand panels: relu(a·w)ᵀ·x, 128×64 @ 64×128, then 128×128 @ 128×256",
    fn: (a, w, x) => a.matmul(w).relu().t().matmul(x),
    specs: [k.f32([128, 64]), k.f32([64, 128]), k.f32([128, 256])],
    k: 64 + 128 + 2,
    packs: true,
    packKernels: 0,
    prologues: 1,
  },
  {
    // the same with the first GEMM in wide 6-row blocks over 131 rows, its last block overlapping
    // one row: the panels' index carries the same (b mod 21) and (b div 21) terms as t's own store
    name: "a wide GEMM (the last 6-row block overlapping) storing the next GEMM's left-operand panels: relu(a·w)ᵀ·x, 131×128 @ 128×256, then 256×131 @ 131×256",
    fn: (a, w, x) => a.matmul(w).relu().t().matmul(x),
    specs: [k.f32([131, 128]), k.f32([128, 256]), k.f32([131, 256])],
    k: 128 + 131 + 2,
    packs: true,
    packKernels: 0,
    blockDots: 12,
  },
  { name: "batched 3×8×20 @ 3×20×12 with a relu epilogue", fn: (a, b) => a.matmul(b).relu(), specs: [k.f32([3, 8, 20]), k.f32([3, 20, 12])], k: 20 },
  { name: "odd shapes 7×13 @ 13×5", fn: (a, b) => a.matmul(b), specs: [k.f32([7, 13]), k.f32([13, 5])], k: 13 },
  {
    name: "conv2d 2×3×9×9 ⊛ 8×3×3×3, pad 1 (too small to pack)",
    packs: false,
    fn: (x, w) => F.conv2d(x, w, undefined, { padding: 1 }),
    specs: [k.f32([2, 3, 9, 9]), k.f32([8, 3, 3, 3])],
    k: 27,
  },
  // Big enough for canonicalGemm (≥ 65536 multiply-adds): packed operands, 8-column panels
  // (n % 8 = 0), a [k][n] pack (n % 4 = 0), swapped sides or the dot form over [n][k] packs (n = 9).
  {
    name: "conv2d 4×8×10×10 ⊛ 16×8×3×3, pad 1, as a packed GEMM (panels)",
    packs: true,
    fn: (x, w) => F.conv2d(x, w, undefined, { padding: 1 }),
    specs: [k.f32([4, 8, 10, 10]), k.f32([16, 8, 3, 3])],
    k: 72,
  },
  {
    name: "conv2d 4×5×13×13 ⊛ 12×5×3×3, stride 2, no padding, with bias and relu, as a packed GEMM ([k][n] pack)",
    packs: true,
    fn: (x, w, bias) => F.conv2d(x, w, bias, { stride: 2 }).relu(),
    specs: [k.f32([4, 5, 13, 13]), k.f32([12, 5, 3, 3]), k.f32([12])],
    k: 46,
  },
  {
    // at this size fusion keeps the col2im's tap sums around the dot (not a GEMM by itself);
    // the MNIST CNN's larger one materializes the [n·h·w, c·3·3] product, which is packed
    name: "conv2d input gradient, 4×8×10×10 ⊛ 16×8×3×3, pad 1",
    fn: (x, w, g) => k.grad((xx: k.Tensor) => F.conv2d(xx, w, undefined, { padding: 1 }).mul(g).sum())(x) as k.Tensor,
    specs: [k.f32([4, 8, 10, 10]), k.f32([16, 8, 3, 3]), k.f32([4, 16, 10, 10])],
    k: 16 * 9,
  },
  {
    name: "conv2d filter gradient, 4×8×10×10 ⊛ 16×8×3×3, pad 1",
    packs: true,
    fn: (x, w, g) => k.grad((ww: k.Tensor) => F.conv2d(x, ww, undefined, { padding: 1 }).mul(g).sum())(w) as k.Tensor,
    specs: [k.f32([4, 8, 10, 10]), k.f32([16, 8, 3, 3]), k.f32([4, 16, 10, 10])],
    k: 4 * 10 * 10,
  },
  {
    // n = 9 taps would take the dot form; 8 filters fill a panel, so the sides swap: 3-row
    // blocks (the taps) over one 8-filter panel, packed with the filters innermost
    name: "conv2d filter gradient, one input channel (sides swapped: 9 rows × 8 filters), 8×1×12×12 ⊛ 8×1×3×3, pad 1",
    packs: true,
    fn: (x, w, g) => k.grad((ww: k.Tensor) => F.conv2d(x, ww, undefined, { padding: 1 }).mul(g).sum())(w) as k.Tensor,
    specs: [k.f32([8, 1, 12, 12]), k.f32([8, 1, 3, 3]), k.f32([8, 8, 12, 12])],
    k: 8 * 12 * 12,
  },
  {
    name: "conv2d filter gradient, one input channel, 6 filters (n = 9 and m = 6: the dot form over [n][k] packs), 16×1×12×12 ⊛ 6×1×3×3, pad 1",
    packs: true,
    fn: (x, w, g) => k.grad((ww: k.Tensor) => F.conv2d(x, ww, undefined, { padding: 1 }).mul(g).sum())(w) as k.Tensor,
    specs: [k.f32([16, 1, 12, 12]), k.f32([6, 1, 3, 3]), k.f32([16, 6, 12, 12])],
    k: 16 * 12 * 12,
  },
  {
    name: "conv2d input gradient, stride 2, pad 1, 4×8×13×13 ⊛ 16×8×3×3",
    fn: (x, w, g) => k.grad((xx: k.Tensor) => F.conv2d(xx, w, undefined, { stride: 2, padding: 1 }).mul(g).sum())(x) as k.Tensor,
    specs: [k.f32([4, 8, 13, 13]), k.f32([16, 8, 3, 3]), k.f32([4, 16, 7, 7])],
    k: 16 * 9,
  },
  {
    name: "conv2d filter gradient, stride 2, pad 1, 4×8×13×13 ⊛ 16×8×3×3",
    packs: true,
    fn: (x, w, g) => k.grad((ww: k.Tensor) => F.conv2d(x, ww, undefined, { stride: 2, padding: 1 }).mul(g).sum())(w) as k.Tensor,
    specs: [k.f32([4, 8, 13, 13]), k.f32([16, 8, 3, 3]), k.f32([4, 16, 7, 7])],
    k: 4 * 7 * 7,
  },
  // Chunked GEMMs (gemmChunks): 8×8 images make one image 64 columns (8 panels), so the limits
  // below cut each GEMM into 4 chunks, one image each — by columns for the forward conv, by k
  // (partial sums in an accumulator: stored, added to twice, then the epilogue) for the filter gradient.
  {
    name: "conv2d 4×8×8×8 ⊛ 16×8×3×3, pad 1, bias and relu, packed and run in 4 chunks of columns",
    packs: true,
    chunked: { minBytes: 1 << 16, maxBytes: 64 * 72 * 4, chunks: 4 },
    fn: (x, w, bias) => F.conv2d(x, w, bias, { padding: 1 }).relu(),
    specs: [k.f32([4, 8, 8, 8]), k.f32([16, 8, 3, 3]), k.f32([16])],
    k: 73,
  },
  {
    // the epilogue an SGD step's shape (scale, add the weight), with signs that keep Σ|a·b| a bound
    name: "conv2d filter gradient with an update epilogue, 4×8×8×8 ⊛ 16×8×3×3, pad 1, packed and run in 4 chunks of k",
    packs: true,
    chunked: { minBytes: 1 << 16, maxBytes: 64 * 72 * 4, chunks: 4 },
    fn: (x, w, g) => (k.grad((ww: k.Tensor) => F.conv2d(x, ww, undefined, { padding: 1 }).mul(g).sum())(w) as k.Tensor).mul(0.25).add(w),
    specs: [k.f32([4, 8, 8, 8]), k.f32([16, 8, 3, 3]), k.f32([4, 16, 8, 8])],
    k: 4 * 8 * 8 + 1,
  },
  {
    // The patch GEMM's output (n·h·w columns, one 8×8 image a chunk under these limits) is read
    // by both stages of the overlap-add, image by image, and the pool's gradient reads theirs: each
    // runs right after its chunk.
    name: "conv2d input gradient through an average pool, 4×16×16×16 → pool ⊛ 32×16×3×3, pad 1: patch GEMM in 4 chunks, each chained with its overlap-add",
    packs: true,
    chunked: { minBytes: 1 << 16, maxBytes: 64 * 576, chunks: 4 },
    chained: 12,
    fn: (x, w, g) => k.grad((xx: k.Tensor) => F.conv2d(F.avgPool2d(xx, 2), w, undefined, { padding: 1 }).mul(g).sum())(x) as k.Tensor,
    specs: [k.f32([4, 16, 16, 16]), k.f32([32, 16, 3, 3]), k.f32([4, 32, 8, 8])],
    k: 32 * 9 * 4,
  },
  {
    // One 16×16 image a chunk is all the limits allow (256 columns × k = 9, 9216 B), and that
    // chunk's GEMM (8 × 256 × 9 multiply-adds) is below the size that takes the panel form: the
    // GEMM runs whole. (Cut anyway, it ended the compile with "chunk 0 … lost its panel form".)
    name: "conv2d 8×1×16×16 ⊛ 8×1×3×3, pad 1, under limits that allow only one-image chunks too small for panels: whole",
    packs: true,
    chunked: { minBytes: 1 << 12, maxBytes: 9216, chunks: 0 },
    fn: (x, w) => F.conv2d(x, w, undefined, { padding: 1 }),
    specs: [k.f32([8, 1, 16, 16]), k.f32([8, 1, 3, 3])],
    k: 9,
  },
  {
    // A prime batch (5 images) allows only one-image chunks, a fifth of what the limit holds:
    // a GEMM cut that fine ran no faster (MNIST CNN step, batch 127: 400 kernels, one thread
    // 134-139 ms a step against 139 whole) and each chunk is a module (compile 1.1-1.2 s CPU
    // against 0.27): it runs whole.
    name: "conv2d 5×8×8×8 ⊛ 16×8×3×3, pad 1, where the limits allow only one-image chunks, a fifth of the limit: whole",
    packs: true,
    chunked: { minBytes: 1 << 16, maxBytes: 5 * 64 * 72 * 4 - 4, chunks: 0 },
    fn: (x, w) => F.conv2d(x, w, undefined, { padding: 1 }),
    specs: [k.f32([5, 8, 8, 8]), k.f32([16, 8, 3, 3])],
    k: 72,
  },
  {
    // 24 filters (a multiple of 6, so no row is computed twice) in chunks of k: each chunk after
    // the first adds its partial sums to the accumulator it loads, which a wide block's sums
    // stored first (emit-section) overwrote before the add read it: those chunks keep 4-row
    // blocks (the first, which only stores, may be wide)
    name: "conv2d filter gradient, 24 filters, packed and run in 4 chunks of k (an accumulator loaded and stored)",
    packs: true,
    chunked: { minBytes: 1 << 16, maxBytes: 64 * 72 * 4, chunks: 4 },
    fn: (x, w, g) => (k.grad((ww: k.Tensor) => F.conv2d(x, ww, undefined, { padding: 1 }).mul(g).sum())(w) as k.Tensor).mul(0.25).add(w),
    specs: [k.f32([4, 8, 8, 8]), k.f32([24, 8, 3, 3]), k.f32([4, 24, 8, 8])],
    k: 4 * 8 * 8 + 1,
  },
  {
    // 22 filters (no multiple of 4 or 3) in chunks of k: the first chunk, which only stores, takes
    // 4-row blocks with the last overlapping 2 rows; the others add to the accumulator they load,
    // so no row may be computed twice: 4-row blocks over 20 rows and a tail section of 2
    name: "conv2d filter gradient, 22 filters, in 4 chunks of k: 4-row blocks and a 2-row tail section where the accumulator is loaded",
    packs: true,
    chunked: { minBytes: 1 << 16, maxBytes: 64 * 72 * 4, chunks: 4 },
    fn: (x, w, g) => (k.grad((ww: k.Tensor) => F.conv2d(x, ww, undefined, { padding: 1 }).mul(g).sum())(w) as k.Tensor).mul(0.25).add(w),
    specs: [k.f32([4, 8, 8, 8]), k.f32([22, 8, 3, 3]), k.f32([4, 22, 8, 8])],
    k: 4 * 8 * 8 + 1,
    blockDots: 8,
  },
  {
    // a plain operand packs no more than it reads: whole, however big (GPT-2's step took 845
    // kernels with its linears chunked, 533 without, at the same speed)
    name: "linear 128×64 @ (1024×64)ᵀ + bias under the chunk limits above: not chunked (neither operand expands what it reads)",
    packs: true,
    chunked: { minBytes: 1 << 16, maxBytes: 64 * 72 * 4, chunks: 0 },
    fn: (a, b, bias) => a.matmul(b.t()).add(bias),
    specs: [k.f32([128, 64]), k.f32([1024, 64]), k.f32([1024])],
    k: 65,
  },
  {
    // an MLP layer's weight update: gᵀ packed into 4-row panels by a kernel first, x's
    // 8-column panels by the GEMM per column block (a prologue), the SGD update its epilogue
    name: "SGD update of a weight by its gradient, w − 0.5·gᵀ·x, 128×128 and 128×256 (x's panels packed by the GEMM per column block)",
    fn: (w, g, x) => w.sub(g.t().matmul(x).mul(0.5)),
    specs: [k.f32([128, 256]), k.f32([128, 128]), k.f32([128, 256])],
    k: 129,
    packs: true,
    packKernels: 1,
    prologues: 1,
  },
  // The wide 6 × 8 register block over packed panels: rows a multiple of 6, and rows that are
  // not, where the last block moves back over the one before it (its rows computed twice).
  {
    name: "wide 6-row blocks, 132 rows (a multiple of 6), 132×40 @ 40×1024",
    fn: (a, b) => a.matmul(b),
    specs: [k.f32([132, 40]), k.f32([40, 1024])],
    k: 40,
    packs: true,
    blockDots: 12,
  },
  {
    name: "wide 6-row blocks, 253 rows (the last block overlapping 5 rows), odd k, with a bias and relu: 253×37 @ 37×1024 + bias",
    fn: (a, b, bias) => a.matmul(b).add(bias).relu(),
    specs: [k.f32([253, 37]), k.f32([37, 1024]), k.f32([1024])],
    k: 38,
    packs: true,
    blockDots: 12,
  },
  {
    name: "wide 6-row blocks in the dot form's panels, 130 rows (the last block overlapping 2 rows): linear 130×72 @ (64×72)ᵀ",
    fn: (a, b) => a.matmul(b.t()),
    specs: [k.f32([130, 72]), k.f32([64, 72])],
    k: 72,
    packs: true,
    blockDots: 12,
  },
  {
    // 128 = 21·6 + 2: a last 6-row block would compute 4 rows twice (3 %): 4-row blocks
    name: "packed panels at 128 rows keep 4-row blocks, 128×48 @ 48×1024",
    fn: (a, b) => a.matmul(b),
    specs: [k.f32([128, 48]), k.f32([48, 1024])],
    k: 48,
    packs: true,
    blockDots: 8,
  },
  {
    name: "transposed left operand gᵀ·x, 256 rows at stride 256 per k (packed into 4-row panels)",
    blockDots: 8,
    fn: (g, x) => g.t().matmul(x),
    specs: [k.f32([96, 256]), k.f32([96, 256])],
    k: 96,
    packs: true,
  },
  {
    name: "weight gradient of a linear over a batch of sequences, Σ over batch and time of xᵀ·g (k = 4·32: two summed variables)",
    fn: (x, w, g) => k.grad((ww: k.Tensor) => x.matmul(ww.t()).mul(g).sum())(w) as k.Tensor,
    specs: [k.f32([4, 32, 40]), k.f32([24, 40]), k.f32([4, 32, 24])],
    k: 4 * 32,
    packs: true,
  },
];

function inputsOf(g: Graph, value: (i: number, input: number) => number): Record<string, HostTensor> {
  return graphInputs(g, ({ count, index }) => Float32Array.from({ length: count }, (_, i) => value(i, index)));
}

async function runWasm(
  g: Graph,
  relaxedSimd: boolean,
  inputs: Record<string, HostTensor>,
  threads = 1,
  chunked?: Form["chunked"],
): Promise<{ out: Float32Array; artifact: WasmArtifact; prologues: number; blockDots: number }> {
  const limits = { ...gemmChunkTestHooks };
  const wideLimits = { ...wideBlockTestHooks };
  const tailLimits = { ...rowTailTestHooks };
  if (chunked) Object.assign(gemmChunkTestHooks, { minBytes: chunked.minBytes, maxBytes: chunked.maxBytes });
  // Small shapes reach the wide 6 × 8 block (its real limits: k ≥ 256, 2²⁶ multiply-adds) and
  // the tail section of rows no multiple of 4 (2²² multiply-adds).
  Object.assign(wideBlockTestHooks, { minK: 1, minMacs: 0 });
  Object.assign(rowTailTestHooks, { minMacs: 0 });
  let artifact: WasmArtifact;
  let prologues: number;
  let blockDots: number;
  try {
    const compiled = compileWasm(g, { relaxedSimd });
    artifact = compiled.artifact;
    prologues = compiled.program.kernels.flatMap((kk) => kk.sections).filter((s) => s.form?.kind === "prologue").length;
    blockDots = Math.max(0, ...compiled.program.kernels.flatMap((kk) => kk.sections).map((s) => s.dots?.length ?? 0));
  } finally {
    Object.assign(gemmChunkTestHooks, limits);
    Object.assign(wideBlockTestHooks, wideLimits);
    Object.assign(rowTailTestHooks, tailLimits);
  }
  const r = await WasmArtifactRunner.create(artifact, { threads, minParallelWork: 0 });
  runners.push(r);
  const result = r.run(inputs);
  return { out: result[Object.keys(result)[0]!]!.data as Float32Array, artifact, prologues, blockDots };
}

/** Σ|a·b| per output: the same graph over |inputs| (every term non-negative). */
function magnitude(g: Graph, inputs: Record<string, HostTensor>): ArrayLike<number> {
  const abs: Record<string, HostTensor> = {};
  for (const [name, t] of Object.entries(inputs)) abs[name] = { ...t, data: Float64Array.from(t.data as Float32Array, Math.abs) };
  return Object.values(interpret(g, abs))[0]!.data as ArrayLike<number>;
}

/** Each form's graph, inputs and interpreter results, computed once for both paths. */
interface Reference {
  readonly g: Graph;
  readonly random: Record<string, HostTensor>;
  readonly want: ArrayLike<number>;
  readonly mag: ArrayLike<number>;
  readonly ints: Record<string, HostTensor>;
  readonly wantInts: ArrayLike<number>;
}
const references = new Map<Form, Reference>();
function referenceOf(form: Form): Reference {
  let ref = references.get(form);
  if (!ref) {
    const g = k.traceFunction(form.name.replace(/\W+/g, "_"), form.fn as never, form.specs).graph;
    const random = inputsOf(g, (i, input) => Math.sin(i * 1.7 + input * 3.1 + 0.3) * 1.5);
    // |a|, |b| ≤ 3 and k ≤ 4000: every product and partial sum is an integer below 2²⁴. (The
    // values vary along each input: `i * 7 % 7` once made every input a constant, and a
    // gradient's g all zeros.)
    const ints = inputsOf(g, (i, input) => ((i * 5 + input * 3) % 7) - 3);
    const first = (r: Record<string, HostTensor>): ArrayLike<number> => Object.values(r)[0]!.data as ArrayLike<number>;
    ref = { g, random, want: first(interpret(g, random)), mag: magnitude(g, random), ints, wantInts: first(interpret(g, ints)) };
    references.set(form, ref);
  }
  return ref;
}

describe.each([true, false])("wasm contractions, relaxed SIMD %s", (relaxed) => {
  for (const form of FORMS) {
    test(`${form.name}: within γ(k+1)·Σ|a·b| of the interpreter on random inputs`, async () => {
      const { g, random: inputs, want, mag } = referenceOf(form);
      const { out, artifact, prologues, blockDots } = await runWasm(g, relaxed, inputs, 1, form.chunked);
      expect(out.length).toBe(want.length);
      if (form.blockDots !== undefined) expect(blockDots).toBe(form.blockDots);
      if (form.packs !== undefined) expect(artifact.kernels.some((kk) => kk.name.startsWith("pack")) || prologues > 0).toBe(form.packs);
      if (form.prologues !== undefined) expect(prologues).toBe(form.prologues);
      expect(artifact.kernels.filter((kk) => /_c\d+$/.test(kk.name)).length).toBe(form.chunked?.chunks ?? 0);
      expect(artifact.kernels.filter((kk) => /_i\d+$/.test(kk.name)).length).toBe(form.chained ?? 0);
      if (form.packKernels !== undefined) expect(artifact.kernels.filter((kk) => kk.name.startsWith("pack")).length).toBe(form.packKernels);
      const bound = gamma(form.k + 1);
      let worst = 0;
      for (let i = 0; i < out.length; i++) worst = Math.max(worst, Math.abs(out[i]! - want[i]!) / (bound * mag[i]! + 1e-30));
      expect(worst).toBeLessThanOrEqual(1);
    });

    test(`${form.name}: bit-exact with the interpreter on small integers`, async () => {
      const { g, ints: inputs, wantInts: want } = referenceOf(form);
      const { out } = await runWasm(g, relaxed, inputs, 1, form.chunked);
      expect(Array.from(out)).toEqual(Array.from(want, (v) => Math.fround(v)));
    });
  }
});

// Two threads split every section's outer loop (column blocks, row blocks or panels): a few
// forms, exact on small integers.
const SPLIT_FORMS = FORMS.filter((f) =>
  /^(column form with an odd k|column form with 4-row blocks over 10 rows|packed column form at 128 rows|wide 6-row blocks|SGD update of a weight|dot form x @ Wᵀ|dot form with its column operand packed|linear with its sides swapped|a GEMM storing its output|a wide GEMM|transposed left operand|conv2d filter gradient, 4|conv2d filter gradient, 22|conv2d filter gradient with an update epilogue|conv2d 4×8×8×8|conv2d input gradient through an average pool)/.test(
    f.name,
  ),
);

describe.each([true, false])("wasm contractions on 2 threads, relaxed SIMD %s", (relaxed) => {
  test("the forms split across threads are there", () => expect(SPLIT_FORMS.length).toBe(19));
  for (const form of SPLIT_FORMS)
    test(`${form.name}: bit-exact with the interpreter on small integers`, async () => {
      const { g, ints: inputs, wantInts: want } = referenceOf(form);
      const { out } = await runWasm(g, relaxed, inputs, 2, form.chunked);
      expect(Array.from(out)).toEqual(Array.from(want, (v) => Math.fround(v)));
    });
});

describe("GEMM chunks at the real limits", () => {
  // A conv 1 → 8, 3×3, pad 1 over a batch of 149 MNIST-sized images (an epoch's odd last batch):
  // its patches take 4.2 MB (over minBytes), 149 is prime, so the only cut is one image a chunk,
  // and 8 × 784 × 9 multiply-adds is too small a GEMM for panels. It compiled to an internal
  // error ("chunk 0 of a GEMM over o0 lost its panel form"); the GEMM now runs whole, and its
  // first image matches the interpreter's.
  test("a conv over a prime batch whose one-image chunk is too small for panels compiles and runs whole", async () => {
    const n = 149;
    const g = k.traceFunction("conv149", ((x: k.Tensor, w: k.Tensor) => F.conv2d(x, w, undefined, { padding: 1 })) as never, [
      k.f32([n, 1, 28, 28]),
      k.f32([8, 1, 3, 3]),
    ]).graph;
    const artifact = compileWasm(g).artifact;
    expect(artifact.kernels.filter((kk) => /_c\d+$/.test(kk.name)).length).toBe(0);
    // small integers: every sum exact in f32
    const inputs = inputsOf(g, (i, input) => ((i * 5 + input * 3) % 7) - 3);
    const r = await WasmArtifactRunner.create(artifact, { threads: 1 });
    runners.push(r);
    const out = Object.values(r.run(inputs))[0]!.data as Float32Array;
    // the interpreter on the first image (the conv is per image)
    const first = k.traceFunction("conv1", ((x: k.Tensor, w: k.Tensor) => F.conv2d(x, w, undefined, { padding: 1 })) as never, [
      k.f32([1, 1, 28, 28]),
      k.f32([8, 1, 3, 3]),
    ]).graph;
    const names = (graph: Graph): string[] => graph.inputs.map((id) => (nodeOf(graph, id) as { name: string }).name);
    const [x, w] = names(g).map((name) => inputs[name]!);
    const [x1, w1] = names(first);
    const image = { dtype: "f32", shape: [1, 1, 28, 28], data: (x!.data as Float32Array).subarray(0, 784) } as const;
    const want = Object.values(interpret(first, { [x1!]: image, [w1!]: w! }))[0]!.data;
    expect(Array.from(out.subarray(0, 8 * 784))).toEqual(Array.from(want as ArrayLike<number>, (v) => Math.fround(v)));
  });
});

describe("the packed operand of a linear", () => {
  // Which operand goes into panels decides the copy's size: 32×96 for x against 256×96 for W.
  test.each([
    ["32 rows against 256 outputs: x", "linear with its sides swapped", 0],
    ["64 rows against 32 outputs: W", "dot form with its column operand packed", 1],
  ])("%s", (_, prefix, packedInput) => {
    const form = FORMS.find((f) => f.name.startsWith(prefix))!;
    const { program } = compileWasm(referenceOf(form).g, { relaxedSimd: false });
    const packs = program.kernels.filter((kk) => kk.name.startsWith("pack"));
    expect(packs.flatMap((kk) => kk.reads)).toEqual([program.inputs[packedInput]!.buffer]);
  });
});

describe("the wide block at the real limits", () => {
  // (compile only) matmul 1024³ takes 6 × 8 blocks; an MLP's 128 × 784 × 512 linear (51 M
  // multiply-adds), a GEMM over k = 128 and one with a GELU epilogue keep 4 × 8
  const dotsOf = (fn: (...xs: k.Tensor[]) => k.Tensor, specs: readonly k.InputSpec[]): number =>
    Math.max(
      ...compileWasm(k.traceFunction("w", fn as never, specs).graph, { relaxedSimd: true }).program.kernels.flatMap((kk) =>
        kk.sections.map((x) => x.dots?.length ?? 0),
      ),
    );
  test.each([
    ["matmul 1024³", (a: k.Tensor, b: k.Tensor) => a.matmul(b), [k.f32([1024, 1024]), k.f32([1024, 1024])], 12],
    ["linear 128×784 @ (512×784)ᵀ", (a: k.Tensor, b: k.Tensor) => a.matmul(b.t()), [k.f32([128, 784]), k.f32([512, 784])], 8],
    ["1024×128 @ 128×1024 (k = 128)", (a: k.Tensor, b: k.Tensor) => a.matmul(b), [k.f32([1024, 128]), k.f32([128, 1024])], 8],
    [
      "matmul 1024³ with a GELU epilogue (an erf polynomial per output)",
      (a: k.Tensor, b: k.Tensor) => a.matmul(b).gelu(),
      [k.f32([1024, 1024]), k.f32([1024, 1024])],
      8,
    ],
  ] as const)("%s: %i contractions a block", (_, fn, specs, dots) => {
    expect(dotsOf(fn as never, specs)).toBe(dots);
  });
});

// An output that replaces an input (a parameter's SGD update) may be written over the input's
// storage, so a GEMM with that update as its epilogue keeps 4-row blocks: a wide block would
// compute rows twice where its rows are no multiple of 6 (256), and stores its sums where the
// update goes before the epilogue reads the weight there (emit-section's store-first) at any
// row count (252: every weight came out sum − 0.5·sum). Rows no multiple of 4 (130) take 4-row
// blocks over 128 and a second section over the 2 left, not a last block overlapping the one
// before (which would subtract twice).
describe.each([256, 252, 130])("a GEMM whose epilogue updates an input in place, %i rows", (rows) => {
  const traced = k.traceFunction("sgd", ((w: k.Tensor, a: k.Tensor, b: k.Tensor) => w.sub(a.matmul(b).mul(0.5))) as never, [
    k.f32([rows, 1024]),
    k.f32([rows, 40]),
    k.f32([40, 1024]),
  ]).graph;
  const wName = inputsOf(traced, () => 0);
  const g: Graph = { ...traced, outputs: traced.outputs.map((o) => ({ ...o, aliases: Object.keys(wName)[0]! })) };
  test.each([1, 2])("keeps 4-row blocks and equals the interpreter bit for bit on small integers (%i threads)", async (threads) => {
    const inputs = inputsOf(g, (i, input) => ((i * 5 + input * 3) % 7) - 3);
    const want = Object.values(interpret(g, inputs))[0]!.data as ArrayLike<number>;
    const { out, blockDots, artifact, prologues } = await runWasm(g, true, inputs, threads);
    // the right operand in panels (where wide blocks would apply), 4 × 8 blocks
    expect(artifact.kernels.some((kk) => kk.name.startsWith("pack")) || prologues > 0).toBe(true);
    expect(blockDots).toBe(8);
    // …and at 130 rows a 2-row tail section
    const gemms = compileWasm(g, { relaxedSimd: true }).program.kernels.flatMap((kk) => kk.sections.filter((x) => (x.dots?.length ?? 0) > 0));
    expect(gemms.map((x) => x.dots!.length)).toEqual(rows % 4 === 0 ? [8] : [8, 4]);
    expect(Array.from(out)).toEqual(Array.from(want, (v) => Math.fround(v)));
  });
});

// A weight gradient gᵀ·x whose gᵀ (read as g[k, i], at a stride of 130 per k) goes into 4-row
// panels although its 130 rows are no multiple of 4: the last panel is padded with zeros, the
// in-place update takes 4-row blocks over 128 rows and a 2-row tail section, each weight
// updated once (a GPT-2 head's 50257 rows had 1-row blocks over an unpacked gᵀ).
describe("an in-place weight gradient whose transposed left operand has rows no multiple of 4", () => {
  const traced = k.traceFunction("sgdT", ((w: k.Tensor, g: k.Tensor, x: k.Tensor) => w.sub(g.t().matmul(x).mul(0.5))) as never, [
    k.f32([130, 256]),
    k.f32([129, 130]),
    k.f32([129, 256]),
  ]).graph;
  const wName = inputsOf(traced, () => 0);
  const g: Graph = { ...traced, outputs: traced.outputs.map((o) => ({ ...o, aliases: Object.keys(wName)[0]! })) };
  const gemms = compileWasm(g, { relaxedSimd: true }).program.kernels.flatMap((kk) => kk.sections.filter((x) => (x.dots?.length ?? 0) > 0));
  test("gᵀ goes into padded 4-row panels; 4-row blocks and a 2-row tail section", () => {
    const { artifact } = compileWasm(g, { relaxedSimd: true });
    expect(artifact.kernels.filter((kk) => kk.name.startsWith("pack_a")).length).toBe(1);
    expect(gemms.map((x) => x.dots!.length)).toEqual([8, 4]);
  });
  test.each([
    [1, true],
    [2, true],
    [1, false],
    [2, false],
  ])("equals the interpreter bit for bit on small integers (%i threads, relaxed SIMD %s)", async (threads, relaxed) => {
    const inputs = inputsOf(g, (i, input) => ((i * 5 + input * 3) % 7) - 3);
    const want = Object.values(interpret(g, inputs))[0]!.data as ArrayLike<number>;
    const { out } = await runWasm(g, relaxed, inputs, threads);
    expect(Array.from(out)).toEqual(Array.from(want, (v) => Math.fround(v)));
  });
});

describe("relaxed SIMD in the artifact", () => {
  const g = k.traceFunction("mm", ((a: k.Tensor, b: k.Tensor) => a.matmul(b).add(1)) as never, [k.f32([16, 32]), k.f32([32, 16])]).graph;

  test.runIf(relaxedSimdAvailable())("contraction modules use relaxed_madd and carry a portable twin; others do not", () => {
    const kernels = compileWasm(g, { relaxedSimd: true }).artifact.kernels;
    const withTwin = kernels.filter((kk) => kk.portableSource !== undefined);
    expect(withTwin.length).toBeGreaterThan(0);
    const hasMadd = (b64: string): boolean => {
      const bytes = decodeBase64(b64);
      return bytes.some((b, i) => b === 0xfd && bytes[i + 1] === 0x85 && bytes[i + 2] === 0x02);
    };
    for (const kk of withTwin) {
      expect(hasMadd(kk.source)).toBe(true);
      expect(hasMadd(kk.portableSource!)).toBe(false);
    }
    expect(compileWasm(g, { relaxedSimd: false }).artifact.kernels.every((kk) => kk.portableSource === undefined)).toBe(true);
  });

  test("a runner whose engine rejects a module's source runs its portable twin", async () => {
    const artifact = compileWasm(g, { relaxedSimd: false }).artifact;
    // A source no engine validates stands in for relaxed SIMD on an engine without it.
    const broken: WasmArtifact = {
      ...artifact,
      kernels: artifact.kernels.map((kk) => ({ ...kk, source: btoa("\0asm\x01\0\0\0\xff"), portableSource: kk.source })),
    };
    const inputs = inputsOf(g, (i, input) => (i % 5) - 2 + input);
    const r = await WasmArtifactRunner.create(broken, { threads: 1 });
    runners.push(r);
    const want = Object.values(interpret(g, inputs))[0]!.data as ArrayLike<number>;
    expect(Array.from(r.run(inputs)["out"]!.data)).toEqual(Array.from(want));
  });
});
