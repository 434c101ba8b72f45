// V8 flags and the wasm workers booted ahead of a compile (runtime/wasm/engine.ts, bootGate):
// a flag that differs from V8's defaults makes Node compile its own modules without its code
// cache, which more than doubled a Node worker's boot. So k.compile for the cpu target starts
// the workers before it traces, with nothing set yet; the last of them to boot sets the flags
// (the wasm ones and the tier-up budget) and opens the gate; the main thread's tier-up budget
// waits while they boot, and its wasm flags are not set again once the workers set them.
// Checked by protocol (counts, gate states, who asked for node:v8), never by time. A fresh
// module graph (this file is not in vitest's shared project), so the gate starts closed.

import { afterAll, expect, test, vi } from "vitest";
import * as k from "kiln";
import { idleWorkerCount, prestartWorkersNow, stopIdleWorkers } from "../../runtime/wasm/pool.ts";
import { flagGate, prepareWasmEngine } from "../../runtime/wasm/engine.ts";

afterAll(async () => {
  await stopIdleWorkers();
});

/** Resolves once the gate's "flags set" word is 1 (the last booted worker's store). */
async function gateOpened(words: Int32Array): Promise<void> {
  while (Atomics.load(words, 1) !== 1) await new Promise((r) => setTimeout(r, 5));
}

test("prestarted workers count themselves booted; the last one sets the flags and opens the gate; the main thread then sets none", async () => {
  // First in this file: nothing has set the engine's flags yet.
  const words = prestartWorkersNow(3, []);
  expect(words).toBeDefined();
  expect(idleWorkerCount()).toBe(2);
  expect(flagGate()).toBe("booting"); // a Node worker boots in tens of ms, not within this statement
  await gateOpened(words!);
  expect(Atomics.load(words!, 0)).toBe(2);
  expect(flagGate()).toBe("set");
  const asked: string[] = [];
  const proc = process as { getBuiltinModule?: (id: string) => unknown };
  const real = proc.getBuiltinModule!;
  const spy = vi.spyOn(proc, "getBuiltinModule").mockImplementation((id: string) => {
    asked.push(id);
    return real.call(process, id);
  });
  try {
    prepareWasmEngine();
  } finally {
    spy.mockRestore();
  }
  expect(asked).not.toContain("node:v8");
  expect(flagGate()).toBe("set");
  await stopIdleWorkers();
});

test("k.compile for the cpu target starts its worker threads before it traces the program", async () => {
  let idleWhileTracing = -1;
  const exe = await k.compile(
    (x: k.Tensor) => {
      idleWhileTracing = idleWorkerCount();
      return x.mul(2);
    },
    [k.f32([4])],
    { target: "cpu", threads: 3 },
  );
  expect(idleWhileTracing).toBe(2);
  expect(Array.from((await exe.run([Float32Array.of(1, 2, 3, 4)])).data)).toEqual([2, 4, 6, 8]);
  await exe.close();
});

test("the tier-up budget waits while the workers boot, is set by a later call once they are not booting, and not at all once they set it", async () => {
  vi.resetModules();
  const first = await import("../../compiler/util/js-tiering.ts");
  first.setJsTieringGate(() => "booting");
  expect(first.prepareJsTiering()).toBeUndefined();
  first.setJsTieringGate(() => "none");
  expect(first.prepareJsTiering()).toBe(first.jsTieringFlag(process as never));
  expect(first.prepareJsTiering()).toBeUndefined(); // once per process
  vi.resetModules();
  const second = await import("../../compiler/util/js-tiering.ts");
  second.setJsTieringGate(() => "set");
  expect(second.prepareJsTiering()).toBeUndefined();
  second.setJsTieringGate(() => "none");
  expect(second.prepareJsTiering()).toBeUndefined(); // the workers set it: prepared
});
