// nn.Module: named parameters, buffers and submodules with PyTorch's dotted state-dict
// names ("0.weight", "fc1.bias"). Parameter values live on the host; inside a trace each
// parameter becomes a state input of the graph (the executable owns and updates it), unless
// the trace binds it to another tensor (functionalCall, trainStep's gradient trace).

import type { TensorType } from "../compiler/ir/types.ts";
import { hostArrayFrom, type DType } from "../compiler/ir/dtype.ts";
import { allocHostData } from "../compiler/ir/host-tensor.ts";
import { KilnError } from "../compiler/util/errors.ts";
import type { HostTensor } from "../compiler/ir/host-tensor.ts";
import { formatShape, numel } from "../compiler/util/shape.ts";
import { strictOptions } from "./options.ts";
import type { Tensor } from "./tensor.ts";
import { convertStateValue, stateEntries, type StateSource } from "./state-source.ts";
import { currentTrace, requireTrace } from "./trace.ts";

/** What Parameter.zeros passes as its data: no values to copy (compared by identity, never read). */
const LAZY_ZEROS: ArrayLike<number> = Object.freeze({ length: 0 });

/** A named host-side array that becomes a graph state input when a trace reads it. */
export class Parameter {
  /** Dotted name from the root module, updated as parents register the owner. */
  path: string;
  /** The module that registered it first; a tied parameter (`head.weight = emb.weight`) keeps its owner's name. */
  owner: object | undefined;
  private values: Float64Array | Int32Array | Uint8Array;
  /** An init's draw not made yet (k.nn.init), or Parameter.zeros's zeros: made when the values are first read, dropped when they are replaced. */
  private pendingDraw: (() => Float64Array | Int32Array | Uint8Array) | undefined;
  constructor(
    name: string,
    readonly shape: readonly number[],
    data: ArrayLike<number>,
    readonly dtype: DType = "f32",
    readonly requiresGrad = true,
  ) {
    this.path = name;
    if (data === LAZY_ZEROS) {
      this.values = allocHostData(dtype, 0);
      this.pendingDraw = () => allocHostData(dtype, numel(shape));
      return;
    }
    if (data.length !== numel(shape))
      throw new KilnError({ code: "invalid-argument", message: `parameter '${name}': ${data.length} values for shape ${formatShape(shape)}` });
    this.values = hostArrayFrom(dtype, data);
  }

  /**
   * A parameter of zeros allocated when its values are first read: a layer's init (drawn when
   * read, k.nn.init) or a loadState replaces them first, so a model built and loaded allocates
   * and copies nothing for them (an MLP 784-512-512-10: 1.6 MB of f32 zeros copied into 3.2 MB
   * of f64, ~3 ms of its cold start).
   */
  static zeros(name: string, shape: readonly number[], dtype: DType = "f32", requiresGrad = true): Parameter {
    return new Parameter(name, shape, LAZY_ZEROS, dtype, requiresGrad);
  }

  get data(): Float64Array | Int32Array | Uint8Array {
    if (this.pendingDraw) {
      this.values = this.pendingDraw();
      this.pendingDraw = undefined;
    }
    return this.values;
  }

  set data(values: Float64Array | Int32Array | Uint8Array) {
    this.values = values;
    this.pendingDraw = undefined;
  }

  /**
   * Sets the values to what `draw` returns (a fresh array of the parameter's size), called when
   * they are first read: an init whose values are replaced before use (loadState) never draws.
   */
  drawLater(draw: () => Float64Array): void {
    this.pendingDraw = draw;
  }

  get type(): TensorType {
    return { dtype: this.dtype, shape: this.shape };
  }

  /** The tensor standing for this parameter in the current trace. */
  tensor(): Tensor {
    const trace = requireTrace(`parameter '${this.path}'`);
    const bound = trace.bindings.get(this);
    if (bound) return bound;
    // Two parameters under one name would silently share a graph input.
    if (trace.state.has(this.path))
      throw new KilnError({
        code: "invalid-argument",
        message: `two parameters share the state name '${this.path}': register submodules on their parent (or call the root module) so names are dotted paths`,
      });
    const t = trace.stateInput(this.path, this.type, () => this.hostTensor());
    trace.bindings.set(this, t);
    return t;
  }

  /**
   * A copy of the values as they are now. Values not drawn yet are drawn for it when its data
   * is first read (a draw gives the same values whenever it runs, and this one is its own, so
   * later writes into `data` do not reach it): an executable whose state is loaded before its
   * first run (exe.loadState) never draws the init it replaced.
   */
  hostTensor(): HostTensor {
    const { dtype, shape, pendingDraw } = this;
    if (!pendingDraw) return { dtype, shape, data: hostArrayFrom(dtype, this.values) };
    let data: HostTensor["data"] | undefined;
    return {
      dtype,
      shape,
      get data() {
        return (data ??= hostArrayFrom(dtype, pendingDraw()));
      },
    };
  }
}

export abstract class Module {
  private readonly params = new Map<string, Parameter>();
  private readonly buffers = new Map<string, Parameter>();
  private readonly children = new Map<string, Module>();
  training = true;

  abstract forward(...args: Tensor[]): Tensor;

  /** Runs the module inside a trace (PyTorch's `module(x)`). */
  call(...args: Tensor[]): Tensor {
    return this.inScope(() => this.forward(...args));
  }

  /** Runs `body` as a call of this module (the ops it traces carry the module's path), for methods besides forward. */
  protected inScope<T>(body: () => T): T {
    this.discover();
    const trace = currentTrace();
    if (!trace) return body();
    // The ops traced inside carry this module's path (`blocks.0.attn`) as their scope.
    const childName = (parent: object): string | undefined => (parent instanceof Module ? [...parent.children].find(([, m]) => m === this)?.[0] : undefined);
    return trace.inModule(this, childName, body);
  }

  /**
   * Registers modules and parameters assigned to fields (`fc1 = k.nn.linear(4, 8)`, or an
   * array of modules as `layers.0`, `layers.1`), as PyTorch's __setattr__ does. Explicitly
   * registered ones keep their names; runs before anything lists or calls the module.
   */
  private discover(): void {
    const knownModules = new Set(this.children.values());
    const knownParams = new Set([...this.params.values(), ...this.buffers.values()]);
    for (const [key, value] of Object.entries(this)) {
      if (value instanceof Module && !knownModules.has(value)) this.registerModule(key, value);
      else if (value instanceof Parameter && !knownParams.has(value)) this.tieOrRegister(key, value);
      else if (Array.isArray(value) && value.length > 0 && value.every((m) => m instanceof Module))
        value.forEach((m: Module, i) => {
          if (!knownModules.has(m)) this.registerModule(`${key}.${i}`, m);
        });
    }
  }

  /**
   * A parameter assigned to a field: new, or one another module owns (weight tying,
   * `head.weight = emb.weight`), which replaces what the field held before and must match
   * its shape and dtype.
   */
  private tieOrRegister(key: string, p: Parameter): void {
    const table = this.buffers.has(key) ? this.buffers : this.params;
    const before = table.get(key);
    if (before && (before.dtype !== p.dtype || before.shape.length !== p.shape.length || before.shape.some((d, i) => d !== p.shape[i])))
      throw new KilnError({
        code: "shape-mismatch",
        message: `shape mismatch tying '${key}' of ${this.constructor.name}: it is ${before.dtype}${formatShape(before.shape)}, the assigned parameter '${p.path}' is ${p.dtype}${formatShape(p.shape)}`,
      });
    if (table === this.buffers) this.registerBuffer(key, p);
    else this.registerParameter(key, p);
  }

  protected registerParameter(name: string, p: Parameter | undefined): Parameter | undefined {
    if (p) {
      if (p.owner === undefined || p.owner === this) {
        p.owner = this;
        p.path = name;
      }
      this.params.set(name, p);
    }
    return p;
  }

  protected registerBuffer(name: string, b: Parameter): Parameter {
    if (b.owner === undefined || b.owner === this) {
      b.owner = this;
      b.path = name;
    }
    this.buffers.set(name, b);
    return b;
  }

  protected registerModule<M extends Module>(name: string, m: M): M {
    if (this.children.has(name)) throw new KilnError({ code: "invalid-argument", message: `module '${name}' is registered twice` });
    this.children.set(name, m);
    // Only the parameters m's subtree owns take its names; a tied one keeps its owner's.
    for (const [sub, p] of m.ownedEntries("params")) p.path = `${name}.${sub}`;
    for (const [sub, b] of m.ownedEntries("buffers")) b.path = `${name}.${sub}`;
    return m;
  }

  /** [dotted name, parameter, owned here] over the subtree, every occurrence (a tied parameter once per holder). */
  private allEntries(kind: "params" | "buffers"): [string, Parameter, boolean][] {
    this.discover();
    const out: [string, Parameter, boolean][] = [...this[kind]].map(([name, p]): [string, Parameter, boolean] => [name, p, p.owner === this]);
    for (const [name, child] of this.children) for (const [sub, p, owned] of child.allEntries(kind)) out.push([`${name}.${sub}`, p, owned]);
    return out;
  }

  private ownedEntries(kind: "params" | "buffers"): [string, Parameter][] {
    return this.allEntries(kind).flatMap(([name, p, owned]): [string, Parameter][] => (owned ? [[name, p]] : []));
  }

  /** Each parameter once (PyTorch's remove_duplicate): under its owner's name, or its first name when the owner is outside this tree. */
  private uniqueEntries(kind: "params" | "buffers"): [string, Parameter][] {
    const all = this.allEntries(kind);
    const ownedHere = new Set(all.filter(([, , owned]) => owned).map(([, p]) => p));
    const seen = new Set<Parameter>();
    const out: [string, Parameter][] = [];
    for (const [name, p, owned] of all) {
      if (seen.has(p) || (!owned && ownedHere.has(p))) continue;
      seen.add(p);
      out.push([name, p]);
    }
    return out;
  }

  namedChildren(): [string, Module][] {
    this.discover();
    return [...this.children];
  }

  /**
   * Parameters with dotted names, in registration order (PyTorch's named_parameters). A tied
   * parameter is listed once, under the name of the module that created it.
   */
  namedParameters(): [string, Parameter][] {
    return this.uniqueEntries("params");
  }

  namedBuffers(): [string, Parameter][] {
    return this.uniqueEntries("buffers");
  }

  parameters(): Parameter[] {
    return this.namedParameters().map(([, p]) => p);
  }

  /** Training mode (dropout active) for this module and its children. */
  train(mode = true): this {
    this.discover();
    this.training = mode;
    for (const c of this.children.values()) c.train(mode);
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /** Parameters and buffers as host tensors keyed by dotted name (copies). */
  stateDict(): Record<string, HostTensor> {
    const out: Record<string, HostTensor> = {};
    for (const [name, p] of [...this.namedParameters(), ...this.namedBuffers()]) out[name] = p.hostTensor();
    return out;
  }

  /**
   * Loads values by dotted name (PyTorch's load_state_dict) from a safetensors file — a path,
   * its bytes, or what k.safetensors.read returned — or from a Map or record of { shape, data }.
   * A file's dtypes convert to each parameter's (F16/BF16/F64 → f32, I64 → i32 with every value
   * checked). Shapes must match; with `strict` (default) the key sets must match too. Everything
   * is checked before anything is assigned: an error leaves the module as it was.
   */
  loadStateDict(source: StateSource, opts: { strict?: boolean } = {}): void {
    const what = "loadStateDict";
    const strict = strictOptions("module.loadStateDict", opts, { strict: true }).strict ?? true;
    const { values, file } = stateEntries(source, what);
    // A tied parameter answers to each of its names (PyTorch's state_dict lists them all) and is missing only when none is given.
    const own = new Map([...this.allEntries("params"), ...this.allEntries("buffers")].map(([name, p]): [string, Parameter] => [name, p]));
    const given = new Set([...values.keys()].flatMap((k) => (own.has(k) ? [own.get(k)!] : [])));
    const missing = [...this.namedParameters(), ...this.namedBuffers()].filter(([, p]) => !given.has(p)).map(([name]) => name);
    const unexpected = [...values.keys()].filter((k) => !own.has(k));
    if (strict && (missing.length > 0 || unexpected.length > 0)) {
      const parts = [
        missing.length ? `missing key(s): ${missing.join(", ")}` : "",
        unexpected.length ? `unexpected key(s): ${unexpected.join(", ")}` : "",
      ].filter(Boolean);
      throw new KilnError({ code: "invalid-argument", message: `${what}: ${file === undefined ? "" : `${file}: `}${parts.join("; ")}` });
    }
    const updates: [Parameter, Float64Array | Int32Array | Uint8Array][] = [];
    for (const [name, value] of values) {
      const p = own.get(name);
      if (!p) continue;
      const data = convertStateValue(name, value, p.type, what, file);
      updates.push([p, hostArrayFrom(p.dtype, data)]);
    }
    for (const [p, data] of updates) p.data = data;
  }
}

/**
 * Runs `fn` with the module's parameters bound to `values` (by dotted name) in the current
 * trace — torch.func.functional_call. Unlisted parameters keep their default binding.
 */
export function functionalCall<T>(module: Module, values: Readonly<Record<string, Tensor>>, fn: () => T): T {
  const trace = requireTrace("functionalCall");
  const own = new Map(module.namedParameters());
  const saved = new Map<Parameter, Tensor | undefined>();
  for (const [name, t] of Object.entries(values)) {
    const p = own.get(name);
    if (!p) throw new KilnError({ code: "invalid-argument", message: `functionalCall: the module has no parameter '${name}'` });
    saved.set(p, trace.bindings.get(p));
    trace.bindings.set(p, t);
  }
  try {
    return fn();
  } finally {
    for (const [p, prev] of saved) {
      if (prev) trace.bindings.set(p, prev);
      else trace.bindings.delete(p);
    }
  }
}
