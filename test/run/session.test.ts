import test from 'ava';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import onnxProto from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import { isRunError, type RunError } from '../../src/run/errors.js';
import {
  createSession, cudaUnavailable, decodeTensor, doctorInfo, int64ToNumbers, parseDevice,
  type RunSession,
} from '../../src/run/session.js';
import { tempDir } from './_tokenizers.js';
import { floatToHalf, halfToFloat, halfToFloat32Array } from '../../src/run/half.js';

const { onnx } = onnxProto;
const fixtures = fileURLToPath(new URL('../../../generated/fixtures/', import.meta.url));

test('halfToFloat on known bit patterns', (t) => {
  const cases: [number, number][] = [
    [0x0000, 0], [0x3c00, 1], [0xbc00, -1], [0xc000, -2], [0x3800, 0.5], [0x3555, 0.333251953125],
    [0x3bff, 0.99951171875], [0x3c01, 1.0009765625], [0x7bff, 65504], [0xfbff, -65504],
    [0x0400, 2 ** -14], // smallest normal
    [0x0001, 2 ** -24], // smallest subnormal
    [0x03ff, 1023 * 2 ** -24], // largest subnormal
    [0x0200, 2 ** -15], [0x8001, -(2 ** -24)],
    [0x7c00, Infinity], [0xfc00, -Infinity],
  ];
  for (const [bits, value] of cases) t.is(halfToFloat(bits), value, bits.toString(16));
  t.true(Object.is(halfToFloat(0x8000), -0));
  for (const nan of [0x7c01, 0x7e00, 0x7fff, 0xfe00]) t.true(Number.isNaN(halfToFloat(nan)), nan.toString(16));
});

test('halfToFloat32Array agrees with float32 bit construction on every pattern', (t) => {
  const all = new Uint16Array(65536).map((_, i) => i);
  const out = halfToFloat32Array(all);
  const view = new DataView(new ArrayBuffer(4));
  let checked = 0;
  for (let h = 0; h < 65536; h++) {
    const sign = h >> 15;
    const exp = (h >> 10) & 0x1f;
    const frac = h & 0x3ff;
    if (exp === 0x1f) {
      t.is(Number.isNaN(out[h]!), frac !== 0);
      continue;
    }
    if (exp === 0) {
      t.is(out[h], (sign ? -1 : 1) * frac * 2 ** -24);
      continue;
    }
    // a normal half is a float32 with the exponent rebiased (15 -> 127) and 13 more fraction bits
    view.setUint32(0, ((sign << 31) | ((exp - 15 + 127) << 23) | (frac << 13)) >>> 0);
    if (out[h] !== view.getFloat32(0)) { t.fail(`0x${h.toString(16)}`); return; }
    checked++;
  }
  t.is(checked, 2 * 30 * 1024);
  const into = new Float32Array(2);
  t.is(halfToFloat32Array(new Uint16Array([0x3c00, 0xc000]), into), into);
  t.deepEqual([...into], [1, -2]);
});

/** A one-node model: float32 x[n] -> Cast(float16) -> y. */
function castModel(): Uint8Array {
  const model = onnx.ModelProto.create({
    irVersion: 8,
    opsetImport: [{ domain: '', version: 17 }],
    graph: {
      name: 'cast',
      node: [{ opType: 'Cast', input: ['x'], output: ['y'], attribute: [{ name: 'to', type: onnx.AttributeProto.AttributeType.INT, i: onnx.TensorProto.DataType.FLOAT16 }] }],
      input: [{ name: 'x', type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT, shape: { dim: [{ dimParam: 'n' }] } } } }],
      output: [{ name: 'y', type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT16, shape: { dim: [{ dimParam: 'n' }] } } } }],
    },
  });
  return onnx.ModelProto.encode(model).finish();
}

async function open(model: string | Uint8Array, threads = 1): Promise<RunSession> {
  const s = await createSession(model, { device: 'cpu', threads });
  if (isRunError(s)) throw new Error(s.message);
  return s;
}

test.serial('fp16 outputs come back decoded to float32', async (t) => {
  const s = await open(castModel());
  t.deepEqual(s.inputNames, ['x']);
  const x = new Float32Array([1, -2, 65504, 1e-7, 7e4, NaN, 0.1, -0]);
  const out = await s.run({ x: new ort.Tensor('float32', x, [x.length]) });
  const y = out['y']!;
  t.is(y.sourceType, 'float16');
  t.true(y.data instanceof Float32Array);
  t.deepEqual(y.dims, [8]);
  const v = [...(y.data as Float32Array)];
  t.deepEqual(v.slice(0, 3), [1, -2, 65504]);
  t.is(v[3], 2 * 2 ** -24); // 1e-7 rounds to the subnormal 2·2^-24
  t.is(v[4], Infinity);
  t.true(Number.isNaN(v[5]!));
  t.is(v[6], 0.0999755859375);
  t.true(Object.is(v[7], -0));
  await s.release();
});

/** y = x + W, with W (float32 [3]) stored as external data in w.bin. */
function externalModel(): Uint8Array {
  const F = onnx.TensorProto.DataType.FLOAT;
  const model = onnx.ModelProto.create({
    irVersion: 8,
    opsetImport: [{ domain: '', version: 17 }],
    graph: {
      name: 'ext',
      node: [{ opType: 'Add', input: ['x', 'W'], output: ['y'] }],
      initializer: [{
        name: 'W', dataType: F, dims: [3], dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
        externalData: [{ key: 'location', value: 'w.bin' }, { key: 'offset', value: '0' }, { key: 'length', value: '12' }],
      }],
      input: [{ name: 'x', type: { tensorType: { elemType: F, shape: { dim: [{ dimValue: 3 }] } } } }],
      output: [{ name: 'y', type: { tensorType: { elemType: F, shape: { dim: [{ dimValue: 3 }] } } } }],
    },
  });
  return onnx.ModelProto.encode(model).finish();
}

test.serial('sessionConfig: an in-memory model reads external weights from a folder', async (t) => {
  const dir = tempDir('ext');
  writeFileSync(join(dir, 'w.bin'), new Uint8Array(new Float32Array([10, 20, 30]).buffer));
  const s = orThrowSession(await createSession(externalModel(), {
    threads: 1, sessionConfig: { 'session.model_external_initializers_file_folder_path': dir },
  }));
  const out = await s.run({ x: new ort.Tensor('float32', new Float32Array([1, 2, 3]), [3]) });
  t.deepEqual([...(out['y']!.data as Float32Array)], [11, 22, 33]);
  await s.release();
  const without = await createSession(externalModel(), { threads: 1 });
  t.true(isRunError(without) && without.code === 'model');
});

function orThrowSession(s: RunSession | RunError): RunSession {
  if (isRunError(s)) throw new Error(s.message);
  return s;
}

interface FixtureSeq { input_ids: number[]; attention_mask: number[]; logits: number[][] }
const fixtureJson = JSON.parse(readFileSync(fixtures + 'fixtures.json', 'utf8')) as { fixtures: Record<string, { sequences: FixtureSeq[] }> };

test.serial('the fp16 GPT-2 fixture runs from a path with its reference logits', async (t) => {
  const s = await open(fixtures + 'gpt2-fp16.onnx');
  const seq = fixtureJson.fixtures['gpt2-fp16.onnx']!.sequences[0]!;
  const n = seq.input_ids.length;
  const out = await s.run({
    input_ids: new ort.Tensor('int64', BigInt64Array.from(seq.input_ids.map(BigInt)), [1, n]),
    attention_mask: new ort.Tensor('int64', BigInt64Array.from(seq.attention_mask.map(BigInt)), [1, n]),
  });
  const logits = out['logits']!;
  t.deepEqual(logits.dims, [1, n, 64]);
  const data = logits.data as Float32Array;
  let maxDiff = 0;
  for (let i = 0; i < n; i++) {
    const ref = seq.logits[i]!;
    let argRef = 0;
    let argOut = 0;
    for (let v = 0; v < 64; v++) {
      maxDiff = Math.max(maxDiff, Math.abs(data[i * 64 + v]! - ref[v]!));
      if (ref[v]! > ref[argRef]!) argRef = v;
      if (data[i * 64 + v]! > data[i * 64 + argOut]!) argOut = v;
    }
    t.is(argOut, argRef, `argmax at position ${i}`);
  }
  t.true(maxDiff < 0.03, `max |Δlogit| = ${maxDiff}`);
  await s.release();
});

test('decodeTensor leaves other types alone; int64ToNumbers', (t) => {
  const i = decodeTensor(new ort.Tensor('int64', BigInt64Array.from([3n, -1n]), [2]));
  t.is(i.sourceType, 'int64');
  t.deepEqual(int64ToNumbers(i.data as BigInt64Array), [3, -1]);
  t.throws(() => int64ToNumbers(BigInt64Array.from([2n ** 60n])), { instanceOf: RangeError });
  const f = decodeTensor(new ort.Tensor('float32', new Float32Array([0.5]), [1, 1]));
  t.deepEqual(f.dims, [1, 1]);
  t.deepEqual([...(f.data as Float32Array)], [0.5]);
});

test('devices', (t) => {
  t.deepEqual(parseDevice('cpu'), { kind: 'cpu' });
  t.deepEqual(parseDevice('cuda'), { kind: 'cuda', deviceId: 0 });
  t.deepEqual(parseDevice('cuda:3'), { kind: 'cuda', deviceId: 3 });
  for (const bad of ['gpu', 'cuda:', 'cuda:x', 'CPU']) {
    const r = parseDevice(bad);
    t.true(isRunError(r) && r.code === 'device' && /use cpu, cuda or cuda:N/.test(r.hint ?? ''), bad);
  }
});

test.serial('missing or broken models, bad thread counts are error values', async (t) => {
  const missing = await createSession(fixtures + 'nope.onnx', { threads: 1 });
  t.true(isRunError(missing) && missing.code === 'model' && /model file not found: .*nope\.onnx/.test(missing.message));
  const garbage = await createSession(new Uint8Array([1, 2, 3, 4, 5]), { threads: 1 });
  t.true(isRunError(garbage) && garbage.code === 'model' && /onnxruntime cannot load <5 bytes>/.test(garbage.message));
  const threads = await createSession(castModel(), { threads: 0 });
  t.true(isRunError(threads) && /threads must be a positive integer/.test(threads.message));
  const device = await createSession(castModel(), { device: 'tpu' });
  t.true(isRunError(device) && device.code === 'device');
});

const noCuda = cudaUnavailable();
(noCuda ? test.serial : test.serial.skip)('--device cuda without the CUDA provider says what is missing and how to opt in', async (t) => {
  for (const device of ['cuda', 'cuda:1']) {
    const r = await createSession(castModel(), { device, threads: 1 });
    t.true(isRunError(r));
    if (!isRunError(r)) return;
    t.is(r.code, 'device');
    t.true(r.message.startsWith(`--device ${device}: `));
    t.regex(r.message, /libonnxruntime_providers_cuda\.so is not installed|no CUDA execution provider/);
    t.regex(r.hint ?? '', /ONNXRUNTIME_NODE_INSTALL=cuda12 npm rebuild onnxruntime-node --ignore-scripts=false/);
  }
});

test.serial('doctorInfo', (t) => {
  const before = process.env['NVIDIA_TF32_OVERRIDE'];
  process.env['NVIDIA_TF32_OVERRIDE'] = '0';
  const info = doctorInfo();
  t.is(info.ortVersion, '1.30.0');
  t.true(info.backends.some((b) => b.name === 'cpu' && b.bundled));
  t.is(info.tf32Override, '0');
  t.is(info.cudaUnavailable, noCuda);
  delete process.env['NVIDIA_TF32_OVERRIDE'];
  t.is(doctorInfo().tf32Override, undefined);
  if (before !== undefined) process.env['NVIDIA_TF32_OVERRIDE'] = before;
});

test('floatToHalf inverts halfToFloat on every finite half, and rounds to nearest even', (t) => {
  let bad = 0;
  for (let bits = 0; bits < 65536; bits++) {
    const v = halfToFloat(bits);
    if (Number.isNaN(v)) continue;
    if (floatToHalf(v) !== bits) bad++;
  }
  t.is(bad, 0);
  t.is(floatToHalf(1 + 2 ** -11), 0x3c00); // halfway between 1 and the next half: even wins
  t.is(floatToHalf(1 + 3 * 2 ** -11), 0x3c02);
  t.is(floatToHalf(65520), 0x7c00); // rounds up past the largest half
  t.is(floatToHalf(2 ** -26), 0); // below half the smallest subnormal
  t.is(floatToHalf(3 * 2 ** -26), 0x0001); // 0.75 of the smallest subnormal
  t.is(floatToHalf(3 * 2 ** -25), 0x0002); // 1.5 of it: a tie, even wins
});

test('a default install fetches nothing from outside the npm registry: no CUDA provider library, install scripts off', (t) => {
  const bin = fileURLToPath(new URL('../../../node_modules/onnxruntime-node/bin/napi-v6/linux/x64/', import.meta.url));
  t.false(existsSync(join(bin, 'libonnxruntime_providers_cuda.so')));
  const npmrc = readFileSync(fileURLToPath(new URL('../../../.npmrc', import.meta.url)), 'utf8');
  // only settings npm itself knows: an unknown key makes every npm command warn
  t.deepEqual(npmrc.split('\n').filter((l) => l.trim() && !l.startsWith('#')), ['ignore-scripts=true']);
});
