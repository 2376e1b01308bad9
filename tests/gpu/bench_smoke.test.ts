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
  it('roofline bench on the tiny shape, int4 and f32', async () => {
    const ctx = await acquireNodeDevice();
    try {
      const r = await benchRoofline(ctx, { shapes: ['tiny'], formats: [['int4', 32], ['f32', 0]], contexts: [16, 40], prefills: [8, 24], decodeSteps: 3, probeBytes: 1 << 22 });
      expect(r.ceilings.readGBps).toBeGreaterThan(0);
      expect(r.rows).toHaveLength(2);
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
      expect(r.rows[0]!.weightBytes).toBeLessThan(r.rows[1]!.weightBytes / 3);
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
