// Test helper: a deterministic pseudo-random stream for test data, a 32-bit linear congruential
// generator (Numerical Recipes' constants), independent of Kiln's own generator.

/** Values in [0, 1), the same sequence for the same seed. */
export function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}
