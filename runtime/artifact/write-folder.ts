// Writes an artifact folder all at once (Node only): every file goes into a temporary sibling
// folder, manifest.json last, and the sibling is renamed into place. A write that stops
// anywhere (an error, a full disk, a killed process) leaves the old folder as it was, or no
// folder, never a mixture: a folder without its manifest does not load, and the rename swaps
// whole folders. (Between the two renames of a replacement the name is briefly absent; the old
// folder is then still whole under its `.kiln-old-*` name.) No fsync: atomic, not durable.

import { chmodSync, existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { ArtifactInvalidError } from "./invalid.ts";
import { MANIFEST_FILE } from "./manifest.ts";

export interface WriteFolderOptions {
  /** Files to mark executable (build.sh). */
  readonly executable?: readonly string[];
  /** Writes one file; tests inject failures here. Default: fs.writeFileSync. */
  readonly writeFile?: (file: string, bytes: Uint8Array) => void;
}

const suffix = (): string => `${process.pid}-${Math.random().toString(36).slice(2, 10)}`;

/**
 * Replaces `dir` with a folder holding exactly `files` (relative path → bytes). An existing
 * `dir` must be an artifact folder (it has a manifest.json) or empty: Kiln does not replace a
 * folder of someone else's files.
 */
export function writeFolderAtomically(dir: string, files: ReadonlyMap<string, Uint8Array>, opts: WriteFolderOptions = {}): void {
  const target = path.resolve(dir);
  const writeFile = opts.writeFile ?? writeFileSync;
  if (existsSync(target)) {
    if (!statSync(target).isDirectory()) throw new ArtifactInvalidError(dir, "exists and is not a folder; refusing to replace it with an artifact");
    if (!existsSync(path.join(target, MANIFEST_FILE)) && readdirSync(target).length > 0)
      throw new ArtifactInvalidError(dir, `is not empty and holds no ${MANIFEST_FILE}: refusing to replace a folder that is not a Kiln artifact`);
  }
  mkdirSync(path.dirname(target), { recursive: true });
  const temporary = `${target}.kiln-tmp-${suffix()}`;
  // The manifest last: until it is written, the temporary folder is not an artifact at all.
  const ordered = [...files.keys()].sort((a, b) => Number(a === MANIFEST_FILE) - Number(b === MANIFEST_FILE));
  try {
    mkdirSync(temporary);
    for (const name of ordered) {
      const file = path.join(temporary, name);
      if (path.relative(temporary, file).startsWith("..")) throw new ArtifactInvalidError(name, "lies outside the artifact folder");
      mkdirSync(path.dirname(file), { recursive: true });
      writeFile(file, files.get(name)!);
    }
    for (const name of opts.executable ?? []) chmodSync(path.join(temporary, name), 0o755);
  } catch (e) {
    rmSync(temporary, { recursive: true, force: true });
    throw e;
  }
  if (!existsSync(target)) {
    renameSync(temporary, target);
    return;
  }
  const old = `${target}.kiln-old-${suffix()}`;
  renameSync(target, old);
  try {
    renameSync(temporary, target);
  } catch (e) {
    renameSync(old, target);
    rmSync(temporary, { recursive: true, force: true });
    throw e;
  }
  rmSync(old, { recursive: true, force: true });
}
