// Parser of the kernel IR text form (docs/kernel-ir.md), the inverse of print.ts: chevrotain
// turns text into a token tree, then each program is rebuilt, decoding names, dtypes, loop
// variables and index expressions (normalized as index-expr.ts builds them, so the printed
// form of a program parses back to an equal program). Structural rules the grammar cannot
// see (numbering, forward references, unknown variables) are errors here too; the deeper
// invariants are verify.ts's. Every error is a KilnError "ir-parse" at file:line:col with a
// caret excerpt of the line.

import { EmbeddedActionsParser, type IToken } from "chevrotain";
import { failAt, failAtToken, irErrorMessages, parseTokens, type ParseContext } from "../ir/parser.ts";
import { numberValue, unquoteName } from "../ir/lexer.ts";
import { BINARY_OPS, UNARY_OPS } from "../ir/types.ts";
import { DTYPES, type DType } from "../ir/dtype.ts";
import type { SourceLoc } from "../util/errors.ts";
import { addIndex, constIndex, fromAtom, mulIndex, type Atom, type IndexCond, type IndexExpr, type IndexPred, type IndexVar } from "./index-expr.ts";
import {
  MATMUL_FORMS,
  MATMUL_PARAM_KEYS,
  type BufferDecl,
  type DotFact,
  type ExprId,
  type KExpr,
  type Kernel,
  type KernelProgram,
  type Section,
  type SectionForm,
  type Store,
  type TileHint,
} from "./kernel-ir.ts";
import * as T from "./lexer.ts";

// ---- token tree ----

interface VarDeclSyntax {
  readonly name: IToken;
  readonly extent: IToken;
}
type AtomSyntax =
  | { readonly kind: "var"; readonly name: IToken }
  | { readonly kind: "data"; readonly ref: IToken; readonly lo: IToken; readonly hi: IToken }
  | { readonly kind: "divmod"; readonly x: IndexSyntax; readonly op: IToken; readonly divisor: IToken };
interface TermSyntax {
  readonly coef?: IToken;
  readonly atom?: AtomSyntax;
}
type IndexSyntax = readonly TermSyntax[];
interface CondSyntax {
  readonly x: IndexSyntax;
  readonly op: IToken;
  readonly bound: IToken;
}
type PredSyntax = { readonly literal: IToken } | { readonly conds: readonly CondSyntax[] };
type BodySyntax =
  | { readonly kind: "number"; readonly value: IToken }
  | { readonly kind: "load"; readonly buffer: IToken; readonly index: IndexSyntax; readonly pred?: PredSyntax }
  | { readonly kind: "index"; readonly index: IndexSyntax }
  | { readonly kind: "pred"; readonly pred: PredSyntax }
  | {
      readonly kind: "rng";
      readonly seed: IToken;
      readonly streamKey: IToken;
      readonly stream: IToken;
      readonly counterKey: IToken;
      readonly counter: IndexSyntax;
    }
  /** `second`: softmax_sum's value operand after its score. */
  | { readonly kind: "reduce"; readonly vars: readonly VarDeclSyntax[]; readonly body: IToken; readonly second?: IToken }
  | { readonly kind: "operands"; readonly refs: readonly IToken[] };
interface ExprSyntax {
  readonly kind: "expr";
  readonly result: IToken;
  readonly op: IToken;
  readonly dtype: IToken;
  readonly body: BodySyntax;
}
interface DotSyntax {
  readonly kind: "dot";
  readonly reduce: IToken;
  readonly lhsKey: IToken;
  readonly lhs: IToken;
  readonly rhsKey: IToken;
  readonly rhs: IToken;
}
interface FormSyntax {
  readonly kind: "form";
  readonly keyword: IToken;
  readonly name: IToken;
  readonly variant?: IToken;
  /** `key=INT` parameters after the name and variant. */
  readonly params: readonly { readonly key: IToken; readonly value: IToken }[];
}
interface StoreSyntax {
  readonly kind: "store";
  readonly buffer: IToken;
  readonly index: IndexSyntax;
  readonly value: IToken;
}
interface LocSyntax {
  readonly file: IToken;
  readonly line: IToken;
  readonly col: IToken;
}
interface TileSyntax {
  readonly rowVar: IToken;
  readonly rows: IToken;
  readonly colVar: IToken;
  readonly cols: IToken;
}
interface SectionSyntax {
  readonly keyword: IToken;
  readonly index: IToken;
  readonly domain: readonly VarDeclSyntax[];
  readonly tile?: TileSyntax;
  readonly locs: readonly LocSyntax[];
  readonly scopes: readonly IToken[];
  readonly statements: readonly (ExprSyntax | StoreSyntax | DotSyntax | FormSyntax)[];
}
interface KernelSyntax {
  readonly name: IToken;
  readonly reads: readonly IToken[];
  readonly writes: readonly IToken[];
  readonly sections: readonly SectionSyntax[];
}
interface BufferSyntax {
  readonly ref: IToken;
  readonly kind: IToken;
  readonly dtype: IToken;
  /** `784`, or a symbolic dimension `batch` / `16*batch`. */
  readonly dims: readonly { readonly size?: IToken; readonly symbol?: IToken }[];
  /** `max(N)` on the size buffer of a symbolic dimension. */
  readonly max?: { readonly keyword: IToken; readonly n: IToken };
  readonly name: IToken;
}
interface IoSyntax {
  readonly output: boolean;
  readonly name: IToken;
  readonly ref: IToken;
  readonly aliases?: IToken;
}
interface ProgramSyntax {
  readonly name: IToken;
  readonly buffers: readonly BufferSyntax[];
  readonly ios: readonly IoSyntax[];
  readonly kernels: readonly KernelSyntax[];
}

const errorMessages = irErrorMessages("'program', 'kernel', 'section', a statement");

const REDUCE_OPS = new Set(["reduce_sum", "reduce_max", "softmax_sum", "softmax_max", "softmax_norm"]);

class KernelGrammar extends EmbeddedActionsParser {
  constructor() {
    super([...T.KERNEL_TOKENS], { errorMessageProvider: errorMessages, maxLookahead: 2 });
    this.performSelfAnalysis();
  }

  readonly module = this.RULE("module", (): ProgramSyntax[] => {
    const programs: ProgramSyntax[] = [];
    this.MANY(() => programs.push(this.SUBRULE(this.program)));
    return programs;
  });

  private readonly program = this.RULE("program", (): ProgramSyntax => {
    this.CONSUME(T.Program);
    const name = this.CONSUME(T.ProgramName);
    const buffers: BufferSyntax[] = [];
    this.MANY(() => buffers.push(this.SUBRULE(this.buffer)));
    const ios: IoSyntax[] = [];
    this.MANY1(() => ios.push(this.SUBRULE(this.io)));
    const kernels: KernelSyntax[] = [];
    this.MANY2(() => kernels.push(this.SUBRULE(this.kernel)));
    return { name, buffers, ios, kernels };
  });

  private readonly buffer = this.RULE("buffer", (): BufferSyntax => {
    this.CONSUME(T.Buffer);
    const ref = this.CONSUME(T.Identifier);
    const kind = this.OR([{ ALT: () => this.CONSUME(T.Input) }, { ALT: () => this.CONSUME(T.Output) }, { ALT: () => this.CONSUME(T.Temp) }]);
    const dtype = this.CONSUME1(T.Identifier);
    const dims: { size?: IToken; symbol?: IToken }[] = [];
    this.CONSUME(T.LBracket);
    this.MANY_SEP({
      SEP: T.Comma,
      DEF: () =>
        dims.push(
          this.OR1([
            { ALT: () => ({ symbol: this.CONSUME2(T.Identifier) }) },
            {
              ALT: () => {
                const size = this.CONSUME(T.NumberLiteral);
                const symbol = this.OPTION(() => {
                  this.CONSUME(T.Star);
                  return this.CONSUME3(T.Identifier);
                });
                return symbol ? { size, symbol } : { size };
              },
            },
          ]),
        ),
    });
    this.CONSUME(T.RBracket);
    const max = this.OPTION1(() => {
      const keyword = this.CONSUME4(T.Identifier);
      this.CONSUME(T.LParen);
      const n = this.CONSUME1(T.NumberLiteral);
      this.CONSUME(T.RParen);
      return { keyword, n };
    });
    const name = this.CONSUME(T.StringLiteral);
    return { ref, kind, dtype, dims, ...(max ? { max } : {}), name };
  });

  private readonly io = this.RULE("io", (): IoSyntax => {
    const output = this.OR([{ ALT: () => (this.CONSUME(T.Input), false) }, { ALT: () => (this.CONSUME(T.Output), true) }]);
    const name = this.CONSUME(T.StringLiteral);
    this.CONSUME(T.Equals);
    const ref = this.CONSUME(T.Identifier);
    const aliases = this.OPTION(() => {
      this.CONSUME(T.Aliases);
      return this.CONSUME1(T.StringLiteral);
    });
    return { output, name, ref, ...(aliases ? { aliases } : {}) };
  });

  private readonly kernel = this.RULE("kernel", (): KernelSyntax => {
    this.CONSUME(T.Kernel);
    const name = this.OR([{ ALT: () => this.CONSUME(T.Identifier) }, { ALT: () => this.CONSUME(T.StringLiteral) }]);
    this.CONSUME(T.Reads);
    const reads = this.SUBRULE(this.bufferRefs);
    this.CONSUME(T.Writes);
    const writes = this.SUBRULE1(this.bufferRefs);
    const sections: SectionSyntax[] = [];
    this.MANY(() => sections.push(this.SUBRULE(this.section)));
    return { name, reads, writes, sections };
  });

  private readonly bufferRefs = this.RULE("bufferRefs", (): IToken[] => {
    const refs: IToken[] = [];
    this.CONSUME(T.LParen);
    this.MANY_SEP({ SEP: T.Comma, DEF: () => refs.push(this.CONSUME(T.Identifier)) });
    this.CONSUME(T.RParen);
    return refs;
  });

  private readonly section = this.RULE("section", (): SectionSyntax => {
    const keyword = this.CONSUME(T.Section);
    const index = this.CONSUME(T.NumberLiteral);
    this.CONSUME(T.Domain);
    const domain = this.SUBRULE(this.varDecls);
    const tile = this.OPTION(() => this.SUBRULE(this.tile));
    const locs: LocSyntax[] = [];
    this.MANY(() => locs.push(this.SUBRULE(this.loc)));
    const scopes: IToken[] = [];
    this.MANY1(() => {
      this.CONSUME(T.Scope);
      this.CONSUME(T.LParen);
      scopes.push(this.CONSUME(T.StringLiteral));
      this.CONSUME(T.RParen);
    });
    const statements: (ExprSyntax | StoreSyntax | DotSyntax | FormSyntax)[] = [];
    this.MANY2(() =>
      statements.push(
        this.OR([
          { ALT: () => this.SUBRULE(this.expr) },
          { ALT: () => this.SUBRULE(this.store) },
          { ALT: () => this.SUBRULE(this.dot) },
          { ALT: () => this.SUBRULE(this.form) },
        ]),
      ),
    );
    return { keyword, index, domain, ...(tile ? { tile } : {}), locs, scopes, statements };
  });

  private readonly varDecls = this.RULE("varDecls", (): VarDeclSyntax[] => {
    const vars: VarDeclSyntax[] = [];
    this.CONSUME(T.LBracket);
    this.MANY_SEP({
      SEP: T.Comma,
      DEF: () => {
        const name = this.CONSUME(T.Identifier);
        this.CONSUME(T.Less);
        vars.push({ name, extent: this.CONSUME(T.NumberLiteral) });
      },
    });
    this.CONSUME(T.RBracket);
    return vars;
  });

  private readonly tile = this.RULE("tile", (): TileSyntax => {
    this.CONSUME(T.Tile);
    this.CONSUME(T.LParen);
    const rowVar = this.CONSUME(T.Identifier);
    this.CONSUME(T.Colon);
    const rows = this.CONSUME(T.NumberLiteral);
    this.CONSUME(T.Comma);
    const colVar = this.CONSUME1(T.Identifier);
    this.CONSUME1(T.Colon);
    const cols = this.CONSUME1(T.NumberLiteral);
    this.CONSUME(T.RParen);
    return { rowVar, rows, colVar, cols };
  });

  private readonly loc = this.RULE("loc", (): LocSyntax => {
    this.CONSUME(T.Loc);
    this.CONSUME(T.LParen);
    const file = this.CONSUME(T.StringLiteral);
    this.CONSUME(T.Colon);
    const line = this.CONSUME(T.NumberLiteral);
    this.CONSUME1(T.Colon);
    const col = this.CONSUME1(T.NumberLiteral);
    this.CONSUME(T.RParen);
    return { file, line, col };
  });

  private readonly expr = this.RULE("expr", (): ExprSyntax => {
    const result = this.CONSUME(T.ValueRef);
    this.CONSUME(T.Equals);
    const op = this.OR([{ ALT: () => this.CONSUME(T.Identifier) }, { ALT: () => this.CONSUME(T.Mod) }]);
    const dtype = this.CONSUME1(T.Identifier);
    const is =
      (...names: string[]) =>
      () =>
        names.includes(op.image);
    const body = this.OR1({
      IGNORE_AMBIGUITIES: true,
      DEF: [
        { GATE: is("const"), ALT: () => ({ kind: "number" as const, value: this.CONSUME(T.NumberLiteral) }) },
        {
          GATE: is("load"),
          ALT: () => {
            const buffer = this.CONSUME2(T.Identifier);
            this.CONSUME(T.LBracket);
            const index = this.SUBRULE(this.index);
            this.CONSUME(T.RBracket);
            const pred = this.OPTION(() => {
              this.CONSUME(T.If);
              return this.SUBRULE(this.pred);
            });
            return { kind: "load" as const, buffer, index, ...(pred ? { pred } : {}) };
          },
        },
        { GATE: is("index"), ALT: () => ({ kind: "index" as const, index: this.SUBRULE1(this.index) }) },
        { GATE: is("valid"), ALT: () => ({ kind: "pred" as const, pred: this.SUBRULE1(this.pred) }) },
        {
          GATE: is("rng"),
          ALT: () => {
            const seed = this.CONSUME3(T.ValueRef);
            const streamKey = this.CONSUME3(T.Identifier);
            this.CONSUME1(T.Equals);
            const stream = this.CONSUME1(T.NumberLiteral);
            const counterKey = this.CONSUME4(T.Identifier);
            this.CONSUME2(T.Equals);
            return { kind: "rng" as const, seed, streamKey, stream, counterKey, counter: this.SUBRULE2(this.index) };
          },
        },
        {
          GATE: () => REDUCE_OPS.has(op.image),
          ALT: () => {
            const vars = this.SUBRULE(this.varDecls);
            const body = this.CONSUME1(T.ValueRef);
            const second = this.OPTION1(() => {
              this.CONSUME(T.Comma);
              return this.CONSUME4(T.ValueRef);
            });
            return { kind: "reduce" as const, vars, body, ...(second ? { second } : {}) };
          },
        },
        {
          ALT: () => {
            const refs: IToken[] = [];
            this.AT_LEAST_ONE_SEP({ SEP: T.Comma, DEF: () => refs.push(this.CONSUME2(T.ValueRef)) });
            return { kind: "operands" as const, refs };
          },
        },
      ],
    });
    return { kind: "expr", result, op, dtype, body };
  });

  private readonly store = this.RULE("store", (): StoreSyntax => {
    this.CONSUME(T.Store);
    const buffer = this.CONSUME(T.Identifier);
    this.CONSUME(T.LBracket);
    const index = this.SUBRULE(this.index);
    this.CONSUME(T.RBracket);
    this.CONSUME(T.Equals);
    return { kind: "store", buffer, index, value: this.CONSUME(T.ValueRef) };
  });

  private readonly dot = this.RULE("dot", (): DotSyntax => {
    this.CONSUME(T.Dot);
    const reduce = this.CONSUME(T.ValueRef);
    const lhsKey = this.CONSUME(T.Identifier);
    this.CONSUME(T.Equals);
    const lhs = this.CONSUME1(T.ValueRef);
    const rhsKey = this.CONSUME1(T.Identifier);
    this.CONSUME1(T.Equals);
    const rhs = this.CONSUME2(T.ValueRef);
    return { kind: "dot", reduce, lhsKey, lhs, rhsKey, rhs };
  });

  private readonly form = this.RULE("form", (): FormSyntax => {
    const keyword = this.CONSUME(T.Form);
    const name = this.CONSUME(T.Identifier);
    // A variant is an identifier not followed by '=' (that is a parameter's key).
    const variant = this.OPTION({ GATE: () => this.LA(2).tokenType !== T.Equals, DEF: () => this.CONSUME1(T.Identifier) });
    const params: { key: IToken; value: IToken }[] = [];
    this.MANY(() => {
      const key = this.CONSUME2(T.Identifier);
      this.CONSUME(T.Equals);
      params.push({ key, value: this.CONSUME(T.NumberLiteral) });
    });
    return { kind: "form", keyword, name, ...(variant ? { variant } : {}), params };
  });

  private readonly index = this.RULE("index", (): TermSyntax[] => {
    const terms: TermSyntax[] = [];
    this.AT_LEAST_ONE_SEP({ SEP: T.Plus, DEF: () => terms.push(this.SUBRULE(this.term)) });
    return terms;
  });

  private readonly term = this.RULE(
    "term",
    (): TermSyntax =>
      this.OR([
        {
          ALT: () => {
            const coef = this.CONSUME(T.NumberLiteral);
            const atom = this.OPTION(() => {
              this.CONSUME(T.Star);
              return this.SUBRULE(this.atom);
            });
            return { coef, ...(atom ? { atom } : {}) };
          },
        },
        { ALT: () => ({ atom: this.SUBRULE1(this.atom) }) },
      ]),
  );

  private readonly atom = this.RULE(
    "atom",
    (): AtomSyntax =>
      this.OR([
        { ALT: () => ({ kind: "var" as const, name: this.CONSUME(T.Identifier) }) },
        {
          ALT: () => {
            this.CONSUME(T.Data);
            this.CONSUME(T.LParen);
            const ref = this.CONSUME(T.ValueRef);
            this.CONSUME(T.Comma);
            const lo = this.CONSUME(T.NumberLiteral);
            this.CONSUME1(T.Comma);
            const hi = this.CONSUME1(T.NumberLiteral);
            this.CONSUME(T.RParen);
            return { kind: "data" as const, ref, lo, hi };
          },
        },
        {
          ALT: () => {
            this.CONSUME1(T.LParen);
            const x = this.SUBRULE(this.index);
            const op = this.OR1([{ ALT: () => this.CONSUME(T.Div) }, { ALT: () => this.CONSUME(T.Mod) }]);
            const divisor = this.CONSUME2(T.NumberLiteral);
            this.CONSUME1(T.RParen);
            return { kind: "divmod" as const, x, op, divisor };
          },
        },
      ]),
  );

  private readonly pred = this.RULE(
    "pred",
    (): PredSyntax =>
      this.OR([
        { ALT: () => ({ literal: this.CONSUME(T.True) }) },
        { ALT: () => ({ literal: this.CONSUME(T.False) }) },
        {
          ALT: () => {
            const conds: CondSyntax[] = [];
            this.AT_LEAST_ONE_SEP({
              SEP: T.AndAnd,
              DEF: () => {
                const x = this.SUBRULE(this.index);
                const op = this.OR1([{ ALT: () => this.CONSUME(T.Less) }, { ALT: () => this.CONSUME(T.GreaterEq) }]);
                conds.push({ x, op, bound: this.CONSUME(T.NumberLiteral) });
              },
            });
            return { conds };
          },
        },
      ]),
  );
}

let grammar: KernelGrammar | undefined;

// ---- decoding ----

type Context = ParseContext;

function syntaxTree(ctx: Context): ProgramSyntax[] {
  const parser = (grammar ??= new KernelGrammar());
  return parseTokens(ctx, T.kernelLexer(), parser, () => parser.module());
}

function decodeString(ctx: Context, t: IToken): string {
  try {
    return unquoteName(t.image);
  } catch {
    return failAtToken(ctx, t, `invalid escape in ${t.image}`);
  }
}

function decodeInteger(ctx: Context, t: IToken, what: string, min = -Infinity): number {
  const n = numberValue(t.image);
  if (!Number.isSafeInteger(n)) failAtToken(ctx, t, `${what} must be an integer, got ${t.image}`);
  if (n < min) failAtToken(ctx, t, `${what} must be at least ${min}, got ${t.image}`);
  return n;
}

function decodeDtype(ctx: Context, t: IToken): DType {
  const dtype = t.image as DType;
  return DTYPES.includes(dtype) ? dtype : failAtToken(ctx, t, `unknown dtype '${t.image}' (expected ${DTYPES.join(", ")})`);
}

function decodeBufferRef(ctx: Context, t: IToken, count: number): number {
  const m = /^b(\d+)$/.exec(t.image);
  if (!m) return failAtToken(ctx, t, `expected a buffer like b0, got '${t.image}'`);
  const id = Number(m[1]);
  return id < count ? id : failAtToken(ctx, t, `buffer ${t.image} is not declared`);
}

function decodeLoc(ctx: Context, s: LocSyntax): SourceLoc {
  return { file: decodeString(ctx, s.file), line: decodeInteger(ctx, s.line, "a line"), col: decodeInteger(ctx, s.col, "a column") };
}

const OPERAND_COUNT: Readonly<Record<string, number>> = Object.fromEntries([
  ...UNARY_OPS.map((op) => [op, 1] as const),
  ["cast", 1],
  ...BINARY_OPS.map((op) => [op, 2] as const),
  ["where", 3],
]);
const BODY_OF_OP: Readonly<Record<string, BodySyntax["kind"]>> = {
  const: "number",
  load: "load",
  index: "index",
  valid: "pred",
  rng: "rng",
  reduce_sum: "reduce",
  reduce_max: "reduce",
  softmax_sum: "reduce",
  softmax_max: "reduce",
  softmax_norm: "reduce",
};

/** One section being decoded: its loop variables and how many expressions precede. */
interface SectionScope {
  readonly vars: ReadonlyMap<string, IndexVar>;
  defined: number;
}

function decodeRef(ctx: Context, scope: SectionScope, t: IToken): ExprId {
  const id = Number(t.image.slice(1));
  return id < scope.defined ? id : failAtToken(ctx, t, `${t.image} is not defined before this use (expressions are numbered in order)`);
}

function decodeAtom(ctx: Context, scope: SectionScope, a: AtomSyntax): Atom {
  switch (a.kind) {
    case "var":
      return (
        scope.vars.get(a.name.image) ?? failAtToken(ctx, a.name, `undefined loop variable '${a.name.image}' (not in the domain or a reduction of this section)`)
      );
    case "data": {
      const lo = decodeInteger(ctx, a.lo, "a data range bound");
      const hi = decodeInteger(ctx, a.hi, "a data range bound");
      if (hi < lo) failAtToken(ctx, a.hi, `empty data range [${lo}, ${hi}]`);
      return { kind: "data", ref: decodeRef(ctx, scope, a.ref), lo, hi };
    }
    case "divmod":
      return { kind: a.op.tokenType === T.Div ? "div" : "mod", x: decodeIndex(ctx, scope, a.x), divisor: decodeInteger(ctx, a.divisor, "a divisor", 1) };
  }
}

function decodeIndex(ctx: Context, scope: SectionScope, terms: IndexSyntax): IndexExpr {
  const parts = terms.map((t) => {
    const coef = t.coef ? decodeInteger(ctx, t.coef, "an index coefficient") : 1;
    return t.atom ? mulIndex(fromAtom(decodeAtom(ctx, scope, t.atom)), coef) : constIndex(coef);
  });
  return addIndex(...parts);
}

function decodePred(ctx: Context, scope: SectionScope, p: PredSyntax): IndexPred {
  if ("literal" in p) return p.literal.tokenType === T.True ? [] : false;
  return p.conds.map(
    (c): IndexCond => ({ x: decodeIndex(ctx, scope, c.x), op: c.op.tokenType === T.Less ? "lt" : "ge", bound: decodeInteger(ctx, c.bound, "a bound") }),
  );
}

function decodeVar(ctx: Context, d: VarDeclSyntax, minExtent: number): IndexVar {
  return { kind: "var", name: d.name.image, extent: decodeInteger(ctx, d.extent, `the extent of '${d.name.image}'`, minExtent) };
}

function decodeExpr(ctx: Context, scope: SectionScope, s: ExprSyntax, buffers: readonly BufferDecl[]): KExpr {
  const op = s.op.image;
  const dtype = decodeDtype(ctx, s.dtype);
  const body = s.body;
  const expected = BODY_OF_OP[op] ?? (OPERAND_COUNT[op] !== undefined ? "operands" : failAtToken(ctx, s.op, `unknown expression op '${op}'`));
  if (body.kind !== expected) return failAtToken(ctx, s.op, `malformed '${op}' expression`);
  const ref = (t: IToken): ExprId => decodeRef(ctx, scope, t);
  switch (body.kind) {
    case "number":
      return { op: "const", dtype, value: numberValue(body.value.image) };
    case "load":
      return {
        op: "load",
        dtype,
        buffer: decodeBufferRef(ctx, body.buffer, buffers.length),
        index: decodeIndex(ctx, scope, body.index),
        valid: body.pred ? decodePred(ctx, scope, body.pred) : [],
      };
    case "index":
      return { op: "index", dtype, index: decodeIndex(ctx, scope, body.index) };
    case "pred":
      return { op: "valid", dtype, pred: decodePred(ctx, scope, body.pred) };
    case "rng":
      if (body.streamKey.image !== "stream") failAtToken(ctx, body.streamKey, `expected 'stream=' but found '${body.streamKey.image}'`);
      if (body.counterKey.image !== "counter") failAtToken(ctx, body.counterKey, `expected 'counter=' but found '${body.counterKey.image}'`);
      return { op: "rng", dtype, seed: ref(body.seed), stream: decodeInteger(ctx, body.stream, "a stream"), counter: decodeIndex(ctx, scope, body.counter) };
    case "reduce": {
      const vars = body.vars.map((v) => scope.vars.get(v.name.image)!);
      if (op === "softmax_sum") {
        if (!body.second) return failAtToken(ctx, s.op, `softmax_sum takes a score and a value: '[vars] %score, %value'`);
        return { op, dtype, vars, score: ref(body.body), value: ref(body.second) };
      }
      if (body.second) failAtToken(ctx, body.second, `${op} takes one operand after its loop variables`);
      if (op === "softmax_max" || op === "softmax_norm") return { op, dtype, vars, score: ref(body.body) };
      return { op: op as "reduce_sum" | "reduce_max", dtype, vars, body: ref(body.body) };
    }
    case "operands": {
      const count = OPERAND_COUNT[op]!;
      if (body.refs.length !== count)
        failAtToken(ctx, body.refs[count] ?? s.op, `${op} takes ${count} operand${count === 1 ? "" : "s"}, got ${body.refs.length}`);
      const [a, b, c] = body.refs.map(ref);
      if (op === "where") return { op: "where", dtype, cond: a!, x: b!, y: c! };
      if (count === 1) return { op: op as "cast", dtype, x: a! };
      return { op: op as "add", dtype, x: a!, y: b! };
    }
  }
}

function decodeSection(ctx: Context, s: SectionSyntax, position: number, buffers: readonly BufferDecl[]): Section {
  if (decodeInteger(ctx, s.index, "a section number") !== position)
    failAtToken(ctx, s.index, `expected section ${position} (sections are numbered in order), found ${s.index.image}`);
  const vars = new Map<string, IndexVar>();
  const domain = s.domain.map((d) => {
    if (vars.has(d.name.image)) failAtToken(ctx, d.name, `domain variable '${d.name.image}' is declared twice`);
    const v = decodeVar(ctx, d, 0);
    vars.set(v.name, v);
    return v;
  });
  // Reduction variables are declared by the reduction, after the body that uses them.
  for (const st of s.statements) {
    if (st.kind !== "expr" || st.body.kind !== "reduce") continue;
    for (const d of st.body.vars) {
      const v = decodeVar(ctx, d, 1);
      const prev = vars.get(v.name);
      if (prev && (prev.extent !== v.extent || domain.includes(prev)))
        failAtToken(ctx, d.name, `loop variable '${v.name}' is already declared${prev.extent !== v.extent ? ` with extent ${prev.extent}` : " by the domain"}`);
      if (!prev) vars.set(v.name, v);
    }
  }
  const scope: SectionScope = { vars, defined: 0 };
  const exprs: KExpr[] = [];
  const stores: Store[] = [];
  const dots: DotFact[] = [];
  let form: SectionForm | undefined;
  for (const st of s.statements) {
    if (st.kind === "form") {
      if (form) failAtToken(ctx, st.keyword, `a section has at most one 'form'`);
      form = decodeForm(ctx, st);
      continue;
    }
    if (st.kind === "dot") {
      for (const [key, want] of [
        [st.lhsKey, "lhs"],
        [st.rhsKey, "rhs"],
      ] as const)
        if (key.image !== want) failAtToken(ctx, key, `expected '${want}=' but found '${key.image}'`);
      dots.push({ reduce: decodeRef(ctx, scope, st.reduce), lhs: decodeRef(ctx, scope, st.lhs), rhs: decodeRef(ctx, scope, st.rhs) });
      continue;
    }
    if (st.kind === "store") {
      stores.push({
        buffer: decodeBufferRef(ctx, st.buffer, buffers.length),
        index: decodeIndex(ctx, scope, st.index),
        value: decodeRef(ctx, scope, st.value),
      });
      continue;
    }
    if (st.result.image !== `%${exprs.length}`)
      failAtToken(ctx, st.result, `expected %${exprs.length} (expressions are numbered in order), found ${st.result.image}`);
    exprs.push(decodeExpr(ctx, scope, st, buffers));
    scope.defined = exprs.length;
  }
  let tile: TileHint | undefined;
  if (s.tile) {
    for (const t of [s.tile.rowVar, s.tile.colVar])
      if (!domain.some((v) => v.name === t.image)) failAtToken(ctx, t, `tile names '${t.image}', which is not a domain variable`);
    tile = {
      rowVar: s.tile.rowVar.image,
      colVar: s.tile.colVar.image,
      rows: decodeInteger(ctx, s.tile.rows, "a tile size", 1),
      cols: decodeInteger(ctx, s.tile.cols, "a tile size", 1),
    };
  }
  const locs = s.locs.map((l) => decodeLoc(ctx, l));
  const scopes = s.scopes.map((t) => decodeString(ctx, t));
  return {
    domain,
    exprs,
    stores,
    ...(tile ? { tile } : {}),
    ...(dots.length ? { dots } : {}),
    ...(form ? { form } : {}),
    ...(locs.length ? { locs } : {}),
    ...(scopes.length ? { scopes } : {}),
  };
}

/** `form row` (optional `threads=`), `form matmul registers|workgroup` with optional `rows= cols= threads= unroll=` (all or none), `form vector width=N`, `form attention` or `form prologue of=N`. */
function decodeForm(ctx: Context, f: FormSyntax): SectionForm {
  if (f.name.image === "prologue") {
    // Checked here, not by the loop below: a section number may be 0.
    if (f.variant) failAtToken(ctx, f.variant, `'form prologue' takes 'of=N', found '${f.variant.image}'`);
    const of = f.params.find((p) => p.key.image === "of") ?? failAtToken(ctx, f.name, `'form prologue' needs 'of=N'`);
    const other = f.params.find((p) => p !== of);
    if (other) failAtToken(ctx, other.key, `'form prologue' takes 'of=' only, found '${other.key.image}='`);
    return { kind: "prologue", of: decodeInteger(ctx, of.value, "'of'", 0) };
  }
  const params = new Map<string, number>();
  for (const p of f.params) {
    if (params.has(p.key.image)) failAtToken(ctx, p.key, `'${p.key.image}' is given twice`);
    params.set(p.key.image, decodeInteger(ctx, p.value, `'${p.key.image}'`, 1));
  }
  const allow = (keys: readonly string[]): void => {
    for (const p of f.params)
      if (!keys.includes(p.key.image))
        failAtToken(
          ctx,
          p.key,
          `'form ${f.name.image}' takes ${keys.length ? keys.map((k) => `'${k}='`).join(", ") : "no parameters"}, found '${p.key.image}='`,
        );
  };
  if (f.name.image === "row") {
    if (f.variant) failAtToken(ctx, f.variant, `'form row' takes nothing after it, found '${f.variant.image}'`);
    allow(["threads"]);
    const threads = params.get("threads");
    return threads === undefined ? { kind: "row" } : { kind: "row", threads };
  }
  if (f.name.image === "matmul") {
    const v = f.variant;
    const variant = MATMUL_FORMS.find((m) => m === v?.image);
    if (!v || !variant)
      return failAtToken(ctx, v ?? f.name, `'form matmul' needs ${MATMUL_FORMS.map((m) => `'${m}'`).join(", ")}${v ? `, found '${v.image}'` : ""}`);
    allow(MATMUL_PARAM_KEYS);
    if (params.size === 0) return { kind: "matmul", form: variant };
    const missing = MATMUL_PARAM_KEYS.filter((key) => !params.has(key));
    if (missing.length) failAtToken(ctx, f.params[0]!.key, `'form matmul' parameters come all together: missing ${missing.map((k) => `'${k}='`).join(", ")}`);
    const [rows, cols, threads, unroll] = MATMUL_PARAM_KEYS.map((key) => params.get(key)!) as [number, number, number, number];
    return { kind: "matmul", form: variant, params: { rows, cols, threads, unroll } };
  }
  if (f.name.image === "vector") {
    if (f.variant) failAtToken(ctx, f.variant, `'form vector' takes 'width=N', found '${f.variant.image}'`);
    allow(["width"]);
    const width = params.get("width") ?? failAtToken(ctx, f.name, `'form vector' needs 'width=N'`);
    return { kind: "vector", width };
  }
  if (f.name.image === "attention") {
    if (f.variant) failAtToken(ctx, f.variant, `'form attention' takes nothing after it, found '${f.variant.image}'`);
    allow([]);
    return { kind: "attention" };
  }
  return failAtToken(ctx, f.name, `unknown section form '${f.name.image}' (known: row, matmul, vector, attention, prologue)`);
}

function decodeKernel(ctx: Context, k: KernelSyntax, buffers: readonly BufferDecl[]): Kernel {
  const refs = (ts: readonly IToken[]): number[] => ts.map((t) => decodeBufferRef(ctx, t, buffers.length));
  return {
    name: k.name.tokenType === T.StringLiteral ? decodeString(ctx, k.name) : k.name.image,
    sections: k.sections.map((s, i) => decodeSection(ctx, s, i, buffers)),
    reads: refs(k.reads),
    writes: refs(k.writes),
  };
}

function decodeProgram(ctx: Context, p: ProgramSyntax): KernelProgram {
  // A symbolic dimension is declared by its size buffer (`i32[] max(N) "batch"`), which may come after the buffers that name it.
  const sizeBuffers = p.buffers.filter((b) => b.max !== undefined);
  for (const b of sizeBuffers) if (b.max!.keyword.image !== "max") failAtToken(ctx, b.max!.keyword, `expected 'max(N)' after a buffer's type`);
  if (sizeBuffers.length > 1) failAtToken(ctx, sizeBuffers[1]!.ref, "one symbolic dimension per program");
  const symbol = sizeBuffers[0] ? { name: decodeString(ctx, sizeBuffers[0].name), max: decodeInteger(ctx, sizeBuffers[0].max!.n, "a max", 1) } : undefined;
  const buffers: BufferDecl[] = p.buffers.map((b, i) => {
    if (b.ref.image !== `b${i}`) failAtToken(ctx, b.ref, `expected b${i} (buffers are numbered in order), found '${b.ref.image}'`);
    let symbolic: { axis: number; scale: number } | undefined;
    const shape = b.dims.map((d, axis) => {
      const scale = d.size ? decodeInteger(ctx, d.size, "a dimension", 0) : 1;
      if (!d.symbol) return scale;
      if (!symbol || d.symbol.image !== symbol.name)
        failAtToken(ctx, d.symbol, `unknown symbolic dimension '${d.symbol.image}' (declare a buffer i32[] max(N) "${d.symbol.image}")`);
      if (symbolic) failAtToken(ctx, d.symbol, "at most one symbolic axis per buffer");
      symbolic = { axis, scale };
      return scale * symbol!.max;
    });
    return {
      id: i,
      name: decodeString(ctx, b.name),
      dtype: decodeDtype(ctx, b.dtype),
      shape,
      kind: b.kind.image as BufferDecl["kind"],
      ...(symbolic ? { symbolic } : {}),
      ...(b.max ? { dimMax: symbol!.max } : {}),
    };
  });
  const inputs: { name: string; buffer: number }[] = [];
  const outputs: { name: string; buffer: number; aliases?: string }[] = [];
  for (const io of p.ios) {
    const entry = { name: decodeString(ctx, io.name), buffer: decodeBufferRef(ctx, io.ref, buffers.length) };
    if (!io.output) {
      if (io.aliases) failAtToken(ctx, io.aliases, `only an output can alias an input`);
      inputs.push(entry);
    } else outputs.push({ ...entry, ...(io.aliases ? { aliases: decodeString(ctx, io.aliases) } : {}) });
  }
  const kernels = p.kernels.map((k) => decodeKernel(ctx, k, buffers));
  return { name: decodeString(ctx, p.name), buffers, kernels, inputs, outputs };
}

/** Parses every program in `text` (a dump may hold several exported programs). */
export function parseKernelModule(text: string, file = "<input>"): KernelProgram[] {
  const ctx: Context = { text, file };
  return syntaxTree(ctx).map((p) => decodeProgram(ctx, p));
}

/** Parses text holding exactly one kernel program. */
export function parseKernelProgram(text: string, file = "<input>"): KernelProgram {
  const programs = parseKernelModule(text, file);
  if (programs.length !== 1) failAt(text, file, 1, 1, `expected exactly one kernel program, found ${programs.length}`);
  return programs[0]!;
}

/** True when the text's first non-comment word is `program`: a kernel IR file, not a graph. */
export function isKernelIrText(text: string): boolean {
  return /^program\b/.test(text.replace(/^(?:\s+|\/\/[^\n]*)*/, ""));
}
