// k.DeviceValue: an output that `exe.run(inputs, { keep: [...] })` left on the target's device
// (wasm: in the executable's memory; WebGPU: in its GPU buffer) instead of copying it to the
// host. It feeds a later run, of the same executable or another on the same target, as an
// input with no host round trip, and `read()` fetches it. Lifetime: valid until the next run
// of the executable that produced it has finished (that run may still read it as an input), or
// until `release()`; using it later is a KilnError, never silently different data.

import type { DType } from "../compiler/ir/dtype.ts";
import type { HostTensor } from "../compiler/ir/host-tensor.ts";
import type { TensorType } from "../compiler/ir/types.ts";
import { KilnError } from "../compiler/util/errors.ts";
import { formatShape, shapesEqual } from "../compiler/util/shape.ts";
import type { HostOutput } from "./host-data.ts";
import type { ResidentValue } from "../targets/backend.ts";

export class DeviceValue {
  readonly shape: readonly number[];
  readonly dtype: DType;

  /** Made by exe.run for a kept output; not constructed by users. */
  constructor(
    /** The runner's handle: which memory, which buffer, which run wrote it. */
    readonly resident: ResidentValue,
    /** The target of the executable that produced it ("wasm", "webgpu"). */
    readonly target: string,
    /** The output's name in the producing executable. */
    readonly output: string,
    /** The producing executable's graph name, for messages. */
    readonly graphName: string,
  ) {
    this.shape = resident.shape;
    this.dtype = resident.dtype as DType;
  }

  /** False once the producing executable ran again, or after release(). */
  get valid(): boolean {
    return !this.resident.owner.isReleased(this.resident) && this.resident.generation === this.resident.owner.generation;
  }

  /** Copies the value to the host (into `into`, a typed array of the right type and length, when given). */
  async read(into?: HostTensor["data"]): Promise<HostOutput> {
    this.check("read()");
    const data = await this.resident.owner.readResident(this.resident, into);
    return { shape: [...this.shape], dtype: this.dtype, data: data as HostOutput["data"] };
  }

  /** Gives the value up: later uses are errors. (The memory itself belongs to the executable and is reused by its next run.) */
  release(): void {
    this.resident.owner.release(this.resident);
  }

  /** Throws a KilnError saying why this handle cannot be used for `use`. */
  check(use: string): void {
    const what = `k.DeviceValue '${this.output}' of ${this.graphName} (${this.target})`;
    if (this.resident.owner.isReleased(this.resident)) throw new KilnError({ code: "invalid-argument", message: `${use}: ${what} was released` });
    if (this.resident.generation !== this.resident.owner.generation)
      throw new KilnError({
        code: "invalid-argument",
        message: `${use}: ${what} is stale: ${this.graphName} has run again since and overwrote it (a kept value lives until the next run of its executable; keep it again or read() it before)`,
      });
  }

  /** Checks that it may feed input `name` of type `expected` on `target`. */
  checkInput(name: string, expected: TensorType, target: string): void {
    this.check(`exe.run: input '${name}'`);
    if (target !== this.target)
      throw new KilnError({
        code: "invalid-argument",
        message: `exe.run: input '${name}': k.DeviceValue '${this.output}' lives on target '${this.target}', this executable runs on '${target}' (read() it to the host first)`,
      });
    if (this.dtype !== expected.dtype || !shapesEqual(this.shape, expected.shape))
      throw new KilnError({
        code: "invalid-argument",
        message: `exe.run: input '${name}': k.DeviceValue '${this.output}' is ${this.dtype}${formatShape(this.shape)}, expected ${expected.dtype}${formatShape(expected.shape)}`,
      });
  }
}
