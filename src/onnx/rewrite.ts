// The editing context shared by the rewrite passes: fresh names, new nodes and constants,
// new graph inputs and outputs with their types, and a final clean-up (topological order,
// dead nodes, value_info of new tensors, stale value_info of rewritten ones).

import { UserError } from '../errors.js';
import { GraphIndex, NameAllocator, dropValueInfo, removeDeadNodes, tensorValueInfo, topoSort } from './graph.js';
import { inferDtypes } from './infer.js';
import { opsetVersion, type AttributeProto, type GraphProto, type ModelProto, type NodeProto } from './proto.js';
import { intAttr, intsAttr, makeTensor } from './tensor.js';

export type Dim = number | string;

/** Lowest default-domain opset the passes emit ops for (Unsqueeze/ReduceSum axes as inputs). */
const MIN_OPSET = 13;

export class Rewrite {
  readonly graph: GraphProto;
  readonly opset: number;
  readonly names: NameAllocator;
  private index: GraphIndex;
  private dirty = false;
  readonly dtypes: Map<string, number>;
  private readonly newInfo = new Map<string, { elemType: number; shape?: readonly Dim[] }>();
  private readonly rewritten = new Set<string>();
  /** site tensor → the tensor that now carries its values after an intervention (see redirect). */
  private readonly aliases = new Map<string, string>();

  constructor(readonly model: ModelProto, source = 'model') {
    this.graph = model.graph!;
    const opset = opsetVersion(model);
    if (opset === undefined || opset < MIN_OPSET) {
      throw new UserError(`${source}: default-domain opset ${opset ?? 'missing'} is too old; dissect needs opset ≥ ${MIN_OPSET}`,
        'Re-export the model with opset_version=14 or newer.');
    }
    this.opset = opset;
    this.names = new NameAllocator(this.graph);
    this.index = new GraphIndex(this.graph);
    this.dtypes = inferDtypes(this.index);
  }

  /** The index, rebuilt if the graph changed since it was last built. */
  get ix(): GraphIndex {
    if (this.dirty) {
      this.index = new GraphIndex(this.graph);
      this.dirty = false;
    }
    return this.index;
  }

  dtype(tensor: string): number {
    const t = this.dtypes.get(tensor);
    if (t === undefined) throw new Error(`internal: the element type of '${tensor}' could not be inferred`);
    return t;
  }

  /** Adds a node; returns its output names (fresh, derived from `base`). */
  node(op: string, inputs: readonly string[], base: string, opts: {
    outputs?: number; attrs?: AttributeProto[]; types?: (number | undefined)[]; shapes?: (readonly Dim[] | undefined)[]; domain?: string;
  } = {}): string[] {
    const n = opts.outputs ?? 1;
    const outputs = Array.from({ length: n }, (_, i) => this.names.fresh(n === 1 ? base : `${base}_${i}`));
    const node: NodeProto = { input: [...inputs], output: outputs, name: this.names.fresh(`${base}/${op}`), opType: op };
    if (opts.attrs?.length) node.attribute = opts.attrs;
    if (opts.domain) node.domain = opts.domain;
    (this.graph.node ??= []).push(node);
    outputs.forEach((o, i) => {
      const t = opts.types?.[i];
      if (t !== undefined) {
        this.dtypes.set(o, t);
        const shape = opts.shapes?.[i];
        this.newInfo.set(o, { elemType: t, ...(shape ? { shape } : {}) });
      }
    });
    this.dirty = true;
    return outputs;
  }

  /** Single-output shorthand. */
  op(op: string, inputs: readonly string[], base: string, type?: number, shape?: readonly Dim[], attrs?: AttributeProto[]): string {
    return this.node(op, inputs, base, {
      ...(attrs ? { attrs } : {}),
      ...(type !== undefined ? { types: [type] } : {}),
      shapes: [shape],
    })[0]!;
  }

  /** A small constant initializer. */
  constant(base: string, dataType: number, dims: readonly number[], values: readonly (number | bigint | boolean)[]): string {
    const name = this.names.fresh(base);
    (this.graph.initializer ??= []).push(makeTensor(name, dataType, dims, values));
    this.dtypes.set(name, dataType);
    this.dirty = true;
    return name;
  }

  /** A new graph input; src/onnx/inputs.ts describes it (addDescribedInput) and writes its doc string. */
  addInput(name: string, elemType: number, shape: readonly Dim[]): string {
    if (this.names.has(name)) throw new UserError(`the model already has a tensor named '${name}'; dissect reserves the dissect_ prefix`);
    this.names.take(name);
    (this.graph.input ??= []).push(tensorValueInfo(name, elemType, shape));
    this.dtypes.set(name, elemType);
    this.dirty = true;
    return name;
  }

  /** Exposes `tensor` as graph output `name` (through an Identity when the names differ). */
  addOutput(name: string, tensor: string, elemType: number, shape: readonly Dim[], doc: string): void {
    if (tensor !== name) {
      if (this.names.has(name)) throw new UserError(`the model already has a tensor named '${name}'; dissect reserves the dissect_ prefix`);
      this.names.take(name);
      const node: NodeProto = { input: [tensor], output: [name], name: this.names.fresh(`${name}/Identity`), opType: 'Identity' };
      (this.graph.node ??= []).push(node);
    }
    (this.graph.output ??= []).push(tensorValueInfo(name, elemType, shape, doc));
    this.dtypes.set(name, elemType);
    this.dirty = true;
  }

  removeOutput(name: string): void {
    this.graph.output = (this.graph.output ?? []).filter((o) => o.name !== name);
    this.dirty = true;
  }

  /** Makes `node` read `replacement` where it read `tensor`. */
  replaceInput(node: NodeProto, tensor: string, replacement: string): void {
    node.input = (node.input ?? []).map((i) => (i === tensor ? replacement : i));
    this.rewritten.add(tensor);
    this.dirty = true;
  }

  /**
   * Makes the readers of `tensor` chosen by `which` (default: all of them, as they are now)
   * read what `make` builds from it instead, and records the replacement as the tensor's
   * current value for later passes (see current). Returns the replacement.
   */
  redirect(tensor: string, make: (t: string) => string, which: (n: NodeProto) => boolean = () => true): string {
    const readers = this.ix.consumersOf(tensor).filter(which);
    if (!readers.length) throw new Error(`internal: nothing reads '${tensor}' where a replacement was to be inserted`);
    const replacement = make(tensor);
    for (const n of readers) this.replaceInput(n, tensor, replacement);
    this.aliases.set(tensor, replacement);
    return replacement;
  }

  /** The tensor now carrying the values of site tensor `t` (itself unless a pass redirected it). */
  current(t: string): string {
    let x = t;
    for (let guard = 0; guard < 64 && this.aliases.has(x); guard++) x = this.aliases.get(x)!;
    return x;
  }

  /** The dims a pass recorded for a tensor it made (symbolic dims as undefined). */
  recordedDims(t: string): (number | undefined)[] | undefined {
    return this.recordedShape(t)?.map((d) => (typeof d === 'number' ? d : undefined));
  }

  /** Records the shape of an existing tensor (written as its value_info): what later passes read as recordedShape. */
  recordShape(t: string, shape: readonly Dim[]): void {
    this.newInfo.set(t, { elemType: this.dtype(t), shape });
  }

  /** The shape a pass recorded for a tensor it made, symbolic dims by name. */
  recordedShape(t: string): readonly Dim[] | undefined {
    return this.newInfo.get(t)?.shape;
  }

  /** Int64 1-D constant (axes, shapes). */
  ints(base: string, values: readonly number[]): string {
    return this.constant(base, 7, [values.length], values);
  }

  /** Int64 scalar constant. */
  scalarInt(base: string, value: number): string {
    return this.constant(base, 7, [], [value]);
  }

  /**
   * A reduction over constant axes. ReduceSum takes its axes as an input from opset 13, the
   * other reductions only from opset 18 (an attribute before).
   */
  reduce(op: string, x: string, axes: readonly number[], base: string, keepdims: boolean, type?: number, shape?: readonly Dim[]): string {
    const keep = intAttr('keepdims', keepdims ? 1 : 0);
    if (op === 'ReduceSum' || this.opset >= 18) return this.op(op, [x, this.ints(`${base}/axes`, axes)], base, type, shape, [keep]);
    return this.op(op, [x], base, type, shape, [intsAttr('axes', axes), keep]);
  }

  unsqueeze(x: string, axes: readonly number[], base: string, type?: number, shape?: readonly Dim[]): string {
    return this.op('Unsqueeze', [x, this.ints(`${base}/axes`, axes)], base, type, shape);
  }

  squeeze(x: string, axes: readonly number[], base: string, type?: number, shape?: readonly Dim[]): string {
    return this.op('Squeeze', [x, this.ints(`${base}/axes`, axes)], base, type, shape);
  }

  /** Puts the nodes in topological order (passes append nodes that earlier nodes now read). */
  sortNodes(): void {
    topoSort(this.graph);
    this.dirty = true;
  }

  /** Orders nodes, removes what no output needs, records types of new tensors. */
  finish(): void {
    topoSort(this.graph); // first: dead-node removal walks the list backwards
    removeDeadNodes(this.graph);
    dropValueInfo(this.graph, this.rewritten);
    const live = new Set<string>();
    for (const n of this.graph.node ?? []) for (const o of n.output ?? []) live.add(o);
    const outputs = new Set((this.graph.output ?? []).map((o) => o.name ?? ''));
    const existing = new Set((this.graph.valueInfo ?? []).map((v) => v.name ?? ''));
    for (const [name, info] of this.newInfo) {
      if (!live.has(name) || outputs.has(name) || existing.has(name)) continue;
      (this.graph.valueInfo ??= []).push(tensorValueInfo(name, info.elemType, info.shape));
    }
    this.dirty = true;
  }
}
