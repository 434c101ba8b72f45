// Strict options objects: every public function that takes `{ ... }` options checks its keys
// here, so a misspelt or PyTorch-spelt option (`weight_decay`, `unbiased` where it is not
// supported) is an error naming the key, the accepted ones and the likely intended one,
// never a silently ignored setting.

import { KilnError, type SourceLoc } from "./errors.ts";

/**
 * PyTorch spellings whose Kiln name is not just the camelCase form, by Kiln-side meaning.
 * Each entry maps a foreign key to the accepted key it most likely means.
 */
const knownAliases: Readonly<Record<string, readonly string[]>> = {
  unbiased: ["correction"],
  learning_rate: ["lr"],
  learningRate: ["lr"],
  beta1: ["betas"],
  beta2: ["betas"],
  keepdims: ["keepdim"],
  keepDims: ["keepdim"],
  axis: ["dim"],
  axes: ["dim"],
  device: ["target"],
  backend: ["target"],
};

/** PyTorch options with no Kiln counterpart, and what to do instead. */
const pytorchOnly: Readonly<Record<string, string>> = {
  foreach: "PyTorch's implementation switch: Kiln compiles every update into the step anyway",
  fused: "PyTorch's implementation switch: Kiln compiles every update into the step anyway",
  capturable: "PyTorch's implementation switch: Kiln compiles every update into the step anyway",
  differentiable: "not supported: optimizer steps are not differentiated through",
  maximize: "not supported: minimize the negated objective",
  size_average: "deprecated in PyTorch: use reduction",
  reduce: "deprecated in PyTorch: use reduction",
};

/** snake_case (PyTorch) to camelCase (Kiln): `weight_decay` -> `weightDecay`. */
export function camelCase(key: string): string {
  return key.replace(/_+([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/** Edits (insert, delete, substitute, swap two neighbours) turning a into b: `nmae` is 1 from `name`. */
function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, d[i - 2]![j - 2]! + 1);
      d[i]![j] = best;
    }
  return d[a.length]![b.length]!;
}

/**
 * The accepted key `key` most likely stands for: its camelCase form, a known PyTorch alias,
 * a case-insensitive match, or a close spelling (edit distance ≤ 2, and under half its length).
 */
export function suggestOption(key: string, accepted: readonly string[]): string | undefined {
  const camel = camelCase(key);
  if (camel !== key && accepted.includes(camel)) return camel;
  // hasOwn: a key such as `constructor` must not find Object.prototype's.
  for (const alias of Object.hasOwn(knownAliases, key) ? knownAliases[key]! : []) if (accepted.includes(alias)) return alias;
  const lower = camel.toLowerCase().replace(/[-_]/g, "");
  const caseless = accepted.find((a) => a.toLowerCase().replace(/[-_]/g, "") === lower);
  if (caseless) return caseless;
  let best: { key: string; distance: number } | undefined;
  for (const a of accepted) {
    const distance = editDistance(camel.toLowerCase(), a.toLowerCase());
    if (distance <= 2 && distance * 2 < Math.max(a.length, 2) && (!best || distance < best.distance)) best = { key: a, distance };
  }
  return best?.key;
}

/** The message for one unknown key: `where: unknown option 'k' (accepted: …) — did you mean 'x'?` */
export function unknownOptionMessage(where: string, key: string, accepted: readonly string[], what = "option"): string {
  const suggestion = suggestOption(key, accepted);
  const list = accepted.length > 0 ? `accepted: ${accepted.join(", ")}` : `it takes no ${what}s`;
  // The deprecated loss keywords only mean something where `reduction` is the answer.
  const note =
    Object.hasOwn(pytorchOnly, key) && (accepted.includes("reduction") || !pytorchOnly[key]!.endsWith("use reduction")) ? pytorchOnly[key] : undefined;
  const hint = suggestion ? ` — did you mean '${suggestion}'?` : note ? ` — ${note}` : "";
  return `${where}: unknown ${what} '${key}' (${list})${hint}`;
}

/**
 * Throws a KilnError (code "invalid-argument", at `loc`) unless `opts` is undefined or a plain
 * object whose own keys are all in `accepted`. Keys whose value is `undefined` count too: a
 * misspelt key is wrong whatever its value.
 */
export function checkOptions(where: string, opts: unknown, accepted: readonly string[], loc?: SourceLoc): void {
  if (opts === undefined) return;
  const fail = (message: string): never => {
    throw new KilnError({ code: "invalid-argument", message, ...(loc ? { loc } : {}) });
  };
  if (typeof opts !== "object" || opts === null || Array.isArray(opts))
    fail(`${where}: options must be an object { ${accepted.join(", ")} }, got ${opts === null ? "null" : Array.isArray(opts) ? "an array" : typeof opts}`);
  for (const key of Object.keys(opts as object)) if (!accepted.includes(key)) fail(unknownOptionMessage(where, key, accepted));
}
