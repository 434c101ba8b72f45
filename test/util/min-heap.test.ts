// MinHeap (compiler/util/min-heap.ts) against sorting: interleaved pushes and pops of seeded
// random numbers, duplicates included, come out in ascending order.

import { expect, test } from "vitest";
import { MinHeap } from "../../compiler/util/min-heap.ts";
import { mulberry32 } from "./random-graph.ts";

test("pops in ascending order what was pushed, across interleaved pushes and pops", () => {
  const rand = mulberry32(7);
  const heap = new MinHeap();
  const shadow: number[] = [];
  for (let step = 0; step < 2000; step++) {
    if (rand() < 0.6 || shadow.length === 0) {
      const x = Math.floor(rand() * 100);
      heap.push(x);
      shadow.push(x);
    } else {
      shadow.sort((a, b) => a - b);
      expect(heap.pop()).toBe(shadow.shift());
    }
    expect(heap.size).toBe(shadow.length);
  }
  shadow.sort((a, b) => a - b);
  const rest: number[] = [];
  for (let x = heap.pop(); x !== undefined; x = heap.pop()) rest.push(x);
  expect(rest).toEqual(shadow);
});
