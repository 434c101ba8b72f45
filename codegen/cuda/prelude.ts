// The device helpers every generated CUDA module starts with: the rng primitive
// (threefry2x32-20, bit-exact with compiler/util/threefry.ts), saturating f32 → i32, floor
// division/modulo on i32, NaN-propagating max, and warp-shuffle reductions, and the 16-bit
// float types (CUDA's headers where found, else header-free stand-ins, so NVRTC without the
// toolkit's include folder and the tests' CPU emulation compile it too).

export const CUDA_PRELUDE = `// Kiln CUDA prelude: helpers with the graph IR's semantics (see compiler/ir/interpret.ts).
#ifndef INFINITY
#define INFINITY __int_as_float(0x7f800000)
#endif
#ifndef NAN
#define NAN __int_as_float(0x7fffffff)
#endif

// 16-bit floats are stored as __half / __nv_bfloat16 and computed in float registers. Under
// nvcc (or NVRTC given the toolkit's include folder) the types and conversions are CUDA's own
// (cuda_fp16.h, cuda_bf16.h: __float2half_rn and __float2bfloat16_rn round to nearest even,
// overflow -> inf, subnormals kept). Without the headers (NVRTC alone, or the CPU emulation of
// the tests compiling this as C++) stand-ins of the same size and names convert in integer ops
// with the same rounding (runtime/artifact/half.ts); only a NaN's payload may differ.
#if (defined(__CUDACC__) || defined(__CUDACC_RTC__)) && !defined(KILN_FP16_STANDIN) && defined(__has_include)
#if __has_include(<cuda_fp16.h>) && __has_include(<cuda_bf16.h>)
#include <cuda_fp16.h>
#include <cuda_bf16.h>
#define KILN_CUDA_FP16_HEADERS 1
#endif
#endif
#ifndef KILN_CUDA_FP16_HEADERS
struct __half { unsigned short x; };
struct __nv_bfloat16 { unsigned short x; };
__device__ __forceinline__ __half __float2half_rn(float f) {
  const unsigned bits = __float_as_uint(f);
  const unsigned sign = (bits >> 16) & 0x8000u;
  const unsigned a = bits & 0x7fffffffu;
  unsigned h;
  if (a >= 0x7f800000u) h = sign | (a > 0x7f800000u ? 0x7e00u : 0x7c00u);
  else if (a >= 0x477ff000u) h = sign | 0x7c00u;
  else if (a >= 0x38800000u) { const unsigned m = a - 0x38000000u; h = sign | ((m + 0xfffu + ((m >> 13) & 1u)) >> 13); }
  else h = sign | (unsigned)rintf(fabsf(f) * 16777216.0f);
  __half r; r.x = (unsigned short)h; return r;
}
__device__ __forceinline__ float __half2float(__half v) {
  const unsigned h = v.x, e = (h >> 10) & 0x1fu, m = h & 0x3ffu, s = (h & 0x8000u) << 16;
  if (e == 0) { const float r = (float)m * 5.9604644775390625e-8f; return s ? -r : r; }
  if (e == 31) return __uint_as_float(s | 0x7f800000u | (m << 13));
  return __uint_as_float(s | ((e + 112u) << 23) | (m << 13));
}
__device__ __forceinline__ __nv_bfloat16 __float2bfloat16_rn(float f) {
  const unsigned bits = __float_as_uint(f);
  __nv_bfloat16 r;
  r.x = (unsigned short)((bits & 0x7fffffffu) > 0x7f800000u ? (bits >> 16) | 0x40u : (bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
  return r;
}
__device__ __forceinline__ float __bfloat162float(__nv_bfloat16 v) { return __uint_as_float((unsigned)v.x << 16); }
__device__ __forceinline__ unsigned short __half_as_ushort(__half h) { return h.x; }
__device__ __forceinline__ __half __ushort_as_half(unsigned short u) { __half h; h.x = u; return h; }
__device__ __forceinline__ unsigned short __bfloat16_as_ushort(__nv_bfloat16 h) { return h.x; }
__device__ __forceinline__ __nv_bfloat16 __ushort_as_bfloat16(unsigned short u) { __nv_bfloat16 h; h.x = u; return h; }
#endif

// Tensor-core contraction steps (codegen/cuda/mma-tile.ts): D = A (16x16) * B (16x8) + C in f32,
// the operands 16-bit fragments of the warp's lanes as PTX lays out mma.m16n8k16. From sm_80 one
// mma.sync instruction; below it (and in the tests' CPU emulation) the same product from the
// lanes' fragments gathered with shuffles, the 16 steps of k in order.
__device__ __forceinline__ unsigned short kiln_h16_bits(float v) { return __half_as_ushort(__float2half_rn(v)); }
__device__ __forceinline__ unsigned short kiln_b16_bits(float v) { return __bfloat16_as_ushort(__float2bfloat16_rn(v)); }
template <bool BF16> __device__ __forceinline__ float kiln_16bit_value(unsigned bits) {
  return BF16 ? __bfloat162float(__ushort_as_bfloat16((unsigned short)bits)) : __half2float(__ushort_as_half((unsigned short)bits));
}
template <bool BF16> __device__ __forceinline__ void kiln_mma_shuffled(float* c, const unsigned* a, const unsigned* b) {
  const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  for (int kk = 0; kk < 16; kk++) {
    const int hi = kk >> 3, shift = (kk & 1) * 16, pair = (kk & 7) >> 1;
    const unsigned a0 = __shfl_sync(0xffffffffu, a[hi * 2], g * 4 + pair);      // A[g][kk]
    const unsigned a1 = __shfl_sync(0xffffffffu, a[hi * 2 + 1], g * 4 + pair);  // A[g + 8][kk]
    const unsigned b0 = __shfl_sync(0xffffffffu, b[hi], (2 * t) * 4 + pair);    // B[kk][2t]
    const unsigned b1 = __shfl_sync(0xffffffffu, b[hi], (2 * t + 1) * 4 + pair);  // B[kk][2t + 1]
    const float x0 = kiln_16bit_value<BF16>((a0 >> shift) & 0xffffu), x1 = kiln_16bit_value<BF16>((a1 >> shift) & 0xffffu);
    const float y0 = kiln_16bit_value<BF16>((b0 >> shift) & 0xffffu), y1 = kiln_16bit_value<BF16>((b1 >> shift) & 0xffffu);
    c[0] += x0 * y0;
    c[1] += x0 * y1;
    c[2] += x1 * y0;
    c[3] += x1 * y1;
  }
}
__device__ __forceinline__ void kiln_mma_f16(float* c, const unsigned* a, const unsigned* b) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
               : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#else
  kiln_mma_shuffled<false>(c, a, b);
#endif
}
__device__ __forceinline__ void kiln_mma_bf16(float* c, const unsigned* a, const unsigned* b) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
               : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#else
  kiln_mma_shuffled<true>(c, a, b);
#endif
}

// f32 -> i32 rounds toward zero and saturates; NaN -> 0 (PTX cvt.rzi.sat.s32.f32).
__device__ __forceinline__ int kiln_f2i(float v) {
  if (v != v) return 0;
  if (v >= 2147483647.0f) return 2147483647;
  if (v <= -2147483648.0f) return (-2147483647 - 1);
  return (int)v;
}

// Floor division and modulo (Python's // and %); a zero divisor gives 0, as on the js target.
__device__ __forceinline__ int kiln_idiv(int a, int b) {
  if (b == 0) return 0;
  if (b == -1) return (int)(0u - (unsigned)a);
  int q = a / b;
  return (q * b != a && ((a < 0) != (b < 0))) ? q - 1 : q;
}
__device__ __forceinline__ int kiln_imod(int a, int b) {
  if (b == 0 || b == -1) return 0;
  int r = a % b;
  return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
}

// max that propagates NaN (torch.maximum), unlike fmaxf.
__device__ __forceinline__ float kiln_fmax(float a, float b) {
  return (a != a || b != b) ? NAN : (a > b ? a : b);
}

// threefry2x32 with 20 rounds, key (seed, stream), counter (index, 0); first word >> 8 as a [0,1) float.
__device__ __forceinline__ unsigned kiln_rotl(unsigned x, int r) { return (x << r) | (x >> (32 - r)); }
__device__ __forceinline__ float kiln_rng(int seed, unsigned stream, unsigned counter) {
  const unsigned ks0 = (unsigned)seed, ks1 = stream, ks2 = 0x1bd11bdau ^ ks0 ^ ks1;
  const unsigned ks[3] = {ks0, ks1, ks2};
  const int rot[8] = {13, 15, 26, 6, 17, 29, 16, 24};
  unsigned x0 = counter + ks0, x1 = ks1;
#pragma unroll
  for (int round = 0; round < 20; round++) {
    x0 += x1;
    x1 = kiln_rotl(x1, rot[round % 8]);
    x1 ^= x0;
    if (round % 4 == 3) {
      const unsigned injection = (unsigned)(round + 1) / 4;
      x0 += ks[injection % 3];
      x1 += ks[(injection + 1) % 3] + injection;
    }
  }
  return (float)(x0 >> 8) * 5.9604644775390625e-8f;
}

// Butterfly reductions over a warp: every lane ends with the total.
__device__ __forceinline__ float kiln_warp_sum_f(float v) {
  for (int m = 16; m > 0; m >>= 1) v += __shfl_xor_sync(0xffffffffu, v, m);
  return v;
}
__device__ __forceinline__ float kiln_warp_max_f(float v) {
  for (int m = 16; m > 0; m >>= 1) v = kiln_fmax(v, __shfl_xor_sync(0xffffffffu, v, m));
  return v;
}
__device__ __forceinline__ int kiln_warp_sum_i(int v) {
  for (int m = 16; m > 0; m >>= 1) v = (int)((unsigned)v + (unsigned)__shfl_xor_sync(0xffffffffu, v, m));
  return v;
}
__device__ __forceinline__ int kiln_warp_max_i(int v) {
  for (int m = 16; m > 0; m >>= 1) v = max(v, __shfl_xor_sync(0xffffffffu, v, m));
  return v;
}
__device__ __forceinline__ bool kiln_warp_sum_b(bool v) {
  return __any_sync(0xffffffffu, v);
}
__device__ __forceinline__ bool kiln_warp_max_b(bool v) {
  return __any_sync(0xffffffffu, v);
}
`;
