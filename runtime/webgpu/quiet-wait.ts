/// <reference types="@webgpu/types" />
// Waiting for the device without a busy core. Dawn's Node binding (the `webgpu` package) polls
// the device with `setImmediate` for as long as any map, onSubmittedWorkDone or error scope is
// pending: a busy loop on the main thread. On a software adapter (lavapipe, SwiftShader) the
// device's work runs on this machine's cores as well, so that loop takes a core from the
// kernels and copies it waits for. A QuietWait maps a buffer that the submitted work writes
// last without that loop: it sleeps on a timer through most of the work's expected time, then
// asks for the map, lets Dawn poll once, and if the map is still pending cancels it (`unmap`
// rejects a pending map) and sleeps a slice before asking again. The map is left in place when
// it succeeds. The expected time is the shortest of the last few waits: on a loaded machine
// one slow run must not make the next sleep past the work's end (a late timer costs latency,
// an early one a few cheap checks). Slices grow with the time already waited (1/16 of it), so
// a run much slower than expected costs a few checks, not hundreds. The first wait, and work
// expected to take under 4 ms, map the plain way (timing the work). waitInOrder does the same
// for work of unknown length, a CPU adapter's pipeline warm-ups (its JIT compiles), one buffer each.

/** Work expected to take less than this is waited for the plain way (a few ms of polling cost little; timers are coarse). */
const QUIET_FROM_MS = 4;
/** Below this the first sleep is not worth a timer (its granularity is about 1 ms). */
const MIN_SLEEP_MS = 2;
/** The first sleep: this fraction of the expected time. */
const SLEEP_FRACTION = 0.6;
/** Later checks: every (time waited so far) / this, at least every MIN_SLICE_MS. */
const SLICES = 16;
const MIN_SLICE_MS = 1;
/** Done at the first check: it took at most that long, so the time recorded is this fraction of it (the next wait then measures). */
const PROBE_DOWN = 0.7;
/** Waits remembered: the expected time is the shortest of them. */
const HISTORY = 8;

/** GPUMapMode.READ (a global only once Dawn is loaded). */
const MAP_READ = 1;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
/** One turn of the event loop's check phase: Dawn's polling callback, queued by mapAsync, runs first. */
const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export class QuietWait {
  private readonly times: number[] = [];
  /** Maps asked for and cancelled while the work was still running (a count for tests). */
  cancelled = 0;

  readonly enabled: boolean;

  /** Enabled only where `setImmediate` exists (Node): a browser's maps are not polled from script. */
  constructor(enabled: boolean) {
    this.enabled = enabled && typeof setImmediate === "function";
  }

  /**
   * Maps `size` bytes of `buffer` for reading once the work submitted at `submittedAt`
   * (performance.now()) that writes it has finished. Disabled: a plain mapAsync.
   */
  async map(buffer: GPUBuffer, size: number, submittedAt: number): Promise<void> {
    if (!this.enabled) return buffer.mapAsync(MAP_READ, 0, size);
    const expected = this.expectedMs;
    if (expected < QUIET_FROM_MS) {
      // The first wait, or short work: Dawn's polling costs little, and it times the work.
      await buffer.mapAsync(MAP_READ, 0, size);
      this.record(performance.now() - submittedAt);
      return;
    }
    const first = expected * SLEEP_FRACTION - (performance.now() - submittedAt);
    if (first >= MIN_SLEEP_MS) await sleep(first);
    let checks = 0;
    for (; ; checks++) {
      if (await mapIfDone(buffer, size)) break;
      this.cancelled++;
      await sleep(Math.max(MIN_SLICE_MS, (performance.now() - submittedAt) / SLICES));
    }
    const took = performance.now() - submittedAt;
    this.record(checks === 0 && first >= MIN_SLEEP_MS ? took * PROBE_DOWN : took);
  }

  /** Starts from another wait's expected time when this one has none (a profiled run's kernels: a plain run's time bounds them). */
  seed(ms: number): void {
    if (this.times.length === 0 && ms > 0) this.times.push(ms);
  }

  /** The expected time of the work, in ms: the shortest of the last waits (0 before a wait). */
  get expectedMs(): number {
    return this.times.length === 0 ? 0 : Math.min(...this.times);
  }

  private record(ms: number): void {
    this.times.push(ms);
    if (this.times.length > HISTORY) this.times.shift();
  }
}

/**
 * Asks for the map of `size` bytes of `buffer` and lets Dawn poll once: true with the buffer
 * mapped when its work was done, false (the map cancelled, the buffer unmapped) while it still
 * runs. A map's real failure is thrown.
 */
async function mapIfDone(buffer: GPUBuffer, size: number): Promise<boolean> {
  const outcome = buffer.mapAsync(MAP_READ, 0, size).then(
    () => undefined,
    (e: unknown) => ({ error: e }),
  );
  await turn();
  if (buffer.mapState === "pending") {
    buffer.unmap();
    // Mapped just before the cancel (and unmapped by it): the work is done, map again.
    if ((await outcome) === undefined) {
      await buffer.mapAsync(MAP_READ, 0, size);
      return true;
    }
    return false;
  }
  const r = await outcome;
  if (r !== undefined) throw r.error;
  return true;
}

/** Waits in order (waitInOrder): checks every this fraction of the time waited so far… */
const ORDER_SLICES = 16;
/** …at least this many ms apart (each check costs Dawn a poll: ~0.2-0.5 ms of CPU)… */
const MIN_ORDER_SLICE_MS = 2;
/** …and at most this many (the last compile's end is seen within that). */
const MAX_ORDER_SLICE_MS = 16;

/**
 * Waits for work of unknown length without Dawn's polling loop: `buffers` are each written last
 * by one submission, in submission order (a CPU adapter's pipeline warm-ups: each its
 * driver's compile, from a few ms to a second). Checks the first buffer not yet done
 * (mapIfDone), and the next one at once when it was; between checks it sleeps 1/16 of the time
 * waited so far (2 to 16 ms: only the last buffer's end is latency, the queue works on while
 * an earlier one waits to be seen). Calls `done(i)` as buffer i maps (and so every earlier one:
 * a queue runs in order), and leaves it unmapped. Returns the maps cancelled because the work still ran.
 */
export async function waitInOrder(buffers: readonly GPUBuffer[], size: number, done: (index: number) => void): Promise<number> {
  let cancelled = 0;
  const started = performance.now();
  for (let i = 0; i < buffers.length; i++) {
    const buffer = buffers[i]!;
    while (!(await mapIfDone(buffer, size))) {
      cancelled++;
      await sleep(Math.min(MAX_ORDER_SLICE_MS, Math.max(MIN_ORDER_SLICE_MS, (performance.now() - started) / ORDER_SLICES)));
    }
    buffer.unmap();
    done(i);
  }
  return cancelled;
}
