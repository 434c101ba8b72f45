// Whether the host gave this process two full cores: a fixed plain-JS floating-point loop timed
// on one worker thread alone, then on two worker threads started together (a SharedArrayBuffer
// flag). On a VM whose two vCPUs share one physical core the pair takes ~1.8–2× the time of one;
// with two full cores ~1.0×. The bench prints the slowdown beside its 2-thread numbers
// (docs/benchmarks.md, Environment notes), so a reader knows whether they are comparable.

import { Worker } from "node:worker_threads";

/** One probe: the loop's time alone and as a pair (the slower thread), best of a few rounds each. */
export interface HostCoresProbe {
  /** When in the run it was taken: "start", "after <case>", "end". */
  readonly at: string;
  readonly aloneMs: number;
  readonly pairMs: number;
  /** pairMs / aloneMs: ~1.0 two full cores, ~1.8–2.0 the two threads shared one core. */
  readonly slowdown: number;
}

/** At or above: the pair did not get two full cores. */
export const SHARED_SLOWDOWN = 1.25;

/** The worker: waits on its own start slot, runs the fixed loop, posts its own elapsed ms. */
const WORKER_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
const slot = new Int32Array(workerData.flags, workerData.index * 4, 1);
const iterations = workerData.iterations;
function work(n) {
  // Eight independent multiply-add chains, each converging to 1: bound by the core's
  // floating-point throughput, which two threads on one physical core (SMT siblings) share;
  // a single chain (latency-bound) runs as fast beside its sibling and would not tell.
  let a = 0.1, b = 0.2, c = 0.3, d = 0.4, e = 0.5, f = 0.6, g = 0.7, h = 0.8;
  for (let i = 0; i < n; i++) {
    a = a * 0.999 + 0.001;
    b = b * 0.998 + 0.002;
    c = c * 0.997 + 0.003;
    d = d * 0.996 + 0.004;
    e = e * 0.995 + 0.005;
    f = f * 0.994 + 0.006;
    g = g * 0.993 + 0.007;
    h = h * 0.992 + 0.008;
  }
  return a + b + c + d + e + f + g + h;
}
work(iterations); // warm-up: the timed runs are optimized code
let round = 0;
parentPort.postMessage({ ready: true });
for (;;) {
  Atomics.wait(slot, 0, round);
  round = Atomics.load(slot, 0);
  if (round < 0) break;
  const t0 = performance.now();
  const sink = work(iterations);
  parentPort.postMessage({ ms: performance.now() - t0, sink });
}
`;

export interface ProbeOptions {
  /** Loop iterations per timed run (default: ~10–20 ms on one core of this VM). */
  readonly iterations?: number;
  /** Rounds of (alone, pair); the least time of each kind is kept. */
  readonly rounds?: number;
}

/** A worker of the probe: start it on a round, await its time. */
interface ProbeWorker {
  readonly worker: Worker;
  readonly ready: Promise<unknown>;
  next(): Promise<number>;
}

function probeWorker(flags: SharedArrayBuffer, index: number, iterations: number): ProbeWorker {
  const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { flags, index, iterations } });
  let ready!: () => void;
  let pending: ((ms: number) => void) | undefined;
  let failure: unknown;
  const readyPromise = new Promise<void>((resolve, reject) => {
    ready = resolve;
    worker.on("error", (e) => {
      failure = e;
      reject(e);
    });
  });
  readyPromise.catch(() => undefined);
  worker.on("message", (m: { ready?: boolean; ms?: number }) => {
    if (m.ready) ready();
    else if (m.ms !== undefined) pending?.(m.ms);
  });
  return {
    worker,
    ready: readyPromise,
    next: () =>
      new Promise<number>((resolve, reject) => {
        if (failure !== undefined) reject(failure);
        pending = resolve;
        worker.once("error", reject);
      }),
  };
}

/**
 * Times the loop on one worker thread alone, then on two at once, `rounds` times (about
 * 100–200 ms in all with the workers' start) and keeps the least time of each kind; the pair's
 * time is its slower thread's.
 */
export async function probeHostCores(at: string, options: ProbeOptions = {}): Promise<HostCoresProbe> {
  const iterations = options.iterations ?? 3_000_000;
  const rounds = options.rounds ?? 3;
  const flags = new SharedArrayBuffer(8);
  const slots = new Int32Array(flags);
  const workers = [probeWorker(flags, 0, iterations), probeWorker(flags, 1, iterations)];
  const start = (indices: readonly number[]): void => {
    for (const i of indices) Atomics.add(slots, i, 1);
    for (const i of indices) Atomics.notify(slots, i);
  };
  try {
    await Promise.all(workers.map((w) => w.ready));
    let alone = Number.POSITIVE_INFINITY;
    let pair = Number.POSITIVE_INFINITY;
    for (let r = 0; r < rounds; r++) {
      const one = workers[0]!.next();
      start([0]);
      alone = Math.min(alone, await one);
      const both = Promise.all(workers.map((w) => w.next()));
      start([0, 1]);
      pair = Math.min(pair, Math.max(...(await both)));
    }
    return { at, aloneMs: alone, pairMs: pair, slowdown: pair / alone };
  } finally {
    for (let i = 0; i < 2; i++) Atomics.store(slots, i, -1);
    for (let i = 0; i < 2; i++) Atomics.notify(slots, i);
    await Promise.all(workers.map((w) => w.worker.terminate()));
  }
}

/** The verdict on a run's probes: the worst slowdown decides. */
export function hostCoresVerdict(probes: readonly HostCoresProbe[]): string {
  if (probes.length === 0) return "not measured";
  if (probes.every((p) => p.slowdown < SHARED_SLOWDOWN)) return "two full cores";
  const how = probes.every((p) => p.slowdown >= SHARED_SLOWDOWN) ? "shared a core" : "shared a core at times";
  return `the two vCPUs ${how} (or other load took one): 2-thread timings are not comparable`;
}

/** "host: two threads ran at 1.02× / 1.03× the time of one (start / end) — two full cores". */
export function formatHostCores(probes: readonly HostCoresProbe[]): string {
  if (probes.length === 0) return "host: two-thread probe not run";
  const times = probes.map((p) => `${p.slowdown.toFixed(2)}×`).join(" / ");
  const where = probes.map((p) => p.at).join(" / ");
  return `host: two threads ran at ${times} the time of one (${where}; one thread ${probes[0]!.aloneMs.toFixed(1)} ms) — ${hostCoresVerdict(probes)}`;
}
