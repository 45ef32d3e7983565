// Graph navigation and editing: who produces and who consumes a tensor, constants, unique
// names, node insertion, topological order, dead-node removal.

import { int, type GraphProto, type NodeProto, type TensorProto, type ValueInfoProto } from './proto.js';
import { StaticShapes } from './static-shapes.js';
import { getAttr, tensorValues } from './tensor.js';

/** Ops that read only their input's shape, not its values. */
const SHAPE_READERS = new Set(['Shape', 'Size']);

export function nodeLabel(node: NodeProto | undefined): string {
  if (!node) return '(no node)';
  return `${node.name ? `'${node.name}'` : '(unnamed)'} (${node.opType})`;
}

/** Read-only index over one graph. Rebuild it after editing the graph. */
export class GraphIndex {
  readonly producers = new Map<string, NodeProto>();
  readonly consumers = new Map<string, NodeProto[]>();
  readonly initializers = new Map<string, TensorProto>();
  readonly inputs = new Map<string, ValueInfoProto>();
  readonly outputs = new Map<string, ValueInfoProto>();
  readonly valueInfo = new Map<string, ValueInfoProto>();
  readonly order = new Map<NodeProto, number>();

  constructor(readonly graph: GraphProto) {
    for (const t of graph.initializer ?? []) this.initializers.set(t.name ?? '', t);
    for (const v of graph.input ?? []) this.inputs.set(v.name ?? '', v);
    for (const v of graph.output ?? []) this.outputs.set(v.name ?? '', v);
    for (const v of graph.valueInfo ?? []) this.valueInfo.set(v.name ?? '', v);
    (graph.node ?? []).forEach((n, i) => {
      this.order.set(n, i);
      for (const o of n.output ?? []) if (o) this.producers.set(o, n);
      for (const inp of n.input ?? []) {
        if (!inp) continue;
        let list = this.consumers.get(inp);
        if (!list) this.consumers.set(inp, (list = []));
        if (!list.includes(n)) list.push(n);
      }
    });
  }

  get nodes(): NodeProto[] {
    return this.graph.node ?? [];
  }

  producer(t: string): NodeProto | undefined {
    return this.producers.get(t);
  }

  consumersOf(t: string): NodeProto[] {
    return this.consumers.get(t) ?? [];
  }

  /** Consumers that read the tensor's values (not just its shape). */
  dataConsumers(t: string): NodeProto[] {
    return this.consumersOf(t).filter((n) => !SHAPE_READERS.has(n.opType ?? ''));
  }

  isGraphInput(t: string): boolean {
    return this.inputs.has(t) && !this.initializers.has(t);
  }

  /** An initializer (not overridable by an input) or the output of a Constant node. */
  isConstant(t: string): boolean {
    if (this.initializers.has(t)) return true;
    const p = this.producer(t);
    if (!p) return false;
    if (p.opType === 'Constant') return true;
    if ((p.opType === 'Identity' || p.opType === 'Cast') && p.input?.[0]) return this.isConstant(p.input[0]);
    return false;
  }

  /** The constant tensor behind `t` (initializer, or a Constant node's `value`), if any. */
  constantTensor(t: string): TensorProto | undefined {
    const init = this.initializers.get(t);
    if (init) return init;
    const p = this.producer(t);
    if (!p) return undefined;
    if (p.opType === 'Constant') return getAttr(p, 'value')?.t;
    if (p.opType === 'Identity' && p.input?.[0]) return this.constantTensor(p.input[0]);
    return undefined;
  }

  /** Values of a small constant (Constant node with value/value_int(s)/value_float(s), or initializer). */
  constantValues(t: string): number[] | undefined {
    const p = this.producer(t);
    if (p?.opType === 'Constant') {
      const a = p.attribute?.[0];
      if (!a) return undefined;
      if (a.name === 'value' && a.t) return tensorValues(a.t);
      if (a.name === 'value_int') return [int(a.i)];
      if (a.name === 'value_ints') return (a.ints ?? []).map((v) => int(v));
      if (a.name === 'value_float') return [a.f ?? 0];
      if (a.name === 'value_floats') return [...(a.floats ?? [])];
      return undefined;
    }
    if (p?.opType === 'Identity' && p.input?.[0]) return this.constantValues(p.input[0]);
    const init = this.initializers.get(t);
    return init ? tensorValues(init) : undefined;
  }

  private staticShapes?: StaticShapes;

  /** Shape arithmetic the graph fixes (static-shapes.ts), evaluated on demand and memoised. */
  get shapes(): StaticShapes {
    return (this.staticShapes ??= new StaticShapes(this));
  }

  /** Every tensor name appearing in the graph (inputs, outputs, initializers, node outputs). */
  allNames(): Set<string> {
    const names = new Set<string>();
    for (const k of this.initializers.keys()) names.add(k);
    for (const k of this.inputs.keys()) names.add(k);
    for (const k of this.outputs.keys()) names.add(k);
    for (const n of this.nodes) {
      for (const o of n.output ?? []) names.add(o);
      if (n.name) names.add(n.name);
    }
    return names;
  }
}

/** Allocates names not used anywhere in the graph. */
export class NameAllocator {
  private readonly used: Set<string>;
  constructor(graph: GraphProto) {
    this.used = new GraphIndex(graph).allNames();
    collectSubgraphNames(graph, this.used);
  }
  take(name: string): string {
    if (this.used.has(name)) throw new Error(`internal: the name ${name} is already used in the graph`);
    this.used.add(name);
    return name;
  }
  fresh(base: string): string {
    let name = base;
    for (let i = 1; this.used.has(name); i++) name = `${base}_${i}`;
    this.used.add(name);
    return name;
  }
  has(name: string): boolean {
    return this.used.has(name);
  }
}

/** Calls `f` on each subgraph of `n` (If branches, Loop and Scan bodies). */
export function forSubgraphs(n: NodeProto, f: (g: GraphProto) => void): void {
  for (const a of n.attribute ?? []) for (const g of [a.g, ...(a.graphs ?? [])]) if (g) f(g);
}

function collectSubgraphNames(graph: GraphProto, into: Set<string>): void {
  for (const n of graph.node ?? []) {
    forSubgraphs(n, (g) => {
      for (const sub of g.node ?? []) for (const o of sub.output ?? []) into.add(o);
      collectSubgraphNames(g, into);
    });
  }
}

/** Names read inside subgraphs (If/Loop/Scan bodies) that come from the outer scope. */
function outerReads(graph: GraphProto, into: Set<string>): void {
  for (const n of graph.node ?? []) {
    forSubgraphs(n, (g) => {
      for (const sub of g.node ?? []) for (const i of sub.input ?? []) if (i) into.add(i);
      for (const o of g.output ?? []) if (o.name) into.add(o.name);
      outerReads(g, into);
    });
  }
}

/**
 * Stable topological order: nodes keep their relative order unless an input is produced
 * later, in which case the producer is pulled forward. Throws on a cycle.
 */
export function topoSort(graph: GraphProto): void {
  const nodes = graph.node ?? [];
  const producer = new Map<string, number>();
  nodes.forEach((n, i) => { for (const o of n.output ?? []) if (o) producer.set(o, i); });
  const subReads = (n: NodeProto): string[] => {
    const s = new Set<string>();
    outerReads({ node: [n] }, s);
    return [...s];
  };
  const state = new Uint8Array(nodes.length); // 0 new, 1 visiting, 2 done
  const out: NodeProto[] = [];
  for (let start = 0; start < nodes.length; start++) {
    if (state[start]) continue;
    const stack: { i: number; deps: number[]; k: number }[] = [];
    const push = (i: number): void => {
      state[i] = 1;
      const n = nodes[i]!;
      const deps: number[] = [];
      for (const inp of [...(n.input ?? []), ...subReads(n)]) {
        const p = inp ? producer.get(inp) : undefined;
        if (p !== undefined && p !== i) deps.push(p);
      }
      stack.push({ i, deps, k: 0 });
    };
    push(start);
    while (stack.length) {
      const top = stack[stack.length - 1]!;
      if (top.k < top.deps.length) {
        const d = top.deps[top.k++]!;
        if (state[d] === 0) push(d);
        else if (state[d] === 1) throw new Error(`internal: cycle in the rewritten graph at ${nodeLabel(nodes[d])}`);
      } else {
        state[top.i] = 2;
        out.push(nodes[top.i]!);
        stack.pop();
      }
    }
  }
  graph.node = out;
}

/** Removes nodes whose outputs nobody reads, and initializers nobody reads. */
export function removeDeadNodes(graph: GraphProto): void {
  const live = new Set<string>((graph.output ?? []).map((o) => o.name ?? ''));
  const nodes = graph.node ?? [];
  const keep = new Array<boolean>(nodes.length).fill(false);
  for (let i = nodes.length - 1; i >= 0; i--) {
    const n = nodes[i]!;
    if ((n.output ?? []).some((o) => o && live.has(o))) {
      keep[i] = true;
      for (const inp of n.input ?? []) if (inp) live.add(inp);
      outerReads({ node: [n] }, live);
    }
  }
  graph.node = nodes.filter((_, i) => keep[i]);
  graph.initializer = (graph.initializer ?? []).filter((t) => live.has(t.name ?? ''));
  const known = new Set<string>();
  for (const n of graph.node) for (const o of n.output ?? []) known.add(o);
  graph.valueInfo = (graph.valueInfo ?? []).filter((v) => known.has(v.name ?? ''));
}

/** Drops value_info entries for the given tensors (their type or shape may have changed). */
export function dropValueInfo(graph: GraphProto, names: Iterable<string>): void {
  const drop = new Set(names);
  graph.valueInfo = (graph.valueInfo ?? []).filter((v) => !drop.has(v.name ?? ''));
}

export function tensorValueInfo(name: string, elemType: number, shape: readonly (number | string)[] | undefined, doc?: string): ValueInfoProto {
  const vi: ValueInfoProto = {
    name,
    type: {
      tensorType: {
        elemType,
        ...(shape ? { shape: { dim: shape.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } } : {}),
      },
    },
  };
  if (doc) vi.docString = doc;
  return vi;
}

/** The element type and shape recorded in a ValueInfoProto (dims as number | name | undefined). */
export function valueInfoShape(v: ValueInfoProto | undefined): { elemType?: number; shape?: (number | string | undefined)[] } {
  const tt = v?.type?.tensorType;
  if (!tt) return {};
  const shape = tt.shape ? (tt.shape.dim ?? []).map((d) => (d.dimParam ? d.dimParam : d.dimValue !== undefined && d.dimValue !== null ? int(d.dimValue) : undefined)) : undefined;
  return { ...(tt.elemType !== undefined ? { elemType: tt.elemType } : {}), ...(shape ? { shape } : {}) };
}
