// The bool attention mask the attention tests share: row 1 masked whole (its softmax is NaN, as
// in PyTorch), row 2 sees only its last two keys, the other rows a scattered pattern.

/** A `rows × cols` mask (1 = attend), flat and row-major. */
export const boolMask = (rows: number, cols: number): number[] =>
  Array.from({ length: rows * cols }, (_, i) => {
    const [r, c] = [Math.floor(i / cols), i % cols];
    if (r === 1) return 0;
    if (r === 2) return c >= cols - 2 ? 1 : 0;
    return (r + c) % 3 === 0 ? 0 : 1;
  });
