// The calling thread's own CPU time, for benchmarks on a loaded machine: process.cpuUsage()
// adds every thread (wasm workers, V8's compiler and GC helpers), and the wall time mostly
// measures waiting for a core, while the thread's CPU time is what its wall time would be on
// a quiet machine (less its waits on files and other threads). Linux only (the scheduler's
// count in /proc/thread-self/schedstat, in ns); undefined elsewhere.

import { readFileSync } from "node:fs";

export function threadCpuMs(): number | undefined {
  try {
    return Number(readFileSync("/proc/thread-self/schedstat", "utf8").split(" ")[0]) / 1e6;
  } catch {
    return undefined;
  }
}
