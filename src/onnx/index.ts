// Public surface of the compiler stage.
export { buildVariant, compileVariant, rewriteModel, type BuiltVariant, type CompiledVariant } from './compile.js';
export { compilable, inspectModel, renderInspectJson, renderInspectText, type InspectReport } from './inspect.js';
export { detectSites, runDetection, SiteError } from './sites/index.js';
export { SiteOverrideError } from './sites/findings.js';
export type { ModelSites, LayerSites, ModelInputs, KvCacheInput, SiteOverride } from './sites/types.js';
export { copyModel, readModelGraph, readSourceModel, sha256File, type GraphReader, type SourceModel } from './source.js';
export { readModel, writeModel, decodeModel, encodeModel, DataType } from './proto.js';
export { modelLimits, type ModelLimits } from './limits.js';
export { checkExternalData, externalRefs, externalizeInitializers } from './external.js';
export { attentionProbsName } from './passes/outputs.js';
export { lastPositionUnsupported } from './passes/last-position.js';
export * from './variant.js';
export { buildHeadMappingGraph, HeadMappingNames, type HeadMappingGraph, type HeadMappingRequest } from './head-mappings.js';
export { projectionName, type ProjectionPart } from './passes/projections.js';
export type { HeadProjection, LinearWeights } from './sites/types.js';
