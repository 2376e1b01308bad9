/**
 * The ONNX path against HF transformers: each fixture checkpoint exported to a decoder graph
 * (src/engine/onnx/export.ts) in memory, run by onnxruntime-web's WebGPU EP in Node (Dawn on
 * SwiftShader), compared with the outputs transformers computed (tests/fixtures/∗/reference.json):
 * logits, router logits, greedy tokens, prefill-then-decode through the KV cache. Architectures
 * the exporter refuses must be refused with its typed error, and at least three must pass.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openCheckpoint } from '../../src/engine/io/checkpoint';
import { folderSources } from '../../src/engine/io/node-source';
import { GREEDY } from '../../src/engine/model/sampling';
import { exportOnnx, ONNX_EXPORT_ARCHS, OnnxExportError } from '../../src/engine/onnx/export';
import { useOrtInNode } from '../../src/engine/onnx/node';
import { OrtDecoder } from '../../src/engine/onnx/ort-backend';
import { ortGenerate } from '../../src/engine/onnx/ort-session';
import { routeRef } from '../../src/engine/ref/ops';
import { maxAbsDiff } from '../../src/engine/ref/random';

const ROOT = join(import.meta.dirname, '..', 'fixtures');
/** The tolerance of parity.test.ts: f32 vs f32 PyTorch, reference rounded to 7 digits. */
const LOGIT_TOL = 1e-4;

interface Reference {
  input_ids: number[];
  logits: number[][];
  router_logits: Array<{ layer: number; logits: number[][] }>;
  greedy: { prompt_ids: number[]; new_ids: number[] };
  prefill_decode: { prefill: number; logits: number[][] };
}

const fixtures = readdirSync(ROOT).filter((d) => existsSync(join(ROOT, d, 'reference.json'))).sort();
const flat = (rows: number[][]) => Float32Array.from(rows.flat());
const passed: string[] = [];

useOrtInNode();

describe('ONNX export run by onnxruntime-web (WebGPU EP) vs HF transformers (f32)', () => {
  for (const name of fixtures) {
    it(`${name}: logits, router logits, greedy tokens, prefill-then-decode`, async () => {
      const ref = JSON.parse(readFileSync(join(ROOT, name, 'reference.json'), 'utf8')) as Reference;
      const config = JSON.parse(readFileSync(join(ROOT, name, 'config.json'), 'utf8')) as { model_type: string };
      let ck;
      try {
        ck = await openCheckpoint(await folderSources(join(ROOT, name)));
      } catch (e) {
        // A fixture of an architecture our loader does not read yet (another change adds it) cannot be exported either.
        expect(ONNX_EXPORT_ARCHS).not.toContain(config.model_type);
        console.log(`${name}: skipped, the checkpoint loader refuses it (${(e as Error).message.slice(0, 80)})`);
        return;
      }
      if (!ONNX_EXPORT_ARCHS.includes(ck.spec.arch)) {
        await expect(exportOnnx(ck.spec, ck.slots, ck.reader)).rejects.toThrow(OnnxExportError);
        console.log(`${name}: ${ck.spec.arch} refused by the exporter (typed OnnxExportError), as expected`);
        return;
      }
      const { bytes } = await exportOnnx(ck.spec, ck.slots, ck.reader, { contextLength: 64 });
      const dec = await OrtDecoder.open(bytes);
      try {
        expect(dec.meta.moeLayers).toEqual(ref.router_logits.map((r) => r.layer));
        const full = await dec.forward(ref.input_ids, { allLogits: true });
        const dLogit = maxAbsDiff(full.logits, flat(ref.logits));
        expect(dLogit).toBeLessThanOrEqual(LOGIT_TOL);
        let dRouter = 0;
        ref.router_logits.forEach((r, m) => (dRouter = Math.max(dRouter, maxAbsDiff(full.routerLogits[m]!, flat(r.logits)))));
        expect(dRouter).toBeLessThanOrEqual(LOGIT_TOL);
        // The routing record is the engine's shape ([layer][t·k + j], k from the model) and picks the
        // experts HF's router picks from HF's own router logits.
        const T = ref.input_ids.length, E = ck.spec.moe.numExperts, K = ck.spec.moe.topK;
        expect(full.routing).toMatchObject({ start: 0, tokens: T, topk: K, numExperts: E, layers: ref.router_logits.map((r) => r.layer) });
        ref.router_logits.forEach((r, m) => {
          const want = routeRef(flat(r.logits), T, E, K, ck.spec.moe.normTopkProb);
          expect(full.routing.experts[m]).toEqual(want.idx);
          expect(maxAbsDiff(full.routing.gates[m]!, want.weights)).toBeLessThanOrEqual(LOGIT_TOL);
        });

        dec.reset();
        const P = ref.prefill_decode.prefill;
        await dec.forward(ref.input_ids.slice(0, P));
        let dDecode = 0;
        for (let i = P; i < ref.input_ids.length; i++) {
          const step = await dec.forward([ref.input_ids[i]!]);
          dDecode = Math.max(dDecode, maxAbsDiff(step.logits, Float32Array.from(ref.prefill_decode.logits[i - P]!)));
        }
        expect(dDecode).toBeLessThanOrEqual(LOGIT_TOL);

        dec.reset();
        const got: number[] = [];
        for await (const t of ortGenerate(dec, ref.greedy.prompt_ids, { maxNewTokens: ref.greedy.new_ids.length, sampling: GREEDY })) got.push(t.id);
        expect(got).toEqual(ref.greedy.new_ids);
        console.log(`${name}: max|Δlogit| ${dLogit.toExponential(2)}, max|Δrouter| ${dRouter.toExponential(2)}, max|Δdecode| ${dDecode.toExponential(2)}, ${(bytes.length / 1024).toFixed(0)} KiB graph`);
        passed.push(name);
      } finally {
        await dec.release();
      }
    });
  }

  afterAll(() => {
    // The issue asks for at least three architectures through the ONNX path.
    const archs = new Set(passed.map((n) => n.replace(/_e\d+k\d+.*$/, '')));
    if (passed.length === fixtures.length || archs.size >= 3) return;
    throw new Error(`Only ${archs.size} architectures passed through ONNX (${[...archs].join(', ')}); at least 3 must`);
  });
});
