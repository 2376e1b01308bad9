/**
 * The H100 benchmarks, run small on SwiftShader so they cannot rot between device runs: every
 * code path (random weights, probes, timestamp profile, decode/prefill loops, the ONNX peer graph
 * on onnxruntime-web's WebGPU EP) executes and gives well-formed figures. No timing is asserted.
 */
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { acquireNodeDevice } from '../../src/engine/gpu/node';
import { benchOrtPeer } from '../../bench/ort-peer';
import { benchRoofline } from '../../bench/roofline';

describe('bench smoke (SwiftShader)', () => {
  it('roofline bench on the tiny shapes (ordinary and latent attention), int4 and f32', async () => {
    const ctx = await acquireNodeDevice();
    try {
      const r = await benchRoofline(ctx, { shapes: ['tiny', 'tiny-mla'], formats: [['int4', 32], ['f32', 0]], contexts: [16, 40], prefills: [8, 24], decodeSteps: 3, probeBytes: 1 << 22 });
      expect(r.ceilings.readGBps).toBeGreaterThan(0);
      expect(r.rows).toHaveLength(4);
      for (const row of r.rows) {
        expect(row.decode.map((d) => d.context)).toEqual([16, 40]);
        for (const d of row.decode) {
          expect(d.tokensPerSecond).toBeGreaterThan(0);
          expect(d.weightBytesPerToken).toBeGreaterThan(0);
          expect(d.kvBytesPerToken).toBeGreaterThan(0);
        }
        expect(row.prefill.every((p) => p.tokensPerSecond > 0)).toBe(true);
        if (row.decodeProfile) expect(row.decodeProfile.dispatches).toBeGreaterThan(10);
      }
      // int4 weights are about an eighth of f32's (plus scales).
      const rowOf = (shape: string, format: string) => r.rows.find((x) => x.shape === shape && x.format === format)!;
      expect(rowOf('tiny', 'int4').weightBytes).toBeLessThan(rowOf('tiny', 'f32').weightBytes / 3);
      // A decoded token's KV read is the latent cache rows (32 + 16 floats per layer and position)
      // of the positions before it (the context, less the few decoded during the measurement).
      const positions = rowOf('tiny-mla', 'f32').decode[0]!.kvBytesPerToken / (2 * (32 + 16) * 4);
      expect(positions).toBeGreaterThan(16 - 4);
      expect(positions).toBeLessThanOrEqual(16);
    } finally {
      ctx.device.destroy();
    }
  }, 120_000);

  for (const moe of ['qmoe', 'dense'] as const) it(`onnxruntime-web peer graph (${moe} experts) runs on the WebGPU EP`, async () => {
    const r = await benchOrtPeer({
      shape: 'tiny', moe, contexts: [16], prefills: [8], decodeSteps: 2,
      wasmPath: resolve(import.meta.dirname, '../../node_modules/onnxruntime-web/dist/ort-wasm-simd-threaded.asyncify.wasm'),
    });
    expect(r.decode[0]!.tokensPerSecond).toBeGreaterThan(0);
    expect(r.prefill[0]!.tokensPerSecond).toBeGreaterThan(0);
    expect(r.modelBytes).toBeGreaterThan(1000);
  }, 120_000);
});
