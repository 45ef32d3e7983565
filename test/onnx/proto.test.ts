import test from 'ava';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type protobuf from 'protobufjs';
import { UserError } from '../../src/errors.js';
import {
  AttributeType, DataType, decodeModel, encodeModel, int, onnxType, type ModelProto,
} from '../../src/onnx/proto.js';
import { makeTensor } from '../../src/onnx/tensor.js';
import { FIXTURE_MODELS, fixturePath } from './helpers.js';

test('fixtures decode and re-encode byte for byte', (t) => {
  for (const name of FIXTURE_MODELS) {
    const bytes = readFileSync(fixturePath(name));
    const again = encodeModel(decodeModel(bytes, name));
    t.true(Buffer.from(again).equals(bytes), name);
  }
});

/** A model using fields that ONNX added after IR 8 (onnx-proto@8 does not know them). */
function ir10Model(): ModelProto {
  const meta = (k: string) => [{ key: k, value: `${k}-value` }];
  const int4 = makeTensor('w_int4', DataType.UINT8, [4], [0x21, 0x43, 0x65, 0x87]);
  int4.dataType = DataType.INT4;
  int4.dims = [8];
  int4.metadataProps = meta('tensor');
  const f8 = makeTensor('w_f8', DataType.UINT8, [2], [0x38, 0x40]);
  f8.dataType = DataType.FLOAT8E4M3FN;
  return {
    irVersion: 10,
    opsetImport: [{ domain: '', version: 21 }, { domain: 'local', version: 1 }],
    producerName: 'dissect-test',
    graph: {
      name: 'g',
      node: [{
        input: ['x'], output: ['y'], name: 'call', opType: 'Twice', domain: 'local', overload: 'v2',
        metadataProps: meta('node'),
      }],
      initializer: [int4, f8],
      input: [{ name: 'x', type: { tensorType: { elemType: DataType.FLOAT, shape: { dim: [{ dimParam: 'n' }] } } }, metadataProps: meta('input') }],
      output: [{ name: 'y', type: { tensorType: { elemType: DataType.FLOAT, shape: { dim: [{ dimValue: 3 }] } } } }],
      metadataProps: meta('graph'),
    },
    functions: [{
      name: 'Twice', domain: 'local', overload: 'v2', input: ['a'], output: ['b'], attribute: [],
      attributeProto: [{ name: 'k', type: AttributeType.FLOAT, f: 2 }],
      node: [{
        input: ['a', 'a'], output: ['b'], opType: 'Add',
        attribute: [{ name: 'alpha', refAttrName: 'k', type: AttributeType.FLOAT }],
        metadataProps: meta('fnode'),
      }],
      opsetImport: [{ domain: '', version: 21 }],
      valueInfo: [{ name: 'b', type: { tensorType: { elemType: DataType.FLOAT } }, metadataProps: meta('fvalue') }],
      metadataProps: meta('function'),
    }],
  };
}

test('an IR 10 model keeps its newer fields through decode and encode', (t) => {
  const bytes = encodeModel(ir10Model());
  const m = decodeModel(bytes, 'ir10');
  t.is(int(m.irVersion), 10);
  const g = m.graph!;
  t.is(g.metadataProps?.[0]?.value, 'graph-value');
  t.is(g.node?.[0]?.overload, 'v2');
  t.is(g.node?.[0]?.metadataProps?.[0]?.key, 'node');
  t.is(g.input?.[0]?.metadataProps?.[0]?.key, 'input');
  t.is(g.initializer?.[0]?.dataType, DataType.INT4);
  t.is(g.initializer?.[0]?.metadataProps?.[0]?.key, 'tensor');
  t.is(g.initializer?.[1]?.dataType, DataType.FLOAT8E4M3FN);
  const f = m.functions![0]!;
  t.is(f.overload, 'v2');
  t.is(f.valueInfo?.[0]?.metadataProps?.[0]?.key, 'fvalue');
  t.is(f.metadataProps?.[0]?.key, 'function');
  t.is(f.attributeProto?.[0]?.f, 2);
  t.is(f.node?.[0]?.attribute?.[0]?.refAttrName, 'k');
  t.is(f.node?.[0]?.metadataProps?.[0]?.key, 'fnode');
  t.true(Buffer.from(encodeModel(m)).equals(Buffer.from(bytes)), 'second encode is byte-identical');

  // onnx-proto@8 (IR 8 static code) would drop them: the reason for our own schema.
  const require = createRequire(import.meta.url);
  const legacy = (require('onnx-proto') as { onnx: { ModelProto: { decode(b: Uint8Array): unknown; encode(m: unknown): { finish(): Uint8Array } } } }).onnx;
  const viaLegacy = legacy.ModelProto.encode(legacy.ModelProto.decode(bytes)).finish();
  t.true(viaLegacy.length < bytes.length, 'the legacy schema loses fields');
});

test('IR 11 is refused with a clear message', (t) => {
  const model = ir10Model();
  model.irVersion = 11;
  const bytes = onnxType('ModelProto').encode(model as unknown as protobuf.Message).finish();
  const e = t.throws(() => decodeModel(bytes, 'future.onnx'), { instanceOf: UserError });
  t.regex(e!.message, /future\.onnx: ONNX IR version 11 is newer than dissect supports \(IR ≤ 10/);
  t.throws(() => encodeModel(model), { message: /IR version 11/ });
});

test('garbage is not a model', (t) => {
  t.throws(() => decodeModel(new Uint8Array([0xff, 0xff, 0xff, 0x01]), 'junk.onnx'), { instanceOf: UserError, message: /junk\.onnx/ });
});
