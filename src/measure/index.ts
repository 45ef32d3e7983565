// The measure stage's interface: raw records → the measures and results types of results.json.

export type { ExampleRecord } from './record.js';
export { measureRecords } from './results.js';
export { RESULTS_FORMAT, type ExampleId, type Results, type ResultsExample, type ResultsHeadMappings } from './schema.js';
export type { CiOptions } from './stats.js';
