// Shared by the k.nn.functional tests: seeded data, NCHW indexing, and the user line a
// traced call is made from (to check that errors point at it).

/** mulberry32: a tiny seeded PRNG, so test data is reproducible. Values in [-1, 1). */
export function randomData(length: number, seed: number): number[] {
  let a = seed >>> 0;
  return Array.from({ length }, () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1;
  });
}

export const numelOf = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

/** Flat row-major index of a 4-d position. */
export const at4 = (shape: readonly number[], a: number, b: number, c: number, d: number): number => ((a * shape[1]! + b) * shape[2]! + c) * shape[3]! + d;

/** The line of the caller of this function, as the stack reports it. */
export function callerLine(): number {
  const frame = (new Error().stack ?? "").split("\n")[2] ?? "";
  const m = /:(\d+):\d+\)?\s*$/.exec(frame);
  return m ? Number(m[1]) : -1;
}
