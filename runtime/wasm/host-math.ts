// The host functions wasm kernels import as `rt.*`, kept as one JavaScript source string so
// the main thread and every worker (started from source, no module loader needed) evaluate
// the same text: float64 Math for exp2/log2/sin, and threefry2x32-20 uniforms — the same
// algorithm as compiler/util/threefry.ts (the runtime never imports the compiler; a test
// checks the two agree bit for bit).

export interface HostMath {
  readonly exp2: (x: number) => number;
  readonly log2: (x: number) => number;
  readonly sin: (x: number) => number;
  readonly rng: (seed: number, stream: number, counter: number) => number;
}

export const HOST_MATH_SOURCE = `(() => {
  const ROT = [13, 15, 26, 6, 17, 29, 16, 24];
  const rng = (seed, stream, counter) => {
    const k0 = seed >>> 0, k1 = stream >>> 0;
    const ks = [k0, k1, (0x1bd11bda ^ k0 ^ k1) >>> 0];
    let x0 = ((counter >>> 0) + k0) >>> 0, x1 = k1;
    for (let round = 0; round < 20; round++) {
      x0 = (x0 + x1) >>> 0;
      const r = ROT[round % 8];
      x1 = (((x1 << r) | (x1 >>> (32 - r))) ^ x0) >>> 0;
      if (round % 4 === 3) {
        const inj = (round + 1) / 4;
        x0 = (x0 + ks[inj % 3]) >>> 0;
        x1 = (x1 + ks[(inj + 1) % 3] + inj) >>> 0;
      }
    }
    return (x0 >>> 8) / 16777216;
  };
  return { exp2: (x) => Math.pow(2, x), log2: Math.log2, sin: Math.sin, rng };
})()`;

export function hostMath(): HostMath {
  return new Function(`return ${HOST_MATH_SOURCE};`)() as HostMath;
}
