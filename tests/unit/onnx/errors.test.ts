/**
 * Files the ONNX backend must refuse with its typed OnnxModelError, before onnxruntime is asked to
 * build anything: truncated files, files that are not ONNX, ONNX graphs that are not a decoder with
 * a KV cache, decoders without router outputs, and decoders whose facts contradict their graph.
 * The exporter refuses architectures it cannot express with its own typed OnnxExportError.
 */
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { openCheckpoint } from '../../../src/engine/io/checkpoint';
import { folderSources } from '../../../src/engine/io/node-source';
import type { ModelSpec } from '../../../src/engine/model/spec';
import { decoderContract } from '../../../src/engine/onnx/contract';
import { checkExportable, exportOnnx, OnnxExportError } from '../../../src/engine/onnx/export';
import * as N from '../../../src/engine/onnx/names';
import { OnnxModelError, OrtDecoder } from '../../../src/engine/onnx/ort-backend';
import { DType, encodeModel, type ValueInfo } from '../../../src/engine/onnx/proto';
import { readOnnxInfo } from '../../../src/engine/onnx/read';

const FIXTURE = join(import.meta.dirname, '..', '..', 'fixtures', 'olmoe_e8k2_tied');
let exported: Awaited<ReturnType<typeof exportOnnx>>;
let spec: ModelSpec;

beforeAll(async () => {
  const ck = await openCheckpoint(await folderSources(FIXTURE));
  spec = ck.spec;
  exported = await exportOnnx(ck.spec, ck.slots, ck.reader, { contextLength: 32 });
});

/** A graph with only the given IO (no nodes): enough for the checks, which never run it. */
function ioOnly(o: { layers?: number; router?: number[]; metadata?: Record<string, string>; extraInputs?: ValueInfo[]; logits?: boolean }): Uint8Array {
  const L = o.layers ?? 2;
  const inputs: ValueInfo[] = [{ name: N.INPUT_IDS, dtype: DType.INT64, shape: [1, 'seq'] }, { name: N.POSITION_IDS, dtype: DType.INT64, shape: [1, 'seq'] }, ...(o.extraInputs ?? [])];
  const outputs: ValueInfo[] = o.logits === false ? [] : [{ name: N.LOGITS, dtype: DType.FLOAT, shape: [1, 'seq', 128] }];
  for (let l = 0; l < L; l++) {
    inputs.push({ name: N.pastKey(l), dtype: DType.FLOAT, shape: [1, 2, 'past', 8] }, { name: N.pastValue(l), dtype: DType.FLOAT, shape: [1, 2, 'past', 8] });
    outputs.push({ name: N.presentKey(l), dtype: DType.FLOAT, shape: [1, 2, 'total', 8] }, { name: N.presentValue(l), dtype: DType.FLOAT, shape: [1, 2, 'total', 8] });
  }
  for (const l of o.router ?? []) outputs.push({ name: N.routerLogits(l), dtype: DType.FLOAT, shape: ['seq', 8] });
  return encodeModel({ nodes: [], initializers: [], inputs, outputs, opsets: { '': 17 }, metadata: o.metadata });
}

const goodMeta = () => N.metaProps({ arch: 'olmoe', numLayers: 2, moeLayers: [0, 1], numExperts: 8, topK: 2, normTopkProb: false, contextLength: 32, vocabSize: 128, hiddenSize: 32, eosTokenIds: [1], bosTokenId: null, parameters: 1 });

async function refusal(bytes: Uint8Array, config?: Record<string, unknown>): Promise<string> {
  const e = await OrtDecoder.open(bytes, { config }).then(
    () => null,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(OnnxModelError);
  return (e as Error).message;
}

describe('the ONNX backend refuses what it cannot run, with OnnxModelError', () => {
  it('accepts the exported fixture as a decoder (the baseline the refusals differ from)', () => {
    const c = decoderContract(readOnnxInfo(exported.bytes));
    expect(c.meta).toEqual(exported.meta);
    expect(c).toMatchObject({ numKvHeads: spec.numKvHeads, headDim: spec.headDim, hasPositionIds: true, hasAttentionMask: false, metaSource: 'metadata' });
  });

  it('a truncated file, cut anywhere', async () => {
    const b = exported.bytes;
    const cuts = [0, 1, 7, 8, 100, 1000, b.length >> 2, b.length >> 1, b.length - 200, b.length - 17, b.length - 1];
    for (let i = 0; i < 40; i++) cuts.push(Math.floor(((i + 0.5) / 40) * b.length));
    for (const n of cuts) {
      const msg = await refusal(b.slice(0, n));
      expect(msg.length).toBeGreaterThan(10);
    }
    expect(await refusal(b.slice(0, b.length >> 1))).toMatch(/truncated|runs past the end/);
  });

  it('files that are not ONNX at all', async () => {
    expect(await refusal(new TextEncoder().encode('{"model_type": "olmoe", "hidden_size": 32}'))).toMatch(/Not (a readable|an) ONNX model/);
    expect(await refusal(new Uint8Array(3))).toMatch(/only 3 bytes/);
    // A safetensors header is not protobuf either.
    const st = new Uint8Array(64);
    new DataView(st.buffer).setBigUint64(0, 56n, true);
    st.set(new TextEncoder().encode('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'), 8);
    await refusal(st);
  });

  it('an ONNX graph that is not a decoder: no input_ids, no logits, no KV cache, unknown inputs', async () => {
    const add = encodeModel({
      nodes: [{ op: 'Add', inputs: ['a', 'b'], outputs: ['c'] }], initializers: [],
      inputs: [{ name: 'a', dtype: DType.FLOAT, shape: [4] }, { name: 'b', dtype: DType.FLOAT, shape: [4] }], outputs: [{ name: 'c', dtype: DType.FLOAT, shape: [4] }], opsets: { '': 17 },
    });
    expect(await refusal(add)).toMatch(/not a decoder .*no "input_ids" input.*inputs: a, b; outputs: c/);
    expect(await refusal(ioOnly({ logits: false, router: [0, 1], metadata: goodMeta() }))).toMatch(/no "logits" output/);
    expect(await refusal(ioOnly({ layers: 0, router: [0, 1], metadata: goodMeta() }))).toMatch(/no KV-cache inputs/);
    expect(await refusal(ioOnly({ router: [0, 1], metadata: goodMeta(), extraInputs: [{ name: 'token_type_ids', dtype: DType.INT64, shape: [1, 'seq'] }] }))).toMatch(/does not know how to feed: token_type_ids/);
    expect(await refusal(ioOnly({ router: [0, 1], metadata: goodMeta(), extraInputs: [{ name: N.pastKey(2), dtype: DType.FLOAT, shape: [1, 2, 'past', 8] }] }))).toMatch(/missing .*past_key_values\.1\.key|missing .*present\.2\.key/);
  });

  it('a decoder without router_logits outputs (its routing cannot be shown)', async () => {
    expect(await refusal(ioOnly({ router: [], metadata: goodMeta() }))).toMatch(/no router_logits\.\{layer\} outputs.*export-onnx/);
  });

  it('a decoder whose facts contradict its graph, or which has no facts at all', async () => {
    expect(await refusal(ioOnly({ router: [0], metadata: goodMeta() }))).toMatch(/MoE layers \(metadata: 0, 1\) differ from its router_logits outputs \(layers 0\)/);
    expect(await refusal(ioOnly({ layers: 3, router: [0, 1], metadata: goodMeta() }))).toMatch(/says 2 layers .* KV cache for 3/);
    expect(await refusal(ioOnly({ router: [0, 1], metadata: { ...goodMeta(), [N.META.topK]: 'two' } }))).toMatch(/top_k is "two"/);
    expect(await refusal(ioOnly({ router: [0, 1] }))).toMatch(/no moe_playground metadata.*config\.json/);
    // config.json beside it supplies the facts; one of an unknown architecture does not.
    expect(await refusal(ioOnly({ router: [0, 1] }), { model_type: 'bert' })).toMatch(/config\.json cannot be read: model_type "bert" is not supported/);
  });

  it('a decoder exported elsewhere, without our metadata, loads its facts from config.json', () => {
    const config = { model_type: 'olmoe', vocab_size: 128, hidden_size: 32, intermediate_size: 16, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, num_experts: 8, num_experts_per_tok: 2, max_position_embeddings: 64 };
    const c = decoderContract(readOnnxInfo(ioOnly({ router: [0, 1] })), config);
    expect(c.metaSource).toBe('config.json');
    expect(c.meta).toMatchObject({ numExperts: 8, topK: 2, moeLayers: [0, 1], contextLength: 64 });
  });
});

describe('the exporter refuses what it cannot express, with OnnxExportError', () => {
  it('an architecture outside its list', () => {
    const s = { ...spec, arch: 'deepseek_v2' } as unknown as ModelSpec;
    expect(() => checkExportable(s)).toThrow(OnnxExportError);
    expect(() => checkExportable(s)).toThrow(/does not support architecture "deepseek_v2" \(supported: qwen2_moe, qwen3_moe, mixtral, olmoe, granitemoe\)/);
  });

  it('routing other than softmax → top-k → renormalise (sigmoid scoring, expert groups, a routed scale)', () => {
    for (const extra of [{ scoring: 'sigmoid' }, { nGroup: 4 }, { routedScale: 2.5 }]) {
      const s = { ...spec, moe: { ...spec.moe, ...extra } } as unknown as ModelSpec;
      expect(() => checkExportable(s)).toThrow(/supports softmax top-k routing only/);
    }
  });

    it('a RoPE scaling it does not implement', () => {
    const s = { ...spec, ropeScaling: { type: 'yarn', factor: 4 } } as unknown as ModelSpec;
    expect(() => checkExportable(s)).toThrow(/rope_scaling type "yarn"/);
  });
});
