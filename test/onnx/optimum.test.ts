// Optimum-style exports (text-generation-with-past) of GPT-J and Llama: generated/fixtures/
// gptj-optimum.onnx (scripts/make_fixtures.py; reference in fixtures.json) and llama-optimum.onnx
// (scripts/make_llama_fixture.py; llama.json), both anonymised. Inputs input_ids, attention_mask,
// position_ids and past_key_values.{i}.key/value; outputs logits and present.{i}.key/value. The
// Llama cache holds its 2 key/value heads (before the repeat to the 4 query heads).

import test, { type ExecutionContext } from 'ava';
import { readFileSync } from 'node:fs';
import ort from 'onnxruntime-node';
import { buildVariant } from '../../src/onnx/compile.js';
import { GraphIndex } from '../../src/onnx/graph.js';
import { inspectModel, renderInspectText } from '../../src/onnx/inspect.js';
import { encodeModel, readModel } from '../../src/onnx/proto.js';
import { detectSites } from '../../src/onnx/sites/index.js';
import type { ArchitectureFamily, ModelSites } from '../../src/onnx/sites/types.js';
import { bool, fixture, fixturePath, int64, maxAbs, maxAbsDiff, numbers, session } from './helpers.js';
import { checkKnockoutBlocks, type KnockoutProbe } from './reference.js';

interface Sequence { readonly input_ids: number[]; readonly attention_mask: number[]; readonly logits: number[][] }
interface WithPast { readonly sequence: number; readonly past_length: number; readonly logits: number[][] }

interface Case {
  readonly file: string;
  readonly family: ArchitectureFamily;
  /** Heads the cache holds. */
  readonly cacheHeads: number;
  readonly sequences: readonly Sequence[];
  readonly withPast: WithPast;
}

const llama = JSON.parse(readFileSync(fixturePath('llama.json'), 'utf8')) as { sequences: Sequence[]; optimum: { file: string; with_past: WithPast } };
const gptj = fixture('gptj-optimum.onnx') as unknown as { sequences: Sequence[]; with_past: WithPast };

const CASES: readonly Case[] = [
  { file: 'gptj-optimum.onnx', family: 'gptj', cacheHeads: 4, sequences: gptj.sequences, withPast: gptj.with_past },
  // with an empty past the Optimum graph's reference is the plain one's (checked equal in the script)
  { file: llama.optimum.file, family: 'llama', cacheHeads: 2, sequences: llama.sequences, withPast: llama.optimum.with_past },
];

const L = 2;
const H = 4;
const DH = 8;
const PAST_NAMES = [0, 1].map((layer) => ({ layer, key: `past_key_values.${layer}.key`, value: `past_key_values.${layer}.value` }));
const PRESENT_NAMES = [0, 1].flatMap((l) => [`present.${l}.key`, `present.${l}.value`]);

/**
 * The source model's inputs for one row: ids at positions mask.length − ids.length … (after the
 * past), the cache fed as given (default: empty, with the heads the graph declares).
 */
function feeds(sites: ModelSites, c: Case, ids: readonly number[], mask: readonly number[], past?: Record<string, ort.Tensor>): Record<string, ort.Tensor> {
  const from = mask.length - ids.length;
  const f: Record<string, ort.Tensor> = {
    [sites.inputs.inputIds]: int64(ids, [1, ids.length]),
    [sites.inputs.attentionMask!]: int64(mask, [1, mask.length]),
    [sites.inputs.positionIds!]: int64(ids.map((_, i) => from + i), [1, ids.length]),
  };
  for (const p of sites.inputs.past) {
    for (const t of [p.key, p.value]) f[t] = past?.[t] ?? new ort.Tensor('float32', new Float32Array(0), [1, c.cacheHeads, 0, DH]);
  }
  return f;
}

function withinRel(t: ExecutionContext, got: readonly number[], want: readonly number[], what: string): void {
  const diff = maxAbsDiff(got, want);
  t.true(diff <= 1e-5 * maxAbs(want), `${what}: |Δ| ${diff} vs torch (max |logit| ${maxAbs(want)})`);
}

for (const c of CASES) {
  const path = fixturePath(c.file);

  test(`${c.file}: detected as ${c.family} with the past inputs, position_ids and the attention mask`, (t) => {
    const sites = detectSites(readModel(path), c.file);
    t.is(sites.family, c.family);
    t.is(sites.layers, L);
    t.is(sites.heads, H);
    t.is(sites.kvHeads, c.cacheHeads < H ? c.cacheHeads : undefined);
    t.deepEqual(sites.inputs, { inputIds: 'input_ids', attentionMask: 'attention_mask', positionIds: 'position_ids', past: PAST_NAMES });
    t.is(sites.logits, 'logits');
    const text = renderInspectText(inspectModel(path));
    t.regex(text, new RegExp(`^${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: ${c.family}, 2 layers, 4 heads × 8`));
    t.regex(text, /\n {2}position_ids +position_ids {2}← input\n/);
    t.regex(text, /note: kv cache .*: layer 0 past_key_values\.0\.key, past_key_values\.0\.value; layer 1 past_key_values\.1\.key, past_key_values\.1\.value\n/);
    t.regex(text, /supported: yes\n$/);
  });

  test.serial(`${c.file}: a variant without intervention reproduces PyTorch, empty and non-empty past; present.* untouched`, async (t) => {
    const built = buildVariant(path, { knockout: false, logits: true });
    const { sites } = built;
    const original = await session(path);
    const variant = await session(built.bytes);
    t.deepEqual(variant.outputNames.filter((o) => !o.startsWith('dissect_')), ['logits', ...PRESENT_NAMES]);
    const extra = (n: number) => ({ dissect_last_index: int64([n - 1], [1]), dissect_target: int64([0], [1]) });
    for (const q of c.sequences) {
      const n = q.input_ids.length;
      const f = feeds(sites, c, q.input_ids, q.attention_mask);
      const out = await variant.run({ ...f, ...extra(n) });
      withinRel(t, numbers(out.logits!), q.logits.flat(), `length ${n}`);
      const before = await original.run(f);
      for (const o of PRESENT_NAMES) {
        t.deepEqual(out[o]!.dims, [1, c.cacheHeads, n, DH]);
        t.deepEqual(numbers(out[o]!), numbers(before[o]!), `${o} as the source model's`);
      }
    }
    // the prefix's present.* as the past of the rest: the variant continues as PyTorch does
    const { sequence, past_length: P, logits } = c.withPast;
    const q = c.sequences[sequence]!;
    const n = q.input_ids.length;
    const prefix = await original.run(feeds(sites, c, q.input_ids.slice(0, P), q.attention_mask.slice(0, P)));
    const past = Object.fromEntries(PAST_NAMES.flatMap((p) => [[p.key, prefix[`present.${p.layer}.key`]!], [p.value, prefix[`present.${p.layer}.value`]!]]));
    const out = await variant.run({ ...feeds(sites, c, q.input_ids.slice(P), q.attention_mask, past), ...extra(n - P) });
    t.deepEqual(out.logits!.dims, [1, n - P, sites.vocab]);
    withinRel(t, numbers(out.logits!), logits.flat(), `after a past of ${P}`);
    t.deepEqual(out['present.0.key']!.dims, [1, c.cacheHeads, n, DH]);
  });

  if (c.cacheHeads < H) {
    test.serial(`${c.file}: the k and v sites are per query head, after the repeat of the cached key/value heads`, async (t) => {
      const model = readModel(path);
      const sites = detectSites(model, c.file);
      const L0 = sites.perLayer[0]!;
      model.graph!.output!.push({ name: L0.k, type: { tensorType: { elemType: 1 } } }, { name: L0.v, type: { tensorType: { elemType: 1 } } });
      const ix = new GraphIndex(model.graph!);
      t.not(ix.producer(L0.k)?.opType, 'Concat', 'k is read after the repeat, not at the cache Concat');
      const s = await session(encodeModel(model));
      const q = c.sequences[1]!;
      const n = q.input_ids.length;
      const out = await s.run(feeds(sites, c, q.input_ids, q.attention_mask));
      const group = H / c.cacheHeads;
      for (const [site, present] of [[L0.k, 'present.0.key'], [L0.v, 'present.0.value']] as const) {
        t.deepEqual(out[site]!.dims, [1, H, n, DH], site);
        const rep = numbers(out[site]!);
        const cached = numbers(out[present]!);
        for (let h = 0; h < H; h++) {
          const kv = Math.floor(h / group);
          t.deepEqual(rep.slice(h * n * DH, (h + 1) * n * DH), cached.slice(kv * n * DH, (kv + 1) * n * DH), `${site} head ${h} = cached head ${kv}`);
        }
      }
    });
  }

  test.serial(`${c.file}: knockout of one edge — blocked weight 0, the others renormalised; output names as Optimum's`, async (t) => {
    const built = buildVariant(path, { knockout: 'replace_half_min', logits: true, attentionProbs: true });
    const { sites } = built;
    const s = await session(built.bytes);
    t.deepEqual(s.outputNames.filter((o) => !o.startsWith('dissect_')), ['logits', ...PRESENT_NAMES]);
    const q = c.sequences[1]!;
    const n = q.input_ids.length;
    const probe: KnockoutProbe = {
      run: async (mask, heads) => {
        const out = await s.run({
          ...feeds(sites, c, q.input_ids, q.attention_mask), dissect_knockout: bool(mask, [1, L, heads, n, n]),
          dissect_last_index: int64([n - 1], [1]), dissect_target: int64([0], [1]),
        });
        return { probs: Array.from({ length: L }, (_, l) => numbers(out[`dissect_attn_probs_${l}`]!)), logits: numbers(out.logits!) };
      },
      maskOf: (heads) => {
        const m = new Uint8Array(L * heads * n * n);
        return { m, set: (l, h, qi, k) => { m[((l * heads + h) * n + qi) * n + k] = 1; } };
      },
      row: (r, l, h, qi) => r.probs[l]!.slice((h * n + qi) * n, (h * n + qi + 1) * n),
    };
    await checkKnockoutBlocks(t, probe, { L, H, n }, [[0, 6, [2]], [1, 5, [0, 3]]]);

    // one edge 6 ← k in layer 0 (k: the key every head weighs most, the row's min over heads):
    // its weight goes to 0 and every other key keeps its share, renormalised (layer 0's scores
    // do not depend on the knockout)
    const base = await probe.run(probe.maskOf(1).m, 1);
    const rows = Array.from({ length: H }, (_, h) => probe.row(base, 0, h, 6));
    const least = (k: number): number => Math.min(...rows.map((p) => p[k]!));
    const k0 = [...Array(7).keys()].reduce((a, k) => (least(k) > least(a) ? k : a), 0);
    t.true(least(k0) > 0.01, `the blocked edge 6 ← ${k0} has weight in every head (${least(k0)})`);
    const { m, set } = probe.maskOf(1);
    set(0, 0, 6, k0);
    const r = await probe.run(m, 1);
    for (let h = 0; h < H; h++) {
      const before = rows[h]!;
      const after = probe.row(r, 0, h, 6);
      t.is(after[k0], 0);
      // the open keys' sum, not 1 − p(k0): no cancellation when k0 held most of the weight
      const open = before.reduce((acc, p, k) => acc + (k === k0 ? 0 : p), 0);
      for (let k = 0; k < n; k++) {
        if (k === k0) continue;
        const want = before[k]! / open;
        t.true(Math.abs(after[k]! - want) <= 1e-6 * Math.max(want, 1e-3), `head ${h} key ${k}: ${after[k]} vs ${want}`);
      }
    }
  });
}
