/// <reference types="@webgpu/types" />
// Waiting for the device without a busy core. Dawn's Node binding (the `webgpu` package) polls
// the device with `setImmediate` for as long as any map, onSubmittedWorkDone or error scope is
// pending: a busy loop on the main thread. On a software adapter (lavapipe, SwiftShader) the
// device's work runs on this machine's cores as well, so that loop takes a core from the
// kernels and copies it waits for. A QuietWait maps a buffer that the submitted work writes
// last without that loop: it sleeps on a timer through most of the work's expected time
// (learnt from earlier waits), then asks for the map, lets Dawn poll once, and if the map is
// still pending cancels it (`unmap` rejects a pending map) and sleeps a slice before asking
// again. The map is left in place when it succeeds. The first wait, and work expected to take
// under 4 ms, map the plain way (timing the work).

/** Work expected to take less than this is waited for the plain way (a few ms of polling cost little; timers are coarse). */
const QUIET_FROM_MS = 4;
/** Below this the first sleep is not worth a timer (its granularity is about 1 ms). */
const MIN_SLEEP_MS = 2;
/** The first sleep: this fraction of the expected time (early costs a few cheap checks, late costs latency). */
const SLEEP_FRACTION = 0.6;
/** After the first sleep, check every expected time / this (at least every MIN_SLICE_MS). */
const SLICES = 32;
const MIN_SLICE_MS = 1;
/** Done at the first check: it took at most that long, so the next estimate is this fraction of it. */
const PROBE_DOWN = 0.7;
/** A time seen at a later check moves the estimate this far towards it (one slow run on a loaded machine moves it half way). */
const FOLLOW = 0.5;
/**
 * ...but the estimate at most doubles per wait: one run far slower than the rest (a tiered
 * start's second run compiles its tuned pipelines inside it, seconds on lavapipe) would
 * otherwise make the next runs sleep through most of that time. A lasting slowdown is
 * followed within a few waits; until then a wait checks every slice after its sleep.
 */
const MAX_GROWTH = 2;

/** GPUMapMode.READ (a global only once Dawn is loaded). */
const MAP_READ = 1;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
/** One turn of the event loop's check phase: Dawn's polling callback, queued by mapAsync, runs first. */
const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export class QuietWait {
  private estimateMs = 0;
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
    if (this.estimateMs < QUIET_FROM_MS) {
      // The first wait, or short work: Dawn's polling costs little, and it times the work.
      await buffer.mapAsync(MAP_READ, 0, size);
      const took = performance.now() - submittedAt;
      this.estimateMs = this.estimateMs === 0 ? took : Math.min(took, this.estimateMs * MAX_GROWTH);
      return;
    }
    const first = this.estimateMs * SLEEP_FRACTION - (performance.now() - submittedAt);
    if (first >= MIN_SLEEP_MS) await sleep(first);
    const slice = Math.max(MIN_SLICE_MS, this.estimateMs / SLICES);
    let checks = 0;
    for (; ; checks++) {
      const mapping = buffer.mapAsync(MAP_READ, 0, size);
      const outcome = mapping.then(
        () => undefined,
        (e: unknown) => ({ error: e }),
      );
      await turn();
      if (buffer.mapState === "pending") {
        this.cancelled++;
        buffer.unmap();
        const r = await outcome;
        // Mapped just before the cancel (and unmapped by it): the work is done, map again.
        if (r === undefined) {
          await buffer.mapAsync(MAP_READ, 0, size);
          break;
        }
        await sleep(slice);
        continue;
      }
      const r = await outcome;
      if (r !== undefined) throw r.error;
      break;
    }
    const took = performance.now() - submittedAt;
    if (checks === 0 && first >= MIN_SLEEP_MS) this.estimateMs = took * PROBE_DOWN;
    else this.estimateMs = Math.min(this.estimateMs + (took - this.estimateMs) * FOLLOW, this.estimateMs * MAX_GROWTH);
  }

  /** Starts from another wait's learnt time when this one has none (a profiled run's kernels: a plain run's time bounds them). */
  seed(ms: number): void {
    if (this.estimateMs === 0) this.estimateMs = ms;
  }

  /** The learnt time of the work, in ms (0 before a wait). */
  get expectedMs(): number {
    return this.estimateMs;
  }
}
