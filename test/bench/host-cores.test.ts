// The bench's two-thread host probe (bench/host-cores.ts): its verdict and line from made-up
// probe numbers (no wall time asserted), and that a small probe runs and returns usable times.

import { describe, expect, test } from "vitest";
import { formatHostCores, hostCoresVerdict, probeHostCores, type HostCoresProbe } from "../../bench/host-cores.ts";

const probe = (at: string, aloneMs: number, pairMs: number): HostCoresProbe => ({ at, aloneMs, pairMs, slowdown: pairMs / aloneMs });

describe("host cores", () => {
  test("verdict from the slowdowns", () => {
    expect(hostCoresVerdict([])).toBe("not measured");
    expect(hostCoresVerdict([probe("start", 10, 10.2), probe("end", 10, 12.4)])).toBe("two full cores");
    // 12.5 / 10 = 1.25 is the first slowdown that counts as shared.
    expect(hostCoresVerdict([probe("start", 10, 10.2), probe("end", 10, 12.5)])).toBe(
      "the two vCPUs shared a core at times (or other load took one): 2-thread timings are not comparable",
    );
    expect(hostCoresVerdict([probe("start", 10, 18.6), probe("end", 10, 19)])).toBe(
      "the two vCPUs shared a core (or other load took one): 2-thread timings are not comparable",
    );
  });

  test("the line", () => {
    expect(formatHostCores([probe("start", 14, 14.28), probe("after mlp", 15, 15.3), probe("end", 14, 14.42)])).toBe(
      "host: two threads ran at 1.02× / 1.02× / 1.03× the time of one (start / after mlp / end; one thread 14.0 ms) — two full cores",
    );
    expect(formatHostCores([probe("start", 10, 18.6)])).toBe(
      "host: two threads ran at 1.86× the time of one (start; one thread 10.0 ms) — the two vCPUs shared a core (or other load took one): 2-thread timings are not comparable",
    );
    expect(formatHostCores([])).toBe("host: two-thread probe not run");
  });

  test("a small probe returns finite positive times", async () => {
    const p = await probeHostCores("test", { iterations: 100_000, rounds: 1 });
    expect(p.at).toBe("test");
    for (const v of [p.aloneMs, p.pairMs, p.slowdown]) {
      expect(Number.isFinite(v)).toBe(true);
      expect(v).toBeGreaterThan(0);
    }
    expect(p.slowdown).toBe(p.pairMs / p.aloneMs);
  });
});
