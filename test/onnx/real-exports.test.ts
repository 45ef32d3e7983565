// Real exports (generated/real: transformers' own model classes, torch's own exporters, onnxruntime's
// own optimizer; see its README): every export dissect claims is recognised as its family, and a
// compiled variant reproduces transformers' logits and residual stream without intervention and
// transformers' own attention knockouts (AttentionInterface, one prompt per forward) through dissect_knockout.
// Exports dissect does not support yet are listed with the error they must get, so the list
// stays true: one that starts to work fails here until it moves to the checked ones.

import test from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { buildVariant } from '../../src/onnx/compile.js';
import { UserError } from '../../src/errors.js';
import { detectSites, inspectModel, readModel } from '../../src/onnx/index.js';
import { argmax, bool, int64, maxAbs, maxAbsDiff, numbers, REPO, session, softmax } from './helpers.js';

const ZOO = join(REPO, 'generated', 'real');

interface Export {
  readonly family: string;
  readonly file: string;
  readonly dtype: 'fp32' | 'fp16';
  readonly layout: string;
  readonly status: string;
  readonly inputs: readonly { readonly name: string; readonly shape: readonly (string | number)[] }[];
}

interface Prompt { readonly name: string; readonly input_ids: number[]; readonly attention_mask: number[]; readonly last: number }
interface KnockoutCase {
  readonly prompt: string;
  readonly case: string;
  readonly target_position: number;
  readonly source_positions: number[];
  /** layer → query heads blocked (null: all). */
  readonly layers: Readonly<Record<string, number[] | null>>;
  readonly logsoftmax_last: number[];
}
/** transformers' residual stream at a prompt's last position: hidden_states[k] (k = n_layers after the final norm) and the final norm's input. */
interface Residual { readonly prompt: string; readonly hidden_states: number[][]; readonly final_norm_input: number[] }
interface Expected {
  readonly model: { readonly n_layers: number; readonly n_heads: number };
  readonly residual: Residual[];
  readonly prompts: Prompt[];
  readonly clean: { prompt: string; logits: number[][] }[];
  readonly clean_fp16?: { prompt: string; logits: number[][] }[];
  readonly knockout: { readonly cases: KnockoutCase[] };
}

// `ok_unlisted`: architectures beyond the required list, exported to check that models built from
// the same parts are recognised with no code of their own
const manifest = (JSON.parse(readFileSync(join(ZOO, 'manifest.json'), 'utf8')) as { exports: Export[] }).exports
  .filter((e) => e.status === 'ok' || e.status === 'ok_unlisted');
const expectedOf = new Map<string, Expected>();
const expected = (family: string): Expected => {
  let e = expectedOf.get(family);
  if (!e) expectedOf.set(family, (e = JSON.parse(readFileSync(join(ZOO, family, 'expected.json'), 'utf8')) as Expected));
  return e;
};

/** transformers' model_type → the family dissect names the parts it finds (Mistral and Qwen2 are built from Llama's). */
const FAMILY: Readonly<Record<string, string>> = {
  gpt2: 'gpt2', gptj: 'gptj', gpt_neox: 'gpt_neox', opt: 'opt', llama: 'llama', mistral: 'llama', qwen2: 'llama', phi3: 'phi3',
  gemma: 'gemma', gemma2: 'gemma2',
  // beyond the list: named by the parts they share (Granite's are Gemma's, plus constant scales)
  qwen3: 'llama', granite: 'gemma', mpt: 'decoder', cohere: 'decoder',
};

/** Not supported yet, with the error each gets (naming the node where matching stops). */
const UNSUPPORTED: readonly (readonly [RegExp, RegExp])[] = [
  // ALiBi scores computed 3-D ([b·h, q, k]) by baddbmm
  [/^bloom\//, /unembedding not found: at .* \(LayerNormalization\): expected the LM head/],
  // multi-query: k and v as parts of [b, s, h + 2, dh], or a [d | dh | dh] split
  [/^falcon\//, /q not found: at .* \(Reshape\): expected the fused q\|k\|v projection split into three/],
  [/^gpt_bigcode\//, /q not found: at .* \(Unsqueeze\): expected the fused q\|k\|v projection split into three/],
  // no norm before the sublayers (only after them)
  [/^olmo2\//, /no layers found|firstNorm not found/],
];

/** The sdpa attention of Gemma 2 in transformers drops the soft-cap: its export is not the eager model expected.json holds. */
const notEager = (e: Export): boolean => e.family === 'gemma2' && e.file.includes('sdpa');

/**
 * Feeds for one prompt repeated `rows` times: the export's own inputs that the variant takes
 * (Optimum: positions and an empty past; a merged decoder's switch is gone from the variant).
 */
function exportFeeds(e: Export, p: Prompt, rows: number, takes: readonly string[]): Record<string, ort.Tensor> {
  const n = p.input_ids.length;
  const feeds: Record<string, ort.Tensor> = {};
  for (const input of e.inputs.filter((i) => takes.includes(i.name))) {
    if (input.name === 'input_ids') feeds[input.name] = int64(Array(rows).fill(p.input_ids).flat(), [rows, n]);
    else if (input.name === 'attention_mask') feeds[input.name] = int64(Array(rows).fill(p.attention_mask).flat(), [rows, n]);
    else if (input.name === 'position_ids') feeds[input.name] = int64(Array(rows).fill([...Array(n).keys()]).flat(), [rows, n]);
    else {
      const dims = input.shape.map((d) => (typeof d === 'number' ? d : /past/.test(d) ? 0 : rows));
      feeds[input.name] = new ort.Tensor(e.dtype === 'fp16' ? 'float16' : 'float32', e.dtype === 'fp16' ? new Uint16Array(0) : new Float32Array(0), dims);
    }
  }
  return feeds;
}

const logSoftmax = (xs: readonly number[]): number[] => {
  const m = Math.max(...xs);
  const lse = m + Math.log(xs.reduce((a, x) => a + Math.exp(x - m), 0));
  return xs.map((x) => x - lse);
};

for (const e of manifest) {
  const unsupported = UNSUPPORTED.find(([file]) => file.test(e.file));
  const path = join(ZOO, e.file);
  if (unsupported) {
    test(`${e.file}: refused, naming the node where matching stops (and a site statement for a layer's site)`, (t) => {
      const error = t.throws(() => detectSites(readModel(path), e.file), { instanceOf: UserError });
      t.regex(error!.message, unsupported[1]);
      t.regex((error as UserError).hint!, /dissect inspect/);
      // a layer's site can be named by a statement; the embedding or LM head cannot
      if (/layer \d+: /.test(error!.message)) t.regex((error as UserError).hint!, /name it in the \.dissect file: site [a-z_]+ at layers all = /);
    });
    continue;
  }
  test.serial(`${e.file}: ${FAMILY[e.family]}; a variant reproduces transformers' logits and knockouts`, async (t) => {
    const x = expected(e.family);
    const sites = detectSites(readModel(path), e.file);
    t.is(sites.family as string | undefined, FAMILY[e.family]);
    t.is(sites.layers, x.model.n_layers);
    t.is(sites.heads, x.model.n_heads);
    const report = inspectModel(path);
    t.deepEqual(report.layers.map((L) => L.confidence), report.layers.map(() => 'high'), 'inspect: every layer matched by pattern');
    const built = buildVariant(path, { knockout: 'replace_half_min', logits: true, hiddenStates: true });
    const variant = await session(built.bytes, built.manifest.weights.sessionConfig);
    const lean = buildVariant(path, { knockout: false, logits: false });
    const reduced = await session(lean.bytes, lean.manifest.weights.sessionConfig);
    const fp16 = e.dtype === 'fp16';
    const tolerance = fp16 ? 1e-2 : 1e-5;
    const clean = (fp16 ? x.clean_fp16 : x.clean) ?? x.clean;
    const { n_layers: L, n_heads: H } = x.model;
    for (const p of x.prompts) {
      const n = p.input_ids.length;
      const cases = notEager(e) ? [] : x.knockout.cases.filter((c) => c.prompt === p.name);
      const rows = 1 + cases.length;
      const mask = new Uint8Array(rows * L * H * n * n);
      cases.forEach((c, i) => {
        for (const [layer, heads] of Object.entries(c.layers)) {
          for (const h of heads ?? [...Array(H).keys()]) {
            for (const s of c.source_positions) mask[((((i + 1) * L + Number(layer)) * H + h) * n + c.target_position) * n + s] = 1;
          }
        }
      });
      const out = await variant.run({
        ...exportFeeds(e, p, rows, variant.inputNames),
        dissect_knockout: bool(mask, [rows, L, H, n, n]),
        dissect_last_index: int64(Array(rows).fill(p.last), [rows]),
        dissect_target: int64(Array(rows).fill(0), [rows]),
      });
      const logits = numbers(out.logits!);
      const V = logits.length / (rows * n);
      // Fed position_ids 0…n−1, an Optimum export gives padded positions other positions than
      // transformers does without them (OPT counts positions from the mask): real positions only then.
      const compared = e.inputs.some((i) => i.name === 'position_ids') ? p.last + 1 : n;
      const ref = clean.find((c) => c.prompt === p.name)!.logits.slice(0, compared).flat();
      if (!notEager(e)) {
        const err = maxAbsDiff(logits.slice(0, compared * V), ref);
        t.true(err <= tolerance * maxAbs(ref), `${p.name}: clean logits differ from transformers' by ${err}`);
      }
      // the residual stream: dissect's hidden state l < L is transformers' hidden_states[l]; its
      // entry L is the stream before the final norm (transformers' last entry is after it)
      const residual = x.residual.find((r) => r.prompt === p.name);
      if (residual && !notEager(e)) {
        const hidden = numbers(out['dissect_hidden_states']!);
        const d = hidden.length / (rows * (L + 1) * n);
        const at = (l: number): number[] => hidden.slice((l * n + p.last) * d, (l * n + p.last + 1) * d);
        const want = [...residual.hidden_states.slice(0, L), residual.final_norm_input];
        want.forEach((w, l) => {
          const err = maxAbsDiff(at(l), w);
          t.true(err <= tolerance * Math.max(maxAbs(w), 1), `${p.name}: hidden state ${l} differs from transformers' by ${err}`);
        });
      }
      cases.forEach((c, i) => {
        const row = logits.slice(((i + 1) * n + c.target_position) * V, ((i + 1) * n + c.target_position + 1) * V);
        const err = maxAbsDiff(logSoftmax(row), c.logsoftmax_last);
        t.true(err <= tolerance * maxAbs(c.logsoftmax_last), `${p.name} ${c.case}: log-probabilities differ from transformers' by ${err}`);
      });
      if (notEager(e)) continue;
      // the reduced outputs compute the last logits from the final norm through the LM head as
      // dissect rebuilds it (bias, scale, soft-cap): transformers' top-1 and its probability
      const last = clean.find((c) => c.prompt === p.name)!.logits[p.last]!;
      const reducedOut = await reduced.run({
        ...exportFeeds(e, p, 1, reduced.inputNames),
        dissect_last_index: int64([p.last], [1]),
        dissect_target: int64([0], [1]),
      });
      const probs = softmax(last);
      t.is(Number(reducedOut['dissect_top1']!.data[0]), argmax(last), `${p.name}: top-1 from the rebuilt LM head`);
      const pErr = Math.abs(numbers(reducedOut['dissect_top1_prob']!)[0]! - Math.max(...probs));
      t.true(pErr <= 10 * tolerance, `${p.name}: top-1 probability from the rebuilt LM head differs by ${pErr}`);
      t.true(Math.abs(numbers(reducedOut['dissect_target_prob']!)[0]! - probs[0]!) <= 10 * tolerance, `${p.name}: p(token 0)`);
    }
  });
}
