// Memory planning on hand-made schedules: slot reuse, in-place updates, copies, and byte
// counts computed by hand in each test.

import { describe, expect, test } from "vitest";
import { planMemory, type PlanBuffer, type PlanStep } from "../../compiler/kernel/memory-plan.ts";

const step = (reads: string[], writes: string[]): PlanStep => ({ reads, writes });
const buf = (key: string, bytes: number, kind: PlanBuffer["kind"], aliasOf?: string): PlanBuffer => ({ key, bytes, kind, ...(aliasOf ? { aliasOf } : {}) });

describe("planMemory", () => {
  test("a chain of temporaries reuses one slot every other step", () => {
    // in -> t0 -> t1 -> t2 -> out: at each step one temp is read and the next written, so
    // two temp slots suffice; t2 lands in t0's slot.
    const steps = [step(["in"], ["t0"]), step(["t0"], ["t1"]), step(["t1"], ["t2"]), step(["t2"], ["out"])];
    const buffers = [buf("in", 1024, "input"), buf("out", 1024, "output"), buf("t0", 1024, "temp"), buf("t1", 1024, "temp"), buf("t2", 1024, "temp")];
    const plan = planMemory(steps, buffers);
    expect(plan.slot.get("t2")).toBe(plan.slot.get("t0"));
    expect(plan.slot.get("t1")).not.toBe(plan.slot.get("t0"));
    expect(new Set(plan.slot.values()).size).toBe(4); // in, out, two temp slots
    expect(plan.reusedTemps).toBe(1);
    expect(plan.peakBytes).toBe(4 * 1024);
    expect(plan.totalBytes).toBe(5 * 1024);
    // in + out always, two temps live at steps 1 and 2.
    expect(plan.maxLiveBytes).toBe(4 * 1024);
  });

  test("a long chain needs only two temp slots", () => {
    const n = 10;
    const steps = [step(["in"], ["t0"])];
    for (let i = 1; i < n; i++) steps.push(step([`t${i - 1}`], [`t${i}`]));
    steps.push(step([`t${n - 1}`], ["out"]));
    const buffers = [buf("in", 512, "input"), buf("out", 512, "output"), ...Array.from({ length: n }, (_, i) => buf(`t${i}`, 512, "temp"))];
    const plan = planMemory(steps, buffers);
    expect(plan.reusedTemps).toBe(n - 2);
    expect(plan.peakBytes).toBe(4 * 512);
  });

  test("an optimizer update with no later read of the old value happens in place", () => {
    // step 0: p_new = p - lr * g  (reads p, g; writes p_new). Nothing reads p afterwards.
    const steps = [step(["p", "g"], ["p_new"])];
    const buffers = [buf("p", 512, "input"), buf("g", 512, "input"), buf("p_new", 512, "output", "p")];
    const plan = planMemory(steps, buffers);
    expect(plan.slot.get("p_new")).toBe(plan.slot.get("p"));
    expect(plan.inPlace).toEqual(["p_new"]);
    expect(plan.copies).toEqual([]);
    expect(plan.peakBytes).toBe(1024);
    expect(plan.bufferOffset.get("p_new")).toBe(plan.bufferOffset.get("p"));
  });

  test("an update whose input is read after the write needs a copy, and says where", () => {
    // step 0 writes p_new; step 1 still reads the old p (e.g. a loss computed from it).
    const steps = [step(["p"], ["p_new"]), step(["p"], ["loss"])];
    const buffers = [buf("p", 256, "input"), buf("p_new", 256, "output", "p"), buf("loss", 256, "output")];
    const plan = planMemory(steps, buffers);
    expect(plan.slot.get("p_new")).not.toBe(plan.slot.get("p"));
    expect(plan.inPlace).toEqual([]);
    expect(plan.copies).toEqual([{ output: "p_new", input: "p", readAfterWriteStep: 1 }]);
    expect(plan.peakBytes).toBe(3 * 256);
  });

  test("best fit: a temp takes the smallest free slot that holds it", () => {
    // big [0,1], small [1,2], mid [2,3] -> big's slot (small's is busy), tiny [3,4] -> small's
    // slot: the free slots at step 3 are small's (256) and none else that fits better.
    const steps = [step(["in"], ["big"]), step(["big"], ["small"]), step(["small"], ["mid"]), step(["mid"], ["tiny"]), step(["tiny"], ["out"])];
    const buffers = [
      buf("in", 256, "input"),
      buf("out", 256, "output"),
      buf("big", 4096, "temp"),
      buf("small", 256, "temp"),
      buf("mid", 1024, "temp"),
      buf("tiny", 256, "temp"),
    ];
    const plan = planMemory(steps, buffers);
    expect(plan.slot.get("mid")).toBe(plan.slot.get("big"));
    expect(plan.slot.get("tiny")).toBe(plan.slot.get("small"));
    expect(plan.peakBytes).toBe(256 + 256 + 4096 + 256);
  });

  test("a temp larger than every free slot grows the largest one rather than opening a new slot", () => {
    const steps = [step(["in"], ["a"]), step(["a"], ["b"]), step(["b"], ["c"]), step(["c"], ["out"])];
    const buffers = [buf("in", 256, "input"), buf("out", 256, "output"), buf("a", 512, "temp"), buf("b", 256, "temp"), buf("c", 2048, "temp")];
    const plan = planMemory(steps, buffers);
    expect(plan.slot.get("c")).toBe(plan.slot.get("a"));
    expect(plan.slotBytes[plan.slot.get("a")!]).toBe(2048);
    expect(plan.peakBytes).toBe(256 + 256 + 2048 + 256);
  });

  test("offsets are 256-byte aligned in one arena", () => {
    const plan = planMemory([step(["in"], ["out"])], [buf("in", 100, "input"), buf("out", 300, "output")]);
    expect(plan.offsets).toEqual([0, 256]);
    expect(plan.peakBytes).toBe(256 + 512);
    for (const off of plan.bufferOffset.values()) expect(off % 256).toBe(0);
  });

  test("is deterministic", () => {
    const steps = [step(["in"], ["a", "b"]), step(["a", "b"], ["c"]), step(["c"], ["out"])];
    const buffers = [buf("in", 256, "input"), buf("out", 256, "output"), buf("a", 256, "temp"), buf("b", 768, "temp"), buf("c", 512, "temp")];
    const first = planMemory(steps, buffers);
    const second = planMemory(steps, buffers);
    expect([...second.slot]).toEqual([...first.slot]);
    expect(second.offsets).toEqual(first.offsets);
  });

  test("a schedule that reads a temp before writing it is a bug", () => {
    expect(() => planMemory([step(["t"], ["out"])], [buf("t", 4, "temp"), buf("out", 4, "output")])).toThrow(/reads t before any step writes it/);
  });

  test("random schedules: slot sharers never overlap, slots hold their buffers, offsets never collide", () => {
    let state = 12345;
    const rand = (n: number) => {
      state = (Math.imul(state, 1103515245) + 12345) >>> 0;
      return state % n;
    };
    for (let trial = 0; trial < 50; trial++) {
      const stepCount = 2 + rand(12);
      const buffers: PlanBuffer[] = [buf("in", 256 * (1 + rand(4)), "input"), buf("out", 256, "output")];
      const steps: PlanStep[] = [];
      const available = ["in"];
      for (let i = 0; i < stepCount; i++) {
        const reads = [available[rand(available.length)]!, available[rand(available.length)]!];
        const key = `t${i}`;
        buffers.push(buf(key, 64 * (1 + rand(40)), "temp"));
        steps.push(step(reads, [key]));
        available.push(key);
      }
      steps.push(step([available.at(-1)!], ["out"]));
      const plan = planMemory(steps, buffers);
      // Lifetimes recomputed here, independently: [write step, last read step].
      const life = (key: string): [number, number] => {
        const start = steps.findIndex((s) => s.writes.includes(key));
        const reads = steps.flatMap((s, i) => (s.reads.includes(key) ? [i] : []));
        return [start, Math.max(start, ...reads)];
      };
      const temps = buffers.filter((b) => b.kind === "temp");
      for (const a of temps) {
        expect(plan.slotBytes[plan.slot.get(a.key)!]).toBeGreaterThanOrEqual(a.bytes);
        for (const b of temps) {
          if (a.key >= b.key || plan.slot.get(a.key) !== plan.slot.get(b.key)) continue;
          const [s1, e1] = life(a.key);
          const [s2, e2] = life(b.key);
          expect(e1 < s2 || e2 < s1, `${a.key} and ${b.key} share a slot with overlapping lifetimes (trial ${trial})`).toBe(true);
        }
      }
      const ends = plan.offsets.map((o, i) => o + plan.slotBytes[i]!);
      for (let i = 1; i < plan.offsets.length; i++) expect(plan.offsets[i]!).toBeGreaterThanOrEqual(ends[i - 1]!);
      expect(plan.peakBytes).toBeGreaterThanOrEqual(plan.maxLiveBytes);
      expect(plan.peakBytes).toBeLessThanOrEqual(plan.totalBytes);
    }
  });
});
