// The planning stage: a checked Program becomes plain data — for every experiment, the
// rows (one per sweep binding) and the edges each row blocks. Position sets stay symbolic
// (they need a tokenized prompt); layers become concrete indices.

import type {
  BlockIntervention, Experiment, IntExpr, LayerSet, MeasureName, ModelShape, PositionSet, Program, SourceSpan,
} from '../lang/program.js';
import type { VariantRequest } from '../onnx/variant.js';

export interface KnockoutEdges {
  readonly layers: readonly number[];
  readonly heads: readonly number[] | 'all';
  readonly source: PositionSet;
  readonly target: PositionSet;
}

export type SweepValue = number | string;

export interface PlanRow {
  /** Sweep variable → its value in this row (a layer index, or a position-set label). */
  readonly key: Readonly<Record<string, SweepValue>>;
  readonly knockouts: readonly KnockoutEdges[];
}

export interface ExperimentPlan {
  readonly name: string;
  readonly measures: readonly MeasureName[];
  readonly sweeps: readonly { readonly variable: string; readonly values: readonly SweepValue[] }[];
  readonly rows: readonly PlanRow[];
  readonly source: string;
  readonly span: SourceSpan;
}

export interface Plan {
  readonly experiments: readonly ExperimentPlan[];
  readonly variant: VariantRequest;
  /** 1 when every block applies to all heads (the knockout input broadcasts), else the head count. */
  readonly knockoutHeads: number;
  /** Forward passes per example: one clean pass plus one per row of every experiment. */
  readonly passesPerExample: number;
}

/** Layers of the paper's centred window: max(0, c-⌊k/2⌋) .. min(L-1, c+⌈k/2⌉-1). */
export function centredWindow(center: number, size: number, layers: number): number[] {
  const from = Math.max(0, center - Math.floor(size / 2));
  const to = Math.min(layers - 1, center + Math.ceil(size / 2) - 1);
  return range(from, to);
}

function range(from: number, to: number): number[] {
  const out: number[] = [];
  for (let i = from; i <= to; i++) out.push(i);
  return out;
}

type Binding = ReadonlyMap<string, { layer: number } | { set: PositionSet; label: string }>;

function evalInt(e: IntExpr, env: Binding): number {
  if (e.kind === 'int') return e.value;
  const bound = env.get(e.name);
  if (!bound || !('layer' in bound)) throw new Error(`internal: layer variable ${e.name} is unbound`);
  return bound.layer;
}

function evalLayers(set: LayerSet, env: Binding, shape: ModelShape): number[] {
  switch (set.kind) {
    case 'all': return range(0, shape.layers - 1);
    case 'single': return [evalInt(set.layer, env)];
    case 'range': return range(evalInt(set.from, env), evalInt(set.to, env));
    case 'window': return centredWindow(evalInt(set.center, env), evalInt(set.size, env), shape.layers);
  }
}

function substitute(set: PositionSet, env: Binding): PositionSet {
  switch (set.kind) {
    case 'var': {
      const bound = env.get(set.name);
      if (!bound || !('set' in bound)) throw new Error(`internal: position variable ${set.name} is unbound`);
      return bound.set;
    }
    case 'union': case 'difference':
      return { kind: set.kind, left: substitute(set.left, env), right: substitute(set.right, env) };
    default: return set;
  }
}

function planBlock(block: BlockIntervention, env: Binding, shape: ModelShape): KnockoutEdges {
  return {
    layers: evalLayers(block.layers, env, shape),
    heads: block.heads,
    source: substitute(block.source, env),
    target: substitute(block.target, env),
  };
}

function planExperiment(exp: Experiment, shape: ModelShape): ExperimentPlan {
  const rows: PlanRow[] = [];
  const expand = (depth: number, env: Map<string, { layer: number } | { set: PositionSet; label: string }>, key: Record<string, SweepValue>): void => {
    const sweep = exp.sweeps[depth];
    if (!sweep) {
      rows.push({ key: { ...key }, knockouts: exp.interventions.map((b) => planBlock(b, env, shape)) });
      return;
    }
    if (sweep.kind === 'layers') {
      for (const layer of sweep.values) {
        env.set(sweep.variable, { layer });
        expand(depth + 1, env, { ...key, [sweep.variable]: layer });
      }
    } else {
      for (const { label, set } of sweep.values) {
        env.set(sweep.variable, { set, label });
        expand(depth + 1, env, { ...key, [sweep.variable]: label });
      }
    }
    env.delete(sweep.variable);
  };
  expand(0, new Map(), {});
  return {
    name: exp.name,
    measures: exp.measures,
    sweeps: exp.sweeps.map((s) => ({
      variable: s.variable,
      values: s.kind === 'layers' ? [...s.values] : s.values.map((v) => v.label),
    })),
    rows,
    source: exp.source,
    span: exp.span,
  };
}

export function planProgram(program: Program, shape: ModelShape): Plan {
  const experiments = program.experiments.map((e) => planExperiment(e, shape));
  const blocks = program.experiments.flatMap((e) => e.interventions);
  const perHead = blocks.some((b) => b.heads !== 'all');
  return {
    experiments,
    variant: { knockout: blocks.length > 0, logits: false },
    knockoutHeads: perHead ? shape.heads : 1,
    passesPerExample: 1 + experiments.reduce((n, e) => n + e.rows.length, 0),
  };
}
