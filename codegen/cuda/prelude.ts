// The device helpers every generated CUDA module starts with: the rng primitive
// (threefry2x32-20, bit-exact with compiler/util/threefry.ts), saturating f32 → i32, floor
// division/modulo on i32, NaN-propagating max, and warp-shuffle reductions. Plain CUDA C
// without headers (NVRTC and nvcc both accept it; math functions are built in).

export const CUDA_PRELUDE = `// Kiln CUDA prelude: helpers with the graph IR's semantics (see compiler/ir/interpret.ts).
#ifndef INFINITY
#define INFINITY __int_as_float(0x7f800000)
#endif
#ifndef NAN
#define NAN __int_as_float(0x7fffffff)
#endif

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
