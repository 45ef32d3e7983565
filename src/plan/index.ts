// The plan stage's interface: a checked Program → rows, variant requests and their cost.

export { cleanForwardEquivalents } from './cost.js';
export { mayRunLastPosition, planProgram, readsCleanPass, siteOverridesOf, startLayerOf, type Plan } from './plan.js';
