// torch.einsum from movement ops, sum and matmul. Each operand first takes its diagonals (a
// letter repeated within it: permute the pair together, flatten, step by n+1) and sums away
// letters no one else needs; then operands are contracted left to right, each pair as one
// batched matmul [batch, M, K] @ [batch, K, N]; the result is permuted to the output's order.
// Letters are a–z and A–Z; "..." (ellipsis) is not supported.

import { formatShape } from "../../compiler/util/shape.ts";
import { promoteDTypes } from "../../compiler/ir/dtype.ts";
import { type Tensor, userError } from "../tensor.ts";
import * as E from "./elementwise.ts";
import * as L from "./linalg.ts";
import * as M from "./movement.ts";
import * as R from "./reduce.ts";

/** A tensor with one letter per dim. */
interface Labeled {
  readonly t: Tensor;
  readonly letters: string;
}

/** k.einsum("bij,bjk->bik", a, b); operands may also come as one array. */
export function einsum(equation: string, ...operands: (Tensor | readonly Tensor[])[]): Tensor {
  const tensors = operands.length === 1 && Array.isArray(operands[0]) ? [...(operands[0] as readonly Tensor[])] : (operands as Tensor[]);
  if (typeof equation !== "string") return userError("invalid-argument", 'einsum: the first argument must be the subscripts string, e.g. "ij,jk->ik"');
  if (tensors.length === 0) return userError("invalid-argument", "einsum: expects at least one operand");
  const eq = equation.replace(/\s+/g, "");
  if (eq.includes(".")) return userError("invalid-argument", `einsum: '...' (ellipsis) is not supported yet in "${equation}"; name every dim with a letter`);
  const arrow = eq.indexOf("->");
  const lhs = arrow < 0 ? eq : eq.slice(0, arrow);
  const inputs = lhs.split(",");
  const bad = (eq
    .replace("->", "")
    .replace(/,/g, "")
    .match(/[^a-zA-Z]/) ?? [])[0];
  if (bad !== undefined) return userError("invalid-argument", `einsum: unexpected character '${bad}' in "${equation}" (subscripts are letters a–z, A–Z)`);
  if (inputs.length !== tensors.length) return userError("invalid-argument", `einsum: "${equation}" names ${inputs.length} operand(s), got ${tensors.length}`);
  const sizes = new Map<string, number>();
  tensors.forEach((t, n) => {
    const letters = inputs[n]!;
    if (letters.length !== t.ndim)
      userError("shape-mismatch", `shape mismatch in einsum: operand ${n} has ${t.ndim} dims ${formatShape(t.shape)} but "${letters}" names ${letters.length}`);
    [...letters].forEach((c, i) => {
      const d = t.shape[i]!;
      const seen = sizes.get(c);
      if (seen !== undefined && seen !== d)
        userError(
          "shape-mismatch",
          `shape mismatch in einsum: '${c}' is ${seen} in one place and ${d} in another ("${equation}", operand ${n} ${formatShape(t.shape)})`,
        );
      sizes.set(c, d);
    });
  });
  const counts = new Map<string, number>();
  for (const c of lhs.replace(/,/g, "")) counts.set(c, (counts.get(c) ?? 0) + 1);
  // Implicit output: the letters seen once, in alphabetical order (PyTorch's rule).
  const output =
    arrow < 0
      ? [...counts.keys()]
          .filter((c) => counts.get(c) === 1)
          .sort()
          .join("")
      : eq.slice(arrow + 2);
  for (const c of output) {
    if (!sizes.has(c)) return userError("invalid-argument", `einsum: output letter '${c}' of "${equation}" appears in no operand`);
    if (output.indexOf(c) !== output.lastIndexOf(c)) return userError("invalid-argument", `einsum: output letter '${c}' of "${equation}" appears twice`);
  }
  const dtype = tensors.map((t) => t.dtype).reduce(promoteDTypes, "i32");
  let pending: Labeled[] = tensors.map((t, n) => diagonals({ t: E.cast(t, dtype), letters: inputs[n]! }));
  // Sum away letters that only one operand has and the output does not keep.
  const needed = (others: readonly Labeled[]): Set<string> => new Set([...output, ...others.flatMap((o) => [...o.letters])]);
  pending = pending.map((op, n) => sumAway(op, needed(pending.filter((_, m) => m !== n))));
  let acc = pending[0]!;
  for (let n = 1; n < pending.length; n++) acc = contract(acc, pending[n]!, needed(pending.slice(n + 1)));
  acc = sumAway(acc, new Set(output));
  return M.permute(
    acc.t,
    [...output].map((c) => acc.letters.indexOf(c)),
  );
}

/** Takes the diagonal for each letter repeated within one operand ("ii" -> "i"). */
function diagonals(op: Labeled): Labeled {
  let { t, letters } = op;
  for (let i = 0; i < letters.length; i++) {
    const j = letters.indexOf(letters[i]!, i + 1);
    if (j < 0) continue;
    // Bring dims i and j to the end, flatten them (n·n) and keep every (n+1)-th element.
    const n = t.shape[i]!;
    const rest = [...Array(letters.length).keys()].filter((d) => d !== i && d !== j);
    const moved = M.permute(t, [...rest, i, j]);
    const flat = M.reshape(moved, [...rest.map((d) => t.shape[d]!), n * n]);
    t = M.slice(flat, [...rest.map(() => null), [0, null, n + 1]]);
    letters = rest.map((d) => letters[d]!).join("") + letters[i]!;
    i = -1; // the letters moved: scan again
  }
  return { t, letters };
}

function sumAway(op: Labeled, keep: ReadonlySet<string>): Labeled {
  const drop = [...op.letters].flatMap((c, i) => (keep.has(c) ? [] : [i]));
  if (drop.length === 0) return op;
  return { t: R.sum(op.t, drop), letters: [...op.letters].filter((c) => keep.has(c)).join("") };
}

/** a·b as one batched matmul; letters in both and still needed stay as batch dims, the others in both are summed. */
function contract(a: Labeled, b: Labeled, later: ReadonlySet<string>): Labeled {
  const inB = new Set(b.letters);
  const batch = [...a.letters].filter((c) => inB.has(c) && later.has(c));
  const summed = [...a.letters].filter((c) => inB.has(c) && !later.has(c));
  const onlyA = [...a.letters].filter((c) => !inB.has(c));
  const onlyB = [...b.letters].filter((c) => !a.letters.includes(c));
  const size = (op: Labeled, c: string): number => op.t.shape[op.letters.indexOf(c)]!;
  const prod = (op: Labeled, cs: readonly string[]): number => cs.reduce((p, c) => p * size(op, c), 1);
  const arrange = (op: Labeled, order: readonly string[], shape: readonly number[]): Tensor =>
    M.reshape(
      M.permute(
        op.t,
        order.map((c) => op.letters.indexOf(c)),
      ),
      shape,
    );
  const lhs = arrange(a, [...batch, ...onlyA, ...summed], [prod(a, batch), prod(a, onlyA), prod(a, summed)]);
  const rhs = arrange(b, [...batch, ...summed, ...onlyB], [prod(b, batch), prod(b, summed), prod(b, onlyB)]);
  const out = L.matmul(lhs, rhs);
  const shape = [...batch.map((c) => size(a, c)), ...onlyA.map((c) => size(a, c)), ...onlyB.map((c) => size(b, c))];
  return { t: M.reshape(out, shape), letters: [...batch, ...onlyA, ...onlyB].join("") };
}
