// Loads a user's model file (TypeScript through tsx, or JavaScript) and collects the
// k.program values it exports, named by their export names (sorted, so dumps are stable);
// `kiln train` takes the k.training values of the same exports.

import { existsSync, statSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { KilnError } from "../compiler/util/errors.ts";
import { isProgram, type Program } from "../dsl/program.ts";
import { resolveFrom } from "./io.ts";

export interface NamedProgram {
  readonly name: string;
  readonly program: Program;
}

export async function loadPrograms(cwd: string, file: string): Promise<NamedProgram[]> {
  const mod = await loadModelFile(cwd, file);
  const programs: NamedProgram[] = [];
  for (const [exportName, value] of Object.entries(mod).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (!isProgram(value)) continue;
    programs.push({ name: exportName === "default" ? (value.name ?? "main") : exportName, program: value });
  }
  if (programs.length === 0)
    throw new KilnError({
      code: "invalid-argument",
      message: `'${file}' exports no k.program (export one, e.g. export const forward = k.program(fn, [k.f32([8, 4])]))`,
    });
  return programs;
}

/** Imports a user's model file (TypeScript or JavaScript) and returns its exports; a failure to load is a user error naming the file. */
export async function loadModelFile(cwd: string, file: string): Promise<Record<string, unknown>> {
  const absolute = resolveFrom(cwd, file);
  if (!existsSync(absolute)) throw new KilnError({ code: "invalid-argument", message: `cannot read '${file}': no such file` });
  if (statSync(absolute).isDirectory()) throw new KilnError({ code: "invalid-argument", message: `cannot read '${file}': it is a directory` });
  let mod: Record<string, unknown>;
  try {
    if (/\.[cm]?tsx?$/.test(absolute)) await ensureTypeScriptLoader();
    mod = (await import(pathToFileURL(absolute).href)) as Record<string, unknown>;
  } catch (e) {
    if (e instanceof KilnError) throw e;
    throw new KilnError({ code: "invalid-argument", message: `cannot load '${file}': ${e instanceof Error ? e.message : String(e)}` });
  }
  return mod;
}

/**
 * Model files written in TypeScript load through tsx. In a checkout bin/kiln.js registers it up
 * front (and marks it); vitest transforms TypeScript itself; the installed package's built CLI
 * registers it here, the first time a .ts model file is loaded.
 */
async function ensureTypeScriptLoader(): Promise<void> {
  const registry = globalThis as { [key: symbol]: unknown };
  const mark = Symbol.for("kiln.tsx-registered");
  if (registry[mark] || process.env["VITEST"] !== undefined) return;
  const { register } = await import("tsx/esm/api");
  register();
  registry[mark] = true;
}

/** The programs to act on: all of them, or the one named by --entry. */
export function selectEntry(programs: readonly NamedProgram[], entry: string | undefined, file: string): NamedProgram[] {
  if (entry === undefined) return [...programs];
  const hit = programs.find((p) => p.name === entry);
  if (!hit)
    throw new KilnError({ code: "invalid-argument", message: `'${file}' has no program '${entry}' (programs: ${programs.map((p) => p.name).join(", ")})` });
  return [hit];
}

/** The one program to act on (compile, view, profile, dump --target): the one named by --entry, or the file's only one. */
export function selectOne(programs: readonly NamedProgram[], entry: string | undefined, file: string): NamedProgram {
  const picked = selectEntry(programs, entry, file);
  if (picked.length > 1)
    throw new KilnError({
      code: "invalid-argument",
      message: `'${file}' exports ${picked.length} programs (${picked.map((p) => p.name).join(", ")}): pick one with --entry`,
    });
  return picked[0]!;
}
