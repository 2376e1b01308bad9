/**
 * Whether an .onnx file is a decoder this backend can drive, and what it needs to know about it:
 * checked from the file's declared inputs/outputs and metadata (read.ts) before onnxruntime is
 * asked to build a session. Anything else is refused with an OnnxModelError naming what is missing.
 */
import { builderFor } from '../model/arch';
import * as N from './names';
import { OnnxModelError, type OnnxModelInfo, type OnnxValueInfo } from './read';

const FLOAT = 1, INT64 = 7;
const TYPE_NAMES: Record<number, string> = { 1: 'float32', 2: 'uint8', 3: 'int8', 6: 'int32', 7: 'int64', 9: 'bool', 10: 'float16', 11: 'float64', 16: 'bfloat16' };
const typeName = (t: number) => TYPE_NAMES[t] ?? (t === 0 ? 'no tensor type' : `type ${t}`);

export interface DecoderContract {
  meta: N.OnnxDecoderMeta;
  numKvHeads: number;
  headDim: number;
  hasPositionIds: boolean;
  hasAttentionMask: boolean;
  /** Where the model facts came from (the file's metadata, config.json beside it). */
  metaSource: 'metadata' | 'config.json';
}

const list = (xs: string[], n = 6) => (xs.length > n ? `${xs.slice(0, n).join(', ')}, … (${xs.length} in all)` : xs.join(', ') || 'none');

function intMeta(md: Record<string, string>, key: string): number {
  const v = md[key];
  const n = Number(v);
  if (v === undefined || !Number.isSafeInteger(n) || n < 0) throw new OnnxModelError(`The model's metadata ${key} is ${v === undefined ? 'missing' : `"${v.slice(0, 40)}"`}: expected a whole number`);
  return n;
}

function jsonMeta<T>(md: Record<string, string>, key: string, ok: (v: unknown) => v is T): T {
  const v = md[key];
  let parsed: unknown;
  try {
    parsed = v === undefined ? undefined : JSON.parse(v);
  } catch {
    parsed = undefined;
  }
  if (!ok(parsed)) throw new OnnxModelError(`The model's metadata ${key} is ${v === undefined ? 'missing' : `"${v.slice(0, 40)}"`}`);
  return parsed;
}

const isIdList = (v: unknown): v is number[] => Array.isArray(v) && v.length < 1 << 16 && v.every((x) => Number.isSafeInteger(x) && x >= 0);
const isIdOrNull = (v: unknown): v is number | null => v === null || (Number.isSafeInteger(v) && (v as number) >= 0);

function checkTensor(v: OnnxValueInfo, type: number, rank: number, role: string): void {
  if (v.elemType !== type) throw new OnnxModelError(`${role} "${v.name}" is ${typeName(v.elemType)}; this backend needs ${typeName(type)}`);
  if (v.shape && v.shape.length !== rank) throw new OnnxModelError(`${role} "${v.name}" has rank ${v.shape.length}; a decoder's has rank ${rank}`);
}

/**
 * The decoder's contract: `config` is config.json when the user gave one beside the .onnx (used
 * when the file has no moe_playground metadata, e.g. a graph exported elsewhere).
 */
export function decoderContract(info: OnnxModelInfo, config: Record<string, unknown> | null = null): DecoderContract {
  const inputs = new Map(info.inputs.map((v) => [v.name, v]));
  const outputs = new Map(info.outputs.map((v) => [v.name, v]));
  const inNames = info.inputs.map((v) => v.name), outNames = info.outputs.map((v) => v.name);
  const notDecoder = (why: string) =>
    new OnnxModelError(`This ONNX model is not a decoder with a KV cache that this backend can run: ${why} (inputs: ${list(inNames)}; outputs: ${list(outNames)})`);

  const ids = inputs.get(N.INPUT_IDS);
  if (!ids) throw notDecoder(`it has no "${N.INPUT_IDS}" input`);
  checkTensor(ids, INT64, 2, 'input');
  const logits = outputs.get(N.LOGITS);
  if (!logits) throw notDecoder(`it has no "${N.LOGITS}" output`);
  checkTensor(logits, FLOAT, 3, 'output');

  // The cache: past_key_values.{0…L−1}.key/value in, present.{l}.key/value out, all [1, kvHeads, seq, headDim].
  const pastLayers = new Set<number>();
  const unexpected: string[] = [];
  for (const name of inNames) {
    const m = N.PAST_RE.exec(name);
    if (m) pastLayers.add(Number(m[1]));
    else if (name !== N.INPUT_IDS && name !== N.POSITION_IDS && name !== N.ATTENTION_MASK) unexpected.push(name);
  }
  if (unexpected.length) throw notDecoder(`it has inputs this backend does not know how to feed: ${list(unexpected)}`);
  if (pastLayers.size === 0) throw notDecoder('it has no KV-cache inputs (past_key_values.{layer}.key / .value)');
  const L = pastLayers.size;
  const missing: string[] = [];
  for (let l = 0; l < L; l++) {
    for (const n of [N.pastKey(l), N.pastValue(l)]) if (!inputs.has(n)) missing.push(`input ${n}`);
    for (const n of [N.presentKey(l), N.presentValue(l)]) if (!outputs.has(n)) missing.push(`output ${n}`);
  }
  if (missing.length) throw notDecoder(`its KV cache is incomplete for ${L} layers: missing ${list(missing)}`);
  const past0 = inputs.get(N.pastKey(0))!;
  for (let l = 0; l < L; l++) {
    for (const n of [N.pastKey(l), N.pastValue(l)]) checkTensor(inputs.get(n)!, FLOAT, 4, 'cache input');
    for (const n of [N.presentKey(l), N.presentValue(l)]) checkTensor(outputs.get(n)!, FLOAT, 4, 'cache output');
  }
  const nKV = past0.shape?.[1], D = past0.shape?.[3];
  if (typeof nKV !== 'number' || typeof D !== 'number' || nKV < 1 || D < 1) {
    throw new OnnxModelError(`Cache input "${past0.name}" must declare fixed kv-head and head sizes ([1, kv_heads, past, head_dim]); it declares [${(past0.shape ?? []).map((d) => d ?? '?').join(', ')}]`);
  }
  const pos = inputs.get(N.POSITION_IDS);
  if (pos) checkTensor(pos, INT64, 2, 'input');
  const mask = inputs.get(N.ATTENTION_MASK);
  if (mask) checkTensor(mask, INT64, 2, 'input');

  // Routing: router_logits.{layer} [T, E] per MoE layer.
  const moeLayers = outNames.flatMap((n) => {
    const m = N.ROUTER_LOGITS_RE.exec(n);
    return m ? [Number(m[1])] : [];
  }).sort((a, b) => a - b);
  if (moeLayers.length === 0) {
    throw new OnnxModelError(
      `This ONNX model has no router_logits.{layer} outputs, so its routing cannot be shown (outputs: ${list(outNames)}). ` +
        'Export it with `npm run cli -- export-onnx --model DIR --out FILE.onnx`, which adds them.',
    );
  }
  const bad = moeLayers.filter((l) => l >= L);
  if (bad.length) throw new OnnxModelError(`router_logits outputs name layers ${bad.join(', ')}, but the model has ${L} layers`);
  const rlDims = moeLayers.map((l) => {
    const v = outputs.get(N.routerLogits(l))!;
    checkTensor(v, FLOAT, 2, 'output');
    return v.shape?.[1];
  });

  // Model facts: the file's own metadata, else config.json.
  const md = info.metadata;
  let meta: N.OnnxDecoderMeta;
  let metaSource: DecoderContract['metaSource'];
  if (md[N.META.version] !== undefined) {
    if (md[N.META.version] !== '1') throw new OnnxModelError(`The model's metadata is version ${md[N.META.version]}; this app reads version 1`);
    metaSource = 'metadata';
    meta = {
      arch: md[N.META.arch] ?? 'unknown',
      numLayers: intMeta(md, N.META.numLayers),
      moeLayers: jsonMeta(md, N.META.moeLayers, isIdList),
      numExperts: intMeta(md, N.META.numExperts),
      topK: intMeta(md, N.META.topK),
      normTopkProb: md[N.META.normTopkProb] === 'true',
      contextLength: intMeta(md, N.META.contextLength),
      vocabSize: intMeta(md, N.META.vocabSize),
      hiddenSize: intMeta(md, N.META.hiddenSize),
      eosTokenIds: jsonMeta(md, N.META.eosTokenIds, isIdList),
      bosTokenId: jsonMeta(md, N.META.bosTokenId, isIdOrNull),
      parameters: intMeta(md, N.META.parameters),
    };
  } else if (config) {
    metaSource = 'config.json';
    let spec;
    try {
      spec = builderFor(config).parseConfig(config);
    } catch (e) {
      throw new OnnxModelError(`The .onnx has no moe_playground metadata, and its config.json cannot be read: ${e instanceof Error ? e.message : String(e)}`);
    }
    meta = {
      arch: spec.arch, numLayers: spec.numLayers, moeLayers: spec.layers.flatMap((x, i) => (x.mlp === 'moe' ? [i] : [])),
      numExperts: spec.moe.numExperts, topK: spec.moe.topK, normTopkProb: spec.moe.normTopkProb, contextLength: spec.maxPositions,
      vocabSize: spec.vocabSize, hiddenSize: spec.hiddenSize, eosTokenIds: spec.eosTokenIds, bosTokenId: spec.bosTokenId, parameters: 0,
    };
  } else {
    throw new OnnxModelError(
      'The .onnx has no moe_playground metadata (experts, top-k, context): load its config.json with it, or export it with `npm run cli -- export-onnx`, which writes the metadata.',
    );
  }

  // The facts must agree with the graph.
  if (meta.numLayers !== L) throw new OnnxModelError(`The model says ${meta.numLayers} layers (${metaSource}) but the graph has a KV cache for ${L}`);
  if (meta.moeLayers.join(',') !== moeLayers.join(',')) {
    throw new OnnxModelError(`The model's MoE layers (${metaSource}: ${meta.moeLayers.join(', ') || 'none'}) differ from its router_logits outputs (layers ${moeLayers.join(', ')})`);
  }
  const eDim = rlDims.find((d) => typeof d === 'number');
  if (typeof eDim === 'number' && eDim !== meta.numExperts) throw new OnnxModelError(`The router_logits outputs have ${eDim} experts but the model says ${meta.numExperts} (${metaSource})`);
  if (!(meta.numExperts >= 1 && meta.topK >= 1 && meta.topK <= meta.numExperts)) throw new OnnxModelError(`top_k ${meta.topK} does not fit ${meta.numExperts} experts`);
  const vDim = logits.shape?.[2];
  if (typeof vDim === 'number' && vDim !== meta.vocabSize) throw new OnnxModelError(`The logits output has ${vDim} columns but the vocabulary has ${meta.vocabSize} (${metaSource})`);
  if (meta.contextLength < 1) throw new OnnxModelError('The model declares a context of 0 positions');
  return { meta, numKvHeads: nKV, headDim: D, hasPositionIds: !!pos, hasAttentionMask: !!mask, metaSource };
}
