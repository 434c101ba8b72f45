// The state store: the values an executable — or every program of one k.compileModel — owns
// across runs (parameters, buffers, optimizer state), by state name. The host holds a copy of
// each value; a device target keeps newer ones where its runs updated them (`stale`, by the
// executor that wrote each), read back only on demand. Executors that bind one SharedState
// (the same device memory for each state name) hand the state over by switching owner; any
// other switch brings the stale values to the host first, and the next executor uploads them.
// Runs and state reads of everything sharing a store go through one queue, so each sees the
// state the one before it left.

import type { TensorType } from "../compiler/ir/types.ts";
import { formatType } from "../compiler/ir/infer.ts";
import { KilnError } from "../compiler/util/errors.ts";
import type { HostTensor } from "../compiler/ir/host-tensor.ts";
import type { Executor, SharedState } from "./targets.ts";

export class StateStore {
  /** The host's copy of every state value; behind the device for the names in `stale`. */
  readonly values = new Map<string, HostTensor>();
  readonly types = new Map<string, TensorType>();
  /** Which program declared each name first (for error messages). */
  private readonly declaredBy = new Map<string, string>();
  /** Names whose current value is on a device, newer than `values`, with the executor that wrote it. */
  readonly stale = new Map<string, Executor>();
  /** The executor that ran last: the device memory the state is current in. */
  owner: Executor | undefined;
  /** Device memory the programs of a model share, per target (an executor binds it where it can); none for a lone executable. */
  readonly shared: SharedState | undefined;
  private tail: Promise<unknown> = Promise.resolve();
  private pending = 0;

  private readonly names = new Set<string>();

  constructor(
    readonly targetName: string,
    { shareDevice = false } = {},
  ) {
    this.shared = shareDevice ? { names: this.names, types: this.types, memory: new Map() } : undefined;
  }

  /** Adds a state entry (first value from `init`), or checks that a program agrees with the one that added it. */
  declare(name: string, type: TensorType, init: () => HostTensor, program: string): void {
    const known = this.types.get(name);
    if (known === undefined) {
      this.types.set(name, type);
      this.declaredBy.set(name, program);
      this.values.set(name, init());
      this.names.add(name);
      return;
    }
    if (known.dtype !== type.dtype || known.shape.join() !== type.shape.join())
      throw new KilnError({
        code: "shape-mismatch",
        message: `k.compileModel: state '${name}' is ${formatType(type)} in program '${program}' but ${formatType(known)} in '${this.declaredBy.get(name)}'`,
      });
  }

  /** True while runs or reads are queued or running. */
  get busy(): boolean {
    return this.pending > 0;
  }

  /** Runs `work` after everything queued before it has settled; a failure does not block the rest. */
  serialized<T>(work: () => Promise<T>): Promise<T> {
    this.pending++;
    const result = this.tail.then(work);
    // Registered before the caller can await `result`, so it runs first: the caller's
    // continuation sees the count without this run (one promise fewer per run than a finally).
    const settled = (): void => {
      this.pending--;
    };
    this.tail = result.then(settled, settled);
    return result;
  }

  /** Brings every value that is newer on a device (all, or the named ones) to the host. */
  async pull(names: Iterable<string> = this.stale.keys()): Promise<void> {
    const byExecutor = new Map<Executor, string[]>();
    for (const name of [...names]) {
      const exec = this.stale.get(name);
      if (exec) byExecutor.set(exec, [...(byExecutor.get(exec) ?? []), name]);
    }
    for (const [exec, names] of byExecutor) {
      if (!exec.readInputs) continue;
      const fresh = await exec.readInputs(names);
      for (const name of names) {
        this.values.set(name, fresh[name]!);
        this.stale.delete(name);
      }
    }
  }

  /** Brings stale values to the host where that needs no wait (CPU targets); false if some remain on a device. */
  pullNow(): boolean {
    const byExecutor = new Map<Executor, string[]>();
    for (const [name, exec] of this.stale) if (exec.readInputsSync) byExecutor.set(exec, [...(byExecutor.get(exec) ?? []), name]);
    for (const [exec, names] of byExecutor) {
      const fresh = exec.readInputsSync!(names);
      for (const name of names) {
        this.values.set(name, fresh[name]!);
        this.stale.delete(name);
      }
    }
    return this.stale.size === 0;
  }

  /**
   * Makes `exec` the owner before a run reading the state entries `needs`: an entry newer on
   * another executor's device comes to the host first (the run then uploads it), unless both
   * bind the shared state (the same device memory). Entries newer on `exec` itself stay there.
   */
  handOver(exec: Executor, needs: readonly string[]): Promise<void> | undefined {
    // Nothing newer on another executor (every run of one executable after the first): no pull, no wait.
    let elsewhere = false;
    for (const holder of this.stale.values()) if (holder !== exec) elsewhere = true;
    if (!elsewhere) {
      this.owner = exec;
      return undefined;
    }
    return this.handOverPulling(exec, needs);
  }

  private async handOverPulling(exec: Executor, needs: readonly string[]): Promise<void> {
    const shares = (holder: Executor): boolean => this.shared !== undefined && holder.sharedState === this.shared && exec.sharedState === this.shared;
    await this.pull(
      needs.filter((name) => {
        const holder = this.stale.get(name);
        return holder !== undefined && holder !== exec && !shares(holder);
      }),
    );
    this.owner = exec;
  }

  /** Copies of the named values (all by default); throws when some are newer on a device and cannot be read without waiting. */
  snapshot(names: readonly string[] = [...this.types.keys()], what = "exe.state()"): Record<string, HostTensor> {
    this.pullNow();
    const behind = names.filter((n) => this.stale.has(n));
    if (behind.length > 0)
      throw new KilnError({
        code: "invalid-argument",
        message: `${what}: the state (${behind.slice(0, 3).join(", ")}${behind.length > 3 ? ", …" : ""}) lives on the ${this.targetName} device and has changed since it was last read: use \`await ${what.replace("state()", "fetchState()")}\``,
      });
    return Object.fromEntries(
      names.map((n) => {
        const t = this.values.get(n)!;
        return [n, { dtype: t.dtype, shape: [...t.shape], data: t.data.slice() }];
      }),
    );
  }

  /** Replaces values (already checked): the host copy becomes current. */
  replace(values: readonly (readonly [string, HostTensor])[]): void {
    for (const [name, t] of values) {
      this.values.set(name, t);
      this.stale.delete(name);
    }
  }
}
