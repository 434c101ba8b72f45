// k.lossCurveSvg and its helpers against values worked out by hand.

import { describe, expect, test } from "vitest";
import { lossCurveSvg, movingAverage, niceTicks } from "../../dsl/loss-curve.ts";

describe("dsl/loss-curve.ts", () => {
  test("movingAverage averages a trailing window, shorter at the start", () => {
    expect(movingAverage([4, 2, 6, 8, 0], 2)).toEqual([4, 3, 4, 7, 4]);
    expect(movingAverage([1, 2, 3], 5)).toEqual([1, 1.5, 2]);
  });

  test("niceTicks steps by 1, 2 or 5 times a power of ten", () => {
    expect(niceTicks(0, 2.3)).toEqual([0, 0.5, 1, 1.5, 2]);
    expect(niceTicks(0, 467)).toEqual([0, 100, 200, 300, 400]);
    expect(niceTicks(0, 1, 4)).toEqual([0, 0.5, 1]);
  });

  test("the SVG has one point per step in the raw path and a dashed line per epoch boundary", () => {
    const losses = Array.from({ length: 30 }, (_, i) => 2 / (1 + i));
    const svg = lossCurveSvg(losses, { title: "a < b", stepsPerEpoch: 10 });
    expect(svg).toMatch(/^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
    expect(svg.trimEnd().endsWith("</svg>")).toBe(true);
    expect(svg).toContain("a &lt; b");
    const rawPath = /<path d="([^"]*)" fill="none" stroke="#bbb"/.exec(svg)![1]!;
    expect(rawPath.match(/[ML]/g)!.length).toBe(30);
    expect(svg.match(/stroke-dasharray/g)!.length).toBe(2); // at steps 10 and 20
  });
});
