// The record every result carries (STYLE.md: device, driver, commit, peers): CPU model and
// cores, Node version, the git commit (and whether the tree had uncommitted changes), and the
// installed version of a package, read from its package.json in node_modules.

import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import * as os from "node:os";

export interface HostRecord {
  readonly date: string;
  readonly node: string;
  readonly platform: string;
  readonly cpu: string;
  readonly cores: number;
  readonly memoryGiB: number;
  /** 1-minute load average when the run started: other work on a shared machine skews every time. */
  readonly loadAverage: number;
  readonly commit: string;
  readonly dirty: boolean;
}

const REPO_ROOT = new URL("../", import.meta.url);

/** The version in node_modules/<name>/package.json, or "not installed". */
export function packageVersion(name: string): string {
  try {
    const manifest = JSON.parse(readFileSync(new URL(`node_modules/${name}/package.json`, REPO_ROOT), "utf8")) as { version?: string };
    return manifest.version ?? "unknown";
  } catch {
    return "not installed";
  }
}

function git(args: string[]): string | undefined {
  try {
    return execFileSync("git", args, { cwd: REPO_ROOT, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
  } catch {
    return undefined;
  }
}

export function hostRecord(): HostRecord {
  const cpus = os.cpus();
  return {
    date: new Date().toISOString(),
    node: process.version,
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    cpu: cpus[0]?.model.trim() ?? "unknown",
    cores: os.availableParallelism(),
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    loadAverage: Math.round(os.loadavg()[0]! * 100) / 100,
    commit: git(["rev-parse", "--short=12", "HEAD"]) ?? "unknown",
    dirty: (git(["status", "--porcelain", "--untracked-files=no"]) ?? "") !== "",
  };
}
