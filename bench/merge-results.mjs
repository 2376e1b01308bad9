#!/usr/bin/env node
// Merges one H100 run's outputs (bench/run-h100.sh: ours.json, ort.json, torch.json) into
// bench/results/<date>-h100.json with the top-level `summary` scripts read:
//   decode_bandwidth_fraction  OLMoE-shaped (16 layers) int4 g32, decode at context 1024:
//                              (weight + KV bytes per token) ÷ step time ÷ read bandwidth measured in the run
//   prefill_peak_fraction      same model, prefill of 2048 tokens: routed-expert GEMM FLOP/s ÷ measured f32 FMA peak
//   decode_speedup_vs_ort      OLMoE-shaped 4-layer slice (what onnxruntime-web can hold) int4, decode at
//                              context 1024: our tokens/s ÷ onnxruntime-web WebGPU EP's (QMoE + MatMulNBits)
// usage: node bench/merge-results.mjs RUN_DIR OUT_FILE [commit]
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';

const [dir, outFile, commit = ''] = process.argv.slice(2);
if (!dir || !outFile) {
  console.error('usage: node bench/merge-results.mjs RUN_DIR OUT_FILE [commit]');
  process.exit(2);
}
const load = (f) => (existsSync(join(dir, f)) ? JSON.parse(readFileSync(join(dir, f), 'utf8')) : null);
const ours = load('ours.json');
const ort = load('ort.json');
const torch = load('torch.json');
if (!ours) throw new Error(`${dir}/ours.json is missing`);

const row = (shape, format, group) => ours.rows.find((r) => r.shape === shape && r.format === format && r.group === group);
const at = (list, key, v) => list?.find((x) => x[key] === v);
const olmoe = row('olmoe', 'int4', 32);
const slice = row('olmoe-4l', 'int4', 32);
const ourDecode = at(slice?.decode, 'context', 1024);
// The peer's best form (QMoE or the plain graph) at that context.
const ortDecode = (ort?.rows ?? [])
  .filter((r) => r.shape === 'olmoe-4l')
  .map((r) => at(r.decode, 'context', 1024))
  .filter(Boolean)
  .sort((a, b) => b.tokensPerSecond - a.tokensPerSecond)[0];
const summary = {
  decode_bandwidth_fraction: at(olmoe?.decode, 'context', 1024)?.bandwidthFraction ?? null,
  prefill_peak_fraction: olmoe?.expertGemm?.peakFraction ?? null,
  decode_speedup_vs_ort: ourDecode && ortDecode ? ourDecode.tokensPerSecond / ortDecode.tokensPerSecond : null,
  basis: {
    decode_bandwidth_fraction: 'olmoe (16 layers) int4 g32, decode at context 1024, pipelined generate()',
    prefill_peak_fraction: 'olmoe int4 g32, prefill 2048 tokens, routed-expert GEMM time from timestamp queries',
    decode_speedup_vs_ort: 'olmoe-4l int4 g32 vs onnxruntime-web WebGPU EP in its faster form (QMoE or plain graph, int4 block 32), decode at context 1024',
  },
  read_bandwidth_GBps: ours.ceilings.readGBps,
  fma_peak_TFLOPs: ours.ceilings.fmaTflops,
  olmoe_int4_decode_tokens_per_s: at(olmoe?.decode, 'context', 1024)?.tokensPerSecond ?? null,
  olmoe_4l_int4_decode_tokens_per_s: ourDecode?.tokensPerSecond ?? null,
  ort_olmoe_4l_decode_tokens_per_s: ortDecode?.tokensPerSecond ?? null,
  torch_eager_olmoe_bf16_decode_tokens_per_s: at(torch?.rows.find((r) => r.shape === 'olmoe' && r.dtype === 'bfloat16')?.decode, 'context', 1024)?.tokensPerSecond ?? null,
};
writeFileSync(outFile, JSON.stringify({ date: ours.date, commit, adapter: ours.adapter, summary, ours, peer_onnxruntime_web: ort, reference_pytorch_eager: torch }, null, 1));
console.log(JSON.stringify(summary, null, 1));
