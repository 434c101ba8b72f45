// The two test loops: `npm test` (the README's command; a representative subset of the slow
// sweeps, under 4 minutes on a 2-core machine) and `npm run test:full` (KILN_FULL=1: every
// sweep in full, CI's second step). A subset names its cases, so a rename cannot empty it silently.

/** True under `npm run test:full` (KILN_FULL=1). */
export const FULL = process.env["KILN_FULL"] === "1";

/** `all` under KILN_FULL=1; otherwise the items named in `subset` (every name must exist). */
export function representative<T extends { readonly name: string }>(all: readonly T[], subset: readonly string[], what: string): T[] {
  if (FULL) return [...all];
  const missing = subset.filter((n) => !all.some((c) => c.name === n));
  if (missing.length > 0) throw new Error(`${what}: the representative subset names cases that do not exist: ${missing.join(", ")}`);
  return all.filter((c) => subset.includes(c.name));
}
