// The stages wired together: .dissect file → checked Program → Plan → compiled variant →
// executed examples → measures → results. The CLI commands and the end-to-end tests call
// these functions; each stage is reached only through its own module's interface.

export { buildVariants, DiagnosticsError, loadProgram, modelStatementOf, readModelShape, readParamsFile, refuseOverTotalRows, selectedFacts, type LoadedProgram } from './load.js';
export { cleanStreamFor, runProgram, type RunOptions, type RunOutcome } from './run.js';
export { mergeShards, type MergeOptions, type MergeOutcome } from './merge.js';
