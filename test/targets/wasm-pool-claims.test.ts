// The wasm worker pool's launch protocol (runtime/wasm/pool.ts) under many back-to-back
// launches: a kernel that adds 1 to each element of its chunk (an atomic add, so a chunk run
// twice at once still counts twice) is launched on 3 threads with extents alternating between
// 1 element (one chunk) and 96 (24 chunks), and after every launch each element of it must have
// been added exactly once more: no chunk run twice, none missed, none still running when launch
// returns. Workers spin no polls (spinPolls 0), so they sleep and wake between launches and
// often reach their last claim check while the caller already writes the next launch. Before
// fd0b240, a worker that found the small launch's one chunk taken could read the big launch's
// CHUNKS while NEXT still held the small launch's tag, claim "chunk 1" of it and run it with the
// big launch's parameters: against that pool this test failed 6 runs of 6 here (2 loaded cores).

import { afterEach, describe, expect, test } from "vitest";
import wabtInit from "wabt";
import { launchTuning, WorkerPool } from "../../runtime/wasm/pool.ts";

const tuning = { ...launchTuning };
afterEach(() => {
  Object.assign(launchTuning, tuning);
});

/** s0(lo, hi, thread): atomically adds 1 to the i32 at 1024 + 4·i for i in [lo, hi). */
const COUNT_WAT = `(module
 (import "env" "memory" (memory 1 1 shared))
 (global (export "n") i32 (i32.const 1))
 (func (export "s0") (param $lo i32) (param $hi i32) (param $t i32)
   block loop
     local.get $lo local.get $hi i32.ge_s br_if 1
     local.get $lo i32.const 2 i32.shl i32.const 1024 i32.add
     i32.const 1 i32.atomic.rmw.add drop
     local.get $lo i32.const 1 i32.add local.set $lo
     br 0
   end end))`;

describe("wasm pool launches", () => {
  test("600 000 launches alternating one chunk and 24 on 3 threads: each element counted exactly once per launch", { timeout: 30_000 }, async () => {
    const wabt = await wabtInit();
    const module = new WebAssembly.Module(wabt.parseWat("count.wat", COUNT_WAT, { threads: true }).toBinary({}).buffer as Uint8Array<ArrayBuffer>);
    const memory = new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true });
    const s0 = new WebAssembly.Instance(module, { env: { memory } }).exports.s0 as (lo: number, hi: number, thread: number) => void;
    const pool = await WorkerPool.create(memory, [module], 3);
    try {
      expect(pool.ready).toBe(true);
      launchTuning.spinPolls = 0;
      const counts = new Int32Array(memory.buffer, 1024, 96);
      const expected = new Int32Array(96);
      const wrong: string[] = [];
      for (let l = 0; l < 600_000 && wrong.length < 10; l++) {
        const extent = l % 2 === 0 ? 1 : 96;
        pool.launch(0, 0, extent, 1, (lo, hi) => s0(lo, hi, 0));
        for (let i = 0; i < extent; i++) {
          expected[i]!++;
          const got = Atomics.load(counts, i);
          if (got !== expected[i]) {
            wrong.push(`launch ${l}, element ${i}: ${got}, expected ${expected[i]}`);
            expected[i] = got;
          }
        }
      }
      expect(wrong).toEqual([]);
    } finally {
      await pool.close();
    }
  });
});
