/**
 * Real-size MoE shapes with random weights (bench/synth.ts): decode tokens/s at several contexts,
 * prefill tokens/s at several lengths, bytes read per decoded token ÷ the read bandwidth measured
 * in the same run, expert-GEMM FLOP/s ÷ the measured f32 FMA peak, a per-kernel time breakdown
 * from timestamp queries and the dispatches one decoded token takes.
 */
import type { GpuContext } from '../src/engine/gpu/device';
import { kernelsFor } from '../src/engine/gpu/kernels';
import { generate } from '../src/engine/model/generate';
import { MoeModel } from '../src/engine/model/model';
import { GREEDY } from '../src/engine/model/sampling';
import { destroyWeights } from '../src/engine/model/weights';
import type { WeightFormat } from '../src/engine/quant/pack';
import { measureCeilings, type Ceilings } from './probes';
import { TimestampProfiler, type KernelTime } from './profiler';
import { bytesPerDecodedToken, synthSpec, synthWeights } from './synth';

export interface RooflineOptions {
  shapes: string[];
  formats: Array<[WeightFormat, number]>;
  /** Decode is timed over the `decodeSteps` positions ending at each context length. */
  contexts: number[];
  prefills: number[];
  decodeSteps: number;
  /** Bytes streamed by the bandwidth probe. */
  probeBytes?: number;
  log?: (line: string) => void;
}

export interface DecodeFigure {
  context: number;
  tokensPerSecond: number;
  msPerToken: number;
  /** Mean per step: recording commands, submitting, and waiting for the read-back (which overlaps the next step's recording). */
  cpu: { encodeMs: number; submitMs: number; waitMs: number };
  weightBytesPerToken: number;
  kvBytesPerToken: number;
  /** (weight + KV bytes per token) ÷ step time ÷ measured read bandwidth. */
  bandwidthFraction: number;
}

export interface PrefillFigure {
  tokens: number;
  tokensPerSecond: number;
}

export interface Profile {
  /** Which run the timestamps come from. */
  what: string;
  dispatches: number;
  gpuMs: number;
  wallMs: number;
  kernels: KernelTime[];
}

export interface RooflineRow {
  shape: string;
  format: WeightFormat;
  group: number;
  parameters: number;
  weightBytes: number;
  decode: DecodeFigure[];
  prefill: PrefillFigure[];
  /** Routed-expert matmul FLOP/s in a prefill of the longest length ÷ measured FMA peak. */
  expertGemm: { tokens: number; tflops: number; peakFraction: number } | null;
  decodeProfile: Profile | null;
  prefillProfile: Profile | null;
}

export interface RooflineResult {
  ceilings: Ceilings;
  rows: RooflineRow[];
}

function parameterCount(spec: ReturnType<typeof synthSpec>): number {
  const H = spec.hiddenSize, D = spec.headDim, E = spec.moe.numExperts, I = spec.moe.intermediateSize;
  const attn = H * spec.numHeads * D * 2 + H * spec.numKvHeads * D * 2;
  const moe = E * 3 * H * I + E * H;
  return spec.numLayers * (attn + moe) + 2 * spec.vocabSize * H;
}

export async function benchRoofline(ctx: GpuContext, o: RooflineOptions): Promise<RooflineResult> {
  const k = kernelsFor(ctx);
  const log = o.log ?? (() => {});
  const ceilings = await measureCeilings(k, o.probeBytes);
  log(`ceilings: read ${ceilings.readGBps.toFixed(0)} GB/s, f32 FMA ${ceilings.fmaTflops.toFixed(1)} TFLOP/s`);
  const profiled = TimestampProfiler.supported(ctx.device);
  const rows: RooflineRow[] = [];
  for (const shape of o.shapes) {
    const spec = synthSpec(shape);
    const maxCtx = Math.max(...o.contexts, ...o.prefills);
    // Random weights do not care about the trained window; let the cache hold the longest context.
    spec.maxPositions = Math.max(spec.maxPositions, maxCtx);
    for (const [format, group] of o.formats) {
      const weights = synthWeights(k, spec, format, group);
      await ctx.device.queue.onSubmittedWorkDone();
      const model = new MoeModel(k, spec, weights, { contextLength: maxCtx, chunkTokens: Math.max(...o.prefills) });
      const ids = (n: number, salt: number) => Array.from({ length: n }, (_, i) => (i * 7919 + salt * 104729) % spec.vocabSize);
      const topK = model.router.topK;
      // Warm-up: compile every pipeline (prefill and decode variants) before timing.
      await model.forward(ids(Math.min(...o.prefills), 1));
      await model.forward([1], { sample: { params: GREEDY, step: 0 } });
      model.reset();

      const prefill: PrefillFigure[] = [];
      for (const n of o.prefills) {
        model.reset();
        const t = performance.now();
        await model.forward(ids(n, 2));
        prefill.push({ tokens: n, tokensPerSecond: n / ((performance.now() - t) / 1000) });
      }

      const decode: DecodeFigure[] = [];
      for (const c of o.contexts) {
        model.reset();
        const steps = Math.min(o.decodeSteps, c - 2);
        await model.forward(ids(c - steps - 1, 3));
        // Decode as users get it: generate() pipelines the steps. The clock starts once the first
        // token (a one-token forward that is not pipelined) is back.
        const split = { encodeMs: 0, submitMs: 0, waitMs: 0 };
        let t = 0;
        let n = 0;
        for await (const _ of generate(model, [5], { maxNewTokens: steps + 1, sampling: GREEDY })) {
          if (n++ === 0) {
            t = performance.now();
            continue;
          }
          for (const key of ['encodeMs', 'submitMs', 'waitMs'] as const) split[key] += model.lastChunkTiming[key] / steps;
        }
        const ms = (performance.now() - t) / steps;
        // Average context over the timed steps: the KV read grows by one row per step.
        const b = bytesPerDecodedToken(spec, weights, topK, c - steps / 2);
        decode.push({
          context: c,
          tokensPerSecond: 1000 / ms,
          msPerToken: ms,
          cpu: split,
          weightBytesPerToken: b.weights,
          kvBytesPerToken: b.kv,
          bandwidthFraction: (b.weights + b.kv) / (ms / 1000) / (ceilings.readGBps * 1e9),
        });
      }

      let decodeProfile: Profile | null = null;
      let prefillProfile: Profile | null = null;
      let expertGemm: RooflineRow['expertGemm'] = null;
      if (profiled) {
        const prof = new TimestampProfiler(ctx.device);
        const c = o.contexts[Math.min(1, o.contexts.length - 1)]!;
        model.reset();
        await model.forward(ids(c - 1, 4));
        prof.attach();
        let t = performance.now();
        await model.forward([7], { sample: { params: GREEDY, step: 0 } });
        let wall = performance.now() - t;
        let r = await prof.collect();
        decodeProfile = { what: `one decode step at context ${c}`, dispatches: r.dispatches, gpuMs: r.totalMs, wallMs: wall, kernels: r.kernels };

        const n = Math.max(...o.prefills);
        model.reset();
        prof.attach();
        t = performance.now();
        await model.forward(ids(n, 5));
        wall = performance.now() - t;
        r = await prof.collect();
        prof.destroy();
        prefillProfile = { what: `prefill of ${n} tokens`, dispatches: r.dispatches, gpuMs: r.totalMs, wallMs: wall, kernels: r.kernels };
        const expertMs = r.kernels.filter((x) => x.label.startsWith('matmul_grouped')).reduce((a, x) => a + x.ms, 0);
        const moeLayers = spec.layers.filter((l) => l.mlp === 'moe').length;
        const flops = 2 * n * topK * 3 * spec.hiddenSize * spec.moe.intermediateSize * moeLayers;
        if (expertMs > 0) {
          const tflops = flops / (expertMs / 1000) / 1e12;
          expertGemm = { tokens: n, tflops, peakFraction: tflops / ceilings.fmaTflops };
        }
      }
      const row: RooflineRow = { shape, format, group: format === 'f32' ? 0 : group, parameters: parameterCount(spec), weightBytes: weights.bytes, decode, prefill, expertGemm, decodeProfile, prefillProfile };
      rows.push(row);
      log(`${shape} ${format}${format === 'f32' ? '' : ` g${group}`}: decode ${decode.map((d) => `${d.tokensPerSecond.toFixed(0)} tok/s @${d.context} (${(100 * d.bandwidthFraction).toFixed(1)}% bw)`).join(', ')}; prefill ${prefill.map((p) => `${p.tokensPerSecond.toFixed(0)} tok/s @${p.tokens}`).join(', ')}${expertGemm ? `; expert GEMM ${expertGemm.tflops.toFixed(2)} TFLOP/s (${(100 * expertGemm.peakFraction).toFixed(1)}% peak)` : ''}`);
      model.destroy();
      destroyWeights(weights);
    }
  }
  return { ceilings, rows };
}
