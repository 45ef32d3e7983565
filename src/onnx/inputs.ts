// What a variant's inputs are and how to fill them, described once per input: the source
// model's own inputs here, every input a rewrite pass adds in that pass (its *_INPUTS table,
// added with addDescribedInput), all listed in compile.ts's VARIANT_INPUTS. The manifest's inputs are these descriptions evaluated for
// the compiled graph, and the runner fills each input by its `rule` alone (src/run/batch.ts
// has one filler per rule), so a new input is one descriptor in its pass (and, for a new
// kind of data, one filler).

import { UserError } from '../errors.js';
import { valueInfoShape } from './graph.js';
import { DataType, dtypeName, type ModelProto } from './proto.js';
import type { Dim, Rewrite } from './rewrite.js';
import type { ModelSites } from './sites/types.js';
import { describedTensor, type ManifestDtype, type ManifestInput, type PlainRowFill, type VariantRequest } from './variant.js';

/** How the runner fills an input for a batch of rows; each rule has one filler in src/run/batch.ts. */
export type FillRule =
  | 'token_ids' | 'attention_mask' | 'positions' | 'past' | 'past_row' | 'last_index' | 'target' | 'knockout' | 'gate_attention' | 'gate_mlp'
  | 'patch_layer' | 'patch_mask' | 'patch_values' | 'proj_positions' | 'recompute_remove' | 'subject_weights' | 'start_layer' | 'start_hidden' | 'past_length';

/** What a description may depend on: the model, the request, and the input as the compiled graph declares it. */
export interface DescribeContext {
  readonly sites: ModelSites;
  readonly request: VariantRequest;
  readonly name: string;
  readonly dtype: ManifestDtype;
  /** Numbers are fixed sizes, strings symbolic dimensions. */
  readonly shape: readonly (number | string)[];
}

interface Description {
  readonly rule: FillRule;
  readonly meaning: (c: DescribeContext) => string;
  readonly fill: (c: DescribeContext) => string;
  /** The input of a row that runs one whole prompt, unpadded, and changes nothing. */
  readonly plainRow: (c: DescribeContext) => PlainRowFill;
}

/** An input a pass adds: its name (with `perLayer`, the prefix its layer number follows). */
export interface AddedInput extends Description {
  readonly name: string;
  readonly perLayer?: true;
}

/** An input of the source model, recognised by the role site detection gave it. */
export interface SourceInput extends Description {
  readonly role: 'input_ids' | 'attention_mask' | 'position_ids' | 'past';
}

export type InputDescriptor = AddedInput | SourceInput;

/** Adds the graph input `desc` describes (layer: for a per-layer input); returns its name. */
export function addDescribedInput(rw: Rewrite, desc: AddedInput, elemType: number, shape: readonly Dim[], layer?: number): string {
  if (!!desc.perLayer !== (layer !== undefined)) throw new Error(`internal: input ${desc.name} ${desc.perLayer ? 'needs' : 'takes no'} layer`);
  return rw.addInput(desc.perLayer ? `${desc.name}${layer}` : desc.name, elemType, shape);
}

/** The plain row's value on every entry of an input of `shape`, its symbolic dims read as the batch (axis 0) or the prompt. */
export function constantOver(shape: readonly (number | string)[], value: number | boolean): PlainRowFill {
  return { shape: shape.map((d, i) => (typeof d === 'number' ? d : i === 0 ? 'batch' : 'seq')), value };
}

/** A past input of a plain row: empty; symbolic dims other than the batch and the heads are the past's length. */
export function pastPlainRow(c: DescribeContext): PlainRowFill {
  return { shape: c.shape.map((d, i) => (i === 0 ? 'batch' : typeof d === 'number' ? d : /head/i.test(d) ? c.sites.kvHeads ?? c.sites.heads : 0)), value: 0 };
}

/** How a past input of a last-position variant is filled, `source` naming the clean run's output it is. */
export function pastFill(source: string): string {
  return `empty (past = 0) for whole prompts; for rows run as their last token, one entry per ` +
    `prompt of the chunk (dissect_past_row picks each row's): ${source} as the clean pass returned it, the prompts right-padded ` +
    'to the longest (attention_mask 1 on the positions before the row\'s last token, 0 on the rest)';
}

/** How positions are filled, for the model's position_ids and dissect_position_ids alike. */
export const POSITIONS = {
  rule: 'positions',
  fill: (c: DescribeContext) => (c.shape[0] === 1 ? 'one row for the whole batch (so its rows share one past length): ' : '') +
    '0, 1, …, seq−1 in every row (right padding keeps the real tokens\' positions); past + 0, … when past keys and values are fed',
  plainRow: (c: DescribeContext): PlainRowFill => ({ shape: [c.shape[0] === 1 ? 1 : 'batch', 'seq'], value: 'positions' }),
} as const satisfies Omit<Description, 'meaning'>;

export const SOURCE_INPUTS: readonly SourceInput[] = [
  {
    role: 'input_ids',
    rule: 'token_ids',
    meaning: () => 'token ids',
    fill: () => 'the prompt\'s token ids, right-padded to the longest row of the batch (any id in the padding); positions are taken ' +
      'from the index in the row, so do not pad on the left',
    plainRow: () => ({ shape: ['batch', 'seq'], value: 'token_ids' }),
  },
  {
    role: 'attention_mask',
    rule: 'attention_mask',
    meaning: () => 'attention mask',
    fill: (c) => '1 for real tokens, 0 for padding' + (c.sites.inputs.past.length || c.request.lastPosition ? ' (length past + seq)' : ''),
    plainRow: () => ({ shape: ['batch', 'seq'], value: 1 }),
  },
  { role: 'position_ids', meaning: () => 'position ids', ...POSITIONS },
  {
    role: 'past',
    rule: 'past',
    meaning: (c) => {
      const p = c.sites.inputs.past.find((x) => x.key === c.name || x.value === c.name);
      return p ? `past ${p.key === c.name ? 'keys' : 'values'} of layer ${p.layer}` : 'past keys or values the model takes (no layer reads them as its cache)';
    },
    fill: (c) => (c.request.lastPosition ? pastFill('the output named for this input under `cache`') : 'empty (past = 0)'),
    plainRow: pastPlainRow,
  },
];

export function manifestDtype(dt: number): ManifestDtype {
  switch (dt) {
    case DataType.FLOAT: return 'float32';
    case DataType.FLOAT16: return 'float16';
    case DataType.BFLOAT16: return 'bfloat16';
    case DataType.DOUBLE: return 'float64';
    case DataType.INT64: return 'int64';
    case DataType.INT32: return 'int32';
    case DataType.BOOL: return 'bool';
    default: throw new Error(`internal: no manifest dtype for ${dtypeName(dt)}`);
  }
}

/**
 * A source input's role: as site detection found it, else by the names exports give it (an
 * Optimum export's position_ids that positions are not looked up by, as OPT's; a past whose
 * layer keeps its own cache, as Gemma 2's sliding layer).
 */
function roleOf(name: string, sites: ModelSites): SourceInput['role'] | undefined {
  if (name === sites.inputs.inputIds) return 'input_ids';
  if (name === sites.inputs.attentionMask) return 'attention_mask';
  if (name === sites.inputs.positionIds || name === 'position_ids') return 'position_ids';
  if (sites.inputs.past.some((p) => p.key === name || p.value === name) || /^past_key_values\.|^past\.|^past_/.test(name)) return 'past';
  return undefined;
}

/** The descriptor of graph input `name`, or undefined when no pass and no source role describes it. */
export function descriptorOf(name: string, sites: ModelSites, descriptors: readonly InputDescriptor[]): InputDescriptor | undefined {
  const role = roleOf(name, sites);
  return descriptors.find((d) => ('role' in d ? d.role === role
    : d.perLayer ? name.startsWith(d.name) && /^\d+$/.test(name.slice(d.name.length)) : d.name === name));
}

/**
 * The manifest's inputs: every graph input (initializers aside) described by its descriptor;
 * each description is also written as the input's doc string. An input nothing describes is
 * refused: the runner could not fill it.
 */
export function describeInputs(model: ModelProto, sites: ModelSites, request: VariantRequest, descriptors: readonly InputDescriptor[]): ManifestInput[] {
  const g = model.graph!;
  const inits = new Set((g.initializer ?? []).map((t) => t.name));
  return (g.input ?? []).filter((vi) => !inits.has(vi.name)).map((vi) => {
    const fullName = vi.name ?? '';
    const { elemType, shape } = valueInfoShape(vi);
    // the clean copy's inputs (passes/clean-stream.ts): described as the inputs they copy
    const { copied: clean, name, dims } = describedTensor(fullName, shape ?? []);
    const desc = descriptorOf(name, sites, descriptors);
    if (!desc && name.startsWith('dissect_')) throw new Error(`internal: input ${name} has no descriptor (describe it in the pass that adds it)`);
    if (!desc) {
      throw new UserError(`the model's input '${name}' is none dissect can fill (token ids, attention mask, position ids, past keys and values)`,
        'Export the model without this input, or with one of those names.');
    }
    const c: DescribeContext = { sites, request, name, dtype: manifestDtype(elemType ?? 0), shape: dims };
    const meaning = clean ? `the clean stream's ${name}: ${desc.meaning(c)}` : desc.meaning(c);
    const fill = clean ? `as ${name}: for a batch of last-position rows the prompts they read, whole and unchanged; a batch of whole prompts runs here` : desc.fill(c);
    vi.docString = meaning;
    return { name: fullName, dtype: c.dtype, shape: c.shape, meaning, fill, rule: desc.rule, plainRow: desc.plainRow(c) };
  });
}
