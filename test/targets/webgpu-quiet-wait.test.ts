// QuietWait (runtime/webgpu/quiet-wait.ts) against a stand-in buffer that maps only once its
// "work" is done and, like Dawn's Node binding, polls every event-loop turn while a map is
// pending: the first wait maps the plain way and times the work; later ones return with the
// buffer mapped, cancelling the maps asked for too early; the expected time follows the work's
// and a slow run does not raise it; a map's real failure is passed on. No device needed.

import { describe, expect, test } from "vitest";
import { QuietWait, waitInOrder } from "../../runtime/webgpu/quiet-wait.ts";

/**
 * A buffer whose work ends `workMs` after `submittedAt` and not before its `minMaps`-th map was
 * asked for (so a test can make a wait's first map early whatever the machine's load does to
 * the timers); unmap rejects a pending map (WebGPU's rule).
 */
function fakeBuffer(submittedAt: number, workMs: number, fail?: Error, minMaps = 1) {
  let state: GPUBufferMapState = "unmapped";
  let reject: ((e: Error) => void) | undefined;
  // The map each poll belongs to: a cancelled map's polls stop (as Dawn's callbacks of a cancelled
  // map never settle a later one). Without it, a poll of a cancelled map that ran after the next
  // map began (a timer due before the check phase, on a loaded machine) marked the buffer mapped
  // and settled its own, already rejected promise: the next map never settled and the test hung.
  let generation = 0;
  const buffer = {
    maps: 0,
    get mapState(): GPUBufferMapState {
      return state;
    },
    mapAsync(): Promise<void> {
      buffer.maps++;
      state = "pending";
      const own = ++generation;
      return new Promise<void>((resolve, rej) => {
        reject = rej;
        // Polled every event-loop turn while pending (Dawn's loop), so a plain map settles too.
        const poll = (): void => {
          if (state !== "pending" || own !== generation) return;
          if (fail) {
            state = "unmapped";
            rej(fail);
          } else if (performance.now() - submittedAt >= workMs && buffer.maps >= minMaps) {
            state = "mapped";
            resolve();
          } else setImmediate(poll);
        };
        setImmediate(poll);
      });
    },
    unmap(): void {
      if (state === "pending") reject!(new Error("AbortError: unmapped while pending"));
      state = "unmapped";
    },
  };
  return buffer;
}

describe("QuietWait", () => {
  test("maps once the work is done, cancelling the early maps, and learns the work's time", async () => {
    const wait = new QuietWait(true);
    let maps = 0;
    for (let run = 0; run < 4; run++) {
      const at = performance.now();
      // After the first (plain) wait, each wait's first map is early even if its sleep overslept on a loaded machine.
      const buffer = fakeBuffer(at, 30, undefined, run === 0 ? 1 : 2);
      await wait.map(buffer as unknown as GPUBuffer, 4, at);
      expect(buffer.mapState).toBe("mapped");
      expect(performance.now() - at).toBeGreaterThanOrEqual(30);
      maps += buffer.maps;
    }
    // Every map but the last of each wait was asked for before the work ended, and cancelled
    // (the first wait asked once: the plain way).
    expect(wait.cancelled).toBe(maps - 4);
    expect(wait.cancelled).toBeGreaterThan(0);
    // Learnt from the waits: about the work's time (a wait done at its first check scales it by 0.7).
    expect(wait.expectedMs).toBeGreaterThanOrEqual(30 * 0.7);
  });

  test("one slow run (a tiered start's second run compiles its tuned pipelines) does not raise the expected time", async () => {
    // Moving half way to it, the fast runs after a 600 ms run each slept ~60 % of ~300 ms, then of ~130 ms, ...
    // The expected time is the shortest of the last waits: the slow one leaves it where it was.
    const wait = new QuietWait(true);
    for (const workMs of [20, 20]) {
      const at = performance.now();
      await wait.map(fakeBuffer(at, workMs) as unknown as GPUBuffer, 4, at);
    }
    const before = wait.expectedMs;
    expect(before).toBeGreaterThanOrEqual(20 * 0.7);
    const at = performance.now();
    await wait.map(fakeBuffer(at, 600) as unknown as GPUBuffer, 4, at);
    expect(wait.expectedMs).toBeLessThanOrEqual(before);
  });

  test("a map that fails (not cancelled) fails the wait", async () => {
    const wait = new QuietWait(true);
    const at = performance.now();
    await expect(wait.map(fakeBuffer(at, 0, new Error("device lost")) as unknown as GPUBuffer, 4, at)).rejects.toThrow("device lost");
  });

  test("disabled, it is a plain map: one call, nothing learnt", async () => {
    const wait = new QuietWait(false);
    const at = performance.now();
    const buffer = fakeBuffer(at, 0);
    await wait.map(buffer as unknown as GPUBuffer, 4, at);
    expect(buffer.maps).toBe(1);
    expect(wait.expectedMs).toBe(0);
  });
});

describe("waitInOrder (a CPU adapter's pipeline warm-ups)", () => {
  test("reports each buffer once its work is done, in order, cancelling the maps asked for before; leaves each unmapped", async () => {
    const at = performance.now();
    // Work that ends 10, 40 and 45 ms after the start (a queue runs its submissions in order), each not before its second map.
    const buffers = [10, 40, 45].map((ms) => fakeBuffer(at, ms, undefined, 2));
    const seen: { index: number; ms: number }[] = [];
    const cancelled = await waitInOrder(buffers as unknown as GPUBuffer[], 4, (index) => seen.push({ index, ms: performance.now() - at }));
    expect(seen.map((s) => s.index)).toEqual([0, 1, 2]);
    [10, 40, 45].forEach((ms, i) => expect(seen[i]!.ms).toBeGreaterThanOrEqual(ms));
    for (const b of buffers) expect(b.mapState).toBe("unmapped");
    // Every map but the last of each buffer was early, and cancelled.
    expect(cancelled).toBe(buffers.reduce((n, b) => n + b.maps - 1, 0));
    expect(cancelled).toBeGreaterThanOrEqual(3);
  });

  test("a map that fails (not cancelled) fails the wait", async () => {
    const at = performance.now();
    await expect(waitInOrder([fakeBuffer(at, 0, new Error("device lost"))] as unknown as GPUBuffer[], 4, () => undefined)).rejects.toThrow("device lost");
  });
});
