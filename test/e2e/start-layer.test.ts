// Rows that begin at the first block they change or read, from the clean run's hidden state,
// end to end: the paper's information flow (last-position rows), blocks into every position,
// sublayer cancels and patches (whole-prompt rows) and projections of updates, heads and hidden
// states, on the default GPT-2 and the default GPT-J (rotary positions), give the numbers of
// the same run with every row from block 0 (--all-layers), and cost fewer clean forwards.

import test from 'ava';
import { informationFlowSource, runSource, sameNumbers, START_LAYER_EXPERIMENTS, tinyGpt2, tinyGptj } from './helpers.js';

for (const [name, model] of [['tiny-gpt2', tinyGpt2], ['tiny-gptj (rotary)', tinyGptj]] as const) {
  test.serial(`${name}: rows from their first block equal rows from block 0, at fewer clean-forward equivalents`, async (t) => {
    const source = `${informationFlowSource(3, '', model)}\n${START_LAYER_EXPERIMENTS}\n`;
    const [quick, all] = [await runSource({ source, limit: 12, batch: 16 }), await runSource({ source, limit: 12, batch: 16, allLayers: true })];
    const [fast, slow] = [quick.results, all.results];
    t.deepEqual(fast.provenance.rows?.startLayer, {
      used: true, reason: 'each row began at the first block it changes or reads, from the clean run\'s hidden state entering it',
    });
    t.deepEqual(slow.provenance.rows?.startLayer, { used: false, reason: '--all-layers' });
    t.is(fast.provenance.rows?.mode, slow.provenance.rows?.mode);
    t.true(fast.data.kept > 0);
    t.true(sameNumbers(t, fast, slow) > 1000);
    t.is(quick.cost.tokens, all.cost.tokens);
    t.true(quick.cost.cleanForwardEquivalents < 0.8 * all.cost.cleanForwardEquivalents, `${quick.cost.cleanForwardEquivalents} vs ${all.cost.cleanForwardEquivalents} clean forwards per prompt`);
  });
}
