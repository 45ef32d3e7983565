// The report stage's interface: results.json and report.html written into an output folder.

export { writeReport, type WriteReportOptions, type WrittenReport } from './html/index.js';
export { writeResults, type WrittenResults } from './write.js';
