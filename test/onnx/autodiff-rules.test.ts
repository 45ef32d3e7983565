// Every gradient rule against central finite differences: a one-node graph on small random
// inputs, y = Σ_k Σ(output_k ⊙ w_k) with random constant weights w_k, the backward nodes emitted
// by emitGradients, and each gradient element compared with (y(x + h·e_j) − y(x − h·e_j)) / 2h,
// all run in onnxruntime: in float64 where onnxruntime has the op in float64, else in float32.

import test from 'ava';
import ort from 'onnxruntime-node';
import { emitGradients } from '../../src/onnx/autodiff/backward.js';
import { GRADIENT_RULES } from '../../src/onnx/autodiff/rules.js';
import { AttributeType, DataType, encodeModel, type AttributeProto, type ModelProto, type TensorProto, type ValueInfoProto } from '../../src/onnx/proto.js';
import { Rewrite } from '../../src/onnx/rewrite.js';
import { floatAttr, intAttr, intsAttr, makeTensor } from '../../src/onnx/tensor.js';
import { tensorValueInfo } from '../../src/onnx/graph.js';
import { mulberry32Float } from '../../src/random.js';
import { session } from './helpers.js';

type Dtype = 'float64' | 'float32';

/** A differentiated input (random values of `shape`) or a constant one. */
type CaseInput =
  | { readonly shape: readonly number[]; readonly positive?: true }
  | { readonly constant: readonly number[]; readonly dims: readonly number[]; readonly type: 'int64' | 'bool' | 'float' };

interface RuleCase {
  readonly rule: string;
  readonly label?: string;
  readonly inputs: readonly CaseInput[];
  readonly attrs?: AttributeProto[];
  readonly outputs?: number;
  /** onnxruntime has the op in float32 only. */
  readonly float32?: true;
  readonly opset?: number;
}

const str = (name: string, value: string): AttributeProto => ({ name, type: AttributeType.STRING, s: new TextEncoder().encode(value) });
const x = (...shape: number[]): CaseInput => ({ shape });
const positive = (...shape: number[]): CaseInput => ({ shape, positive: true });
const ints = (values: number[], dims = [values.length]): CaseInput => ({ constant: values, dims, type: 'int64' });
const random = mulberry32Float(14);
/** A constant float input (a norm's scale or bias: models' weights are never differentiated). */
const weight = (...dims: number[]): CaseInput => ({ constant: Array.from({ length: dims.reduce((a, b) => a * b, 1) }, () => 0.5 + random()), dims, type: 'float' });

const CASES: readonly RuleCase[] = [
  { rule: 'Identity', inputs: [x(2, 3)] },
  { rule: 'Dropout', inputs: [x(2, 3)] },
  { rule: 'Cast', inputs: [x(2, 3)], attrs: [intAttr('to', DataType.FLOAT)], float32: true },
  { rule: 'Add', inputs: [x(2, 3, 4), x(3, 1)] },
  { rule: 'Add', label: 'both broadcast', inputs: [x(2, 1, 4), x(3, 1)] },
  { rule: 'Sub', inputs: [x(2, 1), x(2, 3)] },
  { rule: 'Mul', inputs: [x(2, 3, 4), x(4)] },
  { rule: 'Div', inputs: [x(2, 3), positive(2, 1)] },
  { rule: 'Neg', inputs: [x(2, 3)] },
  { rule: 'Pow', inputs: [positive(2, 3), x(3)] },
  { rule: 'Pow', label: 'constant exponent', inputs: [x(2, 3), { constant: [3], dims: [], type: 'float' }] },
  { rule: 'Pow', label: 'constant exponent 2 (a norm\'s square)', inputs: [x(2, 3), { constant: [2], dims: [], type: 'float' }] },
  { rule: 'Where', inputs: [{ constant: [1, 0, 0, 1, 1, 0], dims: [2, 3], type: 'bool' }, x(2, 3), x(1, 3)] },
  { rule: 'Relu', inputs: [x(2, 3)] },
  { rule: 'Sqrt', inputs: [positive(2, 3)] },
  { rule: 'Reciprocal', inputs: [positive(2, 3)] },
  { rule: 'Exp', inputs: [x(2, 3)] },
  { rule: 'Log', inputs: [positive(2, 3)] },
  { rule: 'Tanh', inputs: [x(2, 3)] },
  { rule: 'Sigmoid', inputs: [x(2, 3)] },
  { rule: 'Erf', inputs: [x(2, 3)], float32: true },
  { rule: 'Gelu', inputs: [x(2, 3)], float32: true, opset: 20 },
  { rule: 'Gelu', label: 'tanh', inputs: [x(2, 3)], attrs: [str('approximate', 'tanh')], float32: true, opset: 20 },
  { rule: 'com.microsoft:Gelu', inputs: [x(2, 3)], float32: true },
  { rule: 'com.microsoft:FastGelu', inputs: [x(2, 3)], float32: true },
  { rule: 'com.microsoft:QuickGelu', inputs: [x(2, 3)], attrs: [floatAttr('alpha', 1.5)], float32: true },
  { rule: 'Softmax', inputs: [x(2, 3, 4)], attrs: [intAttr('axis', 1)] },
  { rule: 'LogSoftmax', inputs: [x(2, 4)] },
  { rule: 'LayerNormalization', inputs: [x(2, 3, 4), weight(4), weight(4)], attrs: [floatAttr('epsilon', 1e-5)], opset: 17 },
  { rule: 'LayerNormalization', label: 'two axes', inputs: [x(2, 3, 4), weight(3, 4), weight(3, 4)], attrs: [intAttr('axis', 1)], opset: 17 },
  { rule: 'SimplifiedLayerNormalization', inputs: [x(2, 3, 4), weight(4)], attrs: [floatAttr('epsilon', 1e-6)], float32: true, opset: 17 },
  { rule: 'ReduceMean', inputs: [x(2, 3, 4)], attrs: [intsAttr('axes', [-1])], opset: 17 },
  { rule: 'ReduceMean', label: 'axes input, not kept', inputs: [x(2, 3, 4), ints([0, 2])], attrs: [intAttr('keepdims', 0)], opset: 18 },
  { rule: 'ReduceSum', inputs: [x(2, 3, 4), ints([1])], attrs: [intAttr('keepdims', 0)] },
  { rule: 'MatMul', inputs: [x(2, 3, 4), x(4, 5)] },
  { rule: 'MatMul', label: 'batched, broadcast', inputs: [x(2, 1, 3, 4), x(3, 4, 2)] },
  { rule: 'Gemm', inputs: [x(3, 4), x(4, 2), x(2)], attrs: [floatAttr('alpha', 0.5), floatAttr('beta', 2)] },
  { rule: 'Gemm', label: 'transposed', inputs: [x(4, 3), x(2, 4), x(3, 1)], attrs: [intAttr('transA', 1), intAttr('transB', 1)] },
  { rule: 'Reshape', inputs: [x(2, 3, 4), ints([6, -1])] },
  { rule: 'Flatten', inputs: [x(2, 3, 4)], attrs: [intAttr('axis', 2)] },
  { rule: 'Squeeze', inputs: [x(2, 1, 3), ints([1])] },
  { rule: 'Unsqueeze', inputs: [x(2, 3), ints([0, 3])] },
  { rule: 'Expand', inputs: [x(3, 1), ints([2, 3, 4])] },
  { rule: 'Transpose', inputs: [x(2, 3, 4)], attrs: [intsAttr('perm', [2, 0, 1])] },
  { rule: 'Transpose', label: 'reversed', inputs: [x(2, 3, 4)] },
  { rule: 'Concat', inputs: [x(2, 3), x(2, 1), x(2, 2)], attrs: [intAttr('axis', -1)] },
  { rule: 'Split', inputs: [x(2, 6), ints([1, 2, 3])], attrs: [intAttr('axis', 1)], outputs: 3 },
  { rule: 'Slice', inputs: [x(3, 8), ints([1, -1]), ints([8, 0]), ints([1, 0]), ints([2, -1])] },
  { rule: 'Gather', inputs: [x(4, 3), ints([2, 0, 2], [3])] },
  { rule: 'Gather', label: 'scalar index, axis 1', inputs: [x(2, 4, 3), { constant: [-1], dims: [], type: 'int64' }], attrs: [intAttr('axis', 1)] },
  { rule: 'GatherElements', inputs: [x(2, 3), ints([0, 2, 2, 1], [2, 2])], attrs: [intAttr('axis', 1)] },
];


function tensorOf(dtype: Dtype, values: number[], dims: readonly number[]): ort.Tensor {
  return new ort.Tensor(dtype, dtype === 'float64' ? Float64Array.from(values) : Float32Array.from(values), dims);
}

/** The one-node model of a case; differentiated inputs are graph inputs named x0, x1, … */
function forwardModel(c: RuleCase, dtype: Dtype): { model: ModelProto; differentiated: string[]; outputs: string[] } {
  const elem = dtype === 'float64' ? DataType.DOUBLE : DataType.FLOAT;
  const initializer: TensorProto[] = [];
  const input: ValueInfoProto[] = [];
  const names = c.inputs.map((inp, i) => {
    const name = `x${i}`;
    if ('shape' in inp) input.push(tensorValueInfo(name, elem, inp.shape));
    else initializer.push(makeTensor(name, inp.type === 'int64' ? DataType.INT64 : inp.type === 'bool' ? DataType.BOOL : elem, inp.dims, inp.constant));
    return name;
  });
  const [domain, opType] = c.rule.includes(':') ? c.rule.split(':') as [string, string] : ['', c.rule];
  const outputs = Array.from({ length: c.outputs ?? 1 }, (_, k) => `out${k}`);
  const model: ModelProto = {
    irVersion: 8,
    opsetImport: [{ domain: '', version: c.opset ?? 17 }, { domain: 'com.microsoft', version: 1 }],
    graph: {
      name: c.rule,
      node: [{ opType, domain, input: names, output: outputs, name: 'node', attribute: c.attrs ?? [] }],
      input, initializer,
      output: outputs.map((o) => tensorValueInfo(o, c.rule === 'Cast' ? DataType.FLOAT : elem, undefined)),
    },
  };
  return { model, differentiated: names.filter((_, i) => 'shape' in c.inputs[i]!), outputs };
}

async function check(t: import('ava').ExecutionContext, c: RuleCase): Promise<void> {
  const dtype: Dtype = c.float32 ? 'float32' : 'float64';
  const feeds: Record<string, ort.Tensor> = {};
  c.inputs.forEach((inp, i) => {
    if (!('shape' in inp)) return;
    const n = inp.shape.reduce((a, b) => a * b, 1);
    const values = Array.from({ length: n }, () => (inp.positive ? 0.5 + random() : 2 * random() - 1));
    feeds[`x${i}`] = tensorOf(dtype, values, inp.shape);
  });
  // the outputs' shapes fix the weights' shapes
  const plain = forwardModel(c, dtype);
  const shapes = await (await session(encodeModel(plain.model))).run(feeds);

  const { model, differentiated, outputs } = forwardModel(c, dtype);
  const rw = new Rewrite(model, c.rule);
  const terms = outputs.map((o, k) => {
    const dims = [...shapes[o]!.dims];
    const weights = rw.constant(`w${k}`, rw.dtype(o), dims, Array.from({ length: dims.reduce((a, b) => a * b, 1) }, () => 2 * random() - 1));
    return rw.reduce('ReduceSum', rw.op('Mul', [o, weights], `weighted${k}`, rw.dtype(o)), [...dims.keys()], `term${k}`, false, rw.dtype(o), []);
  });
  const y = terms.reduce((a, b) => rw.op('Add', [a, b], 'y', rw.dtype(a), []));
  const grads = emitGradients(rw, y, differentiated, 'grad');
  const elem = dtype === 'float64' ? DataType.DOUBLE : DataType.FLOAT;
  rw.addOutput('y_out', y, rw.dtype(y), [], 'y');
  grads.forEach((g, i) => rw.addOutput(`grad_${differentiated[i]}`, g, elem, [...feeds[differentiated[i]!]!.dims], 'gradient'));
  for (const o of outputs) rw.removeOutput(o);
  rw.finish();
  const s = await session(encodeModel(model));
  const analytic = await s.run(feeds);

  const h = dtype === 'float64' ? 1e-6 : 1e-2;
  for (const name of differentiated) {
    const base = Array.from(feeds[name]!.data as ArrayLike<number>);
    const gradient = Array.from(analytic[`grad_${name}`]!.data as ArrayLike<number>);
    t.deepEqual([...analytic[`grad_${name}`]!.dims], [...feeds[name]!.dims], `${name}: the gradient has the input's shape`);
    const numeric: number[] = [];
    for (let j = 0; j < base.length; j++) {
      const at = async (delta: number): Promise<number> => {
        const moved = base.slice();
        moved[j]! += delta;
        const r = await s.run({ ...feeds, [name]: tensorOf(dtype, moved, feeds[name]!.dims) }, ['y_out']);
        return Number((r.y_out!.data as ArrayLike<number>)[0]);
      };
      numeric.push(((await at(h)) - (await at(-h))) / (2 * h));
    }
    const scale = Math.max(1, ...numeric.map(Math.abs));
    const worst = Math.max(...numeric.map((v, j) => Math.abs(v - gradient[j]!)));
    t.true(worst <= (dtype === 'float64' ? 1e-6 : 2e-3) * scale, `${name}: |analytic − numeric| = ${worst} (scale ${scale})`);
    t.true(gradient.some((v) => v !== 0), `${name}: the gradient is not all zeros`);
  }
}

for (const c of CASES) test(`gradient of ${c.rule}${c.label ? ` (${c.label})` : ''} equals finite differences`, (t) => check(t, c));

test('every rule of the table has a finite-difference case', (t) => {
  const covered = new Set(CASES.map((c) => c.rule));
  t.deepEqual(Object.keys(GRADIENT_RULES).filter((r) => !covered.has(r)), []);
});
