// `dissect inspect MODEL`: what the compiler sees in a model — format facts, inputs and
// outputs, external data, and per layer which sites were found (tensor, producing op, how
// it was matched) and which were not (what was expected, where matching broke), with a
// confidence per layer. Reads no weights, inline or external.

import { checkExternalData } from './external.js';
import { valueInfoShape } from './graph.js';
import { dtypeName, int, type ValueInfoProto } from './proto.js';
import { externalDataFiles, externalDataRefs, readModelGraph } from './source.js';
import { runDetection } from './sites/index.js';
import { firstBreak, type FoundSite, type LayerFindings, type MissingSite } from './sites/findings.js';
import { LAYER_SITE_NAMES, siteStatementName, type SiteOverride } from './sites/types.js';

export interface InspectTensor {
  readonly name: string;
  readonly dtype: string;
  readonly shape: readonly (number | string)[];
}

/**
 * How a site was matched: `pattern` by the family's op pattern; `shared` the same tensor as an
 * earlier site of the layer, by the block's shape (GPT-J's one norm feeds both sublayers, so
 * mlpNorm is attnNorm); `override` named by a `site` statement, not checked by any pattern.
 */
export type SiteMatch = 'pattern' | 'shared' | 'override';

/**
 * A layer's confidence: `high` when every site matched by pattern (or shared) and the layer's
 * shapes agree with the model's; `medium` when every site is there but some were named by an
 * override or a note flags the layer; `low` when sites are missing.
 */
export interface LayerReport extends LayerFindings {
  readonly matches: Readonly<Record<string, SiteMatch>>;
  readonly confidence: 'high' | 'medium' | 'low';
  readonly why: string;
}

export interface InspectReport {
  readonly path: string;
  readonly irVersion: number;
  readonly opsets: readonly { readonly domain: string; readonly version: number }[];
  readonly producer: string;
  readonly nodes: number;
  readonly inputs: readonly InspectTensor[];
  readonly outputs: readonly InspectTensor[];
  /** External weight files (relative to the model's folder); `problem` if they are unusable. */
  readonly externalData: { readonly tensors: number; readonly files: readonly string[]; readonly problem?: string };
  /** The family recognised (or, when none is supported, the one whose structure matched best). */
  readonly family: string;
  /** Where matching broke first, when not every site was found. */
  readonly broke?: string;
  /** The family's overall structure was recognised. */
  readonly matched: boolean;
  /** Every site was found: the model can be compiled. */
  readonly supported: boolean;
  readonly summary?: {
    readonly layers: number; readonly heads: number; readonly dHead: number; readonly dModel: number;
    readonly dMlp: number; readonly vocab: number; readonly dtype: string; readonly activation: string;
  };
  readonly model: { readonly found: readonly FoundSite[]; readonly missing: readonly MissingSite[] };
  readonly layers: readonly LayerReport[];
  readonly notes: readonly string[];
}

function layerReport(L: LayerFindings, notes: readonly string[]): LayerReport {
  const found = sortSites(L.found);
  const matches: Record<string, SiteMatch> = {};
  const seen = new Set<string>();
  for (const f of found) {
    matches[f.site] = f.override ? 'override' : seen.has(f.tensor) ? 'shared' : 'pattern';
    seen.add(f.tensor);
  }
  const overridden = found.filter((f) => f.override).map((f) => siteStatementName(f.site));
  const flagged = notes.filter((n) => n.startsWith(`layer ${L.layer} `));
  const total = found.length + L.missing.length;
  const [confidence, why]: [LayerReport['confidence'], string] = L.missing.length
    ? ['low', `${L.missing.length} of ${total} sites not found`]
    : overridden.length || flagged.length
      ? ['medium', [overridden.length ? `${overridden.join(', ')} named by a site override` : '', ...flagged].filter(Boolean).join('; ')]
      : ['high', `all ${total} sites matched by pattern${Object.values(matches).includes('shared') ? `, ${Object.values(matches).filter((m) => m === 'shared').length} shared by the block's shape` : ''}`];
  return { layer: L.layer, found, missing: L.missing, matches, confidence, why };
}

export function inspectModel(path: string, overrides: readonly SiteOverride[] = []): InspectReport {
  // the run's graph reader: large inline weights stay in the file, referenced as data of the
  // model file itself, which is not external data
  const model = readModelGraph(path);
  const g = model.graph!;
  const inits = new Set((g.initializer ?? []).map((t) => t.name));
  const tensor = (vi: ValueInfoProto): InspectTensor => {
    const { elemType, shape } = valueInfoShape(vi);
    return { name: vi.name ?? '', dtype: elemType !== undefined ? dtypeName(elemType) : '?', shape: (shape ?? []).map((d) => d ?? '?') };
  };
  const refs = externalDataRefs(model, path);
  let files: string[] = [];
  let problem: string | undefined;
  if (refs.length) {
    try {
      files = externalDataFiles(checkExternalData(model, path), path);
    } catch (e) {
      problem = (e as Error).message;
      files = [...new Set(refs.map((r) => r.location))];
    }
  }
  const d = runDetection(model, path, overrides);
  const s = d.sites;
  return {
    path,
    irVersion: int(model.irVersion),
    opsets: (model.opsetImport ?? []).map((o) => ({ domain: o.domain || 'ai.onnx', version: int(o.version) })),
    producer: [model.producerName, model.producerVersion].filter(Boolean).join(' '),
    nodes: (g.node ?? []).length,
    inputs: (g.input ?? []).filter((v) => !inits.has(v.name)).map(tensor),
    outputs: (g.output ?? []).map(tensor),
    externalData: { tensors: refs.length, files, ...(problem ? { problem } : {}) },
    family: d.family,
    ...(d.sites ? {} : { broke: firstBreak(d) ?? 'no layers found' }),
    matched: d.matched,
    supported: !!s,
    ...(s ? {
      summary: {
        layers: s.layers, heads: s.heads, dHead: s.dHead, dModel: s.dModel, dMlp: s.dMlp, vocab: s.vocab,
        dtype: dtypeName(s.dtype), activation: s.activation,
      },
    } : {}),
    model: d.model,
    layers: d.layers.map((L) => layerReport(L, d.notes)),
    notes: d.notes,
  };
}

/** The model can be compiled: every site was found and its external data is usable. */
export function compilable(r: InspectReport): boolean {
  return r.supported && r.externalData.problem === undefined;
}

function sortSites(found: readonly FoundSite[]): FoundSite[] {
  const order = new Map<string, number>(LAYER_SITE_NAMES.map((n, i) => [n, i]));
  return [...found].sort((a, b) => (order.get(a.site) ?? 99) - (order.get(b.site) ?? 99));
}

function shapeText(t: InspectTensor): string {
  return `${t.name} ${t.dtype} [${t.shape.join(', ')}]`;
}

function siteLine(f: FoundSite, width: number, match?: SiteMatch): string {
  const by = f.op === 'initializer' || f.op === 'input' ? f.op : `${f.op}${f.node ? ` '${f.node}'` : ''}`;
  const how = match === 'override' ? ' (site override)' : match === 'shared' ? ' (shared)' : '';
  return `  ${siteStatementName(f.site).padEnd(width)} ${f.tensor}  ← ${by}${how}`;
}

function missingLine(m: MissingSite, width: number): string {
  return `  ${siteStatementName(m.site).padEnd(width)} NOT FOUND: at ${m.at}: expected ${m.expected}`;
}

/** Plain-text rendering for the terminal. */
export function renderInspectText(r: InspectReport): string {
  const lines: string[] = [];
  const s = r.summary;
  lines.push(s
    ? `${r.path}: ${r.family}, ${s.layers} layers, ${s.heads} heads × ${s.dHead}, d_model ${s.dModel}, MLP ${s.dMlp}, vocab ${s.vocab}, ${s.dtype}, ${s.activation}`
    : `${r.path}: ${r.matched ? `${r.family}-like, but not every site was found` : 'no supported architecture recognised'}`);
  lines.push(`IR ${r.irVersion}; opsets ${r.opsets.map((o) => `${o.domain} ${o.version}`).join(', ')}; ${r.nodes} nodes${r.producer ? `; producer ${r.producer}` : ''}`);
  lines.push(`inputs:  ${r.inputs.map(shapeText).join('; ')}`);
  lines.push(`outputs: ${r.outputs.map(shapeText).join('; ')}`);
  if (r.broke) lines.push(`broke at ${r.broke}`);
  if (r.externalData.tensors) {
    lines.push(`external data: ${r.externalData.tensors} tensors in ${r.externalData.files.join(', ')}${r.externalData.problem ? ` — PROBLEM: ${r.externalData.problem}` : ''}`);
  }
  const modelWidth = Math.max(12, ...[...r.model.found, ...r.model.missing].map((f) => siteStatementName(f.site).length));
  lines.push('model:');
  for (const f of r.model.found) lines.push(siteLine(f, modelWidth));
  for (const m of r.model.missing) lines.push(missingLine(m, modelWidth));
  const width = Math.max(...LAYER_SITE_NAMES.map((n) => siteStatementName(n).length));
  for (const L of r.layers) {
    lines.push(`layer ${L.layer}: confidence ${L.confidence} (${L.why})`);
    for (const f of L.found) lines.push(siteLine(f, width, L.matches[f.site]));
    for (const m of L.missing) lines.push(missingLine(m, width));
  }
  for (const n of r.notes) lines.push(`note: ${n}`);
  const count = (c: LayerReport['confidence']): number => r.layers.filter((L) => L.confidence === c).length;
  lines.push(`confidence: ${r.layers.length} layers: ${count('high')} high, ${count('medium')} medium, ${count('low')} low`);
  lines.push(!r.supported ? 'supported: no' : compilable(r) ? 'supported: yes' : 'supported: yes, but its external data cannot be used (PROBLEM above)');
  return lines.join('\n') + '\n';
}

/** The JSON form (the report is plain data). */
export function renderInspectJson(r: InspectReport): string {
  return JSON.stringify(r, null, 2) + '\n';
}
