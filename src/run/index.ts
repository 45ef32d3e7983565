// The run stage's interface: facts, tokenizer, sessions and the executor that turns a plan into
// journaled raw numbers per example; shards read back for a merge.

export { loadAttributeSets } from './attributes.js';
export { loadFacts, selectFacts, shardOf, splitDuplicateIds, type Fact, type Selection } from './dataset.js';
export { RunUserError, isRunError, orThrow, type RunError } from './errors.js';
export { bosUnavailable, prepareExample } from './example.js';
export { datasetMeanHidden, executeExamples } from './execute.js';
export { headMappings } from './head-mappings.js';
export { JOURNAL_FILE, Journal, runFingerprint } from './journal.js';
export { batchSize, type BatchSize } from './memory.js';
export { readShards, refuseRunFolder } from './merge.js';
export { createSession, createVariantSession, doctorInfo, parseDevice, variantSessionConfig } from './session.js';
export { loadTokenizer, tokenizerMismatch, type Tokenizer } from './tokenizer.js';
