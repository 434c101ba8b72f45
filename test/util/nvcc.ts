// Test helpers for generated CUDA: find nvcc (KILN_REQUIRE_NVCC=1 turns a missing one into a
// failure), compile a module to PTX, and run cuda artifacts on the CPU by compiling their
// kernels as C++ against a tiny emulation of the CUDA thread model (each warp's 32 lanes are
// real threads meeting at a barrier per shuffle), so generated code is checked on machines
// without a GPU against the interpreter.

import { execFileSync, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { CudaArtifact } from "../../runtime/artifact/format.ts";
import { CUDA_PRELUDE } from "../../codegen/cuda/prelude.ts";
import type { HostTensor } from "../../compiler/ir/host-tensor.ts";
import { dtypeBytes, dtypeInfo, typedArrayFor, typedArrayFrom } from "../../compiler/ir/dtype.ts";
import { numel } from "../../compiler/util/shape.ts";

/** nvcc's path, or undefined; throws when KILN_REQUIRE_NVCC=1 and none is found. */
export function findNvcc(): string | undefined {
  const candidates = [process.env["NVCC"], "/usr/local/bin/nvcc", "/usr/local/cuda/bin/nvcc"];
  for (const c of candidates) if (c && existsSync(c)) return c;
  const which = spawnSync("sh", ["-c", "command -v nvcc"], { encoding: "utf8" });
  const found = which.status === 0 ? which.stdout.trim() : "";
  if (found) return found;
  if (process.env["KILN_REQUIRE_NVCC"] === "1") throw new Error("KILN_REQUIRE_NVCC=1 but nvcc was not found (set NVCC or put it on PATH)");
  return undefined;
}

export const hasCxx = (): boolean => spawnSync("sh", ["-c", "command -v g++"]).status === 0;

/** Compiles CUDA source to PTX for one architecture; returns nvcc's diagnostics on failure. */
export function nvccPtx(
  nvcc: string,
  source: string,
  arch: string,
  dir = mkdtempSync(join(tmpdir(), "kiln-nvcc-")),
): { ok: boolean; log: string; ptx: string } {
  const cu = join(dir, `module_${arch}.cu`);
  const ptx = join(dir, `module_${arch}.ptx`);
  writeFileSync(cu, source);
  const r = spawnSync(nvcc, ["-ptx", `-arch=${arch}`, "-Werror", "all-warnings", cu, "-o", ptx], { encoding: "utf8" });
  return { ok: r.status === 0, log: `${r.stdout}${r.stderr}`, ptx: r.status === 0 ? readFileSync(ptx, "utf8") : "" };
}

/** nvccPtx without blocking: compiles for several architectures side by side use both cores. */
export function nvccPtxAsync(
  nvcc: string,
  source: string,
  arch: string,
  dir = mkdtempSync(join(tmpdir(), "kiln-nvcc-")),
): Promise<{ ok: boolean; log: string; ptx: string }> {
  const cu = join(dir, `module_${arch}.cu`);
  const ptx = join(dir, `module_${arch}.ptx`);
  writeFileSync(cu, source);
  return new Promise((resolve, reject) => {
    const child = spawn(nvcc, ["-ptx", `-arch=${arch}`, "-Werror", "all-warnings", cu, "-o", ptx], { stdio: ["ignore", "pipe", "pipe"] });
    let log = "";
    child.stdout.on("data", (d: Buffer) => (log += d.toString()));
    child.stderr.on("data", (d: Buffer) => (log += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => resolve({ ok: code === 0, log, ptx: code === 0 ? readFileSync(ptx, "utf8") : "" }));
  });
}

// ---- CPU emulation ----

const SHIM = `// CPU emulation of the CUDA features Kiln kernels use (tests only).
// Fortify's longjmp check refuses a jump to another stack: coroutines do exactly that.
#ifdef _FORTIFY_SOURCE
#undef _FORTIFY_SOURCE
#endif
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <vector>
#include <algorithm>
#include <setjmp.h>
#include <ucontext.h>
#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(n)
#define __restrict__ __restrict
using std::max;
inline unsigned __float_as_uint(float x) { unsigned u; std::memcpy(&u, &x, 4); return u; }
inline float __uint_as_float(unsigned u) { float x; std::memcpy(&x, &u, 4); return x; }
struct KilnDim3 { unsigned x, y, z; };
static KilnDim3 threadIdx, blockIdx, blockDim, gridDim;
// In lockstep mode a block's threads are coroutines: each runs until its next shuffle or
// __syncthreads, then the next thread runs; a round over all of them is a barrier. A thread
// starts through its ucontext (its own stack) once per block; every switch after that is a
// _setjmp/_longjmp pair, which, unlike swapcontext, makes no system call (swapcontext saves
// and restores the signal mask: two syscalls per switch were most of an emulation's time).
#define __shared__ static
static const int KILN_MAX_THREADS = 1024;
static ucontext_t kiln_threads[KILN_MAX_THREADS];
static bool kiln_has_context[KILN_MAX_THREADS], kiln_started[KILN_MAX_THREADS];
static jmp_buf kiln_scheduler, kiln_resume[KILN_MAX_THREADS];
static long long kiln_slots[KILN_MAX_THREADS];
static void kiln_yield() {
  const unsigned self = threadIdx.x;
  if (_setjmp(kiln_resume[self]) == 0) _longjmp(kiln_scheduler, 1);
  threadIdx.x = self;
}
inline void __syncthreads() { kiln_yield(); }
template <class T> T kiln_exchange(T v, int from) {
  const unsigned self = threadIdx.x;
  long long raw = 0; std::memcpy(&raw, &v, sizeof(T));
  kiln_slots[self] = raw;
  kiln_yield();  // every thread has written its slot
  long long got = kiln_slots[(self & ~31u) | (unsigned)(from & 31)];
  kiln_yield();  // every thread has read
  T out; std::memcpy(&out, &got, sizeof(T));
  return out;
}
template <class T> T __shfl_xor_sync(unsigned, T v, int mask) { return kiln_exchange(v, (int)((threadIdx.x & 31) ^ mask)); }
template <class T> T __shfl_sync(unsigned, T v, int lane) { return kiln_exchange(v, lane); }
inline bool __any_sync(unsigned, bool v) {
  bool any = false;
  for (int l = 0; l < 32; l++) any = kiln_exchange<int>(v ? 1 : 0, l) || any;
  return any;
}
static const std::function<void()>* kiln_kernel;
static bool kiln_done[KILN_MAX_THREADS];
// A finished thread jumps back to the scheduler (it never returns through uc_link).
static void kiln_thread_main(int t) { (*kiln_kernel)(); kiln_done[t] = true; _longjmp(kiln_scheduler, 1); }
// Runs thread t until it yields or finishes; the scheduler's frame here stays live meanwhile.
__attribute__((noinline)) static void kiln_run_until_yield(unsigned t) {
  if (_setjmp(kiln_scheduler) != 0) return;
  if (!kiln_started[t]) {
    kiln_started[t] = true;
    setcontext(&kiln_threads[t]);
  }
  _longjmp(kiln_resume[t], 1);
}
static void kiln_launch(unsigned grid, unsigned block, bool lockstep, const std::function<void()>& kernel) {
  gridDim = {grid, 1, 1};
  blockDim = {block, 1, 1};
  const size_t stackBytes = 1 << 17;
  // malloc, not a zero-filled vector: 128 MB written up front cost ~0.1 s of page faults per
  // process; untouched pages stay unmapped (and read as zero when first touched, as before).
  static char* const stacks = static_cast<char*>(std::malloc(KILN_MAX_THREADS * stackBytes));
  kiln_kernel = &kernel;
  for (unsigned b = 0; b < grid; b++) {
    blockIdx = {b, 0, 0};
    if (!lockstep) {
      for (unsigned t = 0; t < block; t++) { threadIdx = {t, 0, 0}; kernel(); }
      continue;
    }
    for (unsigned t = 0; t < block; t++) {
      kiln_done[t] = false;
      kiln_started[t] = false;
      if (!kiln_has_context[t]) getcontext(&kiln_threads[t]);
      kiln_has_context[t] = true;
      kiln_threads[t].uc_stack.ss_sp = stacks + t * stackBytes;
      kiln_threads[t].uc_stack.ss_size = stackBytes;
      kiln_threads[t].uc_link = nullptr;
      makecontext(&kiln_threads[t], (void (*)())kiln_thread_main, 1, (int)t);
    }
    for (bool running = true; running;) {
      running = false;
      for (unsigned t = 0; t < block; t++) {
        if (kiln_done[t]) continue;
        threadIdx = {t, 0, 0};
        kiln_run_until_yield(t);
        running = true;
      }
    }
  }
}
`;

export interface EmulationCase {
  readonly artifact: CudaArtifact;
  readonly inputs: Readonly<Record<string, HostTensor>>;
}

function encode(t: HostTensor): Uint8Array {
  const data = typedArrayFrom(t.dtype, t.data);
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/**
 * Runs every case's kernels on the CPU (one g++ build for all of them); returns each case's
 * outputs by name. Kernel symbols must be unique across cases (render with a symbolPrefix).
 */
export function emulateCuda(cases: readonly EmulationCase[]): Record<string, HostTensor>[] {
  const dir = mkdtempSync(join(tmpdir(), "kiln-emu-"));
  const body: string[] = [SHIM, CUDA_PRELUDE];
  const runners: string[] = [];
  cases.forEach((c, ci) => {
    const a = c.artifact;
    for (const k of a.kernels) body.push(k.source);
    const run: string[] = [`static void run_case_${ci}(FILE* in, FILE* out) {`];
    run.push(`  std::vector<std::vector<unsigned char>> slots;`);
    for (const bytes of a.memory.slotBytes) run.push(`  slots.emplace_back(${Math.max(4, Math.ceil(bytes / 4) * 4)}, 0);`);
    for (const io of a.inputs) {
      const b = a.buffers[io.buffer]!;
      run.push(`  if (fread(slots[${b.slot}].data(), 1, ${numel(b.shape) * dtypeBytes(b.dtype)}, in) != ${numel(b.shape) * dtypeBytes(b.dtype)}) exit(3);`);
    }
    for (const k of a.kernels) {
      const args = k.params.map((id) => {
        const b = a.buffers[id]!;
        const type = dtypeInfo(b.dtype).cuda.storage;
        return `(${type}*)slots[${b.slot}].data()`;
      });
      const lockstep = k.source.includes("lane") || k.source.includes("__syncthreads");
      // A symbolic batch: the blocks of the run's rows only, from the size in memory (as runtime/cuda does).
      const sym = k.launch.symbolic;
      const n = sym && `((int*)slots[${a.buffers[sym.size]!.slot}].data())[0]`;
      const grid = sym
        ? `std::max(1u, std::min(${k.launch.grid[0]}u, (unsigned)((std::max({${sym.sections.map(([e, per]) => `std::min(${e}, (${e} * ${n} + ${sym.max - 1}) / ${sym.max}) * ${per}`).join(", ")}}) + ${sym.perWorkgroup - 1}) / ${sym.perWorkgroup})))`
        : `${k.launch.grid[0]}`;
      run.push(`  kiln_launch(${grid}, ${k.launch.block[0]}, ${lockstep}, [&] { ${k.name}(${args.join(", ")}); });`);
    }
    for (const io of a.outputs) {
      const b = a.buffers[io.buffer]!;
      run.push(`  fwrite(slots[${b.slot}].data(), 1, ${numel(b.shape) * dtypeBytes(b.dtype)}, out);`);
    }
    run.push("}");
    runners.push(run.join("\n"));
  });
  const main = [
    "int main(int argc, char** argv) {",
    "  int which = atoi(argv[1]);",
    '  FILE* in = fopen(argv[2], "rb"); FILE* out = fopen(argv[3], "wb");',
    "  if (!in || !out) return 2;",
    "  switch (which) {",
    ...cases.map((_, ci) => `    case ${ci}: run_case_${ci}(in, out); break;`),
    "  }",
    "  fclose(out);",
    "  return 0;",
    "}",
  ];
  const cpp = join(dir, "emulate.cpp");
  writeFileSync(cpp, [...body, ...runners, ...main].join("\n"));
  const exe = join(dir, "emulate");
  execFileSync("g++", ["-std=c++17", "-O0", "-w", cpp, "-o", exe], { stdio: ["ignore", "pipe", "pipe"] });
  return cases.map((c, ci) => {
    const a = c.artifact;
    const inFile = join(dir, `in_${ci}.bin`);
    const outFile = join(dir, `out_${ci}.bin`);
    const parts: Uint8Array[] = a.inputs.map((io) => {
      const t = c.inputs[io.name];
      if (!t) throw new Error(`emulateCuda: missing input ${io.name}`);
      return encode(t);
    });
    writeFileSync(inFile, Buffer.concat(parts));
    execFileSync(exe, [String(ci), inFile, outFile]);
    const raw = readFileSync(outFile);
    const result: Record<string, HostTensor> = {};
    let offset = 0;
    for (const io of a.outputs) {
      const n = numel(io.shape);
      const bytes = raw.subarray(offset, offset + n * dtypeBytes(io.dtype));
      offset += bytes.length;
      const copy = new Uint8Array(bytes).buffer;
      const data = new (typedArrayFor(io.dtype))(copy);
      result[io.name] = { dtype: io.dtype, shape: io.shape, data };
    }
    return result;
  });
}

// ---- a fake libcuda.so.1 over the CPU emulation ----

const FAKE_DRIVER = `// A fake CUDA driver for tests: device memory is host memory, and a "module" is a shared
// library of emulated kernels: the one the "PTX" names (the emulating nvcc's), else the one
// named by KILN_FAKE_CUDA_KERNELS (read when a module loads).
#include <dlfcn.h>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
typedef int CUresult;
typedef unsigned long long CUdeviceptr;
extern "C" {
CUresult cuInit(unsigned) { return 0; }
CUresult cuDeviceGetCount(int* n) { *n = 1; return 0; }
CUresult cuDeviceGet(int* d, int) { *d = 0; return 0; }
CUresult cuDeviceGetName(char* s, int n, int) { strncpy(s, "kiln fake CUDA device (CPU emulation)", n); return 0; }
CUresult cuDeviceGetAttribute(int* v, int attr, int) { *v = attr == 75 ? 8 : 0; return 0; }
CUresult cuDevicePrimaryCtxRetain(void** c, int) { *c = (void*)1; return 0; }
CUresult cuCtxSetCurrent(void*) { return 0; }
CUresult cuModuleLoadData(void** m, const void* image) {
  // "PTX" from the emulating nvcc names its own library of the module's kernels.
  static const char tag[] = "//kiln-emulated:";
  if (image && strncmp((const char*)image, tag, sizeof tag - 1) == 0) {
    std::string lib((const char*)image + sizeof tag - 1);
    lib = lib.substr(0, lib.find_first_of("\\r\\n"));
    *m = dlopen(lib.c_str(), RTLD_NOW | RTLD_LOCAL);
    return *m ? 0 : 200;
  }
  const char* path = getenv("KILN_FAKE_CUDA_KERNELS");
  if (!path || !image) return 200;  // CUDA_ERROR_INVALID_IMAGE
  *m = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  return *m ? 0 : 200;
}
CUresult cuModuleUnload(void*) { return 0; }
CUresult cuModuleGetFunction(void** f, void* m, const char* name) {
  *f = dlsym(m, (std::string("kiln_launch_") + name).c_str());
  return *f ? 0 : 500;  // CUDA_ERROR_NOT_FOUND
}
CUresult cuMemAlloc_v2(CUdeviceptr* p, size_t n) { *p = (CUdeviceptr)calloc(1, n); return *p ? 0 : 2; }
CUresult cuMemFree_v2(CUdeviceptr p) { free((void*)p); return 0; }
CUresult cuMemsetD8_v2(CUdeviceptr p, unsigned char v, size_t n) { memset((void*)p, v, n); return 0; }
CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr d, const void* s, size_t n, void*) { memcpy((void*)d, s, n); return 0; }
CUresult cuMemcpyDtoHAsync_v2(void* d, CUdeviceptr s, size_t n, void*) { memcpy(d, (void*)s, n); return 0; }
CUresult cuMemcpyDtoDAsync_v2(CUdeviceptr d, CUdeviceptr s, size_t n, void*) { memmove((void*)d, (void*)s, n); return 0; }
CUresult cuLaunchKernel(void* f, unsigned gx, unsigned, unsigned, unsigned bx, unsigned, unsigned, unsigned, void*, void** params, void**) {
  ((void (*)(unsigned, unsigned, void**))f)(gx, bx, params);
  return 0;
}
CUresult cuStreamCreate(void** s, unsigned) { *s = (void*)1; return 0; }
CUresult cuStreamSynchronize(void*) { return 0; }
// Launches run synchronously here, so an event's time is the host's clock when it is recorded.
CUresult cuEventCreate(void** e, unsigned) { *e = new double(0); return 0; }
CUresult cuEventRecord(void* e, void*) {
  *(double*)e = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
  return 0;
}
CUresult cuEventSynchronize(void*) { return 0; }
CUresult cuEventElapsedTime(float* ms, void* start, void* end) { *ms = (float)(*(double*)end - *(double*)start); return 0; }
CUresult cuEventDestroy_v2(void* e) { delete (double*)e; return 0; }
CUresult cuGetErrorString(CUresult, const char** s) { *s = "fake driver error"; return 0; }
CUresult cuGetErrorName(CUresult, const char** s) { *s = "CUDA_ERROR_FAKE"; return 0; }
}
`;

/** Builds the fake driver once per process: returns the folder holding libcuda.so.1 (for LD_LIBRARY_PATH). */
let fakeDriverDir: string | undefined;
export function buildFakeDriver(): string {
  if (fakeDriverDir) return fakeDriverDir;
  const dir = mkdtempSync(join(tmpdir(), "kiln-fakecuda-"));
  writeFileSync(join(dir, "fake-libcuda.cc"), FAKE_DRIVER);
  execFileSync("g++", ["-std=c++17", "-shared", "-fPIC", "-O1", "-w", join(dir, "fake-libcuda.cc"), "-o", join(dir, "libcuda.so.1"), "-ldl"]);
  fakeDriverDir = dir;
  return dir;
}

/** Libraries built by this process, by their C++ source: the same kernels are compiled once. */
const emulatedLibraries = new Map<string, string>();

/**
 * Builds a shared library of emulated kernels for the fake driver: each kernel of each artifact
 * gets `kiln_launch_<name>(grid, block, params)`. Returns the library's path; a library of the
 * same source built earlier in this process is reused (g++ takes a second or two per build).
 */
export function buildEmulatedKernelLibrary(artifacts: readonly CudaArtifact[]): string {
  const parts = [SHIM, CUDA_PRELUDE];
  for (const a of artifacts)
    for (const k of a.kernels) {
      parts.push(k.source);
      const args = k.params.map((id, i) => {
        const b = a.buffers[id]!;
        const type = dtypeInfo(b.dtype).cuda.storage;
        return `*(${type}**)params[${i}]`;
      });
      const lockstep = k.source.includes("lane") || k.source.includes("__syncthreads");
      parts.push(
        `extern "C" void kiln_launch_${k.name}(unsigned grid, unsigned block, void** params) {\n  kiln_launch(grid, block, ${lockstep}, [&] { ${k.name}(${args.join(", ")}); });\n}`,
      );
    }
  const source = parts.join("\n");
  const built = emulatedLibraries.get(source);
  if (built) return built;
  const dir = mkdtempSync(join(tmpdir(), "kiln-emulib-"));
  const cpp = join(dir, "kernels-emulated.cpp");
  const lib = join(dir, "libkernels-emulated.so");
  writeFileSync(cpp, source);
  execFileSync("g++", ["-std=c++17", "-shared", "-fPIC", "-O0", "-w", cpp, "-o", lib], { stdio: ["ignore", "pipe", "pipe"] });
  emulatedLibraries.set(source, lib);
  return lib;
}

/**
 * A stand-in `nvcc` that emulates whatever module it is given: it compiles the CUDA source as
 * C++ against the CPU emulation (with a `kiln_launch_<name>` wrapper per `extern "C" __global__`
 * kernel, its parameter types read from the signature) into a shared library, cached by the
 * source's hash, and writes "PTX" naming that library, which the fake driver loads. So kernels
 * made at run time (k.compile, k.compileModel, `kiln train`) run over the fake driver. Where
 * KILN_FAKE_CUDA_KERNELS names a prebuilt library, it writes a placeholder PTX (the driver ignores it).
 */
export function buildEmulatingNvcc(): string {
  const dir = mkdtempSync(join(tmpdir(), "kiln-emunvcc-"));
  writeFileSync(join(dir, "shim.h"), SHIM);
  const script = join(dir, "nvcc");
  const body = `#!${process.execPath}
const fs = require("node:fs"), path = require("node:path"), cp = require("node:child_process"), crypto = require("node:crypto");
const args = process.argv.slice(2);
let out, input;
for (let i = 0; i < args.length; i++) {
  if (args[i] === "-o") out = args[++i];
  else if (args[i].endsWith(".cu")) input = args[i];
}
// A process that named one library of every kernel for the fake driver (cuda-gpu.test.ts) needs no other.
if (process.env.KILN_FAKE_CUDA_KERNELS) {
  fs.writeFileSync(out, "// placeholder PTX from the emulating nvcc\\n");
  process.exit(0);
}
const source = fs.readFileSync(input, "utf8");
const dir = ${JSON.stringify(dir)};
const lib = path.join(dir, crypto.createHash("sha256").update(source).digest("hex").slice(0, 24) + ".so");
if (!fs.existsSync(lib)) {
  const wrappers = [];
  const kernel = /extern "C" __global__ void (?:__launch_bounds__\\(\\d+\\) )?(\\w+)\\(([^)]*)\\)/g;
  const starts = [...source.matchAll(kernel)];
  starts.forEach((m, i) => {
    const body = source.slice(m.index, starts[i + 1]?.index ?? source.length);
    const lockstep = body.includes("lane") || body.includes("__syncthreads");
    const params = m[2].split(",").map((p) => p.replace(/__restrict__/g, "").trim()).filter((p) => p.length > 0);
    const call = params.map((p, j) => "*(" + p.replace(/\\s*\\w+$/, "") + "*)params[" + j + "]");
    wrappers.push('extern "C" void kiln_launch_' + m[1] + "(unsigned grid, unsigned block, void** params) {\\n  kiln_launch(grid, block, " + lockstep + ", [&] { " + m[1] + "(" + call.join(", ") + "); });\\n}");
  });
  const cpp = lib.replace(/\\.so$/, ".cpp");
  fs.writeFileSync(cpp, '#include "shim.h"\\n' + source + "\\n" + wrappers.join("\\n") + "\\n");
  const tmp = lib + "." + process.pid;
  const r = cp.spawnSync("g++", ["-std=c++17", "-shared", "-fPIC", "-O0", "-w", "-I", dir, cpp, "-o", tmp], { encoding: "utf8" });
  if (r.status !== 0) { process.stderr.write(r.stderr); process.exit(1); }
  fs.renameSync(tmp, lib);
}
fs.writeFileSync(out, "//kiln-emulated:" + lib + "\\n");
`;
  writeFileSync(script, body, { mode: 0o755 });
  return script;
}
