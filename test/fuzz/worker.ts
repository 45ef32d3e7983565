// The fuzzer's child process: judges the sources its parent sends, one message each, against
// the default model. It runs apart so that an abort or a hang cannot take the parent down.

import { join } from 'node:path';
import { repoRoot } from '../../src/lang/grammar-export.js';
import type { ShapeOf } from '../../src/lang/index.js';
import { readModel, readSourceModel } from '../../src/onnx/index.js';
import { readModelShape } from '../../src/pipeline/index.js';
import { siteOverridesOf } from '../../src/plan/plan.js';
import { judge } from './property.js';

export interface FuzzRequest { readonly index: number; readonly file: string; readonly text: string }

const modelPath = join(repoRoot, 'generated/tiny-gpt2/model.onnx');
const model = readModel(modelPath);
const plain = readModelShape(() => readSourceModel(modelPath, [], () => model));
if ('error' in plain) throw new Error(`the default model does not load: ${plain.error}`);

/** Whatever path the source names, the default model is read, with the source's site statements. */
const shapeOf: ShapeOf = (_, overrides) => {
  if (overrides.length === 0) return plain.shape;
  const read = readModelShape(() => readSourceModel(modelPath, siteOverridesOf(overrides), () => model));
  return 'error' in read ? read : read.shape;
};

process.on('message', (request: FuzzRequest) => {
  process.send!({ index: request.index, verdict: judge(request.text, request.file, shapeOf, plain.shape) });
});
