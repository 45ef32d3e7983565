// What each forward pass feeds and fetches, decided in one place. onnxruntime-node has no IO
// binding: with the CUDA execution provider every feed is copied to the device and every
// fetched output back to the host (onnxruntime computes every output either way). So a pass
// fetches only what the host reads — its read-outs and its probes' outputs — plus the outputs
// that come back as a later pass's feeds, the one host round trip left: a clean pass's keys and
// values (for its prompt's last-position rows, fed once per prompt of a batch; see
// dissect_past_row) and its hidden states (for patches, and rows that begin at a later block).
// With the clean stream in the graph (the CUDA default) that round trip is gone: a clean pass
// keeps nothing for later passes, and a pass of whole prompts reads the outputs of the graph's
// clean copy, which runs them (src/onnx/passes/clean-stream.ts).

import type { ProbePlan } from '../plan/plan.js';
import { CLEAN_STREAM_PREFIX, VariantNames, type VariantManifest } from '../onnx/variant.js';
import type * as ort from 'onnxruntime-node';
import { buildFeeds, type BatchRow } from './batch.js';
import { InternalError } from './errors.js';
import { probeFetches } from './probes.js';
import type { DecodedTensor, RunSession } from './session.js';

/**
 * - clean: a prompt's own run; reads its top-1 (the target) and the probes of the rows read from it;
 * - corrupted: the corrupted prompt's run, for its hidden states alone;
 * - integration: an integrated-gradients row that blocks or cancels, run as it is, for the hidden
 *   states alone (the integration starts from its own);
 * - rows: configurations; read the target's probability and rank and their probes.
 */
export type PassKind = 'clean' | 'corrupted' | 'integration' | 'rows';

export interface PassNeeds {
  readonly kind: PassKind;
  /** Probes whose outputs the host reads from this pass. */
  readonly probes: readonly ProbePlan[];
  /** The hidden states come back as patch values (or integrated gradients' inputs). */
  readonly hidden?: boolean;
  /** The keys and values come back as the past of last-position rows. */
  readonly cache?: boolean;
}

export interface PassIO {
  readonly feeds: Record<string, ort.Tensor>;
  readonly fetches: readonly string[];
  /** Runs the pass on `session`; its outputs by the variant's names (the clean copy's prefix taken off). */
  run(session: RunSession): Promise<Record<string, DecodedTensor>>;
}

const READ_OUTS: Readonly<Record<PassKind, readonly string[]>> = {
  clean: [VariantNames.top1, VariantNames.top1Prob],
  corrupted: [],
  integration: [],
  rows: [VariantNames.targetProb, VariantNames.targetRank],
};

/** The feeds of `rows` and the outputs the pass fetches; a fetch the variant does not output is a contract error. */
export function passIO(needs: PassNeeds, manifest: VariantManifest, rows: readonly BatchRow[]): PassIO {
  const cache = needs.cache ? (manifest.cache ?? []).flatMap((c) => [c.key.output, c.value.output]) : [];
  if (needs.cache && !cache.length) throw new InternalError('a pass keeps keys and values of a variant without a cache');
  const fetches = [...new Set([
    ...READ_OUTS[needs.kind], ...probeFetches(needs.probes), ...(needs.hidden ? [VariantNames.hiddenStates] : []), ...cache,
  ])];
  // whole prompts run in the clean copy when the clean stream is in the graph
  const prefix = manifest.cleanStream && !rows[0]?.past ? CLEAN_STREAM_PREFIX : '';
  const fetched = fetches.map((f) => prefix + f);
  const missing = fetched.filter((f) => !manifest.outputs.some((o) => o.name === f));
  if (missing.length) throw new InternalError(`a ${needs.kind} pass fetches ${missing.join(', ')}, which the variant does not output`);
  const feeds = buildFeeds(manifest, rows);
  return {
    feeds, fetches: fetched,
    run: async (session) => {
      const out = await session.run(feeds, fetched);
      return prefix ? Object.fromEntries(Object.entries(out).map(([name, t]) => [name.slice(prefix.length), t])) : out;
    },
  };
}
