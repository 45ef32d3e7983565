// Compiling a variant: load the graph (never the external weights), detect the sites, run
// the rewrite passes the request asks for, and describe every input and output in a
// manifest so that the variant runs without dissect.

import { createHash } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { basename, dirname, extname, join, relative } from 'node:path';
import { hardlinkWeights } from './external.js';
import { valueInfoShape } from './graph.js';
import { describeInputs, manifestDtype, SOURCE_INPUTS, type InputDescriptor } from './inputs.js';
import { KNOCKOUT_INPUTS, knockoutPass, knockoutValue } from './passes/knockout.js';
import { LAST_POSITION_INPUTS, lastPositionPass } from './passes/last-position.js';
import { GATE_INPUTS, gatesPass } from './passes/gates.js';
import { hiddenStatesPass } from './passes/hidden.js';
import { attentionProbsName, attentionProbsPass, READOUT_INPUTS, reducedOutputsPass } from './passes/outputs.js';
import { attributionPass } from './passes/attribution.js';
import { PATCH_INPUTS, patchPass } from './passes/patch.js';
import { START_LAYER_INPUTS, startLayerPass } from './passes/start-layer.js';
import { CLEAN_STREAM_INPUTS, cleanStreamPass } from './passes/clean-stream.js';
import { PROJECTION_INPUTS, projectionName, projectionsPass } from './passes/projections.js';
import { RECOMPUTE_INPUTS } from './passes/recompute.js';
import { dtypeName, encodeModel, type ModelProto } from './proto.js';
import { lowestFinite } from './tensor.js';
import { Rewrite } from './rewrite.js';
import { version } from '../version.js';
import type { OutputFolder } from '../output/folder.js';
import { copyModel, externalDataFiles, inlineGraphFileWeights, readSourceModel, weightsInGraphFile, type SourceModel } from './source.js';
import type { ModelSites } from './sites/types.js';
import {
  describedTensor, EXTERNAL_FOLDER_CONFIG, VariantNames, type CacheEntry, type ManifestInput, type ManifestTensor, type RowConventions, type VariantManifest,
  type VariantRequest, type WeightsLayout,
} from './variant.js';

/** Every input a variant may take, described once: the source model's, then each pass's. */
export const VARIANT_INPUTS: readonly InputDescriptor[] = [
  ...SOURCE_INPUTS, ...Object.values(LAST_POSITION_INPUTS), ...Object.values(KNOCKOUT_INPUTS), ...Object.values(GATE_INPUTS),
  ...Object.values(PATCH_INPUTS), ...Object.values(READOUT_INPUTS), ...Object.values(PROJECTION_INPUTS), ...Object.values(RECOMPUTE_INPUTS),
  ...Object.values(START_LAYER_INPUTS), ...Object.values(CLEAN_STREAM_INPUTS),
];

export interface BuiltVariant {
  readonly bytes: Uint8Array;
  readonly manifest: VariantManifest;
  readonly sites: ModelSites;
}

export interface CompiledVariant {
  /** Absolute path of the written variant graph. */
  readonly modelPath: string;
  readonly manifestPath: string;
  readonly manifest: VariantManifest;
  readonly sites: ModelSites;
}

/** What rewriting learnt: where the cache goes (if asked for), why rows cannot start above block 0 (if asked for and so). */
export interface Rewritten { readonly cache?: CacheEntry[]; readonly startLayerUnsupported?: string }

/** Applies the passes of `request` to `model` (in place). */
export function rewriteModel(model: ModelProto, sites: ModelSites, request: VariantRequest, source = 'model'): Rewritten {
  const rw = new Rewrite(model, source);
  // the cache first: every later pass reads keys and values with the past in front
  const cache = request.lastPosition ? lastPositionPass(rw, sites) : undefined;
  // interventions next (they redirect site tensors), then the reads, which see rw.current(site)
  if (request.knockout) knockoutPass(rw, sites, request.knockout);
  if (request.gates && (request.gates.attention || request.gates.mlp)) gatesPass(rw, sites, request.gates);
  if (request.patch) patchPass(rw, sites);
  reducedOutputsPass(rw, sites, { fromFullLogits: request.logits });
  if (request.hiddenStates) hiddenStatesPass(rw, sites);
  if (request.projections?.length) projectionsPass(rw, sites, request.projections, { attentionGate: !!request.gates?.attention });
  if (request.attentionProbs) attentionProbsPass(rw, sites);
  if (request.attribution) attributionPass(rw, sites, request.attribution, !!request.patch);
  if (!request.logits) rw.removeOutput(sites.logits);
  // last: it moves each block's nodes, as the other passes left them, into a branch
  const startLayerUnsupported = request.startLayer ? startLayerPass(rw, sites) : undefined;
  if (request.cleanStream === 'in-graph') {
    if (!cache) throw new Error('internal: the clean stream in the graph serves last-position rows; the request has none');
    cleanStreamPass(rw, sites, cache);
  }
  rw.finish();
  (model.metadataProps ??= []).push({ key: 'dissect.variant', value: JSON.stringify(request) });
  return { ...(cache ? { cache } : {}), ...(startLayerUnsupported ? { startLayerUnsupported } : {}) };
}

function describeOutputs(model: ModelProto, sites: ModelSites, request: VariantRequest): ManifestTensor[] {
  const meanings: Record<string, string> = {
    [VariantNames.targetProb]: 'softmax probability (float32) of the target (dissect_target, or dissect_top1 where it is negative) at dissect_last_index',
    [VariantNames.targetRank]: 'number of vocabulary entries whose logit is strictly greater than the target\'s (0 = top-1)',
    [VariantNames.top1]: 'argmax of the logits at dissect_last_index (ties: the lowest id)',
    [VariantNames.top1Prob]: 'softmax probability (float32) of dissect_top1',
    [sites.logits]: 'the source model\'s logits [batch, seq, vocab]',
  };
  for (const L of sites.perLayer) {
    meanings[attentionProbsName(L.layer)] = `attention probabilities of layer ${L.layer} [batch, heads, query, key], float32`;
    meanings[`${VariantNames.keyPrefix}${L.layer}`] = `layer ${L.layer}'s keys of this run's tokens (after any rotary embedding), as dissect_past_key_${L.layer} takes them`;
    meanings[`${VariantNames.valuePrefix}${L.layer}`] = `layer ${L.layer}'s values of this run's tokens, as dissect_past_value_${L.layer} takes them`;
  }
  meanings[VariantNames.attribution] = `gradient × hidden state per hidden state 0..${sites.layers} and position, reduced over the model width ` +
    '(see choices.attribution): [batch, layers+1, seq], float32';
  meanings[VariantNames.attributionY] = 'y, the differentiated value per row (see choices.attribution), float32';
  meanings[VariantNames.attributionPatchGradient] = '∂y/∂h for the hidden state h at dissect_patch_layer (as patched): [batch, seq, d_model], ' +
    'float32; zeros for a row that patches nothing';
  meanings[VariantNames.hiddenStates] = `hidden states [batch, ${sites.layers + 1}, seq, d_model]: entry l < ${sites.layers} is block l's input ` +
    `(0 = embedding output; patched if patched), entry ${sites.layers} the residual stream after the last block, before the final norm ` +
    '(Hugging Face\'s last hidden state is after ln_f; this one is not)';
  const siteText: Record<string, string> = {
    hidden: 'hidden_states[l]', attention: 'the attention update of block l (as added to the residual stream, after any gate)',
    mlp: 'the MLP update of block l (as added to the residual stream, after any gate)',
    heads: 'each head\'s share of block l\'s attention update (context of head h · its rows of W_O; no bias; after any attention gate)',
    recomputed: 'block l\'s attention update at each row\'s last position recomputed from the row\'s attention probabilities with the ' +
      'keys of dissect_recompute_remove removed (not propagated; no gate)',
    subject_embeddings: 'the mean token embedding of the subject: Σ dissect_subject_weights[q] · Gather(E, input_ids)[q] (no position embedding)',
  };
  for (const p of request.projections ?? []) {
    const via = p.via === 'embedding' ? 'x·Eᵀ with the input embedding, no final norm' : 'the final norm then the LM head (with bias)';
    const positions = p.site === 'recomputed' ? 'the last position (length 1; 0 when dissect_recompute_remove is [batch, 0])'
      : p.site === 'subject_embeddings' ? 'the subject (length 1)' : 'position of dissect_proj_positions';
    const axes = `[batch, layer ∈ {${p.layers.join(', ')}}${p.site === 'heads' ? ', head' : ''}, ${positions}`;
    const what = `${siteText[p.site]} projected to the vocabulary by ${via}; ids ≥ ${p.vocabLimit} excluded`;
    meanings[projectionName(p.site, 'ids')] = `top-${p.k} token ids of ${what}: ${axes}, rank]`;
    meanings[projectionName(p.site, 'scores')] = `float32 scores of dissect_proj_${p.site}_ids (descending; ties: lowest id first): ${axes}, rank]`;
    meanings[projectionName(p.site, 'target_rank')] = `number of vocabulary entries scoring strictly above dissect_target in ${what}: ${axes}]`;
    meanings[projectionName(p.site, 'norm')] = `float32 L2 norm of ${siteText[p.site]}, before projection: ${axes}]`;
  }
  return (model.graph!.output ?? []).map((vi) => {
    const { elemType, shape } = valueInfoShape(vi);
    // the clean copy's (passes/clean-stream.ts): what a batch of whole prompts reads
    const { copied, name, dims } = describedTensor(vi.name ?? '', shape ?? []);
    const meaning = meanings[name] ?? 'output of the source model (passed through)';
    return {
      name: vi.name ?? '',
      dtype: manifestDtype(elemType ?? 0),
      shape: dims,
      meaning: copied ? `the clean stream's ${meaning}` : meaning,
    };
  });
}

function choices(sites: ModelSites, request: VariantRequest, rewritten: Rewritten): Record<string, string> {
  const c: Record<string, string> = {
    reducedOutputs: 'last-position logits cast to float32 before Softmax/ArgMax; rank = count of strictly greater logits; ties in top-1: lowest id',
    lastPosition: request.logits ? 'gathered from the full logits' : 'LM head applied to the gathered last hidden state only',
  };
  if (request.knockout) {
    c.knockout = `replacement: Where(causal, Where(blocked, B, scores), F) on each Softmax input, B = ${knockoutValue(request.knockout, sites.dtype)} ` +
      `(half the lowest finite ${dtypeName(sites.dtype)}), F = ${lowestFinite(sites.dtype)} (the lowest finite) on future keys`;
    c.knockoutConsequences = 'a blocked weight is exactly 0 while any causal key of the row stays open; a fully blocked row ' +
      'is uniform over its causal prefix (future keys hold F, below B); no NaN';
  }
  const where = sites.block === 'parallel' ? 'where the parallel block\'s sum (residual + attention + MLP) reads it' : 'where the residual Add reads it';
  if (request.gates?.attention) c.gateAttention = `zero_update: Mul(attention update, gate) ${where}`;
  if (request.gates?.mlp === 'zero_update') c.gateMlp = `zero_update: Mul(MLP update, gate) ${where}`;
  if (request.gates?.mlp === 'zero_preactivation') {
    c.gateMlp = `zero_preactivation: Mul(MLP pre-activations, gate) before the activation (${sites.activation}); a cancelled MLP writes its output bias`;
  }
  if (request.patch) {
    c.patch = 'Where(patch_layer = l ∧ mask, values, hidden state l) for every reader of hidden state l (pre-norm and residual), ' +
      'like a forward pre-hook on block l (on the final norm for l = L)';
  }
  if (request.hiddenStates) c.hiddenStates = `entry ${sites.layers} is the residual stream after the last block, before the final norm`;
  if (request.projections?.length) {
    c.projections = 'only the rows at dissect_proj_positions are projected; scores cast to float32, ids ≥ vocabLimit set to −∞, ' +
      'TopK sorted (ties: lowest id); rank = count of strictly greater scores; final_norm_unembedding reuses the model\'s final LayerNorm nodes';
  }
  if (request.attribution) {
    c.attribution = `y = the ${request.attribution.target} of dissect_target at dissect_last_index; backward nodes emitted into the graph ` +
      `(reverse-mode, one rule per op); per position ${request.attribution.reduction === 'sum' ? 'Σ_d h_d · ∂y/∂h_d' : '‖h ⊙ ∂y/∂h‖₂'} ` +
      'over hidden states 0..L as dissect_hidden_states defines them, computed in the model\'s dtype';
  }
  if (request.startLayer) {
    c.startLayer = rewritten.startLayerUnsupported
      ? `unavailable (${rewritten.startLayerUnsupported}): every row runs from block 0, without the start-layer inputs`
      : 'each block is an If on block < dissect_start_layer: a skipped block returns dissect_start_hidden as its residual output ' +
        '(and, for whatever else it computes, stand-ins of the same shape that nothing may read); at start 0 every block runs as in the source graph';
  }
  if (request.cleanStream) {
    c.cleanStream = 'in-graph: a copy of the variant (names prefixed dissect_clean/, weights shared) runs the prompts the batch\'s rows read, ' +
      'whole and unchanged; the rows read its keys and values as their past, and its hidden state entering dissect_start_layer at ' +
      'dissect_past_row, dissect_past_length; a batch of whole prompts runs in the copy, the rows\' part one placeholder token against its first prompt';
  }
  const recompute = request.projections?.find((p) => p.site === 'recomputed')?.recompute;
  if (recompute === 'renormalise') {
    c.recompute = 'renormalise: P\' = P with the removed keys set to 0, divided per head by the kept sum (0 if that sum is 0); ' +
      'out = merge_heads(P\'·V)·W_O + b_O at the last position (weights in float32), not propagated';
  } else if (recompute === 'paper_resoftmax') {
    c.recompute = 'paper_resoftmax: P\' = softmax over the row\'s keys of (P with the removed keys set to −1e6), as the paper\'s code; ' +
      'every key removed → P\' = 0; out = merge_heads(P\'·V)·W_O + b_O at the last position, not propagated';
  }
  return c;
}

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

interface Prepared {
  source: SourceModel;
  /** The rewritten copy of the source's graph. */
  model: ModelProto;
  /** The rewritten graph's inputs, described (which also writes their doc strings into `model`). */
  inputs: ManifestInput[];
  files: readonly string[];
  rewritten: Rewritten;
}

/** A model path is read here; a SourceModel was read once for the whole run (its site overrides applied then). */
function sourceOf(source: string | SourceModel, request: VariantRequest): SourceModel {
  return typeof source === 'string' ? readSourceModel(source, request.siteOverrides) : source;
}

function prepare(source: SourceModel, request: VariantRequest, model = copyModel(source.model), files = source.files): Prepared {
  const rewritten = rewriteModel(model, source.sites, request, source.path);
  const inputs = describeInputs(model, source.sites, request, VARIANT_INPUTS);
  return { source, model, inputs, files, rewritten };
}

function manifestFor(p: Prepared, request: VariantRequest, model: string, weights: VariantManifest['weights'], rows?: RowConventions): VariantManifest {
  const { sites } = p.source;
  return {
    format: 'dissect-variant/2',
    tool: { name: 'dissect', version },
    source: { path: p.source.path, sha256: p.source.sha256() },
    model,
    weights,
    family: sites.family,
    ...(sites.expandedFusedOps ? { expandedFusedOps: sites.expandedFusedOps } : {}),
    layers: sites.layers,
    heads: sites.heads,
    dModel: sites.dModel,
    vocab: sites.vocab,
    dtype: manifestDtype(sites.dtype),
    inputs: p.inputs,
    outputs: describeOutputs(p.model, sites, request),
    choices: choices(sites, request, p.rewritten),
    ...(p.rewritten.cache ? { cache: p.rewritten.cache } : {}),
    ...(request.cleanStream ? { cleanStream: request.cleanStream } : {}),
    ...(rows ? { rows } : {}),
  };
}

/**
 * The variant in memory. With weights on disk (external data, or the source's own inline
 * weights, which readModelGraph leaves in its file), the session must be created with
 * `manifest.weights.sessionConfig` (flat keys, as onnxruntime's `extra` session option accepts
 * them), which points onnxruntime at the source folder: the variant's bytes hold no weights.
 */
export function buildVariant(source: string | SourceModel, request: VariantRequest): BuiltVariant {
  const p = prepare(sourceOf(source, request), request);
  const srcDir = dirname(p.source.path);
  const weights: VariantManifest['weights'] = p.files.length
    ? { layout: 'external-source-folder', files: p.files, folder: srcDir, sessionConfig: { [EXTERNAL_FOLDER_CONFIG]: srcDir } }
    : { layout: 'embedded', files: [] };
  return { bytes: encodeModel(p.model), manifest: manifestFor(p, request, '', weights), sites: p.source.sites };
}

export interface CompileOptions {
  /** External weights: 'auto' hardlinks them beside the variant and falls back to writing
   *  the variant beside the source; 'beside-source' goes there directly. */
  readonly weights?: 'auto' | 'beside-source';
  /** How the program turns facts into rows, recorded in the manifest. */
  readonly rows?: RowConventions;
}

/**
 * Writes the variant graph and manifest.json into `out` (see WeightsLayout for where the graph
 * goes). A source with inline weights gives a variant with them inline too, whole on its own.
 */
export function compileVariant(source: string | SourceModel, request: VariantRequest, out: OutputFolder, opts: CompileOptions = {}): CompiledVariant {
  const read = sourceOf(source, request);
  const model = copyModel(read.model);
  if (weightsInGraphFile(read)) inlineGraphFileWeights(model, read);
  const p = prepare(read, request, model, externalDataFiles(read.files, read.path));
  const bytes = encodeModel(p.model);
  const modelPath = read.path;
  const srcDir = dirname(modelPath);
  let layout: WeightsLayout = 'embedded';
  let target = out.file('model.onnx');
  if (target === modelPath) target = out.file('variant.onnx');
  let folder: string | undefined;
  if (p.files.length) {
    if (opts.weights !== 'beside-source' && hardlinkWeights(p.files, srcDir, out)) {
      layout = 'hardlinked';
      folder = out.dir;
    } else {
      layout = 'external-beside-source';
      folder = srcDir;
      const stem = basename(modelPath, extname(modelPath));
      target = join(srcDir, `${stem}.dissect-${sha256(bytes).slice(0, 12)}.onnx`);
    }
  }
  if (existsSync(target) && target === modelPath) throw new Error('internal: refusing to overwrite the source model');
  if (folder === srcDir) writeFileSync(target, bytes);
  else out.write(relative(out.dir, target), bytes);
  const manifest = manifestFor(p, request, relative(out.dir, target), {
    layout, files: p.files, ...(folder ? { folder } : {}),
  }, opts.rows);
  const manifestPath = out.write('manifest.json', JSON.stringify(manifest, null, 2) + '\n');
  return { modelPath: target, manifestPath, manifest, sites: p.source.sites };
}
