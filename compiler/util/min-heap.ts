// A binary min-heap of numbers: the next-smallest of a growing set in O(log n), for walks
// that must visit a graph's nodes in order but only the few that a region reaches.

export class MinHeap {
  private readonly items: number[] = [];

  get size(): number {
    return this.items.length;
  }

  push(x: number): void {
    const a = this.items;
    let i = a.length;
    a.push(x);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (a[parent]! <= x) break;
      a[i] = a[parent]!;
      i = parent;
    }
    a[i] = x;
  }

  /** Removes and returns the smallest item (undefined when empty). */
  pop(): number | undefined {
    const a = this.items;
    if (a.length === 0) return undefined;
    const top = a[0]!;
    const last = a.pop()!;
    if (a.length > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= a.length) break;
        const r = l + 1;
        const child = r < a.length && a[r]! < a[l]! ? r : l;
        if (a[child]! >= last) break;
        a[i] = a[child]!;
        i = child;
      }
      a[i] = last;
    }
    return top;
  }
}
