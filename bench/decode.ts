/**
 * Prefill and decode speed of a checkpoint on the adapter at hand, per weight format: the numbers
 * a user sees as tokens/s. Run through the CLI (`npm run cli -- bench`), locally on SwiftShader or
 * on the H100 machine through the .gpu kit; results are JSON (bench/results/).
 */
import type { GpuContext } from '../src/engine/gpu/device';
import { kernelsFor } from '../src/engine/gpu/kernels';
import type { OpenCheckpoint } from '../src/engine/io/checkpoint';
import { MoeModel } from '../src/engine/model/model';
import { uploadWeights } from '../src/engine/model/weights';
import type { WeightFormat } from '../src/engine/quant/pack';

export interface DecodeBenchRow {
  format: WeightFormat;
  group: number;
  weightBytes: number;
  prefillTokens: number;
  prefillTokensPerSecond: number;
  decodeTokens: number;
  decodeTokensPerSecond: number;
  /** Weight bytes read per decoded token (dense layers + k routed experts + shared), ÷ step time. */
  decodeWeightGBps: number;
}

export async function benchDecode(ctx: GpuContext, ck: OpenCheckpoint, formats: Array<[WeightFormat, number]>, prefill = 128, decode = 64): Promise<DecodeBenchRow[]> {
  const rows: DecodeBenchRow[] = [];
  const s = ck.spec;
  for (const [format, group] of formats) {
    const weights = await uploadWeights(ctx.device, s, ck.slots, ck.reader, { format, group });
    const model = new MoeModel(kernelsFor(ctx), s, weights, { contextLength: prefill + decode + 8, chunkTokens: prefill });
    const ids = Array.from({ length: prefill }, (_, i) => (i * 7919) % s.vocabSize);
    await model.forward(ids.slice(0, 8)); // compile every pipeline before timing
    model.reset();
    let t = performance.now();
    await model.forward(ids);
    const prefillMs = performance.now() - t;
    t = performance.now();
    for (let i = 0; i < decode; i++) await model.forward([ids[i % prefill]!]);
    const decodeMs = performance.now() - t;
    // Bytes a decode step must read: everything but the unchosen experts (and the embedding table,
    // of which one row is read; with tied embeddings the LM head reads it whole).
    const E = s.moe.numExperts, K = s.moe.topK;
    const expertBytes = weights.layers.reduce((a, l) => a + (l.expertsGateUp?.bytes ?? 0) + (l.expertsDown?.bytes ?? 0), 0);
    const readPerToken = weights.bytes - expertBytes * (1 - K / E) - (s.tieWordEmbeddings ? 0 : weights.embed.size);
    rows.push({
      format,
      group,
      weightBytes: weights.bytes,
      prefillTokens: prefill,
      prefillTokensPerSecond: prefill / (prefillMs / 1000),
      decodeTokens: decode,
      decodeTokensPerSecond: decode / (decodeMs / 1000),
      decodeWeightGBps: (readPerToken * decode) / (decodeMs / 1000) / 1e9,
    });
    model.destroy();
  }
  return rows;
}
