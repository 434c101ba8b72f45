// Threefry-2x32 with 20 rounds (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3",
// SC'11; the Random123 and JAX counter-based generator), in pure unsigned 32-bit JS arithmetic.
//
// The `rng` primitive's semantics, shared by every target: with key = (seed >>> 0, stream) and
// counter = (flat row-major index, 0), the value is (first output word >>> 8) * 2^-24, a float
// uniform in [0, 1) with 24 random bits (exactly representable in f32).

const KS_PARITY = 0x1bd11bda;
const ROTATIONS = [13, 15, 26, 6, 17, 29, 16, 24] as const;
const TWO_POW_MINUS_24 = 1 / 16777216;

const rotl32 = (x: number, r: number): number => ((x << r) | (x >>> (32 - r))) >>> 0;

/** One threefry2x32-20 block: encrypts counter (ctr0, ctr1) under key (key0, key1); all words u32. */
export function threefry2x32(key0: number, key1: number, ctr0: number, ctr1: number): [number, number] {
  const ks0 = key0 >>> 0;
  const ks1 = key1 >>> 0;
  const ks2 = (KS_PARITY ^ ks0 ^ ks1) >>> 0;
  const ks = [ks0, ks1, ks2];
  let x0 = (ctr0 + ks0) >>> 0;
  let x1 = (ctr1 + ks1) >>> 0;
  for (let round = 0; round < 20; round++) {
    x0 = (x0 + x1) >>> 0;
    x1 = rotl32(x1, ROTATIONS[round % 8]!);
    x1 = (x1 ^ x0) >>> 0;
    if (round % 4 === 3) {
      // Key injection after every fourth round; the injection count is added to the second word.
      const injection = (round + 1) / 4;
      x0 = (x0 + ks[injection % 3]!) >>> 0;
      x1 = (x1 + ks[(injection + 1) % 3]! + injection) >>> 0;
    }
  }
  return [x0, x1];
}

/** The `rng` primitive's value at one flat index (see the module header). */
export function rngValueAt(seed: number, stream: number, flatIndex: number): number {
  const [word0] = threefry2x32(seed >>> 0, stream >>> 0, flatIndex >>> 0, 0);
  return (word0 >>> 8) * TWO_POW_MINUS_24;
}

/**
 * `count` values of the `rng` primitive for (seed, stream), flat indices 0..count-1: the same
 * words as threefry2x32 (test/util/threefry.test.ts holds them equal), with its 20 rounds
 * unrolled over int32 locals — initializing a big model draws millions of these.
 */
export function rngUniform(seed: number, stream: number, count: number): Float64Array {
  const out = new Float64Array(count);
  const ks0 = seed | 0;
  const ks1 = stream | 0;
  const ks2 = (KS_PARITY ^ ks0 ^ ks1) | 0;
  for (let i = 0; i < count; i++) {
    let x0 = (i + ks0) | 0;
    let x1 = ks1;
    x0 = (x0 + x1) | 0;
    x1 = ((x1 << 13) | (x1 >>> 19)) ^ x0;
    x0 = (x0 + x1) | 0;
    x1 = ((x1 << 15) | (x1 >>> 17)) ^ x0;
    x0 = (x0 + x1) | 0;
    x1 = ((x1 << 26) | (x1 >>> 6)) ^ x0;
    x0 = (x0 + x1) | 0;
    x1 = ((x1 << 6) | (x1 >>> 26)) ^ x0;
    x0 = (x0 + ks1) | 0;
    x1 = (x1 + ks2 + 1) | 0;
    x0 = (x0 + x1) | 0;
    x1 = ((x1 << 17) | (x1 >>> 15)) ^ x0;
    x0 = (x0 + x1) | 0;
    x1 = ((x1 << 29) | (x1 >>> 3)) ^ x0;
    x0 = (x0 + x1) | 0;
    x1 = ((x1 << 16) | (x1 >>> 16)) ^ x0;
    x0 = (x0 + x1) | 0;
    x1 = ((x1 << 24) | (x1 >>> 8)) ^ x0;
    x0 = (x0 + ks2) | 0;
    x1 = (x1 + ks0 + 2) | 0;
    x0 = (x0 + x1) | 0;
    x1 = ((x1 << 13) | (x1 >>> 19)) ^ x0;
    x0 = (x0 + x1) | 0;
    x1 = ((x1 << 15) | (x1 >>> 17)) ^ x0;
    x0 = (x0 + x1) | 0;
    x1 = ((x1 << 26) | (x1 >>> 6)) ^ x0;
    x0 = (x0 + x1) | 0;
    x1 = ((x1 << 6) | (x1 >>> 26)) ^ x0;
    x0 = (x0 + ks0) | 0;
    x1 = (x1 + ks1 + 3) | 0;
    x0 = (x0 + x1) | 0;
    x1 = ((x1 << 17) | (x1 >>> 15)) ^ x0;
    x0 = (x0 + x1) | 0;
    x1 = ((x1 << 29) | (x1 >>> 3)) ^ x0;
    x0 = (x0 + x1) | 0;
    x1 = ((x1 << 16) | (x1 >>> 16)) ^ x0;
    x0 = (x0 + x1) | 0;
    x1 = ((x1 << 24) | (x1 >>> 8)) ^ x0;
    x0 = (x0 + ks1) | 0;
    x1 = (x1 + ks2 + 4) | 0;
    x0 = (x0 + x1) | 0;
    x1 = ((x1 << 13) | (x1 >>> 19)) ^ x0;
    x0 = (x0 + x1) | 0;
    x1 = ((x1 << 15) | (x1 >>> 17)) ^ x0;
    x0 = (x0 + x1) | 0;
    x1 = ((x1 << 26) | (x1 >>> 6)) ^ x0;
    x0 = (x0 + x1) | 0;
    x1 = ((x1 << 6) | (x1 >>> 26)) ^ x0;
    x0 = (x0 + ks2) | 0;
    x1 = (x1 + ks0 + 5) | 0;
    out[i] = (x0 >>> 8) * TWO_POW_MINUS_24;
  }
  return out;
}
